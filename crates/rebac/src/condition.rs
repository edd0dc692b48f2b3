//! Conditions on tuples: typed parameters and CEL expressions.
//!
//! This module is the only one that touches the `cel` crate. It owns [`ParamType`] (OpenFGA's
//! parameter types), compiling a condition's expression once at model load
//! ([`CompiledCondition::compile`]), converting context values to their declared types, and
//! evaluating a condition against a tuple's stored context merged with the request context.
//! It must not know about graphs or tuples beyond the two context maps it is handed.
//!
//! Representation: the `cel` crate is built without its `chrono` feature in this workspace, so
//! `timestamp` values are CEL integers counting nanoseconds since the Unix epoch and `duration`
//! values are CEL integers counting nanoseconds. The functions `timestamp("RFC 3339")` and
//! `duration("1h30m")` return those integers, so comparisons and `timestamp + duration`
//! arithmetic work as in OpenFGA; timestamp accessor methods (`getHours()` ...) are not
//! available. `ipaddress` values are strings that passed IP parsing, with the member function
//! `ip.in_cidr("10.0.0.0/8")`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use portcullis_cel::ExecutionError;
use portcullis_cel::{Budget, Context as CelContext, Expression, Value as CelValue};
use serde_json::{Map, Value};

/// Longest accepted condition expression, in bytes.
pub const MAX_EXPRESSION_LENGTH: usize = portcullis_cel::limits::MAX_LENGTH;
/// Deepest accepted bracket nesting inside an expression.
pub const MAX_EXPRESSION_NESTING: usize = portcullis_cel::limits::MAX_NESTING;

/// The type of a condition parameter, as in OpenFGA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    /// `any`: any JSON value.
    Any,
    /// `bool`.
    Bool,
    /// `string`.
    String,
    /// `int` (64-bit signed).
    Int,
    /// `uint` (64-bit unsigned).
    Uint,
    /// `double`.
    Double,
    /// `duration`: a Go-style duration string such as `"1h30m"` or `"250ms"`.
    Duration,
    /// `timestamp`: an RFC 3339 string such as `"2024-01-01T00:00:00Z"`.
    Timestamp,
    /// `ipaddress`: an IPv4 or IPv6 address string.
    IpAddress,
    /// `map<T>`: a JSON object whose values are `T`.
    Map(Box<ParamType>),
    /// `list<T>`: a JSON array of `T`.
    List(Box<ParamType>),
}

impl ParamType {
    /// Parses the modeling-language spelling (`int`, `map<string>`, `list<map<any>>`).
    pub fn parse_dsl(text: &str) -> Result<ParamType, String> {
        Self::parse_dsl_depth(text.trim(), 0)
    }

