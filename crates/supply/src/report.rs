//! The result of a scan: findings, counts and the high-risk verdict.
//!
//! Vulnerabilities and informational advisories are kept apart: only vulnerabilities count
//! toward [`Report::high_risk`]. A vulnerability makes the report high risk when it is not
//! covered by a valid waiver and its severity is high, critical or unknown (no CVSS vector).
//! Renderers for these types are in [`crate::render`]. This module reads no files and matches
//! nothing; [`mod@crate::scan`] fills it.

use std::path::PathBuf;

use jiff::Timestamp;
use jiff::civil::Date;
use semver::Version;
use serde::Serialize;

use crate::advisory::{AffectedFunction, Informational, Origin};
use crate::database::Revision;
use crate::severity::{CvssVersion, Severity};
use crate::waiver::Waiver;

/// The waiver that covers (or used to cover) a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaiverRef {
    /// Who approved it.
    pub approved_by: String,
    /// Why.
    pub reason: String,
    /// Last day it counts.
    pub expires: Date,
    /// Its line in the waiver file (0 when built in code).
    pub line: usize,
}

impl From<&Waiver> for WaiverRef {
    fn from(waiver: &Waiver) -> Self {
        Self {
            approved_by: waiver.approved_by.clone(),
            reason: waiver.reason.clone(),
            expires: waiver.expires,
            line: waiver.line,
        }
    }
}

/// One advisory that applies to one package version.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Crate name.
    pub package: String,
    /// The locked version.
    pub version: Version,
    /// `RUSTSEC-…` or the OSV id.
    pub advisory_id: String,
    /// Other ids (CVE, GHSA, …).
    pub aliases: Vec<String>,
    /// One-line title.
    pub title: String,
    /// Qualitative severity; `unknown` without a CVSS vector.
    pub severity: Severity,
    /// CVSS base score, when there is a vector.
    pub score: Option<f64>,
    /// The CVSS vector, when there is one.
    pub vector: Option<String>,
    /// Its CVSS version.
    pub cvss_version: Option<CvssVersion>,
    /// Requirements of the versions that fix it.
    pub patched: Vec<String>,
    /// Requirements of versions never affected.
    pub unaffected: Vec<String>,
    /// The advisory's URL.
    pub url: Option<String>,
    /// The advisory's date.
    pub date: Option<String>,
    /// The kind, for informational advisories (none for vulnerabilities).
    pub informational: Option<Informational>,
    /// Functions the advisory names (not used to filter).
    pub functions: Vec<AffectedFunction>,
    /// Operating systems the advisory names (not used to filter).
    pub os: Vec<String>,
    /// Architectures the advisory names (not used to filter).
    pub arch: Vec<String>,
    /// Which kind of file it came from.
    pub origin: Origin,
    /// The advisory file.
    pub advisory_path: PathBuf,
    /// The valid waiver covering it.
    pub waived_by: Option<WaiverRef>,
    /// A waiver that matched but expired (set only when no valid waiver covers it).
    pub expired_waiver: Option<WaiverRef>,
}

impl Finding {
    /// Whether this finding makes the report high risk (vulnerabilities only).
    pub fn is_high_risk(&self) -> bool {
        self.informational.is_none() && self.waived_by.is_none() && self.severity.is_high_risk()
    }
}

/// Counts for summaries and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Packages scanned.
    pub packages: usize,
    /// Vulnerability findings, waived or not.
    pub vulnerabilities: usize,
    /// Vulnerabilities covered by a valid waiver.
    pub waived: usize,
    /// Unwaived vulnerabilities with severity critical.
    pub critical: usize,
    /// Unwaived, high.
    pub high: usize,
    /// Unwaived, medium.
    pub medium: usize,
    /// Unwaived, low.
    pub low: usize,
    /// Unwaived, none (score 0.0).
    pub none: usize,
    /// Unwaived, unknown severity (counted as high).
    pub unknown: usize,
    /// Findings whose only matching waiver has expired.
    pub expired_waivers: usize,
    /// Informational findings.
    pub informational: usize,
    /// Of which `unmaintained`.
    pub unmaintained: usize,
    /// Of which `unsound`.
    pub unsound: usize,
    /// Of which `notice` (or another kind).
    pub notice: usize,
    /// Yanked versions (known only with a registry index copy).
    pub yanked: usize,
}

