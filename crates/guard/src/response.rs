//! The response stages: security headers, cookie flags and per-role masking of JSON fields,
//! each a tower layer that can be mounted alone.
//!
//! - [`SecurityHeadersLayer`] sets `Strict-Transport-Security`, `Content-Security-Policy`,
//!   `X-Content-Type-Options`, `X-Frame-Options` and `Referrer-Policy` on every response,
//!   leaving a header the upstream set alone unless told to override it.
//! - [`CookieFlagsLayer`] makes every `Set-Cookie` carry `Secure`, `HttpOnly` and `SameSite`,
//!   except for the cookies a whitelist names.
//! - [`MaskingLayer`] masks configured fields of JSON responses for callers whose roles may
//!   not see them, with the audit crate's masks ([`portcullis_audit::mask`]).
//!
//! The configuration, as written:
//!
//! ```yaml
//! security_headers:
//!   override: false                  # replace headers the upstream set (default: keep them)
//!   hsts: { max_age: 31536000, include_subdomains: true, preload: false }  # absent: not sent
//!   content_security_policy: "default-src 'self'"   # false: not sent; absent or true: default
//!   content_type_options: true       # X-Content-Type-Options: nosniff
//!   frame_options: deny              # deny | sameorigin | false
//!   referrer_policy: no-referrer     # any Referrer-Policy value | false
//! cookies:
//!   secure: true                     # default true
//!   http_only: true                  # default true
//!   same_site: lax                   # lax (default) | strict | none (needs secure)
//!   except: [legacy_tracker]         # cookies left exactly as the upstream wrote them
//!   http_only_except: [csrf_token]   # cookies scripts must read: Secure and SameSite only
//! masking:
//!   max_body_bytes: 1048576          # larger bodies pass unmasked (counted)
//!   rules:
//!     - route: GET /customers/{id}   # `METHOD /path`, `* /path` (any method) or `*` (any route)
//!       fields:
//!         - { field: customer.phone, mask: { keep_prefix: 7 }, unless_roles: [support] }
//!         - { field: "items[].card", mask: redact }
//!         - { field: customer.email, mask: pseudonym }
//! ```
//!
//! Each section is read into a raw serde type and checked once into its validated type
//! ([`SecurityHeaders`], [`CookieFlags`], [`Masking`], or all three as [`ResponseConfig`]);
//! every error names where it is (`masking.rules[0].fields[1].mask`).
//!
//! What the layers must not do: decide anything about the request (they only rewrite the
//! answer), weaken what the upstream asked for (a stricter `SameSite`, an `HttpOnly` on a
//! whitelisted cookie and a header the upstream set all stay), buffer a body that is not JSON
//! (other responses keep streaming), or re-implement masking: every masked value comes from
//! [`Masker::mask_value`], so responses and audit records mask alike.
//!
//! Masking never fails open silently. A response whose route has rules for the caller but which
//! cannot be masked — not JSON, compressed, larger than the limit, unreadable, or JSON that
//! does not parse — passes unchanged, is counted in [`MaskingStats`] and carries a
//! [`MaskingOutcome::Skipped`] in its extensions, so an outer layer (audit, metrics) sees it.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header,
};
use axum::response::IntoResponse as _;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, BodyStream, StreamBody};
use portcullis_audit::mask::{Mask, Masker, MaskingConfig, derive_pseudonym_key};
use serde::Deserialize;
use serde_json::Value;

use crate::routes::{ConfigError, Routes, config_error};
use crate::stage::{Caller, Refusal, Stage, StageTimes};

/// The default `Content-Security-Policy`: same-origin resources only, no framing, no plugins,
/// no `<base>` pointing elsewhere.
pub const DEFAULT_CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'self'";
/// The default `Referrer-Policy` (also the browsers' default, sent so older ones follow it).
pub const DEFAULT_REFERRER_POLICY: &str = "strict-origin-when-cross-origin";
/// The default limit of a buffered JSON body for masking.
pub const DEFAULT_MASKING_MAX_BODY_BYTES: usize = 1 << 20;
/// The HSTS preload list's smallest accepted `max-age` (one year).
const HSTS_PRELOAD_MIN_MAX_AGE: u64 = 31_536_000;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

// ---------------------------------------------------------------------------------------------
// Configuration shared by the three sections
// ---------------------------------------------------------------------------------------------

/// All three response sections as written (each optional: an absent one takes its defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponseConfig {
    /// The security headers section.
    #[serde(default)]
    pub security_headers: RawSecurityHeaders,
    /// The cookie flags section.
    #[serde(default)]
    pub cookies: RawCookieFlags,
    /// The masking section.
    #[serde(default)]
    pub masking: RawMasking,
}

/// All three response sections, checked.
#[derive(Debug, Clone)]
pub struct ResponseConfig {
    /// What [`SecurityHeadersLayer`] sets.
    pub security_headers: SecurityHeaders,
    /// What [`CookieFlagsLayer`] enforces.
    pub cookies: CookieFlags,
    /// What [`MaskingLayer`] masks.
    pub masking: Masking,
}

impl TryFrom<RawResponseConfig> for ResponseConfig {
    type Error = ConfigError;

