//! List users as OpenFGA answers it: a set expansion from the object, not a check per user.
//!
//! OpenFGA's list users does not confirm its candidates with check, and its answers differ
//! from check's in known places. This module follows its expansion so that both give the
//! same lists:
//!
//! - Expanding `object#relation` yields users, each marked as having the relation or as
//!   explicitly not having it (the second comes from `but not` over a wildcard). A direct tuple
//!   yields its user when the user's type is the filter's type (for a `type#relation` filter
//!   too, so objects and wildcards of that type are listed with the usersets); a userset tuple
//!   is expanded in turn; `object#relation` itself is listed when it matches a `type#relation`
//!   filter. Where one user is yielded more than once into the same collection, the last one
//!   counts (OpenFGA's order there depends on timing; here objects come before usersets).
//! - Each path through the expansion visits an `object#relation` at most once; reaching one a
//!   second time yields nothing and marks the step as cyclic. The mark is passed up through
//!   direct tuples and computed relations only, and only `but not` reads it: when its subtracted
//!   side met a cycle, the whole `but not` yields nothing and no error.
//! - `a or b` lists what either lists. `a and b` lists a user when every operand lists it or
//!   lists the filter type's wildcard, and the wildcard when every operand lists it; but not a
//!   user that a `but not` below it subtracted from a wildcard. Such an exclusion travels with
//!   every user yielded after it (a `but not` yields it once per user of its base), and a
//!   union passes it on only when as many of the users its operands yielded carry it as the
//!   union has operands (OpenFGA counts them so).
//! - `a but not b`: without wildcards, what `a` lists minus what `b` lists. When `a` lists the
//!   wildcard, everything `b` lists is marked as not having the relation; when `b` lists the
//!   wildcard, everything `a` lists is.
//! - Errors (conditions that cannot be evaluated, the depth limit) fail the query, except
//!   under a `but not` whose subtracted side met a cycle. A tuple whose condition is false is
//!   not followed.
//! - Before expanding, when the filter cannot reach the relation in the model's type graph at
//!   all (as OpenFGA's pruned relationship edges decide: of `and`, only the first operand is
//!   followed, of `but not` only the base), the answer is empty without expanding.

use rustc_hash::{FxHashMap, FxHashSet};

use super::{
    Budget, Eval, Index, MAX_RESOLVE_DEPTH, QueryError, TAG_OBJECT, TAG_USERSET, TAG_WILDCARD,
    View, key_object, key_relation, key_userset, key_wildcard, low, pair, tag,
};
use crate::model::{CRewrite, DirectKind, Leaf, Model};

/// Whether a yielded user has the relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Has,
    Not,
}

/// What expanding one rewrite yielded.
#[derive(Default)]
struct Outcome {
    /// Users in the order yielded (a user may appear more than once).
    users: Vec<(u64, Status)>,
    /// The expansion reached an `object#relation` already on its path.
    cycle: bool,
    /// The first error met.
    error: Option<QueryError>,
    /// Users a `but not` over a wildcard excluded on the way (OpenFGA's excluded users), each
    /// with the number of yielded users that carry it (OpenFGA attaches the excluded users to
    /// each user it yields, and a union counts those): an `and` above does not list them even
    /// where an operand lists the wildcard.
    excluded: FxHashMap<u64, usize>,
}

impl Outcome {
    fn fail(&mut self, error: QueryError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// The users that were yielded as having the relation at least once.
    fn granted(&self) -> FxHashSet<u64> {
        self.users
            .iter()
            .filter(|(_, status)| *status == Status::Has)
            .map(|(user, _)| *user)
            .collect()
    }

    /// Each user's last status.
    fn last(&self) -> FxHashMap<u64, Status> {
        self.users.iter().copied().collect()
    }
}

/// Adds the excluded users of `from`, with the number of yielded users carrying each, to `to`.
fn add_counts(to: &mut FxHashMap<u64, usize>, from: &FxHashMap<u64, usize>) {
    for (&user, &count) in from {
        *to.entry(user).or_default() += count;
    }
}

pub(super) struct ListUsers<'a, 'g> {
    view: &'a View<'g>,
    model: &'g Model,
    conditions: &'a Eval<'a, 'g>,
    budget: &'a Budget,
    /// The filter: a type, and for usersets a relation.
    user_type: u32,
    user_relation: Option<u32>,
    /// `object#relation` pairs on the current path.
    path: Vec<u64>,
}

impl<'a, 'g> ListUsers<'a, 'g> {
    pub(super) fn new(
        view: &'a View<'g>,
        conditions: &'a Eval<'a, 'g>,
        budget: &'a Budget,
        user_type: u32,
        user_relation: Option<u32>,
    ) -> Self {
        ListUsers {
            view,
            model: &view.graph.model,
            conditions,
            budget,
            user_type,
            user_relation,
            path: Vec::new(),
        }
    }

