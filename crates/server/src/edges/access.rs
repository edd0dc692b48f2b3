//! Temporary access (break-glass, SPEC.md C9) on the public listener: a person asks for an
//! action on a resource (or a route) for a bounded window, bound to a client certificate
//! and/or source networks; other people approve or reject; the approved request is a grant
//! every decision of the tenant sees until its window ends or it is revoked.
//!
//! * `POST /v1/access/requests` — ask; the requester is the caller's verified identity.
//! * `GET /v1/access/requests` — the caller's own requests; an approver sees every request of
//!   the tenant (`?status=pending` is an approver's inbox).
//! * `GET /v1/access/requests/{id}` — one request (its requester or an approver).
//! * `POST /v1/access/requests/{id}/approve|reject|revoke` — decide on it.
//!
//! Every call needs a bearer token; the tenant is resolved as for AuthZEN (`X-Tenant-ID`, the
//! token's tenant claim, the Host, the listener's default). Approving, rejecting and revoking
//! are decisions of the one decision path (actions `access_request:approve|reject|revoke` on
//! `access_request:<id>`, which the bundle's approver roles hold), so they are audited and
//! counted like any decision, and a policy can constrain them further. The rules no policy can
//! lift — nobody approves their own request, one person approves once, a closed or ended
//! request stays closed — are kept by the store in the transaction that makes the change.
//! Every step (request, approval, rejection, revocation, and expiry, recorded by the server's
//! sweeper) is an administrative event in the tenant's audit trail; a grant's use is named in
//! the audit record of each decision it allowed.

use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use jiff::{SignedDuration, Timestamp};
use portcullis_core::{Context, Principal, Request, Resource, TenantId, qualified_action};
use portcullis_policy::access::{APPROVE_ACTION, REJECT_ACTION, REQUEST_TYPE, REVOKE_ACTION};
use portcullis_policy::{Snapshot, TemporaryAccess};
use portcullis_store::{AccessFilter, AccessRequest, AccessStatus, NewAccessRequest, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::api::{header_tenant, request_host, user_agent};
use crate::decision::DecisionPath;
use crate::error::{ApiError, PathParams, QueryParams, store_error};
use crate::identity::{HostBinding, bearer};
use crate::json::JsonRequest;
use crate::snapshots::reload::refresh_tenant;
use crate::state::AppState;
use crate::tls::PeerInfo;

/// How far in the past a window may start (clock skew between a client and the server).
const PAST_START: SignedDuration = SignedDuration::from_mins(5);
/// How far ahead a window may start.
const FUTURE_START: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Longest reason or comment, in characters.
const MAX_TEXT: usize = 2000;
/// Most networks a request may be bound to.
const MAX_NETWORKS: usize = 32;

/// The edge name in metrics and audit records.
const EDGE: &str = "access";

/// The caller of an access call: who (verified, bound to the tenant), in which tenant, with
/// the tenant's snapshot and temporary-access settings.
struct Caller {
    principal: Principal,
    tenant: TenantId,
    snapshot: Arc<Snapshot>,
    settings: TemporaryAccess,
}

impl Caller {
    /// Whether the caller holds one of the tenant's approver roles.
    fn is_approver(&self) -> bool {
        let anywhere = Resource::new(REQUEST_TYPE, "*");
        self.snapshot
            .effective_roles(&self.principal, &anywhere)
            .iter()
            .any(|role| self.settings.approvers.contains(role))
    }
}

fn caller(path: &DecisionPath<'_>, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let identity = path
        .identify(bearer(headers)?, true)?
        .ok_or_else(|| ApiError::unauthenticated("missing_token", "a bearer token is required"))?;
    let (tenant, _) = path.resolve_tenant(
        header_tenant(headers)?,
        Some(&identity),
        request_host(headers),
    )?;
    let principal = path.bind(&identity, &tenant, HostBinding::Stated(None))?;
    let snapshot = path.snapshot(&tenant).cloned().ok_or_else(|| {
        ApiError::not_found("unknown_tenant", format!("tenant `{tenant}` is not loaded"))
    })?;
    let settings = snapshot.temporary_access().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "temporary_access_disabled",
            format!(
                "tenant `{tenant}` takes no requests for temporary access: its bundle has no `temporary_access` section"
            ),
        )
    })?;
    Ok(Caller {
        principal,
        tenant,
        snapshot,
        settings,
    })
}

