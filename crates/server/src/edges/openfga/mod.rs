//! OpenFGA's HTTP API on the public listener, under OpenFGA's own paths (`/stores`,
//! `/stores/{store_id}/…`), so that OpenFGA's SDKs and its `fga` CLI work pointed at Portcullis.
//!
//! The mapping (docs/openfga.md has it for users):
//!
//! * a **store** is a tenant: the store id is the tenant id. Creating a store creates a tenant
//!   (with a ULID as its id, the shape OpenFGA's SDKs insist on), as the admin API does;
//! * an **authorization model** is the relationship model of the tenant's bundle, and its id
//!   is the bundle's revision written as a ULID ([`model_id`]). Writing a model installs a new
//!   bundle version that keeps everything else of the bundle (and the stored tuples), visible in
//!   the bundle history; listing models reads that history;
//! * tuple writes, reads and the change feed are the admin API's, on the same store;
//! * check, batch check, expand, list objects (plain and streamed) and list users are the
//!   relationship queries of `/v1/relations/…`, answered on this node's relation index through
//!   the decision module, audited and counted like every decision (edge `openfga`);
//! * consistency `HIGHER_CONSISTENCY` demands the tenant's latest data revision (the index
//!   catches up with the store first); `MINIMIZE_LATENCY` answers from the index as it is.
//!
//! Callers authenticate with the service's usual identity: a bearer token that is a configured
//! admin token (then every operation is authorized through the `system` tenant like the admin
//! API: `admin:tuples.read` for reads and queries, `admin:tuples.write`, `admin:bundle.upload`,
//! `admin:tenants.create|list|read|delete` for the rest) or a JWT from a configured issuer, bound
//! to the store's tenant (reads and queries only). Changes need an admin token; each is recorded
//! in the audit log like an admin call.
//!
//! Errors are OpenFGA's: `{"code": "...", "message": "..."}` with its codes and statuses
//! ([`FgaError`]). This module translates only: it must not evaluate relations, write to the
//! store or the audit log, or authorize by itself.

mod queries;
mod stores;
mod tuples;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::TenantId;
use portcullis_policy::rebac::QueryError;
use serde::Deserialize;
use serde_json::json;

use crate::admin::{Admin, AdminAction, TuplesRead, admin_for, authorize};
use crate::decision::DecisionPath;
use crate::error::ApiError;
use crate::identity::{HostBinding, bearer};
use crate::state::AppState;

pub use queries::{batch_check, check, expand, list_objects, list_users, streamed_list_objects};
pub use stores::{
    create_store, delete_store, get_store, list_models, list_stores, read_model, write_model,
};
pub use tuples::{read, read_changes, write};

/// The name of this edge in decision records and metrics.
const EDGE: &str = "openfga";

/// An error in OpenFGA's shape: `{"code": "...", "message": "..."}` with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FgaError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenFGA's error code (`validation_error`, `store_id_not_found`, …).
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

impl FgaError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        FgaError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `validation_error` (2000).
    fn validation(message: impl Into<String>) -> Self {
        FgaError::new(StatusCode::BAD_REQUEST, "validation_error", message)
    }

    /// 404 `store_id_not_found` (5002).
    fn no_store(store: &str) -> Self {
        FgaError::new(
            StatusCode::NOT_FOUND,
            "store_id_not_found",
            format!("store `{store}` not found"),
        )
    }
}

