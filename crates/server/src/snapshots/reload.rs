//! Loading what decisions read, and keeping it current.
//!
//! A tenant's *base* is its compiled bundle, from a bundle folder or from the store (uploaded
//! through the admin API, with history); files win when both exist. Over the base go the
//! tenant's run-time data from the store — principals (sensitive attributes decrypted),
//! role assignments, suspension — giving the snapshot decisions use. Every change is
//! published with one atomic swap of the whole set, so a decision in flight never mixes
//! versions. A bundle that fails leaves the tenant's previous base in place.
//!
//! Reloads and refreshes are serialized by one async lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_core::TenantId;
use portcullis_policy::{
    LoadError, LoadOptions, PolicySet, RuntimeAssignment, RuntimeData, RuntimeGrant,
    RuntimePrincipal, Snapshot, SourceFile, compile_files, is_bundle_dir, load_bundle,
};
use portcullis_store::{StoreError, TenantStatus};
use serde::Serialize;

use crate::snapshots::crypto::decrypt_attribute;
use crate::snapshots::loaded::{Base, Loaded, Source};
use crate::state::AppState;

/// What one reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// Tenants whose bundle changed (new revision).
    pub applied: Vec<TenantRevision>,
    /// Tenants whose bundle was loaded again with the same revision.
    pub unchanged: Vec<TenantRevision>,
    /// Bundles that failed; their tenant keeps the previous one.
    pub failed: Vec<FailedBundle>,
    /// Tenants that are gone.
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
    /// Its folder, or `store:<tenant>` for a bundle in the store.
    pub path: String,
    /// Every problem, as `file:line:col: error[code]: message`.
    pub errors: Vec<String>,
}