fn now_us(now: Timestamp) -> i64 {
    now.as_microsecond()
}

fn time(us: i64) -> String {
    Timestamp::from_microsecond(us)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// One approval as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalView {
    /// Who approved.
    pub approver: String,
    /// What they said.
    pub comment: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// The window of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowView {
    /// Its start (RFC 3339, inclusive).
    pub start: String,
    /// Its end (RFC 3339, exclusive).
    pub end: String,
}

/// What a request is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundView {
    /// The client certificate (fingerprint or id).
    pub cert: Option<String>,
    /// The source networks.
    pub networks: Vec<String>,
}

/// A request as the APIs (HTTP and gRPC) show it, with its status at the time of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestView {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// Who asked.
    pub requester: String,
    /// The action, qualified.
    pub action: String,
    /// The resource, `type:id`.
    pub resource: String,
    /// Why.
    pub reason: String,
    /// When it grants.
    pub window: WindowView,
    /// What it is bound to.
    pub bound: BoundView,
    /// Approvals it needs.
    pub approvals_required: u8,
    /// Its approvals, in order.
    pub approvals: Vec<ApprovalView>,
    /// `pending`, `approved`, `rejected`, `revoked` or `expired`.
    pub status: &'static str,
    /// Who rejected or revoked it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
    /// When it was closed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// What the person who closed it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closing_note: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

fn view(tenant: &TenantId, request: &AccessRequest, now: Timestamp) -> RequestView {
    RequestView {
        id: request.id.clone(),
        tenant: tenant.clone(),
        requester: request.requester.clone(),
        action: request.action.clone(),
        resource: request.resource.clone(),
        reason: request.reason.clone(),
        window: WindowView {
            start: time(request.not_before_us),
            end: time(request.not_after_us),
        },
        bound: BoundView {
            cert: request.cert.clone(),
            networks: request.networks.clone(),
        },
        approvals_required: request.approvals_required,
        approvals: request
            .approvals
            .iter()
            .map(|a| ApprovalView {
                approver: a.approver.clone(),
                comment: a.comment.clone(),
                at: time(a.approved_at_us),
            })
            .collect(),
        status: request.status_at(now_us(now)).as_str(),
        closed_by: request.closed_by.clone(),
        closed_at: request.closed_at_us.map(time),
        closing_note: request.closing_note.clone(),
        created_at: time(request.created_at_us),
    }
}

/// Records one step of a request's life in the tenant's audit trail, durably.
pub(crate) async fn record_step(
    state: &AppState,
    tenant: &TenantId,
    actor: &str,
    step: &str,
    request: &AccessRequest,
    ok: bool,
    extra: Map<String, Value>,
) -> Result<(), ApiError> {
    if let Some(webhook) = &state.access_webhook
        && let Ok(shown) = serde_json::to_value(view(tenant, request, state.now()))
    {
        let mut payload = Map::new();
        payload.insert("tenant".into(), json!(tenant));
        payload.insert("actor".into(), json!(actor));
        payload.insert("outcome".into(), json!(if ok { "ok" } else { "failed" }));
        payload.insert("request".into(), shown);
        if let Some(refused) = extra.get("refused") {
            payload.insert("refused".into(), refused.clone());
        }
        webhook.notify(&format!("access.{step}"), payload);
    }
    let Some(audit) = &state.audit else {
        return Ok(());
    };
    let mut details = Map::new();
    details.insert("requester".into(), json!(request.requester));
    details.insert("action".into(), json!(request.action));
    details.insert("resource".into(), json!(request.resource));
    details.insert("not_before".into(), json!(time(request.not_before_us)));
    details.insert("not_after".into(), json!(time(request.not_after_us)));
    details.insert("status".into(), json!(request.status.as_str()));
    details.extend(extra);
    audit
        .change(
            tenant.as_str(),
            actor,
            &format!("access.{step}"),
            &format!("{REQUEST_TYPE}:{}", request.id),
            ok,
            details,
        )
        .await
        .map(|_| ())
        .map_err(|error| {
            tracing::error!(%error, %step, "a temporary-access step could not be recorded in the audit log");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit_failed",
                "the step could not be recorded in the audit log (if it changed something, the change was applied); the server log has the details",
            )
        })
}

