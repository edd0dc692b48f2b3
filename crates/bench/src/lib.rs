//! Benchmarks of the Portcullis engine against peer engines on one generated world.
//!
//! [`world`] generates the world (roles in inheritance chains, principals, a trading calendar,
//! raw queries) from a fixed seed; [`reference`] is the naive truth every engine must agree
//! with; [`engines`] holds one adapter per engine (Portcullis, Cedar, regorus on its RVM,
//! casbin), each turning a raw query into its own request inside the timed call. The criterion
//! benches (`benches/engines.rs`) and the `report` binary use them; `bench/README.md` at the
//! repository root explains how to run them and records results.
#![forbid(unsafe_code)]

pub mod engines;
pub mod measure;
pub mod reference;
pub mod rng;
pub mod world;

pub use engines::{Engine, Engines};
pub use world::{Params, RawQuery, Workload, World};
