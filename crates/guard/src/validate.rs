//! Parameter validation: per-route rules for the query, form, JSON and multipart parameters of
//! a request, and the stage that applies them.
//!
//! Rules are written per route (`"POST /orders/{id}"`, templates as axum writes them) and per
//! parameter name (JSON leaves by path, array indexes written `[]`: `items[].sku`):
//!
//! ```yaml
//! skip: ["POST /webhooks/{*rest}"]      # routes never validated
//! routes:
//!   - route: POST /orders
//!     unknown: refuse                   # parameters without a rule are refused (default: allow)
//!     params:
//!       quantity: { type: integer, required: true, min: 1, max: 100 }
//!       email:    { format: email }
//!       code:     { pattern: "[A-Z]{3}-[0-9]{4}", max_length: 8 }
//!       status:   { enum: [open, closed] }
//! ```
//!
//! A rule may say: `type` (`string`, the default; `integer`, `number`, `boolean`, `file`),
//! `required`, `min`/`max` (numbers), `min_length`/`max_length` (characters), `pattern` (a
//! regular expression the whole value must match), `enum` (the allowed values, as text) and
//! `format` (a built-in [`Format`]). Query, form and multipart values are text and are read as
//! the type says (`"12"` is an integer there); JSON leaves must have the type itself (`"12"` is
//! a string in JSON). A JSON `null` counts as absent. A parameter given several times has each
//! value checked.
//!
//! The configuration is checked once, when it is built ([`Validation::try_from`]): a route that
//! is not `METHOD /path`, a pattern that does not compile, `min` above `max`, a range on a
//! string or a length on a number, an empty `enum`, an unknown format — each an error naming
//! where it is. A route with no rules and not skipped passes: whether a route exists at all is
//! the resource stage's question, not this one's.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::formats::Format;
use crate::params::{FieldValue, Params, params_of};
pub use crate::routes::ConfigError;
use crate::routes::{Routes, config_error, generic_name};
use crate::stage::{Check, Refusal, Stage};

/// Largest compiled pattern accepted, so a rule cannot make validation slow.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Default body limit of the stage.
const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// The validation section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {
    /// Routes never validated.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Rules per route.
    #[serde(default)]
    pub routes: Vec<RawRouteRules>,
    /// Largest body read, in bytes (default 1 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
}

/// One route's rules as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteRules {
    /// `METHOD /path`, the path a template (`/orders/{id}`, `/files/{*rest}`); `*` for any
    /// method.
    pub route: String,
    /// What to do with parameters that have no rule.
    #[serde(default)]
    pub unknown: Unknown,
    /// Rules per parameter name.
    #[serde(default)]
    pub params: BTreeMap<String, RawRule>,
}

/// What to do with a parameter no rule names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unknown {
    /// Let it through.
    #[default]
    Allow,
    /// Refuse the request (400 `unknown_parameter`).
    Refuse,
}

/// The type a parameter must have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Text.
    #[default]
    String,
    /// A whole number (64-bit).
    Integer,
    /// A finite number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A multipart file.
    File,
}

impl Kind {
    fn described(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::Boolean => "a boolean",
            Kind::File => "a file",
        }
    }
}

/// One parameter's rule as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// The type (default `string`).
    #[serde(default, rename = "type")]
    pub kind: Kind,
    /// Whether it must be present.
    #[serde(default)]
    pub required: bool,
    /// Smallest number allowed.
    pub min: Option<f64>,
    /// Largest number allowed.
    pub max: Option<f64>,
    /// Fewest characters allowed.
    pub min_length: Option<usize>,
    /// Most characters allowed.
    pub max_length: Option<usize>,
    /// A regular expression the whole value must match.
    pub pattern: Option<String>,
    /// The allowed values.
    #[serde(rename = "enum")]
    pub one_of: Option<Vec<String>>,
    /// A built-in format.
    pub format: Option<String>,
}

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    kind: Kind,
    required: bool,
    min: Option<f64>,
    max: Option<f64>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<Regex>,
    one_of: Option<Vec<String>>,
    format: Option<Format>,
}