    fn parse_dsl_depth(text: &str, depth: usize) -> Result<ParamType, String> {
        if depth > 8 {
            return Err("parameter types nest deeper than 8 levels".to_owned());
        }
        let simple = match text {
            "any" => Some(ParamType::Any),
            "bool" => Some(ParamType::Bool),
            "string" => Some(ParamType::String),
            "int" => Some(ParamType::Int),
            "uint" => Some(ParamType::Uint),
            "double" => Some(ParamType::Double),
            "duration" => Some(ParamType::Duration),
            "timestamp" => Some(ParamType::Timestamp),
            "ipaddress" => Some(ParamType::IpAddress),
            _ => None,
        };
        if let Some(simple) = simple {
            return Ok(simple);
        }
        for (prefix, list) in [("map<", false), ("list<", true)] {
            if let Some(inner) = text
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix('>'))
            {
                let inner = Box::new(Self::parse_dsl_depth(inner.trim(), depth + 1)?);
                return Ok(if list {
                    ParamType::List(inner)
                } else {
                    ParamType::Map(inner)
                });
            }
        }
        Err(format!(
            "unknown parameter type `{text}`; expected one of bool, string, int, uint, double, duration, timestamp, ipaddress, any, map<T>, list<T>"
        ))
    }

    /// OpenFGA's JSON spelling of this type's name (`TYPE_NAME_INT`).
    pub fn json_name(&self) -> &'static str {
        match self {
            ParamType::Any => "TYPE_NAME_ANY",
            ParamType::Bool => "TYPE_NAME_BOOL",
            ParamType::String => "TYPE_NAME_STRING",
            ParamType::Int => "TYPE_NAME_INT",
            ParamType::Uint => "TYPE_NAME_UINT",
            ParamType::Double => "TYPE_NAME_DOUBLE",
            ParamType::Duration => "TYPE_NAME_DURATION",
            ParamType::Timestamp => "TYPE_NAME_TIMESTAMP",
            ParamType::IpAddress => "TYPE_NAME_IPADDRESS",
            ParamType::Map(_) => "TYPE_NAME_MAP",
            ParamType::List(_) => "TYPE_NAME_LIST",
        }
    }

    /// OpenFGA's JSON form: `{"type_name": ..., "generic_types": [...]}`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("type_name".into(), Value::String(self.json_name().into()));
        if let ParamType::Map(inner) | ParamType::List(inner) = self {
            object.insert("generic_types".into(), Value::Array(vec![inner.to_json()]));
        }
        Value::Object(object)
    }

    /// Parses OpenFGA's JSON form.
    pub fn from_json(value: &Value) -> Result<ParamType, String> {
        Self::from_json_depth(value, 0)
    }

    fn from_json_depth(value: &Value, depth: usize) -> Result<ParamType, String> {
        if depth > 8 {
            return Err("parameter types nest deeper than 8 levels".to_owned());
        }
        let Some(object) = value.as_object() else {
            return Err("a parameter type must be an object with `type_name`".to_owned());
        };
        let name = object
            .get("type_name")
            .and_then(Value::as_str)
            .ok_or("a parameter type needs a string `type_name` such as \"TYPE_NAME_INT\"")?;
        let generic = || -> Result<Box<ParamType>, String> {
            match object.get("generic_types").and_then(Value::as_array) {
                Some(items) if items.len() == 1 => {
                    Ok(Box::new(Self::from_json_depth(&items[0], depth + 1)?))
                }
                _ => Err(format!(
                    "`{name}` needs exactly one entry in `generic_types`"
                )),
            }
        };
        Ok(match name {
            "TYPE_NAME_ANY" => ParamType::Any,
            "TYPE_NAME_BOOL" => ParamType::Bool,
            "TYPE_NAME_STRING" => ParamType::String,
            "TYPE_NAME_INT" => ParamType::Int,
            "TYPE_NAME_UINT" => ParamType::Uint,
            "TYPE_NAME_DOUBLE" => ParamType::Double,
            "TYPE_NAME_DURATION" => ParamType::Duration,
            "TYPE_NAME_TIMESTAMP" => ParamType::Timestamp,
            "TYPE_NAME_IPADDRESS" => ParamType::IpAddress,
            "TYPE_NAME_MAP" => ParamType::Map(generic()?),
            "TYPE_NAME_LIST" => ParamType::List(generic()?),
            other => {
                return Err(format!(
                    "unknown parameter type `{other}`; expected TYPE_NAME_BOOL, _STRING, _INT, _UINT, _DOUBLE, _DURATION, _TIMESTAMP, _IPADDRESS, _ANY, _MAP or _LIST"
                ));
            }
        })
    }

    /// Converts a JSON value to this type's CEL value, or says why it does not fit.
    pub fn convert(&self, value: &Value) -> Result<CelValue, String> {
        let mismatch = || format!("expected {self}, got {}", describe_json(value));
        Ok(match (self, value) {
            (ParamType::Any, value) => {
                portcullis_cel::from_json("the parameter", value).map_err(|e| e.to_string())?
            }
            (ParamType::Bool, Value::Bool(flag)) => CelValue::Bool(*flag),
            (ParamType::String, Value::String(text)) => CelValue::String(Arc::new(text.clone())),
            (ParamType::Int, Value::Number(number)) => {
                CelValue::Int(number.as_i64().ok_or_else(mismatch)?)
            }
            (ParamType::Uint, Value::Number(number)) => {
                CelValue::UInt(number.as_u64().ok_or_else(mismatch)?)
            }
            (ParamType::Double, Value::Number(number)) => {
                CelValue::Float(number.as_f64().ok_or_else(mismatch)?)
            }
            (ParamType::Duration, Value::String(text)) => CelValue::Int(parse_duration(text)?),
            (ParamType::Timestamp, Value::String(text)) => CelValue::Int(parse_timestamp(text)?),
            (ParamType::IpAddress, Value::String(text)) => {
                text.parse::<std::net::IpAddr>().map_err(|_| {
                    format!("expected an IP address such as \"10.0.0.1\", got \"{text}\"")
                })?;
                CelValue::String(Arc::new(text.clone()))
            }
            (ParamType::List(inner), Value::Array(items)) => CelValue::List(Arc::new(
                items
                    .iter()
                    .map(|item| inner.convert(item))
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            (ParamType::Map(inner), Value::Object(entries)) => {
                let mut converted = HashMap::with_capacity(entries.len());
                for (key, item) in entries {
                    converted.insert(key.clone(), inner.convert(item)?);
                }
                CelValue::from(converted)
            }
            _ => return Err(mismatch()),
        })
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::Any => f.write_str("any"),
            ParamType::Bool => f.write_str("bool"),
            ParamType::String => f.write_str("string"),
            ParamType::Int => f.write_str("int"),
            ParamType::Uint => f.write_str("uint"),
            ParamType::Double => f.write_str("double"),
            ParamType::Duration => f.write_str("duration"),
            ParamType::Timestamp => f.write_str("timestamp"),
            ParamType::IpAddress => f.write_str("ipaddress"),
            ParamType::Map(inner) => write!(f, "map<{inner}>"),
            ParamType::List(inner) => write!(f, "list<{inner}>"),
        }
    }
}

