//! Per-tenant quotas on the decision API (SPEC.md C4), so one noisy tenant cannot starve the rest.
//!
//! This module owns the quota configuration ([`QuotaConfig`]), the per-tenant limiter state
//! ([`Quotas`]) and the answer to "may this tenant start one more request now?" — a
//! [`QuotaPermit`] or a [`QuotaRefusal`] carrying the `Retry-After` value. It must not know about
//! HTTP status codes beyond that value, and it must never hold a lock shared by all tenants on the
//! request path.
//!
//! # Semantics
//! - **Unlimited is `None`**: a config field left out means "no limit of that kind". Zero is
//!   rejected as a configuration error rather than read as "refuse everything" — to stop a tenant,
//!   suspend it.
//! - **Rate**: a token bucket of `burst` tokens refilled at `requests_per_second`, implemented as
//!   GCRA (the "virtual scheduling" form of a token bucket): one atomic timestamp per tenant,
//!   updated with compare-and-swap, so admitting a request never takes a lock. `burst` defaults to
//!   the rate rounded up (one second's worth), at least 1.
//! - **Concurrency**: an atomic in-flight counter per tenant. A permit holds one slot and gives it
//!   back when dropped.
//! - **Order**: the concurrency slot is taken first and the rate token second; a request refused
//!   for rate gives its slot back, and one refused for concurrency does not spend a token.
//! - **Retry-After**: for rate, the time until a token is available, in whole seconds rounded up,
//!   at least 1; for concurrency, 1 (when a slot frees cannot be known).
//! - **Configuration changes** (bundle reload) apply to the next request. In-flight permits stay
//!   counted; the bucket keeps what it had spent, capped at the new burst.
//!
//! State is created lazily on a tenant's first request. Call [`Quotas::acquire`] only for tenants
//! already known to exist, so callers cannot make the map grow with made-up tenant ids, and call
//! [`Quotas::remove`] when a tenant is deleted.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::TenantId;

/// The highest rate a quota may name: one request per nanosecond, the resolution of the bucket.
pub const MAX_REQUESTS_PER_SECOND: f64 = 1e9;

/// Number of independently locked shards of the tenant map; a tenant's first request takes one
/// shard's write lock, never a lock over all tenants.
const SHARDS: usize = 16;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// One tenant's quota: a validated combination of rate, burst and concurrency limits.
///
/// Deserializes from `{ requests_per_second: 50, burst: 100, concurrent: 20 }`, every field
/// optional (left out = unlimited), unknown fields rejected.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawQuotaConfig", into = "RawQuotaConfig")]
pub struct QuotaConfig {
    rate: Option<Rate>,
    concurrent: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    requests_per_second: f64,
    burst: u32,
}

/// The unvalidated form of [`QuotaConfig`], as written in configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuotaConfig {
    /// Sustained requests per second; `None` for no rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Requests that may arrive at once after a quiet period; needs `requests_per_second`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Requests in flight at once; `None` for no concurrency limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<u32>,
}

/// Why a quota configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quota: `{field}` {problem}")]
pub struct InvalidQuota {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong and what would be right.
    pub problem: String,
}

impl QuotaConfig {
    /// No limits at all.
    pub const UNLIMITED: QuotaConfig = QuotaConfig {
        rate: None,
        concurrent: None,
    };

