//! The state every edge shares: the current policy set (swapped atomically), configuration,
//! identity verification, metrics, the clock and environment signals. `AppState::decide` is
//! the one path from a request to a decision for every edge.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use portcullis_core::{Decision, Environment, Request, SupplyChain};
use portcullis_policy::PolicySet;

use crate::config::Config;
use crate::identity::Verifier;
use crate::metrics::Metrics;
use crate::reload::Sources;

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
    /// Serializes reloads and uploads.
    pub reload_lock: Mutex<()>,
    /// Which folder each tenant came from.
    pub sources: Mutex<Sources>,
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
    /// State with no policies yet, on the system clock.
    pub fn new(config: Config, verifier: Verifier) -> AppState {
        AppState::with_clock(config, verifier, Arc::new(jiff::Timestamp::now))
    }

    /// State with an injected clock.
    pub fn with_clock(config: Config, verifier: Verifier, clock: Clock) -> AppState {
        let mut seed = [0u8; 8];
        // Without randomness the ids are still unique within this process.
        let _ = getrandom::fill(&mut seed);
        AppState {
            config: Arc::new(config),
            policies: ArcSwap::from_pointee(PolicySet::new()),
            verifier,
            metrics: Metrics::new(),
            reload_lock: Mutex::new(()),
            sources: Mutex::new(Sources::default()),
            clock,
            high_risk: AtomicBool::new(false),
            trace_prefix: hex::encode(seed),
            trace_counter: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        }
    }

    /// The current policy set (a decision uses one set from start to end).
    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies.load_full()
    }

    /// Publishes a new policy set.
    pub fn publish(&self, set: PolicySet) {
        self.ready.store(!set.is_empty(), Ordering::Release);
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
        let count = self.trace_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}{count:016x}", self.trace_prefix)
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
