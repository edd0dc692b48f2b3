//! OpenFGA's JSON `AuthorizationModel` form: reading into and printing from [`ModelAst`].
//!
//! Owns the mapping between the JSON shape (`type_definitions`, `relations` with `this`,
//! `computedUserset`, `tupleToUserset`, `union`, `intersection`, `difference`,
//! `metadata.relations.*.directly_related_user_types`, `conditions`) and the syntax tree.
//! Errors carry the JSON path and, best effort, the line and column of the offending value.
//! It must not validate meaning; that is [`crate::model`].

use rustc_hash::FxHashMap;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::condition::ParamType;
use crate::model::{
    ConditionDef, DirectType, ModelAst, ModelError, Pos, Problems, RelationDef, Rewrite, TypeDef,
};

/// Finds where names are written in the JSON text, best effort, for error positions.
///
/// The text is indexed once (every string literal with the offsets where it appears, and
/// where lines start), so that each look-up costs a few binary searches rather than a scan of
/// the text: a model has one look-up per relation and per named rewrite term.
struct Locator<'a> {
    text: &'a str,
    /// Raw content of each string literal → offsets of its opening quote, ascending.
    strings: FxHashMap<&'a str, Vec<usize>>,
    /// Offset where each line starts.
    line_starts: Vec<usize>,
    /// UTF-8 continuation bytes before each block of [`BLOCK`] bytes, so that a column in
    /// characters costs at most one block's scan even on a one-line (minified) model.
    continuations: Vec<usize>,
}

