//! `portcullis rebac …` against a real `portcullis serve` process (the demo bundles: tenant
//! `acme` has a relationship model and tuples), and `portcullis model …` offline.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Admin token named `ops` (platform-admin in the demo's system bundle).
const OPS: &str = "ops-token-for-the-cli-rebac-tests";
/// Admin token named `audit` (auditor: may read tuples, not write them).
const AUDIT: &str = "audit-token-for-the-cli-rebac-tests";

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

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles")
}

fn copy_demo(into: &Path) -> PathBuf {
    let root = into.join("bundles");
    for tenant in std::fs::read_dir(demo()).unwrap().flatten() {
        let target = root.join(tenant.file_name());
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(tenant.path()).unwrap().flatten() {
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    root
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

    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// `portcullis ARGS` with none of the environment the CLI reads.
fn portcullis(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_remove("PORTCULLIS_API_URL")
        .env_remove("PORTCULLIS_API_TOKEN")
        .env_remove("PORTCULLIS_ADMIN_URL")
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .output()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Server {
    /// `portcullis rebac ARGS --api-url … --admin-url … [--token TOKEN]`.
    fn rebac_as(&self, token: Option<&str>, args: &[&str]) -> Run {
        let mut all = vec!["rebac"];
        all.extend_from_slice(args);
        all.extend(["--api-url", &self.api, "--admin-url", &self.admin]);
        if let Some(token) = token {
            all.extend(["--token", token]);
        }
        portcullis(&all)
    }

    fn cli(&self, args: &[&str]) -> Run {
        self.rebac_as(Some(OPS), args)
    }

    /// Runs and expects exit status `code`.
    fn expect(&self, code: i32, args: &[&str]) -> Run {
        let run = self.cli(args);
        assert_eq!(run.code, Some(code), "{args:?}: {run:?}");
        assert!(!run.stdout.contains(OPS), "the token is never printed");
        assert!(!run.stderr.contains(OPS), "the token is never printed");
        run
    }

    fn ok(&self, args: &[&str]) -> Run {
        self.expect(0, args)
    }

    /// `rebac check` of `user relation object` in acme; its exit status.
    fn check(&self, user: &str, relation: &str, object: &str) -> i32 {
        let run = self.cli(&[
            "check",
            "--tenant",
            "acme",
            "--user",
            user,
            "--relation",
            relation,
            "--object",
            object,
        ]);
        let code = run.code.unwrap();
        assert!(code == 0 || code == 1, "{run:?}");
        assert_eq!(run.json()["allowed"], code == 0, "{run:?}");
        code
    }

    /// The number of changes after `since`.
    fn change_count(&self, since: &str) -> usize {
        let changes = self
            .ok(&["changes", "--tenant", "acme", "--since", since, "--json"])
            .json();
        changes["changes"].as_array().unwrap().len()
    }
}

#[test]
fn relationships_through_the_cli() {
    let server = start();
    let work = tempfile::tempdir().unwrap();

    // ---------------------------------------------------------------- check
    // alice ∈ team:ops ⊂ team:platform, which views folder:runbooks ⊃ folder:release ⊃ the doc.
    let allowed = server.ok(&[
        "check",
        "--tenant",
        "acme",
        "--user",
        "user:alice",
        "--relation",
        "viewer",
        "--object",
        "doc:release-checklist",
    ]);
    let answer = allowed.json();
    assert_eq!(answer["allowed"], true, "{allowed:?}");
    assert!(answer["revision"].is_string(), "{allowed:?}");
    assert!(
        allowed.stdout.contains("\n  \"allowed\": true"),
        "indented by default: {allowed:?}"
    );
    assert_eq!(server.check("user:dave", "viewer", "doc:plan"), 1);
    // An unknown relation, an object without a type and an unknown tenant are errors (2).
    let unknown = server.expect(
        2,
        &[
            "check",
            "--tenant",
            "acme",
            "--user",
            "user:alice",
            "--relation",
            "reader",
            "--object",
            "doc:x",
        ],
    );
    assert!(
        unknown.stderr.contains("error[unknown_relation]"),
        "{unknown:?}"
    );
    let untyped = server.expect(
        2,
        &[
            "check",
            "--tenant",
            "acme",
            "--user",
            "alice",
            "--relation",
            "viewer",
            "--object",
            "doc:x",
        ],
    );
    assert!(
        untyped.stderr.contains("error[invalid_user]"),
        "{untyped:?}"
    );
    let ghost = server.expect(
        2,
        &[
            "check",
            "--tenant",
            "ghost",
            "--user",
            "user:a",
            "--relation",
            "viewer",
            "--object",
            "doc:x",
        ],
    );
    assert!(ghost.stderr.contains("error[unknown_tenant]"), "{ghost:?}");
    let bad_context = server.expect(
        2,
        &[
            "check",
            "--tenant",
            "acme",
            "--user",
            "user:a",
            "--relation",
            "viewer",
            "--object",
            "doc:x",
            "--context",
            "[1]",
        ],
    );
    assert!(
        bad_context.stderr.contains("JSON object"),
        "{bad_context:?}"
    );

    // Conditions take the request context; contextual tuples hold for one query only.
    let during = |time: &str| {
        server
            .cli(&[
                "check",
                "--tenant",
                "acme",
                "--user",
                "user:carol",
                "--relation",
                "viewer",
                "--object",
                "doc:postmortem-42",
                "--context",
                &format!("{{\"time\": \"{time}\"}}"),
            ])
            .code
    };
    assert_eq!(during("2026-03-02T10:00:00Z"), Some(0));
    assert_eq!(during("2026-03-02T13:00:00Z"), Some(1));
    let contextual = work.path().join("contextual.yaml");
    std::fs::write(
        &contextual,
        "- { user: \"user:erin\", relation: member, object: \"team:ops\" }\n",
    )
    .unwrap();
    let with_contextual = server.ok(&[
        "check",
        "--tenant",
        "acme",
        "--user",
        "user:erin",
        "--relation",
        "viewer",
        "--object",
        "doc:release-checklist",
        "--contextual-tuples",
        contextual.to_str().unwrap(),
    ]);
    assert_eq!(with_contextual.json()["allowed"], true);
    assert_eq!(
        server.check("user:erin", "viewer", "doc:release-checklist"),
        1
    );

    // ---------------------------------------------------------------- write, then check
    let before =
        server.ok(&["changes", "--tenant", "acme", "--json"]).json()["next_since"].to_string();
    let written = server.ok(&[
        "write",
        "--tenant",
        "acme",
        "--add",
        "user:dave",
        "viewer",
        "doc:plan",
        "--add",
        "user:dave",
        "owner",
        "folder:drafts",
        "--add",
        "folder:drafts",
        "parent",
        "doc:spec",
    ]);
    assert!(
        written
            .stdout
            .starts_with("wrote 3 and deleted 0 tuples in tenant acme (1 batch): revision "),
        "{written:?}"
    );
    let revision = written.stdout.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(revision.parse::<u64>().is_ok(), "{written:?}");
    let fresh = server.ok(&[
        "check",
        "--tenant",
        "acme",
        "--user",
        "user:dave",
        "--relation",
        "viewer",
        "--object",
        "doc:plan",
        "--at-least",
        &revision,
    ]);
    assert_eq!(fresh.json()["allowed"], true, "{fresh:?}");
    assert_eq!(server.check("user:dave", "viewer", "doc:spec"), 0);
    // Writing the same tuple again is refused (1) unless duplicates are ignored.
    let duplicate = server.expect(
        1,
        &[
            "write",
            "--tenant",
            "acme",
            "--add",
            "user:dave",
            "viewer",
            "doc:plan",
        ],
    );
    assert!(duplicate.stderr.contains("error["), "{duplicate:?}");
    server.ok(&[
        "write",
        "--tenant",
        "acme",
        "--add",
        "user:dave",
        "viewer",
        "doc:plan",
        "--ignore-duplicates",
    ]);

    // ---------------------------------------------------------------- list objects and users
    // One object per page: every page is followed.
    let objects = server.ok(&[
        "list-objects",
        "--tenant",
        "acme",
        "--user",
        "user:dave",
        "--relation",
        "viewer",
        "--type",
        "doc",
        "--page-size",
        "1",
    ]);
    assert_eq!(objects.lines(), ["doc:plan", "doc:spec"], "{objects:?}");
    let joined = server
        .ok(&[
            "list-objects",
            "--tenant",
            "acme",
            "--user",
            "user:alice",
            "--relation",
            "viewer",
            "--type",
            "doc",
            "--page-size",
            "1",
            "--json",
        ])
        .json();
    assert_eq!(
        joined["objects"],
        json!(["doc:release-checklist"]),
        "{joined}"
    );
    assert!(joined["revision"].is_string(), "{joined}");

    let users = server.ok(&[
        "list-users",
        "--tenant",
        "acme",
        "--object",
        "doc:release-checklist",
        "--relation",
        "viewer",
        "--filter",
        "user",
        "--filter",
        "team#member",
    ]);
    let users = users.lines();
    assert!(users.contains(&"user:alice"), "{users:?}");
    assert!(users.contains(&"team:platform#member"), "{users:?}");
    assert!(!users.contains(&"user:dave"), "{users:?}");
    let no_filter = server.cli(&[
        "list-users",
        "--tenant",
        "acme",
        "--object",
        "doc:x",
        "--relation",
        "viewer",
    ]);
    assert_eq!(
        no_filter.code,
        Some(2),
        "clap requires --filter: {no_filter:?}"
    );

    // ---------------------------------------------------------------- expand
    let tree = server.ok(&[
        "expand",
        "--tenant",
        "acme",
        "--object",
        "folder:runbooks",
        "--relation",
        "viewer",
    ]);
    assert!(
        tree.stdout.starts_with("folder:runbooks#viewer: union"),
        "{tree:?}"
    );
    assert!(tree.stdout.contains("team:platform#member"), "{tree:?}");
    let tree = server
        .ok(&[
            "expand",
            "--tenant",
            "acme",
            "--object",
            "folder:runbooks",
            "--relation",
            "viewer",
            "--json",
        ])
        .json();
    assert_eq!(
        tree["tree"]["root"]["name"], "folder:runbooks#viewer",
        "{tree}"
    );

    // ---------------------------------------------------------------- read and changes
    let read = server.ok(&["read", "--tenant", "acme", "--user", "user:dave"]);
    let rows = read.lines();
    assert!(rows[0].starts_with("OBJECT"), "{read:?}");
    assert_eq!(rows.len(), 3, "{read:?}");
    assert!(
        rows.iter()
            .any(|row| row.split_whitespace().collect::<Vec<_>>()
                == ["doc:plan", "viewer", "user:dave", "-"]),
        "{read:?}"
    );
    let read = server
        .ok(&["read", "--tenant", "acme", "--object", "doc:spec", "--json"])
        .json();
    assert_eq!(
        read["tuples"],
        json!([{ "object": "doc:spec", "relation": "parent", "user": "folder:drafts" }]),
        "{read}"
    );
    let by_type = server
        .ok(&["read", "--tenant", "acme", "--object", "folder", "--json"])
        .json();
    assert_eq!(by_type["tuples"].as_array().unwrap().len(), 1, "{by_type}");

    let changes = server.ok(&["changes", "--tenant", "acme", "--since", &before]);
    let rows = changes.lines();
    assert!(rows[0].starts_with("REVISION"), "{changes:?}");
    assert_eq!(rows.len(), 4, "three writes: {changes:?}");
    assert!(
        rows[1..].iter().all(|row| row.contains("write")),
        "{changes:?}"
    );
    let none = server.ok(&["changes", "--tenant", "acme", "--since", &revision]);
    assert!(none.stdout.starts_with("no changes after"), "{none:?}");

    // ---------------------------------------------------------------- bad tuples
    // A tuple that is not even well formed is found before any call: exit 2, nothing written.
    let count = server.change_count(&before);
    let typo = server.expect(
        2,
        &[
            "write", "--tenant", "acme", "--add", "dave", "viewer", "doc:plan",
        ],
    );
    assert!(
        typo.stderr.contains("--add dave viewer doc:plan") && typo.stderr.contains("invalid user"),
        "{typo:?}"
    );
    let file = work.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{"writes": [{"user": "user:x", "relation": "viewer", "object": "doc:ok"},
                      {"user": "user:y", "relation": "viewer", "object": "no-type"}]}"#,
    )
    .unwrap();
    let located = server.expect(
        2,
        &[
            "write",
            "--tenant",
            "acme",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        located.stderr.contains("writes[1]") && located.stderr.contains("invalid object"),
        "{located:?}"
    );
    assert!(!located.stderr.contains("writes[0]"), "{located:?}");
    let unknown_key = work.path().join("unknown.yaml");
    std::fs::write(&unknown_key, "adds: []\n").unwrap();
    let refused = server.expect(
        2,
        &[
            "write",
            "--tenant",
            "acme",
            "--file",
            unknown_key.to_str().unwrap(),
        ],
    );
    assert!(refused.stderr.contains("unknown key `adds`"), "{refused:?}");
    let nothing = server.expect(2, &["write", "--tenant", "acme"]);
    assert!(nothing.stderr.contains("nothing to write"), "{nothing:?}");
    // Well formed but not allowed by the model: the server refuses it (1) with its reason.
    let off_model = server.expect(
        1,
        &[
            "write",
            "--tenant",
            "acme",
            "--add",
            "user:dave",
            "parent",
            "doc:plan",
        ],
    );
    assert!(
        off_model.stderr.contains("error[invalid_tuple]"),
        "{off_model:?}"
    );
    assert_eq!(server.change_count(&before), count, "nothing was written");

    // ---------------------------------------------------------------- tokens
    // Reads need an admin token with tuples.read; writes one with tuples.write.
    let audit_read = server.rebac_as(Some(AUDIT), &["read", "--tenant", "acme"]);
    assert_eq!(audit_read.code, Some(0), "{audit_read:?}");
    let audit_write = server.rebac_as(
        Some(AUDIT),
        &[
            "write", "--tenant", "acme", "--add", "user:z", "viewer", "doc:z",
        ],
    );
    assert_eq!(audit_write.code, Some(1), "{audit_write:?}");
    assert!(
        audit_write.stderr.contains("error[denied]"),
        "{audit_write:?}"
    );
    let no_token = server.rebac_as(None, &["read", "--tenant", "acme"]);
    assert_eq!(no_token.code, Some(2), "{no_token:?}");
    assert!(
        no_token.stderr.contains("PORTCULLIS_ADMIN_TOKEN"),
        "{no_token:?}"
    );
    // Queries need no admin token.
    let query = server.rebac_as(
        None,
        &[
            "check",
            "--tenant",
            "acme",
            "--user",
            "user:dave",
            "--relation",
            "viewer",
            "--object",
            "doc:plan",
        ],
    );
    assert_eq!(query.code, Some(0), "{query:?}");

    // ---------------------------------------------------------------- model and removal
    let model = server.ok(&["model", "--tenant", "acme"]);
    assert!(model.stdout.contains("type doc"), "{model:?}");
    let removed = server.ok(&[
        "write",
        "--tenant",
        "acme",
        "--remove",
        "user:dave",
        "viewer",
        "doc:plan",
        "--json",
    ]);
    let removed = removed.json();
    assert_eq!(
        (removed["written"].as_u64(), removed["deleted"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(server.check("user:dave", "viewer", "doc:plan"), 1);
    server.expect(
        1,
        &[
            "write",
            "--tenant",
            "acme",
            "--remove",
            "user:dave",
            "viewer",
            "doc:plan",
        ],
    );
    server.ok(&[
        "write",
        "--tenant",
        "acme",
        "--remove",
        "user:dave",
        "viewer",
        "doc:plan",
        "--ignore-missing",
    ]);
}

#[test]
fn an_oversized_write_is_split_into_batches() {
    let server = start();
    let work = tempfile::tempdir().unwrap();
    let before =
        server.ok(&["changes", "--tenant", "acme", "--json"]).json()["next_since"].to_string();

    // 250 tuples as a plain YAML list: three batches (100, 100, 50).
    let mut yaml = String::new();
    for i in 0..250 {
        yaml.push_str(&format!(
            "- {{ user: \"user:u{i:03}\", relation: viewer, object: \"doc:bulk\" }}\n"
        ));
    }
    let file = work.path().join("bulk.yaml");
    std::fs::write(&file, yaml).unwrap();
    let written = server
        .ok(&[
            "write",
            "--tenant",
            "acme",
            "--file",
            file.to_str().unwrap(),
            "--json",
        ])
        .json();
    assert_eq!(written["written"], 250, "{written}");
    assert_eq!(written["batches"], 3, "{written}");
    let revision = written["revision"].as_str().unwrap().to_owned();

    // Three transactions, so three revisions in the change log, the last one printed.
    let changes = server
        .ok(&["changes", "--tenant", "acme", "--since", &before, "--json"])
        .json();
    let log = changes["changes"].as_array().unwrap();
    assert_eq!(log.len(), 250, "{changes}");
    let mut revisions: Vec<i64> = log
        .iter()
        .map(|c| c["revision"].as_i64().unwrap())
        .collect();
    revisions.dedup();
    assert_eq!(revisions.len(), 3, "{revisions:?}");
    assert_eq!(revisions.last().unwrap().to_string(), revision);
    assert_eq!(changes["next_since"].to_string(), revision);

    let read = server
        .ok(&["read", "--tenant", "acme", "--object", "doc:bulk", "--json"])
        .json();
    assert_eq!(read["tuples"].as_array().unwrap().len(), 250);
    let users = server.ok(&[
        "list-users",
        "--tenant",
        "acme",
        "--object",
        "doc:bulk",
        "--relation",
        "viewer",
        "--filter",
        "user",
        "--at-least",
        &revision,
    ]);
    assert_eq!(users.lines().len(), 250, "{users:?}");

    // Deleting them from a JSON file (`{deletes}`) with one more write: 251 tuples, 3 batches.
    let deletes: Vec<Value> = (0..250)
        .map(|i| json!({ "user": format!("user:u{i:03}"), "relation": "viewer", "object": "doc:bulk" }))
        .collect();
    let file = work.path().join("cleanup.json");
    std::fs::write(
        &file,
        json!({
            "writes": [{ "user": "user:keeper", "relation": "viewer", "object": "doc:bulk" }],
            "deletes": deletes,
        })
        .to_string(),
    )
    .unwrap();
    let cleaned = server.ok(&[
        "write",
        "--tenant",
        "acme",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(
        cleaned
            .stdout
            .starts_with("wrote 1 and deleted 250 tuples in tenant acme (3 batches): revision "),
        "{cleaned:?}"
    );
    let read = server
        .ok(&["read", "--tenant", "acme", "--object", "doc:bulk", "--json"])
        .json();
    assert_eq!(
        read["tuples"],
        json!([{ "object": "doc:bulk", "relation": "viewer", "user": "user:keeper" }])
    );

    // A refused later batch says how far the write got.
    let mut yaml = String::from("writes:\n");
    for i in 0..150 {
        yaml.push_str(&format!(
            "  - {{ user: \"user:v{i:03}\", relation: viewer, object: \"doc:half\" }}\n"
        ));
    }
    // Batch 2 repeats a tuple of batch 1: refused as a duplicate.
    yaml.push_str("  - { user: \"user:v000\", relation: viewer, object: \"doc:half\" }\n");
    let file = work.path().join("half.yaml");
    std::fs::write(&file, yaml).unwrap();
    let half = server.expect(
        1,
        &[
            "write",
            "--tenant",
            "acme",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        half.stderr.contains("batch 2 of 2") && half.stderr.contains("batches 1 to 1"),
        "{half:?}"
    );
    let read = server
        .ok(&["read", "--tenant", "acme", "--object", "doc:half", "--json"])
        .json();
    assert_eq!(read["tuples"].as_array().unwrap().len(), 100);
}

#[test]
fn model_convert_round_trips_and_locates_errors() {
    let work = tempfile::tempdir().unwrap();
    let fga = demo().join("acme/model.fga");
    let fga = fga.to_str().unwrap();

    // DSL → JSON (the default for a .fga file) → DSL.
    let json_run = portcullis(&["model", "convert", fga]);
    assert_eq!(json_run.code, Some(0), "{json_run:?}");
    let model = json_run.json();
    assert_eq!(model["schema_version"], "1.1", "{model}");
    let names: Vec<&str> = model["type_definitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user", "team", "folder", "doc"]);
    let json_file = work.path().join("model.json");
    std::fs::write(&json_file, &json_run.stdout).unwrap();
    let dsl_run = portcullis(&["model", "convert", json_file.to_str().unwrap()]);
    assert_eq!(dsl_run.code, Some(0), "{dsl_run:?}");
    assert!(dsl_run.stdout.contains("type doc"), "{dsl_run:?}");
    assert!(
        dsl_run.stdout.contains("condition during_incident"),
        "{dsl_run:?}"
    );
    // Same model both ways: the canonical DSL of the original has the same lines as the round
    // trip's (JSON keeps a type's relations as a map, so their order may differ).
    let canonical = portcullis(&["model", "convert", fga, "--to", "dsl"]);
    assert_eq!(canonical.code, Some(0), "{canonical:?}");
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&canonical.stdout), sorted(&dsl_run.stdout));
    // …and JSON again from the round-tripped DSL, recognized by content without an extension.
    let plain = work.path().join("model-again");
    std::fs::write(&plain, &dsl_run.stdout).unwrap();
    let again = portcullis(&["model", "convert", plain.to_str().unwrap()]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(again.json(), model);

    let valid = portcullis(&["model", "validate", fga]);
    assert_eq!(valid.code, Some(0), "{valid:?}");
    assert!(
        valid.stdout.starts_with("ok: ") && valid.stdout.contains("4 types"),
        "{valid:?}"
    );

    // An invalid model: every error with its place.
    let broken = work.path().join("broken.fga");
    std::fs::write(
        &broken,
        "model\n  schema 1.1\n\ntype user\n\ntype doc\n  relations\n    define viewer: [user, group#member]\n    define editor: owner\n",
    )
    .unwrap();
    let broken_name = broken.to_str().unwrap();
    for sub in ["convert", "validate"] {
        let run = portcullis(&["model", sub, broken_name]);
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        let located: Vec<&str> = run
            .stderr
            .lines()
            .filter(|line| line.starts_with(&format!("{broken_name}:")))
            .collect();
        assert!(located.len() >= 2, "{run:?}");
        assert!(
            located
                .iter()
                .any(|l| l.starts_with(&format!("{broken_name}:8:")) && l.contains("group")),
            "{run:?}"
        );
        assert!(
            located
                .iter()
                .any(|l| l.starts_with(&format!("{broken_name}:9:")) && l.contains("owner")),
            "{run:?}"
        );
        for line in located {
            let rest = &line[broken_name.len() + 1..];
            let mut parts = rest.splitn(3, ':');
            assert!(parts.next().unwrap().parse::<u32>().is_ok(), "{line}");
            assert!(parts.next().unwrap().parse::<u32>().is_ok(), "{line}");
        }
    }
    // Invalid JSON is located too.
    let bad_json = work.path().join("bad.json");
    std::fs::write(
        &bad_json,
        "{\n  \"schema_version\": \"1.1\",\n  \"type_definitions\": [\n",
    )
    .unwrap();
    let run = portcullis(&["model", "validate", bad_json.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.starts_with(&format!("{}:", bad_json.display())),
        "{run:?}"
    );

    // Unreadable input is 2.
    let missing = work.path().join("missing.fga");
    let run = portcullis(&["model", "convert", missing.to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("cannot read"), "{run:?}");
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
    let run = portcullis(&[
        "rebac",
        "check",
        "--tenant",
        "acme",
        "--user",
        "user:a",
        "--relation",
        "viewer",
        "--object",
        "doc:x",
        "--api-url",
        &url,
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("cannot reach the API at {url}")),
        "{run:?}"
    );
    let run = portcullis(&[
        "rebac",
        "read",
        "--tenant",
        "acme",
        "--admin-url",
        &url,
        "--token",
        OPS,
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("cannot reach the admin API at {url}")),
        "{run:?}"
    );
    assert!(!run.stderr.contains(OPS), "{run:?}");
}
