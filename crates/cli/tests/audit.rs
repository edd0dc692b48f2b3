//! The audit trail of a real `portcullis serve` process: decisions and admin changes are
//! recorded; after `kill -9` in the middle of a load, `portcullis audit verify` passes on what
//! was written, a restart resumes the chain, and a tampered copy is caught — in files, and in
//! the store's PostgreSQL `audit_log` table (`[audit] backend = "store"`; skipped with a notice
//! when PostgreSQL is unreachable, except under `CI=true`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::copy_demo;

const ADMIN_TOKEN: &str = "audit-test-admin-token-0123456789";

struct Server {
    child: Child,
    base: String,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path) -> PathBuf {
    let bundles = copy_demo(dir);
    let path = dir.join("portcullis.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nbundles = [\"{}\"]\ndata_dir = \"{}\"\n\
             [reload]\nwatch = false\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN_TOKEN}\"\n\
             [audit]\nflush_interval_ms = 5\n[audit.segments]\ncheckpoint_every = 100\nmax_segment_bytes = 65536\n",
            bundles.display(),
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

fn start(config: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut base, mut admin) = (None, None);
    while (base.is_none() || admin.is_none()) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("API:") {
            base = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.strip_prefix("admin:") {
            admin = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base: base.expect("the banner names the API address"),
        admin: admin.expect("the banner names the admin address"),
    }
}

/// POSTs JSON with curl; the answer's status and body.
fn post(
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> Option<(u16, serde_json::Value)> {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-m",
        "10",
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
    ]);
    if let Some(token) = token {
        command.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    let output = command
        .arg("-d")
        .arg(body.to_string())
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n')?;
    Some((
        status.trim().parse().ok()?,
        serde_json::from_str(body).ok()?,
    ))
}

fn decide(base: &str, principal: &str) -> Option<serde_json::Value> {
    let body = serde_json::json!({
        "tenant": "acme", "principal": { "id": principal }, "action": "app:status.check",
        "resource": { "type": "app", "id": "p" }, "context": { "ip": "172.16.3.4" },
    });
    post(&format!("{base}/v1/check"), &body, None).map(|(_, answer)| answer)
}

fn verify(data: &Path, sealed: bool) -> (bool, String) {
    verify_files(data, "acme", sealed)
}

/// `portcullis audit verify` on a tenant's files: success and everything printed.
fn verify_files(data: &Path, tenant: &str, sealed: bool) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .args(["audit", "verify", "--tenant", tenant, "--dir"])
        .arg(data.join("audit"))
        .arg("--public-key")
        .arg(data.join("audit-signing.pub"));
    if sealed {
        command.arg("--sealed");
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn tail(data: &Path, count: usize) -> Vec<serde_json::Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "audit",
            "tail",
            "--tenant",
            "acme",
            "-n",
            &count.to_string(),
            "--dir",
        ])
        .arg(data.join("audit"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn kill_9_during_a_load_loses_nothing_acknowledged_and_the_chain_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let data = dir.path().join("data");
    let mut server = start(&config);

    // An administrative change is durable before its answer.
    let (status, answer) = post(
        &format!("{}/admin/v1/tenants/acme/assignments", server.admin),
        &serde_json::json!({ "principal": "carol", "role": "viewer" }),
        Some(ADMIN_TOKEN),
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    let changes: Vec<serde_json::Value> = tail(&data, 50)
        .into_iter()
        .filter(|r| r["kind"] == "change")
        .collect();
    assert_eq!(changes.len(), 1, "the change is on disk before the answer");
    assert_eq!(changes[0]["actor"], "ops");
    assert_eq!(changes[0]["outcome"], "ok");

    // A load from four threads; the server is killed with SIGKILL in the middle of it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|n| {
            let base = server.base.clone();
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut answered = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let who = if n % 2 == 0 { "bob" } else { "mallory" };
                    if decide(&base, who).is_some() {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(3000));
    Command::new("kill")
        .args(["-9", &server.child.id().to_string()])
        .status()
        .unwrap();
    let _ = server.child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        answered > 20,
        "the load reached the server ({answered} answers)"
    );

    // Everything written verifies (a torn last line or records after the last checkpoint are
    // what a crash leaves; they are reported, not errors).
    let (ok, report) = verify(&data, false);
    assert!(ok, "after kill -9: {report}");
    let before = tail(&data, 1)[0]["seq"].as_u64().unwrap();
    assert!(before > 20, "decisions were recorded ({before})");

    // A restart resumes the chain; a clean stop seals it with a checkpoint.
    let server = start(&config);
    assert_eq!(decide(&server.base, "mallory").unwrap()["decision"], "deny");
    Command::new("kill")
        .args(["-s", "TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut server = server;
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "SIGTERM did not stop the server");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, report) = verify(&data, true);
    assert!(ok, "after restart and a clean stop: {report}");
    let last = tail(&data, 1);
    assert!(
        last[0]["seq"].as_u64().unwrap() > before,
        "the chain continued"
    );
    assert_eq!(last[0]["actor"], "mallory");
    assert_eq!(last[0]["outcome"], "deny");

    // Any edit of a written record is caught, naming the record. The newest segment holding a
    // deny is edited: the last decision may have filled a segment, which is then rotated (and
    // possibly compressed) and a new, empty one started.
    forge_newest_deny(&data.join("audit").join("acme"));
    let (ok, report) = verify(&data, false);
    assert!(!ok, "a forged outcome must be caught: {report}");
    assert!(
        report.contains("\"seq\""),
        "the report names the record: {report}"
    );
}

/// Rewrites the first `"outcome":"deny"` of the newest segment (plain or gzip) that holds one
/// into an allow, keeping the segment's form.
fn forge_newest_deny(tenant_dir: &Path) {
    use std::io::{Read, Write};
    let mut segments: Vec<PathBuf> = std::fs::read_dir(tenant_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".jsonl") || name.ends_with(".jsonl.gz")
        })
        .collect();
    segments.sort();
    for segment in segments.iter().rev() {
        let bytes = std::fs::read(segment).unwrap();
        let compressed = segment.to_string_lossy().ends_with(".gz");
        let text = if compressed {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
            text
        } else {
            String::from_utf8(bytes).unwrap()
        };
        let forged = text.replacen("\"outcome\":\"deny\"", "\"outcome\":\"allow\"", 1);
        if forged == text {
            continue;
        }
        let bytes = if compressed {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(forged.as_bytes()).unwrap();
            encoder.finish().unwrap()
        } else {
            forged.into_bytes()
        };
        std::fs::write(segment, bytes).unwrap();
        return;
    }
    panic!(
        "no segment of {} holds a deny to forge",
        tenant_dir.display()
    );
}

