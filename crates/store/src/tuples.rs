//! One tenant's relationship tuples (C3): transactional writes and deletes, filtered and
//! paginated reads, and the change log that nodes replay to keep their in-memory index current.
//!
//! The store treats a tuple as text (`type:id` object, relation, user key, optional condition
//! name and stored context); checking it against the tenant's model is the caller's job, done
//! before anything is written. Every write raises the tenant's data revision first (which locks
//! the tenant's row), so changes are numbered in commit order and a reader that has applied
//! every change up to revision R never later finds one at or below R.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::types::Json;

use crate::backend::{Backend, CHANNEL};
use crate::error::StoreError;
use crate::now_us;
use crate::tenant::TenantStore;

/// Tuples per page when [`TenantStore::all_tuples`] reads from SQLite.
const ALL_TUPLES_PAGE: i64 = 50_000;

/// One tuple of such a page: object type, object id, relation, user key, condition name and
/// stored context.
type PageRow = (
    String,
    String,
    String,
    String,
    String,
    Option<Map<String, Value>>,
);

/// Longest accepted object id, relation or user key, in bytes.
const MAX_PART: usize = 512;

/// A relationship tuple as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTuple {
    /// `type:id` of the object.
    pub object: String,
    /// The relation.
    pub relation: String,
    /// `type:id`, `type:*` or `type:id#relation`.
    pub user: String,
    /// The condition's name, if the tuple is conditional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The condition's stored context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

impl StoredTuple {
    fn key(&self) -> String {
        format!("{}#{}@{}", self.object, self.relation, self.user)
    }

    fn split_object(&self) -> Result<(&str, &str), StoreError> {
        for (what, value) in [
            ("object", self.object.as_str()),
            ("relation", self.relation.as_str()),
            ("user", self.user.as_str()),
        ] {
            if value.is_empty() || value.len() > MAX_PART || value.chars().any(char::is_control) {
                return Err(StoreError::Invalid(format!(
                    "tuple {what} must be 1 to {MAX_PART} bytes without control characters"
                )));
            }
        }
        self.object
            .split_once(':')
            .filter(|(kind, id)| !kind.is_empty() && !id.is_empty())
            .ok_or_else(|| {
                StoreError::Invalid(format!("tuple object `{}` must be `type:id`", self.object))
            })
    }
}

/// What a write or delete does when the tuple is already (or not) there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TupleWriteOptions {
    /// Writing a tuple that exists with the same condition succeeds without a change (it is
    /// still a conflict when the condition differs).
    #[serde(default)]
    pub ignore_duplicates: bool,
    /// Deleting a tuple that does not exist succeeds without a change.
    #[serde(default)]
    pub ignore_missing: bool,
}

/// A filter on reads: any part may be left open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TupleFilter {
    /// Object type.
    #[serde(default)]
    pub object_type: Option<String>,
    /// Object id (with `object_type`).
    #[serde(default)]
    pub object_id: Option<String>,
    /// Relation.
    #[serde(default)]
    pub relation: Option<String>,
    /// Exact user key.
    #[serde(default)]
    pub user: Option<String>,
}

/// One page of a read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadPage {
    /// The tuples, ordered by object, relation and user.
    pub tuples: Vec<StoredTuple>,
    /// Pass back to read the next page; absent on the last page.
    pub continuation: Option<String>,
}

/// Whether a change wrote or deleted its tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TupleOperation {
    /// The tuple was written.
    Write,
    /// The tuple was deleted.
    Delete,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TupleChange {
    /// The data revision of the transaction that made it.
    pub revision: i64,
    /// Write or delete.
    pub operation: TupleOperation,
    /// The tuple (with the condition it had).
    pub tuple: StoredTuple,
    /// When, in microseconds since the Unix epoch.
    pub changed_at_us: i64,
}

/// Encodes a continuation (the last key of a page) as an opaque token.
fn encode_continuation(key: &[&str; 4]) -> String {
    use base64::Engine as _;
    let json = serde_json::to_vec(key).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_continuation(token: &str) -> Result<[String; 4], StoreError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes: Vec<u8>| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            StoreError::Invalid(
                "continuation token is not one this server returned; start the read again without it"
                    .to_owned(),
            )
        })
}

