//! The OpenID AuthZEN 1.0 edge: `POST /access/v1/evaluation`, `POST /access/v1/evaluations`
//! and the discovery document `GET /.well-known/authzen-configuration`.
//!
//! It translates AuthZEN subjects, resources, actions and contexts into requests and decisions
//! into AuthZEN answers; the decision itself comes from the decision module, and so does the
//! tenant when the caller does not name one ([`DecisionPath::resolve_tenant`]).
//!
//! AuthZEN's rules, which differ from our own `/v1` API's on purpose:
//!
//! * unknown members are ignored at every level (top level, inside entities, `options`, batch
//!   items): AuthZEN 1.0 lets later versions add members that older PDPs must tolerate;
//! * every malformed request is a 400 with our JSON error body — a wrong `Content-Type` too
//!   ([`ZenBody`]), where `/v1` answers 415;
//! * in a batch, an item that is incomplete or invalid once the request's defaults are applied
//!   is answered in its place as a deny carrying the error (`context.error`), never as a 400
//!   for the whole batch; it counts as a deny for the short-circuit semantics.
//!
//! This module must not decide, read a policy or write an audit record.

use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, Request as HttpRequest, State};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use portcullis_core::{
    Cause, Context, Decision, DecisionError, Principal, Reason, Request, Resource, Revision,
    StrategyOutcome, TenantId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::decision::DecisionPath;
use crate::edges::api::{apply_identity, header_tenant, request_host, user_agent};
use crate::edges::forward::is_trusted;
use crate::error::ApiError;
use crate::identity::{Identity, bearer};
use crate::state::AppState;
use crate::tls::PeerInfo;

/// A JSON body read as AuthZEN asks: like [`crate::json::JsonBody`] (strict types, our error
/// codes), except that a missing or wrong `Content-Type` is a 400, not a 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZenBody<T>(pub T);

impl<S, T> FromRequest<S> for ZenBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: HttpRequest, state: &S) -> Result<Self, Self::Rejection> {
        crate::json::read_body(request, state, not_zen_json)
            .await
            .map(ZenBody)
            .map_err(zen_error)
    }
}

/// A request's headers and its body read as [`ZenBody`] reads it; the headers are moved out of
/// the request, not copied.
#[derive(Debug, Clone, Default)]
pub struct ZenRequest<T> {
    /// The request's headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: T,
}

impl<S, T> FromRequest<S> for ZenRequest<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: HttpRequest, state: &S) -> Result<Self, Self::Rejection> {
        let (headers, body) = crate::json::read_request(request, state, not_zen_json)
            .await
            .map_err(zen_error)?;
        Ok(ZenRequest { headers, body })
    }
}

/// An AuthZEN body's error in AuthZEN's codes: a member refused inside a Portcullis type read
/// from the body (a client certificate in `context`) is an invalid request, as it is when a
/// batch item's context is read.
fn zen_error(mut error: ApiError) -> ApiError {
    if error.code == "unknown_field" {
        error.code = "invalid_request";
    }
    error
}

fn not_zen_json() -> ApiError {
    ApiError::bad_request(
        "unsupported_media_type",
        "AuthZEN requests are JSON sent with Content-Type: application/json",
    )
}

/// An AuthZEN subject or resource as sent: `type` and `id` are checked once the request's
/// defaults are applied, so that a batch item missing one is answered in its place.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Entity {
    /// The entity's type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The entity's id.
    pub id: Option<String>,
    /// Attributes; on a subject, `roles` (a list of strings) are asserted roles.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// An AuthZEN action as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Action {
    /// The action name: `read` (qualified by the resource type) or `type:verb`.
    pub name: Option<String>,
    /// Readable by conditions as `action.properties`.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// An evaluation as sent: the body of `POST /access/v1/evaluation`, where the context is read
/// straight as a Portcullis context (`C` = [`Context`]; a context that does not read is a 400
/// naming where), or a batch item, whose context stays JSON until the item is asked (a bad
/// one fails that item only).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluation<C = Map<String, Value>> {
    /// Who.
    pub subject: Option<Entity>,
    /// What.
    pub action: Option<Action>,
    /// On what.
    pub resource: Option<Entity>,
    /// Circumstances (the same keys as a Portcullis context).
    pub context: Option<C>,
}

/// Options of `POST /access/v1/evaluations`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EvaluationsOptions {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    pub evaluations_semantic: Option<String>,
}

