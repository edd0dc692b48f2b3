//! Two real `portcullis serve` processes sharing one PostgreSQL database converge: a bundle
//! upload, a role assignment, a suspension, a resumption and a revocation made through node A's
//! admin API, and a temporary grant approved and revoked through node A's public API, change
//! node B's decisions within one second (LISTEN/NOTIFY), and when the
//! notification path fails — a change announced to nobody, or the listening backends
//! terminated — node B still converges through its periodic revision poll and its listener
//! reconnects.
//!
//! Each latency is measured from node A's acknowledgement of the write until node B's
//! `POST /v1/check` answers accordingly (B is asked every 20 ms). Two deployments are covered:
//! a tenant whose bundle lives only in the store (uploaded through node A; the real multi-node
//! case), and a tenant served from one bundle folder both nodes read, with run-time data from
//! the store.
//!
//! PostgreSQL is expected on 127.0.0.1:5432 (superuser `postgres`, trust authentication). Each
//! test creates its own database with a random name and drops it at the end, also when an
//! assertion fails; both server processes are killed by a drop guard. When PostgreSQL is
//! unreachable the tests print a notice and pass, except under `CI=true`, where they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool, Row};

/// The maintenance database the tests connect to, to create and drop their own.
const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Admin token named `ops` (platform-admin in the demo's system bundle).
const OPS: &str = "ops-token-for-the-multinode-tests";
/// The issuer of the identity tokens the temporary-access steps are made with, and its
/// secret.
const ISSUER: &str = "https://idp.multinode.test";
const IDENTITY_SECRET: &str = "multinode-identity-secret-0123456789";
/// The nodes' fallback revision poll. Well above the notification latency, so a change that
/// reaches node B within a second cannot have been carried by a lucky poll in most runs, and a
/// broken notification path fails the one-second checks.
const POLL_MS: u64 = 3000;
/// A change must reach node B within this time of node A's acknowledgement.
const CONVERGENCE: Duration = Duration::from_secs(1);
/// Without notifications, within one poll period and this margin.
const POLL_MARGIN: Duration = Duration::from_millis(1000);
/// How often node B is asked while waiting.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// The whole scenario of one test, after which it is stopped and cleaned up.
const SCENARIO_LIMIT: Duration = Duration::from_secs(50);

// ------------------------------------------------------------------ PostgreSQL

/// The maintenance connection, or `None` (with a notice) when PostgreSQL is unreachable outside
/// CI.
async fn postgres() -> Option<PgPool> {
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        PgPoolOptions::new()
            .max_connections(2)
            .connect(POSTGRES_ADMIN),
    )
    .await;
    let problem = match connected {
        Ok(Ok(pool)) => return Some(pool),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("PostgreSQL at {POSTGRES_ADMIN} is unreachable under CI=true: {problem}");
    }
    eprintln!(
        "NOTICE: skipping the two-node convergence test: PostgreSQL at {POSTGRES_ADMIN} is unreachable ({problem})"
    );
    None
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

/// Runs `scenario` against a fresh database and two nodes, then drops the database whatever
/// happened (a failed assertion, a hang); the scenario's own guards kill the processes.
async fn with_database<F, Fut>(scenario: F)
where
    F: FnOnce(Setup) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(maintenance) = postgres().await else {
        return;
    };
    let database = format!("portcullis_mn_{}", random_suffix());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&maintenance)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        database: database.clone(),
        dir: dir.path().to_path_buf(),
    };
    let mut task = tokio::spawn(scenario(setup));
    let failure: Option<Box<dyn std::any::Any + Send>> =
        match tokio::time::timeout(SCENARIO_LIMIT, &mut task).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) if error.is_panic() => Some(error.into_panic()),
            Ok(Err(error)) => Some(Box::new(format!("the scenario was cancelled: {error}"))),
            Err(_) => {
                // Cancelling the task drops its guards, which kill both processes.
                task.abort();
                let _ = task.await;
                Some(Box::new(format!(
                    "the scenario did not finish within {SCENARIO_LIMIT:?}"
                )))
            }
        };
    let dropped = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&maintenance)
    .await;
    maintenance.close().await;
    if let Some(failure) = failure {
        for log in ["a.log", "b.log"] {
            let text = std::fs::read_to_string(dir.path().join(log)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("---- last lines of node {log} (database {database}):");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        std::panic::resume_unwind(failure);
    }
    dropped.unwrap();
}

/// What a scenario gets: its database and a temporary folder.
#[derive(Debug, Clone)]
struct Setup {
    database: String,
    dir: PathBuf,
}

impl Setup {
    /// A superuser connection to the scenario's database (for what no node may do: reading
    /// every session, terminating backends, writing behind the nodes' backs).
    async fn superuser(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&format!(
                "postgres://postgres@127.0.0.1:5432/{}",
                self.database
            ))
            .await
            .unwrap()
    }
}

