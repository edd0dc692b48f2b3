//! The in-memory relation index of one tenant and the queries over it.
//!
//! Owns [`Graph`]: interned objects, forward adjacency `(object, relation) → users` and reverse
//! adjacency `user → (object, relation)`, incremental writes and deletes, and the queries check,
//! batch check, list objects, list users and expand, with contextual tuples layered on top for
//! one query. It must not parse models or evaluate CEL itself (that is [`crate::model`] and
//! [`crate::condition`]), and it does no I/O: the store feeds it tuples.
//!
//! Semantics (as OpenFGA): a union grants if any operand grants, and an evaluation error in
//! one operand only surfaces if no operand grants; an intersection denies if any operand
//! denies; `a but not b` denies when `a` denies or `b` grants. Resolving more than
//! [`MAX_RESOLVE_DEPTH`] nested relations is [`QueryError::DepthExceeded`].
//!
//! Condition errors in check (as OpenFGA reads tuples): the tuple naming the user itself fails
//! with its condition's error; the wildcard tuples of an object user's type are one read, the
//! userset tuples of a relation another, and the tuples of a tupleset another: a tuple of such
//! a read whose condition cannot be evaluated is skipped, and the error counts only when no
//! tuple of the read passed its condition. A userset user reads no wildcard tuples. A
//! relation from which the model has no path to the user's type (or, for a userset user, to
//! its relation) is no without reading anything, so no condition on the way can fail it.
//!
//! Cycles (as OpenFGA's check): reaching an `object#relation` that is already being resolved
//! on the same path closes a cycle, and that step answers *cycle*, a third value next to yes
//! and no. It grants nothing, and it is not a "no" that a `but not` could turn into a grant:
//! - a union is yes if any operand is yes, otherwise an error if any operand failed,
//!   otherwise cycle if any operand is cycle, otherwise no;
//! - an intersection is no if any operand is no, otherwise cycle if any is cycle, otherwise
//!   an error if any failed, otherwise yes;
//! - `a but not b` is no if `a` is no or `b` is yes, otherwise cycle if `a` or `b` is cycle,
//!   otherwise an error if either failed, otherwise yes;
//! - the query's answer is yes only for yes: a cycle at the top is "not a member".
//!
//! Except, as in OpenFGA, in a relation recursive through itself that OpenFGA resolves by
//! searching the objects it links (`Model::recursive`, for object and wildcard users): there
//! coming back to an `object#relation` on the path is a plain no.
//!
//! So with `viewer: [user] but not restricted`, `restricted: [user, document#viewer]` and
//! tuples `document:1#viewer@user:jon`, `document:1#restricted@document:1#viewer`, both
//! `viewer` and `restricted` deny jon (each reaches itself through the other). OpenFGA resolves
//! operands concurrently and returns the first decisive one, so where an intersection has both
//! a "no" and a "cycle" operand, or `but not` a "no" base and a "cycle" subtracted side, its
//! result depends on timing. The evaluator first takes the "no" (the order-independent
//! reading); when that grants but met a cycle (or the model loops through `and` / `but not`),
//! the grant must also survive OpenFGA's race as `Eval::timed` replays it: a cycle is
//! detected before any tuple is read, so the side with fewer reads and dispatches before its
//! answer wins, which is OpenFGA's usual outcome (a bounded replay; past its step limit the
//! first answer stands). A "no" that met no cycle is remembered for the rest of the query; a
//! cycle answer is not, since it depends on the path it was reached on.
//!
//! `list_objects` answers exactly what `check` answers for each object: its candidates are
//! confirmed by `check` wherever a cycle or `but not` could make the two differ. An edge whose
//! condition cannot be evaluated fails it where OpenFGA's pruned expansion reads the edge (the
//! first operand of `and`, the base of `but not`: the `pruned` module) and is a dead end
//! elsewhere.
//! `list_users` is OpenFGA's list-users expansion (the `list_users` module), which is a set
//! computation rather than a check per user and differs from `check` where `but not` meets a
//! cycle or a wildcard, as OpenFGA's does. `expand` is one level deep and meets no cycle.
//!
//! Bounds: every query is bounded by the resolve depth and by a budget of
//! [`MAX_QUERY_STEPS`] steps (one per relation resolved, rewrite term evaluated, tuple or index
//! entry followed, candidate confirmed or user listed), shared by everything the query does,
//! including the checks that confirm `list_objects` and `list_users` candidates. Spending it
//! is [`QueryError::TooComplex`], an error rather than a partial answer. The index holds at
//! most [`MAX_INDEX_TUPLES`] tuples; a write beyond that is refused and leaves the index
//! incomplete, and an incomplete index answers every query with
//! [`QueryError::IndexIncomplete`], since a missing tuple could turn a `but not` into a grant.

mod list_users;
mod pruned;

use std::cell::Cell;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Map, Value, json};
use smallvec::SmallVec;

use crate::condition::EvalError;
use crate::model::{CRelation, CRewrite, Dependent, DirectKind, Leaf, Model, TupleError};
use crate::tuple::{ObjectRef, Tuple, TupleCondition, User};

/// OpenFGA's default resolution depth: the most relations resolved inside one another.
pub const MAX_RESOLVE_DEPTH: u32 = 25;
/// Most tuples in one write request (OpenFGA's limit).
pub const MAX_TUPLES_PER_WRITE: usize = 100;
/// Most contextual tuples in one query.
pub const MAX_CONTEXTUAL_TUPLES: usize = 100;
/// Most checks in one batch check.
pub const MAX_BATCH_CHECK_ITEMS: usize = 50;
/// Most tuples a bundle may ship in its `tuples:` section (checked by the bundle loader; the
/// store holds the rest).
pub const MAX_BUNDLE_TUPLES: usize = 10_000;
/// Most steps one query may take (see the module documentation for what a step is).
pub const MAX_QUERY_STEPS: u64 = 1_000_000;
/// Most tuples one index holds (about 100 bytes each).
pub const MAX_INDEX_TUPLES: usize = 2_000_000;
/// Most objects one index interns (twice its tuple limit). Objects are interned by writes and
/// not reclaimed by deletes until the index is rebuilt, so this bounds churn as well as size.
pub const MAX_INDEX_OBJECTS: usize = 2 * MAX_INDEX_TUPLES;

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The object's or user's type is not in the model.
    #[error("type `{0}` is not defined in the model")]
    UnknownType(String),
    /// The relation is not defined on the type.
    #[error("type `{object_type}` has no relation `{relation}`")]
    UnknownRelation {
        /// The type.
        object_type: String,
        /// The relation asked for.
        relation: String,
    },
    /// A contextual tuple does not fit the model.
    #[error("invalid contextual tuple: {0}")]
    InvalidContextualTuple(TupleError),
    /// More contextual tuples than [`MAX_CONTEXTUAL_TUPLES`].
    #[error("{0} contextual tuples, more than the limit of {MAX_CONTEXTUAL_TUPLES}")]
    TooManyContextualTuples(usize),
    /// More checks than [`MAX_BATCH_CHECK_ITEMS`] in one batch.
    #[error("{0} checks in one batch, more than the limit of {MAX_BATCH_CHECK_ITEMS}")]
    TooManyChecks(usize),
    /// Resolution nested deeper than [`MAX_RESOLVE_DEPTH`].
    #[error("resolution exceeded the depth limit of {MAX_RESOLVE_DEPTH} nested relations")]
    DepthExceeded,
    /// The query needed more than [`MAX_QUERY_STEPS`] steps.
    #[error(
        "the query needed more than {MAX_QUERY_STEPS} steps (relations resolved, tuples followed), the limit per query; ask about fewer objects or simplify the model"
    )]
    TooComplex,
    /// The index refused tuples beyond its limits, so its answers could be wrong.
    #[error(
        "the relation index is incomplete: it refused {0} tuples beyond its limits (at most {MAX_INDEX_TUPLES} tuples and {MAX_INDEX_OBJECTS} objects), so it answers no query until it is rebuilt with fewer"
    )]
    IndexIncomplete(usize),
    /// A condition reads a parameter that neither the tuple nor the request supplies.
    #[error(
        "condition `{condition}`: missing required parameter `{parameter}`; supply it in the request context"
    )]
    MissingParameter {
        /// The condition.
        condition: String,
        /// The parameter.
        parameter: String,
    },
    /// A supplied parameter does not have its declared type.
    #[error("condition `{condition}`: parameter `{parameter}`: {message}")]
    BadParameter {
        /// The condition.
        condition: String,
        /// The parameter.
        parameter: String,
        /// What is wrong.
        message: String,
    },
    /// The condition failed while evaluating.
    #[error("condition `{condition}` failed: {message}")]
    ConditionFailed {
        /// The condition.
        condition: String,
        /// What went wrong.
        message: String,
    },
}

/// One check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRequest {
    /// Who.
    pub user: User,
    /// Which relation.
    pub relation: String,
    /// On what.
    pub object: ObjectRef,
    /// Request context for conditions.
    pub context: Map<String, Value>,
    /// Tuples visible to this query only.
    pub contextual_tuples: Vec<Tuple>,
}

impl CheckRequest {
    /// A request without context or contextual tuples.
    pub fn new(user: User, relation: impl Into<String>, object: ObjectRef) -> Self {
        CheckRequest {
            user,
            relation: relation.into(),
            object,
            context: Map::new(),
            contextual_tuples: Vec::new(),
        }
    }
}

/// A check's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Whether the user has the relation.
    pub allowed: bool,
    /// When allowed: the chain of relations that granted it, from the asked relation to the
    /// user. Steps are `type:id#relation`, followed by ` (computed)` when reached as a
    /// computed relation of the previous step's object or ` (from tupleset)` when reached
    /// through a tuple-to-userset; the last step is the user (`user:anne`, or `user:*` for a
    /// wildcard tuple). A step that passed a condition ends with ` [condition name]`.
    /// Empty when denied.
    pub path: Vec<String>,
}

/// A filter of [`Graph::list_users`]: `user` (objects and `user:*`) or `group#member` (usersets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFilter {
    /// The user type.
    pub user_type: String,
    /// For usersets, the relation.
    pub relation: Option<String>,
}

