//! The session stage, first of the pipeline: a session the user ended by logging out stays
//! ended, on every gateway node, even if its cookie or token is sent again — the gateway's
//! "single sign-out filter".
//!
//! A request's session credentials are every value of the application's session cookie
//! (`session` by default; the cookie the application sets at login) and the bearer token of its
//! `Authorization: Bearer …` header, so that an API client ending its token is covered as a
//! browser ending its cookie is. They are kept only as SHA-256 digests, never as sent.
//!
//! - A request to a configured logout route (`"POST /logout"`) ends each of its credentials
//!   before the application sees it, so that no request with them slips through while the
//!   application logs out; then the request goes on, and its answer gets a `Set-Cookie` clearing
//!   the session cookie unless the application sets that cookie itself. A logout without
//!   credentials just goes on.
//! - Any other request carrying a credential that has been ended is refused: 401
//!   `session_ended`, stage `session`, with the clearing `Set-Cookie`; when `login_page` is set
//!   and the request is a browser's page load (`GET` or `HEAD` accepting `text/html`), the answer
//!   is a `303 See Other` to the login page instead (still a refusal of this stage, for the
//!   gateway's counts and audit records; see [`Refusal::redirect`]).
//! - A request without credentials passes untouched: the store is not asked.
//!
//! An ended credential is remembered for `remember_seconds` (a day by default), after which it
//! passes this stage again: the setting must cover the longest lifetime of a session or token
//! the application issues, or an ended one becomes usable again before it expires.
//!
//! The ended credentials live in this node's memory, bounded by `max_keys` (entries past their
//! time are pruned when the table is full), or, with `store = "redis"`, in a Redis server shared
//! by every node, so that a logout on one node is refused on all of them; every Redis key
//! expires with its `remember_seconds`. Ending a request's credentials is one round trip
//! (`SET … EX` in one `MULTI`), checking them is one (`EXISTS`). A logout must never silently
//! leave its session alive, so a full table counts as a failed store, like Redis not
//! answering: then `on_store_error` decides, `closed` (the default) refusing the request (the
//! check or the logout) with 503 `session_unavailable`, `open` letting it go on (logged). Every
//! logout takes room in the table for `remember_seconds`, whatever its credential: the
//! rate-limit stage bounds how fast a client can fill it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use axum::response::IntoResponse as _;
use serde::Deserialize;
use sha2::Digest as _;

use crate::csrf::{is_token, request_cookies, response_cookie};
/// Why the shared store could not answer (the error login protection's store gives too).
pub use crate::login::StoreError;
use crate::login::StoreErrors;
use crate::ratelimit::{Clock, MonotonicClock, OnStoreError, RawStore, RedisConnection};
use crate::routes::{ConfigError, RouteSet, config_error};
use crate::stage::{Around, AroundLayer, Refusal, Stage, Trail};

/// The session section as written.
///
/// ```json
/// {"logout": ["POST /logout", "GET /signout"], "login_page": "/login",
///  "store": "redis", "redis_url": "redis://127.0.0.1:6379"}
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// The application's session cookie (default `session`).
    pub cookie: Option<String>,
    /// The logout routes (`POST /logout`); at least one.
    #[serde(default)]
    pub logout: Vec<String>,
    /// Where a browser with an ended session is sent: a path (`/login`) or an absolute
    /// `http(s)` URL. Without it every refusal is the 401.
    pub login_page: Option<String>,
    /// How long an ended session stays refused, in seconds (default a day): at least the
    /// longest lifetime of a session or token the application issues.
    pub remember_seconds: Option<u64>,
    /// Ended sessions this node's memory holds at most (default 1,000,000).
    pub max_keys: Option<usize>,
    /// `local` (this node's memory; the default) or `redis` (shared by every node).
    pub store: Option<String>,
    /// The Redis server, `redis://[user:password@]host[:port][/db]`; required with `redis`.
    pub redis_url: Option<String>,
    /// The prefix of every Redis key ([`DEFAULT_REDIS_PREFIX`] when not set).
    pub redis_prefix: Option<String>,
    /// How long a Redis answer may take before the store counts as failed, in milliseconds.
    pub redis_timeout_ms: Option<u64>,
    /// `closed` (the default) or `open`: what happens to a request whose session cannot be
    /// checked or ended because the store failed (Redis not answering, or this node's table
    /// full of sessions still remembered).
    pub on_store_error: Option<String>,
}

/// `redis_prefix` of the session stage when not set.
pub const DEFAULT_REDIS_PREFIX: &str = "portcullis:session:";

/// `remember_seconds` when not set: a day.
pub const DEFAULT_REMEMBER_SECONDS: u64 = 86_400;

/// The longest `remember_seconds` allowed: ten years (Redis refuses expiries far beyond).
pub const MAX_REMEMBER_SECONDS: u64 = 10 * 366 * 24 * 3600;

