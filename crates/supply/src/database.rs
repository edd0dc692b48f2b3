//! The advisory database: a RustSec advisory-db folder plus any OSV JSON files.
//!
//! Opening a database reads directory listings only: the names of the `crates/<name>` folders
//! and of the advisory files in them (for the revision, below). Advisory files themselves are
//! parsed on demand, one package folder at a time ([`AdvisoryDatabase::advisories_for`]), so a
//! scan parses only the advisories of crates that are in the lockfile — that is what keeps a
//! scan of a large lockfile within milliseconds where parsing the whole database takes a
//! third of a second. The `rust/` collection (toolchain advisories) is not read: cargo-audit
//! does not apply it to lockfiles either.
//!
//! OSV files are few and not named by package, so they are parsed when added
//! ([`AdvisoryDatabase::add_osv_dir`], [`AdvisoryDatabase::add_osv_file`]) and indexed by
//! package name.
//!
//! **Revision.** If the folder is a git checkout (`.git/HEAD` exists), the revision is the
//! commit id HEAD resolves to (loose ref or `packed-refs`). Otherwise — a snapshot copied
//! without history, like the test snapshot — it is `<newest advisory id>+<count>`, e.g.
//! `RUSTSEC-2025-0141+874`: the highest `RUSTSEC-YYYY-NNNN` file name under `crates/` and the
//! number of advisory files. Ids are assigned in increasing order, so a newer snapshot has a
//! higher id or, if only edits happened, usually a different count; it is a fingerprint of the
//! database's extent, not of every byte (edits of existing advisories do not change it).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::advisory::{Advisory, parse_rustsec};
use crate::error::{Result, SupplyError};
use crate::osv::parse_osv;

/// What identifies the database contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// The git commit of the checkout, when the folder is one.
    pub git_commit: Option<String>,
    /// The highest RustSec advisory id among the file names.
    pub newest_id: Option<String>,
    /// How many advisory files `crates/` holds.
    pub advisory_count: usize,
}

impl std::fmt::Display for Revision {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.git_commit, &self.newest_id) {
            (Some(commit), _) => write!(formatter, "git:{commit}"),
            (None, Some(id)) => write!(formatter, "{id}+{}", self.advisory_count),
            (None, None) => write!(formatter, "empty+{}", self.advisory_count),
        }
    }
}

/// An opened advisory database.
#[derive(Debug)]
pub struct AdvisoryDatabase {
    root: PathBuf,
    crates: PathBuf,
    /// Package folder name → its advisory file names.
    folders: HashMap<String, Vec<String>>,
    revision: Revision,
    osv: HashMap<String, Vec<Advisory>>,
    osv_files: Vec<PathBuf>,
}