impl std::str::FromStr for UserFilter {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (user_type, relation) = match text.split_once('#') {
            Some((t, r)) => (t, Some(r.to_owned())),
            None => (text, None),
        };
        if user_type.is_empty() || relation.as_deref() == Some("") {
            return Err(format!(
                "invalid user filter `{text}`; expected `type` or `type#relation`"
            ));
        }
        Ok(UserFilter {
            user_type: user_type.to_owned(),
            relation,
        })
    }
}

/// A filter of [`Graph::read`]; `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TupleFilter {
    /// Object type.
    pub object_type: Option<String>,
    /// Object id (only with `object_type`).
    pub object_id: Option<String>,
    /// Relation.
    pub relation: Option<String>,
    /// User.
    pub user: Option<User>,
}

const TAG_OBJECT: u64 = 0;
const TAG_USERSET: u64 = 1;
const TAG_WILDCARD: u64 = 2;

#[inline]
fn key_object(object: u32) -> u64 {
    (TAG_OBJECT << 62) | u64::from(object)
}
#[inline]
fn key_userset(object: u32, relation: u32) -> u64 {
    (TAG_USERSET << 62) | (u64::from(relation) << 32) | u64::from(object)
}
#[inline]
fn key_wildcard(type_id: u32) -> u64 {
    (TAG_WILDCARD << 62) | u64::from(type_id)
}
#[inline]
fn tag(key: u64) -> u64 {
    key >> 62
}
#[inline]
fn low(key: u64) -> u32 {
    key as u32
}
#[inline]
fn key_relation(key: u64) -> u32 {
    ((key >> 32) & 0x3fff_ffff) as u32
}
#[inline]
fn pair(object: u32, relation: u32) -> u64 {
    (u64::from(object) << 32) | u64::from(relation)
}
#[inline]
fn pair_parts(key: u64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}

#[derive(Debug, Default, Clone)]
struct Adj {
    /// Object users and condition slots, sorted by user.
    direct: SmallVec<[(u32, u32); 2]>,
    /// Userset and wildcard users and condition slots.
    sets: SmallVec<[(u64, u32); 1]>,
}

impl Adj {
    /// The condition slot of the tuple whose user is `user`, if there is one.
    fn slot(&self, user: u64) -> Option<u32> {
        if tag(user) == TAG_OBJECT {
            self.direct
                .binary_search_by_key(&low(user), |e| e.0)
                .ok()
                .map(|at| self.direct[at].1)
        } else {
            self.sets.iter().find(|e| e.0 == user).map(|e| e.1)
        }
    }
}

#[derive(Debug, Clone)]
struct StoredCondition {
    condition: u32,
    context: Option<Box<Map<String, Value>>>,
}

#[derive(Debug, Default, Clone)]
struct Index {
    forward: FxHashMap<u64, Adj>,
    reverse: FxHashMap<u64, SmallVec<[u64; 2]>>,
    /// Slot 0 is "no condition".
    conditions: Vec<Option<StoredCondition>>,
    free: Vec<u32>,
    len: usize,
}

impl Index {
    fn new() -> Self {
        Index {
            conditions: vec![None],
            ..Index::default()
        }
    }

    fn store_condition(&mut self, condition: Option<(u32, &TupleCondition)>) -> u32 {
        let Some((id, condition)) = condition else {
            return 0;
        };
        let stored = StoredCondition {
            condition: id,
            context: (!condition.context.is_empty()).then(|| Box::new(condition.context.clone())),
        };
        if let Some(slot) = self.free.pop() {
            self.conditions[slot as usize] = Some(stored);
            slot
        } else {
            self.conditions.push(Some(stored));
            (self.conditions.len() - 1) as u32
        }
    }

    fn release_condition(&mut self, slot: u32) {
        if slot != 0 {
            self.conditions[slot as usize] = None;
            self.free.push(slot);
        }
    }

    /// Inserts an edge; false if one with the same key exists.
    fn insert(
        &mut self,
        object: u32,
        relation: u32,
        user: u64,
        condition: Option<(u32, &TupleCondition)>,
    ) -> bool {
        let key = pair(object, relation);
        let adj = self.forward.entry(key).or_default();
        if tag(user) == TAG_OBJECT {
            let u = low(user);
            match adj.direct.binary_search_by_key(&u, |e| e.0) {
                Ok(_) => return false,
                Err(at) => {
                    let slot = self.store_condition(condition);
                    let adj = self.forward.entry(key).or_default();
                    adj.direct.insert(at, (u, slot));
                }
            }
        } else {
            if adj.sets.iter().any(|e| e.0 == user) {
                return false;
            }
            let slot = self.store_condition(condition);
            self.forward.entry(key).or_default().sets.push((user, slot));
        }
        self.reverse.entry(user).or_default().push(key);
        self.len += 1;
        true
    }

    fn contains(&self, object: u32, relation: u32, user: u64) -> bool {
        self.forward
            .get(&pair(object, relation))
            .is_some_and(|adj| adj.slot(user).is_some())
    }

    fn remove(&mut self, object: u32, relation: u32, user: u64) -> bool {
        let key = pair(object, relation);
        let Some(adj) = self.forward.get_mut(&key) else {
            return false;
        };
        let slot = if tag(user) == TAG_OBJECT {
            match adj.direct.binary_search_by_key(&low(user), |e| e.0) {
                Ok(at) => adj.direct.remove(at).1,
                Err(_) => return false,
            }
        } else {
            match adj.sets.iter().position(|e| e.0 == user) {
                Some(at) => adj.sets.swap_remove(at).1,
                None => return false,
            }
        };
        if adj.direct.is_empty() && adj.sets.is_empty() {
            self.forward.remove(&key);
        }
        self.release_condition(slot);
        if let Some(list) = self.reverse.get_mut(&user) {
            if let Some(at) = list.iter().position(|k| *k == key) {
                list.swap_remove(at);
            }
            if list.is_empty() {
                self.reverse.remove(&user);
            }
        }
        self.len -= 1;
        true
    }
}

#[derive(Debug, Default, Clone)]
struct Objects {
    /// Per type: id → object number.
    by_type: Vec<FxHashMap<Box<str>, u32>>,
    /// Object number → (type, id).
    names: Vec<(u32, Box<str>)>,
}

impl Objects {
    fn get(&self, type_id: u32, id: &str) -> Option<u32> {
        self.by_type.get(type_id as usize)?.get(id).copied()
    }

    fn intern(&mut self, type_id: u32, id: &str, base: u32) -> u32 {
        if let Some(found) = self.get(type_id, id) {
            return found;
        }
        if self.by_type.len() <= type_id as usize {
            self.by_type
                .resize_with(type_id as usize + 1, FxHashMap::default);
        }
        let number = base + self.names.len() as u32;
        self.names.push((type_id, id.into()));
        self.by_type[type_id as usize].insert(id.into(), number);
        number
    }
}

/// The relation index of one tenant.
#[derive(Debug, Clone)]
pub struct Graph {
    model: Arc<Model>,
    objects: Objects,
    index: Index,
    /// Writes refused because the index was full; when not zero the index is incomplete and
    /// answers no query.
    refused: usize,
    /// Most tuples this index holds ([`MAX_INDEX_TUPLES`] unless lowered).
    max_tuples: usize,
}

/// A tuple resolved to numbers.
struct Resolved {
    object: u32,
    relation: u32,
    user: u64,
    condition: Option<u32>,
}

impl Graph {
    /// An empty graph for `model`.
    pub fn new(model: Arc<Model>) -> Graph {
        Graph {
            model,
            objects: Objects::default(),
            index: Index::new(),
            refused: 0,
            max_tuples: MAX_INDEX_TUPLES,
        }
    }

    /// The same graph with a lower tuple limit (at most [`MAX_INDEX_TUPLES`]; objects are
    /// limited to twice as many). For tenants given less room than the default.
    pub fn with_max_tuples(mut self, max_tuples: usize) -> Graph {
        self.max_tuples = max_tuples.min(MAX_INDEX_TUPLES);
        self
    }

    /// The most tuples this index holds.
    pub fn max_tuples(&self) -> usize {
        self.max_tuples
    }

