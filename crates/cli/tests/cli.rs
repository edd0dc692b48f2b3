//! The `portcullis` binary, run as a user would run it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles")
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = binary()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        // The binary may exit before reading its input (for example on a bad --bundles).
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).unwrap();
}

const REQUEST: &str = r#"{ "tenant": "acme",
  "principal": { "id": "alice" },
  "action": "app:release",
  "resource": { "type": "app", "id": "payments" },
  "context": { "ip": "172.16.3.4", "time": "TIME" } }"#;

#[test]
fn validate_accepts_the_demo() {
    let output = run(&["validate", demo().to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("ok: tenant acme"), "{stdout}");
    assert!(stdout.contains("revision sha256:"), "{stdout}");
}

#[test]
fn validate_reports_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tenant.yaml", "tenant: acme\n");
    write(
        dir.path(),
        "a.yaml",
        "factors:\n  P1: { ip: [\"999.1.1.1\"] }\nstrategies:\n  s: [[P1, P2]]\n",
    );
    let output = run(&["validate", dir.path().to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("has 2 problems; nothing was loaded"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a.yaml:2:14: error[address]: bad address `999.1.1.1`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a.yaml:4:12: error[unknown-reference]: unknown factor `P2`"),
        "{stderr}"
    );
}

#[test]
fn check_exits_zero_on_allow_and_prints_the_decision() {
    let request = REQUEST.replace("TIME", "2026-03-02T16:00:00+08:00");
    let output = run(
        &[
            "check",
            "--bundles",
            demo().to_str().unwrap(),
            "--request",
            "-",
        ],
        Some(&request),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let decision: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decision["decision"], "allow");
    assert_eq!(
        decision["reasons"][0]["path"],
        serde_json::json!(["alice", "operator"])
    );
    assert_eq!(
        decision["strategy"]["branch"],
        serde_json::json!(["P1", "P2", "P3"])
    );
    assert_eq!(
        decision["trace_id"].as_str().unwrap().len(),
        32,
        "a trace id is generated"
    );
}

#[test]
fn check_exits_one_on_deny() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.json");
    std::fs::write(&path, REQUEST.replace("TIME", "2026-03-02T10:00:00+08:00")).unwrap();
    let output = run(
        &[
            "check",
            "--bundles",
            demo().to_str().unwrap(),
            "--request",
            path.to_str().unwrap(),
            "--compact",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let decision: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decision["decision"], "deny");
    assert_eq!(decision["cause"], "strategy_failed");
    assert_eq!(
        text(&output.stdout).lines().count(),
        1,
        "--compact prints one line"
    );
}

#[test]
fn check_exits_two_on_invalid_input() {
    let bundles = demo();
    let bundles = bundles.to_str().unwrap();
    for (request, needle) in [
        ("{ not json", "invalid request"),
        (
            r#"{"tenant":"acme","principal":{"id":"a"},"action":"x:y","resource":{"type":"x","id":"1"},"bogus":1}"#,
            "unknown field `bogus`",
        ),
        (
            r#"{"tenant":"a b","principal":{"id":"a"},"action":"x:y","resource":{"type":"x","id":"1"}}"#,
            "invalid tenant id",
        ),
        (
            r#"{"tenant":"globex","principal":{"id":"a"},"action":"x:y","resource":{"type":"x","id":"1"}}"#,
            "tenant `globex` has no bundle",
        ),
    ] {
        let output = run(
            &["check", "--bundles", bundles, "--request", "-"],
            Some(request),
        );
        assert_eq!(output.status.code(), Some(2), "{request}");
        assert!(output.stdout.is_empty());
        let stderr = text(&output.stderr);
        assert!(stderr.contains(needle), "{request}: {stderr}");
    }
    let output = run(
        &["check", "--bundles", "/nonexistent", "--request", "-"],
        Some("{}"),
    );
    assert_eq!(output.status.code(), Some(2));
    let output = run(
        &[
            "check",
            "--bundles",
            bundles,
            "--request",
            "/nonexistent.json",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read /nonexistent.json"));
}

#[test]
fn test_runs_the_demo_bundle_tests() {
    let output = run(&["test", demo().to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let stdout = text(&output.stdout);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn test_prints_failures_with_the_explanation() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tenant.yaml", "tenant: acme\ntimezone: UTC\n");
    write(
        dir.path(),
        "policy.yaml",
        r#"roles:
  reader: { permissions: ["doc:read"] }
principals:
  ann: { roles: [reader] }
tests:
  - name: ann reads
    request: { principal: { id: ann }, action: "doc:read", resource: { type: doc, id: a } }
    expect: allow
  - name: ann writes (wrong on purpose)
    request: { principal: { id: ann }, action: "doc:write", resource: { type: doc, id: a } }
    expect: allow
"#,
    );
    let output = run(&["test", dir.path().to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("FAIL acme ann writes (wrong on purpose)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("policy.yaml:9:5"),
        "the test's location: {stdout}"
    );
    assert!(
        stdout.contains("expected allow, got deny (no_grant)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("|   \"explanation\""),
        "the explanation is printed: {stdout}"
    );
    assert!(stdout.contains("2 tests, 1 passed, 1 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL acme ann reads"), "{stdout}");
}

#[test]
fn test_exits_two_when_a_bundle_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tenant.yaml", "tenant: acme\nbogus: 1\n");
    let output = run(&["test", dir.path().to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("unknown key `bogus`"));
}
