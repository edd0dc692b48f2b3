//! The state every edge shares: the current policy set (swapped atomically), configuration,
//! identity verification, quotas, the audit trail, the evaluation pool, metrics, the clock and
//! environment signals. It holds; it does not decide: every decision goes through
//! [`crate::decision::DecisionPath`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use portcullis_core::{Environment, SupplyChain};
use portcullis_policy::PolicySet;

use portcullis_store::Store;
use portcullis_tenant::crypto::KeyRing;
use portcullis_tenant::quota::{QuotaConfig, Quotas};

use crate::config::{Config, EncryptionSource};

use crate::identity::Verifier;
use crate::metrics::Metrics;
use crate::snapshots::loaded::Loaded;

/// The entry a decision denied while the service runs read-only names after the built-in
/// supply-chain forbid (as `advisory:integrity`).
pub const READ_ONLY_ADVISORY: &str = "integrity";

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
    /// Where decisions that may be expensive are evaluated.
    pub evaluation: crate::evaluation::EvaluationPool,
    /// Bases, sources and data revisions; the lock serializes reloads and refreshes.
    pub loaded: tokio::sync::Mutex<Loaded>,
    /// The supply-chain gate's last scan.
    pub supply: crate::supply::Gate,
    /// The integrity manifest verified at start, which reloaded bundle files must match.
    pub integrity: std::sync::OnceLock<portcullis_supply::integrity::Verified>,
    /// The gateway's applications as last loaded (at start, then by each reload of the
    /// `[gateway]` section); empty without a gateway.
    pub gateway_apps: ArcSwap<Vec<Arc<crate::gateway::settings::App>>>,
    /// The webhook told of every step of temporary access, when configured.
    pub access_webhook: Option<crate::webhook::Webhook>,
    /// Why the service runs read-only (a failed integrity check with `on_failure =
    /// "read_only"`): every write is denied by the built-in supply-chain forbid.
    read_only: std::sync::OnceLock<String>,
    gate_signal: std::sync::Mutex<(bool, Vec<String>)>,
    clock: Clock,
    high_risk: AtomicBool,
    advisories: ArcSwap<Vec<Arc<str>>>,
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
        // One evaluation thread per CPU the process may use: with one, expensive decisions
        // take turns on it below the runtime's priority.
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let evaluation = crate::evaluation::EvaluationPool::start(threads)
            .map_err(|e| format!("cannot start the evaluation threads: {e}"))?;
        let mut seed = [0u8; 8];
        // Without randomness the ids are still unique within this process.
        let _ = getrandom::fill(&mut seed);
        let gateway_apps = config
            .gateway
            .as_ref()
            .map(|gateway| gateway.apps.clone())
            .unwrap_or_default();
        let access_webhook = config
            .access_webhook
            .clone()
            .map(crate::webhook::Webhook::start)
            .transpose()?;
        Ok(AppState {
            access_webhook,
            config: Arc::new(config),
            policies: ArcSwap::from_pointee(PolicySet::new()),
            verifier,
            metrics: Metrics::new(),
            store,
            keyring,
            quotas,
            audit,
            evaluation,
            loaded: tokio::sync::Mutex::new(Loaded::default()),
            clock: clock.unwrap_or_else(|| Arc::new(jiff::Timestamp::now)),
            supply: crate::supply::Gate::default(),
            integrity: std::sync::OnceLock::new(),
            gateway_apps: ArcSwap::from_pointee(gateway_apps),
            read_only: std::sync::OnceLock::new(),
            gate_signal: std::sync::Mutex::new((false, Vec::new())),
            high_risk: AtomicBool::new(false),
            advisories: ArcSwap::from_pointee(Vec::new()),
            trace_prefix: hex::encode(seed),
            trace_counter: AtomicU64::new(0),
            ready: AtomicBool::new(false),
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

    /// Sets the supply-chain signal (naming no advisory).
    pub fn set_high_risk(&self, high_risk: bool) {
        self.set_supply_signal(high_risk, &[]);
    }

    /// Sets the supply-chain signal and the advisories that raise it. While the service runs
    /// read-only the signal stays high and names `integrity` too.
    pub fn set_supply_signal(&self, high_risk: bool, advisories: &[String]) {
        let mut gate = self
            .gate_signal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *gate = (high_risk, advisories.to_vec());
        let read_only = self.read_only.get().is_some();
        let mut named: Vec<Arc<str>> = advisories.iter().map(|id| Arc::from(id.as_str())).collect();
        if read_only {
            named.push(Arc::from(READ_ONLY_ADVISORY));
        }
        self.advisories.store(Arc::new(named));
        self.high_risk
            .store(high_risk || read_only, Ordering::Release);
    }

    /// Runs the service read-only from now on, for `reason` (logged and shown by the dependency
    /// scan's status): every write is denied, naming [`READ_ONLY_ADVISORY`].
    pub fn set_read_only(&self, reason: String) {
        let _ = self.read_only.set(reason);
        let (high_risk, advisories) = self
            .gate_signal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        self.set_supply_signal(high_risk, &advisories);
    }

    /// Why the service runs read-only, if it does.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.get().map(String::as_str)
    }

    /// The environment signals the server computes (callers cannot supply them).
    pub fn environment(&self) -> Environment {
        let high_risk = self.high_risk.load(Ordering::Acquire);
        Environment {
            supply_chain: SupplyChain {
                high_risk,
                // Read only while the signal is high: the common answer costs one load.
                advisories: high_risk.then(|| self.advisories.load().iter().cloned().collect()),
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
                crate::files::write_private(&path, &text)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                tracing::warn!(path = %path.display(), "generated a master key for field encryption; configure [encryption] for production");
            }
            KeyRing::from_file(&path).map_err(|e| format!("{}: {e}", path.display()))
        }
    }
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