const BLOCK: usize = 256;

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut strings: FxHashMap<&'a str, Vec<usize>> = FxHashMap::default();
        let mut line_starts = vec![0];
        let mut at = 0;
        while at < bytes.len() {
            match bytes[at] {
                b'\n' => line_starts.push(at + 1),
                b'"' => {
                    let start = at;
                    at += 1;
                    while at < bytes.len() && bytes[at] != b'"' {
                        if bytes[at] == b'\\' {
                            at += 1;
                        }
                        at += 1;
                    }
                    if let Some(content) = text.get(start + 1..at.min(bytes.len())) {
                        strings.entry(content).or_default().push(start);
                    }
                }
                _ => {}
            }
            at += 1;
        }
        let mut continuations = Vec::with_capacity(bytes.len() / BLOCK + 1);
        let mut count = 0;
        for block in bytes.chunks(BLOCK) {
            continuations.push(count);
            count += block.iter().filter(|b| is_continuation(**b)).count();
        }
        Locator {
            text,
            strings,
            line_starts,
            continuations,
        }
    }

    /// Finds `needles` as string literals in order in the text (each after the previous) and
    /// returns the position of the last one found.
    fn find(&self, needles: &[&str]) -> Pos {
        let mut offset = 0;
        let mut found = None;
        for needle in needles {
            let Some(list) = self.strings.get(needle) else {
                continue;
            };
            let index = list.partition_point(|&at| at < offset);
            if let Some(&at) = list.get(index) {
                found = Some(at);
                offset = at + needle.len() + 2;
            }
        }
        found.map_or(Pos { line: 1, column: 1 }, |at| self.pos(at))
    }

    fn continuations_before(&self, at: usize) -> usize {
        let block = at / BLOCK;
        let base = self.continuations.get(block).copied().unwrap_or(0);
        let rest = self
            .text
            .as_bytes()
            .get(block * BLOCK..at)
            .map_or(0, |bytes| {
                bytes.iter().filter(|b| is_continuation(**b)).count()
            });
        base + rest
    }

    fn pos(&self, at: usize) -> Pos {
        let line = self
            .line_starts
            .partition_point(|&start| start <= at)
            .max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column =
            (at - start) - (self.continuations_before(at) - self.continuations_before(start)) + 1;
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

fn problem(pos: Pos, path: String, message: impl Into<String>) -> ModelError {
    ModelError {
        line: pos.line,
        column: pos.column,
        path: Some(path),
        message: message.into(),
    }
}

/// Reads the JSON form.
///
/// Nesting needs no guard here: `serde_json` refuses input nested more than 128 levels, and
/// the depth limit on rewrites is checked, with its JSON path, when the model compiles.
pub(crate) fn parse(value: &Value, text: &str) -> Result<ModelAst, Problems> {
    let locate = Locator::new(text);
    let mut errors = Problems::default();
    let mut ast = ModelAst::default();
    let Some(root) = value.as_object() else {
        errors.push(problem(
            Pos { line: 1, column: 1 },
            "$".into(),
            "a model must be a JSON object with `schema_version` and `type_definitions`",
        ));
        return Err(errors);
    };
    match root.get("schema_version").and_then(Value::as_str) {
        Some("1.1") => {}
        Some(other) => errors.push(problem(
            locate.find(&["schema_version"]),
            "schema_version".into(),
            format!("schema version `{other}` is not supported; use \"1.1\""),
        )),
        None => errors.push(problem(
            Pos { line: 1, column: 1 },
            "schema_version".into(),
            "missing `schema_version`; set it to \"1.1\"",
        )),
    }
    let empty = Vec::new();
    let types = root
        .get("type_definitions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    if root.get("type_definitions").is_some_and(|v| !v.is_array()) {
        errors.push(problem(
            locate.find(&["type_definitions"]),
            "type_definitions".into(),
            "`type_definitions` must be a list",
        ));
    }
    for (index, type_value) in types.iter().enumerate() {
        let path = format!("type_definitions[{index}]");
        let Some(name) = type_value.get("type").and_then(Value::as_str) else {
            errors.push(problem(
                locate.find(&["type_definitions"]),
                path,
                "a type definition needs a string `type`",
            ));
            continue;
        };
        let pos = locate.find(&["type", name]);
        let mut type_def = TypeDef {
            name: name.to_owned(),
            pos,
            relations: Vec::new(),
        };
        let metadata = type_value
            .get("metadata")
            .and_then(|m| m.get("relations"))
            .and_then(Value::as_object);
        if let Some(relations) = type_value.get("relations").and_then(Value::as_object) {
            for (relation_name, rewrite_value) in relations {
                let rpath = format!("{path}.relations.{relation_name}");
                let rpos = locate.find(&["type", name, relation_name]);
                let rewrite = match parse_rewrite(rewrite_value, &locate, name, &rpath) {
                    Ok(rewrite) => rewrite,
                    Err(error) => {
                        errors.push(error);
                        continue;
                    }
                };
                let mut directly_related = Vec::new();
                let related = metadata
                    .and_then(|m| m.get(relation_name))
                    .and_then(|r| r.get("directly_related_user_types"))
                    .and_then(Value::as_array);
                for (i, entry) in related.into_iter().flatten().enumerate() {
                    let dpath = format!(
                        "{path}.metadata.relations.{relation_name}.directly_related_user_types[{i}]"
                    );
                    let Some(type_name) = entry.get("type").and_then(Value::as_str) else {
                        errors.push(problem(
                            rpos,
                            dpath,
                            "a directly related user type needs a string `type`",
                        ));
                        continue;
                    };
                    let condition = entry
                        .get("condition")
                        .and_then(Value::as_str)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned);
                    directly_related.push(DirectType {
                        type_name: type_name.to_owned(),
                        relation: entry
                            .get("relation")
                            .and_then(Value::as_str)
                            .filter(|r| !r.is_empty())
                            .map(str::to_owned),
                        wildcard: entry.get("wildcard").is_some(),
                        condition,
                        pos: locate.find(&["type", name, "metadata", relation_name, type_name]),
                    });
                }
                type_def.relations.push(RelationDef {
                    name: relation_name.clone(),
                    pos: rpos,
                    rewrite,
                    directly_related,
                });
            }
        }
        ast.types.push(type_def);
    }
    if let Some(conditions) = root.get("conditions").and_then(Value::as_object) {
        for (key, condition) in conditions {
            let cpath = format!("conditions.{key}");
            let pos = locate.find(&["conditions", key]);
            let name = condition.get("name").and_then(Value::as_str).unwrap_or(key);
            if name != key {
                errors.push(problem(
                    pos,
                    cpath.clone(),
                    format!(
                        "condition key `{key}` differs from its `name` `{name}`; make them equal"
                    ),
                ));
            }
            let expression = condition
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut params = Vec::new();
            if let Some(map) = condition.get("parameters").and_then(Value::as_object) {
                for (param, param_type) in map {
                    match ParamType::from_json(param_type) {
                        Ok(param_type) => params.push((param.clone(), param_type)),
                        Err(message) => errors.push(problem(
                            locate.find(&["conditions", key, param]),
                            format!("{cpath}.parameters.{param}"),
                            message,
                        )),
                    }
                }
            }
            ast.conditions.push(ConditionDef {
                name: key.clone(),
                pos,
                params,
                expression,
                expression_pos: locate.find(&["conditions", key, "expression"]),
            });
        }
    }
    if errors.is_empty() {
        Ok(ast)
    } else {
        Err(errors)
    }
}

