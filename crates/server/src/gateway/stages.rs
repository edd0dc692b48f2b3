//! The gateway's stages that ask the decision module: the interface credential, the registered
//! resource and the permission. They are guard [`Check`]s like the others, so they take their
//! place in the pipeline's order; what they decide, they decide on the one decision path.
//!
//! The credential stage loads the policy set once and leaves it, with the tenant and the
//! principal, in the request's extensions ([`Question`]); the resource and permission stages
//! resume the same decision path with that set, so one request is never bound on one bundle
//! and decided on the next. A request without a registered route is a `no_route` decision,
//! audited; the permission is the same decision forward-auth makes ([`decide_forwarded`]),
//! audited and counted like every decision.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use portcullis_core::{Cause, Principal, TenantId};
use portcullis_guard::{Caller, Check, Refusal, Stage};
use portcullis_policy::PolicySet;

use super::App;
use crate::decision::DecisionPath;
use crate::edges::forward::{Forwarded, Outcome, decide_forwarded, original_path};
use crate::error::ApiError;
use crate::identity::{HostBinding, bearer};
use crate::state::AppState;

/// The edge name of gateway decisions in metrics and audit records.
pub const EDGE: &str = "gateway";

/// Headers the gateway sets for the application; a client's own are removed first.
pub const USER_HEADER: HeaderName = HeaderName::from_static("x-portcullis-user");
/// The tenant, for the application.
pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-portcullis-tenant");
/// The principal's effective roles, comma-separated, for the application.
pub const ROLES_HEADER: HeaderName = HeaderName::from_static("x-portcullis-roles");

/// What the credential stage established, for the stages after it.
#[derive(Debug, Clone)]
pub struct Question {
    /// The policy set this request is answered with.
    pub policies: Arc<PolicySet>,
    /// The tenant.
    pub tenant: TenantId,
    /// The verified principal.
    pub principal: Principal,
}

/// What the credential stage established, for the record of a request a later stage refuses
/// or passes (the request itself is gone by then): the policy set it loaded, so that the record
/// is made on the same set as every decision about the request, and whom it identified.
#[derive(Debug, Clone, Default)]
pub struct Identified(Arc<IdentifiedSlots>);

#[derive(Debug, Default)]
struct IdentifiedSlots {
    policies: std::sync::OnceLock<Arc<PolicySet>>,
    subject: std::sync::OnceLock<(TenantId, Principal)>,
}

impl Identified {
    /// The policy set the credential stage loaded, if it ran.
    pub fn policies(&self) -> Option<&Arc<PolicySet>> {
        self.0.policies.get()
    }

    /// The tenant and principal the credential stage identified, if it did.
    pub fn subject(&self) -> Option<&(TenantId, Principal)> {
        self.0.subject.get()
    }
}

/// A refusal of `stage` carrying an error of the decision module.
pub(super) fn refusal(stage: Stage, error: ApiError) -> Refusal {
    let mut refusal = Refusal::new(stage, error.status, error.code, error.message);
    refusal.retry_after = error.retry_after;
    refusal
}

fn host_of(request: &Request<Body>) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The tenant of a request to `app`: configured, or the one whose domain the host is.
pub(super) fn tenant_of(
    path: &DecisionPath<'_>,
    app: &App,
    host: Option<&str>,
) -> Option<TenantId> {
    app.tenant.clone().or_else(|| path.tenant_of_host(host))
}

/// What the credential stage established for `request`: `None` on a public route, where it
/// asked nothing and neither does `stage`; an error when no credential stage ran before.
fn question_of(
    request: &Request<Body>,
    app: &App,
    stage: Stage,
) -> Result<Option<Question>, Refusal> {
    if let Some(question) = request.extensions().get::<Question>() {
        return Ok(Some(question.clone()));
    }
    if app.public.contains(request.method(), request.uri().path()) {
        return Ok(None);
    }
    Err(Refusal::new(
        stage,
        StatusCode::INTERNAL_SERVER_ERROR,
        "stage_misconfigured",
        format!("the {stage} stage needs the credential stage before it"),
    ))
}

/// The interface credential: a bearer token (a JWT of a configured issuer), verified and bound
/// to the tenant and host through the service's identity.
#[derive(Clone)]
pub(crate) struct CredentialCheck {
    pub(super) state: Arc<AppState>,
    pub(super) app: Arc<App>,
}

impl Check for CredentialCheck {
    const STAGE: Stage = Stage::Credential;

