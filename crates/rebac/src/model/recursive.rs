//! Which relations OpenFGA's check resolves as a *recursive* relation for a user type.
//!
//! OpenFGA resolves a relation that reaches itself through one edge of its own, either a
//! userset of itself (`member: [user, group#member]`) or a tuple-to-userset onto itself
//! (`viewer: [user] or viewer from parent`, `parent: [folder]` on `folder`), with a dedicated
//! strategy when every other way from the relation to the user's type reads a single tuple. That
//! strategy is a search over the objects the recursive edge links, each visited once: coming
//! back to an object already visited is not a cycle, just a dead end, so the relation answers a
//! plain "no" where the general evaluation would answer "cycle" (which differs under `but not`).
//! The strategy only serves object users (and wildcards); a userset user is resolved the
//! general way.
//!
//! A relation qualifies for user type `U` when, as in OpenFGA's weighted model graph:
//! - it reaches `U` at all;
//! - exactly one edge leads back to itself, reached from the relation through `or` only: a
//!   direct userset `T#R` of its own type and relation, or a `R from tupleset` whose tupleset
//!   lists the relation's own type;
//! - every other operand that reaches `U` reads one tuple to get there (its "weight" is 1): a
//!   direct type `U` or `U:*`, or a computed relation, `and` or `but not` of such operands.
//!   A userset or tuple-to-userset operand that reaches `U` reads two or more, and disqualifies.

use rustc_hash::{FxHashMap, FxHashSet};

use super::{CRewrite, DirectKind, Leaf, Model};

/// How many tuples a path from a relation to the user type reads at most: none (no path),
/// one, or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Weight {
    One,
    More,
}

fn max(a: Option<Weight>, b: Option<Weight>) -> Option<Weight> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The recursive edge of a candidate relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recursion {
    Userset,
    /// Through this tupleset.
    Ttu(u32),
}

struct Weights<'m> {
    model: &'m Model,
    user_type: u32,
    reaches: &'m FxHashSet<(u32, u32)>,
    memo: FxHashMap<(u32, u32), Option<Weight>>,
    stack: Vec<(u32, u32)>,
}