fn parse_rewrite(
    value: &Value,
    locate: &Locator<'_>,
    type_name: &str,
    path: &str,
) -> Result<Rewrite, ModelError> {
    let pos = || locate.find(&["type", type_name]);
    let Some(object) = value.as_object().filter(|o| o.len() == 1) else {
        return Err(problem(
            pos(),
            path.to_owned(),
            "a rewrite must be an object with exactly one of `this`, `computedUserset`, `tupleToUserset`, `union`, `intersection`, `difference`",
        ));
    };
    let relation_of = |v: Option<&Value>, what: &str| -> Result<String, ModelError> {
        v.and_then(|v| v.get("relation"))
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                problem(
                    pos(),
                    format!("{path}.{what}"),
                    format!("`{what}` needs a non-empty `relation`"),
                )
            })
    };
    let children = |v: &Value, key: &str| -> Result<Vec<Rewrite>, ModelError> {
        let items = v.get("child").and_then(Value::as_array).ok_or_else(|| {
            problem(
                pos(),
                format!("{path}.{key}"),
                format!("`{key}` needs a `child` list"),
            )
        })?;
        if items.is_empty() {
            return Err(problem(
                pos(),
                format!("{path}.{key}"),
                format!("`{key}` needs at least one child"),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, c)| parse_rewrite(c, locate, type_name, &format!("{path}.{key}.child[{i}]")))
            .collect()
    };
    let (key, inner) = object
        .iter()
        .next()
        .ok_or_else(|| problem(pos(), path.to_owned(), "empty rewrite"))?;
    Ok(match key.as_str() {
        "this" => Rewrite::This,
        "computedUserset" => {
            let relation = relation_of(Some(inner), key)?;
            Rewrite::Computed {
                pos: locate.find(&["type", type_name, &relation]),
                relation,
            }
        }
        "tupleToUserset" => {
            let tupleset = relation_of(inner.get("tupleset"), "tupleToUserset.tupleset")?;
            let computed = relation_of(
                inner.get("computedUserset"),
                "tupleToUserset.computedUserset",
            )?;
            Rewrite::TupleToUserset {
                pos: locate.find(&["type", type_name, &tupleset]),
                tupleset,
                computed,
            }
        }
        "union" => Rewrite::Union(children(inner, key)?),
        "intersection" => Rewrite::Intersection(children(inner, key)?),
        "difference" => {
            let base = inner.get("base").ok_or_else(|| {
                problem(
                    pos(),
                    format!("{path}.difference"),
                    "`difference` needs `base`",
                )
            })?;
            let subtract = inner.get("subtract").ok_or_else(|| {
                problem(
                    pos(),
                    format!("{path}.difference"),
                    "`difference` needs `subtract`",
                )
            })?;
            Rewrite::Difference(
                Box::new(parse_rewrite(
                    base,
                    locate,
                    type_name,
                    &format!("{path}.difference.base"),
                )?),
                Box::new(parse_rewrite(
                    subtract,
                    locate,
                    type_name,
                    &format!("{path}.difference.subtract"),
                )?),
            )
        }
        other => {
            return Err(problem(
                pos(),
                path.to_owned(),
                format!(
                    "unknown rewrite `{other}`; expected `this`, `computedUserset`, `tupleToUserset`, `union`, `intersection` or `difference`"
                ),
            ));
        }
    })
}

/// The JSON form of a syntax tree, written by `serde` straight to its output: no
/// intermediate `serde_json` tree, whose maps cost a few hundred bytes per rewrite term. Keys
/// are written in sorted order, as a `serde_json` map would hold them, so the text equals
/// that of the tree.
pub(crate) struct JsonForm<'a>(pub &'a ModelAst);

impl Serialize for JsonForm<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ast = self.0;
        let mut map = serializer.serialize_map(None)?;
        if !ast.conditions.is_empty() {
            map.serialize_entry("conditions", &ConditionsJson(&ast.conditions))?;
        }
        map.serialize_entry("schema_version", "1.1")?;
        map.serialize_entry("type_definitions", &TypesJson(&ast.types))?;
        map.end()
    }
}

struct TypesJson<'a>(&'a [TypeDef]);

impl Serialize for TypesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for type_def in self.0 {
            seq.serialize_element(&TypeJson(type_def))?;
        }
        seq.end()
    }
}

struct TypeJson<'a>(&'a TypeDef);

/// The type's relations sorted by name (a `serde_json` map's order).
fn sorted_relations(type_def: &TypeDef) -> Vec<&RelationDef> {
    let mut relations: Vec<&RelationDef> = type_def.relations.iter().collect();
    relations.sort_by(|a, b| a.name.cmp(&b.name));
    relations.dedup_by(|a, b| a.name == b.name);
    relations
}

impl Serialize for TypeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let relations = sorted_relations(self.0);
        let mut map = serializer.serialize_map(Some(3))?;
        if relations.is_empty() {
            map.serialize_entry("metadata", &())?;
        } else {
            map.serialize_entry("metadata", &MetadataJson(&relations))?;
        }
        map.serialize_entry("relations", &RelationsJson(&relations))?;
        map.serialize_entry("type", &self.0.name)?;
        map.end()
    }
}

