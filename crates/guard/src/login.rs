//! Login protection: the outcomes of the configured login route are counted per account and per
//! client address, and after too many failures within a window the account (or the address) is
//! locked out for a time that doubles with each lockout, up to a ceiling.
//!
//! A request to the login route names its account in a form or JSON field (`username` by
//! default). While either the account or the address is locked, the request is refused before
//! the application sees it (429 `login_locked` with `Retry-After`, stage `login`); otherwise it
//! goes on and the application's answer decides: a status listed as a failure (401 and 403 by
//! default) counts against both, a success (2xx, 3xx) clears the account's failures (not the
//! address's: one address trying many accounts stays suspicious). A lockout lifts by itself when
//! its time is up, or by [`LoginGuard::unlock`] (the service offers it as an audited admin call).
//!
//! State is kept in memory, per gateway node, bounded by `max_keys` (entries at rest are pruned
//! first; when the table is still full, new keys are not tracked and the request goes on: the
//! rate-limit stage bounds what an address can do meanwhile); or, with `store = "redis"`, in a
//! Redis server shared by every gateway node, so that failures anywhere count toward one
//! lockout and an unlock on one node lifts it everywhere. Every Redis key expires (the failures
//! with their window, a lockout with its time, the lockout count a window after the lockout
//! ends), so the server holds only what is live. When Redis cannot answer, `on_store_error`
//! decides: `closed` (the default) refuses login attempts with 503 `login_unavailable`, and
//! answers a failed attempt whose failure could not be counted with that 503 instead of the
//! application's answer; `open` lets them through uncounted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use axum::response::IntoResponse as _;
use serde::Deserialize;

use crate::params::params_of;
use crate::ratelimit::{Clock, MonotonicClock, OnStoreError, RawStore, RedisConnection};
use crate::routes::{ConfigError, Routes, config_error};
use crate::stage::{Around, AroundLayer, Caller, Refusal, Stage};

/// The login section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    /// The login route: `POST /login`.
    pub route: String,
    /// The form or JSON field naming the account (default `username`).
    pub account_field: Option<String>,
    /// Failures within the window that lock (default 5).
    pub max_failures: Option<u32>,
    /// Seconds failures are counted over (default 900).
    pub window_seconds: Option<u64>,
    /// The first lockout, in seconds (default 60); each next one doubles.
    pub lockout_seconds: Option<u64>,
    /// The longest lockout, in seconds (default 3600).
    pub max_lockout_seconds: Option<u64>,
    /// Statuses of the application's answer that are failures (default 401 and 403).
    pub failure_statuses: Option<Vec<u16>>,
    /// Accounts and addresses tracked at most (default 100,000).
    pub max_keys: Option<usize>,
    /// Largest body read for the account field, in bytes (default 64 KiB).
    pub max_body_bytes: Option<usize>,
    /// `local` (this node's memory; the default) or `redis` (shared by every node).
    pub store: Option<String>,
    /// The Redis server, `redis://[user:password@]host[:port][/db]`; required with `redis`.
    pub redis_url: Option<String>,
    /// The prefix of every Redis key ([`DEFAULT_REDIS_PREFIX`] when not set).
    pub redis_prefix: Option<String>,
    /// How long a Redis answer may take before the store counts as failed, in milliseconds.
    pub redis_timeout_ms: Option<u64>,
    /// `closed` (the default) or `open`: what happens to a login attempt when Redis cannot
    /// answer.
    pub on_store_error: Option<String>,
}

/// The longest account name written into a Redis key as it is.
const LONGEST_KEY_ACCOUNT: usize = 128;

/// `redis_prefix` of login protection when not set.
pub const DEFAULT_REDIS_PREFIX: &str = "portcullis:login:";

/// Whom a count is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

