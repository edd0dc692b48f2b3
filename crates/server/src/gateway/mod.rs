//! The protecting gateway (C8): `portcullis gateway` in front of web applications.
//!
//! Each configured application (`[[gateway.apps]]`, chosen by the request's `Host`) gets the
//! guard's stages stacked in their fixed order in front of its upstream:
//!
//! ```text
//! security headers ─▶ session ─▶ credential ─▶ origin ─▶ resource ─▶ validation ─▶ csrf ─▶ rate limit
//!   ─▶ permission ─▶ injection ─▶ [cookies ─▶ masking ─▶ upstream]
//! ```
//!
//! Each stage can be turned off per application (`stages = [...]` lists those that run). The
//! credential, resource and permission stages ask the decision module ([`stages`]), so every
//! gateway decision is audited and counted like any other; a request refused by any other
//! stage is recorded too, as a decision denied with cause `refused` naming the stage
//! (`stage:validation`), and a request that reaches its application without a policy question
//! (a public route, or an application without the permission stage) as a decision allowed with
//! cause `passed` (`stage:public`, `stage:unchecked`): every request leaves a record of the
//! stage that decided. What no tenant owns (a host no application or tenant is known by) is
//! recorded in the `system` tenant's trail.
//!
//! This module owns the gateway's configuration and the stack; the stages' logic is the guard
//! crate's, the decisions the decision module's.

