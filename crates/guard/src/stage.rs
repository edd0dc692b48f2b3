//! The pipeline's stages, their fixed order, what a refusal says, and the layer that runs one
//! request stage in front of any tower service.
//!
//! Every request stage is a [`Check`]: it looks at the request (and may replace it, e.g. with
//! its body buffered, or add what it found to the extensions) and either lets it through or
//! refuses it with a [`Refusal`] naming the stage, the status, an error code and, where there
//! is one, the field. [`StageLayer`] turns a check into a tower layer, so each stage can be
//! mounted alone. A request that passes a stage carries that stage in its [`Trail`] (the
//! permit travels with the request, as the linkerd2-proxy's authorization layer does), and a
//! refused one never reaches the inner service; the refusal's answer carries the [`Refusal`] in
//! its extensions so an outer layer (audit, metrics) can see which stage decided.
//!
//! This module owns the order and the shape of refusals; it decides nothing itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use http_body_util::BodyExt as _;
use serde_json::json;

/// A stage of the pipeline. The order of the variants is the order requests go through them
/// (the request stages, then the upstream, then the response stages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// A logged-out or expired session is refused before anything else.
    Session,
    /// The interface credential: an API key or a JWT, through the service's identity.
    Credential,
    /// A state-changing request from an untrusted origin or referer.
    Origin,
    /// The method and path must be a registered resource (the tenant's routes).
    Resource,
    /// Query, form, JSON and multipart parameters against the route's rules.
    Validation,
    /// The CSRF token of a state-changing request.
    Csrf,
    /// Rate limits per client address, principal and tenant.
    RateLimit,
    /// Login protection: lockout after failed logins, per account and address.
    Login,
    /// The permission, asked of the decision path.
    Permission,
    /// SQL injection and XSS in parameters and body fields; XML and upload checks.
    Injection,
    /// The upstream application.
    Upstream,
    /// Masking of configured response fields per role.
    Masking,
    /// `Secure`, `HttpOnly` and `SameSite` on response cookies.
    Cookies,
    /// Security headers on every response.
    SecurityHeaders,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 14] = [
        Stage::Session,
        Stage::Credential,
        Stage::Origin,
        Stage::Resource,
        Stage::Validation,
        Stage::Csrf,
        Stage::RateLimit,
        Stage::Login,
        Stage::Permission,
        Stage::Injection,
        Stage::Upstream,
        Stage::Masking,
        Stage::Cookies,
        Stage::SecurityHeaders,
    ];

    /// The stage's place in [`Stage::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The stage's name in configuration, refusals, audit records and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Session => "session",
            Stage::Credential => "credential",
            Stage::Origin => "origin",
            Stage::Resource => "resource",
            Stage::Validation => "validation",
            Stage::Csrf => "csrf",
            Stage::RateLimit => "rate_limit",
            Stage::Login => "login",
            Stage::Permission => "permission",
            Stage::Injection => "injection",
            Stage::Upstream => "upstream",
            Stage::Masking => "masking",
            Stage::Cookies => "cookies",
            Stage::SecurityHeaders => "security_headers",
        }
    }

    /// The stage of a name, as [`Stage::name`] writes it.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|stage| stage.name() == name)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Why a stage refused a request. Answered as JSON:
