//! Plain action names, declared resources, action properties and search.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod common;

use common::{bundle, request};
use portcullis_core::AttributeSource;
use portcullis_policy::{Code, LoadOptions, SearchKind, SourceFile, compile_files, decide};
use proptest::prelude::*;
use serde_json::json;

const RECORDS: &str = r#"
roles:
  reader: { permissions: ["record:read"] }
  editor:
    inherits: [reader]
    permissions:
      - { permission: "record:write", when: 'resource.attributes.status != "archived"' }
      - { permission: "record:delete", when: 'has(action.properties.soft) && action.properties.soft' }
rules:
  - id: admins
    effect: permit
    actions: ["record:write"]
    when: 'principal.attributes.role == "admin" && resource.attributes.status == "archived"'
  - id: no-purge
    effect: forbid
    actions: ["*:purge"]
principals:
  alice: { roles: [editor], attributes: { role: staff } }
  bob: { roles: [reader], attributes: { role: admin } }
  svc: { type: service, roles: [reader] }
resources:
  "record:r1": { attributes: { status: active } }
  "record:r2": { attributes: { status: archived } }
  "record:r3":
  "doc:d1": { attributes: { status: archived } }
"#;

#[test]
fn a_plain_action_is_qualified_by_the_resource_type() {
    let snapshot = bundle(RECORDS);
    for action in ["read", "record:read"] {
        let mut ask = request(json!({
            "principal": { "id": "alice" },
            "action": action,
            "resource": { "type": "record", "id": "r1" },
            "explain": true,
        }));
        let decision = decide(&snapshot, &ask);
        assert!(decision.is_allowed(), "{action}: {decision:?}");
        assert_eq!(decision.explanation.unwrap().action, "record:read");
        ask.qualify_action();
        assert_eq!(ask.action, "record:read");
    }
    // The same verb on another type is another action.
    let ask = request(json!({
        "principal": { "id": "alice" },
        "action": "read",
        "resource": { "type": "doc", "id": "d1" },
    }));
    assert!(!decide(&snapshot, &ask).is_allowed());
}

#[test]
fn declared_resource_attributes_win_and_requests_may_only_add() {
    let snapshot = bundle(RECORDS);
    let write = |id: &str, attributes: serde_json::Value| {
        decide(
            &snapshot,
            &request(json!({
                "principal": { "id": "alice" },
                "action": "write",
                "resource": { "type": "record", "id": id, "attributes": attributes },
                "explain": true,
            })),
        )
    };
    // r2 is declared archived: saying it is active changes nothing.
    assert!(!write("r2", json!({ "status": "active" })).is_allowed());
    // An undeclared record takes the request's word.
    assert!(write("r9", json!({ "status": "active" })).is_allowed());
    assert!(!write("r9", json!({ "status": "archived" })).is_allowed());
    // The explanation says where each attribute came from.
    let decision = write("r2", json!({ "status": "active", "colour": "red" }));
    let sources = decision.explanation.unwrap().attributes;
    assert_eq!(
        sources.get("resource.attributes.status"),
        Some(&AttributeSource::Declared)
    );
    assert_eq!(
        sources.get("resource.attributes.colour"),
        Some(&AttributeSource::Request)
    );
    assert_eq!(
        sources.get("principal.attributes.role"),
        Some(&AttributeSource::Declared)
    );
}

#[test]
fn action_properties_are_read_per_request() {
    let snapshot = bundle(RECORDS);
    let delete = |properties: serde_json::Value| {
        decide(
            &snapshot,
            &request(json!({
                "principal": { "id": "alice" },
                "action": "delete",
                "action_properties": properties,
                "resource": { "type": "record", "id": "r1" },
            })),
        )
        .is_allowed()
    };
    assert!(delete(json!({ "soft": true })));
    assert!(!delete(json!({ "soft": false })));
    assert!(!delete(json!({})));
}

#[test]
fn verbs_with_a_colon_are_warned_about_where_they_are_written() {
    let snapshot = bundle(
        "roles:\n  r:\n    permissions: [\"record:read:all\", \"record:read\"]\nrules:\n  - { id: x, effect: permit, actions: [\"doc:a:b\"] }\n",
    );
    let warnings: Vec<(String, u32)> = snapshot
        .warnings()
        .iter()
        .map(|w| {
            assert_eq!(w.code, Code::AmbiguousAction);
            (w.message.clone(), w.location.pos.map_or(0, |p| p.line))
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].0.contains("`doc:a:b`"), "{warnings:?}");
    assert_eq!(warnings[0].1, 5);
    assert!(warnings[1].0.contains("`record:read:all`"), "{warnings:?}");
    assert_eq!(warnings[1].1, 3);
    assert!(bundle(RECORDS).warnings().is_empty());
}