pub mod settings;
pub mod stages;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use portcullis_core::{Context, Principal, Resource, TenantId};
use portcullis_guard::inject::InjectionCheck;
use portcullis_guard::response::{CookieFlagsLayer, SecurityHeadersLayer};
use portcullis_guard::session::SessionLayer;
use portcullis_guard::{
    Caller, CsrfLayer, LoginLayer, OriginCheck, Refusal, Stage, StageLayer, StageTimes,
    ValidationCheck,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use crate::decision::DecisionPath;
use crate::state::AppState;
use crate::tls::PeerInfo;
pub use settings::{App, GatewaySettings, RawGateway};
use stages::{CredentialCheck, EDGE, PermissionCheck, ResourceCheck};

type AppService = BoxCloneSyncService<Request, Response, std::convert::Infallible>;

/// The stack of one application, in the pipeline's order.
fn stack(state: &Arc<AppState>, app: &Arc<App>) -> AppService {
    let on = |stage: Stage| app.stages.contains(&stage);
    let inner = tower::ServiceBuilder::new()
        .option_layer(
            on(Stage::SecurityHeaders)
                .then(|| SecurityHeadersLayer::new(app.response.security_headers.clone())),
        )
        .option_layer(app.session.clone().map(SessionLayer::new))
        .option_layer(on(Stage::Credential).then(|| {
            StageLayer::new(CredentialCheck {
                state: Arc::clone(state),
                app: Arc::clone(app),
            })
        }))
        .option_layer(
            on(Stage::Origin).then(|| StageLayer::new(OriginCheck::new(Arc::clone(&app.origins)))),
        )
        .option_layer(on(Stage::Resource).then(|| {
            StageLayer::new(ResourceCheck {
                state: Arc::clone(state),
                app: Arc::clone(app),
            })
        }))
        .option_layer(
            on(Stage::Validation)
                .then(|| StageLayer::new(ValidationCheck::new(Arc::clone(&app.validation)))),
        )
        .option_layer(on(Stage::Csrf).then(|| CsrfLayer::new(Arc::clone(&app.csrf))))
        .option_layer(app.rate_limit.clone().map(StageLayer::new))
        .option_layer(app.login.clone().map(LoginLayer::new))
        .option_layer(on(Stage::Permission).then(|| {
            StageLayer::new(PermissionCheck {
                state: Arc::clone(state),
                app: Arc::clone(app),
            })
        }))
        .option_layer(
            on(Stage::Injection)
                .then(|| StageLayer::new(InjectionCheck::new(Arc::clone(&app.injection)))),
        )
        .option_layer(
            on(Stage::Cookies).then(|| CookieFlagsLayer::new(app.response.cookies.clone())),
        )
        .option_layer(on(Stage::Masking).then(|| app.masking.clone()))
        .service(app.upstream.clone());
    BoxCloneSyncService::new(inner.map_err(|never| match never {}))
}

/// One application's stack and its metrics handles.
struct Served {
    app: Arc<App>,
    service: AppService,
    /// Per stage that runs, in pipeline order: its `passed` and `refused` counters.
    counters: Vec<(Stage, Counter, Counter)>,
    /// Per stage that runs (the upstream included), indexed by [`Stage::index`]: its time.
    times: Vec<Option<Histogram>>,
    latency: Histogram,
}

impl Served {
    /// Counts a request: every stage before the refusing one passed (all of them when none
    /// refused), the refusing one refused.
    fn count(&self, refused: Option<Stage>, elapsed: std::time::Duration) {
        for (stage, passed, refusals) in &self.counters {
            match refused {
                Some(at) if at == *stage => {
                    refusals.inc();
                    break;
                }
                Some(at) if at < *stage => break,
                _ => {
                    passed.inc();
                }
            }
        }
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Records the time each stage spent on a request.
    fn time(&self, times: &StageTimes) {
        for (stage, spent) in times.spent() {
            if let Some(Some(histogram)) = self.times.get(stage.index()) {
                histogram.observe(spent.as_secs_f64());
            }
        }
    }
}

/// The applications being served, replaced whole by a reload.
struct Gateway {
    apps: Vec<Served>,
}

/// The running gateway: its listener's router reads the applications of the last load, and a
/// reload of the `[gateway]` section replaces them for the requests that follow (a request
/// already under way finishes with the ones it started with).
pub struct GatewayHandle {
    state: Arc<AppState>,
    current: arc_swap::ArcSwap<Gateway>,
    /// Where the gateway listens and whether it speaks TLS: fixed at start.
    listen: std::net::SocketAddr,
    tls: bool,
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GatewayHandle")
            .field("listen", &self.listen)
            .field("apps", &self.current.load().apps.len())
            .finish_non_exhaustive()
    }
}

/// One application's stack and metrics handles.
fn served(state: &Arc<AppState>, app: &Arc<App>) -> Served {
    let metrics = &state.metrics;
    Served {
        app: Arc::clone(app),
        service: stack(state, app),
        counters: Stage::ALL
            .into_iter()
            .filter(|stage| app.stages.contains(stage) || *stage == Stage::Upstream)
            .map(|stage| {
                (
                    stage,
                    metrics.gateway_stage(&app.host, stage.name(), "passed"),
                    metrics.gateway_stage(&app.host, stage.name(), "refused"),
                )
            })
            .collect(),
        times: Stage::ALL
            .into_iter()
            .map(|stage| {
                (app.stages.contains(&stage) || stage == Stage::Upstream)
                    .then(|| metrics.gateway_stage_time(&app.host, stage.name()))
            })
            .collect(),
        latency: metrics.gateway_latency(&app.host),
    }
}

impl GatewayHandle {
    /// The gateway of `settings`.
    pub fn new(state: Arc<AppState>, settings: &GatewaySettings) -> Arc<Self> {
        let apps = settings
            .apps
            .iter()
            .map(|app| served(&state, app))
            .collect();
        Arc::new(Self {
            current: arc_swap::ArcSwap::from_pointee(Gateway { apps }),
            state,
            listen: settings.listen,
            tls: settings.tls,
        })
    }

    /// The gateway listener's router: every request goes to the application its host names.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .fallback(dispatch)
            .with_state(Arc::clone(self))
    }

    /// Serves the applications of `settings` from the next request on. An application whose
    /// host, rate-limit, login and session settings are unchanged keeps their state;
    /// the listener's address and TLS cannot change without a restart (a change is reported
    /// and the rest applied). Returns what was not applied, if anything.
    pub fn apply(&self, mut settings: GatewaySettings) -> Option<String> {
        let before = self.state.gateway_apps.load_full();
        for app in &mut settings.apps {
            let Some(old) = before
                .iter()
                .find(|old| old.host == app.host && old.state_settings == app.state_settings)
            else {
                continue;
            };
            if let Some(app) = Arc::get_mut(app) {
                app.rate_limit.clone_from(&old.rate_limit);
                app.login.clone_from(&old.login);
                app.session.clone_from(&old.session);
            }
        }
        let apps = settings
            .apps
            .iter()
            .map(|app| served(&self.state, app))
            .collect();
        self.current.store(Arc::new(Gateway { apps }));
        self.state.gateway_apps.store(Arc::new(settings.apps));
        let mut kept = Vec::new();
        if settings.listen != self.listen {
            kept.push(format!(
                "gateway.listen stays {} until a restart",
                self.listen
            ));
        }
        if settings.tls != self.tls {
            kept.push(format!("gateway.tls stays {} until a restart", self.tls));
        }
        (!kept.is_empty()).then(|| kept.join("; "))
    }

    /// Reloads the `[gateway]` section from the configuration file at `path`: applied when it
    /// is valid, otherwise the applications served so far stay, and the error names the key.
    /// Logged and counted either way (`portcullis_gateway_reloads_total{outcome}`).
    pub fn reload(&self, path: &std::path::Path, trigger: &'static str) -> Result<(), String> {
        let env = |name: &str| std::env::var(name).ok();
        match GatewaySettings::read(path, &env) {
            Ok(settings) => {
                let hosts: Vec<String> = settings.apps.iter().map(|app| app.host.clone()).collect();
                match self.apply(settings) {
                    Some(kept) => tracing::warn!(trigger, %kept, "gateway reloaded, partly"),
                    None => tracing::info!(trigger, apps = ?hosts, "gateway reloaded"),
                }
                self.state.metrics.gateway_reload("applied");
                Ok(())
            }
            Err((key, message)) => {
                tracing::error!(trigger, key, %message, "gateway configuration not reloaded: the applications served so far stay");
                self.state.metrics.gateway_reload("failed");
                Err(format!("{key}: {message}"))
            }
        }
    }
}

