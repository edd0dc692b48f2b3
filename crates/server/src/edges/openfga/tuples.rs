//! Tuple writes and deletes, reads and the change feed in OpenFGA's shapes. Writes are the
//! admin API's (validated against the model, stored, applied, audited); reads are the store's.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use portcullis_policy::rebac::{MAX_TUPLES_PER_WRITE, Tuple};
use portcullis_store::{StoredTuple, TupleOperation};
use serde::Deserialize;
use serde_json::{Value, json};

use super::queries::TupleKey;
use super::{
    Consistency, EDGE, FgaError, FgaJson, FgaQuery, authorize_change, authorize_read, check_model,
    page_size, record, store_tenant,
};
use crate::admin::TuplesWrite;
use crate::decision::DecisionPath;
use crate::error::store_error;
use crate::snapshots::tuples::{ReadQuery, WriteBody};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct WriteRequest {
    #[serde(default)]
    writes: Option<Writes>,
    #[serde(default)]
    deletes: Option<Deletes>,
    #[serde(default)]
    authorization_model_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Writes {
    #[serde(default)]
    tuple_keys: Vec<Tuple>,
    /// `error` (the default) or `ignore`.
    #[serde(default)]
    on_duplicate: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Deletes {
    #[serde(default)]
    tuple_keys: Vec<Tuple>,
    /// `error` (the default) or `ignore`.
    #[serde(default)]
    on_missing: Option<String>,
}

/// `error` (false) or `ignore` (true); anything else is refused.
fn ignore(option: Option<&str>, field: &str) -> Result<bool, FgaError> {
    match option {
        None | Some("" | "error") => Ok(false),
        Some("ignore") => Ok(true),
        Some(other) => Err(FgaError::validation(format!(
            "`{field}` is `{other}`; it is `error` or `ignore`"
        ))),
    }
}

/// `POST /stores/{store_id}/write`: an administrative change (`admin:tuples.write`), recorded
/// in the audit log whatever its outcome.
pub async fn write(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<WriteRequest>,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let tenant = store_tenant(&state, &store).await?;
    let admin = authorize_change::<TuplesWrite>(&path, &headers, tenant.as_str()).await?;
    let outcome = async {
        check_model(&state, &tenant, body.authorization_model_id.as_deref()).await?;
        let (writes, on_duplicate) = body
            .writes
            .map(|w| (w.tuple_keys, w.on_duplicate))
            .unwrap_or_default();
        let (deletes, on_missing) = body
            .deletes
            .map(|d| (d.tuple_keys, d.on_missing))
            .unwrap_or_default();
        let count = writes.len() + deletes.len();
        if count == 0 {
            return Err(FgaError::validation(
                "the write has neither `writes.tuple_keys` nor `deletes.tuple_keys`",
            ));
        }
        if count > MAX_TUPLES_PER_WRITE {
            return Err(FgaError::new(
                StatusCode::BAD_REQUEST,
                "exceeded_entity_limit",
                format!(
                    "the number of write operations ({count}) exceeds the allowed limit of {MAX_TUPLES_PER_WRITE}"
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for tuple in writes.iter().chain(&deletes) {
            let key = format!("{}#{}@{}", tuple.object, tuple.relation, tuple.user);
            if !seen.insert(key) {
                return Err(FgaError::new(
                    StatusCode::BAD_REQUEST,
                    "cannot_allow_duplicate_tuples_in_one_request",
                    format!("duplicate tuple in one write: `{tuple}`"),
                ));
            }
        }
        let body = WriteBody {
            writes,
            deletes,
            ignore_duplicates: ignore(on_duplicate.as_deref(), "writes.on_duplicate")?,
            ignore_missing: ignore(on_missing.as_deref(), "deletes.on_missing")?,
        };
        crate::snapshots::tuples::write_tuples(&state, &tenant, &body)
            .await
            .map_err(FgaError::from)
    }
    .await;
    let status = outcome
        .as_ref()
        .map_or_else(|e| e.status, |_| StatusCode::OK);
    record(
        &state,
        tenant.as_str(),
        &admin,
        "POST /stores/{store_id}/write",
        format!("/stores/{tenant}/write"),
        status,
    )
    .await?;
    outcome?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
pub struct ReadRequest {
    #[serde(default)]
    tuple_key: Option<TupleKey>,
    #[serde(default)]
    page_size: Option<i64>,
    #[serde(default)]
    continuation_token: Option<String>,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "reads go to the store, which is always the latest"
    )]
    consistency: Option<Consistency>,
}

/// A stored tuple as OpenFGA's `TupleKey`.
fn tuple_key(tuple: &StoredTuple) -> Value {
    let mut key = json!({
        "user": tuple.user,
        "relation": tuple.relation,
        "object": tuple.object,
    });
    if let Some(name) = &tuple.condition {
        key["condition"] = json!({
            "name": name,
            "context": tuple.context.clone().unwrap_or_default(),
        });
    }
    key
}

/// Microseconds since the epoch as RFC 3339.
fn timestamp(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// `POST /stores/{store_id}/read`: stored tuples matching the key (object `type:` for every
/// object of a type), in pages of up to 100.
pub async fn read(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaJson(body): FgaJson<ReadRequest>,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let tenant = store_tenant(&state, &store).await?;
    authorize_read(&path, &headers, &tenant).await?;
    let size = page_size(body.page_size, 50, 100)?;
    let key = body.tuple_key.unwrap_or_default();
    let query = ReadQuery {
        object: key.object.filter(|o| !o.is_empty()),
        relation: key.relation.filter(|r| !r.is_empty()),
        user: key.user.filter(|u| !u.is_empty()),
        page_size: None,
        continuation: body.continuation_token.filter(|c| !c.is_empty()),
    };
    let page = state
        .store
        .tenant(&tenant)
        .read_tuples(
            &query.filter(),
            query.continuation.as_deref(),
            u32::try_from(size).unwrap_or(100),
        )
        .await
        .map_err(|error| match error {
            portcullis_store::StoreError::Invalid(message) => FgaError::new(
                StatusCode::BAD_REQUEST,
                "invalid_continuation_token",
                message,
            ),
            other => FgaError::from(store_error(other)),
        })?;
    // The store keeps no write time per tuple: the time of the read stands in for it.
    let now = state.now().to_string();
    let tuples: Vec<Value> = page
        .tuples
        .iter()
        .map(|tuple| json!({ "key": tuple_key(tuple), "timestamp": now }))
        .collect();
    Ok(Json(json!({
        "tuples": tuples,
        "continuation_token": page.continuation.unwrap_or_default(),
    })))
}

#[derive(Debug, Default, Deserialize)]
pub struct ChangesQuery {
    #[serde(default, rename = "type")]
    object_type: Option<String>,
    #[serde(default)]
    page_size: Option<i64>,
    #[serde(default)]
    continuation_token: Option<String>,
    #[serde(default)]
    start_time: Option<String>,
}

/// `GET /stores/{store_id}/changes`: the change log, oldest first, optionally of one object
/// type or from a time on. The continuation token is the data revision of the last change
/// seen, and is returned (unchanged) at the end of the log too, so a caller can poll with it.
pub async fn read_changes(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    FgaQuery(query): FgaQuery<ChangesQuery>,
) -> Result<Json<Value>, FgaError> {
    let path = DecisionPath::new(&state, EDGE);
    let tenant = store_tenant(&state, &store).await?;
    authorize_read(&path, &headers, &tenant).await?;
    let size = page_size(query.page_size, 50, 100)?;
    // The position in the log: every change up to revision `boundary`, and the first `skip`
    // changes after it, were seen (a page may end inside one write's changes).
    let (mut boundary, mut skip) = match query
        .continuation_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        None => (0, 0),
        Some(token) => {
            let (boundary, skip) = token.split_once('.').unwrap_or((token, "0"));
            match (boundary.parse::<i64>(), skip.parse::<usize>()) {
                (Ok(boundary), Ok(skip)) if boundary >= 0 => (boundary, skip),
                _ => {
                    return Err(FgaError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_continuation_token",
                        format!("`{token}` is not a continuation token of this feed"),
                    ));
                }
            }
        }
    };
    let start = match query.start_time.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<jiff::Timestamp>()
                .map_err(|error| {
                    FgaError::validation(format!("start_time `{text}` is not RFC 3339: {error}"))
                })?
                .as_microsecond(),
        ),
    };
    let object_type = query.object_type.filter(|t| !t.is_empty());
    let mut changes = Vec::new();
    // Filtered changes are skipped, page after page, until a page is full or the log ends.
    'pages: loop {
        let wanted = skip + size;
        let page = state
            .store
            .tenant(&tenant)
            .tuple_changes(boundary, u32::try_from(wanted).unwrap_or(u32::MAX))
            .await
            .map_err(|error| FgaError::from(store_error(error)))?;
        let ended = page.len() < wanted;
        for change in page.into_iter().skip(skip) {
            if changes.len() >= size {
                break 'pages;
            }
            if change.revision - 1 != boundary {
                boundary = change.revision - 1;
                skip = 0;
            }
            skip += 1;
            let matches_type = object_type
                .as_deref()
                .is_none_or(|wanted| change.tuple.object.split(':').next() == Some(wanted));
            let matches_time = start.is_none_or(|start| change.changed_at_us >= start);
            if matches_type && matches_time {
                let operation = match change.operation {
                    TupleOperation::Write => "TUPLE_OPERATION_WRITE",
                    TupleOperation::Delete => "TUPLE_OPERATION_DELETE",
                };
                changes.push(json!({
                    "tuple_key": tuple_key(&change.tuple),
                    "operation": operation,
                    "timestamp": timestamp(change.changed_at_us),
                }));
            }
        }
        if ended || changes.len() >= size {
            break;
        }
    }
    let token = if skip == 0 {
        boundary.to_string()
    } else {
        format!("{boundary}.{skip}")
    };
    Ok(Json(json!({
        "changes": changes,
        "continuation_token": token,
    })))
}
