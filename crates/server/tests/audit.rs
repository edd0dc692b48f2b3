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

/// `(tenant, position, seq, kind, actor, outcome, line)` of every row, in stream order.
type Row = (String, i64, i64, String, String, String, String);

async fn table(owner: &sqlx::PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT tenant_id, position, seq, kind, actor, outcome, line FROM audit_log ORDER BY tenant_id, position",
    )
    .fetch_all(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_trail_kept_in_postgresql_verifies_and_a_tampered_row_is_named() {
    let Some(database) = support::fresh_postgres("portcullis_audit").await else {
        return;
    };
    let service_url = format!("postgres://portcullis_service@127.0.0.1:5432/{database}");
    let owner_url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let extra = format!(
        "[store]\nurl = \"{service_url}?sslmode=disable\"\nmigrate_url = \"{owner_url}\"\n\
         [audit]\nbackend = \"store\"\nflush_interval_ms = 2\n[audit.segments]\ncheckpoint_every = 4\n"
    );
    let now = trading_day_after_close();
    let server = portcullis_server::start(
        support::config(&support::config_text(&bundles, &extra)),
        Some(Arc::new(move || now)),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let admin_base = format!("http://{}", server.admin_addr);
    let public_key = server.state.config.data_dir.join("audit-signing.pub");
    assert!(
        !server.state.config.data_dir.join("audit").exists(),
        "no audit files with the store backend"
    );

    // Decisions of a loaded tenant and of one that is not loaded (filed under `system`), and an
    // administrative change.
    for (tenant, principal) in [
        ("acme", EMAIL),
        ("acme", "stranger-1"),
        ("globex", "stranger-2"),
        ("acme", "stranger-3"),
        ("acme", "stranger-4"),
        ("globex", "stranger-5"),
        ("acme", "stranger-6"),
    ] {
        let answer = client()
            .post(format!("{base}/v1/check"))
            .json(&json!({
                "tenant": tenant, "principal": { "id": principal }, "action": "app:release",
                "resource": { "type": "app", "id": "payments" }, "context": { "ip": "172.16.3.4" },
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let (status, body) = admin(
        &admin_base,
        ADMIN_TOKEN,
        reqwest::Method::POST,
        "/admin/v1/tenants/acme/assignments",
        Some(json!({ "principal": "carol", "role": "viewer" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The change is in the table before its answer; decisions within a flush interval.
    let owner = sqlx::PgPool::connect(&owner_url).await.unwrap();
    let rows = table(&owner).await;
    assert!(
        rows.iter()
            .any(|r| r.0 == "acme" && r.3 == "change" && r.6.contains("/assignments")),
        "the change is durable before the answer: {rows:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let rows = table(&owner).await;
    let acme_decisions = rows
        .iter()
        .filter(|r| r.0 == "acme" && r.3 == "decision")
        .count();
    assert_eq!(acme_decisions, 5, "{rows:?}");
    assert!(
        rows.iter().any(|r| r.0 == "acme" && r.3 == "checkpoint"),
        "a checkpoint every 4 records"
    );
    // A tenant that is not loaded gets no stream of its own: callers cannot create one per
    // tenant id they invent. Its decisions are in `system`'s, naming it.
    assert!(!rows.iter().any(|r| r.0 == "globex"), "{rows:?}");
    let unknown = rows
        .iter()
        .filter(|r| r.0 == "system" && r.3 == "decision")
        .filter(|r| serde_json::from_str::<Value>(&r.6).unwrap()["details"]["tenant"] == "globex")
        .count();
    assert_eq!(unknown, 2, "{rows:?}");
    // Each tenant's stream holds only its own lines, numbered without gaps; the lookup columns
    // say what the lines say.
    for tenant in ["acme", "system"] {
        let stream: Vec<&Row> = rows.iter().filter(|r| r.0 == tenant).collect();
        assert!(!stream.is_empty(), "{tenant} has a stream");
        for (index, row) in stream.iter().enumerate() {
            assert_eq!(row.1, index as i64 + 1, "{tenant}: positions without gaps");
            let line: Value = serde_json::from_str(&row.6).unwrap();
            assert_eq!(line["tenant"], tenant, "{tenant}'s stream holds {line}");
            assert_eq!(line["kind"], row.3.as_str());
            assert_eq!(line["seq"], row.2);
            if row.3 != "checkpoint" {
                assert_eq!(line["actor"], row.4.as_str());
                assert_eq!(line["outcome"], row.5.as_str());
            }
        }
    }
    assert!(
        rows.iter().all(|r| !r.6.contains(EMAIL)),
        "masking applies before the table"
    );

    // The admin API reads the table: query, export and verify.
    let (status, body) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit?outcome=deny&limit=2",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{body}");
    assert!(records.iter().all(|r| r["outcome"] == "deny"));
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (status, body) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        &format!("/admin/v1/tenants/acme/audit?outcome=deny&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let next: Value = serde_json::from_str(&body).unwrap();
    assert!(
        next["records"][0]["seq"].as_u64() > records[1]["seq"].as_u64(),
        "the next page continues: {body}"
    );
    let (_, body) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit?kind=change",
        None,
    )
    .await;
    let changes: Value = serde_json::from_str(&body).unwrap();
    let changes = changes["records"].as_array().unwrap();
    assert!(changes.iter().all(|r| r["kind"] == "change"), "{body}");
    assert!(
        changes
            .iter()
            .any(|r| r["action"].as_str().unwrap().contains("/assignments")),
        "{body}"
    );
    let (status, exported) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit/export",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let stream: Vec<String> = table(&owner)
        .await
        .into_iter()
        .filter(|r| r.0 == "acme")
        .map(|r| r.6)
        .collect();
    let exported: Vec<&str> = exported.lines().collect();
    assert!(exported.len() >= 8, "{exported:?}");
    assert_eq!(
        exported,
        stream[..exported.len()]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "the export is the stream, checkpoints included"
    );
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
    assert!(
        report["report"]["records"].as_u64().unwrap() >= 7,
        "{report}"
    );

    // The service role cannot rewrite the table.
    let service = sqlx::PgPool::connect(&service_url).await.unwrap();
    for statement in [
        "UPDATE audit_log SET outcome = 'allow' WHERE tenant_id = 'acme'",
        "DELETE FROM audit_log WHERE tenant_id = 'acme'",
    ] {
        let mut tx = service.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let error = sqlx::query(statement).execute(&mut *tx).await.unwrap_err();
        assert!(error.to_string().contains("permission denied"), "{error}");
        tx.rollback().await.unwrap();
    }
    service.close().await;

    // A clean stop seals every stream; what the CLI runs verifies the sealed table.
    server.stop().await;
    let reader = portcullis_store::Store::open(&portcullis_store::StoreConfig {
        url: service_url.clone(),
        migrate_url: Some(owner_url.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let key = portcullis_audit::VerifyingKey::load(&public_key).unwrap();
    let acme = portcullis_store::TenantId::new("acme").unwrap();
    for tenant in ["acme", "system"] {
        let tenant = portcullis_store::TenantId::new(tenant).unwrap();
        let report = portcullis_server::audit::store::verify(&reader, &tenant, &key)
            .await
            .unwrap();
        assert!(report.is_ok(), "{tenant}: {report:?}");
    }
    // Another tenant's key does not verify the trail.
    let other = portcullis_audit::SigningKey::from_seed([3; 32]).verifying_key();
    let report = portcullis_server::audit::store::verify(&reader, &acme, &other)
        .await
        .unwrap();
    assert!(!report.is_ok());

    // The owner edits a deny into an allow, outside the service: the verifier names the row.
    let (position, seq): (i64, i64) = sqlx::query_as(
        "UPDATE audit_log SET line = replace(line, '\"outcome\":\"deny\"', '\"outcome\":\"allow\"') \
         WHERE tenant_id = 'acme' AND position = \
           (SELECT min(position) FROM audit_log WHERE tenant_id = 'acme' AND outcome = 'deny') \
         RETURNING position, seq",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    let report = portcullis_server::audit::store::verify(&reader, &acme, &key)
        .await
        .unwrap();
    let problem = report.problem.expect("the edit is caught");
    assert_eq!(
        problem.kind,
        portcullis_audit::ProblemKind::EditedRecord,
        "{problem:?}"
    );
    assert_eq!(problem.seq, Some(seq as u64), "{problem:?}");
    assert_eq!(
        problem.location.to_string(),
        format!("audit_log:{position}"),
        "{problem:?}"
    );
    reader.close().await;
    owner.close().await;
    support::drop_database(&database).await;
}

/// The embedded SQLite store keeps the trail too (its own pool beside the service's, one file).
#[tokio::test]
async fn the_trail_kept_in_sqlite_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let extra = "[audit]\nbackend = \"store\"\nflush_interval_ms = 2\n";
    let now = trading_day_after_close();
    let server = portcullis_server::start(
        support::config(&support::config_text(&bundles, extra)),
        Some(Arc::new(move || now)),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let admin_base = format!("http://{}", server.admin_addr);
    for principal in ["stranger-1", "stranger-2", "stranger-3"] {
        let answer = client()
            .post(format!("{base}/v1/check"))
            .json(&json!({
                "tenant": "acme", "principal": { "id": principal }, "action": "app:release",
                "resource": { "type": "app", "id": "payments" },
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let (status, body) = admin(
        &admin_base,
        ADMIN_TOKEN,
        reqwest::Method::POST,
        "/admin/v1/tenants/acme/assignments",
        Some(json!({ "principal": "carol", "role": "viewer" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let records = page["records"].as_array().unwrap();
    assert_eq!(
        records.iter().filter(|r| r["kind"] == "decision").count(),
        3,
        "{body}"
    );
    assert!(records.iter().any(|r| r["kind"] == "change"), "{body}");
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
    assert!(
        report["report"]["records"].as_u64().unwrap() >= 4,
        "{report}"
    );
    let key = server.state.audit.as_ref().unwrap().verifying_key().clone();
    let state = Arc::clone(&server.state);
    server.stop().await;
    let store = portcullis_store::Store::open(&state.config.store.store)
        .await
        .unwrap();
    let acme = portcullis_store::TenantId::new("acme").unwrap();
    let report = portcullis_server::audit::store::verify(&store, &acme, &key)
        .await
        .unwrap();
    assert!(report.is_ok(), "sealed at stop: {report:?}");
    store.close().await;
}
