//! Requests for temporary access (SPEC.md C9) and their approvals.
//!
//! A request is `pending` until as many different people as it requires approve it
//! (`approved`), or one of them rejects it (`rejected`). An approved request can be revoked
//! (`revoked`); a pending one can be withdrawn the same way. Once its window has ended a request
//! is `expired` — in every answer at once, and in the table when [`TenantStore::expire_access`]
//! records it. The rules a change must keep are checked inside the transaction that makes it,
//! with the request's row locked, so two nodes cannot both break them: nobody approves their
//! own request, one person approves a request once (the primary key of `access_approvals` says
//! so too), and a closed or ended request cannot be approved, rejected or revoked.
//!
//! Approving, revoking and expiring an approved request change what decisions see, so they
//! raise the tenant's data revision and announce it like an assignment does; creating,
//! rejecting and approving short of the required count do not.

use serde::Serialize;
use sqlx::Row;
use sqlx::types::Json;

use crate::backend::{Backend, CHANNEL};
use crate::error::StoreError;
use crate::now_us;
use crate::tenant::{TenantStore, touch, transaction};

/// Most requests one listing returns.
pub const MAX_ACCESS_LIST: u32 = 1000;

/// Longest request id, principal id, action, resource or certificate accepted, in bytes.
const MAX_FIELD: usize = 1024;
/// Longest reason or comment accepted, in bytes (2,000 characters of any script).
const MAX_TEXT: usize = 8000;
/// Most networks a request may be bound to.
const MAX_NETWORKS: usize = 32;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved: a grant while its window lasts.
    Approved,
    /// Rejected by an approver.
    Rejected,
    /// Revoked (or withdrawn while pending).
    Revoked,
    /// Its window ended.
    Expired,
}

impl AccessStatus {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessStatus::Pending => "pending",
            AccessStatus::Approved => "approved",
            AccessStatus::Rejected => "rejected",
            AccessStatus::Revoked => "revoked",
            AccessStatus::Expired => "expired",
        }
    }

    fn parse(text: &str) -> AccessStatus {
        // The column is constrained to these values.
        match text {
            "approved" => AccessStatus::Approved,
            "rejected" => AccessStatus::Rejected,
            "revoked" => AccessStatus::Revoked,
            "expired" => AccessStatus::Expired,
            _ => AccessStatus::Pending,
        }
    }
}

/// One approval of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessApproval {
    /// Who approved.
    pub approver: String,
    /// What they said, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When, in microseconds since the epoch.
    pub approved_at_us: i64,
}

/// A request for temporary access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessRequest {
    /// Its id.
    pub id: String,
    /// Who asked (their verified identity), to whom it grants.
    pub requester: String,
    /// The action, qualified (`type:verb`).
    pub action: String,
    /// The resource, `type:id`.
    pub resource: String,
    /// Why.
    pub reason: String,
    /// The window's start, in microseconds since the epoch (inclusive).
    pub not_before_us: i64,
    /// The window's end, in microseconds since the epoch (exclusive).
    pub not_after_us: i64,
    /// The client certificate it is bound to (fingerprint or id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// The source networks it is bound to.
    pub networks: Vec<String>,
    /// Approvals it needs.
    pub approvals_required: u8,
    /// Where it is in its life, as stored (see [`AccessRequest::status_at`]).
    pub status: AccessStatus,
    /// Its approvals, in the order they were given.
    pub approvals: Vec<AccessApproval>,
    /// Who rejected or revoked it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
    /// When it was rejected, revoked or recorded as expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at_us: Option<i64>,
    /// What the person who closed it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closing_note: Option<String>,
    /// When it was made.
    pub created_at_us: i64,
    /// When it last changed.
    pub updated_at_us: i64,
}

impl AccessRequest {
    /// Its status at `now_us`: a pending or approved request whose window has ended is
    /// expired, whether or not that was recorded yet.
    pub fn status_at(&self, now_us: i64) -> AccessStatus {
        match self.status {
            AccessStatus::Pending | AccessStatus::Approved if self.not_after_us <= now_us => {
                AccessStatus::Expired
            }
            status => status,
        }
    }
}

