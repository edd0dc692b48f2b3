//! Values handed to expressions: JSON converted to CEL, within the input limits that the cost
//! estimate assumes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use serde_json::{Map, Value as JsonValue};

use crate::Value;
use crate::limits::{MAX_INPUT_DEPTH, MAX_INPUT_ITEMS, MAX_INPUT_STRING_BYTES};

/// A value too large to hand to an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// Where in the value: the variable's name, then keys and indexes (`context.items[3]`).
    pub path: String,
    /// What is too large.
    pub problem: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` {}, more than a condition may read",
            self.path, self.problem
        )
    }
}

impl std::error::Error for InputError {}

/// Checks that `value` (the variable or parameter `name`) is within the input limits.
pub fn check_json(name: &str, value: &JsonValue) -> Result<(), InputError> {
    if within_limits(value, 0) {
        return Ok(());
    }
    let mut path = name.to_owned();
    check(value, &mut path, 0)
}

// Two walks of the same limits: `within_limits` and the like only answer whether a value is
// within them, without building the paths that a report needs; `check` and the like find the
// first problem and report where it is, and run only when the first walk found one.

/// Whether `value`, `depth` levels of lists and maps down, is within the input limits.
fn within_limits(value: &JsonValue, depth: usize) -> bool {
    match value {
        JsonValue::String(text) => text.len() <= MAX_INPUT_STRING_BYTES,
        JsonValue::Array(items) => {
            depth < MAX_INPUT_DEPTH
                && items.len() <= MAX_INPUT_ITEMS
                && items.iter().all(|item| within_limits(item, depth + 1))
        }
        JsonValue::Object(entries) => map_within_limits(entries, depth),
        _ => true,
    }
}

fn map_within_limits(entries: &Map<String, JsonValue>, depth: usize) -> bool {
    depth < MAX_INPUT_DEPTH
        && entries.len() <= MAX_INPUT_ITEMS
        && entries.iter().all(|(key, item)| {
            key.len() <= MAX_INPUT_STRING_BYTES && within_limits(item, depth + 1)
        })
}

fn fields_within_limits(fields: &[(&'static str, Field<'_>)], depth: usize) -> bool {
    depth < MAX_INPUT_DEPTH
        && fields.len() <= MAX_INPUT_ITEMS
        && fields.iter().all(|(key, field)| {
            key.len() <= MAX_INPUT_STRING_BYTES
                && match field {
                    Field::Null | Field::Bool(_) => true,
                    Field::Str(text) => text.len() <= MAX_INPUT_STRING_BYTES,
                    Field::Strings(items) => {
                        depth + 1 < MAX_INPUT_DEPTH
                            && items.len() <= MAX_INPUT_ITEMS
                            && items
                                .iter()
                                .all(|item| item.len() <= MAX_INPUT_STRING_BYTES)
                    }
                    Field::Map(entries) => map_within_limits(entries, depth + 1),
                    Field::Json(value) => within_limits(value, depth + 1),
                    Field::Object(inner) => fields_within_limits(inner, depth + 1),
                }
        })
}

fn fail(path: &str, problem: String) -> Result<(), InputError> {
    Err(InputError {
        path: path.to_owned(),
        problem,
    })
}

fn check_string(text: &str, path: &str) -> Result<(), InputError> {
    if text.len() > MAX_INPUT_STRING_BYTES {
        return fail(
            path,
            format!(
                "is a string of {} bytes (the limit is {MAX_INPUT_STRING_BYTES})",
                text.len()
            ),
        );
    }
    Ok(())
}

/// The checks of a list or map itself, before its items: how deep it is and how many items it
/// holds.
fn check_container(what: &str, items: usize, path: &str, depth: usize) -> Result<(), InputError> {
    if depth >= MAX_INPUT_DEPTH {
        return fail(
            path,
            format!("nests lists and maps deeper than {MAX_INPUT_DEPTH} levels"),
        );
    }
    if items > MAX_INPUT_ITEMS {
        let unit = if what == "list" { "items" } else { "entries" };
        return fail(
            path,
            format!("is a {what} of {items} {unit} (the limit is {MAX_INPUT_ITEMS})"),
        );
    }
    Ok(())
}

fn check_key(key: &str, path: &str) -> Result<(), InputError> {
    if key.len() > MAX_INPUT_STRING_BYTES {
        return fail(
            path,
            format!(
                "has a key of {} bytes (the limit is {MAX_INPUT_STRING_BYTES})",
                key.len()
            ),
        );
    }
    Ok(())
}

fn check(value: &JsonValue, path: &mut String, depth: usize) -> Result<(), InputError> {
    match value {
        JsonValue::String(text) => check_string(text, path),
        JsonValue::Array(items) => {
            check_container("list", items.len(), path, depth)?;
            let length = path.len();
            for (index, item) in items.iter().enumerate() {
                path.push_str(&format!("[{index}]"));
                check(item, path, depth + 1)?;
                path.truncate(length);
            }
            Ok(())
        }
        JsonValue::Object(entries) => check_map(entries, path, depth),
        _ => Ok(()),
    }
}

fn check_map(
    entries: &Map<String, JsonValue>,
    path: &mut String,
    depth: usize,
) -> Result<(), InputError> {
    check_container("map", entries.len(), path, depth)?;
    let length = path.len();
    for (key, item) in entries {
        check_key(key, path)?;
        path.push('.');
        path.push_str(key);
        check(item, path, depth + 1)?;
        path.truncate(length);
    }
    Ok(())
}

/// Converts `value` (the variable or parameter `name`) to a CEL value, refusing one outside
/// the input limits. Objects become maps with string keys; integers stay integers where they
/// fit `i64` (else `u64`, else a double).
pub fn from_json(name: &str, value: &JsonValue) -> Result<Value, InputError> {
    check_json(name, value)?;
    Ok(convert(value))
}

fn convert(value: &JsonValue) -> Value {
    match value {
        JsonValue::Null => Value::Null,
        JsonValue::Bool(value) => Value::Bool(*value),
        JsonValue::Number(number) => {
            if let Some(int) = number.as_i64() {
                Value::Int(int)
            } else if let Some(uint) = number.as_u64() {
                Value::UInt(uint)
            } else {
                Value::Float(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        JsonValue::String(text) => Value::String(Arc::new(text.clone())),
        JsonValue::Array(items) => Value::List(Arc::new(items.iter().map(convert).collect())),
        JsonValue::Object(map) => {
            let converted: HashMap<String, Value> = map
                .iter()
                .map(|(key, value)| (key.clone(), convert(value)))
                .collect();
            Value::from(converted)
        }
    }
}

/// A value handed to an expression as a variable, converted from JSON or assembled from parts.
/// It borrows the strings it holds for `'v` rather than copying them, and a variable resolver
/// lends it to each evaluation ([`Input::as_val`]) rather than converting it again.
///
/// Whatever way it is built, it is the CEL value [`from_json`] makes of the same JSON, and it
/// is refused with the same [`InputError`].
pub struct Input<'v>(Box<dyn Val + 'v>);

