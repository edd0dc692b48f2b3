//! The tenant isolation layers (SPEC.md C4) as parts a Rust service can embed.
//!
//! This module owns no state; it gathers the pieces that let a service do what Portcullis does:
//! - [`http`] (feature `axum`): layer 1, the request context — the `X-Tenant-ID` extractor whose
//!   rejection is a `400` JSON answer, and the `429` answer for a [`crate::quota::QuotaRefusal`];
//! - [`postgres`] (feature `postgres`): layer 3, the database backstop at run time — transactions
//!   that set the tenant with `set_config(…, true)`, never a session-level `SET`;
//! - [`rls`]: layer 3 at migration time — the statements that enable and force row-level security
//!   with a tenant policy on a table.
//!
//! Query scoping (layer 2) and the statement audit (layer 4) belong to the store's repositories.

#[cfg(feature = "axum")]
pub mod http;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rls;

#[cfg(feature = "axum")]
pub use http::{TENANT_HEADER, Tenant, TenantRejection};
#[cfg(feature = "postgres")]
pub use postgres::{begin, set_tenant};
pub use rls::{InvalidIdentifier, TENANT_SETTING, rls_statements};