    fn try_from(raw: RawResponseConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            security_headers: SecurityHeaders::try_from(raw.security_headers)?,
            cookies: CookieFlags::try_from(raw.cookies)?,
            masking: Masking::try_from(raw.masking)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Security headers
// ---------------------------------------------------------------------------------------------

/// A header setting as written: `false` (not sent), `true` or absent (the default value), or
/// the value itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RawSetting {
    /// The header is not sent.
    Off,
    /// The header is sent with its default value.
    #[default]
    Default,
    /// The header is sent with this value.
    Value(String),
}

impl<'de> Deserialize<'de> for RawSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawSetting;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a header value, `true` (the default value) or `false` (off)")
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<RawSetting, E> {
                Ok(if value {
                    RawSetting::Default
                } else {
                    RawSetting::Off
                })
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<RawSetting, E> {
                Ok(RawSetting::Value(value.to_owned()))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<RawSetting, E> {
                Ok(RawSetting::Default)
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<RawSetting, E> {
                Ok(RawSetting::Default)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// The security headers section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurityHeaders {
    /// Replace the headers the upstream set (default: keep the upstream's).
    #[serde(default, rename = "override")]
    pub override_upstream: bool,
    /// `Strict-Transport-Security`; not sent when absent.
    #[serde(default)]
    pub hsts: Option<RawHsts>,
    /// `Content-Security-Policy`.
    #[serde(default)]
    pub content_security_policy: RawSetting,
    /// `X-Content-Type-Options: nosniff` (default on).
    #[serde(default = "enabled")]
    pub content_type_options: bool,
    /// `X-Frame-Options`: `deny` (the default) or `sameorigin`.
    #[serde(default)]
    pub frame_options: RawSetting,
    /// `Referrer-Policy`.
    #[serde(default)]
    pub referrer_policy: RawSetting,
}

impl Default for RawSecurityHeaders {
    fn default() -> Self {
        Self {
            override_upstream: false,
            hsts: None,
            content_security_policy: RawSetting::Default,
            content_type_options: true,
            frame_options: RawSetting::Default,
            referrer_policy: RawSetting::Default,
        }
    }
}

fn enabled() -> bool {
    true
}

/// `Strict-Transport-Security` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHsts {
    /// Seconds browsers keep to HTTPS (0 tells them to forget the host).
    pub max_age: u64,
    /// Whether subdomains are covered too.
    #[serde(default)]
    pub include_subdomains: bool,
    /// Whether the host asks to be on the browsers' preload list.
    #[serde(default)]
    pub preload: bool,
}

/// The checked security headers: the headers to set, in order.
///
/// `Strict-Transport-Security` is only sent when configured: browsers ignore it on plain HTTP,
/// and only the operator knows whether clients reach the service over HTTPS (TLS often ends
/// in front of the gateway, so the request cannot tell).
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    override_upstream: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self {
            override_upstream: false,
            headers: vec![
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(DEFAULT_CONTENT_SECURITY_POLICY),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static(DEFAULT_REFERRER_POLICY),
                ),
            ],
        }
    }
}

/// The tokens `Referrer-Policy` may list (W3C Referrer Policy, §3).
const REFERRER_POLICIES: [&str; 8] = [
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

fn header_value(value: &str, at: &str) -> Result<HeaderValue, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(config_error(
            at,
            "is empty; write `false` to turn the header off",
        ));
    }
    HeaderValue::from_str(value).map_err(|_| {
        config_error(
            at,
            "is not a valid header value (visible ASCII characters and spaces only)",
        )
    })
}

impl TryFrom<RawSecurityHeaders> for SecurityHeaders {
    type Error = ConfigError;

    fn try_from(raw: RawSecurityHeaders) -> Result<Self, ConfigError> {
        let mut headers = Vec::new();
        if let Some(hsts) = &raw.hsts {
            if hsts.preload && !hsts.include_subdomains {
                return Err(config_error(
                    "security_headers.hsts.preload",
                    "the preload list needs `include_subdomains: true`",
                ));
            }
            if hsts.preload && hsts.max_age < HSTS_PRELOAD_MIN_MAX_AGE {
                return Err(config_error(
                    "security_headers.hsts.preload",
                    format!(
                        "the preload list needs `max_age` of at least {HSTS_PRELOAD_MIN_MAX_AGE} \
                         (one year), not {}",
                        hsts.max_age
                    ),
                ));
            }
            let mut value = format!("max-age={}", hsts.max_age);
            if hsts.include_subdomains {
                value.push_str("; includeSubDomains");
            }
            if hsts.preload {
                value.push_str("; preload");
            }
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                header_value(&value, "security_headers.hsts")?,
            ));
        }
        match &raw.content_security_policy {
            RawSetting::Off => {}
            RawSetting::Default => headers.push((
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DEFAULT_CONTENT_SECURITY_POLICY),
            )),
            RawSetting::Value(policy) => headers.push((
                header::CONTENT_SECURITY_POLICY,
                header_value(policy, "security_headers.content_security_policy")?,
            )),
        }
        if raw.content_type_options {
            headers.push((
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ));
        }
        let frame_options = match &raw.frame_options {
            RawSetting::Off => None,
            RawSetting::Default => Some("DENY"),
            RawSetting::Value(value) => match value.trim().to_ascii_lowercase().as_str() {
                "deny" => Some("DENY"),
                "sameorigin" => Some("SAMEORIGIN"),
                _ => {
                    return Err(config_error(
                        "security_headers.frame_options",
                        format!(
                            "`{value}` is not `deny` or `sameorigin` (`ALLOW-FROM` is obsolete: \
                             use `frame-ancestors` in the content security policy)"
                        ),
                    ));
                }
            },
        };
        if let Some(value) = frame_options {
            headers.push((header::X_FRAME_OPTIONS, HeaderValue::from_static(value)));
        }
        match &raw.referrer_policy {
            RawSetting::Off => {}
            RawSetting::Default => headers.push((
                header::REFERRER_POLICY,
                HeaderValue::from_static(DEFAULT_REFERRER_POLICY),
            )),
            RawSetting::Value(value) => {
                // A list is allowed: browsers take the last token they know, so older ones
                // can be given a fallback first.
                let mut tokens = Vec::new();
                for token in value.split(',') {
                    let token = token.trim().to_ascii_lowercase();
                    if !REFERRER_POLICIES.contains(&token.as_str()) {
                        return Err(config_error(
                            "security_headers.referrer_policy",
                            format!(
                                "`{token}` is not a referrer policy; use one of: {}",
                                REFERRER_POLICIES.join(", ")
                            ),
                        ));
                    }
                    tokens.push(token);
                }
                headers.push((
                    header::REFERRER_POLICY,
                    header_value(&tokens.join(", "), "security_headers.referrer_policy")?,
                ));
            }
        }
        Ok(Self {
            override_upstream: raw.override_upstream,
            headers,
        })
    }
}

