//! The edges: each turns one protocol into questions for the decision module and its answers
//! back into that protocol — the JSON API ([`api`]), OpenID AuthZEN ([`authzen`]), forward-auth
//! for nginx, Traefik and Envoy over HTTP ([`forward`]), relationship queries ([`relations`])
//! and gRPC ([`grpc`]: Envoy ext_authz and `portcullis.v1`), and temporary access
//! ([`access`]). An edge validates the shape of what it is sent and renders what it gets back;
//! it never decides, reads a policy, or writes a decision's audit record itself (the steps of
//! temporary access are administrative changes, recorded as the admin API records its own).

pub mod access;
pub mod api;
pub mod authzen;
pub mod forward;
pub mod grpc;
pub mod openfga;
pub mod operations;
pub mod relations;
pub mod search;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};

use crate::state::AppState;

/// The public router (everything but admin).
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.limits.max_body_bytes;
    let admin_token = |state: &Arc<AppState>| {
        axum::middleware::from_fn_with_state(Arc::clone(state), crate::admin::authenticate)
    };
    Router::new()
        .route("/v1/check", post(api::check))
        .route("/v1/check/batch", post(api::check_batch))
        .route("/v1/explain", post(api::explain))
        .route(
            "/v1/access/requests",
            post(access::create).get(access::list),
        )
        .route("/v1/access/requests/{id}", get(access::read))
        .route("/v1/access/requests/{id}/approve", post(access::approve))
        .route("/v1/access/requests/{id}/reject", post(access::reject))
        .route("/v1/access/requests/{id}/revoke", post(access::revoke))
        .route("/v1/relations/check", post(relations::check))
        .route("/v1/relations/check/batch", post(relations::check_batch))
        .route("/v1/relations/list-objects", post(relations::list_objects))
        .route("/v1/relations/list-users", post(relations::list_users))
        .route("/v1/relations/expand", post(relations::expand))
        .route(
            "/stores",
            get(openfga::list_stores).post(openfga::create_store),
        )
        .route(
            "/stores/{store_id}",
            get(openfga::get_store).delete(openfga::delete_store),
        )
        .route(
            "/stores/{store_id}/authorization-models",
            get(openfga::list_models).post(openfga::write_model),
        )
        .route(
            "/stores/{store_id}/authorization-models/{id}",
            get(openfga::read_model),
        )
        .route("/stores/{store_id}/write", post(openfga::write))
        .route("/stores/{store_id}/read", post(openfga::read))
        .route("/stores/{store_id}/changes", get(openfga::read_changes))
        .route("/stores/{store_id}/check", post(openfga::check))
        .route("/stores/{store_id}/batch-check", post(openfga::batch_check))
        .route("/stores/{store_id}/expand", post(openfga::expand))
        .route(
            "/stores/{store_id}/list-objects",
            post(openfga::list_objects),
        )
        .route(
            "/stores/{store_id}/streamed-list-objects",
            post(openfga::streamed_list_objects),
        )
        .route("/stores/{store_id}/list-users", post(openfga::list_users))
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route("/access/v1/search/subject", post(search::subject))
        .route("/access/v1/search/resource", post(search::resource))
        .route("/access/v1/search/action", post(search::action))
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::authzen_configuration),
        )
        .route("/v1/authz/nginx", any(forward::nginx))
        .route("/v1/authz/traefik", any(forward::traefik))
        .route(forward::ENVOY_PREFIX, any(forward::envoy))
        .route("/v1/authz/envoy/{*path}", any(forward::envoy))
        // The admin-authorized reads of the supply-chain gate, as on the admin listener: the
        // admin token is checked (the layer) before the call is read.
        .route(
            "/v1/security/dependency-scan",
            get(crate::admin::dependency_scan).layer(admin_token(&state)),
        )
        .route(
            "/v1/sbom",
            get(crate::admin::sbom).layer(admin_token(&state)),
        )
        .route("/healthz", get(operations::healthz))
        .route("/readyz", get(operations::readyz))
        .route("/metrics", get(operations::metrics))
        .route("/openapi.json", get(operations::openapi))
        .route("/docs", get(operations::docs))
        .fallback(crate::error::not_found)
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
