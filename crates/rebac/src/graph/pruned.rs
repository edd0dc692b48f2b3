//! The part of the model OpenFGA's list objects expands, for its condition errors.
//!
//! OpenFGA's list objects expands backwards from the user and checks the objects it finds where
//! `and` or `but not` could make them wrong. It does not follow every operand: of an `and`
//! only the first operand (whatever the weights of the others, and even where the first cannot
//! reach the user's type), of a `but not` only the base. A tuple it never reads cannot fail it, so a condition that cannot be evaluated on
//! an edge off that pruned part is only a dead end for list objects, while on it the query
//! fails. The answer itself does not depend on this: every object found either way is
//! confirmed by check where it could differ.

use rustc_hash::FxHashSet;

use crate::model::{CRewrite, DirectKind, Leaf, Model};

/// The leaves of each relation that OpenFGA's list objects for `target` reads, as
/// `((type, relation), leaf)`.
pub(super) fn followed_leaves(model: &Model, target: (u32, u32)) -> FxHashSet<((u32, u32), Leaf)> {
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
        pruned_leaves(&def.rewrite, &mut leaves);
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

/// The leaves of `rewrite` on the pruned path: every operand of `or`, the first operand of
/// `and`, the base of `but not`.
fn pruned_leaves(rewrite: &CRewrite, out: &mut Vec<Leaf>) {
    match rewrite {
        CRewrite::Leaf(leaf) => out.push(*leaf),
        CRewrite::Union(children) => {
            for child in children {
                pruned_leaves(child, out);
            }
        }
        CRewrite::Intersection(children) => {
            if let Some(first) = children.first() {
                pruned_leaves(first, out);
            }
        }
        CRewrite::Difference(both) => pruned_leaves(&both.0, out),
    }
}
