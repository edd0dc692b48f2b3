//! The rate-limit stage: quotas per client address, principal and tenant, enforced with the
//! generic cell rate algorithm (GCRA), in this node's memory or shared by every gateway node
//! through Redis.
//!
//! This module owns the rate-limit configuration ([`RawRateLimits`] as written, converted once
//! into [`RateLimits`], which cannot hold an invalid state), the GCRA state of each key (bounded
//! and pruned in memory; bounded by expiry in Redis) and [`RateLimitCheck`], the stage's
//! [`Check`]. It reads the caller from the request's [`Caller`] and must not decide who the
//! caller is: the address, principal and tenant are whatever the layers before it put there, and
//! a request without a [`Caller`] (or without one of its parts) is not limited on that part.
//!
//! GCRA keeps one number per key, its theoretical arrival time (TAT). With the emission interval
//! `T = per_seconds / requests` and the tolerance `τ = T × (burst − 1)`, a request at `now` is
//! allowed when `now ≥ TAT − τ`, and then `TAT = max(TAT, now) + T`; otherwise the client must
//! wait `TAT − τ − now`. A key whose TAT is in the past carries no state, which is what makes the
//! state prunable. A request must pass every configured key it has, and is charged to all of
//! them or to none: a refused request uses up no quota.
//!
//! When the store cannot answer (Redis unreachable, erroring or too slow; the in-memory table
//! full of live keys) the request fails as `on_store_error` says: `closed` refuses it with 503
//! `rate_limit_unavailable`, `open` lets it through and counts it in [`RateLimitMetrics`]. It is
//! never let through silently.
//!
//! Why not the `governor` crate, which DESIGN.md names for GCRA: its keyed limiter has no bound on
//! the number of keys (a new key is always inserted, and its in-memory state type is not usable by
//! an outside store, so a bounded store cannot be written for it), one limiter holds one quota
//! (three limiters would charge the address even when the principal then refuses), and its
//! arithmetic could not be shared with the Redis script. The algorithm itself is a few lines,
//! written here once for the in-memory store and once in Lua for Redis, on the same microsecond
//! numbers.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde::Deserialize;

use crate::routes::{ConfigError, config_error};
use crate::stage::{Caller, Check, Refusal, Stage};

const MICROS_PER_SECOND: u64 = 1_000_000;

/// The longest `per_seconds` a quota may have: 366 days.
pub const MAX_PER_SECONDS: u32 = 366 * 24 * 3600;

/// The longest a key may carry state (`T × burst`): ten years. Bounded so that the Redis script,
/// whose numbers are doubles, stays exact (microseconds since 1970 plus this stay below 2^53).
const MAX_WINDOW_MICROS: u64 = 10 * 366 * 24 * 3600 * MICROS_PER_SECOND;

/// `max_keys` when not set.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// `redis_prefix` when not set.
pub const DEFAULT_REDIS_PREFIX: &str = "portcullis:ratelimit:";

/// `redis_timeout_ms` when not set: long enough for a loaded Redis on the local network, short
/// enough that a blackholed one does not hold every request.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// The longest `redis_timeout_ms` allowed (60 s).
const MAX_REDIS_TIMEOUT_MS: u64 = 60_000;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The rate limits as written in configuration. Convert with [`RateLimits::try_from`].
///
/// ```json
/// {"address": {"requests": 100, "per_seconds": 60, "burst": 20},
///  "tenant": {"requests": 10000, "per_seconds": 60},
///  "store": "redis", "redis_url": "redis://127.0.0.1:6379", "on_store_error": "open"}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    /// The quota per client address.
    pub address: Option<RawQuota>,
    /// The quota per verified principal.
    pub principal: Option<RawQuota>,
    /// The quota per tenant.
    pub tenant: Option<RawQuota>,
    /// `local` (this node's memory; the default) or `redis` (shared by every node).
    pub store: Option<String>,
    /// The Redis server, `redis://[user:password@]host[:port][/db]`; required with `redis`.
    pub redis_url: Option<String>,
    /// The prefix of every Redis key; [`DEFAULT_REDIS_PREFIX`] when not set.
    pub redis_prefix: Option<String>,
    /// How long a Redis answer may take before the store counts as failed, in milliseconds.
    pub redis_timeout_ms: Option<u64>,
    /// `closed` (the default: refuse with 503) or `open` (let through, counted) when the store
    /// cannot answer.
    pub on_store_error: Option<String>,
    /// The most keys the `local` store keeps; [`DEFAULT_MAX_KEYS`] when not set.
    pub max_keys: Option<u64>,
}

/// One quota as written: `requests` per `per_seconds`, with bursts of up to `burst` requests
/// (`requests` when not set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    /// Requests allowed per `per_seconds`, at least 1.
    pub requests: Option<u32>,
    /// The period, in seconds, at least 1.
    pub per_seconds: Option<u32>,
    /// Requests allowed at once after a quiet period, at least 1.
    pub burst: Option<u32>,
}

/// A configuration error, naming the field (`address.requests`, `redis_url`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limits: `{field}`: {problem}")]
pub struct RateLimitConfigError {
    /// The field, with its quota's name where it is in one.
    pub field: String,
    /// What is wrong and what would be right.
    pub problem: String,
}

impl RateLimitConfigError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// What a rate limit is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// The client's address.
    Address,
    /// The verified principal.
    Principal,
    /// The tenant.
    Tenant,
}

impl KeyKind {
    /// Every kind, in the order they are checked.
    pub const ALL: [KeyKind; 3] = [KeyKind::Address, KeyKind::Principal, KeyKind::Tenant];