impl FailedBundle {
    fn from_error(path: String, error: &LoadError) -> Self {
        FailedBundle {
            path,
            errors: error.diagnostics.iter().map(ToString::to_string).collect(),
        }
    }
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

async fn compile_in_background(
    root: PathBuf,
    files: Vec<SourceFile>,
) -> Result<Snapshot, LoadError> {
    let options = LoadOptions::default();
    let root_for_error = root.clone();
    tokio::task::spawn_blocking(move || compile_files(&root, &files, &options))
        .await
        .unwrap_or_else(|_| {
            Err(LoadError {
                path: root_for_error,
                diagnostics: Vec::new(),
            })
        })
}

async fn load_folder(folder: PathBuf) -> Result<Snapshot, LoadError> {
    let options = LoadOptions::default();
    let path = folder.clone();
    tokio::task::spawn_blocking(move || load_bundle(&folder, &options))
        .await
        .unwrap_or_else(|_| {
            Err(LoadError {
                path,
                diagnostics: Vec::new(),
            })
        })
}

/// Keeps the tenant `folder` held before (if any) when its bundle is refused.
fn keep_previous(
    previous: &BTreeMap<TenantId, Base>,
    folder: &Path,
    bases: &mut BTreeMap<TenantId, Base>,
) {
    if let Some((tenant, base)) = previous
        .iter()
        .find(|(_, b)| matches!(&b.source, Source::Folder(f) if f == folder))
    {
        bases.insert(tenant.clone(), base.clone());
    }
}

/// Reloads everything: bundle folders, bundles in the store, run-time data.
pub async fn reload_all(state: &AppState, trigger: &'static str) -> ReloadReport {
    let mut loaded = state.loaded.lock().await;
    let mut report = ReloadReport::default();
    let previous = std::mem::take(&mut loaded.bases);
    let mut bases: BTreeMap<TenantId, Base> = BTreeMap::new();

    // Bundle folders.
    let mut folders_seen = BTreeSet::new();
    for folder in bundle_folders(&state.config.bundles) {
        folders_seen.insert(folder.clone());
        // Under an integrity manifest, a folder holding a file it does not cover (or a changed
        // one) is refused like a bundle with problems: the previous version stays in place.
        if let Some(verified) = state.integrity.get()
            && let Err(error) = verified.check_folder(&folder)
        {
            let error = format!("{}: integrity: {error}", folder.display());
            tracing::error!(%error, "bundle rejected; the previous version stays in place");
            state.metrics.reload("failed", trigger);
            report.failed.push(FailedBundle {
                path: folder.display().to_string(),
                errors: vec![error],
            });
            keep_previous(&previous, &folder, &mut bases);
            continue;
        }
        match load_folder(folder.clone()).await {
            Ok(snapshot) => {
                let tenant = snapshot.tenant().clone();
                if bases.contains_key(&tenant) {
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
                let snapshot = keep_if_same(&previous, snapshot);
                note(&mut report, state, trigger, &previous, &snapshot);
                bases.insert(
                    tenant,
                    Base {
                        snapshot,
                        source: Source::Folder(folder),
                    },
                );
            }
            Err(error) => {
                tracing::error!(folder = %folder.display(), problems = error.diagnostics.len(), "bundle rejected; the previous version stays in place\n{error}");
                state.metrics.reload("failed", trigger);
                report.failed.push(FailedBundle::from_error(
                    folder.display().to_string(),
                    &error,
                ));
                keep_previous(&previous, &folder, &mut bases);
            }
        }
    }
    // The built-in demo.
    for (tenant, base) in &previous {
        if base.source == Source::Embedded {
            bases.insert(tenant.clone(), base.clone());
        }
    }

    // The store: register folder tenants, load uploaded bundles of the others.
    match state.store.directory().await {
        Ok(directory) => {
            let known: BTreeSet<TenantId> =
                directory.iter().map(|entry| entry.tenant.clone()).collect();
            for (tenant, base) in &bases {
                if !known.contains(tenant) {
                    register(state, tenant, base.snapshot.settings().domain.as_deref()).await;
                }
            }
            for entry in &directory {
                if bases.contains_key(&entry.tenant) {
                    continue;
                }
                match load_from_store(state, &entry.tenant, previous.get(&entry.tenant)).await {
                    Ok(Some(base)) => {
                        note(&mut report, state, trigger, &previous, &base.snapshot);
                        bases.insert(entry.tenant.clone(), base);
                    }
                    Ok(None) => {}
                    Err(failure) => {
                        state.metrics.reload("failed", trigger);
                        report.failed.push(failure);
                        if let Some(base) = previous.get(&entry.tenant) {
                            bases.insert(entry.tenant.clone(), base.clone());
                        }
                    }
                }
            }
        }
        Err(error) => {
            // Fail closed on the store, but keep serving what was loaded from it.
            tracing::error!(%error, "cannot read the tenant directory; keeping bundles loaded from the store");
            for (tenant, base) in &previous {
                if matches!(base.source, Source::Store(_)) {
                    bases.entry(tenant.clone()).or_insert_with(|| base.clone());
                }
            }
        }
    }

    for tenant in previous.keys() {
        if !bases.contains_key(tenant) {
            report.removed.push(tenant.to_string());
            tracing::warn!(tenant = %tenant, "tenant removed (its folder or store entry is gone)");
        }
    }
    loaded.bases = bases;
    let _ = folders_seen;
    publish_all(state, &mut loaded).await;
    let policies = state.policies();
    state.metrics.loaded(policies.len(), report.failed.len());
    state
        .metrics
        .retain_tenants(|tenant| policies.get(tenant).is_some());
    report
}

/// Keeps the previous snapshot object when the revision did not change.
fn keep_if_same(previous: &BTreeMap<TenantId, Base>, snapshot: Snapshot) -> Arc<Snapshot> {
    match previous.get(snapshot.tenant()) {
        Some(base) if base.snapshot.revision() == snapshot.revision() => Arc::clone(&base.snapshot),
        _ => Arc::new(snapshot),
    }
}

fn note(
    report: &mut ReloadReport,
    state: &AppState,
    trigger: &'static str,
    previous: &BTreeMap<TenantId, Base>,
    snapshot: &Snapshot,
) {
    let entry = TenantRevision {
        tenant: snapshot.tenant().to_string(),
        revision: snapshot.revision().to_string(),
    };
    if previous
        .get(snapshot.tenant())
        .is_some_and(|base| base.snapshot.revision() == snapshot.revision())
    {
        state.metrics.reload("unchanged", trigger);
        report.unchanged.push(entry);
    } else {
        tracing::info!(tenant = %snapshot.tenant(), revision = %snapshot.revision(), "bundle loaded");
        for warning in snapshot.warnings() {
            tracing::warn!(
                tenant = %snapshot.tenant(),
                "{}: warning[{}]: {}",
                warning.location,
                warning.code.as_str(),
                warning.message
            );
        }
        state.metrics.reload("applied", trigger);
        report.applied.push(entry);
    }
}

async fn register(state: &AppState, tenant: &TenantId, domain: Option<&str>) {
    match state.store.tenant(tenant).create(domain).await {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(error) => {
            tracing::warn!(tenant = %tenant, %error, "cannot register the tenant in the store")
        }
    }
}

/// The tenant's active bundle from the store, compiled (or the previous base when it is the
/// same version). `None` when the tenant has no bundle in the store.
async fn load_from_store(
    state: &AppState,
    tenant: &TenantId,
    previous: Option<&Base>,
) -> Result<Option<Base>, FailedBundle> {
    let failure = |message: String| FailedBundle {
        path: format!("store:{tenant}"),
        errors: vec![message],
    };
    let record = match state.store.tenant(tenant).get().await {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(None),
        Err(error) => return Err(failure(error.to_string())),
    };
    let Some(version) = record.active_bundle else {
        return Ok(None);
    };
    if let Some(base) = previous
        && base.source == Source::Store(version)
    {
        return Ok(Some(base.clone()));
    }
    let bundle = match state.store.tenant(tenant).bundle(Some(version)).await {
        Ok(Some(bundle)) => bundle,
        Ok(None) => return Ok(None),
        Err(error) => return Err(failure(error.to_string())),
    };
    let files = bundle
        .files
        .into_iter()
        .map(|(name, text)| SourceFile {
            path: PathBuf::from(tenant.as_str()).join(name),
            text,
        })
        .collect();
    match compile_in_background(PathBuf::from(tenant.as_str()), files).await {
        Ok(snapshot) if snapshot.tenant() == tenant => Ok(Some(Base {
            snapshot: Arc::new(snapshot),
            source: Source::Store(version),
        })),
        Ok(snapshot) => Err(failure(format!(
            "the stored bundle names tenant `{}`",
            snapshot.tenant()
        ))),
        Err(error) => Err(FailedBundle::from_error(format!("store:{tenant}"), &error)),
    }
}

/// Builds the snapshot decisions use from a base, the store's run-time data and the tenant's
/// relation index.
async fn overlay(
    state: &AppState,
    indexes: &mut BTreeMap<TenantId, crate::snapshots::loaded::TenantIndex>,
    base: &Base,
) -> (Arc<Snapshot>, Option<i64>) {
    let (snapshot, revision) = overlay_runtime(state, base).await;
    if snapshot.model().is_none() {
        indexes.remove(snapshot.tenant());
        return (snapshot, revision);
    }
    let snapshot = crate::snapshots::relations::attach(state, indexes, snapshot, revision).await;
    (snapshot, revision)
}

/// An approved access request as the engine takes it.
fn runtime_grant(request: &portcullis_store::AccessRequest) -> RuntimeGrant {
    let at = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap_or(jiff::Timestamp::MIN);
    RuntimeGrant {
        id: request.id.clone(),
        principal: request.requester.clone(),
        action: request.action.clone(),
        resource: request.resource.clone(),
        not_before: at(request.not_before_us),
        not_after: at(request.not_after_us),
        cert: request.cert.clone(),
        networks: request.networks.clone(),
        approvers: request
            .approvals
            .iter()
            .map(|approval| approval.approver.clone())
            .collect(),
    }
}

/// The base with the store's run-time data laid over it.
async fn overlay_runtime(state: &AppState, base: &Base) -> (Arc<Snapshot>, Option<i64>) {
    let tenant = base.snapshot.tenant();
    let runtime = match state.store.tenant(tenant).runtime().await {
        Ok(runtime) => runtime,
        Err(StoreError::NotFound(_)) => return (Arc::clone(&base.snapshot), None),
        Err(error) => {
            tracing::error!(tenant = %tenant, %error, "cannot read run-time data; serving the bundle alone");
            return (Arc::clone(&base.snapshot), None);
        }
    };
    let sensitive = &base.snapshot.settings().sensitive_attributes;
    let principals = runtime
        .principals
        .into_iter()
        .map(|principal| RuntimePrincipal {
            attributes: principal
                .attributes
                .into_iter()
                .filter_map(|(key, value)| {
                    if !sensitive.contains(&key) {
                        return Some((key, value));
                    }
                    match decrypt_attribute(&state.keyring, tenant, &key, &value) {
                        Ok(plain) => Some((key, plain)),
                        Err(message) => {
                            // Fail closed: an attribute that cannot be read is absent.
                            tracing::error!(tenant = %tenant, principal = %principal.id, attribute = %key, %message, "cannot decrypt an attribute");
                            None
                        }
                    }
                })
                .collect(),
            id: principal.id,
            kind: Some(principal.kind),
        })
        .collect();
    let data = RuntimeData {
        revision: u64::try_from(runtime.tenant.data_revision).unwrap_or(0),
        suspended: runtime.tenant.status == TenantStatus::Suspended,
        principals,
        assignments: runtime
            .assignments
            .into_iter()
            .map(|a| RuntimeAssignment {
                principal: a.principal,
                role: a.role,
                resource: a.resource,
            })
            .collect(),
        grants: runtime.grants.iter().map(runtime_grant).collect(),
    };
    let (snapshot, notes) = base.snapshot.with_runtime(&data);
    for note in notes {
        tracing::warn!(tenant = %tenant, "{note}");
    }
    (Arc::new(snapshot), Some(runtime.tenant.data_revision))
}

async fn publish_all(state: &AppState, loaded: &mut Loaded) {
    let mut set = PolicySet::new();
    let mut revisions = BTreeMap::new();
    let Loaded {
        bases, relations, ..
    } = &mut *loaded;
    relations.retain(|tenant, _| bases.contains_key(tenant));
    for (tenant, base) in bases.iter() {
        let (snapshot, revision) = overlay(state, relations, base).await;
        if let Some(revision) = revision {
            revisions.insert(tenant.clone(), revision);
        }
        set.insert(snapshot);
    }
    loaded.data_revisions = revisions;
    state.publish(set);
}

/// Brings one tenant up to date with the store (after a change notice or an admin write).
pub async fn refresh_tenant(state: &AppState, tenant: &TenantId) {
    let mut loaded = state.loaded.lock().await;
    let previous = loaded.bases.get(tenant).cloned();
    let from_folder = matches!(
        previous.as_ref().map(|b| &b.source),
        Some(Source::Folder(_)) | Some(Source::Embedded)
    );
    let base = if from_folder {
        previous
    } else {
        match load_from_store(state, tenant, previous.as_ref()).await {
            Ok(base) => base,
            Err(failure) => {
                tracing::error!(tenant = %tenant, errors = ?failure.errors, "stored bundle rejected; the previous version stays in place");
                state.metrics.reload("failed", "store");
                previous
            }
        }
    };
    let mut set = (*state.policies()).clone();
    match base {
        Some(base) => {
            let (snapshot, revision) = overlay(state, &mut loaded.relations, &base).await;
            match revision {
                Some(revision) => {
                    loaded.data_revisions.insert(tenant.clone(), revision);
                }
                None => {
                    loaded.data_revisions.remove(tenant);
                }
            }
            set.insert(snapshot);
            loaded.bases.insert(tenant.clone(), base);
        }
        None => {
            set.remove(tenant);
            loaded.bases.remove(tenant);
            loaded.data_revisions.remove(tenant);
            loaded.relations.remove(tenant);
        }
    }
    state.publish(set);
}

/// Compares every tenant's data revision with the store and refreshes those that differ
/// (the fallback when notifications were missed, and how tenants created elsewhere appear).
pub async fn poll(state: &AppState) {
    let directory = match state.store.directory().await {
        Ok(directory) => directory,
        Err(error) => {
            tracing::warn!(%error, "cannot poll the tenant directory");
            return;
        }
    };
    let (stale, gone): (Vec<TenantId>, Vec<TenantId>) = {
        let loaded = state.loaded.lock().await;
        let listed: BTreeSet<&TenantId> = directory.iter().map(|e| &e.tenant).collect();
        let stale = directory
            .iter()
            .filter(|entry| loaded.data_revisions.get(&entry.tenant) != Some(&entry.data_revision))
            .map(|entry| entry.tenant.clone())
            .collect();
        let gone = loaded
            .bases
            .iter()
            .filter(|(tenant, base)| {
                matches!(base.source, Source::Store(_)) && !listed.contains(tenant)
            })
            .map(|(tenant, _)| tenant.clone())
            .collect();
        (stale, gone)
    };
    for tenant in stale.iter().chain(&gone) {
        refresh_tenant(state, tenant).await;
    }
}

/// Installs the demo bundles built into the binary.
pub async fn install_embedded(
    state: &AppState,
    bundles: &[(String, Vec<SourceFile>)],
) -> Result<(), LoadError> {
    let mut loaded = state.loaded.lock().await;
    for (name, files) in bundles {
        let snapshot = compile_in_background(PathBuf::from(name), files.clone()).await?;
        register(
            state,
            snapshot.tenant(),
            snapshot.settings().domain.as_deref(),
        )
        .await;
        loaded.bases.insert(
            snapshot.tenant().clone(),
            Base {
                snapshot: Arc::new(snapshot),
                source: Source::Embedded,
            },
        );
    }
    publish_all(state, &mut loaded).await;
    state.metrics.loaded(state.policies().len(), 0);
    Ok(())
}

/// Why an upload or rollback was refused.
#[derive(Debug)]
pub enum UploadError {
    /// The bundle has problems.
    Invalid(LoadError),
    /// The bundle's tenant.yaml names another tenant.
    TenantMismatch(String),
    /// There is no such bundle version.
    NoVersion(i64),
    /// The store refused.
    Store(StoreError),
    /// The bundle was recorded in the store's history as `version`, but writing the tenant's
    /// bundle folder failed: the tenant keeps deciding on its previous bundle.
    Write {
        /// The history version the bundle was recorded as.
        version: i64,
        /// What went wrong.
        message: String,
    },
}

/// Validates an uploaded bundle, records it in the store's history and makes it the tenant's
/// bundle: a folder-managed tenant's folder is rewritten too. Nothing changes unless the
/// bundle is valid.
pub async fn install_upload(
    state: &AppState,
    tenant: &TenantId,
    files: Vec<SourceFile>,
    uploader: &str,
) -> Result<Arc<Snapshot>, UploadError> {
    let snapshot = compile_in_background(PathBuf::from(tenant.as_str()), files.clone())
        .await
        .map_err(UploadError::Invalid)?;
    if snapshot.tenant() != tenant {
        return Err(UploadError::TenantMismatch(snapshot.tenant().to_string()));
    }
    let by_name: BTreeMap<String, String> = files
        .iter()
        .filter_map(|f| {
            f.path
                .file_name()
                .and_then(|n| n.to_str())
                .map(|n| (n.to_owned(), f.text.clone()))
        })
        .collect();
    register(state, tenant, snapshot.settings().domain.as_deref()).await;
    let version = state
        .store
        .tenant(tenant)
        .put_bundle(&by_name, snapshot.revision(), uploader)
        .await
        .map_err(UploadError::Store)?;
    {
        let mut loaded = state.loaded.lock().await;
        let folder = match loaded.bases.get(tenant).map(|b| b.source.clone()) {
            Some(Source::Folder(folder)) => Some(folder),
            _ => None,
        };
        let source = match folder {
            Some(folder) => {
                write_folder_in_background(folder.clone(), by_name)
                    .await
                    .map_err(|message| UploadError::Write {
                        version: version.version,
                        message,
                    })?;
                Source::Folder(folder)
            }
            None => Source::Store(version.version),
        };
        loaded.bases.insert(
            tenant.clone(),
            Base {
                snapshot: Arc::new(snapshot),
                source,
            },
        );
    }
    state.metrics.reload("applied", "upload");
    refresh_tenant(state, tenant).await;
    tracing::info!(tenant = %tenant, version = version.version, "bundle uploaded");
    let policies = state.policies();
    policies.get(tenant).cloned().ok_or_else(|| {
        UploadError::Store(StoreError::NotFound(format!("tenant `{tenant}` vanished")))
    })
}

/// Makes an earlier bundle version the tenant's bundle again.
pub async fn rollback(
    state: &AppState,
    tenant: &TenantId,
    version: i64,
    by: &str,
) -> Result<Arc<Snapshot>, UploadError> {
    let stored = state
        .store
        .tenant(tenant)
        .bundle(Some(version))
        .await
        .map_err(UploadError::Store)?
        .ok_or(UploadError::NoVersion(version))?;
    let files: Vec<SourceFile> = stored
        .files
        .into_iter()
        .map(|(name, text)| SourceFile {
            path: PathBuf::from(tenant.as_str()).join(name),
            text,
        })
        .collect();
    let folder_managed = matches!(
        state
            .loaded
            .lock()
            .await
            .bases
            .get(tenant)
            .map(|b| &b.source),
        Some(Source::Folder(_))
    );
    if folder_managed {
        // Rewrite the folder (recording the rollback as a new version in the history).
        return install_upload(state, tenant, files, by).await;
    }
    // The version compiled when it was uploaded; it must still compile (and still name this
    // tenant) under this build before it is made active, or the tenant would be left on a
    // bundle no node can load.
    let snapshot = compile_in_background(PathBuf::from(tenant.as_str()), files)
        .await
        .map_err(UploadError::Invalid)?;
    if snapshot.tenant() != tenant {
        return Err(UploadError::TenantMismatch(snapshot.tenant().to_string()));
    }
    state
        .store
        .tenant(tenant)
        .activate_bundle(version)
        .await
        .map_err(UploadError::Store)?;
    refresh_tenant(state, tenant).await;
    state
        .policies()
        .get(tenant)
        .cloned()
        .ok_or(UploadError::NoVersion(version))
}

async fn write_folder_in_background(
    folder: PathBuf,
    files: BTreeMap<String, String>,
) -> Result<(), String> {
    let shown = folder.display().to_string();
    tokio::task::spawn_blocking(move || write_folder(&folder, &files))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{shown}: {e}"))
}

/// Replaces the policy files of `folder`: writes a sibling folder, then swaps the two with
/// renames, so readers see the old files or the new ones.
fn write_folder(folder: &Path, files: &BTreeMap<String, String>) -> std::io::Result<()> {
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
    for (file_name, text) in files {
        std::fs::write(staging.join(file_name), text)?;
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
