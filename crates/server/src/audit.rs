//! The service's audit trail (C6): every decision and every administrative change, through
//! `portcullis-audit`.
//!
//! Decisions are recorded on the one decision path ([`AppState::decide_with`]): denies and
//! errors always, allows as the tenant's `sample_allows` says. They go through the audit log's
//! bounded buffer; when it is full, the tenant's policy applies — `deny` refuses at once, `block`
//! waits up to its limit — and a decision whose record was not accepted is turned into a deny
//! (fail closed), so no decision is answered without its record. Administrative changes are
//! appended durably (fsynced) before the admin API answers.
//!
//! Where: segment files under `audit.dir` (`backend = "files"`, the default), or the store's
//! `audit_log` table (`backend = "store"`, see [`crate::audit_store`]); the chain, checkpoints and
//! verification are the same either way.
//!
//! Keys: checkpoints are signed with an Ed25519 key read from `audit.signing_key_file` (generated
//! on first start next to the data when not configured); pseudonyms are keyed by a secret from
//! `audit.pseudonym_secret_env` or a generated file. Neither lives in the log.
//!
//! [`AppState::decide_with`]: crate::state::AppState::decide_with

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis_audit::{
    AuditConfig, AuditError, AuditLog, Edge, FullPolicy, Outcome, Receipt, Record, SigningKey,
    StreamOpener, TenantPolicy, VerifyingKey,
};
use portcullis_core::{Decision, Effect, Request};
use portcullis_store::StoreConfig;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::audit_store::StoreTrail;

/// The `[audit]` section of the configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Record anything at all (default true).
    pub enabled: Option<bool>,
    /// Where the trail is kept: `files` (default) or `store` (the `audit_log` table).
    pub backend: Option<String>,
    /// Root folder of the log (default `<data_dir>/audit`; files only).
    pub dir: Option<PathBuf>,
    /// Ed25519 signing key of checkpoints (default `<data_dir>/audit-signing.key`, generated).
    pub signing_key_file: Option<PathBuf>,
    /// Environment variable holding the pseudonym master secret (default: a generated file
    /// `<data_dir>/audit-pseudonym.key`).
    pub pseudonym_secret_env: Option<String>,
    /// Decision records the buffer holds (default 65,536).
    pub capacity: Option<usize>,
    /// Group-commit interval in milliseconds (default 10).
    pub flush_interval_ms: Option<u64>,
    /// Checkpoints, rotation, compression and index (see the README).
    #[serde(default)]
    pub segments: Option<portcullis_audit::StoreOptions>,
    /// Masking, sampling and full-buffer policy of tenants without their own.
    #[serde(default)]
    pub default: Option<TenantPolicy>,
    /// Per-tenant policies.
    #[serde(default)]
    pub tenants: HashMap<String, TenantPolicy>,
}

/// Where the trail is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditBackend {
    /// Segment files under `audit.dir`.
    Files,
    /// The store's `audit_log` table.
    Store,
}

/// Validated audit settings.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Where the trail is kept.
    pub backend: AuditBackend,
    /// The log's configuration (`root` is used by the files backend only).
    pub config: AuditConfig,
    /// Where the signing key is (or will be generated).
    pub signing_key_file: PathBuf,
    /// The pseudonym secret from the environment, if configured.
    pub pseudonym_secret: Option<String>,
    /// Where a generated pseudonym secret is kept.
    pub pseudonym_file: PathBuf,
}

