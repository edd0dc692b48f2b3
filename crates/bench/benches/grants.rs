//! Criterion benches of decisions in a tenant with 10,000 active temporary grants against the
//! same tenant with none (SPEC.md C9; issue target: at most 100 ns more at p50).
//!
//! `cargo bench -p portcullis-bench --bench grants`
//!
//! The tenant: 2,000 principals, each an `operator` (who may check statuses) or nothing. The
//! grants: 10 each for 1,000 principals (`g0`..`g999`), each on its own resource, in a window
//! around the request's time, bound to a network. Three questions, each asked of both
//! snapshots in the same run: one a role allows (grants are not consulted), one nothing allows
//! (the asking principal has no grants: one look at an empty list), and one for a principal
//! with ten grants none of which matches (the worst case of a deny: ten comparisons). A fourth
//! question is allowed by a grant, on the snapshot with grants only.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::{Context, Principal, Request, Resource, TenantId};
use portcullis_policy::{
    LoadOptions, RuntimeData, RuntimeGrant, Snapshot, SourceFile, compile_files, decide,
};

const PRINCIPALS: usize = 2_000;
const GRANTED: usize = 1_000;
const PER_PRINCIPAL: usize = 10;
const NOW: &str = "2026-12-08T10:30:00Z";

fn bundle() -> Snapshot {
    let mut policy = String::from(
        "roles:\n  operator: { permissions: [\"app:status\"] }\n  officer: {}\ntemporary_access:\n  approvers: [officer]\n  max_window: 4h\nprincipals:\n",
    );
    for p in 0..PRINCIPALS {
        let roles = if p % 2 == 0 { "[operator]" } else { "[]" };
        let _ = writeln!(policy, "  u{p}: {{ roles: {roles} }}");
    }
    let files = vec![
        SourceFile {
            path: "grants/tenant.yaml".into(),
            text: "tenant: grants\n".into(),
        },
        SourceFile {
            path: "grants/policy.yaml".into(),
            text: policy,
        },
    ];
    compile_files("grants".as_ref(), &files, &LoadOptions::default()).unwrap()
}

fn grants() -> Vec<RuntimeGrant> {
    let mut grants = Vec::with_capacity(GRANTED * PER_PRINCIPAL);
    for p in 0..GRANTED {
        for g in 0..PER_PRINCIPAL {
            grants.push(RuntimeGrant {
                id: format!("ta-{p}-{g}"),
                principal: format!("g{p}"),
                action: "app:release".into(),
                resource: format!("app:a{g}"),
                not_before: "2026-12-08T10:00:00Z".parse().unwrap(),
                not_after: "2026-12-08T12:00:00Z".parse().unwrap(),
                cert: None,
                networks: vec!["10.0.0.0/8".into()],
                approvers: vec!["officer-1".into()],
            });
        }
    }
    grants
}

fn request(principal: &str, action: &str, resource: &str) -> Request {
    Request {
        tenant: TenantId::new("grants").unwrap(),
        principal: Principal::user(principal),
        action: action.into(),
        action_properties: Default::default(),
        resource: Resource::new("app", resource),
        context: Context {
            ip: Some("10.1.2.3".parse().unwrap()),
            time: Some(NOW.parse().unwrap()),
            ..Context::default()
        },
        env: Default::default(),
        explain: false,
        trace_id: None,
    }
}

fn benches(c: &mut Criterion) {
    let base = bundle();
    let (none, notes) = base.with_runtime(&RuntimeData {
        revision: 1,
        ..RuntimeData::default()
    });
    assert!(notes.is_empty());
    let (many, notes) = base.with_runtime(&RuntimeData {
        revision: 2,
        grants: grants(),
        ..RuntimeData::default()
    });
    assert!(notes.is_empty());
    let questions = [
        ("role_allows", request("u2", "app:status", "a1"), true),
        ("nothing_allows", request("u3", "app:release", "a1"), false),
        (
            "ten_grants_none_match",
            request("g7", "app:release", "zz"),
            false,
        ),
    ];
    let mut group = c.benchmark_group("grants");
    for (name, asked, allowed) in &questions {
        assert_eq!(decide(&none, asked).is_allowed(), *allowed, "{name}");
        assert_eq!(decide(&many, asked).is_allowed(), *allowed, "{name}");
        // Alternating: the two snapshots of one question one after the other.
        group.bench_function(format!("{name}/none"), |b| {
            b.iter(|| black_box(decide(&none, black_box(asked))))
        });
        group.bench_function(format!("{name}/10k_grants"), |b| {
            b.iter(|| black_box(decide(&many, black_box(asked))))
        });
    }
    let by_grant = request("g7", "app:release", "a3");
    assert!(decide(&many, &by_grant).is_allowed());
    group.bench_function("grant_allows/10k_grants", |b| {
        b.iter(|| black_box(decide(&many, black_box(&by_grant))))
    });
    group.finish();
}

criterion_group!(grant_benches, benches);
criterion_main!(grant_benches);
