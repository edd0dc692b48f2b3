//! The layering check shared by the crates that keep one (`crates/policy/tests/layering.rs`,
//! `crates/server/tests/layering.rs`): it reads a crate's source files as text and finds, for
//! each module, the modules its `crate::` paths name. A crate describes its layers, lowest
//! first; a module may import from its own layer and the layers below, never from above, never
//! through the crate root, and no two modules may import each other in a circle.
//!
//! A module is a top-level file or folder of `src/` (`decode/rules.rs` belongs to `decode`),
//! except in the folders a crate names as split, whose files sit on layers of their own
//! (`snapshots/reload.rs` is `snapshots::reload`; the folder's `mod.rs` is `snapshots`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's layers, lowest first, each with its modules, and the folders placed file by file.
pub struct Layers {
    pub layers: &'static [(&'static str, &'static [&'static str])],
    pub split: &'static [&'static str],
}

impl Layers {
    pub fn layer_of(&self, module: &str) -> Option<usize> {
        self.layers
            .iter()
            .position(|(_, modules)| modules.contains(&module))
    }

    /// The module a path names: `state::AppState` names `state`, and in a split folder
    /// `snapshots::reload::Reloader` names `snapshots::reload` (when that is a module of the
    /// table; `audit::Auditor` names `audit`).
    fn module_named(&self, path: &str) -> Option<String> {
        let mut segments = path
            .split("::")
            .map(|segment| {
                segment
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|segment| !segment.is_empty());
        let first = segments.next()?;
        if first == "self" {
            return None;
        }
        if self.split.contains(&first.as_str())
            && let Some(second) = segments.next()
        {
            let nested = format!("{first}::{second}");
            if self.layer_of(&nested).is_some() {
                return Some(nested);
            }
        }
        Some(first)
    }

    /// The module of every `crate::` path in `source`, in order: `use crate::a::B`,
    /// `crate::a::f()`, and each member of `use crate::{a::B, b}` (over several lines too).
    /// Comment lines are not code and are skipped.
    pub fn crate_imports(&self, source: &str) -> Vec<String> {
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
                found.extend(self.module_named(path));
                continue;
            };
            let mut depth = 0usize;
            let mut member = String::new();
            for c in group.chars() {
                match c {
                    '}' if depth == 0 => break,
                    ',' if depth == 0 => {
                        found.extend(self.module_named(&member));
                        member.clear();
                        continue;
                    }
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                member.push(c);
            }
            found.extend(self.module_named(&member));
        }
        found
    }

    /// What is wrong with the `crate::` paths of one file of `module`.
    pub fn violations(&self, module: &str, source: &str) -> Vec<String> {
        let Some(own) = self.layer_of(module) else {
            return vec![format!(
                "module `{module}` is in no layer; add it to the layers of tests/layering.rs \
                 and of the crate documentation"
            )];
        };
        self.crate_imports(source)
            .into_iter()
            .filter(|imported| imported != module)
            .filter_map(|imported| match self.layer_of(&imported) {
                Some(layer) if layer <= own => None,
                Some(layer) => Some(format!(
                    "`{module}` ({}) imports `crate::{imported}` from a higher layer ({})",
                    self.layers[own].0, self.layers[layer].0
                )),
                None => Some(format!(
                    "`{module}` imports `crate::{imported}`, which is no module of the table; \
                     import it from the module that owns it"
                )),
            })
            .collect()
    }

    /// The module a source file (relative to `src/`) belongs to.
    pub fn module_of(&self, relative: &Path) -> String {
        let parts: Vec<String> = relative
            .components()
            .map(|part| {
                let name = part.as_os_str().to_string_lossy();
                name.strip_suffix(".rs").unwrap_or(&name).to_owned()
            })
            .collect();
        let first = parts.first().expect("a non-empty path").clone();
        match parts.get(1) {
            Some(second) if self.split.contains(&first.as_str()) && second != "mod" => {
                format!("{first}::{second}")
            }
            _ => first,
        }
    }

    /// Every problem of the crate whose sources are below `src` (the crate root, which
    /// declares the modules and re-exports the public API, is not checked), and how many files
    /// were read.
    pub fn problems(&self, src: &Path) -> (Vec<String>, usize) {
        let mut problems = Vec::new();
        let mut checked = 0;
        for (relative, source) in sources(src) {
            for problem in self.violations(&self.module_of(&relative), &source) {
                problems.push(format!("{}: {problem}", relative.display()));
            }
            checked += 1;
        }
        (problems, checked)
    }

    /// Which module imports which (a module's files together).
    pub fn import_graph(&self, src: &Path) -> BTreeMap<String, BTreeSet<String>> {
        let mut graph = BTreeMap::<String, BTreeSet<String>>::new();
        for (relative, source) in sources(src) {
            let module = self.module_of(&relative);
            let imports: Vec<String> = self
                .crate_imports(&source)
                .into_iter()
                .filter(|imported| *imported != module)
                .collect();
            graph.entry(module).or_default().extend(imports);
        }
        graph
    }

    /// The modules of the table that have no source file below `src`.
    pub fn missing_modules(&self, src: &Path) -> Vec<String> {
        self.layers
            .iter()
            .flat_map(|(_, modules)| modules.iter())
            .filter(|module| {
                let relative = module.replace("::", "/");
                !src.join(format!("{relative}.rs")).is_file()
                    && !src.join(&relative).join("mod.rs").is_file()
            })
            .map(|module| (*module).to_owned())
            .collect()
    }
}

/// A cycle of `graph`, if it has one, as the modules along it (the first one again at the end).
pub fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        module: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
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
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(graph, module, &mut Vec::new(), &mut done))
}

/// Every source file below `src` but the crate root, sorted, relative to `src`, with its text.
fn sources(src: &Path) -> Vec<(PathBuf, String)> {
    rust_files(src)
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(src).expect("a file below src").to_owned();
            let source = std::fs::read_to_string(&path).expect("read a source file");
            (relative, source)
        })
        .filter(|(relative, _)| relative != Path::new("lib.rs"))
        .collect()
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