impl SecurityHeaders {
    /// The headers set, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().map(|(name, value)| (name, value))
    }

    /// Sets the headers on a response's `headers`, keeping those already there unless the
    /// configuration overrides them.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            if self.override_upstream || !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// Settings a response stage applies to the headers of every answer.
pub trait AnswerHeaders: Send + Sync + 'static {
    /// The stage they are.
    const STAGE: Stage;

    /// Applies them.
    fn apply_to(&self, headers: &mut HeaderMap);
}

impl AnswerHeaders for SecurityHeaders {
    const STAGE: Stage = Stage::SecurityHeaders;

    fn apply_to(&self, headers: &mut HeaderMap) {
        self.apply(headers);
    }
}

/// A tower layer applying [`AnswerHeaders`] to every answer of the service it wraps.
#[derive(Debug)]
pub struct HeadersLayer<T> {
    config: Arc<T>,
}

impl<T> Clone for HeadersLayer<T> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
        }
    }
}

impl<T: AnswerHeaders> HeadersLayer<T> {
    /// The layer applying `config` (owned or shared, as the other stages take theirs).
    pub fn new(config: impl Into<Arc<T>>) -> Self {
        Self {
            config: config.into(),
        }
    }
}

impl<S, T: AnswerHeaders> tower::Layer<S> for HeadersLayer<T> {
    type Service = HeadersService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        HeadersService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`HeadersLayer`] makes.
#[derive(Debug)]
pub struct HeadersService<S, T> {
    inner: S,
    config: Arc<T>,
}

impl<S: Clone, T> Clone for HeadersService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S, T> tower::Service<Request<Body>> for HeadersService<S, T>
where
    S: tower::Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    T: AnswerHeaders,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let times = StageTimes::of_request(&request);
        let future = self.inner.call(request);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let mut response = future.await?;
            let started = std::time::Instant::now();
            config.apply_to(response.headers_mut());
            if let Some(times) = times {
                times.add(T::STAGE, started.elapsed());
            }
            Ok(response)
        })
    }
}

/// A tower layer setting [`SecurityHeaders`] on every response.
pub type SecurityHeadersLayer = HeadersLayer<SecurityHeaders>;

// ---------------------------------------------------------------------------------------------
// Cookie flags
// ---------------------------------------------------------------------------------------------

/// The cookie flags section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCookieFlags {
    /// Add `Secure` (default on).
    #[serde(default = "enabled")]
    pub secure: bool,
    /// Add `HttpOnly` (default on).
    #[serde(default = "enabled")]
    pub http_only: bool,
    /// The least strict `SameSite` allowed: `lax` (default), `strict` or `none`.
    #[serde(default)]
    pub same_site: Option<String>,
    /// Cookies left exactly as the upstream wrote them.
    #[serde(default)]
    pub except: Vec<String>,
    /// Cookies that get every flag but `HttpOnly` (scripts must read them).
    #[serde(default)]
    pub http_only_except: Vec<String>,
}

impl Default for RawCookieFlags {
    fn default() -> Self {
        Self {
            secure: true,
            http_only: true,
            same_site: None,
            except: Vec::new(),
            http_only_except: Vec::new(),
        }
    }
}

/// A `SameSite` value, ordered from the least to the most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SameSite {
    /// Sent on every request (needs `Secure`).
    None,
    /// Sent on same-site requests and top-level navigations.
    Lax,
    /// Sent on same-site requests only.
    Strict,
}

impl SameSite {
    /// The attribute's value as written in `Set-Cookie`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SameSite::None => "None",
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }

    fn parse(value: &[u8]) -> Option<SameSite> {
        if value.eq_ignore_ascii_case(b"strict") {
            Some(SameSite::Strict)
        } else if value.eq_ignore_ascii_case(b"lax") {
            Some(SameSite::Lax)
        } else if value.eq_ignore_ascii_case(b"none") {
            Some(SameSite::None)
        } else {
            None
        }
    }
}

