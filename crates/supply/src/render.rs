//! Renderers of a [`Report`]: a plain-text table, JSON, SARIF 2.1.0 and CycloneDX 1.6 VEX.
//!
//! - JSON is the report's own serde form.
//! - SARIF: one rule per advisory and one result per finding, located in the lockfile; the
//!   level is `error` for what makes the report high risk, `warning` for other unwaived
//!   vulnerabilities, `note` for informational findings; waived findings carry an accepted
//!   external suppression with the waiver's reason; `security-severity` holds the CVSS score
//!   as code-scanning tools expect. A yanked version is a `warning` of the rule `yanked`.
//! - CycloneDX: the affected packages as components and one `vulnerabilities` entry per
//!   finding, with CVSS ratings; a waived finding has `analysis.state = "not_affected"` and the
//!   waiver in `analysis.detail`; an unwaived one `in_triage`. Informational findings are not
//!   vulnerabilities and are left out, as are yanked versions.
//!
//! Renderers only format; they decide nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::report::{Finding, Report};
use crate::severity::{CvssVersion, Severity};

/// The tool name written into SARIF and CycloneDX documents.
pub const TOOL_NAME: &str = "portcullis-supply";
/// The tool version.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The SARIF rule of yanked versions.
const YANKED_RULE: &str = "yanked";

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"))
    }

    /// A plain-text table for terminals and logs.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "database {} (revision {}), {} packages, {:.1} ms",
            self.database.path.display(),
            self.database.revision,
            self.counts.packages,
            self.duration_ms
        );
        section(&mut out, "Vulnerabilities", &self.vulnerabilities);
        section(&mut out, "Informational", &self.informational);
        if let Some(index) = &self.index {
            let _ = writeln!(
                out,
                "registry index {}: {} crates.io packages looked up, {} not in it, {} yanked",
                index.path.display(),
                index.checked,
                index.unknown,
                self.yanked.len()
            );
            for yanked in &self.yanked {
                let _ = writeln!(out, "yanked: {} {}", yanked.package, yanked.version);
            }
        }
        for finding in self.vulnerabilities.iter().chain(&self.informational) {
            if let (None, Some(expired)) = (&finding.waived_by, &finding.expired_waiver) {
                let _ = writeln!(
                    out,
                    "expired waiver: {} {} (approved by {}) expired on {}",
                    finding.advisory_id, finding.package, expired.approved_by, expired.expires
                );
            }
        }
        for waiver in &self.unused_waivers {
            let _ = writeln!(
                out,
                "unused waiver: {} {} (line {})",
                waiver.advisory, waiver.package, waiver.line
            );
        }
        let counts = &self.counts;
        let _ = writeln!(
            out,
            "{} vulnerabilities ({} waived; unwaived: {} critical, {} high, {} medium, {} low, {} none, {} unknown), {} informational ({} unmaintained, {} unsound, {} notice)",
            counts.vulnerabilities,
            counts.waived,
            counts.critical,
            counts.high,
            counts.medium,
            counts.low,
            counts.none,
            counts.unknown,
            counts.informational,
            counts.unmaintained,
            counts.unsound,
            counts.notice
        );
        let _ = writeln!(
            out,
            "high risk: {}",
            if self.high_risk() {
                format!("yes ({})", self.high_risk_ids().join(", "))
            } else {
                "no".to_owned()
            }
        );
        out
    }

    /// A SARIF 2.1.0 log.
    pub fn to_sarif(&self) -> Value {
        let lockfile_uri = self.lockfile.as_ref().map_or_else(
            || "Cargo.lock".to_owned(),
            |path| path.display().to_string(),
        );
        let mut rules: BTreeMap<&str, Value> = BTreeMap::new();
        let mut results = Vec::new();
        for finding in self.vulnerabilities.iter().chain(&self.informational) {
            rules
                .entry(finding.advisory_id.as_str())
                .or_insert_with(|| {
                    let mut properties = json!({
                        "tags": ["security", "dependency"],
                    });
                    if let Some(score) = finding.score {
                        properties["security-severity"] = json!(format!("{score:.1}"));
                    }
                    if let Some(kind) = &finding.informational {
                        properties["informational"] = json!(kind.as_str());
                    }
                    let mut rule = json!({
                        "id": finding.advisory_id,
                        "shortDescription": { "text": finding.title },
                        "properties": properties,
                    });
                    if let Some(url) = &finding.url {
                        rule["helpUri"] = json!(url);
                    }
                    rule
                });
            let level = if finding.informational.is_some() || finding.waived_by.is_some() {
                "note"
            } else if finding.is_high_risk() {
                "error"
            } else {
                "warning"
            };
            let mut result = json!({
                "ruleId": finding.advisory_id,
                "level": level,
                "message": { "text": finding_message(finding) },
                "locations": [{
                    "physicalLocation": { "artifactLocation": { "uri": lockfile_uri } },
                    "logicalLocations": [{ "name": finding.package, "fullyQualifiedName": format!("{}@{}", finding.package, finding.version), "kind": "package" }],
                }],
                "properties": {
                    "package": finding.package,
                    "version": finding.version.to_string(),
                    "severity": finding.severity.as_str(),
                },
            });
            if let Some(waiver) = &finding.waived_by {
                result["suppressions"] = json!([{
                    "kind": "external",
                    "status": "accepted",
                    "justification": format!("{} (approved by {}, expires {})", waiver.reason, waiver.approved_by, waiver.expires),
                }]);
            }
            results.push(result);
        }
        if !self.yanked.is_empty() {
            rules.insert(
                YANKED_RULE,
                json!({
                    "id": YANKED_RULE,
                    "shortDescription": { "text": "The locked version was yanked from its registry" },
                    "properties": { "tags": ["dependency"] },
                }),
            );
        }
        for yanked in &self.yanked {
            results.push(json!({
                "ruleId": YANKED_RULE,
                "level": "warning",
                "message": { "text": format!("{} {} is yanked", yanked.package, yanked.version) },
                "locations": [{
                    "physicalLocation": { "artifactLocation": { "uri": lockfile_uri } },
                    "logicalLocations": [{ "name": yanked.package, "fullyQualifiedName": format!("{}@{}", yanked.package, yanked.version), "kind": "package" }],
                }],
                "properties": { "package": yanked.package, "version": yanked.version.to_string() },
            }));
        }
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": { "driver": {
                    "name": TOOL_NAME,
                    "version": TOOL_VERSION,
                    "rules": rules.into_values().collect::<Vec<_>>(),
                }},
                "results": results,
                "properties": {
                    "databaseRevision": self.database.revision,
                    "highRisk": self.high_risk(),
                },
            }],
        })
    }

    /// A CycloneDX 1.6 VEX document (JSON).
    pub fn to_cyclonedx_vex(&self) -> Value {
        let mut components: BTreeMap<String, Value> = BTreeMap::new();
        let mut vulnerabilities = Vec::new();
        for finding in &self.vulnerabilities {
            let purl = format!("pkg:cargo/{}@{}", finding.package, finding.version);
            components.entry(purl.clone()).or_insert_with(|| {
                json!({
                    "type": "library",
                    "bom-ref": purl,
                    "name": finding.package,
                    "version": finding.version.to_string(),
                    "purl": purl,
                })
            });
            let mut vulnerability = json!({
                "bom-ref": format!("{}/{}", finding.advisory_id, purl),
                "id": finding.advisory_id,
                "source": source_of(&finding.advisory_id, finding.url.as_deref()),
                "description": finding.title,
                "affects": [{
                    "ref": purl,
                    "versions": [{ "version": finding.version.to_string(), "status": "affected" }],
                }],
            });
            if !finding.aliases.is_empty() {
                vulnerability["references"] = Value::Array(
                    finding
                        .aliases
                        .iter()
                        .map(|alias| json!({ "id": alias, "source": source_of(alias, None) }))
                        .collect(),
                );
            }
            if let (Some(score), Some(vector), Some(version)) =
                (finding.score, &finding.vector, finding.cvss_version)
            {
                vulnerability["ratings"] = json!([{
                    "score": score,
                    "severity": cyclonedx_severity(finding.severity),
                    "method": match version {
                        CvssVersion::V30 => "CVSSv3",
                        CvssVersion::V31 => "CVSSv31",
                        CvssVersion::V40 => "CVSSv4",
                    },
                    "vector": vector,
                }]);
            } else {
                vulnerability["ratings"] = json!([{ "severity": "unknown" }]);
            }
            if !finding.patched.is_empty() {
                vulnerability["recommendation"] = json!(format!(
                    "upgrade to a version matching {}",
                    finding.patched.join(" or ")
                ));
            }
            if let Some(url) = &finding.url {
                vulnerability["advisories"] = json!([{ "url": url }]);
            }
            vulnerability["analysis"] = match (&finding.waived_by, &finding.expired_waiver) {
                (Some(waiver), _) => json!({
                    "state": "not_affected",
                    "detail": format!("waived by {} until {}: {}", waiver.approved_by, waiver.expires, waiver.reason),
                }),
                (None, Some(expired)) => json!({
                    "state": "in_triage",
                    "detail": format!("waiver by {} expired on {}", expired.approved_by, expired.expires),
                }),
                (None, None) => json!({ "state": "in_triage" }),
            };
            vulnerabilities.push(vulnerability);
        }
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "version": 1,
            "metadata": {
                "timestamp": self.scanned_at.to_string(),
                "tools": { "components": [{ "type": "application", "name": TOOL_NAME, "version": TOOL_VERSION }] },
                "properties": [{ "name": "portcullis:advisory-db-revision", "value": self.database.revision }],
            },
            "components": components.into_values().collect::<Vec<_>>(),
            "vulnerabilities": vulnerabilities,
        })
    }
}