/// What was scanned against.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseInfo {
    /// The advisory-db folder.
    pub path: PathBuf,
    /// The revision, as text (see [`crate::database`]).
    pub revision: String,
    /// Its parts.
    pub revision_detail: Revision,
    /// OSV files included.
    pub osv_files: Vec<PathBuf>,
    /// Advisory files parsed for this scan.
    pub advisories_read: usize,
}

/// The registry index copy yanked versions were looked up in.
#[derive(Debug, Clone, Serialize)]
pub struct IndexInfo {
    /// The folder.
    pub path: PathBuf,
    /// crates.io packages looked up.
    pub checked: usize,
    /// Of which the copy has no such crate or version (a stale or partial copy).
    pub unknown: usize,
}

/// A locked version its registry has yanked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Yanked {
    /// Crate name.
    pub package: String,
    /// The locked version.
    pub version: Version,
}

/// The result of a scan.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The database.
    pub database: DatabaseInfo,
    /// The lockfile, when the packages came from one.
    pub lockfile: Option<PathBuf>,
    /// The waiver file, when there was one.
    pub waivers_file: Option<PathBuf>,
    /// When the scan ran.
    pub scanned_at: Timestamp,
    /// The day waivers were judged against.
    pub today: Date,
    /// How long it took, in milliseconds (for [`crate::scan_files`]: including opening the
    /// database and reading the lockfile).
    pub duration_ms: f64,
    /// Vulnerabilities, sorted by package, version and id.
    pub vulnerabilities: Vec<Finding>,
    /// Informational advisories (unmaintained, unsound, notice), kept apart.
    pub informational: Vec<Finding>,
    /// Waivers that matched no finding.
    pub unused_waivers: Vec<Waiver>,
    /// The registry index copy, when yanked versions were looked up.
    pub index: Option<IndexInfo>,
    /// Yanked versions, sorted (reported apart; they never make the report high risk).
    pub yanked: Vec<Yanked>,
    /// Counts.
    pub counts: Counts,
    /// Same as [`Report::high_risk`], for JSON readers.
    pub high_risk: bool,
}

impl Report {
    /// Whether any unwaived vulnerability is high, critical or of unknown severity.
    pub fn high_risk(&self) -> bool {
        self.vulnerabilities.iter().any(Finding::is_high_risk)
    }

    /// Ids of the findings that make the report high risk (for decisions to name them).
    pub fn high_risk_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .vulnerabilities
            .iter()
            .filter(|finding| finding.is_high_risk())
            .map(|finding| finding.advisory_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Recomputes [`Report::counts`] and [`Report::high_risk`] from the findings.
    pub fn recount(&mut self, packages: usize) {
        let mut counts = Counts {
            packages,
            vulnerabilities: self.vulnerabilities.len(),
            informational: self.informational.len(),
            yanked: self.yanked.len(),
            ..Counts::default()
        };
        for finding in self.vulnerabilities.iter().chain(&self.informational) {
            if finding.waived_by.is_none() && finding.expired_waiver.is_some() {
                counts.expired_waivers += 1;
            }
        }
        for finding in &self.vulnerabilities {
            if finding.waived_by.is_some() {
                counts.waived += 1;
                continue;
            }
            let slot = match finding.severity {
                Severity::Critical => &mut counts.critical,
                Severity::High => &mut counts.high,
                Severity::Medium => &mut counts.medium,
                Severity::Low => &mut counts.low,
                Severity::None => &mut counts.none,
                Severity::Unknown => &mut counts.unknown,
            };
            *slot += 1;
        }
        for finding in &self.informational {
            match finding.informational {
                Some(Informational::Unmaintained) => counts.unmaintained += 1,
                Some(Informational::Unsound) => counts.unsound += 1,
                _ => counts.notice += 1,
            }
        }
        self.counts = counts;
        self.high_risk = self.high_risk();
    }
}