    /// A graph holding `tuples` (each validated; duplicates are ignored).
    pub fn build(
        model: Arc<Model>,
        tuples: impl IntoIterator<Item = Tuple>,
    ) -> Result<Graph, TupleError> {
        let mut graph = Graph::new(model);
        let tuples = tuples.into_iter();
        let (hint, _) = tuples.size_hint();
        graph.index.forward.reserve(hint / 2);
        for tuple in tuples {
            graph.write(tuple)?;
        }
        Ok(graph)
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Number of tuples.
    pub fn len(&self) -> usize {
        self.index.len
    }

    /// Whether the graph holds no tuples.
    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    fn resolve(objects: &mut Objects, model: &Model, tuple: &Tuple, base: u32) -> Resolved {
        // Only called after validation, so every name is known.
        let type_id = model.type_id(&tuple.object.object_type).unwrap_or(0);
        let object = objects.intern(type_id, &tuple.object.id, base);
        let relation = model.relation_id(&tuple.relation).unwrap_or(0);
        let user = match &tuple.user {
            User::Object(o) => {
                key_object(objects.intern(model.type_id(&o.object_type).unwrap_or(0), &o.id, base))
            }
            User::Userset {
                object: o,
                relation: r,
            } => key_userset(
                objects.intern(model.type_id(&o.object_type).unwrap_or(0), &o.id, base),
                model.relation_id(r).unwrap_or(0),
            ),
            User::Wildcard(t) => key_wildcard(model.type_id(t).unwrap_or(0)),
        };
        let condition = tuple
            .condition
            .as_ref()
            .and_then(|c| model.condition_id(&c.name));
        Resolved {
            object,
            relation,
            user,
            condition,
        }
    }

    /// Adds a tuple after validating it against the model. `Ok(true)` if it is new,
    /// `Ok(false)` if a tuple with the same object, relation and user exists (its condition is
    /// kept; delete it first to change the condition).
    ///
    /// A write beyond [`MAX_INDEX_TUPLES`] tuples or [`MAX_INDEX_OBJECTS`] interned objects is
    /// refused with an error and leaves the index incomplete ([`Graph::is_complete`]).
    pub fn write(&mut self, tuple: Tuple) -> Result<bool, TupleError> {
        self.model.validate_tuple(&tuple)?;
        // A write interns at most two objects.
        let max_objects = 2 * self.max_tuples;
        if self.index.len >= self.max_tuples || self.objects.names.len() + 2 > max_objects {
            if self.contains(&tuple) {
                return Ok(false);
            }
            self.refused += 1;
            return Err(TupleError {
                tuple: tuple.to_string(),
                message: format!(
                    "the relation index is full ({} tuples, {} objects; the limits are {} tuples and {max_objects} objects), so the tuple is refused and the index answers no query until it is rebuilt with fewer",
                    self.index.len,
                    self.objects.names.len(),
                    self.max_tuples
                ),
            });
        }
        let r = Self::resolve(&mut self.objects, &self.model, &tuple, 0);
        let condition = r.condition.zip(tuple.condition.as_ref());
        Ok(self.index.insert(r.object, r.relation, r.user, condition))
    }

    /// Removes the tuple with the same object, relation and user (any condition). True if
    /// one was removed.
    pub fn delete(&mut self, tuple: &Tuple) -> bool {
        let Some(object) = self.lookup_object(&tuple.object) else {
            return false;
        };
        let Some(relation) = self.model.relation_id(&tuple.relation) else {
            return false;
        };
        let Some(user) = self.lookup_user(&tuple.user) else {
            return false;
        };
        self.index.remove(object, relation, user)
    }

    /// Whether the index holds a tuple with the same object, relation and user.
    fn contains(&self, tuple: &Tuple) -> bool {
        let (Some(object), Some(relation), Some(user)) = (
            self.lookup_object(&tuple.object),
            self.model.relation_id(&tuple.relation),
            self.lookup_user(&tuple.user),
        ) else {
            return false;
        };
        self.index.contains(object, relation, user)
    }

    /// Whether every write was accepted; an incomplete index answers every query with
    /// [`QueryError::IndexIncomplete`].
    pub fn is_complete(&self) -> bool {
        self.refused == 0
    }

    fn lookup_object(&self, object: &ObjectRef) -> Option<u32> {
        self.objects
            .get(self.model.type_id(&object.object_type)?, &object.id)
    }

    fn lookup_user(&self, user: &User) -> Option<u64> {
        Some(match user {
            User::Object(o) => key_object(self.lookup_object(o)?),
            User::Userset { object, relation } => key_userset(
                self.lookup_object(object)?,
                self.model.relation_id(relation)?,
            ),
            User::Wildcard(t) => key_wildcard(self.model.type_id(t)?),
        })
    }

    /// Every tuple, in no particular order.
    pub fn tuples(&self) -> impl Iterator<Item = Tuple> + '_ {
        self.index.forward.iter().flat_map(move |(key, adj)| {
            let (object, relation) = pair_parts(*key);
            adj.direct
                .iter()
                .map(|(u, c)| (key_object(*u), *c))
                .chain(adj.sets.iter().copied())
                .map(move |(user, condition)| self.tuple_of(object, relation, user, condition))
        })
    }

    /// Tuples matching `filter` (an object filter with type and id is a direct lookup).
    pub fn read(&self, filter: &TupleFilter) -> Vec<Tuple> {
        let matches = |t: &Tuple| {
            filter
                .object_type
                .as_ref()
                .is_none_or(|x| *x == t.object.object_type)
                && filter.object_id.as_ref().is_none_or(|x| *x == t.object.id)
                && filter.relation.as_ref().is_none_or(|x| *x == t.relation)
                && filter.user.as_ref().is_none_or(|x| *x == t.user)
        };
        if let (Some(object_type), Some(object_id)) = (&filter.object_type, &filter.object_id) {
            let Some(object) =
                self.lookup_object(&ObjectRef::new(object_type.clone(), object_id.clone()))
            else {
                return Vec::new();
            };
            let mut out = Vec::new();
            let object_type = self.objects.names[object as usize].0;
            let mut relations: Vec<u32> = self.model.relations_of(object_type).collect();
            relations.sort_unstable();
            for relation in relations {
                if let Some(adj) = self.index.forward.get(&pair(object, relation)) {
                    for (user, condition) in adj
                        .direct
                        .iter()
                        .map(|(u, c)| (key_object(*u), *c))
                        .chain(adj.sets.iter().copied())
                    {
                        let tuple = self.tuple_of(object, relation, user, condition);
                        if matches(&tuple) {
                            out.push(tuple);
                        }
                    }
                }
            }
            return out;
        }
        self.tuples().filter(|t| matches(t)).collect()
    }

    fn object_ref(&self, object: u32) -> ObjectRef {
        let (t, id) = &self.objects.names[object as usize];
        ObjectRef::new(self.model.type_names[*t as usize].clone(), id.to_string())
    }

    fn tuple_of(&self, object: u32, relation: u32, user: u64, condition: u32) -> Tuple {
        let user = match tag(user) {
            TAG_OBJECT => User::Object(self.object_ref(low(user))),
            TAG_USERSET => User::Userset {
                object: self.object_ref(low(user)),
                relation: self.model.relation_names[key_relation(user) as usize].clone(),
            },
            _ => User::Wildcard(self.model.type_names[low(user) as usize].clone()),
        };
        let condition = self
            .index
            .conditions
            .get(condition as usize)
            .and_then(Option::as_ref)
            .map(|c| TupleCondition {
                name: self.model.conditions[c.condition as usize].name.clone(),
                context: c.context.as_deref().cloned().unwrap_or_default(),
            });
        Tuple {
            object: self.object_ref(object),
            relation: self.model.relation_names[relation as usize].clone(),
            user,
            condition,
        }
    }

