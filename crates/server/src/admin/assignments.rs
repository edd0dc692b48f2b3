//! Role assignments: list, assign (a role of the tenant's bundle to a known principal) and
//! revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::TenantId;
use portcullis_store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{AssignmentsRead, AssignmentsWrite, TenantAccess, WithInput};
use crate::error::{ApiError, QueryParams, store_error};
use crate::json::JsonBody;
use crate::snapshots::reload::refresh_tenant;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignmentBody {
    principal: String,
    role: String,
    #[serde(default, deserialize_with = "crate::json::nullable")]
    resource: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignmentFilter {
    principal: Option<String>,
}

pub(super) async fn list_assignments(
    State(state): State<Arc<AppState>>,
    WithInput(access, QueryParams(filter)): WithInput<
        TenantAccess<AssignmentsRead>,
        QueryParams<AssignmentFilter>,
    >,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let assignments = state
        .store
        .tenant(&tenant)
        .assignments(filter.principal.as_deref())
        .await
        .map_err(store_error)?;
    Ok(Json(
        json!({ "tenant": tenant, "assignments": assignments }),
    ))
}

/// Checks that the role exists in the tenant's bundle and the principal is known (in the
/// bundle or managed at run time).
async fn check_assignment(
    state: &AppState,
    tenant: &TenantId,
    body: &AssignmentBody,
) -> Result<(), ApiError> {
    let policies = state.policies();
    let snapshot = policies.get(tenant).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_bundle",
            format!("tenant `{tenant}` has no bundle yet; upload one first"),
        )
    })?;
    if !snapshot.role_names().any(|role| role == body.role) {
        return Err(ApiError::bad_request(
            "unknown_role",
            format!("tenant `{tenant}`'s bundle defines no role `{}`", body.role),
        ));
    }
    let in_bundle = snapshot.knows_principal(&body.principal);
    let managed = state
        .store
        .tenant(tenant)
        .principal(&body.principal)
        .await
        .map_err(store_error)?
        .is_some();
    if !in_bundle && !managed {
        return Err(ApiError::not_found(
            "unknown_principal",
            format!(
                "principal `{}` is neither in tenant `{tenant}`'s bundle nor managed at run time; create it first",
                body.principal
            ),
        ));
    }
    Ok(())
}

pub(super) async fn assign_role(
    State(state): State<Arc<AppState>>,
    WithInput(access, JsonBody(body)): WithInput<
        TenantAccess<AssignmentsWrite>,
        JsonBody<AssignmentBody>,
    >,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    check_assignment(&state, &tenant, &body).await?;
    let resource = body.resource.as_deref().unwrap_or("*");
    let revision = state
        .store
        .tenant(&tenant)
        .assign(&body.principal, &body.role, resource)
        .await
        .map_err(store_error)?;
    refresh_tenant(&state, &tenant).await;
    Ok(Json(
        json!({ "tenant": tenant, "principal": body.principal, "role": body.role, "resource": resource, "data_revision": revision }),
    ))
}

pub(super) async fn revoke_role(
    State(state): State<Arc<AppState>>,
    WithInput(access, JsonBody(body)): WithInput<
        TenantAccess<AssignmentsWrite>,
        JsonBody<AssignmentBody>,
    >,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let resource = body.resource.as_deref().unwrap_or("*");
    let revision = state
        .store
        .tenant(&tenant)
        .revoke(&body.principal, &body.role, resource)
        .await
        .map_err(|error| match error {
            StoreError::NotFound(message) => ApiError::not_found("unknown_assignment", message),
            other => store_error(other),
        })?;
    refresh_tenant(&state, &tenant).await;
    Ok(Json(
        json!({ "tenant": tenant, "revoked": true, "data_revision": revision }),
    ))
}
