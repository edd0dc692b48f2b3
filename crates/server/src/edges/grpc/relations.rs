//! `portcullis.v1.Relations` and `portcullis.v1.RelationTuples`: the relationship API over gRPC.
//!
//! Each call turns its message into the JSON body the HTTP endpoint takes, so the two edges
//! share one validation and one implementation ([`crate::rebac`]); answers go the other way.
//! Queries are served on the public listener; tuple writes and reads only on the admin
//! listener, behind an admin token authorized by the `system` tenant.

use std::pin::Pin;
use std::sync::Arc;

use axum::http::HeaderMap;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tonic::{Request, Response, Status};

use super::convert::{json_to_struct, struct_to_json};
use super::{pb, to_status};
use crate::error::ApiError;
use crate::state::AppState;

/// The implementation of `portcullis.v1.Relations`.
#[derive(Debug, Clone)]
pub struct RelationService {
    state: Arc<AppState>,
}

impl RelationService {
    /// A service answering from `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        RelationService { state }
    }
}

/// The implementation of `portcullis.v1.RelationTuples` (admin listener).
#[derive(Debug, Clone)]
pub struct TupleService {
    state: Arc<AppState>,
}

impl TupleService {
    /// A service writing through `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        TupleService { state }
    }
}

fn headers<T>(request: &Request<T>) -> HeaderMap {
    request.metadata().clone().into_headers()
}

fn status(error: ApiError) -> Status {
    to_status(&error)
}

fn context(value: Option<&prost_types::Struct>, field: &str) -> Result<Map<String, Value>, Status> {
    match value {
        Some(value) => Ok(struct_to_json(value, field)?),
        None => Ok(Map::new()),
    }
}

fn tuple_json(tuple: &pb::RelationTuple, field: &str) -> Result<Value, Status> {
    let mut value =
        json!({ "user": tuple.user, "relation": tuple.relation, "object": tuple.object });
    if let Some(condition) = &tuple.condition {
        value["condition"] = json!({
            "name": condition.name,
            "context": context(condition.context.as_ref(), &format!("{field}.condition.context"))?,
        });
    }
    Ok(value)
}

