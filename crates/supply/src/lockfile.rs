//! The packages to scan: read from a `Cargo.lock` (with the `cargo-lock` crate) or built by a
//! caller (e.g. from an SBOM).
//!
//! Only name, version and source matter to the scan. The source decides which advisories can
//! apply, the way cargo-audit decides it: a package from crates.io (git or sparse index) meets
//! advisories about crates.io; a package from another registry meets only advisories that name
//! that registry; a git repository, local registry, vendored directory, or no source at all (a
//! workspace member or path dependency) meets none.
//!
//! This module never consults a registry or the network; the matching itself is in
//! [`mod@crate::scan`].

use std::path::{Path, PathBuf};
use std::str::FromStr;

use semver::Version;
use serde::Serialize;

use crate::error::{Result, SupplyError};

/// Where a package comes from, as far as advisories care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "url", rename_all = "snake_case")]
pub enum PackageSource {
    /// No `source` in the lockfile: a workspace member or path dependency (never matched).
    Local,
    /// The crates.io index (git or sparse).
    CratesIo,
    /// Another registry, by its index URL.
    Registry(String),
    /// A git repository, a local registry or a vendored directory.
    Other(String),
}

/// A package to scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Crate name.
    pub name: String,
    /// Exact version.
    pub version: Version,
    /// Where it comes from.
    pub source: PackageSource,
}

impl Package {
    /// A crates.io package.
    pub fn crates_io(name: impl Into<String>, version: Version) -> Self {
        Self {
            name: name.into(),
            version,
            source: PackageSource::CratesIo,
        }
    }

    /// The package URL, `pkg:cargo/NAME@VERSION`.
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

/// The packages of a lockfile.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lockfile {
    /// The file they were read from, when they were.
    pub path: Option<PathBuf>,
    /// The packages, in lockfile order.
    pub packages: Vec<Package>,
}

impl Lockfile {
    /// Reads a `Cargo.lock`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SupplyError::io(path, source))?;
        let mut lockfile = Self::parse(&text).map_err(|message| SupplyError::Lockfile {
            path: path.to_owned(),
            message,
        })?;
        lockfile.path = Some(path.to_owned());
        Ok(lockfile)
    }

    /// Parses the text of a `Cargo.lock`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed = cargo_lock::Lockfile::from_str(text).map_err(|error| error.to_string())?;
        let packages = parsed
            .packages
            .into_iter()
            .map(|package| Package {
                name: package.name.as_str().to_owned(),
                version: package.version,
                source: match package.source {
                    None => PackageSource::Local,
                    Some(source) if source.is_default_registry() => PackageSource::CratesIo,
                    Some(source) if source.is_remote_registry() => {
                        PackageSource::Registry(source.url().to_string())
                    }
                    Some(source) => PackageSource::Other(source.to_string()),
                },
            })
            .collect();
        Ok(Self {
            path: None,
            packages,
        })
    }

    /// Packages given directly.
    pub fn from_packages(packages: Vec<Package>) -> Self {
        Self {
            path: None,
            packages,
        }
    }
}
