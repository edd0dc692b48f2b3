//! Admin endpoints, on their own listener (loopback unless configured otherwise).
//!
//! Every call needs an admin token (`Authorization: Bearer <token>`, checked before any body
//! is read); the token's name is the principal of a decision in the `system` tenant, whose
//! bundle says which admin may do what: actions `admin:<area>.<operation>` on resource
//! `tenant:<id>` (or `tenant:*`). Without a `system` bundle every admin call is refused.
//!
//! Writes go to the store and are applied on this node at once; other nodes learn of them by
//! notification (PostgreSQL) or by comparing revisions.

pub mod audit;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use portcullis_core::{Principal, Request, Resource, TenantId};
use portcullis_policy::SourceFile;
use portcullis_store::{StoreError, TenantStatus};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::decision::DecisionPath;
use crate::error::store_error;
use crate::error::{ApiError, PathParams, QueryParams};
use crate::identity::bearer;
use crate::json::JsonBody;
use crate::snapshots::crypto::encrypt_attribute;
use crate::snapshots::loaded::Source;
use crate::snapshots::reload::{UploadError, refresh_tenant, reload_all};
use crate::state::AppState;

/// The tenant whose bundle authorizes admin calls.
pub const SYSTEM_TENANT: &str = "system";
/// Largest accepted upload.
const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The admin router. Every matched route first authenticates the admin token (before any
/// body is read); each handler then asks the `system` tenant whether that admin may act.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/admin/v1/tenants", get(list_tenants).post(create_tenant))
        .route(
            "/admin/v1/tenants/{tenant}",
            get(read_tenant).delete(delete_tenant),
        )
        .route("/admin/v1/tenants/{tenant}/suspend", post(suspend_tenant))
        .route("/admin/v1/tenants/{tenant}/resume", post(resume_tenant))
        .route("/admin/v1/tenants/{tenant}/bundle", put(upload_bundle))
        .route("/admin/v1/tenants/{tenant}/bundles", get(bundle_history))
        .route(
            "/admin/v1/tenants/{tenant}/bundles/{version}",
            get(read_bundle),
        )
        .route(
            "/admin/v1/tenants/{tenant}/bundles/{version}/activate",
            post(activate_bundle),
        )
        .route(
            "/admin/v1/tenants/{tenant}/principals",
            get(list_principals),
        )
        .route(
            "/admin/v1/tenants/{tenant}/principals/{principal}",
            get(read_principal)
                .put(write_principal)
                .delete(delete_principal),
        )
        .route(
            "/admin/v1/tenants/{tenant}/assignments",
            get(list_assignments).post(assign_role).delete(revoke_role),
        )
        .route("/admin/v1/tenants/{tenant}/rotate-key", post(rotate_key))
        .route(
            "/admin/v1/tenants/{tenant}/tuples",
            get(read_tuples).post(write_tuples),
        )
        .route(
            "/admin/v1/tenants/{tenant}/tuples/changes",
            get(tuple_changes),
        )
        .route("/admin/v1/tenants/{tenant}/model", get(read_model))
        .route("/admin/v1/reload", post(reload))
        .route(
            "/admin/v1/tenants/{tenant}/audit",
            get(crate::admin::audit::query),
        )
        .route(
            "/admin/v1/tenants/{tenant}/audit/export",
            get(crate::admin::audit::export),
        )
        .route(
            "/admin/v1/tenants/{tenant}/audit/verify",
            get(crate::admin::audit::verify),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            record_changes,
        ))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
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

/// The name of an authenticated admin token.
#[derive(Debug, Clone)]
pub(crate) struct Admin(pub(crate) String);

