//! The JSON decision API: `POST /v1/check`, `/v1/check/batch` and `/v1/explain`.
//!
//! Handlers only translate: they validate the request shape (400 before any lookup), then ask
//! the decision module ([`DecisionPath`]) to bind an optional bearer identity to the tenant,
//! admit the request and decide it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use portcullis_core::{Decision, Principal, Request, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decision::DecisionPath;
use crate::error::ApiError;
use crate::identity::{HostBinding, Identity, bearer};
use crate::json::JsonRequest;
use crate::state::AppState;

/// The tenant named by `X-Tenant-ID`, validated.
pub fn header_tenant(headers: &HeaderMap) -> Result<Option<TenantId>, ApiError> {
    static X_TENANT_ID: http::HeaderName = http::HeaderName::from_static("x-tenant-id");
    let Some(value) = headers.get(&X_TENANT_ID) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid_tenant", "X-Tenant-ID is not text"))?;
    TenantId::new(text)
        .map(Some)
        .map_err(|error| ApiError::bad_request("invalid_tenant", error.to_string()))
}

/// The caller's `User-Agent`, for the audit trail.
pub fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
}

/// The host a request was addressed to.
pub fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
}

/// Applies the bearer identity (when present or required) to a request's principal.
pub(crate) fn authenticate(
    path: &DecisionPath<'_>,
    headers: &HeaderMap,
    request: &mut Request,
) -> Result<(), ApiError> {
    let identity = path.identify(bearer(headers)?, path.token_required())?;
    apply_identity(path, identity.as_deref(), request)
}

/// Applies an identity already verified (see [`authenticate`]) to a request's principal: the
/// identity is bound to the request's tenant and the body's principal must be the token's.
pub(crate) fn apply_identity(
    path: &DecisionPath<'_>,
    identity: Option<&Identity>,
    request: &mut Request,
) -> Result<(), ApiError> {
    let Some(identity) = identity else {
        return Ok(());
    };
    // The host of a decision request is the one the checked request was addressed to, which
    // only the caller knows (`context.host`); the Host of the call to us says nothing about it.
    let stated_host = request
        .context
        .attributes
        .get("host")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let principal = path.bind(
        identity,
        &request.tenant,
        HostBinding::Stated(stated_host.as_deref()),
    )?;
    if request.principal.id != principal.id {
        return Err(ApiError::bad_request(
            "principal_mismatch",
            "the body names another principal than the bearer token",
        ));
    }
    let mut attributes = request.principal.attributes.clone();
    attributes.extend(principal.attributes);
    request.principal = Principal {
        attributes,
        ..principal
    };
    Ok(())
}

fn reconcile_tenant(headers: &HeaderMap, request: &Request) -> Result<(), ApiError> {
    if let Some(tenant) = header_tenant(headers)?
        && tenant != request.tenant
    {
        return Err(ApiError::bad_request(
            "tenant_mismatch",
            "X-Tenant-ID and the body name different tenants",
        ));
    }
    Ok(())
}

/// `POST /v1/check`.
pub async fn check(
    State(state): State<Arc<AppState>>,
    JsonRequest {
        headers,
        body: mut request,
    }: JsonRequest<Request>,
) -> Result<Json<Decision>, ApiError> {
    let path = DecisionPath::new(&state, "http");
    reconcile_tenant(&headers, &request)?;
    authenticate(&path, &headers, &mut request)?;
    let _admitted = path.admit(&request.tenant)?;
    let (_, decision) = path.decide(request, None, user_agent(&headers)).await;
    Ok(Json(decision))
}

/// `POST /v1/explain`: a check whose decision always carries the explanation.
pub async fn explain(
    State(state): State<Arc<AppState>>,
    JsonRequest {
        headers,
        body: mut request,
    }: JsonRequest<Request>,
) -> Result<Json<Decision>, ApiError> {
    let path = DecisionPath::new(&state, "http");
    reconcile_tenant(&headers, &request)?;
    authenticate(&path, &headers, &mut request)?;
    let _admitted = path.admit(&request.tenant)?;
    request.explain = true;
    let (_, decision) = path.decide(request, None, user_agent(&headers)).await;
    Ok(Json(decision))
}

/// Body of `POST /v1/check/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The checks, decided independently.
    pub requests: Vec<Request>,
}

/// Answer of `POST /v1/check/batch`.
#[derive(Debug, Serialize)]
pub struct BatchResponse {
    /// One decision per request, in order.
    pub decisions: Vec<Decision>,
}

/// `POST /v1/check/batch`.
pub async fn check_batch(
    State(state): State<Arc<AppState>>,
    JsonRequest {
        headers,
        body: batch,
    }: JsonRequest<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let limit = state.config.limits.max_batch;
    if batch.requests.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "the batch holds no request",
        ));
    }
    if batch.requests.len() > limit {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "the batch holds {} requests; the limit is {limit}",
                batch.requests.len()
            ),
        ));
    }
    // One policy set for the whole batch.
    let path = DecisionPath::new(&state, "http");
    let mut decisions = Vec::with_capacity(batch.requests.len());
    let mut requests = batch.requests;
    for request in &mut requests {
        reconcile_tenant(&headers, request)?;
        authenticate(&path, &headers, request)?;
    }
    // One admission per tenant named in the batch.
    let mut admitted = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for request in &requests {
        if seen.insert(request.tenant.clone()) {
            admitted.push(path.admit(&request.tenant)?);
        }
    }
    for request in requests {
        let (_, decision) = path.decide(request, None, user_agent(&headers)).await;
        decisions.push(decision);
    }
    Ok(Json(BatchResponse { decisions }))
}
