//! Decision semantics of SPEC.md C1, one behaviour per test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod common;

use common::{bundle, bundle_with_tenant, request};
use portcullis_core::{Cause, Effect, ErrorKind, ReasonKind};
use portcullis_policy::{SUPPLY_CHAIN_FORBID, decide, decide_with_strategy};
use serde_json::json;

const RBAC: &str = r#"
roles:
  viewer: { permissions: ["doc:read"] }
  editor: { inherits: [viewer], permissions: ["doc:write"] }
  admin: { inherits: [editor], permissions: ["doc:*", "*:audit"] }
  root: { permissions: ["*"] }
  owner:
    permissions:
      - { permission: "doc:delete", when: "resource.attributes.owner == principal.id" }
principals:
  vera: { roles: [viewer] }
  eddie: { roles: [editor] }
  ada: { roles: [admin] }
  rory: { roles: [root] }
  olga: { roles: [owner] }
  sam: { roles: [{ role: editor, on: "doc:plans" }] }
"#;

fn ask(principal: &str, action: &str, resource: (&str, &str)) -> portcullis_core::Request {
    request(json!({
        "principal": { "id": principal },
        "action": action,
        "resource": { "type": resource.0, "id": resource.1 },
    }))
}

#[test]
fn inheritance_grants_with_the_role_path() {
    let snapshot = bundle(RBAC);
    let decision = decide(&snapshot, &ask("ada", "doc:read", ("doc", "x")));
    assert_eq!(decision.decision, Effect::Allow);
    let viewer = decision
        .reasons
        .iter()
        .find(|r| &*r.id == "viewer")
        .unwrap();
    assert_eq!(viewer.kind, ReasonKind::Role);
    let path: Vec<&str> = viewer.path.iter().map(|p| &**p).collect();
    assert_eq!(path, ["ada", "admin", "editor", "viewer"]);
    assert!(
        decision.reasons.iter().any(|r| &*r.id == "admin"),
        "doc:* also grants"
    );
    assert!(!decide(&snapshot, &ask("vera", "doc:write", ("doc", "x"))).is_allowed());
    assert!(decide(&snapshot, &ask("eddie", "doc:read", ("doc", "x"))).is_allowed());
}

#[test]
fn wildcards_cover_types_and_actions() {
    let snapshot = bundle(RBAC);
    assert!(
        decide(&snapshot, &ask("ada", "doc:archive", ("doc", "x"))).is_allowed(),
        "doc:*"
    );
    assert!(
        decide(&snapshot, &ask("ada", "billing:audit", ("billing", "x"))).is_allowed(),
        "*:audit"
    );
    assert!(!decide(&snapshot, &ask("ada", "billing:pay", ("billing", "x"))).is_allowed());
    assert!(
        decide(&snapshot, &ask("rory", "anything:at-all", ("x", "y"))).is_allowed(),
        "*"
    );
}

#[test]
fn default_is_deny_with_no_grant() {
    let snapshot = bundle(RBAC);
    let decision = decide(&snapshot, &ask("nobody", "doc:read", ("doc", "x")));
    assert_eq!(
        (decision.decision, decision.cause),
        (Effect::Deny, Cause::NoGrant)
    );
    assert!(decision.reasons.is_empty());
}

#[test]
fn conditional_permissions_read_the_request() {
    let snapshot = bundle(RBAC);
    let mut mine = ask("olga", "doc:delete", ("doc", "x"));
    mine.resource
        .attributes
        .insert("owner".into(), "olga".into());
    assert!(decide(&snapshot, &mine).is_allowed());
    let mut theirs = mine.clone();
    theirs
        .resource
        .attributes
        .insert("owner".into(), "vera".into());
    assert_eq!(decide(&snapshot, &theirs).cause, Cause::NoGrant);
}

