//! Authorization models: the syntax tree, validation, compilation, and the JSON form.
//!
//! Owns [`Model`] (a validated model plus its compiled, interned form used by the graph),
//! [`ModelError`]/[`ModelErrors`], OpenFGA's JSON `AuthorizationModel` reading and writing, and
//! [`Model::validate_tuple`]. It must not hold tuples or answer queries (that is
//! [`crate::graph`]); DSL lexing and parsing live in [`crate::dsl`].

use std::fmt;

use rustc_hash::FxHashMap;
use serde_json::{Value, json};

use crate::condition::{CompiledCondition, ParamType};
use crate::tuple::{Tuple, User};

/// Largest accepted model text (DSL or JSON), in bytes.
pub const MAX_MODEL_BYTES: usize = 1024 * 1024;
/// Deepest accepted nesting of a relation's rewrite (JSON form and DSL parentheses).
pub const MAX_REWRITE_DEPTH: usize = 32;

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

#[derive(Debug)]
pub(crate) enum CRewrite {
    This,
    Computed(u32),
    Ttu { tupleset: u32, computed: u32 },
    Union(Vec<CRewrite>),
    Intersection(Vec<CRewrite>),
    Difference(Box<CRewrite>, Box<CRewrite>),
}

impl CRewrite {
    fn monotone(&self) -> bool {
        match self {
            CRewrite::This | CRewrite::Computed(_) | CRewrite::Ttu { .. } => true,
            CRewrite::Union(children) => children.iter().all(CRewrite::monotone),
            CRewrite::Intersection(_) | CRewrite::Difference(..) => false,
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
}

#[derive(Debug)]
pub(crate) struct CCondition {
    pub name: String,
    pub params: Vec<(String, ParamType)>,
    pub compiled: CompiledCondition,
}

/// A validated, compiled OpenFGA authorization model (schema 1.1).
#[derive(Debug)]
pub struct Model {
    ast: ModelAst,
    pub(crate) type_names: Vec<String>,
    type_ids: FxHashMap<String, u32>,
    pub(crate) relation_names: Vec<String>,
    relation_ids: FxHashMap<String, u32>,
    /// `[type][relation]`.
    pub(crate) relations: Vec<Vec<Option<CRelation>>>,
    pub(crate) conditions: Vec<CCondition>,
    condition_ids: FxHashMap<String, u32>,
    /// For `(type, relation)`: the relations whose value may grow when it grows, other than
    /// through userset tuples (found in the index): computed relations of the same type and
    /// tuple-to-userset relations of other types.
    pub(crate) dependents: FxHashMap<(u32, u32), Vec<Dependent>>,
    /// For `(type, relation)`: the `(type, relation)` pairs its value is computed from.
    pub(crate) inputs: FxHashMap<(u32, u32), Vec<(u32, u32)>>,
}

/// A relation that reads another one (see [`Model::dependents`]).
#[derive(Debug, Clone, Copy)]
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
        let ast = crate::dsl::parse(text).map_err(ModelErrors)?;
        Model::from_ast(ast, None)
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
        let ast = crate::json::parse(&value, text).map_err(ModelErrors)?;
        Model::from_ast(ast, Some(text))
    }

    /// Validates and compiles a syntax tree. `json_text` is the JSON source, when there is one,
    /// for locating errors.
    pub fn from_ast(ast: ModelAst, json_text: Option<&str>) -> Result<Model, ModelErrors> {
        let mut errors = Vec::new();
        let model = compile(ast, &mut errors, json_text.is_some());
        if errors.is_empty() {
            Ok(model)
        } else {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(ModelErrors(errors))
        }
    }

    /// The syntax tree.
    pub fn ast(&self) -> &ModelAst {
        &self.ast
    }

