//! Matching packages against advisories.
//!
//! For each distinct package name of the lockfile the scan loads that name's advisories once,
//! then for each locked version keeps the advisories that (in this order, as cargo-audit's
//! default query does):
//! 1. are not withdrawn;
//! 2. are about the package's registry: crates.io unless the advisory names another registry.
//!    Packages without a source (workspace members, path dependencies), from git or from a
//!    directory match nothing. One deliberate difference from cargo-audit 0.22: a package
//!    whose lockfile source is crates.io's sparse index (`sparse+https://index.crates.io/`)
//!    is treated as crates.io, where cargo-audit matches no advisory to it (Cargo itself
//!    records crates.io as `registry+https://github.com/rust-lang/crates.io-index` whatever
//!    the protocol, so this only shows with hand-written or unusual lockfiles);
//! 3. affect the version (RustSec ranges, [`crate::version`]).
//!
//! `[affected] os`, `arch` and `functions` are reported but do not filter: cargo-audit
//! applies them only when asked for a target. An OSV record that repeats a RustSec advisory
//! (same id, or an id in its aliases) is dropped in favour of the RustSec one.
//!
//! Yanked versions are known only from the registry index: [`check_yanked`] looks the
//! crates.io packages up in a copy of it ([`crate::index`]) and adds them to the report,
//! apart from the advisories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jiff::civil::Date;

use crate::advisory::{Advisory, Origin};
use crate::database::AdvisoryDatabase;
use crate::error::Result;
use crate::index::{IndexState, RegistryIndex};
use crate::lockfile::{Lockfile, PackageSource};
use crate::report::{DatabaseInfo, Finding, IndexInfo, Report, WaiverRef, Yanked};
use crate::severity::Severity;
use crate::waiver::Waivers;

/// The crates.io index URLs an advisory's `registry` may name and still mean crates.io.
const CRATES_IO_INDEXES: [&str; 2] = [
    "https://github.com/rust-lang/crates.io-index",
    "https://index.crates.io",
];

fn same_url(left: &str, right: &str) -> bool {
    let normalize = |url: &str| {
        url.trim_start_matches("registry+")
            .trim_start_matches("sparse+")
            .trim_end_matches('/')
            .to_owned()
    };
    normalize(left) == normalize(right)
}

fn source_matches(source: &PackageSource, advisory: &Advisory) -> bool {
    match (source, advisory.registry.as_deref()) {
        // A path crate is not the published crate of the same name.
        (PackageSource::Local, _) => false,
        (PackageSource::CratesIo, None) => true,
        (PackageSource::CratesIo, Some(registry)) => CRATES_IO_INDEXES
            .iter()
            .any(|index| same_url(index, registry)),
        (PackageSource::Registry(url), Some(registry)) => same_url(url, registry),
        (PackageSource::Registry(_), None) | (PackageSource::Other(_), _) => false,
    }
}

/// Scans `lockfile` against `database`, judging waivers as of `today`.
pub fn scan(
    database: &AdvisoryDatabase,
    lockfile: &Lockfile,
    waivers: &Waivers,
    today: Date,
) -> Result<Report> {
    let started = Instant::now();
    let mut loaded: HashMap<&str, Vec<Advisory>> = HashMap::new();
    let mut advisories_read = 0;
    let mut vulnerabilities = Vec::new();
    let mut informational = Vec::new();
    let mut used_waivers = vec![false; waivers.waivers.len()];
    for package in &lockfile.packages {
        if !database.has_package(&package.name) {
            continue;
        }
        if !loaded.contains_key(package.name.as_str()) {
            let advisories = without_duplicates(database.advisories_for(&package.name)?);
            advisories_read += advisories
                .iter()
                .filter(|advisory| advisory.origin == Origin::RustSec)
                .count();
            loaded.insert(package.name.as_str(), advisories);
        }
        let Some(advisories) = loaded.get(package.name.as_str()) else {
            continue;
        };
        for advisory in advisories {
            if advisory.withdrawn.is_some()
                || !source_matches(&package.source, advisory)
                || !advisory.affects(&package.version)
            {
                continue;
            }
            let ids = std::iter::once(advisory.id.as_str())
                .chain(advisory.aliases.iter().map(String::as_str));
            let (valid, expired) = waivers.lookup(ids, &package.name, today);
            for waiver in valid.iter().chain(expired.iter()) {
                let index = waivers
                    .waivers
                    .iter()
                    .position(|known| std::ptr::eq(known, *waiver));
                if let Some(used) = index.and_then(|index| used_waivers.get_mut(index)) {
                    *used = true;
                }
            }
            let finding = Finding {
                package: package.name.clone(),
                version: package.version.clone(),
                advisory_id: advisory.id.clone(),
                aliases: advisory.aliases.clone(),
                title: advisory.title.clone(),
                severity: advisory
                    .cvss
                    .as_ref()
                    .map_or(Severity::Unknown, |rating| rating.severity),
                score: advisory.cvss.as_ref().map(|rating| rating.score),
                vector: advisory.cvss.as_ref().map(|rating| rating.vector.clone()),
                cvss_version: advisory.cvss.as_ref().map(|rating| rating.version),
                patched: advisory.patched.clone(),
                unaffected: advisory.unaffected.clone(),
                url: advisory.url.clone(),
                date: advisory.date.clone(),
                informational: advisory.informational.clone(),
                functions: advisory.functions.clone(),
                os: advisory.os.clone(),
                arch: advisory.arch.clone(),
                origin: advisory.origin,
                advisory_path: advisory.path.clone(),
                waived_by: valid.map(WaiverRef::from),
                expired_waiver: expired.map(WaiverRef::from),
            };
            if finding.informational.is_some() {
                informational.push(finding);
            } else {
                vulnerabilities.push(finding);
            }
        }
    }
    let order = |left: &Finding, right: &Finding| {
        (&left.package, &left.version, &left.advisory_id).cmp(&(
            &right.package,
            &right.version,
            &right.advisory_id,
        ))
    };
    vulnerabilities.sort_by(order);
    informational.sort_by(order);
    let unused_waivers = waivers
        .waivers
        .iter()
        .zip(&used_waivers)
        .filter(|(_, used)| !**used)
        .map(|(waiver, _)| waiver.clone())
        .collect();
    let revision = database.revision().clone();
    let mut report = Report {
        database: DatabaseInfo {
            path: database.root().to_owned(),
            revision: revision.to_string(),
            revision_detail: revision,
            osv_files: database.osv_files().to_vec(),
            advisories_read,
        },
        lockfile: lockfile.path.clone(),
        waivers_file: waivers.path.clone(),
        scanned_at: jiff::Timestamp::now(),
        today,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        vulnerabilities,
        informational,
        unused_waivers,
        index: None,
        yanked: Vec::new(),
        counts: Default::default(),
        high_risk: false,
    };
    report.recount(lockfile.packages.len());
    Ok(report)
}