    /// The users (keys) that have `relation` on `object` and match the filter.
    pub(super) fn run(
        &mut self,
        object: u32,
        object_type: u32,
        relation: u32,
    ) -> Result<Vec<u64>, QueryError> {
        let is_filter = object_type == self.user_type && self.user_relation == Some(relation);
        if !is_filter {
            let mut visited = FxHashSet::default();
            if !self.reachable(object_type, relation, &mut visited)? {
                return Ok(Vec::new());
            }
        }
        let outcome = self.expand(object, relation, 0)?;
        if let Some(error) = outcome.error {
            return Err(error);
        }
        let mut users: Vec<u64> = outcome
            .last()
            .into_iter()
            .filter(|(_, status)| *status == Status::Has)
            .map(|(user, _)| user)
            .collect();
        users.sort_unstable();
        Ok(users)
    }

    /// Whether the filter can reach `object_type#relation` in the type graph (OpenFGA's pruned
    /// relationship edges: of `and` only the first operand counts, of `but not` the base).
    fn reachable(
        &self,
        object_type: u32,
        relation: u32,
        visited: &mut FxHashSet<(u32, u32)>,
    ) -> Result<bool, QueryError> {
        if !visited.insert((object_type, relation)) {
            return Ok(false);
        }
        self.budget.spend(1)?;
        let Some(def) = self.model.relation(object_type, relation) else {
            return Ok(false);
        };
        self.reachable_rewrite(object_type, relation, &def.rewrite, visited)
    }