impl RawAudit {
    /// Validated settings (`None` when auditing is off); `resolve` makes paths absolute.
    pub fn settings(
        self,
        data_dir: &Path,
        resolve: &dyn Fn(&Path) -> PathBuf,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<AuditSettings>, (String, String)> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let backend = match self.backend.as_deref() {
            None | Some("files") => AuditBackend::Files,
            Some("store") => AuditBackend::Store,
            Some(other) => {
                return Err((
                    "audit.backend".into(),
                    format!("`{other}`: use files or store"),
                ));
            }
        };
        if backend == AuditBackend::Store && self.dir.is_some() {
            return Err((
                "audit.dir".into(),
                "applies to backend = \"files\" only; with \"store\" the trail is in the store's audit_log table".into(),
            ));
        }
        let root = self
            .dir
            .as_deref()
            .map_or_else(|| data_dir.join("audit"), resolve);
        let mut config = AuditConfig::new(root);
        if let Some(capacity) = self.capacity {
            if capacity == 0 {
                return Err(("audit.capacity".into(), "must be at least 1".into()));
            }
            config.capacity = capacity;
        }
        if let Some(interval) = self.flush_interval_ms {
            if interval == 0 || interval > 10_000 {
                return Err((
                    "audit.flush_interval_ms".into(),
                    "must be 1 to 10000".into(),
                ));
            }
            config.flush_interval_ms = interval;
        }
        if let Some(segments) = self.segments {
            config.store = segments;
        }
        if let Some(default) = self.default {
            config.default_policy = default;
        }
        for (tenant, policy) in self.tenants {
            if portcullis_core::TenantId::new(&tenant).is_err() {
                return Err((
                    format!("audit.tenants.{tenant}"),
                    "is not a valid tenant id".into(),
                ));
            }
            config.tenants.insert(tenant, policy);
        }
        for (tenant, policy) in config
            .tenants
            .iter()
            .chain([(&"default".to_owned(), &config.default_policy)])
        {
            if !(0.0..=1.0).contains(&policy.sample_allows) {
                return Err((
                    format!("audit.tenants.{tenant}.sample_allows"),
                    "must be within 0.0 to 1.0".into(),
                ));
            }
            portcullis_audit::Masker::new(&policy.masking, [0; 32])
                .map_err(|e| (format!("audit.tenants.{tenant}.masking"), e.to_string()))?;
        }
        let pseudonym_secret = match self.pseudonym_secret_env {
            Some(variable) => match env(&variable) {
                Some(secret) if secret.len() >= 16 => Some(secret),
                _ => {
                    return Err((
                        "audit.pseudonym_secret_env".into(),
                        format!("environment variable {variable} must hold at least 16 bytes"),
                    ));
                }
            },
            None => None,
        };
        Ok(Some(AuditSettings {
            backend,
            config,
            signing_key_file: self
                .signing_key_file
                .as_deref()
                .map_or_else(|| data_dir.join("audit-signing.key"), resolve),
            pseudonym_secret,
            pseudonym_file: data_dir.join("audit-pseudonym.key"),
        }))
    }
}

/// The running audit trail.
#[derive(Debug)]
pub struct Auditor {
    log: AuditLog,
    /// The files' root folder; `None` when the trail is in the store.
    root: Option<PathBuf>,
    verifying: VerifyingKey,
}

