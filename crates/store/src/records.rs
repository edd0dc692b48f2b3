//! What the store returns.

use std::collections::BTreeMap;

use portcullis_core::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Status of a tenant in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Decisions are made.
    Active,
    /// Every decision is deny.
    Suspended,
}

impl TenantStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    pub(crate) fn parse(text: &str) -> TenantStatus {
        // The column is constrained to these two values.
        if text == "suspended" {
            TenantStatus::Suspended
        } else {
            TenantStatus::Active
        }
    }
}

/// A tenant as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRecord {
    /// Its id.
    pub tenant: TenantId,
    /// Active or suspended.
    pub status: TenantStatus,
    /// Its host name, if declared.
    pub domain: Option<String>,
    /// Increases with every change to the tenant's data in the store.
    pub data_revision: i64,
    /// The active bundle version, if a bundle was uploaded.
    pub active_bundle: Option<i64>,
    /// Microseconds since the epoch.
    pub created_at_us: i64,
    /// Microseconds since the epoch.
    pub updated_at_us: i64,
}

/// One line of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryEntry {
    /// The tenant.
    pub tenant: TenantId,
    /// Active or suspended.
    pub status: TenantStatus,
    /// Its host name, if declared.
    pub domain: Option<String>,
    /// Its data revision.
    pub data_revision: i64,
}

/// A bundle version without its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleVersion {
    /// Increasing per tenant, from 1.
    pub version: i64,
    /// The bundle's content revision (`sha256:…`).
    pub revision: String,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// Microseconds since the epoch.
    pub uploaded_at_us: i64,
    /// Whether it is the active version.
    pub active: bool,
}

/// A bundle version with its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredBundle {
    /// Its version.
    pub version: BundleVersion,
    /// File name to content.
    pub files: BTreeMap<String, String>,
}

/// A principal managed at run time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPrincipal {
    /// Its id.
    pub id: String,
    /// Its type.
    pub kind: String,
    /// Its attributes (sensitive ones as ciphertext).
    pub attributes: serde_json::Map<String, Value>,
    /// Microseconds since the epoch.
    pub updated_at_us: i64,
}

/// A role assigned at run time, everywhere (`resource` = `*`) or on a resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StoredAssignment {
    /// The principal.
    pub principal: String,
    /// The role.
    pub role: String,
    /// `*`, or a `type:id` pattern.
    pub resource: String,
}

/// Everything the store adds to a tenant's snapshot, read in one transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeData {
    /// The tenant's directory record.
    pub tenant: TenantRecord,
    /// Principals managed at run time.
    pub principals: Vec<StoredPrincipal>,
    /// Role assignments made at run time.
    pub assignments: Vec<StoredAssignment>,
    /// Approved access requests (not revoked, not recorded as expired): the tenant's temporary
    /// grants.
    pub grants: Vec<crate::access::AccessRequest>,
}