    /// A query view: the graph plus contextual tuples and any objects only the query names.
    fn view<'g>(&'g self, contextual: &[Tuple]) -> Result<View<'g>, QueryError> {
        if self.refused > 0 {
            return Err(QueryError::IndexIncomplete(self.refused));
        }
        if contextual.len() > MAX_CONTEXTUAL_TUPLES {
            return Err(QueryError::TooManyContextualTuples(contextual.len()));
        }
        let mut view = View {
            graph: self,
            overlay: None,
        };
        for tuple in contextual {
            self.model
                .validate_tuple(tuple)
                .map_err(QueryError::InvalidContextualTuple)?;
            let base = self.objects.names.len() as u32;
            let overlay = view.overlay.get_or_insert_with(|| {
                Box::new(Overlay {
                    objects: Objects::default(),
                    index: Index::new(),
                })
            });
            let r = Self::resolve_with(
                &self.objects,
                &mut overlay.objects,
                &self.model,
                tuple,
                base,
            );
            let condition = r.condition.zip(tuple.condition.as_ref());
            overlay
                .index
                .insert(r.object, r.relation, r.user, condition);
        }
        Ok(view)
    }

    fn resolve_with(
        base_objects: &Objects,
        extra: &mut Objects,
        model: &Model,
        tuple: &Tuple,
        base: u32,
    ) -> Resolved {
        let mut intern = |t: &str, id: &str| {
            let type_id = model.type_id(t).unwrap_or(0);
            base_objects
                .get(type_id, id)
                .unwrap_or_else(|| extra.intern(type_id, id, base))
        };
        let object = intern(&tuple.object.object_type, &tuple.object.id);
        let user = match &tuple.user {
            User::Object(o) => key_object(intern(&o.object_type, &o.id)),
            User::Userset {
                object: o,
                relation: r,
            } => key_userset(
                intern(&o.object_type, &o.id),
                model.relation_id(r).unwrap_or(0),
            ),
            User::Wildcard(t) => key_wildcard(model.type_id(t).unwrap_or(0)),
        };
        Resolved {
            object,
            relation: model.relation_id(&tuple.relation).unwrap_or(0),
            user,
            condition: tuple
                .condition
                .as_ref()
                .and_then(|c| model.condition_id(&c.name)),
        }
    }

    fn check_type_relation(
        &self,
        object_type: &str,
        relation: &str,
    ) -> Result<(u32, u32), QueryError> {
        let t = self
            .model
            .type_id(object_type)
            .ok_or_else(|| QueryError::UnknownType(object_type.to_owned()))?;
        let r = self
            .model
            .relation_id(relation)
            .filter(|&r| self.model.relation(t, r).is_some())
            .ok_or_else(|| QueryError::UnknownRelation {
                object_type: object_type.to_owned(),
                relation: relation.to_owned(),
            })?;
        Ok((t, r))
    }

    fn user_key(&self, view: &mut View<'_>, user: &User) -> Result<u64, QueryError> {
        Ok(match user {
            User::Object(o) => {
                let t = self
                    .model
                    .type_id(&o.object_type)
                    .ok_or_else(|| QueryError::UnknownType(o.object_type.clone()))?;
                key_object(view.intern(t, &o.id))
            }
            User::Userset { object, relation } => {
                let (t, r) = self.check_type_relation(&object.object_type, relation)?;
                key_userset(view.intern(t, &object.id), r)
            }
            User::Wildcard(t) => key_wildcard(
                self.model
                    .type_id(t)
                    .ok_or_else(|| QueryError::UnknownType(t.clone()))?,
            ),
        })
    }

    /// Whether `request.user` has `request.relation` on `request.object`. Bounded by
    /// [`MAX_RESOLVE_DEPTH`] and [`MAX_QUERY_STEPS`].
    pub fn check(&self, request: &CheckRequest) -> Result<CheckResult, QueryError> {
        let (t, r) = self.check_type_relation(&request.object.object_type, &request.relation)?;
        let mut view = self.view(&request.contextual_tuples)?;
        let user = self.user_key(&mut view, &request.user)?;
        let object = view.intern(t, &request.object.id);
        let budget = Budget::new();
        let reach = Reach::new(&view, user, &budget)?;
        let mut eval = Eval::new(&view, &request.context, user, &budget, &reach);
        let allowed = eval.decide(object, t, r)? == Truth::Yes;
        let path = if allowed {
            eval.render_path()
        } else {
            Vec::new()
        };
        Ok(CheckResult { allowed, path })
    }

    /// Several checks; each answered independently. More than [`MAX_BATCH_CHECK_ITEMS`]
    /// requests yield [`QueryError::TooManyChecks`] for every item.
    pub fn batch_check(&self, requests: &[CheckRequest]) -> Vec<Result<CheckResult, QueryError>> {
        if requests.len() > MAX_BATCH_CHECK_ITEMS {
            return requests
                .iter()
                .map(|_| Err(QueryError::TooManyChecks(requests.len())))
                .collect();
        }
        requests.iter().map(|request| self.check(request)).collect()
    }

    /// Every object of `object_type` on which `user` has `relation`, sorted. Complete (no
    /// truncation). Found by expanding from the user over the reverse index, breadth first,
    /// so that each `object#relation` is reached first by its shortest derivation; relations
    /// with `and` or `but not` are confirmed with a check per candidate.
    ///
    /// Bounds: as for [`Graph::check`], one derivation may nest at most [`MAX_RESOLVE_DEPTH`]
    /// relations: when a relevant `object#relation` can only be derived deeper, the answer is
    /// [`QueryError::DepthExceeded`] (never a list that `check` would contradict). The whole
    /// query, confirmations included, shares one budget of [`MAX_QUERY_STEPS`].
    pub fn list_objects(
        &self,
        user: &User,
        relation: &str,
        object_type: &str,
        context: &Map<String, Value>,
        contextual_tuples: &[Tuple],
    ) -> Result<Vec<ObjectRef>, QueryError> {
        let (target_type, target_relation) = self.check_type_relation(object_type, relation)?;
        let mut view = self.view(contextual_tuples)?;
        let user_key = self.user_key(&mut view, user)?;
        let model = &*self.model;
        let budget = Budget::new();
        // Relations that can feed the target.
        let mut relevant: FxHashSet<(u32, u32)> = FxHashSet::default();
        let mut stack = vec![(target_type, target_relation)];
        while let Some(node) = stack.pop() {
            if relevant.insert(node)
                && let Some(inputs) = model.inputs.get(&node)
            {
                budget.spend(inputs.len() as u64)?;
                stack.extend(inputs.iter().copied());
            }
        }
        // Under `but not`, a cycle can make a check deny what a derivation from the user
        // reaches (a cycle closed on the check's path is undetermined, not a member), so
        // then every object found is confirmed by a check as well.
        let negation = relevant
            .iter()
            .any(|&(t, r)| model.relation(t, r).is_some_and(|d| d.excludes));
        let reach = Reach::new(&view, user_key, &budget)?;
        let mut eval = Eval::new(&view, context, user_key, &budget, &reach);
        // A condition that cannot be evaluated fails the query only on the part of the model
        // OpenFGA's list objects expands; elsewhere the edge is a dead end.
        budget.spend(model.inputs.len() as u64)?;
        let followed = pruned::followed_leaves(model, (target_type, target_relation));
        // Candidates are found through the pruned part only: every object a relation grants
        // is found through the first operand of its `and` and the base of its `but not`
        // too, and is then confirmed by check.
        let pruned_nodes: FxHashSet<(u32, u32)> = followed.iter().map(|(node, _)| *node).collect();
        relevant.retain(|node| pruned_nodes.contains(node));
        // OpenFGA reads the edges of the pruned part that lead up from the user without
        // checking the relations on the way; an edge there whose condition cannot be evaluated
        // fails the query. Every other edge whose condition fails is a dead end below.
        if !model.conditions.is_empty() {
            pruned_errors(&view, &mut eval, user_key, &followed, &budget)?;
        }
        let holds = |eval: &mut Eval<'_, '_>,
                     p: u64,
                     user: u64,
                     _leaf: ((u32, u32), Leaf)|
         -> Result<bool, QueryError> {
            Ok(eval.edge_holds(p, user).unwrap_or(false))
        };
        let mut facts: FxHashSet<u64> = FxHashSet::default();
        // Facts in the order found, with the number of relations nested between each and the
        // user (its height); breadth first, so heights never decrease along the queue.
        let mut work: std::collections::VecDeque<(u64, u32)> = std::collections::VecDeque::new();
        let mut found: Vec<u32> = Vec::new();
        // Seeds: tuples naming the user directly, wildcard tuples of its type, and (for a
        // userset user) the userset itself.
        let mut seeds: Vec<(u64, u64)> = Vec::new(); // (pair, user key of the edge)
        match tag(user_key) {
            TAG_OBJECT => {
                let user_type = view.object_type(low(user_key));
                for key in [user_key, key_wildcard(user_type)] {
                    view.for_reverse(key, |p| seeds.push((p, key)));
                }
            }
            TAG_USERSET => {
                let (o, r) = (low(user_key), key_relation(user_key));
                seeds.push((pair(o, r), u64::MAX));
                view.for_reverse(user_key, |p| seeds.push((p, user_key)));
            }
            _ => view.for_reverse(user_key, |p| seeds.push((p, user_key))),
        }
        budget.spend(seeds.len() as u64)?;
        let mut candidates: Vec<u64> = Vec::new();
        for (p, edge_user) in seeds {
            let (o, r) = pair_parts(p);
            if !relevant.contains(&(view.object_type(o), r)) {
                continue;
            }
            if edge_user != u64::MAX
                && !holds(
                    &mut eval,
                    p,
                    edge_user,
                    ((view.object_type(o), r), Leaf::This),
                )?
            {
                continue;
            }
            candidates.push(p);
        }
        let mut height = 0u32;
        let mut next: Vec<u64> = Vec::new();
        loop {
            budget.spend(candidates.len() as u64)?;
            for p in candidates.drain(..) {
                if facts.contains(&p) {
                    continue;
                }
                let (o, r) = pair_parts(p);
                let t = view.object_type(o);
                let Some(def) = model.relation(t, r) else {
                    continue;
                };
                let is_target = t == target_type && r == target_relation;
                if !(tag(user_key) == TAG_USERSET
                    && p == pair(low(user_key), key_relation(user_key)))
                    && (!def.monotone || is_target && negation)
                {
                    let mut confirm = Eval::new(&view, context, user_key, &budget, &reach);
                    match confirm.check(o, t, r, How::Start, 0) {
                        Ok(Truth::Yes) => {}
                        Ok(_) => continue,
                        // OpenFGA checks only the objects of the requested type; a relation
                        // on the way whose conditions cannot be evaluated is a dead end here.
                        Err(
                            QueryError::MissingParameter { .. }
                            | QueryError::BadParameter { .. }
                            | QueryError::ConditionFailed { .. },
                        ) if !is_target => continue,
                        Err(e) => return Err(e),
                    }
                }
                if height >= MAX_RESOLVE_DEPTH {
                    // Derivable, but only through more nested relations than a check resolves.
                    return Err(QueryError::DepthExceeded);
                }
                facts.insert(p);
                work.push_back((p, height));
                if t == target_type && r == target_relation {
                    found.push(o);
                }
            }
            let Some((p, fact_height)) = work.pop_front() else {
                break;
            };
            height = fact_height + 1;
            let (o, r) = pair_parts(p);
            let t = view.object_type(o);
            // Userset tuples naming `o#r`.
            let userset = key_userset(o, r);
            view.for_reverse(userset, |q| next.push(q));
            budget.spend(next.len() as u64)?;
            for q in next.drain(..) {
                let (qo, qr) = pair_parts(q);
                let qt = view.object_type(qo);
                if relevant.contains(&(qt, qr))
                    && holds(&mut eval, q, userset, ((qt, qr), Leaf::This))?
                {
                    candidates.push(q);
                }
            }
            if let Some(dependents) = model.dependents.get(&(t, r)) {
                budget.spend(dependents.len() as u64)?;
                for dependent in dependents {
                    match *dependent {
                        Dependent::Computed(r2) => {
                            if relevant.contains(&(t, r2)) {
                                candidates.push(pair(o, r2));
                            }
                        }
                        Dependent::Ttu {
                            type_id,
                            relation,
                            tupleset,
                        } => {
                            if !relevant.contains(&(type_id, relation)) {
                                continue;
                            }
                            view.for_reverse(key_object(o), |q| next.push(q));
                            budget.spend(next.len() as u64)?;
                            for q in next.drain(..) {
                                let (qo, qr) = pair_parts(q);
                                let leaf = Leaf::Ttu {
                                    tupleset,
                                    computed: r,
                                };
                                if qr == tupleset
                                    && view.object_type(qo) == type_id
                                    && holds(
                                        &mut eval,
                                        q,
                                        key_object(o),
                                        ((type_id, relation), leaf),
                                    )?
                                {
                                    candidates.push(pair(qo, relation));
                                }
                            }
                        }
                    }
                }
            }
        }
        if negation {
            // Each object found is answered as `check` answers it, with OpenFGA's races
            // between a cycle and a "no" (found objects were derived order-independently).
            let mut kept = Vec::with_capacity(found.len());
            for o in found {
                let mut decide = Eval::new(&view, context, user_key, &budget, &reach);
                if decide.decide(o, target_type, target_relation)? == Truth::Yes {
                    kept.push(o);
                }
            }
            found = kept;
        }
        let mut out: Vec<ObjectRef> = found.into_iter().map(|o| view.object_ref(o)).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The users that have `relation` on `object` and match one of `filters`: objects and
    /// wildcards (`user:*`) of the type for a `type` filter; for a `type#relation` filter the
    /// usersets with that relation, and the objects and wildcards of that type too (as OpenFGA
    /// lists them). Sorted. Answered by OpenFGA's list-users expansion (see the `list_users`
    /// module), which is not a check per user: under `but not` with cycles or wildcards its
    /// list can differ from what `check` answers for each user, as OpenFGA's does. Several
    /// filters are answered one after the other and their lists merged. The whole query
    /// shares one budget of [`MAX_QUERY_STEPS`]; one expansion nests at most
    /// [`MAX_RESOLVE_DEPTH`] relations.
    pub fn list_users(
        &self,
        object: &ObjectRef,
        relation: &str,
        filters: &[UserFilter],
        context: &Map<String, Value>,
        contextual_tuples: &[Tuple],
    ) -> Result<Vec<User>, QueryError> {
        let (t, r) = self.check_type_relation(&object.object_type, relation)?;
        let mut view = self.view(contextual_tuples)?;
        let start = view.intern(t, &object.id);
        let model = &*self.model;
        let budget = Budget::new();
        let mut wanted_types: Vec<(u32, Option<u32>)> = Vec::new();
        for filter in filters {
            let ft = model
                .type_id(&filter.user_type)
                .ok_or_else(|| QueryError::UnknownType(filter.user_type.clone()))?;
            let fr = match &filter.relation {
                Some(fr) => Some(self.check_type_relation(&filter.user_type, fr)?.1),
                None => None,
            };
            if !wanted_types.contains(&(ft, fr)) {
                wanted_types.push((ft, fr));
            }
        }
        let reach = Reach::everything();
        let conditions = Eval::new(&view, context, key_object(start), &budget, &reach);
        let mut keys: Vec<u64> = Vec::new();
        for (ft, fr) in wanted_types {
            let mut run = list_users::ListUsers::new(&view, &conditions, &budget, ft, fr);
            keys.extend(run.run(start, t, r)?);
        }
        let mut out: Vec<User> = keys.into_iter().map(|key| view.user_of(key)).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The userset tree of `object#relation`, one level deep, in OpenFGA's Expand response
    /// shape: `{"tree": {"root": node}}` where a node is `{"name", "leaf": {"users": {"users":
    /// [...]}} | {"computed": {"userset"}} | {"tupleToUserset": {"tupleset", "computed":
    /// [{"userset"}]}}}` or `{"name", "union" | "intersection": {"nodes": [...]}}` or
    /// `{"name", "difference": {"base", "subtract"}}`. Bounded by [`MAX_QUERY_STEPS`] (one per
    /// rewrite term and per user or userset listed).
    pub fn expand(
        &self,
        object: &ObjectRef,
        relation: &str,
        contextual_tuples: &[Tuple],
    ) -> Result<Value, QueryError> {
        let (t, r) = self.check_type_relation(&object.object_type, relation)?;
        let mut view = self.view(contextual_tuples)?;
        let o = view.intern(t, &object.id);
        let Some(def) = self.model.relation(t, r) else {
            return Err(QueryError::UnknownRelation {
                object_type: object.object_type.clone(),
                relation: relation.to_owned(),
            });
        };
        let name = format!("{object}#{relation}");
        let budget = Budget::new();
        let root = self.expand_node(&view, o, r, &name, &def.rewrite, &budget)?;
        Ok(json!({"tree": {"root": root}}))
    }

    fn expand_node(
        &self,
        view: &View<'_>,
        o: u32,
        r: u32,
        name: &str,
        rewrite: &CRewrite,
        budget: &Budget,
    ) -> Result<Value, QueryError> {
        budget.spend(1)?;
        let object = view.object_ref(o);
        let nodes = |children: &[CRewrite]| -> Result<Vec<Value>, QueryError> {
            children
                .iter()
                .map(|c| self.expand_node(view, o, r, name, c, budget))
                .collect()
        };
        Ok(match rewrite {
            CRewrite::Leaf(Leaf::This) => {
                let mut keys: Vec<u64> = Vec::new();
                view.for_forward(pair(o, r), |user, _| keys.push(user));
                budget.spend(keys.len() as u64)?;
                let mut users: Vec<String> = keys
                    .into_iter()
                    .map(|user| view.user_of(user).to_string())
                    .collect();
                users.sort();
                json!({"name": name, "leaf": {"users": {"users": users}}})
            }
            CRewrite::Leaf(Leaf::Computed(r2)) => {
                json!({"name": name, "leaf": {"computed": {"userset": format!("{object}#{}", self.model.relation_names[*r2 as usize])}}})
            }
            CRewrite::Leaf(Leaf::Ttu { tupleset, computed }) => {
                // Objects of a type without the computed relation contribute nothing.
                let mut parents: Vec<u32> = Vec::new();
                view.for_forward(pair(o, *tupleset), |user, _| {
                    if tag(user) == TAG_OBJECT
                        && self
                            .model
                            .relation(view.object_type(low(user)), *computed)
                            .is_some()
                    {
                        parents.push(low(user));
                    }
                });
                budget.spend(parents.len() as u64)?;
                let mut computed_sets: Vec<String> = parents
                    .into_iter()
                    .map(|parent| {
                        format!(
                            "{}#{}",
                            view.object_ref(parent),
                            self.model.relation_names[*computed as usize]
                        )
                    })
                    .collect();
                computed_sets.sort();
                let computed: Vec<Value> = computed_sets
                    .into_iter()
                    .map(|u| json!({"userset": u}))
                    .collect();
                json!({"name": name, "leaf": {"tupleToUserset": {
                    "tupleset": format!("{object}#{}", self.model.relation_names[*tupleset as usize]),
                    "computed": computed,
                }}})
            }
            CRewrite::Union(children) => {
                json!({"name": name, "union": {"nodes": nodes(children)?}})
            }
            CRewrite::Intersection(children) => {
                json!({"name": name, "intersection": {"nodes": nodes(children)?}})
            }
            CRewrite::Difference(both) => json!({"name": name, "difference": {
                "base": self.expand_node(view, o, r, name, &both.0, budget)?,
                "subtract": self.expand_node(view, o, r, name, &both.1, budget)?,
            }}),
        })
    }

    /// Heap-independent size figures: (objects interned, forward keys, reverse keys).
    pub fn stats(&self) -> (usize, usize, usize) {
        (
            self.objects.names.len(),
            self.index.forward.len(),
            self.index.reverse.len(),
        )
    }
}

#[derive(Debug)]
struct Overlay {
    objects: Objects,
    index: Index,
}

struct View<'g> {
    graph: &'g Graph,
    overlay: Option<Box<Overlay>>,
}