#[test]
fn bad_resource_names_are_located() {
    let files = vec![
        SourceFile {
            path: "acme/tenant.yaml".into(),
            text: "tenant: acme\n".into(),
        },
        SourceFile {
            path: "acme/policy.yaml".into(),
            text:
                "resources:\n  \"record\": {}\n  \"record:*\": {}\n  ok:fine: { attributes: 3 }\n"
                    .into(),
        },
    ];
    let error = compile_files("acme".as_ref(), &files, &LoadOptions::default()).unwrap_err();
    let found: Vec<(Code, u32, String)> = error
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.code,
                d.location.pos.map_or(0, |p| p.line),
                d.message.clone(),
            )
        })
        .collect();
    assert!(
        found
            .iter()
            .any(|(code, line, message)| *code == Code::Pattern
                && *line == 2
                && message.contains("`record`")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(code, line, _)| *code == Code::Pattern && *line == 3),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(code, line, _)| *code == Code::Type && *line == 4),
        "{found:?}"
    );
}

#[test]
fn searches_find_what_a_check_allows() {
    let snapshot = bundle(RECORDS);
    let template = |principal: &str, kind: &str, action: &str, resource: (&str, &str)| {
        request(json!({
            "principal": { "id": principal, "type": kind },
            "action": action,
            "resource": { "type": resource.0, "id": resource.1 },
        }))
    };
    let all = |kind, ask: &portcullis_core::Request| {
        snapshot.search(kind, ask, None, 1000).unwrap().results
    };
    assert_eq!(
        all(
            SearchKind::Subject,
            &template("", "user", "read", ("record", "r1"))
        ),
        ["alice", "bob"]
    );
    assert_eq!(
        all(
            SearchKind::Subject,
            &template("", "service", "read", ("record", "r1"))
        ),
        ["svc"]
    );
    assert_eq!(
        all(
            SearchKind::Subject,
            &template("", "user", "write", ("record", "r2"))
        ),
        ["bob"]
    );
    assert_eq!(
        all(
            SearchKind::Resource,
            &template("alice", "user", "write", ("record", ""))
        ),
        ["r1"],
        "r3 declares no status: the condition errs, which denies"
    );
    assert_eq!(
        all(
            SearchKind::Resource,
            &template("nobody", "user", "read", ("record", ""))
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        all(
            SearchKind::Action,
            &template("bob", "user", "", ("record", "r2"))
        ),
        ["read", "write"]
    );
    // `purge` is named for every type but forbidden.
    assert_eq!(
        all(
            SearchKind::Action,
            &template("alice", "user", "", ("record", "r1"))
        ),
        ["read", "write"]
    );
}

#[test]
fn search_pages_neither_repeat_nor_skip() {
    let snapshot = bundle(RECORDS);
    let ask = request(json!({
        "principal": { "id": "alice" },
        "action": "read",
        "resource": { "type": "record", "id": "" },
    }));
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = snapshot
            .search(SearchKind::Resource, &ask, after.as_deref(), 1)
            .unwrap();
        pages += 1;
        assert!(page.results.len() <= 1);
        seen.extend(page.results);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, ["r1", "r2", "r3"]);
}

// ------------------------------------------------------------ search against brute force

