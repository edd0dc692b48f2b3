//! The server flows one way: a module imports only from its own layer and the layers below it,
//! in the order the crate documentation (lib.rs) gives. This test reads the crate's source
//! files and fails on any `crate::` path that reaches a higher layer, on any path through the
//! crate root instead of the module that owns the item, and on any module the table below does
//! not place. The folders whose files sit on different layers (`audit`, `snapshots`, `edges`)
//! are placed file by file (`snapshots::reload`); the others as a whole.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::path::{Path, PathBuf};

#[path = "../../policy/tests/support/layering.rs"]
mod layering;

use layering::{Layers, find_cycle};

/// The layers, lowest first, each with its modules.
const TABLE: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "files",
            "metrics",
            "evaluation",
            "demo",
            "supply",
            "audit::store",
            "gateway::settings",
            "webhook",
        ],
    ),
    ("audit writer", &["audit"]),
    ("configuration", &["config"]),
    ("identity and TLS", &["identity", "tls"]),
    (
        "errors and request reading",
        &["error", "json", "request_id"],
    ),
    ("connections", &["connection"]),
    (
        "compiled snapshots",
        &["snapshots", "snapshots::loaded", "snapshots::crypto"],
    ),
    ("shared state", &["state"]),
    (
        "snapshot maintenance",
        &[
            "snapshots::relations",
            "snapshots::reload",
            "snapshots::supply",
            "snapshots::tuples",
        ],
    ),
    ("the decision path", &["decision"]),
    ("admin API", &["admin"]),
    (
        "edges",
        &[
            "edges",
            "edges::access",
            "edges::api",
            "edges::authzen",
            "edges::forward",
            "edges::relations",
            "edges::search",
            "edges::grpc",
            "edges::operations",
            "edges::openfga",
        ],
    ),
    ("gateway", &["gateway", "gateway::stages"]),
    ("service", &["serve"]),
];

/// The folders whose files sit on different layers.
const LAYERS: Layers = Layers {
    layers: TABLE,
    split: &["audit", "snapshots", "edges", "gateway"],
};

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn violations(module: &str, source: &str) -> Vec<String> {
    LAYERS.violations(module, source)
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let root = source_dir();
    let (problems, checked) = LAYERS.problems(&root);
    assert!(
        checked > 20,
        "only {checked} source files found below {root:?}"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn no_two_modules_import_each_other_even_within_a_layer() {
    let graph = LAYERS.import_graph(&source_dir());
    assert!(graph.len() > 15, "only {} modules found", graph.len());
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules import each other in a circle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut graph =
            std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
        for (from, to) in edges {
            graph
                .entry((*from).to_owned())
                .or_default()
                .insert((*to).to_owned());
        }
        graph
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "b")])),
        Some(vec!["b".to_owned(), "c".to_owned(), "b".to_owned()])
    );
}

#[test]
fn every_module_in_the_table_exists() {
    let missing = LAYERS.missing_modules(&source_dir());
    assert!(
        missing.is_empty(),
        "the layers name modules with no source file: {missing:?}"
    );
}

#[test]
fn the_scanner_reads_every_form_of_crate_path() {
    let source = "\
//! Docs may name crate::serve without importing it.
use crate::state::AppState;
use crate::{decision::DecisionPath, json};
use crate::{
    snapshots::reload::Reloader,
    audit::{Auditor, store::StoreTrail},
};
use portcullis_crate::Other;
fn f() {
    // crate::admin::router in a comment is not an import.
    crate::edges::forward::nginx();
}
";
    assert_eq!(
        LAYERS.crate_imports(source),
        [
            "state",
            "decision",
            "json",
            "snapshots::reload",
            "audit",
            "edges::forward"
        ]
    );
    assert_eq!(
        violations("decision", "use crate::edges::api::Check;"),
        ["`decision` (the decision path) imports `crate::edges::api` from a higher layer (edges)"]
    );
    assert_eq!(
        violations("state", "use crate::app;")[0],
        "`state` imports `crate::app`, which is no module of the table; import it from the \
         module that owns it"
    );
    assert!(violations("edges::api", "use crate::state::AppState;").is_empty());
    assert_eq!(
        LAYERS.module_of(Path::new("edges/grpc/envoy.rs")),
        "edges::grpc"
    );
    assert_eq!(LAYERS.module_of(Path::new("snapshots/mod.rs")), "snapshots");
    assert_eq!(LAYERS.module_of(Path::new("admin/tenants.rs")), "admin");
}
