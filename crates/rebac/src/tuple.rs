//! Relationship tuples and their string forms.
//!
//! Owns [`ObjectRef`], [`User`], [`Tuple`] and [`TupleCondition`], their `type:id`,
//! `type:id#relation` and `type:*` string forms, and their serde shape, which is OpenFGA's wire
//! shape (`{"user": ..., "relation": ..., "object": ..., "condition": {"name", "context"}}`).
//! It must not know about models or indexes: validating a tuple against a model is
//! [`crate::Model::validate_tuple`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Longest accepted object id, type name or relation name, in bytes.
pub const MAX_NAME_LENGTH: usize = 256;

/// An object: `type:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The object's type, e.g. `document`.
    pub object_type: String,
    /// The object's id, e.g. `roadmap`.
    pub id: String,
}

impl ObjectRef {
    /// `type:id`.
    pub fn new(object_type: impl Into<String>, id: impl Into<String>) -> Self {
        ObjectRef {
            object_type: object_type.into(),
            id: id.into(),
        }
    }
}

/// The subject of a tuple or a query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum User {
    /// A concrete object, `user:anne`.
    Object(ObjectRef),
    /// Everyone in a relation of an object, `group:eng#member`.
    Userset {
        /// The object (`group:eng`).
        object: ObjectRef,
        /// The relation (`member`).
        relation: String,
    },
    /// Every object of a type, `user:*`.
    Wildcard(String),
}

impl User {
    /// The user's type (`user` for `user:anne` and `user:*`, `group` for `group:eng#member`).
    pub fn user_type(&self) -> &str {
        match self {
            User::Object(object) | User::Userset { object, .. } => &object.object_type,
            User::Wildcard(user_type) => user_type,
        }
    }
}

/// A condition attached to a tuple: its name and the stored part of its context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TupleCondition {
    /// The condition's name, as declared in the model.
    pub name: String,
    /// Parameter values stored with the tuple.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
}

/// A relationship tuple: `user` is in `relation` of `object`, optionally under a condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuple {
    /// The object.
    pub object: ObjectRef,
    /// The relation on the object.
    pub relation: String,
    /// The subject.
    pub user: User,
    /// The condition under which the tuple holds.
    pub condition: Option<TupleCondition>,
}

impl Tuple {
    /// An unconditional tuple from its three string parts (`"user:anne"`, `"viewer"`, `"doc:1"`).
    pub fn parse(user: &str, relation: &str, object: &str) -> Result<Tuple, ParseError> {
        Ok(Tuple {
            object: object.parse()?,
            relation: parse_relation(relation)?,
            user: user.parse()?,
            condition: None,
        })
    }

    /// The same tuple with a condition.
    pub fn with_condition(mut self, name: &str, context: Map<String, Value>) -> Tuple {
        self.condition = Some(TupleCondition {
            name: name.to_owned(),
            context,
        });
        self
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.object, self.relation, self.user)?;
        if let Some(condition) = &self.condition {
            write!(f, " with {}", condition.name)?;
        }
        Ok(())
    }
}

/// A string that is not a valid object, user or relation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{input}`: {reason}")]
pub struct ParseError {
    /// What was being parsed (`object`, `user`, `relation`).
    pub what: &'static str,
    /// The input, shortened if long.
    pub input: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

fn parse_error(what: &'static str, input: &str, reason: impl Into<String>) -> ParseError {
    let mut shown: String = input.chars().take(80).collect();
    if shown.len() < input.len() {
        shown.push('…');
    }
    ParseError {
        what,
        input: shown,
        reason: reason.into(),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LENGTH
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ':' | '#' | '@' | '*'))
}

/// An object id, by OpenFGA's rule (`^[^#:\s]+$`): non-empty, without whitespace, `#` or
/// `:` (so `user:b:c` is refused rather than read as id `b:c`), and at most
/// [`MAX_NAME_LENGTH`] bytes. `@` and `*` are allowed (`user:anne@example.com`); an id that is
/// exactly `*` is the wildcard, which only a user may be.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NAME_LENGTH
        && !id
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '#' | ':'))
}

/// Checks a relation name.
pub fn parse_relation(text: &str) -> Result<String, ParseError> {
    if valid_name(text) {
        Ok(text.to_owned())
    } else {
        Err(parse_error(
            "relation",
            text,
            "expected a relation name without whitespace, `:`, `#`, `@` or `*`",
        ))
    }
}

impl FromStr for ObjectRef {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((object_type, id)) = text.split_once(':') else {
            return Err(parse_error(
                "object",
                text,
                "expected `type:id`, e.g. `document:roadmap`",
            ));
        };
        if !valid_name(object_type) {
            return Err(parse_error(
                "object",
                text,
                "the type must be non-empty, at most 256 bytes, without whitespace, `:`, `#`, `@` or `*`",
            ));
        }
        if id == "*" {
            return Err(parse_error(
                "object",
                text,
                "an object cannot be a wildcard; `type:*` is only valid as a user",
            ));
        }
        if !valid_id(id) {
            return Err(parse_error(
                "object",
                text,
                "the id must be non-empty, at most 256 bytes, without whitespace, `#` or `:`",
            ));
        }
        Ok(ObjectRef::new(object_type, id))
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.id)
    }
}

