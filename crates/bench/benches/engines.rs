//! Criterion benches: every engine on W1 and W2 (one decision per iteration, cycling through
//! the query list; each engine's request is built from the raw query inside the timed call),
//! and W1 bundle load + compile.
//!
//! Before timing, every engine answers every query once and is compared with the reference.
//! Portcullis must agree exactly; a peer's disagreements are printed, not hidden.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_bench::engines::{Engine, Engines, disagreements};
use portcullis_bench::reference::expected_all;
use portcullis_bench::world::bundle_files;
use portcullis_bench::{Params, RawQuery, Workload, World};
use portcullis_policy::{LoadOptions, compile_files};

#[allow(
    clippy::expect_used,
    reason = "bench setup: a world that cannot be built is a bug"
)]
fn world() -> World {
    World::generate(Params::default()).expect("the world generates")
}

#[allow(
    clippy::expect_used,
    reason = "bench setup: the verification pass must run"
)]
fn bench_engine<E: Engine>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    engine: &mut E,
    queries: &[RawQuery],
    expected: &[bool],
    workload: Workload,
) {
    let wrong = disagreements(engine, queries, expected).expect("every query decides");
    eprintln!(
        "{}/{}: {wrong} of {} queries disagree with the reference",
        workload.name(),
        engine.name(),
        queries.len()
    );
    if engine.name() == "portcullis" {
        assert_eq!(wrong, 0, "Portcullis must agree with the reference");
    }
    let name = engine.name();
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            let query = &queries[next];
            next = (next + 1) % queries.len();
            black_box(engine.decide(black_box(query)).is_ok_and(|allowed| allowed))
        });
    });
}

#[allow(clippy::expect_used, reason = "bench setup: every adapter must build")]
fn workload(c: &mut Criterion, world: &World, workload: Workload) {
    let expected = expected_all(world, workload);
    let mut engines = Engines::build(world, workload).expect("every engine builds");
    let mut group = c.benchmark_group(workload.name());
    let queries = &world.queries;
    bench_engine(
        &mut group,
        &mut engines.portcullis,
        queries,
        &expected,
        workload,
    );
    bench_engine(&mut group, &mut engines.cedar, queries, &expected, workload);
    bench_engine(
        &mut group,
        &mut engines.cedar_groups,
        queries,
        &expected,
        workload,
    );
    bench_engine(
        &mut group,
        &mut engines.regorus,
        queries,
        &expected,
        workload,
    );
    bench_engine(
        &mut group,
        &mut engines.casbin,
        queries,
        &expected,
        workload,
    );
    group.finish();
}

fn engines(c: &mut Criterion) {
    let world = world();
    workload(c, &world, Workload::W1);
    workload(c, &world, Workload::W2);
}

fn load(c: &mut Criterion) {
    let world = world();
    let files = bundle_files(&world, Workload::W1);
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.bench_function("w1_compile", |b| {
        b.iter(|| {
            black_box(compile_files(
                "bench".as_ref(),
                black_box(&files),
                &LoadOptions::default(),
            ))
            .is_ok()
        });
    });
    group.finish();
}

criterion_group!(benches, engines, load);
criterion_main!(benches);
