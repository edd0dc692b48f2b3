//! Tenant identifiers: the only way to name a tenant anywhere in Portcullis.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A tenant id that has been checked against `^[a-zA-Z0-9-]{3,32}$`.
///
/// The check happens once, at the edge; everything below takes a `TenantId` and therefore cannot
/// be handed an unchecked string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

/// Why a string is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid tenant id {value:?}: {problem}; a tenant id is 3 to 32 characters of ASCII letters, digits and '-'"
)]
pub struct InvalidTenantId {
    /// The rejected value (truncated to 64 characters so hostile input cannot flood a log).
    pub value: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl TenantId {
    /// Minimum length of a tenant id.
    pub const MIN_LEN: usize = 3;
    /// Maximum length of a tenant id.
    pub const MAX_LEN: usize = 32;

    /// Validates `value` as a tenant id.
    pub fn new(value: &str) -> Result<Self, InvalidTenantId> {
        let problem = if value.len() < Self::MIN_LEN {
            Some("it is shorter than 3 characters")
        } else if value.len() > Self::MAX_LEN {
            Some("it is longer than 32 characters")
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            Some("it contains a character other than ASCII letters, digits and '-'")
        } else {
            None
        };
        match problem {
            None => Ok(TenantId(Arc::from(value))),
            Some(problem) => Err(InvalidTenantId {
                value: value.chars().take(64).collect(),
                problem,
            }),
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::new(s)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for TenantId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        TenantId::new(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["acme", "a-1", "ABC", "x".repeat(32).as_str(), "---"] {
            assert_eq!(TenantId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_with_a_named_problem() {
        let short = TenantId::new("ab").unwrap_err();
        assert!(short.problem.contains("shorter"), "{short}");
        let long = TenantId::new(&"a".repeat(33)).unwrap_err();
        assert!(long.problem.contains("longer"), "{long}");
        for bad in ["acme corp", "acme_corp", "acmé", "ac/me", "acme\n"] {
            let err = TenantId::new(bad).unwrap_err();
            assert!(err.problem.contains("character"), "{bad}: {err}");
        }
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<TenantId>("\"acme\"").is_ok());
        let err = serde_json::from_str::<TenantId>("\"a b\"").unwrap_err();
        assert!(err.to_string().contains("invalid tenant id"), "{err}");
    }

    proptest! {
        #[test]
        fn validation_matches_the_regular_expression(s in "\\PC{0,40}") {
            let expected = (3..=32).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            prop_assert_eq!(TenantId::new(&s).is_ok(), expected);
        }
    }
}