    /// Validates a quota. `None` means unlimited; zero, negative, non-finite or excessive values
    /// are errors, and so is a `burst` without a rate.
    pub fn new(
        requests_per_second: Option<f64>,
        burst: Option<u32>,
        concurrent: Option<u32>,
    ) -> Result<Self, InvalidQuota> {
        let rate = match (requests_per_second, burst) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(InvalidQuota {
                    field: "burst",
                    problem:
                        "needs `requests_per_second`: a burst only has a meaning for a rate limit"
                            .to_owned(),
                });
            }
            (Some(rps), burst) => {
                if !rps.is_finite() || rps <= 0.0 || rps > MAX_REQUESTS_PER_SECOND {
                    return Err(InvalidQuota {
                        field: "requests_per_second",
                        problem: format!(
                            "is {rps}, but must be a number above 0 and at most {MAX_REQUESTS_PER_SECOND} \
                             (leave it out for no rate limit; suspend a tenant to stop it)"
                        ),
                    });
                }
                let burst = match burst {
                    Some(0) => {
                        return Err(InvalidQuota {
                            field: "burst",
                            problem: "is 0, but must be at least 1 (leave it out for one second's worth of requests)"
                                .to_owned(),
                        });
                    }
                    Some(burst) => burst,
                    // Saturating float-to-int conversion; `rps` is at most 1e9.
                    None => (rps.ceil() as u32).max(1),
                };
                Some(Rate {
                    requests_per_second: rps,
                    burst,
                })
            }
        };
        if concurrent == Some(0) {
            return Err(InvalidQuota {
                field: "concurrent",
                problem: "is 0, but must be at least 1 (leave it out for no concurrency limit; suspend a tenant to stop it)"
                    .to_owned(),
            });
        }
        Ok(QuotaConfig { rate, concurrent })
    }

    /// Sustained requests per second, `None` when the rate is unlimited.
    pub fn requests_per_second(&self) -> Option<f64> {
        self.rate.map(|rate| rate.requests_per_second)
    }

    /// Size of the token bucket, `None` when the rate is unlimited.
    pub fn burst(&self) -> Option<u32> {
        self.rate.map(|rate| rate.burst)
    }

    /// Requests in flight at once, `None` when unlimited.
    pub fn concurrent(&self) -> Option<u32> {
        self.concurrent
    }
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig::UNLIMITED
    }
}

impl TryFrom<RawQuotaConfig> for QuotaConfig {
    type Error = InvalidQuota;
    fn try_from(raw: RawQuotaConfig) -> Result<Self, Self::Error> {
        QuotaConfig::new(raw.requests_per_second, raw.burst, raw.concurrent)
    }
}

impl From<QuotaConfig> for RawQuotaConfig {
    fn from(config: QuotaConfig) -> Self {
        RawQuotaConfig {
            requests_per_second: config.requests_per_second(),
            burst: config.burst(),
            concurrent: config.concurrent,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------------------

/// A monotonic clock. The quota limiter reads time only through this, so tests can drive it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant; must never go backwards.
    fn now(&self) -> Instant;
}

/// The real monotonic clock ([`Instant::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to, for tests. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    elapsed_nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at an arbitrary instant.
    pub fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            elapsed_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let elapsed = Duration::from_nanos(self.elapsed_nanos.load(Ordering::SeqCst));
        self.start.checked_add(elapsed).unwrap_or(self.start)
    }
}

// ---------------------------------------------------------------------------------------------
// Limiter state
// ---------------------------------------------------------------------------------------------

/// A config with the numbers the hot path needs precomputed.
#[derive(Debug)]
struct Limits {
    config: QuotaConfig,
    /// Whether the tenant has its own config (otherwise it follows the default).
    own: bool,
    /// Nanoseconds between tokens; 0 when the rate is unlimited.
    interval: u64,
    /// Nanoseconds of debt the bucket may hold: `burst × interval`.
    tolerance: u64,
}

impl Limits {
    fn new(config: QuotaConfig, own: bool) -> Self {
        let (interval, tolerance) = match config.rate {
            None => (0, 0),
            Some(rate) => {
                // Saturating float-to-int conversion; at least one nanosecond per token.
                let interval =
                    ((NANOS_PER_SECOND as f64 / rate.requests_per_second).round() as u64).max(1);
                (interval, interval.saturating_mul(u64::from(rate.burst)))
            }
        };
        Limits {
            config,
            own,
            interval,
            tolerance,
        }
    }
}

