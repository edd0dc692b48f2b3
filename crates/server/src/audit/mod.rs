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

pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_audit::{
    AuditConfig, AuditError, AuditLog, Edge, FullPolicy, Kind, Outcome, PreparedDecision, Receipt,
    Record, SigningKey, TenantPolicy, VerifyingKey,
};
use portcullis_core::{Cause, Decision, Effect, Request};
use portcullis_store::StoreConfig;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::audit::store::{StoreOpener, StoreTrail};

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
            crate::files::write_private(path, &text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(text.into_bytes())
        }
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

impl Auditor {
    /// Opens the log with its keys; with the store backend, on the store `store` describes
    /// (through a pool of its own, see [`crate::audit_store`]). Every stored tenant log is
    /// recovered before this returns: records a crash left after a log's last checkpoint are
    /// sealed with one, whether or not the tenant is written again (for the store backend,
    /// the tenants of the store's directory; see [`Auditor::recover`] for the others).
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
                (
                    AuditLog::open_with(
                        settings.config.clone(),
                        key,
                        &secret,
                        StoreOpener::new(trail),
                    )
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

    /// Records a decision if it can be done at once: the record is queued (or sampled out),
    /// or refused — the caller must then deny —, or, the buffer being full under the tenant's
    /// `block` policy, handed back to wait for room with
    /// [`wait_for_room`](Auditor::wait_for_room), asynchronously and never by blocking the
    /// thread, up to the policy's `max_wait_ms`.
    ///
    /// `known_tenant` is false for a request naming a tenant that is not loaded: its record
    /// goes to the `system` tenant's log (naming the requested tenant in its details), so
    /// that callers cannot create a log for every tenant id they invent.
    pub fn decision_now(
        &self,
        request: &Request,
        decision: &Decision,
        edge: &str,
        user_agent: Option<&str>,
        request_id: Option<&str>,
        known_tenant: bool,
    ) -> Result<(), NotQueued> {
        let prepared = self
            .prepare_decision(
                request,
                decision,
                edge,
                (user_agent, request_id),
                known_tenant,
            )
            .map_err(NotQueued::Refused)?;
        match self.log.try_queue(&prepared) {
            Err(AuditError::BufferFull { .. }) => {}
            other => return other.map_err(NotQueued::Refused),
        }
        match *prepared.on_full() {
            FullPolicy::Block { .. } => Err(NotQueued::Full(Box::new(WaitingRecord(prepared)))),
            FullPolicy::Deny => self.log.try_queue(&prepared).map_err(NotQueued::Refused),
        }
    }

    /// Waits for room for a record the full buffer did not take, as long as the tenant's
    /// policy allows, then gives up (the caller denies).
    pub async fn wait_for_room(&self, waiting: Box<WaitingRecord>) -> Result<(), AuditError> {
        let prepared = waiting.0;
        let FullPolicy::Block { max_wait_ms } = *prepared.on_full() else {
            return self.log.try_queue(&prepared);
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(max_wait_ms);
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            match self.log.try_queue(&prepared) {
                Err(AuditError::BufferFull { .. }) if tokio::time::Instant::now() < deadline => {
                    continue;
                }
                other => return other,
            }
        }
    }

    /// Masks and encodes a decision's record on the caller's thread, reusing the thread's
    /// record and its allocations.
    fn prepare_decision(
        &self,
        request: &Request,
        decision: &Decision,
        edge: &str,
        (user_agent, request_id): (Option<&str>, Option<&str>),
        known_tenant: bool,
    ) -> Result<PreparedDecision, AuditError> {
        let outcome = match (decision.decision, decision.errors.is_empty()) {
            (Effect::Allow, _) => Outcome::Allow,
            (Effect::Deny, true) => Outcome::Deny,
            (Effect::Deny, false) => Outcome::Error,
        };
        // Every decision fills the same per-thread record, so its strings keep their
        // allocations from one decision to the next.
        let mut record = DECISION_RECORD
            .try_with(|slot| slot.borrow_mut().take())
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                Record::decision(
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    outcome,
                )
                .build()
            });
        fill_decision(&mut record, request, decision, outcome, edge, user_agent);
        set_opt(&mut record.request_id, request_id);
        // A decision made without any policy names its cause: nothing else in the record does.
        if matches!(
            decision.cause,
            Cause::NoRoute
                | Cause::TenantUnknown
                | Cause::TenantSuspended
                | Cause::Refused
                | Cause::Passed
        ) && let Ok(cause) = serde_json::to_value(decision.cause)
        {
            record.details.insert("cause".to_owned(), cause);
        }
        if !known_tenant {
            set_text(&mut record.tenant, UNKNOWN_TENANTS_LOG);
            record.details.insert(
                "tenant".to_owned(),
                Value::String(request.tenant.as_str().to_owned()),
            );
        }
        let prepared = self.log.prepare_in_place(&mut record);
        let _ = DECISION_RECORD.try_with(|slot| *slot.borrow_mut() = Some(record));
        prepared
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