    /// The kind's name in configuration, refusals (`field`) and Redis keys.
    pub const fn name(self) -> &'static str {
        match self {
            KeyKind::Address => "address",
            KeyKind::Principal => "principal",
            KeyKind::Tenant => "tenant",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A validated quota, with its GCRA numbers in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    requests: NonZeroU32,
    per_seconds: NonZeroU32,
    burst: NonZeroU32,
    interval_micros: u64,
    tolerance_micros: u64,
}

impl Quota {
    fn parse(raw: &RawQuota, kind: KeyKind) -> Result<Self, RateLimitConfigError> {
        let field = |name: &str| format!("{kind}.{name}");
        let positive = |value: Option<u32>, name: &str| match value {
            None => Err(RateLimitConfigError::new(
                field(name),
                "required: a whole number of at least 1",
            )),
            Some(value) => NonZeroU32::new(value)
                .ok_or_else(|| RateLimitConfigError::new(field(name), "must be at least 1, not 0")),
        };
        let requests = positive(raw.requests, "requests")?;
        let per_seconds = positive(raw.per_seconds, "per_seconds")?;
        let burst = match raw.burst {
            None => requests,
            Some(burst) => positive(Some(burst), "burst")?,
        };
        if per_seconds.get() > MAX_PER_SECONDS {
            return Err(RateLimitConfigError::new(
                field("per_seconds"),
                format!("at most {MAX_PER_SECONDS} (366 days), not {per_seconds}"),
            ));
        }
        let period_micros = u64::from(per_seconds.get()) * MICROS_PER_SECOND;
        let requests_wide = u64::from(requests.get());
        if period_micros < requests_wide {
            return Err(RateLimitConfigError::new(
                field("requests"),
                format!(
                    "{requests} per {per_seconds} s is more than one request per microsecond, \
                     the finest rate that can be limited"
                ),
            ));
        }
        // Rounded up so the steady rate never exceeds the configured one.
        let interval_micros = period_micros.div_ceil(requests_wide);
        let window = interval_micros.checked_mul(u64::from(burst.get()));
        let Some(window) = window.filter(|window| *window <= MAX_WINDOW_MICROS) else {
            return Err(RateLimitConfigError::new(
                field("burst"),
                format!(
                    "a burst of {burst} at {requests} per {per_seconds} s takes more than ten \
                     years to refill; use a smaller burst"
                ),
            ));
        };
        Ok(Self {
            requests,
            per_seconds,
            burst,
            interval_micros,
            tolerance_micros: window - interval_micros,
        })
    }

    /// Requests allowed per [`Quota::per_seconds`].
    pub fn requests(&self) -> u32 {
        self.requests.get()
    }

    /// The period, in seconds.
    pub fn per_seconds(&self) -> u32 {
        self.per_seconds.get()
    }

    /// Requests allowed at once after a quiet period.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// The emission interval `T`: the steady time between two requests.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_micros(self.interval_micros)
    }

    /// The tolerance `τ = T × (burst − 1)`: how far ahead of the steady rate a key may run.
    pub fn tolerance(&self) -> Duration {
        Duration::from_micros(self.tolerance_micros)
    }
}

/// Where the GCRA state lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// This node's memory, at most `max_keys` keys. Each node enforces its own limit.
    Local {
        /// The most keys kept at once.
        max_keys: NonZeroUsize,
    },
    /// A Redis server shared by every node, which then enforce one limit together.
    Redis(RedisConfig),
}

/// The Redis store's settings.
#[derive(Clone)]
pub struct RedisConfig {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
}

impl RedisConfig {
    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long an answer may take before the store counts as failed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The server's address only: the URL may carry a password.
        formatter
            .debug_struct("RedisConfig")
            .field("address", &self.client.get_connection_info().addr())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What happens to a request when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Refuse it with 503 `rate_limit_unavailable`.
    #[default]
    Closed,
    /// Let it through, counted in [`RateLimitMetrics::passed_on_store_error`].
    Open,
}

/// Validated rate limits: at least one quota, a store with its settings, and a failure mode.
#[derive(Debug, Clone)]
pub struct RateLimits {
    quotas: [Option<Quota>; 3],
    store: StoreConfig,
    on_store_error: OnStoreError,
}

impl RateLimits {
    /// The quota of `kind`, when one is configured.
    pub fn quota(&self, kind: KeyKind) -> Option<&Quota> {
        self.quotas[kind as usize].as_ref()
    }

    /// Where the state lives.
    pub fn store(&self) -> &StoreConfig {
        &self.store
    }

    /// What happens when the store cannot answer.
    pub fn on_store_error(&self) -> OnStoreError {
        self.on_store_error
    }
}

impl TryFrom<RawRateLimits> for RateLimits {
    type Error = RateLimitConfigError;

    fn try_from(raw: RawRateLimits) -> Result<Self, Self::Error> {
        let quota = |raw_quota: &Option<RawQuota>, kind| {
            raw_quota
                .as_ref()
                .map(|raw_quota| Quota::parse(raw_quota, kind))
                .transpose()
        };
        let quotas = [
            quota(&raw.address, KeyKind::Address)?,
            quota(&raw.principal, KeyKind::Principal)?,
            quota(&raw.tenant, KeyKind::Tenant)?,
        ];
        if quotas.iter().all(Option::is_none) {
            // Rate limits that limit nothing are a mistake: leave the section out instead.
            return Err(RateLimitConfigError::new(
                "address",
                "no quota is configured: set at least one of `address`, `principal` or `tenant`",
            ));
        }
        let on_store_error = on_store_error(raw.on_store_error.as_deref())?;
        let store = match raw.store.as_deref() {
            None | Some("local") => local_store(&raw, quotas.iter().flatten().count())?,
            Some("redis") => redis_store(&raw)?,
            Some(other) => {
                return Err(RateLimitConfigError::new(
                    "store",
                    format!("`local` or `redis`, not `{other}`"),
                ));
            }
        };
        Ok(Self {
            quotas,
            store,
            on_store_error,
        })
    }
}

