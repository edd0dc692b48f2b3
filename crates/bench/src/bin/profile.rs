//! Runs one engine over the query list for a while, for a profiler to watch:
//! `profile ENGINE WORKLOAD [PASSES]`, e.g. `perf record -g target/release/profile portcullis w2 50`.

use std::hint::black_box;

use anyhow::{Result, bail};
use portcullis_bench::engines::{Engine, casbin, cedar, portcullis, regorus};
use portcullis_bench::{Params, RawQuery, Workload, World};

fn run<E: Engine>(mut engine: E, queries: &[RawQuery], passes: usize) -> Result<()> {
    let mut allowed = 0usize;
    for _ in 0..passes {
        for query in queries {
            allowed += usize::from(black_box(engine.decide(black_box(query))?));
        }
    }
    eprintln!("{}: {allowed} allowed", engine.name());
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(engine), Some(workload)) = (args.get(1), args.get(2)) else {
        bail!("usage: profile portcullis|cedar|cedar-groups|regorus|casbin w1|w2 [passes]");
    };
    let workload = match workload.as_str() {
        "w1" => Workload::W1,
        "w2" => Workload::W2,
        other => bail!("unknown workload {other}"),
    };
    let passes = args.get(3).map_or(Ok(10), |p| p.parse())?;
    let world = World::generate(Params::default())?;
    let queries = &world.queries;
    match engine.as_str() {
        "portcullis" => run(
            portcullis::Portcullis::new(&world, workload)?,
            queries,
            passes,
        ),
        "cedar" => run(
            cedar::Cedar::new(&world, workload, cedar::Encoding::ActionList)?,
            queries,
            passes,
        ),
        "cedar-groups" => run(
            cedar::Cedar::new(&world, workload, cedar::Encoding::ActionGroups)?,
            queries,
            passes,
        ),
        "regorus" => run(regorus::Regorus::new(&world, workload)?, queries, passes),
        "casbin" => run(casbin::Casbin::new(&world, workload)?, queries, passes),
        other => bail!("unknown engine {other}"),
    }
}