impl IntoResponse for FgaError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The service's errors in OpenFGA's terms, by their stable codes.
impl From<ApiError> for FgaError {
    fn from(error: ApiError) -> Self {
        let (status, code) = match error.code {
            "unknown_tenant" => (StatusCode::NOT_FOUND, "store_id_not_found"),
            "no_model" | "no_bundle" => (
                StatusCode::BAD_REQUEST,
                "latest_authorization_model_not_found",
            ),
            "too_many" => (StatusCode::BAD_REQUEST, "exceeded_entity_limit"),
            "invalid_tuple"
            | "invalid_user"
            | "invalid_object"
            | "invalid_request"
            | "invalid_consistency"
            | "invalid_page_size"
            | "invalid_tenant" => (StatusCode::BAD_REQUEST, "validation_error"),
            "invalid_continuation" => (StatusCode::BAD_REQUEST, "invalid_continuation_token"),
            "conflict" | "duplicate_tuple" | "missing_tuple" => {
                (StatusCode::BAD_REQUEST, "write_failed_due_to_invalid_input")
            }
            "tenant_exists" => (StatusCode::CONFLICT, "already_exists"),
            "revision_not_seen" => (StatusCode::CONFLICT, "failed_precondition"),
            "managed_by_files" => (StatusCode::CONFLICT, "failed_precondition"),
            "tenant_suspended"
            | "denied"
            | "tenant_mismatch"
            | "domain_mismatch"
            | "tenant_host_mismatch" => (StatusCode::FORBIDDEN, "forbidden"),
            "missing_token" => (StatusCode::UNAUTHORIZED, "bearer_token_missing"),
            "busy" | "index_incomplete" => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ if error.status == StatusCode::UNAUTHORIZED => {
                (StatusCode::UNAUTHORIZED, "auth_failed_invalid_bearer_token")
            }
            _ if error.status == StatusCode::TOO_MANY_REQUESTS => {
                (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted")
            }
            _ if error.status == StatusCode::FORBIDDEN => (StatusCode::FORBIDDEN, "forbidden"),
            _ if error.status == StatusCode::NOT_FOUND => {
                (StatusCode::NOT_FOUND, "undefined_endpoint")
            }
            _ if error.status.is_client_error() => (StatusCode::BAD_REQUEST, "validation_error"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        };
        FgaError::new(status, code, error.message)
    }
}

impl From<crate::identity::IdentityError> for FgaError {
    fn from(error: crate::identity::IdentityError) -> Self {
        FgaError::from(ApiError::from(error))
    }
}

/// A relationship query's failure in OpenFGA's terms.
fn query_failure(error: &QueryError) -> FgaError {
    let message = error.to_string();
    match error {
        QueryError::UnknownType(_) => {
            FgaError::new(StatusCode::BAD_REQUEST, "type_not_found", message)
        }
        QueryError::UnknownRelation { .. } => {
            FgaError::new(StatusCode::BAD_REQUEST, "relation_not_found", message)
        }
        QueryError::DepthExceeded | QueryError::TooComplex => FgaError::new(
            StatusCode::BAD_REQUEST,
            "authorization_model_resolution_too_complex",
            message,
        ),
        QueryError::TooManyContextualTuples(_) | QueryError::TooManyChecks(_) => {
            FgaError::new(StatusCode::BAD_REQUEST, "exceeded_entity_limit", message)
        }
        QueryError::InvalidContextualTuple(_) => {
            FgaError::new(StatusCode::BAD_REQUEST, "invalid_tuple", message)
        }
        QueryError::IndexIncomplete(_) => {
            FgaError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
        QueryError::MissingParameter { .. }
        | QueryError::BadParameter { .. }
        | QueryError::ConditionFailed { .. } => FgaError::validation(message),
    }
}

// ------------------------------------------------------------------------------- identifiers

/// Crockford's base 32, the alphabet of ULIDs.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 128 bits as a ULID (26 characters of Crockford's base 32; the first is 0 to 7).
fn ulid_text(value: u128) -> String {
    (0..26)
        .rev()
        .map(|digit| {
            let index = usize::try_from((value >> (digit * 5)) & 0x1f).unwrap_or(0);
            char::from(CROCKFORD[index])
        })
        .collect()
}

/// The authorization model id of a bundle revision (`sha256:<hex>`): the digest's first 128
/// bits written as a ULID, the shape OpenFGA's SDKs accept as a model id.
pub fn model_id(revision: &str) -> String {
    let hex = revision.strip_prefix("sha256:").unwrap_or(revision);
    let value = hex
        .get(..32)
        .and_then(|prefix| u128::from_str_radix(prefix, 16).ok())
        .unwrap_or(0);
    ulid_text(value)
}

/// A new store id: a ULID of the server's clock and 80 random bits.
fn new_store_id(state: &AppState) -> Result<String, FgaError> {
    let millis = u128::try_from(state.now().as_millisecond()).unwrap_or(0) & ((1 << 48) - 1);
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|error| {
        FgaError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("no randomness for a store id: {error}"),
        )
    })?;
    let random = random
        .iter()
        .fold(0u128, |value, byte| (value << 8) | u128::from(*byte));
    Ok(ulid_text((millis << 80) | random))
}

/// The tenant a store id names, which must exist (loaded, or in the directory).
async fn store_tenant(state: &AppState, store: &str) -> Result<TenantId, FgaError> {
    let tenant = TenantId::new(store).map_err(|_| FgaError::no_store(store))?;
    if state.policies().get(&tenant).is_some() {
        return Ok(tenant);
    }
    match state.store.tenant(&tenant).get().await {
        Ok(Some(_)) => Ok(tenant),
        Ok(None) => Err(FgaError::no_store(store)),
        Err(error) => Err(FgaError::from(crate::error::store_error(error))),
    }
}

// ------------------------------------------------------------------------------- callers

/// Who is calling: an admin (by a configured admin token) or a client of the decision APIs
/// (a JWT, or nobody when tokens are not required).
enum Caller {
    Admin(Admin),
    Client(Option<std::sync::Arc<crate::identity::Identity>>),
}

fn caller(path: &DecisionPath<'_>, headers: &HeaderMap) -> Result<Caller, FgaError> {
    let token = bearer(headers)?;
    if token.is_some()
        && let Ok(admin) = admin_for(path.state(), headers)
    {
        return Ok(Caller::Admin(admin));
    }
    Ok(Caller::Client(path.identify(token, path.token_required())?))
}

/// Authorizes a read or query of `tenant`: an admin needs `admin:tuples.read` on it; a JWT
/// must be bound to it.
async fn authorize_read(
    path: &DecisionPath<'_>,
    headers: &HeaderMap,
    tenant: &TenantId,
) -> Result<(), FgaError> {
    match caller(path, headers)? {
        Caller::Admin(admin) => {
            authorize(path.state(), &admin, TuplesRead::ACTION, tenant.as_str()).await?;
        }
        Caller::Client(Some(identity)) => {
            path.bind(&identity, tenant, HostBinding::Stated(None))?;
        }
        Caller::Client(None) => {}
    }
    Ok(())
}

/// The admin allowed to do `A` on `tenant:<resource>`; anyone else is refused (401 without a
/// token, 403 with one that is not an admin's).
async fn authorize_change<A: AdminAction>(
    path: &DecisionPath<'_>,
    headers: &HeaderMap,
    resource: &str,
) -> Result<Admin, FgaError> {
    match caller(path, headers)? {
        Caller::Admin(admin) => {
            authorize(path.state(), &admin, A::ACTION, resource).await?;
            Ok(admin)
        }
        Caller::Client(None) => Err(FgaError::new(
            StatusCode::UNAUTHORIZED,
            "bearer_token_missing",
            "changing stores, models or tuples needs an admin token",
        )),
        Caller::Client(Some(_)) => Err(FgaError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "changing stores, models or tuples needs an admin token, not an identity token",
        )),
    }
}

