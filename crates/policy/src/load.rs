//! Reading bundles from disk (or from memory, for uploads) with limits, all-or-nothing.
//!
//! A bundle is a folder holding `tenant.yaml` and any number of other `*.yaml`/`*.yml` files.
//! A bundles folder holds one bundle per sub-folder. Every file is parsed and decoded even when
//! an earlier one failed, so one run reports every problem; a snapshot is produced only when
//! there are none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::compile::{Snapshot, compile};
use crate::decode::decode_file;
use crate::diagnostic::{Code, Diagnostic, Diagnostics, LoadError, Location};
use crate::engine::PolicySet;
use crate::model::{Bundle, SourceFile};
use crate::yaml::{YamlLimits, parse};

/// Limits applied while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Per-file YAML limits (size, nodes, depth, aliases).
    pub yaml: YamlLimits,
    /// Most policy files in one bundle.
    pub max_files: usize,
    /// Largest total size of one bundle's files, in bytes.
    pub max_total_bytes: usize,
    /// Most bundles in one bundles folder.
    pub max_bundles: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            yaml: YamlLimits::default(),
            max_files: 256,
            max_total_bytes: 64 * 1024 * 1024,
            max_bundles: 10_000,
        }
    }
}

fn is_policy_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_none_or(|name| name.starts_with('.'));
    let yaml = matches!(
        path.extension().and_then(|ext| ext.to_str()),
        Some("yaml" | "yml")
    );
    (yaml || crate::relations::is_model_file(path)) && !hidden
}

fn is_tenant_file(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|name| name.to_str()),
        Some("tenant.yaml" | "tenant.yml")
    )
}

/// Reads a bundle folder's policy files (sorted by name), checking counts and sizes.
pub fn read_bundle_dir(dir: &Path, options: &LoadOptions) -> Result<Vec<SourceFile>, LoadError> {
    let fail = |diagnostic: Diagnostic| LoadError {
        path: dir.to_path_buf(),
        diagnostics: vec![diagnostic],
    };
    let entries = std::fs::read_dir(dir).map_err(|error| {
        fail(Diagnostic::new(
            Location::file(dir),
            Code::Io,
            format!("cannot read the folder: {error}"),
        ))
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| {
            fail(Diagnostic::new(
                Location::file(dir),
                Code::Io,
                format!("cannot read the folder: {error}"),
            ))
        })?;
        let path = entry.path();
        if path.is_file() && is_policy_file(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.len() > options.max_files {
        return Err(fail(
            Diagnostic::new(
                Location::file(dir),
                Code::Yaml,
                format!(
                    "the bundle has {} policy files, more than the limit of {}",
                    paths.len(),
                    options.max_files
                ),
            )
            .with_help("merge small files or raise the limit"),
        ));
    }
    let mut diagnostics = Diagnostics::default();
    let mut files = Vec::with_capacity(paths.len());
    let mut total: u64 = 0;
    for path in paths {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        total = total.saturating_add(size);
        if size > options.yaml.max_bytes as u64 {
            diagnostics.push(
                Diagnostic::new(
                    Location::file(&path),
                    Code::Yaml,
                    format!(
                        "file is {size} bytes, more than the limit of {} bytes",
                        options.yaml.max_bytes
                    ),
                )
                .with_help("split it into several files"),
            );
            continue;
        }
        match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => files.push(SourceFile { path, text }),
                Err(error) => diagnostics.push(Diagnostic::new(
                    Location::file(&path),
                    Code::Io,
                    format!(
                        "the file is not UTF-8 text (invalid byte at offset {})",
                        error.utf8_error().valid_up_to()
                    ),
                )),
            },
            Err(error) => diagnostics.push(Diagnostic::new(
                Location::file(&path),
                Code::Io,
                format!("cannot read the file: {error}"),
            )),
        }
    }
    if total > options.max_total_bytes as u64 {
        diagnostics.push(Diagnostic::new(
            Location::file(dir),
            Code::Yaml,
            format!(
                "the bundle's files total {total} bytes, more than the limit of {} bytes",
                options.max_total_bytes
            ),
        ));
    }
    if diagnostics.is_empty() {
        Ok(files)
    } else {
        Err(LoadError {
            path: dir.to_path_buf(),
            diagnostics: diagnostics.into_sorted(),
        })
    }
}

/// Stack for the compiling thread: the YAML and CEL parsers recurse, and their frames are large
/// in unoptimized builds. The memory is reserved, not committed, until used.
const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Parses, decodes and compiles a bundle from in-memory files.
///
/// The work runs on a dedicated thread with a large stack; if anything in it panics, the
/// bundle is refused with an error instead of taking the caller down.
pub fn compile_files(
    root: &Path,
    files: &[SourceFile],
    options: &LoadOptions,
) -> Result<Snapshot, LoadError> {
    let internal = |message: &str| LoadError {
        path: root.to_path_buf(),
        diagnostics: vec![Diagnostic::new(
            Location::file(root),
            Code::Io,
            message.to_owned(),
        )],
    };
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("portcullis-compile".into())
            .stack_size(COMPILE_STACK_BYTES)
            .spawn_scoped(scope, || compile_on_this_thread(root, files, options));
        match worker {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(internal(
                    "internal error while compiling the bundle; it was not loaded",
                ))
            }),
            Err(error) => Err(internal(&format!(
                "cannot start the compiling thread: {error}"
            ))),
        }
    })
}