impl Weights<'_> {
    fn relation(&mut self, t: u32, r: u32) -> Option<Weight> {
        if !self.reaches.contains(&(t, r)) {
            return None;
        }
        if let Some(w) = self.memo.get(&(t, r)) {
            return *w;
        }
        if self.stack.contains(&(t, r)) {
            // Back on a relation being weighed: a loop through tuples, so more than one read.
            return Some(Weight::More);
        }
        let model = self.model;
        let def = model.relation(t, r)?;
        self.stack.push((t, r));
        let w = self.rewrite(t, r, &def.rewrite);
        self.stack.pop();
        self.memo.insert((t, r), w);
        w
    }

    fn leaf(&mut self, t: u32, r: u32, leaf: Leaf) -> Option<Weight> {
        let model = self.model;
        match leaf {
            Leaf::This => {
                let mut w = None;
                for d in &model.relation(t, r)?.direct {
                    let this = match d.kind {
                        DirectKind::Plain | DirectKind::Wildcard => {
                            (d.type_id == self.user_type).then_some(Weight::One)
                        }
                        DirectKind::Userset(ur) => self
                            .reaches
                            .contains(&(d.type_id, ur))
                            .then_some(Weight::More),
                    };
                    w = max(w, this);
                }
                w
            }
            Leaf::Computed(r2) => self.relation(t, r2),
            Leaf::Ttu { tupleset, computed } => {
                let mut w = None;
                for d in &model.relation(t, tupleset)?.direct {
                    if self.reaches.contains(&(d.type_id, computed)) {
                        w = Some(Weight::More);
                    }
                }
                w
            }
        }
    }

    fn rewrite(&mut self, t: u32, r: u32, rewrite: &CRewrite) -> Option<Weight> {
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
                // The type counts only when every operand reaches it.
                let mut w = Some(Weight::One);
                for child in children {
                    match self.rewrite(t, r, child) {
                        None => return None,
                        some => w = max(w, some),
                    }
                }
                w
            }
            CRewrite::Difference(both) => {
                let base = self.rewrite(t, r, &both.0)?;
                max(Some(base), self.rewrite(t, r, &both.1))
            }
        }
    }

    /// Walks the `or` operands of candidate `t#r`, collecting its edges back to itself in
    /// `found`; false when an operand disqualifies it.
    fn qualify(&mut self, t: u32, r: u32, rewrite: &CRewrite, found: &mut Vec<Recursion>) -> bool {
        match rewrite {
            CRewrite::Union(children) => children
                .iter()
                .all(|child| self.qualify(t, r, child, found)),
            CRewrite::Leaf(Leaf::This) => {
                let Some(def) = self.model.relation(t, r) else {
                    return false;
                };
                for d in &def.direct {
                    match d.kind {
                        DirectKind::Userset(ur) if d.type_id == t && ur == r => {
                            if !found.contains(&Recursion::Userset) {
                                found.push(Recursion::Userset);
                            }
                        }
                        DirectKind::Userset(ur) => {
                            if self.reaches.contains(&(d.type_id, ur)) {
                                return false;
                            }
                        }
                        DirectKind::Plain | DirectKind::Wildcard => {}
                    }
                }
                true
            }
            CRewrite::Leaf(Leaf::Ttu { tupleset, computed }) if *computed == r => {
                let Some(ts) = self.model.relation(t, *tupleset) else {
                    return true;
                };
                for d in &ts.direct {
                    if d.type_id == t {
                        if !found.contains(&Recursion::Ttu(*tupleset)) {
                            found.push(Recursion::Ttu(*tupleset));
                        }
                    } else if self.reaches.contains(&(d.type_id, r)) {
                        return false;
                    }
                }
                true
            }
            other => {
                if self.mentions(t, r, other) {
                    // The way back to itself under `and` or `but not`: not this strategy.
                    return false;
                }
                self.rewrite(t, r, other) != Some(Weight::More)
            }
        }
    }

    /// Whether `rewrite` has a leaf leading straight back to `t#r`.
    fn mentions(&self, t: u32, r: u32, rewrite: &CRewrite) -> bool {
        match rewrite {
            CRewrite::Leaf(Leaf::This) => self.model.relation(t, r).is_some_and(|def| {
                def.direct
                    .iter()
                    .any(|d| d.type_id == t && d.kind == DirectKind::Userset(r))
            }),
            CRewrite::Leaf(Leaf::Computed(_)) => false,
            CRewrite::Leaf(Leaf::Ttu { tupleset, computed }) => {
                *computed == r
                    && self
                        .model
                        .relation(t, *tupleset)
                        .is_some_and(|ts| ts.direct.iter().any(|d| d.type_id == t))
            }
            CRewrite::Union(children) | CRewrite::Intersection(children) => {
                children.iter().any(|c| self.mentions(t, r, c))
            }
            CRewrite::Difference(both) => {
                self.mentions(t, r, &both.0) || self.mentions(t, r, &both.1)
            }
        }
    }
}

/// The relations that reach a direct type or wildcard of `user_type` (every operand counts,
/// the subtracted side of `but not` included), found from `seeds` (the relations naming the
/// type directly) over `pointed_by` (relation → the relations computed from it).
fn reaching(
    seeds: &[(u32, u32)],
    pointed_by: &FxHashMap<(u32, u32), Vec<(u32, u32)>>,
) -> FxHashSet<(u32, u32)> {
    let mut set: FxHashSet<(u32, u32)> = seeds.iter().copied().collect();
    let mut stack: Vec<(u32, u32)> = seeds.to_vec();
    while let Some(node) = stack.pop() {
        for &next in pointed_by.get(&node).into_iter().flatten() {
            if set.insert(next) {
                stack.push(next);
            }
        }
    }
    set
}

/// The relations the leaves of `rewrite` (a part of `t`'s relation) read: direct usersets,
/// computed relations and tuple-to-userset targets.
fn successors(model: &Model, t: u32, r: u32, rewrite: &CRewrite, out: &mut Vec<(u32, u32)>) {
    match rewrite {
        CRewrite::Leaf(Leaf::This) => {
            for d in model
                .relation(t, r)
                .map(|d| d.direct.as_slice())
                .unwrap_or_default()
            {
                if let DirectKind::Userset(ur) = d.kind {
                    out.push((d.type_id, ur));
                }
            }
        }
        CRewrite::Leaf(Leaf::Computed(r2)) => out.push((t, *r2)),
        CRewrite::Leaf(Leaf::Ttu { tupleset, computed }) => {
            for d in model
                .relation(t, *tupleset)
                .map(|d| d.direct.as_slice())
                .unwrap_or_default()
            {
                if model.relation(d.type_id, *computed).is_some() {
                    out.push((d.type_id, *computed));
                }
            }
        }
        CRewrite::Union(children) | CRewrite::Intersection(children) => {
            for child in children {
                successors(model, t, r, child, out);
            }
        }
        CRewrite::Difference(both) => {
            successors(model, t, r, &both.0, out);
            successors(model, t, r, &both.1, out);
        }
    }
}

