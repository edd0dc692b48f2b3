//! Scans against the real RustSec snapshot (`shared/data/rustsec-advisory-db-2025-12-29`).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: failures should be loud"
)]

mod common;

use std::path::Path;

use common::{TestDb, lock, snapshot, today};
use portcullis_supply::{
    AdvisoryDatabase, Informational, Lockfile, ScanFiles, Severity, Waivers,
    advisory::parse_rustsec, scan, scan_files,
};
use semver::{Version, VersionReq};

fn open() -> AdvisoryDatabase {
    AdvisoryDatabase::open(snapshot()).unwrap()
}

#[test]
fn revision_of_a_snapshot_without_git() {
    let database = open();
    let revision = database.revision();
    assert_eq!(revision.git_commit, None);
    // shared/data/README.md: 874 crate advisories.
    assert_eq!(revision.advisory_count, 874);
    let newest = revision.newest_id.as_deref().unwrap();
    assert!(newest.starts_with("RUSTSEC-2025-"), "{newest}");
    assert_eq!(revision.to_string(), format!("{newest}+874"));
}

#[test]
fn git_checkout_revision_is_its_head() {
    let db = TestDb::new();
    db.write(".git/HEAD", "ref: refs/heads/main\n");
    db.write(
        ".git/packed-refs",
        "# pack-refs with: peeled\n63bd4ad0ee27041c6ab13c897aee707bf838ebe9 refs/heads/main\n",
    );
    assert_eq!(
        db.open().revision().to_string(),
        "git:63bd4ad0ee27041c6ab13c897aee707bf838ebe9"
    );
    db.write(
        ".git/refs/heads/main",
        "1111111111111111111111111111111111111111\n",
    );
    assert_eq!(
        db.open().revision().git_commit.as_deref(),
        Some("1111111111111111111111111111111111111111")
    );
}

#[test]
fn every_snapshot_advisory_parses() {
    let crates = snapshot().join("crates");
    let mut parsed = 0;
    for folder in std::fs::read_dir(&crates).unwrap() {
        let folder = folder.unwrap().path();
        for file in std::fs::read_dir(&folder).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let advisory = parse_rustsec(&path, &text).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(
                Some(advisory.package.as_str()),
                folder.file_name().and_then(|name| name.to_str())
            );
            assert!(!advisory.title.is_empty());
            parsed += 1;
        }
    }
    assert_eq!(parsed, 874);
}

#[test]
fn real_advisory_at_an_affected_version() {
    // RUSTSEC-2021-0003: smallvec, patched ">= 0.6.14, < 1.0.0" and ">= 1.6.1", unaffected
    // "< 0.6.3", CVSS 3.1 9.8.
    let lockfile = lock(&[
        ("smallvec", "1.6.0"),
        ("smallvec", "1.6.1"),
        ("smallvec", "0.6.2"),
        ("smallvec", "0.6.10"),
    ]);
    let report = scan(&open(), &lockfile, &Waivers::none(), today()).unwrap();
    let found: Vec<(String, String)> = report
        .vulnerabilities
        .iter()
        .map(|finding| (finding.version.to_string(), finding.advisory_id.clone()))
        .filter(|(_, id)| id == "RUSTSEC-2021-0003")
        .collect();
    assert_eq!(
        found,
        [
            ("0.6.10".to_owned(), "RUSTSEC-2021-0003".to_owned()),
            ("1.6.0".to_owned(), "RUSTSEC-2021-0003".to_owned()),
        ]
    );
    let finding = report
        .vulnerabilities
        .iter()
        .find(|finding| finding.advisory_id == "RUSTSEC-2021-0003")
        .unwrap();
    assert_eq!(finding.severity, Severity::Critical);
    assert_eq!(finding.score, Some(9.8));
    assert_eq!(finding.title, "Buffer overflow in SmallVec::insert_many");
    assert!(finding.aliases.contains(&"CVE-2021-25900".to_owned()));
    assert_eq!(finding.functions[0].path, "smallvec::SmallVec::insert_many");
    assert!(report.high_risk());
}

