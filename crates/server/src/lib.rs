//! The Portcullis decision service (SPEC.md C2): `portcullis serve`.
//!
//! Edges only translate; every decision goes through [`AppState::decide`]:
//!
//! * JSON API: `POST /v1/check`, `/v1/check/batch`, `/v1/explain`;
//! * OpenID AuthZEN: `POST /access/v1/evaluation`, `/access/v1/evaluations`;
//! * forward-auth: `/v1/authz/nginx`, `/v1/authz/traefik`, `/v1/authz/envoy/...`;
//! * operations: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`;
//! * admin (own listener, with its own `/openapi.json`): tenants, bundle upload, reload.
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
pub mod identity;
pub mod json;
pub mod metrics;
pub mod serve;
pub mod snapshots;
pub mod state;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;

pub use config::{Config, ConfigError, Overrides};
pub use error::ApiError;
pub use serve::{RunningServer, start};
pub use state::AppState;

/// The public router (everything but admin).
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/v1/check", post(edges::api::check))
        .route("/v1/check/batch", post(edges::api::check_batch))
        .route("/v1/explain", post(edges::api::explain))
        .route("/v1/relations/check", post(edges::relations::check))
        .route(
            "/v1/relations/check/batch",
            post(edges::relations::check_batch),
        )
        .route(
            "/v1/relations/list-objects",
            post(edges::relations::list_objects),
        )
        .route(
            "/v1/relations/list-users",
            post(edges::relations::list_users),
        )
        .route("/v1/relations/expand", post(edges::relations::expand))
        .route("/access/v1/evaluation", post(edges::authzen::evaluation))
        .route("/access/v1/evaluations", post(edges::authzen::evaluations))
        .route(
            "/.well-known/authzen-configuration",
            get(edges::authzen::authzen_configuration),
        )
        .route("/v1/authz/nginx", any(edges::forward::nginx))
        .route("/v1/authz/traefik", any(edges::forward::traefik))
        .route(edges::forward::ENVOY_PREFIX, any(edges::forward::envoy))
        .route("/v1/authz/envoy/{*path}", any(edges::forward::envoy))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// JSON 404 for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint; see /openapi.json")
}

/// JSON 405 for known paths with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let tenants = state.policies().len();
    if state.is_ready() {
        axum::Json(json!({ "status": "ready", "tenants": tenants })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "not_ready", "tenants": tenants })),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Some(audit) = &state.audit {
        let (buffered, capacity) = audit.buffer();
        state.metrics.audit_buffer(buffered, capacity);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// The OpenAPI document of the public API (the public listener's `/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The OpenAPI document of the admin API (the admin listener's `/openapi.json`).
pub const ADMIN_OPENAPI: &str = include_str!("openapi_admin.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The admin listener's document: served without a token, like the public one (it says what
/// the API is, nothing about any tenant).
pub(crate) async fn admin_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], ADMIN_OPENAPI).into_response()
}

async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