    fn reachable_rewrite(
        &self,
        object_type: u32,
        relation: u32,
        rewrite: &CRewrite,
        visited: &mut FxHashSet<(u32, u32)>,
    ) -> Result<bool, QueryError> {
        let model = self.model;
        match rewrite {
            CRewrite::Leaf(Leaf::This) => {
                let Some(def) = model.relation(object_type, relation) else {
                    return Ok(false);
                };
                self.budget.spend(def.direct.len() as u64)?;
                let direct = def.direct.iter().any(|d| {
                    d.type_id == self.user_type
                        && match (d.kind, self.user_relation) {
                            (DirectKind::Plain, None) | (DirectKind::Wildcard, _) => true,
                            (DirectKind::Userset(r), Some(want)) => r == want,
                            _ => false,
                        }
                });
                if direct {
                    return Ok(true);
                }
                for d in &def.direct {
                    if let DirectKind::Userset(r) = d.kind
                        && self.reachable(d.type_id, r, visited)?
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            CRewrite::Leaf(Leaf::Computed(r2)) => {
                if object_type == self.user_type && self.user_relation == Some(*r2) {
                    return Ok(true);
                }
                self.reachable(object_type, *r2, visited)
            }
            CRewrite::Leaf(Leaf::Ttu { tupleset, computed }) => {
                let Some(def) = model.relation(object_type, *tupleset) else {
                    return Ok(false);
                };
                for d in &def.direct {
                    if model.relation(d.type_id, *computed).is_none() {
                        continue;
                    }
                    if d.type_id == self.user_type && self.user_relation == Some(*computed) {
                        return Ok(true);
                    }
                    if self.reachable(d.type_id, *computed, visited)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            CRewrite::Union(children) => {
                for child in children {
                    if self.reachable_rewrite(object_type, relation, child, visited)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            CRewrite::Intersection(children) => match children.first() {
                Some(first) => self.reachable_rewrite(object_type, relation, first, visited),
                None => Ok(false),
            },
            CRewrite::Difference(both) => {
                self.reachable_rewrite(object_type, relation, &both.0, visited)
            }
        }
    }

    /// Expands `object#relation` (one level deeper than its caller). `Err` only for the step
    /// budget; every other error is carried in the outcome.
    fn expand(&mut self, object: u32, relation: u32, depth: u32) -> Result<Outcome, QueryError> {
        self.budget.spend(1)?;
        let mut outcome = Outcome::default();
        if depth >= MAX_RESOLVE_DEPTH {
            outcome.fail(QueryError::DepthExceeded);
            return Ok(outcome);
        }
        let key = pair(object, relation);
        if self.path.contains(&key) {
            outcome.cycle = true;
            return Ok(outcome);
        }
        let object_type = self.view.object_type(object);
        if object_type == self.user_type && self.user_relation == Some(relation) {
            outcome
                .users
                .push((key_userset(object, relation), Status::Has));
        }
        let model = self.model;
        let Some(def) = model.relation(object_type, relation) else {
            return Ok(outcome);
        };
        self.path.push(key);
        let inner = self.rewrite(object, relation, &def.rewrite, depth + 1);
        self.path.pop();
        let inner = inner?;
        outcome.users.extend(inner.users);
        outcome.cycle = inner.cycle;
        outcome.excluded = inner.excluded;
        if let Some(error) = inner.error {
            outcome.fail(error);
        }
        Ok(outcome)
    }

    /// Evaluates the condition of one edge: `Some(true)` to follow it.
    fn follow(&self, index: &Index, slot: u32, outcome: &mut Outcome) -> bool {
        match self.conditions.condition_holds(index, slot) {
            Ok(holds) => holds,
            Err(error) => {
                outcome.fail(error);
                false
            }
        }
    }

    fn rewrite(
        &mut self,
        object: u32,
        relation: u32,
        rewrite: &CRewrite,
        depth: u32,
    ) -> Result<Outcome, QueryError> {
        self.budget.spend(1)?;
        match rewrite {
            CRewrite::Leaf(Leaf::This) => self.direct(object, relation, depth),
            CRewrite::Leaf(Leaf::Computed(r2)) => self.expand(object, *r2, depth),
            CRewrite::Leaf(Leaf::Ttu { tupleset, computed }) => {
                let mut outcome = Outcome::default();
                let mut parents: Vec<u32> = Vec::new();
                let view = self.view;
                for index in view.indexes() {
                    let Some(adj) = index.forward.get(&pair(object, *tupleset)) else {
                        continue;
                    };
                    self.budget.spend(adj.direct.len() as u64)?;
                    for &(parent, slot) in &adj.direct {
                        if self.follow(index, slot, &mut outcome) {
                            parents.push(parent);
                        }
                    }
                }
                for parent in parents {
                    let inner = self.expand(parent, *computed, depth)?;
                    outcome.users.extend(inner.users);
                    add_counts(&mut outcome.excluded, &inner.excluded);
                    if let Some(error) = inner.error {
                        outcome.fail(error);
                    }
                }
                Ok(outcome)
            }
            CRewrite::Union(children) => {
                let mut outcome = Outcome::default();
                let mut seen = FxHashSet::default();
                let mut carried = FxHashMap::default();
                for child in children {
                    let inner = self.rewrite(object, relation, child, depth)?;
                    add_counts(&mut carried, &inner.excluded);
                    for (user, status) in inner.users {
                        if status == Status::Has && seen.insert(user) {
                            outcome.users.push((user, Status::Has));
                        }
                    }
                    if let Some(error) = inner.error {
                        outcome.fail(error);
                    }
                }
                // As OpenFGA counts them: excluded where as many yielded users carry the
                // exclusion as the union has operands; each user the union yields carries it.
                let yielded = outcome.users.len();
                outcome.excluded = carried
                    .into_iter()
                    .filter(|&(_, count)| count == children.len() && yielded > 0)
                    .map(|(user, _)| (user, yielded))
                    .collect();
                Ok(outcome)
            }
            CRewrite::Intersection(children) => {
                let mut outcome = Outcome::default();
                let wildcard = key_wildcard(self.user_type);
                let mut sets = Vec::with_capacity(children.len());
                for child in children {
                    let inner = self.rewrite(object, relation, child, depth)?;
                    sets.push(inner.granted());
                    outcome.excluded.extend(
                        inner
                            .excluded
                            .iter()
                            .filter(|&(_, &count)| count > 0)
                            .map(|(&user, _)| (user, 0)),
                    );
                    if let Some(error) = inner.error {
                        outcome.fail(error);
                    }
                }
                let wildcards = sets.iter().filter(|set| set.contains(&wildcard)).count();
                let mut counts: FxHashMap<u64, usize> = FxHashMap::default();
                let mut order: Vec<u64> = Vec::new();
                for set in &sets {
                    let has_wildcard = set.contains(&wildcard);
                    for &user in set {
                        let count = counts.entry(user).or_insert_with(|| {
                            order.push(user);
                            0
                        });
                        if !has_wildcard {
                            *count += 1;
                        }
                    }
                }
                self.budget.spend(order.len() as u64)?;
                order.sort_unstable();
                for user in order {
                    if counts[&user] + wildcards == children.len()
                        && !outcome.excluded.contains_key(&user)
                    {
                        outcome.users.push((user, Status::Has));
                    }
                }
                // Every user the intersection yields carries every excluded user.
                let yielded = outcome.users.len();
                if yielded == 0 {
                    outcome.excluded.clear();
                }
                for count in outcome.excluded.values_mut() {
                    *count = yielded;
                }
                Ok(outcome)
            }
            CRewrite::Difference(both) => {
                let base = self.rewrite(object, relation, &both.0, depth)?;
                let subtract = self.rewrite(object, relation, &both.1, depth)?;
                Ok(self.difference(&base, &subtract))
            }
        }
    }

    fn difference(&self, base: &Outcome, subtract: &Outcome) -> Outcome {
        let mut outcome = Outcome::default();
        if subtract.cycle {
            return outcome;
        }
        outcome.error = base.error.clone().or_else(|| subtract.error.clone());
        let wildcard = key_wildcard(self.user_type);
        let base_users = base.last();
        let subtracted = subtract.last();
        let base_wildcard = base_users.contains_key(&wildcard);
        let subtract_wildcard = subtracted.contains_key(&wildcard);
        let mut base_order: Vec<(u64, Status)> = base_users.into_iter().collect();
        base_order.sort_unstable_by_key(|(user, _)| *user);
        let mut subtract_order: Vec<(u64, Status)> =
            subtracted.iter().map(|(u, s)| (*u, *s)).collect();
        subtract_order.sort_unstable_by_key(|(user, _)| *user);
        for &(user, status) in &base_order {
            let removed = subtracted.get(&user).copied();
            if base_wildcard {
                // Kept with its status: a user the base marked as not having the relation
                // stays so.
                if removed.is_none() && !subtract_wildcard {
                    outcome.users.push((user, status));
                }
                if removed.is_none() && subtract_order.iter().any(|(s, _)| tag(*s) == TAG_WILDCARD)
                {
                    outcome.users.push((user, Status::Not));
                }
            } else if subtract_wildcard || removed.is_some() {
                // Subtracted as having the relation: not a member; subtracted as explicitly
                // not having it: a member.
                let flipped = match removed.unwrap_or(Status::Has) {
                    Status::Has => Status::Not,
                    Status::Not => Status::Has,
                };
                outcome.users.push((user, flipped));
            } else {
                outcome.users.push((user, status));
            }
        }
        if base_wildcard && !base_order.is_empty() {
            // Under a base wildcard, every subtracted user (other than wildcards) is yielded
            // with its status flipped.
            for &(user, status) in &subtract_order {
                if tag(user) == TAG_WILDCARD {
                    continue;
                }
                let flipped = match status {
                    Status::Has => {
                        // OpenFGA yields the exclusion once per user the base lists.
                        outcome.excluded.insert(user, base_order.len());
                        Status::Not
                    }
                    Status::Not => Status::Has,
                };
                outcome.users.push((user, flipped));
            }
        }
        outcome
    }

    fn direct(&mut self, object: u32, relation: u32, depth: u32) -> Result<Outcome, QueryError> {
        let mut outcome = Outcome::default();
        let mut usersets: Vec<u64> = Vec::new();
        let view = self.view;
        for index in view.indexes() {
            let Some(adj) = index.forward.get(&pair(object, relation)) else {
                continue;
            };
            self.budget
                .spend((adj.direct.len() + adj.sets.len()) as u64)?;
            let edges = adj
                .direct
                .iter()
                .map(|&(user, slot)| (key_object(user), slot))
                .chain(adj.sets.iter().copied());
            for (user, slot) in edges {
                if !self.follow(index, slot, &mut outcome) {
                    continue;
                }
                let user_type = match tag(user) {
                    TAG_OBJECT => view.object_type(low(user)),
                    TAG_WILDCARD => low(user),
                    _ => {
                        if tag(user) == TAG_USERSET {
                            usersets.push(user);
                        }
                        continue;
                    }
                };
                if user_type == self.user_type {
                    outcome.users.push((user, Status::Has));
                }
            }
        }
        for set in usersets {
            let inner = self.expand(low(set), key_relation(set), depth)?;
            outcome.users.extend(inner.users);
            add_counts(&mut outcome.excluded, &inner.excluded);
            outcome.cycle |= inner.cycle;
            if let Some(error) = inner.error {
                outcome.fail(error);
            }
        }
        Ok(outcome)
    }
}
