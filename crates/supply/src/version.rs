//! RustSec's version-range semantics.
//!
//! An advisory's `[versions]` table lists `patched` and `unaffected` requirements (Cargo's
//! syntax, parsed by the `semver` crate). A version is affected unless it lies in one of them.
//! RustSec does not use `VersionReq::matches` for this: it turns every requirement into an
//! interval of versions ordered by SemVer precedence, checks that the intervals do not
//! overlap, and inverts their union into `[introduced, fixed)` ranges (the OSV form). This
//! module does the same, so that its answers equal cargo-audit's, including for pre-releases:
//!
//! - `>= 1.2.0` covers `1.3.0-beta` (precedence puts it above 1.2.0), whereas
//!   `VersionReq::matches` refuses pre-releases unless the requirement names the same
//!   `major.minor.patch` with a pre-release;
//! - `>= 1.2.0` does not cover `1.2.0-rc.1` (it is below 1.2.0), so that pre-release is
//!   affected;
//! - `^1.2.3` ends before `2.0.0-0`, and `~1.2` before `1.3.0-0`, so the next major's (or
//!   minor's) pre-releases are not covered.
//!
//! Requirements RustSec refuses are refused here too, with the same rules: more than two
//! comparators, two lower or two upper bounds, `=`/`^`/`~` combined with anything, wildcards,
//! an empty interval, and overlapping intervals.
//!
//! This module owns only the arithmetic of versions; it reads no files.

use std::cmp::Ordering;
use std::fmt;

use semver::{Comparator, Op, Prerelease, Version, VersionReq};
use serde::Serialize;

/// One end of an interval of versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// No limit in this direction.
    Unbounded,
    /// The version itself is inside.
    Inclusive(Version),
    /// The version itself is outside.
    Exclusive(Version),
}

impl Bound {
    /// The version of a bounded end.
    pub fn version(&self) -> Option<&Version> {
        match self {
            Self::Unbounded => None,
            Self::Inclusive(version) | Self::Exclusive(version) => Some(version),
        }
    }
}

/// Whether a start bound lies at or before an end bound (RustSec's `less_or_equal`): the
/// interval `[start, end]` they make is not empty.
fn start_at_or_before_end(start: &Bound, end: &Bound) -> bool {
    match (start.version(), end.version()) {
        (Some(start_version), Some(end_version)) => match start_version.cmp(end_version) {
            Ordering::Less => true,
            Ordering::Equal => {
                matches!((start, end), (Bound::Inclusive(_), Bound::Inclusive(_)))
            }
            Ordering::Greater => false,
        },
        _ => true,
    }
}

/// An interval of versions that a `patched` or `unaffected` requirement covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnaffectedRange {
    start: Bound,
    end: Bound,
}

impl UnaffectedRange {
    /// The interval between two bounds; `None` when it would be empty.
    pub fn new(start: Bound, end: Bound) -> Option<Self> {
        start_at_or_before_end(&start, &end).then_some(Self { start, end })
    }

    /// The lower end.
    pub fn start(&self) -> &Bound {
        &self.start
    }

    /// The upper end.
    pub fn end(&self) -> &Bound {
        &self.end
    }

