//! The OpenID AuthZEN 1.0 edge: `POST /access/v1/evaluation`, `POST /access/v1/evaluations`
//! and the discovery document `GET /.well-known/authzen-configuration`.
//!
//! It translates AuthZEN subjects, resources, actions and contexts into requests and decisions
//! into AuthZEN answers; the decision itself comes from the decision module.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use portcullis_core::{Context, Decision, Principal, Request, Resource, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::decision::DecisionPath;
use crate::edges::api::{authenticate, header_tenant, request_host, user_agent};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::AppState;

/// An AuthZEN subject.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// Subject type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Subject id.
    pub id: String,
    /// Attributes; `roles` (a list of strings) are asserted roles.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// An AuthZEN resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZenResource {
    /// Resource type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource id.
    pub id: String,
    /// Attributes.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// An AuthZEN action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The action name; Portcullis actions are written `type:verb`.
    pub name: String,
    /// Readable by conditions as `context.action_properties`.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// `POST /access/v1/evaluation` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// Who.
    pub subject: Subject,
    /// What.
    pub action: Action,
    /// On what.
    pub resource: ZenResource,
    /// Circumstances (the same keys as a Portcullis context).
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// One item of `POST /access/v1/evaluations`; absent parts come from the request's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialEvaluation {
    /// Who.
    pub subject: Option<Subject>,
    /// What.
    pub action: Option<Action>,
    /// On what.
    pub resource: Option<ZenResource>,
    /// Circumstances.
    pub context: Option<Map<String, Value>>,
}

/// Options of `POST /access/v1/evaluations`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationsOptions {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    pub evaluations_semantic: Option<String>,
}

/// `POST /access/v1/evaluations` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluations {
    /// Default subject.
    pub subject: Option<Subject>,
    /// Default action.
    pub action: Option<Action>,
    /// Default resource.
    pub resource: Option<ZenResource>,
    /// Default context.
    pub context: Option<Map<String, Value>>,
    /// The evaluations.
    #[serde(default)]
    pub evaluations: Vec<PartialEvaluation>,
    /// Options.
    #[serde(default)]
    pub options: EvaluationsOptions,
}

/// An AuthZEN decision.
#[derive(Debug, Clone, Serialize)]
pub struct ZenDecision {
    /// True for allow.
    pub decision: bool,
    /// Why: the Portcullis decision's cause, reasons, forbids, strategy, errors, revision and
    /// trace id.
    pub context: Value,
}

fn zen_tenant(headers: &HeaderMap) -> Result<TenantId, ApiError> {
    header_tenant(headers)?.ok_or_else(|| {
        ApiError::bad_request(
            "missing_tenant",
            "AuthZEN requests name their tenant in the X-Tenant-ID header",
        )
    })
}

fn to_request(tenant: &TenantId, evaluation: Evaluation) -> Result<Request, ApiError> {
    let mut properties = evaluation.subject.properties;
    let roles = match properties.remove("roles") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(role) => Ok(role),
                _ => Err(ApiError::bad_request(
                    "invalid_request",
                    "subject.properties.roles must be a list of strings",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "subject.properties.roles must be a list of strings",
            ));
        }
    };
    let mut context_map = evaluation.context.unwrap_or_default();
    if !evaluation.action.properties.is_empty() {
        context_map.insert(
            "action_properties".into(),
            Value::Object(evaluation.action.properties),
        );
    }
    let context: Context =
        crate::json::from_value(Value::Object(context_map)).map_err(|error| {
            let at = match error.path().to_string() {
                root if root == "." => "context".to_owned(),
                path => format!("context.{path}"),
            };
            ApiError::bad_request("invalid_request", format!("{at}: {}", error.inner()))
        })?;
    Ok(Request {
        tenant: tenant.clone(),
        principal: Principal {
            id: evaluation.subject.id,
            kind: evaluation.subject.kind,
            roles,
            attributes: properties,
        },
        action: evaluation.action.name,
        resource: Resource {
            kind: evaluation.resource.kind,
            id: evaluation.resource.id,
            attributes: evaluation.resource.properties,
        },
        context,
        env: Default::default(),
        explain: false,
        action_properties: Default::default(),
        trace_id: None,
    })
}