    /// Recovers the stored logs of `tenants` that are not open yet (a crash's unsealed tail is
    /// sealed now, and [`shutdown`](Auditor::shutdown) closes them with the others). The
    /// service names the tenants it serves before it shuts down: with the store backend, a
    /// tenant that is not in the store's directory is not found at start.
    pub async fn recover(&self, tenants: Vec<String>) -> Result<(), AuditError> {
        self.log.recover(tenants).await
    }

    /// Flushes and seals every open tenant log that does not end with a checkpoint.
    pub fn shutdown(&self) -> Result<(), AuditError> {
        self.log.shutdown()
    }
}

/// Why [`Auditor::decision_now`] did not queue a record.
#[derive(Debug)]
pub enum NotQueued {
    /// The log refused it: the caller must deny.
    Refused(AuditError),
    /// The buffer is full and the tenant's policy says to wait for room.
    Full(Box<WaitingRecord>),
}

/// A decision record waiting for room in the audit buffer.
#[derive(Debug)]
pub struct WaitingRecord(PreparedDecision);

thread_local! {
    /// The record [`Auditor::decision_now`] fills on this thread.
    static DECISION_RECORD: std::cell::RefCell<Option<Record>> = const { std::cell::RefCell::new(None) };
}

/// Sets every field of `record` for one decision (masking changes fields in place, so nothing
/// of the previous decision may survive), reusing the record's allocations.
fn fill_decision(
    record: &mut Record,
    request: &Request,
    decision: &Decision,
    outcome: Outcome,
    edge: &str,
    user_agent: Option<&str>,
) {
    record.kind = Kind::Decision;
    record.restamp();
    set_text(&mut record.tenant, request.tenant.as_str());
    set_opt(&mut record.trace_id, Some(&decision.trace_id));
    set_text(&mut record.actor, &request.principal.id);
    record.edge = edge_of(edge);
    set_text(&mut record.action, &request.action);
    let resource = &mut record.resource;
    resource.clear();
    resource.push_str(&request.resource.kind);
    resource.push(':');
    resource.push_str(&request.resource.id);
    record.outcome = outcome;
    set_list(
        &mut record.statements,
        decision
            .reasons
            .iter()
            .map(|reason| &*reason.id)
            .chain(decision.forbids.iter().map(|id| &**id)),
    );
    // A temporary grant is named as such, so that its use is never sampled out.
    for (statement, reason) in record.statements.iter_mut().zip(&decision.reasons) {
        if reason.kind == portcullis_core::ReasonKind::Grant {
            statement.insert_str(0, portcullis_audit::writer::GRANT_STATEMENT);
        }
    }
    let failing = decision.strategy.as_ref().filter(|strategy| !strategy.held);
    set_list(
        &mut record.failed_factors,
        failing
            .into_iter()
            .flat_map(|strategy| strategy.failing.iter().chain(&strategy.unknown))
            .map(|factor| &**factor),
    );
    match request.context.ip {
        Some(ip) => {
            let source = record.source.get_or_insert_with(String::new);
            source.clear();
            push_address(source, ip);
        }
        None => record.source = None,
    }
    set_opt(&mut record.user_agent, user_agent);
    set_opt(&mut record.policy_revision, Some(&decision.revision.bundle));
    record.data_revision = match (decision.revision.data, decision.revision.tuples) {
        (Some(data), Some(tuples)) => Some(format!("data:{data},tuples:{tuples}")),
        (Some(data), None) => Some(format!("data:{data}")),
        (None, Some(tuples)) => Some(format!("tuples:{tuples}")),
        (None, None) => None,
    };
    record.details.clear();
    if !decision.errors.is_empty() {
        let errors: Vec<Value> = decision
            .errors
            .iter()
            .map(|e| Value::String(format!("{}: {}", e.statement, e.message)))
            .collect();
        record
            .details
            .insert("errors".to_owned(), Value::Array(errors));
    }
}

fn set_text(field: &mut String, value: &str) {
    field.clear();
    field.push_str(value);
}

fn set_opt(field: &mut Option<String>, value: Option<&str>) {
    match value {
        Some(value) => set_text(field.get_or_insert_with(String::new), value),
        None => *field = None,
    }
}

/// Replaces a list's items, reusing the strings already there.
fn set_list<'a>(field: &mut Vec<String>, values: impl Iterator<Item = &'a str>) {
    let mut count = 0;
    for value in values {
        match field.get_mut(count) {
            Some(slot) => set_text(slot, value),
            None => field.push(value.to_owned()),
        }
        count += 1;
    }
    field.truncate(count);
}

/// Appends an address as text; IPv4 without the formatting machinery.
fn push_address(text: &mut String, ip: std::net::IpAddr) {
    let std::net::IpAddr::V4(v4) = ip else {
        use std::fmt::Write as _;
        let _ = write!(text, "{ip}");
        return;
    };
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
}

