//! Values handed to expressions: JSON converted to CEL, within the input limits that the cost
//! estimate assumes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value as JsonValue;

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
    let mut path = name.to_owned();
    check(value, &mut path, 0)
}

fn check(value: &JsonValue, path: &mut String, depth: usize) -> Result<(), InputError> {
    let fail = |path: &str, problem: String| {
        Err(InputError {
            path: path.to_owned(),
            problem,
        })
    };
    match value {
        JsonValue::String(text) if text.len() > MAX_INPUT_STRING_BYTES => fail(
            path,
            format!(
                "is a string of {} bytes (the limit is {MAX_INPUT_STRING_BYTES})",
                text.len()
            ),
        ),
        JsonValue::Array(_) | JsonValue::Object(_) if depth >= MAX_INPUT_DEPTH => fail(
            path,
            format!("nests lists and maps deeper than {MAX_INPUT_DEPTH} levels"),
        ),
        JsonValue::Array(items) => {
            if items.len() > MAX_INPUT_ITEMS {
                return fail(
                    path,
                    format!(
                        "is a list of {} items (the limit is {MAX_INPUT_ITEMS})",
                        items.len()
                    ),
                );
            }
            let length = path.len();
            for (index, item) in items.iter().enumerate() {
                path.push_str(&format!("[{index}]"));
                check(item, path, depth + 1)?;
                path.truncate(length);
            }
            Ok(())
        }
        JsonValue::Object(entries) => {
            if entries.len() > MAX_INPUT_ITEMS {
                return fail(
                    path,
                    format!(
                        "is a map of {} entries (the limit is {MAX_INPUT_ITEMS})",
                        entries.len()
                    ),
                );
            }
            let length = path.len();
            for (key, item) in entries {
                if key.len() > MAX_INPUT_STRING_BYTES {
                    return fail(
                        path,
                        format!(
                            "has a key of {} bytes (the limit is {MAX_INPUT_STRING_BYTES})",
                            key.len()
                        ),
                    );
                }
                path.push('.');
                path.push_str(key);
                check(item, path, depth + 1)?;
                path.truncate(length);
            }
            Ok(())
        }
        _ => Ok(()),
    }
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
