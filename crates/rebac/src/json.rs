//! OpenFGA's JSON `AuthorizationModel` form: reading into and printing from [`ModelAst`].
//!
//! Owns the mapping between the JSON shape (`type_definitions`, `relations` with `this`,
//! `computedUserset`, `tupleToUserset`, `union`, `intersection`, `difference`,
//! `metadata.relations.*.directly_related_user_types`, `conditions`) and the syntax tree.
//! Errors carry the JSON path and, best effort, the line and column of the offending value.
//! It must not validate meaning; that is [`crate::model`].

use serde_json::{Map, Value, json};

use crate::condition::ParamType;
use crate::model::{
    ConditionDef, DirectType, MAX_REWRITE_DEPTH, ModelAst, ModelError, Pos, RelationDef, Rewrite,
    TypeDef, rewrite_json,
};

/// Finds `needles` in order in `text` (each after the previous) and returns the position of
/// the last one found.
struct Locator<'a> {
    text: &'a str,
}

impl Locator<'_> {
    fn find(&self, needles: &[&str]) -> Pos {
        let mut offset = 0;
        let mut found = None;
        for needle in needles {
            let quoted = format!("\"{needle}\"");
            if let Some(at) = self.text[offset..].find(&quoted) {
                offset += at;
                found = Some(offset);
                offset += quoted.len();
            }
        }
        let Some(at) = found else {
            return Pos { line: 1, column: 1 };
        };
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Pos {
            line: u32::try_from(line).unwrap_or(1),
            column: u32::try_from(column).unwrap_or(1),
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
pub(crate) fn parse(value: &Value, text: &str) -> Result<ModelAst, Vec<ModelError>> {
    let locate = Locator { text };
    let mut errors = Vec::new();
    let mut ast = ModelAst::default();
    let Some(root) = value.as_object() else {
        return Err(vec![problem(
            Pos { line: 1, column: 1 },
            "$".into(),
            "a model must be a JSON object with `schema_version` and `type_definitions`",
        )]);
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
                let rewrite = match parse_rewrite(rewrite_value, &locate, name, &rpath, 0) {
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
    depth: usize,
) -> Result<Rewrite, ModelError> {
    let pos = || locate.find(&["type", type_name]);
    if depth > MAX_REWRITE_DEPTH {
        return Err(problem(
            pos(),
            path.to_owned(),
            format!("the rewrite nests deeper than {MAX_REWRITE_DEPTH} levels"),
        ));
    }
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
            .map(|(i, c)| {
                parse_rewrite(
                    c,
                    locate,
                    type_name,
                    &format!("{path}.{key}.child[{i}]"),
                    depth + 1,
                )
            })
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
                    depth + 1,
                )?),
                Box::new(parse_rewrite(
                    subtract,
                    locate,
                    type_name,
                    &format!("{path}.difference.subtract"),
                    depth + 1,
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

/// Prints the JSON form.
pub(crate) fn print(ast: &ModelAst) -> Value {
    let types: Vec<Value> = ast
        .types
        .iter()
        .map(|type_def| {
            let mut relations = Map::new();
            let mut metadata = Map::new();
            for relation in &type_def.relations {
                relations.insert(relation.name.clone(), rewrite_json(&relation.rewrite));
                let related: Vec<Value> = relation
                    .directly_related
                    .iter()
                    .map(|d| {
                        let mut entry = Map::new();
                        entry.insert("type".into(), Value::String(d.type_name.clone()));
                        if let Some(r) = &d.relation {
                            entry.insert("relation".into(), Value::String(r.clone()));
                        }
                        if d.wildcard {
                            entry.insert("wildcard".into(), json!({}));
                        }
                        if let Some(c) = &d.condition {
                            entry.insert("condition".into(), Value::String(c.clone()));
                        }
                        Value::Object(entry)
                    })
                    .collect();
                metadata.insert(
                    relation.name.clone(),
                    json!({"directly_related_user_types": related}),
                );
            }
            let mut out = Map::new();
            out.insert("type".into(), Value::String(type_def.name.clone()));
            out.insert("relations".into(), Value::Object(relations));
            out.insert(
                "metadata".into(),
                if metadata.is_empty() {
                    Value::Null
                } else {
                    json!({"relations": metadata})
                },
            );
            Value::Object(out)
        })
        .collect();
    let mut root = Map::new();
    root.insert("schema_version".into(), json!("1.1"));
    root.insert("type_definitions".into(), Value::Array(types));
    if !ast.conditions.is_empty() {
        let mut conditions = Map::new();
        for condition in &ast.conditions {
            let mut params = Map::new();
            for (name, param_type) in &condition.params {
                params.insert(name.clone(), param_type.to_json());
            }
            conditions.insert(
                condition.name.clone(),
                json!({
                    "name": condition.name,
                    "expression": condition.expression,
                    "parameters": params,
                }),
            );
        }
        root.insert("conditions".into(), Value::Object(conditions));
    }
    Value::Object(root)
}
