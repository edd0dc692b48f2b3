//! OSV JSON advisories (<https://ossf.github.io/osv-schema/>) for crates.io packages.
//!
//! Each `affected[]` entry whose `package.ecosystem` is `crates.io` becomes one [`Advisory`].
//! Affected versions are the explicit `versions` list plus the `SEMVER` and `ECOSYSTEM`
//! ranges, evaluated as OSV specifies: events sorted by version, `introduced` opens an affected
//! interval, `fixed` closes it before the fixed version, `last_affected` closes it after that
//! version; `limit` events and `GIT` ranges say nothing about crate versions and are ignored.
//! The severity is the first `CVSS_V4` or `CVSS_V3` vector of the entry or the record, or
//! else a `cvss` string under `database_specific` (as RustSec's own OSV export writes it).
//! RustSec's export also puts `informational` under `database_specific`, and affected
//! functions, OS and architectures under `ecosystem_specific.affects`; both are read.
//!
//! This module reads single files; [`crate::database`] decides which files to read.

use std::path::Path;

use semver::Version;
use serde::Deserialize;
use serde_json::Value;

use crate::advisory::{Advisory, AffectedFunction, Informational, Origin};
use crate::error::{Position, Result, SupplyError};
use crate::severity::Rating;
use crate::version::{AffectedRange, AffectedVersions, next_version};

#[derive(Deserialize)]
struct RawRecord {
    id: String,
    #[serde(default)]
    published: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    related: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    severity: Vec<RawSeverity>,
    #[serde(default)]
    affected: Vec<RawAffected>,
    #[serde(default)]
    references: Vec<RawReference>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawReference {
    #[serde(rename = "type", default)]
    kind: String,
    url: String,
}

#[derive(Deserialize)]
struct RawAffected {
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(default)]
    severity: Vec<RawSeverity>,
    #[serde(default)]
    ranges: Vec<RawRange>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    ecosystem_specific: Option<Value>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<serde_json::Map<String, Value>>,
}

/// The ecosystem name OSV uses for crates.
pub const CRATES_IO: &str = "crates.io";

#[derive(Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Introduced,
    Fixed,
    LastAffected,
}