fn tuples_json(tuples: &[pb::RelationTuple], field: &str) -> Result<Value, Status> {
    tuples
        .iter()
        .enumerate()
        .map(|(index, tuple)| tuple_json(tuple, &format!("{field}[{index}]")))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn tuple_message(value: &Value) -> pb::RelationTuple {
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    let condition = match &value["condition"] {
        Value::String(name) => Some(pb::TupleCondition {
            name: name.clone(),
            context: value["context"].as_object().map(json_to_struct),
        }),
        Value::Object(condition) => Some(pb::TupleCondition {
            name: condition
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            context: condition
                .get("context")
                .and_then(Value::as_object)
                .map(json_to_struct),
        }),
        _ => None,
    };
    pb::RelationTuple {
        user: text("user"),
        relation: text("relation"),
        object: text("object"),
        condition,
    }
}

fn consistency(value: Option<&pb::Consistency>) -> Value {
    match value {
        Some(c) if !c.at_least.is_empty() => json!({ "at_least": c.at_least }),
        _ => json!({}),
    }
}

/// A JSON body in the HTTP endpoint's type (unknown or ill-typed values are its errors).
fn body<T: DeserializeOwned>(value: Value) -> Result<T, Status> {
    serde_json::from_value(value).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn check_body(message: &pb::RelationCheckRequest, field: &str) -> Result<Value, Status> {
    Ok(json!({
        "user": message.user,
        "relation": message.relation,
        "object": message.object,
        "context": context(message.context.as_ref(), &format!("{field}.context"))?,
        "contextual_tuples": tuples_json(&message.contextual_tuples, &format!("{field}.contextual_tuples"))?,
    }))
}

fn list_objects_body(message: &pb::ListObjectsRequest) -> Result<Value, Status> {
    let mut value = json!({
        "tenant": message.tenant,
        "user": message.user,
        "relation": message.relation,
        "type": message.r#type,
        "context": context(message.context.as_ref(), "context")?,
        "contextual_tuples": tuples_json(&message.contextual_tuples, "contextual_tuples")?,
        "consistency": consistency(message.consistency.as_ref()),
    });
    if message.page_size != 0 {
        value["page_size"] = json!(message.page_size);
    }
    if !message.continuation.is_empty() {
        value["continuation"] = json!(message.continuation);
    }
    Ok(value)
}

type ObjectStream =
    Pin<Box<dyn Stream<Item = Result<pb::StreamedListObjectsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::relations_server::Relations for RelationService {
    async fn check(
        &self,
        request: Request<pb::RelationCheckRequest>,
    ) -> Result<Response<pb::RelationCheckResponse>, Status> {
        let headers = headers(&request);
        let message = request.into_inner();
        let mut value = check_body(&message, "")?;
        value["tenant"] = json!(message.tenant);
        value["consistency"] = consistency(message.consistency.as_ref());
        let answer = crate::edges::relations::run_check(&self.state, &headers, body(value)?)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RelationCheckResponse {
            allowed: answer["allowed"].as_bool().unwrap_or(false),
            path: strings(&answer["path"]),
            revision: text(&answer["revision"]),
        }))
    }

    async fn batch_check(
        &self,
        request: Request<pb::RelationBatchCheckRequest>,
    ) -> Result<Response<pb::RelationBatchCheckResponse>, Status> {
        let headers = headers(&request);
        let message = request.into_inner();
        let checks = message
            .checks
            .iter()
            .enumerate()
            .map(|(index, check)| {
                let mut value = check_body(check, &format!("checks[{index}]"))?;
                if !check.correlation_id.is_empty() {
                    value["correlation_id"] = json!(check.correlation_id);
                }
                Ok(value)
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let value = json!({
            "tenant": message.tenant,
            "checks": checks,
            "consistency": consistency(message.consistency.as_ref()),
        });
        let answer = crate::edges::relations::run_check_batch(&self.state, &headers, body(value)?)
            .await
            .map_err(status)?;
        let results = answer["results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .map(|result| pb::RelationBatchCheckResult {
                        allowed: result["allowed"].as_bool().unwrap_or(false),
                        path: strings(&result["path"]),
                        error_code: text(&result["error"]["code"]),
                        error_message: text(&result["error"]["message"]),
                        correlation_id: text(&result["correlation_id"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(pb::RelationBatchCheckResponse {
            results,
            revision: text(&answer["revision"]),
        }))
    }

    async fn list_objects(
        &self,
        request: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<pb::ListObjectsResponse>, Status> {
        let headers = headers(&request);
        let value = list_objects_body(request.get_ref())?;
        let answer = crate::edges::relations::run_list_objects(&self.state, &headers, body(value)?)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListObjectsResponse {
            objects: strings(&answer["objects"]),
            continuation: text(&answer["continuation"]),
            revision: text(&answer["revision"]),
        }))
    }

    type StreamedListObjectsStream = ObjectStream;

    async fn streamed_list_objects(
        &self,
        request: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<Self::StreamedListObjectsStream>, Status> {
        let headers = headers(&request);
        let mut message = request.into_inner();
        // Every page, in order: the stream is the whole answer.
        message.page_size = u32::try_from(crate::edges::relations::MAX_PAGE).unwrap_or(u32::MAX);
        let mut objects = Vec::new();
        loop {
            let value = list_objects_body(&message)?;
            let answer =
                crate::edges::relations::run_list_objects(&self.state, &headers, body(value)?)
                    .await
                    .map_err(status)?;
            objects.extend(strings(&answer["objects"]));
            match answer["continuation"].as_str() {
                Some(next) => message.continuation = next.to_owned(),
                None => break,
            }
        }
        let stream = futures_util::stream::iter(
            objects
                .into_iter()
                .map(|object| Ok(pb::StreamedListObjectsResponse { object })),
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let headers = headers(&request);
        let message = request.into_inner();
        let value = json!({
            "tenant": message.tenant,
            "object": message.object,
            "relation": message.relation,
            "user_filters": message.user_filters,
            "context": context(message.context.as_ref(), "context")?,
            "contextual_tuples": tuples_json(&message.contextual_tuples, "contextual_tuples")?,
            "consistency": consistency(message.consistency.as_ref()),
        });
        let answer = crate::edges::relations::run_list_users(&self.state, &headers, body(value)?)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListUsersResponse {
            users: strings(&answer["users"]),
            revision: text(&answer["revision"]),
        }))
    }

    async fn expand(
        &self,
        request: Request<pb::ExpandRequest>,
    ) -> Result<Response<prost_types::Struct>, Status> {
        let headers = headers(&request);
        let message = request.into_inner();
        let value = json!({
            "tenant": message.tenant,
            "object": message.object,
            "relation": message.relation,
            "contextual_tuples": tuples_json(&message.contextual_tuples, "contextual_tuples")?,
            "consistency": consistency(message.consistency.as_ref()),
        });
        let answer = crate::edges::relations::run_expand(&self.state, &headers, body(value)?)
            .await
            .map_err(status)?;
        let empty = Map::new();
        Ok(Response::new(json_to_struct(
            answer.as_object().unwrap_or(&empty),
        )))
    }
}

impl TupleService {
    async fn admin(
        &self,
        headers: &HeaderMap,
        tenant: &str,
        action: &str,
    ) -> Result<portcullis_core::TenantId, Status> {
        let admin = crate::admin::admin_for(&self.state, headers).map_err(status)?;
        let tenant = portcullis_core::TenantId::new(tenant)
            .map_err(|e| Status::invalid_argument(format!("tenant: {e}")))?;
        crate::admin::authorize(&self.state, &admin, action, tenant.as_str())
            .await
            .map_err(status)?;
        Ok(tenant)
    }
}

#[tonic::async_trait]
impl pb::relation_tuples_server::RelationTuples for TupleService {
    async fn write(
        &self,
        request: Request<pb::WriteTuplesRequest>,
    ) -> Result<Response<pb::WriteTuplesResponse>, Status> {
        let headers = headers(&request);
        let message = request.into_inner();
        let tenant = self
            .admin(&headers, &message.tenant, "admin:tuples.write")
            .await?;
        let value = json!({
            "writes": tuples_json(&message.writes, "writes")?,
            "deletes": tuples_json(&message.deletes, "deletes")?,
            "ignore_duplicates": message.ignore_duplicates,
            "ignore_missing": message.ignore_missing,
        });
        let revision = crate::snapshots::tuples::write_tuples(&self.state, &tenant, &body(value)?)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::WriteTuplesResponse {
            revision: revision.to_string(),
        }))
    }

    async fn read(
        &self,
        request: Request<pb::ReadTuplesRequest>,
    ) -> Result<Response<pb::ReadTuplesResponse>, Status> {
        let headers = headers(&request);
        let message = request.into_inner();
        let tenant = self
            .admin(&headers, &message.tenant, "admin:tuples.read")
            .await?;
        let query = crate::snapshots::tuples::ReadQuery {
            object: (!message.object.is_empty()).then_some(message.object),
            relation: (!message.relation.is_empty()).then_some(message.relation),
            user: (!message.user.is_empty()).then_some(message.user),
            page_size: None,
            continuation: (!message.continuation.is_empty()).then_some(message.continuation),
        };
        let page_size = if message.page_size == 0 {
            100
        } else {
            message.page_size
        };
        if page_size > 1000 {
            return Err(Status::invalid_argument("page_size must be 1 to 1000"));
        }
        let page = self
            .state
            .store
            .tenant(&tenant)
            .read_tuples(&query.filter(), query.continuation.as_deref(), page_size)
            .await
            .map_err(|e| status(crate::error::store_error(e)))?;
        Ok(Response::new(pb::ReadTuplesResponse {
            tuples: page
                .tuples
                .iter()
                .map(|tuple| tuple_message(&serde_json::to_value(tuple).unwrap_or_default()))
                .collect(),
            continuation: page.continuation.unwrap_or_default(),
        }))
    }

    async fn read_changes(
        &self,
        request: Request<pb::ReadChangesRequest>,
    ) -> Result<Response<pb::ReadChangesResponse>, Status> {
        let headers = headers(&request);
        let message = request.into_inner();
        let tenant = self
            .admin(&headers, &message.tenant, "admin:tuples.read")
            .await?;
        let page_size = if message.page_size == 0 {
            100
        } else {
            message.page_size
        };
        if page_size > 1000 {
            return Err(Status::invalid_argument("page_size must be 1 to 1000"));
        }
        let changes = self
            .state
            .store
            .tenant(&tenant)
            .tuple_changes(message.since, page_size)
            .await
            .map_err(|e| status(crate::error::store_error(e)))?;
        let next_since = changes.last().map_or(message.since, |c| c.revision);
        Ok(Response::new(pb::ReadChangesResponse {
            changes: changes
                .iter()
                .map(|change| pb::TupleChange {
                    revision: change.revision,
                    operation: match change.operation {
                        portcullis_store::TupleOperation::Write => "write".to_owned(),
                        portcullis_store::TupleOperation::Delete => "delete".to_owned(),
                    },
                    tuple: Some(tuple_message(
                        &serde_json::to_value(&change.tuple).unwrap_or_default(),
                    )),
                    changed_at_us: change.changed_at_us,
                })
                .collect(),
            next_since,
        }))
    }
}
