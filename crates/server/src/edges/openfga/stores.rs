//! Stores (tenants) and authorization models (the relationship models of a tenant's bundle
//! versions) in OpenFGA's shapes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::TenantId;
use portcullis_policy::rebac::Model;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Caller, EDGE, FgaError, FgaJson, FgaQuery, authorize_change, authorize_read, caller, model_id,
    new_store_id, page_size, record, store_tenant,
};
use crate::admin::{
    AdminAction, BundleUpload, ModelWriteError, TenantsCreate, TenantsDelete, TenantsList,
    TenantsRead, authorize,
};
use crate::decision::DecisionPath;
use crate::error::store_error;
use crate::snapshots::reload::UploadError;
use crate::state::AppState;

/// A store as OpenFGA shows it. Tenants have no display name: the name is the tenant id.
fn store_value(tenant: &TenantId, created_us: Option<i64>, updated_us: Option<i64>) -> Value {
    let time = |micros: Option<i64>| {
        micros
            .and_then(|m| jiff::Timestamp::from_microsecond(m).ok())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_string()
    };
    json!({
        "id": tenant,
        "name": tenant,
        "created_at": time(created_us),
        "updated_at": time(updated_us),
    })
}

#[derive(Debug, Deserialize)]
pub struct CreateStoreBody {
    name: String,
}