async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: axum::extract::Request,
    next: Next,
) -> Response {
    match admin_for(&state, request.headers()) {
        Ok(admin) => {
            request.extensions_mut().insert(admin);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// Records every administrative change — every call that is not a read, whatever its outcome —
/// and every read of the audit trail, durably in the audit log before the response leaves. If
/// the record cannot be written the caller is told so (500 `audit_failed`).
async fn record_changes(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let Some(audit) = &state.audit else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let template = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let is_audit_read = template.contains("/audit");
    if method == http::Method::GET && !is_audit_read {
        return next.run(request).await;
    }
    let admin = request
        .extensions()
        .get::<Admin>()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    // The tenant the change is about: the path's, or the system tenant for node-wide calls.
    let tenant = path
        .strip_prefix("/admin/v1/tenants/")
        .and_then(|rest| rest.split('/').next())
        .filter(|t| TenantId::new(t).is_ok())
        .unwrap_or(SYSTEM_TENANT)
        .to_owned();
    let action = format!("{method} {template}");
    let response = next.run(request).await;
    let status = response.status();
    let mut details = Map::new();
    details.insert("path".into(), Value::String(path));
    if let Some(query) = query {
        details.insert("query".into(), Value::String(query));
    }
    details.insert("status".into(), Value::from(status.as_u16()));
    match audit
        .change(
            &tenant,
            &admin,
            &action,
            &format!("tenant:{tenant}"),
            status.is_success(),
            details,
        )
        .await
    {
        Ok(_) => response,
        Err(error) => {
            tracing::error!(%error, %action, "an admin call could not be recorded in the audit log");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit_failed",
                "the call could not be recorded in the audit log (if it changed something, the change was applied); the server log has the details",
            )
            .into_response()
        }
    }
}

/// The admin whose token the request carries.
pub(crate) fn admin_for(state: &AppState, headers: &http::HeaderMap) -> Result<Admin, ApiError> {
    let found = match bearer(headers) {
        Err(error) => Err(ApiError::from(error)),
        Ok(None) => Err(ApiError::unauthenticated(
            "missing_token",
            "an admin token is required",
        )),
        Ok(Some(token)) => {
            let presented = Sha256::digest(token.as_bytes());
            // Compare digests, so the time taken does not depend on how much of a secret matched.
            state
                .config
                .admin
                .tokens
                .iter()
                .find(|candidate| Sha256::digest(candidate.secret.as_bytes()) == presented)
                .map(|admin| admin.name.clone())
                .ok_or_else(|| {
                    ApiError::unauthenticated("invalid_token", "the admin token is not valid")
                })
        }
    };
    found.map(Admin)
}

/// Authorizes `action` on `tenant:<resource>` for an authenticated admin through the `system`
/// tenant.
pub(crate) async fn authorize(
    state: &AppState,
    admin: &Admin,
    action: &str,
    resource: &str,
) -> Result<(), ApiError> {
    let system =
        TenantId::new(SYSTEM_TENANT).map_err(|e| ApiError::forbidden("denied", e.to_string()))?;
    let request = Request {
        tenant: system,
        principal: Principal::user(admin.0.clone()),
        action: action.to_owned(),
        resource: Resource::new("tenant", resource),
        context: Default::default(),
        env: Default::default(),
        explain: false,
        trace_id: None,
    };
    let (_, decision) = DecisionPath::new(state, "admin")
        .decide(request, None, None)
        .await;
    if decision.is_allowed() {
        Ok(())
    } else {
        let cause = serde_json::to_value(decision.cause)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Err(ApiError::forbidden(
            "denied",
            format!(
                "admin `{}` may not {action} on tenant:{resource} ({cause}; see the `system` tenant bundle)",
                admin.0
            ),
        ))
    }
}

fn path_tenant(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::new(raw).map_err(|e| ApiError::bad_request("invalid_tenant", e.to_string()))
}

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

// ------------------------------------------------------------------ tenants

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

async fn list_tenants(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &admin, "admin:tenants.list", "*").await?;
    let directory = state.store.directory().await.map_err(store_error)?;
    let tenants: Vec<Value> = directory
        .iter()
        .map(|entry| summary(&state, entry))
        .collect();
    Ok(Json(json!({ "tenants": tenants })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    tenant: String,
    #[serde(default, deserialize_with = "crate::json::nullable")]
    domain: Option<String>,
}

async fn create_tenant(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
    JsonBody(body): JsonBody<NewTenant>,
) -> Result<Response, ApiError> {
    let tenant = path_tenant(&body.tenant)?;
    authorize(&state, &admin, "admin:tenants.create", tenant.as_str()).await?;
    let record = state
        .store
        .tenant(&tenant)
        .create(body.domain.as_deref())
        .await
        .map_err(|error| match error {
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "tenant_exists", message)
            }
            other => store_error(other),
        })?;
    refresh_tenant(&state, &tenant).await;
    Ok((StatusCode::CREATED, Json(json!({ "tenant": record.tenant, "status": record.status, "domain": record.domain, "data_revision": record.data_revision }))).into_response())
}

async fn read_tenant(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:tenants.read", tenant.as_str()).await?;
    let record = existing_tenant(&state, &tenant).await?;
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
struct Confirm {
    confirm: Option<String>,
}

async fn delete_tenant(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    QueryParams(query): QueryParams<Confirm>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:tenants.delete", tenant.as_str()).await?;
    if query.confirm.as_deref() != Some(tenant.as_str()) {
        return Err(ApiError::bad_request(
            "confirmation_required",
            format!("deleting a tenant removes all its data; repeat its id as ?confirm={tenant}"),
        ));
    }
    let source = state
        .loaded
        .lock()
        .await
        .bases
        .get(&tenant)
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
        .tenant(&tenant)
        .delete()
        .await
        .map_err(|error| match error {
            StoreError::NotFound(_) => ApiError::not_found(
                "unknown_tenant",
                format!("tenant `{tenant}` does not exist"),
            ),
            other => store_error(other),
        })?;
    state.quotas.remove(&tenant);
    refresh_tenant(&state, &tenant).await;
    Ok(Json(json!({ "tenant": tenant, "deleted": true })))
}

async fn set_status(
    state: &AppState,
    admin: &Admin,
    tenant: &str,
    status: TenantStatus,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(tenant)?;
    let action = if status == TenantStatus::Suspended {
        "admin:tenants.suspend"
    } else {
        "admin:tenants.resume"
    };
    authorize(state, admin, action, tenant.as_str()).await?;
    let record = existing_tenant(state, &tenant).await?;
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

async fn suspend_tenant(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &admin, &tenant, TenantStatus::Suspended).await
}

async fn resume_tenant(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    set_status(&state, &admin, &tenant, TenantStatus::Active).await
}

// ------------------------------------------------------------------ bundles

/// Body of a bundle upload: file name to content.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload {
    files: BTreeMap<String, String>,
}

fn valid_file_name(name: &str) -> bool {
    let stem_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    stem_ok
        && !name.starts_with('.')
        && [".yaml", ".yml", ".fga", ".json"]
            .iter()
            .any(|extension| name.ends_with(extension))
        && name.len() <= 128
}

fn upload_error(tenant: &TenantId, error: UploadError) -> Response {
    match error {
        UploadError::Invalid(error) => {
            let problems: Vec<Value> = error
                .diagnostics
                .iter()
                .map(|d| {
                    json!({
                        "file": d.location.file.display().to_string(),
                        "line": d.location.pos.map(|p| p.line),
                        "column": d.location.pos.map(|p| p.column),
                        "code": d.code.as_str(),
                        "message": d.message,
                        "help": d.help,
                    })
                })
                .collect();
            let body = json!({
                "error": {
                    "code": "invalid_bundle",
                    "message": format!("the bundle has {} problem(s); nothing was changed", problems.len()),
                    "problems": problems,
                }
            });
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
        UploadError::TenantMismatch(named) => ApiError::bad_request(
            "tenant_mismatch",
            format!("tenant.yaml names `{named}`, not `{tenant}`"),
        )
        .into_response(),
        UploadError::NoVersion(version) => ApiError::not_found(
            "unknown_version",
            format!("tenant `{tenant}` has no bundle version {version}"),
        )
        .into_response(),
        UploadError::Store(error) => store_error(error).into_response(),
        UploadError::Write { version, message } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "write_failed",
            format!(
                "the bundle was recorded as version {version} in the history, but its folder \
                 could not be written ({message}); tenant `{tenant}` still decides on its \
                 previous bundle"
            ),
        )
        .into_response(),
    }
}

async fn upload_bundle(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
    JsonBody(upload): JsonBody<Upload>,
) -> Result<Response, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:bundle.upload", tenant.as_str()).await?;
    // Uploading for a tenant that does not exist yet creates it, which needs that right too.
    if state
        .store
        .tenant(&tenant)
        .get()
        .await
        .map_err(store_error)?
        .is_none()
    {
        authorize(&state, &admin, "admin:tenants.create", tenant.as_str()).await?;
    }
    if upload.files.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_bundle",
            "the upload holds no file",
        ));
    }
    for name in upload.files.keys() {
        if !valid_file_name(name) {
            return Err(ApiError::bad_request(
                "invalid_file_name",
                format!(
                    "`{name}` is not a policy file name (letters, digits, '.', '_', '-', ending in .yaml or .yml, or .fga or .json for a relationship model)"
                ),
            ));
        }
    }
    let files: Vec<SourceFile> = upload
        .files
        .into_iter()
        .map(|(name, text)| SourceFile {
            path: PathBuf::from(tenant.as_str()).join(name),
            text,
        })
        .collect();
    Ok(
        match crate::snapshots::reload::install_upload(&state, &tenant, files, &admin.0).await {
            Ok(snapshot) => {
                Json(json!({ "tenant": tenant, "revision": snapshot.revision() })).into_response()
            }
            Err(error) => upload_error(&tenant, error),
        },
    )
}

