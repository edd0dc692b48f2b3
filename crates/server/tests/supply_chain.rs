//! The supply-chain gate end to end: a server whose advisory database holds an advisory against
//! a crate it really uses denies every `write: true` action (naming the advisory) and still
//! allows reads; removing the advisory and scanning again restores writes; both changes are in
//! the `system` tenant's audit trail and the metrics. On the embedded store and on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_supply::Lockfile;
use serde_json::json;
use support::{
    ADMIN_TOKEN, AUDIT_TOKEN, admin_call, check, copy_demo, get_text, inventory_write, logs_read,
    trading_day_after_close,
};

const ADVISORY: &str = "RUSTSEC-2099-0001";

/// The workspace's lockfile: the packages the server is built from.
fn workspace_lock() -> Lockfile {
    Lockfile::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock")).unwrap()
}

/// The RustSec snapshot beside the repository, when it is there.
fn snapshot() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/rustsec-advisory-db-2025-12-29");
    if path.is_dir() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{} is missing, and CI=true requires it", path.display());
    }
    eprintln!(
        "notice: {} is missing; skipping the supply-chain gate test",
        path.display()
    );
    None
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A critical advisory against the locked version of `tokio`, patched only in a version that
/// does not exist.
fn advisory_file(db: &Path) -> PathBuf {
    let lock = workspace_lock();
    assert!(
        lock.packages.iter().any(|p| p.name == "tokio"),
        "the server uses tokio"
    );
    let path = db.join(format!("crates/tokio/{ADVISORY}.md"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(
            "```toml\n[advisory]\nid = \"{ADVISORY}\"\npackage = \"tokio\"\ndate = \"2099-01-01\"\n\
             url = \"https://example.invalid/{ADVISORY}\"\n\
             cvss = \"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\"\n\n\
             [versions]\npatched = [\">= 99.0.0\"]\n```\n\n# A test advisory\n\nAgainst every tokio.\n"
        ),
    )
    .unwrap();
    path
}

async fn start(bundles: &Path, extra: &str) -> portcullis_server::RunningServer {
    let mut config = support::config(&support::config_text(bundles, extra));
    config
        .supply_chain
        .as_mut()
        .expect("[supply_chain] is configured")
        .packages = Some(Arc::new(workspace_lock()));
    let now = trading_day_after_close();
    portcullis_server::start(config, Some(Arc::new(move || now)))
        .await
        .unwrap()
}

async fn the_gate_closes_and_opens(extra: &str) {
    let Some(snapshot) = snapshot() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let db = dir.path().join("advisory-db");
    copy_tree(&snapshot, &db);
    let advisory = advisory_file(&db);
    let extra = format!(
        "{extra}\n[supply_chain]\ndatabase = \"{}\"\ninterval_seconds = 3600\n",
        db.display()
    );
    let server = start(&bundles, &extra).await;
    let base = format!("http://{}", server.addr);
    let admin_base = format!("http://{}", server.admin_addr);

    // Scanned at start: the signal is high, writes are denied naming the advisory, reads pass.
    let (status, scan) = admin_call(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/security/dependency-scan",
    )
    .await;
    assert_eq!(status, 200, "{scan}");
    assert_eq!(scan["high_risk"], true, "{scan}");
    assert_eq!(scan["advisories"], json!([ADVISORY]));
    assert_eq!(scan["trigger"], "start");
    assert!(scan["report"]["database"].is_object(), "{scan}");
    // The same read on the public listener, behind the same token and authorization.
    let (status, public) = admin_call(
        &base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/v1/security/dependency-scan",
    )
    .await;
    assert_eq!((status, &public), (200, &scan));
    let (status, refused) = admin_call(
        &base,
        "not-an-admin-token",
        reqwest::Method::GET,
        "/v1/security/dependency-scan",
    )
    .await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_token", "{refused}");
    let denied = check(&base, &inventory_write()).await;
    assert_eq!(denied["decision"], "deny", "{denied}");
    let forbids = denied["forbids"].as_array().unwrap();
    assert!(forbids.contains(&json!("builtin:supply-chain")), "{denied}");
    assert!(
        forbids.contains(&json!(format!("advisory:{ADVISORY}"))),
        "{denied}"
    );
    let allowed = check(&base, &logs_read()).await;
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    let metrics = get_text(&base, "/metrics").await;
    assert!(
        metrics.contains("portcullis_supply_chain_high_risk 1"),
        "{metrics}"
    );

    // An auditor may look but not scan.
    let (status, _) = admin_call(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::POST,
        "/admin/v1/security/dependency-scan",
    )
    .await;
    assert_eq!(status, 403);

    // The advisory removed and a scan asked for: writes are allowed again.
    std::fs::remove_file(&advisory).unwrap();
    let (status, scan) = admin_call(
        &admin_base,
        ADMIN_TOKEN,
        reqwest::Method::POST,
        "/admin/v1/security/dependency-scan",
    )
    .await;
    assert_eq!(status, 200, "{scan}");
    assert_eq!(scan["high_risk"], false, "{scan}");
    assert_eq!(scan["trigger"], "admin");
    let allowed = check(&base, &inventory_write()).await;
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    let metrics = get_text(&base, "/metrics").await;
    assert!(
        metrics.contains("portcullis_supply_chain_high_risk 0"),
        "{metrics}"
    );

    // Both changes of the signal are in the system tenant's trail, in order.
    let (status, page) = admin_call(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/system/audit?kind=change&limit=100",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let changes: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|record| record["action"].as_str())
        .filter(|action| action.starts_with("supply_chain."))
        .collect();
    assert!(
        changes.contains(&"supply_chain.raised") && changes.contains(&"supply_chain.cleared"),
        "{page}"
    );
    server.stop().await;
}

#[tokio::test]
async fn writes_wait_for_a_clean_dependency_scan_on_the_embedded_store() {
    the_gate_closes_and_opens("").await;
}

#[tokio::test]
async fn a_missing_database_fails_closed_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let extra = format!(
        "[supply_chain]\ndatabase = \"{}\"\n",
        dir.path().join("no-such-db").display()
    );
    let server = start(&bundles, &extra).await;
    let base = format!("http://{}", server.addr);
    let admin_base = format!("http://{}", server.admin_addr);
    let (_, scan) = admin_call(
        &admin_base,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/security/dependency-scan",
    )
    .await;
    assert_eq!(scan["high_risk"], true, "{scan}");
    assert!(
        scan["error"].as_str().unwrap().contains("no-such-db"),
        "{scan}"
    );
    let denied = check(&base, &inventory_write()).await;
    assert_eq!(denied["decision"], "deny");
    assert_eq!(check(&base, &logs_read()).await["decision"], "allow");
    server.stop().await;

    // Configured to keep the last result instead, the signal stays low.
    let extra = format!("{extra}on_error = \"keep\"\n");
    let server = start(&bundles, &extra).await;
    let base = format!("http://{}", server.addr);
    assert_eq!(check(&base, &inventory_write()).await["decision"], "allow");
    server.stop().await;
}

#[tokio::test]
async fn the_supply_chain_section_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key) in [
        (
            "[supply_chain]\ninterval_seconds = 60\n",
            "supply_chain.database",
        ),
        (
            "[supply_chain]\ndatabase = \"db\"\ninterval_seconds = 0\n",
            "supply_chain.interval_seconds",
        ),
        (
            "[supply_chain]\ndatabase = \"db\"\non_error = \"open\"\n",
            "supply_chain.on_error",
        ),
        (
            "[supply_chain]\ndatabase = \"db\"\nfrequency = 1\n",
            "frequency",
        ),
    ] {
        let error = support::config_error(dir.path(), extra);
        assert!(error.contains(key), "{extra}: {error}");
    }
}

#[tokio::test]
async fn writes_wait_for_a_clean_dependency_scan_on_postgresql() {
    let Some(database) = support::fresh_postgres("portcullis_supply").await else {
        return;
    };
    the_gate_closes_and_opens(&support::postgres_sections(&database)).await;
    support::drop_database(&database).await;
}
