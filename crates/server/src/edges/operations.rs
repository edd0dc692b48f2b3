//! The operations endpoints of the public listener: health, readiness, metrics and the API's
//! own documentation. They answer about the service, never about a tenant's request.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

pub(crate) async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
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

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
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
pub const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(crate) async fn docs() -> Html<&'static str> {
    Html(include_str!("../docs.html"))
}
