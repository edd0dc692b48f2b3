//! The Portcullis store (SPEC.md C5), tenant-isolated (C4).
//!
//! One repository API over two backends: embedded SQLite (the default) and PostgreSQL. It holds
//! what changes at run time and what several nodes must share: the tenant directory, uploaded
//! bundles with their history, principals and role assignments, relationship tuples, the
//! audit trail and requests for temporary access with their approvals.
//!
//! Isolation layers this crate owns:
//! * **Context** — tenant data is reached only through [`Store::tenant`], which takes a
//!   validated [`TenantId`]; no method of [`TenantStore`] can name another tenant.
//! * **Scoping** — every statement on a tenant table filters by `tenant_id` (or writes it).
//! * **Backstop** (PostgreSQL) — every tenant table has row-level security enabled and forced;
//!   the service role owns nothing and cannot bypass it; every transaction sets the tenant with
//!   `set_config('app.tenant_id', …, true)`, never a session-level `SET`.
//!
//! The one read across tenants is [`Store::directory`]: tenant ids, status, domain and data
//! revision, through a `SECURITY DEFINER` function on PostgreSQL.
#![forbid(unsafe_code)]

mod access;
mod audit;
mod backend;
mod error;
mod records;
mod tenant;
mod tuples;

pub use access::{
    AccessApproval, AccessFilter, AccessRequest, AccessStatus, MAX_ACCESS_LIST, NewAccessRequest,
};
pub use audit::{AuditFilter, AuditLine};
pub use backend::{Change, Store, StoreConfig};
pub use error::StoreError;
pub use records::{
    BundleVersion, DirectoryEntry, RuntimeData, StoredAssignment, StoredBundle, StoredPrincipal,
    TenantRecord, TenantStatus,
};
pub use tenant::TenantStore;
pub use tuples::{
    ReadPage, StoredTuple, TupleChange, TupleFilter, TupleOperation, TupleWriteOptions,
};

pub use portcullis_core::TenantId;

/// Tables that hold tenant data (every statement on them must name its tenant).
pub const TENANT_TABLES: &[&str] = &[
    "tenants",
    "bundles",
    "principals",
    "role_assignments",
    "tuples",
    "tuple_changes",
    "audit_log",
    "access_requests",
    "access_approvals",
];

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
