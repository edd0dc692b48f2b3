//! The part of the model OpenFGA's list objects expands, for its condition errors.
//!
//! OpenFGA's list objects expands backwards from the user over the model's weighted graph and
//! checks the objects it finds where `and` or `but not` could make them wrong. It does not
//! follow every operand: of an `and` only the operand with the lowest weight (the fewest tuples
//! read on the way to the user's type, the first such operand on a tie), of a `but not` only
//! the base. A tuple it never reads cannot fail it, so a condition that cannot be evaluated on
//! an edge off that pruned part is only a dead end for list objects, while on it the query
//! fails. The answer itself does not depend on this: every object found either way is
//! confirmed by check where it could differ.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{CRewrite, DirectKind, Leaf, Model};

/// What the query's user is, for weights: objects and wildcards of a type, or a userset.
#[derive(Debug, Clone, Copy)]
pub(super) enum Terminal {
    Type(u32),
    Userset(u32, u32),
}

/// Tuples read on the way to the user: `u32::MAX` for unbounded (a loop through tuples).
const UNBOUNDED: u32 = u32::MAX;

struct Weigh<'m> {
    model: &'m Model,
    terminal: Terminal,
    memo: FxHashMap<(u32, u32), Option<u32>>,
    stack: Vec<(u32, u32)>,
}

fn plus_one(w: u32) -> u32 {
    if w == UNBOUNDED { w } else { w + 1 }
}

fn max(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Weigh<'_> {
    fn relation(&mut self, t: u32, r: u32) -> Option<u32> {
        if let Terminal::Userset(ut, ur) = self.terminal
            && (ut, ur) == (t, r)
        {
            return Some(0);
        }
        if let Some(w) = self.memo.get(&(t, r)) {
            return *w;
        }
        if self.stack.contains(&(t, r)) {
            return Some(UNBOUNDED);
        }
        let model = self.model;
        let def = model.relation(t, r)?;
        self.stack.push((t, r));
        let w = self.rewrite(t, r, &def.rewrite);
        self.stack.pop();
        self.memo.insert((t, r), w);
        w
    }

    fn leaf(&mut self, t: u32, r: u32, leaf: Leaf) -> Option<u32> {
        let model = self.model;
        match leaf {
            Leaf::This => {
                let mut w = None;
                for d in &model.relation(t, r)?.direct {
                    let this = match (d.kind, self.terminal) {
                        (DirectKind::Plain | DirectKind::Wildcard, Terminal::Type(u)) => {
                            (d.type_id == u).then_some(1)
                        }
                        (DirectKind::Plain | DirectKind::Wildcard, Terminal::Userset(..)) => None,
                        (DirectKind::Userset(ur), _) => self.relation(d.type_id, ur).map(plus_one),
                    };
                    w = max(w, this);
                }
                w
            }
            Leaf::Computed(r2) => self.relation(t, r2),
            Leaf::Ttu { tupleset, computed } => {
                let mut w = None;
                for d in &model.relation(t, tupleset)?.direct {
                    if model.relation(d.type_id, computed).is_some() {
                        w = max(w, self.relation(d.type_id, computed).map(plus_one));
                    }
                }
                w
            }
        }
    }

    fn rewrite(&mut self, t: u32, r: u32, rewrite: &CRewrite) -> Option<u32> {
        match rewrite {
            CRewrite::Leaf(leaf) => self.leaf(t, r, *leaf),
            CRewrite::Union(children) => {
                let mut w = None;
                for child in children {
                    w = max(w, self.rewrite(t, r, child));
                }
                w
            }
            CRewrite::Intersection(children) => {
                let mut w = Some(0);
                for child in children {
                    w = max(w, Some(self.rewrite(t, r, child)?));
                }
                w
            }
            CRewrite::Difference(both) => {
                let base = self.rewrite(t, r, &both.0)?;
                max(Some(base), self.rewrite(t, r, &both.1))
            }
        }
    }
}

/// The leaves of each relation that OpenFGA's list objects for `target` reads, as
/// `((type, relation), leaf)`.
pub(super) fn followed_leaves(
    model: &Model,
    target: (u32, u32),
    terminal: Terminal,
) -> FxHashSet<((u32, u32), Leaf)> {
    let mut weigh = Weigh {
        model,
        terminal,
        memo: FxHashMap::default(),
        stack: Vec::new(),
    };
    let mut out: FxHashSet<((u32, u32), Leaf)> = FxHashSet::default();
    let mut seen: FxHashSet<(u32, u32)> = FxHashSet::default();
    let mut work = vec![target];
    let mut leaves = Vec::new();
    while let Some((t, r)) = work.pop() {
        if !seen.insert((t, r)) {
            continue;
        }
        let Some(def) = model.relation(t, r) else {
            continue;
        };
        leaves.clear();
        pruned_leaves(&mut weigh, t, r, &def.rewrite, &mut leaves);
        for &leaf in &leaves {
            out.insert(((t, r), leaf));
            match leaf {
                Leaf::This => {
                    for d in &def.direct {
                        if let DirectKind::Userset(ur) = d.kind {
                            work.push((d.type_id, ur));
                        }
                    }
                }
                Leaf::Computed(r2) => work.push((t, r2)),
                Leaf::Ttu { tupleset, computed } => {
                    for d in model
                        .relation(t, tupleset)
                        .map(|ts| ts.direct.as_slice())
                        .unwrap_or_default()
                    {
                        work.push((d.type_id, computed));
                    }
                }
            }
        }
    }
    out
}

/// The leaves of `rewrite` on the pruned path: every operand of `or`, the lightest operand of
/// `and`, the base of `but not`.
fn pruned_leaves(weigh: &mut Weigh<'_>, t: u32, r: u32, rewrite: &CRewrite, out: &mut Vec<Leaf>) {
    match rewrite {
        CRewrite::Leaf(leaf) => out.push(*leaf),
        CRewrite::Union(children) => {
            for child in children {
                pruned_leaves(weigh, t, r, child, out);
            }
        }
        CRewrite::Intersection(children) => {
            let mut best: Option<(u32, &CRewrite)> = None;
            for child in children.iter() {
                let w = weigh.rewrite(t, r, child).unwrap_or(UNBOUNDED);
                if best.is_none_or(|(b, _)| w < b) {
                    best = Some((w, child));
                }
            }
            if let Some((_, child)) = best {
                pruned_leaves(weigh, t, r, child, out);
            }
        }
        CRewrite::Difference(both) => pruned_leaves(weigh, t, r, &both.0, out),
    }
}