#[test]
fn a_condition_error_denies_and_is_named() {
    let snapshot = bundle(RBAC);
    // No `owner` attribute: the condition cannot be evaluated.
    let decision = decide(&snapshot, &ask("olga", "doc:delete", ("doc", "x")));
    assert_eq!(
        (decision.decision, decision.cause),
        (Effect::Deny, Cause::Error)
    );
    assert_eq!(decision.errors.len(), 1);
    assert_eq!(decision.errors[0].kind, ErrorKind::Cel);
    assert_eq!(&*decision.errors[0].statement, "owner");
    assert!(
        decision.errors[0].message.contains("owner"),
        "{}",
        decision.errors[0].message
    );
}

#[test]
fn an_error_that_cannot_change_the_outcome_does_not_deny() {
    // Two grants: one unconditional, one whose condition errors. The unconditional one decides.
    let snapshot = bundle(
        "roles:\n  a: { permissions: [\"doc:read\"] }\n  b: { permissions: [{ permission: \"doc:read\", when: \"resource.attributes.missing\" }] }\nprincipals:\n  p: { roles: [a, b] }\n",
    );
    let decision = decide(&snapshot, &ask("p", "doc:read", ("doc", "x")));
    assert_eq!(decision.decision, Effect::Allow);
    assert_eq!(decision.errors.len(), 1, "the error is still reported");
}

#[test]
fn resource_scoped_assignments_apply_only_there() {
    let snapshot = bundle(RBAC);
    assert!(decide(&snapshot, &ask("sam", "doc:write", ("doc", "plans"))).is_allowed());
    assert!(!decide(&snapshot, &ask("sam", "doc:write", ("doc", "other"))).is_allowed());
}

#[test]
fn asserted_roles_are_honoured_and_unknown_ones_ignored() {
    let snapshot = bundle(RBAC);
    let mut asserted = ask("stranger", "doc:write", ("doc", "x"));
    asserted.principal.roles = vec!["editor".into(), "no-such-role".into()];
    let decision = decide(&snapshot, &asserted);
    assert!(decision.is_allowed());
    assert_eq!(
        decision.reasons[0].path.first().map(|p| &**p),
        Some("stranger")
    );
}

const RULES: &str = r#"
roles:
  clerk: { permissions: ["inventory:increase", "inventory:read"] }
principals:
  cleo: { roles: [clerk] }
actions:
  "inventory:increase": { write: true }
  "inventory:create": { write: true }
rules:
  - id: PERMIT-SVC
    effect: permit
    actions: ["inventory:create"]
    when: 'context.source == "internal-service"'
  - id: FORBID-FROZEN
    effect: forbid
    actions: ["inventory:*"]
    resources: ["inventory:frozen"]
  - id: FORBID-INTERN
    effect: forbid
    actions: ["*"]
    principals: [intern]
  - id: FORBID-BAD-CONDITION
    effect: forbid
    actions: ["inventory:read"]
    when: "context.flag == 1"
"#;

#[test]
fn permit_rules_grant_by_condition() {
    let snapshot = bundle(RULES);
    let mut create = ask("anyone", "inventory:create", ("inventory", "x"));
    create.context.source = Some("internal-service".into());
    let decision = decide(&snapshot, &create);
    assert!(decision.is_allowed());
    assert_eq!(decision.reasons[0].kind, ReasonKind::Rule);
    assert_eq!(&*decision.reasons[0].id, "PERMIT-SVC");
    create.context.source = Some("browser".into());
    assert_eq!(decide(&snapshot, &create).cause, Cause::NoGrant);
}