/// The checked cookie flags.
///
/// `Set-Cookie` values are rewritten at the attribute level (RFC 6265 §5.2: the name-value pair
/// up to the first `;`, then `;`-separated attributes whose names are case-insensitive): the
/// pair and every other attribute (`Path`, `Domain`, `Expires`, `Max-Age`, `Partitioned`,
/// `Priority`, extensions) are kept byte for byte, the `Secure`, `HttpOnly` and `SameSite`
/// attributes are dropped and written once at the end. A flag the upstream set is never
/// removed, and a stricter `SameSite` than the configured one stays.
#[derive(Debug, Clone)]
pub struct CookieFlags {
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    except: HashSet<String>,
    http_only_except: HashSet<String>,
}

impl Default for CookieFlags {
    fn default() -> Self {
        Self {
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            except: HashSet::new(),
            http_only_except: HashSet::new(),
        }
    }
}

/// Whether `name` is a cookie name (an RFC 9110 token: visible ASCII but separators).
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&byte))
}

impl TryFrom<RawCookieFlags> for CookieFlags {
    type Error = ConfigError;

    fn try_from(raw: RawCookieFlags) -> Result<Self, ConfigError> {
        let same_site = match raw.same_site.as_deref() {
            None => SameSite::Lax,
            Some(value) => SameSite::parse(value.trim().as_bytes()).ok_or_else(|| {
                config_error(
                    "cookies.same_site",
                    format!("`{value}` is not `lax`, `strict` or `none`"),
                )
            })?,
        };
        if same_site == SameSite::None && !raw.secure {
            return Err(config_error(
                "cookies.same_site",
                "`none` needs `secure: true` (browsers refuse SameSite=None cookies without Secure)",
            ));
        }
        let mut except = HashSet::new();
        for (index, name) in raw.except.iter().enumerate() {
            let at = format!("cookies.except[{index}]");
            if !is_cookie_name(name) {
                return Err(config_error(at, format!("`{name}` is not a cookie name")));
            }
            if !except.insert(name.clone()) {
                return Err(config_error(at, format!("`{name}` is listed twice")));
            }
        }
        let mut http_only_except = HashSet::new();
        for (index, name) in raw.http_only_except.iter().enumerate() {
            let at = format!("cookies.http_only_except[{index}]");
            if !is_cookie_name(name) {
                return Err(config_error(at, format!("`{name}` is not a cookie name")));
            }
            if except.contains(name) {
                return Err(config_error(
                    at,
                    format!("`{name}` is already in `except`, which leaves it untouched"),
                ));
            }
            if !http_only_except.insert(name.clone()) {
                return Err(config_error(at, format!("`{name}` is listed twice")));
            }
        }
        Ok(Self {
            secure: raw.secure,
            http_only: raw.http_only,
            same_site,
            except,
            http_only_except,
        })
    }
}

fn trim_bytes(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|byte| !byte.is_ascii_whitespace())
        .map_or(start, |index| index + 1);
    &bytes[start..end.max(start)]
}

impl CookieFlags {
    /// One `Set-Cookie` value with the configured flags, or `None` when it is left unchanged
    /// (a whitelisted cookie).
    pub fn rewrite(&self, set_cookie: &HeaderValue) -> Option<HeaderValue> {
        let bytes = set_cookie.as_bytes();
        let mut parts = bytes.split(|byte| *byte == b';');
        let pair = trim_bytes(parts.next().unwrap_or_default());
        // A pair without `=` is a nameless cookie (RFC 6265bis §5.6), never on a whitelist.
        let name = pair
            .iter()
            .position(|byte| *byte == b'=')
            .map_or(&b""[..], |index| trim_bytes(&pair[..index]));
        let name = std::str::from_utf8(name).unwrap_or_default();
        if self.except.contains(name) {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() + 32);
        out.extend_from_slice(pair);
        let mut secure = self.secure;
        let mut http_only = self.http_only && !self.http_only_except.contains(name);
        let mut upstream_same_site = None;
        for attribute in parts {
            let attribute = trim_bytes(attribute);
            if attribute.is_empty() {
                continue;
            }
            let (key, value) = match attribute.iter().position(|byte| *byte == b'=') {
                Some(index) => (
                    trim_bytes(&attribute[..index]),
                    trim_bytes(&attribute[index + 1..]),
                ),
                None => (attribute, &b""[..]),
            };
            if key.eq_ignore_ascii_case(b"secure") {
                secure = true;
            } else if key.eq_ignore_ascii_case(b"httponly") {
                http_only = true;
            } else if key.eq_ignore_ascii_case(b"samesite") {
                // Browsers honour the last SameSite attribute; an unknown value counts as absent.
                if let Some(same_site) = SameSite::parse(value) {
                    upstream_same_site = Some(same_site);
                }
            } else {
                out.extend_from_slice(b"; ");
                out.extend_from_slice(attribute);
            }
        }
        let same_site =
            upstream_same_site.map_or(self.same_site, |upstream| upstream.max(self.same_site));
        if secure {
            out.extend_from_slice(b"; Secure");
        }
        if http_only {
            out.extend_from_slice(b"; HttpOnly");
        }
        out.extend_from_slice(b"; SameSite=");
        out.extend_from_slice(same_site.as_str().as_bytes());
        // Only ASCII was added to a valid value, so this cannot fail; if it did, the upstream's
        // cookie stays rather than being lost.
        HeaderValue::from_bytes(&out).ok()
    }

