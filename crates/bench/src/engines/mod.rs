//! One adapter per engine. Each adapter is built from the [`World`] outside any timed region;
//! its [`Engine::decide`] converts one [`RawQuery`] into the engine's own request and decides,
//! and that whole call is what the benches time.

use anyhow::Result;

use crate::world::{RawQuery, Workload, World};

pub mod casbin;
pub mod cedar;
pub mod portcullis;
pub mod regorus;

/// An engine under measurement.
pub trait Engine {
    /// Short name used in bench ids and tables.
    fn name(&self) -> &'static str;

    /// Builds this engine's request from `query` and decides it: `true` for allow.
    fn decide(&mut self, query: &RawQuery) -> Result<bool>;
}

/// Every engine's adapter for one workload.
#[derive(Debug)]
pub struct Engines {
    /// Portcullis.
    pub portcullis: portcullis::Portcullis,
    /// Cedar, permissions as action lists.
    pub cedar: cedar::Cedar,
    /// Cedar, permissions as action groups.
    pub cedar_groups: cedar::Cedar,
    /// regorus (RVM).
    pub regorus: regorus::Regorus,
    /// casbin.
    pub casbin: casbin::Casbin,
}

impl Engines {
    /// Builds all four adapters.
    pub fn build(world: &World, workload: Workload) -> Result<Engines> {
        Ok(Engines {
            portcullis: portcullis::Portcullis::new(world, workload)?,
            cedar: cedar::Cedar::new(world, workload, cedar::Encoding::ActionList)?,
            cedar_groups: cedar::Cedar::new(world, workload, cedar::Encoding::ActionGroups)?,
            regorus: regorus::Regorus::new(world, workload)?,
            casbin: casbin::Casbin::new(world, workload)?,
        })
    }
}

/// Runs `engine` over every query and counts the answers that differ from `expected`.
pub fn disagreements<E: Engine>(
    engine: &mut E,
    queries: &[RawQuery],
    expected: &[bool],
) -> Result<usize> {
    let mut count = 0;
    for (query, want) in queries.iter().zip(expected) {
        if engine.decide(query)? != *want {
            count += 1;
        }
    }
    Ok(count)
}