/// Parses an OSV record's text; returns one advisory per crates.io package it affects.
pub fn parse_osv(path: &Path, text: &str) -> Result<Vec<Advisory>> {
    let error_at = |position: Option<Position>, message: String| SupplyError::Osv {
        path: path.to_owned(),
        position,
        message,
    };
    let record: RawRecord = serde_json::from_str(text).map_err(|error| {
        error_at(
            Some(Position {
                line: error.line(),
                column: error.column(),
            }),
            error.to_string(),
        )
    })?;
    let record_cvss = first_vector(&record.severity)
        .or_else(|| database_specific_string(record.database_specific.as_ref(), "cvss"));
    let record_informational =
        database_specific_string(record.database_specific.as_ref(), "informational");
    let url = database_specific_string(record.database_specific.as_ref(), "url").or_else(|| {
        record
            .references
            .iter()
            .find(|reference| reference.kind == "ADVISORY")
            .or_else(|| record.references.first())
            .map(|reference| reference.url.clone())
    });
    let title = record
        .summary
        .clone()
        .filter(|summary| !summary.trim().is_empty())
        .or_else(|| {
            record
                .details
                .as_deref()
                .and_then(|details| details.lines().find(|line| !line.trim().is_empty()))
                .map(|line| line.trim().trim_start_matches('#').trim().to_owned())
        })
        .unwrap_or_else(|| record.id.clone());
    let mut advisories = Vec::new();
    for affected in &record.affected {
        let Some(package) = &affected.package else {
            continue;
        };
        if package.ecosystem != CRATES_IO {
            continue;
        }
        let mut ranges = Vec::new();
        let mut patched = Vec::new();
        for range in &affected.ranges {
            if range.kind != "SEMVER" && range.kind != "ECOSYSTEM" {
                continue;
            }
            let (converted, fixed) =
                convert_range(range).map_err(|message| error_at(None, message))?;
            ranges.extend(converted);
            patched.extend(fixed);
        }
        let mut affected_list = Vec::with_capacity(affected.versions.len());
        for version in &affected.versions {
            affected_list.push(Version::parse(version).map_err(|error| {
                error_at(
                    None,
                    format!("bad version `{version}` in `versions`: {error}"),
                )
            })?);
        }
        let vector = first_vector(&affected.severity)
            .or_else(|| database_specific_string(affected.database_specific.as_ref(), "cvss"))
            .or_else(|| record_cvss.clone());
        let cvss = match vector {
            Some(vector) => {
                Some(Rating::from_vector(&vector).map_err(|message| error_at(None, message))?)
            }
            None => None,
        };
        let informational =
            database_specific_string(affected.database_specific.as_ref(), "informational")
                .or_else(|| record_informational.clone())
                .map(|kind| Informational::parse(&kind));
        let affects = affected
            .ecosystem_specific
            .as_ref()
            .and_then(|specific| specific.get("affects"));
        let strings = |key: &str| -> Vec<String> {
            affects
                .and_then(|affects| affects.get(key))
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        advisories.push(Advisory {
            id: record.id.clone(),
            package: package.name.clone(),
            origin: Origin::Osv,
            path: path.to_owned(),
            date: record
                .published
                .as_ref()
                .map(|date| date.chars().take(10).collect()),
            title: title.clone(),
            description: record.details.clone().unwrap_or_default(),
            url: url.clone(),
            aliases: record.aliases.clone(),
            related: record.related.clone(),
            categories: Vec::new(),
            cvss,
            informational,
            withdrawn: record.withdrawn.clone(),
            functions: strings("functions")
                .into_iter()
                .map(|path| AffectedFunction {
                    path,
                    versions: Vec::new(),
                })
                .collect(),
            os: strings("os"),
            arch: strings("arch"),
            patched,
            unaffected: Vec::new(),
            registry: None,
            affected: AffectedVersions::from_ranges(ranges),
            affected_list,
        });
    }
    Ok(advisories)
}

/// Converts one OSV range's events into `[introduced, fixed)` ranges, and the `>= fixed`
/// requirements for the report.
fn convert_range(range: &RawRange) -> Result<(Vec<AffectedRange>, Vec<String>), String> {
    let mut events: Vec<(EventKind, Option<Version>)> = Vec::new();
    for event in &range.events {
        for (key, value) in event {
            let kind = match key.as_str() {
                "introduced" => EventKind::Introduced,
                "fixed" => EventKind::Fixed,
                "last_affected" => EventKind::LastAffected,
                _ => continue,
            };
            let text = value
                .as_str()
                .ok_or_else(|| format!("event `{key}` must be a version string"))?;
            let version = if kind == EventKind::Introduced && text == "0" {
                None
            } else {
                Some(
                    Version::parse(text)
                        .map_err(|error| format!("bad version `{text}` in `{key}`: {error}"))?,
                )
            };
            events.push((kind, version));
        }
    }
    // "0" (None) sorts first; at equal versions an introduction comes before a fix.
    events.sort_by(|left, right| {
        left.1.cmp(&right.1).then_with(|| {
            (left.0 != EventKind::Introduced).cmp(&(right.0 != EventKind::Introduced))
        })
    });
    let mut ranges = Vec::new();
    let mut fixed_requirements = Vec::new();
    let mut open: Option<Option<Version>> = None;
    for (kind, version) in events {
        match kind {
            EventKind::Introduced => {
                if open.is_none() {
                    open = Some(version);
                }
            }
            EventKind::Fixed | EventKind::LastAffected => {
                let Some(version) = version else { continue };
                let fixed = if kind == EventKind::Fixed {
                    fixed_requirements.push(format!(">={version}"));
                    version
                } else {
                    next_version(&version)
                };
                if let Some(introduced) = open.take() {
                    ranges.push(AffectedRange {
                        introduced,
                        fixed: Some(fixed),
                    });
                }
            }
        }
    }
    if let Some(introduced) = open {
        ranges.push(AffectedRange {
            introduced,
            fixed: None,
        });
    }
    Ok((ranges, fixed_requirements))
}

fn first_vector(severity: &[RawSeverity]) -> Option<String> {
    severity
        .iter()
        .find(|entry| entry.kind == "CVSS_V4")
        .or_else(|| severity.iter().find(|entry| entry.kind == "CVSS_V3"))
        .map(|entry| entry.score.clone())
}

fn database_specific_string(specific: Option<&Value>, key: &str) -> Option<String> {
    specific?.get(key)?.as_str().map(str::to_owned)
}
