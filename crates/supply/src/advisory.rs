//! The advisory model and the RustSec advisory file parser.
//!
//! A RustSec advisory is a Markdown file whose first block is a ```` ```toml ```` fence holding
//! the metadata (`[advisory]`, `[affected]`, `[versions]`); the Markdown after it starts with a
//! `# Title` line followed by the description. [`parse_rustsec`] reads one such file into an
//! [`Advisory`], computing its affected version ranges once (see [`crate::version`]) and
//! scoring its CVSS vector (see [`crate::severity`]). OSV files become the same [`Advisory`]
//! type in [`crate::osv`].
//!
//! This module parses single files; it does not walk the database (that is
//! [`crate::database`]) and does not decide what a finding means (that is [`mod@crate::scan`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{Position, Result, SupplyError};
use crate::severity::Rating;
use crate::version::{AffectedVersions, parse_requirements};

/// The kind of an informational advisory (`informational = "…"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Informational {
    /// The crate is no longer maintained.
    Unmaintained,
    /// The crate exposes unsound API (undefined behaviour from safe code).
    Unsound,
    /// Something users should know that is not a vulnerability.
    Notice,
    /// Another kind, kept by name.
    #[serde(untagged)]
    Other(String),
}

impl Informational {
    /// Reads the field's value.
    pub fn parse(text: &str) -> Self {
        match text {
            "unmaintained" => Self::Unmaintained,
            "unsound" => Self::Unsound,
            "notice" => Self::Notice,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The field's value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unmaintained => "unmaintained",
            Self::Unsound => "unsound",
            Self::Notice => "notice",
            Self::Other(other) => other,
        }
    }
}

/// Where an advisory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A RustSec advisory-db Markdown file.
    RustSec,
    /// An OSV JSON file.
    Osv,
}

/// A function an advisory names as affected, with the versions in which it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedFunction {
    /// Full path, e.g. `time::at`.
    pub path: String,
    /// Version requirements (RustSec) or empty (OSV lists functions without versions).
    pub versions: Vec<String>,
}

/// One advisory about one package, from either source.
#[derive(Debug, Clone, Serialize)]
pub struct Advisory {
    /// `RUSTSEC-YYYY-NNNN`, or the OSV id.
    pub id: String,
    /// The crate it is about.
    pub package: String,
    /// Which kind of file it came from.
    pub origin: Origin,
    /// The file.
    pub path: PathBuf,
    /// Date of the advisory (`YYYY-MM-DD`), when given.
    pub date: Option<String>,
    /// One-line title.
    pub title: String,
    /// The description (Markdown).
    #[serde(skip)]
    pub description: String,
    /// The advisory's main URL, when given.
    pub url: Option<String>,
    /// Other ids of the same issue (CVE, GHSA, …).
    pub aliases: Vec<String>,
    /// Ids of related but different issues.
    pub related: Vec<String>,
    /// RustSec categories (`memory-corruption`, …).
    pub categories: Vec<String>,
    /// The scored CVSS vector, when the advisory has one.
    pub cvss: Option<Rating>,
    /// Set for informational advisories (not vulnerabilities).
    pub informational: Option<Informational>,
    /// Set (to the date) for withdrawn advisories, which the scan ignores.
    pub withdrawn: Option<String>,
    /// Functions named as affected (reported, not used to filter).
    pub functions: Vec<AffectedFunction>,
    /// Operating systems named as affected (reported, not used to filter).
    pub os: Vec<String>,
    /// Architectures named as affected (reported, not used to filter).
    pub arch: Vec<String>,
    /// `patched` requirements as written (RustSec) or `>= fixed` per OSV range.
    pub patched: Vec<String>,
    /// `unaffected` requirements as written.
    pub unaffected: Vec<String>,
    /// The registry index URL the advisory is about, when it is not crates.io.
    pub registry: Option<String>,
    /// Affected ranges, computed at load.
    #[serde(skip)]
    pub(crate) affected: AffectedVersions,
    /// Versions listed one by one as affected (OSV `versions`).
    #[serde(skip)]
    pub(crate) affected_list: Vec<Version>,
}

impl Advisory {
    /// Whether `version` of the package is affected, by RustSec's (or OSV's) rules.
    pub fn affects(&self, version: &Version) -> bool {
        self.affected.is_affected(version) || self.affected_list.contains(version)
    }

    /// The affected ranges, for reports.
    pub fn affected_versions(&self) -> &AffectedVersions {
        &self.affected
    }
}

#[derive(Deserialize)]
struct RawFile {
    advisory: RawMetadata,
    #[serde(default)]
    affected: Option<RawAffected>,
    versions: RawVersions,
}