fn text(value: &str, what: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_TEXT
        || value.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "{what} must be 1 to {MAX_TEXT} characters, not only spaces, without control characters"
            ),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A name part: 1 to `max` characters, none of them whitespace or control, none of `banned`.
fn name_part(part: &str, max: usize, banned: &[char]) -> bool {
    !part.is_empty()
        && part.chars().count() <= max
        && !part
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || banned.contains(&c))
}

/// The longest type name in an action or resource, and the longest verb or id.
const MAX_TYPE: usize = 60;
const MAX_NAME: usize = 120;

/// `type:id`, the id without `*`.
fn valid_resource(resource: &str) -> bool {
    resource.split_once(':').is_some_and(|(kind, id)| {
        name_part(kind, MAX_TYPE, &[':', '*']) && name_part(id, MAX_NAME, &['*'])
    })
}

/// `verb` or `type:verb`.
fn valid_action(action: &str) -> bool {
    match action.split_once(':') {
        Some((kind, verb)) => {
            name_part(kind, MAX_TYPE, &[':', '*']) && name_part(verb, MAX_NAME, &['*'])
        }
        None => name_part(action, MAX_NAME, &['*']),
    }
}

/// A decimal number without sign or leading zero, at most `max`.
fn decimal(text: &str, max: u32) -> bool {
    let plain = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain && text.parse::<u32>().is_ok_and(|n| n <= max)
}

/// A network as the API takes it (and its document states as a pattern): an IPv4 address,
/// CIDR block or octet wildcard (`172.*.*.*`) in plain decimal, or an IPv6 address or CIDR
/// block in hexadecimal (no embedded IPv4), the prefix in plain decimal.
fn valid_network(text: &str) -> bool {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    if address.contains('.') {
        let octets: Vec<&str> = address.split('.').collect();
        let wildcard = octets.contains(&"*");
        octets.len() == 4
            && octets.iter().all(|o| *o == "*" || decimal(o, 255))
            && match prefix {
                None => true,
                Some(prefix) => !wildcard && decimal(prefix, 32),
            }
    } else {
        address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            && address.parse::<std::net::Ipv6Addr>().is_ok()
            && prefix.is_none_or(|prefix| decimal(prefix, 128))
    }
}

/// A route named instead of an action and resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRef {
    pub(crate) method: String,
    pub(crate) path: String,
}

/// Body of `POST /v1/access/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// The action (`type:verb`, or a verb qualified by the resource's type).
    #[serde(default)]
    pub(crate) action: Option<String>,
    /// The resource, `type:id`.
    #[serde(default)]
    pub(crate) resource: Option<String>,
    /// Or a route of the tenant, which names both.
    #[serde(default)]
    pub(crate) route: Option<RouteRef>,
    /// Why.
    pub(crate) reason: String,
    /// The window's start (RFC 3339); now when absent.
    #[serde(default)]
    pub(crate) start: Option<Timestamp>,
    /// The window's end (RFC 3339), or its length in `duration`.
    #[serde(default)]
    pub(crate) end: Option<Timestamp>,
    /// The window's length (`2h`, `90m`, `1h30m`).
    #[serde(default)]
    pub(crate) duration: Option<String>,
    /// The client certificate the grant is bound to (SHA-256 fingerprint or certificate id).
    #[serde(default)]
    pub(crate) cert: Option<String>,
    /// The source networks the grant is bound to (CIDR blocks or IPv4 wildcards).
    #[serde(default)]
    pub(crate) networks: Vec<String>,
}