    /// Rewrites every `Set-Cookie` of a response's `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !headers.contains_key(header::SET_COOKIE) {
            return;
        }
        let cookies: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|value| self.rewrite(value).unwrap_or_else(|| value.clone()))
            .collect();
        headers.remove(header::SET_COOKIE);
        for cookie in cookies {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
}

impl AnswerHeaders for CookieFlags {
    const STAGE: Stage = Stage::Cookies;

    fn apply_to(&self, headers: &mut HeaderMap) {
        self.apply(headers);
    }
}

/// A tower layer enforcing [`CookieFlags`] on every response's cookies.
pub type CookieFlagsLayer = HeadersLayer<CookieFlags>;

// ---------------------------------------------------------------------------------------------
// Masking
// ---------------------------------------------------------------------------------------------

/// The masking section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMasking {
    /// Largest JSON body masked, in bytes (default 1 MiB); larger ones pass unmasked.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Fields to mask per route.
    #[serde(default)]
    pub rules: Vec<RawMaskRoute>,
}

/// One route's fields as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaskRoute {
    /// `METHOD /path` (a template as axum writes it), `* /path` for any method, or `*` for
    /// every route.
    pub route: String,
    /// The fields masked on that route.
    pub fields: Vec<RawFieldMask>,
}

/// One field's mask as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFieldMask {
    /// The field's path: names joined by `.`, `[]` for every element of an array
    /// (`customer.phone`, `items[].card`, `[].email` when the body is an array).
    pub field: String,
    /// The audit crate's mask, as its configuration writes it: `redact`, `pseudonym`,
    /// `{keep_prefix: 7}`, `{keep_suffix: 4}`, `{keep: {prefix: 3, suffix: 4}}`. Read as a
    /// JSON value so an error can name this field.
    pub mask: Value,
    /// Roles that see the field unmasked.
    #[serde(default)]
    pub unless_roles: Vec<String>,
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// The member of an object.
    Member(String),
    /// Every element of an array.
    Each,
}

fn parse_field_path(path: &str, at: &str) -> Result<Vec<Step>, ConfigError> {
    let invalid = |why: &str| {
        config_error(
            at,
            format!(
                "`{path}` is not a field path ({why}); write e.g. `customer.phone` or `items[].card`"
            ),
        )
    };
    if path.trim().is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut steps = Vec::new();
    for (index, segment) in path.split('.').enumerate() {
        let name_end = segment.find('[').unwrap_or(segment.len());
        let (name, mut brackets) = segment.split_at(name_end);
        if name.contains(']') {
            return Err(invalid("a `]` without `[`"));
        }
        match (name.is_empty(), index) {
            // Only the body itself may be an array without a name: `[].email`.
            (true, 0) if !brackets.is_empty() => {}
            (true, _) => return Err(invalid("an empty name")),
            (false, _) => steps.push(Step::Member(name.to_owned())),
        }
        while !brackets.is_empty() {
            match brackets.strip_prefix("[]") {
                Some(rest) => {
                    steps.push(Step::Each);
                    brackets = rest;
                }
                None => return Err(invalid("only `[]` may follow a name, not an index")),
            }
        }
    }
    Ok(steps)
}

/// One checked field rule.
#[derive(Debug, Clone)]
struct FieldRule {
    steps: Vec<Step>,
    mask: Mask,
    unless_roles: Vec<String>,
}

/// The checked masking configuration.
#[derive(Debug, Clone)]
pub struct Masking {
    routes: Routes<Vec<Arc<FieldRule>>>,
    every_route: Vec<Arc<FieldRule>>,
    max_body_bytes: usize,
    /// Where the first `pseudonym` mask is, for the error when no secret is given.
    first_pseudonym: Option<String>,
}

impl Default for Masking {
    fn default() -> Self {
        Self {
            routes: Routes::default(),
            every_route: Vec::new(),
            max_body_bytes: DEFAULT_MASKING_MAX_BODY_BYTES,
            first_pseudonym: None,
        }
    }
}

impl TryFrom<RawMasking> for Masking {
    type Error = ConfigError;

    fn try_from(raw: RawMasking) -> Result<Self, ConfigError> {
        let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MASKING_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(config_error("masking.max_body_bytes", "must be above 0"));
        }
        let mut routes = Routes::default();
        let mut every_route = None;
        let mut first_pseudonym = None;
        for (route_index, route) in raw.rules.iter().enumerate() {
            let route_at = format!("masking.rules[{route_index}]");
            if route.fields.is_empty() {
                return Err(config_error(format!("{route_at}.fields"), "lists no field"));
            }
            let mut rules = Vec::with_capacity(route.fields.len());
            for (field_index, field) in route.fields.iter().enumerate() {
                let at = format!("{route_at}.fields[{field_index}]");
                let steps = parse_field_path(&field.field, &format!("{at}.field"))?;
                let mask = Mask::deserialize(&field.mask).map_err(|error| {
                    config_error(
                        format!("{at}.mask"),
                        format!(
                            "{error}; write `redact`, `pseudonym`, `{{keep_prefix: n}}`, \
                             `{{keep_suffix: n}}` or `{{keep: {{prefix: n, suffix: n}}}}`"
                        ),
                    )
                })?;
                if mask == Mask::Pseudonym && first_pseudonym.is_none() {
                    first_pseudonym = Some(format!("{at}.mask"));
                }
                for (role_index, role) in field.unless_roles.iter().enumerate() {
                    if role.trim().is_empty() {
                        return Err(config_error(
                            format!("{at}.unless_roles[{role_index}]"),
                            "is empty",
                        ));
                    }
                }
                rules.push(Arc::new(FieldRule {
                    steps,
                    mask,
                    unless_roles: field.unless_roles.clone(),
                }));
            }
            if route.route.trim() == "*" {
                if every_route.is_some() {
                    return Err(config_error(
                        format!("{route_at}.route"),
                        "`*` is listed twice; put its fields in one entry",
                    ));
                }
                every_route = Some(rules);
            } else {
                routes.insert(&route.route, rules, &format!("{route_at}.route"))?;
            }
        }
        Ok(Self {
            routes,
            every_route: every_route.unwrap_or_default(),
            max_body_bytes,
            first_pseudonym,
        })
    }
}

