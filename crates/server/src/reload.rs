//! Loading bundles from their folders, per tenant, and swapping them in atomically.
//!
//! Each bundle folder is loaded on its own: a valid bundle replaces its tenant's snapshot, an
//! invalid one leaves the previous snapshot in place (it is logged with every problem and
//! counted). The new set of snapshots is published with one atomic swap, so a decision in
//! flight uses either the old set or the new one, never a mix. Reloads are serialized.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_core::TenantId;
use portcullis_policy::{
    LoadError, LoadOptions, PolicySet, Snapshot, SourceFile, compile_files, is_bundle_dir,
    load_bundle,
};
use serde::Serialize;

use crate::state::AppState;

/// What one reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// Tenants whose bundle changed (new revision).
    pub applied: Vec<TenantRevision>,
    /// Tenants whose bundle was loaded again with the same revision.
    pub unchanged: Vec<TenantRevision>,
    /// Bundles that failed; their tenant keeps the previous snapshot.
    pub failed: Vec<FailedBundle>,
    /// Tenants whose folder disappeared.
    pub removed: Vec<String>,
}

/// A tenant and a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRevision {
    /// Tenant id.
    pub tenant: String,
    /// Bundle revision.
    pub revision: String,
}

/// A bundle that did not load.
#[derive(Debug, Clone, Serialize)]
pub struct FailedBundle {
    /// Its folder.
    pub path: String,
    /// Every problem, as `file:line:col: error[code]: message`.
    pub errors: Vec<String>,
}

