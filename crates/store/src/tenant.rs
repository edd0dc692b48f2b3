//! One tenant's data. Every method runs in a transaction that (on PostgreSQL) first sets the
//! tenant with `set_config('app.tenant_id', …, true)`, and every statement filters by — or
//! writes — this tenant's id. Writes raise the tenant's data revision and, on PostgreSQL,
//! announce the tenant on the change channel when they commit.

use std::collections::BTreeMap;

use portcullis_core::TenantId;
use serde_json::Value;
use sqlx::Row;
use sqlx::types::Json;

use crate::backend::{Backend, CHANNEL};
use crate::error::StoreError;
use crate::now_us;
use crate::records::{
    BundleVersion, RuntimeData, StoredAssignment, StoredBundle, StoredPrincipal, TenantRecord,
    TenantStatus,
};

/// Longest principal id, role name or resource pattern accepted.
const MAX_ID: usize = 256;

/// One tenant's data in the store.
#[derive(Debug)]
pub struct TenantStore<'s> {
    pub(crate) backend: &'s Backend,
    pub(crate) tenant: TenantId,
}

/// Runs `$body` in a transaction scoped to the tenant; `$postgres` tells the body which
/// backend it runs on. An error leaves the body early and the transaction rolls back.
macro_rules! transaction {
    ($self:ident, |$tx:ident, $postgres:ident| $body:block) => {{
        match $self.backend {
            Backend::Sqlite(pool) => {
                // IMMEDIATE takes the write lock up front: a deferred transaction that reads
                // and then writes cannot wait for a busy writer and fails with "locked".
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let $postgres = false;
                let value = $body;
                $tx.commit().await?;
                Ok(value)
            }
            Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                    .bind($self.tenant.as_str())
                    .execute(&mut *$tx)
                    .await?;
                let $postgres = true;
                let value = $body;
                $tx.commit().await?;
                Ok(value)
            }
        }
    }};
}

/// Raises the tenant's data revision (the tenant must exist) and, on PostgreSQL, announces the
/// change at commit. Evaluates to the new revision.
macro_rules! touch {
    ($self:ident, $tx:ident, $postgres:ident) => {{
        let row = sqlx::query(
            "UPDATE tenants SET data_revision = data_revision + 1, updated_at_us = $2 WHERE tenant_id = $1 RETURNING data_revision",
        )
        .bind($self.tenant.as_str())
        .bind(now_us())
        .fetch_optional(&mut *$tx)
        .await?;
        let Some(row) = row else {
            return Err($self.no_tenant());
        };
        if $postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind($self.tenant.as_str())
                .execute(&mut *$tx)
                .await?;
        }
        row.try_get::<i64, _>("data_revision")?
    }};
}

pub(crate) use {touch, transaction};

fn check_id(what: &str, value: &str) -> Result<(), StoreError> {
    // `.` and `..` cannot be addressed in a URL path, so they are not ids.
    if value.is_empty()
        || value == "."
        || value == ".."
        || value.len() > MAX_ID
        || value.chars().any(|c| c.is_control())
    {
        return Err(StoreError::Invalid(format!(
            "{what} must be 1 to {MAX_ID} bytes without control characters, and not `.` or `..`"
        )));
    }
    Ok(())
}

fn check_resource(resource: &str) -> Result<(), StoreError> {
    check_id("resource", resource)?;
    if resource != "*"
        && !resource
            .split_once(':')
            .is_some_and(|(t, i)| !t.is_empty() && !i.is_empty())
    {
        return Err(StoreError::Invalid(format!(
            "resource `{resource}` must be `*` or a `type:id` pattern (`*` may replace either part)"
        )));
    }
    Ok(())
}

impl<'s> TenantStore<'s> {
    pub(crate) fn new(backend: &'s Backend, tenant: TenantId) -> Self {
        TenantStore { backend, tenant }
    }

    /// The tenant this store is scoped to.
    pub fn id(&self) -> &TenantId {
        &self.tenant
    }

