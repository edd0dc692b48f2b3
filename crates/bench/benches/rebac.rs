//! Criterion benches of the relationship graph on the generated 1,000,000-tuple world.
//!
//! `cargo bench -p portcullis-bench --bench rebac`
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_rebac::generate::{Params, world};
use portcullis_rebac::{CheckRequest, Graph, Model};
use serde_json::Map;

fn benches(c: &mut Criterion) {
    let world = world(&Params::default());
    let model = Arc::new(Model::from_dsl(&world.model).unwrap());
    let graph = Graph::build(Arc::clone(&model), world.tuples.clone()).unwrap();
    let requests: Vec<CheckRequest> = world
        .checks
        .iter()
        .map(|(user, object)| CheckRequest::new(user.clone(), "viewer", object.clone()))
        .collect();
    let mut i = 0;
    c.bench_function("rebac/check", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            black_box(graph.check(&requests[i]).unwrap())
        })
    });
    let mut group = c.benchmark_group("rebac/slow");
    group.sample_size(10);
    group.bench_function("list_objects_10k", |b| {
        b.iter(|| {
            black_box(
                graph
                    .list_objects(&world.list_user, "viewer", "document", &Map::new(), &[])
                    .unwrap(),
            )
        })
    });
    group.bench_function("build_1m", |b| {
        b.iter(|| black_box(Graph::build(Arc::clone(&model), world.tuples.clone()).unwrap()))
    });
    group.finish();
}

criterion_group!(rebac, benches);
criterion_main!(rebac);