#[test]
fn real_cases_withdrawn_informational_unknown_and_cvss4() {
    let lockfile = lock(&[
        // RUSTSEC-2021-0135 is withdrawn.
        ("tower-http", "0.2.0"),
        // RUSTSEC-2021-0147 is withdrawn (and informational).
        ("daemonize", "0.4.0"),
        // RUSTSEC-2022-0058: notice, no patched versions.
        ("inconceivable", "0.9.0"),
        // RUSTSEC-2018-0019: no CVSS vector, patched >= 0.7.15.
        ("actix-web", "0.7.14"),
        // RUSTSEC-2024-0445: CVSS 4.0 vector, patched >= 3.4.1.
        ("cap-primitives", "3.4.0"),
    ]);
    let report = scan(&open(), &lockfile, &Waivers::none(), today()).unwrap();
    let ids: Vec<&str> = report
        .vulnerabilities
        .iter()
        .chain(&report.informational)
        .map(|finding| finding.advisory_id.as_str())
        .collect();
    assert!(!ids.contains(&"RUSTSEC-2021-0135"), "{ids:?}");
    assert!(!ids.contains(&"RUSTSEC-2021-0147"), "{ids:?}");
    let notice = report
        .informational
        .iter()
        .find(|finding| finding.advisory_id == "RUSTSEC-2022-0058")
        .unwrap();
    assert_eq!(notice.informational, Some(Informational::Notice));
    let unknown = report
        .vulnerabilities
        .iter()
        .find(|finding| finding.advisory_id == "RUSTSEC-2018-0019")
        .unwrap();
    assert_eq!(unknown.severity, Severity::Unknown);
    let cvss4 = report
        .vulnerabilities
        .iter()
        .find(|finding| finding.advisory_id == "RUSTSEC-2024-0445")
        .unwrap();
    assert_eq!(
        cvss4.cvss_version,
        Some(portcullis_supply::CvssVersion::V40)
    );
    assert!(cvss4.score.is_some());
    // Unknown severity alone makes it high risk.
    assert!(report.high_risk_ids().contains(&"RUSTSEC-2018-0019"));
}

#[test]
fn lockfile_text_is_read_with_sources() {
    let db = TestDb::new();
    let path = db.write(
        "Cargo.lock",
        r#"# This file is automatically @generated by Cargo.
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["smallvec"]

[[package]]
name = "smallvec"
version = "1.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "fe0f37c9e8f3c5a4a66ad655a93c74daac4ad00c441533bf5c6e7990bb42604e"

[[package]]
name = "time"
version = "0.1.45"
source = "sparse+https://index.crates.io/"

[[package]]
name = "time"
version = "0.1.40"

[[package]]
name = "hyper"
version = "0.14.0"
source = "git+https://example.invalid/hyper#0123456789abcdef0123456789abcdef01234567"
"#,
    );
    let mut files = ScanFiles::new(snapshot(), &path);
    files.today = today();
    let report = scan_files(&files).unwrap();
    let packages: Vec<&str> = report
        .vulnerabilities
        .iter()
        .map(|finding| finding.package.as_str())
        .collect();
    assert!(packages.contains(&"smallvec"), "{packages:?}");
    assert!(packages.contains(&"time"), "{packages:?}");
    // A git source meets no crates.io advisory, nor does a path crate (time 0.1.40 has no
    // source: it is not the published crate).
    assert!(!packages.contains(&"hyper"), "{packages:?}");
    let versions: Vec<String> = report
        .vulnerabilities
        .iter()
        .map(|finding| format!("{} {}", finding.package, finding.version))
        .collect();
    assert!(versions.contains(&"time 0.1.45".to_owned()), "{versions:?}");
    assert!(
        !versions.contains(&"time 0.1.40".to_owned()),
        "{versions:?}"
    );
    assert_eq!(report.counts.packages, 5);
    assert_eq!(report.lockfile.as_deref(), Some(path.as_path()));
}

