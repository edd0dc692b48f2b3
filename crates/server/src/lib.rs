//! The Portcullis decision service (SPEC.md C2): `portcullis serve`.
//!
//! Edges only translate; every question goes through one path, [`decision::DecisionPath`]
//! (identity → tenant → admission → route → decide → audit → metrics), on one policy snapshot:
//!
//! * JSON API: `POST /v1/check`, `/v1/check/batch`, `/v1/explain`;
//! * OpenID AuthZEN: `POST /access/v1/evaluation`, `/access/v1/evaluations`,
//!   `/access/v1/search/{subject,resource,action}`;
//! * forward-auth: `/v1/authz/nginx`, `/v1/authz/traefik`, `/v1/authz/envoy/...`;
//! * relationship queries: `/v1/relations/...`;
//! * temporary access: `/v1/access/requests/...`;
//! * gRPC on the public listener: Envoy ext_authz and `portcullis.v1`;
//! * operations: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`;
//! * admin (own listener, with its own `/openapi.json`): tenants, bundles, principals, keys,
//!   tuples, audit, the supply-chain gate's dependency scan; each call authorized by the
//!   `system` tenant through the same path.
//!
//! # Layers
//!
//! Modules import only from their own layer and the layers below (`tests/layering.rs` checks
//! it), lowest first:
//!
//! 1. foundation: [`files`], [`metrics`], [`evaluation`] (the low-priority pool for costly
//!    evaluations), [`demo`], [`supply`] (the supply-chain gate's settings, status and scan),
//!    [`audit::store`], [`webhook`] (the signed notifications of temporary access);
//! 2. [`audit`]: the audit writer (records, masking, sealing, back-pressure);
//! 3. [`config`];
//! 4. [`identity`] (tokens, with its own error type) and [`tls`];
//! 5. [`error`] (the JSON error shape, fallbacks), [`json`] (strict request bodies) and
//!    [`request_id`] (`X-Request-ID` on every answer);
//! 6. [`connection`]: listeners, connection limits, errors raised below the router, and the
//!    [`connection::Shortcut`] by which a listener answers a few paths without its router;
//! 7. [`snapshots`]: the compiled tenant snapshots ([`snapshots::loaded`]) and field
//!    encryption ([`snapshots::crypto`]);
//! 8. [`state`]: what every request shares;
//! 9. snapshot maintenance: [`snapshots::reload`], [`snapshots::relations`] (the relation
//!    index), [`snapshots::tuples`], [`snapshots::supply`] (the supply-chain signal kept
//!    current);
//! 10. [`decision`]: the one decision path;
//! 11. [`admin`]: the admin API (one file per resource);
//! 12. [`edges`]: one module per protocol (OpenFGA's HTTP API among them) and temporary
//!     access, plus the public router and operations endpoints;
//! 13. [`gateway`]: `portcullis gateway`, the guard's stages in front of web applications
//!     (its settings, [`gateway::settings`], are read with the configuration, in the
//!     foundation);
//! 14. [`serve`]: listeners, reload triggers, shutdown.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod config;
pub mod connection;
pub mod decision;
pub mod demo;
pub mod edges;
pub mod error;
pub mod evaluation;
pub mod files;
pub mod gateway;
pub mod identity;
pub mod json;
pub mod metrics;
pub mod request_id;
pub mod serve;
pub mod snapshots;
pub mod state;
pub mod supply;
pub mod tls;
pub mod webhook;

use std::sync::Arc;

use axum::Router;

pub use config::{Config, ConfigError, Overrides};
pub use error::ApiError;
pub use serve::{RunningServer, start};
pub use state::AppState;

/// The public router (everything but admin; gRPC is added by [`serve::public_router`]).
pub fn app(state: Arc<AppState>) -> Router {
    edges::router(state)
}

/// The OpenAPI document of the public API (the public listener's `/openapi.json`).
pub use edges::operations::OPENAPI;

/// The OpenAPI document of the admin API (the admin listener's `/openapi.json`).
pub use admin::ADMIN_OPENAPI;
