//! The supply-chain gate (C7): the service scans the packages compiled into its own binary
//! against an offline advisory database (`[supply_chain]` in the configuration) at start,
//! every `interval`, on `SIGHUP` and on an admin call, and sets the environment signal
//! `env.supply_chain.high_risk` from the result: true while any unwaived high, critical or
//! unknown-severity vulnerability is present. The built-in supply-chain forbid then denies
//! every `write: true` action and names the advisories (see [`portcullis_policy::SUPPLY_CHAIN_ADVISORY`]).
//!
//! A database that is missing or unreadable (or a binary that carries no package list) fails
//! closed unless configured otherwise: the signal is high and the status says why. Every change
//! of the signal is an administrative event in the `system` tenant's audit trail
//! (`supply_chain.raised` / `supply_chain.cleared`), a metric
//! (`portcullis_supply_chain_high_risk`, `portcullis_supply_chain_scans_total`) and a log line.

//!
//! This module holds the gate's settings, its last status and the scan itself, which need
//! nothing of the running service; `snapshots::supply` runs it for the service and publishes
//! the signal.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_supply::integrity::{IntegrityError, PublicKey, Verified};
use portcullis_supply::{AdvisoryDatabase, Lockfile, Report, Waivers};
use serde::Serialize;

/// The `[supply_chain]` settings, validated.
#[derive(Debug, Clone)]
pub struct SupplySettings {
    /// The RustSec advisory-db folder.
    pub database: PathBuf,
    /// A folder of OSV JSON files, read with the database.
    pub osv: Option<PathBuf>,
    /// The waiver (VEX) file.
    pub waivers: Option<PathBuf>,
    /// Time between scans.
    pub interval: Duration,
    /// Whether a scan that cannot run (no database, a bad file, no package list) raises the
    /// signal (the default) or leaves it as the last scan that ran set it.
    pub fail_closed: bool,
    /// The packages of this binary. Not read from the file: the binary fills it in from the
    /// SBOM embedded at build time (tests from a lockfile).
    pub packages: Option<Arc<Lockfile>>,
}

/// The integrity check at start, validated.
#[derive(Debug, Clone)]
pub struct IntegritySettings {
    /// The signed manifest.
    pub manifest: PathBuf,
    /// The public key it must be signed with.
    pub trust_key: PathBuf,
    /// Whether a failed check starts the service with every write denied (otherwise it does
    /// not start).
    pub read_only_on_failure: bool,
    /// The running executable, which the manifest must cover (set by `Config::load`).
    pub binary: Option<PathBuf>,
    /// The configuration file read, which the manifest must cover (set by `Config::load`).
    pub config_file: Option<PathBuf>,
}

/// Checks the manifest's signature and every file it covers, and that the running executable
/// and the configuration file read are among them. The error names the file.
pub fn verify_integrity(settings: &IntegritySettings) -> Result<Verified, IntegrityError> {
    let key = PublicKey::load(&settings.trust_key)?;
    let verified = Verified::open(&settings.manifest, &key)?;
    verified.check_files()?;
    for path in [&settings.binary, &settings.config_file]
        .into_iter()
        .flatten()
    {
        verified.check_file(path)?;
    }
    Ok(verified)
}

/// What the last scan found, as `GET /admin/v1/security/dependency-scan` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScanStatus {
    /// Whether `[supply_chain]` is configured; without it nothing is scanned and the signal
    /// stays low.
    pub configured: bool,
    /// The signal decisions read as `env.supply_chain.high_risk`.
    pub high_risk: bool,
    /// The unwaived high-risk advisories (ids), when the scan ran.
    pub advisories: Vec<String>,
    /// Why the signal is what it is, in a sentence.
    pub reason: String,
    /// What started the scan: `start`, `interval`, `signal` or `admin`.
    pub trigger: Option<&'static str>,
    /// When it ran (RFC 3339).
    pub scanned_at: Option<jiff::Timestamp>,
    /// The database folder.
    pub database: Option<PathBuf>,
    /// Why the scan could not run, if it could not.
    pub error: Option<String>,
    /// The scan's report, when it ran.
    pub report: Option<Report>,
}