/// `POST /v1/access/requests`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    JsonRequest { headers, body }: JsonRequest<NewRequest>,
) -> Result<(StatusCode, Json<RequestView>), ApiError> {
    let created = create_request(&state, &headers, EDGE, body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Makes a request for the caller (the HTTP and gRPC edges).
pub(crate) async fn create_request(
    state: &AppState,
    headers: &HeaderMap,
    edge: &'static str,
    body: NewRequest,
) -> Result<RequestView, ApiError> {
    let path = DecisionPath::new(state, edge);
    let caller = caller(&path, headers)?;
    let now = state.now();
    let (action, resource) = match (&body.route, &body.action, &body.resource) {
        (Some(route), None, None) => {
            let matched = caller
                .snapshot
                .match_route(&route.method.to_ascii_uppercase(), &route.path)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "no_route",
                        format!(
                            "no route of tenant `{}` matches {} {}",
                            caller.tenant, route.method, route.path
                        ),
                    )
                })?;
            let resource = format!("{}:{}", matched.resource.kind, matched.resource.id);
            let action = qualified_action(matched.action, &matched.resource.kind).into_owned();
            (action, resource)
        }
        (None, Some(action), Some(resource)) => {
            if !valid_resource(resource) {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    format!(
                        "resource `{resource}` is not `type:id` (a type of at most {MAX_TYPE} and an id of at most {MAX_NAME} characters, without spaces or `*`)"
                    ),
                ));
            }
            if !valid_action(action) {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    format!(
                        "action `{action}` is not `verb` or `type:verb` (a type of at most {MAX_TYPE} and a verb of at most {MAX_NAME} characters, without spaces or `*`)"
                    ),
                ));
            }
            let kind = resource.split_once(':').map_or("", |(kind, _)| kind);
            (
                qualified_action(action, kind).into_owned(),
                resource.clone(),
            )
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "name either `action` and `resource`, or a `route` (`method` and `path`)",
            ));
        }
    };
    let reason = text(&body.reason, "reason")?;
    let start = body.start.unwrap_or(now);
    if start < now - PAST_START || start > now + FUTURE_START {
        return Err(ApiError::bad_request(
            "invalid_window",
            "the window must start between five minutes ago and seven days from now",
        ));
    }
    let end = match (body.end, body.duration.as_deref()) {
        (Some(end), None) => end,
        (None, Some(duration)) => {
            let secs = portcullis_policy::parse_duration(duration).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_window",
                    format!("duration `{duration}` is not hours, minutes and seconds such as 2h or 1h30m"),
                )
            })?;
            i64::try_from(secs)
                .ok()
                .and_then(|secs| start.checked_add(SignedDuration::from_secs(secs)).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "window_too_long",
                        "the window is longer than time allows",
                    )
                })?
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_window",
                "give the window's `end` or its `duration`, one of them",
            ));
        }
    };
    let length = end.duration_since(start);
    let max =
        SignedDuration::from_secs(i64::try_from(caller.settings.max_window_secs).unwrap_or(0));
    if length <= SignedDuration::ZERO || end <= now {
        return Err(ApiError::bad_request(
            "invalid_window",
            "the window must end after it starts, and in the future",
        ));
    }
    if length > max {
        return Err(ApiError::bad_request(
            "window_too_long",
            format!(
                "the window lasts {}s; tenant `{}` allows at most {}s",
                length.as_secs(),
                caller.tenant,
                max.as_secs()
            ),
        ));
    }
    if let Some(cert) = &body.cert
        && !name_part(cert, MAX_NAME * 2, &[])
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "cert must be a certificate's fingerprint or id: 1 to {} characters without spaces",
                MAX_NAME * 2
            ),
        ));
    }
    let cert = body.cert.clone();
    if body.networks.len() > MAX_NETWORKS {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("a request is bound to at most {MAX_NETWORKS} networks"),
        ));
    }
    for network in &body.networks {
        if !valid_network(network) {
            return Err(ApiError::bad_request(
                "invalid_network",
                format!(
                    "network `{network}` is not an IPv4 address, CIDR block or octet wildcard, nor an IPv6 address or CIDR block"
                ),
            ));
        }
    }
    if cert.is_none() && body.networks.is_empty() {
        return Err(ApiError::bad_request(
            "unbound",
            "a request must be bound to a client certificate (`cert`) or source networks (`networks`), or both",
        ));
    }
    let new = NewAccessRequest {
        id: new_id()?,
        requester: caller.principal.id.clone(),
        action,
        resource,
        reason,
        not_before_us: now_us(start),
        not_after_us: now_us(end),
        cert,
        networks: body.networks,
        approvals_required: caller.settings.approvals_required,
    };
    let stored = state
        .store
        .tenant(&caller.tenant)
        .create_access_request(&new)
        .await
        .map_err(store_error)?;
    let mut extra = Map::new();
    extra.insert("reason".into(), json!(stored.reason));
    extra.insert("cert".into(), json!(stored.cert));
    extra.insert("networks".into(), json!(stored.networks));
    record_step(
        state,
        &caller.tenant,
        &caller.principal.id,
        "request",
        &stored,
        true,
        extra,
    )
    .await?;
    Ok(view(&caller.tenant, &stored, now))
}

fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_randomness",
            "the system's random source failed; try again",
        )
    })?;
    let mut id = String::from("ta-");
    for byte in bytes {
        id.push_str(&format!("{byte:02x}"));
    }
    Ok(id)
}

/// Query of `GET /v1/access/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub(crate) status: Option<AccessStatus>,
    /// Only the caller's own requests, even for an approver.
    #[serde(default)]
    pub(crate) mine: Option<bool>,
    #[serde(default)]
    pub(crate) limit: Option<u32>,
}

/// `GET /v1/access/requests`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (tenant, requests) = list_requests(&state, &headers, EDGE, query).await?;
    Ok(Json(json!({ "tenant": tenant, "requests": requests })))
}

/// The requests the caller may see (the HTTP and gRPC edges).
pub(crate) async fn list_requests(
    state: &AppState,
    headers: &HeaderMap,
    edge: &'static str,
    query: ListQuery,
) -> Result<(TenantId, Vec<RequestView>), ApiError> {
    let path = DecisionPath::new(state, edge);
    let caller = caller(&path, headers)?;
    let everyone = caller.is_approver() && query.mine != Some(true);
    let filter = AccessFilter {
        status: query.status,
        requester: (!everyone).then(|| caller.principal.id.clone()),
        limit: query.limit.unwrap_or(100),
    };
    let requests = state
        .store
        .tenant(&caller.tenant)
        .access_requests(&filter)
        .await
        .map_err(store_error)?;
    let now = state.now();
    let shown = requests
        .iter()
        .map(|r| view(&caller.tenant, r, now))
        .collect();
    Ok((caller.tenant, shown))
}

async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<AccessRequest, ApiError> {
    let unknown = || {
        ApiError::not_found(
            "unknown_request",
            format!(
                "tenant `{}` has no access request `{id}` you may see",
                caller.tenant
            ),
        )
    };
    let request = state
        .store
        .tenant(&caller.tenant)
        .access_request(id)
        .await
        .map_err(store_error)?
        .ok_or_else(unknown)?;
    if request.requester == caller.principal.id || caller.is_approver() {
        Ok(request)
    } else {
        Err(unknown())
    }
}

/// `GET /v1/access/requests/{id}`.
pub async fn read(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> Result<Json<RequestView>, ApiError> {
    read_request(&state, &headers, EDGE, &id).await.map(Json)
}

/// One request, for its requester or an approver (the HTTP and gRPC edges).
pub(crate) async fn read_request(
    state: &AppState,
    headers: &HeaderMap,
    edge: &'static str,
    id: &str,
) -> Result<RequestView, ApiError> {
    let path = DecisionPath::new(state, edge);
    let caller = caller(&path, headers)?;
    let request = visible(state, &caller, id).await?;
    Ok(view(&caller.tenant, &request, state.now()))
}

/// Body of the approve, reject and revoke calls (it may be `{}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    /// What the approver (or revoker) says.
    #[serde(default)]
    comment: Option<String>,
}

/// A step in a request's life that someone takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Approve.
    Approve,
    /// Reject.
    Reject,
    /// Revoke (or withdraw).
    Revoke,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Approve => "approve",
            Step::Reject => "reject",
            Step::Revoke => "revoke",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Step::Approve => APPROVE_ACTION,
            Step::Reject => REJECT_ACTION,
            Step::Revoke => REVOKE_ACTION,
        }
    }
}

/// `POST /v1/access/requests/{id}/approve`.
pub async fn approve(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    PathParams(id): PathParams<String>,
    JsonRequest { headers, body }: JsonRequest<StepBody>,
) -> Result<Json<RequestView>, ApiError> {
    let asked = Asked {
        headers: &headers,
        peer: Some(&peer),
        edge: EDGE,
    };
    take_step(&state, asked, &id, body.comment, Step::Approve)
        .await
        .map(Json)
}

/// `POST /v1/access/requests/{id}/reject`.
pub async fn reject(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    PathParams(id): PathParams<String>,
    JsonRequest { headers, body }: JsonRequest<StepBody>,
) -> Result<Json<RequestView>, ApiError> {
    let asked = Asked {
        headers: &headers,
        peer: Some(&peer),
        edge: EDGE,
    };
    take_step(&state, asked, &id, body.comment, Step::Reject)
        .await
        .map(Json)
}

