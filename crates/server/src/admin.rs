//! Admin endpoints, on their own listener (loopback unless configured otherwise).
//!
//! Every call needs an admin token (`Authorization: Bearer <token>`); the token's name is the
//! principal of a decision in the `system` tenant, whose bundle says which admin may do what
//! (`admin:tenants.list`, `admin:tenants.read`, `admin:bundle.upload`, `admin:reload` on
//! resource `tenant:<id>`). Without a `system` bundle every admin call is refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use portcullis_core::{Principal, Request, Resource, TenantId};
use portcullis_policy::SourceFile;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, JsonBody};
use crate::identity::bearer;
use crate::reload::{UploadError, reload_from_disk};
use crate::state::AppState;

/// The tenant whose bundle authorizes admin calls.
pub const SYSTEM_TENANT: &str = "system";
/// Largest accepted upload.
const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The admin router. Every matched route first authenticates the admin token (before any
/// body is read); each handler then asks the `system` tenant whether that admin may act.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/admin/v1/tenants", get(list_tenants))
        .route("/admin/v1/tenants/{tenant}", get(read_tenant))
        .route("/admin/v1/tenants/{tenant}/bundle", put(upload_bundle))
        .route("/admin/v1/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ))
        .fallback(crate::not_found)
        .method_not_allowed_fallback(crate::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(state)
}

/// The name of an authenticated admin token.
#[derive(Debug, Clone)]
struct Admin(String);

async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: axum::extract::Request,
    next: Next,
) -> Response {
    let found = match bearer(request.headers()) {
        Err(error) => Err(error),
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
    match found {
        Ok(name) => {
            request.extensions_mut().insert(Admin(name));
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// Authorizes `action` on `tenant:<resource>` for an authenticated admin through the `system`
/// tenant.
fn authorize(
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
    let decision = state.decide(request, "admin");
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

fn tenant_summary(snapshot: &portcullis_policy::Snapshot) -> Value {
    let settings = snapshot.settings();
    json!({
        "tenant": snapshot.tenant(),
        "revision": snapshot.revision(),
        "status": settings.status,
        "timezone": settings.timezone,
        "domain": settings.domain,
        "tests": snapshot.tests().len(),
    })
}

async fn list_tenants(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &admin, "admin:tenants.list", "*")?;
    let tenants: Vec<Value> = state.policies().iter().map(|s| tenant_summary(s)).collect();
    Ok(Json(json!({ "tenants": tenants })))
}

fn path_tenant(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::new(raw).map_err(|e| ApiError::bad_request("invalid_tenant", e.to_string()))
}

async fn read_tenant(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:tenants.read", tenant.as_str())?;
    let policies = state.policies();
    let snapshot = policies.get(&tenant).ok_or_else(|| {
        ApiError::not_found("unknown_tenant", format!("tenant `{tenant}` has no bundle"))
    })?;
    let mut summary = tenant_summary(snapshot);
    summary["factors"] = json!(snapshot.factor_names().collect::<Vec<_>>());
    summary["roles"] = json!(snapshot.role_names().collect::<Vec<_>>());
    Ok(Json(summary))
}

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
        && (name.ends_with(".yaml") || name.ends_with(".yml"))
        && name.len() <= 128
}

async fn upload_bundle(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Extension(admin): Extension<Admin>,
    JsonBody(upload): JsonBody<Upload>,
) -> Result<Response, ApiError> {
    let tenant = path_tenant(&tenant)?;
    authorize(&state, &admin, "admin:bundle.upload", tenant.as_str())?;
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
                    "`{name}` is not a policy file name (letters, digits, '.', '_', '-', ending in .yaml or .yml)"
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
    let worker = Arc::clone(&state);
    let target = tenant.clone();
    let result =
        tokio::task::spawn_blocking(move || crate::reload::install_upload(&worker, &target, files))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the upload was not applied",
                )
            })?;
    match result {
        Ok(snapshot) => {
            Ok(Json(json!({ "tenant": tenant, "revision": snapshot.revision() })).into_response())
        }
        Err(UploadError::Invalid(error)) => {
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
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
        }
        Err(UploadError::TenantMismatch(named)) => Err(ApiError::bad_request(
            "tenant_mismatch",
            format!("tenant.yaml names `{named}`, not `{tenant}`"),
        )),
        Err(UploadError::NoPlace(message)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_bundle_folder",
            message,
        )),
        Err(UploadError::Write(message)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "write_failed",
            format!("the bundle could not be written, nothing was changed: {message}"),
        )),
    }
}

async fn reload(
    State(state): State<Arc<AppState>>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &admin, "admin:reload", "*")?;
    if state.config.bundles.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_bundle_folder",
            "the built-in demo bundles have no folder to reload",
        ));
    }
    let worker = Arc::clone(&state);
    let report = tokio::task::spawn_blocking(move || reload_from_disk(&worker, "admin"))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the reload did not complete",
            )
        })?;
    Ok(Json(serde_json::to_value(report).unwrap_or(Value::Null)))
}