/// `max_keys` when not set.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// The most distinct credentials one request may carry: more is refused (400
/// `session_ambiguous`) rather than checked one by one.
pub const MAX_CREDENTIALS: usize = 16;

const MICROS: u64 = 1_000_000;

/// A credential's SHA-256.
type Digest = [u8; 32];

/// The ended credentials in this node's memory: when each may pass again, in clock
/// microseconds.
#[derive(Debug, Default)]
struct Ended {
    until: HashMap<Digest, u64>,
    /// No entry expires before this: pruning earlier would free nothing.
    earliest: u64,
}

/// The checked session configuration with its state.
#[derive(Debug)]
pub struct SessionGuard {
    cookie: String,
    logout: RouteSet,
    login_page: Option<HeaderValue>,
    /// `Set-Cookie` clearing the session cookie.
    clear_cookie: HeaderValue,
    remember_seconds: u64,
    max_keys: usize,
    ended: Mutex<Ended>,
    clock: Arc<dyn Clock>,
    /// Where the ended credentials live when not in `ended`.
    redis: Option<RedisConnection>,
    on_store_error: OnStoreError,
    store_errors: StoreErrors,
}

impl SessionGuard {
    /// The checked configuration, on the process's monotonic clock.
    pub fn new(raw: RawSession) -> Result<Self, ConfigError> {
        Self::with_clock(raw, Arc::new(MonotonicClock::new()))
    }

