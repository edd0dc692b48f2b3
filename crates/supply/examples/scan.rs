//! Scans a `Cargo.lock` against an advisory-db folder and prints the report.
//!
//! ```text
//! cargo run --release -p portcullis-supply --example scan -- \
//!     --db DIR --lock Cargo.lock [--osv DIR]... [--waivers FILE] [--index DIR] \
//!     [--format table|json|sarif|cyclonedx|ids] [--today YYYY-MM-DD]
//! ```
//! `--format ids` prints one `package version advisory` line per finding (vulnerabilities,
//! then informational ones prefixed with their kind, then `yanked package version -` with
//! `--index`), for comparisons with cargo-audit.
//! The exit status is 0, or 3 when the report is high risk, 2 on errors.

use std::process::ExitCode;

use portcullis_supply::{ScanFiles, scan_files};

fn main() -> ExitCode {
    match run() {
        Ok(high_risk) => {
            if high_risk {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut database = None;
    let mut lockfile = None;
    let mut osv_dirs = Vec::new();
    let mut waivers = None;
    let mut index = None;
    let mut format = "table".to_owned();
    let mut today = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--db" => database = Some(value()?),
            "--lock" => lockfile = Some(value()?),
            "--osv" => osv_dirs.push(value()?.into()),
            "--waivers" => waivers = Some(value()?.into()),
            "--index" => index = Some(value()?.into()),
            "--format" => format = value()?,
            "--today" => today = Some(value()?.parse()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mut files = ScanFiles::new(
        database.ok_or("--db is required")?,
        lockfile.unwrap_or_else(|| "Cargo.lock".to_owned()),
    );
    files.osv_dirs = osv_dirs;
    files.waivers = waivers;
    files.index = index;
    if let Some(today) = today {
        files.today = today;
    }
    let report = scan_files(&files)?;
    match format.as_str() {
        "table" => print!("{}", report.to_table()),
        "json" => println!("{}", report.to_json()),
        "sarif" => println!("{}", serde_json::to_string_pretty(&report.to_sarif())?),
        "cyclonedx" => println!(
            "{}",
            serde_json::to_string_pretty(&report.to_cyclonedx_vex())?
        ),
        "ids" => {
            for finding in &report.vulnerabilities {
                println!(
                    "vulnerability {} {} {}",
                    finding.package, finding.version, finding.advisory_id
                );
            }
            for finding in &report.informational {
                let kind = finding
                    .informational
                    .as_ref()
                    .map_or("informational", |kind| kind.as_str());
                println!(
                    "{kind} {} {} {}",
                    finding.package, finding.version, finding.advisory_id
                );
            }
            for yanked in &report.yanked {
                println!("yanked {} {} -", yanked.package, yanked.version);
            }
        }
        other => return Err(format!("unknown format {other}").into()),
    }
    eprintln!("scan took {:.2} ms", report.duration_ms);
    Ok(report.high_risk())
}
