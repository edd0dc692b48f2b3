//! Waivers (VEX statements): accepted findings, each with a reason, an approver and an expiry.
//!
//! The file is TOML, one `[[waiver]]` table per waiver; every key is required and no other key
//! is accepted:
//!
//! ```toml
//! [[waiver]]
//! advisory = "RUSTSEC-2023-0071"   # the advisory id, or one of its aliases (CVE-…, GHSA-…)
//! package = "rsa"                  # the crate the finding is about
//! reason = "no RSA decryption with attacker-timed keys; tracked in issue 42"
//! expires = "2026-06-30"           # last day the waiver counts (inclusive); quoted or not
//! approved_by = "security-officer"
//! ```
//!
//! A waiver applies to a finding only when both its advisory and its package match. From the
//! day after `expires` it no longer counts: the finding is reported as unwaived and carries
//! the expired waiver (with its date) so the report says why. Errors name the file, line and
//! column.

use std::path::{Path, PathBuf};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Position, Result, SupplyError};

/// One waiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiver {
    /// The advisory id (or alias) it waives.
    pub advisory: String,
    /// The package it waives it for.
    pub package: String,
    /// Why the risk is accepted.
    pub reason: String,
    /// Last day it counts.
    pub expires: Date,
    /// Who approved it.
    pub approved_by: String,
    /// Line of its `[[waiver]]` header in the file, for messages (0 when built in code).
    pub line: usize,
}

impl Waiver {
    /// Whether it still counts on `today` (the expiry day included).
    pub fn is_valid_on(&self, today: Date) -> bool {
        today <= self.expires
    }
}

/// The waivers of one file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Waivers {
    /// The file they were read from, when they were.
    pub path: Option<PathBuf>,
    /// The waivers, in file order.
    pub waivers: Vec<Waiver>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    waiver: Vec<Spanned<RawWaiver>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaiver {
    advisory: Spanned<String>,
    package: Spanned<String>,
    reason: Spanned<String>,
    expires: Spanned<toml::Value>,
    approved_by: Spanned<String>,
}

impl Waivers {
    /// No waivers.
    pub fn none() -> Self {
        Self::default()
    }

    /// Waivers built in code.
    pub fn from_waivers(waivers: Vec<Waiver>) -> Self {
        Self {
            path: None,
            waivers,
        }
    }

    /// Reads a waiver file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SupplyError::io(path, source))?;
        let mut waivers = Self::parse(path, &text)?;
        waivers.path = Some(path.to_owned());
        Ok(waivers)
    }

    /// Parses a waiver file's text; `path` is for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let error_at = |offset: Option<usize>, message: String| SupplyError::Waiver {
            path: path.to_owned(),
            position: offset.map(|offset| Position::of_offset(text, offset)),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|error| {
            error_at(
                error.span().map(|span| span.start),
                error.message().trim().to_owned(),
            )
        })?;
        let mut waivers = Vec::with_capacity(raw.waiver.len());
        for entry in raw.waiver {
            let header = entry.span().start;
            let raw = entry.into_inner();
            let required = |field: &Spanned<String>, name: &str| -> Result<String> {
                let value = field.get_ref().trim();
                if value.is_empty() {
                    Err(error_at(
                        Some(field.span().start),
                        format!("`{name}` must not be empty"),
                    ))
                } else {
                    Ok(value.to_owned())
                }
            };
            let advisory = required(&raw.advisory, "advisory")?;
            let package = required(&raw.package, "package")?;
            let reason = required(&raw.reason, "reason")?;
            let approved_by = required(&raw.approved_by, "approved_by")?;
            // A quoted date or a TOML date literal (`expires = 2026-06-30`).
            let expires_text = match raw.expires.get_ref() {
                toml::Value::String(text) => text.trim().to_owned(),
                toml::Value::Datetime(datetime)
                    if datetime.date.is_some() && datetime.time.is_none() =>
                {
                    datetime.to_string()
                }
                other => other.to_string(),
            };
            let expires: Date = expires_text.parse().map_err(|error| {
                error_at(
                    Some(raw.expires.span().start),
                    format!(
                        "`expires` must be a date like 2026-06-30, not `{expires_text}`: {error}"
                    ),
                )
            })?;
            waivers.push(Waiver {
                advisory,
                package,
                reason,
                expires,
                approved_by,
                line: Position::of_offset(text, header).line,
            });
        }
        Ok(Self {
            path: None,
            waivers,
        })
    }

    /// The waivers for one advisory (matched by id or any alias) and package: the first valid
    /// one on `today`, else the first expired one.
    pub fn lookup<'a>(
        &'a self,
        ids: impl Iterator<Item = &'a str> + Clone,
        package: &str,
        today: Date,
    ) -> (Option<&'a Waiver>, Option<&'a Waiver>) {
        let mut matching = self.waivers.iter().filter(move |waiver| {
            waiver.package == package && ids.clone().any(|id| id == waiver.advisory)
        });
        let mut expired = None;
        for waiver in matching.by_ref() {
            if waiver.is_valid_on(today) {
                return (Some(waiver), None);
            }
            expired.get_or_insert(waiver);
        }
        (None, expired)
    }
}