/// `{"error": {"code", "message", "stage", "field"?}}`, with `Retry-After` when set, any extra
/// [`headers`](Refusal::headers), and as `303 See Other` to [`redirect`](Refusal::redirect)
/// when a browser is to be sent elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{stage} refused the request ({code}): {message}")]
pub struct Refusal {
    /// The stage that refused.
    pub stage: Stage,
    /// The answer's status.
    pub status: StatusCode,
    /// A `snake_case` error code.
    pub code: &'static str,
    /// What is wrong, for the client.
    pub message: String,
    /// The parameter, field or header concerned, when there is one.
    pub field: Option<String>,
    /// Seconds the client should wait (rate limits, lockouts).
    pub retry_after: Option<u64>,
    /// Where a browser is sent instead of being shown the refusal (a login page): the answer
    /// is then `303 See Other` with this `Location`, the body unchanged; `status` still says
    /// what the refusal is, for records and metrics. Boxed: most refusals have none, and every
    /// stage's `Result` carries a refusal.
    pub redirect: Option<Box<HeaderValue>>,
    /// Headers the answer carries besides its own, appended in order (a `Set-Cookie` that
    /// clears a cookie).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Refusal {
    /// A refusal by `stage`.
    pub fn new(
        stage: Stage,
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            stage,
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            redirect: None,
            headers: Vec::new(),
        }
    }

    /// The same refusal, naming the field concerned.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The same refusal, telling the client when to retry.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The same refusal, answered to a browser as a `303 See Other` to `location`.
    #[must_use]
    pub fn with_redirect(mut self, location: HeaderValue) -> Self {
        self.redirect = Some(Box::new(location));
        self
    }

    /// The same refusal, its answer carrying one more header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "stage": self.stage.name(),
        });
        if let Some(field) = &self.field {
            error["field"] = json!(field);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body().to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        if let Some(location) = &self.redirect {
            headers.insert(header::LOCATION, HeaderValue::clone(location));
            *response.status_mut() = StatusCode::SEE_OTHER;
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// The stages a request has passed, in order: the permit that travels with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail {
    passed: Vec<Stage>,
}

impl Trail {
    /// The stages passed so far.
    pub fn passed(&self) -> &[Stage] {
        &self.passed
    }

    /// Whether `stage` has passed.
    pub fn has_passed(&self, stage: Stage) -> bool {
        self.passed.contains(&stage)
    }

    /// Records in a request's extensions that it passed `stage`.
    pub fn record(extensions: &mut axum::http::Extensions, stage: Stage) {
        match extensions.get_mut::<Trail>() {
            Some(trail) => trail.passed.push(stage),
            None => {
                extensions.insert(Trail {
                    passed: vec![stage],
                });
            }
        }
    }
}

/// Where the time of one request went, stage by stage: put in a request's extensions by
/// whoever mounts the stages (the gateway does, for its per-stage time metric), and each stage
/// that finds it adds its own time — the time it spent on the request and on its answer, not
/// the time of the stages inside it. A request without it is not timed.
#[derive(Debug, Clone, Default)]
pub struct StageTimes(Arc<[std::sync::atomic::AtomicU64; Stage::ALL.len()]>);

impl StageTimes {
    /// Adds `spent` to `stage`'s time.
    pub fn add(&self, stage: Stage, spent: std::time::Duration) {
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.0[stage.index()].fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
    }

    /// The time spent in `stage` so far.
    pub fn of(&self, stage: Stage) -> std::time::Duration {
        std::time::Duration::from_nanos(
            self.0[stage.index()].load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The stages that spent any time, in pipeline order, with their time.
    pub fn spent(&self) -> impl Iterator<Item = (Stage, std::time::Duration)> + '_ {
        Stage::ALL
            .into_iter()
            .map(|stage| (stage, self.of(stage)))
            .filter(|(_, spent)| !spent.is_zero())
    }

    /// The request's timer, if it is timed.
    pub fn of_request<B>(request: &Request<B>) -> Option<StageTimes> {
        request.extensions().get::<StageTimes>().cloned()
    }
}

/// Times an inner service's future, so that a stage around it can count its own time without
/// the inner one's: `spent` receives the nanoseconds the inner future took.
struct TimedNext<S> {
    inner: S,
    spent: Arc<std::sync::atomic::AtomicU64>,
}

impl<S> tower::Service<Request<Body>> for TimedNext<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send,
    S::Error: Send,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let started = std::time::Instant::now();
        let future = self.inner.call(request);
        let spent = Arc::clone(&self.spent);
        Box::pin(async move {
            let answer = future.await;
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            spent.fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
            answer
        })
    }
}

/// Who is asking, as far as the pipeline knows: put in the request's extensions by whoever
/// mounts the stages (the gateway sets the address from the connection or a trusted proxy
/// header, and the principal and tenant once the credential stage has verified them). Stages
/// that key on a caller (rate limits, login protection, CSRF) read it from there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The client's address.
    pub address: Option<std::net::IpAddr>,
    /// The verified principal.
    pub principal: Option<String>,
    /// The tenant the request is for.
    pub tenant: Option<String>,
    /// The principal's roles (response masking is configured per role).
    pub roles: Vec<String>,
}