impl fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Input").field(&self.0).finish()
    }
}

/// A field of an object built with [`Input::object`]: what the same field of a JSON object
/// would hold, given without building that JSON.
#[derive(Debug)]
pub enum Field<'v> {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(&'v str),
    /// A list of strings.
    Strings(Vec<&'v str>),
    /// A JSON object.
    Map(&'v Map<String, JsonValue>),
    /// Any JSON value.
    Json(&'v JsonValue),
    /// An object of named fields.
    Object(Vec<(&'static str, Field<'v>)>),
}

impl<'v> Input<'v> {
    /// `value` (the variable `name`) as a CEL value, refused outside the input limits.
    pub fn json(name: &str, value: &'v JsonValue) -> Result<Input<'v>, InputError> {
        check_json(name, value)?;
        Ok(Input(borrow_json(value)))
    }

    /// The JSON object `entries` (the variable `name`): [`Input::json`] of it as a value.
    pub fn map(name: &str, entries: &'v Map<String, JsonValue>) -> Result<Input<'v>, InputError> {
        if !map_within_limits(entries, 0) {
            let mut path = name.to_owned();
            check_map(entries, &mut path, 0)?;
        }
        Ok(Input(borrow_map(entries)))
    }

    /// The object of `fields` (the variable `name`): the value, and the error outside the
    /// input limits, that [`Input::json`] gives for the JSON object with these fields. Field
    /// names must differ from each other.
    pub fn object<const N: usize>(
        name: &str,
        mut fields: [(&'static str, Field<'v>); N],
    ) -> Result<Input<'v>, InputError> {
        if !fields_within_limits(&fields, 0) {
            let mut path = name.to_owned();
            check_fields(&mut fields, &mut path, 0)?;
        }
        Ok(Input(borrow_fields(fields)))
    }

    /// The value, lent for one evaluation.
    pub fn as_val(&self) -> CowVal<'_, 'v> {
        CowVal::Borrowed(self.0.as_ref())
    }
}

/// Whether `serde_json` iterates an object's keys in sorted order (its default) rather than in
/// insertion order (with its `preserve_order` feature, which another crate of the build may
/// switch on). An object built from fields is checked in the order its JSON would be, so that
/// of two problems the same one is reported.
fn json_sorts_keys() -> bool {
    static SORTS: OnceLock<bool> = OnceLock::new();
    *SORTS.get_or_init(|| {
        let mut probe = Map::new();
        probe.insert("b".to_owned(), JsonValue::Null);
        probe.insert("a".to_owned(), JsonValue::Null);
        probe.keys().next().is_some_and(|key| key == "a")
    })
}

/// Checks `fields` as [`check_map`] checks an object with them, first putting them in the
/// order that object would iterate them in.
fn check_fields(
    fields: &mut [(&'static str, Field<'_>)],
    path: &mut String,
    depth: usize,
) -> Result<(), InputError> {
    if json_sorts_keys() {
        fields.sort_by(|a, b| a.0.cmp(b.0));
    }
    check_container("map", fields.len(), path, depth)?;
    let length = path.len();
    for (key, field) in fields.iter_mut() {
        check_key(key, path)?;
        path.push('.');
        path.push_str(key);
        match field {
            Field::Null | Field::Bool(_) => {}
            Field::Str(text) => check_string(text, path)?,
            Field::Strings(items) => {
                check_container("list", items.len(), path, depth + 1)?;
                let length = path.len();
                for (index, item) in items.iter().enumerate() {
                    path.push_str(&format!("[{index}]"));
                    check_string(item, path)?;
                    path.truncate(length);
                }
            }
            Field::Map(entries) => check_map(entries, path, depth + 1)?,
            Field::Json(value) => check(value, path, depth + 1)?,
            Field::Object(inner) => check_fields(inner, path, depth + 1)?,
        }
        path.truncate(length);
    }
    Ok(())
}

fn borrow_fields<'v>(
    fields: impl IntoIterator<Item = (&'static str, Field<'v>)>,
) -> Box<dyn Val + 'v> {
    let entries: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = fields
        .into_iter()
        .map(|(key, field)| {
            let value: Box<dyn Val + 'v> = match field {
                Field::Null => Box::new(CelNull),
                Field::Bool(value) => Box::new(CelBool::from(value)),
                Field::Str(text) => Box::new(CelString::from(text)),
                Field::Strings(items) => Box::new(CelList::from(
                    items
                        .into_iter()
                        .map(|item| Box::new(CelString::from(item)) as Box<dyn Val + 'v>)
                        .collect::<Vec<_>>(),
                )),
                Field::Map(entries) => borrow_map(entries),
                Field::Json(value) => borrow_json(value),
                Field::Object(inner) => borrow_fields(inner),
            };
            (CelMapKey::from(key), value)
        })
        .collect();
    Box::new(CelMap::from(entries))
}

/// The CEL value of `value`, borrowing its strings: the value [`from_json`] makes, converted
/// for the interpreter.
fn borrow_json(value: &JsonValue) -> Box<dyn Val + '_> {
    match value {
        JsonValue::Null => Box::new(CelNull),
        JsonValue::Bool(value) => Box::new(CelBool::from(*value)),
        JsonValue::Number(number) => {
            if let Some(int) = number.as_i64() {
                Box::new(CelInt::from(int))
            } else if let Some(uint) = number.as_u64() {
                Box::new(CelUInt::from(uint))
            } else {
                Box::new(CelDouble::from(number.as_f64().unwrap_or(f64::NAN)))
            }
        }
        JsonValue::String(text) => Box::new(CelString::from(text.as_str())),
        JsonValue::Array(items) => Box::new(CelList::from(
            items.iter().map(borrow_json).collect::<Vec<_>>(),
        )),
        JsonValue::Object(entries) => borrow_map(entries),
    }
}

fn borrow_map(entries: &Map<String, JsonValue>) -> Box<dyn Val + '_> {
    let converted: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = entries
        .iter()
        .map(|(key, value)| (CelMapKey::from(key.as_str()), borrow_json(value)))
        .collect();
    Box::new(CelMap::from(converted))
}
