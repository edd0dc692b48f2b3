//! Relationship tuples in the store: validated writes (the store's revision is the write's
//! revision token, and this node's index catches up before the write is answered), filtered
//! reads and the change log. Shared by the admin HTTP API and the `portcullis.v1` gRPC admin
//! service; it must not answer HTTP or gRPC itself beyond returning [`ApiError`].

use axum::http::StatusCode;
use portcullis_core::TenantId;
use portcullis_policy::rebac::{MAX_TUPLES_PER_WRITE, Tuple};
use portcullis_store::{TupleFilter, TupleWriteOptions};
use serde::Deserialize;

use crate::error::{ApiError, store_error};
use crate::snapshots::reload::refresh_tenant;
use crate::state::AppState;

/// Body of a tuple write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    /// Tuples to add.
    #[serde(default)]
    pub writes: Vec<Tuple>,
    /// Tuples to remove (their condition is ignored).
    #[serde(default)]
    pub deletes: Vec<Tuple>,
    /// Writing an existing identical tuple is not an error.
    #[serde(default)]
    pub ignore_duplicates: bool,
    /// Deleting a missing tuple is not an error.
    #[serde(default)]
    pub ignore_missing: bool,
}

/// Validates a write against the tenant's model and stores it; returns the revision token.
pub async fn write_tuples(
    state: &AppState,
    tenant: &TenantId,
    body: &WriteBody,
) -> Result<i64, ApiError> {
    let count = body.writes.len() + body.deletes.len();
    if count == 0 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the write has neither `writes` nor `deletes`",
        ));
    }
    if count > MAX_TUPLES_PER_WRITE {
        return Err(ApiError::bad_request(
            "too_many",
            format!(
                "{count} tuples in one write, more than the limit of {MAX_TUPLES_PER_WRITE}; split the write"
            ),
        ));
    }
    let model = {
        let policies = state.policies();
        let snapshot = policies.get(tenant).ok_or_else(|| {
            ApiError::not_found("unknown_tenant", format!("tenant `{tenant}` is not loaded"))
        })?;
        snapshot.model().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_model",
                format!("tenant `{tenant}` has no relationship model; name one with `model:` in its bundle"),
            )
        })?
    };
    let mut problems = Vec::new();
    for (index, tuple) in body.writes.iter().enumerate() {
        if let Err(error) = model.validate_tuple(tuple) {
            problems.push(format!("writes[{index}] `{tuple}`: {error}"));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::bad_request("invalid_tuple", problems.join("; ")));
    }
    let writes: Vec<_> = body
        .writes
        .iter()
        .map(crate::snapshots::relations::to_stored)
        .collect();
    let deletes: Vec<_> = body
        .deletes
        .iter()
        .map(crate::snapshots::relations::to_stored)
        .collect();
    let revision = state
        .store
        .tenant(tenant)
        .write_tuples(
            &writes,
            &deletes,
            TupleWriteOptions {
                ignore_duplicates: body.ignore_duplicates,
                ignore_missing: body.ignore_missing,
            },
        )
        .await
        .map_err(store_error)?;
    refresh_tenant(state, tenant).await;
    Ok(revision)
}

/// Query of a tuple read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// `type` or `type:id`.
    #[serde(default)]
    pub object: Option<String>,
    /// The relation.
    #[serde(default)]
    pub relation: Option<String>,
    /// The exact user.
    #[serde(default)]
    pub user: Option<String>,
    /// Page size (1 to 1,000; default 100).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// From a previous page.
    #[serde(default)]
    pub continuation: Option<String>,
}

impl ReadQuery {
    /// The store's filter.
    pub fn filter(&self) -> TupleFilter {
        let (object_type, object_id) = match self.object.as_deref() {
            Some(object) => match object.split_once(':') {
                Some((kind, id)) if !id.is_empty() => (Some(kind.to_owned()), Some(id.to_owned())),
                Some((kind, _)) => (Some(kind.to_owned()), None),
                None => (Some(object.to_owned()), None),
            },
            None => (None, None),
        };
        TupleFilter {
            object_type,
            object_id,
            relation: self.relation.clone(),
            user: self.user.clone(),
        }
    }
}

/// Query of a change read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// Changes after this revision (default 0: all).
    #[serde(default)]
    pub since: Option<i64>,
    /// Most changes (1 to 1,000; default 100).
    #[serde(default)]
    pub page_size: Option<u32>,
}