/// `POST /stores`: creates a tenant whose id is a new ULID (`admin:tenants.create`).
pub async fn create_store(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<CreateStoreBody>,
) -> Result<Response, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    if body.name.trim().is_empty() {
        return Err(FgaError::validation("`name` is required"));
    }
    let id = new_store_id(&state)?;
    let tenant = TenantId::new(&id).map_err(|error| FgaError::validation(error.to_string()))?;
    let admin = authorize_change::<TenantsCreate>(&path, &headers, tenant.as_str()).await?;
    let created = crate::admin::create(&state, &admin, &tenant, None).await;
    let status = created
        .as_ref()
        .map_or_else(|e| e.status, |_| StatusCode::CREATED);
    record(
        &state,
        tenant.as_str(),
        &admin,
        "POST /stores",
        "/stores".to_owned(),
        status,
    )
    .await?;
    let record = created?;
    let mut store = store_value(
        &record.tenant,
        Some(record.created_at_us),
        Some(record.updated_at_us),
    );
    store["name"] = Value::String(body.name);
    Ok((StatusCode::CREATED, Json(store)).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ListStoresQuery {
    #[serde(default)]
    page_size: Option<i64>,
    #[serde(default)]
    continuation_token: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// `GET /stores`: every tenant for an admin (`admin:tenants.list`), the token's own tenant
/// for a JWT.
pub async fn list_stores(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    FgaQuery(query): FgaQuery<ListStoresQuery>,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let size = page_size(query.page_size, 50, 100)?;
    let mut tenants: Vec<TenantId> = match caller(&path, &headers)? {
        Caller::Admin(admin) => {
            authorize(&state, &admin, TenantsList::ACTION, "*").await?;
            state
                .store
                .directory()
                .await
                .map_err(|error| FgaError::from(store_error(error)))?
                .into_iter()
                .map(|entry| entry.tenant)
                .collect()
        }
        Caller::Client(Some(identity)) => identity
            .tenant
            .as_deref()
            .and_then(|tenant| TenantId::new(tenant).ok())
            .into_iter()
            .collect(),
        Caller::Client(None) => {
            return Err(FgaError::new(
                StatusCode::UNAUTHORIZED,
                "bearer_token_missing",
                "listing stores needs a token",
            ));
        }
    };
    // Tenants loaded from folders are stores too, though the directory may not list them.
    for snapshot in state.policies().iter() {
        if !tenants.contains(snapshot.tenant())
            && matches!(caller(&path, &headers)?, Caller::Admin(_))
        {
            tenants.push(snapshot.tenant().clone());
        }
    }
    tenants.sort();
    tenants.dedup();
    if let Some(name) = query.name.as_deref().filter(|n| !n.is_empty()) {
        tenants.retain(|tenant| tenant.as_str() == name);
    }
    let after = query.continuation_token.filter(|t| !t.is_empty());
    let start = after
        .as_deref()
        .map_or(0, |after| tenants.partition_point(|t| t.as_str() <= after));
    let end = tenants.len().min(start + size);
    let page = &tenants[start..end];
    let mut stores = Vec::with_capacity(page.len());
    for tenant in page {
        let record = state.store.tenant(tenant).get().await.ok().flatten();
        stores.push(store_value(
            tenant,
            record.as_ref().map(|r| r.created_at_us),
            record.as_ref().map(|r| r.updated_at_us),
        ));
    }
    let token = if end < tenants.len() {
        page.last().map(ToString::to_string).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Json(
        json!({ "stores": stores, "continuation_token": token }),
    ))
}

/// `GET /stores/{store_id}`.
pub async fn get_store(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let tenant = store_tenant(&state, &store).await?;
    match caller(&path, &headers)? {
        Caller::Admin(admin) => {
            authorize(&state, &admin, TenantsRead::ACTION, tenant.as_str()).await?;
        }
        Caller::Client(_) => authorize_read(&path, &headers, &tenant).await?,
    }
    let record = state
        .store
        .tenant(&tenant)
        .get()
        .await
        .map_err(|error| FgaError::from(store_error(error)))?;
    Ok(Json(store_value(
        &tenant,
        record.as_ref().map(|r| r.created_at_us),
        record.as_ref().map(|r| r.updated_at_us),
    )))
}

/// `DELETE /stores/{store_id}`: deletes the tenant and all its data (`admin:tenants.delete`);
/// tenants defined by bundle folders are refused.
pub async fn delete_store(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let tenant = store_tenant(&state, &store).await?;
    let admin = authorize_change::<TenantsDelete>(&path, &headers, tenant.as_str()).await?;
    let deleted = crate::admin::delete(&state, &tenant).await;
    let status = deleted
        .as_ref()
        .map_or_else(|e| e.status, |()| StatusCode::NO_CONTENT);
    record(
        &state,
        tenant.as_str(),
        &admin,
        "DELETE /stores/{store_id}",
        format!("/stores/{tenant}"),
        status,
    )
    .await?;
    deleted?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A model in OpenFGA's `AuthorizationModel` shape, with its id.
fn model_value(id: &str, model: &Model) -> Value {
    let mut value = model.to_json();
    if let Value::Object(map) = &mut value {
        map.insert("id".to_owned(), Value::String(id.to_owned()));
        map.entry("conditions").or_insert_with(|| json!({}));
    }
    value
}

/// The model file a bundle's files name (`model:` in a policy file), compiled.
fn model_of_files(files: &std::collections::BTreeMap<String, String>) -> Option<Model> {
    let file = files
        .iter()
        .filter(|(name, _)| name.ends_with(".yaml") || name.ends_with(".yml"))
        .find_map(|(_, text)| {
            text.lines().find_map(|line| {
                let value = line.strip_prefix("model:")?;
                let value = value.split('#').next().unwrap_or("").trim();
                Some(value.trim_matches(|c| c == '"' || c == '\'').to_owned())
            })
        })?;
    let text = files.get(&file)?;
    if file.ends_with(".json") {
        Model::from_json(text).ok()
    } else {
        Model::from_dsl(text).ok()
    }
}

/// The tenant's authorization models, newest first, each once: the active bundle's, then
/// those of its bundle history.
pub(super) async fn models(
    state: &AppState,
    tenant: &TenantId,
) -> Result<Vec<(String, Value)>, FgaError> {
    let mut models: Vec<(String, Value)> = Vec::new();
    if let Some(snapshot) = state.policies().get(tenant)
        && let Some(model) = snapshot.model()
    {
        let id = model_id(snapshot.revision());
        models.push((id.clone(), model_value(&id, model)));
    }
    let history = state
        .store
        .tenant(tenant)
        .bundle_history()
        .await
        .map_err(|error| FgaError::from(store_error(error)))?;
    for version in history {
        let id = model_id(&version.revision);
        if models.iter().any(|(known, _)| known == &id) {
            continue;
        }
        let bundle = state
            .store
            .tenant(tenant)
            .bundle(Some(version.version))
            .await
            .map_err(|error| FgaError::from(store_error(error)))?;
        if let Some(model) = bundle.and_then(|bundle| model_of_files(&bundle.files)) {
            models.push((id.clone(), model_value(&id, &model)));
        }
    }
    Ok(models)
}

/// `POST /stores/{store_id}/authorization-models`: the model in OpenFGA's JSON form becomes
/// the tenant's model, in a new bundle version that keeps the rest of the bundle
/// (`admin:bundle.upload`).
pub async fn write_model(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<Value>,
) -> Result<Response, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let tenant = store_tenant(&state, &store).await?;
    let admin = authorize_change::<BundleUpload>(&path, &headers, tenant.as_str()).await?;
    let outcome = async {
        let model = Model::from_json(&body.to_string()).map_err(|errors| {
            FgaError::new(
                StatusCode::BAD_REQUEST,
                "invalid_authorization_model",
                errors.to_string(),
            )
        })?;
        crate::admin::write_model(&state, &tenant, &model, &admin.0)
            .await
            .map_err(|error| match error {
                ModelWriteError::Read(error) => FgaError::from(error),
                ModelWriteError::Upload(UploadError::Invalid(error)) => FgaError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_authorization_model",
                    error
                        .diagnostics
                        .iter()
                        .map(|d| d.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                ModelWriteError::Upload(UploadError::Store(error)) => {
                    FgaError::from(store_error(error))
                }
                ModelWriteError::Upload(other) => FgaError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    format!("the model was not installed: {other:?}"),
                ),
            })
    }
    .await;
    let status = outcome
        .as_ref()
        .map_or_else(|e| e.status, |_| StatusCode::CREATED);
    record(
        &state,
        tenant.as_str(),
        &admin,
        "POST /stores/{store_id}/authorization-models",
        format!("/stores/{tenant}/authorization-models"),
        status,
    )
    .await?;
    let snapshot = outcome?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "authorization_model_id": model_id(snapshot.revision()) })),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ListModelsQuery {
    #[serde(default)]
    page_size: Option<i64>,
    #[serde(default)]
    continuation_token: Option<String>,
}