/// A random small bundle: principals of two types with random roles, roles with random
/// permissions (some conditional on a resource attribute or an action property), declared
/// resources with a random flag, random permit and forbid rules.
fn small_bundle() -> impl Strategy<Value = String> {
    let verbs = ["read", "write", "*"];
    (
        proptest::collection::vec((0..3usize, any::<bool>(), any::<bool>()), 1..6),
        proptest::collection::vec(
            proptest::collection::vec((0..3usize, 0..3usize), 0..4),
            3,
        ),
        proptest::collection::vec(any::<bool>(), 0..6),
        proptest::collection::vec((any::<bool>(), 0..3usize, any::<bool>()), 0..3),
    )
        .prop_map(move |(principals, roles, resources, rules)| {
            let mut text = String::from("roles:\n");
            for (r, permissions) in roles.iter().enumerate() {
                text.push_str(&format!("  r{r}:\n    permissions:\n"));
                text.push_str("      - \"doc:none\"\n");
                for &(verb, condition) in permissions {
                    let when = match condition {
                        0 => String::new(),
                        1 => ", when: 'has(resource.attributes.open) && resource.attributes.open'"
                            .to_owned(),
                        _ => ", when: 'has(action.properties.ok)'".to_owned(),
                    };
                    text.push_str(&format!(
                        "      - {{ permission: \"doc:{}\"{when} }}\n",
                        verbs[verb]
                    ));
                }
            }
            text.push_str("principals:\n");
            for (p, &(role, service, scoped)) in principals.iter().enumerate() {
                let kind = if service { "service" } else { "user" };
                let assignment = if scoped {
                    format!("{{ role: r{role}, on: \"doc:d{p}\" }}")
                } else {
                    format!("r{role}")
                };
                text.push_str(&format!(
                    "  p{p}: {{ type: {kind}, roles: [{assignment}] }}\n"
                ));
            }
            if !resources.is_empty() {
                text.push_str("resources:\n");
                for (d, open) in resources.iter().enumerate() {
                    text.push_str(&format!(
                        "  \"doc:d{d}\": {{ attributes: {{ open: {open} }} }}\n"
                    ));
                }
            }
            if !rules.is_empty() {
                text.push_str("rules:\n");
                for (i, &(permit, verb, on_p0)) in rules.iter().enumerate() {
                    let effect = if permit { "permit" } else { "forbid" };
                    let when = if on_p0 { "principal.id == 'p0'" } else { "resource.id == 'd1'" };
                    text.push_str(&format!(
                        "  - {{ id: x{i}, effect: {effect}, actions: [\"doc:{}\"], when: \"{when}\" }}\n",
                        verbs[verb]
                    ));
                }
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn search_results_equal_brute_force(
        policy in small_bundle(),
        limit in 1usize..4,
        properties in any::<bool>(),
    ) {
        let snapshot = bundle(&policy);
        let action_properties = if properties { json!({ "ok": true }) } else { json!({}) };
        let principals: Vec<(String, &str)> = (0..6)
            .map(|p| (format!("p{p}"), if policy.contains(&format!("p{p}: {{ type: service")) { "service" } else { "user" }))
            .filter(|(id, _)| policy.contains(&format!("  {id}: ")))
            .collect();
        let resources: Vec<String> = (0..6)
            .map(|d| format!("d{d}"))
            .filter(|d| policy.contains(&format!("\"doc:{d}\":")))
            .collect();
        let allowed = |principal: &str, kind: &str, action: &str, resource: &str| {
            decide(&snapshot, &request(json!({
                "principal": { "id": principal, "type": kind },
                "action": action,
                "action_properties": action_properties,
                "resource": { "type": "doc", "id": resource },
            }))).is_allowed()
        };
        let paged = |kind: SearchKind, ask: &portcullis_core::Request| {
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            for _ in 0..100 {
                let page = snapshot.search(kind, ask, after.as_deref(), limit).unwrap();
                prop_assert!(page.results.len() <= limit);
                all.extend(page.results);
                match page.next {
                    Some(next) => after = Some(next),
                    None => return Ok(all),
                }
            }
            Err(TestCaseError::fail("paging does not end"))
        };
        let template = |principal: &str, kind: &str, action: &str, resource: &str| request(json!({
            "principal": { "id": principal, "type": kind },
            "action": action,
            "action_properties": action_properties,
            "resource": { "type": "doc", "id": resource },
        }));
        for kind in ["user", "service"] {
            for resource in ["d0", "d1", "d9"] {
                for action in ["read", "write"] {
                    let expected: Vec<String> = principals
                        .iter()
                        .filter(|(id, k)| *k == kind && allowed(id, kind, action, resource))
                        .map(|(id, _)| id.clone())
                        .collect();
                    let found = paged(SearchKind::Subject, &template("", kind, action, resource))?;
                    prop_assert_eq!(found, expected, "subjects {} {} {}", kind, action, resource);
                }
            }
        }
        for (principal, kind) in principals.iter().map(|(id, k)| (id.as_str(), *k)).chain([("p9", "user")]) {
            for action in ["read", "write"] {
                let expected: Vec<String> = resources
                    .iter()
                    .filter(|d| allowed(principal, kind, action, d))
                    .cloned()
                    .collect();
                let found = paged(SearchKind::Resource, &template(principal, kind, action, ""))?;
                prop_assert_eq!(found, expected, "resources {} {}", principal, action);
            }
            for resource in ["d0", "d1"] {
                // Enumerable: the verbs the bundle names on `doc` (`doc:*` names none).
                let expected: Vec<String> = ["none", "read", "write"]
                    .into_iter()
                    .filter(|verb| policy.contains(&format!("\"doc:{verb}\"")))
                    .filter(|verb| allowed(principal, kind, verb, resource))
                    .map(str::to_owned)
                    .collect();
                let found = paged(SearchKind::Action, &template(principal, kind, "", resource))?;
                prop_assert_eq!(found, expected, "actions {} {}", principal, resource);
            }
        }
    }
}