impl Masking {
    /// The rules that apply to a request by a caller with `roles`: the route's and every
    /// route's, less those the roles may see unmasked.
    fn rules_for(&self, method: &Method, path: &str, roles: &[String]) -> Vec<Arc<FieldRule>> {
        let route_rules = self.routes.find(method, path).map(Vec::as_slice);
        self.every_route
            .iter()
            .chain(route_rules.unwrap_or_default())
            .filter(|rule| !rule.unless_roles.iter().any(|role| roles.contains(role)))
            .cloned()
            .collect()
    }

    /// Whether any field of a request by a caller with `roles` would be masked.
    pub fn applies(&self, method: &Method, path: &str, roles: &[String]) -> bool {
        !self.rules_for(method, path, roles).is_empty()
    }
}

/// Counts of masked responses and of those that could not be masked (each also marked with a
/// [`MaskingOutcome`] in the response's extensions).
#[derive(Debug, Default)]
pub struct MaskingStats {
    masked: AtomicU64,
    not_json: AtomicU64,
    encoded: AtomicU64,
    too_large: AtomicU64,
    unreadable: AtomicU64,
    unparsable: AtomicU64,
}

impl MaskingStats {
    /// Responses with at least one value masked.
    pub fn masked(&self) -> u64 {
        self.masked.load(Ordering::Relaxed)
    }

    /// Responses that were skipped for `reason`.
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.counter(reason).load(Ordering::Relaxed)
    }

    fn counter(&self, reason: SkipReason) -> &AtomicU64 {
        match reason {
            SkipReason::NotJson => &self.not_json,
            SkipReason::Encoded => &self.encoded,
            SkipReason::TooLarge => &self.too_large,
            SkipReason::Unreadable => &self.unreadable,
            SkipReason::Unparsable => &self.unparsable,
        }
    }
}

/// Why a response that had fields to mask passed unmasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Its content type is not JSON (`application/json` or `…+json`).
    NotJson,
    /// It has a `Content-Encoding` (mount compression outside the masking layer).
    Encoded,
    /// It is larger than `max_body_bytes`.
    TooLarge,
    /// Reading it failed; the error reaches the client as it would without the layer.
    Unreadable,
    /// It says it is JSON but does not parse.
    Unparsable,
}

/// What the masking layer did to a response that had fields to mask for its caller, in the
/// response's extensions. Responses with nothing to mask for the caller carry none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskingOutcome {
    /// This many values were masked.
    Masked {
        /// Values replaced.
        values: usize,
    },
    /// The body was read but none of the fields was in it.
    NothingToMask,
    /// The body passed unmasked.
    Skipped(SkipReason),
}

/// The secret pseudonym keys are derived from; never printed.
struct PseudonymSecret(Vec<u8>);

impl fmt::Debug for PseudonymSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("PseudonymSecret(..)")
    }
}

#[derive(Debug)]
struct MaskingShared {
    config: Arc<Masking>,
    secret: Option<PseudonymSecret>,
    stats: Arc<MaskingStats>,
}

/// A tower layer masking [`Masking`]'s fields in JSON responses, per the caller's roles.
///
/// The roles come from the [`Caller`] in the request's extensions (no `Caller`: no roles, so
/// every field is masked). Only JSON bodies are read, up to `max_body_bytes`; everything else
/// streams through untouched. A masked body is written anew (object members may change order
/// and numbers their notation; a masked number becomes a string), with `Content-Length` set
/// and `ETag` and body digests dropped, since they described the unmasked body.
#[derive(Debug, Clone)]
pub struct MaskingLayer {
    shared: Arc<MaskingShared>,
}

impl MaskingLayer {
    /// The layer masking `config`. `pseudonym_secret` is the master secret the per-tenant
    /// pseudonym keys are derived from (the audit crate's [`derive_pseudonym_key`], with the
    /// tenant from the [`Caller`], or the empty tenant when there is none): with the same
    /// secret as the audit trail, a value has the same pseudonym in both. It is required when
    /// a rule masks with `pseudonym`.
    pub fn new(
        config: impl Into<Arc<Masking>>,
        pseudonym_secret: Option<&[u8]>,
    ) -> Result<Self, ConfigError> {
        let config = config.into();
        if let (Some(at), None) = (&config.first_pseudonym, pseudonym_secret) {
            return Err(config_error(
                at.clone(),
                "`pseudonym` needs a pseudonym secret, and none was given",
            ));
        }
        Ok(Self {
            shared: Arc::new(MaskingShared {
                config,
                secret: pseudonym_secret.map(|secret| PseudonymSecret(secret.to_vec())),
                stats: Arc::new(MaskingStats::default()),
            }),
        })
    }

