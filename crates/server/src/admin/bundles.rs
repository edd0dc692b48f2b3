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

/// Why a model write was refused.
#[derive(Debug)]
pub(crate) enum ModelWriteError {
    /// The tenant's current bundle could not be read.
    Read(ApiError),
    /// The new bundle was refused.
    Upload(UploadError),
}

/// Makes `model` the tenant's relationship model, keeping everything else of its bundle: the
/// active bundle's files (from the store's history, or the tenant's folder) with the model file
/// rewritten — in the modeling language, or as JSON when the bundle names a `.json` model — or
/// a new bundle holding only the model when the tenant has none. The result is installed like
/// an upload by `uploader` (validated, recorded as a new version of the bundle history, applied;
/// stored tuples are kept). The caller has authorized `admin:bundle.upload`.
pub(crate) async fn write_model(
    state: &AppState,
    tenant: &TenantId,
    model: &portcullis_policy::rebac::Model,
    uploader: &str,
) -> Result<Arc<portcullis_policy::Snapshot>, ModelWriteError> {
    let mut files = current_files(state, tenant)
        .await
        .map_err(ModelWriteError::Read)?;
    if files.is_empty() {
        files.insert(
            "tenant.yaml".to_owned(),
            format!("tenant: {tenant}\ntimezone: UTC\n"),
        );
    }
    // The file a top-level `model:` key names, in whichever policy file declares it.
    let named = files.iter().find_map(|(name, text)| {
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            return None;
        }
        text.lines().find_map(|line| {
            let value = line.strip_prefix("model:")?;
            let value = value.split('#').next().unwrap_or("").trim();
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            (!value.is_empty()).then(|| (name.clone(), value.to_owned()))
        })
    });
    let model_file = match named {
        Some((_, file)) => file,
        None => {
            let file = "model.fga".to_owned();
            let tenant_file = if files.contains_key("tenant.yaml") {
                "tenant.yaml".to_owned()
            } else {
                "model.yaml".to_owned()
            };
            let text = files.entry(tenant_file).or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("model: model.fga\n");
            file
        }
    };
    let text = if model_file.ends_with(".json") {
        model.to_json_string()
    } else {
        model.to_dsl()
    };
    files.insert(model_file, text);
    let files: Vec<SourceFile> = files
        .into_iter()
        .map(|(name, text)| SourceFile {
            path: PathBuf::from(tenant.as_str()).join(name),
            text,
        })
        .collect();
    crate::snapshots::reload::install_upload(state, tenant, files, uploader)
        .await
        .map_err(ModelWriteError::Upload)
}

/// The files of the tenant's current bundle: its active version in the store, else its bundle
/// folder's policy files, else none.
async fn current_files(
    state: &AppState,
    tenant: &TenantId,
) -> Result<BTreeMap<String, String>, ApiError> {
    let folder = match state
        .loaded
        .lock()
        .await
        .bases
        .get(tenant)
        .map(|base| base.source.clone())
    {
        Some(crate::snapshots::loaded::Source::Folder(folder)) => Some(folder),
        _ => None,
    };
    if let Some(folder) = folder {
        let read =
            tokio::task::spawn_blocking(move || -> std::io::Result<BTreeMap<String, String>> {
                let mut files = BTreeMap::new();
                for entry in std::fs::read_dir(&folder)? {
                    let entry = entry?;
                    let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    if entry.file_type()?.is_file() && valid_file_name(&name) {
                        files.insert(name, std::fs::read_to_string(entry.path())?);
                    }
                }
                Ok(files)
            })
            .await;
        return match read {
            Ok(Ok(files)) => Ok(files),
            Ok(Err(error)) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                format!("the tenant's bundle folder could not be read: {error}"),
            )),
            Err(error) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                format!("the tenant's bundle folder could not be read: {error}"),
            )),
        };
    }
    Ok(state
        .store
        .tenant(tenant)
        .bundle(None)
        .await
        .map_err(store_error)?
        .map(|bundle| bundle.files)
        .unwrap_or_default())
}
