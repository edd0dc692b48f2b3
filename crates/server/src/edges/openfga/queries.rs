//! Check, batch check, expand, list objects (plain and streamed) and list users in OpenFGA's
//! shapes, answered by the relationship queries of `edges::relations` (one decision each,
//! recorded and counted).

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::{Resource, TenantId};
use portcullis_policy::Relations;
use portcullis_policy::rebac::{
    CheckRequest, MAX_BATCH_CHECK_ITEMS, MAX_CONTEXTUAL_TUPLES, ObjectRef, QueryError, Tuple, User,
    UserFilter,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Consistency, EDGE, FgaError, FgaJson, authorize_read, check_model, demanded, query_failure,
    store_tenant,
};
use crate::decision::DecisionPath;
use crate::edges::api::user_agent;
use crate::edges::relations::{Answered, Asked, answer_authenticated};

use crate::state::AppState;

/// `{"user", "relation", "object"}` of a query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TupleKey {
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) relation: Option<String>,
    #[serde(default)]
    pub(super) object: Option<String>,
}

/// `{"tuple_keys": [...]}`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TupleKeys {
    #[serde(default)]
    pub(super) tuple_keys: Vec<Tuple>,
}

#[derive(Debug, Deserialize)]
pub struct CheckBody {
    tuple_key: TupleKey,
    #[serde(default)]
    contextual_tuples: Option<TupleKeys>,
    #[serde(default)]
    authorization_model_id: Option<String>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    consistency: Option<Consistency>,
}

#[derive(Debug, Deserialize)]
pub struct BatchCheckBody {
    checks: Vec<BatchCheckItem>,
    #[serde(default)]
    authorization_model_id: Option<String>,
    #[serde(default)]
    consistency: Option<Consistency>,
}

#[derive(Debug, Deserialize)]
struct BatchCheckItem {
    tuple_key: TupleKey,
    #[serde(default)]
    contextual_tuples: Option<TupleKeys>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    correlation_id: String,
}

#[derive(Debug, Deserialize)]
pub struct ExpandBody {
    tuple_key: TupleKey,
    #[serde(default)]
    authorization_model_id: Option<String>,
    #[serde(default)]
    contextual_tuples: Option<TupleKeys>,
    #[serde(default)]
    consistency: Option<Consistency>,
}

#[derive(Debug, Deserialize)]
pub struct ListObjectsBody {
    #[serde(rename = "type")]
    object_type: String,
    relation: String,
    user: String,
    #[serde(default)]
    authorization_model_id: Option<String>,
    #[serde(default)]
    contextual_tuples: Option<TupleKeys>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    consistency: Option<Consistency>,
}

#[derive(Debug, Deserialize)]
struct FgaObject {
    #[serde(rename = "type")]
    object_type: String,
    id: String,
}

#[derive(Debug, Deserialize)]
struct FgaUserFilter {
    #[serde(rename = "type")]
    user_type: String,
    #[serde(default)]
    relation: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListUsersBody {
    object: FgaObject,
    relation: String,
    user_filters: Vec<FgaUserFilter>,
    #[serde(default)]
    authorization_model_id: Option<String>,
    /// A plain list here (not `{"tuple_keys": …}`), as in OpenFGA.
    #[serde(default)]
    contextual_tuples: Option<Vec<Tuple>>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    consistency: Option<Consistency>,
}

fn required<'a>(value: Option<&'a String>, field: &str) -> Result<&'a str, FgaError> {
    value
        .map(String::as_str)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| FgaError::validation(format!("`{field}` is required")))
}

/// A relation (or type) name by OpenFGA's rules: 1 to 256 bytes without whitespace, `:`, `#`,
/// `@` or `*`. Checked before the query, so that a name no model could define is the request's
/// error (the whole request's, in a batch), not a per-check answer.
fn relation_name(text: &str, field: &str) -> Result<String, FgaError> {
    portcullis_policy::rebac::parse_relation(text)
        .map_err(|error| FgaError::validation(format!("`{field}`: {error}")))
}

fn parse_user(text: &str) -> Result<User, FgaError> {
    text.parse()
        .map_err(|error: portcullis_policy::rebac::ParseError| {
            FgaError::new(StatusCode::BAD_REQUEST, "invalid_user", error.to_string())
        })
}