    /// Converts a requirement the way RustSec does; the error says why it is refused.
    pub fn from_req(requirement: &VersionReq) -> Result<Self, String> {
        let comparators = &requirement.comparators;
        if comparators.len() > 2 {
            return Err(format!(
                "too many comparators in version requirement `{requirement}` (at most two)"
            ));
        }
        let mut start = Bound::Unbounded;
        let mut end = Bound::Unbounded;
        for comparator in comparators {
            let alone = |what: &str| -> Result<(), String> {
                if comparators.len() == 1 {
                    Ok(())
                } else {
                    Err(format!(
                        "a requirement that sets {what} (`{comparator}`) must be alone in `{requirement}`"
                    ))
                }
            };
            match comparator.op {
                Op::Greater | Op::GreaterEq => {
                    if start != Bound::Unbounded {
                        return Err(format!("two lower bounds in `{requirement}`"));
                    }
                    let version = comparator_version(comparator);
                    start = if comparator.op == Op::Greater {
                        Bound::Exclusive(version)
                    } else {
                        Bound::Inclusive(version)
                    };
                }
                Op::Less | Op::LessEq => {
                    if end != Bound::Unbounded {
                        return Err(format!("two upper bounds in `{requirement}`"));
                    }
                    let version = comparator_version(comparator);
                    end = if comparator.op == Op::Less {
                        Bound::Exclusive(version)
                    } else {
                        Bound::Inclusive(version)
                    };
                }
                Op::Exact => {
                    alone("an exact version")?;
                    let version = comparator_version(comparator);
                    start = Bound::Inclusive(version.clone());
                    end = Bound::Inclusive(version);
                }
                Op::Caret => {
                    alone("both bounds")?;
                    let first = comparator_version(comparator);
                    let mut last = if first.major == 0 {
                        match (comparator.minor, comparator.patch) {
                            (Some(0), Some(patch)) => Version::new(0, 0, patch + 1),
                            (Some(minor), _) => Version::new(0, minor + 1, 0),
                            (None, _) => Version::new(1, 0, 0),
                        }
                    } else {
                        Version::new(first.major + 1, 0, 0)
                    };
                    // `-0` is the lowest pre-release: without it `^1.0` would cover 2.0.0-alpha.
                    last.pre = lowest_prerelease();
                    start = Bound::Inclusive(first);
                    end = Bound::Exclusive(last);
                }
                Op::Tilde => {
                    alone("both bounds")?;
                    let first = comparator_version(comparator);
                    let mut last = match comparator.minor {
                        None => Version::new(comparator.major + 1, 0, 0),
                        Some(minor) => Version::new(comparator.major, minor + 1, 0),
                    };
                    last.pre = lowest_prerelease();
                    start = Bound::Inclusive(first);
                    end = Bound::Exclusive(last);
                }
                _ => {
                    return Err(format!(
                        "unsupported operator in `{comparator}` of `{requirement}`"
                    ));
                }
            }
        }
        Self::new(start, end).ok_or_else(|| {
            format!("empty version range `{requirement}`: its start is after its end")
        })
    }

    /// Whether `version` lies inside.
    pub fn contains(&self, version: &Version) -> bool {
        let above_start = match &self.start {
            Bound::Unbounded => true,
            Bound::Inclusive(start) => version >= start,
            Bound::Exclusive(start) => version > start,
        };
        let below_end = match &self.end {
            Bound::Unbounded => true,
            Bound::Inclusive(end) => version <= end,
            Bound::Exclusive(end) => version < end,
        };
        above_start && below_end
    }

    fn overlaps(&self, other: &Self) -> bool {
        start_at_or_before_end(&self.start, &other.end)
            && start_at_or_before_end(&other.start, &self.end)
    }
}

impl fmt::Display for UnaffectedRange {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.start {
            Bound::Unbounded => formatter.write_str("[0")?,
            Bound::Inclusive(version) => write!(formatter, "[{version}")?,
            Bound::Exclusive(version) => write!(formatter, "({version}")?,
        }
        formatter.write_str(", ")?;
        match &self.end {
            Bound::Unbounded => formatter.write_str("∞)"),
            Bound::Inclusive(version) => write!(formatter, "{version}]"),
            Bound::Exclusive(version) => write!(formatter, "{version})"),
        }
    }
}

/// The version a comparator names, with missing parts as zero (`>= 1.2` is `>= 1.2.0`).
fn comparator_version(comparator: &Comparator) -> Version {
    Version {
        major: comparator.major,
        minor: comparator.minor.unwrap_or(0),
        patch: comparator.patch.unwrap_or(0),
        pre: comparator.pre.clone(),
        build: semver::BuildMetadata::EMPTY,
    }
}

fn lowest_prerelease() -> Prerelease {
    Prerelease::new("0").unwrap_or(Prerelease::EMPTY)
}

/// The smallest version above `version` by SemVer precedence (`1.2.3` → `1.2.4-0`,
/// `1.2.3-rc.1` → `1.2.3-rc.1.0`), build metadata dropped.
pub fn next_version(version: &Version) -> Version {
    let mut next = version.clone();
    next.build = semver::BuildMetadata::EMPTY;
    if next.pre.is_empty() {
        next.patch += 1;
        next.pre = lowest_prerelease();
    } else {
        let longer = format!("{}.0", next.pre);
        next.pre = Prerelease::new(&longer).unwrap_or_else(|_| next.pre.clone());
    }
    next
}