impl FromStr for User {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(user_type) = text.strip_suffix(":*") {
            if !valid_name(user_type) {
                return Err(parse_error(
                    "user",
                    text,
                    "expected `type:*` with a valid type name",
                ));
            }
            return Ok(User::Wildcard(user_type.to_owned()));
        }
        if let Some((object, relation)) = text.split_once('#') {
            let object: ObjectRef = object.parse().map_err(|error: ParseError| {
                parse_error(
                    "user",
                    text,
                    format!("in the userset's object: {}", error.reason),
                )
            })?;
            if !valid_name(relation) {
                return Err(parse_error(
                    "user",
                    text,
                    "expected `type:id#relation` with a valid relation name",
                ));
            }
            return Ok(User::Userset {
                object,
                relation: relation.to_owned(),
            });
        }
        if !text.contains(':') {
            return Err(parse_error(
                "user",
                text,
                "expected `type:id`, `type:id#relation` or `type:*`, e.g. `user:anne`",
            ));
        }
        text.parse()
            .map(User::Object)
            .map_err(|error: ParseError| parse_error("user", text, error.reason))
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            User::Object(object) => write!(f, "{object}"),
            User::Userset { object, relation } => write!(f, "{object}#{relation}"),
            User::Wildcard(user_type) => write!(f, "{user_type}:*"),
        }
    }
}

macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(ObjectRef);
string_serde!(User);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTuple {
    user: User,
    relation: String,
    object: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    condition: Option<TupleCondition>,
}

impl Serialize for Tuple {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireTuple {
            user: self.user.clone(),
            relation: self.relation.clone(),
            object: self.object.clone(),
            condition: self.condition.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Tuple {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireTuple::deserialize(deserializer)?;
        let relation = parse_relation(&wire.relation).map_err(serde::de::Error::custom)?;
        Ok(Tuple {
            object: wire.object,
            relation,
            user: wire.user,
            condition: wire.condition,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn string_forms_round_trip() {
        for text in ["user:anne", "group:eng#member", "user:*", "folder:a/b.c"] {
            let user: User = text.parse().unwrap();
            assert_eq!(user.to_string(), text);
        }
    }

    #[test]
    fn bad_strings_are_explained() {
        let error = "anne".parse::<User>().unwrap_err();
        assert!(error.to_string().contains("expected `type:id`"), "{error}");
        let error = "doc:*".parse::<ObjectRef>().unwrap_err();
        assert!(error.to_string().contains("wildcard"), "{error}");
        let error = "doc:".parse::<ObjectRef>().unwrap_err();
        assert!(error.to_string().contains("non-empty"), "{error}");
        let error = "group:eng#".parse::<User>().unwrap_err();
        assert!(error.to_string().contains("relation"), "{error}");
    }

    #[test]
    fn malformed_ids_are_refused_as_openfga_refuses_them() {
        // More than one `:` or `#`, whitespace, empty parts.
        for user in [
            "user:b:c",
            "user:b:c#member",
            "group:a#member#x",
            "a:b:*",
            "user:an ne",
            "user:",
            ":anne",
            "user:a\tb",
        ] {
            assert!(user.parse::<User>().is_err(), "{user} accepted");
        }
        for object in [
            "doc:a:b", "doc:a#b", "doc:a b", "doc:", ":a", "doc", "doc:*",
        ] {
            assert!(object.parse::<ObjectRef>().is_err(), "{object} accepted");
        }
        let error = "user:b:c".parse::<User>().unwrap_err();
        assert!(
            error.to_string().contains("without whitespace, `#` or `:`"),
            "{error}"
        );
        // What OpenFGA accepts in an id: `@`, `*` inside an id, `.`, `/`, `|`, unicode.
        for user in [
            "user:anne@example.com",
            "user:a*b",
            "folder:a/b.c",
            "user:ü|1",
        ] {
            let parsed: User = user.parse().unwrap();
            assert_eq!(parsed.to_string(), user);
        }
        let userset: User = "group:eng@x#member".parse().unwrap();
        assert_eq!(userset.to_string(), "group:eng@x#member");
    }

    #[test]
    fn wire_shape() {
        let json = r#"{"user":"user:anne","relation":"viewer","object":"doc:1","condition":{"name":"c","context":{"x":1}}}"#;
        let tuple: Tuple = serde_json::from_str(json).unwrap();
        assert_eq!(tuple.condition.as_ref().unwrap().name, "c");
        assert_eq!(serde_json::to_string(&tuple).unwrap(), json);
        assert!(
            serde_json::from_str::<Tuple>(
                r#"{"user":"user:anne","relation":"viewer","object":"doc:1","x":1}"#
            )
            .is_err()
        );
    }
}