/// Backend pids of the sessions listening for changes on `database`.
async fn listening_backends(superuser: &PgPool, database: &str) -> BTreeSet<i32> {
    sqlx::query(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' AND query LIKE 'LISTEN%'",
    )
    .bind(database)
    .fetch_all(superuser)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get::<i32, _>("pid"))
    .collect()
}

// ------------------------------------------------------------------ nodes

/// A running `portcullis serve`, killed on drop.
struct Node {
    name: &'static str,
    child: Child,
    api: String,
    admin: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a node is configured.
struct NodeConfig {
    name: &'static str,
    bundles: PathBuf,
    watch: bool,
}

/// Writes the node's configuration (its own data folder and ports, the shared store and key
/// ring) and starts it; returns once the banner names its addresses.
fn start_node(setup: &Setup, node: &NodeConfig) -> Node {
    let data = setup.dir.join(format!("data-{}", node.name));
    let config = setup.dir.join(format!("{}.toml", node.name));
    let log = setup.dir.join(format!("{}.log", node.name));
    let database = &setup.database;
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n\
             bundles = [\"{bundles}\"]\n\
             data_dir = \"{data}\"\n\
             [store]\n\
             url = \"postgres://portcullis_service@127.0.0.1:5432/{database}\"\n\
             migrate_url = \"postgres://postgres@127.0.0.1:5432/{database}\"\n\
             poll_ms = {POLL_MS}\n\
             [encryption]\n\
             keys_file = \"{keys}\"\n\
             [reload]\n\
             watch = {watch}\n\
             debounce_ms = 100\n\
             [admin]\n\
             listen = \"127.0.0.1:0\"\n\
             [[admin.tokens]]\n\
             name = \"ops\"\n\
             token = \"{OPS}\"\n\
             [identity]\n\
             [[identity.issuers]]\n\
             issuer = \"{ISSUER}\"\n\
             secret_env = \"MULTINODE_IDENTITY_SECRET\"\n\
             [log]\n\
             level = \"info\"\n",
            bundles = node.bundles.display(),
            data = data.display(),
            keys = setup.dir.join("master.keys").display(),
            watch = node.watch,
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("PORTCULLIS_DATABASE_URL")
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("MULTINODE_IDENTITY_SECRET", IDENTITY_SECRET)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (found, addresses) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut api, mut admin) = (None, None);
        let mut sent = false;
        // Keep reading to the end, so the server never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("API:") {
                api = rest.split_whitespace().next().map(str::to_owned);
            } else if let Some(rest) = line.strip_prefix("admin:") {
                admin = rest.split_whitespace().next().map(str::to_owned);
            }
            if !sent && let (Some(api), Some(admin)) = (&api, &admin) {
                let _ = found.send((api.clone(), admin.clone()));
                sent = true;
            }
        }
    });
    let mut started = Node {
        name: node.name,
        child,
        api: String::new(),
        admin: String::new(),
    };
    match addresses.recv_timeout(Duration::from_secs(30)) {
        Ok((api, admin)) => {
            started.api = api;
            started.admin = admin;
            started
        }
        Err(_) => panic!(
            "node {} did not start: {}",
            node.name,
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    }
}

async fn start(setup: &Setup, node: NodeConfig) -> Node {
    let setup = setup.clone();
    tokio::task::spawn_blocking(move || start_node(&setup, &node))
        .await
        .unwrap()
}

/// A folder of bundles holding copies of the named demo bundles.
fn copy_demo(into: &Path, tenants: &[&str]) -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles");
    let root = into.join("bundles");
    for tenant in tenants {
        let target = root.join(tenant);
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(source.join(tenant)).unwrap().flatten() {
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    root
}

/// The shared key ring: nodes on one store must share it to read each other's encrypted
/// attributes.
fn write_key_ring(setup: &Setup) {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).unwrap();
    std::fs::write(
        setup.dir.join("master.keys"),
        format!("k1 = {}\ncurrent = k1\n", hex::encode(key)),
    )
    .unwrap();
}