fn read_or_create_secret(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 16 => Ok(bytes),
        Ok(_) => Err(format!("{} is shorter than 16 bytes", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
            let text = hex::encode(secret);
            crate::state::write_private(path, &text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(text.into_bytes())
        }
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

impl Auditor {
    /// Opens the log (recovering it after a crash) with its keys; with the store backend, on
    /// the store `store` describes (through a pool of its own, see [`crate::audit_store`]).
    pub async fn open(settings: &AuditSettings, store: &StoreConfig) -> Result<Auditor, String> {
        let key = if settings.signing_key_file.exists() {
            SigningKey::load(&settings.signing_key_file).map_err(|e| e.to_string())?
        } else {
            if let Some(parent) = settings.signing_key_file.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            let key = portcullis_audit::generate_key().map_err(|e| e.to_string())?;
            key.save(&settings.signing_key_file)
                .map_err(|e| e.to_string())?;
            tracing::warn!(path = %settings.signing_key_file.display(), "generated an audit signing key; keep it away from the log, and give auditors its public half");
            key
        };
        let verifying = key.verifying_key();
        let public = settings.signing_key_file.with_extension("pub");
        if !public.exists() {
            verifying.save(&public).map_err(|e| e.to_string())?;
        }
        let secret = match &settings.pseudonym_secret {
            Some(secret) => secret.clone().into_bytes(),
            None => read_or_create_secret(&settings.pseudonym_file)?,
        };
        let (log, root) = match settings.backend {
            AuditBackend::Files => (
                AuditLog::open(settings.config.clone(), key, &secret).map_err(|e| e.to_string())?,
                Some(settings.config.root.clone()),
            ),
            AuditBackend::Store => {
                let trail = StoreTrail::open(store).await?;
                let opener = StreamOpener(move |tenant: &str| trail.sink(tenant));
                (
                    AuditLog::open_with(settings.config.clone(), key, &secret, opener)
                        .map_err(|e| e.to_string())?,
                    None,
                )
            }
        };
        Ok(Auditor {
            log,
            root,
            verifying,
        })
    }

    /// The log's root folder; `None` when the trail is kept in the store.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The key that verifies checkpoints.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// Decision records waiting to be written, and the buffer's capacity.
    pub fn buffer(&self) -> (usize, usize) {
        (self.log.buffered(), self.log.capacity())
    }

    /// Records a decision. `Err` means the record was not accepted (the buffer stayed full
    /// under the tenant's policy): the caller must deny.
    pub fn decision(
        &self,
        request: &Request,
        decision: &Decision,
        edge: &str,
        user_agent: Option<&str>,
    ) -> Result<(), AuditError> {
        let outcome = match (decision.decision, decision.errors.is_empty()) {
            (Effect::Allow, _) => Outcome::Allow,
            (Effect::Deny, true) => Outcome::Deny,
            (Effect::Deny, false) => Outcome::Error,
        };
        let mut statements: Vec<String> =
            decision.reasons.iter().map(|r| r.id.to_string()).collect();
        statements.extend(decision.forbids.iter().map(ToString::to_string));
        let failed: Vec<String> = decision
            .strategy
            .as_ref()
            .filter(|s| !s.held)
            .map(|s| {
                s.failing
                    .iter()
                    .chain(&s.unknown)
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let kind = request.resource.kind.as_str();
        let id = request.resource.id.as_str();
        let mut resource = String::with_capacity(kind.len() + 1 + id.len());
        resource.push_str(kind);
        resource.push(':');
        resource.push_str(id);
        let mut builder = Record::decision(
            request.tenant.as_str(),
            request.principal.id.as_str(),
            request.action.as_str(),
            resource,
            outcome,
        )
        .edge(edge_of(edge))
        .trace_id(decision.trace_id.clone())
        .statements(statements)
        .failed_factors(failed)
        .policy_revision(decision.revision.bundle.to_string());
        if let Some(ip) = request.context.ip {
            builder = builder.source(address_text(ip));
        }
        if let Some(agent) = user_agent {
            builder = builder.user_agent(agent);
        }
        let data = match (decision.revision.data, decision.revision.tuples) {
            (Some(data), Some(tuples)) => Some(format!("data:{data},tuples:{tuples}")),
            (Some(data), None) => Some(format!("data:{data}")),
            (None, Some(tuples)) => Some(format!("tuples:{tuples}")),
            (None, None) => None,
        };
        if let Some(data) = data {
            builder = builder.data_revision(data);
        }
        if !decision.errors.is_empty() {
            let errors: Vec<Value> = decision
                .errors
                .iter()
                .map(|e| Value::String(format!("{}: {}", e.statement, e.message)))
                .collect();
            builder = builder.detail("errors", Value::Array(errors));
        }
        let prepared = self.log.prepare(builder.build())?;
        match self.log.try_queue(&prepared) {
            Err(AuditError::BufferFull { .. }) => {}
            other => return other,
        }
        // Full: block as long as the tenant's policy allows, then give up (the caller denies).
        let FullPolicy::Block { max_wait_ms } = *prepared.on_full() else {
            return self.log.try_queue(&prepared);
        };
        let deadline = Instant::now() + Duration::from_millis(max_wait_ms);
        loop {
            std::thread::sleep(Duration::from_millis(1));
            match self.log.try_queue(&prepared) {
                Err(AuditError::BufferFull { .. }) if Instant::now() < deadline => continue,
                other => return other,
            }
        }
    }

    /// Records an administrative change durably; returns once it is on disk.
    pub async fn change(
        &self,
        tenant: &str,
        actor: &str,
        action: &str,
        resource: &str,
        ok: bool,
        details: Map<String, Value>,
    ) -> Result<Receipt, AuditError> {
        let mut builder = Record::change(
            tenant,
            actor,
            action,
            resource,
            if ok { Outcome::Ok } else { Outcome::Failed },
        );
        for (key, value) in details {
            builder = builder.detail(key, value);
        }
        self.log.append_durable(builder.build()).await
    }

    /// Writes what is buffered.
    pub async fn flush(&self) -> Result<(), AuditError> {
        self.log.flush().await
    }

    /// Flushes and seals every tenant's log with a final checkpoint.
    pub fn shutdown(&self) -> Result<(), AuditError> {
        self.log.shutdown()
    }
}

/// An address as text; IPv4 without the formatting machinery (every decision that has an
/// address records it).
fn address_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (index, octet) in v4.octets().into_iter().enumerate() {
        if index > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// The audit edge of a decision edge's name.
fn edge_of(edge: &str) -> Edge {
    match edge {
        "grpc" | "envoy" | "envoy-grpc" => Edge::Grpc,
        "admin" => Edge::Admin,
        "cli" => Edge::Cli,
        "http" | "authzen" => Edge::Http,
        _ => Edge::ForwardAuth,
    }
}

#[cfg(test)]
mod tests {
    use super::address_text;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn address_text_matches_display(a: u8, b: u8, c: u8, d: u8, v6: u128) {
            let v4 = std::net::IpAddr::from([a, b, c, d]);
            prop_assert_eq!(address_text(v4), v4.to_string());
            let v6 = std::net::IpAddr::from(std::net::Ipv6Addr::from(v6));
            prop_assert_eq!(address_text(v6), v6.to_string());
        }
    }
}
