//! Serving accepted connections (HTTP/1.1 and HTTP/2, plain or TLS) with hyper, and the limits
//! on request heads.
//!
//! hyper refuses a request head it cannot hold within its own limits before any of our code
//! runs, with a bare status and no body: 431 for a head larger than its buffer (HTTP/1.1) or
//! header list (HTTP/2), 414 for a URI over 65,534 bytes. So hyper's limits are set well above
//! the configured ones ([`HeadLimits::hyper_ceiling`]), and [`HeadLimits::check`] enforces the
//! configured `limits.max_header_bytes`, `limits.max_header_section_bytes` and
//! `limits.max_uri_bytes` on every request of every listener, before routing, answering the
//! JSON body every other error has. What hyper still refuses by itself — a head beyond the
//! ceiling, more than 100 header fields on HTTP/1.1, a URI over 65,534 bytes on HTTP/1.1, a
//! request that is not HTTP — is listed in the README (Decision service, "Limits on request
//! heads").
//!
//! Every request is named here (`X-Request-ID`, see [`crate::request_id`]) before the limits
//! are checked, so that refusals carry the name too.
//!
//! A listener may also have a [`Shortcut`]: requests it takes by their path (forward-auth on
//! the public listeners, asked by a proxy for every request it serves) are answered without
//! the router, by the same handlers.
//!
//! This module owns the accept loop and graceful shutdown; it must not look into requests
//! beyond their heads: routing, identity and bodies belong to the routers and shortcuts.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tower::util::Oneshot;

use crate::config::Limits;
use crate::error::ApiError;
use crate::request_id::{self, Named};
use crate::tls::PeerInfo;

/// The configured limits on request heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest value of one header.
    pub header_bytes: usize,
    /// Largest header section: every name and value together.
    pub section_bytes: usize,
    /// Longest URI.
    pub uri_bytes: usize,
}

/// hyper's head limit is never below this (its own default is about 408 KiB), so that heads
/// well past the configured limits still reach [`HeadLimits::check`] and get a JSON answer.
const MIN_HYPER_CEILING: usize = 512 * 1024;

impl HeadLimits {
    /// The limits of the configuration.
    pub fn new(limits: &Limits) -> HeadLimits {
        HeadLimits {
            header_bytes: limits.max_header_bytes,
            section_bytes: limits.max_header_section_bytes,
            uri_bytes: limits.max_uri_bytes,
        }
    }

    /// The head size hyper itself accepts (its HTTP/1.1 read buffer and HTTP/2 header list):
    /// four times the configured limits, at least 512 KiB. Beyond it hyper answers a bare 431;
    /// a connection can make the server hold at most this much for its head.
    pub fn hyper_ceiling(&self) -> usize {
        self.section_bytes
            .saturating_add(self.uri_bytes)
            .saturating_mul(4)
            .max(MIN_HYPER_CEILING)
    }

    /// Refuses a head over the configured limits: 414 `uri_too_long`, 431 `header_too_large`.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let uri_length = uri
            .authority()
            .map_or(0, |authority| authority.as_str().len())
            + uri
                .path_and_query()
                .map_or(0, |target| target.as_str().len());
        if uri_length > self.uri_bytes {
            return Err(ApiError::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!(
                    "the request URI is {uri_length} bytes long; at most {} are accepted",
                    self.uri_bytes
                ),
            ));
        }
        let mut section = 0usize;
        for (name, value) in headers {
            if value.len() > self.header_bytes {
                return Err(header_too_large(format!(
                    "the {name} header is {} bytes long; at most {} are accepted",
                    value.len(),
                    self.header_bytes
                )));
            }
            section += name.as_str().len() + value.len();
        }
        if section > self.section_bytes {
            return Err(header_too_large(format!(
                "the request's headers total {section} bytes; at most {} are accepted",
                self.section_bytes
            )));
        }
        Ok(())
    }
}

