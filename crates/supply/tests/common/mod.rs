//! Helpers shared by the integration tests: advisory databases built in temporary folders.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test helpers: failures should be loud")]

use std::path::{Path, PathBuf};

use jiff::civil::Date;
use portcullis_supply::{AdvisoryDatabase, Lockfile, Package, PackageSource};
use semver::Version;
use tempfile::TempDir;

/// An advisory-db folder in a temporary directory.
pub struct TestDb {
    pub dir: TempDir,
}

impl TestDb {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("crates")).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `crates/<package>/<id>.md` with the given TOML lines and returns its path.
    pub fn advisory(&self, package: &str, id: &str, extra: &str, versions: &str) -> PathBuf {
        let text = advisory_text(package, id, extra, versions);
        self.write(&format!("crates/{package}/{id}.md"), &text)
    }

    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn open(&self) -> AdvisoryDatabase {
        AdvisoryDatabase::open(self.dir.path()).unwrap()
    }
}

/// The text of a RustSec advisory file.
pub fn advisory_text(package: &str, id: &str, extra: &str, versions: &str) -> String {
    format!(
        "```toml\n[advisory]\nid = \"{id}\"\npackage = \"{package}\"\ndate = \"2025-01-02\"\nurl = \"https://example.invalid/{id}\"\n{extra}\n\n[versions]\n{versions}\n```\n\n# Title of {id}\n\nDescription of {id}.\n"
    )
}

/// A lockfile of crates.io packages.
pub fn lock(packages: &[(&str, &str)]) -> Lockfile {
    Lockfile::from_packages(
        packages
            .iter()
            .map(|(name, version)| Package::crates_io(*name, Version::parse(version).unwrap()))
            .collect(),
    )
}

/// A package with a given source.
pub fn package(name: &str, version: &str, source: PackageSource) -> Package {
    Package {
        name: name.to_owned(),
        version: Version::parse(version).unwrap(),
        source,
    }
}

pub fn date(text: &str) -> Date {
    text.parse().unwrap()
}

pub fn today() -> Date {
    date("2026-03-01")
}

/// The real RustSec snapshot shipped in `shared/data` beside the repository.
pub fn snapshot() -> PathBuf {
    if let Ok(path) = std::env::var("PORTCULLIS_ADVISORY_DB") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/rustsec-advisory-db-2025-12-29");
    assert!(
        path.join("crates").is_dir(),
        "the RustSec snapshot is missing at {} (set PORTCULLIS_ADVISORY_DB)",
        path.display()
    );
    path
}
