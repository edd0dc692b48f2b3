//! The upstream stage: the protected application, reached as a reverse proxy does.
//!
//! [`Upstream`] is a tower service that sends each request on to the application's base URL
//! over a pooled hyper client (HTTP/1.1, or HTTP/2 with prior knowledge), bodies streamed both
//! ways, and hands the application's answer back:
//! - the request's path and query are appended to the base URL's path;
//! - hop-by-hop headers (`Connection` and the headers it names, `Keep-Alive`,
//!   `Proxy-Authorization`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) are dropped both
//!   ways, except that a WebSocket upgrade is passed through: the client's and the
//!   application's upgraded connections are then joined byte for byte;
//! - `X-Forwarded-For` is set to the [`Caller`]'s address when the request has none (code that
//!   trusts a proxy in front keeps the chain itself: only it knows whom to believe), and
//!   `X-Forwarded-Host` and `X-Forwarded-Proto` are set;
//! - an application that cannot be reached answers 502 `upstream_unavailable`, one that does
//!   not answer in time 504 `upstream_timeout`, both refusals of the stage `upstream`.
//!
//! The stage decides nothing about the request; the stages before it have.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use axum::response::IntoResponse as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;

use crate::routes::ConfigError;
use crate::stage::{Caller, Refusal, Stage, StageTimes};

/// The upstream section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// The application's base URL: `http://host:port[/prefix]`.
    pub url: String,
    /// `http1` (default) or `h2c` (HTTP/2 with prior knowledge).
    #[serde(default)]
    pub protocol: Protocol,
    /// Seconds to connect (default 5).
    pub connect_timeout_seconds: Option<u64>,
    /// Seconds for the application to start answering (default 30).
    pub timeout_seconds: Option<u64>,
    /// Seconds an idle pooled connection is kept (default 90).
    pub pool_idle_seconds: Option<u64>,
}

/// How to talk to the application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 over plain TCP, with prior knowledge.
    H2c,
}

/// The headers that concern one connection, never the request.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

struct Target {
    scheme: Scheme,
    authority: Authority,
    /// The base path, without a trailing `/`.
    prefix: String,
    timeout: Duration,
}

/// The application behind the gateway, as a tower service.
#[derive(Clone)]
pub struct Upstream {
    target: Arc<Target>,
    client: Client<HttpConnector, Body>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Upstream")
            .field("scheme", &self.target.scheme)
            .field("authority", &self.target.authority)
            .field("prefix", &self.target.prefix)
            .finish_non_exhaustive()
    }
}

impl TryFrom<RawUpstream> for Upstream {
    type Error = ConfigError;

    fn try_from(raw: RawUpstream) -> Result<Self, ConfigError> {
        let error = |at: &str, message: String| ConfigError {
            at: at.to_owned(),
            message,
        };
        let uri: Uri = raw
            .url
            .parse()
            .map_err(|e| error("url", format!("`{}` is not a URL: {e}", raw.url)))?;
        let scheme = uri
            .scheme()
            .filter(|scheme| **scheme == Scheme::HTTP)
            .cloned()
            .ok_or_else(|| {
                error(
                    "url",
                    format!("`{}`: the application is reached over http://", raw.url),
                )
            })?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| error("url", format!("`{}` names no host", raw.url)))?;
        if uri.query().is_some() {
            return Err(error("url", "a base URL has no query".into()));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let seconds = |value: Option<u64>, default: u64, at: &str| match value {
            Some(0) => Err(error(at, "must be above 0".into())),
            Some(value) => Ok(Duration::from_secs(value)),
            None => Ok(Duration::from_secs(default)),
        };
        let connect = seconds(raw.connect_timeout_seconds, 5, "connect_timeout_seconds")?;
        let timeout = seconds(raw.timeout_seconds, 30, "timeout_seconds")?;
        let idle = seconds(raw.pool_idle_seconds, 90, "pool_idle_seconds")?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(idle)
            .http2_only(raw.protocol == Protocol::H2c)
            .build(connector);
        Ok(Self {
            target: Arc::new(Target {
                scheme,
                authority,
                prefix,
                timeout,
            }),
            client,
        })
    }
}

/// Removes the hop-by-hop headers, and those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

fn failure(status: StatusCode, code: &'static str, message: String) -> Response<Body> {
    Refusal::new(Stage::Upstream, status, code, message).into_response()
}

impl Upstream {
    /// The application's base URL.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.target.scheme, self.target.authority, self.target.prefix
        )
    }

    /// The request as the application receives it.
    fn forward(&self, mut request: Request<Body>) -> Result<Request<Body>, String> {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", PathAndQuery::as_str);
        let target = format!("{}{path}", self.target.prefix);
        let uri = Uri::builder()
            .scheme(self.target.scheme.clone())
            .authority(self.target.authority.clone())
            .path_and_query(target)
            .build()
            .map_err(|e| format!("the request's path cannot be forwarded: {e}"))?;
        let websocket = is_websocket(request.headers());
        let host = request.headers().get(header::HOST).cloned().or_else(|| {
            request
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let address = request
            .extensions()
            .get::<Caller>()
            .and_then(|caller| caller.address);
        let headers = request.headers_mut();
        let upgrade = headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(headers);
        if websocket && let Some(upgrade) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, upgrade);
        }
        if let Some(address) = address
            && !headers.contains_key("x-forwarded-for")
            && let Ok(value) = HeaderValue::from_str(&address.to_string())
        {
            headers.insert("x-forwarded-for", value);
        }
        if let Some(host) = host {
            headers.insert("x-forwarded-host", host);
        }
        if !headers.contains_key("x-forwarded-proto") {
            headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        }
        // The application is addressed by its own authority; HTTP/2 carries it in the URI.
        headers.remove(header::HOST);
        *request.uri_mut() = uri;
        *request.version_mut() = axum::http::Version::HTTP_11;
        Ok(request)
    }

    /// Sends `request` to the application and answers what it answers.
    pub async fn send(&self, mut request: Request<Body>) -> Response<Body> {
        let websocket = is_websocket(request.headers());
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
        let request = match self.forward(request) {
            Ok(request) => request,
            Err(message) => return failure(StatusCode::BAD_REQUEST, "invalid_target", message),
        };
        let answer = tokio::time::timeout(self.target.timeout, self.client.request(request)).await;
        let mut response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                return failure(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    format!("the application could not be reached: {error}"),
                );
            }
            Err(_) => {
                return failure(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!(
                        "the application did not answer within {} s",
                        self.target.timeout.as_secs()
                    ),
                );
            }
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                if let (Ok(client), Ok(upstream)) = (client_upgrade.await, upstream_upgrade.await) {
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, Body::empty());
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Response::from_parts(parts, Body::new(body))
    }
}

impl tower::Service<Request<Body>> for Upstream {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let upstream = self.clone();
        let times = StageTimes::of_request(&request);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let answer = upstream.send(request).await;
            if let Some(times) = times {
                times.add(Stage::Upstream, started.elapsed());
            }
            Ok(answer)
        })
    }
}