    /// The checked configuration on `clock` (tests move it by hand; the Redis store always
    /// uses the server's time).
    pub fn with_clock(raw: RawSession, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let cookie = raw.cookie.unwrap_or_else(|| "session".into());
        if !is_token(&cookie) {
            return Err(config_error(
                "cookie",
                format!("`{cookie}` is not a cookie name"),
            ));
        }
        if raw.logout.is_empty() {
            return Err(config_error(
                "logout",
                "at least one logout route is needed, e.g. `POST /logout`",
            ));
        }
        let logout = RouteSet::parse(&raw.logout, "logout")?;
        let login_page = raw.login_page.as_deref().map(login_page).transpose()?;
        let remember_seconds = match raw.remember_seconds {
            None => DEFAULT_REMEMBER_SECONDS,
            Some(seconds @ 1..=MAX_REMEMBER_SECONDS) => seconds,
            Some(other) => {
                return Err(config_error(
                    "remember_seconds",
                    format!(
                        "between 1 and {MAX_REMEMBER_SECONDS}, not {other}; it must cover the \
                         longest lifetime of a session or token"
                    ),
                ));
            }
        };
        let (redis, on_store_error, max_keys) = RawStore {
            store: raw.store.as_deref(),
            redis_url: raw.redis_url.as_deref(),
            redis_prefix: raw.redis_prefix,
            redis_timeout_ms: raw.redis_timeout_ms,
            on_store_error: raw.on_store_error.as_deref(),
            max_keys: raw.max_keys,
            default_max_keys: DEFAULT_MAX_KEYS,
            local_can_fail: true,
        }
        .check(DEFAULT_REDIS_PREFIX)?;
        let clear_cookie = HeaderValue::from_str(&format!(
            "{cookie}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        ))
        .map_err(|_| config_error("cookie", format!("`{cookie}` is not a cookie name")))?;
        Ok(Self {
            cookie,
            logout,
            login_page,
            clear_cookie,
            remember_seconds,
            max_keys,
            ended: Mutex::new(Ended::default()),
            clock,
            redis,
            on_store_error,
            store_errors: StoreErrors::default(),
        })
    }

    /// Ends the session whose cookie value or bearer token is `credential`: requests carrying
    /// it are refused for `remember_seconds` (on every node, with the shared store). For an
    /// administrator ending a session the user cannot; the store's failure is returned whatever
    /// `on_store_error` says.
    pub async fn end(&self, credential: &str) -> Result<(), StoreError> {
        self.end_all(&[digest(credential.as_bytes())]).await
    }

    /// Requests the store could not check or end so far (refused or let through as
    /// `on_store_error` says), and why it last failed.
    pub fn store_errors(&self) -> (u64, Option<StoreError>) {
        self.store_errors.get()
    }

    /// Whether the ended sessions are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Ended sessions held now in this node's memory (expired ones included until pruned).
    pub fn tracked(&self) -> usize {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .until
            .len()
    }

    /// The digests of the request's credentials, each once: every value of the session cookie
    /// and every bearer token. More than [`MAX_CREDENTIALS`] is refused.
    fn credentials(&self, headers: &HeaderMap) -> Result<Vec<Digest>, Refusal> {
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|value| {
                let value = value.as_bytes().trim_ascii();
                let at = value.iter().position(|byte| *byte == b' ')?;
                value[..at]
                    .eq_ignore_ascii_case(b"bearer")
                    .then(|| value[at + 1..].trim_ascii())
            })
            .filter(|token| !token.is_empty());
        let mut digests = Vec::new();
        for credential in request_cookies(headers, &self.cookie).chain(bearer) {
            let digest = digest(credential);
            if digests.contains(&digest) {
                continue;
            }
            if digests.len() == MAX_CREDENTIALS {
                return Err(Refusal::new(
                    Stage::Session,
                    StatusCode::BAD_REQUEST,
                    "session_ambiguous",
                    format!(
                        "the request carries more than {MAX_CREDENTIALS} session cookies and \
                         bearer tokens"
                    ),
                ));
            }
            digests.push(digest);
        }
        Ok(digests)
    }

    /// Remembers every one of `digests` as ended, or none.
    async fn end_all(&self, digests: &[Digest]) -> Result<(), StoreError> {
        let Some(redis) = &self.redis else {
            return self.end_here(digests);
        };
        let mut transaction = redis::pipe();
        transaction.atomic();
        for digest in digests {
            transaction
                .cmd("SET")
                .arg(redis_key(redis, digest))
                .arg(1)
                .arg("EX")
                .arg(self.remember_seconds)
                .ignore();
        }
        redis
            .round_trip(|mut connection| async move {
                transaction.query_async::<()>(&mut connection).await
            })
            .await
            .map_err(StoreError)
    }

    /// Whether any of `digests` has been ended and is still remembered.
    async fn any_ended(&self, digests: &[Digest]) -> Result<bool, StoreError> {
        let Some(redis) = &self.redis else {
            let now = self.clock.now_micros();
            let ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
            return Ok(digests
                .iter()
                .any(|digest| ended.until.get(digest).is_some_and(|until| *until > now)));
        };
        let keys: Vec<String> = digests
            .iter()
            .map(|digest| redis_key(redis, digest))
            .collect();
        let found = redis
            .count_keys("EXISTS", &keys)
            .await
            .map_err(StoreError)?;
        Ok(found > 0)
    }

    fn end_here(&self, digests: &[Digest]) -> Result<(), StoreError> {
        let now = self.clock.now_micros();
        let until = now.saturating_add(self.remember_seconds.saturating_mul(MICROS));
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        let room_for = |ended: &Ended| {
            let new = digests
                .iter()
                .filter(|digest| !ended.until.contains_key(*digest))
                .count();
            ended.until.len().saturating_add(new) <= self.max_keys
        };
        if !room_for(&ended) && ended.earliest <= now {
            ended.until.retain(|_, until| *until > now);
            ended.earliest = ended.until.values().copied().min().unwrap_or(u64::MAX);
        }
        if !room_for(&ended) {
            return Err(StoreError(format!(
                "the table of ended sessions is full: {} still remembered (`max_keys`)",
                ended.until.len()
            )));
        }
        if ended.until.is_empty() {
            ended.earliest = until;
        }
        ended.earliest = ended.earliest.min(until);
        for digest in digests {
            ended.until.insert(*digest, until);
        }
        Ok(())
    }

    /// The refusal of a request carrying an ended session: a 401, or for a browser's page load
    /// with a login page configured a 303 to it; either way the session cookie is cleared.
    fn ended_refusal(&self, request: &Request<Body>) -> Refusal {
        let refusal = Refusal::new(
            Stage::Session,
            StatusCode::UNAUTHORIZED,
            "session_ended",
            "this session was ended by a logout; sign in again",
        )
        .with_header(header::SET_COOKIE, self.clear_cookie.clone());
        match &self.login_page {
            Some(page) if loads_a_page(request) => refusal.with_redirect(page.clone()),
            _ => refusal,
        }
    }

    /// The refusal of a request whose session the store could not check or end, when the
    /// store fails closed; `None` when it fails open.
    fn store_failed(&self, error: &StoreError, logout: bool) -> Option<Refusal> {
        self.store_errors.record(error);
        match self.on_store_error {
            OnStoreError::Open => {
                if logout {
                    tracing::warn!(%error, "session stage: a logout goes on without its session ended (on_store_error = open)");
                } else {
                    tracing::warn!(%error, "session stage: a request goes on with its session unchecked (on_store_error = open)");
                }
                None
            }
            OnStoreError::Closed => {
                tracing::warn!(%error, logout, "session stage: refused, the store of ended sessions cannot answer");
                Some(
                    Refusal::new(
                        Stage::Session,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "session_unavailable",
                        "sessions cannot be checked now; try again shortly",
                    )
                    .with_retry_after(1),
                )
            }
        }
    }
}

/// `login_page` as written, checked: a path (not `//`, which browsers take for another host)
/// or an absolute `http(s)` URL.
fn login_page(written: &str) -> Result<HeaderValue, ConfigError> {
    let error = || {
        config_error(
            "login_page",
            format!("`{written}` is neither a path starting with / nor an absolute http(s) URL"),
        )
    };
    let uri: Uri = written.parse().map_err(|_| error())?;
    let fits = !written.contains('\\')
        && match uri.scheme_str() {
            None => written.starts_with('/') && !written.starts_with("//"),
            Some("http" | "https") => uri.host().is_some_and(|host| !host.is_empty()),
            Some(_) => false,
        };
    if !fits {
        return Err(error());
    }
    HeaderValue::from_str(written).map_err(|_| error())
}

/// Whether `request` is a browser loading a page: `GET` or `HEAD` accepting `text/html`.
fn loads_a_page(request: &Request<Body>) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|range| {
                let mut parts = range.split(';').map(str::trim);
                parts
                    .next()
                    .is_some_and(|media| media.eq_ignore_ascii_case("text/html"))
                    && !parts.any(|parameter| {
                        parameter.split_once('=').is_some_and(|(name, value)| {
                            name.trim().eq_ignore_ascii_case("q")
                                && value.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
                        })
                    })
            })
}