/// Looks the crates.io packages of `lockfile` up in `index` and records the yanked ones (and
/// the index) in `report`, which [`scan`] made of the same lockfile.
pub fn check_yanked(report: &mut Report, lockfile: &Lockfile, index: &RegistryIndex) -> Result<()> {
    let mut info = IndexInfo {
        path: index.path().to_owned(),
        checked: 0,
        unknown: 0,
    };
    let mut yanked = Vec::new();
    for package in &lockfile.packages {
        if package.source != PackageSource::CratesIo {
            continue;
        }
        info.checked += 1;
        match index.state(&package.name, &package.version)? {
            IndexState::Published => {}
            IndexState::Unknown => info.unknown += 1,
            IndexState::Yanked => yanked.push(Yanked {
                package: package.name.clone(),
                version: package.version.clone(),
            }),
        }
    }
    yanked.sort_by(|left, right| {
        (&left.package, &left.version).cmp(&(&right.package, &right.version))
    });
    yanked.dedup();
    report.yanked = yanked;
    report.index = Some(info);
    report.recount(lockfile.packages.len());
    Ok(())
}

/// Drops OSV records that repeat a RustSec advisory or an earlier OSV record.
fn without_duplicates(advisories: Vec<Advisory>) -> Vec<Advisory> {
    let mut kept: Vec<Advisory> = Vec::with_capacity(advisories.len());
    for advisory in advisories {
        let repeats = advisory.origin == Origin::Osv
            && kept.iter().any(|earlier| {
                let earlier_ids = || {
                    std::iter::once(earlier.id.as_str())
                        .chain(earlier.aliases.iter().map(String::as_str))
                };
                earlier_ids().any(|id| id == advisory.id)
                    || advisory
                        .aliases
                        .iter()
                        .any(|alias| earlier_ids().any(|id| id == alias))
            });
        if !repeats {
            kept.push(advisory);
        }
    }
    kept
}

/// Inputs of [`scan_files`].
#[derive(Debug, Clone)]
pub struct ScanFiles {
    /// The RustSec advisory-db folder.
    pub database: PathBuf,
    /// Folders of OSV JSON files to add.
    pub osv_dirs: Vec<PathBuf>,
    /// The `Cargo.lock`.
    pub lockfile: PathBuf,
    /// The waiver file, if any.
    pub waivers: Option<PathBuf>,
    /// A copy of the crates.io index, to report yanked versions ([`check_yanked`]).
    pub index: Option<PathBuf>,
    /// The day waivers are judged against.
    pub today: Date,
}

impl ScanFiles {
    /// Scan `lockfile` against `database`, no OSV files, no waivers, as of today (UTC).
    pub fn new(database: impl AsRef<Path>, lockfile: impl AsRef<Path>) -> Self {
        Self {
            database: database.as_ref().to_owned(),
            osv_dirs: Vec::new(),
            lockfile: lockfile.as_ref().to_owned(),
            waivers: None,
            index: None,
            today: jiff::Timestamp::now()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date(),
        }
    }
}

/// Opens the database, reads the lockfile and waivers, and scans; the report's duration
/// covers all of it.
pub fn scan_files(files: &ScanFiles) -> Result<Report> {
    let started = Instant::now();
    let mut database = AdvisoryDatabase::open(&files.database)?;
    for dir in &files.osv_dirs {
        database.add_osv_dir(dir)?;
    }
    let lockfile = Lockfile::load(&files.lockfile)?;
    let waivers = match &files.waivers {
        Some(path) => Waivers::load(path)?,
        None => Waivers::none(),
    };
    let mut report = scan(&database, &lockfile, &waivers, files.today)?;
    if let Some(index) = &files.index {
        check_yanked(&mut report, &lockfile, &RegistryIndex::open(index)?)?;
    }
    report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(report)
}
