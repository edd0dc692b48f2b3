//! Temporary grants (break-glass, SPEC.md C9) in decisions, and the `temporary_access`
//! section of a bundle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod common;

use common::{bundle, request};
use jiff::Timestamp;
use portcullis_core::{Cause, ReasonKind, Request};
use portcullis_policy::access::{APPROVE_ACTION, REJECT_ACTION};
use portcullis_policy::{
    LoadOptions, RuntimeData, RuntimeGrant, SUPPLY_CHAIN_FORBID, Snapshot, SourceFile,
    compile_files, decide,
};
use proptest::prelude::*;
use serde_json::json;

const POLICY: &str = r#"
roles:
  operator: { permissions: ["app:status"] }
  security-officer: {}
  lead: { inherits: [security-officer] }
principals:
  olga: { roles: [operator] }
  sofia: { roles: [security-officer] }
  leo: { roles: [lead] }
actions:
  "app:release": { write: true }
  "app:deploy": { strategy: office }
factors:
  in-office: { ip: ["10.0.0.0/8"] }
strategies:
  office: [[in-office]]
rules:
  - id: no-friday-payments
    effect: forbid
    actions: ["app:release"]
    resources: ["app:frozen"]
temporary_access:
  approvers: [security-officer]
  approvals_required: 2
  max_window: 4h
"#;

const START: &str = "2026-12-08T10:00:00Z";
const END: &str = "2026-12-08T12:00:00Z";

fn grant(id: &str, principal: &str, action: &str, resource: &str) -> RuntimeGrant {
    RuntimeGrant {
        id: id.to_owned(),
        principal: principal.to_owned(),
        action: action.to_owned(),
        resource: resource.to_owned(),
        not_before: START.parse().unwrap(),
        not_after: END.parse().unwrap(),
        cert: Some("laptop-7".to_owned()),
        networks: vec!["192.0.2.0/24".to_owned()],
        approvers: vec!["sofia".to_owned(), "leo".to_owned()],
    }
}

fn with_grants(grants: Vec<RuntimeGrant>) -> Snapshot {
    let (snapshot, notes) = bundle(POLICY).with_runtime(&RuntimeData {
        revision: 3,
        grants,
        ..RuntimeData::default()
    });
    assert!(notes.is_empty(), "{notes:?}");
    snapshot
}

fn ask(principal: &str, action: &str, resource: (&str, &str), at: &str) -> Request {
    request(json!({
        "principal": { "id": principal },
        "action": action,
        "resource": { "type": resource.0, "id": resource.1 },
        "context": { "ip": "192.0.2.10", "time": at, "cert": { "id": "laptop-7" } },
    }))
}

#[test]
fn a_grant_allows_inside_its_window_and_names_itself() {
    let snapshot = with_grants(vec![grant("ta-1", "olga", "app:release", "app:payments")]);
    let decision = decide(
        &snapshot,
        &ask(
            "olga",
            "app:release",
            ("app", "payments"),
            "2026-12-08T11:00:00Z",
        ),
    );
    assert!(decision.is_allowed(), "{decision:?}");
    let reason = &decision.reasons[0];
    assert_eq!(reason.kind, ReasonKind::Grant);
    assert_eq!(&*reason.id, "ta-1");
    assert_eq!(reason.path, vec!["olga".into()] as Vec<std::sync::Arc<str>>);
    let approvers: Vec<&str> = reason.approvers.iter().map(|a| &**a).collect();
    assert_eq!(approvers, ["sofia", "leo"]);
    assert_eq!(reason.expires.as_deref(), Some(END));
    // In the JSON a client reads.
    let json = serde_json::to_value(&decision).unwrap();
    assert_eq!(json["reasons"][0]["kind"], "grant");
    assert_eq!(json["reasons"][0]["expires"], END);
}

