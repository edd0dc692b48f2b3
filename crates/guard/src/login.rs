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
//! rate-limit stage bounds what an address can do meanwhile).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use axum::response::IntoResponse as _;
use serde::Deserialize;

use crate::params::params_of;
use crate::ratelimit::{Clock, MonotonicClock};
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
}

/// Whom a count is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
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
        let max_keys = match raw.max_keys {
            Some(0) => return Err(config_error("max_keys", "must be above 0")),
            Some(value) => value,
            None => 100_000,
        };
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
        })
    }

    fn is_login(&self, method: &Method, path: &str) -> bool {
        self.route.find(method, path).is_some()
    }

    /// Seconds until `keys` may try again, when one is locked.
    fn locked(&self, keys: &[Key]) -> Option<u64> {
        let now = self.clock.now_micros();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter()
            .filter_map(|key| entries.get(key))
            .filter(|entry| entry.locked_until > now)
            .map(|entry| (entry.locked_until - now).div_ceil(MICROS).max(1))
            .max()
    }

    /// Records the outcome of one login attempt.
    fn record(&self, keys: &[Key], failed: bool) {
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

    /// Lifts the lockout and forgets the failures of an account and/or an address; whether
    /// anything was there.
    pub fn unlock(&self, account: Option<&str>, address: Option<IpAddr>) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found = false;
        if let Some(account) = account {
            found |= entries.remove(&Key::Account(account.to_owned())).is_some();
        }
        if let Some(address) = address {
            found |= entries.remove(&Key::Address(address)).is_some();
        }
        found
    }

    /// Accounts and addresses tracked now.
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
        if let Some(seconds) = self.locked(&keys) {
            return Ok(Refusal::new(
                Stage::Login,
                StatusCode::TOO_MANY_REQUESTS,
                "login_locked",
                format!("too many failed logins; try again in {seconds} s"),
            )
            .with_retry_after(seconds)
            .into_response());
        }
        let response = inner.call(request).await?;
        let status = response.status();
        if self.failure_statuses.contains(&status) {
            self.record(&keys, true);
        } else if status.is_success() || status.is_redirection() {
            self.record(&keys, false);
        }
        Ok(response)
    }
}