/// A setting of the other store is refused rather than ignored, so that a configuration never
/// looks shared when it is not.
fn only_with(present: bool, field: &str, store: &str) -> Result<(), RateLimitConfigError> {
    if present {
        return Err(RateLimitConfigError::new(
            field,
            format!("only applies with `store = \"{store}\"`"),
        ));
    }
    Ok(())
}

/// `quotas` is how many keys one request can need: fewer than that and a caller could never fit.
fn local_store(raw: &RawRateLimits, quotas: usize) -> Result<StoreConfig, RateLimitConfigError> {
    only_with(raw.redis_url.is_some(), "redis_url", "redis")?;
    only_with(raw.redis_prefix.is_some(), "redis_prefix", "redis")?;
    only_with(raw.redis_timeout_ms.is_some(), "redis_timeout_ms", "redis")?;
    let max_keys = match raw.max_keys {
        None => NonZeroUsize::new(DEFAULT_MAX_KEYS),
        Some(max_keys) => usize::try_from(max_keys).ok().and_then(NonZeroUsize::new),
    };
    let Some(max_keys) = max_keys.filter(|max_keys| max_keys.get() >= quotas) else {
        return Err(RateLimitConfigError::new(
            "max_keys",
            format!(
                "must be at least {quotas} (one key per configured quota) and fit this \
                 machine's memory"
            ),
        ));
    };
    Ok(StoreConfig::Local { max_keys })
}

fn redis_store(raw: &RawRateLimits) -> Result<StoreConfig, RateLimitConfigError> {
    only_with(raw.max_keys.is_some(), "max_keys", "local")?;
    redis_config(
        raw.redis_url.as_deref(),
        raw.redis_prefix.clone(),
        raw.redis_timeout_ms,
        DEFAULT_REDIS_PREFIX,
    )
    .map(StoreConfig::Redis)
}

/// A Redis server's settings as written (`redis_url`, `redis_prefix`, `redis_timeout_ms`),
/// checked: shared by every stage that keeps its state there.
pub(crate) fn redis_config(
    url: Option<&str>,
    prefix: Option<String>,
    timeout_ms: Option<u64>,
    default_prefix: &str,
) -> Result<RedisConfig, RateLimitConfigError> {
    let Some(url) = url else {
        return Err(RateLimitConfigError::new(
            "redis_url",
            "required with `store = \"redis\"`, e.g. `redis://127.0.0.1:6379`",
        ));
    };
    // Parsing checks the URL without connecting; the connection is made on the first request.
    let client = redis::Client::open(url).map_err(|error| {
        RateLimitConfigError::new(
            "redis_url",
            format!("not a usable Redis URL ({error}); expected `redis://host[:port][/db]`"),
        )
    })?;
    let prefix = prefix.unwrap_or_else(|| default_prefix.to_owned());
    if prefix.is_empty() {
        return Err(RateLimitConfigError::new(
            "redis_prefix",
            "must not be empty: the keys would mix with the server's other keys",
        ));
    }
    let timeout = match timeout_ms {
        None => DEFAULT_REDIS_TIMEOUT,
        Some(milliseconds @ 1..=MAX_REDIS_TIMEOUT_MS) => Duration::from_millis(milliseconds),
        Some(other) => {
            return Err(RateLimitConfigError::new(
                "redis_timeout_ms",
                format!("between 1 and {MAX_REDIS_TIMEOUT_MS}, not {other}"),
            ));
        }
    };
    Ok(RedisConfig {
        client,
        prefix,
        timeout,
    })
}

/// `on_store_error` as written: `closed` (the default) or `open`.
pub(crate) fn on_store_error(written: Option<&str>) -> Result<OnStoreError, RateLimitConfigError> {
    match written {
        None | Some("closed") => Ok(OnStoreError::Closed),
        Some("open") => Ok(OnStoreError::Open),
        Some(other) => Err(RateLimitConfigError::new(
            "on_store_error",
            format!("`closed` or `open`, not `{other}`"),
        )),
    }
}

/// A connection to a configured Redis server, made on the first use rather than at
/// construction: the connection manager needs a running Tokio runtime, and a server that is
/// down at start must fail requests as configured, not the start.
pub(crate) struct RedisConnection {
    pub(crate) config: RedisConfig,
    connection: OnceLock<redis::aio::ConnectionManager>,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RedisConnection")
            .field("config", &self.config)
            .field("connected", &self.connection.get().is_some())
            .finish()
    }
}

impl RedisConnection {
    pub(crate) fn new(config: RedisConfig) -> Self {
        Self {
            config,
            connection: OnceLock::new(),
        }
    }

    pub(crate) fn get(&self) -> Result<redis::aio::ConnectionManager, redis::RedisError> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        // No retries inside the manager: a request waits for one attempt at most, and the next
        // request starts the next attempt.
        let settings = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(self.config.timeout));
        let connection = redis::aio::ConnectionManager::new_lazy_with_config(
            self.config.client.clone(),
            settings,
        )?;
        // Two first requests may race; the loser's manager is dropped unused.
        Ok(self.connection.get_or_init(|| connection).clone())
    }

    /// One call to the server, made by `call` on a connection, within the timeout. What went
    /// wrong is said for an operator: `Redis: …`, or that it did not answer in time.
    pub(crate) async fn round_trip<T, F>(
        &self,
        call: impl FnOnce(redis::aio::ConnectionManager) -> F,
    ) -> Result<T, String>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.get().map_err(|error| format!("Redis: {error}"))?;
        match tokio::time::timeout(self.config.timeout, call(connection)).await {
            Err(_elapsed) => Err(format!(
                "Redis did not answer within {} ms",
                self.config.timeout.as_millis()
            )),
            Ok(Err(error)) => Err(format!("Redis: {error}")),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// How many of `keys` `command` (`EXISTS`, `DEL`) counts, in one call within the timeout.
    pub(crate) async fn count_keys(&self, command: &str, keys: &[String]) -> Result<u64, String> {
        self.round_trip(|mut connection| async move {
            redis::cmd(command)
                .arg(keys)
                .query_async::<u64>(&mut connection)
                .await
        })
        .await
    }
}

