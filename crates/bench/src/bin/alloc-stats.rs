//! Counts heap allocations: bytes held by the compiled W1 and W2 snapshots, and allocations per
//! decision of every engine.
//!
//! A separate binary because the counting allocator slows every allocation down; the `report`
//! binary runs it (when built) for the snapshot figure and keeps its own timings clean.
//! `--snapshot-only` skips the per-decision counts.

use std::alloc::System;

use anyhow::Result;
use portcullis_bench::engines::{Engine, Engines};
use portcullis_bench::{Params, RawQuery, Workload, World};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Decisions sampled per engine for the allocation counts.
const SAMPLE: usize = 10_000;

fn per_decision<E: Engine>(engine: &mut E, queries: &[RawQuery]) -> Result<(f64, f64)> {
    let region = Region::new(GLOBAL);
    for query in queries {
        std::hint::black_box(engine.decide(query)?);
    }
    let change = region.change();
    let count = queries.len().max(1) as f64;
    Ok((
        change.allocations as f64 / count,
        change.bytes_allocated as f64 / count,
    ))
}

fn main() -> Result<()> {
    let snapshot_only = std::env::args().any(|arg| arg == "--snapshot-only");
    let world = World::generate(Params::default())?;
    for workload in [Workload::W1, Workload::W2] {
        let files = portcullis_bench::world::bundle_files(&world, workload);
        let region = Region::new(GLOBAL);
        let snapshot = portcullis_policy::compile_files(
            "bench".as_ref(),
            &files,
            &portcullis_policy::LoadOptions::default(),
        )
        .map_err(|error| anyhow::anyhow!("bundle: {error:?}"))?;
        let change = region.change();
        let held = change.bytes_allocated as i128 - change.bytes_deallocated as i128;
        println!("snapshot-heap-bytes {} {held}", workload.name());
        println!(
            "compile-allocations {} {} ({} bytes allocated in total)",
            workload.name(),
            change.allocations,
            change.bytes_allocated
        );
        drop(snapshot);
    }
    if snapshot_only {
        return Ok(());
    }
    let sample = &world.queries[..SAMPLE.min(world.queries.len())];
    println!("\n| workload | engine | allocations / decision | bytes allocated / decision |");
    println!("|---|---|---:|---:|");
    for workload in [Workload::W1, Workload::W2] {
        let mut engines = Engines::build(&world, workload)?;
        let row = |name: &str, (count, bytes): (f64, f64)| {
            println!(
                "| {} | {name} | {count:.1} | {bytes:.0} |",
                workload.name().to_uppercase()
            );
        };
        row("portcullis", per_decision(&mut engines.portcullis, sample)?);
        row("cedar", per_decision(&mut engines.cedar, sample)?);
        row(
            "cedar-groups",
            per_decision(&mut engines.cedar_groups, sample)?,
        );
        row("regorus", per_decision(&mut engines.regorus, sample)?);
        row("casbin", per_decision(&mut engines.casbin, sample)?);
        // Request construction alone, for Portcullis.
        let region = Region::new(GLOBAL);
        for query in sample {
            std::hint::black_box(engines.portcullis.request(query));
        }
        let change = region.change();
        println!(
            "| {} | portcullis request only | {:.1} | {:.0} |",
            workload.name().to_uppercase(),
            change.allocations as f64 / sample.len() as f64,
            change.bytes_allocated as f64 / sample.len() as f64
        );
    }
    Ok(())
}