fn zen_decision(decision: &Decision) -> ZenDecision {
    ZenDecision {
        decision: decision.is_allowed(),
        context: json!({
            "id": decision.trace_id,
            "cause": decision.cause,
            "reasons": decision.reasons,
            "forbids": decision.forbids,
            "strategy": decision.strategy,
            "errors": decision.errors,
            "revision": decision.revision,
        }),
    }
}

async fn zen_decide(
    path: &DecisionPath<'_>,
    headers: &HeaderMap,
    tenant: &TenantId,
    evaluation: Evaluation,
) -> Result<ZenDecision, ApiError> {
    let mut request = to_request(tenant, evaluation)?;
    authenticate(path, headers, &mut request)?;
    let _admitted = path.admit(tenant)?;
    let (_, decision) = path.decide(request, None, user_agent(headers)).await;
    Ok(zen_decision(&decision))
}

/// `POST /access/v1/evaluation`.
pub async fn evaluation(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(evaluation): JsonBody<Evaluation>,
) -> Result<Json<ZenDecision>, ApiError> {
    let tenant = zen_tenant(&headers)?;
    let path = DecisionPath::new(&state, "authzen");
    Ok(Json(
        zen_decide(&path, &headers, &tenant, evaluation).await?,
    ))
}

/// `POST /access/v1/evaluations`.
pub async fn evaluations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(batch): JsonBody<Evaluations>,
) -> Result<Json<Value>, ApiError> {
    let tenant = zen_tenant(&headers)?;
    #[derive(PartialEq)]
    enum Semantic {
        All,
        DenyOnFirstDeny,
        PermitOnFirstPermit,
    }
    let semantic = match batch.options.evaluations_semantic.as_deref() {
        None | Some("execute_all") => Semantic::All,
        Some("deny_on_first_deny") => Semantic::DenyOnFirstDeny,
        Some("permit_on_first_permit") => Semantic::PermitOnFirstPermit,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "unknown evaluations_semantic `{other}`; use execute_all, deny_on_first_deny or permit_on_first_permit"
                ),
            ));
        }
    };
    let limit = state.config.limits.max_batch;
    let items = if batch.evaluations.is_empty() {
        // Without an array, the defaults form a single evaluation.
        vec![PartialEvaluation::default()]
    } else {
        batch.evaluations
    };
    if items.len() > limit {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "the request holds {} evaluations; the limit is {limit}",
                items.len()
            ),
        ));
    }
    let mut complete = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let missing = |part: &str| {
            ApiError::bad_request(
                "invalid_request",
                format!("evaluations[{index}] has no {part} and the request gives no default"),
            )
        };
        let context = match (&batch.context, item.context) {
            (Some(defaults), Some(own)) => {
                let mut merged = defaults.clone();
                merged.extend(own);
                Some(merged)
            }
            (defaults, own) => own.or_else(|| defaults.clone()),
        };
        complete.push(Evaluation {
            subject: item
                .subject
                .or_else(|| batch.subject.clone())
                .ok_or_else(|| missing("subject"))?,
            action: item
                .action
                .or_else(|| batch.action.clone())
                .ok_or_else(|| missing("action"))?,
            resource: item
                .resource
                .or_else(|| batch.resource.clone())
                .ok_or_else(|| missing("resource"))?,
            context,
        });
    }
    let path = DecisionPath::new(&state, "authzen");
    let mut results = Vec::with_capacity(complete.len());
    for evaluation in complete {
        let result = zen_decide(&path, &headers, &tenant, evaluation).await?;
        let stop = match semantic {
            Semantic::All => false,
            Semantic::DenyOnFirstDeny => !result.decision,
            Semantic::PermitOnFirstPermit => result.decision,
        };
        results.push(result);
        if stop {
            break;
        }
    }
    Ok(Json(json!({ "evaluations": results })))
}

/// `GET /.well-known/authzen-configuration`: where the evaluation endpoints are.
pub async fn authzen_configuration(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Json<Value> {
    let fallback = state.config.listen.to_string();
    let host = request_host(&headers).unwrap_or(&fallback);
    let scheme = if state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{host}");
    Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
    }))
}
