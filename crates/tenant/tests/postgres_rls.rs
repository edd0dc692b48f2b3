#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests fail by panicking"
)]
//! The database backstop against the real PostgreSQL: `rls_statements` applied to a throwaway
//! table, and `begin` seen through a non-owner role without `BYPASSRLS`.
//!
//! PostgreSQL is expected on 127.0.0.1:5432 (user `postgres`, trust authentication, database
//! `test`), or wherever `PORTCULLIS_TEST_DATABASE_URL` points. When it is unreachable the test
//! prints a notice and passes, except under `CI=true`, where it fails.
//!
//! Every run creates its own schema and role with random names, so parallel runs do not collide,
//! and drops both at the end, also when an assertion fails.
#![cfg(feature = "postgres")]

use std::time::Duration;

use portcullis_tenant::TenantId;
use portcullis_tenant::toolkit::{begin, rls_statements};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row, Transaction};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn connect() -> Option<PgPool> {
    let url = std::env::var("PORTCULLIS_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await;
    match pool {
        Ok(pool) => Some(pool),
        Err(error) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("PostgreSQL at {url} is unreachable under CI=true: {error}")
        }
        Err(error) => {
            eprintln!(
                "NOTICE: skipping the PostgreSQL row-level-security test: {url} is unreachable ({error})"
            );
            None
        }
    }
}

#[derive(Clone)]
struct Names {
    schema: String,
    role: String,
}

impl Names {
    fn unique() -> Self {
        let mut random = [0_u8; 8];
        getrandom::fill(&mut random).unwrap();
        let suffix = hex::encode(random);
        Names {
            schema: format!("pc_rls_{suffix}"),
            role: format!("pc_rls_role_{suffix}"),
        }
    }

    fn table(&self) -> String {
        format!("{}.items", self.schema)
    }
}

#[tokio::test]
async fn row_level_security_confines_each_transaction_to_its_tenant() {
    let Some(pool) = connect().await else {
        return;
    };
    let names = Names::unique();
    // Run the checks in their own task so a failed assertion still reaches the clean-up.
    let outcome = tokio::spawn(checks(pool.clone(), names.clone())).await;
    let cleaned = clean_up(&pool, &names).await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
    cleaned.unwrap();
}

async fn clean_up(pool: &PgPool, names: &Names) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        names.schema
    )))
    .execute(pool)
    .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&names.role)
            .fetch_one(pool)
            .await?;
    if exists {
        sqlx::query(AssertSqlSafe(format!("DROP OWNED BY {}", names.role)))
            .execute(pool)
            .await?;
        sqlx::query(AssertSqlSafe(format!("DROP ROLE {}", names.role)))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Becomes the service role for the rest of the transaction (the connection itself stays the
/// superuser's, so the test needs no password for the role).
async fn as_service_role(tx: &mut Transaction<'_, Postgres>, names: &Names) {
    sqlx::query(AssertSqlSafe(format!("SET LOCAL ROLE {}", names.role)))
        .execute(&mut **tx)
        .await
        .unwrap();
}

async fn visible_names(tx: &mut Transaction<'_, Postgres>, names: &Names) -> Vec<String> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT name FROM {} ORDER BY name",
        names.table()
    )))
    .fetch_all(&mut **tx)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get::<String, _>("name"))
    .collect()
}

