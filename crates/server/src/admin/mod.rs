//! Admin endpoints, on their own listener (loopback unless configured otherwise).
//!
//! Every call needs an admin token (`Authorization: Bearer <token>`, checked before any body
//! is read); the token's name is the principal of a decision in the `system` tenant, whose
//! bundle says which admin may do what: actions `admin:<area>.<operation>` on resource
//! `tenant:<id>` (or `tenant:*`). Without a `system` bundle every admin call is refused.
//!
//! Writes go to the store and are applied on this node at once; other nodes learn of them by
//! notification (PostgreSQL) or by comparing revisions.
//!
//! Layout:
//!
//! * this module: the router, [`SYSTEM_TENANT`] and the helpers the resources share;
//! * `access`: the admin token check and the audit record of every change (both middleware),
//!   authorization through the `system` tenant, the admin actions as types, and the extractors
//!   that give a handler its tenant once the path names a valid one, the admin may act on it
//!   and (unless the handler says otherwise) it exists;
//! * one module per resource: `tenants`, `bundles` (upload, history, activation), `reload`,
//!   `principals` (run-time principals, sensitive attributes stored encrypted), `assignments`
//!   (role assignments), `keys` (re-encryption under the current key), `tuples` (relationship
//!   tuples, their changes and the tenant's model), [`audit`] (reading the audit trail),
//!   `security` (the supply-chain gate's dependency scan) and `gateway` (lifting a login
//!   lockout of the gateway).

mod access;
mod assignments;
pub mod audit;
mod bundles;
mod gateway;
mod keys;
mod principals;
mod reload;
mod security;
mod tenants;
mod tuples;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use portcullis_core::TenantId;

use crate::error::{ApiError, store_error};
use crate::state::AppState;

pub(crate) use access::authenticate;
pub(crate) use access::{
    Admin, AdminAction, BundleUpload, TenantsCreate, TenantsDelete, TenantsList, TenantsRead,
    TuplesRead, TuplesWrite, admin_for, authorize, record_change,
};
pub(crate) use bundles::{ModelWriteError, write_model};
pub(crate) use security::{sbom, status as dependency_scan};
pub(crate) use tenants::{create, delete};

/// The tenant whose bundle authorizes admin calls.
pub use crate::audit::SYSTEM_TENANT;
/// Largest accepted upload.
const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The admin router. Every matched route first authenticates the admin token (before any
/// body is read); each handler then asks the `system` tenant whether that admin may act.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/admin/v1/tenants",
            get(tenants::list_tenants).post(tenants::create_tenant),
        )
        .route(
            "/admin/v1/tenants/{tenant}",
            get(tenants::read_tenant).delete(tenants::delete_tenant),
        )
        .route(
            "/admin/v1/tenants/{tenant}/suspend",
            post(tenants::suspend_tenant),
        )
        .route(
            "/admin/v1/tenants/{tenant}/resume",
            post(tenants::resume_tenant),
        )
        .route(
            "/admin/v1/tenants/{tenant}/bundle",
            put(bundles::upload_bundle),
        )
        .route(
            "/admin/v1/tenants/{tenant}/bundles",
            get(bundles::bundle_history),
        )
        .route(
            "/admin/v1/tenants/{tenant}/bundles/{version}",
            get(bundles::read_bundle),
        )
        .route(
            "/admin/v1/tenants/{tenant}/bundles/{version}/activate",
            post(bundles::activate_bundle),
        )
        .route(
            "/admin/v1/tenants/{tenant}/principals",
            get(principals::list_principals),
        )
        .route(
            "/admin/v1/tenants/{tenant}/principals/{principal}",
            get(principals::read_principal)
                .put(principals::write_principal)
                .delete(principals::delete_principal),
        )
        .route(
            "/admin/v1/tenants/{tenant}/assignments",
            get(assignments::list_assignments)
                .post(assignments::assign_role)
                .delete(assignments::revoke_role),
        )
        .route(
            "/admin/v1/tenants/{tenant}/rotate-key",
            post(keys::rotate_key),
        )
        .route(
            "/admin/v1/tenants/{tenant}/tuples",
            get(tuples::read_tuples).post(tuples::write_tuples),
        )
        .route(
            "/admin/v1/tenants/{tenant}/tuples/changes",
            get(tuples::tuple_changes),
        )
        .route("/admin/v1/tenants/{tenant}/model", get(tuples::read_model))
        .route("/admin/v1/reload", post(reload::reload))
        .route(
            "/admin/v1/security/dependency-scan",
            get(security::status).post(security::rescan),
        )
        .route("/admin/v1/sbom", get(security::sbom))
        .route("/admin/v1/gateway/unlock", post(gateway::unlock))
        .route("/admin/v1/tenants/{tenant}/audit", get(audit::query))
        .route(
            "/admin/v1/tenants/{tenant}/audit/export",
            get(audit::export),
        )
        .route(
            "/admin/v1/tenants/{tenant}/audit/verify",
            get(audit::verify),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            access::record_changes,
        ))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            access::authenticate,
        ))
        // After the layers: the document is served without a token.
        .route("/openapi.json", get(admin_openapi))
        .fallback(crate::error::not_found)
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(state)
}

/// The OpenAPI document of the admin API (the admin listener's `/openapi.json`).
pub const ADMIN_OPENAPI: &str = include_str!("../openapi_admin.json");

/// The admin listener's document: served without a token, like the public one (it says what
/// the API is, nothing about any tenant).
pub(crate) async fn admin_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], ADMIN_OPENAPI).into_response()
}

/// The tenant a path (or a body) names: 400 `invalid_tenant` if it is not a tenant id.
fn path_tenant(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::new(raw).map_err(|e| ApiError::bad_request("invalid_tenant", e.to_string()))
}

/// The tenant's record: 404 `unknown_tenant` if the directory does not have it.
async fn existing_tenant(
    state: &AppState,
    tenant: &TenantId,
) -> Result<portcullis_store::TenantRecord, ApiError> {
    state
        .store
        .tenant(tenant)
        .get()
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_tenant",
                format!("tenant `{tenant}` does not exist"),
            )
        })
}
