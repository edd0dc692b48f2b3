//! Tenant-scoped PostgreSQL transactions: the run-time half of the database backstop.
//!
//! This module owns the one way tenant data is reached on PostgreSQL: a transaction whose first
//! statement is `SELECT set_config('app.tenant_id', $1, true)`. The third argument makes the
//! setting transaction-local, so it ends with the transaction and can never leak to the next user
//! of a pooled connection; this module must never issue a session-level `SET`. Together with the
//! policies from [`super::rls`] and a service role that neither owns the tables nor has
//! `BYPASSRLS`, a query that forgot its tenant predicate sees no rows at all.
//!
//! Only sqlx's run-time query API is used, so nothing here needs a database at compile time.

use sqlx::{Acquire, Postgres, Transaction};

use crate::TenantId;

/// The statement that sets the tenant: transaction-local (`true`), the id bound as `$1`.
pub const SET_TENANT_SQL: &str = "SELECT set_config('app.tenant_id', $1, true)";

/// Starts a transaction on `connection` (a `&PgPool`, a `&mut PgConnection`, or a transaction,
/// which opens a savepoint) and sets the tenant for its lifetime.
///
/// ```no_run
/// # async fn example(pool: sqlx::PgPool, tenant: portcullis_tenant::TenantId) -> Result<(), sqlx::Error> {
/// let mut tx = portcullis_tenant::toolkit::begin(&pool, &tenant).await?;
/// let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM items WHERE tenant_id = $1")
///     .bind(tenant.as_str())
///     .fetch_all(&mut *tx)
///     .await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub async fn begin<'c, C>(
    connection: C,
    tenant: &TenantId,
) -> Result<Transaction<'c, Postgres>, sqlx::Error>
where
    C: Acquire<'c, Database = Postgres>,
{
    let mut transaction = connection.begin().await?;
    set_tenant(&mut transaction, tenant).await?;
    Ok(transaction)
}

/// Sets (or changes) the tenant of an open transaction, until it ends.
pub async fn set_tenant(
    transaction: &mut Transaction<'_, Postgres>,
    tenant: &TenantId,
) -> Result<(), sqlx::Error> {
    sqlx::query(SET_TENANT_SQL)
        .bind(tenant.as_str())
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolkit::rls::TENANT_SETTING;

    #[test]
    fn the_statement_sets_the_setting_the_policies_read_and_is_transaction_local() {
        assert!(SET_TENANT_SQL.contains(&format!("'{TENANT_SETTING}'")));
        assert!(SET_TENANT_SQL.ends_with(", $1, true)"));
    }
}
