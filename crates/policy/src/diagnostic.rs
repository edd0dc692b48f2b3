//! Problems found in a bundle, each pinned to a file, line and column.
//!
//! Loading never stops at the first problem: every stage pushes into a [`Diagnostics`] list and
//! the loader fails only once, with all of them, sorted by place.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::yaml::Pos;

/// A place in a bundle file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file.
    pub file: Arc<Path>,
    /// Line and column, when known (file-level problems have none).
    pub pos: Option<Pos>,
}

impl Location {
    /// A location at a position in a file.
    pub fn at(file: &Arc<Path>, pos: Pos) -> Self {
        Location {
            file: Arc::clone(file),
            pos: Some(pos),
        }
    }

    /// A location naming a whole file.
    pub fn file(file: &Path) -> Self {
        Location {
            file: Arc::from(file),
            pos: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(pos) => write!(f, "{}:{}:{}", self.file.display(), pos.line, pos.column),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// Stable identifiers of the kinds of problems, for tooling and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// Cannot read a file or folder.
    Io,
    /// YAML syntax error, or a size, depth or alias limit.
    Yaml,
    /// A value of the wrong shape (a string where a list belongs, ...).
    Type,
    /// A key that the format does not define.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A reference to a factor, strategy, role, calendar or parameter that does not exist.
    UnknownReference,
    /// The same id defined twice.
    Duplicate,
    /// Role inheritance forms a cycle.
    Cycle,
    /// An address, CIDR block or address wildcard that does not parse.
    Address,
    /// A time window that does not parse or is empty.
    TimeWindow,
    /// A date that does not parse.
    Date,
    /// A weekday that is not one of mon..sun.
    Weekday,
    /// A time zone that is not known.
    TimeZone,
    /// A CEL expression that does not compile or reads an unknown variable.
    Cel,
    /// A tenant id that does not match `^[a-zA-Z0-9-]{3,32}$`.
    TenantId,
    /// A permission, action, resource or route pattern that is malformed.
    Pattern,
    /// Any other invalid value.
    Value,
    /// A feature the bundle uses that this build does not provide.
    Unsupported,
    /// A relationship model, or a tuple that does not fit it.
    Model,
    /// A section or a structure larger than the bundle limits allow.
    Limit,
    /// (Warning) an action name a plain request name could be mistaken for: its verb holds a
    /// `:`.
    AmbiguousAction,
}

impl Code {
    /// The kebab-case name shown in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "io",
            Code::Yaml => "yaml",
            Code::Type => "type",
            Code::UnknownKey => "unknown-key",
            Code::MissingKey => "missing-key",
            Code::UnknownReference => "unknown-reference",
            Code::Duplicate => "duplicate",
            Code::Cycle => "cycle",
            Code::Address => "address",
            Code::TimeWindow => "time-window",
            Code::Date => "date",
            Code::Weekday => "weekday",
            Code::TimeZone => "time-zone",
            Code::Cel => "cel",
            Code::TenantId => "tenant-id",
            Code::Pattern => "pattern",
            Code::Value => "value",
            Code::Unsupported => "unsupported",
            Code::Model => "model",
            Code::Limit => "limit",
            Code::AmbiguousAction => "ambiguous-action",
        }
    }
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where.
    pub location: Location,
    /// What kind.
    pub code: Code,
    /// What is wrong.
    pub message: String,
    /// What would be right, when that can be said.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem without help text.
    pub fn new(location: Location, code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            location,
            code,
            message: message.into(),
            help: None,
        }
    }

    /// Adds what would be right.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: error[{}]: {}",
            self.location,
            self.code.as_str(),
            self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// A growing list of problems.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records a problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Sorts by file, line and column and returns the problems.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (&a.location, a.code, &a.message).cmp(&(&b.location, b.code, &b.message))
        });
        self.items.dedup();
        self.items
    }
}

/// Loading failed; nothing was loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// The bundle (or bundles folder) that failed.
    pub path: PathBuf,
    /// Every problem found, sorted by place.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.diagnostics.len();
        writeln!(
            f,
            "{} has {count} problem{}; nothing was loaded:",
            self.path.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for diagnostic in &self.diagnostics {
            writeln!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Suggests the closest of `candidates` to `given`, when one is close enough to be a typo.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(given, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(3) / 3).max(1))
        .min()
        .map(|(_, candidate)| candidate)
}