// ------------------------------------------------------------------ sealing after a crash

/// Tenants whose logs the crash tests leave unsealed: decisions and a change in `acme`, the
/// admin API's own authorization decision in `system`.
const CRASHED_TENANTS: [&str; 2] = ["acme", "system"];

/// Writes to both tenants' logs, waits until `recorded` (reading the trail) sees the three
/// decisions, then kills the server with SIGKILL: records after the last checkpoint remain.
fn record_then_kill_9(mut server: Server, recorded: impl Fn() -> usize) {
    let (status, answer) = post(
        &format!("{}/admin/v1/tenants/acme/assignments", server.admin),
        &serde_json::json!({ "principal": "carol", "role": "viewer" }),
        Some(ADMIN_TOKEN),
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    for who in ["bob", "mallory", "bob"] {
        assert!(decide(&server.base, who).is_some());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorded() < 3 {
        assert!(Instant::now() < deadline, "the decisions were not written");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-9", &server.child.id().to_string()])
        .status()
        .unwrap();
    let _ = server.child.wait();
}

/// Asserts what a crash leaves: the chain verifies as a live log, but not as a sealed one.
fn assert_unsealed(verify: impl Fn(&str, bool) -> (bool, String)) {
    for tenant in CRASHED_TENANTS {
        let (ok, report) = verify(tenant, false);
        assert!(ok, "{tenant} after kill -9: {report}");
        let (ok, report) = verify(tenant, true);
        assert!(
            !ok && report.contains("unsealed_tail"),
            "{tenant}: the crash left records after the last checkpoint: {report}"
        );
    }
}

fn is_checkpoint(line: &str) -> bool {
    line.starts_with("{\"kind\":\"checkpoint\"")
}

#[test]
fn a_log_a_crash_left_unsealed_is_sealed_by_a_restart_and_clean_stop_without_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let data = dir.path().join("data");
    record_then_kill_9(start(&config), || {
        tail(&data, 10)
            .iter()
            .filter(|record| record["kind"] == "decision")
            .count()
    });
    assert_unsealed(|tenant, sealed| verify_files(&data, tenant, sealed));

    // A restart, no decision at all, a clean stop: every log is sealed.
    stop(start(&config));
    for tenant in CRASHED_TENANTS {
        let (ok, report) = verify_files(&data, tenant, true);
        assert!(ok, "{tenant} after a restart and a clean stop: {report}");
    }

    // Sealed, the log reveals a cut of its last record.
    let segment = std::fs::read_dir(data.join("audit").join("acme"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|x| x == "jsonl"))
        .max()
        .expect("an active segment");
    let mut lines: Vec<String> = std::fs::read_to_string(&segment)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        is_checkpoint(lines.last().unwrap()),
        "sealed by a checkpoint"
    );
    let last_record = lines.iter().rposition(|line| !is_checkpoint(line)).unwrap();
    lines.remove(last_record);
    std::fs::write(&segment, lines.join("\n") + "\n").unwrap();
    let (ok, report) = verify_files(&data, "acme", false);
    assert!(!ok, "a cut of the last record must be caught: {report}");
    assert!(
        report.contains("truncated") && report.contains("are missing"),
        "the report names the cut: {report}"
    );
}

/// `portcullis audit verify` on a tenant's stream in the SQLite store at `database`.
fn verify_sqlite(database: &Path, public_key: &Path, tenant: &str, sealed: bool) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .args(["audit", "verify", "--tenant", tenant, "--database-url"])
        .arg(format!("sqlite://{}", database.display()))
        .arg("--public-key")
        .arg(public_key);
    if sealed {
        command.arg("--sealed");
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Runs statements on the SQLite store directly (as its owner would, outside the service).
fn sqlite(database: &Path, statements: &str) -> Vec<i64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display()))
            .await
            .unwrap();
        let rows: Vec<i64> = if statements.starts_with("SELECT") {
            sqlx::query_scalar(sqlx::AssertSqlSafe(statements.to_owned()))
                .fetch_all(&pool)
                .await
                .unwrap()
        } else {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statements.to_owned()))
                .execute(&pool)
                .await
                .unwrap();
            Vec::new()
        };
        pool.close().await;
        rows
    })
}

