//! The Portcullis policy engine (SPEC.md C1).
//!
//! A tenant's policy is a *bundle*: a folder of YAML files (see the README for the format). The
//! engine loads it all-or-nothing ([`load_bundle`], [`load_bundles`], [`compile_files`]),
//! reporting every problem with its file, line and column; compiles it into an immutable
//! [`Snapshot`]; and answers requests with [`decide`], a pure function of the snapshot and the
//! request. [`run_tests`] runs the test cases a bundle carries.
//!
//! ```
//! use portcullis_policy::{compile_files, decide, LoadOptions, SourceFile};
//! use portcullis_core::{Principal, Request, Resource, TenantId};
//!
//! let files = vec![
//!     SourceFile { path: "acme/tenant.yaml".into(), text: "tenant: acme\ntimezone: UTC\n".into() },
//!     SourceFile {
//!         path: "acme/policy.yaml".into(),
//!         text: "roles:\n  reader: { permissions: [\"doc:read\"] }\nprincipals:\n  ann: { roles: [reader] }\n".into(),
//!     },
//! ];
//! let snapshot = compile_files("acme".as_ref(), &files, &LoadOptions::default()).unwrap();
//! let request = Request {
//!     tenant: TenantId::new("acme").unwrap(),
//!     principal: Principal::user("ann"),
//!     action: "doc:read".into(),
//!     resource: Resource::new("doc", "readme"),
//!     context: Default::default(),
//!     env: Default::default(),
//!     explain: false,
//!     action_properties: Default::default(),
//!     trace_id: None,
//! };
//! assert!(decide(&snapshot, &request).is_allowed());
//! ```
//!
//! # Layers
//!
//! The crate flows one way: a module imports only from its own layer and the layers listed
//! before it (`tests/layering.rs` checks this).
//!
//! 1. `yaml`, `bits`: YAML parsed with positions and limits; small bit sets.
//! 2. `diagnostic`: problems pinned to a file, line and column.
//! 3. `model`: the bundle as written: its files, its sections, the requests of its tests.
//! 4. `values`: the text of single values (addresses, windows, dates, weekdays, action,
//!    resource and route patterns, certificate fingerprints) parsed into model types.
//! 5. `decode`: YAML trees to the model, one file per section, with shared node readers.
//! 6. `compile`, `limits`, `relations`, `condition`, `variables`, `access`: the model checked
//!    against its limits and compiled into a [`Snapshot`], with its CEL conditions, the
//!    variables conditions read, its relationship model and tuples, and its temporary-access
//!    settings and grants.
//! 7. `engine`, `factors`, `runtime`, `routes`, `search`: decisions over a snapshot, factor
//!    evaluation, run-time data laid over a snapshot, route matching, and searches (which
//!    subjects, resources or actions a decision would allow).
//! 8. `load`, `testing`: the entry points: reading and compiling bundles, running their tests.
//!
//! What two layers need lives in the lower one: `SourceFile` and `TestRequest` in `model`,
//! the `action` and `tenant` condition variables in `variables`, the order of routes in
//! `compile`.
#![forbid(unsafe_code)]

pub mod access;
mod bits;
mod compile;
pub mod condition;
mod decode;
pub mod diagnostic;
mod engine;
mod factors;
pub mod limits;
mod load;
pub mod model;
mod relations;
mod routes;
mod runtime;
mod search;
pub mod testing;
mod values;
mod variables;
pub mod yaml;

pub use access::{RuntimeGrant, TemporaryAccess};
pub use compile::{Compiled, Snapshot};
pub use decode::parse_duration;
pub use diagnostic::{Code, Diagnostic, LoadError, Location};
pub use engine::{
    PolicySet, SUPPLY_CHAIN_ADVISORY, SUPPLY_CHAIN_FORBID, decide, decide_with_strategy, refuse,
};
pub use load::{
    LoadOptions, compile_files, is_bundle_dir, load_bundle, load_bundles, read_bundle_dir,
};
pub use model::SourceFile;
pub use portcullis_rebac as rebac;
pub use relations::Relations;
pub use routes::RouteMatch;
pub use runtime::{RuntimeAssignment, RuntimeData, RuntimePrincipal};
pub use search::{SearchError, SearchKind, SearchPage};
pub use testing::{TestOutcome, TestRequest, all_passed, run_tests};
pub use values::{parse_action_pattern, parse_ip_pattern, parse_window};
