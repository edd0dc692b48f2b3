//! Authorization models: the syntax tree, validation, compilation, and the JSON form.
//!
//! Owns [`Model`] (a validated model plus its compiled, interned form used by the graph),
//! [`ModelError`]/[`ModelErrors`], OpenFGA's JSON `AuthorizationModel` reading and writing, and
//! [`Model::validate_tuple`]. It must not hold tuples or answer queries (that is
//! [`crate::graph`]); DSL lexing and parsing live in [`crate::dsl`].

use std::fmt;

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

use crate::condition::{CompiledCondition, ParamType};

mod recursive;
use crate::tuple::{Tuple, User};

/// Largest accepted model text (DSL or JSON), in bytes.
pub const MAX_MODEL_BYTES: usize = 1024 * 1024;
/// Most type definitions in one model.
pub const MAX_TYPES: usize = 512;
/// Most relations one type defines.
pub const MAX_RELATIONS_PER_TYPE: usize = 256;
/// Most operands of one `or` or `and` (a `but not` always has two).
pub const MAX_REWRITE_OPERANDS: usize = 128;
/// Deepest nesting of set operators in one rewrite: a relation name, `[...]` or
/// `x from y` is depth 0, `a or b` depth 1, `(a or b) and c` depth 2. In the DSL, parentheses
/// may not nest deeper than this either.
pub const MAX_REWRITE_DEPTH: usize = 32;
/// Most terms (relation names, `[...]`, `x from y` and operators) in all rewrites of a model.
pub const MAX_REWRITE_TERMS: usize = 20_000;
/// Most entries in one relation's directly related types (`[user, group#member, user:*]`).
pub const MAX_DIRECT_TYPES: usize = 64;
/// Most condition definitions in one model.
pub const MAX_CONDITIONS: usize = 128;
/// Most parameters of one condition.
pub const MAX_CONDITION_PARAMETERS: usize = 32;
/// Most problems reported for one model; further ones are counted in a last note.
pub const MAX_MODEL_ERRORS: usize = 100;
/// Most names listed in one error message (the rest are counted).
const MAX_LISTED_NAMES: usize = 12;

/// A 1-based position in the model text. Positions never take part in equality, so two models
/// that differ only in layout compare equal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (characters).
    pub column: u32,
}

impl PartialEq for Pos {
    fn eq(&self, _: &Pos) -> bool {
        true
    }
}

/// One problem in a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError {
    /// 1-based line in the model text.
    pub line: u32,
    /// 1-based column in the model text.
    pub column: u32,
    /// For the JSON form: where the offending value is (`type_definitions[2].relations.viewer`).
    pub path: Option<String>,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if let Some(path) = &self.path {
            write!(f, "at {path}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a model, in text order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ModelErrors(pub Vec<ModelError>);

impl fmt::Display for ModelErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// A model's syntax tree, common to the DSL and JSON forms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelAst {
    /// Type definitions in order.
    pub types: Vec<TypeDef>,
    /// Condition definitions in order.
    pub conditions: Vec<ConditionDef>,
}

/// `type name` with its relations.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeDef {
    /// Type name.
    pub name: String,
    /// Where it is declared.
    pub pos: Pos,
    /// Relations in order.
    pub relations: Vec<RelationDef>,
}

/// `define name: rewrite`.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationDef {
    /// Relation name.
    pub name: String,
    /// Where it is declared.
    pub pos: Pos,
    /// How the relation is computed.
    pub rewrite: Rewrite,
    /// The types a tuple may relate directly (`[user, group#member, user:*]`).
    pub directly_related: Vec<DirectType>,
}

/// One entry of a type restriction.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectType {
    /// The user's type.
    pub type_name: String,
    /// `type#relation`: a userset.
    pub relation: Option<String>,
    /// `type:*`: a wildcard.
    pub wildcard: bool,
    /// `... with condition`.
    pub condition: Option<String>,
    /// Where it is written.
    pub pos: Pos,
}

/// A relation's rewrite.
#[derive(Debug, Clone, PartialEq)]
pub enum Rewrite {
    /// Direct tuples (`[...]` in the DSL, `this` in JSON).
    This,
    /// Another relation of the same object.
    Computed {
        /// The relation.
        relation: String,
        /// Where it is named.
        pos: Pos,
    },
    /// `computed from tupleset`.
    TupleToUserset {
        /// The relation whose tuples point at other objects.
        tupleset: String,
        /// The relation evaluated on those objects.
        computed: String,
        /// Where it is written.
        pos: Pos,
    },
    /// `a or b`.
    Union(Vec<Rewrite>),
    /// `a and b`.
    Intersection(Vec<Rewrite>),
    /// `a but not b`.
    Difference(Box<Rewrite>, Box<Rewrite>),
}

/// `condition name(params) { expression }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionDef {
    /// Condition name.
    pub name: String,
    /// Where it is declared.
    pub pos: Pos,
    /// Parameters and their types, in order.
    pub params: Vec<(String, ParamType)>,
    /// The CEL expression.
    pub expression: String,
    /// Where the expression starts.
    pub expression_pos: Pos,
}

/// A leaf of a compiled rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Leaf {
    /// Direct tuples.
    This,
    /// Another relation of the same object.
    Computed(u32),
    /// `computed from tupleset`.
    Ttu { tupleset: u32, computed: u32 },
}

/// A compiled rewrite: interned ids, one allocation per set operator (none per leaf).
#[derive(Debug)]
pub(crate) enum CRewrite {
    Leaf(Leaf),
    Union(Box<[CRewrite]>),
    Intersection(Box<[CRewrite]>),
    Difference(Box<(CRewrite, CRewrite)>),
}

impl CRewrite {
    fn monotone(&self) -> bool {
        match self {
            CRewrite::Leaf(_) => true,
            CRewrite::Union(children) => children.iter().all(CRewrite::monotone),
            CRewrite::Intersection(_) | CRewrite::Difference(..) => false,
        }
    }

    /// Whether the rewrite has a `but not` anywhere.
    fn excludes(&self) -> bool {
        match self {
            CRewrite::Leaf(_) => false,
            CRewrite::Union(children) | CRewrite::Intersection(children) => {
                children.iter().any(CRewrite::excludes)
            }
            CRewrite::Difference(_) => true,
        }
    }

