//! Criterion benches of search (AuthZEN subject, resource and action search) on a tenant of
//! 10,000 principals and 100,000 declared resources (the most a bundle may declare), against
//! the floor of the same number of plain decisions.
//!
//! `cargo bench -p portcullis-bench --bench search`
//!
//! The tenant: principals `u0`..`u9999` in ten teams, each a `member` (who reads the documents
//! of their team) or, one in ten, an `editor` (who also writes them); documents `doc:d0`..
//! `doc:d99999`, each of one team. A member may read 10,000 documents; a document is readable
//! by 1,000 principals. The conditions compare attributes, so every candidate costs a CEL
//! evaluation, as in a policy that scopes by attribute.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::{Principal, Request, Resource, TenantId};
use portcullis_policy::{LoadOptions, SearchKind, Snapshot, SourceFile, compile_files, decide};

const PRINCIPALS: usize = 10_000;
const RESOURCES: usize = 100_000;
const TEAMS: usize = 10;

fn tenant() -> Snapshot {
    let mut policy = String::from(
        "roles:\n  member:\n    permissions:\n      - { permission: \"doc:read\", when: 'resource.attributes.team == principal.attributes.team' }\n  editor:\n    inherits: [member]\n    permissions:\n      - { permission: \"doc:write\", when: 'resource.attributes.team == principal.attributes.team' }\nprincipals:\n",
    );
    for p in 0..PRINCIPALS {
        let role = if p % 10 == 0 { "editor" } else { "member" };
        let _ = writeln!(
            policy,
            "  u{p}: {{ roles: [{role}], attributes: {{ team: t{} }} }}",
            p % TEAMS
        );
    }
    policy.push_str("resources:\n");
    for r in 0..RESOURCES {
        let _ = writeln!(
            policy,
            "  \"doc:d{r}\": {{ attributes: {{ team: t{} }} }}",
            r % TEAMS
        );
    }
    let files = vec![
        SourceFile {
            path: "search/tenant.yaml".into(),
            text: "tenant: search\n".into(),
        },
        SourceFile {
            path: "search/policy.yaml".into(),
            text: policy,
        },
    ];
    compile_files("search".as_ref(), &files, &LoadOptions::default()).unwrap()
}

fn request(principal: &str, action: &str, resource: &str) -> Request {
    Request {
        tenant: TenantId::new("search").unwrap(),
        principal: Principal::user(principal),
        action: action.into(),
        action_properties: Default::default(),
        resource: Resource::new("doc", resource),
        context: Default::default(),
        env: Default::default(),
        explain: false,
        trace_id: None,
    }
}

fn benches(c: &mut Criterion) {
    let snapshot = tenant();
    let mut group = c.benchmark_group("search");
    group.sample_size(20);
    let subjects = request("", "read", "d42");
    group.bench_function("subject/first_page_50", |b| {
        b.iter(|| {
            black_box(
                snapshot
                    .search(SearchKind::Subject, &subjects, None, 50)
                    .unwrap(),
            )
        })
    });
    let resources = request("u7", "read", "");
    group.bench_function("resource/first_page_50", |b| {
        b.iter(|| {
            black_box(
                snapshot
                    .search(SearchKind::Resource, &resources, None, 50)
                    .unwrap(),
            )
        })
    });
    let actions = request("u10", "", "d0");
    group.bench_function("action/all", |b| {
        b.iter(|| {
            black_box(
                snapshot
                    .search(SearchKind::Action, &actions, None, 50)
                    .unwrap(),
            )
        })
    });
    group.sample_size(10);
    group.bench_function("resource/all_of_one_subject", |b| {
        b.iter(|| {
            let page = snapshot
                .search(SearchKind::Resource, &resources, None, RESOURCES)
                .unwrap();
            assert_eq!(page.results.len(), RESOURCES / TEAMS);
            black_box(page)
        })
    });
    // The floor: the same 100,000 decisions, one by one, without enumerating or paging.
    let ids: Vec<String> = (0..RESOURCES).map(|r| format!("d{r}")).collect();
    group.bench_function("floor/decide_every_resource", |b| {
        b.iter(|| {
            let mut ask = resources.clone();
            let mut allowed = 0usize;
            for id in &ids {
                id.clone_into(&mut ask.resource.id);
                allowed += usize::from(decide(&snapshot, &ask).is_allowed());
            }
            assert_eq!(allowed, RESOURCES / TEAMS);
            black_box(allowed)
        })
    });
    group.finish();
}

criterion_group!(search, benches);
criterion_main!(search);