/// 431 `header_too_large`.
pub fn header_too_large(message: String) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "header_too_large",
        message,
    )
}

/// The answer of a [`Shortcut`].
pub type ShortcutAnswer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// Requests a listener answers without its router: a few exact paths asked at a rate where
/// the router's own work (matching, boxing the body, cloning the route, the extensions map)
/// is a large part of the answer's cost. A shortcut must answer exactly as the router's route
/// for the same path does; the request is named and its head checked before, as for the
/// router, and the answer is computed inside the request's name (so that records made while
/// answering carry it).
pub trait Shortcut: Send + Sync {
    /// The answer to `request` when its path is one this shortcut takes, otherwise the request
    /// back, untouched, for the router.
    #[allow(
        clippy::result_large_err,
        reason = "the request is handed back to be routed, not an error"
    )]
    fn answer(
        &self,
        request: Request<Incoming>,
        peer: &PeerInfo,
    ) -> Result<ShortcutAnswer, Request<Incoming>>;
}

/// The service of one connection: names the request ([`request_id`]), checks the head limits,
/// then answers by the listener's [`Shortcut`] or runs the router, with the peer available to
/// handlers as `ConnectInfo<PeerInfo>`.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    shortcut: Option<Arc<dyn Shortcut>>,
    peer: PeerInfo,
    limits: HeadLimits,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        Ready<Result<Response, Infallible>>,
        Named<Either<Oneshot<Router, Request<Body>>, ShortcutAnswer>>,
    >;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let id = request_id::of_request(request.headers());
        if let Err(error) = self.limits.check(request.uri(), request.headers()) {
            let mut response = error.into_response();
            request_id::answer(&mut response, &id);
            return Either::Left(ready(Ok(response)));
        }
        let request = match &self.shortcut {
            Some(shortcut) => match shortcut.answer(request, &self.peer) {
                Ok(answer) => return Either::Right(Named::new(id, Either::Right(answer))),
                Err(request) => request,
            },
            None => request,
        };
        let mut request = request.map(Body::new);
        request
            .extensions_mut()
            .insert(ConnectInfo(self.peer.clone()));
        Either::Right(Named::new(
            id,
            Either::Left(self.router.clone().oneshot(request)),
        ))
    }
}

/// Serves `router` (and `shortcut`, if any) on every connection `listener` accepts until
/// `stop` turns true (or its sender is gone); then stops accepting, lets every connection
/// finish the requests it has started, and ends once they are closed.
pub fn spawn<L>(
    mut listener: L,
    router: Router,
    shortcut: Option<Arc<dyn Shortcut>>,
    limits: HeadLimits,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()>
where
    L: Listener<Addr = PeerInfo>,
{
    tokio::spawn(async move {
        let mut builder = Builder::new(TokioExecutor::new());
        let ceiling = limits.hyper_ceiling();
        builder.http1().max_buf_size(ceiling);
        builder
            .http2()
            .max_header_list_size(u32::try_from(ceiling).unwrap_or(u32::MAX));
        let builder = Arc::new(builder);
        // Every connection holds a receiver; the sender sees them all dropped once the last
        // connection has closed.
        let (closed, open) = watch::channel(());
        loop {
            let (io, peer) = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|stopped| *stopped) => break,
            };
            let service = ConnectionService {
                router: router.clone(),
                shortcut: shortcut.clone(),
                peer,
                limits,
            };
            let builder = Arc::clone(&builder);
            let mut stop = stop.clone();
            let open = open.clone();
            tokio::spawn(async move {
                // With upgrades: the gateway joins a client's WebSocket to its application's.
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                let mut connection = std::pin::pin!(connection);
                let finished = tokio::select! {
                    result = connection.as_mut() => Some(result),
                    _ = stop.wait_for(|stopped| *stopped) => None,
                };
                let result = match finished {
                    Some(result) => result,
                    None => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                drop(open);
            });
        }
        drop(open);
        drop(listener);
        closed.closed().await;
    })
}
