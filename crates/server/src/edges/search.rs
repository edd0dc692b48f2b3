//! The AuthZEN 1.0 search endpoints: `POST /access/v1/search/subject`, `/resource` and
//! `/action` — which subjects, resources or actions an evaluation would allow now.
//!
//! The edge validates what the search names (subject search: a subject type, an action and a
//! whole resource; resource search: a whole subject, an action and a resource type; action
//! search: a whole subject and a whole resource), turns it into a request template and asks
//! the decision module for one page. Results are ordered by id (actions by name); a page holds
//! at most `page.limit` results (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]) and its
//! `page.next_token` continues after the last candidate it examined, `""` at the end. A token
//! names a place in that order, not a revision: on the same revision, pages neither repeat nor
//! skip a result; after a reload the next page continues from the same place in the new
//! revision's order.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_policy::SearchKind;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::decision::{DecisionPath, SearchFailure};
use crate::edges::api::{apply_identity, user_agent};
use crate::edges::authzen::{Action, Entity, Evaluation, ZenBody, caller, to_request};
use crate::error::ApiError;
use crate::identity::HostBinding;
use crate::state::AppState;

/// Results per page when the request sets no `page.limit`.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `page.limit` honoured; larger limits are lowered to it.
pub const MAX_LIMIT: usize = 1_000;

/// `page` of a search request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageRequest {
    /// Where to continue: the `next_token` of the previous page.
    #[serde(default)]
    pub token: Option<String>,
    /// Most results on this page (any integer of at least 1; larger than [`MAX_LIMIT`] is
    /// lowered to it).
    #[serde(default)]
    pub limit: Option<serde_json::Number>,
}

/// The body of every search endpoint; unknown members are ignored (AuthZEN 1.0).
#[derive(Debug, Clone, Deserialize)]
pub struct SearchBody {
    /// The subject (its id is ignored by subject search).
    #[serde(default)]
    pub subject: Option<Entity>,
    /// The action (ignored by action search).
    #[serde(default)]
    pub action: Option<Action>,
    /// The resource (its id is ignored by resource search).
    #[serde(default)]
    pub resource: Option<Entity>,
    /// Circumstances, as for an evaluation.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// Paging.
    #[serde(default)]
    pub page: Option<PageRequest>,
}

/// `POST /access/v1/search/subject`.
pub async fn subject(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ZenBody(body): ZenBody<SearchBody>,
) -> Result<Json<Value>, ApiError> {
    search(&state, &headers, SearchKind::Subject, body).await
}

/// `POST /access/v1/search/resource`.
pub async fn resource(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ZenBody(body): ZenBody<SearchBody>,
) -> Result<Json<Value>, ApiError> {
    search(&state, &headers, SearchKind::Resource, body).await
}

/// `POST /access/v1/search/action`.
pub async fn action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ZenBody(body): ZenBody<SearchBody>,
) -> Result<Json<Value>, ApiError> {
    search(&state, &headers, SearchKind::Action, body).await
}

async fn search(
    state: &AppState,
    headers: &HeaderMap,
    kind: SearchKind,
    body: SearchBody,
) -> Result<Json<Value>, ApiError> {
    let path = DecisionPath::new(state, "authzen");
    let limit = match body.page.as_ref().and_then(|page| page.limit.as_ref()) {
        None => DEFAULT_LIMIT,
        Some(limit) => page_limit(limit)?,
    };
    let after = match body.page.as_ref().and_then(|page| page.token.as_deref()) {
        None | Some("") => None,
        Some(token) => Some(decode_token(kind, token)?),
    };
    let evaluation = template(kind, body)?;
    let caller = caller(&path, headers)?;
    let mut request = to_request(&caller.tenant, evaluation, "")?;
    match (kind, caller.identity.as_deref()) {
        // The subjects searched are not the caller: the token is bound to the tenant only.
        (SearchKind::Subject, Some(identity)) => {
            path.bind(identity, &caller.tenant, HostBinding::Stated(None))?;
        }
        // Otherwise the subject is the caller, as in an evaluation.
        _ => apply_identity(&path, caller.identity.as_deref(), &mut request)?,
    }
    let _admitted = path.admit(&caller.tenant)?;
    let resource_kind = request.resource.kind.clone();
    let principal_kind = request.principal.kind.clone();
    let (page, decision) = path
        .search(request, kind, after, limit, user_agent(headers))
        .await
        .map_err(|failure| match failure {
            SearchFailure::Busy(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", failure.to_string())
            }
            SearchFailure::Search(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "search_failed",
                failure.to_string(),
            ),
        })?;
    let results: Vec<Value> = page
        .results
        .into_iter()
        .map(|found| match kind {
            SearchKind::Subject => json!({ "type": principal_kind, "id": found }),
            SearchKind::Resource => json!({ "type": resource_kind, "id": found }),
            SearchKind::Action => json!({ "name": found }),
        })
        .collect();
    let next_token = page
        .next
        .map(|after| encode_token(kind, &after))
        .unwrap_or_default();
    Ok(Json(json!({
        "results": results,
        "page": { "next_token": next_token },
        "context": { "id": decision.trace_id, "revision": decision.revision },
    })))
}

/// A `page.limit`: an integer of at least 1 (written as an integer or a whole float, however
/// large), lowered to [`MAX_LIMIT`].
fn page_limit(limit: &serde_json::Number) -> Result<usize, ApiError> {
    let whole = match (limit.as_u64(), limit.as_f64()) {
        (Some(value), _) => Some(value as f64),
        (None, Some(value)) if value.fract() == 0.0 => Some(value),
        _ => None,
    };
    match whole {
        Some(value) if value >= 1.0 => Ok(if value >= MAX_LIMIT as f64 {
            MAX_LIMIT
        } else {
            value as usize
        }),
        _ => Err(ApiError::bad_request(
            "invalid_request",
            "page.limit must be an integer of at least 1",
        )),
    }
}

