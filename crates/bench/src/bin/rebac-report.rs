//! Prints the relationship-graph figures on the generated 1,000,000-tuple world: build time,
//! index heap bytes, check latency percentiles and list-objects time.
//!
//! `cargo run --release -p portcullis-bench --bin rebac-report`

use std::alloc::System;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use portcullis_rebac::generate::{Params, world};
use portcullis_rebac::{CheckRequest, Graph, Model};
use serde_json::Map;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn percentile(sorted: &[u128], p: f64) -> u128 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or(0)
}

fn main() -> Result<()> {
    let world = world(&Params::default());
    let model = Arc::new(Model::from_dsl(&world.model).map_err(|e| anyhow::anyhow!("{e}"))?);
    println!("tuples {}", world.tuples.len());
    let region = Region::new(GLOBAL);
    let started = Instant::now();
    let graph = Graph::build(Arc::clone(&model), world.tuples.iter().cloned())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let build = started.elapsed();
    let change = region.change();
    let held = change.bytes_allocated as i128 - change.bytes_deallocated as i128;
    println!("build-seconds {:.3}", build.as_secs_f64());
    println!(
        "index-heap-bytes {held} ({:.1} MiB)",
        held as f64 / 1048576.0
    );
    let (objects, forward, reverse) = graph.stats();
    println!("objects {objects} forward-keys {forward} reverse-keys {reverse}");
    let requests: Vec<CheckRequest> = world
        .checks
        .iter()
        .map(|(user, object)| CheckRequest::new(user.clone(), "viewer", object.clone()))
        .collect();
    // Warm up, then time each check.
    for request in requests.iter().take(1000) {
        std::hint::black_box(graph.check(request).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let mut times = Vec::with_capacity(requests.len());
    let mut allowed = 0usize;
    for request in &requests {
        let started = Instant::now();
        let result = graph.check(request).map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(started.elapsed().as_nanos());
        allowed += usize::from(result.allowed);
    }
    times.sort_unstable();
    println!(
        "check n={} allowed={} p50={:.2}us p90={:.2}us p99={:.2}us max={:.2}us",
        times.len(),
        allowed,
        percentile(&times, 0.50) as f64 / 1000.0,
        percentile(&times, 0.90) as f64 / 1000.0,
        percentile(&times, 0.99) as f64 / 1000.0,
        times.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    let mut best = f64::MAX;
    let mut count = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let objects = graph
            .list_objects(&world.list_user, "viewer", "document", &Map::new(), &[])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        count = objects.len();
    }
    println!("list-objects documents={count} best-of-5={best:.2}ms");
    Ok(())
}
