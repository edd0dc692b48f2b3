//! The conformance corpus format: YAML files of model, tuples and expected answers.
//!
//! Owns the typed form of a corpus file (serde, unknown fields denied) and [`load_dir`]. The
//! library's test harness and the server's tests run the same files. It must not run queries
//! itself: runners turn [`CheckCase`] and friends into calls.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::tuple::Tuple;

/// One corpus file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusFile {
    /// What the file covers.
    pub name: String,
    /// Model in the modeling language.
    pub model: String,
    /// Stored tuples in wire shape.
    #[serde(default)]
    pub tuples: Vec<Tuple>,
    /// Expected answers.
    pub tests: Tests,
}

/// The expectations of a file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tests {
    /// Checks.
    #[serde(default)]
    pub check: Vec<CheckCase>,
    /// List objects.
    #[serde(default)]
    pub list_objects: Vec<ListObjectsCase>,
    /// List users.
    #[serde(default)]
    pub list_users: Vec<ListUsersCase>,
}

/// A check and its expected answer: `expect` or `error` (a substring of the error message).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckCase {
    /// `user:anne`, `group:eng#member` or `user:*`.
    pub user: String,
    /// Relation.
    pub relation: String,
    /// `type:id`.
    pub object: String,
    /// Request context.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Contextual tuples.
    #[serde(default)]
    pub contextual_tuples: Vec<Tuple>,
    /// Expected decision.
    #[serde(default)]
    pub expect: Option<bool>,
    /// Expected error (substring).
    #[serde(default)]
    pub error: Option<String>,
}

/// A list-objects query and its expected objects (as `type:id`, any order).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListObjectsCase {
    /// User.
    pub user: String,
    /// Relation.
    pub relation: String,
    /// Object type.
    #[serde(rename = "type")]
    pub object_type: String,
    /// Request context.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Contextual tuples.
    #[serde(default)]
    pub contextual_tuples: Vec<Tuple>,
    /// Expected objects.
    #[serde(default)]
    pub expect: Vec<String>,
    /// Expected error (substring) instead of objects.
    #[serde(default)]
    pub error: Option<String>,
}

/// A list-users query and its expected users (any order).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsersCase {
    /// `type:id`.
    pub object: String,
    /// Relation.
    pub relation: String,
    /// Filters: `user`, `group#member`.
    pub filters: Vec<String>,
    /// Request context.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Contextual tuples.
    #[serde(default)]
    pub contextual_tuples: Vec<Tuple>,
    /// Expected users.
    #[serde(default)]
    pub expect: Vec<String>,
    /// Expected error (substring) instead of users.
    #[serde(default)]
    pub error: Option<String>,
}

/// Loads every `*.yaml` file of `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<CorpusFile>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_saphyr::from_str::<CorpusFile>(&text)
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}