    /// The layer's counters, shared by every service it makes.
    pub fn stats(&self) -> Arc<MaskingStats> {
        self.shared.stats.clone()
    }
}

impl<S> tower::Layer<S> for MaskingLayer {
    type Service = MaskingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MaskingService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`MaskingLayer`] makes.
#[derive(Debug, Clone)]
pub struct MaskingService<S> {
    inner: S,
    shared: Arc<MaskingShared>,
}

impl<S> tower::Service<Request<Body>> for MaskingService<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The caller and route belong to the request, which the inner service consumes: what
        // to mask is decided now and travels with the response future.
        let caller = request.extensions().get::<Caller>();
        let roles = caller.map_or(&[][..], |caller| caller.roles.as_slice());
        // A HEAD answer has no body, only the GET body's length, which must not be counted as
        // a body too large to mask.
        let rules = if request.method() == Method::HEAD {
            Vec::new()
        } else {
            self.shared
                .config
                .rules_for(request.method(), request.uri().path(), roles)
        };
        let tenant = caller.and_then(|caller| caller.tenant.clone());
        let times = StageTimes::of_request(&request);
        let future = self.inner.call(request);
        if rules.is_empty() {
            return Box::pin(future);
        }
        let shared = self.shared.clone();
        Box::pin(async move {
            let response = future.await?;
            let started = std::time::Instant::now();
            let masked = shared
                .mask_response(response, &rules, tenant.as_deref())
                .await;
            if let Some(times) = times {
                times.add(Stage::Masking, started.elapsed());
            }
            Ok(masked)
        })
    }
}

/// Whether a `Content-Type` is JSON: `application/json` or any `…+json` media type.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind == "application" && (subtype == "json" || subtype.ends_with("+json"))
}

/// A body read up to a limit.
enum Read {
    /// All of it, with its trailers.
    Complete(Bytes, Option<HeaderMap>),
    /// Not all of it: a body replaying what was read, then the rest (or the read error).
    Partial(Body, SkipReason),
}

/// A body yielding `frames`, then `rest`'s frames (or its error).
fn replay(frames: Vec<http_body::Frame<Bytes>>, rest: Result<Body, axum::Error>) -> Body {
    let read = futures_util::stream::iter(frames.into_iter().map(Ok::<_, axum::Error>));
    match rest {
        Ok(body) => Body::new(StreamBody::new(read.chain(BodyStream::new(body)))),
        Err(error) => Body::new(StreamBody::new(
            read.chain(futures_util::stream::iter([Err(error)])),
        )),
    }
}

async fn read_limited(mut body: Body, limit: usize) -> Read {
    let mut frames = Vec::new();
    let mut size = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                size = size.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                frames.push(frame);
                if size > limit {
                    return Read::Partial(replay(frames, Ok(body)), SkipReason::TooLarge);
                }
            }
            Err(error) => {
                return Read::Partial(replay(frames, Err(error)), SkipReason::Unreadable);
            }
        }
    }
    let mut data = Vec::with_capacity(size);
    let mut trailers: Option<HeaderMap> = None;
    for frame in frames {
        match frame.into_data() {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(frame) => {
                if let Ok(more) = frame.into_trailers() {
                    trailers.get_or_insert_with(HeaderMap::new).extend(more);
                }
            }
        }
    }
    Read::Complete(Bytes::from(data), trailers)
}

/// A body of `data`, then `trailers`.
fn body_of(data: Bytes, trailers: Option<HeaderMap>) -> Body {
    match trailers {
        None => Body::from(data),
        Some(trailers) => Body::new(StreamBody::new(futures_util::stream::iter([
            Ok::<_, axum::Error>(http_body::Frame::data(data)),
            Ok(http_body::Frame::trailers(trailers)),
        ]))),
    }
}

/// Headers that describe the exact bytes of the body, wrong once it is masked.
const BODY_DESCRIBING_HEADERS: [&str; 5] = [
    "etag",
    "content-md5",
    "digest",
    "content-digest",
    "repr-digest",
];

impl MaskingShared {
    fn skipped(&self, mut response: Response<Body>, reason: SkipReason) -> Response<Body> {
        self.stats.counter(reason).fetch_add(1, Ordering::Relaxed);
        response
            .extensions_mut()
            .insert(MaskingOutcome::Skipped(reason));
        response
    }

    /// The masker for a request: keyed for the tenant when a rule needs pseudonyms, else the
    /// keyless one (its other masks do not use the key). `None` when the key is missing.
    fn masker(&self, rules: &[Arc<FieldRule>], tenant: Option<&str>) -> Option<Masker> {
        if !rules.iter().any(|rule| rule.mask == Mask::Pseudonym) {
            return Some(Masker::none());
        }
        let secret = self.secret.as_ref()?;
        let key = derive_pseudonym_key(&secret.0, tenant.unwrap_or_default());
        Masker::new(&MaskingConfig::default(), key).ok()
    }