impl Rule {
    fn try_from_raw(raw: &RawRule, at: &str) -> Result<Self, ConfigError> {
        let numeric = matches!(raw.kind, Kind::Integer | Kind::Number);
        if !numeric && (raw.min.is_some() || raw.max.is_some()) {
            return Err(config_error(
                at,
                format!(
                    "`min`/`max` need `type: integer` or `number`, not {}",
                    raw.kind.described()
                ),
            ));
        }
        if raw.kind != Kind::String
            && (raw.min_length.is_some()
                || raw.max_length.is_some()
                || raw.pattern.is_some()
                || raw.format.is_some())
        {
            return Err(config_error(
                at,
                "`min_length`, `max_length`, `pattern` and `format` apply to strings only",
            ));
        }
        for (name, value) in [("min", raw.min), ("max", raw.max)] {
            if value.is_some_and(|value| !value.is_finite()) {
                return Err(config_error(
                    format!("{at}.{name}"),
                    "must be a finite number",
                ));
            }
        }
        if let (Some(min), Some(max)) = (raw.min, raw.max)
            && min > max
        {
            return Err(config_error(
                at,
                format!("`min` ({min}) is above `max` ({max})"),
            ));
        }
        if let (Some(min), Some(max)) = (raw.min_length, raw.max_length)
            && min > max
        {
            return Err(config_error(
                at,
                format!("`min_length` ({min}) is above `max_length` ({max})"),
            ));
        }
        let pattern = raw
            .pattern
            .as_deref()
            .map(|pattern| {
                regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                    .map_err(|error| config_error(format!("{at}.pattern"), error.to_string()))
            })
            .transpose()?;
        if raw.one_of.as_ref().is_some_and(Vec::is_empty) {
            return Err(config_error(format!("{at}.enum"), "lists no value"));
        }
        let format = raw
            .format
            .as_deref()
            .map(|name| {
                name.parse::<Format>()
                    .map_err(|error| config_error(format!("{at}.format"), error.to_string()))
            })
            .transpose()?;
        Ok(Self {
            kind: raw.kind,
            required: raw.required,
            min: raw.min,
            max: raw.max,
            min_length: raw.min_length,
            max_length: raw.max_length,
            pattern,
            one_of: raw.one_of.clone(),
            format,
        })
    }

    /// Why `value` breaks this rule, if it does.
    fn violation(&self, value: &FieldValue) -> Option<String> {
        let must_be = || Some(format!("must be {}", self.kind.described()));
        // The value as text (for length, pattern, format and enum) and as a number.
        let (text, number): (Option<String>, Option<f64>) = match (value, self.kind) {
            (FieldValue::File(_), Kind::File) => return None,
            (FieldValue::File(_), _) | (_, Kind::File) => return must_be(),
            (FieldValue::Text(text), Kind::String) => (Some(text.clone()), None),
            (FieldValue::Text(text), Kind::Integer) => match text.trim().parse::<i64>() {
                Ok(number) => (Some(text.clone()), Some(number as f64)),
                Err(_) => return must_be(),
            },
            (FieldValue::Text(text), Kind::Number) => match text.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => (Some(text.clone()), Some(number)),
                _ => return must_be(),
            },
            (FieldValue::Text(text), Kind::Boolean) => match text.as_str() {
                "true" | "false" => (Some(text.clone()), None),
                _ => return must_be(),
            },
            (FieldValue::Json(Value::String(text)), Kind::String) => (Some(text.clone()), None),
            (FieldValue::Json(Value::Number(number)), Kind::Integer)
                if number.is_i64() || number.is_u64() =>
            {
                (Some(number.to_string()), number.as_f64())
            }
            (FieldValue::Json(Value::Number(number)), Kind::Number) => {
                (Some(number.to_string()), number.as_f64())
            }
            (FieldValue::Json(Value::Bool(value)), Kind::Boolean) => {
                (Some(value.to_string()), None)
            }
            (FieldValue::Json(_), _) => return must_be(),
        };
        if let Some(number) = number {
            if let Some(min) = self.min
                && number < min
            {
                return Some(format!("must be at least {min}"));
            }
            if let Some(max) = self.max
                && number > max
            {
                return Some(format!("must be at most {max}"));
            }
        }
        let text = text.unwrap_or_default();
        let length = text.chars().count();
        if let Some(min) = self.min_length
            && length < min
        {
            return Some(format!("must be at least {min} characters long"));
        }
        if let Some(max) = self.max_length
            && length > max
        {
            return Some(format!("must be at most {max} characters long"));
        }
        if let Some(pattern) = &self.pattern
            && !pattern.is_match(&text)
        {
            return Some("does not match the required pattern".into());
        }
        if let Some(format) = self.format
            && !format.check(&text)
        {
            return Some(format!("must be a valid {format}"));
        }
        if let Some(allowed) = &self.one_of
            && !allowed.contains(&text)
        {
            return Some(format!("must be one of: {}", allowed.join(", ")));
        }
        None
    }
}