/// A new request, as the service validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessRequest {
    /// Its id (unique in the tenant).
    pub id: String,
    /// The requester.
    pub requester: String,
    /// The action, qualified.
    pub action: String,
    /// The resource, `type:id`.
    pub resource: String,
    /// Why.
    pub reason: String,
    /// The window, in microseconds since the epoch.
    pub not_before_us: i64,
    /// The window's end.
    pub not_after_us: i64,
    /// The certificate it is bound to.
    pub cert: Option<String>,
    /// The networks it is bound to.
    pub networks: Vec<String>,
    /// Approvals it needs (1 or 2).
    pub approvals_required: u8,
}

/// Which requests to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessFilter {
    /// Only those stored with this status.
    pub status: Option<AccessStatus>,
    /// Only this person's.
    pub requester: Option<String>,
    /// At most this many, newest first (at most [`MAX_ACCESS_LIST`]).
    pub limit: u32,
}

pub(crate) const COLUMNS: &str = "request_id, requester, action, resource, reason, not_before_us, not_after_us, cert, networks, approvals_required, status, closed_by, closed_at_us, closing_note, created_at_us, updated_at_us";

pub(crate) fn request_from<R: Row>(row: &R) -> Result<AccessRequest, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Json<Vec<String>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let Json(networks): Json<Vec<String>> = row.try_get("networks")?;
    let required: i64 = row.try_get("approvals_required")?;
    Ok(AccessRequest {
        id: row.try_get("request_id")?,
        requester: row.try_get("requester")?,
        action: row.try_get("action")?,
        resource: row.try_get("resource")?,
        reason: row.try_get("reason")?,
        not_before_us: row.try_get("not_before_us")?,
        not_after_us: row.try_get("not_after_us")?,
        cert: row.try_get("cert")?,
        networks,
        approvals_required: if required >= 2 { 2 } else { 1 },
        status: AccessStatus::parse(&row.try_get::<String, _>("status")?),
        approvals: Vec::new(),
        closed_by: row.try_get("closed_by")?,
        closed_at_us: row.try_get("closed_at_us")?,
        closing_note: row.try_get("closing_note")?,
        created_at_us: row.try_get("created_at_us")?,
        updated_at_us: row.try_get("updated_at_us")?,
    })
}

pub(crate) fn approval_from<R: Row>(row: &R) -> Result<(String, AccessApproval), StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok((
        row.try_get("request_id")?,
        AccessApproval {
            approver: row.try_get("approver")?,
            comment: row.try_get("comment")?,
            approved_at_us: row.try_get("approved_at_us")?,
        },
    ))
}

/// Gives each request its approvals (`approvals` in approval order).
pub(crate) fn attach(requests: &mut [AccessRequest], approvals: Vec<(String, AccessApproval)>) {
    let mut by_id: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (index, request) in requests.iter().enumerate() {
        by_id.insert(request.id.as_str(), index);
    }
    let mut placed: Vec<(usize, AccessApproval)> = Vec::new();
    for (id, approval) in approvals {
        if let Some(&index) = by_id.get(id.as_str()) {
            placed.push((index, approval));
        }
    }
    for (index, approval) in placed {
        requests[index].approvals.push(approval);
    }
}

fn check_field(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} must be 1 to {max} bytes without control characters"
        )));
    }
    Ok(())
}

fn refused(code: &'static str, message: String) -> StoreError {
    StoreError::Refused { code, message }
}

/// Checks that `who` may approve or reject (`verb`) `request` at `now_us`: it is pending
/// (`not_pending`), its window has not ended (`window_ended`), and `who` did not make it
/// (`self_approval`).
fn check_decidable(
    request: &AccessRequest,
    who: &str,
    now_us: i64,
    verb: &str,
) -> Result<(), StoreError> {
    let status = request.status_at(now_us);
    if status != AccessStatus::Pending {
        return Err(refused(
            if status == AccessStatus::Expired {
                "window_ended"
            } else {
                "not_pending"
            },
            format!(
                "access request `{}` is {}; only a pending request can be approved or rejected",
                request.id,
                status.as_str()
            ),
        ));
    }
    if request.requester == who {
        return Err(refused(
            "self_approval",
            format!(
                "`{who}` made access request `{}` and cannot {verb} it (a requester withdraws a request by revoking it)",
                request.id
            ),
        ));
    }
    Ok(())
}

/// What a change does to a request that is still open.
enum Close {
    Reject,
    Revoke,
}