/// The store settings of a stage that keeps its state in this node's memory or in Redis
/// (login protection, sessions), as written.
#[derive(Debug)]
pub(crate) struct RawStore<'a> {
    /// `local` (the default) or `redis`.
    pub(crate) store: Option<&'a str>,
    pub(crate) redis_url: Option<&'a str>,
    pub(crate) redis_prefix: Option<String>,
    pub(crate) redis_timeout_ms: Option<u64>,
    pub(crate) on_store_error: Option<&'a str>,
    /// The local store's bound.
    pub(crate) max_keys: Option<usize>,
    /// `max_keys` when not set.
    pub(crate) default_max_keys: usize,
    /// Whether the local store can fail too (when full), so that `on_store_error` applies to
    /// it as well.
    pub(crate) local_can_fail: bool,
}

impl RawStore<'_> {
    /// The checked settings: the Redis server with `store = "redis"` (`None`: this node's
    /// memory), what a failed store means, and the local store's bound. A setting of the other
    /// store is refused rather than ignored, so that a configuration never looks shared when it
    /// is not; errors name the key.
    pub(crate) fn check(
        self,
        default_prefix: &str,
    ) -> Result<(Option<RedisConnection>, OnStoreError, usize), ConfigError> {
        let shared = |error: RateLimitConfigError| config_error(error.field, error.problem);
        let on_store_error = on_store_error(self.on_store_error).map_err(shared)?;
        let max_keys = match self.max_keys {
            Some(0) => return Err(config_error("max_keys", "must be above 0")),
            Some(value) => value,
            None => self.default_max_keys,
        };
        let redis = match self.store {
            None | Some("local") => {
                for (present, field) in [
                    (self.redis_url.is_some(), "redis_url"),
                    (self.redis_prefix.is_some(), "redis_prefix"),
                    (self.redis_timeout_ms.is_some(), "redis_timeout_ms"),
                    (
                        self.on_store_error.is_some() && !self.local_can_fail,
                        "on_store_error",
                    ),
                ] {
                    only_with(present, field, "redis").map_err(shared)?;
                }
                None
            }
            Some("redis") => {
                only_with(self.max_keys.is_some(), "max_keys", "local").map_err(shared)?;
                let config = redis_config(
                    self.redis_url,
                    self.redis_prefix,
                    self.redis_timeout_ms,
                    default_prefix,
                )
                .map_err(shared)?;
                Some(RedisConnection::new(config))
            }
            Some(other) => {
                return Err(config_error(
                    "store",
                    format!("`local` or `redis`, not `{other}`"),
                ));
            }
        };
        Ok((redis, on_store_error, max_keys))
    }
}

// ---------------------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------------------

/// The time the in-memory store runs on (the Redis store uses the server's clock).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Microseconds since an origin of the clock's choosing; never goes backwards.
    fn now_micros(&self) -> u64;
}

/// The process's monotonic clock, counted from the clock's creation.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock starting at zero now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_micros(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told, for tests. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> u64 {
        self.micros.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// GCRA
// ---------------------------------------------------------------------------------------------

/// One key's verdict at `now`: its new TAT when allowed, else the microseconds to wait.
fn gcra(tat: Option<u64>, now: u64, quota: &Quota) -> Result<u64, u64> {
    // A missing or past TAT means the key is at rest: a full burst is available.
    let tat = tat.map_or(now, |tat| tat.max(now));
    let allowed_from = tat.saturating_sub(quota.tolerance_micros);
    if allowed_from > now {
        return Err(allowed_from - now);
    }
    Ok(tat.saturating_add(quota.interval_micros))
}

/// Whole seconds to wait, rounded up and at least 1, as `Retry-After` wants them.
fn retry_after_seconds(wait_micros: u64) -> u64 {
    wait_micros.div_ceil(MICROS_PER_SECOND).max(1)
}

/// The value a key is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyValue {
    Address(IpAddr),
    Name(String),
}

impl fmt::Display for KeyValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Address(address) => address.fmt(formatter),
            KeyValue::Name(name) => formatter.write_str(name),
        }
    }
}

/// One configured limit that applies to a request.
#[derive(Debug, Clone)]
struct Key {
    kind: KeyKind,
    value: KeyValue,
    quota: Quota,
}

/// The limit that must be waited for longest, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limited {
    kind: KeyKind,
    quota: Quota,
    wait_micros: u64,
}

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoreError {
    reason: String,
    retry_after_seconds: u64,
}

// ---------------------------------------------------------------------------------------------
// The in-memory store
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct LocalState {
    tats: HashMap<(KeyKind, KeyValue), u64>,
    /// No entry expires before this, so pruning earlier would free nothing: keeps a table full
    /// of live keys from being scanned on every new key.
    next_expiry: u64,
}

impl LocalState {
    /// Drops every entry at rest and returns how many went.
    fn prune(&mut self, now: u64) -> usize {
        let before = self.tats.len();
        self.tats.retain(|_, tat| *tat > now);
        self.next_expiry = self.tats.values().copied().min().unwrap_or(u64::MAX);
        before - self.tats.len()
    }
}

