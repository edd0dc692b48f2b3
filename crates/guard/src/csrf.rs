//! The CSRF stage: a state-changing request that carries the session cookie must also carry a
//! CSRF token bound to that session, in a header (JSON clients) or a form field (HTML forms).
//!
//! Tokens are `nonce.mac`: a random nonce and an HMAC-SHA256, under a key only the server
//! holds, of the session id and the nonce. A token is valid for exactly one session, so a
//! token stolen before login is useless after it, and nothing is stored per session. Two modes:
//! - `synchronizer`: the token is handed to the page in the `X-CSRF-Token` response header (or
//!   by an application that computes it with [`Csrf::token_for`] into its forms) and must come
//!   back in the request header or the form field;
//! - `double_submit`: the token is also set as a cookie (readable by scripts, `SameSite`), and
//!   the submitted token must equal the cookie's as well as being bound to the session.
//!
//! Rotation: whenever a response sets a new session cookie (a login), the layer issues a token
//! for the new session in the same response; when it clears the session (a logout), it clears
//! the token cookie. Requests without the session cookie pass: they carry no ambient credential
//! for a forged page to borrow (bearer-token clients), and the origin stage still applies.
//! Safe methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`) are never checked and must not change state.
//!
//! This module owns the token format and its check; it does not manage sessions.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse as _;
use hmac::Mac as _;
use serde::Deserialize;

use crate::params::params_of;
use crate::routes::ConfigError;
use crate::stage::{Around, AroundLayer, Refusal, Stage, Trail};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The CSRF section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCsrf {
    /// `synchronizer` (default) or `double_submit`.
    #[serde(default)]
    pub mode: Mode,
    /// The session cookie's name (default `session`).
    pub session_cookie: Option<String>,
    /// The token cookie's name in `double_submit` mode (default `csrf_token`).
    pub cookie: Option<String>,
    /// The request and response header (default `x-csrf-token`).
    pub header: Option<String>,
    /// The form field (default `_csrf`).
    pub field: Option<String>,
    /// Largest form body read for the field, in bytes (default 1 MiB).
    pub max_body_bytes: Option<usize>,
}

/// How the token travels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Response header or the application's forms; no cookie.
    #[default]
    Synchronizer,
    /// Also a cookie, which must equal the submitted token.
    DoubleSubmit,
}

/// The checked CSRF configuration and its key.
#[derive(Clone)]
pub struct Csrf {
    mode: Mode,
    session_cookie: String,
    cookie: String,
    header: axum::http::HeaderName,
    field: String,
    max_body_bytes: usize,
    /// The HMAC keyed once; cloned for each token.
    keyed: HmacSha256,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Csrf")
            .field("mode", &self.mode)
            .field("session_cookie", &self.session_cookie)
            .field("cookie", &self.cookie)
            .field("header", &self.header)
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

/// Whether `name` is a cookie name (an HTTP token).
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Csrf {
    /// The checked configuration, with the HMAC key (from a secret the operator holds).
    pub fn new(raw: RawCsrf, key: [u8; 32]) -> Result<Self, ConfigError> {
        let error = |at: &str, message: String| ConfigError {
            at: at.to_owned(),
            message,
        };
        let session_cookie = raw.session_cookie.unwrap_or_else(|| "session".into());
        let cookie = raw.cookie.unwrap_or_else(|| "csrf_token".into());
        for (at, name) in [("session_cookie", &session_cookie), ("cookie", &cookie)] {
            if !is_token(name) {
                return Err(error(at, format!("`{name}` is not a cookie name")));
            }
        }
        if session_cookie == cookie {
            return Err(error("cookie", "must differ from `session_cookie`".into()));
        }
        let header_name = raw.header.unwrap_or_else(|| "x-csrf-token".into());
        let header = axum::http::HeaderName::from_bytes(header_name.as_bytes())
            .map_err(|_| error("header", format!("`{header_name}` is not a header name")))?;
        let field = raw.field.unwrap_or_else(|| "_csrf".into());
        if field.is_empty() {
            return Err(error("field", "must not be empty".into()));
        }
        let max_body_bytes = raw.max_body_bytes.unwrap_or(1 << 20);
        if max_body_bytes == 0 {
            return Err(error("max_body_bytes", "must be above 0".into()));
        }
        let keyed = <HmacSha256 as hmac::KeyInit>::new_from_slice(&key)
            .map_err(|_| error("key", "unusable as an HMAC key".into()))?;
        Ok(Self {
            mode: raw.mode,
            session_cookie,
            cookie,
            header,
            field,
            max_body_bytes,
            keyed,
        })
    }

    fn mac(&self, session: &str, nonce: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(b"portcullis-csrf-v1\0");
        mac.update(session.as_bytes());
        mac.update(b"\0");
        mac.update(nonce.as_bytes());
        mac
    }

    /// A new token for `session`.
    pub fn token_for(&self, session: &str) -> String {
        let mut nonce = [0u8; 16];
        // Without the system's randomness the nonce is fixed: the token is then still bound to
        // the session, only not unique per issue.
        let _ = getrandom::fill(&mut nonce);
        let nonce = hex::encode(nonce);
        let tag = self.mac(session, &nonce).finalize().into_bytes();
        format!("{nonce}.{}", hex::encode(tag))
    }

    /// Whether `token` was issued for `session` (compared in constant time).
    pub fn verify(&self, session: &str, token: &str) -> bool {
        let Some((nonce, tag)) = token.split_once('.') else {
            return false;
        };
        let Ok(tag) = hex::decode(tag) else {
            return false;
        };
        nonce.len() == 32 && self.mac(session, nonce).verify_slice(&tag).is_ok()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first, when it is sent
/// more than once).
fn request_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    request_cookies(headers, name).find_map(|value| std::str::from_utf8(value).ok())
}

/// Every non-empty value of cookie `name` in the request's `Cookie` headers, in order: a client
/// may send one name more than once, and applications differ in which one they read. Read as
/// bytes pair by pair, so that another cookie's odd bytes do not hide this one, with space
/// around names and values and quotes around values dropped, as lenient servers read them.
pub(crate) fn request_cookies<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> impl Iterator<Item = &'h [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b';'))
        .filter_map(|pair| {
            let at = pair.iter().position(|byte| *byte == b'=')?;
            Some((pair[..at].trim_ascii(), pair[at + 1..].trim_ascii()))
        })
        .filter(move |(key, _)| *key == name.as_bytes())
        .map(|(_, value)| {
            let start = value.iter().position(|byte| *byte != b'"');
            let end = value.iter().rposition(|byte| *byte != b'"');
            match (start, end) {
                (Some(start), Some(end)) => &value[start..=end],
                _ => &[],
            }
        })
        .filter(|value| !value.is_empty())
}

/// What the response does to cookie `name`: `Some(Some(value))` sets it, `Some(None)` clears
/// it (empty value or `Max-Age=0`), `None` leaves it.
pub(crate) fn response_cookie(headers: &HeaderMap, name: &str) -> Option<Option<String>> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|line| {
            let mut attributes = line.split(';');
            let (key, value) = attributes.next()?.trim().split_once('=')?;
            (key == name).then(|| {
                let cleared = value.trim().is_empty()
                    || attributes
                        .any(|attribute| attribute.trim().eq_ignore_ascii_case("max-age=0"));
                (!cleared).then(|| value.trim().to_owned())
            })
        })
        // The last one counts, as in a browser.
        .next_back()
}