impl View<'_> {
    fn intern(&mut self, type_id: u32, id: &str) -> u32 {
        if let Some(found) = self.graph.objects.get(type_id, id) {
            return found;
        }
        let base = self.graph.objects.names.len() as u32;
        let overlay = self.overlay.get_or_insert_with(|| {
            Box::new(Overlay {
                objects: Objects::default(),
                index: Index::new(),
            })
        });
        overlay.objects.intern(type_id, id, base)
    }

    fn name(&self, object: u32) -> (u32, &str) {
        let base = self.graph.objects.names.len();
        let entry = if (object as usize) < base {
            self.graph.objects.names.get(object as usize)
        } else {
            self.overlay
                .as_ref()
                .and_then(|o| o.objects.names.get(object as usize - base))
        };
        entry.map_or((0, ""), |(t, id)| (*t, id))
    }

    #[inline]
    fn object_type(&self, object: u32) -> u32 {
        let names = &self.graph.objects.names;
        match names.get(object as usize) {
            Some((t, _)) => *t,
            None => self.name(object).0,
        }
    }

    fn object_ref(&self, object: u32) -> ObjectRef {
        let (t, id) = self.name(object);
        ObjectRef::new(self.graph.model.type_names[t as usize].clone(), id)
    }

    fn user_of(&self, key: u64) -> User {
        let model = &self.graph.model;
        match tag(key) {
            TAG_OBJECT => User::Object(self.object_ref(low(key))),
            TAG_USERSET => User::Userset {
                object: self.object_ref(low(key)),
                relation: model.relation_names[key_relation(key) as usize].clone(),
            },
            _ => User::Wildcard(model.type_names[low(key) as usize].clone()),
        }
    }

    #[inline]
    fn indexes(&self) -> impl Iterator<Item = &Index> {
        std::iter::once(&self.graph.index).chain(self.overlay.as_ref().map(|o| &o.index))
    }

    fn for_reverse(&self, user: u64, mut f: impl FnMut(u64)) {
        for index in self.indexes() {
            if let Some(list) = index.reverse.get(&user) {
                for p in list {
                    f(*p);
                }
            }
        }
    }

    fn for_forward(&self, p: u64, mut f: impl FnMut(u64, u32)) {
        for index in self.indexes() {
            if let Some(adj) = index.forward.get(&p) {
                for (u, c) in &adj.direct {
                    f(key_object(*u), *c);
                }
                for (u, c) in &adj.sets {
                    f(*u, *c);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum How {
    Start,
    Computed,
    From(u32),
    Userset,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Node {
        object: u32,
        relation: u32,
        how: How,
        condition: Option<u32>,
    },
    User {
        key: u64,
        condition: Option<u32>,
    },
}

/// Walks up from the user over the part of the model OpenFGA's list objects expands (the
/// leaves in `followed`), as OpenFGA does: every edge whose condition holds is followed, with
/// no check of the relations reached, and the first edge whose condition cannot be evaluated
/// is the query's error.
fn pruned_errors(
    view: &View<'_>,
    eval: &mut Eval<'_, '_>,
    user_key: u64,
    followed: &FxHashSet<((u32, u32), Leaf)>,
    budget: &Budget,
) -> Result<(), QueryError> {
    let model = &*view.graph.model;
    let mut seen: FxHashSet<u64> = FxHashSet::default();
    let mut work: Vec<u64> = Vec::new();
    let mut next: Vec<u64> = Vec::new();
    let edge = |eval: &mut Eval<'_, '_>,
                p: u64,
                user: u64,
                leaf: ((u32, u32), Leaf),
                work: &mut Vec<u64>|
     -> Result<(), QueryError> {
        if followed.contains(&leaf) && eval.edge_holds(p, user)? {
            work.push(p);
        }
        Ok(())
    };
    match tag(user_key) {
        TAG_OBJECT => {
            let user_type = view.object_type(low(user_key));
            for key in [user_key, key_wildcard(user_type)] {
                view.for_reverse(key, |p| next.push(p));
                budget.spend(next.len() as u64)?;
                for p in next.drain(..) {
                    let (o, r) = pair_parts(p);
                    edge(
                        eval,
                        p,
                        key,
                        ((view.object_type(o), r), Leaf::This),
                        &mut work,
                    )?;
                }
            }
        }
        TAG_USERSET => {
            work.push(pair(low(user_key), key_relation(user_key)));
            view.for_reverse(user_key, |p| next.push(p));
            budget.spend(next.len() as u64)?;
            for p in next.drain(..) {
                let (o, r) = pair_parts(p);
                edge(
                    eval,
                    p,
                    user_key,
                    ((view.object_type(o), r), Leaf::This),
                    &mut work,
                )?;
            }
        }
        _ => {
            view.for_reverse(user_key, |p| next.push(p));
            budget.spend(next.len() as u64)?;
            for p in next.drain(..) {
                let (o, r) = pair_parts(p);
                edge(
                    eval,
                    p,
                    user_key,
                    ((view.object_type(o), r), Leaf::This),
                    &mut work,
                )?;
            }
        }
    }
    while let Some(p) = work.pop() {
        if !seen.insert(p) {
            continue;
        }
        budget.spend(1)?;
        let (o, r) = pair_parts(p);
        let t = view.object_type(o);
        let userset = key_userset(o, r);
        view.for_reverse(userset, |q| next.push(q));
        budget.spend(next.len() as u64)?;
        for q in next.drain(..) {
            let (qo, qr) = pair_parts(q);
            edge(
                eval,
                q,
                userset,
                ((view.object_type(qo), qr), Leaf::This),
                &mut work,
            )?;
        }
        let Some(dependents) = model.dependents.get(&(t, r)) else {
            continue;
        };
        budget.spend(dependents.len() as u64)?;
        for dependent in dependents {
            match *dependent {
                Dependent::Computed(r2) => {
                    if followed.contains(&((t, r2), Leaf::Computed(r))) {
                        work.push(pair(o, r2));
                    }
                }
                Dependent::Ttu {
                    type_id,
                    relation,
                    tupleset,
                } => {
                    let leaf = Leaf::Ttu {
                        tupleset,
                        computed: r,
                    };
                    if !followed.contains(&((type_id, relation), leaf)) {
                        continue;
                    }
                    view.for_reverse(key_object(o), |q| next.push(q));
                    budget.spend(next.len() as u64)?;
                    for q in next.drain(..) {
                        let (qo, qr) = pair_parts(q);
                        if qr == tupleset
                            && view.object_type(qo) == type_id
                            && followed.contains(&((type_id, relation), leaf))
                            && eval.edge_holds(q, key_object(o))?
                        {
                            work.push(pair(qo, relation));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Steps (relations resolved, rewrite terms evaluated) one check may spend settling a race
/// between a cycle and a "no" ([`Eval::timed`]); beyond them the order-independent answer
/// stands.
const MAX_TIMED_STEPS: u32 = 5_000;

/// A union of timed outcomes: yes at its first yes; otherwise, once every operand answered
/// (at `empty` when there is none), an error if any failed, else a cycle if any met one, else
/// no.
fn union_timed(
    outcomes: Vec<(Result<Truth, QueryError>, u32)>,
    empty: u32,
) -> (Result<Truth, QueryError>, u32) {
    if let Some(time) = outcomes
        .iter()
        .filter(|(t, _)| matches!(t, Ok(Truth::Yes)))
        .map(|(_, time)| *time)
        .min()
    {
        return (Ok(Truth::Yes), time);
    }
    let time = outcomes.iter().map(|(_, t)| *t).max().unwrap_or(empty);
    let mut any = AnyOf::default();
    for (truth, _) in outcomes {
        any.add(truth);
    }
    (any.finish(), time)
}

/// What is left of one query's step budget ([`MAX_QUERY_STEPS`]).
struct Budget(Cell<u64>);

impl Budget {
    fn new() -> Self {
        Budget(Cell::new(MAX_QUERY_STEPS))
    }

    #[inline]
    fn spend(&self, steps: u64) -> Result<(), QueryError> {
        match self.0.get().checked_sub(steps) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => {
                self.0.set(0);
                Err(QueryError::TooComplex)
            }
        }
    }
}

/// The answer of one resolution step. `Cycle`: the step reached an `object#relation` that is
/// already being resolved on the same path, and its answer depends on that; it grants nothing,
/// and it is not a plain `No` under `but not` (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Yes,
    No,
    Cycle,
}

/// The union of outcomes: Yes if any is; otherwise an error if any; otherwise a cycle if any
/// met one; otherwise No.
#[derive(Default)]
struct AnyOf {
    error: Option<QueryError>,
    cycle: bool,
}

impl AnyOf {
    /// Adds one outcome; true when it grants (the union is then Yes).
    fn add(&mut self, outcome: Result<Truth, QueryError>) -> bool {
        match outcome {
            Ok(Truth::Yes) => return true,
            Ok(Truth::No) => {}
            Ok(Truth::Cycle) => self.cycle = true,
            Err(e) => self.error = Some(e),
        }
        false
    }

    fn finish(self) -> Result<Truth, QueryError> {
        match self.error {
            Some(e) => Err(e),
            None if self.cycle => Ok(Truth::Cycle),
            None => Ok(Truth::No),
        }
    }
}

/// The relations from which the model has a path to a user (OpenFGA's `PathExists`): for an
/// object or wildcard user, to its type or its type's wildcard; for a userset user, to its
/// relation. Every operand counts, the subtracted side of `but not` included. A check of a
/// relation outside this set is no without reading tuples, so a condition on the way cannot
/// fail it.
struct Reach {
    /// `None`: every relation (for queries that do not test paths).
    relations: Option<FxHashSet<(u32, u32)>>,
}

impl Reach {
    fn everything() -> Reach {
        Reach { relations: None }
    }

    fn new(view: &View<'_>, user: u64, budget: &Budget) -> Result<Reach, QueryError> {
        let model = &*view.graph.model;
        // What a relation's direct types and rewrite point at.
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        enum Node {
            Type(u32),
            Wildcard(u32),
            Relation(u32, u32),
        }
        let mut pointed_by: FxHashMap<Node, Vec<(u32, u32)>> = FxHashMap::default();
        let mut edges = 0u64;
        for type_id in 0..model.type_names.len() as u32 {
            for relation in model.relations_of(type_id) {
                let Some(def) = model.relation(type_id, relation) else {
                    continue;
                };
                let mut add = |node: Node| {
                    pointed_by
                        .entry(node)
                        .or_default()
                        .push((type_id, relation));
                };
                for leaf in def.leaves.iter() {
                    match *leaf {
                        Leaf::This => {
                            for d in &def.direct {
                                add(match d.kind {
                                    DirectKind::Plain => Node::Type(d.type_id),
                                    DirectKind::Wildcard => Node::Wildcard(d.type_id),
                                    DirectKind::Userset(r) => Node::Relation(d.type_id, r),
                                });
                                edges += 1;
                            }
                        }
                        Leaf::Computed(r2) => {
                            add(Node::Relation(type_id, r2));
                            edges += 1;
                        }
                        Leaf::Ttu { tupleset, computed } => {
                            let Some(ts) = model.relation(type_id, tupleset) else {
                                continue;
                            };
                            for d in &ts.direct {
                                if model.relation(d.type_id, computed).is_some() {
                                    add(Node::Relation(d.type_id, computed));
                                    edges += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        budget.spend(edges)?;
        let mut relations = FxHashSet::default();
        let mut stack: Vec<Node> = match tag(user) {
            TAG_USERSET => {
                let node = (view.object_type(low(user)), key_relation(user));
                relations.insert(node);
                vec![Node::Relation(node.0, node.1)]
            }
            TAG_WILDCARD => vec![Node::Type(low(user)), Node::Wildcard(low(user))],
            _ => {
                let t = view.object_type(low(user));
                vec![Node::Type(t), Node::Wildcard(t)]
            }
        };
        while let Some(node) = stack.pop() {
            let Some(from) = pointed_by.get(&node) else {
                continue;
            };
            for &(t, r) in from {
                if relations.insert((t, r)) {
                    stack.push(Node::Relation(t, r));
                }
            }
        }
        Ok(Reach {
            relations: Some(relations),
        })
    }

    fn contains(&self, object_type: u32, relation: u32) -> bool {
        self.relations
            .as_ref()
            .is_none_or(|set| set.contains(&(object_type, relation)))
    }
}

/// The condition errors of one read of tuples (a tupleset, the wildcard tuples or the userset
/// tuples of a relation), which OpenFGA reports only when no tuple of the read passed its
/// condition.
#[derive(Default)]
struct Skipped {
    passed: bool,
    error: Option<QueryError>,
}

impl Skipped {
    /// Records one tuple's condition; true when the tuple is to be followed.
    fn follow(&mut self, holds: Result<bool, QueryError>) -> bool {
        match holds {
            Ok(true) => {
                self.passed = true;
                true
            }
            Ok(false) => false,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// Adds the read's error to `any` when no tuple passed.
    fn finish(self, any: &mut AnyOf) {
        if !self.passed
            && let Some(e) = self.error
        {
            any.error = Some(e);
        }
    }
}

struct Eval<'v, 'g> {
    view: &'v View<'g>,
    context: &'v Map<String, Value>,
    budget: &'v Budget,
    /// The relations the user's type can reach in the model at all.
    reach: &'v Reach,
    user: u64,
    user_type: u32,
    stack: SmallVec<[u64; 16]>,
    no_grant: FxHashSet<u64>,
    cycles: u32,
    path: Vec<Step>,
    /// Timed "no" answers of `object#relation`s that met no cycle ([`Eval::timed`]).
    timed_memo: FxHashMap<u64, (Result<Truth, QueryError>, u32)>,
    /// Steps left for [`Eval::timed`]; at zero the race is not settled.
    timed_left: u32,
}

impl<'v, 'g> Eval<'v, 'g> {
    fn new(
        view: &'v View<'g>,
        context: &'v Map<String, Value>,
        user: u64,
        budget: &'v Budget,
        reach: &'v Reach,
    ) -> Self {
        let user_type = if tag(user) == TAG_WILDCARD {
            low(user)
        } else {
            view.object_type(low(user))
        };
        Eval {
            view,
            context,
            budget,
            reach,
            user,
            user_type,
            stack: SmallVec::new(),
            no_grant: FxHashSet::default(),
            cycles: 0,
            path: Vec::new(),
            timed_memo: FxHashMap::default(),
            timed_left: 0,
        }
    }

    fn model(&self) -> &'g Model {
        &self.view.graph.model
    }

    /// Evaluates the condition in slot `slot` of `index`.
    fn condition_holds(&self, index: &Index, slot: u32) -> Result<bool, QueryError> {
        if slot == 0 {
            return Ok(true);
        }
        let Some(Some(stored)) = index.conditions.get(slot as usize) else {
            return Ok(true);
        };
        let condition = &self.model().conditions[stored.condition as usize];
        condition
            .compiled
            .evaluate(stored.context.as_deref(), self.context)
            .map_err(|error| match error {
                EvalError::MissingParameter(parameter) => QueryError::MissingParameter {
                    condition: condition.name.clone(),
                    parameter,
                },
                EvalError::BadParameter(parameter, message) => QueryError::BadParameter {
                    condition: condition.name.clone(),
                    parameter,
                    message,
                },
                EvalError::Failed(message) => QueryError::ConditionFailed {
                    condition: condition.name.clone(),
                    message,
                },
            })
    }

    fn condition_id(index: &Index, slot: u32) -> Option<u32> {
        index
            .conditions
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map(|c| c.condition)
    }

    /// Whether some tuple `p@user` exists whose condition holds.
    fn edge_holds(&mut self, p: u64, user: u64) -> Result<bool, QueryError> {
        let mut error = None;
        for index in self.view.indexes() {
            let Some(adj) = index.forward.get(&p) else {
                continue;
            };
            let slot = adj.slot(user);
            if let Some(slot) = slot {
                match self.condition_holds(index, slot) {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(e) => error = Some(e),
                }
            }
        }
        error.map_or(Ok(false), Err)
    }

    /// Resolves `object#relation` for the user: [`Truth::Yes`], [`Truth::No`], or
    /// [`Truth::Cycle`] when the answer depends on reaching an `object#relation` that is
    /// already being resolved on this path (see the module documentation).
    fn check(
        &mut self,
        object: u32,
        object_type: u32,
        relation: u32,
        how: How,
        depth: u32,
    ) -> Result<Truth, QueryError> {
        self.budget.spend(1)?;
        let key = pair(object, relation);
        if tag(self.user) == TAG_USERSET && self.user == key_userset(object, relation) {
            self.path.push(Step::User {
                key: self.user,
                condition: None,
            });
            self.path.push(Step::Node {
                object,
                relation,
                how,
                condition: None,
            });
            return Ok(Truth::Yes);
        }
        if self.stack.contains(&key) {
            self.cycles += 1;
            // OpenFGA resolves a relation that is recursive through itself for an object user
            // as a search that visits each object once: back on one already visited is a dead
            // end (no), not a cycle. The answer still depends on the path, so it is counted
            // as a cycle for what is remembered.
            if tag(self.user) != TAG_USERSET
                && self
                    .model()
                    .recursive
                    .contains(&(self.user_type, object_type, relation))
            {
                return Ok(Truth::No);
            }
            return Ok(Truth::Cycle);
        }
        if self.no_grant.contains(&key) {
            return Ok(Truth::No);
        }
        if depth >= MAX_RESOLVE_DEPTH {
            return Err(QueryError::DepthExceeded);
        }
        if !self.reach.contains(object_type, relation) {
            // No path in the model leads from the relation to the user's type: no, without
            // reading a tuple or evaluating a condition (as OpenFGA).
            return Ok(Truth::No);
        }
        let model = self.model();
        let Some(def) = model.relation(object_type, relation) else {
            return Ok(Truth::No);
        };
        let cycles_before = self.cycles;
        self.stack.push(key);
        let result = self.rewrite(object, object_type, relation, def, &def.rewrite, depth);
        self.stack.pop();
        match result {
            Ok(Truth::Yes) => {
                self.path.push(Step::Node {
                    object,
                    relation,
                    how,
                    condition: None,
                });
                Ok(Truth::Yes)
            }
            Ok(Truth::No) => {
                // Only an answer that met no cycle is independent of the path it was
                // reached on, and so valid wherever the same `object#relation` is reached.
                if self.cycles == cycles_before {
                    self.no_grant.insert(key);
                }
                Ok(Truth::No)
            }
            other => other,
        }
    }

    #[allow(
        clippy::only_used_in_recursion,
        reason = "kept for per-relation decisions"
    )]
    fn rewrite(
        &mut self,
        object: u32,
        object_type: u32,
        relation: u32,
        def: &CRelation,
        rewrite: &CRewrite,
        depth: u32,
    ) -> Result<Truth, QueryError> {
        self.budget.spend(1)?;
        match rewrite {
            CRewrite::Leaf(Leaf::This) => self.direct(object, relation, depth),
            CRewrite::Leaf(Leaf::Computed(r2)) => {
                self.check(object, object_type, *r2, How::Computed, depth + 1)
            }
            CRewrite::Leaf(Leaf::Ttu { tupleset, computed }) => {
                // As OpenFGA reads the tupleset: a tuple whose condition cannot be evaluated
                // is skipped, and its error counts only when no tuple's condition held.
                let mut any = AnyOf::default();
                let mut skipped = Skipped::default();
                let view = self.view;
                for index in view.indexes() {
                    let Some(adj) = index.forward.get(&pair(object, *tupleset)) else {
                        continue;
                    };
                    for &(parent, slot) in &adj.direct {
                        self.budget.spend(1)?;
                        if !skipped.follow(self.condition_holds(index, slot)) {
                            continue;
                        }
                        let parent_type = view.object_type(parent);
                        let outcome = self.check(
                            parent,
                            parent_type,
                            *computed,
                            How::From(*tupleset),
                            depth + 1,
                        );
                        if any.add(outcome) {
                            if let Some(Step::Node { condition, .. }) = self.path.last_mut() {
                                *condition = Self::condition_id(index, slot);
                            }
                            return Ok(Truth::Yes);
                        }
                    }
                }
                skipped.finish(&mut any);
                any.finish()
            }
            CRewrite::Union(children) => {
                let mut any = AnyOf::default();
                for child in children {
                    let outcome = self.rewrite(object, object_type, relation, def, child, depth);
                    if any.add(outcome) {
                        return Ok(Truth::Yes);
                    }
                }
                any.finish()
            }
            CRewrite::Intersection(children) => {
                // No if any operand is No; otherwise a cycle if any operand met one (an error
                // then does not matter, as in OpenFGA); otherwise an error if any; else Yes.
                let mark = self.path.len();
                let mut error = None;
                let mut cycle = false;
                for (i, child) in children.iter().enumerate() {
                    let keep = self.path.len();
                    match self.rewrite(object, object_type, relation, def, child, depth) {
                        Ok(Truth::Yes) => {
                            if i > 0 {
                                self.path.truncate(keep);
                            }
                        }
                        Ok(Truth::No) => {
                            self.path.truncate(mark);
                            return Ok(Truth::No);
                        }
                        Ok(Truth::Cycle) => cycle = true,
                        Err(e) => error = Some(e),
                    }
                }
                if cycle || error.is_some() {
                    self.path.truncate(mark);
                }
                if cycle {
                    return Ok(Truth::Cycle);
                }
                match error {
                    Some(e) => Err(e),
                    None => Ok(Truth::Yes),
                }
            }
            CRewrite::Difference(both) => {
                let (base, subtract) = &**both;
                let mark = self.path.len();
                let base = self.rewrite(object, object_type, relation, def, base, depth);
                if matches!(base, Ok(Truth::No)) {
                    return Ok(Truth::No);
                }
                let keep = self.path.len();
                let subtract = self.rewrite(object, object_type, relation, def, subtract, depth);
                // `base but not subtract`: a granting subtract denies and a cycle in it makes
                // the whole undetermined, whatever the base; then a cycle in the base does;
                // then errors surface.
                let result = match (base, subtract) {
                    (_, Ok(Truth::Yes)) => Ok(Truth::No),
                    (_, Ok(Truth::Cycle)) | (Ok(Truth::Cycle), _) => Ok(Truth::Cycle),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                    (Ok(base), Ok(Truth::No)) => Ok(base),
                };
                if matches!(result, Ok(Truth::Yes)) {
                    self.path.truncate(keep);
                } else {
                    self.path.truncate(mark);
                }
                result
            }
        }
    }

    fn direct(&mut self, object: u32, relation: u32, depth: u32) -> Result<Truth, QueryError> {
        let p = pair(object, relation);
        let view = self.view;
        let user = self.user;
        let mut any = AnyOf::default();
        // The tuple naming the user itself; its condition's error counts as it is.
        for index in view.indexes() {
            let Some(adj) = index.forward.get(&p) else {
                continue;
            };
            let slot = adj.slot(user);
            if let Some(slot) = slot {
                match self.condition_holds(index, slot) {
                    Ok(true) => {
                        self.path.push(Step::User {
                            key: user,
                            condition: Self::condition_id(index, slot),
                        });
                        return Ok(Truth::Yes);
                    }
                    Ok(false) => {}
                    Err(e) => any.error = Some(e),
                }
            }
        }
        // The wildcard tuples of the user's type (for an object user) and the userset tuples
        // are two reads, as OpenFGA reads them: within each read, a tuple whose condition
        // cannot be evaluated is skipped, and its error counts only when no tuple of that
        // read passed its condition.
        if tag(user) == TAG_OBJECT {
            let mut skipped = Skipped::default();
            let wildcard = key_wildcard(self.user_type);
            for index in view.indexes() {
                let Some(adj) = index.forward.get(&p) else {
                    continue;
                };
                let Some(&(_, slot)) = adj.sets.iter().find(|e| e.0 == wildcard) else {
                    continue;
                };
                self.budget.spend(1)?;
                if skipped.follow(self.condition_holds(index, slot)) {
                    self.path.push(Step::User {
                        key: wildcard,
                        condition: Self::condition_id(index, slot),
                    });
                    return Ok(Truth::Yes);
                }
            }
            skipped.finish(&mut any);
        }
        let mut skipped = Skipped::default();
        for index in view.indexes() {
            let Some(adj) = index.forward.get(&p) else {
                continue;
            };
            for &(set, slot) in &adj.sets {
                if tag(set) != TAG_USERSET {
                    continue;
                }
                self.budget.spend(1)?;
                if !skipped.follow(self.condition_holds(index, slot)) || set == user {
                    continue;
                }
                let o2 = low(set);
                let t2 = view.object_type(o2);
                let outcome = self.check(o2, t2, key_relation(set), How::Userset, depth + 1);
                if any.add(outcome) {
                    if let Some(Step::Node { condition, .. }) = self.path.last_mut() {
                        *condition = Self::condition_id(index, slot);
                    }
                    return Ok(Truth::Yes);
                }
            }
        }
        skipped.finish(&mut any);
        any.finish()
    }

    /// Resolves a query's `object#relation`: [`Eval::check`], and where that grants but the
    /// evaluation met a cycle (or the model has a loop through `and` / `but not`), the race
    /// OpenFGA runs between the operands of `and` and `but not` (see [`Eval::timed`]) must
    /// grant too.
    fn decide(
        &mut self,
        object: u32,
        object_type: u32,
        relation: u32,
    ) -> Result<Truth, QueryError> {
        let truth = self.check(object, object_type, relation, How::Start, 0)?;
        if truth != Truth::Yes || (self.cycles == 0 && self.model().weighable) {
            return Ok(truth);
        }
        self.stack.clear();
        self.timed_left = MAX_TIMED_STEPS;
        let (timed, _) = self.timed(object, object_type, relation, 0);
        if self.timed_left == 0 {
            // Too many paths to settle the race: the order-independent answer stands.
            return Ok(truth);
        }
        timed
    }

    /// Resolves `object#relation` the way OpenFGA's concurrent check does, with the number of
    /// tuple reads and dispatches (the resolution of a userset or a tuple-to-userset's parent)
    /// in a row each answer waits for (its time): operands run side by side, a
    /// union answers at its first yes, an intersection at its first no or cycle, `a but not b`
    /// at the first of `a` no or cycle and `b` yes or cycle (`a`'s on a tie); otherwise each
    /// waits for all its operands. A cycle is detected before any read, so where a cycle and
    /// a "no" race, the side with fewer reads before its answer wins.
    fn timed(
        &mut self,
        object: u32,
        object_type: u32,
        relation: u32,
        depth: u32,
    ) -> (Result<Truth, QueryError>, u32) {
        if self.timed_left == 0 {
            return (Ok(Truth::No), 0);
        }
        self.timed_left -= 1;
        let key = pair(object, relation);
        if tag(self.user) == TAG_USERSET && self.user == key_userset(object, relation) {
            return (Ok(Truth::Yes), 0);
        }
        if self.stack.contains(&key) {
            self.cycles += 1;
            if tag(self.user) != TAG_USERSET
                && self
                    .model()
                    .recursive
                    .contains(&(self.user_type, object_type, relation))
            {
                return (Ok(Truth::No), 0);
            }
            return (Ok(Truth::Cycle), 0);
        }
        if depth >= MAX_RESOLVE_DEPTH {
            return (Err(QueryError::DepthExceeded), 0);
        }
        if !self.reach.contains(object_type, relation) {
            return (Ok(Truth::No), 0);
        }
        let model = self.model();
        let Some(def) = model.relation(object_type, relation) else {
            return (Ok(Truth::No), 0);
        };
        if let Some(known) = self.timed_memo.get(&key) {
            return known.clone();
        }
        let cycles_before = self.cycles;
        self.stack.push(key);
        let result = self.timed_rewrite(object, object_type, relation, &def.rewrite, depth);
        self.stack.pop();
        // Like a plain "no" in `check`, a "no" that met no cycle holds wherever the same
        // `object#relation` is reached (an error or a grant may depend on the depth).
        if self.cycles == cycles_before && matches!(result.0, Ok(Truth::No)) {
            self.timed_memo.insert(key, result.clone());
        }
        result
    }

    fn timed_rewrite(
        &mut self,
        object: u32,
        object_type: u32,
        relation: u32,
        rewrite: &CRewrite,
        depth: u32,
    ) -> (Result<Truth, QueryError>, u32) {
        if self.timed_left == 0 {
            return (Ok(Truth::No), 0);
        }
        self.timed_left -= 1;
        match rewrite {
            CRewrite::Leaf(Leaf::This) => self.timed_direct(object, relation, depth),
            CRewrite::Leaf(Leaf::Computed(r2)) => self.timed(object, object_type, *r2, depth + 1),
            CRewrite::Leaf(Leaf::Ttu { tupleset, computed }) => {
                let view = self.view;
                let mut skipped = Skipped::default();
                let mut parents = Vec::new();
                for index in view.indexes() {
                    let Some(adj) = index.forward.get(&pair(object, *tupleset)) else {
                        continue;
                    };
                    for &(parent, slot) in &adj.direct {
                        if skipped.follow(self.condition_holds(index, slot)) {
                            parents.push(parent);
                        }
                    }
                }
                let targets = parents.into_iter().map(|parent| (parent, *computed));
                self.timed_fan_out(skipped, targets, depth)
            }
            CRewrite::Union(children) => {
                let outcomes = children
                    .iter()
                    .map(|c| self.timed_rewrite(object, object_type, relation, c, depth))
                    .collect();
                union_timed(outcomes, 0)
            }
            CRewrite::Intersection(children) => {
                let outcomes: Vec<_> = children
                    .iter()
                    .map(|c| self.timed_rewrite(object, object_type, relation, c, depth))
                    .collect();
                let first = outcomes
                    .iter()
                    .filter(|(t, _)| matches!(t, Ok(Truth::No | Truth::Cycle)))
                    .min_by_key(|(_, time)| *time);
                if let Some((truth, time)) = first {
                    return (truth.clone(), *time);
                }
                let time = outcomes.iter().map(|(_, t)| *t).max().unwrap_or(0);
                match outcomes.into_iter().find_map(|(t, _)| t.err()) {
                    Some(e) => (Err(e), time),
                    None => (Ok(Truth::Yes), time),
                }
            }
            CRewrite::Difference(both) => {
                let (base, base_time) =
                    self.timed_rewrite(object, object_type, relation, &both.0, depth);
                let (subtract, subtract_time) =
                    self.timed_rewrite(object, object_type, relation, &both.1, depth);
                let base_event = match base {
                    Ok(Truth::No) => Some((Truth::No, base_time)),
                    Ok(Truth::Cycle) => Some((Truth::Cycle, base_time)),
                    _ => None,
                };
                let subtract_event = match subtract {
                    Ok(Truth::Yes) => Some((Truth::No, subtract_time)),
                    Ok(Truth::Cycle) => Some((Truth::Cycle, subtract_time)),
                    _ => None,
                };
                match (base_event, subtract_event) {
                    (Some((b, bt)), Some((_, st))) if bt <= st => (Ok(b), bt),
                    (_, Some((s, st))) => (Ok(s), st),
                    (Some((b, bt)), None) => (Ok(b), bt),
                    (None, None) => {
                        let time = base_time.max(subtract_time);
                        match (base, subtract) {
                            (Err(e), _) | (_, Err(e)) => (Err(e), time),
                            _ => (Ok(Truth::Yes), time),
                        }
                    }
                }
            }
        }
    }

    fn timed_direct(
        &mut self,
        object: u32,
        relation: u32,
        depth: u32,
    ) -> (Result<Truth, QueryError>, u32) {
        let p = pair(object, relation);
        let view = self.view;
        let user = self.user;
        let mut outcomes = Vec::new();
        // The tuple naming the user itself: one read.
        let mut exact = Ok(Truth::No);
        for index in view.indexes() {
            let Some(adj) = index.forward.get(&p) else {
                continue;
            };
            let slot = adj.slot(user);
            if let Some(slot) = slot {
                match self.condition_holds(index, slot) {
                    Ok(true) => exact = Ok(Truth::Yes),
                    Ok(false) => {}
                    Err(e) => {
                        if exact != Ok(Truth::Yes) {
                            exact = Err(e);
                        }
                    }
                }
            }
        }
        outcomes.push((exact, 1));
        // The wildcard tuples of an object user's type: one read.
        if tag(user) == TAG_OBJECT {
            let wildcard = key_wildcard(self.user_type);
            let mut skipped = Skipped::default();
            for index in view.indexes() {
                if let Some(adj) = index.forward.get(&p)
                    && let Some(&(_, slot)) = adj.sets.iter().find(|e| e.0 == wildcard)
                {
                    skipped.follow(self.condition_holds(index, slot));
                }
            }
            let truth = match (skipped.passed, skipped.error) {
                (true, _) => Ok(Truth::Yes),
                (false, Some(e)) => Err(e),
                (false, None) => Ok(Truth::No),
            };
            outcomes.push((truth, 1));
        }
        // The userset tuples: one read, then each userset resolved side by side.
        let mut skipped = Skipped::default();
        let mut sets = Vec::new();
        for index in view.indexes() {
            let Some(adj) = index.forward.get(&p) else {
                continue;
            };
            for &(set, slot) in &adj.sets {
                if tag(set) == TAG_USERSET
                    && skipped.follow(self.condition_holds(index, slot))
                    && set != user
                {
                    sets.push(set);
                }
            }
        }
        let targets = sets.into_iter().map(|set| (low(set), key_relation(set)));
        outcomes.push(self.timed_fan_out(skipped, targets, depth));
        union_timed(outcomes, 1)
    }

    /// The end of a read whose tuples lead on (a tupleset's parents, a relation's usersets):
    /// the read's condition error when no tuple of it passed, and each `object#relation` it
    /// leads to resolved side by side, each two steps after the read.
    fn timed_fan_out(
        &mut self,
        skipped: Skipped,
        targets: impl ExactSizeIterator<Item = (u32, u32)>,
        depth: u32,
    ) -> (Result<Truth, QueryError>, u32) {
        let view = self.view;
        let mut outcomes = Vec::with_capacity(targets.len() + 1);
        if !skipped.passed
            && let Some(e) = skipped.error
        {
            outcomes.push((Err(e), 1));
        }
        for (object, relation) in targets {
            let object_type = view.object_type(object);
            let (truth, time) = self.timed(object, object_type, relation, depth + 1);
            outcomes.push((truth, time + 2));
        }
        union_timed(outcomes, 1)
    }

    fn render_path(&self) -> Vec<String> {
        let model = self.model();
        let view = self.view;
        let with = |condition: Option<u32>| match condition {
            Some(c) => format!(" [condition {}]", model.conditions[c as usize].name),
            None => String::new(),
        };
        self.path
            .iter()
            .rev()
            .map(|step| match *step {
                Step::Node {
                    object,
                    relation,
                    how,
                    condition,
                } => {
                    let base = format!(
                        "{}#{}",
                        view.object_ref(object),
                        model.relation_names[relation as usize]
                    );
                    let suffix = match how {
                        How::Start | How::Userset => String::new(),
                        How::Computed => " (computed)".to_owned(),
                        How::From(ts) => format!(" (from {})", model.relation_names[ts as usize]),
                    };
                    format!("{base}{suffix}{}", with(condition))
                }
                Step::User { key, condition } => {
                    format!("{}{}", view.user_of(key), with(condition))
                }
            })
            .collect()
    }
}