/// `POST /v1/access/requests/{id}/revoke`.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    PathParams(id): PathParams<String>,
    JsonRequest { headers, body }: JsonRequest<StepBody>,
) -> Result<Json<RequestView>, ApiError> {
    let asked = Asked {
        headers: &headers,
        peer: Some(&peer),
        edge: EDGE,
    };
    take_step(&state, asked, &id, body.comment, Step::Revoke)
        .await
        .map(Json)
}

/// Who asks a step, and over what: the call's headers, its connection (the address and the
/// certificate the approval's decision sees), and the edge.
pub(crate) struct Asked<'a> {
    /// The call's headers (its token, its tenant).
    pub(crate) headers: &'a HeaderMap,
    /// The connection it came on, when the edge knows it.
    pub(crate) peer: Option<&'a PeerInfo>,
    /// The edge's name in metrics and audit records.
    pub(crate) edge: &'static str,
}

/// Approves, rejects or revokes a request as the caller (the HTTP and gRPC edges).
pub(crate) async fn take_step(
    state: &AppState,
    asked: Asked<'_>,
    id: &str,
    comment: Option<String>,
    step: Step,
) -> Result<RequestView, ApiError> {
    let Asked {
        headers,
        peer,
        edge,
    } = asked;
    let path = DecisionPath::new(state, edge);
    let caller = caller(&path, headers)?;
    let comment = comment.as_deref().map(|c| text(c, "comment")).transpose()?;
    let request = visible(state, &caller, id).await?;
    // The requester withdraws (revokes) their own request without asking the policy; every
    // other step is a decision like any other.
    let own_revocation = matches!(step, Step::Revoke) && request.requester == caller.principal.id;
    if !own_revocation {
        let mut attributes = Map::new();
        attributes.insert("requester".into(), json!(request.requester));
        attributes.insert("action".into(), json!(request.action));
        attributes.insert("resource".into(), json!(request.resource));
        let asked = Request {
            tenant: caller.tenant.clone(),
            principal: caller.principal.clone(),
            action: step.action().to_owned(),
            action_properties: Map::new(),
            resource: Resource {
                kind: REQUEST_TYPE.to_owned(),
                id: request.id.clone(),
                attributes,
            },
            // The approver's connection: a policy may ask where approvals come from.
            context: Context {
                ip: peer.map(|peer| peer.addr.ip().to_canonical()),
                cert: peer.and_then(|peer| peer.cert.as_deref().cloned()),
                ..Context::default()
            },
            env: Default::default(),
            explain: false,
            trace_id: None,
        };
        let (_, decision) = path.decide(asked, None, user_agent(headers)).await;
        if !decision.is_allowed() {
            let mut extra = Map::new();
            extra.insert("refused".into(), json!("denied"));
            extra.insert("trace_id".into(), json!(decision.trace_id));
            record_step(
                state,
                &caller.tenant,
                &caller.principal.id,
                step.name(),
                &request,
                false,
                extra,
            )
            .await?;
            return Err(ApiError::forbidden(
                "denied",
                format!(
                    "`{}` may not {} access request `{id}` ({:?}; trace {})",
                    caller.principal.id,
                    step.name(),
                    decision.cause,
                    decision.trace_id
                ),
            ));
        }
    }
    let now = state.now();
    let store = state.store.tenant(&caller.tenant);
    let who = caller.principal.id.as_str();
    let outcome = match step {
        Step::Approve => {
            store
                .approve_access_request(id, who, comment.as_deref(), now_us(now))
                .await
        }
        Step::Reject => {
            store
                .reject_access_request(id, who, comment.as_deref(), now_us(now))
                .await
        }
        Step::Revoke => {
            store
                .revoke_access_request(id, who, comment.as_deref(), now_us(now))
                .await
        }
    };
    let changed = match outcome {
        Ok(changed) => changed,
        Err(StoreError::Refused { code, message }) => {
            let code = refusal_code(code);
            let mut extra = Map::new();
            extra.insert("refused".into(), json!(code));
            record_step(
                state,
                &caller.tenant,
                who,
                step.name(),
                &request,
                false,
                extra,
            )
            .await?;
            return Err(ApiError::new(StatusCode::CONFLICT, code, message));
        }
        Err(other) => return Err(store_error(other)),
    };
    let mut extra = Map::new();
    if let Some(comment) = &comment {
        extra.insert("comment".into(), json!(comment));
    }
    record_step(
        state,
        &caller.tenant,
        who,
        step.name(),
        &changed,
        true,
        extra,
    )
    .await?;
    // A new grant, or one gone: this node sees it at once, the others by notification.
    if changed.status == AccessStatus::Approved || request.status == AccessStatus::Approved {
        refresh_tenant(state, &caller.tenant).await;
    }
    Ok(view(&caller.tenant, &changed, now))
}