impl AdvisoryDatabase {
    /// Opens a RustSec advisory-db folder. A missing folder, or one without `crates/`, is an
    /// error: the caller decides whether that means "fail closed".
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_owned();
        if !root.is_dir() {
            return Err(SupplyError::Database {
                path: root,
                reason: "no such directory".to_owned(),
            });
        }
        let crates = root.join("crates");
        if !crates.is_dir() {
            return Err(SupplyError::Database {
                path: root,
                reason: "no `crates` folder: not a RustSec advisory-db layout".to_owned(),
            });
        }
        let mut folders = HashMap::new();
        let mut newest_id: Option<String> = None;
        let mut advisory_count = 0;
        for entry in fs::read_dir(&crates).map_err(|source| SupplyError::io(&crates, source))? {
            let entry = entry.map_err(|source| SupplyError::io(&crates, source))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let folder = entry.path();
            if !entry
                .file_type()
                .map_err(|source| SupplyError::io(&folder, source))?
                .is_dir()
            {
                continue;
            }
            let mut files = Vec::new();
            for file in fs::read_dir(&folder).map_err(|source| SupplyError::io(&folder, source))? {
                let file = file.map_err(|source| SupplyError::io(&folder, source))?;
                let Ok(file_name) = file.file_name().into_string() else {
                    continue;
                };
                // Dot files (editor droppings, .DS_Store) are skipped as RustSec skips them.
                if file_name.starts_with('.') {
                    continue;
                }
                if let Some(id) = file_name.strip_suffix(".md") {
                    advisory_count += 1;
                    if id.starts_with("RUSTSEC-")
                        && newest_id.as_deref().is_none_or(|newest| id > newest)
                    {
                        newest_id = Some(id.to_owned());
                    }
                }
                files.push(file_name);
            }
            files.sort();
            folders.insert(name, files);
        }
        let revision = Revision {
            git_commit: git_head(&root),
            newest_id,
            advisory_count,
        };
        Ok(Self {
            root,
            crates,
            folders,
            revision,
            osv: HashMap::new(),
            osv_files: Vec::new(),
        })
    }

    /// The database folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The database revision (see the module docs).
    pub fn revision(&self) -> &Revision {
        &self.revision
    }

    /// The OSV files added so far.
    pub fn osv_files(&self) -> &[PathBuf] {
        &self.osv_files
    }

    /// Whether any advisory (RustSec or OSV) may exist for `package`.
    pub fn has_package(&self, package: &str) -> bool {
        self.folders.contains_key(package) || self.osv.contains_key(package)
    }

    /// Adds every `*.json` file of a folder as an OSV record (not recursive).
    pub fn add_osv_dir(&mut self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(SupplyError::Database {
                path: dir.to_owned(),
                reason: "OSV folder: no such directory".to_owned(),
            });
        }
        let mut paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(|source| SupplyError::io(dir, source))? {
            let path = entry.map_err(|source| SupplyError::io(dir, source))?.path();
            if path
                .extension()
                .is_some_and(|extension| extension == "json")
                && path.is_file()
            {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            self.add_osv_file(path)?;
        }
        Ok(())
    }

    /// Adds one OSV JSON file.
    pub fn add_osv_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| SupplyError::io(path, source))?;
        for advisory in parse_osv(path, &text)? {
            self.osv
                .entry(advisory.package.clone())
                .or_default()
                .push(advisory);
        }
        self.osv_files.push(path.to_owned());
        Ok(())
    }

    /// Every advisory about `package`: its RustSec folder's files (parsed now), then OSV
    /// records. Withdrawn ones are included; the scan skips them.
    pub fn advisories_for(&self, package: &str) -> Result<Vec<Advisory>> {
        let mut advisories = Vec::new();
        if let Some(files) = self.folders.get(package) {
            let folder = self.crates.join(package);
            for file in files {
                if !file.ends_with(".md") {
                    continue;
                }
                let path = folder.join(file);
                let text =
                    fs::read_to_string(&path).map_err(|source| SupplyError::io(&path, source))?;
                let advisory = parse_rustsec(&path, &text)?;
                if advisory.package != package {
                    return Err(SupplyError::Advisory {
                        path,
                        position: None,
                        message: format!(
                            "package `{}` does not match its folder `{package}`",
                            advisory.package
                        ),
                    });
                }
                advisories.push(advisory);
            }
        }
        if let Some(osv) = self.osv.get(package) {
            advisories.extend(osv.iter().cloned());
        }
        Ok(advisories)
    }

    /// Names of the package folders, for callers that want to check coverage.
    pub fn package_names(&self) -> HashSet<&str> {
        self.folders.keys().map(String::as_str).collect()
    }
}

/// The commit id `.git/HEAD` resolves to, if the folder is a git checkout.
fn git_head(root: &Path) -> Option<String> {
    let git = root.join(".git");
    let head = fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:") else {
        return Some(head.to_owned());
    };
    let reference = reference.trim();
    if let Ok(commit) = fs::read_to_string(git.join(reference)) {
        return Some(commit.trim().to_owned());
    }
    let packed = fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (commit, name) = line.split_once(' ')?;
        (name.trim() == reference).then(|| commit.to_owned())
    })
}