impl FailedBundle {
    fn from_error(path: &Path, error: &LoadError) -> Self {
        FailedBundle {
            path: path.display().to_string(),
            errors: error.diagnostics.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Which folder each tenant was loaded from, so a failing folder can keep its tenant.
#[derive(Debug, Default)]
pub struct Sources {
    by_folder: BTreeMap<PathBuf, TenantId>,
}

/// Every bundle folder under the configured folders: each configured folder is a bundle or a
/// folder of bundles.
pub fn bundle_folders(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut folders = Vec::new();
    for root in roots {
        if is_bundle_dir(root) {
            folders.push(root.clone());
            continue;
        }
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                let hidden = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_none_or(|n| n.starts_with('.'));
                path.is_dir() && !hidden && is_bundle_dir(path)
            })
            .collect();
        found.sort();
        folders.extend(found);
    }
    folders
}

/// Loads every bundle folder and publishes the result; blocking (run it off the async threads).
pub fn reload_from_disk(state: &AppState, trigger: &'static str) -> ReloadReport {
    let _serialized = state
        .reload_lock
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let options = LoadOptions::default();
    let previous = state.policies();
    let mut sources = state
        .sources
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut next = PolicySet::new();
    let mut next_sources = BTreeMap::new();
    let mut report = ReloadReport::default();
    for folder in bundle_folders(&state.config.bundles) {
        match load_bundle(&folder, &options) {
            Ok(snapshot) => {
                let tenant = snapshot.tenant().clone();
                if next.get(&tenant).is_some() {
                    let error = format!(
                        "{}: tenant `{tenant}` is already loaded from another folder",
                        folder.display()
                    );
                    tracing::error!(%error, "bundle rejected");
                    state.metrics.reload("failed", trigger);
                    report.failed.push(FailedBundle {
                        path: folder.display().to_string(),
                        errors: vec![error],
                    });
                    continue;
                }
                let entry = TenantRevision {
                    tenant: tenant.to_string(),
                    revision: snapshot.revision().to_string(),
                };
                let same = previous
                    .get(&tenant)
                    .is_some_and(|old| old.revision() == snapshot.revision());
                if same {
                    // Keep the old snapshot object: identical content, and caches keyed by it stay warm.
                    if let Some(old) = previous.get(&tenant) {
                        next.insert(Arc::clone(old));
                    }
                    state.metrics.reload("unchanged", trigger);
                    report.unchanged.push(entry);
                } else {
                    tracing::info!(tenant = %tenant, revision = %snapshot.revision(), folder = %folder.display(), "bundle loaded");
                    next.insert(Arc::new(snapshot));
                    state.metrics.reload("applied", trigger);
                    report.applied.push(entry);
                }
                next_sources.insert(folder, tenant);
            }
            Err(error) => {
                tracing::error!(folder = %folder.display(), problems = error.diagnostics.len(), "bundle rejected; the previous version stays in place\n{error}");
                state.metrics.reload("failed", trigger);
                report
                    .failed
                    .push(FailedBundle::from_error(&folder, &error));
                if let Some(tenant) = sources.by_folder.get(&folder)
                    && let Some(old) = previous.get(tenant)
                    && next.get(tenant).is_none()
                {
                    next.insert(Arc::clone(old));
                    next_sources.insert(folder.clone(), tenant.clone());
                }
            }
        }
    }
    // Tenants installed by upload in embedded mode have no folder; keep them.
    for snapshot in previous.iter() {
        let from_disk = sources.by_folder.values().any(|t| t == snapshot.tenant());
        if next.get(snapshot.tenant()).is_none() {
            if from_disk {
                report.removed.push(snapshot.tenant().to_string());
                tracing::warn!(tenant = %snapshot.tenant(), "bundle folder disappeared; tenant removed");
            } else {
                next.insert(Arc::clone(snapshot));
            }
        }
    }
    sources.by_folder = next_sources;
    state.metrics.loaded(next.len(), report.failed.len());
    state.publish(next);
    report
}

/// Installs bundles compiled from in-memory files (the demo built into the binary).
pub fn install_embedded(
    state: &AppState,
    bundles: &[(String, Vec<SourceFile>)],
) -> Result<(), LoadError> {
    let mut next = PolicySet::new();
    for (name, files) in bundles {
        let snapshot = compile_files(Path::new(name), files, &LoadOptions::default())?;
        next.insert(Arc::new(snapshot));
    }
    state.metrics.loaded(next.len(), 0);
    state.publish(next);
    Ok(())
}

/// Validates an uploaded bundle, writes it to its folder (replacing the previous files) and
/// swaps it in. Nothing changes unless the bundle is valid and written.
pub fn install_upload(
    state: &AppState,
    tenant: &TenantId,
    files: Vec<SourceFile>,
) -> Result<Arc<Snapshot>, UploadError> {
    let _serialized = state
        .reload_lock
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = PathBuf::from(tenant.as_str());
    let snapshot =
        compile_files(&root, &files, &LoadOptions::default()).map_err(UploadError::Invalid)?;
    if snapshot.tenant() != tenant {
        return Err(UploadError::TenantMismatch(snapshot.tenant().to_string()));
    }
    let snapshot = Arc::new(snapshot);
    let mut sources = state
        .sources
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !state.config.bundles.is_empty() {
        let folder = match sources
            .by_folder
            .iter()
            .find(|(_, t)| *t == tenant)
            .map(|(f, _)| f.clone())
        {
            Some(folder) => folder,
            None => {
                let root = &state.config.bundles[0];
                if is_bundle_dir(root) {
                    return Err(UploadError::NoPlace(format!(
                        "{} holds a single bundle; configure a folder of bundles to add tenants",
                        root.display()
                    )));
                }
                root.join(tenant.as_str())
            }
        };
        write_folder(&folder, &files)
            .map_err(|e| UploadError::Write(format!("{}: {e}", folder.display())))?;
        sources.by_folder.insert(folder, tenant.clone());
    }
    let mut next = (*state.policies()).clone();
    next.insert(Arc::clone(&snapshot));
    state.metrics.reload("applied", "upload");
    state.metrics.loaded(next.len(), 0);
    state.publish(next);
    tracing::info!(tenant = %tenant, revision = %snapshot.revision(), "bundle uploaded");
    Ok(snapshot)
}

/// Why an upload was refused.
#[derive(Debug)]
pub enum UploadError {
    /// The bundle has problems.
    Invalid(LoadError),
    /// The bundle's tenant.yaml names another tenant.
    TenantMismatch(String),
    /// There is no folder to write a new tenant into.
    NoPlace(String),
    /// Writing failed; nothing was changed.
    Write(String),
}

/// Replaces the policy files of `folder` with `files`: writes a sibling folder, then swaps the
/// two with renames, so readers see the old files or the new ones.
fn write_folder(folder: &Path, files: &[SourceFile]) -> std::io::Result<()> {
    let parent = folder.parent().unwrap_or(Path::new("."));
    let name = folder
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("bundle");
    let staging = parent.join(format!(".{name}.upload"));
    let retired = parent.join(format!(".{name}.previous"));
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&retired);
    std::fs::create_dir_all(&staging)?;
    for file in files {
        let file_name = file.path.file_name().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "a file has no name")
        })?;
        std::fs::write(staging.join(file_name), &file.text)?;
    }
    if folder.exists() {
        std::fs::rename(folder, &retired)?;
    }
    if let Err(error) = std::fs::rename(&staging, folder) {
        if retired.exists() {
            let _ = std::fs::rename(&retired, folder);
        }
        return Err(error);
    }
    let _ = std::fs::remove_dir_all(&retired);
    Ok(())
}