/// Reads one request with its approvals, inside the macro's transaction, locking its row on
/// PostgreSQL.
macro_rules! locked_request {
    ($self:ident, $tx:ident, $postgres:ident, $id:expr) => {{
        let sql = if $postgres {
            format!(
                "SELECT {COLUMNS} FROM access_requests WHERE tenant_id = $1 AND request_id = $2 FOR UPDATE"
            )
        } else {
            format!("SELECT {COLUMNS} FROM access_requests WHERE tenant_id = $1 AND request_id = $2")
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind($self.tenant.as_str())
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?;
        match row {
            Some(row) => {
                let mut request = request_from(&row)?;
                let approvals = sqlx::query(
                    "SELECT request_id, approver, comment, approved_at_us FROM access_approvals WHERE tenant_id = $1 AND request_id = $2 ORDER BY approved_at_us, approver",
                )
                .bind($self.tenant.as_str())
                .bind($id)
                .fetch_all(&mut *$tx)
                .await?
                .iter()
                .map(approval_from)
                .collect::<Result<Vec<_>, _>>()?;
                request.approvals = approvals.into_iter().map(|(_, a)| a).collect();
                Some(request)
            }
            None => None,
        }
    }};
}

impl TenantStore<'_> {
    fn no_request(&self, id: &str) -> StoreError {
        StoreError::NotFound(format!(
            "tenant `{}` has no access request `{id}`",
            self.tenant
        ))
    }

    /// Stores a new pending request.
    pub async fn create_access_request(
        &self,
        new: &NewAccessRequest,
    ) -> Result<AccessRequest, StoreError> {
        check_field("request id", &new.id, MAX_FIELD)?;
        check_field("requester", &new.requester, MAX_FIELD)?;
        check_field("action", &new.action, MAX_FIELD)?;
        check_field("resource", &new.resource, MAX_FIELD)?;
        check_field("reason", &new.reason, MAX_TEXT)?;
        if let Some(cert) = &new.cert {
            check_field("certificate", cert, MAX_FIELD)?;
        }
        if new.networks.len() > MAX_NETWORKS {
            return Err(StoreError::Invalid(format!(
                "a request is bound to at most {MAX_NETWORKS} networks"
            )));
        }
        for network in &new.networks {
            check_field("network", network, MAX_FIELD)?;
        }
        if new.not_after_us <= new.not_before_us {
            return Err(StoreError::Invalid("the window is empty".to_owned()));
        }
        if !(1..=2).contains(&new.approvals_required) {
            return Err(StoreError::Invalid(
                "a request needs 1 or 2 approvals".to_owned(),
            ));
        }
        let now = now_us();
        transaction!(self, |tx, _postgres| {
            sqlx::query(
                "INSERT INTO access_requests (tenant_id, request_id, requester, action, resource, reason, not_before_us, not_after_us, cert, networks, approvals_required, status, created_at_us, updated_at_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $12)",
            )
            .bind(self.tenant.as_str())
            .bind(&new.id)
            .bind(&new.requester)
            .bind(&new.action)
            .bind(&new.resource)
            .bind(&new.reason)
            .bind(new.not_before_us)
            .bind(new.not_after_us)
            .bind(new.cert.as_deref())
            .bind(Json(&new.networks))
            .bind(i64::from(new.approvals_required))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|error| match StoreError::from(error) {
                StoreError::NotFound(_) => self.no_tenant(),
                other => other,
            })?;
            AccessRequest {
                id: new.id.clone(),
                requester: new.requester.clone(),
                action: new.action.clone(),
                resource: new.resource.clone(),
                reason: new.reason.clone(),
                not_before_us: new.not_before_us,
                not_after_us: new.not_after_us,
                cert: new.cert.clone(),
                networks: new.networks.clone(),
                approvals_required: new.approvals_required,
                status: AccessStatus::Pending,
                approvals: Vec::new(),
                closed_by: None,
                closed_at_us: None,
                closing_note: None,
                created_at_us: now,
                updated_at_us: now,
            }
        })
    }

    /// One request with its approvals.
    pub async fn access_request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        transaction!(self, |tx, _postgres| {
            let postgres = false;
            locked_request!(self, tx, postgres, id)
        })
    }

    /// Requests, newest first, with their approvals.
    pub async fn access_requests(
        &self,
        filter: &AccessFilter,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let limit = i64::from(filter.limit.clamp(1, MAX_ACCESS_LIST));
        transaction!(self, |tx, _postgres| {
            let mut sql = format!("SELECT {COLUMNS} FROM access_requests WHERE tenant_id = $1");
            let mut next = 2;
            if filter.status.is_some() {
                sql.push_str(&format!(" AND status = ${next}"));
                next += 1;
            }
            if filter.requester.is_some() {
                sql.push_str(&format!(" AND requester = ${next}"));
                next += 1;
            }
            sql.push_str(&format!(
                " ORDER BY created_at_us DESC, request_id LIMIT ${next}"
            ));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.tenant.as_str());
            if let Some(status) = filter.status {
                query = query.bind(status.as_str());
            }
            if let Some(requester) = &filter.requester {
                query = query.bind(requester.as_str());
            }
            let mut requests = query
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(request_from)
                .collect::<Result<Vec<_>, _>>()?;
            for request in &mut requests {
                request.approvals = sqlx::query(
                    "SELECT request_id, approver, comment, approved_at_us FROM access_approvals WHERE tenant_id = $1 AND request_id = $2 ORDER BY approved_at_us, approver",
                )
                .bind(self.tenant.as_str())
                .bind(&request.id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(approval_from)
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(|(_, approval)| approval)
                .collect();
            }
            requests
        })
    }

    /// Approves a pending request as `approver` at `now_us`. Refused (with the rule's code)
    /// when the approver is the requester (`self_approval`), has approved it already
    /// (`already_approved`), the request is not pending (`not_pending`) or its window has
    /// ended (`window_ended`). The request becomes approved with its last required approval.
    pub async fn approve_access_request(
        &self,
        id: &str,
        approver: &str,
        comment: Option<&str>,
        now_us: i64,
    ) -> Result<AccessRequest, StoreError> {
        check_field("approver", approver, MAX_FIELD)?;
        if let Some(comment) = comment {
            check_field("comment", comment, MAX_TEXT)?;
        }
        transaction!(self, |tx, postgres| {
            let Some(mut request) = locked_request!(self, tx, postgres, id) else {
                return Err(self.no_request(id));
            };
            check_decidable(&request, approver, now_us, "approve")?;
            if request.approvals.iter().any(|a| a.approver == approver) {
                return Err(refused(
                    "already_approved",
                    format!(
                        "`{approver}` has approved access request `{id}` already; another approver must give the next approval"
                    ),
                ));
            }
            sqlx::query(
                "INSERT INTO access_approvals (tenant_id, request_id, approver, comment, approved_at_us) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(self.tenant.as_str())
            .bind(id)
            .bind(approver)
            .bind(comment)
            .bind(now_us)
            .execute(&mut *tx)
            .await?;
            request.approvals.push(AccessApproval {
                approver: approver.to_owned(),
                comment: comment.map(str::to_owned),
                approved_at_us: now_us,
            });
            let complete = request.approvals.len() >= usize::from(request.approvals_required);
            if complete {
                request.status = AccessStatus::Approved;
            }
            request.updated_at_us = now_us;
            sqlx::query(
                "UPDATE access_requests SET status = $3, updated_at_us = $4 WHERE tenant_id = $1 AND request_id = $2",
            )
            .bind(self.tenant.as_str())
            .bind(id)
            .bind(request.status.as_str())
            .bind(now_us)
            .execute(&mut *tx)
            .await?;
            if complete {
                touch!(self, tx, postgres);
            }
            request
        })
    }

    /// Rejects a pending request (`not_pending`, `window_ended` otherwise; the requester
    /// cannot reject their own request: `self_approval`; they withdraw it by revoking it).
    pub async fn reject_access_request(
        &self,
        id: &str,
        by: &str,
        note: Option<&str>,
        now_us: i64,
    ) -> Result<AccessRequest, StoreError> {
        self.close_access_request(id, by, note, now_us, Close::Reject)
            .await
    }

    /// Revokes an approved request at once, or withdraws a pending one (`not_open` when it is
    /// rejected, revoked or expired).
    pub async fn revoke_access_request(
        &self,
        id: &str,
        by: &str,
        note: Option<&str>,
        now_us: i64,
    ) -> Result<AccessRequest, StoreError> {
        self.close_access_request(id, by, note, now_us, Close::Revoke)
            .await
    }

    async fn close_access_request(
        &self,
        id: &str,
        by: &str,
        note: Option<&str>,
        now_us: i64,
        close: Close,
    ) -> Result<AccessRequest, StoreError> {
        check_field("actor", by, MAX_FIELD)?;
        if let Some(note) = note {
            check_field("note", note, MAX_TEXT)?;
        }
        transaction!(self, |tx, postgres| {
            let Some(mut request) = locked_request!(self, tx, postgres, id) else {
                return Err(self.no_request(id));
            };
            let status = request.status_at(now_us);
            let new_status = match close {
                Close::Reject => {
                    check_decidable(&request, by, now_us, "reject")?;
                    AccessStatus::Rejected
                }
                Close::Revoke => {
                    if !matches!(status, AccessStatus::Pending | AccessStatus::Approved) {
                        return Err(refused(
                            "not_open",
                            format!(
                                "access request `{id}` is {}; only a pending or approved request can be revoked",
                                status.as_str()
                            ),
                        ));
                    }
                    AccessStatus::Revoked
                }
            };
            let was_grant = request.status == AccessStatus::Approved;
            sqlx::query(
                "UPDATE access_requests SET status = $3, closed_by = $4, closed_at_us = $5, closing_note = $6, updated_at_us = $5 WHERE tenant_id = $1 AND request_id = $2",
            )
            .bind(self.tenant.as_str())
            .bind(id)
            .bind(new_status.as_str())
            .bind(by)
            .bind(now_us)
            .bind(note)
            .execute(&mut *tx)
            .await?;
            if was_grant {
                touch!(self, tx, postgres);
            }
            request.status = new_status;
            request.closed_by = Some(by.to_owned());
            request.closed_at_us = Some(now_us);
            request.closing_note = note.map(str::to_owned);
            request.updated_at_us = now_us;
            request
        })
    }

    /// Records as expired every pending or approved request whose window ended by `now_us`,
    /// and returns them (each once, on whichever node records it first). Decisions do not
    /// wait for this: they compare the request's time with the window.
    pub async fn expire_access(&self, now_us: i64) -> Result<Vec<AccessRequest>, StoreError> {
        transaction!(self, |tx, postgres| {
            let sql = format!(
                "UPDATE access_requests SET status = 'expired', closed_at_us = $2, updated_at_us = $2 \
                 WHERE tenant_id = $1 AND status IN ('pending', 'approved') AND not_after_us <= $2 RETURNING {COLUMNS}"
            );
            let mut expired = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant.as_str())
                .bind(now_us)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(request_from)
                .collect::<Result<Vec<_>, _>>()?;
            expired.sort_by(|a, b| a.id.cmp(&b.id));
            if !expired.is_empty() {
                touch!(self, tx, postgres);
            }
            expired
        })
    }
}

