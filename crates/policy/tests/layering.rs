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

/// The layers, lowest first, each with its modules (a folder module counts as one).
const LAYERS: &[(&str, &[&str])] = &[
    ("YAML and bit sets", &["yaml", "bits"]),
    ("diagnostics", &["diagnostic"]),
    ("bundle model", &["model"]),
    ("value parsers", &["values"]),
    ("decoder", &["decode"]),
    (
        "compiler",
        &["compile", "limits", "relations", "condition", "variables"],
    ),
    ("engine", &["engine", "factors", "runtime", "routes"]),
    ("entry points", &["load", "testing"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The first segment of every `crate::` path in `source`, in order: `use crate::a::B`,
/// `crate::a::f()`, and each member of `use crate::{a::B, b}` (over several lines too).
/// Comment lines are not code and are skipped.
fn crate_imports(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| [line, "\n"])
        .collect();
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let joined_to_a_name = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if joined_to_a_name {
            continue;
        }
        let path = rest.trim_start();
        let Some(group) = path.strip_prefix('{') else {
            push_first_segment(path, &mut found);
            continue;
        };
        let mut depth = 0usize;
        let mut member = String::new();
        for c in group.chars() {
            match c {
                '}' if depth == 0 => break,
                ',' if depth == 0 => {
                    push_first_segment(&member, &mut found);
                    member.clear();
                    continue;
                }
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            member.push(c);
        }
        push_first_segment(&member, &mut found);
    }
    found
}

fn push_first_segment(path: &str, found: &mut Vec<String>) {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !name.is_empty() && name != "self" {
        found.push(name);
    }
}

/// What is wrong with the `crate::` paths of one file of `module`.
fn violations(module: &str, source: &str) -> Vec<String> {
    let Some(own) = layer_of(module) else {
        return vec![format!(
            "module `{module}` is in no layer; add it to LAYERS in tests/layering.rs and to the \
             layers in lib.rs"
        )];
    };
    crate_imports(source)
        .into_iter()
        .filter_map(|imported| match layer_of(&imported) {
            Some(layer) if layer <= own => None,
            Some(layer) => Some(format!(
                "`{module}` ({}) imports `crate::{imported}` from a higher layer ({})",
                LAYERS[own].0, LAYERS[layer].0
            )),
            None => Some(format!(
                "`{module}` imports `crate::{imported}`, which is no module of the table; \
                 import it from the module that owns it"
            )),
        })
        .collect()
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the source folder") {
        let path = entry.expect("read a source folder entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The top-level module a source file belongs to: `decode/rules.rs` belongs to `decode`.
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().expect("a non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_owned()
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let root = source_dir();
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in rust_files(&root) {
        let relative = path.strip_prefix(&root).expect("a file below src");
        // The crate root declares every module and re-exports the public API.
        if relative == Path::new("lib.rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("read a source file");
        for problem in violations(&module_of(relative), &source) {
            problems.push(format!("{}: {problem}", relative.display()));
        }
        checked += 1;
    }
    assert!(
        checked > 10,
        "only {checked} source files found below {root:?}"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_module_in_the_table_exists() {
    let root = source_dir();
    for (_, modules) in LAYERS {
        for module in *modules {
            let file = root.join(format!("{module}.rs"));
            let folder = root.join(module).join("mod.rs");
            assert!(
                file.is_file() || folder.is_file(),
                "LAYERS names `{module}`, which has no source file"
            );
        }
    }
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
        crate_imports(source),
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