/// GCRA state in this node's memory, at most `max_keys` keys.
///
/// When a request needs new keys and the table is full, entries at rest are pruned first; if it
/// is still full the request is a store error. Then `closed` refuses it (503, the client retries
/// when the oldest key comes to rest) and `open` lets it through, charging the keys it already
/// has but not recording the new ones. Refusing keeps a flood of new addresses from pushing out
/// the state of clients being limited; it also means such a flood can lock out new clients until
/// keys come to rest, which is why the choice is the operator's.
#[derive(Debug)]
struct LocalStore {
    state: Mutex<LocalState>,
    max_keys: usize,
    clock: Arc<dyn Clock>,
}

impl LocalStore {
    fn new(max_keys: NonZeroUsize, clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::new(LocalState {
                tats: HashMap::new(),
                next_expiry: u64::MAX,
            }),
            max_keys: max_keys.get(),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        // The state is plain numbers, each written whole: a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(&self, keys: &[Key], mode: OnStoreError) -> Result<Option<Limited>, StoreError> {
        let now = self.clock.now_micros();
        let mut state = self.lock();
        let mut limited: Option<Limited> = None;
        let mut new_tats = Vec::with_capacity(keys.len());
        let mut new_keys = 0;
        for key in keys {
            let entry = (key.kind, key.value.clone());
            let tat = state.tats.get(&entry).copied();
            if tat.is_none() {
                new_keys += 1;
            }
            match gcra(tat, now, &key.quota) {
                Ok(new_tat) => new_tats.push((entry, new_tat, tat.is_none())),
                Err(wait_micros) => {
                    if limited.is_none_or(|longest| wait_micros > longest.wait_micros) {
                        limited = Some(Limited {
                            kind: key.kind,
                            quota: key.quota,
                            wait_micros,
                        });
                    }
                }
            }
        }
        if limited.is_some() {
            return Ok(limited);
        }
        let mut full = None;
        if new_keys > 0 && state.tats.len() + new_keys > self.max_keys {
            if now >= state.next_expiry {
                state.prune(now);
            }
            if state.tats.len() + new_keys > self.max_keys {
                // With no entry left to expire there is no better time to name than "soon".
                let wait = match state.next_expiry {
                    u64::MAX => 0,
                    next_expiry => next_expiry.saturating_sub(now),
                };
                full = Some(StoreError {
                    reason: format!("the rate-limit table is full ({} keys)", self.max_keys),
                    retry_after_seconds: retry_after_seconds(wait),
                });
            }
        }
        if mode == OnStoreError::Closed
            && let Some(error) = full
        {
            return Err(error);
        }
        for (entry, new_tat, is_new) in new_tats {
            if is_new && full.is_some() {
                continue;
            }
            if is_new {
                state.next_expiry = state.next_expiry.min(new_tat);
            }
            state.tats.insert(entry, new_tat);
        }
        match full {
            Some(error) => Err(error),
            None => Ok(None),
        }
    }

    fn prune(&self) -> usize {
        let now = self.clock.now_micros();
        self.lock().prune(now)
    }

    fn len(&self) -> usize {
        self.lock().tats.len()
    }
}

// ---------------------------------------------------------------------------------------------
// The Redis store
// ---------------------------------------------------------------------------------------------

/// GCRA over every key of a request, atomically. KEYS are the request's keys; ARGV holds each
/// key's emission interval and tolerance in microseconds, in pairs. The time is the server's, so
/// nodes with skewed clocks agree. All keys pass or none is charged. Returns `{0, 0}` when
/// allowed, else `{i, wait}`: the key (1-based) to wait for longest and the microseconds to
/// wait. Every key written expires when it comes to rest, so the server's state is bounded by
/// the live keys. Numbers are written with `%.0f` because Lua would print large ones in
/// exponent notation, losing digits.
const GCRA_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tats = {}
local refused, longest = 0, 0
for i = 1, #KEYS do
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local wait = tat - tolerance - now
  if wait > longest then refused, longest = i, wait end
  tats[i] = tat
end
if refused > 0 then return {refused, longest} end
for i = 1, #KEYS do
  local tat = tats[i] + tonumber(ARGV[2 * i - 1])
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
end
return {0, 0}
";

/// Hashed once: `invoke_async` sends EVALSHA and falls back to loading the script on NOSCRIPT.
static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA_SCRIPT));

/// GCRA state in Redis, shared by every node with the same server and prefix.
#[derive(Debug)]
struct RedisStore {
    redis: RedisConnection,
}

impl RedisStore {
    fn key_name(&self, key: &Key) -> String {
        format!("{}{}:{}", self.redis.config.prefix, key.kind, key.value)
    }

