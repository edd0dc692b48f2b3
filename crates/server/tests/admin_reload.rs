//! Admin API (token, system-tenant authorization, uploads) and hot reload (file watch, admin
//! reload, invalid bundles leaving the old in place, swaps under load never mixing policies).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::{ADMIN_TOKEN, AUDIT_TOKEN, client, copy_demo, server_on, trading_day_after_close};

const BOB_LOGS: &str = r#"{"tenant":"acme","principal":{"id":"bob"},"action":"app:logs.download","resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}"#;

async fn decide(base: &str) -> Value {
    client()
        .post(format!("{base}/v1/check"))
        .header("content-type", "application/json")
        .body(BOB_LOGS)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn acme_files(bundles: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_dir(bundles.join("acme"))
        .unwrap()
        .flatten()
        .map(|f| {
            (
                f.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(f.path()).unwrap(),
            )
        })
        .collect()
}

async fn upload(
    admin: &str,
    token: &str,
    tenant: &str,
    files: &BTreeMap<String, String>,
) -> (u16, Value) {
    let response = client()
        .put(format!("{admin}/admin/v1/tenants/{tenant}/bundle"))
        .bearer_auth(token)
        .json(&json!({ "files": files }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn admin_calls_need_a_token_and_a_system_grant() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let server = server_on(&bundles, "", trading_day_after_close()).await;
    let admin = format!("http://{}", server.admin_addr);
    let public = format!("http://{}", server.addr);

    let anonymous = client()
        .get(format!("{admin}/admin/v1/tenants"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = client()
        .get(format!("{admin}/admin/v1/tenants"))
        .bearer_auth("not-a-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let listed: Value = client()
        .get(format!("{admin}/admin/v1/tenants"))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenants: Vec<&str> = listed["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme", "system"]);
    let one: Value = client()
        .get(format!("{admin}/admin/v1/tenants/acme"))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        one["factors"],
        json!(["P1", "P2", "P3", "P4", "P5", "remote"])
    );
    let missing = client()
        .get(format!("{admin}/admin/v1/tenants/globex"))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let invalid = client()
        .get(format!("{admin}/admin/v1/tenants/a%20b"))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status().as_u16(), 400);

    let files = acme_files(&bundles);
    let (status, answer) = upload(&admin, AUDIT_TOKEN, "acme", &files).await;
    assert_eq!(status, 403, "auditors may not upload: {answer}");
    assert_eq!(answer["error"]["code"], "denied");
    let reload = client()
        .post(format!("{admin}/admin/v1/reload"))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status().as_u16(), 403);

    let system_files: BTreeMap<String, String> = std::fs::read_dir(bundles.join("system"))
        .unwrap()
        .flatten()
        .map(|f| {
            (
                f.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(f.path()).unwrap(),
            )
        })
        .collect();
    let (status, _) = upload(&admin, ADMIN_TOKEN, "system", &system_files).await;
    assert_eq!(status, 403, "the system bundle is not uploadable (SYS-001)");

    // Admin endpoints are not on the public listener.
    let hidden = client()
        .get(format!("{public}/admin/v1/tenants"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status().as_u16(), 404);
    server.stop().await;
}

#[tokio::test]
async fn uploads_validate_then_swap_and_failures_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let server = server_on(&bundles, "", trading_day_after_close()).await;
    let admin = format!("http://{}", server.admin_addr);
    let public = format!("http://{}", server.addr);
    assert_eq!(decide(&public).await["decision"], "allow");
    let before = decide(&public).await["revision"]["bundle"].clone();

    let mut broken = acme_files(&bundles);
    broken.insert(
        "principals.yaml".into(),
        "principals:\n  bob: { roles: [viewr] }\n  eve: { roles: [ghost] }\n".into(),
    );
    broken.insert(
        "extra.yaml".into(),
        "factors:\n  P9: { ip: [\"300.1.1.1\"] }\n".into(),
    );
    let (status, answer) = upload(&admin, ADMIN_TOKEN, "acme", &broken).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_bundle");
    let problems = answer["error"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 3, "every problem is returned: {answer}");
    assert!(
        problems
            .iter()
            .any(|p| p["message"] == "unknown role `viewr`"
                && p["line"] == 2
                && p["column"] == 18
                && p["file"].as_str().unwrap().ends_with("principals.yaml")),
        "{answer}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p["code"] == "address" && p["file"].as_str().unwrap().ends_with("extra.yaml")),
        "{answer}"
    );
    assert_eq!(
        decide(&public).await["revision"]["bundle"],
        before,
        "nothing changed"
    );
    assert!(
        !bundles.join("acme/extra.yaml").exists(),
        "nothing was written"
    );

    let (status, answer) = upload(
        &admin,
        ADMIN_TOKEN,
        "acme",
        &BTreeMap::from([("../x.yaml".to_owned(), String::new())]),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_file_name"))
    );
    let mut renamed = acme_files(&bundles);
    renamed.insert(
        "tenant.yaml".into(),
        "tenant: globex\ntimezone: UTC\nmodel: model.fga\n".into(),
    );
    let (status, answer) = upload(&admin, ADMIN_TOKEN, "acme", &renamed).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("tenant_mismatch"))
    );

    let mut revoked = acme_files(&bundles);
    revoked.insert(
        "principals.yaml".into(),
        "principals:\n  bob: { roles: [] }\n".into(),
    );
    let (status, answer) = upload(&admin, ADMIN_TOKEN, "acme", &revoked).await;
    assert_eq!(status, 200, "{answer}");
    let after = decide(&public).await;
    assert_eq!(after["decision"], "deny");
    assert_eq!(after["revision"]["bundle"], answer["revision"]);
    assert_eq!(
        std::fs::read_to_string(bundles.join("acme/principals.yaml")).unwrap(),
        "principals:\n  bob: { roles: [] }\n",
        "written to disk"
    );

    // A new tenant's bundle lives in the store (with history), not in a folder.
    let globex = BTreeMap::from([
        (
            "tenant.yaml".to_owned(),
            "tenant: globex\ntimezone: UTC\n".to_owned(),
        ),
        (
            "roles.yaml".to_owned(),
            "roles:\n  r: { permissions: [\"doc:read\"] }\n".to_owned(),
        ),
    ]);
    let (status, answer) = upload(&admin, ADMIN_TOKEN, "globex", &globex).await;
    assert_eq!(status, 200, "{answer}");
    assert!(!bundles.join("globex").exists());
    let read: Value = client()
        .get(format!("{admin}/admin/v1/tenants/globex"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["source"], "store:1", "{read}");
    assert_eq!(read["roles"], json!(["r"]));
    server.stop().await;
}

async fn wait_for(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn file_changes_reload_and_invalid_files_keep_the_old_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let server = server_on(&bundles, "", trading_day_after_close()).await;
    let public = format!("http://{}", server.addr);
    assert_eq!(decide(&public).await["decision"], "allow");

    std::fs::write(
        bundles.join("acme/principals.yaml"),
        "principals:\n  bob: { roles: [] }\n",
    )
    .unwrap();
    wait_for("the edit to apply", async || {
        decide(&public).await["decision"] == "deny"
    })
    .await;

    std::fs::write(
        bundles.join("acme/principals.yaml"),
        "principals:\n  bob: { roles: [viewer }\n",
    )
    .unwrap();
    let metrics = || async {
        client()
            .get(format!("{public}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    wait_for("the failure to be counted", async || {
        metrics()
            .await
            .contains(r#"portcullis_bundle_reloads_total{outcome="failed",trigger="watch"}"#)
    })
    .await;
    assert_eq!(
        decide(&public).await["decision"],
        "deny",
        "the previous good bundle stays"
    );

    std::fs::write(
        bundles.join("acme/principals.yaml"),
        "principals:\n  bob: { roles: [viewer] }\n",
    )
    .unwrap();
    wait_for("the fix to apply", async || {
        decide(&public).await["decision"] == "allow"
    })
    .await;

    // The admin reload reports what it did.
    let report: Value = client()
        .post(format!("http://{}/admin/v1/reload", server.admin_addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["unchanged"].as_array().unwrap().len(), 2, "{report}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_load_never_mix_or_fail_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let text = support::config_text(&bundles, "").replace("debounce_ms = 50", "watch = false");
    let now = trading_day_after_close();
    let server = portcullis_server::start(
        support::config(&text),
        Some(std::sync::Arc::new(move || now)),
    )
    .await
    .unwrap();
    let admin = format!("http://{}", server.admin_addr);
    let public = format!("http://{}", server.addr);
    let granted = acme_files(&bundles);
    let mut revoked = granted.clone();
    revoked.insert(
        "principals.yaml".into(),
        "principals:\n  bob: { roles: [] }\n".into(),
    );
    let (_, answer) = upload(&admin, ADMIN_TOKEN, "acme", &revoked).await;
    let revoked_revision = answer["revision"].as_str().unwrap().to_owned();
    let (_, answer) = upload(&admin, ADMIN_TOKEN, "acme", &granted).await;
    let granted_revision = answer["revision"].as_str().unwrap().to_owned();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..6 {
        let public = public.clone();
        let stop = std::sync::Arc::clone(&stop);
        let (granted_revision, revoked_revision) =
            (granted_revision.clone(), revoked_revision.clone());
        workers.push(tokio::spawn(async move {
            let http = client();
            let mut seen = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = http
                    .post(format!("{public}/v1/check"))
                    .header("content-type", "application/json")
                    .body(BOB_LOGS)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 200);
                let decision: Value = response.json().await.unwrap();
                let revision = decision["revision"]["bundle"].as_str().unwrap();
                match decision["decision"].as_str().unwrap() {
                    "allow" => {
                        assert_eq!(
                            revision, granted_revision,
                            "an allow comes from the granting bundle"
                        );
                        seen.0 += 1;
                    }
                    _ => {
                        assert_eq!(
                            revision, revoked_revision,
                            "a deny comes from the revoking bundle"
                        );
                        assert_eq!(decision["cause"], "no_grant");
                        seen.1 += 1;
                    }
                }
            }
            seen
        }));
    }
    for round in 0..30 {
        let files = if round % 2 == 0 { &revoked } else { &granted };
        let (status, answer) = upload(&admin, ADMIN_TOKEN, "acme", files).await;
        assert_eq!(status, 200, "{answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut totals = (0, 0);
    for worker in workers {
        let (allows, denies) = worker.await.unwrap();
        totals = (totals.0 + allows, totals.1 + denies);
    }
    assert!(
        totals.0 > 0 && totals.1 > 0,
        "both versions answered: {totals:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_authenticates_before_reading_bodies() {
    let server = server_on(&support::demo_bundles(), "", trading_day_after_close()).await;
    let admin = format!("http://{}", server.admin_addr);
    let big = "x".repeat(20 * 1024 * 1024);
    let response = client()
        .put(format!("{admin}/admin/v1/tenants/acme/bundle"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        401,
        "not 413 or 415: the token is checked first"
    );
    let response = client()
        .put(format!("{admin}/admin/v1/tenants/a%20b/bundle"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = client()
        .delete(format!("{admin}/admin/v1/tenants"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
    server.stop().await;
}
