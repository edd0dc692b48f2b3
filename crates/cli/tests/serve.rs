//! `portcullis serve` as a process: the banner, SIGHUP reloads, refusal of bad configuration
//! and bad bundles, and a clean exit on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::copy_demo;

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

/// Starts the server; `one_cpu` confines it to one CPU with `taskset`, where it runs on the
/// single-threaded scheduler.
fn start(config: &Path, one_cpu: bool) -> Server {
    let mut command = if one_cpu {
        let mut taskset = Command::new("taskset");
        taskset
            .args(["-c", "0"])
            .arg(env!("CARGO_BIN_EXE_portcullis"));
        taskset
    } else {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
    };
    let mut child = command
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = support::banner_address(&mut child, "API:", Duration::from_secs(20));
    Server {
        child,
        base: base.expect("the banner names the API address"),
    }
}

fn check(base: &str) -> serde_json::Value {
    let output = Command::new("curl")
        .args(["-s", "-H", "content-type: application/json", "-d"])
        .arg(r#"{"tenant":"acme","principal":{"id":"bob"},"action":"app:status.check","resource":{"type":"app","id":"p"},"context":{"ip":"172.16.3.4"}}"#)
        .arg(format!("{base}/v1/check"))
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

fn config(dir: &Path, bundles: &Path) -> PathBuf {
    let path = dir.join("portcullis.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nbundles = [\"{}\"]\n[reload]\nwatch = false\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            bundles.display()
        ),
    )
    .unwrap();
    path
}

fn signal(server: &Server, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sighup_reloads_and_sigterm_stops() {
    reload_and_stop(false);
}

#[test]
fn on_one_cpu_the_server_decides_reloads_and_stops_alike() {
    if Command::new("taskset").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "taskset (util-linux) is required under CI=true"
        );
        eprintln!("notice: taskset is not installed; skipping the one-CPU run");
        return;
    }
    reload_and_stop(true);
}

fn reload_and_stop(one_cpu: bool) {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let mut server = start(&config(dir.path(), &bundles), one_cpu);
    assert_eq!(check(&server.base)["decision"], "allow");

    // File watching is off: the edit takes effect only on SIGHUP.
    std::fs::write(
        bundles.join("acme/principals.yaml"),
        "principals:\n  bob: { roles: [] }\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(check(&server.base)["decision"], "allow");
    signal(&server, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while check(&server.base)["decision"] != "deny" {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }

    signal(&server, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "graceful exit: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the server");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_configuration_and_bad_bundles_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = \"everywhere\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("configuration key `listen`"), "{stderr}");

    let bundles = copy_demo(dir.path());
    std::fs::write(
        bundles.join("acme/broken.yaml"),
        "factors:\n  X: { ip: [\"nope\"] }\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(config(dir.path(), &bundles))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken.yaml:2:13: error[address]"),
        "{stderr}"
    );
}