/// The demo tenant's bundle files; with `bob_without_roles`, bob is no longer a viewer.
fn acme_files(bob_without_roles: bool) -> BTreeMap<String, String> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles/acme");
    let mut files = BTreeMap::new();
    for file in std::fs::read_dir(folder).unwrap().flatten() {
        let name = file.file_name().to_string_lossy().into_owned();
        let mut text = std::fs::read_to_string(file.path()).unwrap();
        if bob_without_roles && name == "principals.yaml" {
            let changed = text.replacen("roles: [viewer]", "roles: []", 1);
            assert_ne!(changed, text, "the demo's bob is a viewer");
            text = changed;
        }
        files.insert(name, text);
    }
    files
}

// ------------------------------------------------------------------ calls

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A decision request in the demo tenant from the office network (so the `ops-read` strategy
/// holds at any time and the outcome depends on roles and tenant status only).
fn question(principal: &str, action: &str) -> Value {
    json!({
        "tenant": "acme",
        "principal": { "id": principal },
        "action": action,
        "resource": { "type": "app", "id": "payments" },
        "context": { "ip": "172.16.3.4" },
    })
}

async fn check(client: &reqwest::Client, node: &Node, request: &Value) -> Value {
    match client
        .post(format!("{}/v1/check", node.api))
        .json(request)
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(error) => panic!("node {} did not answer a check: {error}", node.name),
    }
}

