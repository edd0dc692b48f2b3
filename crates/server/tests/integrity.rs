//! The integrity check at start and on reload: a server whose bundle files are not the ones the
//! trusted manifest signed does not start (naming the file), or with `on_failure = "read_only"`
//! starts with every write denied; a bundle file added after start is refused by reload while
//! the signed version keeps answering.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_supply::integrity::{Manifest, SecretKey, Subjects};
use serde_json::json;
use support::{ADMIN_TOKEN, check, copy_demo, inventory_write, logs_read, trading_day_after_close};

/// Demo bundles in `dir`, a key pair and a manifest of the bundle files signed with it.
fn signed(dir: &Path) -> (PathBuf, String) {
    let bundles = copy_demo(dir);
    let key = SecretKey::from_seed([42; 32]);
    key.public().save(&dir.join("trusted.pub")).unwrap();
    Manifest::sign(
        &Subjects {
            bundles: vec![bundles.clone()],
            ..Subjects::default()
        },
        dir,
        &key,
        jiff::Timestamp::UNIX_EPOCH,
    )
    .unwrap()
    .save(&dir.join("manifest.json"))
    .unwrap();
    let section = format!(
        "[integrity]\nmanifest = \"{}\"\ntrust_key = \"{}\"\n",
        dir.join("manifest.json").display(),
        dir.join("trusted.pub").display()
    );
    (bundles, section)
}

async fn start(bundles: &Path, extra: &str) -> Result<portcullis_server::RunningServer, String> {
    let now = trading_day_after_close();
    portcullis_server::start(
        support::config(&support::config_text(bundles, extra)),
        Some(Arc::new(move || now)),
    )
    .await
}

#[tokio::test]
async fn signed_bundles_start_and_a_changed_byte_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, section) = signed(dir.path());
    let server = start(&bundles, &section).await.unwrap();
    let base = format!("http://{}", server.addr);
    assert_eq!(check(&base, &inventory_write()).await["decision"], "allow");
    server.stop().await;

    let changed = bundles.join("acme/actions.yaml");
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes.push(b'\n');
    std::fs::write(&changed, bytes).unwrap();
    let error = start(&bundles, &section).await.unwrap_err();
    assert!(error.contains("integrity check failed"), "{error}");
    assert!(error.contains("acme/actions.yaml"), "{error}");
}

#[tokio::test]
async fn a_failed_check_can_start_read_only_with_every_write_denied() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, section) = signed(dir.path());
    // Another key signed nothing here: the signature check fails.
    SecretKey::from_seed([43; 32])
        .public()
        .save(&dir.path().join("other.pub"))
        .unwrap();
    let section = section.replace("trusted.pub", "other.pub");
    let error = start(&bundles, &section).await.unwrap_err();
    assert!(error.contains("not by the trusted key"), "{error}");

    let server = start(&bundles, &format!("{section}on_failure = \"read_only\"\n"))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let denied = check(&base, &inventory_write()).await;
    assert_eq!(denied["decision"], "deny", "{denied}");
    let forbids = denied["forbids"].as_array().unwrap();
    assert!(forbids.contains(&json!("builtin:supply-chain")), "{denied}");
    assert!(forbids.contains(&json!("advisory:integrity")), "{denied}");
    assert_eq!(check(&base, &logs_read()).await["decision"], "allow");
    let reason = server.state.read_only().expect("read-only").to_owned();
    assert!(reason.contains("not by the trusted key"), "{reason}");
    let (_, status) = support::admin_call(
        &format!("http://{}", server.admin_addr),
        ADMIN_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/security/dependency-scan",
    )
    .await;
    assert_eq!(status["read_only"], reason.as_str(), "{status}");
    server.stop().await;
}

#[tokio::test]
async fn reload_refuses_a_bundle_file_the_manifest_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let (bundles, section) = signed(dir.path());
    let server = start(&bundles, &section).await.unwrap();
    let base = format!("http://{}", server.addr);
    let admin_base = format!("http://{}", server.admin_addr);
    assert_eq!(check(&base, &inventory_write()).await["decision"], "allow");

    // A rule added on disk after start that would deny the write.
    std::fs::write(
        bundles.join("acme/late.yaml"),
        "rules:\n  - id: LATE-1\n    effect: forbid\n    actions: [\"inventory:increase\"]\n",
    )
    .unwrap();
    let (_, report) = support::admin_call(
        &admin_base,
        ADMIN_TOKEN,
        reqwest::Method::POST,
        "/admin/v1/reload",
    )
    .await;
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    let errors = failed[0]["errors"].to_string();
    assert!(
        errors.contains("late.yaml") && errors.contains("not covered"),
        "{report}"
    );
    // The signed version still answers.
    assert_eq!(check(&base, &inventory_write()).await["decision"], "allow");
    server.stop().await;
}

#[tokio::test]
async fn the_integrity_section_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key) in [
        (
            "[integrity]\nmanifest = \"m.json\"\n",
            "integrity.trust_key",
        ),
        ("[integrity]\ntrust_key = \"k.pub\"\n", "integrity.manifest"),
        (
            "[integrity]\nmanifest = \"m.json\"\ntrust_key = \"k.pub\"\non_failure = \"warn\"\n",
            "integrity.on_failure",
        ),
    ] {
        let error = support::config_error(dir.path(), extra);
        assert!(error.contains(key), "{extra}: {error}");
    }
}