fn describe_json(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Parses a Go-style duration (`"1h30m"`, `"1.5s"`, `"-250ms"`, `"0"`) into nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("expected a duration such as \"1h30m\" or \"250ms\", got \"{text}\"");
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| bad())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    if total > i64::MAX as f64 {
        return Err(format!("the duration \"{text}\" is too long"));
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}

/// Parses an RFC 3339 timestamp into nanoseconds since the Unix epoch.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let timestamp: jiff::Timestamp = text.parse().map_err(|_| {
        format!("expected an RFC 3339 timestamp such as \"2024-01-31T09:00:00Z\", got \"{text}\"")
    })?;
    i64::try_from(timestamp.as_nanosecond())
        .map_err(|_| format!("the timestamp \"{text}\" is out of range"))
}

/// A compiled condition.
pub struct CompiledCondition {
    name: String,
    expression: Expression,
    /// Declared parameters the expression reads, with their types.
    used: Vec<(String, ParamType)>,
}

impl fmt::Debug for CompiledCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledCondition")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A problem in a condition's expression at a 1-based (line, column) inside the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpressionError {
    /// Line inside the expression text.
    pub line: u32,
    /// Column inside the expression text.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

/// Why a condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// Neither the tuple nor the request supplies a parameter the expression reads.
    MissingParameter(String),
    /// A supplied parameter does not have its declared type.
    BadParameter(String, String),
    /// The expression failed at run time or did not yield a boolean.
    Failed(String),
}

fn string_arg(function: &str, value: &CelValue) -> Result<Arc<String>, ExecutionError> {
    match value {
        CelValue::String(text) => Ok(Arc::clone(text)),
        _ => Err(ExecutionError::function_error(
            function,
            "expected a string argument",
        )),
    }
}

fn add_functions(context: &mut CelContext<'_, '_>) {
    // Registration only fails on a name clash with the standard library, which the chrono-less
    // build does not have; a clash would leave the library's own function in place.
    let _ = context.add_function("timestamp", |text: Arc<String>| {
        parse_timestamp(&text).map_err(|error| ExecutionError::function_error("timestamp", error))
    });
    let _ = context.add_function("duration", |text: Arc<String>| {
        parse_duration(&text).map_err(|error| ExecutionError::function_error("duration", error))
    });
    let _ = context.add_function(
        "in_cidr",
        |portcullis_cel::This(ip): portcullis_cel::This<CelValue>, cidr: CelValue| {
            let ip = string_arg("in_cidr", &ip)?;
            let cidr = string_arg("in_cidr", &cidr)?;
            let address: std::net::IpAddr = ip.parse().map_err(|_| {
                ExecutionError::function_error("in_cidr", format!("`{ip}` is not an IP address"))
            })?;
            let network: ipnet::IpNet = cidr.parse().map_err(|_| {
                ExecutionError::function_error(
                    "in_cidr",
                    format!("`{cidr}` is not a CIDR such as 10.0.0.0/8"),
                )
            })?;
            Ok::<bool, ExecutionError>(network.contains(&address))
        },
    );
}

