//! Run-time principals: list, read, write and delete. Attributes the tenant's bundle marks
//! sensitive are stored encrypted and shown only as the key they are encrypted with.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::TenantId;
use portcullis_store::StoreError;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::access::{PrincipalsRead, PrincipalsWrite, TenantAccess, WithInput};
use crate::error::{ApiError, PathParams, QueryParams, store_error};
use crate::json::JsonBody;
use crate::snapshots::crypto::encrypt_attribute;
use crate::snapshots::reload::refresh_tenant;
use crate::state::AppState;

/// The attributes a tenant stores encrypted; a tenant without a loaded bundle has none known,
/// so run-time principals cannot be written for it yet.
pub(super) fn sensitive_attributes(
    state: &AppState,
    tenant: &TenantId,
) -> Result<BTreeSet<String>, ApiError> {
    let policies = state.policies();
    let snapshot = policies.get(tenant).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_bundle",
            format!("tenant `{tenant}` has no bundle yet; upload one first (it says which attributes are sensitive and which roles exist)"),
        )
    })?;
    Ok(snapshot.settings().sensitive_attributes.clone())
}

/// The sensitive attributes of a tenant's loaded bundle, none without one (for reading).
fn shown_sensitive(state: &AppState, tenant: &TenantId) -> BTreeSet<String> {
    state
        .policies()
        .get(tenant)
        .map(|s| s.settings().sensitive_attributes.clone())
        .unwrap_or_default()
}

fn shown_attributes(
    attributes: &Map<String, Value>,
    sensitive: &BTreeSet<String>,
) -> Map<String, Value> {
    attributes
        .iter()
        .map(|(key, value)| {
            if sensitive.contains(key) {
                let key_id = value
                    .as_str()
                    .and_then(|text| text.split(':').nth(1))
                    .unwrap_or("?");
                (
                    key.clone(),
                    Value::String(format!("<encrypted with key {key_id}>")),
                )
            } else {
                (key.clone(), value.clone())
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn list_principals(
    State(state): State<Arc<AppState>>,
    WithInput(access, QueryParams(page)): WithInput<
        TenantAccess<PrincipalsRead>,
        QueryParams<Page>,
    >,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let sensitive = shown_sensitive(&state, &tenant);
    let principals = state
        .store
        .tenant(&tenant)
        .principals(page.after.as_deref(), limit)
        .await
        .map_err(store_error)?;
    let next = (principals.len() == limit as usize)
        .then(|| principals.last().map(|p| p.id.clone()))
        .flatten();
    let shown: Vec<Value> = principals
        .iter()
        .map(|p| json!({ "id": p.id, "type": p.kind, "attributes": shown_attributes(&p.attributes, &sensitive) }))
        .collect();
    Ok(Json(json!({ "principals": shown, "next": next })))
}

pub(super) async fn read_principal(
    State(state): State<Arc<AppState>>,
    PathParams((_, principal)): PathParams<(String, String)>,
    access: TenantAccess<PrincipalsRead>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let sensitive = shown_sensitive(&state, &tenant);
    let stored = state
        .store
        .tenant(&tenant)
        .principal(&principal)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_principal",
                format!("principal `{principal}` is not managed in tenant `{tenant}`"),
            )
        })?;
    let assignments = state
        .store
        .tenant(&tenant)
        .assignments(Some(&principal))
        .await
        .map_err(store_error)?;
    Ok(Json(json!({
        "id": stored.id,
        "type": stored.kind,
        "attributes": shown_attributes(&stored.attributes, &sensitive),
        "assignments": assignments,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PrincipalBody {
    #[serde(rename = "type", default, deserialize_with = "crate::json::nullable")]
    kind: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
}

pub(super) async fn write_principal(
    State(state): State<Arc<AppState>>,
    PathParams((_, principal)): PathParams<(String, String)>,
    WithInput(access, JsonBody(body)): WithInput<
        TenantAccess<PrincipalsWrite>,
        JsonBody<PrincipalBody>,
    >,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let sensitive = sensitive_attributes(&state, &tenant)?;
    let mut attributes = Map::new();
    for (key, value) in body.attributes {
        let stored = if sensitive.contains(&key) {
            encrypt_attribute(&state.keyring, &tenant, &key, &value).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "encryption_failed", e)
            })?
        } else {
            value
        };
        attributes.insert(key, stored);
    }
    let kind = body.kind.unwrap_or_else(|| "user".to_owned());
    let revision = state
        .store
        .tenant(&tenant)
        .upsert_principal(&principal, &kind, &attributes)
        .await
        .map_err(store_error)?;
    refresh_tenant(&state, &tenant).await;
    Ok(Json(
        json!({ "tenant": tenant, "principal": principal, "data_revision": revision }),
    ))
}

pub(super) async fn delete_principal(
    State(state): State<Arc<AppState>>,
    PathParams((_, principal)): PathParams<(String, String)>,
    access: TenantAccess<PrincipalsWrite>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let revision = state
        .store
        .tenant(&tenant)
        .delete_principal(&principal)
        .await
        .map_err(|error| match error {
            StoreError::NotFound(message) => ApiError::not_found("unknown_principal", message),
            other => store_error(other),
        })?;
    refresh_tenant(&state, &tenant).await;
    Ok(Json(
        json!({ "tenant": tenant, "principal": principal, "deleted": true, "data_revision": revision }),
    ))
}