fn safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl Csrf {
    /// Checks one request; hands it back (its form body read) when it passes.
    pub async fn check(&self, request: Request<Body>) -> Result<Request<Body>, Refusal> {
        if safe(request.method()) {
            return Ok(request);
        }
        let Some(session) = request_cookie(request.headers(), &self.session_cookie) else {
            return Ok(request);
        };
        let session = session.to_owned();
        let refuse = |code: &'static str, message: &str| {
            Refusal::new(Stage::Csrf, StatusCode::FORBIDDEN, code, message)
                .with_field(self.header.as_str())
        };
        let (request, submitted) = match request
            .headers()
            .get(&self.header)
            .and_then(|value| value.to_str().ok())
        {
            Some(token) => {
                let token = token.to_owned();
                (request, Some(token))
            }
            None => {
                let (request, params) =
                    params_of(request, self.max_body_bytes, Stage::Csrf).await?;
                let token = params
                    .named(&self.field)
                    .find_map(|field| field.value.as_text().map(str::to_owned));
                (request, token)
            }
        };
        let Some(submitted) = submitted else {
            return Err(refuse(
                "csrf_token_missing",
                "a state-changing request with a session needs its CSRF token",
            ));
        };
        if !self.verify(&session, &submitted) {
            return Err(refuse(
                "csrf_token_invalid",
                "the CSRF token was not issued for this session",
            ));
        }
        if self.mode == Mode::DoubleSubmit
            && request_cookie(request.headers(), &self.cookie) != Some(submitted.as_str())
        {
            return Err(refuse(
                "csrf_token_invalid",
                "the CSRF token does not match its cookie",
            ));
        }
        Ok(request)
    }

    /// Issues the token a response should carry: for the session it sets (rotation at login),
    /// else for the request's session; clears the token cookie when the session is cleared.
    fn issue(&self, request_session: Option<&str>, response: &mut Response<Body>) {
        let (session, rotated) = match response_cookie(response.headers(), &self.session_cookie) {
            Some(Some(new)) => (Some(new), true),
            Some(None) => {
                if self.mode == Mode::DoubleSubmit {
                    let clear = format!(
                        "{}=; Path=/; Max-Age=0; Secure; SameSite=Strict",
                        self.cookie
                    );
                    if let Ok(value) = HeaderValue::from_str(&clear) {
                        response.headers_mut().append(header::SET_COOKIE, value);
                    }
                }
                return;
            }
            None => (request_session.map(str::to_owned), false),
        };
        let Some(session) = session else {
            return;
        };
        let token = self.token_for(&session);
        let Ok(value) = HeaderValue::from_str(&token) else {
            return;
        };
        response.headers_mut().insert(self.header.clone(), value);
        if self.mode == Mode::DoubleSubmit && (rotated || request_session.is_some()) {
            // Readable by the page's scripts (they copy it into the header), never sent
            // cross-site.
            let cookie = format!("{}={token}; Path=/; Secure; SameSite=Strict", self.cookie);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
    }
}

/// The CSRF stage as a tower layer: checks requests, issues and rotates tokens on responses.
pub type CsrfLayer = AroundLayer<Csrf>;

impl Around for Csrf {
    const STAGE: Stage = Stage::Csrf;

    async fn around<S>(
        self: Arc<Self>,
        request: Request<Body>,
        mut next: S,
    ) -> Result<Response<Body>, S::Error>
    where
        S: tower::Service<Request<Body>, Response = Response<Body>> + Send + 'static,
        S::Future: Send,
        S::Error: Send,
    {
        let session = request_cookie(request.headers(), &self.session_cookie).map(str::to_owned);
        let mut request = match self.check(request).await {
            Ok(request) => request,
            Err(refusal) => return Ok(refusal.into_response()),
        };
        Trail::record(request.extensions_mut(), Stage::Csrf);
        let mut response = next.call(request).await?;
        self.issue(session.as_deref(), &mut response);
        Ok(response)
    }
}
