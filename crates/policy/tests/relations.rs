//! Relation grants in the engine: an action mapped to a relation is granted by the relationship
//! graph, alongside roles and rules and under the same forbids and strategies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod common;

use portcullis_core::{Cause, ErrorKind, ReasonKind};
use portcullis_policy::rebac::Tuple;
use portcullis_policy::{LoadOptions, Snapshot, SourceFile, compile_files, decide};
use serde_json::json;

const MODEL: &str = r#"model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define viewer: [user, group#member] or viewer from parent
    define parent: [folder]
type doc
  relations
    define parent: [folder]
    define viewer: [user, group#member, user with on_shift] or viewer from parent
    define editor: [user]
condition on_shift(shift_ends: timestamp, time: timestamp) {
  time < shift_ends
}
"#;

const POLICY: &str = r#"
model: model.fga
actions:
  "doc:read": { relation: viewer }
  "doc:edit": { relation: editor, write: true, strategy: office }
factors:
  P1: { ip: ["10.0.0.0/8"] }
strategies:
  office: [[P1]]
rules:
  - { id: NO-SECRET, effect: forbid, actions: ["doc:read"], resources: ["doc:secret"] }
tuples:
  - { user: "group:eng#member", relation: viewer, object: "folder:root" }
  - { user: "folder:root", relation: parent, object: "folder:specs" }
  - { user: "folder:specs", relation: parent, object: "doc:design" }
  - { user: "user:anne", relation: member, object: "group:eng" }
  - { user: "user:anne", relation: viewer, object: "doc:secret" }
  - { user: "user:bob", relation: editor, object: "doc:design" }
  - { user: "user:carol", relation: viewer, object: "doc:rota", condition: { name: on_shift, context: { shift_ends: "2026-03-02T18:00:00Z" } } }
"#;

fn snapshot(files: &[(&str, &str)]) -> Snapshot {
    let files: Vec<SourceFile> = files
        .iter()
        .map(|(name, text)| SourceFile {
            path: format!("acme/{name}").into(),
            text: (*text).to_owned(),
        })
        .collect();
    compile_files("acme".as_ref(), &files, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn demo() -> Snapshot {
    snapshot(&[
        (
            "tenant.yaml",
            "tenant: acme\ntimezone: UTC\naccept_request_time: true\n",
        ),
        ("model.fga", MODEL),
        ("policy.yaml", POLICY),
    ])
}

fn ask(
    snapshot: &Snapshot,
    who: &str,
    action: &str,
    doc: &str,
    context: serde_json::Value,
) -> portcullis_core::Decision {
    let mut request = common::request(json!({
        "principal": { "id": who },
        "action": action,
        "resource": { "type": "doc", "id": doc },
        "context": context,
        "explain": true,
    }));
    request.tenant = portcullis_core::TenantId::new("acme").unwrap();
    decide(snapshot, &request)
}

#[test]
fn a_relation_grants_with_its_path() {
    let snapshot = demo();
    let decision = ask(&snapshot, "anne", "doc:read", "design", json!({}));
    assert!(decision.is_allowed(), "{decision:?}");
    let reason = &decision.reasons[0];
    assert_eq!(reason.kind, ReasonKind::Relation);
    assert_eq!(&*reason.id, "viewer");
    let path: Vec<&str> = reason.path.iter().map(|s| &**s).collect();
    assert_eq!(path.first(), Some(&"doc:design#viewer"));
    assert_eq!(path.last(), Some(&"user:anne"));
    assert!(
        path.iter().any(|step| step.starts_with("group:eng#member")),
        "{path:?}"
    );
    assert_eq!(decision.revision.tuples, Some(0));
    // Someone with no relation is denied by default.
    let decision = ask(&snapshot, "zed", "doc:read", "design", json!({}));
    assert!(!decision.is_allowed());
    assert_eq!(decision.cause, Cause::NoGrant);
}

#[test]
fn forbids_and_strategies_still_apply() {
    let snapshot = demo();
    let decision = ask(&snapshot, "anne", "doc:read", "secret", json!({}));
    assert!(!decision.is_allowed(), "a forbid overrides a relation");
    assert_eq!(decision.cause, Cause::Forbidden);
    let outside = ask(
        &snapshot,
        "bob",
        "doc:edit",
        "design",
        json!({ "ip": "192.0.2.1" }),
    );
    assert_eq!(outside.cause, Cause::StrategyFailed, "{outside:?}");
    let office = ask(
        &snapshot,
        "bob",
        "doc:edit",
        "design",
        json!({ "ip": "10.1.2.3" }),
    );
    assert!(office.is_allowed(), "{office:?}");
}

#[test]
fn conditions_read_the_request_context_and_a_missing_parameter_is_named() {
    let snapshot = demo();
    let before = ask(
        &snapshot,
        "carol",
        "doc:read",
        "rota",
        json!({ "time": "2026-03-02T17:00:00Z" }),
    );
    assert!(before.is_allowed(), "{before:?}");
    let after = ask(
        &snapshot,
        "carol",
        "doc:read",
        "rota",
        json!({ "time": "2026-03-02T19:00:00Z" }),
    );
    assert!(!after.is_allowed());
    assert_eq!(after.cause, Cause::NoGrant);
    let missing = ask(&snapshot, "carol", "doc:read", "rota", json!({}));
    assert!(!missing.is_allowed());
    assert_eq!(missing.cause, Cause::Error, "{missing:?}");
    let error = missing
        .errors
        .iter()
        .find(|e| e.kind == ErrorKind::Relation)
        .unwrap_or_else(|| panic!("{missing:?}"));
    assert!(error.message.contains("time"), "{:?}", missing.errors);
}

#[test]
fn the_live_index_changes_decisions_without_a_recompile() {
    let snapshot = demo();
    assert!(!ask(&snapshot, "dave", "doc:read", "design", json!({})).is_allowed());
    let relations = snapshot.relations().unwrap();
    relations
        .write()
        .write(Tuple::parse("user:dave", "member", "group:eng").unwrap())
        .unwrap();
    relations.set_revision(7);
    let decision = ask(&snapshot, "dave", "doc:read", "design", json!({}));
    assert!(decision.is_allowed());
    assert_eq!(decision.revision.tuples, Some(7));
    // Another index can be laid over the same compiled bundle.
    let empty = portcullis_policy::Relations::new(
        portcullis_policy::rebac::Graph::new(std::sync::Arc::clone(snapshot.model().unwrap())),
        9,
    );
    let other = snapshot.with_relations(empty);
    assert!(!ask(&other, "anne", "doc:read", "design", json!({})).is_allowed());
    assert_eq!(snapshot.bundle_tuples().len(), 7);
}

#[test]
fn the_model_is_part_of_the_revision_and_json_models_load() {
    let a = demo();
    let changed = MODEL.replace(
        "define editor: [user]",
        "define editor: [user, group#member]",
    );
    let b = snapshot(&[
        (
            "tenant.yaml",
            "tenant: acme\ntimezone: UTC\naccept_request_time: true\n",
        ),
        ("model.fga", &changed),
        ("policy.yaml", POLICY),
    ]);
    assert_ne!(a.revision(), b.revision());
    let json_model = serde_json::to_string(&a.model().unwrap().to_json()).unwrap();
    let c = snapshot(&[
        (
            "tenant.yaml",
            "tenant: acme\ntimezone: UTC\naccept_request_time: true\n",
        ),
        ("model.json", &json_model),
        ("policy.yaml", &POLICY.replace("model.fga", "model.json")),
    ]);
    assert_eq!(
        a.revision(),
        c.revision(),
        "the same model in either form is the same bundle"
    );
    assert!(ask(&c, "anne", "doc:read", "design", json!({})).is_allowed());
}