    /// Distinct leaves, in order; `positive` leaves out the subtracted side of `but not`.
    fn leaves(&self, positive: bool, out: &mut Vec<Leaf>) {
        match self {
            CRewrite::Leaf(leaf) => {
                if !out.contains(leaf) {
                    out.push(*leaf);
                }
            }
            CRewrite::Union(children) | CRewrite::Intersection(children) => {
                for child in children {
                    child.leaves(positive, out);
                }
            }
            CRewrite::Difference(pair) => {
                pair.0.leaves(positive, out);
                if !positive {
                    pair.1.leaves(positive, out);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirectKind {
    Plain,
    Userset(u32),
    Wildcard,
}

#[derive(Debug)]
pub(crate) struct CDirect {
    pub type_id: u32,
    pub kind: DirectKind,
    pub condition: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct CRelation {
    pub rewrite: CRewrite,
    pub direct: Vec<CDirect>,
    /// The rewrite is a union of leaves (no `and`, no `but not`).
    pub monotone: bool,
    /// The rewrite has a `but not`.
    pub excludes: bool,
    /// The distinct leaves, the subtracted sides of `but not` included (every edge a query
    /// may have to follow), computed once here instead of per query.
    pub leaves: Box<[Leaf]>,
    /// Where the relation is in the syntax tree: (type index, relation index).
    ast_index: (u32, u32),
}

#[derive(Debug)]
pub(crate) struct CCondition {
    pub name: String,
    pub params: Vec<(String, ParamType)>,
    pub compiled: CompiledCondition,
}

/// A validated, compiled OpenFGA authorization model (schema 1.1).
///
/// Sizes are bounded by the `MAX_*` constants of this module, and every structure here is
/// linear in the model's size: relations are stored per type (not in a types × relation names
/// table), and the dependency lists are deduplicated.
#[derive(Debug)]
pub struct Model {
    ast: ModelAst,
    pub(crate) type_names: Vec<String>,
    type_ids: FxHashMap<String, u32>,
    pub(crate) relation_names: Vec<String>,
    relation_ids: FxHashMap<String, u32>,
    /// Per type: relation id → relation.
    relations: Vec<FxHashMap<u32, CRelation>>,
    pub(crate) conditions: Vec<CCondition>,
    condition_ids: FxHashMap<String, u32>,
    /// For `(type, relation)`: the relations whose value may grow when it grows, other than
    /// through userset tuples (found in the index): computed relations of the same type and
    /// tuple-to-userset relations of other types. Each listed once.
    pub(crate) dependents: FxHashMap<(u32, u32), Vec<Dependent>>,
    /// For `(type, relation)`: the `(type, relation)` pairs its value is computed from, each
    /// listed once.
    pub(crate) inputs: FxHashMap<(u32, u32), Vec<(u32, u32)>>,
    /// `(user type, type, relation)`: the relations OpenFGA's check resolves with its
    /// recursive strategy for users of that type, where coming back to an object already
    /// visited is a plain "no" rather than a cycle (see `model/recursive.rs`).
    pub(crate) recursive: FxHashSet<(u32, u32, u32)>,
    /// Whether OpenFGA can build its weighted graph of the model (no loop through tuples
    /// passes through `and` or `but not`); the strategies and the list objects pruning that
    /// depend on it apply only then.
    pub(crate) weighable: bool,
}

/// A relation that reads another one (see [`Model::dependents`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dependent {
    /// `relation` of the same object.
    Computed(u32),
    /// `relation` of objects of `type_id` whose `tupleset` points at the object.
    Ttu {
        type_id: u32,
        relation: u32,
        tupleset: u32,
    },
}

/// Why a tuple does not fit the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tuple `{tuple}`: {message}")]
pub struct TupleError {
    /// The tuple, as `object#relation@user`.
    pub tuple: String,
    /// What is wrong and what the model allows.
    pub message: String,
}

impl Model {
    /// Parses and validates a model in the OpenFGA modeling language.
    pub fn from_dsl(text: &str) -> Result<Model, ModelErrors> {
        check_size(text)?;
        let ast = crate::dsl::parse(text).map_err(Problems::into_errors)?;
        Model::compile_checked(ast, false)
    }

    /// Parses and validates a model in OpenFGA's JSON `AuthorizationModel` form.
    pub fn from_json(text: &str) -> Result<Model, ModelErrors> {
        check_size(text)?;
        let value: Value = serde_json::from_str(text).map_err(|error| {
            ModelErrors(vec![ModelError {
                line: u32::try_from(error.line()).unwrap_or(1).max(1),
                column: u32::try_from(error.column()).unwrap_or(1).max(1),
                path: None,
                message: format!("invalid JSON: {error}"),
            }])
        })?;
        let ast = crate::json::parse(&value, text).map_err(Problems::into_errors)?;
        Model::compile_checked(ast, true)
    }

    /// Validates and compiles a syntax tree. `json_text` is the JSON source, when there is one;
    /// errors then carry JSON paths.
    pub fn from_ast(ast: ModelAst, json_text: Option<&str>) -> Result<Model, ModelErrors> {
        Model::compile_checked(ast, json_text.is_some())
    }

    fn compile_checked(ast: ModelAst, json: bool) -> Result<Model, ModelErrors> {
        let mut problems = Problems::default();
        // The limits first: everything after them is linear in sizes they bound, and the
        // recursive walks below rely on the depth limit.
        check_limits(&ast, json, &mut problems);
        if !problems.is_empty() {
            return Err(problems.into_errors());
        }
        let model = compile(ast, &mut problems, json);
        if problems.is_empty() {
            Ok(model)
        } else {
            Err(problems.into_errors())
        }
    }

    /// The syntax tree.
    pub fn ast(&self) -> &ModelAst {
        &self.ast
    }

    /// The model as OpenFGA's JSON `AuthorizationModel` (`schema_version`, `type_definitions`,
    /// `conditions`), as a `serde_json` tree. A tree costs a few hundred bytes per rewrite
    /// term; to hash, store or send the model, prefer [`Model::to_json_string`].
    pub fn to_json(&self) -> Value {
        serde_json::to_value(crate::json::JsonForm(&self.ast)).unwrap_or(Value::Null)
    }

    /// The model as OpenFGA's JSON `AuthorizationModel` text, written directly from the syntax
    /// tree (no intermediate tree; about 50 bytes per rewrite term). Object keys are sorted,
    /// so this equals `to_json().to_string()`.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(&crate::json::JsonForm(&self.ast)).unwrap_or_default()
    }

    /// The model in the modeling language (canonical layout).
    pub fn to_dsl(&self) -> String {
        crate::dsl::print(&self.ast)
    }

    pub(crate) fn type_id(&self, name: &str) -> Option<u32> {
        self.type_ids.get(name).copied()
    }

    pub(crate) fn relation_id(&self, name: &str) -> Option<u32> {
        self.relation_ids.get(name).copied()
    }

    #[inline]
    pub(crate) fn relation(&self, type_id: u32, relation: u32) -> Option<&CRelation> {
        self.relations.get(type_id as usize)?.get(&relation)
    }

    /// Every relation id type `type_id` defines.
    pub(crate) fn relations_of(&self, type_id: u32) -> impl Iterator<Item = u32> + '_ {
        self.relations
            .get(type_id as usize)
            .into_iter()
            .flat_map(|relations| relations.keys().copied())
    }

    pub(crate) fn condition_id(&self, name: &str) -> Option<u32> {
        self.condition_ids.get(name).copied()
    }

    /// Whether `type_name` has `relation`.
    pub fn has_relation(&self, type_name: &str, relation: &str) -> bool {
        match (self.type_id(type_name), self.relation_id(relation)) {
            (Some(t), Some(r)) => self.relation(t, r).is_some(),
            _ => false,
        }
    }

    /// Checks that a tuple may be written: the object's type and relation exist, the user is
    /// one of the relation's directly related types (plain, `type#relation` or `type:*`), the
    /// condition (if any) is one the restriction names, and its stored context values have
    /// the declared parameter types.
    pub fn validate_tuple(&self, tuple: &Tuple) -> Result<(), TupleError> {
        let fail = |message: String| TupleError {
            tuple: tuple.to_string(),
            message,
        };
        let type_id = self.type_id(&tuple.object.object_type).ok_or_else(|| {
            fail(format!(
                "the model has no type `{}`; types are {}",
                tuple.object.object_type,
                name_list(self.type_names.iter().map(String::as_str))
            ))
        })?;
        let relation = self
            .relation_id(&tuple.relation)
            .and_then(|r| self.relation(type_id, r))
            .ok_or_else(|| {
                fail(format!(
                    "type `{}` has no relation `{}`",
                    tuple.object.object_type, tuple.relation
                ))
            })?;
        if let User::Userset { object, relation } = &tuple.user
            && *object == tuple.object
            && *relation == tuple.relation
        {
            // `doc:1#viewer@doc:1#viewer` always holds; OpenFGA refuses to store it.
            return Err(fail(
                "the user is the tuple's own object and relation, which holds without a tuple"
                    .to_owned(),
            ));
        }
        let (user_type, kind) = match &tuple.user {
            User::Object(object) => (object.object_type.as_str(), DirectKind::Plain),
            User::Wildcard(user_type) => (user_type.as_str(), DirectKind::Wildcard),
            User::Userset { object, relation } => {
                let Some(r) = self.relation_id(relation) else {
                    return Err(fail(format!("the model has no relation `{relation}`")));
                };
                (object.object_type.as_str(), DirectKind::Userset(r))
            }
        };
        let user_type_id = self.type_id(user_type);
        let matches = |d: &&CDirect| Some(d.type_id) == user_type_id && d.kind == kind;
        if !relation.direct.iter().any(|d| matches(&d)) {
            return Err(fail(format!(
                "`{}` may not be related directly to `{}#{}`; the model allows {}",
                tuple.user,
                tuple.object.object_type,
                tuple.relation,
                self.allowed_direct(relation)
            )));
        }
        match &tuple.condition {
            None => {
                if !relation
                    .direct
                    .iter()
                    .filter(matches)
                    .any(|d| d.condition.is_none())
                {
                    return Err(fail(format!(
                        "the model only allows this user with a condition ({}); add `condition`",
                        self.allowed_direct(relation)
                    )));
                }
            }
            Some(condition) => {
                let Some(id) = self.condition_id(&condition.name) else {
                    return Err(fail(format!(
                        "the model has no condition `{}`",
                        condition.name
                    )));
                };
                if !relation
                    .direct
                    .iter()
                    .filter(matches)
                    .any(|d| d.condition == Some(id))
                {
                    return Err(fail(format!(
                        "condition `{}` is not allowed here; the model allows {}",
                        condition.name,
                        self.allowed_direct(relation)
                    )));
                }
                let declared = &self.conditions[id as usize];
                for (key, value) in &condition.context {
                    let Some((_, param_type)) = declared.params.iter().find(|(p, _)| p == key)
                    else {
                        return Err(fail(format!(
                            "condition `{}` has no parameter `{key}`; its parameters are {}",
                            condition.name,
                            declared
                                .params
                                .iter()
                                .map(|(p, t)| format!("{p}: {t}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    };
                    param_type.convert(value).map_err(|error| {
                        fail(format!(
                            "parameter `{key}` of condition `{}`: {error}",
                            condition.name
                        ))
                    })?;
                }
            }
        }
        Ok(())
    }

    /// The relation's directly related types as the DSL writes them (only built for errors).
    fn allowed_direct(&self, relation: &CRelation) -> String {
        let (type_index, relation_index) = relation.ast_index;
        let direct = self
            .ast
            .types
            .get(type_index as usize)
            .and_then(|t| t.relations.get(relation_index as usize))
            .map(|r| r.directly_related.as_slice())
            .unwrap_or_default();
        if direct.is_empty() {
            "no direct tuples".to_owned()
        } else {
            crate::dsl::print_direct(direct)
        }
    }
}

/// `a`, `b`, `c` and 9 more: at most [`MAX_LISTED_NAMES`] names, so that a message stays
/// short however large the model.
pub(crate) fn name_list<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let mut shown: Vec<String> = names
        .take(MAX_LISTED_NAMES)
        .map(|n| format!("`{n}`"))
        .collect();
    if shown.is_empty() {
        return "(none)".to_owned();
    }
    if total > shown.len() {
        shown.push(format!("and {} more", total - shown.len()));
    }
    shown.join(", ")
}

/// A model's problems, up to [`MAX_MODEL_ERRORS`]; further ones are only counted, so that a
/// hostile model cannot make the error list itself large.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    list: Vec<ModelError>,
    dropped: usize,
    stopped: bool,
}

impl Problems {
    pub(crate) fn push(&mut self, error: ModelError) {
        if self.list.len() < MAX_MODEL_ERRORS {
            self.list.push(error);
        } else {
            self.dropped += 1;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether no more problems will be listed (work that only finds problems may stop).
    pub(crate) fn full(&self) -> bool {
        self.list.len() >= MAX_MODEL_ERRORS
    }

    /// Records that reading stopped early because the list is full.
    pub(crate) fn stop(&mut self) {
        self.stopped = true;
    }

    pub(crate) fn into_errors(mut self) -> ModelErrors {
        self.list.sort_by_key(|e| (e.line, e.column));
        if self.dropped > 0 || self.stopped {
            let last = self.list.last().map_or((1, 1), |e| (e.line, e.column));
            let more = if self.dropped > 0 {
                format!("{} more problems are not listed", self.dropped)
            } else {
                "reading stopped here, so more problems may follow".to_owned()
            };
            self.list.push(ModelError {
                line: last.0,
                column: last.1,
                path: None,
                message: format!(
                    "{more}: at most {MAX_MODEL_ERRORS} are reported (the limit of problems per model); fix these first"
                ),
            });
        }
        ModelErrors(self.list)
    }
}

fn check_size(text: &str) -> Result<(), ModelErrors> {
    if text.len() > MAX_MODEL_BYTES {
        return Err(ModelErrors(vec![ModelError {
            line: 1,
            column: 1,
            path: None,
            message: format!(
                "the model is {} bytes, more than the limit of {MAX_MODEL_BYTES} bytes of model text",
                text.len()
            ),
        }]));
    }
    Ok(())
}

fn err(problems: &mut Problems, pos: Pos, path: Option<String>, message: String) {
    problems.push(ModelError {
        line: pos.line.max(1),
        column: pos.column.max(1),
        path,
        message,
    });
}

/// The position of a rewrite: its own for a named leaf, otherwise that of its first named leaf,
/// otherwise `fallback`.
fn rewrite_pos(mut rewrite: &Rewrite, fallback: Pos) -> Pos {
    loop {
        match rewrite {
            Rewrite::Computed { pos, .. } | Rewrite::TupleToUserset { pos, .. } => return *pos,
            Rewrite::This => return fallback,
            Rewrite::Union(children) | Rewrite::Intersection(children) => match children.first() {
                Some(first) => rewrite = first,
                None => return fallback,
            },
            Rewrite::Difference(base, _) => rewrite = base,
        }
    }
}

/// One step of a JSON path inside a rewrite.
#[derive(Clone, Copy)]
enum Step {
    Root,
    Child(&'static str, usize),
    Base,
    Subtract,
}

fn step_path(arena: &[(usize, Step)], mut at: usize, relation_path: &str) -> String {
    let mut steps = Vec::new();
    while let Some(&(parent, step)) = arena.get(at) {
        if matches!(step, Step::Root) {
            break;
        }
        steps.push(step);
        at = parent;
    }
    let mut path = relation_path.to_owned();
    for step in steps.iter().rev() {
        match step {
            Step::Root => {}
            Step::Child(key, index) => path.push_str(&format!(".{key}.child[{index}]")),
            Step::Base => path.push_str(".difference.base"),
            Step::Subtract => path.push_str(".difference.subtract"),
        }
    }
    path
}

/// Checks the size limits on a syntax tree, without recursion (a tree handed to
/// [`Model::from_ast`] may be arbitrarily deep). Every later step relies on these bounds.
fn check_limits(ast: &ModelAst, json: bool, problems: &mut Problems) {
    if let Some(extra) = ast.types.get(MAX_TYPES) {
        err(
            problems,
            extra.pos,
            json.then(|| format!("type_definitions[{MAX_TYPES}]")),
            format!(
                "the model defines {} types, more than the limit of {MAX_TYPES} types per model",
                ast.types.len()
            ),
        );
    }
    let mut terms = 0usize;
    let mut terms_crossed: Option<(Pos, Option<String>)> = None;
    let mut arena: Vec<(usize, Step)> = Vec::new();
    let mut stack: Vec<(&Rewrite, usize, usize)> = Vec::new();
    for (type_index, type_def) in ast.types.iter().enumerate() {
        let relation_path = |name: &str| format!("type_definitions[{type_index}].relations.{name}");
        if let Some(extra) = type_def.relations.get(MAX_RELATIONS_PER_TYPE) {
            err(
                problems,
                extra.pos,
                json.then(|| relation_path(&extra.name)),
                format!(
                    "type `{}` defines {} relations, more than the limit of {MAX_RELATIONS_PER_TYPE} relations per type",
                    type_def.name,
                    type_def.relations.len()
                ),
            );
        }
        for relation in &type_def.relations {
            let name = format!("{}#{}", type_def.name, relation.name);
            if let Some(extra) = relation.directly_related.get(MAX_DIRECT_TYPES) {
                err(
                    problems,
                    extra.pos,
                    json.then(|| {
                        format!(
                            "type_definitions[{type_index}].metadata.relations.{}.directly_related_user_types[{MAX_DIRECT_TYPES}]",
                            relation.name
                        )
                    }),
                    format!(
                        "`{name}` lists {} directly related types, more than the limit of {MAX_DIRECT_TYPES} per relation",
                        relation.directly_related.len()
                    ),
                );
            }
            let rpath = relation_path(&relation.name);
            arena.clear();
            arena.push((0, Step::Root));
            stack.clear();
            stack.push((&relation.rewrite, 0, 0));
            let mut deepest = 0usize;
            let mut too_deep: Option<(Pos, usize)> = None;
            while let Some((rewrite, depth, at)) = stack.pop() {
                terms += 1;
                if terms > MAX_REWRITE_TERMS && terms_crossed.is_none() {
                    terms_crossed = Some((relation.pos, json.then(|| rpath.clone())));
                }
                deepest = deepest.max(depth);
                // Deeper levels only raise the count; the walk goes on to report it.
                if depth > MAX_REWRITE_DEPTH && too_deep.is_none() {
                    too_deep = Some((rewrite_pos(rewrite, relation.pos), at));
                }
                let (key, word, children) = match rewrite {
                    Rewrite::Union(children) => ("union", "or", children),
                    Rewrite::Intersection(children) => ("intersection", "and", children),
                    Rewrite::Difference(base, subtract) => {
                        arena.push((at, Step::Base));
                        stack.push((base, depth + 1, arena.len() - 1));
                        arena.push((at, Step::Subtract));
                        stack.push((subtract, depth + 1, arena.len() - 1));
                        continue;
                    }
                    _ => continue,
                };
                if let Some(extra) = children.get(MAX_REWRITE_OPERANDS) {
                    err(
                        problems,
                        rewrite_pos(extra, relation.pos),
                        json.then(|| step_path(&arena, at, &rpath) + &format!(".{key}.child")),
                        format!(
                            "an `{word}` in `{name}` has {} operands, more than the limit of {MAX_REWRITE_OPERANDS} operands per `or`/`and`",
                            children.len()
                        ),
                    );
                }
                for (index, child) in children.iter().enumerate().rev() {
                    arena.push((at, Step::Child(key, index)));
                    stack.push((child, depth + 1, arena.len() - 1));
                }
            }
            if let Some((pos, at)) = too_deep {
                err(
                    problems,
                    pos,
                    json.then(|| step_path(&arena, at, &rpath)),
                    format!(
                        "the rewrite of `{name}` nests {deepest} levels deep, more than the limit of {MAX_REWRITE_DEPTH} levels"
                    ),
                );
            }
        }
    }
    if let Some((pos, path)) = terms_crossed {
        err(
            problems,
            pos,
            path,
            format!(
                "the model's rewrites have {terms} terms (relation names, `[...]`, `x from y`, operators), more than the limit of {MAX_REWRITE_TERMS} terms per model; the limit is crossed here"
            ),
        );
    }
    if let Some(extra) = ast.conditions.get(MAX_CONDITIONS) {
        err(
            problems,
            extra.pos,
            json.then(|| format!("conditions.{}", extra.name)),
            format!(
                "the model defines {} conditions, more than the limit of {MAX_CONDITIONS} conditions per model",
                ast.conditions.len()
            ),
        );
    }
    for condition in &ast.conditions {
        if condition.params.len() > MAX_CONDITION_PARAMETERS {
            err(
                problems,
                condition.pos,
                json.then(|| format!("conditions.{}.parameters", condition.name)),
                format!(
                    "condition `{}` declares {} parameters, more than the limit of {MAX_CONDITION_PARAMETERS} parameters per condition",
                    condition.name,
                    condition.params.len()
                ),
            );
        }
    }
}

fn compile(ast: ModelAst, errors: &mut Problems, json: bool) -> Model {
    let path = |type_index: usize, relation: Option<&str>| -> Option<String> {
        json.then(|| match relation {
            Some(relation) => format!("type_definitions[{type_index}].relations.{relation}"),
            None => format!("type_definitions[{type_index}]"),
        })
    };
    let mut type_ids = FxHashMap::default();
    let mut type_names = Vec::new();
    for (index, type_def) in ast.types.iter().enumerate() {
        if type_ids.contains_key(&type_def.name) {
            err(
                errors,
                type_def.pos,
                path(index, None),
                format!(
                    "type `{}` is defined twice; merge the definitions",
                    type_def.name
                ),
            );
            continue;
        }
        type_ids.insert(type_def.name.clone(), type_names.len() as u32);
        type_names.push(type_def.name.clone());
    }
    let mut relation_ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut relation_names = Vec::new();
    for type_def in &ast.types {
        for relation in &type_def.relations {
            if !relation_ids.contains_key(&relation.name) {
                relation_ids.insert(relation.name.clone(), relation_names.len() as u32);
                relation_names.push(relation.name.clone());
            }
        }
    }
    // Conditions.
    let mut condition_ids = FxHashMap::default();
    let mut conditions = Vec::new();
    for condition in &ast.conditions {
        let cpath = json.then(|| format!("conditions.{}", condition.name));
        if condition_ids.contains_key(&condition.name) {
            err(
                errors,
                condition.pos,
                cpath,
                format!("condition `{}` is defined twice", condition.name),
            );
            continue;
        }
        match CompiledCondition::compile(&condition.name, &condition.expression, &condition.params)
        {
            Ok(compiled) => {
                condition_ids.insert(condition.name.clone(), conditions.len() as u32);
                conditions.push(CCondition {
                    name: condition.name.clone(),
                    params: condition.params.clone(),
                    compiled,
                });
            }
            Err(problems) => {
                for problem in problems {
                    let pos = if json {
                        condition.expression_pos
                    } else {
                        Pos {
                            line: condition.expression_pos.line + problem.line - 1,
                            column: if problem.line == 1 {
                                condition.expression_pos.column + problem.column - 1
                            } else {
                                problem.column
                            },
                        }
                    };
                    err(errors, pos, cpath.clone(), problem.message);
                }
                // Register the name anyway so uses of it are not reported as unknown.
                condition_ids.insert(condition.name.clone(), u32::MAX);
            }
        }
    }
    // Relations: first pass collects which relations each type has (per type, so the cost is
    // the number of definitions, not types × relation names).
    let type_count = type_names.len();
    let mut defined: Vec<FxHashSet<u32>> = vec![FxHashSet::default(); type_count];
    for type_def in &ast.types {
        let Some(&t) = type_ids.get(&type_def.name) else {
            continue;
        };
        for relation in &type_def.relations {
            if let Some(&r) = relation_ids.get(&relation.name) {
                defined[t as usize].insert(r);
            }
        }
    }
    let tables = Tables {
        type_ids: &type_ids,
        relation_ids: &relation_ids,
        defined: &defined,
        valid_ttu: std::cell::RefCell::new(FxHashSet::default()),
    };
    let mut relations: Vec<FxHashMap<u32, CRelation>> =
        (0..type_count).map(|_| FxHashMap::default()).collect();
    let mut seen_types = vec![false; type_count];
    for (type_index, type_def) in ast.types.iter().enumerate() {
        let Some(&t) = type_ids.get(&type_def.name) else {
            continue;
        };
        if std::mem::replace(&mut seen_types[t as usize], true) {
            continue;
        }
        for (relation_index, relation) in type_def.relations.iter().enumerate() {
            let rpath = path(type_index, Some(&relation.name));
            let Some(&r) = relation_ids.get(&relation.name) else {
                continue;
            };
            if relations[t as usize].contains_key(&r) {
                err(
                    errors,
                    relation.pos,
                    rpath,
                    format!(
                        "relation `{}` is defined twice in type `{}`",
                        relation.name, type_def.name
                    ),
                );
                continue;
            }
            let mut direct = Vec::new();
            for d in &relation.directly_related {
                let Some(&dt) = type_ids.get(&d.type_name) else {
                    err(
                        errors,
                        d.pos,
                        rpath.clone(),
                        format!(
                            "type `{}` in the restriction of `{}#{}` is not defined; define `type {}` or use one of {}",
                            d.type_name,
                            type_def.name,
                            relation.name,
                            d.type_name,
                            name_list(type_names.iter().map(String::as_str))
                        ),
                    );
                    continue;
                };
                let kind = match &d.relation {
                    Some(dr) => match relation_ids
                        .get(dr)
                        .filter(|&&id| defined[dt as usize].contains(&id))
                    {
                        Some(&id) => DirectKind::Userset(id),
                        None => {
                            err(
                                errors,
                                d.pos,
                                rpath.clone(),
                                format!(
                                    "`{}#{dr}`: type `{}` has no relation `{dr}`",
                                    d.type_name, d.type_name
                                ),
                            );
                            continue;
                        }
                    },
                    None if d.wildcard => DirectKind::Wildcard,
                    None => DirectKind::Plain,
                };
                let condition = match &d.condition {
                    Some(name) => match condition_ids.get(name) {
                        Some(&id) => Some(id),
                        None => {
                            err(
                                errors,
                                d.pos,
                                rpath.clone(),
                                format!(
                                    "condition `{name}` is not defined; add `condition {name}(...) {{ ... }}` or remove `with {name}`"
                                ),
                            );
                            continue;
                        }
                    },
                    None => None,
                };
                direct.push(CDirect {
                    type_id: dt,
                    kind,
                    condition,
                });
            }
            let has_this = contains_this(&relation.rewrite);
            if has_this && relation.directly_related.is_empty() {
                err(
                    errors,
                    relation.pos,
                    rpath.clone(),
                    format!(
                        "relation `{}#{}` allows direct tuples but names no type; list them, e.g. `[user]`",
                        type_def.name, relation.name
                    ),
                );
            }
            if !has_this && !relation.directly_related.is_empty() {
                err(
                    errors,
                    relation.pos,
                    rpath.clone(),
                    format!(
                        "relation `{}#{}` lists directly related types but its rewrite has no `this`",
                        type_def.name, relation.name
                    ),
                );
            }
            let place = Place {
                t,
                type_def,
                relation_name: &relation.name,
                rpath: &rpath,
            };
            let rewrite = compile_rewrite(&relation.rewrite, &place, &tables, errors);
            let monotone = rewrite.monotone();
            let mut leaves = Vec::new();
            rewrite.leaves(false, &mut leaves);
            let excludes = rewrite.excludes();
            relations[t as usize].insert(
                r,
                CRelation {
                    rewrite,
                    direct,
                    monotone,
                    excludes,
                    leaves: leaves.into_boxed_slice(),
                    ast_index: (type_index as u32, relation_index as u32),
                },
            );
        }
    }
    let mut model = Model {
        ast,
        type_names,
        type_ids,
        relation_names,
        relation_ids,
        relations,
        conditions,
        condition_ids,
        dependents: FxHashMap::default(),
        inputs: FxHashMap::default(),
        recursive: FxHashSet::default(),
        weighable: false,
    };
    if errors.is_empty() {
        link(&mut model);
        check_resolvable(&model, errors, json);
    }
    if errors.is_empty() {
        check_openfga_rules(&model.ast, errors, json);
    }
    // Drop placeholder ids of conditions that failed to compile.
    model.condition_ids.retain(|_, id| *id != u32::MAX);
    model
}

fn contains_this(rewrite: &Rewrite) -> bool {
    match rewrite {
        Rewrite::This => true,
        Rewrite::Computed { .. } | Rewrite::TupleToUserset { .. } => false,
        Rewrite::Union(c) | Rewrite::Intersection(c) => c.iter().any(contains_this),
        Rewrite::Difference(a, b) => contains_this(a) || contains_this(b),
    }
}

/// The name tables a rewrite is compiled against.
struct Tables<'a> {
    type_ids: &'a FxHashMap<String, u32>,
    relation_ids: &'a FxHashMap<String, u32>,
    /// Per type: the relation ids it defines.
    defined: &'a [FxHashSet<u32>],
    /// `computed from tupleset` leaves already found valid, per `(type, tupleset, computed)`:
    /// a model may repeat one many times, and validating it walks the tupleset's types.
    valid_ttu: std::cell::RefCell<FxHashSet<(u32, u32, u32)>>,
}

/// The relation whose rewrite is being compiled.
struct Place<'a> {
    t: u32,
    type_def: &'a TypeDef,
    relation_name: &'a str,
    rpath: &'a Option<String>,
}

/// Compiles one rewrite. Recursion is bounded by [`MAX_REWRITE_DEPTH`], checked before.
fn compile_rewrite(
    rewrite: &Rewrite,
    place: &Place<'_>,
    tables: &Tables<'_>,
    errors: &mut Problems,
) -> CRewrite {
    let Place {
        t,
        type_def,
        relation_name,
        rpath,
    } = *place;
    let here = |r: &str| {
        tables
            .relation_ids
            .get(r)
            .copied()
            .filter(|id| tables.defined[t as usize].contains(id))
    };
    let this = CRewrite::Leaf(Leaf::This);
    match rewrite {
        Rewrite::This => this,
        Rewrite::Computed { relation, pos } => match here(relation) {
            Some(id) => CRewrite::Leaf(Leaf::Computed(id)),
            None => {
                err(
                    errors,
                    *pos,
                    rpath.clone(),
                    format!(
                        "`{}#{relation_name}` refers to `{relation}`, which is not a relation of type `{}`; define it or use one of {}",
                        type_def.name,
                        type_def.name,
                        name_list(type_def.relations.iter().map(|r| r.name.as_str()))
                    ),
                );
                this
            }
        },
        Rewrite::TupleToUserset {
            tupleset,
            computed,
            pos,
        } => {
            let known = here(tupleset).zip(tables.relation_ids.get(computed).copied());
            if let Some((ts, id)) = known
                && tables.valid_ttu.borrow().contains(&(t, ts, id))
            {
                return CRewrite::Leaf(Leaf::Ttu {
                    tupleset: ts,
                    computed: id,
                });
            }
            let Some(ts) = here(tupleset) else {
                err(
                    errors,
                    *pos,
                    rpath.clone(),
                    format!(
                        "`{computed} from {tupleset}` in `{}#{relation_name}`: type `{}` has no relation `{tupleset}`; define it with direct types, e.g. `define {tupleset}: [folder]`",
                        type_def.name, type_def.name
                    ),
                );
                return this;
            };
            let Some(ts_def) = type_def.relations.iter().find(|r| r.name == *tupleset) else {
                return this;
            };
            let direct_only = matches!(ts_def.rewrite, Rewrite::This)
                && ts_def
                    .directly_related
                    .iter()
                    .all(|d| d.relation.is_none() && !d.wildcard);
            if !direct_only {
                err(
                    errors,
                    *pos,
                    rpath.clone(),
                    format!(
                        "`{computed} from {tupleset}` in `{}#{relation_name}`: the tupleset relation `{tupleset}` must be directly related to object types only (e.g. `define {tupleset}: [folder]`), without usersets, wildcards or rewrites",
                        type_def.name
                    ),
                );
                return this;
            }
            // As OpenFGA: valid when at least one type the tupleset may point at defines the
            // computed relation; objects of the other types contribute nothing.
            let computed_id = tables.relation_ids.get(computed).copied();
            let some_defines = computed_id.is_some_and(|id| {
                ts_def.directly_related.iter().any(|d| {
                    tables
                        .type_ids
                        .get(&d.type_name)
                        .is_some_and(|&target| tables.defined[target as usize].contains(&id))
                })
            });
            match computed_id {
                Some(id) if some_defines => {
                    tables.valid_ttu.borrow_mut().insert((t, ts, id));
                    CRewrite::Leaf(Leaf::Ttu {
                        tupleset: ts,
                        computed: id,
                    })
                }
                _ => {
                    let mut types: Vec<&str> = Vec::new();
                    for d in &ts_def.directly_related {
                        if !types.contains(&d.type_name.as_str()) {
                            types.push(&d.type_name);
                        }
                    }
                    err(
                        errors,
                        *pos,
                        rpath.clone(),
                        format!(
                            "`{computed} from {tupleset}` in `{}#{relation_name}`: none of the types `{tupleset}` may point at ({}) has a relation `{computed}`; define `{computed}` on at least one of them",
                            type_def.name,
                            name_list(types.into_iter())
                        ),
                    );
                    this
                }
            }
        }
        Rewrite::Union(children) => CRewrite::Union(
            children
                .iter()
                .map(|c| compile_rewrite(c, place, tables, errors))
                .collect(),
        ),
        Rewrite::Intersection(children) => CRewrite::Intersection(
            children
                .iter()
                .map(|c| compile_rewrite(c, place, tables, errors))
                .collect(),
        ),
        Rewrite::Difference(a, b) => {
            let a = compile_rewrite(a, place, tables, errors);
            let b = compile_rewrite(b, place, tables, errors);
            CRewrite::Difference(Box::new((a, b)))
        }
    }
}

/// Reports relations that can never hold for any tuples (e.g. `a: b`, `b: a`).
///
/// A least fixpoint computed in one pass over a graph of the rewrite terms: each term counts
/// how many of its operands have become satisfiable (`or` and `x from y` need one, `and` all,
/// `but not` its base), and a relation that becomes satisfiable notifies the terms that read
/// it. Linear in the number of terms and `x from y` targets, where repeated sweeps over every
/// relation would be quadratic.
fn check_resolvable(model: &Model, errors: &mut Problems, json: bool) {
    const ROOT: u32 = u32::MAX;
    /// Marks a watcher that is a shared `x from y` term rather than a rewrite term.
    const SHARED: u32 = 1 << 31;
    struct Term {
        /// The enclosing term, or `ROOT` for a relation's whole rewrite.
        parent: u32,
        /// The relation (slot) the term belongs to.
        slot: u32,
        needed: u32,
        have: u32,
    }
    // Slots: one per defined relation.
    let mut slots: Vec<(u32, u32)> = Vec::new();
    let mut slot_of: FxHashMap<(u32, u32), u32> = FxHashMap::default();
    for (t, relations) in model.relations.iter().enumerate() {
        let mut ids: Vec<u32> = relations.keys().copied().collect();
        ids.sort_unstable();
        for r in ids {
            slot_of.insert((t as u32, r), slots.len() as u32);
            slots.push((t as u32, r));
        }
    }
    let mut terms: Vec<Term> = Vec::new();
    let mut watchers: Vec<Vec<u32>> = vec![Vec::new(); slots.len()];
    let mut ready: Vec<u32> = Vec::new();
    // One shared term per distinct `(type, tupleset, computed)`, satisfied when the computed
    // relation can hold on any type the tupleset points at; each `x from y` term waits on it,
    // so a repeated one costs one edge, not one per target type. Shared terms are watchers
    // of the target relations (they are never a relation's root).
    let mut ttu_terms: FxHashMap<(u32, u32, u32), u32> = FxHashMap::default();
    let mut ttu_watchers: Vec<Vec<u32>> = Vec::new();
    let mut stack: Vec<(&CRewrite, u32)> = Vec::new();
    for (slot, &(t, r)) in slots.iter().enumerate() {
        let Some(relation) = model.relation(t, r) else {
            continue;
        };
        stack.push((&relation.rewrite, ROOT));
        while let Some((rewrite, parent)) = stack.pop() {
            let id = terms.len() as u32;
            let needed = match rewrite {
                CRewrite::Intersection(children) => children.len() as u32,
                _ => 1,
            };
            terms.push(Term {
                parent,
                slot: slot as u32,
                needed,
                have: 0,
            });
            match rewrite {
                CRewrite::Leaf(Leaf::This) => {
                    if !relation.direct.is_empty() {
                        ready.push(id);
                    }
                }
                CRewrite::Leaf(Leaf::Computed(source)) => {
                    if let Some(&s) = slot_of.get(&(t, *source)) {
                        watchers[s as usize].push(id);
                    }
                }
                CRewrite::Leaf(Leaf::Ttu { tupleset, computed }) => {
                    let shared = match ttu_terms.get(&(t, *tupleset, *computed)) {
                        Some(&shared) => shared,
                        None => {
                            let shared = ttu_watchers.len() as u32;
                            ttu_watchers.push(Vec::new());
                            ttu_terms.insert((t, *tupleset, *computed), shared);
                            let mut targets: Vec<u32> = model
                                .relation(t, *tupleset)
                                .map(|ts| ts.direct.iter().map(|d| d.type_id).collect())
                                .unwrap_or_default();
                            targets.sort_unstable();
                            targets.dedup();
                            for target in targets {
                                if let Some(&s) = slot_of.get(&(target, *computed)) {
                                    watchers[s as usize].push(SHARED | shared);
                                }
                            }
                            shared
                        }
                    };
                    ttu_watchers[shared as usize].push(id);
                }
                CRewrite::Union(children) | CRewrite::Intersection(children) => {
                    stack.extend(children.iter().map(|c| (c, id)));
                }
                // Only the base decides whether `a but not b` can ever hold.
                CRewrite::Difference(pair) => stack.push((&pair.0, id)),
            }
        }
    }
    let mut ok = vec![false; slots.len()];
    while let Some(id) = ready.pop() {
        let Some(term) = terms.get(id as usize) else {
            continue;
        };
        let (parent, slot) = (term.parent, term.slot);
        if parent == ROOT {
            if !std::mem::replace(&mut ok[slot as usize], true) {
                for &watcher in &watchers[slot as usize] {
                    if watcher & SHARED != 0 {
                        // A shared term needs one target: on its first, release its leaves
                        // (each needs one operand) and forget them.
                        let list = ttu_watchers
                            .get_mut((watcher & !SHARED) as usize)
                            .map(std::mem::take)
                            .unwrap_or_default();
                        ready.extend(list);
                        continue;
                    }
                    let w = &mut terms[watcher as usize];
                    w.have += 1;
                    if w.have == w.needed {
                        ready.push(watcher);
                    }
                }
            }
        } else {
            let p = &mut terms[parent as usize];
            p.have += 1;
            if p.have == p.needed {
                ready.push(parent);
            }
        }
    }
    for (slot, &(t, r)) in slots.iter().enumerate() {
        if ok[slot] {
            continue;
        }
        let Some(relation) = model.relation(t, r) else {
            continue;
        };
        let (type_index, relation_index) = relation.ast_index;
        let Some(type_def) = model.ast.types.get(type_index as usize) else {
            continue;
        };
        let Some(def) = type_def.relations.get(relation_index as usize) else {
            continue;
        };
        err(
            errors,
            def.pos,
            json.then(|| format!("type_definitions[{type_index}].relations.{}", def.name)),
            format!(
                "relation `{}#{}` can never be satisfied: every path through it loops back to itself or needs a relation that can never hold; give it (or an operand) direct types, e.g. `[user]`",
                type_def.name, def.name
            ),
        );
    }
}

fn link(model: &mut Model) {
    let mut dependents: FxHashMap<(u32, u32), Vec<Dependent>> = FxHashMap::default();
    let mut inputs: FxHashMap<(u32, u32), Vec<(u32, u32)>> = FxHashMap::default();
    let mut leaves = Vec::new();
    for (t, relations) in model.relations.iter().enumerate() {
        let t = t as u32;
        for (&r, relation) in relations {
            leaves.clear();
            relation.rewrite.leaves(false, &mut leaves);
            let entry = inputs.entry((t, r)).or_default();
            for leaf in &leaves {
                match *leaf {
                    Leaf::This => {
                        for d in &relation.direct {
                            if let DirectKind::Userset(ur) = d.kind {
                                entry.push((d.type_id, ur));
                            }
                        }
                    }
                    Leaf::Computed(source) => {
                        entry.push((t, source));
                        dependents
                            .entry((t, source))
                            .or_default()
                            .push(Dependent::Computed(r));
                    }
                    Leaf::Ttu { tupleset, computed } => {
                        let targets = model.relations[t as usize]
                            .get(&tupleset)
                            .map(|ts| ts.direct.as_slice())
                            .unwrap_or_default();
                        for target in targets.iter().map(|d| d.type_id) {
                            // Types without the computed relation contribute nothing.
                            if !model.relations[target as usize].contains_key(&computed) {
                                continue;
                            }
                            entry.push((target, computed));
                            dependents.entry((target, computed)).or_default().push(
                                Dependent::Ttu {
                                    type_id: t,
                                    relation: r,
                                    tupleset,
                                },
                            );
                        }
                    }
                }
            }
        }
    }
    // Each listed once: a relation that names another many times (`a or a or ...`, or a
    // tupleset listing a type twice) must not make every query step repeat per mention.
    for list in inputs.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    for list in dependents.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    model.dependents = dependents;
    model.inputs = inputs;
    model.weighable = recursive::weighable(model);
    model.recursive = recursive::recursive_relations(model);
}

/// OpenFGA's longest relation name.
pub const MAX_RELATION_NAME: usize = 50;
/// Most steps of the entrypoint search per model (see [`has_entrypoint`]).
const ENTRYPOINT_BUDGET: u64 = 200_000;
/// OpenFGA's longest type name.
pub const MAX_TYPE_NAME: usize = 254;

/// The relations of a model by type and name, for [`check_openfga_rules`].
type Defs<'a> = FxHashMap<&'a str, FxHashMap<&'a str, &'a RelationDef>>;

/// Relations already entered on the way to a rewrite, per type: `false` while being resolved,
/// `true` once known to have a direct entry. Per-type tables are shared between a walk and the
/// walks it starts (OpenFGA's validator copies only the outer table), which decides which
/// models it refuses, so this mirrors it.
type Entered<'a> = FxHashMap<&'a str, std::rc::Rc<std::cell::RefCell<FxHashMap<&'a str, bool>>>>;

/// The rules OpenFGA's model validator adds to ours, so that a model is refused exactly when
/// OpenFGA refuses it: relation names at most [`MAX_RELATION_NAME`] characters and type names
/// at most [`MAX_TYPE_NAME`]; every relation has an *entrypoint* (some way in from a direct
/// type, where `and` and `but not` need one in every operand); and no relation reaches itself
/// through computed relations of the same object (`a: [user] or b`, `b: [user] or a`), even
/// where direct types make each satisfiable.
fn check_openfga_rules(ast: &ModelAst, errors: &mut Problems, json: bool) {
    let mut defs: Defs<'_> = FxHashMap::default();
    for type_def in &ast.types {
        let relations = defs.entry(type_def.name.as_str()).or_default();
        for relation in &type_def.relations {
            relations.insert(relation.name.as_str(), relation);
        }
    }
    let budget = std::cell::Cell::new(ENTRYPOINT_BUDGET);
    let mut order: Vec<(usize, &TypeDef)> = ast.types.iter().enumerate().collect();
    order.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    for (type_index, type_def) in order {
        if type_def.name.chars().count() > MAX_TYPE_NAME {
            err(
                errors,
                type_def.pos,
                json.then(|| format!("type_definitions[{type_index}]")),
                format!(
                    "type name `{}` is longer than {MAX_TYPE_NAME} characters",
                    type_def.name
                ),
            );
        }
        let mut relations: Vec<&RelationDef> = type_def.relations.iter().collect();
        relations.sort_by(|a, b| a.name.cmp(&b.name));
        let mut finished = FxHashSet::default();
        for relation in relations {
            let path =
                json.then(|| format!("type_definitions[{type_index}].relations.{}", relation.name));
            let name = format!("{}#{}", type_def.name, relation.name);
            if relation.name.chars().count() > MAX_RELATION_NAME {
                err(
                    errors,
                    relation.pos,
                    path,
                    format!(
                        "relation name `{}` is longer than {MAX_RELATION_NAME} characters",
                        relation.name
                    ),
                );
                continue;
            }
            let (entry, looped) = has_entrypoint(
                &defs,
                &type_def.name,
                &relation.name,
                &relation.rewrite,
                &FxHashMap::default(),
                &budget,
            );
            if !entry {
                let why = if looped {
                    "it only leads back to itself (a potential loop)"
                } else {
                    "no path from it reaches a directly related type"
                };
                err(
                    errors,
                    relation.pos,
                    path,
                    format!(
                        "`{name}` has no entrypoint: {why}; every relation needs a way in from direct types, and `and` and `but not` need one in each operand"
                    ),
                );
                continue;
            }
            if computed_cycle(
                &defs,
                &type_def.name,
                &relation.name,
                &mut FxHashSet::default(),
                &mut finished,
            ) {
                err(
                    errors,
                    relation.pos,
                    path,
                    format!(
                        "`{name}` reaches itself through computed relations of the same object (a cycle); OpenFGA refuses such models"
                    ),
                );
            }
        }
    }
}

/// Whether `rewrite` (of `type_name#relation`) has an entrypoint, and whether the search met
/// a relation already being resolved. See [`check_openfga_rules`].
fn has_entrypoint<'a>(
    defs: &Defs<'a>,
    type_name: &'a str,
    relation: &'a str,
    rewrite: &'a Rewrite,
    entered: &Entered<'a>,
    budget: &std::cell::Cell<u64>,
) -> (bool, bool) {
    // The search is exponential in the worst case; out of budget it answers "has one" (the
    // relation is known satisfiable from `check_resolvable`), so huge models are not refused
    // on this rule alone.
    if budget.get() == 0 {
        return (true, false);
    }
    budget.set(budget.get() - 1);
    let mut own = entered.clone();
    own.entry(type_name)
        .or_default()
        .borrow_mut()
        .insert(relation, false);
    let known = |table: &Entered<'a>, t: &str, r: &str| -> Option<bool> {
        table.get(t).and_then(|m| m.borrow().get(r).copied())
    };
    let Some(def) = defs.get(type_name).and_then(|m| m.get(relation)) else {
        return (false, false);
    };
    match rewrite {
        Rewrite::This => {
            for direct in &def.directly_related {
                let Some(target_relation) = direct.relation.as_deref() else {
                    if let Some(table) = own.get(type_name) {
                        table.borrow_mut().insert(relation, true);
                    }
                    return (true, false);
                };
                let target_type = direct.type_name.as_str();
                if known(&own, target_type, target_relation).is_some() {
                    continue;
                }
                let Some(target) = defs.get(target_type).and_then(|m| m.get(target_relation))
                else {
                    return (false, false);
                };
                if has_entrypoint(
                    defs,
                    target_type,
                    target_relation,
                    &target.rewrite,
                    &own,
                    budget,
                )
                .0
                {
                    return (true, false);
                }
            }
            (false, false)
        }
        Rewrite::Computed {
            relation: other, ..
        } => {
            if let Some(value) = known(&own, type_name, other) {
                return (value, true);
            }
            match defs.get(type_name).and_then(|m| m.get(other.as_str())) {
                Some(target) => {
                    has_entrypoint(defs, type_name, other, &target.rewrite, &own, budget)
                }
                None => (false, false),
            }
        }
        Rewrite::TupleToUserset {
            tupleset, computed, ..
        } => {
            let Some(set) = defs.get(type_name).and_then(|m| m.get(tupleset.as_str())) else {
                return (false, false);
            };
            for direct in &set.directly_related {
                let target_type = direct.type_name.as_str();
                let Some(target) = defs.get(target_type).and_then(|m| m.get(computed.as_str()))
                else {
                    continue;
                };
                if let Some(value) = known(&own, target_type, computed) {
                    if value {
                        return (true, false);
                    }
                    continue;
                }
                if has_entrypoint(defs, target_type, computed, &target.rewrite, &own, budget).0 {
                    return (true, false);
                }
            }
            (false, false)
        }
        Rewrite::Union(children) => {
            let mut looped = false;
            for child in children {
                let (entry, child_looped) =
                    has_entrypoint(defs, type_name, relation, child, entered, budget);
                if entry {
                    return (true, false);
                }
                looped |= child_looped;
            }
            (false, looped)
        }
        Rewrite::Intersection(children) => {
            for child in children {
                let (entry, looped) =
                    has_entrypoint(defs, type_name, relation, child, entered, budget);
                if !entry {
                    return (false, looped);
                }
            }
            (true, false)
        }
        Rewrite::Difference(base, subtract) => {
            for child in [&**base, &**subtract] {
                let (entry, looped) =
                    has_entrypoint(defs, type_name, relation, child, entered, budget);
                if !entry {
                    return (false, looped);
                }
            }
            (true, false)
        }
    }
}

/// Whether `type_name#relation` reaches a cycle of computed relations of the same type
/// (`x from y` and direct types end the walk). Depth-first with three states, so linear in
/// the relations and computed operands of the type: `finished` holds relations known to reach
/// no cycle, `path` those being walked.
fn computed_cycle<'a>(
    defs: &Defs<'a>,
    type_name: &'a str,
    relation: &'a str,
    path: &mut FxHashSet<&'a str>,
    finished: &mut FxHashSet<&'a str>,
) -> bool {
    if finished.contains(relation) {
        return false;
    }
    if !path.insert(relation) {
        return true;
    }
    let Some(def) = defs.get(type_name).and_then(|m| m.get(relation)) else {
        path.remove(relation);
        return false;
    };
    let mut computed = Vec::new();
    let mut stack = vec![&def.rewrite];
    while let Some(rewrite) = stack.pop() {
        match rewrite {
            Rewrite::This | Rewrite::TupleToUserset { .. } => {}
            Rewrite::Computed {
                relation: other, ..
            } => computed.push(other.as_str()),
            Rewrite::Union(children) | Rewrite::Intersection(children) => stack.extend(children),
            Rewrite::Difference(base, subtract) => {
                stack.push(base);
                stack.push(subtract);
            }
        }
    }
    for other in computed {
        if computed_cycle(defs, type_name, other, path, finished) {
            return true;
        }
    }
    path.remove(relation);
    finished.insert(relation);
    false
}