fn compile_on_this_thread(
    root: &Path,
    files: &[SourceFile],
    options: &LoadOptions,
) -> Result<Snapshot, LoadError> {
    let mut diagnostics = Diagnostics::default();
    let mut bundle = Bundle {
        root: root.to_path_buf(),
        ..Bundle::default()
    };
    if files.len() > options.max_files {
        diagnostics.push(Diagnostic::new(
            Location::file(root),
            Code::Yaml,
            format!(
                "the bundle has {} policy files, more than the limit of {}",
                files.len(),
                options.max_files
            ),
        ));
    }
    let total: usize = files.iter().map(|file| file.text.len()).sum();
    if total > options.max_total_bytes {
        diagnostics.push(Diagnostic::new(
            Location::file(root),
            Code::Yaml,
            format!(
                "the bundle's files total {total} bytes, more than the limit of {} bytes",
                options.max_total_bytes
            ),
        ));
    }
    let tenant_files: Vec<&SourceFile> = files
        .iter()
        .filter(|file| is_tenant_file(&file.path))
        .collect();
    match tenant_files.as_slice() {
        [] => diagnostics.push(
            Diagnostic::new(
                Location::file(root),
                Code::MissingKey,
                "the bundle has no tenant.yaml",
            )
            .with_help("add tenant.yaml with at least `tenant: <id>` and `timezone: <IANA zone>`"),
        ),
        [_] => {}
        [_, second, ..] => diagnostics.push(Diagnostic::new(
            Location::file(&second.path),
            Code::Duplicate,
            "the bundle has both tenant.yaml and tenant.yml; keep one",
        )),
    }
    let mut model_files: Vec<&SourceFile> = Vec::new();
    for file in files {
        if crate::relations::is_model_file(&file.path) {
            model_files.push(file);
            continue;
        }
        let path: Arc<Path> = Arc::from(file.path.as_path());
        match parse(&file.text, &options.yaml) {
            Ok(root_node) => decode_file(
                &mut bundle,
                &path,
                &file.text,
                &root_node,
                is_tenant_file(&file.path),
                &mut diagnostics,
            ),
            Err(error) => diagnostics.push(Diagnostic::new(
                Location {
                    file: path,
                    pos: error.pos,
                },
                Code::Yaml,
                error.message,
            )),
        }
    }
    if bundle.tenant.id.is_none() && tenant_files.len() == 1 && diagnostics.is_empty() {
        diagnostics.push(Diagnostic::new(
            Location::file(&tenant_files[0].path),
            Code::MissingKey,
            "tenant.yaml needs `tenant`",
        ));
    }
    let snapshot = compile(bundle, &model_files, &mut diagnostics);
    match snapshot {
        Some(snapshot) if diagnostics.is_empty() => Ok(snapshot),
        _ => Err(LoadError {
            path: root.to_path_buf(),
            diagnostics: diagnostics.into_sorted(),
        }),
    }
}

/// Loads one bundle folder.
pub fn load_bundle(dir: &Path, options: &LoadOptions) -> Result<Snapshot, LoadError> {
    let files = read_bundle_dir(dir, options)?;
    compile_files(dir, &files, options)
}

/// Whether `dir` is itself a bundle (holds `tenant.yaml`) rather than a folder of bundles.
pub fn is_bundle_dir(dir: &Path) -> bool {
    dir.join("tenant.yaml").is_file() || dir.join("tenant.yml").is_file()
}

/// Loads a bundle folder, or every bundle in a folder of bundles; all or nothing.
pub fn load_bundles(dir: &Path, options: &LoadOptions) -> Result<PolicySet, LoadError> {
    let mut set = PolicySet::new();
    if is_bundle_dir(dir) {
        set.insert(Arc::new(load_bundle(dir, options)?));
        return Ok(set);
    }
    let io_error = |error: std::io::Error| LoadError {
        path: dir.to_path_buf(),
        diagnostics: vec![Diagnostic::new(
            Location::file(dir),
            Code::Io,
            format!("cannot read the folder: {error}"),
        )],
    };
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if path.is_dir() && !hidden {
            folders.push(path);
        }
    }
    folders.sort();
    let mut diagnostics = Diagnostics::default();
    let mut seen: std::collections::BTreeMap<portcullis_core::TenantId, PathBuf> =
        Default::default();
    let mut loaded = 0usize;
    for folder in folders {
        let has_yaml = std::fs::read_dir(&folder)
            .map(|entries| entries.flatten().any(|entry| is_policy_file(&entry.path())))
            .unwrap_or(false);
        if !has_yaml {
            continue;
        }
        loaded += 1;
        if loaded > options.max_bundles {
            diagnostics.push(Diagnostic::new(
                Location::file(dir),
                Code::Yaml,
                format!("more than {} bundles in one folder", options.max_bundles),
            ));
            break;
        }
        match load_bundle(&folder, options) {
            Ok(snapshot) => {
                if let Some(first) = seen.get(snapshot.tenant()) {
                    diagnostics.push(Diagnostic::new(
                        Location::file(&folder.join("tenant.yaml")),
                        Code::Duplicate,
                        format!(
                            "tenant `{}` is also defined by {}",
                            snapshot.tenant(),
                            first.display()
                        ),
                    ));
                    continue;
                }
                seen.insert(snapshot.tenant().clone(), folder.clone());
                set.insert(Arc::new(snapshot));
            }
            Err(error) => {
                for diagnostic in error.diagnostics {
                    diagnostics.push(diagnostic);
                }
            }
        }
    }
    if loaded == 0 {
        diagnostics.push(
            Diagnostic::new(Location::file(dir), Code::MissingKey, "no bundle found").with_help(
                "a bundle is a folder with tenant.yaml; pass it, or a folder holding such folders",
            ),
        );
    }
    if diagnostics.is_empty() {
        Ok(set)
    } else {
        Err(LoadError {
            path: dir.to_path_buf(),
            diagnostics: diagnostics.into_sorted(),
        })
    }
}