    async fn check(&self, mut request: Request<Body>) -> Result<Request<Body>, Refusal> {
        if self
            .app
            .public
            .contains(request.method(), request.uri().path())
        {
            return Ok(request);
        }
        let path = DecisionPath::new(&self.state, EDGE);
        let slot = request.extensions().get::<Identified>().cloned();
        if let Some(slot) = &slot {
            let _ = slot.0.policies.set(Arc::clone(path.policy_set()));
        }
        let host = host_of(&request);
        let tenant = tenant_of(&path, &self.app, host.as_deref()).ok_or_else(|| {
            Refusal::new(
                Self::STAGE,
                StatusCode::NOT_FOUND,
                "unknown_tenant",
                "no tenant declares this host as its domain",
            )
        })?;
        let token = bearer(request.headers()).map_err(|e| refusal(Self::STAGE, e.into()))?;
        let identity = path
            .identify(token, true)
            .map_err(|e| refusal(Self::STAGE, e.into()))?
            .ok_or_else(|| {
                Refusal::new(
                    Self::STAGE,
                    StatusCode::UNAUTHORIZED,
                    "missing_token",
                    "a bearer token is required",
                )
            })?;
        let principal = path
            .bind(&identity, &tenant, HostBinding::Original(host.as_deref()))
            .map_err(|e| refusal(Self::STAGE, e.into()))?;
        if let Some(slot) = slot {
            let _ = slot.0.subject.set((tenant.clone(), principal.clone()));
        }
        let extensions = request.extensions_mut();
        let caller = extensions.get_or_insert_default::<Caller>();
        caller.principal = Some(principal.id.clone());
        caller.tenant = Some(tenant.as_str().to_owned());
        caller.roles.clone_from(&principal.roles);
        extensions.insert(Question {
            policies: path.into_policies(),
            tenant,
            principal,
        });
        Ok(request)
    }
}

/// The registered resource: the method and path must match one of the tenant's routes.
#[derive(Clone)]
pub(crate) struct ResourceCheck {
    pub(super) state: Arc<AppState>,
    pub(super) app: Arc<App>,
}

impl Check for ResourceCheck {
    const STAGE: Stage = Stage::Resource;

    async fn check(&self, request: Request<Body>) -> Result<Request<Body>, Refusal> {
        let Some(question) = question_of(&request, &self.app, Self::STAGE)? else {
            return Ok(request);
        };
        let path = DecisionPath::resume(&self.state, EDGE, question.policies);
        let raw = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let decoded = original_path(raw).map_err(|e| refusal(Self::STAGE, e))?;
        if path
            .route(&question.tenant, request.method().as_str(), &decoded)
            .is_some()
        {
            return Ok(request);
        }
        // An unregistered resource is a decision like any other: recorded and counted.
        let mut denied = super::request_of(&request, &question.tenant, Some(&question.principal));
        denied.context.source = Some(EDGE.to_owned());
        let user_agent = crate::edges::api::user_agent(request.headers());
        path.refuse(denied, Cause::NoRoute, user_agent).await;
        Err(Refusal::new(
            Self::STAGE,
            StatusCode::NOT_FOUND,
            "unregistered_resource",
            format!(
                "{} {decoded} is not a registered resource of this application",
                request.method()
            ),
        ))
    }
}

/// The permission: the tenant's policy, asked on the one decision path.
#[derive(Clone)]
pub(crate) struct PermissionCheck {
    pub(super) state: Arc<AppState>,
    pub(super) app: Arc<App>,
}

impl Check for PermissionCheck {
    const STAGE: Stage = Stage::Permission;

    async fn check(&self, mut request: Request<Body>) -> Result<Request<Body>, Refusal> {
        let Some(question) = question_of(&request, &self.app, Self::STAGE)? else {
            return Ok(request);
        };
        let path = DecisionPath::resume(&self.state, EDGE, question.policies);
        let headers = request.headers();
        let caller = request.extensions().get::<Caller>();
        let forwarded = Forwarded {
            method: request.method().as_str().into(),
            uri: request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .into(),
            host: host_of(&request).map(Into::into),
            tenant: Some(question.tenant.clone()),
            // The credential stage verified the token and bound it on this same path.
            token: None,
            principal: Some(question.principal),
            client_ip: caller.and_then(|caller| caller.address),
            cert: None,
            cert_sha1: None,
            time: None,
            trace_id: crate::edges::forward::traceparent(headers),
        };
        let user_agent = crate::edges::api::user_agent(headers);
        let outcome = decide_forwarded(&path, forwarded, user_agent)
            .await
            .map_err(|e| refusal(Self::STAGE, e))?;
        match outcome {
            Outcome::Allowed {
                user,
                tenant,
                roles,
                ..
            } => {
                let headers = request.headers_mut();
                for (name, value) in [
                    (USER_HEADER, user.as_str()),
                    (TENANT_HEADER, tenant.as_str()),
                    (ROLES_HEADER, &roles.join(",")),
                ] {
                    if let Ok(value) = HeaderValue::from_str(value) {
                        headers.insert(name, value);
                    }
                }
                if let Some(caller) = request.extensions_mut().get_mut::<Caller>() {
                    caller.roles = roles;
                }
                Ok(request)
            }
            Outcome::Denied { reason, .. } => {
                let cause = reason.as_str().unwrap_or("denied").to_owned();
                if cause == "no_route" {
                    return Err(Refusal::new(
                        Stage::Resource,
                        StatusCode::NOT_FOUND,
                        "unregistered_resource",
                        "this method and path are not a registered resource of this application",
                    ));
                }
                Err(Refusal::new(
                    Self::STAGE,
                    StatusCode::FORBIDDEN,
                    "denied",
                    format!("the policy denies this request ({cause})"),
                ))
            }
        }
    }
}
