//! Tenants: list, create, read, delete, suspend and resume.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_store::{StoreError, TenantStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{
    Admin, AdminAction, MayNotExist, NodeAccess, TenantAccess, TenantsCreate, TenantsDelete,
    TenantsList, TenantsRead, TenantsResume, TenantsSuspend, WithInput, authorize,
};
use super::path_tenant;
use crate::error::{ApiError, QueryParams, store_error};
use crate::json::JsonBody;
use crate::snapshots::loaded::Source;
use crate::snapshots::reload::refresh_tenant;
use crate::state::AppState;

fn summary(state: &AppState, entry: &portcullis_store::DirectoryEntry) -> Value {
    let policies = state.policies();
    let snapshot = policies.get(&entry.tenant);
    json!({
        "tenant": entry.tenant,
        "status": entry.status,
        "domain": entry.domain,
        "data_revision": entry.data_revision,
        "revision": snapshot.map(|s| s.revision().to_string()),
        "timezone": snapshot.map(|s| s.settings().timezone.clone()),
        "tests": snapshot.map(|s| s.tests().len()),
    })
}

pub(super) async fn list_tenants(
    State(state): State<Arc<AppState>>,
    _: NodeAccess<TenantsList>,
) -> Result<Json<Value>, ApiError> {
    let directory = state.store.directory().await.map_err(store_error)?;
    let tenants: Vec<Value> = directory
        .iter()
        .map(|entry| summary(&state, entry))
        .collect();
    Ok(Json(json!({ "tenants": tenants })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTenant {
    tenant: String,
    #[serde(default, deserialize_with = "crate::json::nullable")]
    domain: Option<String>,
}

/// The tenant comes from the body, not the path: the body is read, then the tenant id is
/// checked and the admin authorized (no existence check: a tenant that exists is a conflict).
pub(super) async fn create_tenant(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
    JsonBody(body): JsonBody<NewTenant>,
) -> Result<Response, ApiError> {
    let tenant = path_tenant(&body.tenant)?;
    let record = create(&state, &admin, &tenant, body.domain.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "tenant": record.tenant, "status": record.status, "domain": record.domain, "data_revision": record.data_revision }))).into_response())
}

/// Creates a tenant in the directory once `admin` may (`admin:tenants.create`), and loads it;
/// a tenant that exists is a conflict (409 `tenant_exists`). Shared with the OpenFGA API's
/// store creation.
pub(crate) async fn create(
    state: &AppState,
    admin: &Admin,
    tenant: &portcullis_core::TenantId,
    domain: Option<&str>,
) -> Result<portcullis_store::TenantRecord, ApiError> {
    authorize(state, admin, TenantsCreate::ACTION, tenant.as_str()).await?;
    let record = state
        .store
        .tenant(tenant)
        .create(domain)
        .await
        .map_err(|error| match error {
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "tenant_exists", message)
            }
            other => store_error(other),
        })?;
    refresh_tenant(state, tenant).await;
    Ok(record)
}

pub(super) async fn read_tenant(
    State(state): State<Arc<AppState>>,
    access: TenantAccess<TenantsRead>,
) -> Result<Json<Value>, ApiError> {
    let TenantAccess { tenant, record, .. } = access;
    let mut answer = summary(
        &state,
        &portcullis_store::DirectoryEntry {
            tenant: tenant.clone(),
            status: record.status,
            domain: record.domain.clone(),
            data_revision: record.data_revision,
        },
    );
    let policies = state.policies();
    if let Some(snapshot) = policies.get(&tenant) {
        answer["factors"] = json!(snapshot.factor_names().collect::<Vec<_>>());
        answer["roles"] = json!(snapshot.role_names().collect::<Vec<_>>());
    }
    answer["active_bundle"] = json!(record.active_bundle);
    let source = state
        .loaded
        .lock()
        .await
        .bases
        .get(&tenant)
        .map(|base| match &base.source {
            Source::Folder(folder) => format!("folder:{}", folder.display()),
            Source::Store(version) => format!("store:{version}"),
            Source::Embedded => "embedded".to_owned(),
        });
    answer["source"] = json!(source);
    Ok(Json(answer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Confirm {
    confirm: Option<String>,
}

/// No existence check up front: the confirmation is asked for first, and the store's delete
/// says whether the tenant was there.
pub(super) async fn delete_tenant(
    State(state): State<Arc<AppState>>,
    WithInput(access, QueryParams(query)): WithInput<
        TenantAccess<TenantsDelete, MayNotExist>,
        QueryParams<Confirm>,
    >,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    if query.confirm.as_deref() != Some(tenant.as_str()) {
        return Err(ApiError::bad_request(
            "confirmation_required",
            format!("deleting a tenant removes all its data; repeat its id as ?confirm={tenant}"),
        ));
    }
    delete(&state, &tenant).await?;
    Ok(Json(json!({ "tenant": tenant, "deleted": true })))
}

/// Deletes a tenant and all its data (the caller has authorized and confirmed it): refused for
/// tenants defined by files (409 `managed_by_files`), 404 `unknown_tenant` when it does not
/// exist. Shared with the OpenFGA API's store deletion.
pub(crate) async fn delete(
    state: &AppState,
    tenant: &portcullis_core::TenantId,
) -> Result<(), ApiError> {
    let source = state
        .loaded
        .lock()
        .await
        .bases
        .get(tenant)
        .map(|b| b.source.clone());
    match source {
        Some(Source::Folder(folder)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "managed_by_files",
                format!(
                    "tenant `{tenant}` is defined by the bundle folder {}; remove the folder \
                     instead",
                    folder.display()
                ),
            ));
        }
        Some(Source::Embedded) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "managed_by_files",
                format!(
                    "tenant `{tenant}` is one of the demo bundles built into the server; run \
                     the server on a bundle folder or the store to manage tenants"
                ),
            ));
        }
        _ => {}
    }
    state
        .store
        .tenant(tenant)
        .delete()
        .await
        .map_err(|error| match error {
            StoreError::NotFound(_) => ApiError::not_found(
                "unknown_tenant",
                format!("tenant `{tenant}` does not exist"),
            ),
            other => store_error(other),
        })?;
    state.quotas.remove(tenant);
    refresh_tenant(state, tenant).await;
    Ok(())
}

async fn set_status<A: AdminAction>(
    state: &AppState,
    access: TenantAccess<A>,
    status: TenantStatus,
) -> Result<Json<Value>, ApiError> {
    let TenantAccess { tenant, record, .. } = access;
    if record.status == status {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            if status == TenantStatus::Suspended {
                "already_suspended"
            } else {
                "not_suspended"
            },
            format!("tenant `{tenant}` is already {}", status.as_str()),
        ));
    }
    let revision = state
        .store
        .tenant(&tenant)
        .set_status(status)
        .await
        .map_err(store_error)?;
    refresh_tenant(state, &tenant).await;
    Ok(Json(
        json!({ "tenant": tenant, "status": status, "data_revision": revision }),
    ))
}

pub(super) async fn suspend_tenant(
    State(state): State<Arc<AppState>>,
    access: TenantAccess<TenantsSuspend>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, access, TenantStatus::Suspended).await
}

pub(super) async fn resume_tenant(
    State(state): State<Arc<AppState>>,
    access: TenantAccess<TenantsResume>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, access, TenantStatus::Active).await
}