#[test]
fn forbids_override_grants() {
    let snapshot = bundle(RULES);
    let decision = decide(
        &snapshot,
        &ask("cleo", "inventory:increase", ("inventory", "frozen")),
    );
    assert_eq!(
        (decision.decision, decision.cause),
        (Effect::Deny, Cause::Forbidden)
    );
    assert_eq!(
        decision.forbids.iter().map(|f| &**f).collect::<Vec<_>>(),
        ["FORBID-FROZEN"]
    );
    assert!(
        !decision.reasons.is_empty(),
        "the grant that was overridden is still shown"
    );
    assert!(
        decide(
            &snapshot,
            &ask("cleo", "inventory:increase", ("inventory", "open"))
        )
        .is_allowed()
    );
    let mut intern = ask("intern", "inventory:increase", ("inventory", "open"));
    intern.principal.roles = vec!["clerk".into()];
    assert_eq!(decide(&snapshot, &intern).cause, Cause::Forbidden);
}

#[test]
fn a_forbid_that_cannot_be_evaluated_denies() {
    let snapshot = bundle(RULES);
    let decision = decide(
        &snapshot,
        &ask("cleo", "inventory:read", ("inventory", "open")),
    );
    assert_eq!(
        (decision.decision, decision.cause),
        (Effect::Deny, Cause::Error)
    );
    assert_eq!(&*decision.errors[0].statement, "FORBID-BAD-CONDITION");
    let mut flagged = ask("cleo", "inventory:read", ("inventory", "open"));
    flagged.context.attributes.insert("flag".into(), 2.into());
    assert!(decide(&snapshot, &flagged).is_allowed());
}

#[test]
fn the_supply_chain_forbid_blocks_writes_only() {
    let snapshot = bundle(RULES);
    let mut write = ask("cleo", "inventory:increase", ("inventory", "open"));
    write.env.supply_chain.high_risk = true;
    let decision = decide(&snapshot, &write);
    assert_eq!(decision.cause, Cause::Forbidden);
    assert_eq!(
        decision.forbids.iter().map(|f| &**f).collect::<Vec<_>>(),
        [SUPPLY_CHAIN_FORBID]
    );
    let mut read = ask("cleo", "inventory:read", ("inventory", "open"));
    read.env.supply_chain.high_risk = true;
    read.context.attributes.insert("flag".into(), 0.into());
    assert!(decide(&snapshot, &read).is_allowed());
}

#[test]
fn the_supply_chain_forbid_can_be_switched_off_with_a_reason() {
    let tenant = "tenant: acme\nsupply_chain: { forbid_writes: false, reason: \"CHG-7: accepted risk until patch\" }\n";
    let snapshot = bundle_with_tenant(tenant, RULES);
    let mut write = ask("cleo", "inventory:increase", ("inventory", "open"));
    write.env.supply_chain.high_risk = true;
    assert!(decide(&snapshot, &write).is_allowed());
}

#[test]
fn suspended_and_unknown_tenants_are_denied_first() {
    let snapshot = bundle_with_tenant("tenant: acme\nstatus: suspended\n", RBAC);
    let decision = decide(&snapshot, &ask("ada", "doc:read", ("doc", "x")));
    assert_eq!(
        (decision.decision, decision.cause),
        (Effect::Deny, Cause::TenantSuspended)
    );
    let active = bundle(RBAC);
    let mut other = ask("ada", "doc:read", ("doc", "x"));
    other.tenant = "globex".parse().unwrap();
    assert_eq!(decide(&active, &other).cause, Cause::TenantUnknown);
    let mut set = portcullis_policy::PolicySet::new();
    set.insert(std::sync::Arc::new(active));
    assert_eq!(set.decide(&other).cause, Cause::TenantUnknown);
    assert!(
        set.decide(&ask("ada", "doc:read", ("doc", "x")))
            .is_allowed()
    );
}

const STRATEGY: &str = r#"
factors:
  office: { ip: ["10.0.0.0/8", "2001:db8::/32"] }
  hours: { time_window: { windows: ["09:00-18:00"], weekdays: [mon, tue, wed, thu, fri] } }
  night: { time_window: ["22:00-06:00"] }
  cert: { client_cert: [{ fingerprint: "sha256:AA11AA11AA11AA11AA11AA11AA11AA11AA11AA11AA11AA11AA11AA11AA11AA11" }] }
  remote: { principal_attr: { remote_access: true } }
  not-remote: { principal_attr: { remote_access: true }, direction: negative }
  vip: { cel: "'vip' in principal.roles" }
