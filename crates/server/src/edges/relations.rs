//! The relationship API (C3) over HTTP.
//!
//! Queries, on the public listener next to `/v1/check` and authenticated the same way (a bearer
//! token, when present or required, must belong to the tenant):
//! `POST /v1/relations/check`, `/v1/relations/check/batch`, `/v1/relations/list-objects`,
//! `/v1/relations/list-users`, `/v1/relations/expand`. They read this node's in-memory index;
//! a query may demand `consistency.at_least` (a revision token returned by a write), and is
//! then never answered from an older index.
//!
//! Every query goes through the decision module: identity, tenant binding and admission as for
//! `/v1/check`, then the query on the evaluation pool (a query may take up to the index's step
//! budget, which must not hold the runtime), and the answer is recorded and counted as a
//! decision on the asked relation (`allow` for a check that holds or a list answered, `deny`
//! for a check that does not, an error for a query that failed). Its trace id is in the answer.
//!
//! Tuple writes and reads (admin listener) are in `snapshots::tuples`. Handlers translate only;
//! the answers come from `portcullis-rebac`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use portcullis_core::{
    Cause, Context, Decision, DecisionError, Effect, ErrorKind, Principal, Reason, ReasonKind,
    Request, Resource, Revision, TenantId,
};
use portcullis_policy::rebac::{
    CheckRequest, MAX_BATCH_CHECK_ITEMS, MAX_CONTEXTUAL_TUPLES, ObjectRef, QueryError, Tuple, User,
    UserFilter,
};
use portcullis_policy::{PolicySet, Relations};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::decision::DecisionPath;
use crate::edges::api::{header_tenant, user_agent};
use crate::error::ApiError;
use crate::identity::{HostBinding, bearer};
use crate::json::JsonBody;
use crate::snapshots::reload::refresh_tenant;
use crate::state::AppState;

/// Most objects in one page of list objects.
pub const MAX_PAGE: usize = 10_000;
/// How long a query waits for this node to reach a demanded revision.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// "At least as fresh as" a revision token.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    /// A revision token returned by a write.
    #[serde(default)]
    pub at_least: Option<String>,
}

/// Fields every query carries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// The tenant.
    pub tenant: TenantId,
    /// `type:id`, `type:*` or `type:id#relation`.
    pub user: String,
    /// The relation.
    pub relation: String,
    /// `type:id`.
    pub object: String,
    /// Request context for conditions.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Tuples that exist for this query only.
    #[serde(default)]
    pub contextual_tuples: Vec<Tuple>,
    /// Freshness demand.
    #[serde(default)]
    pub consistency: Consistency,
}

/// Body of batch check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// The tenant.
    pub tenant: TenantId,
    /// The checks (each without `tenant`).
    pub checks: Vec<BatchItem>,
    /// Freshness demand.
    #[serde(default)]
    pub consistency: Consistency,
}

/// One check of a batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// Who.
    pub user: String,
    /// Which relation.
    pub relation: String,
    /// On what.
    pub object: String,
    /// Request context for conditions.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Tuples that exist for this check only.
    #[serde(default)]
    pub contextual_tuples: Vec<Tuple>,
    /// Echoed back with the result.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

/// Body of list objects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListObjectsBody {
    /// The tenant.
    pub tenant: TenantId,
    /// Who.
    pub user: String,
    /// Which relation.
    pub relation: String,
    /// Objects of which type.
    #[serde(rename = "type")]
    pub object_type: String,
    /// Request context for conditions.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Tuples that exist for this query only.
    #[serde(default)]
    pub contextual_tuples: Vec<Tuple>,
    /// Most objects in the answer (default and maximum 10,000).
    #[serde(default)]
    pub page_size: Option<usize>,
    /// From a previous answer, to read the next page (`null`: the first page).
    #[serde(default, deserialize_with = "crate::json::nullable")]
    pub continuation: Option<String>,
    /// Freshness demand.
    #[serde(default)]
    pub consistency: Consistency,
}