/// One request stage: lets the request through (possibly changed) or refuses it.
pub trait Check: Clone + Send + Sync + 'static {
    /// The stage this check is.
    const STAGE: Stage;

    /// Checks `request`; on success returns the request to hand on.
    fn check(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Request<Body>, Refusal>> + Send;
}

/// A tower layer running one [`Check`] in front of a service.
#[derive(Debug, Clone)]
pub struct StageLayer<C> {
    check: C,
}

impl<C: Check> StageLayer<C> {
    /// The layer of `check`.
    pub fn new(check: C) -> Self {
        Self { check }
    }
}

impl<S, C: Check> tower::Layer<S> for StageLayer<C> {
    type Service = StageService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        StageService {
            inner: Shared(Arc::new(inner)),
            check: self.check.clone(),
        }
    }
}

/// The rest of the pipeline behind a stage, shared by the stage's calls. A call needs a service
/// of its own to take into its future; cloning a `Shared` copies a pointer, and the call then
/// clones only the next service, whose own inner service is shared in turn — instead of every
/// stage copying the whole rest of the pipeline for every request.
#[derive(Debug)]
struct Shared<S>(Arc<S>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S> tower::Service<Request<Body>> for Shared<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = tower::util::Oneshot<S, Request<Body>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Each call readies its own copy (the `Oneshot` does).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        tower::util::Oneshot::new(S::clone(&self.0), request)
    }
}

/// The service [`StageLayer`] makes.
#[derive(Debug)]
pub struct StageService<S, C> {
    inner: Shared<S>,
    check: C,
}

impl<S, C: Clone> Clone for StageService<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            check: self.check.clone(),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, C> tower::Service<Request<Body>> for StageService<S, C>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    C: Check,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let mut inner = self.inner.clone();
        let check = self.check.clone();
        let times = StageTimes::of_request(&request);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let checked = check.check(request).await;
            if let Some(times) = &times {
                times.add(C::STAGE, started.elapsed());
            }
            match checked {
                Ok(mut request) => {
                    Trail::record(request.extensions_mut(), C::STAGE);
                    inner.call(request).await
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// A stage that works around the rest of the pipeline rather than only in front of it: it may
/// refuse the request, hand it on changed, and look at or change the answer (the CSRF stage
/// issues tokens on answers, login protection counts them). [`AroundLayer`] mounts one.
pub trait Around: Send + Sync + 'static {
    /// The stage this is.
    const STAGE: Stage;

    /// Answers `request`, calling `next` (ready to be called once) for the rest of the
    /// pipeline when the request goes on.
    fn around<S>(
        self: Arc<Self>,
        request: Request<Body>,
        next: S,
    ) -> impl Future<Output = Result<Response<Body>, S::Error>> + Send
    where
        S: tower::Service<Request<Body>, Response = Response<Body>> + Send + 'static,
        S::Future: Send,
        S::Error: Send;
}

/// A tower layer running one [`Around`] stage.
#[derive(Debug)]
pub struct AroundLayer<A> {
    stage: Arc<A>,
}

impl<A> Clone for AroundLayer<A> {
    fn clone(&self) -> Self {
        Self {
            stage: Arc::clone(&self.stage),
        }
    }
}

impl<A: Around> AroundLayer<A> {
    /// The layer of `stage`.
    pub fn new(stage: Arc<A>) -> Self {
        Self { stage }
    }
}

impl<S, A: Around> tower::Layer<S> for AroundLayer<A> {
    type Service = AroundService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            inner: Shared(Arc::new(inner)),
            stage: Arc::clone(&self.stage),
        }
    }
}

/// The service [`AroundLayer`] makes.
#[derive(Debug)]
pub struct AroundService<S, A> {
    inner: Shared<S>,
    stage: Arc<A>,
}

