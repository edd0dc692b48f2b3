//! The state every edge shares: the current policy set (swapped atomically), configuration,
//! identity verification, metrics, the clock and environment signals. `AppState::decide` is
//! the one path from a request to a decision for every edge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use portcullis_core::{Decision, Environment, Request, SupplyChain};
use portcullis_policy::PolicySet;

use portcullis_store::Store;
use portcullis_tenant::crypto::KeyRing;
use portcullis_tenant::quota::{QuotaConfig, QuotaPermit, Quotas};

use crate::config::{Config, EncryptionSource};
use crate::error::ApiError;
use crate::identity::Verifier;
use crate::metrics::Metrics;
use crate::snapshots::loaded::Loaded;

/// Where "now" comes from. Tests inject a fixed clock; the server uses the system clock.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// Shared state of a running server.
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    policies: ArcSwap<PolicySet>,
    /// Token verification.
    pub verifier: Verifier,
    /// Metrics.
    pub metrics: Metrics,
    /// The store (SQLite or PostgreSQL).
    pub store: Store,
    /// Master keys for sensitive attributes.
    pub keyring: KeyRing,
    /// Per-tenant limits on decisions.
    pub quotas: Quotas,
    /// The audit trail, unless switched off.
    pub audit: Option<crate::audit::Auditor>,
    /// Bases, sources and data revisions; the lock serializes reloads and refreshes.
    pub loaded: tokio::sync::Mutex<Loaded>,
    clock: Clock,
    high_risk: AtomicBool,
    trace_prefix: String,
    trace_counter: AtomicU64,
    ready: AtomicBool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("tenants", &self.policies.load().len())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the store (running its migrations) and the key ring, and builds the state with no
    /// policies loaded yet.
    pub async fn open(
        config: Config,
        verifier: Verifier,
        clock: Option<Clock>,
    ) -> Result<AppState, String> {
        if let Some(path) = config.store.store.url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = std::path::Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
        }
        let store = Store::open(&config.store.store)
            .await
            .map_err(|e| format!("store: {e}"))?;
        let keyring = load_keyring(&config)?;
        let quotas = Quotas::new(config.default_quota);
        let audit = match &config.audit {
            Some(settings) => crate::audit::Auditor::open(settings, &config.store.store)
                .await
                .map(Some)
                .map_err(|e| format!("audit: {e}"))?,
            None => None,
        };
        let mut seed = [0u8; 8];
        // Without randomness the ids are still unique within this process.
        let _ = getrandom::fill(&mut seed);
        Ok(AppState {
            config: Arc::new(config),
            policies: ArcSwap::from_pointee(PolicySet::new()),
            verifier,
            metrics: Metrics::new(),
            store,
            keyring,
            quotas,
            audit,
            loaded: tokio::sync::Mutex::new(Loaded::default()),
            clock: clock.unwrap_or_else(|| Arc::new(jiff::Timestamp::now)),
            high_risk: AtomicBool::new(false),
            trace_prefix: hex::encode(seed),
            trace_counter: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        })
    }

    /// Admits one request of `tenant` under its quota; the permit is held until the request
    /// is answered. Call it after the caller's identity is established, so that anonymous
    /// callers cannot use up a tenant's quota.
    ///
    /// Only loaded tenants are counted: a request for any other tenant is denied anyway, and
    /// keeping quota state for every id a caller can invent would grow without bound.
    pub fn admit(
        &self,
        tenant: &portcullis_core::TenantId,
    ) -> Result<Option<QuotaPermit>, ApiError> {
        if self.policies.load().get(tenant).is_none() {
            return Ok(None);
        }
        self.quotas.acquire(tenant).map(Some).map_err(|refusal| {
            let limit = match refusal.limit() {
                portcullis_tenant::quota::QuotaLimit::Rate => "requests per second",
                portcullis_tenant::quota::QuotaLimit::Concurrency => "concurrent requests",
            };
            ApiError {
                retry_after: Some(refusal.retry_after_secs()),
                ..ApiError::new(
                    http::StatusCode::TOO_MANY_REQUESTS,
                    refusal.limit().code(),
                    format!(
                        "tenant `{tenant}` is over its quota of {limit}; retry after {} s",
                        refusal.retry_after_secs()
                    ),
                )
            }
        })
    }

    /// The current policy set (a decision uses one set from start to end).
    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies.load_full()
    }

    /// Publishes a new policy set (and the quotas its tenants declare).
    pub fn publish(&self, set: PolicySet) {
        self.ready.store(!set.is_empty(), Ordering::Release);
        let own = set.iter().filter_map(|snapshot| {
            let quota = snapshot.settings().quota?;
            QuotaConfig::new(quota.requests_per_second, quota.burst, quota.concurrent)
                .ok()
                .map(|config| (snapshot.tenant().clone(), config))
        });
        self.quotas
            .configure(self.config.default_quota, own.collect::<Vec<_>>());
        self.policies.store(Arc::new(set));
    }

    /// Whether at least one tenant is loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The current time.
    pub fn now(&self) -> jiff::Timestamp {
        (self.clock)()
    }

    /// Sets the supply-chain signal.
    pub fn set_high_risk(&self, high_risk: bool) {
        self.high_risk.store(high_risk, Ordering::Release);
    }

    /// The environment signals the server computes (callers cannot supply them).
    pub fn environment(&self) -> Environment {
        Environment {
            supply_chain: SupplyChain {
                high_risk: self.high_risk.load(Ordering::Acquire),
            },
        }
    }

    /// A new trace id: 32 hex digits, unique within this process and random across processes.
    pub fn new_trace_id(&self) -> String {
        trace_id(
            &self.trace_prefix,
            self.trace_counter.fetch_add(1, Ordering::Relaxed),
        )
    }

    /// Decides a request that arrived at an edge: the server's clock (unless the tenant accepts
    /// caller time), the server's environment signals and a trace id are applied first.
    pub fn decide(&self, mut request: Request, edge: &'static str) -> Decision {
        self.decide_with(&mut request, edge, None)
    }

    /// Like [`AppState::decide`], with an extra strategy (a route's) and access to the final
    /// request.
    pub fn decide_with(
        &self,
        request: &mut Request,
        edge: &'static str,
        strategy: Option<&str>,
    ) -> Decision {
        self.decide_from(request, edge, strategy, None)
    }

    /// Like [`AppState::decide_with`], naming the caller's user agent for the audit trail. The
    /// decision is recorded before it is returned; a decision whose record the audit log cannot
    /// accept is denied.
    pub fn decide_from(
        &self,
        request: &mut Request,
        edge: &'static str,
        strategy: Option<&str>,
        user_agent: Option<&str>,
    ) -> Decision {
        let policies = self.policies();
        self.prepare(&policies, request);
        let started = Instant::now();
        let decision = match (policies.get(&request.tenant), strategy) {
            (Some(snapshot), Some(strategy)) => {
                portcullis_policy::decide_with_strategy(snapshot, request, Some(strategy))
            }
            _ => policies.decide(request),
        };
        // Only loaded tenants get their own series: callers must not be able to mint labels.
        let label = if policies.get(&request.tenant).is_some() {
            request.tenant.as_str()
        } else {
            "unknown"
        };
        let mut decision = decision;
        if let Some(audit) = &self.audit
            && let Err(error) = audit.decision(request, &decision, edge, user_agent)
        {
            tracing::error!(tenant = %request.tenant, %error, "the audit log refused a decision record; denying");
            decision.decision = portcullis_core::Effect::Deny;
            decision.cause = portcullis_core::Cause::Error;
            decision.reasons.clear();
            decision.errors.push(portcullis_core::DecisionError {
                kind: portcullis_core::ErrorKind::Audit,
                statement: std::sync::Arc::from("audit"),
                message: format!("the decision could not be recorded: {error}"),
            });
        }
        self.metrics
            .decision(label, decision.is_allowed(), edge, started.elapsed());
        decision
    }

    /// Applies the server's clock, environment and trace id to a request.
    pub fn prepare(&self, policies: &PolicySet, request: &mut Request) {
        let caller_time = policies
            .get(&request.tenant)
            .is_some_and(|snapshot| snapshot.settings().accept_request_time);
        if !caller_time || request.context.time.is_none() {
            request.context.time = Some(self.now());
        }
        request.env = self.environment();
        if request.trace_id.as_deref().is_none_or(str::is_empty) {
            request.trace_id = Some(self.new_trace_id());
        }
    }
}