fn tuple_from<R: Row>(row: &R) -> Result<StoredTuple, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Json<Map<String, Value>>>:
        sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let object_type: String = row.try_get("object_type")?;
    let object_id: String = row.try_get("object_id")?;
    let condition: String = row.try_get("condition_name")?;
    let context: Option<Json<Map<String, Value>>> = row.try_get("condition_context")?;
    Ok(StoredTuple {
        object: format!("{object_type}:{object_id}"),
        relation: row.try_get("relation")?,
        user: row.try_get("user_key")?,
        condition: (!condition.is_empty()).then_some(condition),
        context: context.map(|Json(map)| map),
    })
}

impl TenantStore<'_> {
    /// Deletes, then writes, in one transaction; all or nothing. Returns the new data revision
    /// (the consistency token of the change). A write of a tuple that exists, or a delete of
    /// one that does not, fails the whole batch unless `options` says to ignore it.
    pub async fn write_tuples(
        &self,
        writes: &[StoredTuple],
        deletes: &[StoredTuple],
        options: TupleWriteOptions,
    ) -> Result<i64, StoreError> {
        for tuple in writes.iter().chain(deletes) {
            tuple.split_object()?;
        }
        let now = now_us();
        crate::tenant::transaction!(self, |tx, postgres| {
            let revision = crate::tenant::touch!(self, tx, postgres);
            let mut position: i32 = 0;
            for tuple in deletes {
                let (object_type, object_id) = tuple.split_object()?;
                let removed = sqlx::query(
                    "DELETE FROM tuples WHERE tenant_id = $1 AND object_type = $2 AND object_id = $3 AND relation = $4 AND user_key = $5 \
                     RETURNING condition_name, condition_context",
                )
                .bind(self.id().as_str())
                .bind(object_type)
                .bind(object_id)
                .bind(&tuple.relation)
                .bind(&tuple.user)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(removed) = removed else {
                    if options.ignore_missing {
                        continue;
                    }
                    return Err(StoreError::NotFound(format!(
                        "cannot delete tuple `{}`: it does not exist (set ignore_missing to accept this)",
                        tuple.key()
                    )));
                };
                let condition: String = removed.try_get("condition_name")?;
                let context: Option<Json<Map<String, Value>>> =
                    removed.try_get("condition_context")?;
                position += 1;
                sqlx::query(
                    "INSERT INTO tuple_changes (tenant_id, revision, position, operation, object_type, object_id, relation, user_key, condition_name, condition_context, changed_at_us) \
                     VALUES ($1, $2, $3, 'delete', $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(self.id().as_str())
                .bind(revision)
                .bind(position)
                .bind(object_type)
                .bind(object_id)
                .bind(&tuple.relation)
                .bind(&tuple.user)
                .bind(condition)
                .bind(context)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            for tuple in writes {
                let (object_type, object_id) = tuple.split_object()?;
                let condition = tuple.condition.clone().unwrap_or_default();
                let context = tuple.context.clone().map(Json);
                let inserted = sqlx::query(
                    "INSERT INTO tuples (tenant_id, object_type, object_id, relation, user_key, condition_name, condition_context, revision, created_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (tenant_id, object_type, object_id, relation, user_key) DO NOTHING",
                )
                .bind(self.id().as_str())
                .bind(object_type)
                .bind(object_id)
                .bind(&tuple.relation)
                .bind(&tuple.user)
                .bind(&condition)
                .bind(&context)
                .bind(revision)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    let existing = sqlx::query(
                        "SELECT object_type, object_id, relation, user_key, condition_name, condition_context FROM tuples \
                         WHERE tenant_id = $1 AND object_type = $2 AND object_id = $3 AND relation = $4 AND user_key = $5",
                    )
                    .bind(self.id().as_str())
                    .bind(object_type)
                    .bind(object_id)
                    .bind(&tuple.relation)
                    .bind(&tuple.user)
                    .fetch_one(&mut *tx)
                    .await?;
                    let existing = tuple_from(&existing)?;
                    let same = existing.condition == tuple.condition
                        && existing.context.clone().unwrap_or_default()
                            == tuple.context.clone().unwrap_or_default();
                    if options.ignore_duplicates && same {
                        continue;
                    }
                    return Err(StoreError::Conflict(if same {
                        format!(
                            "cannot write tuple `{}`: it already exists (set ignore_duplicates to accept this)",
                            tuple.key()
                        )
                    } else {
                        format!(
                            "cannot write tuple `{}`: it already exists with a different condition; delete it first",
                            tuple.key()
                        )
                    }));
                }
                position += 1;
                sqlx::query(
                    "INSERT INTO tuple_changes (tenant_id, revision, position, operation, object_type, object_id, relation, user_key, condition_name, condition_context, changed_at_us) \
                     VALUES ($1, $2, $3, 'write', $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(self.id().as_str())
                .bind(revision)
                .bind(position)
                .bind(object_type)
                .bind(object_id)
                .bind(&tuple.relation)
                .bind(&tuple.user)
                .bind(&condition)
                .bind(&context)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            revision
        })
    }

    /// One page of tuples matching `filter`, in key order, starting after `continuation`.
    pub async fn read_tuples(
        &self,
        filter: &TupleFilter,
        continuation: Option<&str>,
        limit: u32,
    ) -> Result<ReadPage, StoreError> {
        if filter.object_id.is_some() && filter.object_type.is_none() {
            return Err(StoreError::Invalid(
                "a filter on the object id needs the object type too".to_owned(),
            ));
        }
        let after = match continuation {
            Some(token) => decode_continuation(token)?,
            None => Default::default(),
        };
        let limit = i64::from(limit.clamp(1, 1000));
        // Only fixed fragments go into the text; every value is bound.
        let mut sql = String::from(
            "SELECT object_type, object_id, relation, user_key, condition_name, condition_context FROM tuples WHERE tenant_id = $1",
        );
        let mut bound: Vec<&str> = Vec::new();
        for (column, value) in [
            ("object_type", &filter.object_type),
            ("object_id", &filter.object_id),
            ("relation", &filter.relation),
            ("user_key", &filter.user),
        ] {
            if let Some(value) = value {
                bound.push(value);
                sql.push_str(&format!(" AND {column} = ${}", bound.len() + 1));
            }
        }
        let next = bound.len() + 2;
        sql.push_str(&format!(
            " AND (object_type, object_id, relation, user_key) > (${}, ${}, ${}, ${}) ORDER BY object_type, object_id, relation, user_key LIMIT ${}",
            next,
            next + 1,
            next + 2,
            next + 3,
            next + 4
        ));
        let tuples: Result<Vec<StoredTuple>, StoreError> =
            crate::tenant::transaction!(self, |tx, _postgres| {
                let mut query =
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(self.id().as_str());
                for value in &bound {
                    query = query.bind(*value);
                }
                let rows = query
                    .bind(&after[0])
                    .bind(&after[1])
                    .bind(&after[2])
                    .bind(&after[3])
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                rows.iter().map(tuple_from).collect::<Result<Vec<_>, _>>()?
            });
        let tuples = tuples?;
        let continuation = if i64::try_from(tuples.len()).unwrap_or(i64::MAX) == limit {
            tuples.last().and_then(|last| {
                let (object_type, object_id) = last.object.split_once(':')?;
                Some(encode_continuation(&[
                    object_type,
                    object_id,
                    &last.relation,
                    &last.user,
                ]))
            })
        } else {
            None
        };
        Ok(ReadPage {
            tuples,
            continuation,
        })
    }

    /// Changes made after `since` (a data revision), oldest first, at most `limit`.
    pub async fn tuple_changes(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<TupleChange>, StoreError> {
        let limit = i64::from(limit.max(1));
        crate::tenant::transaction!(self, |tx, _postgres| {
            let rows = sqlx::query(
                "SELECT revision, operation, object_type, object_id, relation, user_key, condition_name, condition_context, changed_at_us \
                 FROM tuple_changes WHERE tenant_id = $1 AND revision > $2 ORDER BY revision, position LIMIT $3",
            )
            .bind(self.id().as_str())
            .bind(since)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let mut changes = Vec::with_capacity(rows.len());
            for row in &rows {
                let operation: String = row.try_get("operation")?;
                changes.push(TupleChange {
                    revision: row.try_get("revision")?,
                    operation: if operation == "delete" {
                        TupleOperation::Delete
                    } else {
                        TupleOperation::Write
                    },
                    tuple: tuple_from(row)?,
                    changed_at_us: row.try_get("changed_at_us")?,
                });
            }
            changes
        })
    }

    /// Every tuple of the tenant and the data revision they were read at (the revision is read
    /// first: replaying the changes after it on top of these tuples converges on the latest
    /// state even if a write commits while the tuples are read).
    ///
    /// This is what a node reads when it builds a tenant's index, so it is built for size: on
    /// SQLite it reads in a deferred transaction (a consistent WAL snapshot that does not hold
    /// up writers) and fetches each page of tuples as one JSON array built by the database,
    /// which costs far less per tuple than decoding a row per tuple.
    pub async fn all_tuples(&self) -> Result<(i64, Vec<StoredTuple>), StoreError> {
        self.all_tuples_paged(ALL_TUPLES_PAGE).await
    }

    /// [`all_tuples`](Self::all_tuples) with SQLite pages of `page` tuples (for tests that
    /// cross page boundaries without writing a page's worth of tuples).
    #[doc(hidden)]
    pub async fn all_tuples_paged(&self, page: i64) -> Result<(i64, Vec<StoredTuple>), StoreError> {
        let page_size = page.max(1);
        let Backend::Sqlite(pool) = self.backend else {
            return crate::tenant::transaction!(self, |tx, _postgres| {
                let revision = sqlx::query_scalar::<_, i64>(
                    "SELECT data_revision FROM tenants WHERE tenant_id = $1",
                )
                .bind(self.id().as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| self.no_tenant())?;
                let rows = sqlx::query(
                    "SELECT object_type, object_id, relation, user_key, condition_name, condition_context FROM tuples WHERE tenant_id = $1",
                )
                .bind(self.id().as_str())
                .fetch_all(&mut *tx)
                .await?;
                let tuples = rows.iter().map(tuple_from).collect::<Result<Vec<_>, _>>()?;
                (revision, tuples)
            });
        };
        let mut tx = pool.begin().await?;
        let revision =
            sqlx::query_scalar::<_, i64>("SELECT data_revision FROM tenants WHERE tenant_id = $1")
                .bind(self.id().as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| self.no_tenant())?;
        let mut tuples = Vec::new();
        let mut after: [String; 4] = Default::default();
        loop {
            let page: Option<String> = sqlx::query_scalar(
                "SELECT json_group_array(json_array(object_type, object_id, relation, user_key, condition_name, json(condition_context))) \
                 FROM (SELECT object_type, object_id, relation, user_key, condition_name, condition_context FROM tuples \
                       WHERE tenant_id = $1 AND (object_type, object_id, relation, user_key) > ($2, $3, $4, $5) \
                       ORDER BY object_type, object_id, relation, user_key LIMIT $6)",
            )
            .bind(self.id().as_str())
            .bind(&after[0])
            .bind(&after[1])
            .bind(&after[2])
            .bind(&after[3])
            .bind(page_size)
            .fetch_one(&mut *tx)
            .await?;
            let rows: Vec<PageRow> = serde_json::from_str(page.as_deref().unwrap_or("[]"))
                .map_err(|e| StoreError::Invalid(format!("stored tuples are not readable: {e}")))?;
            let full = rows.len() as i64 == page_size;
            // Text compares byte by byte in SQLite and in Rust alike, so the greatest key of
            // the page is where the next one starts.
            if let Some(last) = rows.iter().map(|(t, i, r, u, _, _)| [t, i, r, u]).max() {
                after = last.map(String::clone);
            }
            tuples.reserve(rows.len());
            for (object_type, object_id, relation, user, condition, context) in rows {
                tuples.push(StoredTuple {
                    object: format!("{object_type}:{object_id}"),
                    relation,
                    user,
                    condition: (!condition.is_empty()).then_some(condition),
                    context,
                });
            }
            if !full {
                break;
            }
        }
        tx.commit().await?;
        Ok((revision, tuples))
    }
}