/// Body of list users.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsersBody {
    /// The tenant.
    pub tenant: TenantId,
    /// `type:id`.
    pub object: String,
    /// Which relation.
    pub relation: String,
    /// Which users: `user` (objects and `user:*`) or `group#member` (usersets).
    pub user_filters: Vec<String>,
    /// Request context for conditions.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Tuples that exist for this query only.
    #[serde(default)]
    pub contextual_tuples: Vec<Tuple>,
    /// Freshness demand.
    #[serde(default)]
    pub consistency: Consistency,
}

/// Body of expand.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpandBody {
    /// The tenant.
    pub tenant: TenantId,
    /// `type:id`.
    pub object: String,
    /// Which relation.
    pub relation: String,
    /// Tuples that exist for this query only.
    #[serde(default)]
    pub contextual_tuples: Vec<Tuple>,
    /// Freshness demand.
    #[serde(default)]
    pub consistency: Consistency,
}

/// A query error as an HTTP answer.
pub fn query_error(error: &QueryError) -> ApiError {
    let code = query_error_code(error);
    let status = match error {
        QueryError::MissingParameter { .. }
        | QueryError::BadParameter { .. }
        | QueryError::ConditionFailed { .. }
        | QueryError::DepthExceeded
        | QueryError::TooComplex => StatusCode::UNPROCESSABLE_ENTITY,
        QueryError::IndexIncomplete(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, code, error.to_string())
}

/// The stable code of a query error.
pub fn query_error_code(error: &QueryError) -> &'static str {
    match error {
        QueryError::MissingParameter { .. } => "missing_condition_parameter",
        QueryError::BadParameter { .. } => "invalid_condition_parameter",
        QueryError::ConditionFailed { .. } => "condition_failed",
        QueryError::DepthExceeded => "depth_exceeded",
        QueryError::TooComplex => "too_complex",
        QueryError::IndexIncomplete(_) => "index_incomplete",
        QueryError::UnknownType(_) => "unknown_type",
        QueryError::UnknownRelation { .. } => "unknown_relation",
        QueryError::InvalidContextualTuple(_) => "invalid_tuple",
        QueryError::TooManyContextualTuples(_) | QueryError::TooManyChecks(_) => "too_many",
    }
}

fn parse_user(text: &str) -> Result<User, ApiError> {
    text.parse()
        .map_err(|e: portcullis_policy::rebac::ParseError| {
            ApiError::bad_request("invalid_user", e.to_string())
        })
}

fn parse_object(text: &str) -> Result<ObjectRef, ApiError> {
    text.parse()
        .map_err(|e: portcullis_policy::rebac::ParseError| {
            ApiError::bad_request("invalid_object", e.to_string())
        })
}

fn check_contextual(tuples: &[Tuple]) -> Result<(), ApiError> {
    if tuples.len() > MAX_CONTEXTUAL_TUPLES {
        return Err(ApiError::bad_request(
            "too_many",
            format!(
                "{} contextual tuples, more than the limit of {MAX_CONTEXTUAL_TUPLES}",
                tuples.len()
            ),
        ));
    }
    Ok(())
}

fn parse_token(consistency: &Consistency) -> Result<Option<u64>, ApiError> {
    consistency
        .at_least
        .as_deref()
        .map(|token| {
            token.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_consistency",
                    format!(
                        "`{token}` is not a revision token; pass the `revision` a write returned"
                    ),
                )
            })
        })
        .transpose()
}

/// Authenticates the caller for a tenant: a bearer token, when present or required, must be
/// valid and belong to the tenant.
fn authenticate(
    path: &DecisionPath<'_>,
    headers: &HeaderMap,
    tenant: &TenantId,
) -> Result<(), ApiError> {
    if let Some(named) = header_tenant(headers)?
        && &named != tenant
    {
        return Err(ApiError::bad_request(
            "tenant_mismatch",
            "X-Tenant-ID and the body name different tenants",
        ));
    }
    if let Some(identity) = path.identify(bearer(headers)?, path.token_required())? {
        path.bind(&identity, tenant, HostBinding::Stated(None))?;
    }
    Ok(())
}

