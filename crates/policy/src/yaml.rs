//! A YAML document as a tree of nodes that remember where they were written.
//!
//! Policy files are parsed in two steps: this module turns text into a [`Node`] tree (syntax,
//! size and alias limits are enforced here), and `decode` turns the tree into the bundle model,
//! collecting every problem with its location instead of stopping at the first. This module
//! knows nothing of bundles.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A position in a source file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub column: u32,
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: NodeKind,
    /// Where the node starts.
    pub pos: Pos,
    /// Byte offset of the node in the source, when known.
    pub offset: Option<usize>,
    /// Byte length of the node in the source, when known.
    pub len: Option<usize>,
}

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Node, Node)>),
}

impl NodeKind {
    /// A short description for error messages ("a list", "a string", ...).
    pub fn describe(&self) -> &'static str {
        match self {
            NodeKind::Null => "nothing (null)",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// Limits applied while parsing one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Largest accepted file, in bytes.
    pub max_bytes: usize,
    /// Most nodes (scalars, sequences, mappings) in one file, counting alias expansions.
    pub max_nodes: usize,
    /// Deepest nesting.
    pub max_depth: usize,
    /// Most alias uses in one file.
    pub max_aliases: usize,
    /// Most nodes that alias expansion may add to one file. Policy files seldom need aliases,
    /// so this is far below `max_nodes`: an alias bomb is refused long before it is expanded.
    pub max_alias_expansion: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        YamlLimits {
            max_bytes: 16 * 1024 * 1024,
            max_nodes: 2_000_000,
            max_depth: 64,
            max_aliases: 1_000,
            max_alias_expansion: 100_000,
        }
    }
}

/// A syntax or limit error, with its position when the parser knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where, when known.
    pub pos: Option<Pos>,
    /// What went wrong.
    pub message: String,
}

