//! The audit trail of the decision service: decisions and admin changes recorded, masking
//! applied before anything is written, and the query, export and verify endpoints authorized
//! through the `system` tenant and themselves recorded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::{ADMIN_TOKEN, AUDIT_TOKEN, client, copy_demo, trading_day_after_close};

const PHONE: &str = "13912345678";
const EMAIL: &str = "carol.secret@example.com";

async fn admin(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            bytes.extend(all_bytes(&path));
        } else {
            let raw = std::fs::read(&path).unwrap();
            if path.extension().is_some_and(|e| e == "gz") {
                let mut text = Vec::new();
                flate2_free_gunzip(&raw, &mut text);
                bytes.extend(text);
            }
            bytes.extend(raw);
        }
    }
    bytes
}

/// Decompresses with the `gzip` tool (no extra dependency for the test).
fn flate2_free_gunzip(raw: &[u8], out: &mut Vec<u8>) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(raw).unwrap();
    out.extend(child.wait_with_output().unwrap().stdout);
}

#[tokio::test]
async fn decisions_and_changes_are_recorded_masked_and_readable_only_by_auditors() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let data = dir.path().join("data");
    let extra = format!(
        "[audit]\ndir = \"{}\"\nflush_interval_ms = 2\n[audit.tenants.acme]\nsample_allows = 1.0\n[audit.tenants.acme.masking]\ndetectors = [\"mobile\", \"email\"]\nrules = [{{ field = \"source\", mask = \"redact\" }}, {{ field = \"actor\", mask = \"pseudonym\" }}]\n",
        data.join("audit").display()
    );
    let text = support::config_text(&bundles, &extra);
    let now = trading_day_after_close();
    let server = portcullis_server::start(support::config(&text), Some(Arc::new(move || now)))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let admin_base = format!("http://{}", server.admin_addr);

    // A deny by a principal whose id is an e-mail address, from a client whose user agent holds a
    // phone number.
    let decision: Value = client()
        .post(format!("{base}/v1/check"))
        .header("user-agent", format!("tester; call me on {PHONE}"))
        .json(&json!({
            "tenant": "acme", "principal": { "id": EMAIL }, "action": "app:release",
            "resource": { "type": "app", "id": "payments" }, "context": { "ip": "172.16.3.4" },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(decision["decision"], "deny");
    // An administrative change.
    let (status, _) = admin(
        &admin_base,
        ADMIN_TOKEN,
        reqwest::Method::POST,
        "/admin/v1/tenants/acme/assignments",
        Some(json!({ "principal": "carol", "role": "viewer" })),
    )
    .await;
    assert_eq!(status, 200);

    // Auditors may read the trail; the query finds both records.
    let (status, body) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit?limit=50",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let records = page["records"].as_array().unwrap();
    let deny = records
        .iter()
        .find(|r| r["kind"] == "decision" && r["outcome"] == "deny")
        .expect("the deny is recorded");
    assert_eq!(deny["action"], "app:release");
    assert_eq!(deny["resource"], "app:payments");
    assert_eq!(deny["edge"], "http");
    assert!(
        deny["actor"].as_str().unwrap().starts_with("p_"),
        "pseudonymized: {deny}"
    );
    assert_eq!(deny["source"], "[redacted]");
    let agent = deny["user_agent"].as_str().unwrap();
    assert!(agent.starts_with("tester; call me on 139"), "{agent}");
    assert!(!agent.contains(PHONE), "{agent}");
    assert!(
        deny["policy_revision"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let change = records
        .iter()
        .find(|r| r["kind"] == "change")
        .expect("the change is recorded");
    // The tenant pseudonymizes every actor, admins included; the same admin maps to the same
    // token.
    assert!(
        change["actor"].as_str().unwrap().starts_with("p_"),
        "{change}"
    );
    assert_eq!(change["outcome"], "ok");
    assert!(change["action"].as_str().unwrap().contains("/assignments"));
    // Filters.
    let (_, body) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit?kind=change",
        None,
    )
    .await;
    let changes: Value = serde_json::from_str(&body).unwrap();
    assert!(
        changes["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] == "change")
    );

    // Nobody else may: no token, a bad token, and an admin without the permission.
    for token in ["", "not-a-token"] {
        let (status, _) = admin(
            &admin_base,
            token,
            reqwest::Method::GET,
            "/admin/v1/tenants/acme/audit",
            None,
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, body) = admin(
        &admin_base,
        ADMIN_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit?limit=0",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Export and verify; the reads themselves are in the trail.
    let (status, exported) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit/export",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(exported.lines().count() >= 2, "{exported}");
    let (status, body) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit/verify",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let (_, body) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit?kind=change&limit=100",
        None,
    )
    .await;
    let reads = serde_json::from_str::<Value>(&body).unwrap()["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"].as_str().unwrap().contains("/audit"))
        .count();
    assert!(reads >= 3, "query, export and verify are recorded: {body}");

    // Masked values never reach the disk, in any file.
    server.stop().await;
    let bytes = all_bytes(&data.join("audit"));
    assert!(!bytes.is_empty());
    for secret in [PHONE, EMAIL, "172.16.3.4"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "`{secret}` was written to the audit files"
        );
    }
}