strategies:
  access: [[office, hours], [remote, cert]]
  maintenance: [[night]]
  onsite: [[not-remote]]
roles:
  staff: { permissions: ["app:use", "app:maintain", "app:visit"] }
  vip: {}
principals:
  sue: { roles: [staff], attributes: { remote_access: true } }
  tom: { roles: [staff] }
actions:
  "app:use": { strategy: access }
  "app:maintain": { strategy: maintenance }
  "app:visit": { strategy: onsite }
"#;

fn at(principal: &str, action: &str, ip: &str, time: &str) -> portcullis_core::Request {
    request(json!({
        "principal": { "id": principal },
        "action": action,
        "resource": { "type": "app", "id": "a" },
        "context": { "ip": ip, "time": time },
    }))
}

#[test]
fn strategies_report_the_branch_that_held_or_the_factors_that_failed() {
    let snapshot = bundle(STRATEGY);
    // Monday 2026-03-02 10:00 in Shanghai.
    let decision = decide(
        &snapshot,
        &at("tom", "app:use", "10.1.2.3", "2026-03-02T10:00:00+08:00"),
    );
    assert!(decision.is_allowed());
    let strategy = decision.strategy.unwrap();
    assert_eq!(
        strategy
            .branch
            .unwrap()
            .iter()
            .map(|f| &**f)
            .collect::<Vec<_>>(),
        ["hours", "office"]
    );
    // Saturday: hours fails; tom is not remote.
    let decision = decide(
        &snapshot,
        &at("tom", "app:use", "10.1.2.3", "2026-03-07T10:00:00+08:00"),
    );
    assert_eq!(decision.cause, Cause::StrategyFailed);
    let strategy = decision.strategy.unwrap();
    assert!(!strategy.held);
    // Each branch names a factor that failed; short-circuiting stops at the first one, and
    // branch [cert, remote] is tried in factor-id order.
    let failing: Vec<&str> = strategy.failing.iter().map(|f| &**f).collect();
    assert_eq!(failing, ["cert", "hours"]);
}

#[test]
fn certificates_and_attributes_drive_the_remote_branch() {
    let snapshot = bundle(STRATEGY);
    let mut remote = at("sue", "app:use", "203.0.113.5", "2026-03-07T10:00:00+08:00");
    assert_eq!(
        decide(&snapshot, &remote).cause,
        Cause::StrategyFailed,
        "no certificate"
    );
    remote.context.cert = Some(portcullis_core::ClientCert {
        fingerprint: Some("aa:11:".repeat(16).trim_end_matches(':').to_owned()),
        ..Default::default()
    });
    assert!(decide(&snapshot, &remote).is_allowed());
    let mut tom = remote.clone();
    tom.principal.id = "tom".into();
    tom.principal
        .attributes
        .insert("remote_access".into(), true.into());
    assert!(
        decide(&snapshot, &tom).is_allowed(),
        "keys the bundle does not store come from the request"
    );
    let mut stranger = remote.clone();
    stranger.principal.id = "stranger".into();
    stranger.principal.roles = vec!["staff".into()];
    stranger
        .principal
        .attributes
        .insert("remote_access".into(), true.into());
    assert!(
        decide(&snapshot, &stranger).is_allowed(),
        "unknown principals keep asserted attributes"
    );
}

#[test]
fn stored_attributes_take_precedence_over_asserted_ones() {
    let snapshot = bundle(STRATEGY);
    let mut sue = at("sue", "app:visit", "10.0.0.1", "2026-03-02T10:00:00+08:00");
    sue.principal
        .attributes
        .insert("remote_access".into(), false.into());
    // sue is stored as remote, so the negative factor fails despite the request's claim.
    assert_eq!(decide(&snapshot, &sue).cause, Cause::StrategyFailed);
    assert!(
        decide(
            &snapshot,
            &at("tom", "app:visit", "10.0.0.1", "2026-03-02T10:00:00+08:00")
        )
        .is_allowed()
    );
}