/// `GET /stores/{store_id}/authorization-models`: newest first.
pub async fn list_models(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaQuery(query): FgaQuery<ListModelsQuery>,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let tenant = store_tenant(&state, &store).await?;
    authorize_read(&path, &headers, &tenant).await?;
    let size = page_size(query.page_size, 50, 100)?;
    let start = match query
        .continuation_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        None => 0,
        Some(token) => token.parse::<usize>().map_err(|_| {
            FgaError::new(
                StatusCode::BAD_REQUEST,
                "invalid_continuation_token",
                format!("`{token}` is not a continuation token of this list"),
            )
        })?,
    };
    let models = models(&state, &tenant).await?;
    let end = models.len().min(start.saturating_add(size));
    let page: Vec<Value> = models
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|(_, model)| model.clone())
        .collect();
    let token = if end < models.len() {
        end.to_string()
    } else {
        String::new()
    };
    Ok(Json(
        json!({ "authorization_models": page, "continuation_token": token }),
    ))
}

/// `GET /stores/{store_id}/authorization-models/{id}`.
pub async fn read_model(
    State(state): State<Arc<AppState>>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let tenant = store_tenant(&state, &store).await?;
    authorize_read(&path, &headers, &tenant).await?;
    let model = models(&state, &tenant)
        .await?
        .into_iter()
        .find(|(known, _)| known == &id)
        .ok_or_else(|| {
            FgaError::new(
                StatusCode::NOT_FOUND,
                "authorization_model_not_found",
                format!("authorization model `{id}` not found"),
            )
        })?;
    Ok(Json(json!({ "authorization_model": model.1 })))
}