impl Key {
    /// The key's part of its Redis keys' names. An account name longer than
    /// [`LONGEST_KEY_ACCOUNT`] bytes goes by its SHA-256, so that a client cannot make the
    /// server keep keys as long as a login body.
    fn name(&self) -> String {
        match self {
            Key::Account(account) if account.len() > LONGEST_KEY_ACCOUNT => {
                use sha2::Digest as _;
                format!(
                    "account-sha256:{}",
                    hex::encode(sha2::Sha256::digest(account))
                )
            }
            Key::Account(account) => format!("account:{account}"),
            Key::Address(address) => format!("address:{address}"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    /// When the first failure of the current window was, in clock microseconds.
    window_start: u64,
    locked_until: u64,
    /// Lockouts so far, for the doubling.
    lockouts: u32,
}

/// The checked login configuration with its state.
#[derive(Debug)]
pub struct LoginGuard {
    route: Routes<()>,
    account_field: String,
    max_failures: u32,
    window: u64,
    lockout: u64,
    max_lockout: u64,
    failure_statuses: Vec<StatusCode>,
    max_keys: usize,
    max_body_bytes: usize,
    entries: Mutex<HashMap<Key, Entry>>,
    clock: Arc<dyn Clock>,
    /// Where the counts live when not in `entries`.
    redis: Option<RedisConnection>,
    on_store_error: OnStoreError,
    store_errors: StoreErrors,
}

/// Why the shared store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// How often a stage's shared store has failed so far, and why it last did.
#[derive(Debug, Default)]
pub(crate) struct StoreErrors {
    count: AtomicU64,
    last: Mutex<Option<StoreError>>,
}

impl StoreErrors {
    /// Counts `error`.
    pub(crate) fn record(&self, error: &StoreError) {
        self.count.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.clone());
    }

    /// The failures so far and the last one.
    pub(crate) fn get(&self) -> (u64, Option<StoreError>) {
        (
            self.count.load(Ordering::Relaxed),
            self.last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

const MICROS: u64 = 1_000_000;

impl LoginGuard {
    /// The checked configuration, on the process's monotonic clock.
    pub fn new(raw: RawLogin) -> Result<Self, ConfigError> {
        Self::with_clock(raw, Arc::new(MonotonicClock::new()))
    }

    /// The checked configuration on `clock` (tests move it by hand).
    pub fn with_clock(raw: RawLogin, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let mut route = Routes::default();
        route.insert(&raw.route, (), "route")?;
        let positive = |value: Option<u64>, default: u64, at: &str| match value {
            Some(0) => Err(config_error(at, "must be above 0")),
            Some(value) => Ok(value),
            None => Ok(default),
        };
        let max_failures = match raw.max_failures {
            Some(0) => return Err(config_error("max_failures", "must be above 0")),
            Some(value) => value,
            None => 5,
        };
        let window = positive(raw.window_seconds, 900, "window_seconds")?;
        let lockout = positive(raw.lockout_seconds, 60, "lockout_seconds")?;
        let max_lockout = positive(raw.max_lockout_seconds, 3600, "max_lockout_seconds")?;
        if max_lockout < lockout {
            return Err(config_error(
                "max_lockout_seconds",
                format!("must be at least lockout_seconds ({lockout})"),
            ));
        }
        let mut failure_statuses = Vec::new();
        for (index, code) in raw
            .failure_statuses
            .unwrap_or_else(|| vec![401, 403])
            .into_iter()
            .enumerate()
        {
            let status = StatusCode::from_u16(code)
                .ok()
                .filter(|status| status.is_client_error() || status.is_server_error())
                .ok_or_else(|| {
                    config_error(
                        format!("failure_statuses[{index}]"),
                        format!("{code} is not an error status"),
                    )
                })?;
            failure_statuses.push(status);
        }
        let account_field = raw.account_field.unwrap_or_else(|| "username".into());
        if account_field.is_empty() {
            return Err(config_error("account_field", "must not be empty"));
        }
        let (redis, on_store_error, max_keys) = RawStore {
            store: raw.store.as_deref(),
            redis_url: raw.redis_url.as_deref(),
            redis_prefix: raw.redis_prefix,
            redis_timeout_ms: raw.redis_timeout_ms,
            on_store_error: raw.on_store_error.as_deref(),
            max_keys: raw.max_keys,
            default_max_keys: 100_000,
            // A full table leaves new keys untracked: nothing for `on_store_error` to decide.
            local_can_fail: false,
        }
        .check(DEFAULT_REDIS_PREFIX)?;
        Ok(Self {
            route,
            account_field,
            max_failures,
            window: window.saturating_mul(MICROS),
            lockout: lockout.saturating_mul(MICROS),
            max_lockout: max_lockout.saturating_mul(MICROS),
            failure_statuses,
            max_keys,
            max_body_bytes: raw.max_body_bytes.unwrap_or(64 * 1024),
            entries: Mutex::new(HashMap::new()),
            clock,
            redis,
            on_store_error,
            store_errors: StoreErrors::default(),
        })
    }

    /// Login attempts the shared store could not check or count so far (refused or let through
    /// as `on_store_error` says), and why it last failed.
    pub fn store_errors(&self) -> (u64, Option<StoreError>) {
        self.store_errors.get()
    }

    /// Whether the counts are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    fn is_login(&self, method: &Method, path: &str) -> bool {
        self.route.find(method, path).is_some()
    }

    /// Seconds until `keys` may try again, when one is locked.
    async fn locked(&self, keys: &[Key]) -> Result<Option<u64>, StoreError> {
        match &self.redis {
            Some(redis) => redis_locked(redis, keys).await,
            None => Ok(self.locked_here(keys)),
        }
    }

    /// Records the outcome of one login attempt.
    async fn record(&self, keys: &[Key], failed: bool) -> Result<(), StoreError> {
        match &self.redis {
            Some(redis) => redis_record(redis, self, keys, failed).await,
            None => {
                self.record_here(keys, failed);
                Ok(())
            }
        }
    }

    /// Lifts the lockout and forgets the failures of an account and/or an address (on every
    /// node, with the shared store); whether anything was there. The account is compared as
    /// the stage compares it: case and surrounding space ignored.
    pub async fn unlock(
        &self,
        account: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<bool, StoreError> {
        let mut keys = Vec::with_capacity(2);
        if let Some(account) = account {
            keys.push(Key::Account(account.trim().to_lowercase()));
        }
        if let Some(address) = address {
            keys.push(Key::Address(address));
        }
        match &self.redis {
            Some(redis) => redis_forget(redis, &keys).await,
            None => {
                let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
                // Every key is removed, not only up to the first found.
                let mut found = false;
                for key in &keys {
                    found |= entries.remove(key).is_some();
                }
                Ok(found)
            }
        }
    }

    fn locked_here(&self, keys: &[Key]) -> Option<u64> {
        let now = self.clock.now_micros();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter()
            .filter_map(|key| entries.get(key))
            .filter(|entry| entry.locked_until > now)
            .map(|entry| (entry.locked_until - now).div_ceil(MICROS).max(1))
            .max()
    }

    fn record_here(&self, keys: &[Key], failed: bool) {
        let now = self.clock.now_micros();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            if !failed {
                if matches!(key, Key::Account(_)) {
                    entries.remove(key);
                }
                continue;
            }
            if !entries.contains_key(key) && entries.len() >= self.max_keys {
                // Entries with no lockout running and no failure in the window carry nothing.
                let window = self.window;
                entries.retain(|_, entry| {
                    entry.locked_until > now || now.saturating_sub(entry.window_start) < window
                });
                if entries.len() >= self.max_keys {
                    continue;
                }
            }
            let entry = entries.entry(key.clone()).or_default();
            if entry.failures == 0 || now.saturating_sub(entry.window_start) >= self.window {
                entry.failures = 0;
                entry.window_start = now;
            }
            entry.failures += 1;
            if entry.failures >= self.max_failures {
                let doubling = 1u64.checked_shl(entry.lockouts.min(63)).unwrap_or(u64::MAX);
                let duration = self.lockout.saturating_mul(doubling).min(self.max_lockout);
                entry.locked_until = now.saturating_add(duration);
                entry.lockouts = entry.lockouts.saturating_add(1);
                entry.failures = 0;
            }
        }
    }

    /// Accounts and addresses tracked now in this node's memory.
    pub fn tracked(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The login protection as a tower layer.
pub type LoginLayer = AroundLayer<LoginGuard>;

impl Around for LoginGuard {
    const STAGE: Stage = Stage::Login;

    async fn around<S>(
        self: Arc<Self>,
        request: Request<Body>,
        mut inner: S,
    ) -> Result<Response<Body>, S::Error>
    where
        S: tower::Service<Request<Body>, Response = Response<Body>> + Send + 'static,
        S::Future: Send,
        S::Error: Send,
    {
        if !self.is_login(request.method(), request.uri().path()) {
            return inner.call(request).await;
        }
        let (request, params) = match params_of(request, self.max_body_bytes, Stage::Login).await {
            Ok(read) => read,
            Err(refusal) => return Ok(refusal.into_response()),
        };
        let mut keys = Vec::with_capacity(2);
        if let Some(account) = params
            .named(&self.account_field)
            .find_map(|field| field.value.as_text())
            .filter(|account| !account.is_empty())
        {
            // Accounts compare as a login form does: case and surrounding space ignored.
            keys.push(Key::Account(account.trim().to_lowercase()));
        }
        if let Some(address) = request.extensions().get::<Caller>().and_then(|c| c.address) {
            keys.push(Key::Address(address));
        }
        match self.locked(&keys).await {
            Ok(Some(seconds)) => {
                return Ok(Refusal::new(
                    Stage::Login,
                    StatusCode::TOO_MANY_REQUESTS,
                    "login_locked",
                    format!("too many failed logins; try again in {seconds} s"),
                )
                .with_retry_after(seconds)
                .into_response());
            }
            Ok(None) => {}
            Err(error) => {
                if let Some(refusal) = self.store_failed(&error) {
                    return Ok(refusal.into_response());
                }
            }
        }
        let response = inner.call(request).await?;
        let status = response.status();
        let failed = self.failure_statuses.contains(&status);
        let counted = failed || status.is_success() || status.is_redirection();
        if counted
            && let Err(error) = self.record(&keys, failed).await
            // A failure that could not be counted must not tell its outcome either: the next
            // attempts would go uncounted too.
            && failed
            && let Some(refusal) = self.store_failed(&error)
        {
            return Ok(refusal.into_response());
        }
        Ok(response)
    }
}

impl LoginGuard {
    /// The refusal of a login attempt the shared store could not check or count, when the
    /// store fails closed; `None` when it fails open.
    fn store_failed(&self, error: &StoreError) -> Option<Refusal> {
        self.store_errors.record(error);
        match self.on_store_error {
            OnStoreError::Open => None,
            OnStoreError::Closed => Some(
                Refusal::new(
                    Stage::Login,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "login_unavailable",
                    "login protection cannot check this attempt now; try again shortly",
                )
                .with_retry_after(1),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shared store
// ---------------------------------------------------------------------------------------------

/// The three Redis keys of one account or address: its failures in the current window, its
/// lockout, and its lockouts so far (for the doubling).
fn redis_keys(redis: &RedisConnection, key: &Key) -> [String; 3] {
    let base = format!("{}{}", redis.config.prefix(), key.name());
    [
        format!("{base}:failures"),
        format!("{base}:locked"),
        format!("{base}:lockouts"),
    ]
}

/// The longest lockout left among KEYS, in milliseconds (0: none).
const LOCKED_SCRIPT: &str = r"
local longest = 0
for i = 1, #KEYS do
  local left = redis.call('PTTL', KEYS[i])
  if left > longest then longest = left end
end
return longest
";

/// One attempt's outcome for every key, atomically. KEYS come in threes (failures, locked,
/// lockouts); ARGV: `1` for a failure or `0` for a success, the failures that lock, the window,
/// the first lockout and the longest, in milliseconds, then per key `account` or `address`. A
/// success forgets an account (not an address); a failure counts in the window and, at the
/// limit, locks for the first lockout doubled per earlier lockout, up to the longest. Numbers
/// are written with `%.0f` so that Lua never prints them in exponent notation.
const RECORD_SCRIPT: &str = r"
local failed = ARGV[1] == '1'
local max_failures = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local lockout = tonumber(ARGV[4])
local max_lockout = tonumber(ARGV[5])
for i = 1, #KEYS / 3 do
  local failures_key, locked_key, lockouts_key = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if not failed then
    if ARGV[5 + i] == 'account' then redis.call('DEL', failures_key, locked_key, lockouts_key) end
  else
    local failures = redis.call('INCR', failures_key)
    if failures == 1 then redis.call('PEXPIRE', failures_key, window) end
    if failures >= max_failures then
      local lockouts = tonumber(redis.call('GET', lockouts_key)) or 0
      local duration = lockout * (2 ^ math.min(lockouts, 62))
      if duration > max_lockout then duration = max_lockout end
      redis.call('SET', locked_key, '1', 'PX', string.format('%.0f', duration))
      redis.call('SET', lockouts_key, string.format('%.0f', lockouts + 1), 'PX', string.format('%.0f', duration + window))
      redis.call('DEL', failures_key)
    end
  end
end
return 0
";

static LOCKED: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LOCKED_SCRIPT));
static RECORD: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RECORD_SCRIPT));

/// Runs `invocation` on the shared store within its timeout.
async fn invoke<T: redis::FromRedisValue>(
    redis: &RedisConnection,
    invocation: redis::ScriptInvocation<'_>,
) -> Result<T, StoreError> {
    redis
        .round_trip(
            |mut connection| async move { invocation.invoke_async::<T>(&mut connection).await },
        )
        .await
        .map_err(StoreError)
}

async fn redis_locked(redis: &RedisConnection, keys: &[Key]) -> Result<Option<u64>, StoreError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let mut invocation = LOCKED.prepare_invoke();
    for key in keys {
        let [_, locked, _] = redis_keys(redis, key);
        invocation.key(locked);
    }
    let left: i64 = invoke(redis, invocation).await?;
    Ok(u64::try_from(left)
        .ok()
        .filter(|left| *left > 0)
        .map(|left| left.div_ceil(1000).max(1)))
}

async fn redis_record(
    redis: &RedisConnection,
    guard: &LoginGuard,
    keys: &[Key],
    failed: bool,
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let millis = |micros: u64| (micros / 1000).max(1);
    let mut invocation = RECORD.prepare_invoke();
    invocation
        .arg(if failed { "1" } else { "0" })
        .arg(guard.max_failures)
        .arg(millis(guard.window))
        .arg(millis(guard.lockout))
        .arg(millis(guard.max_lockout));
    for key in keys {
        for name in redis_keys(redis, key) {
            invocation.key(name);
        }
        invocation.arg(match key {
            Key::Account(_) => "account",
            Key::Address(_) => "address",
        });
    }
    invoke::<i64>(redis, invocation).await.map(|_| ())
}

/// Deletes every key of `keys`; whether any was there.
async fn redis_forget(redis: &RedisConnection, keys: &[Key]) -> Result<bool, StoreError> {
    let names: Vec<String> = keys.iter().flat_map(|key| redis_keys(redis, key)).collect();
    if names.is_empty() {
        return Ok(false);
    }
    let deleted = redis.count_keys("DEL", &names).await.map_err(StoreError)?;
    Ok(deleted > 0)
}
