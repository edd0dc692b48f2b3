//! The crate's error type.
//!
//! Every variant that comes from a file names that file, and where the parser knows it, the
//! line and column (1-based) in that file. The scanner never guesses past an error: a database
//! it cannot read is an error for the caller to turn into "high risk" (fail closed).

use std::fmt;
use std::path::PathBuf;

/// A place in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`, clamped to the end of the text.
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while offset > 0 && !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { line, column }
    }
}

/// An optional position rendered as `:line:col`, or nothing.
#[derive(Debug, Clone, Copy)]
pub struct At(pub Option<Position>);

impl fmt::Display for At {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(position) => write!(formatter, ":{}:{}", position.line, position.column),
            None => Ok(()),
        }
    }
}

/// Everything that can go wrong while loading inputs or scanning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupplyError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The advisory database folder does not exist or is not a RustSec advisory-db layout.
    #[error("advisory database {path}: {reason}")]
    Database {
        /// The database folder.
        path: PathBuf,
        /// What is missing, e.g. "no such directory" or "no `crates` folder".
        reason: String,
    },
    /// A `Cargo.lock` could not be parsed.
    #[error("lockfile {path}: {message}")]
    Lockfile {
        /// The lockfile.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A RustSec advisory file is malformed.
    #[error("advisory {path}{at}: {message}", at = At(*position))]
    Advisory {
        /// The advisory file.
        path: PathBuf,
        /// Where in the file, when known.
        position: Option<Position>,
        /// What is wrong.
        message: String,
    },
    /// An OSV JSON file is malformed.
    #[error("OSV file {path}{at}: {message}", at = At(*position))]
    Osv {
        /// The OSV file.
        path: PathBuf,
        /// Where in the file, when known.
        position: Option<Position>,
        /// What is wrong.
        message: String,
    },
    /// An SBOM document could not be read as CycloneDX or SPDX JSON.
    #[error("SBOM {path}: {message}")]
    Sbom {
        /// The SBOM file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file of the registry index copy (for yanked versions) is malformed.
    #[error("registry index {path}: {message}")]
    Index {
        /// The index folder or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The waiver file is malformed.
    #[error("waiver file {path}{at}: {message}", at = At(*position))]
    Waiver {
        /// The waiver file.
        path: PathBuf,
        /// Where in the file, when known.
        position: Option<Position>,
        /// What is wrong and what would be right.
        message: String,
    },
}

impl SupplyError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// This crate's result type.
pub type Result<T, E = SupplyError> = std::result::Result<T, E>;