#[test]
fn a_stream_a_crash_left_unsealed_in_the_store_is_sealed_by_a_restart_and_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[audit]\n", "[audit]\nbackend = \"store\"\n");
    std::fs::write(&config, text.replace("max_segment_bytes = 65536\n", "")).unwrap();
    let data = dir.path().join("data");
    let database = data.join("portcullis.db");
    let public_key = data.join("audit-signing.pub");
    record_then_kill_9(start(&config), || {
        let decisions = sqlite(
            &database,
            "SELECT count(*) FROM audit_log WHERE tenant_id = 'acme' AND kind = 'decision'",
        );
        usize::try_from(decisions[0]).unwrap()
    });
    assert!(!data.join("audit").exists(), "no audit files");
    let verify = |tenant: &str, sealed: bool| verify_sqlite(&database, &public_key, tenant, sealed);
    assert_unsealed(verify);

    // `system` is left out of the store's directory, so it is registered again only by this
    // start's bundle load, after the audit writer listed the streams to recover: its stream
    // is found by name when the service stops.
    sqlite(&database, "DELETE FROM tenants WHERE tenant_id = 'system'");
    stop(start(&config));
    for tenant in CRASHED_TENANTS {
        let (ok, report) = verify(tenant, true);
        assert!(ok, "{tenant} after a restart and a clean stop: {report}");
    }

    // The last record cut from the table (its append-only trigger dropped first).
    sqlite(
        &database,
        "DROP TRIGGER audit_log_no_delete; \
         DELETE FROM audit_log WHERE tenant_id = 'acme' AND position = \
         (SELECT max(position) FROM audit_log WHERE tenant_id = 'acme' AND kind != 'checkpoint');",
    );
    let (ok, report) = verify("acme", false);
    assert!(!ok, "a cut of the last record must be caught: {report}");
    assert!(
        report.contains("truncated") && report.contains("are missing"),
        "the report names the cut: {report}"
    );
}