    async fn mask_response(
        &self,
        response: Response<Body>,
        rules: &[Arc<FieldRule>],
        tenant: Option<&str>,
    ) -> Response<Body> {
        // Checked before reading anything, so other responses keep streaming.
        if !is_json(response.headers()) {
            return self.skipped(response, SkipReason::NotJson);
        }
        let encoded = response
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|value| !value.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded {
            return self.skipped(response, SkipReason::Encoded);
        }
        let limit = self.config.max_body_bytes;
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return self.skipped(response, SkipReason::TooLarge);
        }
        let (mut parts, body) = response.into_parts();
        let (data, trailers) = match read_limited(body, limit).await {
            Read::Complete(data, trailers) => (data, trailers),
            Read::Partial(body, reason) => {
                return self.skipped(Response::from_parts(parts, body), reason);
            }
        };
        // An empty body (HEAD, 204, 304) holds nothing to mask.
        if data.iter().all(u8::is_ascii_whitespace) {
            parts.extensions.insert(MaskingOutcome::NothingToMask);
            return Response::from_parts(parts, body_of(data, trailers));
        }
        let mut value: Value = match serde_json::from_slice(&data) {
            Ok(value) => value,
            Err(_) => {
                return self.skipped(
                    Response::from_parts(parts, body_of(data, trailers)),
                    SkipReason::Unparsable,
                );
            }
        };
        let Some(masker) = self.masker(rules, tenant) else {
            return fail_closed();
        };
        let values: usize = rules
            .iter()
            .map(|rule| mask_at(&mut value, &rule.steps, rule.mask, &masker))
            .sum();
        if values == 0 {
            // Nothing matched: the upstream's bytes go out as they came, not re-serialized.
            parts.extensions.insert(MaskingOutcome::NothingToMask);
            return Response::from_parts(parts, body_of(data, trailers));
        }
        let Ok(masked) = serde_json::to_vec(&value) else {
            return fail_closed();
        };
        for name in BODY_DESCRIBING_HEADERS {
            parts.headers.remove(name);
        }
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(masked.len()));
        parts.extensions.insert(MaskingOutcome::Masked { values });
        self.stats.masked.fetch_add(1, Ordering::Relaxed);
        Response::from_parts(parts, body_of(Bytes::from(masked), trailers))
    }
}

/// The answer when a body that must be masked cannot be: an error, never the unmasked body.
fn fail_closed() -> Response<Body> {
    Refusal::new(
        Stage::Masking,
        StatusCode::INTERNAL_SERVER_ERROR,
        "masking_failed",
        "the response could not be masked",
    )
    .into_response()
}

/// Masks the values `steps` lead to inside `value`; returns how many were masked. A path that
/// does not fit the document (a missing member, an object where an array was expected) masks
/// nothing there.
fn mask_at(value: &mut Value, steps: &[Step], mask: Mask, masker: &Masker) -> usize {
    match steps.split_first() {
        None => mask_leaf(value, mask, masker),
        Some((Step::Member(name), rest)) => match value {
            Value::Object(members) => members
                .get_mut(name)
                .map_or(0, |member| mask_at(member, rest, mask, masker)),
            _ => 0,
        },
        Some((Step::Each, rest)) => match value {
            Value::Array(items) => items
                .iter_mut()
                .map(|item| mask_at(item, rest, mask, masker))
                .sum(),
            _ => 0,
        },
    }
}

/// Masks one value. Scalars are masked as their text (a number or boolean becomes a string);
/// `null` holds nothing and stays. An object or array under `redact` is replaced whole, so
/// not even its shape shows; under the other masks each scalar inside is masked.
fn mask_leaf(value: &mut Value, mask: Mask, masker: &Masker) -> usize {
    match value {
        Value::Null => 0,
        Value::String(text) => {
            *text = masker.mask_value(text, mask);
            1
        }
        Value::Number(_) | Value::Bool(_) => {
            *value = Value::String(masker.mask_value(&value.to_string(), mask));
            1
        }
        Value::Array(_) | Value::Object(_) if mask == Mask::Redact => {
            *value = Value::String(masker.mask_value("", Mask::Redact));
            1
        }
        Value::Array(items) => items
            .iter_mut()
            .map(|item| mask_leaf(item, mask, masker))
            .sum(),
        Value::Object(members) => members
            .values_mut()
            .map(|member| mask_leaf(member, mask, masker))
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "tests: a failed step must fail the test"
    )]

    use super::*;

    #[test]
    fn field_paths_parse_into_steps() {
        let member = |name: &str| Step::Member(name.to_owned());
        assert_eq!(
            parse_field_path("customer.phone", "at").unwrap(),
            vec![member("customer"), member("phone")]
        );
        assert_eq!(
            parse_field_path("items[].card", "at").unwrap(),
            vec![member("items"), Step::Each, member("card")]
        );
        assert_eq!(
            parse_field_path("[].rows[][]", "at").unwrap(),
            vec![Step::Each, member("rows"), Step::Each, Step::Each]
        );
        for bad in ["", "a..b", "items[0].card", "a.[]", "a]b", "a[", ".a"] {
            assert!(parse_field_path(bad, "at").is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn json_content_types() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            headers
        };
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=utf-8")));
        assert!(is_json(&headers("application/problem+json")));
        assert!(!is_json(&headers("text/json-ish")));
        assert!(!is_json(&headers("text/html")));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn cookie_rewrite_keeps_other_attributes_verbatim() {
        let flags = CookieFlags::default();
        let rewritten = flags
            .rewrite(&HeaderValue::from_static(
                "id=a=b; Path=/; secure; Priority=High;; SameSite=none; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
            ))
            .unwrap();
        assert_eq!(
            rewritten,
            "id=a=b; Path=/; Priority=High; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Secure; HttpOnly; SameSite=Lax"
        );
    }
}