impl CompiledCondition {
    /// Compiles `expression` for the condition `name` with its declared parameters, checking
    /// that it parses and reads only declared parameters.
    pub fn compile(
        name: &str,
        expression: &str,
        params: &[(String, ParamType)],
    ) -> Result<CompiledCondition, Vec<ExpressionError>> {
        let whole = |message: String| {
            vec![ExpressionError {
                line: 1,
                column: 1,
                message,
            }]
        };
        if expression.trim().is_empty() {
            return Err(whole(format!("condition `{name}` has an empty expression")));
        }
        let scalar = |name: &str| {
            params.iter().any(|(param, kind)| {
                param == name
                    && matches!(
                        kind,
                        ParamType::Bool
                            | ParamType::Int
                            | ParamType::Uint
                            | ParamType::Double
                            | ParamType::Duration
                            | ParamType::Timestamp
                    )
            })
        };
        let compiled = Expression::compile_typed(expression, &scalar).map_err(|errors| {
            errors
                .into_iter()
                .map(|error| ExpressionError {
                    line: error.line,
                    column: error.column,
                    message: match error.kind {
                        portcullis_cel::CompileErrorKind::Syntax => {
                            format!("invalid CEL in condition `{name}`: {}", error.message)
                        }
                        _ => format!("condition `{name}`: {}", error.message),
                    },
                })
                .collect::<Vec<_>>()
        })?;
        let mut used = Vec::new();
        let mut unknown = Vec::new();
        for variable in compiled.variables() {
            match params.iter().find(|(param, _)| *param == variable.name) {
                Some(param) => used.push(param.clone()),
                None => unknown.push(ExpressionError {
                    line: variable.line,
                    column: variable.column,
                    message: format!(
                        "condition `{name}` reads `{}`, which is not one of its parameters; declare it as `{}: <type>`",
                        variable.name, variable.name
                    ),
                }),
            }
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        used.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(CompiledCondition {
            name: name.to_owned(),
            expression: compiled,
            used,
        })
    }

    /// Evaluates the condition within a budget of its own. Parameters come from the tuple's
    /// stored context first and the request context second (OpenFGA: a value persisted with
    /// the tuple takes precedence).
    pub fn evaluate(
        &self,
        stored: Option<&Map<String, Value>>,
        request: &Map<String, Value>,
    ) -> Result<bool, EvalError> {
        self.evaluate_within(stored, request, &Budget::per_evaluation())
    }

    /// Evaluates the condition, charging `budget` (one query's conditions share one).
    pub fn evaluate_within(
        &self,
        stored: Option<&Map<String, Value>>,
        request: &Map<String, Value>,
        budget: &Budget,
    ) -> Result<bool, EvalError> {
        let mut context = portcullis_cel::context();
        add_functions(&mut context);
        for (param, param_type) in &self.used {
            let value = stored
                .and_then(|stored| stored.get(param))
                .or_else(|| request.get(param))
                .ok_or_else(|| EvalError::MissingParameter(param.clone()))?;
            portcullis_cel::check_json(param, value)
                .map_err(|error| EvalError::BadParameter(param.clone(), error.to_string()))?;
            let converted = param_type
                .convert(value)
                .map_err(|error| EvalError::BadParameter(param.clone(), error))?;
            context.add_variable_from_value(param.clone(), converted);
        }
        self.expression
            .evaluate_bool(&context, budget)
            .map_err(|error| EvalError::Failed(error.to_string()))
    }

    /// The worst-case cost of one evaluation, in cost units.
    pub fn estimated_cost(&self) -> u64 {
        self.expression.estimated_cost()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use serde_json::json;

    fn params(list: &[(&str, ParamType)]) -> Vec<(String, ParamType)> {
        list.iter()
            .map(|(n, t)| ((*n).to_owned(), t.clone()))
            .collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250_000_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert!(parse_duration("10 minutes").is_err());
    }

    #[test]
    fn timestamps_and_durations_compare() {
        let p = params(&[
            ("now", ParamType::Timestamp),
            ("start", ParamType::Timestamp),
            ("ttl", ParamType::Duration),
        ]);
        let c = CompiledCondition::compile("c", "now < start + ttl", &p).unwrap();
        let stored = json!({"start": "2024-01-01T00:00:00Z", "ttl": "1h"});
        let ok = json!({"now": "2024-01-01T00:30:00Z"});
        let late = json!({"now": "2024-01-01T01:30:00Z"});
        assert!(
            c.evaluate(stored.as_object(), ok.as_object().unwrap())
                .unwrap()
        );
        assert!(
            !c.evaluate(stored.as_object(), late.as_object().unwrap())
                .unwrap()
        );
        let c = CompiledCondition::compile(
            "c",
            "now > timestamp('2023-01-01T00:00:00Z') + duration('24h')",
            &p,
        )
        .unwrap();
        assert!(c.evaluate(None, ok.as_object().unwrap()).unwrap());
    }

    #[test]
    fn cidr() {
        let p = params(&[("ip", ParamType::IpAddress)]);
        let c = CompiledCondition::compile("c", "ip.in_cidr('10.0.0.0/8')", &p).unwrap();
        assert!(
            c.evaluate(None, json!({"ip": "10.1.2.3"}).as_object().unwrap())
                .unwrap()
        );
        assert!(
            !c.evaluate(None, json!({"ip": "11.1.2.3"}).as_object().unwrap())
                .unwrap()
        );
        assert!(matches!(
            c.evaluate(None, json!({"ip": "nope"}).as_object().unwrap()),
            Err(EvalError::BadParameter(..))
        ));
        assert_eq!(
            c.evaluate(None, &Map::new()),
            Err(EvalError::MissingParameter("ip".into()))
        );
    }

    #[test]
    fn undeclared_variables_are_errors() {
        let errors = CompiledCondition::compile("c", "x > 1", &[]).err().unwrap();
        assert!(errors[0].message.contains("declare it"), "{errors:?}");
        let errors = CompiledCondition::compile("c", "x >", &params(&[("x", ParamType::Int)]))
            .err()
            .unwrap();
        assert!(errors[0].message.contains("invalid CEL"), "{errors:?}");
    }

    #[test]
    fn stored_context_wins() {
        let p = params(&[("x", ParamType::Int)]);
        let c = CompiledCondition::compile("c", "x == 1", &p).unwrap();
        let stored = json!({"x": 1});
        let request = json!({"x": 2});
        assert!(
            c.evaluate(stored.as_object(), request.as_object().unwrap())
                .unwrap()
        );
    }

    #[test]
    fn costly_conditions_are_refused_and_inputs_are_bounded() {
        let p = params(&[("tags", ParamType::List(Box::new(ParamType::String)))]);
        let errors = CompiledCondition::compile(
            "c",
            "tags.exists(a, tags.exists(b, tags.exists(c, a + b + c == 'x')))",
            &p,
        )
        .err()
        .unwrap();
        assert!(errors[0].message.contains("estimated cost"), "{errors:?}");
        let c = CompiledCondition::compile("c", "tags.exists(t, t == 'admin')", &p).unwrap();
        let many: Vec<String> = (0..2000).map(|i| format!("t{i}")).collect();
        assert!(matches!(
            c.evaluate(None, json!({"tags": many}).as_object().unwrap()),
            Err(EvalError::BadParameter(name, message)) if name == "tags" && message.contains("2000 items")
        ));
        let budget = Budget::new(10);
        let few: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        assert!(matches!(
            c.evaluate_within(None, json!({"tags": few}).as_object().unwrap(), &budget),
            Err(EvalError::Failed(message)) if message.contains("budget")
        ));
    }
}