struct RelationsJson<'a>(&'a [&'a RelationDef]);

impl Serialize for RelationsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for relation in self.0 {
            map.serialize_entry(&relation.name, &RewriteJson(&relation.rewrite))?;
        }
        map.end()
    }
}

struct MetadataJson<'a>(&'a [&'a RelationDef]);

impl Serialize for MetadataJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Relations<'a>(&'a [&'a RelationDef]);
        struct Related<'a>(&'a [DirectType]);
        impl Serialize for Relations<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for relation in self.0 {
                    map.serialize_entry(&relation.name, &Related(&relation.directly_related))?;
                }
                map.end()
            }
        }
        impl Serialize for Related<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("directly_related_user_types", &DirectJson(self.0))?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("relations", &Relations(self.0))?;
        map.end()
    }
}

struct DirectJson<'a>(&'a [DirectType]);

impl Serialize for DirectJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Entry<'a>(&'a DirectType);
        impl Serialize for Entry<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let d = self.0;
                let mut map = serializer.serialize_map(None)?;
                if let Some(condition) = &d.condition {
                    map.serialize_entry("condition", condition)?;
                }
                if let Some(relation) = &d.relation {
                    map.serialize_entry("relation", relation)?;
                }
                map.serialize_entry("type", &d.type_name)?;
                if d.wildcard {
                    map.serialize_entry("wildcard", &EmptyObject)?;
                }
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for d in self.0 {
            seq.serialize_element(&Entry(d))?;
        }
        seq.end()
    }
}

/// `{}`.
struct EmptyObject;

impl Serialize for EmptyObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_map(Some(0))?.end()
    }
}

/// `{"object": "", "relation": name}`.
struct UsersetJson<'a>(&'a str);

impl Serialize for UsersetJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("object", "")?;
        map.serialize_entry("relation", self.0)?;
        map.end()
    }
}

struct RewriteJson<'a>(&'a Rewrite);

impl Serialize for RewriteJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Children<'a>(&'a [Rewrite]);
        impl Serialize for Children<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("child", &ChildList(self.0))?;
                map.end()
            }
        }
        struct ChildList<'a>(&'a [Rewrite]);
        impl Serialize for ChildList<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for child in self.0 {
                    seq.serialize_element(&RewriteJson(child))?;
                }
                seq.end()
            }
        }
        struct Ttu<'a>(&'a str, &'a str);
        impl Serialize for Ttu<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("computedUserset", &UsersetJson(self.1))?;
                map.serialize_entry("tupleset", &UsersetJson(self.0))?;
                map.end()
            }
        }
        struct Difference<'a>(&'a Rewrite, &'a Rewrite);
        impl Serialize for Difference<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("base", &RewriteJson(self.0))?;
                map.serialize_entry("subtract", &RewriteJson(self.1))?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        match self.0 {
            Rewrite::This => map.serialize_entry("this", &EmptyObject)?,
            Rewrite::Computed { relation, .. } => {
                map.serialize_entry("computedUserset", &UsersetJson(relation))?;
            }
            Rewrite::TupleToUserset {
                tupleset, computed, ..
            } => map.serialize_entry("tupleToUserset", &Ttu(tupleset, computed))?,
            Rewrite::Union(children) => map.serialize_entry("union", &Children(children))?,
            Rewrite::Intersection(children) => {
                map.serialize_entry("intersection", &Children(children))?;
            }
            Rewrite::Difference(base, subtract) => {
                map.serialize_entry("difference", &Difference(base, subtract))?;
            }
        }
        map.end()
    }
}

struct ConditionsJson<'a>(&'a [ConditionDef]);

impl Serialize for ConditionsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Condition<'a>(&'a ConditionDef);
        struct Parameters<'a>(&'a [(String, ParamType)]);
        impl Serialize for Condition<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("expression", &self.0.expression)?;
                map.serialize_entry("name", &self.0.name)?;
                map.serialize_entry("parameters", &Parameters(&self.0.params))?;
                map.end()
            }
        }
        impl Serialize for Parameters<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut params: Vec<&(String, ParamType)> = self.0.iter().collect();
                params.sort_by(|a, b| a.0.cmp(&b.0));
                params.dedup_by(|a, b| a.0 == b.0);
                let mut map = serializer.serialize_map(Some(params.len()))?;
                for (name, param_type) in params {
                    map.serialize_entry(name, &param_type.to_json())?;
                }
                map.end()
            }
        }
        let mut conditions: Vec<&ConditionDef> = self.0.iter().collect();
        conditions.sort_by(|a, b| a.name.cmp(&b.name));
        conditions.dedup_by(|a, b| a.name == b.name);
        let mut map = serializer.serialize_map(Some(conditions.len()))?;
        for condition in conditions {
            map.serialize_entry(&condition.name, &Condition(condition))?;
        }
        map.end()
    }
}
