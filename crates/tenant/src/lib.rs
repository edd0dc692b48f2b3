//! Tenant isolation for Portcullis and for the Rust services that sit behind it (SPEC.md C4).
//!
//! This crate owns the parts of tenant isolation that are not the store's repositories:
//! - [`crypto`]: per-tenant field encryption (HKDF-SHA256 from a master key ring to a per-tenant
//!   AES-256-GCM key, the tenant and field bound as associated data, key rotation);
//! - [`quota`]: per-tenant limits on request rate and concurrency, so one noisy tenant cannot
//!   starve the others;
//! - [`toolkit`]: what an embedding service needs to apply the same layers — the `X-Tenant-ID`
//!   extractor (feature `axum`), tenant-scoped PostgreSQL transactions (feature `postgres`) and
//!   the row-level-security migration statements.
//!
//! It must not decide anything about authorization (that is the engine's job) and must not know
//! the store's schema: it is handed a validated [`TenantId`] and works from there.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod quota;
pub mod toolkit;

pub use portcullis_core::{InvalidTenantId, TenantId};
