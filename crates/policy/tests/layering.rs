//! The policy crate flows one way: a module imports only from its own layer and the layers
//! below it, in the order the crate documentation (lib.rs) gives. This test reads the crate's
//! source files and fails on any `crate::` path that reaches a higher layer, on any path that
//! goes through the crate root instead of the module that owns the item, and on any module the
//! table below does not place.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::path::{Path, PathBuf};

#[path = "support/layering.rs"]
mod layering;

use layering::{Layers, find_cycle};

/// The layers, lowest first, each with its modules (a folder module counts as one).
const TABLE: &[(&str, &[&str])] = &[
    ("YAML and bit sets", &["yaml", "bits"]),
    ("diagnostics", &["diagnostic"]),
    ("bundle model", &["model"]),
    ("value parsers", &["values"]),
    ("decoder", &["decode"]),
    (
        "compiler",
        &[
            "compile",
            "limits",
            "relations",
            "condition",
            "variables",
            "access",
        ],
    ),
    (
        "engine",
        &["engine", "factors", "runtime", "routes", "search"],
    ),
    ("entry points", &["load", "testing"]),
];

const LAYERS: Layers = Layers {
    layers: TABLE,
    split: &[],
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
        checked > 10,
        "only {checked} source files found below {root:?}"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = LAYERS.import_graph(&source_dir());
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules import each other in a circle: {}",
            cycle.join(" -> ")
        );
    }
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
//! Docs may name crate::testing without importing it.
use crate::model::At;
use crate::{engine::decide, values};
use crate::{
    compile::{Snapshot, compile},
    yaml::Node,
};
use portcullis_crate::Other;
fn f() {
    // crate::load::SourceFile in a comment is not an import.
    crate::routes::match_route();
}
";
    assert_eq!(
        LAYERS.crate_imports(source),
        ["model", "engine", "values", "compile", "yaml", "routes"]
    );
}

#[test]
fn imports_from_below_pass_and_imports_from_above_fail() {
    assert!(violations("engine", "use crate::model::At;\nuse crate::engine::X;").is_empty());
    assert!(violations("compile", "use crate::{limits, relations::Relations};").is_empty());
    let upward = violations("model", "pub request: crate::testing::TestRequest,");
    assert_eq!(upward.len(), 1, "{upward:?}");
    assert!(upward[0].contains("higher layer"), "{upward:?}");
    let through_root = violations("limits", "Vec<crate::SourceFile>");
    assert_eq!(through_root.len(), 1, "{through_root:?}");
    assert!(through_root[0].contains("no module"), "{through_root:?}");
    let unplaced = violations("newcomer", "");
    assert_eq!(unplaced.len(), 1, "{unplaced:?}");
}
