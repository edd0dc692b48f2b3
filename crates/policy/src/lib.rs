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
//!     trace_id: None,
//! };
//! assert!(decide(&snapshot, &request).is_allowed());
//! ```
#![forbid(unsafe_code)]

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
pub mod testing;
mod values;
mod variables;
pub mod yaml;

pub use compile::{Compiled, Snapshot};
pub use diagnostic::{Code, Diagnostic, LoadError, Location};
pub use engine::{PolicySet, SUPPLY_CHAIN_FORBID, decide, decide_with_strategy};
pub use load::{
    LoadOptions, compile_files, is_bundle_dir, load_bundle, load_bundles, read_bundle_dir,
};
pub use model::SourceFile;
pub use portcullis_rebac as rebac;
pub use relations::Relations;
pub use routes::RouteMatch;
pub use runtime::{RuntimeAssignment, RuntimeData, RuntimePrincipal};
pub use testing::{TestOutcome, TestRequest, all_passed, run_tests};
pub use values::{parse_action_pattern, parse_ip_pattern, parse_window};
