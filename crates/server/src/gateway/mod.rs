//! The protecting gateway (C8): `portcullis gateway` in front of web applications.
//!
//! Each configured application (`[[gateway.apps]]`, chosen by the request's `Host`) gets the
//! guard's stages stacked in their fixed order in front of its upstream:
//!
//! ```text
//! security headers ─▶ credential ─▶ origin ─▶ resource ─▶ validation ─▶ csrf ─▶ rate limit
//!   ─▶ permission ─▶ injection ─▶ [cookies ─▶ masking ─▶ upstream]
//! ```
//!
//! Each stage can be turned off per application (`stages = [...]` lists those that run). The
//! credential, resource and permission stages ask the decision module ([`stages`]), so every
//! gateway decision is audited and counted like any other; a request refused by any other
//! stage is recorded too, as a decision denied with cause `refused` naming the stage
//! (`stage:validation`), so every request leaves a record of the stage that decided.
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

struct Gateway {
    state: Arc<AppState>,
    apps: Vec<Served>,
    /// Whether the listener speaks TLS (the application is told `X-Forwarded-Proto: https`).
    tls: bool,
}

/// The gateway's router: every request goes to the application its host names.
pub fn router(state: Arc<AppState>, settings: &GatewaySettings) -> Router {
    let metrics = &state.metrics;
    let apps = settings
        .apps
        .iter()
        .map(|app| Served {
            app: Arc::clone(app),
            service: stack(&state, app),
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
        })
        .collect();
    let gateway = Arc::new(Gateway {
        state,
        apps,
        tls: settings.tls,
    });
    Router::new().fallback(dispatch).with_state(gateway)
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
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    mut request: Request,
) -> Response {
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
        return Refusal::new(
            Stage::Resource,
            StatusCode::NOT_FOUND,
            "unknown_application",
            "no application of this gateway is reached by this host",
        )
        .into_response();
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
    let config = &gateway.state.config;
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
    if gateway.tls {
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
    let record = RefusalRecord::of(&request, identified);
    let Ok(response) = served.service.clone().oneshot(request).await;
    let refusal = response.extensions().get::<Refusal>();
    served.count(refusal.map(|refusal| refusal.stage), started.elapsed());
    served.time(&times);
    if let Some(refusal) = refusal {
        record.write(&gateway.state, &served.app, refusal).await;
    }
    response
}

/// What a refused request's record needs, taken before the stages have the request.
struct RefusalRecord {
    request: Request,
    identified: stages::Identified,
}

impl RefusalRecord {
    fn of(request: &Request, identified: stages::Identified) -> Self {
        // Only what the record reads: every request pays for this copy, few are refused.
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

    /// Records a refusal as a decision, unless the stage's refusal is a decision already
    /// (resource, permission) or came after one (upstream).
    async fn write(self, state: &AppState, app: &App, refusal: &Refusal) {
        if matches!(
            refusal.stage,
            Stage::Resource | Stage::Permission | Stage::Upstream
        ) {
            return;
        }
        let path = DecisionPath::new(state, EDGE);
        let host = self
            .request
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|value| value.to_str().ok());
        let identified = self.identified.0.get();
        let tenant = match identified {
            Some((tenant, _)) => tenant.clone(),
            None => match stages::tenant_of(&path, app, host) {
                Some(tenant) => tenant,
                None => {
                    // Not attributable to any tenant: the log line is the record.
                    tracing::info!(stage = %refusal.stage, code = refusal.code, "gateway refusal without a tenant");
                    return;
                }
            },
        };
        let principal = identified.map(|(_, principal)| principal);
        let mut denied = request_of(&self.request, &tenant, principal);
        denied
            .context
            .attributes
            .insert("code".into(), refusal.code.into());
        let user_agent = crate::edges::api::user_agent(self.request.headers());
        path.refuse_at_stage(denied, refusal.stage.name(), user_agent)
            .await;
    }
}