/// The key ring: from a file or an environment variable, or generated in the data folder on
/// first start (fine for the embedded default; production keeps keys away from the data).
fn load_keyring(config: &Config) -> Result<KeyRing, String> {
    match &config.encryption {
        EncryptionSource::File(path) => {
            KeyRing::from_file(path).map_err(|e| format!("encryption.keys_file: {e}"))
        }
        EncryptionSource::Env(variable, text) => {
            KeyRing::parse(text).map_err(|e| format!("encryption.keys_env ({variable}): {e}"))
        }
        EncryptionSource::Generated => {
            let path = config.data_dir.join("master.keys");
            if !path.exists() {
                std::fs::create_dir_all(&config.data_dir)
                    .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| format!("cannot generate a key: {e}"))?;
                let text = format!(
                    "# Generated by portcullis serve: the master key of per-tenant field encryption.\n# Keep it secret and backed up; without it encrypted attributes cannot be read.\nk1 = {}\ncurrent = k1\n",
                    hex::encode(key)
                );
                write_private(&path, &text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                tracing::warn!(path = %path.display(), "generated a master key for field encryption; configure [encryption] for production");
            }
            KeyRing::from_file(&path).map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// `prefix` followed by `count` as 16 lower-case hex digits (one allocation, no formatting
/// machinery: this runs for every decision).
fn trace_id(prefix: &str, count: u64) -> String {
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    for shift in (0..16).rev() {
        let digit = ((count >> (shift * 4)) & 0xf) as u32;
        id.push(char::from_digit(digit, 16).unwrap_or('0'));
    }
    id
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn trace_ids_are_the_prefix_and_the_count_in_hex(prefix in "[0-9a-f]{16}", count: u64) {
            prop_assert_eq!(super::trace_id(&prefix, count), format!("{prefix}{count:016x}"));
        }
    }
}