// ------------------------------------------------------------------ the trail in PostgreSQL

const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs one statement (as the given URL's role) and returns the first column of every row
/// (text), or nothing for a statement without rows.
fn sql(url: &str, statement: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows: Vec<String> = if statement.contains("SELECT") || statement.contains("RETURNING") {
            sqlx::query_scalar(sqlx::AssertSqlSafe(statement.to_owned()))
                .fetch_all(&pool)
                .await
                .unwrap()
        } else {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&pool)
                .await
                .unwrap();
            Vec::new()
        };
        pool.close().await;
        rows
    })
}

fn postgres_reachable() -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reachable = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::PgPool::connect(POSTGRES_ADMIN),
        )
        .await
        .is_ok_and(|pool| pool.is_ok())
    });
    if !reachable {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL at 127.0.0.1:5432 is not reachable, and CI=true requires it"
        );
        eprintln!("notice: PostgreSQL is not reachable; skipping the audit_log test");
    }
    reachable
}

/// A fresh database, dropped when the guard goes.
struct Database(String);

impl Database {
    fn create() -> Database {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!("portcullis_cli_audit_{}", hex::encode(bytes));
        sql(POSTGRES_ADMIN, &format!("CREATE DATABASE {name}"));
        Database(name)
    }
    fn service(&self) -> String {
        format!("postgres://portcullis_service@127.0.0.1:5432/{}", self.0)
    }
    fn owner(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        sql(
            POSTGRES_ADMIN,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
        );
    }
}

fn store_config(dir: &Path, database: &Database) -> PathBuf {
    let bundles = copy_demo(dir);
    let path = dir.join("portcullis.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nbundles = [\"{}\"]\ndata_dir = \"{}\"\n\
             [reload]\nwatch = false\n\
             [store]\nurl = \"{}?sslmode=disable\"\nmigrate_url = \"{}\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN_TOKEN}\"\n\
             [audit]\nbackend = \"store\"\nflush_interval_ms = 5\n[audit.segments]\ncheckpoint_every = 100\n",
            bundles.display(),
            dir.join("data").display(),
            database.service(),
            database.owner(),
        ),
    )
    .unwrap();
    path
}