impl ScanStatus {
    /// The status before any scan.
    pub fn unconfigured() -> Self {
        ScanStatus {
            configured: false,
            high_risk: false,
            advisories: Vec::new(),
            reason: "no [supply_chain] database is configured; nothing is scanned".into(),
            trigger: None,
            scanned_at: None,
            database: None,
            error: None,
            report: None,
        }
    }
}

/// The gate's state: the last status, and a lock that runs one scan at a time.
#[derive(Debug)]
pub struct Gate {
    status: Mutex<Arc<ScanStatus>>,
    scanning: tokio::sync::Mutex<()>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            status: Mutex::new(Arc::new(ScanStatus::unconfigured())),
            scanning: tokio::sync::Mutex::new(()),
        }
    }
}

impl Gate {
    /// The last status.
    pub fn status(&self) -> Arc<ScanStatus> {
        Arc::clone(&self.status.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the last status.
    pub fn publish(&self, status: Arc<ScanStatus>) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// Waits for the scan running now, if any, and keeps others waiting until dropped.
    pub async fn one_at_a_time(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.scanning.lock().await
    }
}

/// The status a scan (or its failure) leads to. `previous` is the status before it: a scan
/// that cannot run keeps its signal when `fail_closed` is off.
pub fn status_after(
    settings: &SupplySettings,
    scanned: Result<Report, String>,
    previous: &ScanStatus,
    trigger: &'static str,
    at: jiff::Timestamp,
) -> ScanStatus {
    let database = Some(settings.database.clone());
    match scanned {
        Ok(report) => {
            let advisories: Vec<String> = report
                .vulnerabilities
                .iter()
                .filter(|finding| finding.is_high_risk())
                .map(|finding| finding.advisory_id.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let reason = if advisories.is_empty() {
                format!(
                    "no unwaived high-risk advisory among {} packages",
                    report.counts.packages
                )
            } else {
                format!("unwaived high-risk advisories: {}", advisories.join(", "))
            };
            ScanStatus {
                configured: true,
                high_risk: !advisories.is_empty(),
                advisories,
                reason,
                trigger: Some(trigger),
                scanned_at: Some(at),
                database,
                error: None,
                report: Some(report),
            }
        }
        Err(error) => {
            let (high_risk, advisories, reason) = if settings.fail_closed {
                (
                    true,
                    Vec::new(),
                    format!(
                        "the dependency scan could not run, so the signal fails closed: {error}"
                    ),
                )
            } else {
                (
                    previous.high_risk,
                    previous.advisories.clone(),
                    format!("the dependency scan could not run; the last result stands: {error}"),
                )
            };
            ScanStatus {
                configured: true,
                high_risk,
                advisories,
                reason,
                trigger: Some(trigger),
                scanned_at: Some(at),
                database,
                error: Some(error),
                report: None,
            }
        }
    }
}

/// Whether going from `previous` to `next` changes the signal (or names other advisories), or
/// is the first scan: such a change is logged and audited.
pub fn is_change(previous: &ScanStatus, next: &ScanStatus) -> bool {
    !previous.configured
        || next.high_risk != previous.high_risk
        || (next.high_risk && next.advisories != previous.advisories)
}

/// Scans the configured packages against the configured database and waivers, judging waivers
/// as of `today`. Blocking (it reads files): run it off the runtime's threads.
pub fn run(settings: &SupplySettings, today: jiff::civil::Date) -> Result<Report, String> {
    let packages = settings.packages.as_deref().ok_or_else(|| {
        "this build carries no package list to scan (it was built without its SBOM)".to_owned()
    })?;
    let mut database = AdvisoryDatabase::open(&settings.database).map_err(|e| e.to_string())?;
    if let Some(osv) = &settings.osv {
        database.add_osv_dir(osv).map_err(|e| e.to_string())?;
    }
    let waivers = match &settings.waivers {
        Some(path) => Waivers::load(path).map_err(|e| e.to_string())?,
        None => Waivers::none(),
    };
    portcullis_supply::scan(&database, packages, &waivers, today).map_err(|e| e.to_string())
}