#[derive(Debug)]
struct TenantState {
    limits: ArcSwap<Limits>,
    /// GCRA "theoretical arrival time", in nanoseconds since the limiter's epoch: the instant at
    /// which the bucket would be full again.
    arrival: AtomicU64,
    in_flight: AtomicU32,
}

impl TenantState {
    fn new(limits: Arc<Limits>) -> Self {
        TenantState {
            limits: ArcSwap::new(limits),
            arrival: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        }
    }

    /// Takes a concurrency slot if one is free (always, when unlimited).
    fn take_slot(&self, limit: Option<u32>) -> bool {
        let Some(limit) = limit else {
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            return true;
        };
        let mut current = self.in_flight.load(Ordering::Acquire);
        loop {
            if current >= limit {
                return false;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes a rate token at `now`, or says how many nanoseconds until one is available.
    fn take_token(&self, now: u64, interval: u64, tolerance: u64) -> Result<(), u64> {
        let mut arrival = self.arrival.load(Ordering::Acquire);
        loop {
            let next = arrival.max(now).saturating_add(interval);
            let debt = next - now;
            if debt > tolerance {
                return Err(debt - tolerance);
            }
            match self.arrival.compare_exchange_weak(
                arrival,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => arrival = actual,
            }
        }
    }

    fn reconfigure(&self, limits: Arc<Limits>, now: u64) {
        // Keep what the bucket had spent, but never more than the new burst allows.
        self.arrival
            .fetch_min(now.saturating_add(limits.tolerance), Ordering::AcqRel);
        self.limits.store(limits);
    }
}

// Hashed with FxHash, as the shard index is: the keys are tenant ids, which the decision
// service admits only for tenants it has loaded, so callers cannot choose colliding keys.
type Shard = RwLock<rustc_hash::FxHashMap<TenantId, Arc<TenantState>>>;

/// Per-tenant quota state for a whole service: one default config, optional per-tenant configs,
/// and lazily created limiter state per tenant.
pub struct Quotas {
    shards: Box<[Shard]>,
    default: ArcSwap<Limits>,
    /// Serializes configuration changes with each other (never taken on the request path).
    configuring: Mutex<()>,
    clock: Arc<dyn Clock>,
    epoch: Instant,
}

impl Quotas {
    /// Quotas on the real monotonic clock, with `default` for every tenant without its own.
    pub fn new(default: QuotaConfig) -> Self {
        Self::with_clock(default, Arc::new(MonotonicClock))
    }

    /// Quotas reading time from `clock` (for tests: a [`ManualClock`]).
    pub fn with_clock(default: QuotaConfig, clock: Arc<dyn Clock>) -> Self {
        let epoch = clock.now();
        Quotas {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            default: ArcSwap::from_pointee(Limits::new(default, false)),
            configuring: Mutex::new(()),
            clock,
            epoch,
        }
    }

    /// Admits one request of `tenant`, or refuses it with the limit it hit and a `Retry-After`.
    ///
    /// Hold the permit for as long as the request is being served; dropping it frees the tenant's
    /// concurrency slot. Each tenant asked about keeps its state here, hashed with a fast hash
    /// that is not collision-resistant: admit only tenants that are known to exist.
    pub fn acquire(&self, tenant: &TenantId) -> Result<QuotaPermit, QuotaRefusal> {
        let state = self.state(tenant);
        let limits = state.limits.load();
        if !state.take_slot(limits.config.concurrent) {
            return Err(QuotaRefusal {
                tenant: tenant.clone(),
                limit: QuotaLimit::Concurrency,
                retry_after_secs: 1,
            });
        }
        let permit = QuotaPermit {
            state: Arc::clone(&state),
        };
        if limits.config.rate.is_some()
            && let Err(wait) = state.take_token(self.now(), limits.interval, limits.tolerance)
        {
            drop(permit);
            return Err(QuotaRefusal {
                tenant: tenant.clone(),
                limit: QuotaLimit::Rate,
                retry_after_secs: wait.div_ceil(NANOS_PER_SECOND).max(1),
            });
        }
        Ok(permit)
    }

    /// Gives `tenant` its own quota (replacing any earlier one).
    pub fn set_tenant(&self, tenant: &TenantId, config: QuotaConfig) {
        let _configuring = self
            .configuring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let limits = Arc::new(Limits::new(config, true));
        let mut shard = self
            .shard(tenant)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match shard.get(tenant) {
            Some(state) => state.reconfigure(limits, self.now()),
            None => {
                shard.insert(tenant.clone(), Arc::new(TenantState::new(limits)));
            }
        }
    }

    /// Makes `tenant` follow the default quota again.
    pub fn clear_tenant(&self, tenant: &TenantId) {
        let _configuring = self
            .configuring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let shard = self
            .shard(tenant)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = shard.get(tenant) {
            state.reconfigure(self.default.load_full(), self.now());
        }
    }

    /// Changes the default quota; tenants with their own quota keep it.
    pub fn set_default(&self, config: QuotaConfig) {
        let _configuring = self
            .configuring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let limits = Arc::new(Limits::new(config, false));
        // Store first: a tenant created after this reads the new default, and one created before
        // is updated below (its shard's lock orders the two).
        self.default.store(Arc::clone(&limits));
        let now = self.now();
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
            for state in shard.values() {
                if !state.limits.load().own {
                    state.reconfigure(Arc::clone(&limits), now);
                }
            }
        }
    }

    /// Replaces the whole configuration at once (for a reload): the default and every tenant's
    /// own quota. Tenants that had their own quota and are not in `tenants` follow the new default.
    pub fn configure(
        &self,
        default: QuotaConfig,
        tenants: impl IntoIterator<Item = (TenantId, QuotaConfig)>,
    ) {
        let _configuring = self
            .configuring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut own: std::collections::HashMap<TenantId, Arc<Limits>> = tenants
            .into_iter()
            .map(|(tenant, config)| (tenant, Arc::new(Limits::new(config, true))))
            .collect();
        let default = Arc::new(Limits::new(default, false));
        self.default.store(Arc::clone(&default));
        let now = self.now();
        for (index, shard) in self.shards.iter().enumerate() {
            let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
            for (tenant, state) in shard.iter() {
                let limits = own.remove(tenant).unwrap_or_else(|| Arc::clone(&default));
                state.reconfigure(limits, now);
            }
            // Tenants of this shard with their own quota and no state yet.
            let mine: Vec<TenantId> = own
                .keys()
                .filter(|tenant| shard_index(tenant) == index)
                .cloned()
                .collect();
            for tenant in mine {
                if let Some(limits) = own.remove(&tenant) {
                    shard.insert(tenant, Arc::new(TenantState::new(limits)));
                }
            }
        }
    }

    /// Forgets a tenant's state and own quota (for a deleted tenant).
    pub fn remove(&self, tenant: &TenantId) {
        let _configuring = self
            .configuring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.shard(tenant)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(tenant);
    }

    /// The quota in force for `tenant`.
    pub fn config(&self, tenant: &TenantId) -> QuotaConfig {
        let shard = self
            .shard(tenant)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match shard.get(tenant) {
            Some(state) => state.limits.load().config,
            None => self.default.load().config,
        }
    }

    /// The default quota.
    pub fn default_config(&self) -> QuotaConfig {
        self.default.load().config
    }

    /// How many permits of `tenant` are held right now.
    pub fn in_flight(&self, tenant: &TenantId) -> u32 {
        let shard = self
            .shard(tenant)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard
            .get(tenant)
            .map_or(0, |state| state.in_flight.load(Ordering::Acquire))
    }

    fn shard(&self, tenant: &TenantId) -> &Shard {
        &self.shards[shard_index(tenant)]
    }

    /// The tenant's state, created with the default quota on first use.
    fn state(&self, tenant: &TenantId) -> Arc<TenantState> {
        let shard = self.shard(tenant);
        if let Some(state) = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
        {
            return Arc::clone(state);
        }
        let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
        // Read the default under the shard's write lock (see `set_default`).
        Arc::clone(
            shard
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(TenantState::new(self.default.load_full()))),
        )
    }

    /// Nanoseconds since the limiter was created.
    fn now(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The shard a tenant lives in; `Quotas::shards` always holds `SHARDS` entries.
fn shard_index(tenant: &TenantId) -> usize {
    let mut hasher = rustc_hash::FxHasher::default();
    tenant.as_str().hash(&mut hasher);
    (hasher.finish() % SHARDS as u64) as usize
}

impl fmt::Debug for Quotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenants: usize = self
            .shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum();
        f.debug_struct("Quotas")
            .field("default", &self.default.load().config)
            .field("tenants", &tenants)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Permission to serve one request. Dropping it frees the tenant's concurrency slot.
#[must_use = "the concurrency slot is released as soon as the permit is dropped"]
pub struct QuotaPermit {
    state: Arc<TenantState>,
}

impl Drop for QuotaPermit {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for QuotaPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaPermit").finish_non_exhaustive()
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaLimit {
    /// Requests per second (with burst).
    Rate,
    /// Requests in flight at once.
    Concurrency,
}

impl QuotaLimit {
    /// A stable machine-readable code: `rate_limited` or `too_many_concurrent_requests`.
    pub fn code(self) -> &'static str {
        match self {
            QuotaLimit::Rate => "rate_limited",
            QuotaLimit::Concurrency => "too_many_concurrent_requests",
        }
    }
}

/// A request refused by its tenant's quota; answer it with HTTP 429 and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant {tenant} is over its {} quota; retry after {retry_after_secs} s",
    match limit { QuotaLimit::Rate => "request rate", QuotaLimit::Concurrency => "concurrent request" }
)]
pub struct QuotaRefusal {
    tenant: TenantId,
    limit: QuotaLimit,
    retry_after_secs: u64,
}

impl QuotaRefusal {
    /// The tenant refused.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The limit that refused it.
    pub fn limit(&self) -> QuotaLimit {
        self.limit
    }