/// The `and` and `but not` operators of `rewrite`.
fn operators<'r>(rewrite: &'r CRewrite, out: &mut Vec<&'r CRewrite>) {
    match rewrite {
        CRewrite::Leaf(_) => {}
        CRewrite::Union(children) => children.iter().for_each(|c| operators(c, out)),
        CRewrite::Intersection(children) => {
            out.push(rewrite);
            children.iter().for_each(|c| operators(c, out));
        }
        CRewrite::Difference(both) => {
            out.push(rewrite);
            operators(&both.0, out);
            operators(&both.1, out);
        }
    }
}

/// Whether OpenFGA can weigh the model at all: its weighted graph refuses a loop through
/// tuples that passes through an `and` or `but not` (`ok: [user, doc#ok] and allowed`, or
/// `viewer: [user] but not blocked` with `blocked: [doc#viewer]`). Without that graph OpenFGA
/// uses none of the strategies that depend on it, the recursive one included, anywhere in the
/// model.
pub(super) fn weighable(model: &Model) -> bool {
    let mut found = Vec::new();
    let mut next = Vec::new();
    for (t, relations) in model.relations.iter().enumerate() {
        let t = t as u32;
        for (&r, def) in relations {
            let mut ops = Vec::new();
            operators(&def.rewrite, &mut ops);
            for op in ops {
                // Does anything the operator reads lead back to its own relation?
                found.clear();
                successors(model, t, r, op, &mut found);
                let mut seen: FxHashSet<(u32, u32)> = FxHashSet::default();
                next.clear();
                next.extend(found.iter().copied());
                while let Some(node) = next.pop() {
                    if node == (t, r) {
                        return false;
                    }
                    if seen.insert(node)
                        && let Some(inputs) = model.inputs.get(&node)
                    {
                        next.extend(inputs.iter().copied());
                    }
                }
            }
        }
    }
    true
}

/// `(user type, type, relation)` for every relation OpenFGA resolves with its recursive
/// strategy for users of that type.
pub(super) fn recursive_relations(model: &Model) -> FxHashSet<(u32, u32, u32)> {
    let mut out = FxHashSet::default();
    let empty = FxHashSet::default();
    let probe = Weights {
        model,
        user_type: 0,
        reaches: &empty,
        memo: FxHashMap::default(),
        stack: Vec::new(),
    };
    let mut candidates = Vec::new();
    let mut seeds: FxHashMap<u32, Vec<(u32, u32)>> = FxHashMap::default();
    for (t, relations) in model.relations.iter().enumerate() {
        for (&r, def) in relations {
            if probe.mentions(t as u32, r, &def.rewrite) {
                candidates.push((t as u32, r));
            }
            if def.leaves.contains(&Leaf::This) {
                for d in &def.direct {
                    if matches!(d.kind, DirectKind::Plain | DirectKind::Wildcard) {
                        seeds.entry(d.type_id).or_default().push((t as u32, r));
                    }
                }
            }
        }
    }
    if candidates.is_empty() || !model.weighable {
        return out;
    }
    let mut pointed_by: FxHashMap<(u32, u32), Vec<(u32, u32)>> = FxHashMap::default();
    for (&node, inputs) in &model.inputs {
        for &input in inputs {
            pointed_by.entry(input).or_default().push(node);
        }
    }
    for (&user_type, seeds) in &seeds {
        let reaches = reaching(seeds, &pointed_by);
        let mut weights = Weights {
            model,
            user_type,
            reaches: &reaches,
            memo: FxHashMap::default(),
            stack: Vec::new(),
        };
        for &(t, r) in &candidates {
            if !reaches.contains(&(t, r)) {
                continue;
            }
            let Some(def) = model.relation(t, r) else {
                continue;
            };
            let mut found = Vec::new();
            if weights.qualify(t, r, &def.rewrite, &mut found) && found.len() == 1 {
                out.insert((user_type, t, r));
            }
        }
    }
    out
}
