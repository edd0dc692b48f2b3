//! Walking YAML nodes: what every section of the decoder reads its nodes with.
//!
//! This module owns [`Decoder`] (one file being decoded, with the diagnostics it reports) and
//! the readers shared by all sections: mappings with their allowed keys ([`Fields`]), required
//! keys, strings, names, lists, booleans, CEL sources, JSON values, named sections with their
//! duplicate check, and the few values several sections read (weekdays, action and resource
//! patterns). It knows no section: it must not decide what a section holds or means, and it
//! leaves the text of values to `values`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::TENANT_KEYS;
use crate::diagnostic::{Code, Diagnostic, Diagnostics, Location, did_you_mean};
use crate::model::{ActionPattern, At, CelSource, ResourcePattern, Weekdays};
use crate::values::{parse_action_pattern, parse_resource_pattern, parse_weekday};
use crate::yaml::{Node, NodeKind, Pos};

/// Decodes one file: where its nodes come from, and where problems go.
pub(super) struct Decoder<'a> {
    /// The file, for locations.
    pub(super) file: Arc<Path>,
    /// Its text, for scalars as written.
    pub(super) source: &'a str,
    /// Where every problem goes.
    pub(super) diagnostics: &'a mut Diagnostics,
}

/// The entries of a mapping, with unknown keys already reported.
pub(super) struct Fields<'n> {
    pub(super) entries: Vec<(String, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    pub(super) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(name, _, _)| name == key)
            .map(|(_, _, value)| *value)
    }

    pub(super) fn key_node(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(name, _, _)| name == key)
            .map(|(_, key_node, _)| *key_node)
    }
}