/// An admin call on `node` that must succeed; returns the answer and when it arrived (the
/// write's acknowledgement).
async fn admin(
    client: &reqwest::Client,
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (Value, Instant) {
    let mut request = client
        .request(method.clone(), format!("{}{path}", node.admin))
        .bearer_auth(OPS);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let acknowledged = Instant::now();
    assert!(
        status.is_success(),
        "{method} {path} on node {}: {status} {answer}",
        node.name
    );
    (answer, acknowledged)
}

/// Asks `node` every 20 ms until `accept` holds for its answer; returns the time since
/// `since` and fails when that exceeds `limit`.
async fn converge(
    client: &reqwest::Client,
    node: &Node,
    what: &str,
    since: Instant,
    limit: Duration,
    request: &Value,
    accept: impl Fn(&Value) -> bool,
) -> Duration {
    loop {
        let answer = check(client, node, request).await;
        let elapsed = since.elapsed();
        if accept(&answer) {
            println!(
                "{what}: visible on node {} after {} ms",
                node.name,
                elapsed.as_millis()
            );
            assert!(
                elapsed < limit,
                "{what}: node {} took {elapsed:?}, more than {limit:?}",
                node.name
            );
            return elapsed;
        }
        // Keep asking a little past the limit, so a failure says by how much it was missed.
        assert!(
            elapsed < limit + Duration::from_secs(3),
            "{what}: node {} still answers {answer} after {elapsed:?} (limit {limit:?})",
            node.name
        );
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// An identity token of the demo tenant for `subject`.
fn identity(subject: &str) -> String {
    let now = jiff::Timestamp::now().as_second();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "iss": ISSUER, "sub": subject, "tenant": "acme", "exp": now + 600 }),
        &jsonwebtoken::EncodingKey::from_secret(IDENTITY_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A temporary-access call on `node`'s public listener as `subject`, which must succeed;
/// returns the answer and when it arrived.
async fn access_call(
    client: &reqwest::Client,
    node: &Node,
    subject: &str,
    path: &str,
    body: Value,
) -> (Value, Instant) {
    let response = client
        .post(format!("{}{path}", node.api))
        .bearer_auth(identity(subject))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let acknowledged = Instant::now();
    assert!(
        status.is_success(),
        "POST {path} on node {} as {subject}: {status} {answer}",
        node.name
    );
    (answer, acknowledged)
}

fn allowed(answer: &Value) -> bool {
    answer["decision"] == "allow"
}

fn denied_for(cause: &'static str) -> impl Fn(&Value) -> bool {
    move |answer| answer["decision"] == "deny" && answer["cause"] == cause
}

// ------------------------------------------------------------------ run-time data (both variants)

/// (b) assignment, (c) suspension and resumption, (d) revocation: written on A, decided on B.
async fn run_time_changes_converge(client: &reqwest::Client, a: &Node, b: &Node) {
    let carol = question("carol", "app:status.check");
    // carol is an inventory clerk: no status checks.
    assert_eq!(check(client, b, &carol).await["cause"], "no_grant");

    let (answer, acked) = admin(
        client,
        a,
        reqwest::Method::POST,
        "/admin/v1/tenants/acme/assignments",
        Some(json!({ "principal": "carol", "role": "viewer" })),
    )
    .await;
    let revision = answer["data_revision"].as_u64().unwrap();
    converge(
        client,
        b,
        "(b) role assignment",
        acked,
        CONVERGENCE,
        &carol,
        |answer| allowed(answer) && answer["revision"]["data"].as_u64() >= Some(revision),
    )
    .await;
    assert_eq!(
        check(client, b, &carol).await["reasons"][0]["path"],
        json!(["carol", "viewer"]),
        "node B grants through the run-time assignment"
    );

    let (_, acked) = admin(
        client,
        a,
        reqwest::Method::POST,
        "/admin/v1/tenants/acme/suspend",
        None,
    )
    .await;
    converge(
        client,
        b,
        "(c) tenant suspension",
        acked,
        CONVERGENCE,
        &carol,
        denied_for("tenant_suspended"),
    )
    .await;
    let (_, acked) = admin(
        client,
        a,
        reqwest::Method::POST,
        "/admin/v1/tenants/acme/resume",
        None,
    )
    .await;
    converge(
        client,
        b,
        "(c) tenant resumption",
        acked,
        CONVERGENCE,
        &carol,
        allowed,
    )
    .await;

    let (_, acked) = admin(
        client,
        a,
        reqwest::Method::DELETE,
        "/admin/v1/tenants/acme/assignments",
        Some(json!({ "principal": "carol", "role": "viewer" })),
    )
    .await;
    converge(
        client,
        b,
        "(d) revocation",
        acked,
        CONVERGENCE,
        &carol,
        denied_for("no_grant"),
    )
    .await;

    // (t) Temporary access: carol asks on node A, sofia approves there; node B grants.
    let (request, _) = access_call(
        client,
        a,
        "carol",
        "/v1/access/requests",
        json!({
            "action": "app:status.check", "resource": "app:payments",
            "reason": "incident: payments status", "duration": "1h",
            "networks": ["172.16.0.0/12"],
        }),
    )
    .await;
    let id = request["id"].as_str().unwrap().to_owned();
    let (_, acked) = access_call(
        client,
        a,
        "sofia",
        &format!("/v1/access/requests/{id}/approve"),
        json!({}),
    )
    .await;
    converge(
        client,
        b,
        "(t) temporary grant",
        acked,
        CONVERGENCE,
        &carol,
        |answer| allowed(answer) && answer["reasons"][0]["kind"] == "grant",
    )
    .await;
    assert_eq!(
        check(client, b, &carol).await["reasons"][0]["id"],
        id.as_str()
    );
    let (_, acked) = access_call(
        client,
        a,
        "sofia",
        &format!("/v1/access/requests/{id}/revoke"),
        json!({ "comment": "resolved" }),
    )
    .await;
    converge(
        client,
        b,
        "(t) revoked grant",
        acked,
        CONVERGENCE,
        &carol,
        denied_for("no_grant"),
    )
    .await;
}

// ------------------------------------------------------------------ tests

/// The real multi-node case: node A uploads the tenant's bundle into the store; neither node
/// has it on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_managed_tenant_converges_across_nodes() {
    with_database(|setup| async move {
        write_key_ring(&setup);
        // Only the system tenant (admin authorization) is on disk; each node has its own copy.
        let a = start(
            &setup,
            NodeConfig {
                name: "a",
                bundles: copy_demo(&setup.dir.join("a"), &["system"]),
                watch: false,
            },
        )
        .await;
        let b = start(
            &setup,
            NodeConfig {
                name: "b",
                bundles: copy_demo(&setup.dir.join("b"), &["system"]),
                watch: false,
            },
        )
        .await;
        let client = client();
        let superuser = setup.superuser().await;
        let bob = question("bob", "app:logs.download");
        let carol = question("carol", "app:status.check");
        assert_eq!(check(&client, &b, &bob).await["cause"], "tenant_unknown");

        // (a) A bundle upload on A: first the tenant appears on B, then a new version changes
        // B's decisions (and B names the revision A acknowledged).
        let (answer, acked) = admin(
            &client,
            &a,
            reqwest::Method::PUT,
            "/admin/v1/tenants/acme/bundle",
            Some(json!({ "files": acme_files(false) })),
        )
        .await;
        let first = answer["revision"].as_str().unwrap().to_owned();
        converge(
            &client,
            &b,
            "(a) bundle upload of a new tenant",
            acked,
            CONVERGENCE,
            &bob,
            |answer| allowed(answer) && answer["revision"]["bundle"] == first.as_str(),
        )
        .await;
        let (answer, acked) = admin(
            &client,
            &a,
            reqwest::Method::PUT,
            "/admin/v1/tenants/acme/bundle",
            Some(json!({ "files": acme_files(true) })),
        )
        .await;
        let second = answer["revision"].as_str().unwrap().to_owned();
        assert_ne!(first, second);
        converge(
            &client,
            &b,
            "(a) bundle upload of a new version",
            acked,
            CONVERGENCE,
            &bob,
            |answer| {
                answer["decision"] == "deny"
                    && answer["cause"] == "no_grant"
                    && answer["revision"]["bundle"] == second.as_str()
            },
        )
        .await;

        run_time_changes_converge(&client, &a, &b).await;

        // (e) The fallback. First a change announced to nobody, as if its notification had
        // been lost: written behind the nodes' backs (as the owner, without NOTIFY), it can
        // reach B only through B's revision poll.
        let mut tx = superuser.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO role_assignments (tenant_id, principal_id, role, resource, created_at_us) VALUES ('acme', 'carol', 'viewer', '*', 0)",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "UPDATE tenants SET data_revision = data_revision + 1 WHERE tenant_id = 'acme'",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let written = Instant::now();
        converge(
            &client,
            &b,
            "(e) change without notification (poll)",
            written,
            Duration::from_millis(POLL_MS) + POLL_MARGIN,
            &carol,
            allowed,
        )
        .await;

        // Then the notification path itself is cut: both nodes' listening backends are
        // terminated, and a change is made on A at once.
        let listening = listening_backends(&superuser, &setup.database).await;
        assert_eq!(
            listening.len(),
            2,
            "each node listens on the change channel: {listening:?}"
        );
        let terminated: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = $1",
        )
        .bind(&setup.database)
        .fetch_all(&superuser)
        .await
        .unwrap();
        assert_eq!(terminated, vec![true, true]);
        let (_, acked) = admin(
            &client,
            &a,
            reqwest::Method::DELETE,
            "/admin/v1/tenants/acme/assignments",
            Some(json!({ "principal": "carol", "role": "viewer" })),
        )
        .await;
        converge(
            &client,
            &b,
            "(e) change while the listeners were cut",
            acked,
            Duration::from_millis(POLL_MS) + POLL_MARGIN,
            &carol,
            denied_for("no_grant"),
        )
        .await;

        // Both listeners come back on new backends...
        let cut = Instant::now();
        loop {
            let now = listening_backends(&superuser, &setup.database).await;
            if now.len() == 2 && now.is_disjoint(&listening) {
                println!(
                    "(e) both listeners listen again on new backends {now:?} ({} ms after the check above)",
                    cut.elapsed().as_millis()
                );
                break;
            }
            assert!(
                cut.elapsed() < Duration::from_secs(5),
                "the listeners did not reconnect: listening backends {now:?}, terminated {listening:?}"
            );
            tokio::time::sleep(PROBE_EVERY).await;
        }
        // ...and carry changes within a second again.
        let (_, acked) = admin(
            &client,
            &a,
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/assignments",
            Some(json!({ "principal": "carol", "role": "viewer" })),
        )
        .await;
        converge(
            &client,
            &b,
            "(e) change after the listeners reconnected",
            acked,
            CONVERGENCE,
            &carol,
            allowed,
        )
        .await;

        superuser.close().await;
        drop(b);
        drop(a);
    })
    .await;
}

/// A tenant served from one bundle folder both nodes read (a shared volume), with run-time
/// data from the store. The upload through A rewrites the shared folder, and B's file watcher
/// picks it up; run-time data travels through the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_tenant_with_run_time_data_converges_across_nodes() {
    with_database(|setup| async move {
        write_key_ring(&setup);
        let shared = copy_demo(&setup.dir.join("shared"), &["acme", "system"]);
        let a = start(
            &setup,
            NodeConfig {
                name: "a",
                bundles: shared.clone(),
                watch: true,
            },
        )
        .await;
        let b = start(
            &setup,
            NodeConfig {
                name: "b",
                bundles: shared,
                watch: true,
            },
        )
        .await;
        let client = client();
        let bob = question("bob", "app:logs.download");
        assert_eq!(check(&client, &b, &bob).await["decision"], "allow");

        // (a) The upload is validated and recorded in the store by A, which rewrites the folder.
        let (answer, acked) = admin(
            &client,
            &a,
            reqwest::Method::PUT,
            "/admin/v1/tenants/acme/bundle",
            Some(json!({ "files": acme_files(true) })),
        )
        .await;
        let revision = answer["revision"].as_str().unwrap().to_owned();
        converge(
            &client,
            &b,
            "(a) bundle upload into the shared folder",
            acked,
            CONVERGENCE,
            &bob,
            |answer| {
                answer["decision"] == "deny" && answer["revision"]["bundle"] == revision.as_str()
            },
        )
        .await;

        run_time_changes_converge(&client, &a, &b).await;
        drop(b);
        drop(a);
    })
    .await;
}