    async fn check(&self, keys: &[Key]) -> Result<Option<Limited>, StoreError> {
        let unavailable = |reason: String| StoreError {
            reason,
            retry_after_seconds: 1,
        };
        let mut invocation = SCRIPT.prepare_invoke();
        for key in keys {
            invocation
                .key(self.key_name(key))
                .arg(key.quota.interval_micros)
                .arg(key.quota.tolerance_micros);
        }
        let (refused, wait) = self
            .redis
            .round_trip(|mut connection| async move {
                invocation.invoke_async::<(i64, i64)>(&mut connection).await
            })
            .await
            .map_err(unavailable)?;
        if refused == 0 {
            return Ok(None);
        }
        let key = usize::try_from(refused - 1)
            .ok()
            .and_then(|index| keys.get(index))
            .ok_or_else(|| unavailable(format!("Redis: the script named key {refused}")))?;
        Ok(Some(Limited {
            kind: key.kind,
            quota: key.quota,
            wait_micros: u64::try_from(wait).unwrap_or(1),
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// The stage
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Backend {
    Local(LocalStore),
    Redis(RedisStore),
}

#[derive(Debug, Default)]
struct Counters {
    limited: AtomicU64,
    passed_on_store_error: AtomicU64,
    refused_on_store_error: AtomicU64,
    last_store_error: Mutex<Option<String>>,
}

/// What the stage has done so far: the hook for metrics and health checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitMetrics {
    /// Requests refused with 429.
    pub limited: u64,
    /// Requests let through unchecked because the store failed and `on_store_error = "open"`.
    pub passed_on_store_error: u64,
    /// Requests refused with 503 because the store failed and `on_store_error = "closed"`.
    pub refused_on_store_error: u64,
    /// Why the store last failed, if it ever has.
    pub last_store_error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    limits: RateLimits,
    backend: Backend,
    counters: Counters,
}

/// The rate-limit stage: every configured limit the request's [`Caller`] has must pass, or the
/// request is refused with 429 `rate_limited`, `Retry-After` and `field` naming the limit
/// (`address`, `principal` or `tenant`). Clones share their state. With the Redis store, checks
/// must run on a Tokio runtime (the connection is made, and kept up, by Tokio tasks).
#[derive(Debug, Clone)]
pub struct RateLimitCheck {
    shared: Arc<Shared>,
}

impl RateLimitCheck {
    /// The stage for `limits`; the in-memory store runs on the process's monotonic clock.
    pub fn new(limits: RateLimits) -> Self {
        Self::with_clock(limits, Arc::new(MonotonicClock::new()))
    }

    /// The stage for `limits`, its in-memory store running on `clock` (the Redis store always
    /// uses the server's time).
    pub fn with_clock(limits: RateLimits, clock: Arc<dyn Clock>) -> Self {
        let backend = match limits.store() {
            StoreConfig::Local { max_keys } => Backend::Local(LocalStore::new(*max_keys, clock)),
            StoreConfig::Redis(config) => Backend::Redis(RedisStore {
                redis: RedisConnection::new(config.clone()),
            }),
        };
        Self {
            shared: Arc::new(Shared {
                limits,
                backend,
                counters: Counters::default(),
            }),
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> &RateLimits {
        &self.shared.limits
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> RateLimitMetrics {
        let counters = &self.shared.counters;
        RateLimitMetrics {
            limited: counters.limited.load(Ordering::Relaxed),
            passed_on_store_error: counters.passed_on_store_error.load(Ordering::Relaxed),
            refused_on_store_error: counters.refused_on_store_error.load(Ordering::Relaxed),
            last_store_error: counters
                .last_store_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// Keys held by the in-memory store (`None` with Redis, which expires its own).
    pub fn tracked_keys(&self) -> Option<usize> {
        match &self.shared.backend {
            Backend::Local(store) => Some(store.len()),
            Backend::Redis(_) => None,
        }
    }

    /// Drops the in-memory keys at rest now and returns how many went. The store prunes itself
    /// when full; call this from a timer to give the memory back sooner.
    pub fn prune(&self) -> usize {
        match &self.shared.backend {
            Backend::Local(store) => store.prune(),
            Backend::Redis(_) => 0,
        }
    }

    /// Charges `caller` against every configured limit it has, or says why not.
    pub async fn check_caller(&self, caller: &Caller) -> Result<(), Refusal> {
        self.charge(self.keys(caller)).await
    }

    async fn charge(&self, keys: Vec<Key>) -> Result<(), Refusal> {
        if keys.is_empty() {
            return Ok(());
        }
        let mode = self.shared.limits.on_store_error;
        let verdict = match &self.shared.backend {
            Backend::Local(store) => store.check(&keys, mode),
            Backend::Redis(store) => store.check(&keys).await,
        };
        let counters = &self.shared.counters;
        // One place decides what each outcome means for the request.
        match (verdict, mode) {
            // Every limit passed and was charged.
            (Ok(None), _) => Ok(()),
            // A limit is exhausted: the client waits for the one that refills last.
            (Ok(Some(limited)), _) => {
                counters.limited.fetch_add(1, Ordering::Relaxed);
                Err(limited_refusal(limited))
            }
            // The store failed and the operator chose availability: through, but counted.
            (Err(error), OnStoreError::Open) => {
                counters
                    .passed_on_store_error
                    .fetch_add(1, Ordering::Relaxed);
                self.remember(error.reason);
                Ok(())
            }
            // The store failed and the operator chose safety: nobody passes unlimited.
            (Err(error), OnStoreError::Closed) => {
                counters
                    .refused_on_store_error
                    .fetch_add(1, Ordering::Relaxed);
                let retry_after = error.retry_after_seconds;
                self.remember(error.reason);
                Err(Refusal::new(
                    Stage::RateLimit,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "rate_limit_unavailable",
                    "rate limits cannot be checked right now; try again later",
                )
                .with_retry_after(retry_after))
            }
        }
    }

    fn keys(&self, caller: &Caller) -> Vec<Key> {
        let limits = &self.shared.limits;
        let values = [
            caller.address.map(KeyValue::Address),
            caller.principal.clone().map(KeyValue::Name),
            caller.tenant.clone().map(KeyValue::Name),
        ];
        KeyKind::ALL
            .into_iter()
            .zip(values)
            .filter_map(|(kind, value)| {
                let quota = *limits.quota(kind)?;
                Some(Key {
                    kind,
                    value: value?,
                    quota,
                })
            })
            .collect()
    }

    fn remember(&self, reason: String) {
        *self
            .shared
            .counters
            .last_store_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
}

fn limited_refusal(limited: Limited) -> Refusal {
    let quota = &limited.quota;
    let retry_after = retry_after_seconds(limited.wait_micros);
    Refusal::new(
        Stage::RateLimit,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many requests for this {kind}: the limit is {requests} per {per} s \
             (bursts of {burst}); retry in {retry_after} s",
            kind = limited.kind,
            requests = quota.requests,
            per = quota.per_seconds,
            burst = quota.burst,
        ),
    )
    .with_field(limited.kind.name())
    .with_retry_after(retry_after)
}

impl Check for RateLimitCheck {
    const STAGE: Stage = Stage::RateLimit;

    async fn check(&self, request: Request<Body>) -> Result<Request<Body>, Refusal> {
        // The keys are taken out first so that no borrow of the (not `Sync`) request is held
        // across the await.
        let keys = match request.extensions().get::<Caller>() {
            Some(caller) => self.keys(caller),
            None => Vec::new(),
        };
        self.charge(keys).await?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "tests: a failed step must fail the test"
    )]

    use std::future::Future as _;

    use super::*;

    fn quota(requests: u32, per_seconds: u32, burst: Option<u32>) -> RawQuota {
        RawQuota {
            requests: Some(requests),
            per_seconds: Some(per_seconds),
            burst,
        }
    }

    fn local(raw: RawRateLimits) -> (RateLimitCheck, ManualClock) {
        let clock = ManualClock::new();
        let check = RateLimitCheck::with_clock(raw.try_into().unwrap(), Arc::new(clock.clone()));
        (check, clock)
    }

    fn by_address(address: &str) -> Caller {
        Caller {
            address: Some(address.parse().unwrap()),
            ..Caller::default()
        }
    }

    fn run(check: &RateLimitCheck, caller: &Caller) -> Result<(), Refusal> {
        // The in-memory path never awaits, so a no-op waker is enough to drive it.
        let future = check.check_caller(caller);
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => panic!("the in-memory store never waits"),
        }
    }

    #[test]
    fn gcra_allows_a_burst_then_the_steady_rate() {
        let quota = Quota::parse(&quota(2, 1, Some(3)), KeyKind::Address).unwrap();
        assert_eq!(quota.emission_interval(), Duration::from_millis(500));
        assert_eq!(quota.tolerance(), Duration::from_millis(1000));
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra(tat, 0, &quota).unwrap());
        }
        assert_eq!(tat, Some(1_500_000));
        assert_eq!(gcra(tat, 0, &quota), Err(500_000));
        assert_eq!(gcra(tat, 499_999, &quota), Err(1));
        assert_eq!(gcra(tat, 500_000, &quota), Ok(2_000_000));
        // Long after, the key is at rest again: a full burst.
        assert_eq!(gcra(Some(2_000_000), 10_000_000, &quota), Ok(10_500_000));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(0), 1);
        assert_eq!(retry_after_seconds(1), 1);
        assert_eq!(retry_after_seconds(1_000_000), 1);
        assert_eq!(retry_after_seconds(1_000_001), 2);
    }

    #[test]
    fn burst_then_refused_with_retry_after() {
        let (check, clock) = local(RawRateLimits {
            address: Some(quota(6, 60, Some(3))),
            ..RawRateLimits::default()
        });
        let caller = by_address("192.0.2.1");
        for _ in 0..3 {
            run(&check, &caller).unwrap();
        }
        let refusal = run(&check, &caller).unwrap_err();
        assert_eq!(refusal.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.code, "rate_limited");
        assert_eq!(refusal.field.as_deref(), Some("address"));
        // One request per 10 s; the burst ran 20 s ahead, of which τ = 20 s is allowed.
        assert_eq!(refusal.retry_after, Some(10));
        clock.advance(Duration::from_millis(9_999));
        assert_eq!(run(&check, &caller).unwrap_err().retry_after, Some(1));
        clock.advance(Duration::from_millis(1));
        run(&check, &caller).unwrap();
        assert_eq!(check.metrics().limited, 2);
    }

    #[test]
    fn steady_rate_is_never_refused() {
        let (check, clock) = local(RawRateLimits {
            principal: Some(quota(10, 1, Some(1))),
            ..RawRateLimits::default()
        });
        let caller = Caller {
            principal: Some("alice".into()),
            ..Caller::default()
        };
        for _ in 0..100 {
            run(&check, &caller).unwrap();
            clock.advance(Duration::from_millis(100));
        }
        assert!(run(&check, &caller).is_ok());
        assert!(run(&check, &caller).is_err(), "burst 1: no second at once");
    }

    #[test]
    fn keys_are_independent() {
        let (check, _clock) = local(RawRateLimits {
            address: Some(quota(1, 60, None)),
            ..RawRateLimits::default()
        });
        run(&check, &by_address("192.0.2.1")).unwrap();
        assert!(run(&check, &by_address("192.0.2.1")).is_err());
        run(&check, &by_address("192.0.2.2")).unwrap();
        run(&check, &by_address("2001:db8::1")).unwrap();
    }

    #[test]
    fn a_request_passes_every_limit_or_is_charged_to_none() {
        let (check, _clock) = local(RawRateLimits {
            address: Some(quota(10, 60, None)),
            tenant: Some(quota(2, 60, None)),
            ..RawRateLimits::default()
        });
        let caller = Caller {
            address: Some("192.0.2.1".parse().unwrap()),
            principal: Some("unlimited: no principal quota".into()),
            tenant: Some("acme".into()),
            ..Caller::default()
        };
        run(&check, &caller).unwrap();
        run(&check, &caller).unwrap();
        for _ in 0..5 {
            let refusal = run(&check, &caller).unwrap_err();
            assert_eq!(refusal.field.as_deref(), Some("tenant"));
        }
        // The refused requests charged the address nothing: 8 of its 10 are left.
        let other_tenant = Caller {
            tenant: Some("globex".into()),
            ..caller.clone()
        };
        for _ in 0..2 {
            run(&check, &other_tenant).unwrap();
        }
        for _ in 0..6 {
            run(
                &check,
                &Caller {
                    tenant: None,
                    ..caller.clone()
                },
            )
            .unwrap();
        }
        let refusal = run(
            &check,
            &Caller {
                tenant: None,
                ..caller.clone()
            },
        )
        .unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("address"));
    }

    #[test]
    fn the_limit_waited_for_longest_is_named() {
        let (check, clock) = local(RawRateLimits {
            address: Some(quota(1, 10, None)),
            principal: Some(quota(1, 100, None)),
            ..RawRateLimits::default()
        });
        let caller = Caller {
            address: Some("192.0.2.1".parse().unwrap()),
            principal: Some("alice".into()),
            ..Caller::default()
        };
        run(&check, &caller).unwrap();
        let refusal = run(&check, &caller).unwrap_err();
        assert_eq!(refusal.field.as_deref(), Some("principal"));
        assert_eq!(refusal.retry_after, Some(100));
        clock.advance(Duration::from_secs(10));
        assert_eq!(run(&check, &caller).unwrap_err().retry_after, Some(90));
    }

    #[test]
    fn callers_without_a_configured_key_are_not_limited() {
        let (check, _clock) = local(RawRateLimits {
            tenant: Some(quota(1, 60, None)),
            ..RawRateLimits::default()
        });
        for _ in 0..10 {
            run(&check, &by_address("192.0.2.1")).unwrap();
            run(&check, &Caller::default()).unwrap();
        }
        assert_eq!(check.tracked_keys(), Some(0));
    }

    #[test]
    fn pruning_keeps_memory_bounded() {
        let (check, clock) = local(RawRateLimits {
            address: Some(quota(1, 1, None)),
            max_keys: Some(50),
            ..RawRateLimits::default()
        });
        for round in 0..20_u32 {
            for host in 0..50_u32 {
                let address = std::net::Ipv6Addr::from(u128::from(round * 1000 + host));
                run(
                    &check,
                    &Caller {
                        address: Some(address.into()),
                        ..Caller::default()
                    },
                )
                .unwrap();
            }
            assert!(check.tracked_keys().unwrap() <= 50);
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(check.metrics(), RateLimitMetrics::default());
        assert_eq!(check.prune(), 50, "every key has come to rest");
        assert_eq!(check.tracked_keys(), Some(0));
    }

    #[test]
    fn a_full_table_refuses_new_keys_when_closed() {
        let (check, clock) = local(RawRateLimits {
            address: Some(quota(1, 30, None)),
            max_keys: Some(2),
            ..RawRateLimits::default()
        });
        run(&check, &by_address("192.0.2.1")).unwrap();
        clock.advance(Duration::from_secs(10));
        run(&check, &by_address("192.0.2.2")).unwrap();
        let refusal = run(&check, &by_address("192.0.2.3")).unwrap_err();
        assert_eq!(refusal.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refusal.code, "rate_limit_unavailable");
        // The first key comes to rest 20 s from now.
        assert_eq!(refusal.retry_after, Some(20));
        // Known keys are still limited as usual.
        assert_eq!(
            run(&check, &by_address("192.0.2.1")).unwrap_err().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        clock.advance(Duration::from_secs(20));
        run(&check, &by_address("192.0.2.3")).unwrap();
        assert_eq!(check.tracked_keys(), Some(2));
        let metrics = check.metrics();
        assert_eq!(metrics.refused_on_store_error, 1);
        assert!(metrics.last_store_error.unwrap().contains("full"));
    }

    #[test]
    fn a_full_table_lets_new_keys_through_unrecorded_when_open() {
        let (check, _clock) = local(RawRateLimits {
            address: Some(quota(1, 30, None)),
            tenant: Some(quota(100, 30, None)),
            max_keys: Some(2),
            on_store_error: Some("open".into()),
            ..RawRateLimits::default()
        });
        let caller = |address: &str| Caller {
            address: Some(address.parse().unwrap()),
            tenant: Some("acme".into()),
            ..Caller::default()
        };
        run(&check, &caller("192.0.2.1")).unwrap();
        for _ in 0..3 {
            run(&check, &caller("192.0.2.2")).unwrap();
        }
        assert_eq!(check.tracked_keys(), Some(2));
        assert_eq!(check.metrics().passed_on_store_error, 3);
        // The tenant, already known, was charged for all four.
        let tenant_tat = check_tat(&check, KeyKind::Tenant, KeyValue::Name("acme".into()));
        assert_eq!(tenant_tat, 4 * 300_000);
    }

    fn check_tat(check: &RateLimitCheck, kind: KeyKind, value: KeyValue) -> u64 {
        let Backend::Local(store) = &check.shared.backend else {
            panic!("local store expected");
        };
        *store.lock().tats.get(&(kind, value)).unwrap()
    }

    #[test]
    fn pruning_a_full_table_of_live_keys_waits_for_the_first_expiry() {
        let clock = ManualClock::new();
        let store = LocalStore::new(NonZeroUsize::new(2).unwrap(), Arc::new(clock.clone()));
        let quota = Quota::parse(&quota(1, 10, None), KeyKind::Address).unwrap();
        let key = |host: u8| Key {
            kind: KeyKind::Address,
            value: KeyValue::Address(IpAddr::from([192, 0, 2, host])),
            quota,
        };
        store.check(&[key(1)], OnStoreError::Closed).unwrap();
        store.check(&[key(2)], OnStoreError::Closed).unwrap();
        assert_eq!(store.lock().next_expiry, 10_000_000);
        assert!(store.check(&[key(3)], OnStoreError::Closed).is_err());
        clock.advance(Duration::from_secs(10));
        assert_eq!(store.check(&[key(3)], OnStoreError::Closed), Ok(None));
        assert_eq!(store.len(), 1, "both old keys pruned, the new one kept");
    }
}
