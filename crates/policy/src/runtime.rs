//! Run-time data laid over a compiled bundle: principals, role assignments and approved
//! temporary grants managed in the store, the store's suspension of the tenant, and the
//! revision of that data.
//!
//! The overlay never changes the compiled bundle: [`Snapshot::with_runtime`] returns a new
//! snapshot sharing it, so a change in the store costs a merge of principals, not a compile.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::access::{RuntimeGrant, TemporaryGrant};
use crate::compile::{PrincipalEntry, Snapshot};
use crate::model::TenantStatus;
use crate::values::parse_resource_pattern;

/// A principal managed at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimePrincipal {
    /// Its id.
    pub id: String,
    /// Its type, when the store sets one.
    pub kind: Option<String>,
    /// Attributes; they override the bundle's for the same keys.
    pub attributes: Map<String, Value>,
}

/// A role assigned at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeAssignment {
    /// The principal.
    pub principal: String,
    /// The role (one the bundle defines; others are ignored and reported).
    pub role: String,
    /// `*` for everywhere, or a `type:id` pattern.
    pub resource: String,
}

/// Everything the store says about a tenant at one data revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeData {
    /// The data revision.
    pub revision: u64,
    /// Whether the store has suspended the tenant.
    pub suspended: bool,
    /// Principals managed at run time.
    pub principals: Vec<RuntimePrincipal>,
    /// Role assignments made at run time.
    pub assignments: Vec<RuntimeAssignment>,
    /// Approved temporary grants (decisions compare each one's window with their own time).
    pub grants: Vec<RuntimeGrant>,
}

impl Snapshot {
    /// Whether decisions are refused: suspended by the bundle or by the store.
    pub fn is_suspended(&self) -> bool {
        self.suspended || self.settings.status == TenantStatus::Suspended
    }

    /// Whether the bundle (or the run-time data) knows this principal.
    pub fn knows_principal(&self, id: &str) -> bool {
        self.principals.contains_key(id)
    }

    /// The run-time data revision this snapshot carries.
    pub fn data_revision(&self) -> Option<u64> {
        self.data_revision
    }

    /// This snapshot's bundle with `data` laid over it: run-time principals added (their
    /// attributes overriding the bundle's key by key), run-time assignments added to the
    /// bundle's, approved temporary grants given to their principals, and the store's
    /// suspension. Returns the snapshot and a note for each
    /// assignment that could not apply (a role the bundle does not define, a bad pattern).
    pub fn with_runtime(&self, data: &RuntimeData) -> (Snapshot, Vec<String>) {
        let mut principals = (*self.compiled.principals).clone();
        let mut notes = Vec::new();
        for runtime in &data.principals {
            let entry = principals
                .entry(runtime.id.clone())
                .or_insert_with(|| PrincipalEntry {
                    id: Arc::from(runtime.id.as_str()),
                    kind: None,
                    global: Default::default(),
                    scoped: Vec::new(),
                    attributes: Map::new(),
                    grants: Vec::new(),
                });
            if runtime.kind.is_some() {
                entry.kind.clone_from(&runtime.kind);
            }
            for (key, value) in &runtime.attributes {
                entry.attributes.insert(key.clone(), value.clone());
            }
        }
        for assignment in &data.assignments {
            let Some(&role) = self.roles.index.get(&assignment.role) else {
                notes.push(format!(
                    "run-time assignment of role `{}` to `{}` ignored: the bundle defines no such role",
                    assignment.role, assignment.principal
                ));
                continue;
            };
            let entry = principals
                .entry(assignment.principal.clone())
                .or_insert_with(|| PrincipalEntry {
                    id: Arc::from(assignment.principal.as_str()),
                    kind: None,
                    global: Default::default(),
                    scoped: Vec::new(),
                    attributes: Map::new(),
                    grants: Vec::new(),
                });
            if assignment.resource == "*" {
                entry.global.insert(role);
            } else {
                match parse_resource_pattern(&assignment.resource) {
                    Ok(pattern) => entry.scoped.push((pattern, role)),
                    Err(problem) => notes.push(format!(
                        "run-time assignment of role `{}` to `{}` on `{}` ignored: {problem}",
                        assignment.role, assignment.principal, assignment.resource
                    )),
                }
            }
        }
        for grant in &data.grants {
            let compiled = match TemporaryGrant::compile(grant) {
                Ok(compiled) => compiled,
                Err(problem) => {
                    notes.push(format!(
                        "temporary grant `{}` of `{}` ignored: {problem}",
                        grant.id, grant.principal
                    ));
                    continue;
                }
            };
            principals
                .entry(grant.principal.clone())
                .or_insert_with(|| PrincipalEntry {
                    id: Arc::from(grant.principal.as_str()),
                    kind: None,
                    global: Default::default(),
                    scoped: Vec::new(),
                    attributes: Map::new(),
                    grants: Vec::new(),
                })
                .grants
                .push(Arc::new(compiled));
        }
        let snapshot = Snapshot {
            compiled: Arc::clone(&self.compiled),
            principals: Arc::new(principals),
            principal_order: Arc::default(),
            suspended: data.suspended,
            data_revision: Some(data.revision),
            relations: self.relations.clone(),
        };
        (snapshot, notes)
    }
}
