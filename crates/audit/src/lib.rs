//! Audit trail (C6): masked, hash-chained, signed records that an auditor can verify.
//!
//! Layout of the crate:
//! - [`record`]: the [`Record`] type, its builder and canonical encoding (the hashed bytes);
//! - [`mask`]: per-tenant masking rules and PII detectors applied before anything is queued;
//! - [`keys`]: Ed25519 checkpoint keys and signed [`Checkpoint`]s;
//! - [`chain`]: the per-tenant chain state shared by every log, and the [`TenantLog`] trait;
//! - [`store`]: [`FileLog`], one append-only directory of segments per tenant, with rotation,
//!   gzip compression, index files and crash recovery;
//! - [`stream`]: [`StreamLog`], a tenant's chain as numbered lines handed to a [`LineSink`]
//!   (a database table), with the same bytes as the files;
//! - [`writer`]: [`AuditLog`], the group-commit writer thread used from async code;
//! - [`verify`]: the source-agnostic [`Verifier`] and [`verify_dir`];
//! - [`query`]: [`query`](query::query), [`export`](query::export) and [`tail`](query::tail).
#![forbid(unsafe_code)]

pub mod chain;
pub mod keys;
pub mod mask;
pub mod query;
pub mod record;
pub mod store;
pub mod stream;
pub mod verify;
pub mod writer;

use std::path::{Path, PathBuf};

pub use chain::TenantLog;
pub use keys::{Checkpoint, CheckpointFault, SigningKey, VerifyingKey, generate_key};
pub use mask::{DetectorKind, Mask, MaskRule, Masker, MaskingConfig};
pub use query::{Filter, Page, export, query, tail};
pub use record::{Edge, Hash, Kind, Outcome, Record, RecordBuilder, ZERO_HASH};
pub use store::{FileLog, Receipt, StoreOptions};
pub use stream::{LineSink, StreamLine, StreamLog};
pub use verify::{Location, Problem, ProblemKind, Report, Verifier, verify_dir};
pub use writer::{
    AuditConfig, AuditLog, FileOpener, FullPolicy, LogOpener, PreparedDecision, StreamOpener,
    TenantPolicy,
};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file operation failed.
    #[error("audit I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file or key is unusable.
    #[error("audit key: {reason}")]
    Key {
        /// What is wrong.
        reason: String,
    },
    /// A configuration value is invalid.
    #[error("audit configuration: {reason}")]
    Config {
        /// What is wrong and what would be right.
        reason: String,
    },
    /// A line could not be parsed.
    #[error("malformed audit line: {reason}")]
    Malformed {
        /// The parser's message.
        reason: String,
    },
    /// The tenant id cannot name a directory.
    #[error(
        "invalid tenant id {tenant:?}: use 1-128 characters from [A-Za-z0-9._-], not starting with '.'"
    )]
    InvalidTenant {
        /// The rejected id.
        tenant: String,
    },
    /// The buffer is full and the tenant's policy is `deny` (or `block` timed out).
    #[error(
        "audit buffer full for tenant {tenant} (capacity {capacity}); the decision must be denied"
    )]
    BufferFull {
        /// Tenant.
        tenant: String,
        /// Buffer capacity.
        capacity: usize,
    },
    /// The log is shut down or its writer failed.
    #[error("audit log closed: {reason}")]
    Closed {
        /// Why.
        reason: String,
    },
    /// The store a [`LineSink`] writes to (or a reader reads from) failed.
    #[error("audit store: {reason}")]
    Backend {
        /// The store's message.
        reason: String,
    },
    /// The cursor is not one this crate produced.
    #[error("invalid audit cursor {cursor:?}")]
    InvalidCursor {
        /// The rejected cursor.
        cursor: String,
    },
}

impl AuditError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Checks that a tenant id is safe as a directory name.
pub fn validate_tenant(tenant: &str) -> Result<(), AuditError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 128
        && !tenant.starts_with('.')
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AuditError::InvalidTenant {
            tenant: tenant.to_owned(),
        })
    }
}
