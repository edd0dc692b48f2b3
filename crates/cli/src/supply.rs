//! `portcullis sbom` and `portcullis scan`: this binary's SBOM and the offline advisory scan.
//!
//! The SBOM is the package list `build.rs` captured when the binary was built (every package
//! compiled into it, build-only ones marked), embedded here and rendered by
//! `portcullis_supply::sbom`. The scan is `portcullis_supply`'s, on a `Cargo.lock`, an SBOM
//! document, or that embedded list.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use portcullis_supply::{
    AdvisoryDatabase, Lockfile, PackageList, RegistryIndex, Waivers, check_yanked, read_document,
    scan as scan_lockfile,
};

/// Exit code for success (`scan`: no unwaived high-risk finding).
const OK: u8 = 0;
/// Exit code for a high-risk scan.
const HIGH_RISK: u8 = 1;
/// Exit code for input that could not be used.
const UNUSABLE: u8 = 2;

/// The package list captured by `build.rs` (see there how).
const PACKAGES: &str = include_str!(concat!(env!("OUT_DIR"), "/sbom-packages.json"));

/// This binary's package list.
pub fn packages() -> Result<PackageList, String> {
    PackageList::from_json(PACKAGES)
        .map_err(|error| format!("the SBOM embedded in this binary is unusable: {error}"))
}

/// An SBOM format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SbomFormat {
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
    /// SPDX 2.3 JSON.
    Spdx,
}

/// Prints (or writes) this binary's SBOM; returns the exit code.
pub fn sbom(format: SbomFormat, output: Option<&Path>) -> u8 {
    let list = match packages() {
        Ok(list) => list,
        Err(message) => {
            eprintln!("error: {message}");
            return UNUSABLE;
        }
    };
    let document = match format {
        SbomFormat::Cyclonedx => list.to_cyclonedx(),
        SbomFormat::Spdx => list.to_spdx(),
    };
    let mut text = match serde_json::to_string_pretty(&document) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot render the SBOM: {error}");
            return UNUSABLE;
        }
    };
    text.push('\n');
    match output {
        Some(path) => {
            if let Err(error) = std::fs::write(path, text) {
                eprintln!("error: cannot write {}: {error}", path.display());
                return UNUSABLE;
            }
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            if let Err(error) = stdout.write_all(text.as_bytes()) {
                eprintln!("error: cannot write the SBOM: {error}");
                return UNUSABLE;
            }
        }
    }
    OK
}

/// A scan report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A plain-text table.
    Table,
    /// The report as JSON.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
    /// CycloneDX 1.6 VEX: the findings as `vulnerabilities`, waived ones `not_affected`.
    Cyclonedx,
}

/// `portcullis scan`'s options.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The RustSec advisory-db folder (holding `crates/<crate>/RUSTSEC-….md`).
    #[arg(long, value_name = "DIR")]
    db: PathBuf,
    /// Scan this `Cargo.lock`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["sbom", "self_"])]
    lock: Option<PathBuf>,
    /// Scan the `pkg:cargo/…` packages of this CycloneDX or SPDX JSON SBOM.
    #[arg(long, value_name = "FILE", conflicts_with = "self_")]
    sbom: Option<PathBuf>,
    /// Scan this binary's own SBOM (every package compiled into it); the default.
    #[arg(long = "self", id = "self_")]
    self_: bool,
    /// A folder of OSV JSON files (crates.io advisories) to add; may be repeated.
    #[arg(long, value_name = "DIR")]
    osv: Vec<PathBuf>,
    /// Accepted findings: a TOML file of `[[waiver]]` tables (docs/supply-chain.md).
    #[arg(long, value_name = "FILE")]
    waivers: Option<PathBuf>,
    /// A copy of the crates.io index, to report yanked versions: an index checkout, or Cargo's
    /// cache of it (`~/.cargo/registry/index/index.crates.io-…`). Read offline.
    #[arg(long, value_name = "DIR")]
    index: Option<PathBuf>,
    /// How to print the report.
    #[arg(long, value_enum, default_value = "table")]
    format: ReportFormat,
}

/// Runs a scan; returns the exit code.
pub fn scan(args: &ScanArgs) -> u8 {
    match run_scan(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            UNUSABLE
        }
    }
}

fn run_scan(args: &ScanArgs) -> Result<u8, String> {
    let mut database = AdvisoryDatabase::open(&args.db).map_err(|error| error.to_string())?;
    for dir in &args.osv {
        database
            .add_osv_dir(dir)
            .map_err(|error| error.to_string())?;
    }
    let lockfile = if let Some(path) = &args.lock {
        Lockfile::load(path).map_err(|error| error.to_string())?
    } else if let Some(path) = &args.sbom {
        read_document(path).map_err(|error| error.to_string())?
    } else {
        packages()?
            .to_lockfile()
            .map_err(|error| format!("the SBOM embedded in this binary: {error}"))?
    };
    let waivers = match &args.waivers {
        Some(path) => Waivers::load(path).map_err(|error| error.to_string())?,
        None => Waivers::none(),
    };
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let mut report =
        scan_lockfile(&database, &lockfile, &waivers, today).map_err(|error| error.to_string())?;
    if let Some(index) = &args.index {
        RegistryIndex::open(index)
            .and_then(|index| check_yanked(&mut report, &lockfile, &index))
            .map_err(|error| error.to_string())?;
    }
    let text = match args.format {
        ReportFormat::Table => report.to_table(),
        ReportFormat::Json => report.to_json(),
        ReportFormat::Sarif => serde_json::to_string_pretty(&report.to_sarif())
            .map_err(|error| format!("cannot render SARIF: {error}"))?,
        ReportFormat::Cyclonedx => serde_json::to_string_pretty(&report.to_cyclonedx_vex())
            .map_err(|error| format!("cannot render CycloneDX: {error}"))?,
    };
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(text.as_bytes()).and_then(|()| {
        if text.ends_with('\n') {
            Ok(())
        } else {
            stdout.write_all(b"\n")
        }
    });
    if let Err(error) = written {
        return Err(format!("cannot write the report: {error}"));
    }
    Ok(if report.high_risk() { HIGH_RISK } else { OK })
}