/// What a query asked, as the decision record names it: the user as principal, the query and
/// relation as action, the object (or `type:*`) as resource.
pub(crate) struct Asked {
    pub(crate) tenant: TenantId,
    pub(crate) user: String,
    pub(crate) action: String,
    pub(crate) resource: Resource,
    pub(crate) context: Map<String, Value>,
}

impl Asked {
    fn request(&self) -> Request {
        Request {
            tenant: self.tenant.clone(),
            principal: Principal::user(self.user.clone()),
            action: self.action.clone(),
            resource: self.resource.clone(),
            context: Context {
                attributes: self.context.clone(),
                source: Some("relations".to_owned()),
                ..Context::default()
            },
            env: Default::default(),
            explain: false,
            action_properties: Default::default(),
            trace_id: None,
        }
    }
}

/// An answered query, with the trace id of its decision.
pub(crate) struct Answered<T> {
    pub(crate) answer: T,
    pub(crate) revision: u64,
    pub(crate) trace_id: String,
}

/// Answers one query through the decision module: the caller authenticated and admitted, the
/// index found (as fresh as demanded), the query run on the evaluation pool, and its outcome
/// recorded and counted as a decision. `outcome` says whether an answer grants and by which
/// path. A failed query is recorded as an error, then answered as one.
async fn answer<T, Q, O>(
    path: &DecisionPath<'_>,
    headers: &HeaderMap,
    at_least: Option<u64>,
    asked: Asked,
    query: Q,
    outcome: O,
) -> Result<Answered<T>, ApiError>
where
    T: Send + 'static,
    Q: FnOnce(&Relations) -> Result<T, QueryError> + Send + 'static,
    O: FnOnce(&T) -> (bool, Vec<String>),
{
    authenticate(path, headers, &asked.tenant)?;
    let answered =
        answer_authenticated(path, user_agent(headers), at_least, asked, query, outcome).await?;
    let answer = answered.answer.map_err(|error| query_error(&error))?;
    Ok(Answered {
        answer,
        revision: answered.revision,
        trace_id: answered.trace_id,
    })
}

/// [`answer`] for a caller an edge has already authenticated for `asked.tenant`: admission,
/// the index, the query on the evaluation pool, and the decision record. The query's own
/// failure is in the answer (recorded as an error), for the edge to render in its protocol.
pub(crate) async fn answer_authenticated<T, Q, O>(
    path: &DecisionPath<'_>,
    user_agent: Option<&str>,
    at_least: Option<u64>,
    asked: Asked,
    query: Q,
    outcome: O,
) -> Result<Answered<Result<T, QueryError>>, ApiError>
where
    T: Send + 'static,
    Q: FnOnce(&Relations) -> Result<T, QueryError> + Send + 'static,
    O: FnOnce(&T) -> (bool, Vec<String>),
{
    let _admitted = path.admit(&asked.tenant)?;
    let relations = index(path, &asked.tenant, at_least).await?;
    let revision = relations.revision();
    let result = path
        .run_costly(move || query(&relations))
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the query was not answered: {error}"),
            )
        })?;
    let bundle = path.snapshot(&asked.tenant).map_or_else(
        || Arc::from("none"),
        |snapshot| Arc::clone(snapshot.revision()),
    );
    let reason = |granted: bool, steps: Vec<String>| {
        granted.then(|| {
            Reason::new(
                ReasonKind::Relation,
                Arc::from(asked.action.as_str()),
                steps.into_iter().map(Arc::from).collect(),
            )
        })
    };
    let (effect, cause, reasons, errors) = match &result {
        Ok(answer) => {
            let (granted, steps) = outcome(answer);
            let effect = if granted { Effect::Allow } else { Effect::Deny };
            let cause = if granted {
                Cause::Granted
            } else {
                Cause::NoGrant
            };
            (
                effect,
                cause,
                reason(granted, steps).into_iter().collect(),
                Vec::new(),
            )
        }
        Err(error) => (
            Effect::Deny,
            Cause::Error,
            Vec::new(),
            vec![DecisionError {
                kind: ErrorKind::Relation,
                statement: Arc::from(asked.action.as_str()),
                message: error.to_string(),
            }],
        ),
    };
    let decision = Decision {
        decision: effect,
        cause,
        reasons,
        strategy: None,
        forbids: Vec::new(),
        errors,
        revision: Revision {
            bundle,
            data: None,
            tuples: Some(revision),
        },
        trace_id: String::new(),
        explanation: None,
    };
    let (_, decision) = path.record(asked.request(), decision, user_agent).await;
    Ok(Answered {
        answer: result,
        revision,
        trace_id: decision.trace_id,
    })
}