/// A `[introduced, fixed)` range of affected versions; a missing end is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedRange {
    /// The first affected version (inclusive), or every version from the lowest.
    pub introduced: Option<Version>,
    /// The first version no longer affected (exclusive), or none yet.
    pub fixed: Option<Version>,
}

impl AffectedRange {
    /// Whether `version` is in the range.
    pub fn contains(&self, version: &Version) -> bool {
        self.introduced
            .as_ref()
            .is_none_or(|introduced| version >= introduced)
            && self.fixed.as_ref().is_none_or(|fixed| version < fixed)
    }
}

/// The affected versions of a RustSec advisory: the complement of its `patched` and
/// `unaffected` requirements, computed once when the advisory is loaded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AffectedVersions {
    ranges: Vec<AffectedRange>,
}

impl AffectedVersions {
    /// Builds the affected ranges from the two lists, refusing what RustSec refuses.
    pub fn from_requirements(
        patched: &[VersionReq],
        unaffected: &[VersionReq],
    ) -> Result<Self, String> {
        let mut covered = Vec::with_capacity(patched.len() + unaffected.len());
        for requirement in unaffected.iter().chain(patched) {
            covered.push(UnaffectedRange::from_req(requirement)?);
        }
        if covered.is_empty() {
            return Ok(Self {
                ranges: vec![AffectedRange {
                    introduced: None,
                    fixed: None,
                }],
            });
        }
        for (index, first) in covered.iter().enumerate() {
            for second in &covered[index + 1..] {
                if first.overlaps(second) {
                    return Err(format!("overlapping version ranges: {first} and {second}"));
                }
            }
        }
        // Disjoint intervals sort the same by either end; an unbounded start comes first.
        covered.sort_by(
            |left, right| match (left.start.version(), right.start.version()) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(left), Some(right)) => left.cmp(right),
            },
        );
        let mut ranges = Vec::with_capacity(covered.len() + 1);
        if let Some(first) = covered.first() {
            match &first.start {
                Bound::Unbounded => {}
                Bound::Inclusive(version) => ranges.push(AffectedRange {
                    introduced: None,
                    fixed: Some(version.clone()),
                }),
                Bound::Exclusive(version) => ranges.push(AffectedRange {
                    introduced: None,
                    fixed: Some(next_version(version)),
                }),
            }
        }
        for pair in covered.windows(2) {
            let (Some(below), Some(above)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            let introduced = match &below.end {
                // Only the last interval can be unbounded above once they are disjoint.
                Bound::Unbounded => continue,
                Bound::Inclusive(version) => next_version(version),
                Bound::Exclusive(version) => version.clone(),
            };
            let fixed = match &above.start {
                Bound::Unbounded => continue,
                Bound::Inclusive(version) => version.clone(),
                Bound::Exclusive(version) => next_version(version),
            };
            ranges.push(AffectedRange {
                introduced: Some(introduced),
                fixed: Some(fixed),
            });
        }
        if let Some(last) = covered.last() {
            match &last.end {
                Bound::Unbounded => {}
                Bound::Inclusive(version) => ranges.push(AffectedRange {
                    introduced: Some(next_version(version)),
                    fixed: None,
                }),
                Bound::Exclusive(version) => ranges.push(AffectedRange {
                    introduced: Some(version.clone()),
                    fixed: None,
                }),
            }
        }
        Ok(Self { ranges })
    }

    /// Builds from ranges given directly (OSV data).
    pub fn from_ranges(ranges: Vec<AffectedRange>) -> Self {
        Self { ranges }
    }

    /// The affected ranges.
    pub fn ranges(&self) -> &[AffectedRange] {
        &self.ranges
    }

    /// Whether `version` is affected.
    pub fn is_affected(&self, version: &Version) -> bool {
        self.ranges.iter().any(|range| range.contains(version))
    }
}

/// Parses a list of requirement strings, naming the bad one.
pub fn parse_requirements(texts: &[String]) -> Result<Vec<VersionReq>, String> {
    texts
        .iter()
        .map(|text| {
            VersionReq::parse(text)
                .map_err(|error| format!("bad version requirement `{text}`: {error}"))
        })
        .collect()
}
