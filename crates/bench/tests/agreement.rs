//! Every engine agrees with the reference on a small world of the benchmark's shape.

use anyhow::{Result, ensure};
use portcullis_bench::engines::{Engine, Engines, disagreements};
use portcullis_bench::reference::expected_all;
use portcullis_bench::{Params, RawQuery, Workload, World};

fn agrees<E: Engine>(engine: &mut E, queries: &[RawQuery], expected: &[bool]) -> Result<()> {
    let count = disagreements(engine, queries, expected)?;
    ensure!(count == 0, "{} disagrees {count} times", engine.name());
    Ok(())
}

fn check(workload: Workload) -> Result<()> {
    let world = World::generate(Params::small())?;
    let expected = expected_all(&world, workload);
    let allowed = expected.iter().filter(|e| **e).count();
    ensure!(
        allowed > expected.len() / 5 && allowed < expected.len() * 4 / 5,
        "{allowed} of {} allowed: outcomes are not mixed",
        expected.len()
    );
    let mut engines = Engines::build(&world, workload)?;
    let queries = &world.queries;
    agrees(&mut engines.portcullis, queries, &expected)?;
    agrees(&mut engines.cedar, queries, &expected)?;
    agrees(&mut engines.cedar_groups, queries, &expected)?;
    agrees(&mut engines.regorus, queries, &expected)?;
    agrees(&mut engines.casbin, queries, &expected)?;
    Ok(())
}

#[test]
fn w1_engines_agree_with_the_reference() -> Result<()> {
    check(Workload::W1)
}

#[test]
fn w2_engines_agree_with_the_reference() -> Result<()> {
    check(Workload::W2)
}

#[test]
fn w1_is_half_allowed() -> Result<()> {
    let world = World::generate(Params::small())?;
    let allowed = expected_all(&world, Workload::W1)
        .iter()
        .filter(|e| **e)
        .count();
    ensure!(allowed == world.queries.len() / 2, "{allowed} allowed");
    Ok(())
}

#[test]
fn generation_is_deterministic() -> Result<()> {
    let a = World::generate(Params::small())?;
    let b = World::generate(Params::small())?;
    ensure!(a.queries == b.queries && a.principals == b.principals);
    Ok(())
}

#[test]
fn the_bundle_carries_the_strategy_only_in_w2() -> Result<()> {
    let world = World::generate(Params::small())?;
    let w1 = portcullis_bench::world::bundle_files(&world, Workload::W1);
    let w2 = portcullis_bench::world::bundle_files(&world, Workload::W2);
    ensure!(w1.len() == 3 && w2.len() == 4);
    let strategy = w2.iter().find(|f| f.path.ends_with("strategy.yaml"));
    ensure!(strategy.is_some_and(|f| f.text.contains("[[P1, P2, P3], [P1, P5]]")));
    Ok(())
}