#[derive(Deserialize)]
struct RawMetadata {
    id: String,
    package: String,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    cvss: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    related: Vec<String>,
    #[serde(default)]
    informational: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default, alias = "source")]
    registry: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawAffected {
    #[serde(default)]
    functions: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    os: Vec<String>,
    #[serde(default)]
    arch: Vec<String>,
}

#[derive(Deserialize)]
struct RawVersions {
    patched: Vec<String>,
    #[serde(default)]
    unaffected: Vec<String>,
}

/// The front matter of an advisory file: the TOML text and the byte offset where it starts.
fn front_matter(text: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    let mut start = None;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let content = content.trim_start_matches('\u{feff}');
        match start {
            None if content.trim_end() == "```toml" => start = Some(offset + line.len()),
            None if content.trim().is_empty() => {}
            None => return None,
            Some(begin) if content.trim_end() == "```" => return Some((begin, offset)),
            Some(_) => {}
        }
        offset += line.len();
    }
    None
}

/// Title and description from the Markdown after the front matter.
fn title_and_description(markdown: &str) -> (Option<String>, String) {
    let mut lines = markdown.lines().skip_while(|line| line.trim().is_empty());
    match lines.next() {
        Some(first) if first.starts_with("# ") => {
            let title = first.trim_start_matches('#').trim().to_owned();
            let rest: Vec<&str> = lines.collect();
            (Some(title), rest.join("\n").trim().to_owned())
        }
        Some(first) => {
            let mut description = first.to_owned();
            for line in lines {
                description.push('\n');
                description.push_str(line);
            }
            (None, description.trim().to_owned())
        }
        None => (None, String::new()),
    }
}

/// Parses a RustSec advisory file's text; `path` is only for messages and the result.
pub fn parse_rustsec(path: &Path, text: &str) -> Result<Advisory> {
    let error_at = |position: Option<Position>, message: String| SupplyError::Advisory {
        path: path.to_owned(),
        position,
        message,
    };
    let (begin, end) = front_matter(text).ok_or_else(|| {
        error_at(
            Some(Position { line: 1, column: 1 }),
            "no TOML front matter: the file must start with a ```toml fenced block".to_owned(),
        )
    })?;
    let toml_text = &text[begin..end];
    let raw: RawFile = toml::from_str(toml_text).map_err(|error| {
        let position = error
            .span()
            .map(|span| Position::of_offset(text, begin + span.start));
        error_at(position, error.message().trim().to_owned())
    })?;
    // Positions of semantic errors: the line of the key in the front matter.
    let key_position = |key: &str| -> Option<Position> {
        let offset = toml_text.find(key)?;
        Some(Position::of_offset(text, begin + offset))
    };
    let metadata = raw.advisory;
    if metadata.id.trim().is_empty() {
        return Err(error_at(key_position("id"), "empty advisory id".to_owned()));
    }
    let patched = parse_requirements(&raw.versions.patched)
        .map_err(|message| error_at(key_position("patched"), message))?;
    let unaffected = parse_requirements(&raw.versions.unaffected)
        .map_err(|message| error_at(key_position("unaffected"), message))?;
    let affected = AffectedVersions::from_requirements(&patched, &unaffected)
        .map_err(|message| error_at(key_position("[versions]"), message))?;
    let cvss = match &metadata.cvss {
        Some(vector) => Some(
            Rating::from_vector(vector)
                .map_err(|message| error_at(key_position("cvss"), message))?,
        ),
        None => None,
    };
    let (markdown_title, markdown_description) =
        title_and_description(text[end..].trim_start_matches("```"));
    let title = metadata
        .title
        .or(markdown_title)
        .unwrap_or_else(|| metadata.id.clone());
    let description = metadata.description.unwrap_or(markdown_description);
    let raw_affected = raw.affected.unwrap_or_default();
    Ok(Advisory {
        id: metadata.id,
        package: metadata.package,
        origin: crate::advisory::Origin::RustSec,
        path: path.to_owned(),
        date: metadata.date,
        title,
        description,
        url: metadata.url,
        aliases: metadata.aliases,
        related: metadata.related,
        categories: metadata.categories,
        cvss,
        informational: metadata.informational.as_deref().map(Informational::parse),
        withdrawn: metadata.withdrawn,
        functions: raw_affected
            .functions
            .into_iter()
            .map(|(path, versions)| AffectedFunction { path, versions })
            .collect(),
        os: raw_affected.os,
        arch: raw_affected.arch,
        patched: raw.versions.patched,
        unaffected: raw.versions.unaffected,
        registry: metadata.registry,
        affected,
        affected_list: Vec::new(),
    })
}