/// The code of a rule the store refused a step by, as the API answers it.
fn refusal_code(code: &str) -> &'static str {
    match code {
        "self_approval" => "self_approval",
        "already_approved" => "already_approved",
        "not_pending" => "not_pending",
        "window_ended" => "window_ended",
        "not_open" => "not_open",
        _ => "conflict",
    }
}

/// Records as expired every request of every tenant with temporary access whose window has
/// ended, each as an audit event; run by the server every few seconds. Decisions do not wait
/// for it (they compare the request's time with the window).
pub async fn sweep_expired(state: &AppState) {
    let policies = state.policies();
    let now = now_us(state.now());
    for snapshot in policies.iter() {
        if snapshot.temporary_access().is_none() {
            continue;
        }
        let tenant = snapshot.tenant();
        let expired = match state.store.tenant(tenant).expire_access(now).await {
            Ok(expired) => expired,
            Err(StoreError::NotFound(_)) => continue,
            Err(error) => {
                tracing::warn!(%tenant, %error, "cannot record expired access requests; retrying later");
                continue;
            }
        };
        if expired.is_empty() {
            continue;
        }
        for request in &expired {
            if let Err(error) =
                record_step(state, tenant, "system", "expire", request, true, Map::new()).await
            {
                tracing::error!(%tenant, request = %request.id, ?error, "an expiry could not be recorded");
            }
        }
        refresh_tenant(state, tenant).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use proptest::prelude::*;
    use serde_json::Value;

    use super::{name_part, valid_action, valid_network, valid_resource};

    /// A pattern of the `AccessRequestNew` schema in the public OpenAPI document, as a regex.
    fn pattern(pointer: &str) -> regex::Regex {
        let doc: Value = serde_json::from_str(crate::edges::operations::OPENAPI).unwrap();
        let text = doc["components"]["schemas"]["AccessRequestNew"]["properties"]
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no pattern at {pointer}"));
        regex::Regex::new(text).unwrap()
    }

    #[test]
    fn networks_the_document_names_are_the_ones_taken() {
        let documented = pattern("/networks/items/pattern");
        for (text, taken) in [
            ("10.0.0.0/8", true),
            ("172.*.*.*", true),
            ("*.1.*.2", true),
            ("1.2.3.4", true),
            ("::1", true),
            ("2001:db8::/32", true),
            ("1:2:3:4:5:6:7::", true),
            ("1.2.3.4/33", false),
            ("01.2.3.4", false),
            ("+1.2.3.4", false),
            ("1.*.*.*/8", false),
            ("2001:db8::/129", false),
            ("2001:db8::/08", false),
            (":::", false),
            ("::ffff:1.2.3.4", false),
            ("", false),
        ] {
            assert_eq!(valid_network(text), taken, "{text}");
            assert_eq!(documented.is_match(text), taken, "{text}");
        }
    }

    fn network_like() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[0-9a-fA-F:./*+]{0,24}").unwrap()
    }

    proptest! {
        /// Every network the document's pattern allows is taken, and nothing else.
        #[test]
        fn the_network_grammar_is_the_documented_one(text in network_like()) {
            prop_assert_eq!(valid_network(&text), pattern("/networks/items/pattern").is_match(&text));
        }

        /// The same for actions and resources, over names with the characters that matter.
        #[test]
        fn action_and_resource_grammars_are_the_documented_ones(
            text in proptest::string::string_regex("[a-z:* \u{85}\u{1}é]{0,8}").unwrap(),
        ) {
            prop_assert_eq!(valid_action(&text), pattern("/action/pattern").is_match(&text));
            prop_assert_eq!(valid_resource(&text), pattern("/resource/pattern").is_match(&text));
            prop_assert_eq!(name_part(&text, 240, &[]), pattern("/cert/pattern").is_match(&text));
        }
    }
}