#[test]
fn windows_crossing_midnight_and_ipv6() {
    let snapshot = bundle(STRATEGY);
    assert!(
        decide(
            &snapshot,
            &at(
                "tom",
                "app:maintain",
                "2001:db8::1",
                "2026-03-02T23:30:00+08:00"
            )
        )
        .is_allowed()
    );
    assert!(
        decide(
            &snapshot,
            &at(
                "tom",
                "app:maintain",
                "2001:db8::1",
                "2026-03-03T05:59:00+08:00"
            )
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &snapshot,
            &at(
                "tom",
                "app:maintain",
                "2001:db8::1",
                "2026-03-03T06:00:00+08:00"
            )
        )
        .is_allowed()
    );
}

#[test]
fn the_tenant_time_zone_decides_local_time() {
    let snapshot = bundle(STRATEGY);
    // 01:30 UTC on Monday is 09:30 in Shanghai: inside office hours.
    assert!(
        decide(
            &snapshot,
            &at("tom", "app:use", "10.0.0.1", "2026-03-02T01:30:00Z")
        )
        .is_allowed()
    );
    // 00:30 UTC is 08:30 in Shanghai: outside.
    assert!(
        !decide(
            &snapshot,
            &at("tom", "app:use", "10.0.0.1", "2026-03-02T00:30:00Z")
        )
        .is_allowed()
    );
}

#[test]
fn missing_context_is_an_error_not_a_guess() {
    let snapshot = bundle(STRATEGY);
    let decision = decide(
        &snapshot,
        &request(
            json!({"principal": {"id": "tom"}, "action": "app:use", "resource": {"type": "app", "id": "a"}}),
        ),
    );
    assert_eq!(decision.cause, Cause::Error);
    let statements: Vec<&str> = decision.errors.iter().map(|e| &*e.statement).collect();
    assert!(
        statements.contains(&"office") || statements.contains(&"hours"),
        "{statements:?}"
    );
    assert!(decision.errors.iter().all(|e| e.kind == ErrorKind::Factor));
}

#[test]
fn a_route_strategy_is_required_in_addition() {
    let snapshot = bundle(STRATEGY);
    let request = at("tom", "app:use", "10.0.0.1", "2026-03-02T10:00:00+08:00");
    assert!(decide_with_strategy(&snapshot, &request, Some("access")).is_allowed());
    let decision = decide_with_strategy(&snapshot, &request, Some("maintenance"));
    assert_eq!(decision.cause, Cause::StrategyFailed);
    assert_eq!(decision.strategy.unwrap().id.as_ref(), "maintenance");
    let decision = decide_with_strategy(&snapshot, &request, Some("nonexistent"));
    assert_eq!(decision.cause, Cause::Error);
}

#[test]
fn explanations_list_every_factor_and_rule() {
    let snapshot = bundle(STRATEGY);
    let mut request = at("tom", "app:use", "10.1.2.3", "2026-03-02T10:00:00+08:00");
    request.explain = true;
    let decision = decide(&snapshot, &request);
    let explanation = decision.explanation.unwrap();
    let factors: Vec<(&str, Option<bool>)> = explanation
        .factors
        .iter()
        .map(|(k, v)| (&**k, *v))
        .collect();
    assert_eq!(
        factors,
        [
            ("cert", Some(false)),
            ("hours", Some(true)),
            ("night", Some(false)),
            ("not-remote", Some(true)),
            ("office", Some(true)),
            ("remote", Some(false)),
            ("vip", Some(false)),
        ]
    );
    assert_eq!(
        explanation.roles.iter().map(|r| &**r).collect::<Vec<_>>(),
        ["staff"]
    );
}