/// `POST /access/v1/evaluations` body: defaults, the evaluations and options.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluations {
    /// Default subject.
    pub subject: Option<Entity>,
    /// Default action.
    pub action: Option<Action>,
    /// Default resource.
    pub resource: Option<Entity>,
    /// Default context.
    pub context: Option<Map<String, Value>>,
    /// The evaluations; absent or empty, the request is one evaluation of its defaults.
    pub evaluations: Option<Vec<Evaluation>>,
    /// Options.
    pub options: Option<EvaluationsOptions>,
}

/// An AuthZEN decision.
#[derive(Debug, Clone, Serialize)]
pub struct ZenDecision {
    /// True for allow.
    pub decision: bool,
    /// Why: the Portcullis decision's id, cause, reasons, forbids, strategy, errors and
    /// revision; or, for a batch item that could not be evaluated, the error.
    pub context: ZenContext,
}

/// The answer of `POST /access/v1/evaluations` with items.
#[derive(Debug, Clone, Serialize)]
pub struct ZenDecisions {
    /// One decision per item answered, in order.
    pub evaluations: Vec<ZenDecision>,
}

/// The `context` of an AuthZEN decision.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per answer and moved into it; boxing would only add an allocation"
)]
pub enum ZenContext {
    /// What the Portcullis decision says, moved out of it (no copies).
    Decision {
        /// The decision's trace id.
        id: String,
        /// Why it was made.
        cause: Cause,
        /// The grants that held.
        reasons: Vec<Reason>,
        /// The forbids that held.
        forbids: Vec<Arc<str>>,
        /// The strategy's outcome.
        strategy: Option<StrategyOutcome>,
        /// What could not be evaluated.
        errors: Vec<DecisionError>,
        /// The revision decided on.
        revision: Revision,
    },
    /// Why a batch item could not be evaluated.
    Error {
        /// Its code and message.
        error: ItemError,
    },
}

/// The error of a batch item that could not be evaluated.
#[derive(Debug, Clone, Serialize)]
pub struct ItemError {
    /// `missing_field` or `invalid_request`.
    pub code: &'static str,
    /// What is wrong, naming where.
    pub message: String,
}

/// How a batch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Semantic {
    /// Every item is evaluated.
    ExecuteAll,
    /// The first deny (or failed item) is the last item answered.
    DenyOnFirstDeny,
    /// The first permit is the last item answered.
    PermitOnFirstPermit,
}

fn semantic(options: Option<&EvaluationsOptions>) -> Result<Semantic, ApiError> {
    match options.and_then(|options| options.evaluations_semantic.as_deref()) {
        None | Some("execute_all") => Ok(Semantic::ExecuteAll),
        Some("deny_on_first_deny") => Ok(Semantic::DenyOnFirstDeny),
        Some("permit_on_first_permit") => Ok(Semantic::PermitOnFirstPermit),
        Some(other) => Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "unknown evaluations_semantic `{other}`; use execute_all, deny_on_first_deny or permit_on_first_permit"
            ),
        )),
    }
}

/// An evaluation that cannot be decided: what is missing or wrong, with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// `missing_field` or `invalid_request`.
    pub code: &'static str,
    /// What is wrong, naming where.
    pub message: String,
}

impl Invalid {
    fn missing(at: &str, what: &str) -> Self {
        Invalid {
            code: "missing_field",
            message: format!("{at}{what} is required"),
        }
    }