/// The core request the gateway records for `request` (before a route names its action and
/// resource: the method on the path).
pub(crate) fn request_of(
    request: &Request,
    tenant: &TenantId,
    principal: Option<&Principal>,
) -> portcullis_core::Request {
    let path = request.uri().path();
    let mut attributes = serde_json::Map::with_capacity(3);
    attributes.insert("method".into(), request.method().as_str().into());
    attributes.insert("path".into(), path.into());
    if let Some(host) = request.headers().get(axum::http::header::HOST) {
        attributes.insert("host".into(), host.to_str().unwrap_or_default().into());
    }
    portcullis_core::Request {
        tenant: tenant.clone(),
        principal: principal
            .cloned()
            .unwrap_or_else(|| Principal::user("anonymous")),
        action: request.method().as_str().to_owned(),
        resource: Resource::new("path", path),
        context: Context {
            ip: request
                .extensions()
                .get::<Caller>()
                .and_then(|caller| caller.address),
            source: Some(EDGE.to_owned()),
            attributes,
            ..Context::default()
        },
        env: Default::default(),
        explain: false,
        action_properties: Default::default(),
        trace_id: crate::edges::forward::traceparent(request.headers()),
    }
}

async fn dispatch(
    State(handle): State<Arc<GatewayHandle>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    mut request: Request,
) -> Response {
    let gateway = handle.current.load_full();
    let state = &handle.state;
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(|host| crate::identity::strip_port(host).to_ascii_lowercase());
    let started = std::time::Instant::now();
    let found = gateway
        .apps
        .iter()
        .find(|served| Some(served.app.host.as_str()) == host.as_deref())
        .or_else(|| gateway.apps.iter().find(|served| served.app.host == "*"));
    let Some(served) = found else {
        let refusal = Refusal::new(
            Stage::Resource,
            StatusCode::NOT_FOUND,
            "unknown_application",
            "no application of this gateway is reached by this host",
        );
        let mut record = Record::of(&request, stages::Identified::default());
        if let Ok(caller) = crate::edges::forward::client_ip(
            &state.config.trusted_proxies,
            peer.addr.ip(),
            request.headers(),
            state.config.limits.max_header_bytes,
        ) {
            record.request.extensions_mut().insert(Caller {
                address: Some(caller),
                ..Caller::default()
            });
        }
        record.refused(state, None, &refusal).await;
        return refusal.into_response();
    };
    // What the application is told about the caller comes from the gateway only.
    for name in [
        stages::USER_HEADER,
        stages::TENANT_HEADER,
        stages::ROLES_HEADER,
    ] {
        request.headers_mut().remove(name);
    }
    // The client: the peer, or what a trusted proxy in front of the gateway forwarded.
    let config = &state.config;
    let address = match crate::edges::forward::client_ip(
        &config.trusted_proxies,
        peer.addr.ip(),
        request.headers(),
        config.limits.max_header_bytes,
    ) {
        Ok(address) => address,
        Err(error) => return stages::refusal(Stage::Credential, error).into_response(),
    };
    // The chain the application sees: a trusted proxy's, with that proxy appended; otherwise
    // the peer alone.
    let peer_ip = peer.addr.ip();
    let chain = match request
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
    {
        Some(earlier) if crate::edges::forward::is_trusted(&config.trusted_proxies, peer_ip) => {
            format!("{earlier}, {peer_ip}")
        }
        _ => peer_ip.to_string(),
    };
    if let Ok(value) = axum::http::HeaderValue::from_str(&chain) {
        request.headers_mut().insert("x-forwarded-for", value);
    }
    if handle.tls {
        request.headers_mut().insert(
            "x-forwarded-proto",
            axum::http::HeaderValue::from_static("https"),
        );
    }
    request.extensions_mut().insert(Caller {
        address: Some(address),
        tenant: served
            .app
            .tenant
            .as_ref()
            .map(|tenant| tenant.as_str().to_owned()),
        ..Caller::default()
    });
    // Kept to record a refusal: the request itself goes to the stages, and the credential
    // stage says in the slot whom it identified.
    let identified = stages::Identified::default();
    request.extensions_mut().insert(identified.clone());
    let times = StageTimes::default();
    request.extensions_mut().insert(times.clone());
    // Whether the permission stage asks the policy about this request (and so records it).
    let asked = served.app.stages.contains(&Stage::Permission)
        && !served
            .app
            .public
            .contains(request.method(), request.uri().path());
    let record = Record::of(&request, identified);
    let Ok(response) = served.service.clone().oneshot(request).await;
    let refusal = response.extensions().get::<Refusal>();
    served.count(refusal.map(|refusal| refusal.stage), started.elapsed());
    served.time(&times);
    match refusal {
        Some(refusal) => record.refused(state, Some(&served.app), refusal).await,
        None if !asked => record.passed(state, &served.app).await,
        None => {}
    }
    response
}