fn parse_object(text: &str) -> Result<ObjectRef, FgaError> {
    text.parse()
        .map_err(|error: portcullis_policy::rebac::ParseError| {
            FgaError::new(
                StatusCode::BAD_REQUEST,
                "invalid_object_format",
                error.to_string(),
            )
        })
}

fn contextual(tuples: Option<TupleKeys>) -> Result<Vec<Tuple>, FgaError> {
    let tuples = tuples.map(|keys| keys.tuple_keys).unwrap_or_default();
    limit_contextual(&tuples)?;
    Ok(tuples)
}

fn limit_contextual(tuples: &[Tuple]) -> Result<(), FgaError> {
    if tuples.len() > MAX_CONTEXTUAL_TUPLES {
        return Err(FgaError::new(
            StatusCode::BAD_REQUEST,
            "exceeded_entity_limit",
            format!(
                "{} contextual tuples, more than the limit of {MAX_CONTEXTUAL_TUPLES}",
                tuples.len()
            ),
        ));
    }
    Ok(())
}

/// What every query does first: the store found, the caller authorized for it, the model id
/// checked and the consistency demand read.
async fn prepare(
    state: &AppState,
    path: &DecisionPath<'_>,
    headers: &HeaderMap,
    store: &str,
    model: Option<&str>,
    consistency: Option<Consistency>,
) -> Result<(TenantId, Option<u64>), FgaError> {
    let tenant = store_tenant(state, store).await?;
    authorize_read(path, headers, &tenant).await?;
    let has_model = state
        .policies()
        .get(&tenant)
        .is_some_and(|snapshot| snapshot.model().is_some());
    if !has_model {
        return Err(FgaError::new(
            StatusCode::BAD_REQUEST,
            "latest_authorization_model_not_found",
            format!("store `{tenant}` has no authorization model; write one first"),
        ));
    }
    check_model(state, &tenant, model).await?;
    let at_least = demanded(state, &tenant, consistency).await?;
    Ok((tenant, at_least))
}

/// Runs a query through the decision module and renders its failure in OpenFGA's terms.
async fn run<T, Q, O>(
    path: &DecisionPath<'_>,
    headers: &HeaderMap,
    at_least: Option<u64>,
    asked: Asked,
    query: Q,
    outcome: O,
) -> Result<Answered<T>, FgaError>
where
    T: Send + 'static,
    Q: FnOnce(&Relations) -> Result<T, QueryError> + Send + 'static,
    O: FnOnce(&T) -> (bool, Vec<String>),
{
    let answered =
        answer_authenticated(path, user_agent(headers), at_least, asked, query, outcome).await?;
    let answer = answered.answer.map_err(|error| query_failure(&error))?;
    Ok(Answered {
        answer,
        revision: answered.revision,
        trace_id: answered.trace_id,
    })
}

fn asked(tenant: &TenantId, user: &str, action: String, resource: Resource) -> Asked {
    Asked {
        tenant: tenant.clone(),
        user: user.to_owned(),
        action,
        resource,
        context: Map::new(),
    }
}

/// `POST /stores/{store_id}/check`.
pub async fn check(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<CheckBody>,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let user = required(body.tuple_key.user.as_ref(), "tuple_key.user")?.to_owned();
    let relation = relation_name(
        required(body.tuple_key.relation.as_ref(), "tuple_key.relation")?,
        "tuple_key.relation",
    )?;
    let object = required(body.tuple_key.object.as_ref(), "tuple_key.object")?.to_owned();
    let request = CheckRequest {
        user: parse_user(&user)?,
        relation,
        object: parse_object(&object)?,
        context: body.context.unwrap_or_default(),
        contextual_tuples: contextual(body.contextual_tuples)?,
    };
    let (tenant, at_least) = prepare(
        &state,
        &path,
        &headers,
        &store,
        body.authorization_model_id.as_deref(),
        body.consistency,
    )
    .await?;
    let mut asked = asked(
        &tenant,
        &user,
        request.relation.clone(),
        Resource::new(&request.object.object_type, &request.object.id),
    );
    asked.context = request.context.clone();
    let answered = run(
        &path,
        &headers,
        at_least,
        asked,
        move |relations| relations.read().check(&request),
        |result| (result.allowed, result.path.clone()),
    )
    .await?;
    Ok(Json(
        json!({ "allowed": answered.answer.allowed, "resolution": "" }),
    ))
}