async fn checks(pool: PgPool, names: Names) {
    let (a, b) = (
        TenantId::new("tenant-a").unwrap(),
        TenantId::new("tenant-b").unwrap(),
    );
    let table = names.table();

    // Schema, table and data, as the owner.
    for statement in [
        format!("CREATE SCHEMA {}", names.schema),
        format!(
            "CREATE TABLE {table} (id bigserial PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL)"
        ),
        format!(
            "INSERT INTO {table} (tenant_id, name) VALUES ('tenant-a', 'a1'), ('tenant-a', 'a2'), ('tenant-b', 'b1')"
        ),
    ] {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&pool)
            .await
            .unwrap();
    }
    for statement in rls_statements(&table, "tenant_id").unwrap() {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&pool)
            .await
            .unwrap();
    }
    let (enabled, forced): (bool, bool) = sqlx::query_as(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'items'",
    )
    .bind(&names.schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        enabled && forced,
        "row-level security enabled {enabled}, forced {forced}"
    );

    // The service role: not the owner, no BYPASSRLS, not a superuser.
    for statement in [
        format!(
            "CREATE ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT",
            names.role
        ),
        format!("GRANT USAGE ON SCHEMA {} TO {}", names.schema, names.role),
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {}",
            names.role
        ),
        format!("GRANT USAGE ON SEQUENCE {table}_id_seq TO {}", names.role),
    ] {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&pool)
            .await
            .unwrap();
    }
    let (bypass, superuser): (bool, bool) =
        sqlx::query_as("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = $1")
            .bind(&names.role)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!bypass && !superuser);

    // Inside begin(pool, A) only A's rows are visible; likewise for B.
    let mut tx = begin(&pool, &a).await.unwrap();
    as_service_role(&mut tx, &names).await;
    assert_eq!(visible_names(&mut tx, &names).await, ["a1", "a2"]);
    // Even asking for B's rows explicitly returns nothing.
    let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE tenant_id = 'tenant-b'"
    )))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(count, 0);
    tx.rollback().await.unwrap();

    let mut tx = begin(&pool, &b).await.unwrap();
    as_service_role(&mut tx, &names).await;
    assert_eq!(visible_names(&mut tx, &names).await, ["b1"]);
    tx.rollback().await.unwrap();

    // Without setting the tenant, nothing is visible and nothing can be written.
    let mut tx = pool.begin().await.unwrap();
    as_service_role(&mut tx, &names).await;
    assert!(visible_names(&mut tx, &names).await.is_empty());
    let error = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (tenant_id, name) VALUES ('tenant-a', 'x')"
    )))
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(error.to_string().contains("row-level security"), "{error}");
    tx.rollback().await.unwrap();

    // Inside A's transaction, a row claiming B is refused.
    let mut tx = begin(&pool, &a).await.unwrap();
    as_service_role(&mut tx, &names).await;
    let error = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (tenant_id, name) VALUES ($1, 'b2')"
    )))
    .bind(b.as_str())
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(error.to_string().contains("row-level security"), "{error}");
    tx.rollback().await.unwrap();

    // Moving one of A's rows to B is refused too (WITH CHECK applies to updates).
    let mut tx = begin(&pool, &a).await.unwrap();
    as_service_role(&mut tx, &names).await;
    let error = sqlx::query(AssertSqlSafe(format!(
        "UPDATE {table} SET tenant_id = 'tenant-b' WHERE name = 'a1'"
    )))
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(error.to_string().contains("row-level security"), "{error}");
    tx.rollback().await.unwrap();

    // Writes of A's own rows work, and an unfiltered DELETE reaches only A's rows.
    let mut tx = begin(&pool, &a).await.unwrap();
    as_service_role(&mut tx, &names).await;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (tenant_id, name) VALUES ($1, 'a3')"
    )))
    .bind(a.as_str())
    .execute(&mut *tx)
    .await
    .unwrap();
    let deleted = sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted, 3);
    tx.rollback().await.unwrap();
    let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 3, "the rolled-back delete left every row in place");

    // The tenant setting ends with its transaction: the same connection, used next without a
    // tenant, sees nothing.
    let mut connection = pool.acquire().await.unwrap();
    let tx = begin(&mut *connection, &a).await.unwrap();
    tx.commit().await.unwrap();
    let setting: Option<String> =
        sqlx::query_scalar("SELECT current_setting('app.tenant_id', true)")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
    assert!(
        setting.unwrap_or_default().is_empty(),
        "the tenant outlived its transaction"
    );
    let mut tx = sqlx::Acquire::begin(&mut *connection).await.unwrap();
    as_service_role(&mut tx, &names).await;
    assert!(visible_names(&mut tx, &names).await.is_empty());
    tx.rollback().await.unwrap();
}