    /// The model as OpenFGA's JSON `AuthorizationModel` (`schema_version`, `type_definitions`,
    /// `conditions`).
    pub fn to_json(&self) -> Value {
        crate::json::print(&self.ast)
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

    pub(crate) fn relation(&self, type_id: u32, relation: u32) -> Option<&CRelation> {
        self.relations
            .get(type_id as usize)?
            .get(relation as usize)?
            .as_ref()
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
                self.type_names.join(", ")
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
        let allowed = self.allowed_direct(type_id, &tuple.relation);
        let matching: Vec<&CDirect> = relation
            .direct
            .iter()
            .filter(|d| Some(d.type_id) == user_type_id && d.kind == kind)
            .collect();
        if matching.is_empty() {
            return Err(fail(format!(
                "`{}` may not be related directly to `{}#{}`; the model allows {}",
                tuple.user,
                tuple.object.object_type,
                tuple.relation,
                if allowed.is_empty() {
                    "no direct tuples".to_owned()
                } else {
                    allowed
                }
            )));
        }
        match &tuple.condition {
            None => {
                if !matching.iter().any(|d| d.condition.is_none()) {
                    return Err(fail(format!(
                        "the model only allows this user with a condition ({}); add `condition`",
                        self.allowed_direct(type_id, &tuple.relation)
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
                if !matching.iter().any(|d| d.condition == Some(id)) {
                    return Err(fail(format!(
                        "condition `{}` is not allowed here; the model allows {}",
                        condition.name, allowed
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

    fn allowed_direct(&self, type_id: u32, relation: &str) -> String {
        let Some(type_def) = self
            .ast
            .types
            .iter()
            .find(|t| t.name == self.type_names[type_id as usize])
        else {
            return String::new();
        };
        let Some(relation) = type_def.relations.iter().find(|r| r.name == relation) else {
            return String::new();
        };
        if relation.directly_related.is_empty() {
            return String::new();
        }
        let printed = crate::dsl::print(&ModelAst {
            types: vec![TypeDef {
                name: String::new(),
                pos: Pos::default(),
                relations: vec![RelationDef {
                    name: String::new(),
                    pos: Pos::default(),
                    rewrite: Rewrite::This,
                    directly_related: relation.directly_related.clone(),
                }],
            }],
            conditions: Vec::new(),
        });
        printed
            .lines()
            .find_map(|line| line.trim().strip_prefix("define : "))
            .unwrap_or_default()
            .to_owned()
    }
}

fn check_size(text: &str) -> Result<(), ModelErrors> {
    if text.len() > MAX_MODEL_BYTES {
        return Err(ModelErrors(vec![ModelError {
            line: 1,
            column: 1,
            path: None,
            message: format!(
                "the model is {} bytes, more than the limit of {MAX_MODEL_BYTES}",
                text.len()
            ),
        }]));
    }
    Ok(())
}

fn err(errors: &mut Vec<ModelError>, pos: Pos, path: Option<String>, message: String) {
    errors.push(ModelError {
        line: pos.line.max(1),
        column: pos.column.max(1),
        path,
        message,
    });
}

fn compile(ast: ModelAst, errors: &mut Vec<ModelError>, json: bool) -> Model {
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
    for (index, condition) in ast.conditions.iter().enumerate() {
        let cpath = json.then(|| format!("conditions.{}", condition.name));
        let _ = index;
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
    // Relations: first pass collects which relations each type has.
    let type_count = type_names.len();
    let relation_count = relation_names.len();
    let mut defined = vec![vec![false; relation_count]; type_count];
    for type_def in &ast.types {
        let Some(&t) = type_ids.get(&type_def.name) else {
            continue;
        };
        for relation in &type_def.relations {
            let r = relation_ids[&relation.name] as usize;
            if defined[t as usize][r] {
                continue;
            }
            defined[t as usize][r] = true;
        }
    }
    let mut relations: Vec<Vec<Option<CRelation>>> = (0..type_count)
        .map(|_| (0..relation_count).map(|_| None).collect())
        .collect();
    let mut seen_types = vec![false; type_count];
    for (type_index, type_def) in ast.types.iter().enumerate() {
        let Some(&t) = type_ids.get(&type_def.name) else {
            continue;
        };
        if std::mem::replace(&mut seen_types[t as usize], true) {
            continue;
        }
        let mut seen = vec![false; relation_count];
        for relation in &type_def.relations {
            let rpath = path(type_index, Some(&relation.name));
            let r = relation_ids[&relation.name];
            if std::mem::replace(&mut seen[r as usize], true) {
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
                            type_names.join(", ")
                        ),
                    );
                    continue;
                };
                let kind = match &d.relation {
                    Some(dr) => match relation_ids
                        .get(dr)
                        .filter(|&&id| defined[dt as usize][id as usize])
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
            let rewrite = compile_rewrite(
                &relation.rewrite,
                t,
                type_def,
                &relation.name,
                &ast,
                &type_ids,
                &relation_ids,
                &defined,
                errors,
                &rpath,
                0,
            );
            let monotone = rewrite.monotone();
            relations[t as usize][r as usize] = Some(CRelation {
                rewrite,
                direct,
                monotone,
            });
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
    };
    if errors.is_empty() {
        link(&mut model);
        check_resolvable(&model, errors, json);
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

#[allow(
    clippy::too_many_arguments,
    clippy::only_used_in_recursion,
    reason = "one recursive walk with its lookup tables"
)]
fn compile_rewrite(
    rewrite: &Rewrite,
    t: u32,
    type_def: &TypeDef,
    relation_name: &str,
    ast: &ModelAst,
    type_ids: &FxHashMap<String, u32>,
    relation_ids: &FxHashMap<String, u32>,
    defined: &[Vec<bool>],
    errors: &mut Vec<ModelError>,
    rpath: &Option<String>,
    depth: usize,
) -> CRewrite {
    let here = |r: &str| {
        relation_ids
            .get(r)
            .copied()
            .filter(|&id| defined[t as usize][id as usize])
    };
    if depth > MAX_REWRITE_DEPTH {
        err(
            errors,
            type_def.pos,
            rpath.clone(),
            format!(
                "the rewrite of `{}#{relation_name}` nests deeper than {MAX_REWRITE_DEPTH} levels",
                type_def.name
            ),
        );
        return CRewrite::This;
    }
    let recurse = |child: &Rewrite, errors: &mut Vec<ModelError>| {
        compile_rewrite(
            child,
            t,
            type_def,
            relation_name,
            ast,
            type_ids,
            relation_ids,
            defined,
            errors,
            rpath,
            depth + 1,
        )
    };
    match rewrite {
        Rewrite::This => CRewrite::This,
        Rewrite::Computed { relation, pos } => match here(relation) {
            Some(id) => CRewrite::Computed(id),
            None => {
                err(
                    errors,
                    *pos,
                    rpath.clone(),
                    format!(
                        "`{}#{relation_name}` refers to `{relation}`, which is not a relation of type `{}`; define it or use one of {}",
                        type_def.name,
                        type_def.name,
                        relation_list(type_def)
                    ),
                );
                CRewrite::This
            }
        },
        Rewrite::TupleToUserset {
            tupleset,
            computed,
            pos,
        } => {
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
                return CRewrite::This;
            };
            let Some(ts_def) = type_def.relations.iter().find(|r| r.name == *tupleset) else {
                return CRewrite::This;
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
                return CRewrite::This;
            }
            let mut ok = true;
            for d in &ts_def.directly_related {
                let Some(&target) = type_ids.get(&d.type_name) else {
                    continue;
                };
                let has = relation_ids
                    .get(computed)
                    .is_some_and(|&id| defined[target as usize][id as usize]);
                if !has {
                    ok = false;
                    err(
                        errors,
                        *pos,
                        rpath.clone(),
                        format!(
                            "`{computed} from {tupleset}` in `{}#{relation_name}`: `{tupleset}` may point at type `{}`, which has no relation `{computed}`; define `{computed}` on `{}` or remove `{}` from `{tupleset}`",
                            type_def.name, d.type_name, d.type_name, d.type_name
                        ),
                    );
                }
            }
            match (ok, relation_ids.get(computed)) {
                (true, Some(&id)) => CRewrite::Ttu {
                    tupleset: ts,
                    computed: id,
                },
                _ => CRewrite::This,
            }
        }
        Rewrite::Union(children) => {
            CRewrite::Union(children.iter().map(|c| recurse(c, errors)).collect())
        }
        Rewrite::Intersection(children) => {
            CRewrite::Intersection(children.iter().map(|c| recurse(c, errors)).collect())
        }
        Rewrite::Difference(a, b) => {
            let a = recurse(a, errors);
            let b = recurse(b, errors);
            CRewrite::Difference(Box::new(a), Box::new(b))
        }
    }
}

fn relation_list(type_def: &TypeDef) -> String {
    if type_def.relations.is_empty() {
        return "(none)".to_owned();
    }
    type_def
        .relations
        .iter()
        .map(|r| format!("`{}`", r.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reports relations that can never hold for any tuples (e.g. `a: b`, `b: a`).
fn check_resolvable(model: &Model, errors: &mut Vec<ModelError>, json: bool) {
    let types = model.type_names.len();
    let rels = model.relation_names.len();
    let mut ok = vec![vec![false; rels]; types];
    loop {
        let mut changed = false;
        for t in 0..types {
            for r in 0..rels {
                if ok[t][r] {
                    continue;
                }
                if let Some(relation) = model.relations[t][r].as_ref()
                    && resolvable(model, t as u32, relation, &relation.rewrite, &ok)
                {
                    ok[t][r] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for (type_index, type_def) in model.ast.types.iter().enumerate() {
        let Some(t) = model.type_id(&type_def.name) else {
            continue;
        };
        for relation in &type_def.relations {
            let Some(r) = model.relation_id(&relation.name) else {
                continue;
            };
            if !ok[t as usize][r as usize] {
                err(
                    errors,
                    relation.pos,
                    json.then(|| {
                        format!("type_definitions[{type_index}].relations.{}", relation.name)
                    }),
                    format!(
                        "relation `{}#{}` can never be satisfied: every path through it loops back to itself or needs a relation that can never hold; give it (or an operand) direct types, e.g. `[user]`",
                        type_def.name, relation.name
                    ),
                );
            }
        }
    }
}

fn resolvable(
    model: &Model,
    t: u32,
    relation: &CRelation,
    rewrite: &CRewrite,
    ok: &[Vec<bool>],
) -> bool {
    match rewrite {
        CRewrite::This => !relation.direct.is_empty(),
        CRewrite::Computed(r) => ok[t as usize][*r as usize],
        CRewrite::Ttu { tupleset, computed } => model.relation(t, *tupleset).is_some_and(|ts| {
            ts.direct
                .iter()
                .any(|d| ok[d.type_id as usize][*computed as usize])
        }),
        CRewrite::Union(children) => children
            .iter()
            .any(|c| resolvable(model, t, relation, c, ok)),
        CRewrite::Intersection(children) => children
            .iter()
            .all(|c| resolvable(model, t, relation, c, ok)),
        CRewrite::Difference(a, _) => resolvable(model, t, relation, a, ok),
    }
}

/// A `json!` helper kept here so the JSON module can share the rewrite printer.
pub(crate) fn rewrite_json(rewrite: &Rewrite) -> Value {
    match rewrite {
        Rewrite::This => json!({"this": {}}),
        Rewrite::Computed { relation, .. } => {
            json!({"computedUserset": {"object": "", "relation": relation}})
        }
        Rewrite::TupleToUserset {
            tupleset, computed, ..
        } => json!({
            "tupleToUserset": {
                "tupleset": {"object": "", "relation": tupleset},
                "computedUserset": {"object": "", "relation": computed}
            }
        }),
        Rewrite::Union(children) => {
            json!({"union": {"child": children.iter().map(rewrite_json).collect::<Vec<_>>()}})
        }
        Rewrite::Intersection(children) => {
            json!({"intersection": {"child": children.iter().map(rewrite_json).collect::<Vec<_>>()}})
        }
        Rewrite::Difference(a, b) => {
            json!({"difference": {"base": rewrite_json(a), "subtract": rewrite_json(b)}})
        }
    }
}

fn link(model: &mut Model) {
    let mut dependents: FxHashMap<(u32, u32), Vec<Dependent>> = FxHashMap::default();
    let mut inputs: FxHashMap<(u32, u32), Vec<(u32, u32)>> = FxHashMap::default();
    for (t, relations) in model.relations.iter().enumerate() {
        let t = t as u32;
        for (r, relation) in relations.iter().enumerate() {
            let Some(relation) = relation else { continue };
            let r = r as u32;
            let mut leaves = Vec::new();
            collect_leaves(&relation.rewrite, &mut leaves);
            let entry = inputs.entry((t, r)).or_default();
            for leaf in leaves {
                match leaf {
                    CRewrite::This => {
                        for d in &relation.direct {
                            if let DirectKind::Userset(ur) = d.kind {
                                entry.push((d.type_id, ur));
                            }
                        }
                    }
                    CRewrite::Computed(source) => {
                        entry.push((t, *source));
                        dependents
                            .entry((t, *source))
                            .or_default()
                            .push(Dependent::Computed(r));
                    }
                    CRewrite::Ttu { tupleset, computed } => {
                        let targets: Vec<u32> = model.relations[t as usize][*tupleset as usize]
                            .as_ref()
                            .map(|ts| ts.direct.iter().map(|d| d.type_id).collect())
                            .unwrap_or_default();
                        for target in targets {
                            entry.push((target, *computed));
                            dependents.entry((target, *computed)).or_default().push(
                                Dependent::Ttu {
                                    type_id: t,
                                    relation: r,
                                    tupleset: *tupleset,
                                },
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    model.dependents = dependents;
    model.inputs = inputs;
}

/// Every leaf of a rewrite, including those under `and` and both sides of `but not`.
fn collect_leaves<'a>(rewrite: &'a CRewrite, out: &mut Vec<&'a CRewrite>) {
    match rewrite {
        CRewrite::Union(children) | CRewrite::Intersection(children) => {
            for child in children {
                collect_leaves(child, out);
            }
        }
        CRewrite::Difference(a, b) => {
            collect_leaves(a, out);
            collect_leaves(b, out);
        }
        leaf => out.push(leaf),
    }
}
