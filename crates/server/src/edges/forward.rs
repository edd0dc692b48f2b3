//! Forward-auth edges for reverse proxies: nginx `auth_request`, Traefik ForwardAuth and Envoy
//! ext_authz in HTTP mode.
//!
//! Each edge reconstructs the original request (method, path, host), maps it through the
//! tenant's route table to an action and resource, takes the client address from forwarding
//! headers only when the TCP peer is a trusted proxy, takes a client certificate only from a
//! trusted proxy's verified headers (or our own mTLS listener), binds the bearer identity to
//! the tenant and host, and answers 2xx (allow, with identity headers for the upstream),
//! 401 (no or invalid identity), 403 (deny), 400 (the proxy sent something unusable) or 429
//! (the tenant is over its quota). It never redirects.

use std::borrow::Cow;
use std::future::{Future, Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use hyper::body::Incoming;
use ipnet::IpNet;
use portcullis_core::{
    Cause, ClientCert, Context, Decision, Principal, Request, Resource, TenantId,
};
use serde_json::{Value, json};

use crate::connection::{Shortcut, ShortcutAnswer};
use crate::decision::{Decided, DecisionPath, Pending};
use crate::edges::api::header_tenant;
use crate::error::ApiError;
use crate::identity::{HostBinding, bearer, strip_port};
use crate::state::AppState;
use crate::tls::{PeerInfo, client_cert_from_pem};

/// Which proxy is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// nginx `auth_request`: `X-Original-Method`, `X-Original-URI`.
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Method`, `-Uri`, `-Host`, `-For`.
    Traefik,
    /// Envoy ext_authz HTTP: the original method and path, under a path prefix.
    Envoy,
}

impl Flavor {
    fn edge(self) -> &'static str {
        match self {
            Flavor::Nginx => "nginx",
            Flavor::Traefik => "traefik",
            Flavor::Envoy => "envoy-http",
        }
    }
}

/// The path prefix under which Envoy's HTTP ext_authz forwards the original path.
pub const ENVOY_PREFIX: &str = "/v1/authz/envoy";

/// A forward-auth handler's answer: ready at once for a question decided without waiting
/// (almost every one), a boxed future for one that waits for the evaluation pool or for room
/// in the audit buffer. Keeping the waiting out of the common path keeps the future that the
/// router moves for every request small.
pub type Answer = Either<Ready<Response>, Pin<Box<dyn Future<Output = Response> + Send>>>;

/// `/v1/authz/nginx`.
pub fn nginx(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    request: axum::extract::Request,
) -> Answer {
    respond(state, &peer, Flavor::Nginx, request)
}

/// `/v1/authz/traefik`.
pub fn traefik(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    request: axum::extract::Request,
) -> Answer {
    respond(state, &peer, Flavor::Traefik, request)
}

/// `/v1/authz/envoy/...`.
pub fn envoy(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    request: axum::extract::Request,
) -> Answer {
    respond(state, &peer, Flavor::Envoy, request)
}

/// The forward-auth edges as a [`Shortcut`] of the public listeners: a proxy asks one of them
/// for every request it serves, so they are answered without the router (same handlers, same
/// answers; the router keeps the routes for everything else that serves it).
#[derive(Debug)]
pub struct ForwardShortcut {
    state: Arc<AppState>,
}

impl ForwardShortcut {
    /// The shortcut of `state`'s public listeners.
    pub fn new(state: Arc<AppState>) -> ForwardShortcut {
        ForwardShortcut { state }
    }

    /// The edge the router would send `path` to.
    fn flavor(path: &str) -> Option<Flavor> {
        match path {
            "/v1/authz/nginx" => Some(Flavor::Nginx),
            "/v1/authz/traefik" => Some(Flavor::Traefik),
            ENVOY_PREFIX => Some(Flavor::Envoy),
            // `/v1/authz/envoy/{*path}`: the rest is not empty.
            _ => path
                .strip_prefix(ENVOY_PREFIX)
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|rest| !rest.is_empty())
                .map(|_| Flavor::Envoy),
        }
    }
}

impl Shortcut for ForwardShortcut {
    fn answer(
        &self,
        request: http::Request<Incoming>,
        peer: &PeerInfo,
    ) -> Result<ShortcutAnswer, http::Request<Incoming>> {
        let Some(flavor) = ForwardShortcut::flavor(request.uri().path()) else {
            return Err(request);
        };
        let state = Arc::clone(&self.state);
        let peer = peer.clone();
        Ok(Box::pin(async move {
            Ok(respond(state, &peer, flavor, request).await)
        }))
    }
}

// The handlers take the request apart and borrow its method, URI and headers rather than
// extracting them, which would copy the whole header map for every decision.
fn respond<B>(
    state: Arc<AppState>,
    peer: &PeerInfo,
    flavor: Flavor,
    request: http::Request<B>,
) -> Answer {
    let (parts, _body) = request.into_parts();
    let path = DecisionPath::new(&state, flavor.edge());
    let step = authorize(
        &path,
        peer,
        flavor,
        &parts.method,
        &parts.uri,
        &parts.headers,
    );
    match step {
        Ok(Step::Done(outcome)) => Either::Left(ready(render(outcome))),
        Ok(Step::Waiting(waiting)) => {
            // The rest of the question is answered with the same policy set.
            let policies = path.into_policies();
            Either::Right(Box::pin(async move {
                let path = DecisionPath::resume(&state, flavor.edge(), policies);
                render(waiting.finish(&path).await)
            }))
        }
        Err(error) => Either::Left(ready(error.into_response())),
    }
}

/// The proxy's answer for an outcome.
fn render(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Allowed {
            decision,
            user,
            tenant,
            roles,
        } => {
            let mut response = StatusCode::OK.into_response();
            // Room for the identity headers and the two every answer gets (`content-length`,
            // `x-request-id`), so that the map is allocated once and never grown.
            *response.headers_mut() = HeaderMap::with_capacity(6);
            let out = response.headers_mut();
            put(out, &X_PORTCULLIS_USER, &user);
            put(out, &X_PORTCULLIS_TENANT, tenant.as_str());
            put(out, &X_PORTCULLIS_ROLES, &roles.join(","));
            put(out, &X_PORTCULLIS_DECISION_ID, &decision.trace_id);
            response
        }
        Outcome::Denied { decision, reason } => {
            let body = denied_body(&decision, &reason);
            let mut response = (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
            put(
                response.headers_mut(),
                &X_PORTCULLIS_DECISION_ID,
                &decision.trace_id,
            );
            response
        }
    }
}

/// The body of a forward-auth denial: the cause, and what of the decision explains it.
pub fn denied_body(decision: &Decision, reason: &Value) -> Value {
    json!({
        "decision": "deny",
        "cause": reason,
        "forbids": decision.forbids,
        "strategy": decision.strategy,
        "trace_id": decision.trace_id,
    })
}

fn put(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    // Values that are not valid header text (control characters) are left out, not mangled.
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), value);
    }
}

// The headers read and written here, named once rather than parsed at every request.
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_PORTCULLIS_TIME: HeaderName = HeaderName::from_static("x-portcullis-time");
static X_SSL_CLIENT_FINGERPRINT: HeaderName = HeaderName::from_static("x-ssl-client-fingerprint");
static X_SSL_CLIENT_VERIFY: HeaderName = HeaderName::from_static("x-ssl-client-verify");
static X_SSL_CLIENT_CERT: HeaderName = HeaderName::from_static("x-ssl-client-cert");
static X_FORWARDED_TLS_CLIENT_CERT: HeaderName =
    HeaderName::from_static("x-forwarded-tls-client-cert");
static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static X_PORTCULLIS_USER: HeaderName = HeaderName::from_static("x-portcullis-user");
static X_PORTCULLIS_TENANT: HeaderName = HeaderName::from_static("x-portcullis-tenant");
static X_PORTCULLIS_ROLES: HeaderName = HeaderName::from_static("x-portcullis-roles");
static X_PORTCULLIS_DECISION_ID: HeaderName = HeaderName::from_static("x-portcullis-decision-id");

fn text<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    limit: usize,
) -> Result<Option<&'h str>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    if value.len() > limit {
        return Err(crate::connection::header_too_large(format!(
            "{name} is longer than {limit} bytes"
        )));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::bad_request("invalid_header", format!("{name} is not text")))
}

fn required<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    limit: usize,
) -> Result<&'h str, ApiError> {
    text(headers, name, limit)?
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("missing_header", format!("the proxy did not send {name}"))
        })
}

/// Whether `ip` (IPv4-mapped IPv6 taken as IPv4) is one of the trusted proxies.
pub(crate) fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        other => other,
    };
    trusted.iter().any(|network| network.contains(&ip))
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse().ok().or_else(|| strip_port(text).parse().ok())
}

/// The client address: from `X-Forwarded-For` (the right-most address that is not a trusted
/// proxy) or `X-Real-IP` when the peer is a trusted proxy, otherwise the peer itself.
pub fn client_ip(
    trusted: &[IpNet],
    peer: IpAddr,
    headers: &HeaderMap,
    limit: usize,
) -> Result<IpAddr, ApiError> {
    if !is_trusted(trusted, peer) {
        return Ok(peer);
    }
    if let Some(list) = text(headers, &X_FORWARDED_FOR, limit)? {
        let mut hops = Vec::new();
        for hop in list.split(',') {
            hops.push(parse_ip(hop).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_header",
                    format!(
                        "X-Forwarded-For holds `{}`, which is not an address",
                        hop.trim()
                    ),
                )
            })?);
        }
        let client = hops
            .iter()
            .rev()
            .find(|ip| !is_trusted(trusted, **ip))
            .or_else(|| hops.first())
            .copied();
        if let Some(client) = client {
            return Ok(client);
        }
    }
    if let Some(real) = text(headers, &X_REAL_IP, limit)? {
        return parse_ip(real)
            .ok_or_else(|| ApiError::bad_request("invalid_header", "X-Real-IP is not an address"));
    }
    Ok(peer)
}

/// The client certificate a trusted proxy vouches for, in the proxy's own header format.
fn proxy_cert(
    flavor: Flavor,
    headers: &HeaderMap,
    limit: usize,
) -> Result<(Option<ClientCert>, Option<String>), ApiError> {
    let decode = |value: &str| {
        percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned()
    };
    match flavor {
        Flavor::Nginx => {
            let sha1 =
                text(headers, &X_SSL_CLIENT_FINGERPRINT, limit)?.map(str::to_ascii_lowercase);
            let verified =
                text(headers, &X_SSL_CLIENT_VERIFY, limit)?.is_some_and(|v| v == "SUCCESS");
            if !verified {
                return Ok((None, None));
            }
            let cert = match text(headers, &X_SSL_CLIENT_CERT, limit)? {
                Some(escaped) => Some(client_cert_from_pem(&decode(escaped)).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_header",
                        "X-SSL-Client-Cert is not a PEM certificate",
                    )
                })?),
                None => None,
            };
            Ok((cert, sha1))
        }
        Flavor::Traefik => match text(headers, &X_FORWARDED_TLS_CLIENT_CERT, limit)? {
            Some(escaped) => {
                let first = decode(escaped);
                let first = first.split(',').next().unwrap_or_default().to_owned();
                let cert = client_cert_from_pem(&first).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_header",
                        "X-Forwarded-Tls-Client-Cert is not a certificate",
                    )
                })?;
                Ok((Some(cert), None))
            }
            None => Ok((None, None)),
        },
        Flavor::Envoy => match text(headers, &X_FORWARDED_CLIENT_CERT, limit)? {
            Some(xfcc) => Ok((parse_xfcc(xfcc), None)),
            None => Ok((None, None)),
        },
    }
}

/// Envoy's `x-forwarded-client-cert`: the last element (the hop nearest to us) with its `Cert`
/// (URL-encoded PEM), or else its `Hash` (SHA-256) and `Subject`.
fn parse_xfcc(value: &str) -> Option<ClientCert> {
    let element = split_outside_quotes(value, ',').pop()?;
    let mut cert = ClientCert::default();
    let mut pem = None;
    for pair in split_outside_quotes(&element, ';') {
        let Some((key, raw)) = pair.split_once('=') else {
            continue;
        };
        let raw = raw.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "hash" => cert.fingerprint = Some(raw.to_ascii_lowercase()),
            "subject" => {
                cert.subject = Some(raw.to_owned());
                cert.subject_cn = raw
                    .split(',')
                    .find_map(|part| part.trim().strip_prefix("CN="))
                    .map(str::to_owned);
            }
            "cert" => {
                pem = Some(
                    percent_encoding::percent_decode_str(raw)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            }
            _ => {}
        }
    }
    match pem.and_then(|pem| client_cert_from_pem(&pem)) {
        Some(parsed) => Some(parsed),
        None if cert.fingerprint.is_some() || cert.subject.is_some() => Some(cert),
        None => None,
    }
}

fn split_outside_quotes(value: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c == separator && !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// Everything a forward-auth edge learned about the original request, already filtered by
/// trust (forwarded addresses and certificates only from trusted proxies).
///
/// Text fields borrow from the proxy's request where they can.
#[derive(Debug, Clone, Default)]
pub struct Forwarded<'a> {
    /// Original method.
    pub method: Cow<'a, str>,
    /// Original path and query.
    pub uri: Cow<'a, str>,
    /// The host the request was addressed to.
    pub host: Option<Cow<'a, str>>,
    /// The tenant the proxy named, if any.
    pub tenant: Option<TenantId>,
    /// The bearer token, if any.
    pub token: Option<Cow<'a, str>>,
    /// The principal, when an earlier step on the same decision path verified the token and
    /// bound it to this tenant and host already (the gateway's credential stage): the token is
    /// then not read again.
    pub principal: Option<Principal>,
    /// The client address.
    pub client_ip: Option<IpAddr>,
    /// The verified client certificate.
    pub cert: Option<ClientCert>,
    /// The SHA-1 fingerprint a proxy sent alongside (nginx `$ssl_client_fingerprint`).
    pub cert_sha1: Option<String>,
    /// A caller-supplied time (honoured only for tenants that accept it).
    pub time: Option<jiff::Timestamp>,
    /// A trace id from the caller.
    pub trace_id: Option<String>,
}

/// The outcome of a forward-auth decision.
#[derive(Debug)]
pub enum Outcome {
    /// Allowed: identity headers for the upstream.
    Allowed {
        /// The decision.
        decision: Decision,
        /// Principal id.
        user: String,
        /// Tenant.
        tenant: TenantId,
        /// Effective roles.
        roles: Vec<String>,
    },
    /// Denied.
    Denied {
        /// The decision (an unknown tenant or an unmatched route is one too).
        decision: Decision,
        /// The decision's cause (`no_route`, `tenant_unknown`, `no_grant`, ...).
        reason: Value,
    },
}

fn authorize(
    path: &DecisionPath<'_>,
    peer: &PeerInfo,
    flavor: Flavor,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Step, ApiError> {
    let config = &path.state().config;
    let forwarded = read_forwarded(
        flavor,
        &config.trusted_proxies,
        config.limits.max_header_bytes,
        peer,
        method,
        uri,
        headers,
    )?;
    let agent = crate::edges::api::user_agent(headers);
    decide_forwarded_now(path, forwarded, agent)
}

/// Reads what a proxy's forward-auth request says about the original request: its method and
/// URI, host, tenant, bearer token, client address and certificate, time and trace id. Forwarded
/// addresses, hosts, certificates and times are believed only from a trusted proxy; every header
/// is at most `limit` bytes.
#[doc(hidden)]
pub fn read_forwarded<'h>(
    flavor: Flavor,
    trusted_proxies: &[IpNet],
    limit: usize,
    peer: &PeerInfo,
    method: &'h Method,
    uri: &Uri,
    headers: &'h HeaderMap,
) -> Result<Forwarded<'h>, ApiError> {
    let trusted = is_trusted(trusted_proxies, peer.addr.ip());
    let (original_method, original_uri) = match flavor {
        Flavor::Nginx => (
            Cow::Borrowed(text(headers, &X_ORIGINAL_METHOD, limit)?.unwrap_or(method.as_str())),
            Cow::Borrowed(required(headers, &X_ORIGINAL_URI, limit)?),
        ),
        Flavor::Traefik => (
            Cow::Borrowed(required(headers, &X_FORWARDED_METHOD, limit)?),
            Cow::Borrowed(required(headers, &X_FORWARDED_URI, limit)?),
        ),
        Flavor::Envoy => {
            let path = uri.path().strip_prefix(ENVOY_PREFIX).unwrap_or("/");
            let path = if path.is_empty() { "/" } else { path };
            let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            (
                Cow::Borrowed(method.as_str()),
                Cow::Owned(format!("{path}{query}")),
            )
        }
    };
    let host = if trusted {
        text(headers, &X_FORWARDED_HOST, limit)?.or(text(headers, &http::header::HOST, limit)?)
    } else {
        text(headers, &http::header::HOST, limit)?
    };
    let (mut cert, cert_sha1) = if trusted {
        proxy_cert(flavor, headers, limit)?
    } else {
        (None, None)
    };
    if let Some(own) = &peer.cert {
        cert = Some((**own).clone());
    }
    let time = match text(headers, &X_PORTCULLIS_TIME, limit)? {
        Some(value) if trusted => Some(value.parse::<jiff::Timestamp>().map_err(|e| {
            ApiError::bad_request("invalid_header", format!("X-Portcullis-Time: {e}"))
        })?),
        _ => None,
    };
    Ok(Forwarded {
        method: original_method,
        uri: original_uri,
        host: host.map(Cow::Borrowed),
        tenant: header_tenant(headers)?,
        token: bearer(headers)?.map(Cow::Borrowed),
        principal: None,
        client_ip: Some(client_ip(trusted_proxies, peer.addr.ip(), headers, limit)?),
        cert,
        cert_sha1,
        time,
        trace_id: traceparent(headers),
    })
}

/// The decoded path of an original URI (its query left out): it must start with '/', be UTF-8
/// once percent-decoded, and hold no '.' or '..' segments.
#[doc(hidden)]
pub fn original_path(uri: &str) -> Result<Cow<'_, str>, ApiError> {
    if !uri.starts_with('/') {
        return Err(ApiError::bad_request(
            "invalid_header",
            "the original URI does not start with '/'",
        ));
    }
    let raw_path = uri.split_once('?').map_or(uri, |(path, _)| path);
    let original_path = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_header",
                "the original path is not UTF-8 once decoded",
            )
        })?;
    if original_path
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Err(ApiError::bad_request(
            "invalid_header",
            "the original path holds '.' or '..' segments",
        ));
    }
    Ok(original_path)
}

/// Decides a forwarded request through the decision module: tenant, identity, admission,
/// route, then the policy. Shared by the HTTP forward-auth edges and Envoy's gRPC ext_authz.
pub async fn decide_forwarded(
    path: &DecisionPath<'_>,
    forwarded: Forwarded<'_>,
    user_agent: Option<&str>,
) -> Result<Outcome, ApiError> {
    match decide_forwarded_now(path, forwarded, user_agent)? {
        Step::Done(outcome) => Ok(outcome),
        Step::Waiting(waiting) => Ok(waiting.finish(path).await),
    }
}

/// [`decide_forwarded`] as far as it goes without waiting (see
/// [`DecisionPath::decide_now`]).
pub fn decide_forwarded_now(
    path: &DecisionPath<'_>,
    forwarded: Forwarded<'_>,
    user_agent: Option<&str>,
) -> Result<Step, ApiError> {
    let original_path = original_path(&forwarded.uri)?;
    let host = forwarded.host.as_deref();

    // The tenant: named by the proxy, or found by the host the request was addressed to.
    let tenant = match forwarded.tenant {
        Some(tenant) => tenant,
        None => path.tenant_of_host(host).ok_or_else(|| {
            ApiError::bad_request(
                "missing_tenant",
                "no X-Tenant-ID header and no tenant declares this host as its domain",
            )
        })?,
    };
    // The identity comes first, so that callers without one learn nothing about which tenants
    // exist (and cannot use up a tenant's quota).
    let principal = match forwarded.principal {
        Some(principal) => principal,
        None => {
            let identity = path
                .identify(forwarded.token.as_deref(), true)?
                .ok_or_else(|| {
                    ApiError::unauthenticated("missing_token", "a bearer token is required")
                })?;
            path.bind(&identity, &tenant, HostBinding::Original(host))?
        }
    };
    let _admitted = path.admit(&tenant)?;

    // The circumstances.
    // Room for every attribute set below, so that the map is not grown three times.
    let mut attributes = serde_json::Map::with_capacity(4);
    let method = forwarded.method.to_ascii_uppercase();
    attributes.insert("method".into(), Value::String(method.clone()));
    attributes.insert("path".into(), Value::String(original_path.to_string()));
    if let Some(host) = host {
        attributes.insert("host".into(), Value::String(host.to_owned()));
    }
    if let Some(sha1) = forwarded.cert_sha1 {
        attributes.insert("cert_sha1".into(), Value::String(sha1));
    }
    let accepts_time = path
        .snapshot(&tenant)
        .is_some_and(|snapshot| snapshot.settings().accept_request_time);
    let mut request = Request {
        tenant: tenant.clone(),
        principal,
        // Until a route names the action and resource, the request is the method on the path.
        action: method,
        resource: Resource::new("path", original_path.as_ref()),
        context: Context {
            ip: forwarded.client_ip,
            time: forwarded.time.filter(|_| accepts_time),
            cert: forwarded.cert,
            source: Some(path.edge().to_owned()),
            attributes,
        },
        env: Default::default(),
        explain: false,
        action_properties: Default::default(),
        trace_id: forwarded.trace_id,
    };

    // Denials before any policy: the tenant is not loaded, or no route matches. They are
    // decisions like the others, recorded and counted.
    let Some(snapshot) = path.snapshot(&tenant) else {
        let decided = path.refuse_now(request, Cause::TenantUnknown, user_agent);
        return Ok(Step::of(path, tenant, decided));
    };
    let Some(route) = snapshot.match_route(&forwarded.method, &original_path) else {
        let decided = path.refuse_now(request, Cause::NoRoute, user_agent);
        return Ok(Step::of(path, tenant, decided));
    };
    request.action = route.action.to_owned();
    request.resource = route.resource;
    let decided = path.decide_now(request, route.strategy, user_agent);
    Ok(Step::of(path, tenant, decided))
}

/// Where a forward-auth question stands once [`decide_forwarded_now`] returns.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "the common case is answered at once and must not allocate; the rare one is boxed"
)]
pub enum Step {
    /// Answered.
    Done(Outcome),
    /// Waiting for the evaluation pool or for room in the audit buffer.
    Waiting(Waiting),
}

impl Step {
    fn of(path: &DecisionPath<'_>, tenant: TenantId, decided: Decided) -> Step {
        match decided {
            Decided::Now(request, decision) => Step::Done(outcome(path, tenant, request, decision)),
            Decided::Later(pending) => Step::Waiting(Waiting { pending, tenant }),
        }
    }
}

/// A forward-auth decision still waiting.
#[derive(Debug)]
pub struct Waiting {
    pending: Box<Pending>,
    tenant: TenantId,
}

impl Waiting {
    /// The outcome, once the decision is done; `path` must have the policy set the question
    /// was started with.
    pub async fn finish(self, path: &DecisionPath<'_>) -> Outcome {
        let (request, decision) = Decided::Later(self.pending).finish(path).await;
        outcome(path, self.tenant, request, decision)
    }
}

/// A decision's outcome: allowed with the principal's effective roles, or denied.
fn outcome(
    path: &DecisionPath<'_>,
    tenant: TenantId,
    request: Request,
    decision: Decision,
) -> Outcome {
    if !decision.is_allowed() {
        return denied(decision);
    }
    let roles = path.snapshot(&tenant).map_or_else(Vec::new, |snapshot| {
        snapshot
            .effective_roles(&request.principal, &request.resource)
            .iter()
            .map(|r| r.to_string())
            .collect()
    });
    Outcome::Allowed {
        user: request.principal.id,
        tenant,
        roles,
        decision,
    }
}

fn denied(decision: Decision) -> Outcome {
    let reason = serde_json::to_value(decision.cause).unwrap_or(Value::Null);
    Outcome::Denied { decision, reason }
}

/// The trace id of a W3C `traceparent` header, if well formed.
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(&TRACEPARENT)?.to_str().ok()?;
    let mut parts = value.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()) && trace != "0".repeat(32))
        .then(|| trace.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.2")]);
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            client_ip(&trusted, proxy, &xff, 1024).unwrap(),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(&trusted, stranger, &xff, 1024).unwrap(), stranger);
        let spoofed = headers(&[("x-forwarded-for", "172.16.0.1, 203.0.113.7")]);
        assert_eq!(
            client_ip(&trusted, proxy, &spoofed, 1024).unwrap(),
            "203.0.113.7".parse::<IpAddr>().unwrap(),
            "the right-most untrusted hop wins; what the client prepended is ignored"
        );
        let bad = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            client_ip(&trusted, proxy, &bad, 1024).unwrap_err().code,
            "invalid_header"
        );
        let real = headers(&[("x-real-ip", "203.0.113.9")]);
        assert_eq!(
            client_ip(&trusted, proxy, &real, 1024).unwrap(),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn xfcc_elements_are_parsed() {
        let cert =
            parse_xfcc(r#"By=spiffe://a;Hash=AB12;Subject="O=Acme,CN=cert1";URI=spiffe://b"#)
                .unwrap();
        assert_eq!(cert.fingerprint.as_deref(), Some("ab12"));
        assert_eq!(cert.subject_cn.as_deref(), Some("cert1"));
        let last = parse_xfcc(r#"Hash=11;Subject="CN=first",Hash=22;Subject="CN=second""#).unwrap();
        assert_eq!(last.subject_cn.as_deref(), Some("second"));
    }

    #[test]
    fn traceparent_yields_the_trace_id() {
        let ok = headers(&[(
            "traceparent",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        )]);
        assert_eq!(
            traceparent(&ok).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(traceparent(&headers(&[("traceparent", "garbage")])), None);
    }
}