/// One route's checked rules.
#[derive(Debug, Clone)]
pub struct RouteRules {
    unknown: Unknown,
    params: BTreeMap<String, Rule>,
}

impl RouteRules {
    /// Checks `params` against these rules; the first violation is the refusal (400, stage
    /// `validation`, naming the parameter).
    pub fn check(&self, params: &Params) -> Result<(), Refusal> {
        let refuse = |code: &'static str, name: &str, message: String| {
            Refusal::new(Stage::Validation, StatusCode::BAD_REQUEST, code, message)
                .with_field(name.to_owned())
        };
        let mut present: HashSet<&str> = HashSet::new();
        for field in &params.fields {
            let name = generic_name(&field.name);
            let Some((key, rule)) = self.params.get_key_value(name.as_ref()) else {
                if self.unknown == Unknown::Refuse {
                    return Err(refuse(
                        "unknown_parameter",
                        &field.name,
                        format!("`{}` is not a parameter of this route", field.name),
                    ));
                }
                continue;
            };
            if matches!(field.value, FieldValue::Json(Value::Null)) {
                continue;
            }
            present.insert(key.as_str());
            if let Some(problem) = rule.violation(&field.value) {
                return Err(refuse(
                    "invalid_parameter",
                    &field.name,
                    format!("`{}` {problem}", field.name),
                ));
            }
        }
        for (name, rule) in &self.params {
            if rule.required && !present.contains(name.as_str()) {
                return Err(refuse(
                    "missing_parameter",
                    name,
                    format!("`{name}` is required"),
                ));
            }
        }
        Ok(())
    }
}

/// The checked validation configuration.
#[derive(Debug, Clone)]
pub struct Validation {
    skip: Routes<()>,
    routes: Routes<Arc<RouteRules>>,
    max_body_bytes: usize,
}

impl TryFrom<RawValidation> for Validation {
    type Error = ConfigError;

    fn try_from(raw: RawValidation) -> Result<Self, ConfigError> {
        let mut skip = Routes::default();
        for (index, route) in raw.skip.iter().enumerate() {
            skip.insert(route, (), &format!("skip[{index}]"))?;
        }
        let mut routes = Routes::default();
        for (index, route) in raw.routes.iter().enumerate() {
            let at = format!("routes[{index}]");
            let mut params = BTreeMap::new();
            for (name, rule) in &route.params {
                params.insert(
                    name.clone(),
                    Rule::try_from_raw(rule, &format!("{at}.params.{name}"))?,
                );
            }
            let rules = Arc::new(RouteRules {
                unknown: route.unknown,
                params,
            });
            routes.insert(&route.route, rules, &at)?;
        }
        let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(config_error("max_body_bytes", "must be above 0"));
        }
        Ok(Self {
            skip,
            routes,
            max_body_bytes,
        })
    }
}

impl Validation {
    /// The rules for a request, `None` when the route is skipped or has none.
    pub fn rules_for(&self, method: &Method, path: &str) -> Option<&Arc<RouteRules>> {
        if self.skip.find(method, path).is_some() {
            return None;
        }
        self.routes.find(method, path)
    }
}

/// The validation stage.
#[derive(Debug, Clone)]
pub struct ValidationCheck {
    config: Arc<Validation>,
}

impl ValidationCheck {
    /// The stage with `config`.
    pub fn new(config: Arc<Validation>) -> Self {
        Self { config }
    }
}

impl Check for ValidationCheck {
    const STAGE: Stage = Stage::Validation;

    async fn check(&self, request: Request<Body>) -> Result<Request<Body>, Refusal> {
        let Some(rules) = self
            .config
            .rules_for(request.method(), request.uri().path())
            .cloned()
        else {
            return Ok(request);
        };
        let (request, params) = params_of(request, self.config.max_body_bytes, Self::STAGE).await?;
        rules.check(&params)?;
        Ok(request)
    }
}