/// Records an administrative change made through this API in the audit log, like the admin
/// API records its calls.
async fn record(
    state: &AppState,
    tenant: &str,
    admin: &Admin,
    action: &str,
    path: String,
    status: StatusCode,
) -> Result<(), FgaError> {
    crate::admin::record_change(state, tenant, &admin.0, action, path, None, status)
        .await
        .map_err(FgaError::from)
}

// ------------------------------------------------------------------------------- shared input

/// OpenFGA's consistency preference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
enum Consistency {
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "MINIMIZE_LATENCY")]
    MinimizeLatency,
    #[serde(rename = "HIGHER_CONSISTENCY")]
    Higher,
}

/// The revision a query must see: none (the index as it is), or for `HIGHER_CONSISTENCY` the
/// tenant's latest data revision in the store.
async fn demanded(
    state: &AppState,
    tenant: &TenantId,
    consistency: Option<Consistency>,
) -> Result<Option<u64>, FgaError> {
    if consistency != Some(Consistency::Higher) {
        return Ok(None);
    }
    let record = state
        .store
        .tenant(tenant)
        .get()
        .await
        .map_err(|error| FgaError::from(crate::error::store_error(error)))?;
    Ok(record.and_then(|record| u64::try_from(record.data_revision).ok()))
}

/// Checks that a query names the model it will be answered with: none, or the active one.
/// Older models stay readable but are not evaluated (the index follows the active bundle).
async fn check_model(
    state: &AppState,
    tenant: &TenantId,
    asked: Option<&str>,
) -> Result<(), FgaError> {
    let Some(asked) = asked.filter(|id| !id.is_empty()) else {
        return Ok(());
    };
    let current = state
        .policies()
        .get(tenant)
        .filter(|snapshot| snapshot.model().is_some())
        .map(|snapshot| model_id(snapshot.revision()));
    if current.as_deref() == Some(asked) {
        return Ok(());
    }
    let known = stores::models(state, tenant)
        .await?
        .iter()
        .any(|(id, _)| id == asked);
    if known {
        Err(FgaError::validation(format!(
            "authorization model `{asked}` is not the store's active model; Portcullis evaluates \
             the active model only (omit authorization_model_id, or name the latest)"
        )))
    } else {
        Err(FgaError::new(
            StatusCode::BAD_REQUEST,
            "authorization_model_not_found",
            format!("authorization model `{asked}` not found"),
        ))
    }
}