/// `portcullis audit <args> --database-url … --migrate-url … --tenant acme`: success and output.
fn audit_table(database: &Database, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("audit")
        .args(args)
        .args(["--tenant", "acme", "--database-url"])
        .arg(database.service())
        .arg("--migrate-url")
        .arg(database.owner())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn table_tail(database: &Database, count: usize) -> Vec<serde_json::Value> {
    let (ok, stdout, stderr) = audit_table(database, &["tail", "-n", &count.to_string()]);
    assert!(ok, "{stderr}");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn stop(server: Server) {
    Command::new("kill")
        .args(["-s", "TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut server = server;
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "SIGTERM did not stop the server");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_trail_in_postgresql_survives_kill_9_and_verifies_from_the_command_line() {
    if !postgres_reachable() {
        return;
    }
    let database = Database::create();
    let dir = tempfile::tempdir().unwrap();
    let config = store_config(dir.path(), &database);
    let data = dir.path().join("data");
    let public_key = data.join("audit-signing.pub");
    let verify = |sealed: bool| {
        let key = public_key.display().to_string();
        let mut args = vec!["verify", "--public-key", key.as_str()];
        if sealed {
            args.push("--sealed");
        }
        let (ok, stdout, stderr) = audit_table(&database, &args);
        (ok, format!("{stdout}{stderr}"))
    };
    let mut server = start(&config);

    // The change is in the table before its answer.
    let (status, answer) = post(
        &format!("{}/admin/v1/tenants/acme/assignments", server.admin),
        &serde_json::json!({ "principal": "carol", "role": "viewer" }),
        Some(ADMIN_TOKEN),
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    let changes: Vec<serde_json::Value> = table_tail(&database, 50)
        .into_iter()
        .filter(|r| r["kind"] == "change")
        .collect();
    assert_eq!(changes.len(), 1, "the change is stored before the answer");
    assert_eq!(changes[0]["actor"], "ops");
    assert!(!data.join("audit").exists(), "no audit files");

    // A load, then SIGKILL.
    let stop_load = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|n| {
            let base = server.base.clone();
            let stop_load = std::sync::Arc::clone(&stop_load);
            std::thread::spawn(move || {
                let mut answered = 0u32;
                while !stop_load.load(std::sync::atomic::Ordering::Relaxed) {
                    if decide(&base, if n == 0 { "bob" } else { "mallory" }).is_some() {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2000));
    Command::new("kill")
        .args(["-9", &server.child.id().to_string()])
        .status()
        .unwrap();
    let _ = server.child.wait();
    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(answered > 10, "the load reached the server ({answered})");
    let (ok, report) = verify(false);
    assert!(ok, "after kill -9: {report}");
    let before = table_tail(&database, 1)[0]["seq"].as_u64().unwrap();
    assert!(before > 10, "decisions were recorded ({before})");

    // A restart seals what the crash left and continues the chain; a clean stop seals it.
    let server = start(&config);
    assert_eq!(decide(&server.base, "mallory").unwrap()["decision"], "deny");
    stop(server);
    let (ok, report) = verify(true);
    assert!(ok, "after restart and a clean stop: {report}");
    let last = table_tail(&database, 1);
    assert!(
        last[0]["seq"].as_u64().unwrap() > before,
        "the chain continued"
    );
    assert_eq!(last[0]["actor"], "mallory");

    // Export: every line of the stream, in order; query pages through the denies.
    let (ok, exported, stderr) = audit_table(&database, &["export"]);
    assert!(ok, "{stderr}");
    let rows = sql(
        &database.owner(),
        "SELECT line FROM audit_log WHERE tenant_id = 'acme' ORDER BY position",
    );
    assert_eq!(exported.lines().collect::<Vec<_>>(), rows);
    let (ok, page, stderr) = audit_table(
        &database,
        &[
            "query",
            "--outcome",
            "deny",
            "--actor",
            "mallory",
            "--limit",
            "3",
        ],
    );
    assert!(ok, "{stderr}");
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["records"].as_array().unwrap().len(), 3, "{page}");
    assert!(page["next_cursor"].is_string(), "{page}");

    // An edit made with the owner's rights, outside the service, is caught and named.
    let edited = sql(
        &database.owner(),
        "UPDATE audit_log SET line = replace(line, '\"outcome\":\"deny\"', '\"outcome\":\"allow\"') \
         WHERE tenant_id = 'acme' AND position = (SELECT max(position) FROM audit_log \
         WHERE tenant_id = 'acme' AND outcome = 'deny' AND position < 20) RETURNING seq::text",
    );
    assert_eq!(edited.len(), 1);
    let (ok, report) = verify(false);
    assert!(!ok, "a forged outcome must be caught: {report}");
    assert!(
        report.contains(&format!("\"seq\": {}", edited[0])) && report.contains("audit_log"),
        "the report names the record: {report}"
    );
}
