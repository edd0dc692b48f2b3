//! `portcullis access` against a real `portcullis serve` on the demo bundles: alice asks, is
//! refused approving her own request, sofia (the demo's security officer) approves, the grant
//! allows a check from the bound network only, sofia revokes it; usage errors exit 2, refusals
//! 1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const ISSUER: &str = "https://idp.access-cli.test";
const SECRET: &str = "access-cli-identity-secret-0123456789";

struct Server {
    child: Child,
    api: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let bundles = support::copy_demo(dir.path());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nbundles = [\"{}\"]\ndata_dir = \"{}\"\n\
             [reload]\nwatch = false\n\
             [identity]\n[[identity.issuers]]\nissuer = \"{ISSUER}\"\nsecret_env = \"ACCESS_CLI_SECRET\"\n",
            bundles.display(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("PORTCULLIS_DATABASE_URL")
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .env("ACCESS_CLI_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let api = support::banner_address(&mut child, "API:", Duration::from_secs(30));
    Server {
        child,
        api: api.expect("the banner names the API address"),
        _dir: dir,
    }
}

fn token(subject: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "iss": ISSUER, "sub": subject, "tenant": "acme", "exp": now + 600 }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Server {
    /// `portcullis access ARGS --api-url … --api-token <SUBJECT's token>`.
    fn access(&self, subject: &str, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("access")
            .args(args)
            .args(["--api-url", &self.api, "--api-token", &token(subject)])
            .env_remove("PORTCULLIS_API_URL")
            .env_remove("PORTCULLIS_API_TOKEN")
            .output()
            .unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn check(&self, ip: &str) -> Value {
        let body = json!({
            "tenant": "acme",
            "principal": { "id": "alice" },
            "action": "app:delete",
            "resource": { "type": "app", "id": "payments" },
            "context": { "ip": ip },
        });
        let url = format!("{}/v1/check", self.api);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            })
    }
}

#[test]
fn request_approve_use_and_revoke_from_the_command_line() {
    let server = start();
    assert_eq!(server.check("10.1.2.3")["decision"], "deny");

    let asked = server.access(
        "alice",
        &[
            "request",
            "--action",
            "app:delete",
            "--resource",
            "app:payments",
            "--reason",
            "incident 42: a stuck deployment",
            "--duration",
            "30m",
            "--network",
            "10.0.0.0/8",
        ],
    );
    assert_eq!(asked.code, Some(0), "{}", asked.stderr);
    let id = asked.stdout.lines().next().unwrap().trim().to_owned();
    assert!(id.starts_with("ta-"), "{}", asked.stdout);
    assert!(asked.stdout.contains("pending"), "{}", asked.stdout);

    // Alice may not approve: the policy says so (exit 1, the code printed).
    let own = server.access("alice", &["approve", &id]);
    assert_eq!(own.code, Some(1));
    assert!(own.stderr.contains("denied"), "{}", own.stderr);

    // Sofia's inbox holds it; she approves.
    let inbox = server.access("sofia", &["list", "--status", "pending", "--json"]);
    assert_eq!(inbox.code, Some(0), "{}", inbox.stderr);
    let listed: Value = serde_json::from_str(&inbox.stdout).unwrap();
    assert_eq!(listed["requests"][0]["id"], id.as_str());
    let approved = server.access("sofia", &["approve", &id, "--comment", "go"]);
    assert_eq!(approved.code, Some(0), "{}", approved.stderr);
    assert!(
        approved.stdout.contains("approved by sofia"),
        "{}",
        approved.stdout
    );

    let decision = server.check("10.1.2.3");
    assert_eq!(decision["decision"], "allow", "{decision}");
    assert_eq!(decision["reasons"][0]["kind"], "grant");
    assert_eq!(decision["reasons"][0]["id"], id.as_str());
    assert_eq!(server.check("192.0.2.1")["decision"], "deny");

    let table = server.access("alice", &["list"]);
    assert_eq!(table.code, Some(0));
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    assert!(table.stdout.contains(&id) && table.stdout.contains("approved"));

    let revoked = server.access("sofia", &["revoke", &id, "--comment", "done"]);
    assert_eq!(revoked.code, Some(0), "{}", revoked.stderr);
    assert_eq!(server.check("10.1.2.3")["decision"], "deny");
    let again = server.access("sofia", &["revoke", &id]);
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("not_open"), "{}", again.stderr);

    // Usage errors exit 2 before any call.
    let neither = server.access("alice", &["request", "--reason", "x", "--duration", "1h"]);
    assert_eq!(neither.code, Some(2), "{}", neither.stderr);
    let bad_route = server.access(
        "alice",
        &[
            "request",
            "--route",
            "nospace",
            "--reason",
            "x",
            "--duration",
            "1h",
        ],
    );
    assert_eq!(bad_route.code, Some(2), "{}", bad_route.stderr);
}