    fn malformed(message: String) -> Self {
        Invalid {
            code: "invalid_request",
            message,
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::bad_request(invalid.code, invalid.message)
    }
}

fn required(value: Option<String>, at: &str, what: &str) -> Result<String, Invalid> {
    value.ok_or_else(|| Invalid::missing(at, what))
}

/// The context of an evaluation as sent: JSON still to be read, or already read.
pub trait ContextIn {
    /// The Portcullis context (`at` prefixes the path in the error).
    fn into_context(self, at: &str) -> Result<Context, Invalid>;
}

impl ContextIn for Map<String, Value> {
    fn into_context(self, at: &str) -> Result<Context, Invalid> {
        crate::json::from_value(Value::Object(self)).map_err(|error| {
            let place = match error.path().to_string() {
                root if root == "." => "context".to_owned(),
                path => format!("context.{path}"),
            };
            Invalid::malformed(format!("{at}{place}: {}", error.inner()))
        })
    }
}

impl ContextIn for Context {
    fn into_context(self, _at: &str) -> Result<Context, Invalid> {
        Ok(self)
    }
}

/// The request an evaluation asks (`at` prefixes paths in errors, `evaluations[2].` in a
/// batch): every part present, entities with `type` and `id`, the action with `name`, subject
/// roles a list of strings and the context readable as a Portcullis context.
pub fn to_request<C: ContextIn>(
    tenant: &TenantId,
    evaluation: Evaluation<C>,
    at: &str,
) -> Result<Request, Invalid> {
    let subject = evaluation
        .subject
        .ok_or_else(|| Invalid::missing(at, "subject"))?;
    let action = evaluation
        .action
        .ok_or_else(|| Invalid::missing(at, "action"))?;
    let resource = evaluation
        .resource
        .ok_or_else(|| Invalid::missing(at, "resource"))?;
    let subject_kind = required(subject.kind, at, "subject.type")?;
    let subject_id = required(subject.id, at, "subject.id")?;
    let action_name = required(action.name, at, "action.name")?;
    let resource_kind = required(resource.kind, at, "resource.type")?;
    let resource_id = required(resource.id, at, "resource.id")?;
    let mut properties = subject.properties;
    let not_strings = || {
        Invalid::malformed(format!(
            "{at}subject.properties.roles must be a list of strings"
        ))
    };
    let roles = match properties.remove("roles") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(role) => Ok(role),
                _ => Err(not_strings()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(not_strings()),
    };
    let context = match evaluation.context {
        Some(context) => context.into_context(at)?,
        None => Context::default(),
    };
    Ok(Request {
        tenant: tenant.clone(),
        principal: Principal {
            id: subject_id,
            kind: subject_kind,
            roles,
            attributes: properties,
        },
        action: action_name,
        action_properties: action.properties,
        resource: Resource {
            kind: resource_kind,
            id: resource_id,
            attributes: resource.properties,
        },
        context,
        env: Default::default(),
        explain: false,
        trace_id: None,
    })
}

/// Applies a batch's defaults to one item: each of the item's `subject`, `action`, `resource`
/// and `context` replaces the default whole (AuthZEN 1.0: values in an evaluation take
/// precedence over the defaults; nothing is merged member by member).
pub fn with_defaults(item: Evaluation, defaults: &Evaluations) -> Evaluation {
    Evaluation {
        subject: item.subject.or_else(|| defaults.subject.clone()),
        action: item.action.or_else(|| defaults.action.clone()),
        resource: item.resource.or_else(|| defaults.resource.clone()),
        context: item.context.or_else(|| defaults.context.clone()),
    }
}

fn zen_decision(decision: Decision) -> ZenDecision {
    ZenDecision {
        decision: decision.is_allowed(),
        context: ZenContext::Decision {
            id: decision.trace_id,
            cause: decision.cause,
            reasons: decision.reasons,
            forbids: decision.forbids,
            strategy: decision.strategy,
            errors: decision.errors,
            revision: decision.revision,
        },
    }
}

/// The answer in place of a batch item that could not be evaluated.
fn failed_item(invalid: Invalid) -> ZenDecision {
    ZenDecision {
        decision: false,
        context: ZenContext::Error {
            error: ItemError {
                code: invalid.code,
                message: invalid.message,
            },
        },
    }
}

/// What every AuthZEN question (evaluations and searches) starts with: the caller's verified
/// identity (when a token was sent, or required) and the tenant, resolved by the decision
/// module ([`DecisionPath::resolve_tenant`]).
pub(crate) struct Caller {
    /// The verified bearer identity, if any.
    pub(crate) identity: Option<Arc<Identity>>,
    /// The tenant whose policy answers.
    pub(crate) tenant: TenantId,
}

/// The caller of an AuthZEN endpoint: its token verified and its tenant resolved.
pub(crate) fn caller(path: &DecisionPath<'_>, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let identity = path.identify(bearer(headers)?, path.token_required())?;
    let (tenant, _) = path.resolve_tenant(
        header_tenant(headers)?,
        identity.as_deref(),
        request_host(headers),
    )?;
    Ok(Caller { identity, tenant })
}

async fn decide(
    path: &DecisionPath<'_>,
    headers: &HeaderMap,
    caller: &Caller,
    mut request: Request,
) -> Result<ZenDecision, ApiError> {
    apply_identity(path, caller.identity.as_deref(), &mut request)?;
    let (_, decision) = path.decide(request, None, user_agent(headers)).await;
    Ok(zen_decision(decision))
}

/// `POST /access/v1/evaluation`.
pub async fn evaluation(
    State(state): State<Arc<AppState>>,
    ZenRequest {
        headers,
        body: evaluation,
    }: ZenRequest<Evaluation<Context>>,
) -> Result<Json<ZenDecision>, ApiError> {
    let path = DecisionPath::new(&state, "authzen");
    let caller = caller(&path, &headers)?;
    let mut request = to_request(&caller.tenant, evaluation, "")?;
    let _admitted = path.admit(&caller.tenant)?;
    // As `decide` does for batch items, without the extra future every answer would move.
    apply_identity(&path, caller.identity.as_deref(), &mut request)?;
    let (_, decision) = path.decide(request, None, user_agent(&headers)).await;
    Ok(Json(zen_decision(decision)))
}

/// `POST /access/v1/evaluations`: without items (absent or empty `evaluations`), the request
/// is one Access Evaluation and is answered like one.
pub async fn evaluations(
    State(state): State<Arc<AppState>>,
    ZenRequest {
        headers,
        body: mut batch,
    }: ZenRequest<Evaluations>,
) -> Result<Response, ApiError> {
    let semantic = semantic(batch.options.as_ref())?;
    let items = batch.evaluations.take().unwrap_or_default();
    let limit = state.config.limits.max_batch;
    if items.len() > limit {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "the request holds {} evaluations; the limit is {limit}",
                items.len()
            ),
        ));
    }
    let path = DecisionPath::new(&state, "authzen");
    let caller = caller(&path, &headers)?;
    if items.is_empty() {
        let request = to_request(
            &caller.tenant,
            with_defaults(Evaluation::default(), &batch),
            "",
        )?;
        let _admitted = path.admit(&caller.tenant)?;
        return Ok(Json(decide(&path, &headers, &caller, request).await?).into_response());
    }
    let _admitted = path.admit(&caller.tenant)?;
    let mut results = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let at = format!("evaluations[{index}].");
        let result = match to_request(&caller.tenant, with_defaults(item, &batch), &at) {
            Ok(request) => decide(&path, &headers, &caller, request).await?,
            Err(invalid) => failed_item(invalid),
        };
        let stop = match semantic {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !result.decision,
            Semantic::PermitOnFirstPermit => result.decision,
        };
        results.push(result);
        if stop {
            break;
        }
    }
    Ok(Json(ZenDecisions {
        evaluations: results,
    })
    .into_response())
}