/// The evaluation a search stands for, with the searched part's id (or the action's name)
/// left empty; a part the search needs and the request lacks is a 400.
fn template(kind: SearchKind, body: SearchBody) -> Result<Evaluation, ApiError> {
    let missing = |what: &str| {
        ApiError::bad_request(
            "missing_field",
            format!("{what} is required by a {} search", kind_name(kind)),
        )
    };
    let present = |entity: Option<Entity>, what: &str| -> Result<Entity, ApiError> {
        let entity = entity.ok_or_else(|| missing(what))?;
        if entity.kind.is_none() {
            return Err(missing(&format!("{what}.type")));
        }
        Ok(entity)
    };
    let whole = |entity: Option<Entity>, what: &str| -> Result<Entity, ApiError> {
        let entity = present(entity, what)?;
        if entity.id.is_none() {
            return Err(missing(&format!("{what}.id")));
        }
        Ok(entity)
    };
    let searched = |entity: Option<Entity>, what: &str| -> Result<Entity, ApiError> {
        Ok(Entity {
            id: Some(String::new()),
            ..present(entity, what)?
        })
    };
    let (subject, resource, action) = match kind {
        SearchKind::Subject => (
            searched(body.subject, "subject")?,
            whole(body.resource, "resource")?,
            body.action.ok_or_else(|| missing("action"))?,
        ),
        SearchKind::Resource => (
            whole(body.subject, "subject")?,
            searched(body.resource, "resource")?,
            body.action.ok_or_else(|| missing("action"))?,
        ),
        SearchKind::Action => (
            whole(body.subject, "subject")?,
            whole(body.resource, "resource")?,
            Action {
                name: Some(String::new()),
                properties: Map::new(),
            },
        ),
    };
    if action.name.is_none() {
        return Err(missing("action.name"));
    }
    Ok(Evaluation {
        subject: Some(subject),
        action: Some(action),
        resource: Some(resource),
        context: body.context,
    })
}

fn kind_name(kind: SearchKind) -> &'static str {
    match kind {
        SearchKind::Subject => "subject",
        SearchKind::Resource => "resource",
        SearchKind::Action => "action",
    }
}

/// A page token: the search kind and the last candidate examined, base64url-encoded.
fn encode_token(kind: SearchKind, after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}\n{after}", kind_name(kind)))
}

/// The candidate a token continues after; a token of another search kind, or not ours, is a
/// 400.
fn decode_token(kind: SearchKind, token: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_page_token",
            "page.token is not a next_token of this search endpoint",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (named, after) = text.split_once('\n').ok_or_else(invalid)?;
    if named != kind_name(kind) {
        return Err(invalid());
    }
    Ok(after.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limits_are_whole_numbers_of_at_least_one_capped() {
        let limit = |text: &str| page_limit(&serde_json::from_str(text).unwrap());
        assert_eq!(limit("7").unwrap(), 7);
        assert_eq!(limit("7.0").unwrap(), 7);
        assert_eq!(limit("1.142057819491686e37").unwrap(), MAX_LIMIT);
        assert_eq!(limit("18446744073709551615").unwrap(), MAX_LIMIT);
        for bad in ["0", "-3", "2.5", "-1e40"] {
            assert_eq!(
                limit(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_other_kinds_and_garbage() {
        let token = encode_token(SearchKind::Resource, "record-7");
        assert_eq!(
            decode_token(SearchKind::Resource, &token).unwrap(),
            "record-7"
        );
        assert_eq!(
            decode_token(SearchKind::Subject, &token).unwrap_err().code,
            "invalid_page_token"
        );
        for garbage in ["!!", "bm8gbmV3bGluZQ", "//8"] {
            assert_eq!(
                decode_token(SearchKind::Resource, garbage)
                    .unwrap_err()
                    .code,
                "invalid_page_token",
                "{garbage}"
            );
        }
    }

    #[test]
    fn each_search_names_what_it_needs() {
        let body = |value: Value| serde_json::from_value::<SearchBody>(value).unwrap();
        let user = json!({ "type": "user", "id": "alice" });
        let record = json!({ "type": "record", "id": "r1" });
        let read = json!({ "name": "read" });
        let cases = [
            (
                SearchKind::Subject,
                json!({ "subject": { "type": "user" }, "resource": record }),
            ),
            (
                SearchKind::Subject,
                json!({ "subject": { "type": "user" }, "action": read, "resource": { "type": "record" } }),
            ),
            (
                SearchKind::Resource,
                json!({ "action": read, "resource": { "type": "record" } }),
            ),
            (
                SearchKind::Resource,
                json!({ "subject": { "type": "user" }, "action": read, "resource": { "type": "record" } }),
            ),
            (SearchKind::Action, json!({ "subject": user })),
            (
                SearchKind::Action,
                json!({ "subject": { "type": "user" }, "resource": record }),
            ),
            (
                SearchKind::Subject,
                json!({ "subject": { "id": "x" }, "action": read, "resource": record }),
            ),
        ];
        for (kind, value) in cases {
            let error = template(kind, body(value.clone())).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{value}");
        }
        let found = template(
            SearchKind::Subject,
            body(json!({ "subject": user, "action": read, "resource": record, "extra": 1 })),
        )
        .unwrap();
        assert_eq!(
            found.subject.unwrap().id.unwrap(),
            "",
            "the searched id is ignored"
        );
        assert_eq!(found.resource.unwrap().id.unwrap(), "r1");
    }
}