fn finding_message(finding: &Finding) -> String {
    let mut message = format!(
        "{} {}: {} ({})",
        finding.package, finding.version, finding.title, finding.advisory_id
    );
    match finding.score {
        Some(score) => {
            let _ = write!(message, ", severity {} {score:.1}", finding.severity);
        }
        None => {
            let _ = write!(message, ", severity {}", finding.severity);
        }
    }
    if !finding.patched.is_empty() {
        let _ = write!(message, "; patched: {}", finding.patched.join(" | "));
    }
    message
}

fn source_of(id: &str, url: Option<&str>) -> Value {
    let (name, default_url) = if id.starts_with("RUSTSEC-") {
        (
            "RustSec",
            format!("https://rustsec.org/advisories/{id}.html"),
        )
    } else if id.starts_with("GHSA-") {
        ("GitHub", format!("https://github.com/advisories/{id}"))
    } else if id.starts_with("CVE-") {
        ("NVD", format!("https://nvd.nist.gov/vuln/detail/{id}"))
    } else {
        return match url {
            Some(url) => json!({ "url": url }),
            None => json!({ "name": "OSV" }),
        };
    };
    json!({ "name": name, "url": default_url })
}

fn cyclonedx_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::None => "none",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
        Severity::Unknown => "unknown",
    }
}