/// The base URL the discovery document names: the configured `public_url`; otherwise the
/// scheme of our listener (or, from a trusted proxy, `X-Forwarded-Proto`) and the Host (or,
/// from a trusted proxy, `X-Forwarded-Host`), falling back to the listen address.
pub fn base_url(state: &AppState, headers: &HeaderMap, peer: Option<&PeerInfo>) -> String {
    if let Some(url) = &state.config.public_url {
        return url.clone();
    }
    let trusted =
        peer.is_some_and(|peer| is_trusted(&state.config.trusted_proxies, peer.addr.ip()));
    let forwarded = |name: &str| {
        trusted
            .then(|| headers.get(name))
            .flatten()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let scheme = match forwarded("x-forwarded-proto") {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
        _ if state.config.tls.is_some() => "https",
        _ => "http",
    };
    let usable = |host: &&str| {
        host.bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]_".contains(&byte))
    };
    let host = forwarded("x-forwarded-host")
        .filter(usable)
        .or_else(|| request_host(headers).filter(usable))
        .map_or_else(|| state.config.listen.to_string(), str::to_owned);
    format!("{scheme}://{host}")
}

/// `GET /.well-known/authzen-configuration`: where the AuthZEN endpoints are. The document
/// is the same for every tenant, so it needs none.
pub async fn authzen_configuration(State(state): State<Arc<AppState>>, parts: Parts) -> Response {
    let peer = parts
        .extensions
        .get::<ConnectInfo<PeerInfo>>()
        .map(|ConnectInfo(peer)| peer);
    let base = base_url(&state, &parts.headers, peer);
    let document = json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
        "search_action_endpoint": format!("{base}/access/v1/search/action"),
    });
    (StatusCode::OK, Json(document)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::new("acme").unwrap_or_else(|_| unreachable!())
    }

    fn parse<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
        crate::json::from_slice(value.to_string().as_bytes())
    }

    #[test]
    fn unknown_members_are_ignored_at_every_level() {
        let batch: Evaluations = parse(json!({
            "future": 1,
            "subject": {"type": "user", "id": "alice", "extra": true},
            "options": {"evaluations_semantic": "execute_all", "another_option": "x"},
            "evaluations": [{"resource": {"type": "record", "id": "1", "x": 1}, "y": 2,
                             "action": {"name": "read", "z": 3}}]
        }))
        .map_err(|e| e.message)
        .unwrap_or_else(|message| unreachable!("{message}"));
        let item = batch.evaluations.clone().unwrap_or_default().remove(0);
        let request = to_request(&tenant(), with_defaults(item, &batch), "").map_err(|e| e.message);
        assert_eq!(request.map(|r| r.action), Ok("read".to_owned()));
    }

    #[test]
    fn action_properties_go_to_the_request_not_the_context() {
        let evaluation: Evaluation = parse(json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "delete", "properties": {"soft": true}},
            "resource": {"type": "record", "id": "1"},
            "context": {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}
        }))
        .unwrap_or_default();
        let request = to_request(&tenant(), evaluation, "").map_err(|e| e.message);
        let request = request.unwrap_or_else(|message| unreachable!("{message}"));
        assert_eq!(request.action_properties.get("soft"), Some(&json!(true)));
        assert!(!request.context.attributes.contains_key("action_properties"));
        assert!(request.context.time.is_some());
    }

    #[test]
    fn incomplete_evaluations_name_what_is_missing() {
        let cases = [
            (
                json!({"action": {"name": "a"}, "resource": {"type": "t", "id": "1"}}),
                "subject is required",
            ),
            (
                json!({"subject": {"id": "u"}, "action": {"name": "a"}, "resource": {"type": "t", "id": "1"}}),
                "subject.type is required",
            ),
            (
                json!({"subject": {"type": "user", "id": "u"}, "action": {}, "resource": {"type": "t", "id": "1"}}),
                "action.name is required",
            ),
            (
                json!({"subject": {"type": "user", "id": "u"}, "action": {"name": "a"}, "resource": {"type": "t"}}),
                "resource.id is required",
            ),
        ];
        for (body, message) in cases {
            let evaluation: Evaluation = parse(body).unwrap_or_default();
            let error = to_request(&tenant(), evaluation, "evaluations[1].").map(|_| ());
            assert_eq!(
                error,
                Err(Invalid {
                    code: "missing_field",
                    message: format!("evaluations[1].{message}")
                })
            );
        }
    }

    #[test]
    fn an_item_replaces_each_default_whole() {
        let batch: Evaluations = parse(json!({
            "subject": {"type": "user", "id": "alice", "properties": {"a": 1}},
            "context": {"source": "default", "keep": 1},
        }))
        .unwrap_or_default();
        let item: Evaluation = parse(json!({
            "subject": {"type": "user", "id": "bob"},
            "context": {"source": "item"}
        }))
        .unwrap_or_default();
        let merged = with_defaults(item, &batch);
        let subject = merged.subject.unwrap_or_default();
        assert_eq!(subject.id.as_deref(), Some("bob"));
        assert!(subject.properties.is_empty());
        assert_eq!(
            merged.context,
            Some(
                json!({"source": "item"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            )
        );
        let inherited = with_defaults(Evaluation::default(), &batch);
        assert_eq!(
            inherited.context.and_then(|c| c.get("keep").cloned()),
            Some(json!(1))
        );
    }

    #[test]
    fn semantics_are_three_and_others_are_refused() {
        let options = |value: &str| EvaluationsOptions {
            evaluations_semantic: Some(value.to_owned()),
        };
        assert_eq!(semantic(None), Ok(Semantic::ExecuteAll));
        assert_eq!(
            semantic(Some(&options("deny_on_first_deny"))),
            Ok(Semantic::DenyOnFirstDeny)
        );
        assert_eq!(
            semantic(Some(&options("permit_on_first_permit"))),
            Ok(Semantic::PermitOnFirstPermit)
        );
        assert_eq!(
            semantic(Some(&options("sometimes"))).map_err(|e| e.status),
            Err(StatusCode::BAD_REQUEST)
        );
    }
}
