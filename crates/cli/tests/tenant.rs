//! `portcullis tenant …` against a real `portcullis serve` process: every subcommand, its exit
//! status and its output, and the effect of run-time changes on decisions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::copy_demo;

use serde_json::{Value, json};

/// Admin token named `ops` (platform-admin in the demo's system bundle).
const OPS: &str = "ops-token-for-the-cli-tenant-tests";
/// Admin token named `audit` (auditor: may list and read only).
const AUDIT: &str = "audit-token-for-the-cli-tenant-tests";

struct Server {
    child: Child,
    api: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `portcullis serve` on ephemeral ports with the demo bundles, an SQLite store in a
/// temporary data folder and two admin tokens.
fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nbundles = [\"{}\"]\ndata_dir = \"{}\"\n\
             [reload]\nwatch = false\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [[admin.tokens]]\nname = \"ops\"\ntoken = \"{OPS}\"\n\
             [[admin.tokens]]\nname = \"audit\"\ntoken = \"{AUDIT}\"\n",
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
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut api, mut admin) = (None, None);
    while (api.is_none() || admin.is_none()) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("API:") {
            api = rest.split_whitespace().next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("admin:") {
            admin = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        api: api.expect("the banner names the API address"),
        admin: admin.expect("the banner names the admin address"),
        _dir: dir,
    }
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// `portcullis tenant ARGS --admin-url URL --token TOKEN` (the options after the subcommand).
fn tenant_cli(url: &str, token: Option<&str>, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .arg("tenant")
        .args(args)
        .args(["--admin-url", url])
        .env_remove("PORTCULLIS_ADMIN_URL")
        .env_remove("PORTCULLIS_ADMIN_TOKEN");
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let output = command.output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Server {
    fn cli(&self, args: &[&str]) -> Run {
        tenant_cli(&self.admin, Some(OPS), args)
    }

    /// Runs and expects exit status 0.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.cli(args);
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
        assert!(!run.stdout.contains(OPS), "the token is never printed");
        assert!(!run.stderr.contains(OPS), "the token is never printed");
        run
    }

    /// Runs and expects exit status 1 with the server's error `code` on standard error.
    fn refused(&self, args: &[&str], code: &str) -> Run {
        let run = self.cli(args);
        assert_eq!(run.code, Some(1), "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(&format!("error[{code}]")),
            "{args:?} should be refused with {code}: {run:?}"
        );
        run
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// `POST /v1/check` for a request in tenant globex.
    fn decide(&self, principal: &str, action: &str, resource: &str) -> Value {
        let url = format!("{}/v1/check", self.api);
        let body = json!({
            "tenant": "globex",
            "principal": { "id": principal },
            "action": action,
            "resource": { "type": "app", "id": resource },
        });
        Self::runtime().block_on(async {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    /// The raw text of an admin `GET`.
    fn admin_get(&self, path: &str) -> String {
        let url = format!("{}{path}", self.admin);
        Self::runtime().block_on(async {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(OPS)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }
}

const TENANT_YAML: &str = "tenant: globex\ntimezone: UTC\nsensitive_attributes: [ssn]\n";

const POLICY_V1: &str = r#"roles:
  viewer:
    permissions: ["app:status.check"]
  editor:
    inherits: [viewer]
    permissions: ["app:release"]
principals:
  ann: { roles: [viewer] }
tests:
  - name: ann may check status
    request: { principal: { id: ann }, action: "app:status.check", resource: { type: app, id: web } }
    expect: allow
"#;

const MODEL_FGA: &str =
    "model\n  schema 1.1\n\ntype user\n\ntype app\n  relations\n    define viewer: [user]\n";

/// Version 2 adds a role.
fn policy_v2() -> String {
    format!("{POLICY_V1}  - name: second version\n    request: {{ principal: {{ id: ann }}, action: \"app:logs.read\", resource: {{ type: app, id: web }} }}\n    expect: deny\n")
        .replace(
            "roles:\n",
            "roles:\n  auditor:\n    permissions: [\"app:logs.read\"]\n",
        )
}

fn write_bundle(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir.to_path_buf()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn tenant_lifecycle_through_the_cli() {
    let server = start();
    let work = tempfile::tempdir().unwrap();
    let v1 = write_bundle(
        &work.path().join("v1"),
        &[("tenant.yaml", TENANT_YAML), ("policy.yaml", POLICY_V1)],
    );
    let v2_policy = policy_v2();
    // Version 2 also has a relationship model: `upload` sends it with the YAML files.
    let v2_tenant = format!("{TENANT_YAML}model: model.fga\n");
    let v2 = write_bundle(
        &work.path().join("v2"),
        &[
            ("tenant.yaml", &v2_tenant),
            ("policy.yml", &v2_policy),
            ("model.fga", MODEL_FGA),
        ],
    );
    // Not part of the bundle: not YAML, and inside a sub-folder.
    std::fs::write(v1.join("notes.txt"), "not a policy file").unwrap();
    write_bundle(&v1.join("nested"), &[("broken.yaml", "roles: [")]);
    let invalid = write_bundle(
        &work.path().join("invalid"),
        &[
            ("tenant.yaml", "tenant: globex\ntimezone: Mars/Olympus\n"),
            (
                "policy.yaml",
                "roles:\n  viewer:\n    permissions: [42]\n    inherits: [ghost]\n",
            ),
        ],
    );

    // ---------------------------------------------------------------- tenants
    let list = server.ok(&["list"]);
    let header = list.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("TENANT") && header.contains("STATUS"),
        "{list:?}"
    );
    assert!(list.stdout.contains("acme") && list.stdout.contains("system"));

    let created = server.ok(&["create", "globex", "--domain", "globex.example"]);
    assert!(
        created.stdout.contains("created tenant globex"),
        "{created:?}"
    );
    let duplicate = server.refused(&["create", "globex"], "tenant_exists");
    assert!(duplicate.stderr.contains("globex"), "{duplicate:?}");
    server.refused(&["create", "no way"], "invalid_tenant");
    // With `--json` an error answer is printed verbatim on standard output too.
    let answer = server.refused(&["create", "globex", "--json"], "tenant_exists");
    assert_eq!(answer.json()["error"]["code"], "tenant_exists");
    let shown = server.ok(&["show", "globex", "--json"]).json();
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["domain"], "globex.example");
    let human = server.ok(&["show", "globex"]);
    assert!(human.stdout.contains("status:") && human.stdout.contains("globex.example"));
    server.refused(&["show", "ghost"], "unknown_tenant");

    // `--json` prints the server's answer verbatim.
    let verbatim = server.ok(&["--json", "list"]);
    assert_eq!(
        verbatim.stdout.trim_end(),
        server.admin_get("/admin/v1/tenants").trim_end()
    );

    // The auditor may read but not create.
    let audit = tenant_cli(&server.admin, Some(AUDIT), &["show", "globex"]);
    assert_eq!(audit.code, Some(0), "{audit:?}");
    let audit = tenant_cli(&server.admin, Some(AUDIT), &["create", "initech"]);
    assert_eq!(audit.code, Some(1), "{audit:?}");
    assert!(audit.stderr.contains("error[denied]"), "{audit:?}");

    // A wrong token is refused by the server.
    let wrong = tenant_cli(&server.admin, Some("not-the-right-token-at-all"), &["list"]);
    assert_eq!(wrong.code, Some(1), "{wrong:?}");
    assert!(wrong.stderr.contains("error[invalid_token]"), "{wrong:?}");
    assert!(!wrong.stderr.contains("not-the-right-token"), "{wrong:?}");
    // No token at all is a usage error, found before any call.
    let none = tenant_cli(&server.admin, None, &["list"]);
    assert_eq!(none.code, Some(2), "{none:?}");
    assert!(none.stderr.contains("PORTCULLIS_ADMIN_TOKEN"), "{none:?}");

    // ---------------------------------------------------------------- bundles
    let uploaded = server.ok(&["upload", "globex", s(&v1)]);
    assert!(
        uploaded.stdout.contains("uploaded 2 files") && uploaded.stdout.contains("sha256:"),
        "{uploaded:?}"
    );
    assert_eq!(
        server.decide("ann", "app:status.check", "web")["decision"],
        "allow"
    );

    let rejected = server.refused(&["upload", "globex", s(&invalid)], "invalid_bundle");
    // Every problem, located in the local files, with its help.
    let policy = invalid.join("policy.yaml").display().to_string();
    let tenant = invalid.join("tenant.yaml").display().to_string();
    let located: Vec<&str> = rejected
        .stderr
        .lines()
        .filter(|line| line.contains(": error["))
        .collect();
    assert_eq!(located.len(), 3, "{rejected:?}");
    assert!(
        located
            .iter()
            .any(|l| l.starts_with(&format!("{policy}:3:")) && l.contains("error[pattern]")),
        "{rejected:?}"
    );
    assert!(
        located
            .iter()
            .any(|l| l.starts_with(&format!("{policy}:4:"))
                && l.contains("error[unknown-reference]")
                && l.contains("ghost")),
        "{rejected:?}"
    );
    assert!(
        located
            .iter()
            .any(|l| l.starts_with(&format!("{tenant}:2:")) && l.contains("error[time-zone]")),
        "{rejected:?}"
    );
    assert!(rejected.stderr.contains("\n  help: "), "{rejected:?}");
    // Nothing changed.
    assert_eq!(
        server.decide("ann", "app:status.check", "web")["decision"],
        "allow"
    );

    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = server.cli(&["upload", "globex", s(&empty)]);
    assert_eq!(run.code, Some(2), "{run:?}");

    let uploaded = server.ok(&["upload", "globex", s(&v2)]);
    assert!(uploaded.stdout.contains("uploaded 3 files"), "{uploaded:?}");
    let printed = server.ok(&["bundle", "globex", "2"]);
    assert!(printed.stdout.contains("==> model.fga <=="), "{printed:?}");
    let roles = server.ok(&["show", "globex", "--json"]).json()["roles"].clone();
    assert_eq!(roles, json!(["auditor", "editor", "viewer"]));

    let history = server.ok(&["bundles", "globex"]);
    let rows: Vec<&str> = history.stdout.lines().collect();
    assert!(rows[0].starts_with("VERSION"), "{history:?}");
    assert_eq!(rows.len(), 3, "{history:?}");
    assert!(rows[1].starts_with('2') && rows[1].contains('*') && rows[1].contains("ops"));
    assert!(rows[2].starts_with('1') && !rows[2].contains('*'));
    let versions = server.ok(&["bundles", "globex", "--json"]).json()["versions"].clone();
    assert_eq!(versions.as_array().unwrap().len(), 2);

    let printed = server.ok(&["bundle", "globex", "1"]);
    assert!(
        printed.stdout.contains("==> policy.yaml <=="),
        "{printed:?}"
    );
    assert!(printed.stdout.contains(POLICY_V1), "{printed:?}");
    let out = work.path().join("downloaded");
    server.ok(&["bundle", "globex", "1", "--out", s(&out)]);
    assert_eq!(
        std::fs::read_to_string(out.join("policy.yaml")).unwrap(),
        POLICY_V1
    );
    assert_eq!(
        std::fs::read_to_string(out.join("tenant.yaml")).unwrap(),
        TENANT_YAML
    );
    assert!(!out.join("notes.txt").exists() && !out.join("broken.yaml").exists());
    server.refused(&["bundle", "globex", "9"], "unknown_version");

    let rolled = server.ok(&["rollback", "globex", "1"]);
    assert!(rolled.stdout.contains("bundle version 1"), "{rolled:?}");
    let roles = server.ok(&["show", "globex", "--json"]).json()["roles"].clone();
    assert_eq!(roles, json!(["editor", "viewer"]));
    let versions = server.ok(&["bundles", "globex", "--json"]).json()["versions"].clone();
    let active: Vec<&Value> = versions
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["active"] == true)
        .map(|v| &v["version"])
        .collect();
    assert_eq!(active, [&json!(1)]);
    server.refused(&["rollback", "globex", "9"], "unknown_version");

    // ---------------------------------------------------------------- principals
    let saved = server.ok(&[
        "principal-set",
        "globex",
        "bob",
        "--type",
        "user",
        "--attr",
        "department=sales",
        "--attr",
        "level=3",
        "--attr",
        "remote=true",
        "--attr",
        "ssn=123-45-6789",
    ]);
    assert!(saved.stdout.contains("saved principal bob"), "{saved:?}");
    let bob = server.ok(&["principal", "globex", "bob", "--json"]).json();
    assert_eq!(bob["type"], "user");
    assert_eq!(bob["attributes"]["department"], "sales");
    assert_eq!(bob["attributes"]["level"], 3);
    assert_eq!(bob["attributes"]["remote"], true);
    let ssn = bob["attributes"]["ssn"].as_str().unwrap();
    assert!(ssn.starts_with("<encrypted"), "sensitive: {bob}");
    let principals = server.ok(&["principals", "globex"]);
    assert!(
        principals.stdout.contains("bob") && principals.stdout.contains("department=\"sales\""),
        "{principals:?}"
    );
    assert!(!principals.stdout.contains("123-45-6789"));
    server.ok(&["principal-set", "globex", "dan"]);
    let page = server
        .ok(&["principals", "globex", "--limit", "1", "--json"])
        .json();
    assert_eq!(page["principals"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], "bob");
    let rest = server.ok(&["principals", "globex", "--after", "bob"]);
    assert!(
        rest.stdout.contains("dan") && !rest.stdout.contains("bob"),
        "{rest:?}"
    );
    // Ids are sent as single path segments, whatever characters they hold.
    server.ok(&[
        "principal-set",
        "globex",
        "svc/ci@example.com",
        "--type",
        "service",
    ]);
    let odd = server
        .ok(&["principal", "globex", "svc/ci@example.com", "--json"])
        .json();
    assert_eq!(
        (odd["id"].as_str(), odd["type"].as_str()),
        (Some("svc/ci@example.com"), Some("service"))
    );
    server.ok(&["principal-delete", "globex", "svc/ci@example.com"]);
    let dots = server.cli(&["principal", "globex", ".."]);
    assert_eq!(dots.code, Some(2), "{dots:?}");
    let bad = server.cli(&["principal-set", "globex", "bob", "--attr", "no-equals-sign"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");

    let rotated = server.ok(&["rotate-key", "globex"]);
    assert!(rotated.stdout.contains("current key"), "{rotated:?}");

    // ---------------------------------------------------------------- assignments
    assert_eq!(
        server.decide("bob", "app:release", "web")["decision"],
        "deny"
    );
    let assigned = server.ok(&["assign", "globex", "bob", "editor", "--on", "app:web"]);
    assert!(
        assigned
            .stdout
            .contains("assigned role editor to bob on app:web"),
        "{assigned:?}"
    );
    assert_eq!(
        server.decide("bob", "app:release", "web")["decision"],
        "allow"
    );
    assert_eq!(
        server.decide("bob", "app:release", "api")["decision"],
        "deny"
    );
    server.refused(&["assign", "globex", "bob", "nope"], "unknown_role");
    server.refused(
        &["assign", "globex", "ghost", "viewer"],
        "unknown_principal",
    );
    let bad = server.cli(&["assign", "globex", "bob", "viewer", "--on", "web"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");

    let assignments = server.ok(&["assignments", "globex"]);
    let row = assignments
        .stdout
        .lines()
        .find(|line| line.starts_with("bob"))
        .unwrap_or_else(|| panic!("{assignments:?}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["bob", "editor", "app:web"]
    );
    let only_dan = server.ok(&["assignments", "globex", "--principal", "dan"]);
    assert!(!only_dan.stdout.contains("bob"), "{only_dan:?}");
    let shown = server.ok(&["principal", "globex", "bob"]);
    assert!(shown.stdout.contains("editor on app:web"), "{shown:?}");

    server.refused(&["revoke", "globex", "bob", "editor"], "unknown_assignment");
    let revoked = server.ok(&["revoke", "globex", "bob", "editor", "--on", "app:web"]);
    assert!(
        revoked.stdout.contains("revoked role editor"),
        "{revoked:?}"
    );
    assert_eq!(
        server.decide("bob", "app:release", "web")["decision"],
        "deny"
    );

    let deleted = server.ok(&["principal-delete", "globex", "dan"]);
    assert!(
        deleted.stdout.contains("deleted principal dan"),
        "{deleted:?}"
    );
    server.refused(&["principal", "globex", "dan"], "unknown_principal");
    server.refused(&["principal-delete", "globex", "dan"], "unknown_principal");

    // ---------------------------------------------------------------- suspension
    let suspended = server.ok(&["suspend", "globex"]);
    assert!(suspended.stdout.contains("suspended"), "{suspended:?}");
    let decision = server.decide("ann", "app:status.check", "web");
    assert_eq!(decision["decision"], "deny", "{decision}");
    assert_eq!(decision["cause"], "tenant_suspended", "{decision}");
    server.refused(&["suspend", "globex"], "already_suspended");
    server.ok(&["resume", "globex"]);
    assert_eq!(
        server.decide("ann", "app:status.check", "web")["decision"],
        "allow"
    );
    server.refused(&["resume", "globex"], "not_suspended");

    // ---------------------------------------------------------------- deletion
    let unconfirmed = server.cli(&["delete", "globex"]);
    assert_eq!(unconfirmed.code, Some(2), "{unconfirmed:?}");
    assert!(
        unconfirmed.stderr.contains("--confirm globex"),
        "{unconfirmed:?}"
    );
    let mistyped = server.cli(&["delete", "globex", "--confirm", "globx"]);
    assert_eq!(mistyped.code, Some(2), "{mistyped:?}");
    assert!(mistyped.stderr.contains("does not repeat"), "{mistyped:?}");
    server.ok(&["show", "globex"]);
    server.refused(&["delete", "acme", "--confirm", "acme"], "managed_by_files");
    let gone = server.ok(&["delete", "globex", "--confirm", "globex"]);
    assert!(gone.stdout.contains("deleted tenant globex"), "{gone:?}");
    server.refused(&["show", "globex"], "unknown_tenant");
    assert!(!server.ok(&["list"]).stdout.contains("globex"));
}

#[test]
fn an_unreachable_server_is_exit_status_2() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let run = tenant_cli(&url, Some(OPS), &["list"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("cannot reach the admin API at {url}")),
        "{run:?}"
    );
    assert!(!run.stderr.contains(OPS), "{run:?}");

    let run = tenant_cli("not a url", Some(OPS), &["list"]);
    assert_eq!(run.code, Some(2), "{run:?}");
}