/// The tenant's relation index, at least as fresh as `at_least`.
pub async fn index(
    path: &DecisionPath<'_>,
    tenant: &TenantId,
    at_least: Option<u64>,
) -> Result<Arc<Relations>, ApiError> {
    let state = path.state();
    // This question's snapshot first; when it is behind the demanded revision, the newest one
    // the catch-up publishes.
    let lookup = |policies: &PolicySet| -> Result<Arc<Relations>, ApiError> {
        let Some(snapshot) = policies.get(tenant) else {
            return Err(ApiError::not_found(
                "unknown_tenant",
                format!("tenant `{tenant}` is not loaded"),
            ));
        };
        if snapshot.is_suspended() {
            return Err(ApiError::forbidden(
                "tenant_suspended",
                format!("tenant `{tenant}` is suspended"),
            ));
        }
        snapshot.relations().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_model",
                format!(
                    "tenant `{tenant}` has no relationship model; name one with `model:` in its bundle"
                ),
            )
        })
    };
    let relations = lookup(path.policies())?;
    let Some(wanted) = at_least else {
        return Ok(relations);
    };
    if relations.revision() >= wanted {
        return Ok(relations);
    }
    // Behind the demanded revision: catch up with the store (another node wrote, and its
    // notification has not arrived yet), waiting a little for the write to become visible.
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
    loop {
        refresh_tenant(state, tenant).await;
        let relations = lookup(&state.policies())?;
        if relations.revision() >= wanted {
            return Ok(relations);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "revision_not_seen",
                format!(
                    "tenant `{tenant}` is at revision {} here, older than the demanded {wanted}; a revision token comes from a write of this tenant",
                    relations.revision()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /v1/relations/check`.
pub async fn check(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CheckBody>,
) -> Result<Json<Value>, ApiError> {
    run_check(&state, &headers, body).await.map(Json)
}

/// The work of [`check`], shared with gRPC.
pub async fn run_check(
    state: &AppState,
    headers: &HeaderMap,
    body: CheckBody,
) -> Result<Value, ApiError> {
    let path = DecisionPath::new(state, "relations");
    let request = CheckRequest {
        user: parse_user(&body.user)?,
        relation: body.relation,
        object: parse_object(&body.object)?,
        context: body.context,
        contextual_tuples: body.contextual_tuples,
    };
    check_contextual(&request.contextual_tuples)?;
    let at_least = parse_token(&body.consistency)?;
    let asked = Asked {
        tenant: body.tenant,
        user: body.user,
        action: request.relation.clone(),
        resource: Resource::new(&request.object.object_type, &request.object.id),
        context: request.context.clone(),
    };
    let answered = answer(
        &path,
        headers,
        at_least,
        asked,
        move |relations| relations.read().check(&request),
        |result| (result.allowed, result.path.clone()),
    )
    .await?;
    Ok(json!({
        "allowed": answered.answer.allowed,
        "path": answered.answer.path,
        "revision": answered.revision.to_string(),
        "trace_id": answered.trace_id,
    }))
}

/// `POST /v1/relations/check/batch`: each check answers on its own (an error in one is that
/// check's answer, not the batch's).
pub async fn check_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<Json<Value>, ApiError> {
    run_check_batch(&state, &headers, body).await.map(Json)
}

/// The work of [`check_batch`], shared with gRPC.
pub async fn run_check_batch(
    state: &AppState,
    headers: &HeaderMap,
    body: BatchBody,
) -> Result<Value, ApiError> {
    if body.checks.len() > MAX_BATCH_CHECK_ITEMS {
        return Err(ApiError::bad_request(
            "too_many",
            format!(
                "{} checks in one batch, more than the limit of {MAX_BATCH_CHECK_ITEMS}",
                body.checks.len()
            ),
        ));
    }
    let mut requests = Vec::with_capacity(body.checks.len());
    for item in &body.checks {
        check_contextual(&item.contextual_tuples)?;
        requests.push(CheckRequest {
            user: parse_user(&item.user)?,
            relation: item.relation.clone(),
            object: parse_object(&item.object)?,
            context: item.context.clone(),
            contextual_tuples: item.contextual_tuples.clone(),
        });
    }
    let at_least = parse_token(&body.consistency)?;
    let path = DecisionPath::new(state, "relations");
    // The batch is one decision record: the checks, each named in its answer.
    let asked = Asked {
        tenant: body.tenant,
        user: requests
            .first()
            .map(|request| request.user.to_string())
            .unwrap_or_default(),
        action: "batch-check".to_owned(),
        resource: Resource::new("checks", requests.len().to_string()),
        context: Map::new(),
    };
    let answered = answer(
        &path,
        headers,
        at_least,
        asked,
        move |relations| Ok(relations.read().batch_check(&requests)),
        batch_summary,
    )
    .await?;
    let revision = answered.revision;
    let results: Vec<Value> = answered
        .answer
        .into_iter()
        .zip(&body.checks)
        .map(|(answer, item)| {
            let mut value = match answer {
                Ok(result) => json!({ "allowed": result.allowed, "path": result.path }),
                Err(error) => json!({
                    "allowed": false,
                    "error": { "code": query_error_code(&error), "message": error.to_string() },
                }),
            };
            if let Some(id) = &item.correlation_id {
                value["correlation_id"] = Value::String(id.clone());
            }
            value
        })
        .collect();
    Ok(
        json!({ "results": results, "revision": revision.to_string(), "trace_id": answered.trace_id }),
    )
}

/// `POST /v1/relations/list-objects`: every object of the type the user has the relation with,
/// sorted, in pages (never silently truncated: a `continuation` says there is more).
pub async fn list_objects(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ListObjectsBody>,
) -> Result<Json<Value>, ApiError> {
    run_list_objects(&state, &headers, body).await.map(Json)
}

/// The work of [`list_objects`], shared with gRPC.
pub async fn run_list_objects(
    state: &AppState,
    headers: &HeaderMap,
    body: ListObjectsBody,
) -> Result<Value, ApiError> {
    let user = parse_user(&body.user)?;
    check_contextual(&body.contextual_tuples)?;
    let page_size = body.page_size.unwrap_or(MAX_PAGE);
    if page_size == 0 || page_size > MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            format!("page_size must be 1 to {MAX_PAGE}"),
        ));
    }
    let at_least = parse_token(&body.consistency)?;
    let path = DecisionPath::new(state, "relations");
    let asked = Asked {
        tenant: body.tenant,
        user: body.user,
        action: format!("list-objects:{}", body.relation),
        resource: Resource::new(&body.object_type, "*"),
        context: body.context.clone(),
    };
    let (relation, object_type, context, contextual) = (
        body.relation,
        body.object_type,
        body.context,
        body.contextual_tuples,
    );
    let answered = answer(
        &path,
        headers,
        at_least,
        asked,
        move |relations| {
            relations
                .read()
                .list_objects(&user, &relation, &object_type, &context, &contextual)
        },
        |objects| (true, vec![format!("{} objects", objects.len())]),
    )
    .await?;
    let revision = answered.revision;
    let names: Vec<String> = answered.answer.iter().map(ToString::to_string).collect();
    let start = match &body.continuation {
        // Pages continue after the last object of the previous page, in sorted order.
        Some(after) => names.partition_point(|name| name.as_str() <= after.as_str()),
        None => 0,
    };
    let end = names.len().min(start + page_size);
    let page = &names[start..end];
    let continuation = (end < names.len()).then(|| page.last().cloned()).flatten();
    Ok(json!({
        "objects": page,
        "continuation": continuation,
        "revision": revision.to_string(),
        "trace_id": answered.trace_id,
    }))
}

/// `POST /v1/relations/list-users`.
pub async fn list_users(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ListUsersBody>,
) -> Result<Json<Value>, ApiError> {
    run_list_users(&state, &headers, body).await.map(Json)
}

/// The work of [`list_users`], shared with gRPC.
pub async fn run_list_users(
    state: &AppState,
    headers: &HeaderMap,
    body: ListUsersBody,
) -> Result<Value, ApiError> {
    let object = parse_object(&body.object)?;
    check_contextual(&body.contextual_tuples)?;
    if body.user_filters.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "user_filters needs at least one type, such as `user` or `group#member`",
        ));
    }
    let filters: Vec<UserFilter> = body
        .user_filters
        .iter()
        .map(|filter| match filter.split_once('#') {
            Some((user_type, relation)) => UserFilter {
                user_type: user_type.to_owned(),
                relation: Some(relation.to_owned()),
            },
            None => UserFilter {
                user_type: filter.clone(),
                relation: None,
            },
        })
        .collect();
    let at_least = parse_token(&body.consistency)?;
    let path = DecisionPath::new(state, "relations");
    let asked = Asked {
        tenant: body.tenant,
        user: body.user_filters.join(","),
        action: format!("list-users:{}", body.relation),
        resource: Resource::new(&object.object_type, &object.id),
        context: body.context.clone(),
    };
    let (relation, context, contextual) = (body.relation, body.context, body.contextual_tuples);
    let answered = answer(
        &path,
        headers,
        at_least,
        asked,
        move |relations| {
            relations
                .read()
                .list_users(&object, &relation, &filters, &context, &contextual)
        },
        |users| (true, vec![format!("{} users", users.len())]),
    )
    .await?;
    let users: Vec<String> = answered.answer.iter().map(ToString::to_string).collect();
    Ok(json!({
        "users": users,
        "revision": answered.revision.to_string(),
        "trace_id": answered.trace_id,
    }))
}