impl Decoder<'_> {
    pub(super) fn location(&self, node: &Node) -> Location {
        Location::at(&self.file, node.pos)
    }

    pub(super) fn report(&mut self, node: &Node, code: Code, message: impl Into<String>) {
        let location = self.location(node);
        self.diagnostics
            .push(Diagnostic::new(location, code, message));
    }

    pub(super) fn report_help(
        &mut self,
        node: &Node,
        code: Code,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let location = self.location(node);
        self.diagnostics
            .push(Diagnostic::new(location, code, message).with_help(help));
    }

    pub(super) fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) {
        self.report(
            node,
            Code::Type,
            format!("{what} must be {expected}, found {}", node.kind.describe()),
        );
    }

    /// The text of a scalar as written, for names that YAML typed as numbers or booleans.
    pub(super) fn scalar_text(&self, node: &Node) -> Option<String> {
        match &node.kind {
            NodeKind::Str(text) => Some(text.clone()),
            NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => {
                let from_source = node
                    .offset
                    .zip(node.len)
                    .and_then(|(offset, len)| self.source.get(offset..offset + len))
                    .map(str::to_owned);
                Some(from_source.unwrap_or_else(|| match &node.kind {
                    NodeKind::Int(value) => value.to_string(),
                    NodeKind::Float(value) => value.to_string(),
                    NodeKind::Bool(value) => value.to_string(),
                    _ => String::new(),
                }))
            }
            _ => None,
        }
    }

    pub(super) fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            if node.kind != NodeKind::Null {
                self.wrong_type(node, what, "a mapping");
            }
            return None;
        };
        let mut fields = Fields {
            entries: Vec::with_capacity(entries.len()),
        };
        for (key, value) in entries {
            let Some(name) = self.scalar_text(key) else {
                self.wrong_type(key, &format!("a key of {what}"), "a string");
                continue;
            };
            if !allowed.contains(&name.as_str()) {
                let mut message = format!("unknown key `{name}` in {what}");
                let help = match did_you_mean(&name, allowed.iter().copied()) {
                    Some(close) => format!(
                        "did you mean `{close}`? {what} may hold: {}",
                        allowed.join(", ")
                    ),
                    None => format!("{what} may hold: {}", allowed.join(", ")),
                };
                if TENANT_KEYS.contains(&name.as_str()) && !allowed.contains(&"tenant") {
                    message.push_str("; tenant settings belong in tenant.yaml");
                }
                self.report_help(key, Code::UnknownKey, message, help);
                continue;
            }
            fields.entries.push((name, key, value));
        }
        Some(fields)
    }

    pub(super) fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        parent: &Node,
        key: &str,
        what: &str,
    ) -> Option<&'n Node> {
        let found = fields.get(key);
        if found.is_none() {
            self.report(parent, Code::MissingKey, format!("{what} needs `{key}`"));
        }
        found
    }

    pub(super) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Str(text) if text.is_empty() => {
                self.report(node, Code::Value, format!("{what} must not be empty"));
                None
            }
            NodeKind::Str(text) => Some(text.clone()),
            NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => self.scalar_text(node),
            _ => {
                self.wrong_type(node, what, "a string");
                None
            }
        }
    }

    pub(super) fn at_string(&mut self, node: &Node, what: &str) -> Option<At<String>> {
        let value = self.string(node, what)?;
        Some(At {
            value,
            location: self.location(node),
        })
    }

    /// A name: a non-empty string without whitespace or control characters, at most 200 bytes.
    pub(super) fn name(&mut self, node: &Node, what: &str) -> Option<At<String>> {
        let name = self.at_string(node, what)?;
        if name.value.len() > 200
            || name
                .value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            self.report_help(
                node,
                Code::Value,
                format!("{what} `{}` is not a valid name", name.value),
                "names are at most 200 bytes and contain no spaces or control characters",
            );
            return None;
        }
        Some(name)
    }

    pub(super) fn list<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match &node.kind {
            NodeKind::Seq(items) => items,
            NodeKind::Null => &[],
            _ => {
                self.wrong_type(node, what, "a list");
                &[]
            }
        }
    }

    pub(super) fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.kind {
            NodeKind::Bool(value) => Some(value),
            _ => {
                self.wrong_type(node, what, "true or false");
                None
            }
        }
    }

    pub(super) fn description(&mut self, fields: &Fields<'_>) {
        if let Some(node) = fields.get("description") {
            self.string(node, "description");
        }
    }

    pub(super) fn cel(&mut self, node: &Node, what: &str) -> Option<CelSource> {
        let NodeKind::Str(text) = &node.kind else {
            self.wrong_type(node, what, "a CEL expression in a string");
            return None;
        };
        if text.trim().is_empty() {
            self.report(node, Code::Cel, format!("{what} is an empty expression"));
            return None;
        }
        let (start, continuation_column) = self.scalar_content_start(node);
        Some(CelSource {
            text: text.clone(),
            start: Location::at(&self.file, start),
            continuation_column,
        })
    }

    /// Where the characters of a string scalar begin. For a quoted scalar, one column after the
    /// quote; for a block scalar (`|`, `>`) the parser already places the node at its first
    /// content line, and every continuation line starts at the same column.
    fn scalar_content_start(&self, node: &Node) -> (Pos, Option<u32>) {
        let first = node
            .offset
            .and_then(|offset| self.source.get(offset..))
            .and_then(|rest| rest.chars().next());
        match (first, &node.kind) {
            (Some('"' | '\''), _) => (
                Pos {
                    line: node.pos.line,
                    column: node.pos.column + 1,
                },
                None,
            ),
            (_, NodeKind::Str(text)) if text.contains('\n') => (node.pos, Some(node.pos.column)),
            _ => (node.pos, None),
        }
    }

    pub(super) fn json(&mut self, node: &Node) -> Value {
        match &node.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(value) => Value::Bool(*value),
            NodeKind::Int(value) => Value::from(*value),
            NodeKind::Float(value) => serde_json::Number::from_f64(*value)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeKind::Str(value) => Value::String(value.clone()),
            NodeKind::Seq(items) => {
                Value::Array(items.iter().map(|item| self.json(item)).collect())
            }
            NodeKind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (key, value) in entries {
                    match self.scalar_text(key) {
                        Some(key) => {
                            let value = self.json(value);
                            map.insert(key, value);
                        }
                        None => self.wrong_type(key, "a key", "a string"),
                    }
                }
                Value::Object(map)
            }
        }
    }

    pub(super) fn named_section<T>(
        &mut self,
        node: &Node,
        kind: &str,
        target: &mut BTreeMap<String, At<T>>,
        decode: fn(&mut Self, &Node, &str) -> Option<T>,
    ) {
        let NodeKind::Map(entries) = &node.kind else {
            if node.kind != NodeKind::Null {
                self.wrong_type(node, &format!("the {kind} section"), "a mapping of names");
            }
            return;
        };
        for (key, value) in entries {
            let Some(name) = self.name(key, &format!("{kind} name")) else {
                continue;
            };
            let label = format!("{kind} `{}`", name.value);
            let Some(decoded) = decode(self, value, &label) else {
                continue;
            };
            if let Some(previous) = target.get(&name.value) {
                let message = format!("{label} is defined twice; first at {}", previous.location);
                self.report_help(
                    key,
                    Code::Duplicate,
                    message,
                    format!("give each {kind} a unique name"),
                );
                continue;
            }
            target.insert(
                name.value,
                At {
                    value: decoded,
                    location: name.location,
                },
            );
        }
    }

    // ---------------------------------------------------------------- shared values

    /// The `attributes` mapping of a principal or resource (`label`), when given.
    pub(super) fn attributes(
        &mut self,
        node: Option<&Node>,
        label: &str,
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut attributes = std::collections::BTreeMap::new();
        if let Some(map) = node {
            match self.json(map) {
                serde_json::Value::Object(object) => attributes.extend(object),
                serde_json::Value::Null => {}
                _ => self.wrong_type(map, &format!("attributes of {label}"), "a mapping"),
            }
        }
        attributes
    }

    pub(super) fn weekdays(&mut self, node: &Node, what: &str) -> Weekdays {
        let mut set = Weekdays(0);
        for item in self.list(node, what) {
            let Some(text) = self.string(item, "a weekday") else {
                continue;
            };
            match parse_weekday(&text) {
                Some(day) => set.0 |= 1 << day,
                None => self.report_help(
                    item,
                    Code::Weekday,
                    format!("bad weekday `{text}`"),
                    "weekdays are mon, tue, wed, thu, fri, sat or sun (full names are accepted too)",
                ),
            }
        }
        set
    }

    pub(super) fn action_pattern(&mut self, node: &Node) -> Option<At<ActionPattern>> {
        let text = self.string(node, "a permission")?;
        match parse_action_pattern(&text) {
            Ok(pattern) => Some(At {
                value: pattern,
                location: self.location(node),
            }),
            Err(problem) => {
                self.report_help(
                    node,
                    Code::Pattern,
                    format!("bad action pattern `{text}`: {problem}"),
                    "write resource_type:action, with `*` replacing a whole part: app:release, app:*, *:read or *",
                );
                None
            }
        }
    }

    pub(super) fn resource_pattern(&mut self, node: &Node) -> Option<ResourcePattern> {
        let text = self.string(node, "a resource pattern")?;
        match parse_resource_pattern(&text) {
            Ok(pattern) => Some(pattern),
            Err(problem) => {
                self.report_help(
                    node,
                    Code::Pattern,
                    format!("bad resource pattern `{text}`: {problem}"),
                    "write type:id, with `*` replacing a whole part: doc:readme, doc:* or *",
                );
                None
            }
        }
    }
}
