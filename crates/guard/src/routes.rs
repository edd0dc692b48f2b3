//! What every stage's configuration shares: the [`ConfigError`] that names where a setting is
//! wrong, route templates (`"POST /orders/{id}"`, `"* /files/{*rest}"` for any method) mapped
//! to a stage's per-route settings, and parameter names with array indexes written `[]`.
//!
//! Templates are axum's (matchit's): `{name}` matches one segment, `{*rest}` the rest. The
//! method is upper case, or `*` for any; a route of the request's own method wins over a `*`
//! one.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::http::Method;

/// A configuration error, naming where it is (`routes[0].params.quantity.pattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ConfigError {
    /// Where.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

/// A [`ConfigError`] at `at`.
pub(crate) fn config_error(at: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        at: at.into(),
        message: message.into(),
    }
}

/// Route templates by method (`None`: any method), each with a value.
#[derive(Debug, Clone)]
pub(crate) struct Routes<T> {
    by_method: HashMap<Option<Method>, matchit::Router<T>>,
}

impl<T> Default for Routes<T> {
    fn default() -> Self {
        Self {
            by_method: HashMap::new(),
        }
    }
}

impl<T> Routes<T> {
    /// Adds `route` (`METHOD /path`) with `value`; `at` names the setting in errors.
    pub(crate) fn insert(&mut self, route: &str, value: T, at: &str) -> Result<(), ConfigError> {
        let (method, path) = route
            .trim()
            .split_once(' ')
            .ok_or_else(|| config_error(at, format!("`{route}` is not `METHOD /path`")))?;
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(config_error(
                at,
                format!("the path of `{route}` does not start with /"),
            ));
        }
        let method = match method {
            "*" => None,
            name => Some(
                Method::from_bytes(name.as_bytes())
                    .ok()
                    .filter(|method| method.as_str().bytes().all(|b| b.is_ascii_uppercase()))
                    .ok_or_else(|| {
                        config_error(at, format!("`{name}` is not an HTTP method (upper case)"))
                    })?,
            ),
        };
        self.by_method
            .entry(method)
            .or_default()
            .insert(path, value)
            .map_err(|error| config_error(at, format!("`{route}`: {error}")))
    }

    /// The value of the route `method` and `path` match.
    pub(crate) fn find(&self, method: &Method, path: &str) -> Option<&T> {
        let lookup = |key: Option<Method>| {
            self.by_method
                .get(&key)
                .and_then(|router| router.at(path).ok())
                .map(|found| found.value)
        };
        lookup(Some(method.clone())).or_else(|| lookup(None))
    }
}

/// A set of route templates (`METHOD /path`), for settings that only list routes.
#[derive(Debug, Clone, Default)]
pub struct RouteSet {
    routes: Routes<()>,
    empty: bool,
}

impl RouteSet {
    /// The set of `routes`; `at` names the list in errors (`public[2]`).
    pub fn parse(routes: &[String], at: &str) -> Result<Self, ConfigError> {
        let mut set = Routes::default();
        for (index, route) in routes.iter().enumerate() {
            set.insert(route, (), &format!("{at}[{index}]"))?;
        }
        Ok(Self {
            routes: set,
            empty: routes.is_empty(),
        })
    }

    /// Whether `method` and `path` match a route of the set.
    pub fn contains(&self, method: &Method, path: &str) -> bool {
        !self.empty && self.routes.find(method, path).is_some()
    }
}

/// A parameter's name with array indexes written `[]` (`items[3].sku` → `items[].sku`), as
/// per-parameter settings name it.
pub(crate) fn generic_name(name: &str) -> Cow<'_, str> {
    if !name.contains('[') {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '[' {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
        }
    }
    Cow::Owned(out)
}