#[test]
fn the_revision_names_the_bundle_content() {
    let a = bundle(RBAC);
    let b = bundle(&format!("# a comment changes nothing\n{RBAC}"));
    let c = bundle(&RBAC.replace("doc:read", "doc:view"));
    assert_eq!(a.revision(), b.revision());
    assert_ne!(a.revision(), c.revision());
    assert!(a.revision().starts_with("sha256:") && a.revision().len() == 7 + 64);
    let decision = decide(&a, &ask("ada", "doc:read", ("doc", "x")));
    assert_eq!(&decision.revision.bundle, a.revision());
}

#[test]
fn routes_map_requests_most_specific_first() {
    let snapshot = bundle(
        r#"
routes:
  - { methods: [GET], path: "/apps/{app}/**", action: "app:read", resource: "app:{app}" }
  - { methods: [GET], path: "/apps/{app}/logs", action: "app:logs", resource: "app:{app}" }
  - { methods: [GET], path: "/apps/special/logs", action: "app:special", resource: "app:special" }
  - { path: "/health", action: "sys:health", resource: "sys:node" }
"#,
    );
    let route = snapshot
        .match_route("GET", "/apps/pay/logs?tail=10")
        .unwrap();
    assert_eq!(
        (route.action, route.resource.id.as_str()),
        ("app:logs", "pay")
    );
    assert_eq!(
        snapshot
            .match_route("get", "/apps/special/logs")
            .unwrap()
            .action,
        "app:special"
    );
    assert_eq!(
        snapshot.match_route("GET", "/apps/pay/x/y").unwrap().action,
        "app:read"
    );
    assert_eq!(
        snapshot.match_route("GET", "/apps/pay").unwrap().action,
        "app:read",
        "** matches nothing too"
    );
    assert!(snapshot.match_route("POST", "/apps/pay/logs").is_none());
    assert_eq!(
        snapshot.match_route("DELETE", "/health").unwrap().action,
        "sys:health"
    );
    assert!(snapshot.match_route("GET", "/unknown").is_none());
}

#[test]
fn conditions_at_the_depth_limit_evaluate_on_an_ordinary_thread() {
    // 23 nested brackets and a chain of 44 additions stay within the limits; evaluating them
    // must not exhaust a default 2 MiB test thread stack, even in an unoptimized build. (The
    // chain adds numbers: a chain of 44 request values, which may each be a list, is over the
    // cost limit.)
    let nested = format!("{}context.n > 0{}", "(".repeat(23), ")".repeat(23));
    let chain = format!("context.n + {} > 0", vec!["1"; 43].join(" + "));
    let snapshot = bundle(&format!(
        "rules:\n  - {{ id: N, effect: permit, actions: [\"a:b\"], when: \"{nested}\" }}\n  - {{ id: C, effect: permit, actions: [\"a:b\"], when: \"{chain}\" }}\n"
    ));
    let mut request = ask("p", "a:b", ("a", "1"));
    request.context.attributes.insert("n".into(), 1.into());
    let decision = decide(&snapshot, &request);
    assert!(decision.is_allowed());
    assert_eq!(decision.reasons.len(), 2);
}

#[test]
fn the_revision_ignores_the_order_of_attribute_keys() {
    let a = bundle("principals:\n  p: { attributes: { a: 1, b: { x: 1, y: 2 } } }\n");
    let b = bundle("principals:\n  p: { attributes: { b: { y: 2, x: 1 }, a: 1 } }\n");
    assert_eq!(a.revision(), b.revision());
}