/// A `page_size` within 1 to `max` (`default` when absent or 0, as OpenFGA reads it).
fn page_size(asked: Option<i64>, default: usize, max: usize) -> Result<usize, FgaError> {
    match asked {
        None | Some(0) => Ok(default),
        Some(size) => usize::try_from(size)
            .ok()
            .filter(|size| (1..=max).contains(size))
            .ok_or_else(|| {
                FgaError::new(
                    StatusCode::BAD_REQUEST,
                    "page_size_invalid",
                    format!("page_size must be 1 to {max}"),
                )
            }),
    }
}

/// A JSON body whose rejections are OpenFGA errors.
#[derive(Debug)]
pub struct FgaJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for FgaJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = FgaError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, FgaError> {
        let crate::json::JsonBody(mut body) =
            crate::json::JsonBody::<serde_json::Value>::from_request(request, state)
                .await
                .map_err(FgaError::from)?;
        drop_nulls(&mut body);
        crate::json::from_value(body)
            .map(FgaJson)
            .map_err(|error| FgaError::validation(error.to_string()))
    }
}

/// Removes every member whose value is `null`, at any depth: OpenFGA's API reads JSON as
/// protocol buffers do, where `null` is the field's default (its Go clients, the `fga` CLI
/// among them, send `"tuple_keys": null` for an empty list). A `context` is left as sent: it
/// is a JSON object of condition parameters, where `null` is a value.
fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(members) => {
            members.retain(|_, member| !member.is_null());
            members
                .iter_mut()
                .filter(|(name, _)| name.as_str() != "context")
                .for_each(|(_, member)| drop_nulls(member));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Query parameters whose rejections are OpenFGA errors.
#[derive(Debug)]
pub struct FgaQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for FgaQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = FgaError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, FgaError> {
        crate::error::QueryParams::<T>::from_request_parts(parts, state)
            .await
            .map(|crate::error::QueryParams(value)| FgaQuery(value))
            .map_err(FgaError::from)
    }
}