/// What a request's record needs, taken before the stages have the request.
struct Record {
    request: Request,
    identified: stages::Identified,
}

impl Record {
    fn of(request: &Request, identified: stages::Identified) -> Self {
        // Only what the record reads: every request pays for this copy.
        let mut copy = Request::new(Body::empty());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        for name in [
            axum::http::header::HOST,
            axum::http::header::USER_AGENT,
            axum::http::HeaderName::from_static("traceparent"),
        ] {
            if let Some(value) = request.headers().get(&name) {
                copy.headers_mut().insert(name, value.clone());
            }
        }
        if let Some(address) = request.extensions().get::<Caller>().and_then(|c| c.address) {
            copy.extensions_mut().insert(Caller {
                address: Some(address),
                ..Caller::default()
            });
        }
        Self {
            request: copy,
            identified,
        }
    }

    /// The decision path of the record: on the policy set the credential stage loaded when it
    /// ran, so that a reload during the request does not split it over two sets.
    fn path<'s>(&self, state: &'s AppState) -> DecisionPath<'s> {
        match self.identified.policies() {
            Some(policies) => DecisionPath::resume(state, EDGE, Arc::clone(policies)),
            None => DecisionPath::new(state, EDGE),
        }
    }

    /// The tenant and principal the record is about: whom the credential stage identified;
    /// otherwise the application's tenant, without a principal; otherwise (no application, or
    /// a host no tenant declares) the `system` tenant, whose trail holds what no tenant owns.
    fn subject(
        &self,
        path: &DecisionPath<'_>,
        app: Option<&App>,
    ) -> Option<(TenantId, Option<Principal>)> {
        if let Some((tenant, principal)) = self.identified.subject() {
            return Some((tenant.clone(), Some(principal.clone())));
        }
        let host = self
            .request
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|value| value.to_str().ok());
        let tenant = app
            .and_then(|app| stages::tenant_of(path, app, host))
            .or_else(|| TenantId::new(crate::audit::SYSTEM_TENANT).ok())?;
        Some((tenant, None))
    }

    /// Records a refusal as a decision, unless the stage's refusal is a decision already
    /// (resource, permission) or came after one (upstream). `app` is `None` when no
    /// application was found for the host.
    async fn refused(self, state: &AppState, app: Option<&App>, refusal: &Refusal) {
        if app.is_some()
            && matches!(
                refusal.stage,
                Stage::Resource | Stage::Permission | Stage::Upstream
            )
        {
            return;
        }
        let path = self.path(state);
        let Some((tenant, principal)) = self.subject(&path, app) else {
            return;
        };
        let mut denied = request_of(&self.request, &tenant, principal.as_ref());
        denied
            .context
            .attributes
            .insert("code".into(), refusal.code.into());
        let user_agent = crate::edges::api::user_agent(self.request.headers());
        path.refuse_at_stage(denied, refusal.stage.name(), user_agent)
            .await;
    }

    /// Records a request that reached its application without a policy question: its route is
    /// public (`stage:public`) or the application runs no permission stage (`stage:unchecked`).
    async fn passed(self, state: &AppState, app: &App) {
        let path = self.path(state);
        let Some((tenant, principal)) = self.subject(&path, Some(app)) else {
            return;
        };
        let why = if app.stages.contains(&Stage::Permission) {
            "public"
        } else {
            "unchecked"
        };
        let passed = request_of(&self.request, &tenant, principal.as_ref());
        let user_agent = crate::edges::api::user_agent(self.request.headers());
        path.pass_at_stage(passed, why, user_agent).await;
    }
}