fn section(out: &mut String, heading: &str, findings: &[Finding]) {
    let _ = writeln!(out, "\n{heading} ({})", findings.len());
    if findings.is_empty() {
        return;
    }
    let rows: Vec<[String; 7]> = findings
        .iter()
        .map(|finding| {
            [
                finding.package.clone(),
                finding.version.to_string(),
                finding.advisory_id.clone(),
                match &finding.informational {
                    Some(kind) => kind.as_str().to_owned(),
                    None => finding.severity.as_str().to_owned(),
                },
                finding
                    .score
                    .map_or_else(|| "-".to_owned(), |score| format!("{score:.1}")),
                if finding.patched.is_empty() {
                    "none".to_owned()
                } else {
                    finding.patched.join(" | ")
                },
                match (&finding.waived_by, &finding.expired_waiver) {
                    (Some(waiver), _) => {
                        format!("waived by {} until {}", waiver.approved_by, waiver.expires)
                    }
                    (None, Some(expired)) => format!("waiver expired {}", expired.expires),
                    (None, None) => String::new(),
                },
            ]
        })
        .collect();
    let kind = if findings
        .iter()
        .all(|finding| finding.informational.is_some())
    {
        "kind"
    } else {
        "severity"
    };
    let header = [
        "package", "version", "advisory", kind, "score", "patched", "waiver",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&header);
    for (row, finding) in rows.iter().zip(findings) {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
        line(&["", "", &finding.title]);
    }
}