#[test]
fn the_window_starts_at_its_first_second_and_ends_before_its_last() {
    let snapshot = with_grants(vec![grant("ta-1", "olga", "app:release", "app:payments")]);
    let at = |time: &str| {
        decide(
            &snapshot,
            &ask("olga", "app:release", ("app", "payments"), time),
        )
        .is_allowed()
    };
    assert!(!at("2026-12-08T09:59:59.999999Z"));
    assert!(at(START));
    assert!(at("2026-12-08T11:59:59.999999Z"));
    assert!(
        !at(END),
        "the window's end is exclusive: expired at the exact second"
    );
    assert!(!at("2026-12-09T11:00:00Z"));
}

#[test]
fn a_grant_holds_only_for_its_principal_action_and_resource() {
    let snapshot = with_grants(vec![grant("ta-1", "olga", "app:release", "app:payments")]);
    let time = "2026-12-08T11:00:00Z";
    assert!(
        !decide(
            &snapshot,
            &ask("sofia", "app:release", ("app", "payments"), time)
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &snapshot,
            &ask("olga", "app:delete", ("app", "payments"), time)
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &snapshot,
            &ask("olga", "app:release", ("app", "billing"), time)
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &snapshot,
            &ask("olga", "db:release", ("db", "payments"), time)
        )
        .is_allowed()
    );
    // A plain action name is qualified by the resource type, as everywhere.
    assert!(
        decide(
            &snapshot,
            &ask("olga", "release", ("app", "payments"), time)
        )
        .is_allowed()
    );
}

#[test]
fn a_grant_holds_only_from_its_certificate_and_network() {
    let snapshot = with_grants(vec![grant("ta-1", "olga", "app:release", "app:payments")]);
    let base = ask(
        "olga",
        "app:release",
        ("app", "payments"),
        "2026-12-08T11:00:00Z",
    );
    assert!(decide(&snapshot, &base).is_allowed());

    let mut other_cert = base.clone();
    other_cert.context.cert.as_mut().unwrap().id = Some("laptop-8".into());
    assert!(!decide(&snapshot, &other_cert).is_allowed());
    let mut no_cert = base.clone();
    no_cert.context.cert = None;
    assert!(!decide(&snapshot, &no_cert).is_allowed());

    let mut elsewhere = base.clone();
    elsewhere.context.ip = Some("198.51.100.1".parse().unwrap());
    assert!(!decide(&snapshot, &elsewhere).is_allowed());
    let mut no_address = base.clone();
    no_address.context.ip = None;
    assert!(!decide(&snapshot, &no_address).is_allowed());

    let mut no_time = base;
    no_time.context.time = None;
    assert!(!decide(&snapshot, &no_time).is_allowed());
}

#[test]
fn a_grant_bound_by_fingerprint_matches_the_certificate_in_any_spelling() {
    let fingerprint = "AB".repeat(32);
    let mut bound = grant("ta-2", "olga", "app:release", "app:payments");
    bound.cert = Some(format!("sha256:{fingerprint}"));
    bound.networks.clear();
    let snapshot = with_grants(vec![bound]);
    let mut asked = ask(
        "olga",
        "app:release",
        ("app", "payments"),
        "2026-12-08T11:00:00Z",
    );
    asked.context.cert = Some(portcullis_core::ClientCert {
        fingerprint: Some(fingerprint.to_lowercase()),
        ..Default::default()
    });
    asked.context.ip = None;
    assert!(decide(&snapshot, &asked).is_allowed());
    asked.context.cert.as_mut().unwrap().fingerprint = Some("cd".repeat(32));
    assert!(!decide(&snapshot, &asked).is_allowed());
}

