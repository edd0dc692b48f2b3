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

/// The layers, lowest first, each with its modules.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &["files", "metrics", "evaluation", "demo", "audit::store"],
    ),
    ("audit writer", &["audit"]),
    ("configuration", &["config"]),
    ("identity and TLS", &["identity", "tls"]),
    ("errors and request reading", &["error", "json"]),
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
            "snapshots::tuples",
        ],
    ),
    ("the decision path", &["decision"]),
    ("admin API", &["admin"]),
    (
        "edges",
        &[
            "edges",
            "edges::api",
            "edges::authzen",
            "edges::forward",
            "edges::relations",
            "edges::grpc",
            "edges::operations",
        ],
    ),
    ("service", &["serve"]),
];

/// Folders placed file by file.
const SPLIT: &[&str] = &["audit", "snapshots", "edges"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The module a path names: `snapshots::reload::Reloader` names `snapshots::reload`,
/// `state::AppState` names `state`, `audit::Auditor` names `audit`.
fn module_named(path: &str) -> Option<String> {
    let mut segments = path
        .split("::")
        .map(|s| {
            s.trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .take_while(|s| !s.is_empty());
    let first = segments.next()?;
    if first == "self" {
        return None;
    }
    if SPLIT.contains(&first.as_str())
        && let Some(second) = segments.next()
    {
        let candidate = format!("{first}::{second}");
        if layer_of(&candidate).is_some() {
            return Some(candidate);
        }
    }
    Some(first)
}

/// The module of every `crate::` path in `source`, in order: `use crate::a::B`,
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
            found.extend(module_named(path));
            continue;
        };
        let mut depth = 0usize;
        let mut member = String::new();
        for c in group.chars() {
            match c {
                '}' if depth == 0 => break,
                ',' if depth == 0 => {
                    found.extend(module_named(&member));
                    member.clear();
                    continue;
                }
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            member.push(c);
        }
        found.extend(module_named(&member));
    }
    found
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
        .filter(|imported| imported != module)
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

/// The module a source file belongs to: `snapshots/reload.rs` is `snapshots::reload`,
/// `snapshots/mod.rs` is `snapshots`, `admin/tenants.rs` is `admin`,
/// `edges/grpc/envoy.rs` is `edges::grpc`.
fn module_of(relative: &Path) -> String {
    let parts: Vec<String> = relative
        .components()
        .map(|c| {
            let name = c.as_os_str().to_string_lossy();
            name.strip_suffix(".rs").unwrap_or(&name).to_owned()
        })
        .collect();
    let first = parts[0].clone();
    if SPLIT.contains(&first.as_str()) && parts.len() > 1 && parts[1] != "mod" {
        format!("{first}::{}", parts[1])
    } else {
        first
    }
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let root = source_dir();
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in rust_files(&root) {
        let relative = path.strip_prefix(&root).expect("a file below src");
        // The crate root declares every module and assembles the public router.
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
        checked > 20,
        "only {checked} source files found below {root:?}"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Which module imports which, over every file (a module's files together).
fn import_graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let root = source_dir();
    let mut graph = std::collections::BTreeMap::<_, std::collections::BTreeSet<_>>::new();
    for path in rust_files(&root) {
        let relative = path.strip_prefix(&root).expect("a file below src");
        if relative == Path::new("lib.rs") {
            continue;
        }
        let module = module_of(relative);
        let source = std::fs::read_to_string(&path).expect("read a source file");
        let imports = crate_imports(&source)
            .into_iter()
            .filter(|imported| *imported != module);
        graph.entry(module.clone()).or_default().extend(imports);
    }
    graph
}

/// A cycle of `graph`, if it has one, as the modules along it.
fn find_cycle(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        module: &str,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(graph, module, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_import_each_other_even_within_a_layer() {
    let graph = import_graph();
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
    let root = source_dir();
    for (_, modules) in LAYERS {
        for module in *modules {
            let relative = module.replace("::", "/");
            let file = root.join(format!("{relative}.rs"));
            let folder = root.join(&relative).join("mod.rs");
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
        crate_imports(source),
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
    assert_eq!(module_of(Path::new("edges/grpc/envoy.rs")), "edges::grpc");
    assert_eq!(module_of(Path::new("snapshots/mod.rs")), "snapshots");
    assert_eq!(module_of(Path::new("admin/tenants.rs")), "admin");
}
