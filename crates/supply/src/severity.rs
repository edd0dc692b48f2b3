//! Severity from CVSS vectors.
//!
//! Scores come from the RustSec `cvss` crate, which implements the CVSS 3.0/3.1 base equations
//! and the CVSS 4.0 macro-vector lookup of FIRST's specification. The qualitative rating is
//! CVSS's own scale (the same for 3.x and 4.0): 0.0 none, 0.1–3.9 low, 4.0–6.9 medium,
//! 7.0–8.9 high, 9.0–10.0 critical. A finding without a usable vector has [`Severity::Unknown`],
//! which the report counts as high unless waived.
//!
//! This module only scores; which severities make a scan "high risk" is decided in
//! [`crate::report`].

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The qualitative severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Score 0.0.
    None,
    /// Score 0.1–3.9.
    Low,
    /// Score 4.0–6.9.
    Medium,
    /// Score 7.0–8.9.
    High,
    /// Score 9.0–10.0.
    Critical,
    /// No CVSS vector (or one that cannot be scored): treated as high unless waived.
    Unknown,
}

impl Severity {
    /// The CVSS qualitative rating of a score.
    pub fn from_score(score: f64) -> Self {
        if score >= 9.0 {
            Self::Critical
        } else if score >= 7.0 {
            Self::High
        } else if score >= 4.0 {
            Self::Medium
        } else if score > 0.0 {
            Self::Low
        } else {
            Self::None
        }
    }

    /// Lower-case name, as in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
            Self::Unknown => "unknown",
        }
    }

    /// Whether an unwaived vulnerability of this severity makes the scan high risk.
    pub fn is_high_risk(self) -> bool {
        matches!(self, Self::High | Self::Critical | Self::Unknown)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The CVSS version a vector is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CvssVersion {
    /// `CVSS:3.0/…`
    #[serde(rename = "3.0")]
    V30,
    /// `CVSS:3.1/…`
    #[serde(rename = "3.1")]
    V31,
    /// `CVSS:4.0/…`
    #[serde(rename = "4.0")]
    V40,
}

/// A scored CVSS vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rating {
    /// The vector as written in the advisory.
    pub vector: String,
    /// Its CVSS version.
    pub version: CvssVersion,
    /// The base score, 0.0–10.0, one decimal.
    pub score: f64,
    /// The qualitative rating of the score.
    pub severity: Severity,
}

impl Rating {
    /// Scores a CVSS 3.0, 3.1 or 4.0 vector string; the error says what is wrong with it.
    pub fn from_vector(vector: &str) -> Result<Self, String> {
        let vector = vector.trim();
        let parsed = cvss::Cvss::from_str(vector)
            .map_err(|error| format!("bad CVSS vector `{vector}`: {error}"))?;
        let version = match &parsed {
            cvss::Cvss::CvssV30(_) => CvssVersion::V30,
            cvss::Cvss::CvssV31(_) => CvssVersion::V31,
            cvss::Cvss::CvssV40(_) => CvssVersion::V40,
            _ => {
                return Err(format!(
                    "unsupported CVSS version in `{vector}` (3.0, 3.1 or 4.0)"
                ));
            }
        };
        // The parser accepts partial vectors; a score needs every base metric.
        let required: &[&str] = match version {
            CvssVersion::V30 | CvssVersion::V31 => &["AV", "AC", "PR", "UI", "S", "C", "I", "A"],
            CvssVersion::V40 => &[
                "AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
            ],
        };
        let present: Vec<&str> = vector
            .split('/')
            .skip(1)
            .filter_map(|metric| metric.split_once(':').map(|(name, _)| name))
            .collect();
        let missing: Vec<&str> = required
            .iter()
            .filter(|name| !present.contains(name))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "CVSS vector `{vector}` lacks base metrics {}",
                missing.join(", ")
            ));
        }
        // One decimal, as CVSS publishes scores; guards against binary fractions like 9.799999.
        let score = (parsed.score() * 10.0).round() / 10.0;
        Ok(Self {
            vector: vector.to_owned(),
            version,
            score,
            severity: Severity::from_score(score),
        })
    }
}