/// Scans the workspace's own lockfile and checks the report against an independent reading
/// of the same advisory files with `VersionReq::matches` (exact for release versions).
#[test]
fn workspace_lockfile_scan_is_self_consistent() {
    let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let mut files = ScanFiles::new(snapshot(), &lock_path);
    files.today = today();
    let report = scan_files(&files).unwrap();
    let lockfile = Lockfile::load(&lock_path).unwrap();
    assert_eq!(report.counts.packages, lockfile.packages.len());
    assert_eq!(
        report.database.revision,
        AdvisoryDatabase::open(snapshot())
            .unwrap()
            .revision()
            .to_string()
    );
    assert!(report.duration_ms > 0.0);
    assert_eq!(report.lockfile.as_deref(), Some(lock_path.as_path()));
    assert!(report.counts.packages > 100);

    // Counts add up.
    let counts = &report.counts;
    assert_eq!(counts.vulnerabilities, report.vulnerabilities.len());
    assert_eq!(
        counts.waived
            + counts.critical
            + counts.high
            + counts.medium
            + counts.low
            + counts.none
            + counts.unknown,
        counts.vulnerabilities
    );
    assert_eq!(counts.informational, report.informational.len());
    assert_eq!(
        counts.unmaintained + counts.unsound + counts.notice,
        counts.informational
    );
    assert_eq!(report.high_risk, report.high_risk());
    assert_eq!(
        report.high_risk(),
        counts.critical + counts.high + counts.unknown > 0
    );

    assert_eq!(found_ids(&report), expected_ids(&lockfile));

    // Every finding names an advisory file that holds its id, about its package.
    for finding in report.vulnerabilities.iter().chain(&report.informational) {
        let text = std::fs::read_to_string(&finding.advisory_path).unwrap();
        assert!(text.contains(&finding.advisory_id));
        assert!(text.contains(&format!("package = \"{}\"", finding.package)));
        assert!(
            lockfile.packages.iter().any(
                |package| package.name == finding.package && package.version == finding.version
            )
        );
    }
    // Only the folders of locked packages were read.
    assert!(report.database.advisories_read < 874);
}

/// The same check on older versions of the workspace's dependencies, so that it compares
/// non-empty lists: every locked crate with advisories, at 0.1.0, 0.5.0, 1.0.0 and 2.0.0.
#[test]
fn older_versions_of_workspace_dependencies_match_an_independent_reading() {
    let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let database = open();
    let mut names: Vec<String> = Lockfile::load(&lock_path)
        .unwrap()
        .packages
        .into_iter()
        .map(|package| package.name)
        .filter(|name| database.has_package(name))
        .collect();
    names.sort();
    names.dedup();
    let mut pairs = Vec::new();
    for name in &names {
        for version in ["0.1.0", "0.5.0", "1.0.0", "2.0.0"] {
            pairs.push((name.as_str(), version));
        }
    }
    let lockfile = lock(&pairs);
    let report = scan(&database, &lockfile, &Waivers::none(), today()).unwrap();
    let found = found_ids(&report);
    assert!(found.len() > 20, "{found:?}");
    assert_eq!(found, expected_ids(&lockfile));
}

fn found_ids(report: &portcullis_supply::Report) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = report
        .vulnerabilities
        .iter()
        .chain(&report.informational)
        .filter(|finding| finding.version.pre.is_empty())
        .map(|finding| {
            (
                finding.package.clone(),
                finding.version.to_string(),
                finding.advisory_id.clone(),
            )
        })
        .collect();
    found.sort();
    found
}

/// For each release version of the lockfile: every advisory of its folder that is not
/// withdrawn and none of whose patched/unaffected requirements `matches` the version.
fn expected_ids(lockfile: &Lockfile) -> Vec<(String, String, String)> {
    let crates = snapshot().join("crates");
    let mut expected = Vec::new();
    for package in &lockfile.packages {
        let folder = crates.join(&package.name);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let front = text.split("```").nth(1).unwrap().trim_start_matches("toml");
            let value: toml::Value = toml::from_str(front).unwrap();
            if value["advisory"].get("withdrawn").is_some() {
                continue;
            }
            let requirements: Vec<VersionReq> = ["patched", "unaffected"]
                .iter()
                .filter_map(|key| value["versions"].get(*key))
                .flat_map(|list| list.as_array().unwrap().clone())
                .map(|requirement| VersionReq::parse(requirement.as_str().unwrap()).unwrap())
                .collect();
            let version: &Version = &package.version;
            if !version.pre.is_empty() {
                continue;
            }
            if requirements
                .iter()
                .any(|requirement| requirement.matches(version))
            {
                continue;
            }
            expected.push((
                package.name.clone(),
                version.to_string(),
                value["advisory"]["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    expected.sort();
    expected
}