/// `POST /stores/{store_id}/batch-check`: each check answers on its own, keyed by its
/// correlation id; an error in one is that check's answer.
pub async fn batch_check(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<BatchCheckBody>,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    if body.checks.is_empty() {
        return Err(FgaError::validation("`checks` needs at least one check"));
    }
    if body.checks.len() > MAX_BATCH_CHECK_ITEMS {
        return Err(FgaError::validation(format!(
            "{} checks in one batch, more than the limit of {MAX_BATCH_CHECK_ITEMS}",
            body.checks.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut requests = Vec::with_capacity(body.checks.len());
    let mut ids = Vec::with_capacity(body.checks.len());
    for item in body.checks {
        if item.correlation_id.is_empty() || !seen.insert(item.correlation_id.clone()) {
            return Err(FgaError::validation(format!(
                "correlation_id `{}` is empty or not unique in the batch",
                item.correlation_id
            )));
        }
        let user = required(item.tuple_key.user.as_ref(), "tuple_key.user")?;
        let relation = relation_name(
            required(item.tuple_key.relation.as_ref(), "tuple_key.relation")?,
            "tuple_key.relation",
        )?;
        let object = required(item.tuple_key.object.as_ref(), "tuple_key.object")?;
        requests.push(CheckRequest {
            user: parse_user(user)?,
            relation,
            object: parse_object(object)?,
            context: item.context.unwrap_or_default(),
            contextual_tuples: contextual(item.contextual_tuples)?,
        });
        ids.push(item.correlation_id);
    }
    let (tenant, at_least) = prepare(
        &state,
        &path,
        &headers,
        &store,
        body.authorization_model_id.as_deref(),
        body.consistency,
    )
    .await?;
    let first = requests
        .first()
        .map(|request| request.user.to_string())
        .unwrap_or_default();
    let asked = asked(
        &tenant,
        &first,
        "batch-check".to_owned(),
        Resource::new("checks", requests.len().to_string()),
    );
    let answered = run(
        &path,
        &headers,
        at_least,
        asked,
        move |relations| Ok(relations.read().batch_check(&requests)),
        crate::edges::relations::batch_summary,
    )
    .await?;
    let mut result = Map::new();
    for (id, answer) in ids.into_iter().zip(answered.answer) {
        let value = match answer {
            Ok(check) => json!({ "allowed": check.allowed }),
            Err(error) => {
                let failure = query_failure(&error);
                let error = if failure.status.is_server_error() {
                    json!({ "internal_error": "internal_error", "message": failure.message })
                } else {
                    json!({ "input_error": failure.code, "message": failure.message })
                };
                json!({ "allowed": false, "error": error })
            }
        };
        result.insert(id, value);
    }
    Ok(Json(json!({ "result": result })))
}

/// `POST /stores/{store_id}/expand`.
pub async fn expand(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<ExpandBody>,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let relation = relation_name(
        required(body.tuple_key.relation.as_ref(), "tuple_key.relation")?,
        "tuple_key.relation",
    )?;
    let object = parse_object(required(
        body.tuple_key.object.as_ref(),
        "tuple_key.object",
    )?)?;
    let contextual = contextual(body.contextual_tuples)?;
    let (tenant, at_least) = prepare(
        &state,
        &path,
        &headers,
        &store,
        body.authorization_model_id.as_deref(),
        body.consistency,
    )
    .await?;
    let asked = asked(
        &tenant,
        "*",
        format!("expand:{relation}"),
        Resource::new(&object.object_type, &object.id),
    );
    let answered = run(
        &path,
        &headers,
        at_least,
        asked,
        move |relations| relations.read().expand(&object, &relation, &contextual),
        |_| (true, Vec::new()),
    )
    .await?;
    Ok(Json(answered.answer))
}

/// The objects of a list-objects query.
async fn objects_of(
    state: &AppState,
    store: &str,
    headers: &HeaderMap,
    body: ListObjectsBody,
) -> Result<Vec<String>, FgaError> {
    let path = DecisionPath::new(state, EDGE);
    let user = parse_user(&body.user)?;
    relation_name(&body.relation, "relation")?;
    relation_name(&body.object_type, "type")?;
    let contextual = contextual(body.contextual_tuples)?;
    let context = body.context.unwrap_or_default();
    let (tenant, at_least) = prepare(
        state,
        &path,
        headers,
        store,
        body.authorization_model_id.as_deref(),
        body.consistency,
    )
    .await?;
    let mut asked = asked(
        &tenant,
        &body.user,
        format!("list-objects:{}", body.relation),
        Resource::new(&body.object_type, "*"),
    );
    asked.context = context.clone();
    let (relation, object_type) = (body.relation, body.object_type);
    let answered = run(
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
    Ok(answered.answer.iter().map(ToString::to_string).collect())
}

/// `POST /stores/{store_id}/list-objects`.
pub async fn list_objects(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<ListObjectsBody>,
) -> Result<Json<Value>, FgaError> {
    let objects = objects_of(&state, &store, &headers, body).await?;
    Ok(Json(json!({ "objects": objects })))
}

/// `POST /stores/{store_id}/streamed-list-objects`: the same objects, one JSON object per line
/// (`{"result": {"object": "…"}}`), as OpenFGA streams them. An error before the first object
/// is answered as an error; the answer is computed whole, then streamed.
pub async fn streamed_list_objects(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<ListObjectsBody>,
) -> Result<Response, FgaError> {
    let objects = objects_of(&state, &store, &headers, body).await?;
    let mut text = String::new();
    for object in objects {
        text.push_str(&json!({ "result": { "object": object } }).to_string());
        text.push('\n');
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from(text),
    )
        .into_response())
}

/// A user in OpenFGA's list-users shape.
fn fga_user(user: &User) -> Value {
    match user {
        User::Object(object) => {
            json!({ "object": { "type": object.object_type, "id": object.id } })
        }
        User::Userset { object, relation } => json!({
            "userset": { "type": object.object_type, "id": object.id, "relation": relation }
        }),
        User::Wildcard(user_type) => json!({ "wildcard": { "type": user_type } }),
    }
}

/// `POST /stores/{store_id}/list-users`.
pub async fn list_users(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<ListUsersBody>,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let object = parse_object(&format!("{}:{}", body.object.object_type, body.object.id))?;
    if body.user_filters.len() != 1 {
        return Err(FgaError::validation(
            "user_filters needs exactly one filter, such as {\"type\": \"user\"}",
        ));
    }
    relation_name(&body.relation, "relation")?;
    let filters = body
        .user_filters
        .iter()
        .map(|filter| {
            Ok(UserFilter {
                user_type: relation_name(&filter.user_type, "user_filters.type")?,
                relation: filter
                    .relation
                    .as_deref()
                    .filter(|r| !r.is_empty())
                    .map(|r| relation_name(r, "user_filters.relation"))
                    .transpose()?,
            })
        })
        .collect::<Result<Vec<UserFilter>, FgaError>>()?;
    let contextual = body.contextual_tuples.unwrap_or_default();
    limit_contextual(&contextual)?;
    let context = body.context.unwrap_or_default();
    let (tenant, at_least) = prepare(
        &state,
        &path,
        &headers,
        &store,
        body.authorization_model_id.as_deref(),
        body.consistency,
    )
    .await?;
    let shown: Vec<String> = filters
        .iter()
        .map(|filter| match &filter.relation {
            Some(relation) => format!("{}#{relation}", filter.user_type),
            None => filter.user_type.clone(),
        })
        .collect();
    let mut asked = asked(
        &tenant,
        &shown.join(","),
        format!("list-users:{}", body.relation),
        Resource::new(&object.object_type, &object.id),
    );
    asked.context = context.clone();
    let relation = body.relation;
    let answered = run(
        &path,
        &headers,
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
    let users: Vec<Value> = answered.answer.iter().map(fga_user).collect();
    Ok(Json(json!({ "users": users })))
}
