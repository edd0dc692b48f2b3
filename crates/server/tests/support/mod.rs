//! Helpers for the server's integration tests: start a server in this process on ephemeral
//! ports with a fixed clock, mint tokens, copy the demo bundles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]
#![allow(dead_code, reason = "each test file uses a different subset")]

pub mod load;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_server::{Config, Overrides, RunningServer, start};
use serde_json::{Value, json};

/// The HMAC secret of the test issuer.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";
/// The test issuer.
pub const ISSUER: &str = "https://idp.test";
/// The admin token configured for tests.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
/// An auditor token configured for tests.
pub const AUDIT_TOKEN: &str = "audit-token-0123456789abcdef";

/// The demo bundles folder.
pub fn demo_bundles() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles")
}

/// Copies the demo bundles into `into`, returning the bundles folder.
pub fn copy_demo(into: &Path) -> PathBuf {
    let root = into.join("bundles");
    for tenant in std::fs::read_dir(demo_bundles()).unwrap().flatten() {
        let target = root.join(tenant.file_name());
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(tenant.path()).unwrap().flatten() {
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    root
}

/// A fresh folder for a server's data (its embedded store and generated key), kept for the
/// life of the test process's temporary directory.
pub fn data_dir() -> PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let dir = std::env::temp_dir().join(format!("portcullis-test-{}", hex::encode(bytes)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config on ephemeral ports serving `bundles`, with the test issuer and admin tokens and a
/// fresh data folder.
pub fn config_text(bundles: &Path, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
bundles = ["{bundles}"]
data_dir = "{data}"

[reload]
debounce_ms = 50

[admin]
listen = "127.0.0.1:0"
[[admin.tokens]]
name = "ops"
token = "{ADMIN_TOKEN}"
[[admin.tokens]]
name = "audit"
token = "{AUDIT_TOKEN}"

[identity]
attribute_claims = ["department"]
[[identity.issuers]]
issuer = "{ISSUER}"
audiences = ["portcullis"]
secret_env = "TEST_SECRET"
{extra}
"#,
        bundles = bundles.display(),
        data = data_dir().display()
    )
}

/// Parses a config, with `TEST_SECRET` set to [`SECRET`].
pub fn config(text: &str) -> Config {
    Config::parse(text, Path::new("."), &Overrides::default(), &|name| {
        (name == "TEST_SECRET").then(|| SECRET.to_owned())
    })
    .unwrap()
}

/// The error a config with `extra` (see [`config_text`]) is refused with.
pub fn config_error(bundles: &Path, extra: &str) -> String {
    Config::parse(
        &config_text(bundles, extra),
        Path::new("."),
        &Overrides::default(),
        &|name| (name == "TEST_SECRET").then(|| SECRET.to_owned()),
    )
    .expect_err(extra)
    .to_string()
}

/// 16:00 on Monday 2026-03-02 in Shanghai: a trading day, after the close.
pub fn trading_day_after_close() -> jiff::Timestamp {
    "2026-03-02T16:00:00+08:00".parse().unwrap()
}

/// Starts a server on the demo bundles (or `bundles`) at a fixed time.
pub async fn server_on(bundles: &Path, extra: &str, now: jiff::Timestamp) -> RunningServer {
    start(
        config(&config_text(bundles, extra)),
        Some(Arc::new(move || now)),
    )
    .await
    .unwrap()
}

/// Starts a server on the demo bundles at 16:00 on a trading day.
pub async fn demo_server() -> RunningServer {
    server_on(&demo_bundles(), "", trading_day_after_close()).await
}

/// A token from the test issuer with `claims` merged over sensible defaults.
pub fn token(claims: Value) -> String {
    let now = jiff::Timestamp::now().as_second();
    let mut all = json!({
        "iss": ISSUER,
        "aud": "portcullis",
        "sub": "alice",
        "tenant": "acme",
        "exp": now + 600,
        "iat": now,
    });
    for (key, value) in claims.as_object().unwrap() {
        if value.is_null() {
            all.as_object_mut().unwrap().remove(key);
        } else {
            all[key] = value.clone();
        }
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &all,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The PostgreSQL server's administrative connection.
pub const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh PostgreSQL database named `PREFIX_<random>`, or `None` when PostgreSQL is
/// unreachable (which fails the test under `CI=true`).
pub async fn fresh_postgres(prefix: &str) -> Option<String> {
    let reachable = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        sqlx::PgPool::connect(POSTGRES_ADMIN),
    )
    .await;
    let Ok(Ok(admin)) = reachable else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("PostgreSQL at 127.0.0.1:5432 is not reachable, and CI=true requires it");
        }
        eprintln!("notice: PostgreSQL is not reachable; skipping this PostgreSQL test");
        return None;
    };
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let name = format!("{prefix}_{}", hex::encode(bytes));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    Some(name)
}

/// Drops a database made by [`fresh_postgres`].
pub async fn drop_database(name: &str) {
    let admin = sqlx::PgPool::connect(POSTGRES_ADMIN).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
}

/// The `[store]` and `[audit]` sections of a server keeping everything in PostgreSQL database
/// `database` (as the service role, migrated by the owner).
pub fn postgres_sections(database: &str) -> String {
    format!(
        "[store]\nurl = \"postgres://portcullis_service@127.0.0.1:5432/{database}?sslmode=disable\"\n\
         migrate_url = \"postgres://postgres@127.0.0.1:5432/{database}\"\n\
         [audit]\nbackend = \"store\"\nflush_interval_ms = 2\n"
    )
}

/// A write the demo bundle allows while the supply-chain signal is low: the inventory service
/// increases a stock level.
pub fn inventory_write() -> Value {
    json!({
        "tenant": "acme",
        "principal": { "id": "inventory-service" },
        "action": "inventory:increase",
        "resource": { "type": "inventory", "id": "sku-1" },
        "context": { "source": "internal-service" }
    })
}

/// A read the demo bundle allows whatever the signal: bob downloads logs from the office.
pub fn logs_read() -> Value {
    json!({
        "tenant": "acme",
        "principal": { "id": "bob" },
        "action": "app:logs.download",
        "resource": { "type": "app", "id": "payments" },
        "context": { "ip": "172.16.3.4" }
    })
}

/// `POST /v1/check` with `body`; the decision.
pub async fn check(base: &str, body: &Value) -> Value {
    let response = client()
        .post(format!("{base}/v1/check"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `GET {base}{path}` as text.
pub async fn get_text(base: &str, path: &str) -> String {
    client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `METHOD {base}{path}` with an admin bearer token and no body: the status, and the answer as
/// JSON (a string when it is not JSON).
pub async fn admin_call(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
) -> (u16, Value) {
    let response = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