#[test]
fn forbids_strategies_and_suspension_still_deny() {
    let snapshot = with_grants(vec![
        grant("ta-1", "olga", "app:release", "app:frozen"),
        grant("ta-2", "olga", "app:release", "app:payments"),
        grant("ta-3", "olga", "app:deploy", "app:payments"),
    ]);
    let time = "2026-12-08T11:00:00Z";
    let frozen = decide(
        &snapshot,
        &ask("olga", "app:release", ("app", "frozen"), time),
    );
    assert_eq!(frozen.cause, Cause::Forbidden);
    assert_eq!(
        frozen.forbids,
        vec!["no-friday-payments".into()] as Vec<std::sync::Arc<str>>
    );

    let mut risky = ask("olga", "app:release", ("app", "payments"), time);
    risky.env.supply_chain.high_risk = true;
    let decision = decide(&snapshot, &risky);
    assert_eq!(decision.cause, Cause::Forbidden);
    assert!(decision.forbids.iter().any(|f| &**f == SUPPLY_CHAIN_FORBID));

    // The action's strategy wants the office network; the grant's network is elsewhere.
    let deploy = decide(
        &snapshot,
        &ask("olga", "app:deploy", ("app", "payments"), time),
    );
    assert_eq!(deploy.cause, Cause::StrategyFailed);

    let (suspended, _) = bundle(POLICY).with_runtime(&RuntimeData {
        revision: 4,
        suspended: true,
        grants: vec![grant("ta-2", "olga", "app:release", "app:payments")],
        ..RuntimeData::default()
    });
    let decision = decide(
        &suspended,
        &ask("olga", "app:release", ("app", "payments"), time),
    );
    assert_eq!(decision.cause, Cause::TenantSuspended);
}

#[test]
fn a_grant_adds_to_what_the_role_already_allows() {
    let snapshot = with_grants(vec![grant("ta-1", "olga", "app:release", "app:payments")]);
    let time = "2026-12-08T11:00:00Z";
    let status = decide(
        &snapshot,
        &ask("olga", "app:status", ("app", "payments"), time),
    );
    assert!(status.is_allowed());
    assert!(status.reasons.iter().all(|r| r.kind == ReasonKind::Role));
}

#[test]
fn unbound_or_malformed_grants_are_ignored_with_a_note() {
    let mut unbound = grant("ta-1", "olga", "app:release", "app:payments");
    unbound.cert = None;
    unbound.networks.clear();
    let mut bad_network = grant("ta-2", "olga", "app:release", "app:payments");
    bad_network.networks = vec!["300.0.0.0/8".into()];
    let mut bad_resource = grant("ta-3", "olga", "app:release", "payments");
    bad_resource.cert = Some("laptop-7".into());
    let (snapshot, notes) = bundle(POLICY).with_runtime(&RuntimeData {
        revision: 3,
        grants: vec![unbound, bad_network, bad_resource],
        ..RuntimeData::default()
    });
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(
        notes[0].contains("ta-1") && notes[0].contains("neither"),
        "{notes:?}"
    );
    let decision = decide(
        &snapshot,
        &ask(
            "olga",
            "app:release",
            ("app", "payments"),
            "2026-12-08T11:00:00Z",
        ),
    );
    assert!(!decision.is_allowed());
}

#[test]
fn approver_roles_may_approve_and_reject_and_nobody_else() {
    let snapshot = bundle(POLICY);
    let settings = snapshot.temporary_access().unwrap();
    assert_eq!(settings.approvals_required, 2);
    assert_eq!(settings.max_window_secs, 4 * 3600);
    assert_eq!(
        settings.approvers,
        vec!["security-officer".into()] as Vec<std::sync::Arc<str>>
    );
    for action in [APPROVE_ACTION, REJECT_ACTION] {
        let on = ("access_request", "ta-1");
        assert!(decide(&snapshot, &ask("sofia", action, on, START)).is_allowed());
        assert!(
            decide(&snapshot, &ask("leo", action, on, START)).is_allowed(),
            "a role inheriting the approver role approves"
        );
        assert!(!decide(&snapshot, &ask("olga", action, on, START)).is_allowed());
    }
}