fn digest(credential: &[u8]) -> Digest {
    sha2::Sha256::digest(credential).into()
}

/// The Redis key of an ended credential.
fn redis_key(redis: &RedisConnection, digest: &Digest) -> String {
    format!("{}{}", redis.config.prefix(), hex::encode(digest))
}

/// The session stage as a tower layer.
pub type SessionLayer = AroundLayer<SessionGuard>;

impl Around for SessionGuard {
    const STAGE: Stage = Stage::Session;

    async fn around<S>(
        self: Arc<Self>,
        mut request: Request<Body>,
        mut next: S,
    ) -> Result<Response<Body>, S::Error>
    where
        S: tower::Service<Request<Body>, Response = Response<Body>> + Send + 'static,
        S::Future: Send,
        S::Error: Send,
    {
        let credentials = match self.credentials(request.headers()) {
            Ok(credentials) => credentials,
            Err(refusal) => return Ok(refusal.into_response()),
        };
        if credentials.is_empty() {
            Trail::record(request.extensions_mut(), Stage::Session);
            return next.call(request).await;
        }
        if self.logout.contains(request.method(), request.uri().path()) {
            if let Err(error) = self.end_all(&credentials).await
                && let Some(refusal) = self.store_failed(&error, true)
            {
                return Ok(refusal.into_response());
            }
            Trail::record(request.extensions_mut(), Stage::Session);
            let mut response = next.call(request).await?;
            if response_cookie(response.headers(), &self.cookie).is_none() {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, self.clear_cookie.clone());
            }
            return Ok(response);
        }
        match self.any_ended(&credentials).await {
            Ok(true) => return Ok(self.ended_refusal(&request).into_response()),
            Ok(false) => {}
            Err(error) => {
                if let Some(refusal) = self.store_failed(&error, false) {
                    return Ok(refusal.into_response());
                }
            }
        }
        Trail::record(request.extensions_mut(), Stage::Session);
        next.call(request).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "tests: a failed step must fail the test"
    )]

    use super::*;

    fn request(method: Method, accept: Option<&str>) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri("/account");
        if let Some(accept) = accept {
            builder = builder.header(header::ACCEPT, accept);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn only_a_browser_page_load_is_sent_to_the_login_page() {
        let html = "text/html,application/xhtml+xml,*/*;q=0.8";
        assert!(loads_a_page(&request(Method::GET, Some(html))));
        assert!(loads_a_page(&request(
            Method::HEAD,
            Some("TEXT/HTML; q=0.5")
        )));
        assert!(!loads_a_page(&request(Method::POST, Some(html))));
        assert!(!loads_a_page(&request(
            Method::GET,
            Some("application/json")
        )));
        assert!(!loads_a_page(&request(Method::GET, Some("*/*"))));
        assert!(!loads_a_page(&request(Method::GET, Some("text/html;q=0"))));
        assert!(!loads_a_page(&request(Method::GET, None)));
    }

    #[test]
    fn credentials_are_every_session_cookie_and_bearer_token_once() {
        let guard = SessionGuard::new(RawSession {
            logout: vec!["POST /logout".into()],
            ..RawSession::default()
        })
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_bytes(b"theme=\xff; session = \"a\"; session=b").unwrap(),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("other=a; session=a"),
        );
        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  c "),
        );
        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic ZDpl"),
        );
        assert_eq!(
            guard.credentials(&headers).unwrap(),
            vec![digest(b"a"), digest(b"b"), digest(b"c")]
        );
        let many = (0..=MAX_CREDENTIALS)
            .map(|index| format!("session={index}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&many).unwrap());
        assert_eq!(
            guard.credentials(&headers).unwrap_err().code,
            "session_ambiguous"
        );
    }
}