async fn bundle_history(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:bundles.read", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
    let versions = state
        .store
        .tenant(&tenant)
        .bundle_history()
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "tenant": tenant, "versions": versions })))
}

async fn read_bundle(
    State(state): State<Arc<AppState>>,
    PathParams((tenant, version)): PathParams<(String, i64)>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:bundles.read", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
    let bundle = state
        .store
        .tenant(&tenant)
        .bundle(Some(version))
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_version",
                format!("tenant `{tenant}` has no bundle version {version}"),
            )
        })?;
    Ok(Json(
        json!({ "tenant": tenant, "version": bundle.version, "files": bundle.files }),
    ))
}

async fn activate_bundle(
    State(state): State<Arc<AppState>>,
    PathParams((tenant, version)): PathParams<(String, i64)>,
    Extension(admin): Extension<Admin>,
) -> Result<Response, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:bundles.rollback", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
    Ok(
        match crate::snapshots::reload::rollback(&state, &tenant, version, &admin.0).await {
            Ok(snapshot) => Json(
                json!({ "tenant": tenant, "version": version, "revision": snapshot.revision() }),
            )
            .into_response(),
            Err(error) => upload_error(&tenant, error),
        },
    )
}

// ------------------------------------------------------------------ principals

/// The attributes a tenant stores encrypted; a tenant without a loaded bundle has none known,
/// so run-time principals cannot be written for it yet.
fn sensitive_attributes(
    state: &AppState,
    tenant: &TenantId,
) -> Result<std::collections::BTreeSet<String>, ApiError> {
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

fn shown_attributes(
    attributes: &Map<String, Value>,
    sensitive: &std::collections::BTreeSet<String>,
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
struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_principals(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    QueryParams(page): QueryParams<Page>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:principals.read", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let sensitive = state
        .policies()
        .get(&tenant)
        .map(|s| s.settings().sensitive_attributes.clone())
        .unwrap_or_default();
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

async fn read_principal(
    State(state): State<Arc<AppState>>,
    PathParams((tenant, principal)): PathParams<(String, String)>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:principals.read", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
    let sensitive = state
        .policies()
        .get(&tenant)
        .map(|s| s.settings().sensitive_attributes.clone())
        .unwrap_or_default();
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
struct PrincipalBody {
    #[serde(rename = "type", default, deserialize_with = "crate::json::nullable")]
    kind: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
}

async fn write_principal(
    State(state): State<Arc<AppState>>,
    PathParams((tenant, principal)): PathParams<(String, String)>,
    Extension(admin): Extension<Admin>,
    JsonBody(body): JsonBody<PrincipalBody>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:principals.write", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
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

async fn delete_principal(
    State(state): State<Arc<AppState>>,
    PathParams((tenant, principal)): PathParams<(String, String)>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:principals.write", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
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

// ------------------------------------------------------------------ role assignments

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentBody {
    principal: String,
    role: String,
    #[serde(default, deserialize_with = "crate::json::nullable")]
    resource: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentFilter {
    principal: Option<String>,
}

async fn list_assignments(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    QueryParams(filter): QueryParams<AssignmentFilter>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:assignments.read", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
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

async fn assign_role(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
    JsonBody(body): JsonBody<AssignmentBody>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:assignments.write", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
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

async fn revoke_role(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
    JsonBody(body): JsonBody<AssignmentBody>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:assignments.write", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
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

// ------------------------------------------------------------------ keys

async fn rotate_key(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:keys.rotate", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
    // Without the bundle, which attributes are encrypted is unknown: refuse rather than
    // report nothing rotated.
    let sensitive = sensitive_attributes(&state, &tenant)?;
    let scope = state.store.tenant(&tenant);
    let mut after: Option<String> = None;
    let (mut principals, mut values) = (0u64, 0u64);
    loop {
        let page = scope
            .principals(after.as_deref(), 500)
            .await
            .map_err(store_error)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for principal in &page {
            let mut changed = false;
            let mut attributes = principal.attributes.clone();
            for (key, value) in attributes.iter_mut() {
                let Some(ciphertext) = value.as_str().filter(|_| sensitive.contains(key)) else {
                    continue;
                };
                let stale = state.keyring.needs_rotation(ciphertext).map_err(|e| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "undecryptable",
                        format!("principal `{}` attribute `{key}`: {e}", principal.id),
                    )
                })?;
                if stale {
                    let fresh = state
                        .keyring
                        .reencrypt(&tenant, key, ciphertext)
                        .map_err(|e| {
                            ApiError::new(
                                StatusCode::CONFLICT,
                                "undecryptable",
                                format!("principal `{}` attribute `{key}`: {e}", principal.id),
                            )
                        })?;
                    *value = Value::String(fresh);
                    changed = true;
                    values += 1;
                }
            }
            if changed {
                scope
                    .upsert_principal(&principal.id, &principal.kind, &attributes)
                    .await
                    .map_err(store_error)?;
                principals += 1;
            }
        }
    }
    refresh_tenant(&state, &tenant).await;
    Ok(Json(json!({
        "tenant": tenant,
        "key": state.keyring.current_key_id().as_str(),
        "principals": principals,
        "values": values,
    })))
}

async fn reload(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &admin, "admin:reload", "*").await?;
    let report = reload_all(&state, "admin").await;
    Ok(Json(serde_json::to_value(report).unwrap_or(Value::Null)))
}

// ------------------------------------------------------------------ relationship tuples

async fn write_tuples(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
    JsonBody(body): JsonBody<crate::snapshots::tuples::WriteBody>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:tuples.write", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
    let revision = crate::snapshots::tuples::write_tuples(&state, &tenant, &body).await?;
    Ok(Json(json!({
        "tenant": tenant,
        "written": body.writes.len(),
        "deleted": body.deletes.len(),
        "revision": revision.to_string(),
    })))
}

async fn read_tuples(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
    QueryParams(query): QueryParams<crate::snapshots::tuples::ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:tuples.read", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
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

async fn tuple_changes(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
    QueryParams(query): QueryParams<crate::snapshots::tuples::ChangesQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:tuples.read", tenant.as_str()).await?;
    existing_tenant(&state, &tenant).await?;
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

async fn read_model(
    State(state): State<Arc<AppState>>,
    PathParams(tenant): PathParams<String>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:tuples.read", tenant.as_str()).await?;
    // A tenant of the directory without a bundle exists: its model is not missing, it has no
    // bundle yet (as for principals and assignments), and only an unknown tenant is a 404.
    existing_tenant(&state, &tenant).await?;
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