/// The tenant's grants (approved requests, not yet revoked or recorded as expired) with their
/// approvals, read inside the transaction of [`TenantStore::runtime`]. No clock is read here:
/// decisions compare their own time with each grant's window.
macro_rules! live_grants {
    ($self:ident, $tx:ident) => {{
        let sql = format!(
            "SELECT {} FROM access_requests WHERE tenant_id = $1 AND status = 'approved' ORDER BY request_id",
            crate::access::COLUMNS
        );
        let mut grants = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind($self.tenant.as_str())
            .fetch_all(&mut *$tx)
            .await?
            .iter()
            .map(crate::access::request_from)
            .collect::<Result<Vec<_>, _>>()?;
        if !grants.is_empty() {
            let approvals = sqlx::query(
                "SELECT request_id, approver, comment, approved_at_us FROM access_approvals WHERE tenant_id = $1 \
                 AND request_id IN (SELECT request_id FROM access_requests WHERE tenant_id = $1 AND status = 'approved') \
                 ORDER BY approved_at_us, approver",
            )
            .bind($self.tenant.as_str())
            .fetch_all(&mut *$tx)
            .await?
            .iter()
            .map(crate::access::approval_from)
            .collect::<Result<Vec<_>, _>>()?;
            crate::access::attach(&mut grants, approvals);
        }
        grants
    }};
}

pub(crate) use live_grants;