fn load(section: &str) -> Result<Snapshot, String> {
    let files = vec![
        SourceFile {
            path: "acme/tenant.yaml".into(),
            text: "tenant: acme\ntimezone: UTC\n".into(),
        },
        SourceFile {
            path: "acme/policy.yaml".into(),
            text: format!("roles:\n  officer: {{}}\n{section}"),
        },
    ];
    compile_files("acme".as_ref(), &files, &LoadOptions::default()).map_err(|e| e.to_string())
}

#[test]
fn a_bad_section_is_a_load_error_at_its_place() {
    let cases = [
        (
            "temporary_access:\n  approvers: [auditor]\n  max_window: 4h\n",
            "acme/policy.yaml:4:15",
            "auditor",
        ),
        (
            "temporary_access:\n  approvers: [officer]\n  approvals_required: 3\n  max_window: 4h\n",
            "acme/policy.yaml:5:23",
            "1 or 2",
        ),
        (
            "temporary_access:\n  approvers: [officer]\n  max_window: 4d\n",
            "acme/policy.yaml:5:15",
            "not a duration",
        ),
        (
            "temporary_access:\n  approvers: [officer]\n  max_window: 800h\n",
            "acme/policy.yaml:5:15",
            "out of range",
        ),
        (
            "temporary_access:\n  approvers: []\n  max_window: 1h\n",
            "acme/policy.yaml:4:14",
            "at least one role",
        ),
        (
            "temporary_access:\n  approvers: [officer]\n",
            "acme/policy.yaml:4:3",
            "max_window",
        ),
        (
            "temporary_access:\n  approvers: [officer]\n  max_window: 1h\n  approver: [x]\n",
            "acme/policy.yaml:6:3",
            "did you mean",
        ),
    ];
    for (section, place, words) in cases {
        let error = load(section)
            .err()
            .unwrap_or_else(|| panic!("{section} loaded"));
        assert!(error.contains(place), "{section}: {error}");
        assert!(error.contains(words), "{section}: {error}");
    }
    assert!(load("temporary_access:\n  approvers: [officer]\n  max_window: 90m\n").is_ok());
    let none = load("").unwrap();
    assert!(none.temporary_access().is_none());
}

proptest! {
    /// Whatever the grants, a grant only ever adds allows inside its window: outside every
    /// window a decision is the one the bundle alone gives.
    #[test]
    fn grants_change_nothing_outside_their_windows(
        offsets in proptest::collection::vec(-7200i64..7200, 1..6),
        probe in -10_000i64..10_000,
        principal in prop::sample::select(vec!["olga", "sofia", "leo", "nobody"]),
        action in prop::sample::select(vec!["app:release", "app:status", "app:deploy"]),
    ) {
        let start: Timestamp = START.parse().unwrap();
        let grants: Vec<RuntimeGrant> = offsets
            .iter()
            .enumerate()
            .map(|(n, offset)| {
                let mut g = grant(&format!("ta-{n}"), principal, action, "app:payments");
                g.not_before = start.checked_add(jiff::SignedDuration::from_secs(*offset)).unwrap();
                g.not_after = g.not_before.checked_add(jiff::SignedDuration::from_secs(600)).unwrap();
                g
            })
            .collect();
        let at = start.checked_add(jiff::SignedDuration::from_secs(probe)).unwrap();
        let inside = grants.iter().any(|g| g.not_before <= at && at < g.not_after);
        let snapshot = with_grants(grants);
        let asked = ask(principal, action, ("app", "payments"), &at.to_string());
        let with = decide(&snapshot, &asked);
        let without = decide(&bundle(POLICY), &asked);
        if !inside {
            prop_assert_eq!(with.decision, without.decision);
        }
        // Grants are consulted when nothing else granted; olga's role grants app:status.
        let role_grants = principal == "olga" && action == "app:status";
        let named = with.reasons.iter().any(|r| r.kind == ReasonKind::Grant);
        prop_assert_eq!(named, inside && !role_grants);
    }
}