    /// Seconds to wait before retrying (rounded up, at least 1): the `Retry-After` value.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_secs
    }

    /// [`QuotaRefusal::retry_after_secs`] as a duration.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(self.retry_after_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::AtomicBool;

    fn tenant(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    fn rate(rps: f64, burst: u32) -> QuotaConfig {
        QuotaConfig::new(Some(rps), Some(burst), None).unwrap()
    }

    fn fake() -> (Arc<ManualClock>, impl Fn(QuotaConfig) -> Quotas) {
        let clock = Arc::new(ManualClock::new());
        let for_quotas = Arc::clone(&clock);
        (clock, move |config| {
            Quotas::with_clock(config, Arc::clone(&for_quotas) as Arc<dyn Clock>)
        })
    }

    #[test]
    fn config_validation_and_unlimited_semantics() {
        assert_eq!(
            QuotaConfig::new(None, None, None).unwrap(),
            QuotaConfig::UNLIMITED
        );
        assert_eq!(QuotaConfig::default(), QuotaConfig::UNLIMITED);
        let c = QuotaConfig::new(Some(2.5), None, Some(4)).unwrap();
        assert_eq!(c.requests_per_second(), Some(2.5));
        assert_eq!(
            c.burst(),
            Some(3),
            "burst defaults to one second's worth, rounded up"
        );
        assert_eq!(c.concurrent(), Some(4));
        assert_eq!(
            QuotaConfig::new(Some(0.1), None, None).unwrap().burst(),
            Some(1)
        );
        for (rps, burst, concurrent, field) in [
            (Some(0.0), None, None, "requests_per_second"),
            (Some(-1.0), None, None, "requests_per_second"),
            (Some(f64::NAN), None, None, "requests_per_second"),
            (Some(f64::INFINITY), None, None, "requests_per_second"),
            (Some(2e9), None, None, "requests_per_second"),
            (Some(1.0), Some(0), None, "burst"),
            (None, Some(5), None, "burst"),
            (None, None, Some(0), "concurrent"),
        ] {
            let err = QuotaConfig::new(rps, burst, concurrent).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn config_reads_from_and_writes_to_serde() {
        let c: QuotaConfig =
            serde_json::from_str(r#"{"requests_per_second": 10, "burst": 20, "concurrent": 5}"#)
                .unwrap();
        assert_eq!(c, QuotaConfig::new(Some(10.0), Some(20), Some(5)).unwrap());
        let unlimited: QuotaConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(unlimited, QuotaConfig::UNLIMITED);
        let err = serde_json::from_str::<QuotaConfig>(r#"{"concurrent": 0}"#).unwrap_err();
        assert!(err.to_string().contains("`concurrent` is 0"), "{err}");
        let err = serde_json::from_str::<QuotaConfig>(r#"{"rps": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"requests_per_second":10.0,"burst":20,"concurrent":5}"#
        );
    }

    #[test]
    fn burst_then_refill() {
        let (clock, quotas) = fake();
        let quotas = quotas(rate(2.0, 5));
        let acme = tenant("acme");
        for _ in 0..5 {
            drop(quotas.acquire(&acme).unwrap());
        }
        let refusal = quotas.acquire(&acme).unwrap_err();
        assert_eq!(refusal.limit(), QuotaLimit::Rate);
        assert_eq!(refusal.retry_after_secs(), 1, "a token every 0.5 s");
        // Half a second later exactly one token has come back.
        clock.advance(Duration::from_millis(500));
        drop(quotas.acquire(&acme).unwrap());
        assert!(quotas.acquire(&acme).is_err());
        // After a long pause the bucket is full again, but holds no more than `burst`.
        clock.advance(Duration::from_secs(60));
        for _ in 0..5 {
            drop(quotas.acquire(&acme).unwrap());
        }
        assert!(quotas.acquire(&acme).is_err());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let (clock, quotas) = fake();
        // One request every 2.5 seconds.
        let quotas = quotas(rate(0.4, 1));
        let acme = tenant("acme");
        drop(quotas.acquire(&acme).unwrap());
        assert_eq!(quotas.acquire(&acme).unwrap_err().retry_after_secs(), 3);
        clock.advance(Duration::from_millis(600));
        assert_eq!(quotas.acquire(&acme).unwrap_err().retry_after_secs(), 2);
        clock.advance(Duration::from_millis(1_800));
        let refusal = quotas.acquire(&acme).unwrap_err();
        assert_eq!(refusal.retry_after_secs(), 1, "0.1 s rounds up to 1");
        assert_eq!(refusal.retry_after(), Duration::from_secs(1));
        clock.advance(Duration::from_millis(100));
        assert!(quotas.acquire(&acme).is_ok());
        // A refused request does not spend a token.
        let (clock, quotas) = fake();
        let quotas = quotas(rate(1.0, 1));
        drop(quotas.acquire(&acme).unwrap());
        for _ in 0..10 {
            assert!(quotas.acquire(&acme).is_err());
        }
        clock.advance(Duration::from_secs(1));
        assert!(quotas.acquire(&acme).is_ok());
    }

    #[test]
    fn concurrency_limit_counts_held_permits() {
        let quotas = Quotas::new(QuotaConfig::new(None, None, Some(2)).unwrap());
        let acme = tenant("acme");
        let first = quotas.acquire(&acme).unwrap();
        let second = quotas.acquire(&acme).unwrap();
        assert_eq!(quotas.in_flight(&acme), 2);
        let refusal = quotas.acquire(&acme).unwrap_err();
        assert_eq!(refusal.limit(), QuotaLimit::Concurrency);
        assert_eq!(refusal.retry_after_secs(), 1);
        assert_eq!(refusal.tenant(), &acme);
        assert!(
            refusal.to_string().contains("concurrent request quota"),
            "{refusal}"
        );
        drop(first);
        assert_eq!(quotas.in_flight(&acme), 1);
        let third = quotas.acquire(&acme).unwrap();
        drop((second, third));
        assert_eq!(quotas.in_flight(&acme), 0);
    }

    #[test]
    fn a_rate_refusal_gives_the_concurrency_slot_back() {
        let (_clock, quotas) = fake();
        let quotas = quotas(QuotaConfig::new(Some(1.0), Some(1), Some(1)).unwrap());
        let acme = tenant("acme");
        drop(quotas.acquire(&acme).unwrap());
        assert_eq!(quotas.acquire(&acme).unwrap_err().limit(), QuotaLimit::Rate);
        assert_eq!(quotas.in_flight(&acme), 0);
    }

    #[test]
    fn tenants_are_independent() {
        let (_clock, quotas) = fake();
        let quotas = quotas(QuotaConfig::new(Some(1.0), Some(3), Some(10)).unwrap());
        let (noisy, quiet) = (tenant("noisy"), tenant("quiet"));
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(quotas.acquire(&noisy).unwrap());
        }
        assert!(quotas.acquire(&noisy).is_err());
        for _ in 0..3 {
            held.push(quotas.acquire(&quiet).unwrap());
        }
        assert_eq!(quotas.in_flight(&noisy), 3);
        assert_eq!(quotas.in_flight(&quiet), 3);
    }

    #[test]
    fn unlimited_admits_everything() {
        let quotas = Quotas::new(QuotaConfig::UNLIMITED);
        let acme = tenant("acme");
        let permits: Vec<_> = (0..10_000)
            .map(|_| quotas.acquire(&acme).unwrap())
            .collect();
        assert_eq!(quotas.in_flight(&acme), 10_000);
        drop(permits);
        assert_eq!(quotas.in_flight(&acme), 0);
    }

    #[test]
    fn configuration_updates_apply_to_the_next_request() {
        let (clock, quotas) = fake();
        let quotas = quotas(rate(1.0, 2));
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        drop(quotas.acquire(&acme).unwrap());
        drop(quotas.acquire(&globex).unwrap());

        // Own quota for acme; globex keeps following the default.
        quotas.set_tenant(&acme, QuotaConfig::new(None, None, Some(1)).unwrap());
        assert_eq!(quotas.config(&acme).concurrent(), Some(1));
        let held = quotas.acquire(&acme).unwrap();
        assert_eq!(
            quotas.acquire(&acme).unwrap_err().limit(),
            QuotaLimit::Concurrency
        );
        drop(held);
        for _ in 0..100 {
            drop(quotas.acquire(&acme).unwrap());
        }

        // A new default reaches tenants without their own quota, not acme.
        quotas.set_default(QuotaConfig::UNLIMITED);
        assert_eq!(quotas.config(&globex), QuotaConfig::UNLIMITED);
        assert_eq!(quotas.config(&acme).concurrent(), Some(1));
        for _ in 0..100 {
            drop(quotas.acquire(&globex).unwrap());
        }
        // Tenants created later start from the new default.
        assert_eq!(quotas.config(&tenant("initech")), QuotaConfig::UNLIMITED);

        // Back to the default.
        quotas.clear_tenant(&acme);
        assert_eq!(quotas.config(&acme), QuotaConfig::UNLIMITED);

        // A whole reload: one tenant with its own, the rest on the default.
        let strict = rate(1.0, 1);
        quotas.configure(
            rate(1000.0, 1000),
            [(globex.clone(), strict), (tenant("newco"), strict)],
        );
        assert_eq!(quotas.config(&globex), strict);
        assert_eq!(quotas.config(&tenant("newco")), strict);
        assert_eq!(quotas.config(&acme), rate(1000.0, 1000));
        assert_eq!(quotas.default_config(), rate(1000.0, 1000));
        drop(quotas.acquire(&globex).unwrap());
        assert!(quotas.acquire(&globex).is_err());
        clock.advance(Duration::from_secs(1));
        drop(quotas.acquire(&globex).unwrap());
        // Reloading without globex returns it to the default.
        quotas.configure(QuotaConfig::UNLIMITED, []);
        assert_eq!(quotas.config(&globex), QuotaConfig::UNLIMITED);

        quotas.remove(&acme);
        assert_eq!(quotas.in_flight(&acme), 0);
    }

    #[test]
    fn lowering_the_burst_caps_the_spent_bucket() {
        let (clock, quotas) = fake();
        let quotas = quotas(rate(1.0, 100));
        let acme = tenant("acme");
        for _ in 0..100 {
            drop(quotas.acquire(&acme).unwrap());
        }
        // Spent 100 s worth of tokens; the new bucket holds 2, so the debt is capped at 2 s.
        quotas.set_default(rate(1.0, 2));
        assert!(quotas.acquire(&acme).is_err());
        clock.advance(Duration::from_secs(1));
        assert!(quotas.acquire(&acme).is_ok());
    }

    #[test]
    fn permits_held_across_a_config_change_stay_counted() {
        let quotas = Quotas::new(QuotaConfig::UNLIMITED);
        let acme = tenant("acme");
        let held: Vec<_> = (0..3).map(|_| quotas.acquire(&acme).unwrap()).collect();
        quotas.set_tenant(&acme, QuotaConfig::new(None, None, Some(3)).unwrap());
        assert_eq!(
            quotas.acquire(&acme).unwrap_err().limit(),
            QuotaLimit::Concurrency
        );
        drop(held);
        assert!(quotas.acquire(&acme).is_ok());
    }

    #[test]
    fn many_threads_never_exceed_the_concurrency_limit() {
        const LIMIT: u32 = 4;
        const THREADS: usize = 16;
        const ATTEMPTS: usize = 20_000;
        let quotas = Arc::new(Quotas::new(
            QuotaConfig::new(None, None, Some(LIMIT)).unwrap(),
        ));
        let acme = tenant("acme");
        let inside = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let admitted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let violated = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (quotas, acme, inside, most, admitted, refused, violated, start) = (
                    Arc::clone(&quotas),
                    acme.clone(),
                    Arc::clone(&inside),
                    Arc::clone(&most),
                    Arc::clone(&admitted),
                    Arc::clone(&refused),
                    Arc::clone(&violated),
                    Arc::clone(&start),
                );
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..ATTEMPTS {
                        match quotas.acquire(&acme) {
                            Ok(permit) => {
                                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(now, Ordering::SeqCst);
                                if now > LIMIT {
                                    violated.store(true, Ordering::SeqCst);
                                }
                                if i % 64 == 0 {
                                    std::thread::yield_now();
                                }
                                inside.fetch_sub(1, Ordering::SeqCst);
                                drop(permit);
                                admitted.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(refusal) => {
                                assert_eq!(refusal.limit(), QuotaLimit::Concurrency);
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert!(
            !violated.load(Ordering::SeqCst),
            "more than {LIMIT} requests in flight"
        );
        assert!(most.load(Ordering::SeqCst) <= LIMIT);
        assert_eq!(
            admitted.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed),
            (THREADS * ATTEMPTS) as u64
        );
        assert!(admitted.load(Ordering::Relaxed) > 0);
        assert_eq!(quotas.in_flight(&acme), 0);
    }

    #[test]
    fn many_threads_never_exceed_the_rate() {
        // With the clock standing still, exactly `burst` requests get through, however many
        // threads race for them.
        let (_clock, quotas) = fake();
        let quotas = Arc::new(quotas(rate(10.0, 500)));
        let acme = tenant("acme");
        let admitted = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (quotas, acme, admitted) =
                    (Arc::clone(&quotas), acme.clone(), Arc::clone(&admitted));
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        if quotas.acquire(&acme).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 500);
    }
}
