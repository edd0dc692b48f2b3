//! Policy bundles: upload, version history, reading a version and activating an earlier one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_core::TenantId;
use portcullis_policy::SourceFile;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{
    AdminAction, BundleUpload, BundlesRead, BundlesRollback, MayNotExist, TenantAccess,
    TenantsCreate, WithInput, authorize,
};
use crate::error::{ApiError, PathParams, store_error};
use crate::json::JsonBody;
use crate::snapshots::reload::UploadError;
use crate::state::AppState;

/// Body of a bundle upload: file name to content.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Upload {
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

/// The tenant need not exist: uploading for a new tenant creates it, which the admin must
/// then also be allowed to do.
pub(super) async fn upload_bundle(
    State(state): State<Arc<AppState>>,
    WithInput(access, JsonBody(upload)): WithInput<
        TenantAccess<BundleUpload, MayNotExist>,
        JsonBody<Upload>,
    >,
) -> Result<Response, ApiError> {
    let TenantAccess { tenant, admin, .. } = access;
    // Uploading for a tenant that does not exist yet creates it, which needs that right too.
    if state
        .store
        .tenant(&tenant)
        .get()
        .await
        .map_err(store_error)?
        .is_none()
    {
        authorize(&state, &admin, TenantsCreate::ACTION, tenant.as_str()).await?;
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

pub(super) async fn bundle_history(
    State(state): State<Arc<AppState>>,
    access: TenantAccess<BundlesRead>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let versions = state
        .store
        .tenant(&tenant)
        .bundle_history()
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "tenant": tenant, "versions": versions })))
}

pub(super) async fn read_bundle(
    State(state): State<Arc<AppState>>,
    PathParams((_, version)): PathParams<(String, i64)>,
    access: TenantAccess<BundlesRead>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
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

pub(super) async fn activate_bundle(
    State(state): State<Arc<AppState>>,
    PathParams((_, version)): PathParams<(String, i64)>,
    access: TenantAccess<BundlesRollback>,
) -> Result<Response, ApiError> {
    let TenantAccess { tenant, admin, .. } = access;
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
