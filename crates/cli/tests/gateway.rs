//! `portcullis gateway` as a process, on the example configuration
//! (`examples/gateway/portcullis.toml`, its addresses moved to free ports), in front of a small
//! application; tokens from `portcullis token`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ISSUER_SECRET: &str = "gateway-cli-test-secret-0123456789abcdef";

struct Gateway {
    child: Child,
    base: String,
    /// The decision API (metrics).
    api: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An application answering `ok` to everything, one connection at a time.
fn application() -> u16 {
    application_saying("ok")
}

/// An application answering `body` to everything, one connection at a time.
fn application_saying(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 8192];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    port
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The example configuration with free ports, its own data folder and `upstream` port.
fn example_config(dir: &Path, upstream: u16) -> PathBuf {
    let example = workspace().join("examples/gateway/portcullis.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let bundles = workspace().join("examples/demo/bundles");
    let rewritten = text
        .replace("127.0.0.1:9700", "127.0.0.1:0")
        .replace("127.0.0.1:9701", "127.0.0.1:0")
        .replace("listen = \"127.0.0.1:8600\"", "listen = \"127.0.0.1:0\"")
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
        .replace("\"../demo/bundles\"", &format!("\"{}\"", bundles.display()))
        .replace(
            "/tmp/portcullis-gateway-demo",
            &dir.join("data").display().to_string(),
        );
    assert_ne!(text, rewritten);
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, rewritten).unwrap();
    path
}

fn start(config: &Path) -> Gateway {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["gateway", "--config"])
        .arg(config)
        .env("DEMO_ISSUER_SECRET", ISSUER_SECRET)
        .env("DEMO_CSRF_SECRET", "csrf-secret-for-the-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut base, mut api) = (None, None);
    while base.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.trim().strip_prefix("gateway:") {
            base = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.trim().strip_prefix("API:") {
            api = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Gateway {
        child,
        base: base.expect("the banner names the gateway's address"),
        api: api.expect("the banner names the API's address"),
    }
}

fn token(subject: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "token",
            "--secret-env",
            "ISSUER_SECRET_FOR_TEST",
            "--issuer",
            "https://idp.demo.example",
            "--subject",
            subject,
            "--tenant",
            "acme",
        ])
        .env("ISSUER_SECRET_FOR_TEST", ISSUER_SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `curl` through the gateway as the demo tenant's host from the office; status and body.
fn get(gateway: &Gateway, path: &str, token: Option<&str>) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-w",
        "\n%{http_code}",
        "-H",
        "Host: ops.acme.example",
        "-H",
        "X-Forwarded-For: 172.16.3.4",
    ]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .arg(format!("{}{path}", gateway.base))
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

#[test]
fn the_example_configuration_protects_an_application() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&example_config(dir.path(), application()));
    let bob = token("bob");
    let (status, body) = get(
        &gateway,
        "/ops/apps/payments/logs/today?lines=10",
        Some(&bob),
    );
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = get(
        &gateway,
        "/ops/apps/payments/logs/today?lines=ten",
        Some(&bob),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"stage\":\"validation\""), "{body}");
    let (status, body) = get(&gateway, "/ops/apps/payments/logs/today", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"stage\":\"credential\""), "{body}");
    let (status, body) = get(&gateway, "/not/a/route", Some(&bob));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"stage\":\"resource\""), "{body}");
}

#[test]
fn a_configuration_without_a_gateway_section_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = support::copy_demo(dir.path());
    let path = dir.path().join("plain.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nbundles = [\"{}\"]\n",
            bundles.display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["gateway", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no [gateway] section"), "{stderr}");
    // `portcullis token` without its secret is a usage error.
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "token",
            "--secret-env",
            "NOT_SET_ANYWHERE_0",
            "--issuer",
            "i",
            "--subject",
            "s",
        ])
        .env_remove("NOT_SET_ANYWHERE_0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// Waits up to ten seconds for `done` to hold.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within ten seconds");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The service's metrics text.
fn metrics(gateway: &Gateway) -> String {
    let output = Command::new("curl")
        .args(["-s", &format!("{}/metrics", gateway.api)])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn an_edited_configuration_file_is_served_from_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = example_config(dir.path(), application());
    let gateway = start(&path);
    let bob = token("bob");
    let path_of_logs = "/ops/apps/payments/logs/today?lines=10";
    assert_eq!(get(&gateway, path_of_logs, Some(&bob)), (200, "ok".into()));

    // The application moves: the gateway follows the file as soon as it is written.
    let text = std::fs::read_to_string(&path).unwrap();
    let old_port = text
        .split("upstream = { url = \"http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let moved = text.replace(
        &format!("127.0.0.1:{old_port}\""),
        &format!("127.0.0.1:{}\"", application_saying("moved")),
    );
    assert_ne!(moved, text);
    std::fs::write(&path, &moved).unwrap();
    eventually("the new upstream answers", || {
        get(&gateway, path_of_logs, Some(&bob)) == (200, "moved".into())
    });

    // A broken edit is refused (counted, logged); the gateway goes on as it was.
    std::fs::write(
        &path,
        moved.replacen("[gateway]", "[gateway]\nno_such_key = 1", 1),
    )
    .unwrap();
    eventually("the failed reload is counted", || {
        metrics(&gateway).contains(r#"portcullis_gateway_reloads_total{outcome="failed"} 1"#)
    });
    assert_eq!(
        get(&gateway, path_of_logs, Some(&bob)),
        (200, "moved".into())
    );
}

#[test]
fn sighup_reloads_the_gateway_when_files_are_not_watched() {
    let dir = tempfile::tempdir().unwrap();
    let path = example_config(dir.path(), application());
    let text = std::fs::read_to_string(&path).unwrap() + "\n[reload]\nwatch = false\n";
    std::fs::write(&path, &text).unwrap();
    let gateway = start(&path);
    let bob = token("bob");
    let path_of_logs = "/ops/apps/payments/logs/today?lines=10";
    assert_eq!(get(&gateway, path_of_logs, Some(&bob)), (200, "ok".into()));
    // A route made public: until the signal, it still needs a token.
    let public = text.replacen(
        "[[gateway.apps]]",
        "[[gateway.apps]]\npublic = [\"GET /ops/apps/{app}/logs/{*rest}\"]",
        1,
    );
    assert_ne!(public, text);
    std::fs::write(&path, &public).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&gateway, path_of_logs, None).0, 401);
    let status = Command::new("kill")
        .args(["-HUP", &gateway.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually("the route is public", || {
        get(&gateway, path_of_logs, None) == (200, "ok".into())
    });
}