    pub(crate) fn no_tenant(&self) -> StoreError {
        StoreError::NotFound(format!("tenant `{}` does not exist", self.tenant))
    }

    // ------------------------------------------------------------------ lifecycle

    /// Creates the tenant; a tenant that exists is a conflict.
    pub async fn create(&self, domain: Option<&str>) -> Result<TenantRecord, StoreError> {
        if let Some(domain) = domain {
            check_id("domain", domain)?;
        }
        let now = now_us();
        let result: Result<(), StoreError> = transaction!(self, |tx, postgres| {
            sqlx::query(
                "INSERT INTO tenants (tenant_id, status, domain, data_revision, created_at_us, updated_at_us) VALUES ($1, 'active', $2, 1, $3, $3)",
            )
            .bind(self.tenant.as_str())
            .bind(domain)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|error| match StoreError::from(error) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("tenant `{}` already exists", self.tenant)),
                other => other,
            })?;
            if postgres {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(self.tenant.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        });
        result?;
        self.get().await?.ok_or_else(|| self.no_tenant())
    }

    /// The tenant's directory record.
    pub async fn get(&self) -> Result<Option<TenantRecord>, StoreError> {
        transaction!(self, |tx, _postgres| {
            let row = sqlx::query(
                "SELECT tenant_id, status, domain, data_revision, active_bundle, created_at_us, updated_at_us FROM tenants WHERE tenant_id = $1",
            )
            .bind(self.tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => None,
                Some(row) => Some(TenantRecord {
                    tenant: self.tenant.clone(),
                    status: TenantStatus::parse(&row.try_get::<String, _>("status")?),
                    domain: row.try_get("domain")?,
                    data_revision: row.try_get("data_revision")?,
                    active_bundle: row.try_get("active_bundle")?,
                    created_at_us: row.try_get("created_at_us")?,
                    updated_at_us: row.try_get("updated_at_us")?,
                }),
            }
        })
    }

    /// Suspends or resumes the tenant.
    pub async fn set_status(&self, status: TenantStatus) -> Result<i64, StoreError> {
        transaction!(self, |tx, postgres| {
            sqlx::query("UPDATE tenants SET status = $2 WHERE tenant_id = $1")
                .bind(self.tenant.as_str())
                .bind(status.as_str())
                .execute(&mut *tx)
                .await?;
            touch!(self, tx, postgres)
        })
    }

    /// Deletes the tenant and all its data.
    pub async fn delete(&self) -> Result<(), StoreError> {
        transaction!(self, |tx, postgres| {
            for statement in [
                "DELETE FROM access_approvals WHERE tenant_id = $1",
                "DELETE FROM access_requests WHERE tenant_id = $1",
                "DELETE FROM tuple_changes WHERE tenant_id = $1",
                "DELETE FROM tuples WHERE tenant_id = $1",
                "DELETE FROM role_assignments WHERE tenant_id = $1",
                "DELETE FROM principals WHERE tenant_id = $1",
                "DELETE FROM bundles WHERE tenant_id = $1",
            ] {
                sqlx::query(statement)
                    .bind(self.tenant.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let deleted = sqlx::query("DELETE FROM tenants WHERE tenant_id = $1")
                .bind(self.tenant.as_str())
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(self.no_tenant());
            }
            if postgres {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(self.tenant.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        })
    }

    // ------------------------------------------------------------------ bundles

    /// Stores a new bundle version and makes it active; returns the version.
    pub async fn put_bundle(
        &self,
        files: &BTreeMap<String, String>,
        revision: &str,
        uploaded_by: &str,
    ) -> Result<BundleVersion, StoreError> {
        check_id("uploader", uploaded_by)?;
        let now = now_us();
        let version: Result<i64, StoreError> = transaction!(self, |tx, postgres| {
            // Lock the tenant's row first, so concurrent uploads take turns choosing the next
            // version (SQLite's IMMEDIATE transaction already serializes them).
            let locked = sqlx::query("UPDATE tenants SET updated_at_us = $2 WHERE tenant_id = $1")
                .bind(self.tenant.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if locked.rows_affected() == 0 {
                return Err(self.no_tenant());
            }
            let row = sqlx::query(
                "SELECT COALESCE(MAX(version), 0) + 1 AS next FROM bundles WHERE tenant_id = $1",
            )
            .bind(self.tenant.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let version: i64 = row.try_get("next")?;
            sqlx::query(
                "INSERT INTO bundles (tenant_id, version, revision, files, uploaded_by, uploaded_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(self.tenant.as_str())
            .bind(version)
            .bind(revision)
            .bind(Json(files))
            .bind(uploaded_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE tenants SET active_bundle = $2 WHERE tenant_id = $1")
                .bind(self.tenant.as_str())
                .bind(version)
                .execute(&mut *tx)
                .await?;
            touch!(self, tx, postgres);
            version
        });
        let version = version?;
        Ok(BundleVersion {
            version,
            revision: revision.to_owned(),
            uploaded_by: uploaded_by.to_owned(),
            uploaded_at_us: now,
            active: true,
        })
    }

    /// Every bundle version, newest first, without files.
    pub async fn bundle_history(&self) -> Result<Vec<BundleVersion>, StoreError> {
        transaction!(self, |tx, _postgres| {
            let active: Option<i64> =
                sqlx::query("SELECT active_bundle FROM tenants WHERE tenant_id = $1")
                    .bind(self.tenant.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| self.no_tenant())?
                    .try_get("active_bundle")?;
            let rows = sqlx::query(
                "SELECT version, revision, uploaded_by, uploaded_at_us FROM bundles WHERE tenant_id = $1 ORDER BY version DESC",
            )
            .bind(self.tenant.as_str())
            .fetch_all(&mut *tx)
            .await?;
            let mut versions = Vec::with_capacity(rows.len());
            for row in rows {
                let version: i64 = row.try_get("version")?;
                versions.push(BundleVersion {
                    version,
                    revision: row.try_get("revision")?,
                    uploaded_by: row.try_get("uploaded_by")?,
                    uploaded_at_us: row.try_get("uploaded_at_us")?,
                    active: active == Some(version),
                });
            }
            versions
        })
    }

    /// A bundle version with its files (the active one when `version` is `None`).
    pub async fn bundle(&self, version: Option<i64>) -> Result<Option<StoredBundle>, StoreError> {
        transaction!(self, |tx, _postgres| {
            let active: Option<i64> =
                sqlx::query("SELECT active_bundle FROM tenants WHERE tenant_id = $1")
                    .bind(self.tenant.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| self.no_tenant())?
                    .try_get("active_bundle")?;
            match version.or(active) {
                None => None,
                Some(wanted) => {
                    let row = sqlx::query(
                        "SELECT version, revision, files, uploaded_by, uploaded_at_us FROM bundles WHERE tenant_id = $1 AND version = $2",
                    )
                    .bind(self.tenant.as_str())
                    .bind(wanted)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match row {
                        None => None,
                        Some(row) => {
                            let Json(files): Json<BTreeMap<String, String>> =
                                row.try_get("files")?;
                            Some(StoredBundle {
                                version: BundleVersion {
                                    version: wanted,
                                    revision: row.try_get("revision")?,
                                    uploaded_by: row.try_get("uploaded_by")?,
                                    uploaded_at_us: row.try_get("uploaded_at_us")?,
                                    active: active == Some(wanted),
                                },
                                files,
                            })
                        }
                    }
                }
            }
        })
    }

    /// Makes an earlier (or later) version active again.
    pub async fn activate_bundle(&self, version: i64) -> Result<i64, StoreError> {
        transaction!(self, |tx, postgres| {
            let exists =
                sqlx::query("SELECT version FROM bundles WHERE tenant_id = $1 AND version = $2")
                    .bind(self.tenant.as_str())
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!(
                    "tenant `{}` has no bundle version {version}",
                    self.tenant
                )));
            }
            sqlx::query("UPDATE tenants SET active_bundle = $2 WHERE tenant_id = $1")
                .bind(self.tenant.as_str())
                .bind(version)
                .execute(&mut *tx)
                .await?;
            touch!(self, tx, postgres)
        })
    }

    // ------------------------------------------------------------------ principals

    /// Creates or replaces a principal managed at run time.
    pub async fn upsert_principal(
        &self,
        id: &str,
        kind: &str,
        attributes: &serde_json::Map<String, Value>,
    ) -> Result<i64, StoreError> {
        check_id("principal id", id)?;
        check_id("principal type", kind)?;
        let now = now_us();
        transaction!(self, |tx, postgres| {
            sqlx::query(
                "INSERT INTO principals (tenant_id, principal_id, kind, attributes, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (tenant_id, principal_id) DO UPDATE SET kind = excluded.kind, attributes = excluded.attributes, updated_at_us = excluded.updated_at_us",
            )
            .bind(self.tenant.as_str())
            .bind(id)
            .bind(kind)
            .bind(Json(attributes))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|error| match StoreError::from(error) {
                StoreError::NotFound(_) => self.no_tenant(),
                other => other,
            })?;
            touch!(self, tx, postgres)
        })
    }

    /// Deletes a principal and its run-time role assignments.
    pub async fn delete_principal(&self, id: &str) -> Result<i64, StoreError> {
        transaction!(self, |tx, postgres| {
            sqlx::query("DELETE FROM role_assignments WHERE tenant_id = $1 AND principal_id = $2")
                .bind(self.tenant.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let deleted =
                sqlx::query("DELETE FROM principals WHERE tenant_id = $1 AND principal_id = $2")
                    .bind(self.tenant.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "principal `{id}` does not exist in tenant `{}`",
                    self.tenant
                )));
            }
            touch!(self, tx, postgres)
        })
    }

    /// One principal.
    pub async fn principal(&self, id: &str) -> Result<Option<StoredPrincipal>, StoreError> {
        transaction!(self, |tx, _postgres| {
            let row = sqlx::query(
                "SELECT principal_id, kind, attributes, updated_at_us FROM principals WHERE tenant_id = $1 AND principal_id = $2",
            )
            .bind(self.tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => None,
                Some(row) => Some(principal_from(&row)?),
            }
        })
    }

    /// Principals in id order, after `after`, at most `limit`.
    pub async fn principals(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredPrincipal>, StoreError> {
        transaction!(self, |tx, _postgres| {
            let rows = sqlx::query(
                "SELECT principal_id, kind, attributes, updated_at_us FROM principals WHERE tenant_id = $1 AND principal_id > $2 ORDER BY principal_id LIMIT $3",
            )
            .bind(self.tenant.as_str())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            rows.iter()
                .map(principal_from)
                .collect::<Result<Vec<_>, _>>()?
        })
    }

    // ------------------------------------------------------------------ role assignments

    /// Assigns a role, everywhere (`resource` = `*`) or on a `type:id` pattern; assigning twice
    /// changes nothing.
    pub async fn assign(
        &self,
        principal: &str,
        role: &str,
        resource: &str,
    ) -> Result<i64, StoreError> {
        check_id("principal id", principal)?;
        check_id("role", role)?;
        check_resource(resource)?;
        let now = now_us();
        transaction!(self, |tx, postgres| {
            sqlx::query(
                "INSERT INTO role_assignments (tenant_id, principal_id, role, resource, created_at_us) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, principal_id, role, resource) DO NOTHING",
            )
            .bind(self.tenant.as_str())
            .bind(principal)
            .bind(role)
            .bind(resource)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|error| match StoreError::from(error) {
                StoreError::NotFound(_) => self.no_tenant(),
                other => other,
            })?;
            touch!(self, tx, postgres)
        })
    }

    /// Removes an assignment; a missing one is not found.
    pub async fn revoke(
        &self,
        principal: &str,
        role: &str,
        resource: &str,
    ) -> Result<i64, StoreError> {
        transaction!(self, |tx, postgres| {
            let deleted = sqlx::query(
                "DELETE FROM role_assignments WHERE tenant_id = $1 AND principal_id = $2 AND role = $3 AND resource = $4",
            )
            .bind(self.tenant.as_str())
            .bind(principal)
            .bind(role)
            .bind(resource)
            .execute(&mut *tx)
            .await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "principal `{principal}` has no role `{role}` on `{resource}` in tenant `{}`",
                    self.tenant
                )));
            }
            touch!(self, tx, postgres)
        })
    }

    /// Run-time assignments, of one principal or of all.
    pub async fn assignments(
        &self,
        principal: Option<&str>,
    ) -> Result<Vec<StoredAssignment>, StoreError> {
        transaction!(self, |tx, _postgres| {
            let rows = match principal {
                Some(principal) => {
                    sqlx::query(
                        "SELECT principal_id, role, resource FROM role_assignments WHERE tenant_id = $1 AND principal_id = $2 ORDER BY principal_id, role, resource",
                    )
                    .bind(self.tenant.as_str())
                    .bind(principal)
                    .fetch_all(&mut *tx)
                    .await?
                }
                None => {
                    sqlx::query(
                        "SELECT principal_id, role, resource FROM role_assignments WHERE tenant_id = $1 ORDER BY principal_id, role, resource",
                    )
                    .bind(self.tenant.as_str())
                    .fetch_all(&mut *tx)
                    .await?
                }
            };
            let mut assignments = Vec::with_capacity(rows.len());
            for row in rows {
                assignments.push(StoredAssignment {
                    principal: row.try_get("principal_id")?,
                    role: row.try_get("role")?,
                    resource: row.try_get("resource")?,
                });
            }
            assignments
        })
    }

    /// The tenant's record, principals and assignments, read together.
    pub async fn runtime(&self) -> Result<RuntimeData, StoreError> {
        transaction!(self, |tx, _postgres| {
            let row = sqlx::query(
                "SELECT status, domain, data_revision, active_bundle, created_at_us, updated_at_us FROM tenants WHERE tenant_id = $1",
            )
            .bind(self.tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| self.no_tenant())?;
            let tenant = TenantRecord {
                tenant: self.tenant.clone(),
                status: TenantStatus::parse(&row.try_get::<String, _>("status")?),
                domain: row.try_get("domain")?,
                data_revision: row.try_get("data_revision")?,
                active_bundle: row.try_get("active_bundle")?,
                created_at_us: row.try_get("created_at_us")?,
                updated_at_us: row.try_get("updated_at_us")?,
            };
            let principals = sqlx::query(
                "SELECT principal_id, kind, attributes, updated_at_us FROM principals WHERE tenant_id = $1 ORDER BY principal_id",
            )
            .bind(self.tenant.as_str())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(principal_from)
            .collect::<Result<Vec<_>, _>>()?;
            let mut assignments = Vec::new();
            for row in sqlx::query(
                "SELECT principal_id, role, resource FROM role_assignments WHERE tenant_id = $1 ORDER BY principal_id, role, resource",
            )
            .bind(self.tenant.as_str())
            .fetch_all(&mut *tx)
            .await?
            {
                assignments.push(StoredAssignment {
                    principal: row.try_get("principal_id")?,
                    role: row.try_get("role")?,
                    resource: row.try_get("resource")?,
                });
            }
            let grants = crate::access::live_grants!(self, tx);
            RuntimeData {
                tenant,
                principals,
                assignments,
                grants,
            }
        })
    }
}

fn principal_from<R: Row>(row: &R) -> Result<StoredPrincipal, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Json<serde_json::Map<String, Value>>:
        sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let Json(attributes): Json<serde_json::Map<String, Value>> = row.try_get("attributes")?;
    Ok(StoredPrincipal {
        id: row.try_get("principal_id")?,
        kind: row.try_get("kind")?,
        attributes,
        updated_at_us: row.try_get("updated_at_us")?,
    })
}
