//! Yanked versions, from a copy of the crates.io registry index read offline.
//!
//! Whether a version is yanked is known only from the registry index. Two copies of it are
//! read, both laid out by crate name as the index is (`1/a`, `2/ab`, `3/a/abc`,
//! `se/rd/serde`, lower case):
//! - an index checkout or mirror: one file per crate, one JSON object per line and version
//!   (`{"name", "vers", …, "yanked"}`);
//! - Cargo's own cache of the sparse index (the `.cache` folder of
//!   `~/.cargo/registry/index/index.crates.io-…`, which is what `cargo audit` reads): one file
//!   per crate, a 5-byte header (cache version, index format version), the index revision,
//!   then for each version its number and its JSON line, each ended by a NUL byte.
//!
//! A folder with a `.cache` subfolder is read through it. A crate or version the copy does not
//! have is not known to be yanked (and is counted apart, so a stale copy shows); a file that is
//! neither form is an error naming it.

use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SupplyError};

/// A copy of the crates.io index.
#[derive(Debug, Clone)]
pub struct RegistryIndex {
    /// The folder named by the caller.
    path: PathBuf,
    /// Where the per-crate files are (the folder itself or its `.cache`).
    files: PathBuf,
}

/// What the index says of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexState {
    /// Published and not yanked.
    Published,
    /// Yanked.
    Yanked,
    /// The index copy has no such crate or version.
    Unknown,
}

/// The fields of an index line this module reads.
#[derive(Deserialize)]
struct IndexLine {
    vers: String,
    #[serde(default)]
    yanked: bool,
}

impl RegistryIndex {
    /// Opens the copy at `path` (an error if it is not a folder).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let metadata = std::fs::metadata(&path).map_err(|error| SupplyError::io(&path, error))?;
        if !metadata.is_dir() {
            return Err(SupplyError::Index {
                path,
                message: "not a folder".into(),
            });
        }
        let cache = path.join(".cache");
        let files = if cache.is_dir() { cache } else { path.clone() };
        Ok(Self { path, files })
    }

    /// The folder named when opening.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file holding `name`'s versions, as the index lays them out.
    pub fn file_of(&self, name: &str) -> PathBuf {
        let name = name.to_ascii_lowercase();
        let relative = match name.len() {
            0..=2 => format!("{}/{name}", name.len()),
            3 => format!("3/{}/{name}", &name[..1]),
            _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
        };
        self.files.join(relative)
    }

    /// What the index says of `name` at `version`.
    pub fn state(&self, name: &str, version: &Version) -> Result<IndexState> {
        // Crate names are ASCII; anything else cannot be in the index.
        if name.is_empty() || !name.is_ascii() {
            return Ok(IndexState::Unknown);
        }
        let path = self.file_of(name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(IndexState::Unknown);
            }
            Err(error) => return Err(SupplyError::io(&path, error)),
        };
        let found = if bytes.first() == Some(&b'{') {
            from_json_lines(&bytes, version)
        } else {
            from_cache(&bytes, version)
        };
        found.map_err(|message| SupplyError::Index { path, message })
    }
}

impl IndexLine {
    fn parse(line: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(line).map_err(|error| error.to_string())
    }

    fn state(&self) -> IndexState {
        if self.yanked {
            IndexState::Yanked
        } else {
            IndexState::Published
        }
    }
}

/// An index file: one JSON object per line; every line is read, so a broken one is reported.
fn from_json_lines(bytes: &[u8], version: &Version) -> Result<IndexState, String> {
    let wanted = version.to_string();
    for (number, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed =
            IndexLine::parse(line).map_err(|error| format!("line {}: {error}", number + 1))?;
        if parsed.vers == wanted {
            return Ok(parsed.state());
        }
    }
    Ok(IndexState::Unknown)
}

/// A file of Cargo's index cache: header, revision, then (version, JSON line) pairs, each
/// ended by a NUL byte. Cargo writes each version as its canonical text, so the pair is found
/// by searching for `NUL version NUL` (a JSON line starts with `{` and cannot be mistaken for
/// a version); only that version's line is parsed.
fn from_cache(bytes: &[u8], version: &Version) -> Result<IndexState, String> {
    const HEADER: usize = 5;
    let Some(body) = bytes.get(HEADER..) else {
        return Err("neither an index file (JSON lines) nor Cargo's index cache".into());
    };
    // The index revision (an ETag, a date or a commit) comes first; its NUL starts the search.
    let Some(revision_end) = memchr::memchr(0, body) else {
        return Err("Cargo index cache without its revision".into());
    };
    let pairs = &body[revision_end..];
    let needle = format!("\0{version}\0");
    let Some(at) = memchr::memmem::find(pairs, needle.as_bytes()) else {
        return Ok(IndexState::Unknown);
    };
    let line = &pairs[at + needle.len()..];
    let Some(end) = memchr::memchr(0, line) else {
        return Err(format!(
            "Cargo index cache: version {version} without its JSON line"
        ));
    };
    IndexLine::parse(&line[..end]).map(|parsed| parsed.state())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "tests: a failed step must fail the test"
    )]

    use super::*;

    #[test]
    fn names_are_laid_out_as_the_index_does() {
        let index = RegistryIndex {
            path: PathBuf::from("i"),
            files: PathBuf::from("i"),
        };
        let at = |name: &str| index.file_of(name).to_string_lossy().into_owned();
        assert_eq!(at("a"), "i/1/a");
        assert_eq!(at("ab"), "i/2/ab");
        assert_eq!(at("abc"), "i/3/a/abc");
        assert_eq!(at("Serde"), "i/se/rd/serde");
        assert_eq!(at("cargo-lock"), "i/ca/rg/cargo-lock");
    }

    #[test]
    fn truncated_cache_files_are_errors() {
        let version = Version::new(1, 0, 0);
        assert!(from_cache(b"\x03\x02", &version).is_err());
        assert!(from_cache(b"\x03\x02\x00\x00\x00rev\x001.0.0\x00", &version).is_err());
        assert_eq!(
            from_cache(b"\x03\x02\x00\x00\x00rev\x00", &version),
            Ok(IndexState::Unknown)
        );
    }
}