impl<S, A> Clone for AroundService<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            stage: Arc::clone(&self.stage),
        }
    }
}

impl<S, A> tower::Service<Request<Body>> for AroundService<S, A>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Send,
    A: Around,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let stage = Arc::clone(&self.stage);
        let Some(times) = StageTimes::of_request(&request) else {
            return Box::pin(stage.around(request, inner));
        };
        Box::pin(async move {
            let started = std::time::Instant::now();
            let spent = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let next = TimedNext {
                inner,
                spent: Arc::clone(&spent),
            };
            let answer = stage.around(request, next).await;
            let inner =
                std::time::Duration::from_nanos(spent.load(std::sync::atomic::Ordering::Relaxed));
            times.add(A::STAGE, started.elapsed().saturating_sub(inner));
            answer
        })
    }
}

/// A request's body, read once by the first stage that needs it and kept in the extensions
/// for the stages after it.
#[derive(Debug, Clone)]
pub struct BufferedBody(pub Bytes);

/// The request's body as bytes, at most `limit` of them (413 `body_too_large` from `stage`
/// beyond): read from the extensions when an earlier stage has read it, else read now. The
/// request handed back carries the same bytes as its body.
pub async fn buffer_body(
    request: Request<Body>,
    limit: usize,
    stage: Stage,
) -> Result<(Request<Body>, Bytes), Refusal> {
    if let Some(BufferedBody(bytes)) = request.extensions().get::<BufferedBody>() {
        let bytes = bytes.clone();
        return Ok((request, bytes));
    }
    let too_large = || {
        Refusal::new(
            stage,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let (mut parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, limit);
    let bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(error) => {
            return Err(Refusal::new(
                stage,
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                format!("the body could not be read: {error}"),
            ));
        }
    };
    parts.extensions.insert(BufferedBody(bytes.clone()));
    Ok((Request::from_parts(parts, Body::from(bytes.clone())), bytes))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "tests: a failed step must fail the test"
    )]

    use super::*;

    #[test]
    fn names_round_trip_in_order() {
        for (index, stage) in Stage::ALL.into_iter().enumerate() {
            assert_eq!(Stage::from_name(stage.name()), Some(stage));
            if index > 0 {
                assert!(Stage::ALL[index - 1] < stage, "{stage} is out of order");
            }
        }
        assert_eq!(Stage::from_name("firewall"), None);
    }

    #[test]
    fn a_refusal_names_its_stage_and_field() {
        let refusal = Refusal::new(
            Stage::Validation,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "not a number",
        )
        .with_field("quantity");
        assert_eq!(
            refusal.body(),
            json!({"error": {"code": "invalid_parameter", "message": "not a number", "stage": "validation", "field": "quantity"}})
        );
        let response = refusal.clone().with_retry_after(7).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            response.extensions().get::<Refusal>().map(|r| r.stage),
            Some(Stage::Validation)
        );
    }

    #[test]
    fn a_refusal_can_send_a_browser_elsewhere_with_its_headers() {
        let refusal = Refusal::new(
            Stage::Session,
            StatusCode::UNAUTHORIZED,
            "session_ended",
            "ended",
        )
        .with_header(
            header::SET_COOKIE,
            HeaderValue::from_static("a=; Max-Age=0"),
        )
        .with_header(
            header::SET_COOKIE,
            HeaderValue::from_static("b=; Max-Age=0"),
        );
        let plain = refusal.clone().into_response();
        assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            plain.headers().get_all(header::SET_COOKIE).iter().count(),
            2
        );
        assert!(plain.headers().get(header::LOCATION).is_none());
        let sent = refusal
            .with_redirect(HeaderValue::from_static("/login"))
            .into_response();
        assert_eq!(sent.status(), StatusCode::SEE_OTHER);
        assert_eq!(sent.headers()[header::LOCATION], "/login");
        assert_eq!(sent.headers().get_all(header::SET_COOKIE).iter().count(), 2);
        // The record still says what the refusal is.
        assert_eq!(
            sent.extensions().get::<Refusal>().map(|r| r.status),
            Some(StatusCode::UNAUTHORIZED)
        );
    }
}