/// The tenant whose trail holds what concerns the node rather than one tenant (administrative
/// calls such as reload, changes of the supply-chain signal) and whose bundle authorizes admin
/// calls.
pub const SYSTEM_TENANT: &str = "system";

/// The log that holds decisions on tenants that are not loaded.
const UNKNOWN_TENANTS_LOG: &str = SYSTEM_TENANT;

/// The audit edge of a decision edge's name.
fn edge_of(edge: &str) -> Edge {
    match edge {
        "grpc" | "envoy" | "envoy-grpc" => Edge::Grpc,
        "admin" => Edge::Admin,
        "gateway" => Edge::Gateway,
        "cli" => Edge::Cli,
        "http" | "authzen" | "relations" => Edge::Http,
        _ => Edge::ForwardAuth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn address_text(ip: std::net::IpAddr) -> String {
        let mut text = String::new();
        push_address(&mut text, ip);
        text
    }

    proptest! {
        #[test]
        fn address_text_matches_display(a: u8, b: u8, c: u8, d: u8, v6: u128) {
            let v4 = std::net::IpAddr::from([a, b, c, d]);
            prop_assert_eq!(address_text(v4), v4.to_string());
            let v6 = std::net::IpAddr::from(std::net::Ipv6Addr::from(v6));
            prop_assert_eq!(address_text(v6), v6.to_string());
        }
    }

    fn full() -> (Request, Decision) {
        let request = serde_json::from_value(json!({
            "tenant": "acme",
            "principal": {"id": "bob", "roles": ["viewer"]},
            "action": "app:logs.download",
            "resource": {"type": "app", "id": "payments"},
            "context": {"ip": "172.16.3.4"},
            "trace_id": "t1"
        }))
        .unwrap();
        let decision = serde_json::from_value(json!({
            "decision": "deny",
            "cause": "error",
            "reasons": [{"kind": "role", "id": "viewer"}, {"kind": "rule", "id": "r1"}],
            "strategy": {"id": "ops-read", "held": false, "failing": ["office"], "unknown": ["mfa"]},
            "forbids": ["f1"],
            "errors": [{"kind": "cel", "statement": "r2", "message": "no such key"}],
            "revision": {"bundle": "sha256:ab", "data": 3, "tuples": 4},
            "trace_id": "t1"
        }))
        .unwrap();
        (request, decision)
    }

    fn bare() -> (Request, Decision) {
        let request = serde_json::from_value(json!({
            "tenant": "beta",
            "principal": {"id": "al"},
            "action": "doc:read",
            "resource": {"type": "doc", "id": "1"}
        }))
        .unwrap();
        let decision = serde_json::from_value(json!({
            "decision": "allow",
            "cause": "granted",
            "reasons": [],
            "forbids": [],
            "errors": [],
            "revision": {"bundle": "sha256:cd"},
            "trace_id": "t2"
        }))
        .unwrap();
        (request, decision)
    }

    fn fresh(request: &Request, decision: &Decision, agent: Option<&str>) -> Record {
        let mut record = Record::decision(
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            Outcome::Allow,
        )
        .build();
        let outcome = if decision.is_allowed() {
            Outcome::Allow
        } else {
            Outcome::Error
        };
        fill_decision(&mut record, request, decision, outcome, "nginx", agent);
        record
    }

    #[test]
    fn a_reused_record_holds_nothing_of_the_previous_decision() {
        let (full_request, full_decision) = full();
        let (bare_request, bare_decision) = bare();
        let mut reused = fresh(&full_request, &full_decision, Some("curl/8"));
        assert_eq!(reused.statements, ["viewer", "r1", "f1"]);
        assert_eq!(reused.failed_factors, ["office", "mfa"]);
        assert_eq!(reused.source.as_deref(), Some("172.16.3.4"));
        assert_eq!(reused.data_revision.as_deref(), Some("data:3,tuples:4"));
        assert_eq!(reused.details["errors"], json!(["r2: no such key"]));
        reused.seq = 9;
        fill_decision(
            &mut reused,
            &bare_request,
            &bare_decision,
            Outcome::Allow,
            "nginx",
            None,
        );
        let mut expected = fresh(&bare_request, &bare_decision, None);
        assert_ne!(reused.id, expected.id);
        expected.id.clone_from(&reused.id);
        expected.ts = reused.ts;
        assert_eq!(reused, expected);
        assert_eq!(reused.seq, 0);
        assert!(reused.statements.is_empty() && reused.failed_factors.is_empty());
        assert!(reused.source.is_none() && reused.user_agent.is_none());
        assert!(reused.data_revision.is_none() && reused.details.is_empty());
        assert_eq!(reused.resource, "doc:1");
        assert_eq!(reused.id.len(), 26);
    }
}