#[test]
fn conditions_settled_at_load_keep_their_meaning() {
    // POL-002's shape: on a read action the condition is false whatever the request, and the
    // engine does not evaluate it there; on a write action it still decides.
    let snapshot = bundle(
        r#"
roles:
  clerk: { permissions: ["inventory:read", "inventory:write"] }
principals:
  cleo: { roles: [clerk] }
actions:
  "inventory:write": { write: true }
rules:
  - { id: NO-WRITES, effect: forbid, actions: ["*"], when: "action.write && env.supply_chain.high_risk" }
  - { id: READS-ONLY, effect: permit, actions: ["*"], when: "!action.write && context.source == 'svc'" }
"#,
    );
    let mut read = ask("cleo", "inventory:read", ("inventory", "a"));
    read.env.supply_chain.high_risk = true;
    read.explain = true;
    let decision = decide(&snapshot, &read);
    assert!(decision.is_allowed());
    let rules = decision.explanation.unwrap().rules;
    assert_eq!(
        rules.get("NO-WRITES").map(String::as_str),
        Some("condition_false")
    );
    assert_eq!(
        rules.get("READS-ONLY").map(String::as_str),
        Some("error"),
        "context.source is missing"
    );
    let mut write = ask("cleo", "inventory:write", ("inventory", "a"));
    write.env.supply_chain.high_risk = true;
    write.explain = true;
    let decision = decide(&snapshot, &write);
    assert_eq!(decision.cause, Cause::Forbidden);
    let rules = decision.explanation.unwrap().rules;
    assert_eq!(
        rules.get("READS-ONLY").map(String::as_str),
        Some("condition_false")
    );
    write.env.supply_chain.high_risk = false;
    assert!(decide(&snapshot, &write).is_allowed());
}

#[test]
fn run_time_data_combines_with_the_bundle() {
    use portcullis_policy::{RuntimeAssignment, RuntimeData, RuntimePrincipal};
    let base = bundle(RBAC);
    let data = RuntimeData {
        revision: 7,
        suspended: false,
        principals: vec![RuntimePrincipal {
            id: "vera".into(),
            kind: None,
            attributes: serde_json::json!({"level": 3}).as_object().unwrap().clone(),
        }],
        assignments: vec![
            RuntimeAssignment {
                principal: "newcomer".into(),
                role: "editor".into(),
                resource: "*".into(),
            },
            RuntimeAssignment {
                principal: "vera".into(),
                role: "admin".into(),
                resource: "doc:secret".into(),
            },
            RuntimeAssignment {
                principal: "vera".into(),
                role: "no-such-role".into(),
                resource: "*".into(),
            },
        ],
        grants: Vec::new(),
    };
    let (snapshot, notes) = base.with_runtime(&data);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].contains("no-such-role"), "{notes:?}");
    let decision = decide(&snapshot, &ask("newcomer", "doc:write", ("doc", "x")));
    assert!(decision.is_allowed(), "a run-time assignment grants");
    assert_eq!(
        decision.revision.data,
        Some(7),
        "the decision names the data revision"
    );
    assert!(
        decide(&snapshot, &ask("vera", "doc:archive", ("doc", "secret"))).is_allowed(),
        "scoped run-time role"
    );
    assert!(!decide(&snapshot, &ask("vera", "doc:archive", ("doc", "other"))).is_allowed());
    assert!(
        decide(&snapshot, &ask("vera", "doc:read", ("doc", "x"))).is_allowed(),
        "bundle roles stay"
    );
    // The base snapshot is unchanged.
    assert!(!decide(&base, &ask("newcomer", "doc:write", ("doc", "x"))).is_allowed());
    assert_eq!(
        decide(&base, &ask("vera", "doc:read", ("doc", "x")))
            .revision
            .data,
        None
    );

    let suspended = RuntimeData {
        suspended: true,
        revision: 8,
        ..data
    };
    let (snapshot, _) = base.with_runtime(&suspended);
    let decision = decide(&snapshot, &ask("vera", "doc:read", ("doc", "x")));
    assert_eq!(decision.cause, Cause::TenantSuspended);
    assert_eq!(decision.revision.data, Some(8));
}