/// Parses one YAML document.
pub fn parse(source: &str, limits: &YamlLimits) -> Result<Node, YamlError> {
    if source.len() > limits.max_bytes {
        return Err(YamlError {
            pos: None,
            message: format!(
                "file is {} bytes, more than the limit of {} bytes; split it into several files",
                source.len(),
                limits.max_bytes
            ),
        });
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = limits.max_nodes;
    budget.max_depth = limits.max_depth;
    budget.max_aliases = limits.max_aliases;
    budget.max_documents = 1;
    let alias_limits = serde_saphyr::alias_limits! {
        max_total_replayed_events: limits.max_alias_expansion,
    };
    let options = serde_saphyr::options! {
        budget: Some(budget),
        alias_limits: alias_limits,
        strict_booleans: true,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(source, options) {
        Ok(tree) => Ok(convert(tree)),
        Err(error) => {
            let pos = error.location().and_then(|location| {
                (location.line() > 0).then(|| Pos {
                    line: clamp(location.line()),
                    column: clamp(location.column()),
                })
            });
            Err(YamlError {
                pos,
                message: clean_message(&error.to_string()),
            })
        }
    }
}

fn clamp(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Strips the parser's own "error: line L column C:" prefix and any snippet, keeping the words.
fn clean_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw).trim();
    let first = first.strip_prefix("error:").unwrap_or(first).trim();
    let without_position = match first.strip_prefix("line ") {
        Some(rest) => match rest.find(": ") {
            Some(index) if rest[..index].contains("column") => &rest[index + 2..],
            _ => first,
        },
        None => first,
    };
    let message = without_position.trim();
    let message = match message.rfind(" at line ") {
        Some(index) if message[index..].contains("column") => &message[..index],
        _ => message,
    };
    if message.contains("budget breached") {
        format!(
            "{message}: the document is too large or expands aliases too much (alias bombs are refused)"
        )
    } else {
        message.to_owned()
    }
}

/// The tree as serde-saphyr produces it; converted to [`Node`] right away.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

fn convert(spanned: Spanned<Raw>) -> Node {
    let location = spanned.referenced;
    let span = location.span();
    let pos = Pos {
        line: clamp(location.line()),
        column: clamp(location.column()),
    };
    let offset = span
        .byte_offset()
        .and_then(|value| usize::try_from(value).ok());
    let len = span
        .byte_len()
        .and_then(|value| usize::try_from(value).ok());
    let kind = match spanned.value {
        Raw::Null => NodeKind::Null,
        Raw::Bool(value) => NodeKind::Bool(value),
        Raw::Int(value) => NodeKind::Int(value),
        Raw::Float(value) => NodeKind::Float(value),
        Raw::Str(value) => NodeKind::Str(value),
        Raw::Seq(items) => NodeKind::Seq(items.into_iter().map(convert).collect()),
        Raw::Map(entries) => NodeKind::Map(
            entries
                .into_iter()
                .map(|(key, value)| (convert(key), convert(value)))
                .collect(),
        ),
    };
    Node {
        kind,
        pos,
        offset,
        len,
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        Raw::deserialize(deserializer)
    }
    fn visit_bool<E>(self, value: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Raw, E> {
        Ok(Raw::Int(value))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Raw, E> {
        Ok(match i64::try_from(value) {
            Ok(value) => Raw::Int(value),
            Err(_) => Raw::Str(value.to_string()),
        })
    }
    fn visit_i128<E>(self, value: i128) -> Result<Raw, E> {
        Ok(match i64::try_from(value) {
            Ok(value) => Raw::Int(value),
            Err(_) => Raw::Str(value.to_string()),
        })
    }
    fn visit_u128<E>(self, value: u128) -> Result<Raw, E> {
        Ok(match i64::try_from(value) {
            Ok(value) => Raw::Int(value),
            Err(_) => Raw::Str(value.to_string()),
        })
    }
    fn visit_f64<E>(self, value: f64) -> Result<Raw, E> {
        Ok(Raw::Float(value))
    }
    fn visit_str<E>(self, value: &str) -> Result<Raw, E> {
        Ok(Raw::Str(value.to_owned()))
    }
    fn visit_string<E>(self, value: String) -> Result<Raw, E> {
        Ok(Raw::Str(value))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = access.next_key::<Spanned<Raw>>()? {
            let value = access.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_default(source: &str) -> Result<Node, YamlError> {
        parse(source, &YamlLimits::default())
    }

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let node = parse_default("a: 1\nlist:\n  - x\n  - 'y'\n").unwrap();
        let NodeKind::Map(entries) = node.kind else {
            panic!("expected a map")
        };
        assert_eq!(entries[1].0.pos, Pos { line: 2, column: 1 });
        let NodeKind::Seq(items) = &entries[1].1.kind else {
            panic!("expected a list")
        };
        assert_eq!(items[1].pos, Pos { line: 4, column: 5 });
        assert_eq!(items[1].kind, NodeKind::Str("y".into()));
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let node = parse_default("[yes, no, on, true]").unwrap();
        let NodeKind::Seq(items) = node.kind else {
            panic!("expected a list")
        };
        assert_eq!(items[0].kind, NodeKind::Str("yes".into()));
        assert_eq!(items[3].kind, NodeKind::Bool(true));
    }

    #[test]
    fn syntax_errors_have_positions_and_plain_words() {
        let error = parse_default("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(error.pos, Some(Pos { line: 2, column: 2 }));
        assert!(!error.message.contains("line 2"), "{}", error.message);
        let duplicate = parse_default("x: 1\nx: 2\n").unwrap_err();
        assert!(
            duplicate.message.contains("duplicate"),
            "{}",
            duplicate.message
        );
    }

    #[test]
    fn alias_bombs_and_oversized_files_are_refused() {
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for (name, previous) in [
            ("b", "a"),
            ("c", "b"),
            ("d", "c"),
            ("e", "d"),
            ("f", "e"),
            ("g", "f"),
        ] {
            let refs = vec![format!("*{previous}"); 10].join(",");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let error = parse_default(&bomb).unwrap_err();
        assert!(error.message.contains("alias"), "{}", error.message);
        let limits = YamlLimits {
            max_bytes: 10,
            ..YamlLimits::default()
        };
        let error = parse("a: 123456789\n", &limits).unwrap_err();
        assert!(
            error.message.contains("more than the limit"),
            "{}",
            error.message
        );
    }
}
