//! Reading the audit trail over the admin API: query, export (JSON lines) and verify, each
//! authorized by the `system` tenant (`admin:audit.read`) and itself recorded in the trail.
//! The trail is read where the node keeps it: its files, or the store's `audit_log` table.
//! The tenant is not looked up in the directory: a trail is read whether or not its tenant
//! still exists.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_audit::{Filter, Kind, Outcome};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{AuditRead, MayNotExist, TenantAccess, WithInput};
use crate::error::{ApiError, QueryParams};
use crate::state::AppState;

/// Query parameters of a lookup.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// From this time (RFC 3339, inclusive).
    #[serde(default)]
    pub from: Option<jiff::Timestamp>,
    /// Until this time (exclusive).
    #[serde(default)]
    pub to: Option<jiff::Timestamp>,
    /// Exact actor (as recorded, i.e. masked).
    #[serde(default)]
    pub actor: Option<String>,
    /// Exact action.
    #[serde(default)]
    pub action: Option<String>,
    /// `allow`, `deny`, `error`, `ok` or `failed`.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Trace id.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// `decision` or `change`.
    #[serde(default)]
    pub kind: Option<Kind>,
    /// From the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Records per page (1 to 1,000; default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

impl AuditQuery {
    fn filter(&self) -> Filter {
        Filter {
            from: self.from,
            to: self.to,
            actor: self.actor.clone(),
            action: self.action.clone(),
            outcome: self.outcome,
            trace_id: self.trace_id.clone(),
            kind: self.kind,
        }
    }
}

fn auditor(state: &AppState) -> Result<&crate::audit::Auditor, ApiError> {
    state.audit.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "audit_disabled",
            "the audit trail is switched off on this node",
        )
    })
}

fn failed(error: &portcullis_audit::AuditError) -> ApiError {
    match error {
        portcullis_audit::AuditError::InvalidCursor { .. } => {
            ApiError::bad_request("invalid_cursor", error.to_string())
        }
        other => {
            tracing::error!(error = %other, "reading the audit trail failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit_read_failed",
                "the audit trail could not be read (the server log has the details)",
            )
        }
    }
}

fn reader_stopped() -> ApiError {
    failed(&portcullis_audit::AuditError::Closed {
        reason: "reader stopped".into(),
    })
}

/// `GET /admin/v1/tenants/{tenant}/audit`: matching records in chain order, paginated.
pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    WithInput(access, QueryParams(query)): WithInput<
        TenantAccess<AuditRead, MayNotExist>,
        QueryParams<AuditQuery>,
    >,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be 1 to 1000",
        ));
    }
    let audit = auditor(&state)?;
    audit.flush().await.map_err(|e| failed(&e))?;
    let filter = query.filter();
    let cursor = query.cursor.clone();
    let page = match audit.root().map(Path::to_path_buf) {
        Some(root) => tokio::task::spawn_blocking(move || {
            portcullis_audit::query(&root, tenant.as_str(), &filter, cursor.as_deref(), limit)
        })
        .await
        .map_err(|_| reader_stopped())?,
        None => {
            crate::audit::store::query(&state.store, &tenant, &filter, cursor.as_deref(), limit)
                .await
        }
    }
    .map_err(|e| failed(&e))?;
    Ok(Json(
        json!({ "records": page.records, "next_cursor": page.next_cursor }),
    ))
}

/// `GET /admin/v1/tenants/{tenant}/audit/export`: matching records as JSON lines (with no
/// filter, the checkpoints too, so the export itself verifies).
pub(crate) async fn export(
    State(state): State<Arc<AppState>>,
    WithInput(access, QueryParams(query)): WithInput<
        TenantAccess<AuditRead, MayNotExist>,
        QueryParams<AuditQuery>,
    >,
) -> Result<Response, ApiError> {
    let tenant = access.tenant;
    let audit = auditor(&state)?;
    audit.flush().await.map_err(|e| failed(&e))?;
    let filter = query.filter();
    let body = match audit.root().map(Path::to_path_buf) {
        Some(root) => tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            portcullis_audit::export(&root, tenant.as_str(), &filter, &mut out).map(|_| out)
        })
        .await
        .map_err(|_| reader_stopped())?,
        None => {
            let mut out = Vec::new();
            crate::audit::store::export(&state.store, &tenant, &filter, &mut out)
                .await
                .map(|_| out)
        }
    }
    .map_err(|e| failed(&e))?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// `GET /admin/v1/tenants/{tenant}/audit/verify`: the chain and checkpoints of the tenant's
/// log, checked with this node's public key.
pub(crate) async fn verify(
    State(state): State<Arc<AppState>>,
    access: TenantAccess<AuditRead, MayNotExist>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant;
    let audit = auditor(&state)?;
    audit.flush().await.map_err(|e| failed(&e))?;
    let key = audit.verifying_key().clone();
    let report = match audit.root().map(Path::to_path_buf) {
        Some(root) => tokio::task::spawn_blocking(move || {
            portcullis_audit::verify_dir(&root, tenant.as_str(), &key)
        })
        .await
        .map_err(|_| reader_stopped())?,
        None => crate::audit::store::verify(&state.store, &tenant, &key).await,
    }
    .map_err(|e| failed(&e))?;
    Ok(Json(json!({
        "ok": report.is_ok_while_live(),
        "sealed": report.is_ok(),
        "report": report,
    })))
}
