//! `portcullis integrity keygen|sign|verify` and `serve --verify-integrity`, as processes; and
//! the supply-chain gate of `serve` scanning its own embedded SBOM, again on `SIGHUP`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::copy_demo;

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .unwrap()
}

/// Asserts `output` exited with `code` and its standard error names `what`.
fn exits(output: &Output, code: i32, what: &str) {
    assert_eq!(output.status.code(), Some(code), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(what),
        "{output:?}"
    );
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn config(dir: &Path, bundles: &Path, extra: &str) -> PathBuf {
    let file = dir.join("portcullis.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\nbundles = [\"{}\"]\ndata_dir = \"{}\"\n[reload]\nwatch = false\n[admin]\nlisten = \"127.0.0.1:0\"\n{extra}",
            bundles.display(),
            dir.join("data").display()
        ),
    )
    .unwrap();
    file
}

struct Server {
    child: Child,
    base: String,
    admin: String,
}

/// The admin token the test servers accept (`PORTCULLIS_ADMIN_TOKEN`, a platform admin in the
/// demo `system` bundle).
const ADMIN: &str = "integrity-test-admin-token-0123";

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with `args`; `None` when it exits before printing its banner (its standard
/// error is returned then).
fn serve(args: &[&str]) -> Result<Server, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .args(args)
        .env("PORTCULLIS_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut base, mut admin) = (None, None);
    while admin.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.trim().strip_prefix("API:") {
            base = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.trim().strip_prefix("admin:") {
            admin = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    match (base, admin) {
        (Some(base), Some(admin)) => {
            std::thread::spawn(move || for _ in lines {});
            Ok(Server { child, base, admin })
        }
        _ => {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

/// `curl -s ARGS URL`, its answer as JSON (`null` when it is not).
fn curl(args: &[&str], url: &str) -> serde_json::Value {
    let output = Command::new("curl")
        .arg("-s")
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

fn decide(base: &str, body: &str) -> serde_json::Value {
    curl(
        &["-H", "content-type: application/json", "-d", body],
        &format!("{base}/v1/check"),
    )
}

const WRITE: &str = r#"{"tenant":"acme","principal":{"id":"inventory-service"},"action":"inventory:increase","resource":{"type":"inventory","id":"sku-1"},"context":{"source":"internal-service"}}"#;
const READ: &str = r#"{"tenant":"acme","principal":{"id":"bob"},"action":"app:status.check","resource":{"type":"app","id":"p"},"context":{"ip":"172.16.3.4"}}"#;

#[test]
fn keys_sign_and_verify_and_every_failure_has_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bundles = copy_demo(root);
    let config = config(root, &bundles, "");
    let (secret, public) = (root.join("i.key"), root.join("i.pub"));
    let keygen = portcullis(&[
        "integrity",
        "keygen",
        "--secret",
        path(&secret),
        "--public",
        path(&public),
    ]);
    assert!(keygen.status.success(), "{keygen:?}");
    // Keys are never overwritten.
    let again = portcullis(&[
        "integrity",
        "keygen",
        "--secret",
        path(&secret),
        "--public",
        path(&root.join("j.pub")),
    ]);
    assert_eq!(again.status.code(), Some(2));

    let manifest = root.join("manifest.json");
    let sign = portcullis(&[
        "integrity",
        "sign",
        "--key",
        path(&secret),
        "--config",
        path(&config),
        "--bundles",
        path(&bundles),
        "--output",
        path(&manifest),
    ]);
    assert!(sign.status.success(), "{sign:?}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let files = written["files"].as_array().unwrap();
    assert_eq!(
        files[0]["role"], "binary",
        "this executable is covered by default"
    );
    assert!(files.iter().any(|f| f["path"] == "portcullis.toml"));
    assert!(
        files
            .iter()
            .any(|f| f["path"] == "bundles/acme/tenant.yaml")
    );

    let verify = |key: &Path| {
        portcullis(&[
            "integrity",
            "verify",
            "--manifest",
            path(&manifest),
            "--trust-key",
            path(key),
        ])
    };
    assert!(verify(&public).status.success());

    // The server starts under the manifest, and refuses a changed configuration file.
    let server = serve(&[
        "--config",
        path(&config),
        "--verify-integrity",
        path(&manifest),
        "--trust-key",
        path(&public),
    ])
    .unwrap();
    assert_eq!(decide(&server.base, WRITE)["decision"], "allow");
    drop(server);
    std::fs::write(
        &config,
        format!("{}# changed\n", std::fs::read_to_string(&config).unwrap()),
    )
    .unwrap();
    exits(&verify(&public), 1, "portcullis.toml");
    let error = serve(&[
        "--config",
        path(&config),
        "--verify-integrity",
        path(&manifest),
        "--trust-key",
        path(&public),
    ])
    .err()
    .expect("a changed configuration does not start");
    assert!(
        error.contains("integrity check failed") && error.contains("portcullis.toml"),
        "{error}"
    );

    // Another key, a missing manifest, an unreadable key.
    let other = root.join("other.pub");
    let other_secret = root.join("other.key");
    assert!(
        portcullis(&[
            "integrity",
            "keygen",
            "--secret",
            path(&other_secret),
            "--public",
            path(&other)
        ])
        .status
        .success()
    );
    exits(&verify(&other), 1, "trusted key");
    let missing = portcullis(&[
        "integrity",
        "verify",
        "--manifest",
        path(&root.join("none.json")),
        "--trust-key",
        path(&public),
    ]);
    exits(&missing, 2, "none.json");
    exits(&verify(&config), 2, "portcullis.toml");
}

#[test]
fn the_gate_scans_the_embedded_sbom_and_again_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bundles = copy_demo(root);
    // A database of one advisory, against the tokio this binary is built with.
    let db = root.join("db");
    let advisory = db.join("crates/tokio/RUSTSEC-2099-0002.md");
    std::fs::create_dir_all(advisory.parent().unwrap()).unwrap();
    std::fs::write(
        &advisory,
        "```toml\n[advisory]\nid = \"RUSTSEC-2099-0002\"\npackage = \"tokio\"\ndate = \"2099-01-01\"\n\
         cvss = \"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\"\n\n[versions]\npatched = [\">= 99.0.0\"]\n```\n\n# Test\n",
    )
    .unwrap();
    let config = config(
        root,
        &bundles,
        &format!("[supply_chain]\ndatabase = \"{}\"\n", db.display()),
    );
    let server = serve(&["--config", path(&config)]).unwrap();
    let denied = decide(&server.base, WRITE);
    assert_eq!(denied["decision"], "deny", "{denied}");
    assert!(
        denied["forbids"]
            .to_string()
            .contains("advisory:RUSTSEC-2099-0002"),
        "{denied}"
    );
    assert_eq!(decide(&server.base, READ)["decision"], "allow");
    let bearer = format!("authorization: Bearer {ADMIN}");
    let admin_get = |path: &str| curl(&["-H", &bearer], &format!("{}{path}", server.admin));
    let status = admin_get("/admin/v1/security/dependency-scan");
    assert_eq!(
        status["advisories"],
        serde_json::json!(["RUSTSEC-2099-0002"]),
        "{status}"
    );
    assert_eq!(status["trigger"], "start");
    // The binary's own SBOM, as `portcullis sbom` prints it, in both formats.
    let cyclonedx = admin_get("/admin/v1/sbom");
    assert_eq!(cyclonedx["specVersion"], "1.6", "{cyclonedx}");
    assert!(
        cyclonedx["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "tokio"),
        "tokio is compiled into the binary"
    );
    let spdx = admin_get("/admin/v1/sbom?format=spdx");
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3", "{spdx}");
    assert_eq!(
        admin_get("/admin/v1/sbom?format=xml")["error"]["code"],
        "invalid_query"
    );
    // The same document on the public listener, for an admin token only.
    assert_eq!(
        curl(
            &["-H", &bearer],
            &format!("{}/v1/sbom?format=spdx", server.base)
        ),
        spdx
    );
    assert_eq!(
        curl(&[], &format!("{}/v1/sbom", server.base))["error"]["code"],
        "missing_token"
    );

    std::fs::remove_file(&advisory).unwrap();
    let status = Command::new("kill")
        .args(["-s", "HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if decide(&server.base, WRITE)["decision"] == "allow" {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not clear the signal");
        std::thread::sleep(Duration::from_millis(100));
    }
}
