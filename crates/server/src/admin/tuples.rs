//! Relationship tuples: write and delete, read, the change feed, and the tenant's relationship
//! model.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::access::{TenantAccess, TuplesRead, TuplesWrite, WithInput};
use crate::error::{ApiError, QueryParams, store_error};
use crate::json::JsonBody;
use crate::snapshots::tuples::{ChangesQuery, ReadQuery, WriteBody};
use crate::state::AppState;

pub(super) async fn write_tuples(
    State(state): State<Arc<AppState>>,
    WithInput(access, JsonBody(body)): WithInput<TenantAccess<TuplesWrite>, JsonBody<WriteBody>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let revision = crate::snapshots::tuples::write_tuples(&state, &tenant, &body).await?;
    Ok(Json(json!({
        "tenant": tenant,
        "written": body.writes.len(),
        "deleted": body.deletes.len(),
        "revision": revision.to_string(),
    })))
}

pub(super) async fn read_tuples(
    State(state): State<Arc<AppState>>,
    WithInput(access, QueryParams(query)): WithInput<
        TenantAccess<TuplesRead>,
        QueryParams<ReadQuery>,
    >,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let page_size = query.page_size.unwrap_or(100);
    if !(1..=1000).contains(&page_size) {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            "page_size must be 1 to 1000",
        ));
    }
    let page = state
        .store
        .tenant(&tenant)
        .read_tuples(&query.filter(), query.continuation.as_deref(), page_size)
        .await
        .map_err(store_error)?;
    Ok(Json(
        json!({ "tuples": page.tuples, "continuation": page.continuation }),
    ))
}

pub(super) async fn tuple_changes(
    State(state): State<Arc<AppState>>,
    WithInput(access, QueryParams(query)): WithInput<
        TenantAccess<TuplesRead>,
        QueryParams<ChangesQuery>,
    >,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let page_size = query.page_size.unwrap_or(100);
    if !(1..=1000).contains(&page_size) {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            "page_size must be 1 to 1000",
        ));
    }
    let since = query.since.unwrap_or(0);
    let changes = state
        .store
        .tenant(&tenant)
        .tuple_changes(since, page_size)
        .await
        .map_err(store_error)?;
    let next = changes.last().map_or(since, |change| change.revision);
    Ok(Json(json!({ "changes": changes, "next_since": next })))
}

/// A tenant of the directory without a bundle exists: its model is not missing, it has no
/// bundle yet (as for principals and assignments), and only an unknown tenant is a 404.
pub(super) async fn read_model(
    State(state): State<Arc<AppState>>,
    access: TenantAccess<TuplesRead>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let policies = state.policies();
    let snapshot = policies.get(&tenant).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_bundle",
            format!("tenant `{tenant}` has no bundle yet; upload one first"),
        )
    })?;
    let model = snapshot.model().ok_or_else(|| {
        ApiError::not_found(
            "no_model",
            format!("tenant `{tenant}` has no relationship model"),
        )
    })?;
    Ok(Json(json!({
        "tenant": tenant,
        "bundle_revision": snapshot.revision().to_string(),
        "authorization_model": model.to_json(),
        "dsl": model.to_dsl(),
    })))
}
