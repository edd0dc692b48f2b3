//! Test harness of the store: both backends (SQLite in a temporary folder, PostgreSQL in a
//! fresh database per test, reached as the unprivileged service role), and the statement audit
//! that captures every SQL statement sqlx executes and fails on any that touches a tenant table
//! without naming its tenant.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::sync::{Mutex, OnceLock};

use portcullis_store::{Store, StoreConfig, TENANT_TABLES};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

// ------------------------------------------------------------------ statement audit

static STATEMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

#[derive(Default)]
struct Fields {
    summary: String,
    statement: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "summary" => self.summary = text.trim_matches('"').to_owned(),
            "db.statement" => self.statement = text.trim_matches('"').to_owned(),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // sqlx logs the full text only when it differs from the summary.
        let sql = if fields.statement.trim().is_empty() {
            fields.summary
        } else {
            fields.statement
        };
        STATEMENTS
            .lock()
            .unwrap()
            .push(sql.replace("\\n", "\n").trim().to_owned());
    }
}

/// Installs the capture (once per process).
pub fn audit_on() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("sqlx::query", tracing::Level::TRACE);
        tracing_subscriber::registry()
            .with(Capture.with_filter(filter))
            .init();
    });
}

use tracing_subscriber::Layer as _;

/// Why a statement breaks the rule, if it does. A statement that reads, changes or deletes rows
/// of a tenant table must filter by `tenant_id = $n`; one that inserts must write `tenant_id`.
pub fn violation(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    let compact: String = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    let exempt = [
        "begin",
        "commit",
        "rollback",
        "savepoint",
        "release",
        "create",
        "alter",
        "drop",
        "grant",
        "revoke",
        "do ",
        "select set_config(",
        "select pg_notify(",
        "listen",
        "unlisten",
        "pragma",
        "set ",
    ];
    if exempt.iter().any(|prefix| compact.starts_with(prefix))
        || compact.contains("_sqlx_migrations")
        || compact.contains("/* directory */")
        // The tests' own probes of the row-level security backstop bypass the store on purpose.
        || compact.contains("/* rls-probe */")
        || compact.contains("portcullis_directory()")
    {
        return None;
    }
    let touched: Vec<&str> = TENANT_TABLES
        .iter()
        .copied()
        .filter(|table| {
            [" from ", " into ", "update ", " join "]
                .iter()
                .any(|keyword| {
                    compact.contains(&format!("{keyword}{table}"))
                        || compact.starts_with(&format!("{}{table}", keyword.trim_start()))
                })
        })
        .collect();
    if touched.is_empty() {
        return None;
    }
    // The store never needs OR on tenant tables, and an OR beside the tenant predicate can
    // widen it (`tenant_id = $1 OR …`).
    if compact.contains(" or ") {
        return Some(format!(
            "a statement on {touched:?} uses OR, which can widen the tenant predicate: {sql}"
        ));
    }
    if compact.starts_with("insert") {
        let columns = compact
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(cols, _)| cols);
        return match columns {
            Some(cols) if cols.split(',').any(|c| c.trim() == "tenant_id") => None,
            _ => Some(format!(
                "an insert into {touched:?} does not write tenant_id: {sql}"
            )),
        };
    }
    if compact.contains("tenant_id = $") || compact.contains("tenant_id = ?") {
        None
    } else {
        Some(format!(
            "a statement on {touched:?} does not filter by tenant_id: {sql}"
        ))
    }
}

/// Checks every statement captured so far and returns how many there were.
pub fn audit_check() -> usize {
    let statements = STATEMENTS.lock().unwrap();
    let problems: Vec<String> = statements.iter().filter_map(|sql| violation(sql)).collect();
    assert!(
        problems.is_empty(),
        "statements without the tenant predicate:\n{}",
        problems.join("\n")
    );
    statements.len()
}

/// How many statements were captured so far.
pub fn captured_count() -> usize {
    STATEMENTS.lock().unwrap().len()
}

/// Statements captured so far.
pub fn captured() -> Vec<String> {
    STATEMENTS.lock().unwrap().clone()
}

// ------------------------------------------------------------------ backends

/// A backend for a test, cleaned up on drop.
pub struct TestStore {
    pub store: Store,
    pub name: &'static str,
    pub database: Option<String>,
    _dir: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A temporary folder removed on drop.
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

pub const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Whether PostgreSQL is reachable; under `CI=true` its absence fails the test.
pub async fn postgres_available() -> bool {
    let reachable = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        sqlx::PgPool::connect(POSTGRES_ADMIN),
    )
    .await
    .is_ok_and(|result| result.is_ok());
    if !reachable {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("PostgreSQL at 127.0.0.1:5432 is not reachable, and CI=true requires it");
        }
        eprintln!(
            "notice: PostgreSQL at 127.0.0.1:5432 is not reachable; skipping the PostgreSQL half of this test"
        );
    }
    reachable
}

/// A fresh SQLite store in a temporary folder.
pub async fn sqlite() -> TestStore {
    sqlite_with(0, None).await
}

/// A fresh SQLite store with a pool of `max_connections` (0: the store's default), in a new
/// folder under `parent` (the system's temporary folder when `None`).
pub async fn sqlite_with(max_connections: u32, parent: Option<&std::path::Path>) -> TestStore {
    audit_on();
    let dir = parent
        .map_or_else(std::env::temp_dir, std::path::Path::to_path_buf)
        .join(format!("portcullis-store-{}", random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("store.db").display());
    let store = Store::open(&StoreConfig {
        url,
        max_connections,
        ..StoreConfig::default()
    })
    .await
    .unwrap();
    TestStore {
        store,
        name: "sqlite",
        database: None,
        _dir: Some(tempfile_dir::TempDir(dir)),
    }
}

/// Creates a fresh PostgreSQL database and returns (service url, owner url, name).
pub async fn fresh_postgres_database() -> (String, String, String) {
    let name = format!("portcullis_t_{}", random_suffix());
    let admin = sqlx::PgPool::connect(POSTGRES_ADMIN).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    (
        format!("postgres://portcullis_service@127.0.0.1:5432/{name}"),
        format!("postgres://postgres@127.0.0.1:5432/{name}"),
        name,
    )
}

/// A fresh PostgreSQL store reached as the service role (migrations run as the owner).
pub async fn postgres() -> TestStore {
    postgres_with(0, true).await
}

/// A fresh PostgreSQL store reached as the service role with a pool of `max_connections` (0:
/// the store's default). Without `tls`, the service connections to the local server skip TLS
/// (`sslmode=disable`), which saves CPU in workloads of many short statements.
pub async fn postgres_with(max_connections: u32, tls: bool) -> TestStore {
    audit_on();
    let (mut url, owner, name) = fresh_postgres_database().await;
    if !tls {
        url.push_str("?sslmode=disable");
    }
    let store = Store::open(&StoreConfig {
        url,
        migrate_url: Some(owner),
        max_connections,
        ..StoreConfig::default()
    })
    .await
    .unwrap();
    TestStore {
        store,
        name: "postgres",
        database: Some(name),
        _dir: None,
    }
}

/// Drops a test database.
pub async fn drop_database(name: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(POSTGRES_ADMIN).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
    }
}

impl TestStore {
    /// Closes the store and drops its database.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some(name) = &self.database {
            drop_database(name).await;
        }
    }
}

/// Both backends (PostgreSQL only when reachable).
pub async fn backends() -> Vec<TestStore> {
    let mut all = vec![sqlite().await];
    if postgres_available().await {
        all.push(postgres().await);
    }
    all
}
