//! The trusted-origin stage: a state-changing request (any method but `GET`, `HEAD`,
//! `OPTIONS` and `TRACE`) must come from a page of a trusted origin, as its `Origin` header
//! says, or, when a browser sent none, its `Referer`.
//!
//! Trusted are the configured origins (`https://app.example.com`, `http://localhost:8080`) and,
//! unless turned off, the request's own host. Origins compare by scheme, host (case-insensitive)
//! and port, default ports filled in. `Origin: null` (sandboxed frames, some redirects) is never
//! trusted. A request with neither header passes unless `require` is set: non-browser clients
//! send neither, and the CSRF stage is what protects cookie-authenticated requests.
//!
//! This stage reads headers only.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use serde::Deserialize;

use crate::routes::ConfigError;
use crate::stage::{Check, Refusal, Stage};

/// The origin section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigins {
    /// Trusted origins: `scheme://host[:port]`.
    #[serde(default)]
    pub trusted: Vec<String>,
    /// Whether the request's own host is trusted (default true).
    #[serde(default = "yes")]
    pub same_host: bool,
    /// Whether a state-changing request without `Origin` and `Referer` is refused.
    #[serde(default)]
    pub require: bool,
}

fn yes() -> bool {
    true
}

/// An origin: scheme, lower-case host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OriginKey {
    scheme: String,
    host: String,
    port: u16,
}

impl OriginKey {
    /// The origin of an absolute URL (`Origin` values and `Referer` URLs alike).
    fn of_url(text: &str) -> Option<Self> {
        let uri: Uri = text.trim().parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?;
        // Credentials in an origin are never legitimate.
        if authority.as_str().contains('@') {
            return None;
        }
        let port = match (authority.port_u16(), scheme.as_str()) {
            (Some(port), _) => port,
            (None, "https") => 443,
            (None, "http") => 80,
            (None, _) => return None,
        };
        Some(Self {
            scheme,
            host: authority.host().to_ascii_lowercase(),
            port,
        })
    }
}

/// The checked origin configuration.
#[derive(Debug, Clone)]
pub struct Origins {
    trusted: HashSet<OriginKey>,
    same_host: bool,
    require: bool,
}

impl TryFrom<RawOrigins> for Origins {
    type Error = ConfigError;

    fn try_from(raw: RawOrigins) -> Result<Self, ConfigError> {
        let mut trusted = HashSet::new();
        for (index, origin) in raw.trusted.iter().enumerate() {
            let key = OriginKey::of_url(origin)
                .filter(|_| {
                    // An origin has no path beyond `/`, no query and no fragment.
                    let rest = origin.split_once("://").map_or("", |(_, rest)| rest);
                    rest.find('/').is_none_or(|at| rest[at..] == *"/")
                        && !rest.contains('?')
                        && !rest.contains('#')
                })
                .ok_or_else(|| ConfigError {
                    at: format!("trusted[{index}]"),
                    message: format!(
                        "`{origin}` is not an origin (`https://host` or `http://host:port`)"
                    ),
                })?;
            trusted.insert(key);
        }
        Ok(Self {
            trusted,
            same_host: raw.same_host,
            require: raw.require,
        })
    }
}

impl Origins {
    fn is_trusted(&self, origin: &OriginKey, headers: &HeaderMap) -> bool {
        if self.trusted.contains(origin) {
            return true;
        }
        // The request's own host: its scheme is not known behind a proxy, so host and port
        // are compared (a port-less Host is the origin's default port).
        self.same_host
            && headers
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
                .and_then(|host| host.parse::<axum::http::uri::Authority>().ok())
                .is_some_and(|host| {
                    host.host().eq_ignore_ascii_case(&origin.host)
                        && host.port_u16().unwrap_or(origin.port) == origin.port
                })
    }

    /// Checks one request's headers.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return Ok(());
        }
        let refuse = |code: &'static str, field: &str, message: String| {
            Refusal::new(Stage::Origin, StatusCode::FORBIDDEN, code, message).with_field(field)
        };
        let (field, value) = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
            (Some(origin), _) => ("origin", origin),
            (None, Some(referer)) => ("referer", referer),
            (None, None) if self.require => {
                return Err(refuse(
                    "origin_missing",
                    "origin",
                    "a state-changing request must carry `Origin` or `Referer`".into(),
                ));
            }
            (None, None) => return Ok(()),
        };
        let origin = value
            .to_str()
            .ok()
            .filter(|text| *text != "null")
            .and_then(OriginKey::of_url);
        match origin {
            Some(origin) if self.is_trusted(&origin, headers) => Ok(()),
            Some(origin) => Err(refuse(
                "untrusted_origin",
                field,
                format!(
                    "requests from {}://{}:{} are not trusted",
                    origin.scheme, origin.host, origin.port
                ),
            )),
            None => Err(refuse(
                "untrusted_origin",
                field,
                format!("the `{field}` header is not a trusted origin"),
            )),
        }
    }
}

/// The trusted-origin stage.
#[derive(Debug, Clone)]
pub struct OriginCheck {
    origins: Arc<Origins>,
}

impl OriginCheck {
    /// The stage with `origins`.
    pub fn new(origins: Arc<Origins>) -> Self {
        Self { origins }
    }
}

impl Check for OriginCheck {
    const STAGE: Stage = Stage::Origin;

    async fn check(&self, request: Request<Body>) -> Result<Request<Body>, Refusal> {
        self.origins.check(request.method(), request.headers())?;
        Ok(request)
    }
}