/// `POST /v1/relations/expand`: the userset tree, in OpenFGA's shape.
pub async fn expand(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ExpandBody>,
) -> Result<Json<Value>, ApiError> {
    run_expand(&state, &headers, body).await.map(Json)
}

/// The work of [`expand`], shared with gRPC.
pub async fn run_expand(
    state: &AppState,
    headers: &HeaderMap,
    body: ExpandBody,
) -> Result<Value, ApiError> {
    let object = parse_object(&body.object)?;
    check_contextual(&body.contextual_tuples)?;
    let at_least = parse_token(&body.consistency)?;
    let path = DecisionPath::new(state, "relations");
    let asked = Asked {
        tenant: body.tenant,
        user: "*".to_owned(),
        action: format!("expand:{}", body.relation),
        resource: Resource::new(&object.object_type, &object.id),
        context: Map::new(),
    };
    let (relation, contextual) = (body.relation, body.contextual_tuples);
    let answered = answer(
        &path,
        headers,
        at_least,
        asked,
        move |relations| relations.read().expand(&object, &relation, &contextual),
        |_| (true, Vec::new()),
    )
    .await?;
    let mut tree = answered.answer;
    if let Value::Object(map) = &mut tree {
        map.insert(
            "revision".to_owned(),
            Value::String(answered.revision.to_string()),
        );
        map.insert("trace_id".to_owned(), Value::String(answered.trace_id));
    }
    Ok(tree)
}

/// How a batch of relationship checks is recorded: as one answered decision whose reason says
/// how many of the checks hold.
#[allow(
    clippy::ptr_arg,
    reason = "passed as the summary function, which receives the answer as it is"
)]
pub(crate) fn batch_summary(
    answers: &Vec<Result<portcullis_policy::rebac::CheckResult, QueryError>>,
) -> (bool, Vec<String>) {
    let granted = answers
        .iter()
        .filter(|answer| matches!(answer, Ok(result) if result.allowed))
        .count();
    (
        true,
        vec![format!("{granted} of {} checks hold", answers.len())],
    )
}
