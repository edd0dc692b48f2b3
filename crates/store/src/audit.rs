//! One tenant's audit stream in the store (C6), for deployments that keep the trail in
//! PostgreSQL rather than in files.
//!
//! The store keeps lines, not records: each row is one line of the tenant's stream (a record or
//! a signed checkpoint) in the canonical encoding the audit crate produced, numbered by
//! `position` in write order, with a few fields copied into columns for lookups. Chaining,
//! signing and verification belong to the audit crate; this module only appends and reads.
//! It never updates or deletes (on PostgreSQL the service role has no privilege to).

use serde::Serialize;
use sqlx::Row;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::tenant::TenantStore;

/// One line of a tenant's audit stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditLine {
    /// Position in the tenant's stream, from 1, without gaps.
    pub position: i64,
    /// Sequence number of the record (of the record it covers, for a checkpoint).
    pub seq: i64,
    /// `decision`, `change` or `checkpoint`.
    pub kind: String,
    /// Time of the line, microseconds since the Unix epoch.
    pub ts_us: i64,
    /// Who acted (already masked).
    pub actor: String,
    /// What was done.
    pub action: String,
    /// How it ended.
    pub outcome: String,
    /// Trace id of the request.
    pub trace_id: String,
    /// The line itself, in canonical encoding.
    pub line: String,
}

/// A lookup of audit lines; every part may be left open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// From this time (inclusive), microseconds since the Unix epoch.
    pub from_us: Option<i64>,
    /// Until this time (exclusive).
    pub to_us: Option<i64>,
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Exact outcome.
    pub outcome: Option<String>,
    /// Exact trace id.
    pub trace_id: Option<String>,
    /// Exact kind.
    pub kind: Option<String>,
    /// Records only: leave checkpoint lines out.
    pub records_only: bool,
}

const COLUMNS: &str = "position, seq, kind, ts_us, actor, action, outcome, trace_id, line";

fn line_from<R: Row>(row: &R) -> Result<AuditLine, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok(AuditLine {
        position: row.try_get("position")?,
        seq: row.try_get("seq")?,
        kind: row.try_get("kind")?,
        ts_us: row.try_get("ts_us")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        outcome: row.try_get("outcome")?,
        trace_id: row.try_get("trace_id")?,
        line: row.try_get("line")?,
    })
}

impl TenantStore<'_> {
    /// Appends lines in one transaction. Positions must continue the stream: a position
    /// already taken (another writer got there first) fails the whole append. On PostgreSQL the
    /// batch is one statement (one row per array element); SQLite inserts row by row inside
    /// the transaction (cheap there, no round trips).
    pub async fn append_audit(&self, lines: &[AuditLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        if let Backend::Postgres(pool) = self.backend {
            // Array binds exist on PostgreSQL only, so this path does not go through the
            // backend-generic transaction macro; it does what the macro does: scope the
            // transaction to the tenant first.
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                .bind(self.id().as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO audit_log (tenant_id, position, seq, kind, ts_us, actor, action, outcome, trace_id, line) \
                 SELECT $1, batch.* FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) \
                 AS batch (position, seq, kind, ts_us, actor, action, outcome, trace_id, line)",
            )
            .bind(self.id().as_str())
            .bind(lines.iter().map(|l| l.position).collect::<Vec<i64>>())
            .bind(lines.iter().map(|l| l.seq).collect::<Vec<i64>>())
            .bind(lines.iter().map(|l| l.kind.as_str()).collect::<Vec<&str>>())
            .bind(lines.iter().map(|l| l.ts_us).collect::<Vec<i64>>())
            .bind(lines.iter().map(|l| l.actor.as_str()).collect::<Vec<&str>>())
            .bind(lines.iter().map(|l| l.action.as_str()).collect::<Vec<&str>>())
            .bind(lines.iter().map(|l| l.outcome.as_str()).collect::<Vec<&str>>())
            .bind(lines.iter().map(|l| l.trace_id.as_str()).collect::<Vec<&str>>())
            .bind(lines.iter().map(|l| l.line.as_str()).collect::<Vec<&str>>())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        crate::tenant::transaction!(self, |tx, _postgres| {
            for line in lines {
                sqlx::query(
                    "INSERT INTO audit_log (tenant_id, position, seq, kind, ts_us, actor, action, outcome, trace_id, line) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(self.id().as_str())
                .bind(line.position)
                .bind(line.seq)
                .bind(&line.kind)
                .bind(line.ts_us)
                .bind(&line.actor)
                .bind(&line.action)
                .bind(&line.outcome)
                .bind(&line.trace_id)
                .bind(&line.line)
                .execute(&mut *tx)
                .await?;
            }
        })
    }

    /// Lines after `after` (a position), in order, at most `limit`.
    pub async fn audit_lines(&self, after: i64, limit: u32) -> Result<Vec<AuditLine>, StoreError> {
        let limit = i64::from(limit.max(1));
        crate::tenant::transaction!(self, |tx, _postgres| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 AND position > $2 ORDER BY position LIMIT $3"
            )))
            .bind(self.id().as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(line_from)
            .collect::<Result<Vec<_>, _>>()?
        })
    }

    /// The last `count` lines, in order.
    pub async fn audit_tail(&self, count: u32) -> Result<Vec<AuditLine>, StoreError> {
        let count = i64::from(count.max(1));
        let lines: Result<Vec<AuditLine>, StoreError> = crate::tenant::transaction!(
            self,
            |tx, _postgres| {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 ORDER BY position DESC LIMIT $2"
            )))
            .bind(self.id().as_str())
            .bind(count)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(line_from)
            .collect::<Result<Vec<_>, _>>()?
            }
        );
        let mut lines = lines?;
        lines.reverse();
        Ok(lines)
    }

    /// Lines matching `filter` after position `after`, in order, at most `limit`.
    pub async fn audit_query(
        &self,
        filter: &AuditFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditLine>, StoreError> {
        let limit = i64::from(limit.clamp(1, 10_000));
        // Only fixed fragments go into the text; every value is bound.
        let mut sql =
            format!("SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 AND position > $2");
        let mut texts: Vec<&str> = Vec::new();
        let mut numbers: Vec<i64> = Vec::new();
        let mut next = 3;
        for (column, value) in [
            ("actor", &filter.actor),
            ("action", &filter.action),
            ("outcome", &filter.outcome),
            ("trace_id", &filter.trace_id),
            ("kind", &filter.kind),
        ] {
            if let Some(value) = value {
                texts.push(value);
                sql.push_str(&format!(" AND {column} = ${next}"));
                next += 1;
            }
        }
        for (comparison, value) in [(">=", filter.from_us), ("<", filter.to_us)] {
            if let Some(value) = value {
                numbers.push(value);
                sql.push_str(&format!(" AND ts_us {comparison} ${next}"));
                next += 1;
            }
        }
        if filter.records_only {
            sql.push_str(" AND kind <> 'checkpoint'");
        }
        sql.push_str(&format!(" ORDER BY position LIMIT ${next}"));
        crate::tenant::transaction!(self, |tx, _postgres| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(self.id().as_str())
                .bind(after);
            for text in &texts {
                query = query.bind(*text);
            }
            for number in &numbers {
                query = query.bind(*number);
            }
            query
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(line_from)
                .collect::<Result<Vec<_>, _>>()?
        })
    }
}
