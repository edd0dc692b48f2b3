//! Scan behaviour over advisory databases built in temporary folders.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: failures should be loud"
)]

mod common;

use common::{TestDb, date, lock, package, today};
use portcullis_supply::{
    Informational, Lockfile, PackageSource, Severity, SupplyError, Waiver, Waivers, scan,
};

const CRITICAL_31: &str = "cvss = \"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\"";
const MEDIUM_31: &str = "cvss = \"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N\"";

fn ids(report: &portcullis_supply::Report) -> Vec<(String, String, String)> {
    report
        .vulnerabilities
        .iter()
        .map(|finding| {
            (
                finding.package.clone(),
                finding.version.to_string(),
                finding.advisory_id.clone(),
            )
        })
        .collect()
}

#[test]
fn affected_patched_and_unaffected_versions() {
    let db = TestDb::new();
    db.advisory(
        "widget",
        "RUSTSEC-2025-0001",
        CRITICAL_31,
        "patched = [\">= 1.2.0\"]\nunaffected = [\"< 1.0.0\"]",
    );
    let lockfile = lock(&[
        ("widget", "0.9.0"),
        ("widget", "1.0.0"),
        ("widget", "1.1.5"),
        ("widget", "1.2.0"),
        ("widget", "1.3.0"),
        ("other", "1.0.0"),
    ]);
    let report = scan(&db.open(), &lockfile, &Waivers::none(), today()).unwrap();
    let found: Vec<String> = report
        .vulnerabilities
        .iter()
        .map(|finding| finding.version.to_string())
        .collect();
    assert_eq!(found, ["1.0.0", "1.1.5"]);
    let finding = &report.vulnerabilities[0];
    assert_eq!(finding.advisory_id, "RUSTSEC-2025-0001");
    assert_eq!(finding.title, "Title of RUSTSEC-2025-0001");
    assert_eq!(finding.severity, Severity::Critical);
    assert_eq!(finding.score, Some(9.8));
    assert_eq!(finding.patched, [">= 1.2.0"]);
    assert_eq!(
        finding.url.as_deref(),
        Some("https://example.invalid/RUSTSEC-2025-0001")
    );
    assert!(report.high_risk());
    assert_eq!(report.counts.critical, 2);
    assert_eq!(report.counts.packages, 6);
    assert_eq!(report.high_risk_ids(), ["RUSTSEC-2025-0001"]);
}

#[test]
fn no_patched_versions_means_every_version_is_affected() {
    let db = TestDb::new();
    db.advisory("gone", "RUSTSEC-2025-0002", MEDIUM_31, "patched = []");
    let report = scan(
        &db.open(),
        &lock(&[("gone", "0.0.1"), ("gone", "9.9.9")]),
        &Waivers::none(),
        today(),
    )
    .unwrap();
    assert_eq!(report.vulnerabilities.len(), 2);
    assert_eq!(report.vulnerabilities[0].severity, Severity::Medium);
    assert_eq!(report.vulnerabilities[0].score, Some(6.1));
    // Medium alone is not high risk.
    assert!(!report.high_risk());
}

#[test]
fn several_patched_ranges_and_exact_unaffected() {
    let db = TestDb::new();
    db.advisory(
        "vec",
        "RUSTSEC-2025-0003",
        CRITICAL_31,
        "patched = [\">= 0.6.14, < 1.0.0\", \">= 1.6.1\"]\nunaffected = [\"< 0.6.3\", \"=1.3.0\"]",
    );
    let cases = [
        ("0.6.2", false),
        ("0.6.3", true),
        ("0.6.13", true),
        ("0.6.14", false),
        ("0.9.9", false),
        ("1.0.0", true),
        ("1.3.0", false),
        ("1.3.1", true),
        ("1.6.0", true),
        ("1.6.1", false),
    ];
    let versions: Vec<(&str, &str)> = cases.iter().map(|(version, _)| ("vec", *version)).collect();
    let report = scan(&db.open(), &lock(&versions), &Waivers::none(), today()).unwrap();
    for (version, affected) in cases {
        let found = report
            .vulnerabilities
            .iter()
            .any(|finding| finding.version.to_string() == version);
        assert_eq!(found, affected, "version {version}");
    }
}

#[test]
fn pre_releases_follow_precedence_as_rustsec_does() {
    let db = TestDb::new();
    db.advisory(
        "pre",
        "RUSTSEC-2025-0004",
        CRITICAL_31,
        "patched = [\">= 1.2.0\"]",
    );
    db.advisory(
        "caret",
        "RUSTSEC-2025-0005",
        CRITICAL_31,
        "patched = [\"^1.2.3\"]",
    );
    db.advisory(
        "prepatch",
        "RUSTSEC-2025-0006",
        CRITICAL_31,
        "patched = [\">= 2.0.0-rc.2\"]",
    );
    let lockfile = lock(&[
        // Below 1.2.0 by precedence: affected.
        ("pre", "1.2.0-rc.1"),
        // Above 1.2.0 by precedence: patched, although `>= 1.2.0` does not `match` it.
        ("pre", "1.3.0-beta.1"),
        // `^1.2.3` ends before 2.0.0-0: the next major's pre-release is affected.
        ("caret", "2.0.0-alpha.1"),
        ("caret", "1.9.0"),
        ("prepatch", "2.0.0-rc.1"),
        ("prepatch", "2.0.0-rc.2"),
        ("prepatch", "2.0.0"),
    ]);
    let report = scan(&db.open(), &lockfile, &Waivers::none(), today()).unwrap();
    let found: Vec<String> = ids(&report)
        .into_iter()
        .map(|(name, version, _)| format!("{name} {version}"))
        .collect();
    assert_eq!(
        found,
        [
            "caret 2.0.0-alpha.1",
            "pre 1.2.0-rc.1",
            "prepatch 2.0.0-rc.1"
        ]
    );
    // The semver crate's own matching would disagree on 1.3.0-beta.1:
    let requirement = semver::VersionReq::parse(">= 1.2.0").unwrap();
    assert!(!requirement.matches(&semver::Version::parse("1.3.0-beta.1").unwrap()));
}

#[test]
fn withdrawn_advisories_are_ignored() {
    let db = TestDb::new();
    db.advisory(
        "old",
        "RUSTSEC-2025-0007",
        &format!("{CRITICAL_31}\nwithdrawn = \"2025-02-01\""),
        "patched = []",
    );
    let report = scan(
        &db.open(),
        &lock(&[("old", "1.0.0")]),
        &Waivers::none(),
        today(),
    )
    .unwrap();
    assert!(report.vulnerabilities.is_empty());
    assert!(report.informational.is_empty());
    assert!(!report.high_risk());
}

#[test]
fn informational_advisories_are_reported_apart_per_kind() {
    let db = TestDb::new();
    db.advisory(
        "a",
        "RUSTSEC-2025-0010",
        "informational = \"unmaintained\"",
        "patched = []",
    );
    db.advisory(
        "b",
        "RUSTSEC-2025-0011",
        "informational = \"unsound\"",
        "patched = [\">= 2.0.0\"]",
    );
    db.advisory(
        "c",
        "RUSTSEC-2025-0012",
        "informational = \"notice\"",
        "patched = []",
    );
    let report = scan(
        &db.open(),
        &lock(&[
            ("a", "1.0.0"),
            ("b", "1.0.0"),
            ("b", "2.0.0"),
            ("c", "0.1.0"),
        ]),
        &Waivers::none(),
        today(),
    )
    .unwrap();
    assert!(report.vulnerabilities.is_empty());
    let kinds: Vec<(String, Informational)> = report
        .informational
        .iter()
        .map(|finding| {
            (
                finding.package.clone(),
                finding.informational.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("a".to_owned(), Informational::Unmaintained),
            ("b".to_owned(), Informational::Unsound),
            ("c".to_owned(), Informational::Notice),
        ]
    );
    // No CVSS vector, yet not risk: informational findings never count.
    assert!(!report.high_risk());
    assert_eq!(report.counts.informational, 3);
    assert_eq!(
        (
            report.counts.unmaintained,
            report.counts.unsound,
            report.counts.notice
        ),
        (1, 1, 1)
    );
}

#[test]
fn unknown_severity_counts_as_high_unless_waived() {
    let db = TestDb::new();
    db.advisory(
        "nocvss",
        "RUSTSEC-2025-0020",
        "",
        "patched = [\">= 2.0.0\"]",
    );
    let lockfile = lock(&[("nocvss", "1.0.0")]);
    let report = scan(&db.open(), &lockfile, &Waivers::none(), today()).unwrap();
    assert_eq!(report.vulnerabilities[0].severity, Severity::Unknown);
    assert_eq!(report.vulnerabilities[0].score, None);
    assert_eq!(report.counts.unknown, 1);
    assert!(report.high_risk());

    let waivers = Waivers::from_waivers(vec![waiver("RUSTSEC-2025-0020", "nocvss", "2026-12-31")]);
    let report = scan(&db.open(), &lockfile, &waivers, today()).unwrap();
    assert!(report.vulnerabilities[0].waived_by.is_some());
    assert!(!report.high_risk());
    assert_eq!(report.counts.waived, 1);
    assert_eq!(report.counts.unknown, 0);
}

fn waiver(advisory: &str, package: &str, expires: &str) -> Waiver {
    Waiver {
        advisory: advisory.to_owned(),
        package: package.to_owned(),
        reason: "not reachable from our code".to_owned(),
        expires: date(expires),
        approved_by: "security-officer".to_owned(),
        line: 0,
    }
}

#[test]
fn waivers_valid_expired_and_for_another_package() {
    let db = TestDb::new();
    db.advisory(
        "shared",
        "RUSTSEC-2025-0030",
        &format!("{CRITICAL_31}\naliases = [\"CVE-2025-1111\"]"),
        "patched = []",
    );
    db.advisory(
        "shared-too",
        "RUSTSEC-2025-0031",
        CRITICAL_31,
        "patched = []",
    );
    let lockfile = lock(&[("shared", "1.0.0"), ("shared-too", "1.0.0")]);

    // Valid through its expiry day, matched by alias too.
    for (advisory, expires) in [
        ("RUSTSEC-2025-0030", "2026-03-01"),
        ("CVE-2025-1111", "2027-01-01"),
    ] {
        let waivers = Waivers::from_waivers(vec![
            waiver(advisory, "shared", expires),
            waiver("RUSTSEC-2025-0031", "shared-too", "2027-01-01"),
        ]);
        let report = scan(&db.open(), &lockfile, &waivers, today()).unwrap();
        assert!(
            report
                .vulnerabilities
                .iter()
                .all(|finding| finding.waived_by.is_some())
        );
        assert!(!report.high_risk(), "{advisory}");
        assert!(report.unused_waivers.is_empty());
    }

    // Expired the day before: no longer counts, and the report says so with the date.
    let waivers = Waivers::from_waivers(vec![
        waiver("RUSTSEC-2025-0030", "shared", "2026-02-28"),
        waiver("RUSTSEC-2025-0031", "shared-too", "2027-01-01"),
    ]);
    let report = scan(&db.open(), &lockfile, &waivers, today()).unwrap();
    let finding = &report.vulnerabilities[0];
    assert_eq!(finding.package, "shared");
    assert!(finding.waived_by.is_none());
    assert_eq!(
        finding.expired_waiver.as_ref().unwrap().expires,
        date("2026-02-28")
    );
    assert!(report.high_risk());
    assert_eq!(report.high_risk_ids(), ["RUSTSEC-2025-0030"]);
    assert_eq!(report.counts.expired_waivers, 1);
    assert!(
        report.to_table().contains("expired on 2026-02-28"),
        "{}",
        report.to_table()
    );

    // A waiver for the same advisory but another package does nothing.
    let waivers = Waivers::from_waivers(vec![
        waiver("RUSTSEC-2025-0030", "shared-too", "2027-01-01"),
        waiver("RUSTSEC-2025-0031", "shared", "2027-01-01"),
    ]);
    let report = scan(&db.open(), &lockfile, &waivers, today()).unwrap();
    assert!(
        report
            .vulnerabilities
            .iter()
            .all(|finding| finding.waived_by.is_none())
    );
    assert!(report.high_risk());
    assert_eq!(report.unused_waivers.len(), 2);
}

#[test]
fn waiver_file_is_read_and_bad_ones_name_file_and_line() {
    let db = TestDb::new();
    let good = db.write(
        "waivers.toml",
        "# accepted risks\n[[waiver]]\nadvisory = \"RUSTSEC-2025-0030\"\npackage = \"shared\"\nreason = \"tracked\"\nexpires = \"2026-06-30\"\napproved_by = \"alice\"\n",
    );
    let waivers = Waivers::load(&good).unwrap();
    assert_eq!(waivers.waivers.len(), 1);
    assert_eq!(waivers.waivers[0].expires, date("2026-06-30"));
    assert_eq!(waivers.waivers[0].approved_by, "alice");
    // A TOML date literal works as well as a string.
    let literal = db.write(
        "waivers-literal.toml",
        "[[waiver]]\nadvisory = \"A\"\npackage = \"p\"\nreason = \"r\"\nexpires = 2026-07-01\napproved_by = \"b\"\n",
    );
    assert_eq!(
        Waivers::load(&literal).unwrap().waivers[0].expires,
        date("2026-07-01")
    );
    // The waiver's place in the file, for reports.
    assert!(
        (2..=3).contains(&waivers.waivers[0].line),
        "{}",
        waivers.waivers[0].line
    );

    let cases = [
        // Syntax error on line 3.
        (
            "[[waiver]]\nadvisory = \"X\"\npackage = shared\n",
            3,
            "waivers-syntax.toml",
        ),
        // A date-time is not a date (line 5).
        (
            "[[waiver]]\nadvisory = \"X\"\npackage = \"p\"\nreason = \"r\"\nexpires = 2026-01-01T10:00:00Z\napproved_by = \"a\"\n",
            5,
            "waivers-datetime.toml",
        ),
        // Bad date on line 5.
        (
            "[[waiver]]\nadvisory = \"X\"\npackage = \"p\"\nreason = \"r\"\nexpires = \"next year\"\napproved_by = \"a\"\n",
            5,
            "waivers-date.toml",
        ),
        // Empty approver on line 6.
        (
            "[[waiver]]\nadvisory = \"X\"\npackage = \"p\"\nreason = \"r\"\nexpires = \"2026-01-01\"\napproved_by = \" \"\n",
            6,
            "waivers-approver.toml",
        ),
    ];
    for (text, line, name) in cases {
        let path = db.write(name, text);
        let error = Waivers::load(&path).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SupplyError::Waiver { .. }), "{message}");
        assert!(message.contains(name), "{message}");
        assert!(message.contains(&format!(":{line}:")), "{name}: {message}");
    }
    // A missing key and an unknown key are refused with the file named.
    for (text, name) in [
        (
            "[[waiver]]\nadvisory = \"X\"\npackage = \"p\"\n",
            "waivers-missing.toml",
        ),
        (
            "[[waiver]]\nadvisory = \"X\"\npackage = \"p\"\nreason = \"r\"\nexpires = \"2026-01-01\"\napproved_by = \"a\"\napprover = \"b\"\n",
            "waivers-unknown.toml",
        ),
    ] {
        let path = db.write(name, text);
        let message = Waivers::load(&path).unwrap_err().to_string();
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn bad_advisory_toml_names_the_file_and_line() {
    let db = TestDb::new();
    // Line 1 is the fence; line 4 holds the error.
    let path = db.write(
        "crates/broken/RUSTSEC-2025-0040.md",
        "```toml\n[advisory]\nid = \"RUSTSEC-2025-0040\"\npackage = broken\n\n[versions]\npatched = []\n```\n# Broken\n",
    );
    let error = scan(
        &db.open(),
        &lock(&[("broken", "1.0.0")]),
        &Waivers::none(),
        today(),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, SupplyError::Advisory { .. }), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(":4:"), "{message}");

    // Without front matter, and with a bad version requirement or CVSS vector.
    let cases = [
        (
            "crates/nofence/RUSTSEC-2025-0041.md",
            "# Just markdown\n",
            "nofence",
        ),
        (
            "crates/badreq/RUSTSEC-2025-0042.md",
            "```toml\n[advisory]\nid = \"RUSTSEC-2025-0042\"\npackage = \"badreq\"\n\n[versions]\npatched = [\">= one\"]\n```\n",
            "badreq",
        ),
        (
            "crates/badcvss/RUSTSEC-2025-0043.md",
            "```toml\n[advisory]\nid = \"RUSTSEC-2025-0043\"\npackage = \"badcvss\"\ncvss = \"CVSS:3.1/AV:Q\"\n\n[versions]\npatched = []\n```\n",
            "badcvss",
        ),
        (
            "crates/overlap/RUSTSEC-2025-0044.md",
            "```toml\n[advisory]\nid = \"RUSTSEC-2025-0044\"\npackage = \"overlap\"\n\n[versions]\npatched = [\">= 1.0.0\"]\nunaffected = [\"< 1.5.0\"]\n```\n",
            "overlap",
        ),
    ];
    for (relative, text, name) in cases {
        let path = db.write(relative, text);
        let error = scan(
            &db.open(),
            &lock(&[(name, "1.0.0")]),
            &Waivers::none(),
            today(),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    // Packages not in the lockfile are never read: the broken files above do not matter.
    let report = scan(
        &db.open(),
        &lock(&[("fine", "1.0.0")]),
        &Waivers::none(),
        today(),
    )
    .unwrap();
    assert!(report.vulnerabilities.is_empty());
}

#[test]
fn missing_database_is_an_error() {
    let db = TestDb::new();
    let missing = db.path().join("nowhere");
    let error = portcullis_supply::AdvisoryDatabase::open(&missing).unwrap_err();
    assert!(matches!(error, SupplyError::Database { .. }));
    assert!(error.to_string().contains("nowhere"));
    let empty = db.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let error = portcullis_supply::AdvisoryDatabase::open(&empty).unwrap_err();
    assert!(error.to_string().contains("crates"), "{error}");
}

#[test]
fn package_sources_decide_which_advisories_apply() {
    let db = TestDb::new();
    db.advisory("dual", "RUSTSEC-2025-0050", CRITICAL_31, "patched = []");
    db.advisory(
        "dual",
        "RUSTSEC-2025-0051",
        &format!("{CRITICAL_31}\nregistry = \"https://my-registry.example/index\""),
        "patched = []",
    );
    let lockfile = Lockfile::from_packages(vec![
        package("dual", "1.0.0", PackageSource::CratesIo),
        // A path crate of the same name is not the published crate.
        package("dual", "2.0.0", PackageSource::Local),
        package(
            "dual",
            "3.0.0",
            PackageSource::Other("git+https://example.invalid/dual".to_owned()),
        ),
        package(
            "dual",
            "4.0.0",
            PackageSource::Registry("https://my-registry.example/index/".to_owned()),
        ),
    ]);
    let report = scan(&db.open(), &lockfile, &Waivers::none(), today()).unwrap();
    let found: Vec<(String, String)> = report
        .vulnerabilities
        .iter()
        .map(|finding| (finding.version.to_string(), finding.advisory_id.clone()))
        .collect();
    assert_eq!(
        found,
        [
            ("1.0.0".to_owned(), "RUSTSEC-2025-0050".to_owned()),
            ("4.0.0".to_owned(), "RUSTSEC-2025-0051".to_owned()),
        ]
    );
}

#[test]
fn affected_functions_os_and_arch_are_reported_not_filtered() {
    let db = TestDb::new();
    db.advisory(
        "platform",
        "RUSTSEC-2025-0060",
        &format!("{CRITICAL_31}\n\n[affected]\nos = [\"windows\"]\narch = [\"x86\"]\nfunctions = {{ \"platform::run\" = [\"< 2.0.0\"] }}"),
        "patched = [\">= 2.0.0\"]",
    );
    let report = scan(
        &db.open(),
        &lock(&[("platform", "1.0.0")]),
        &Waivers::none(),
        today(),
    )
    .unwrap();
    let finding = &report.vulnerabilities[0];
    assert_eq!(finding.os, ["windows"]);
    assert_eq!(finding.arch, ["x86"]);
    assert_eq!(finding.functions[0].path, "platform::run");
    assert_eq!(finding.functions[0].versions, ["< 2.0.0"]);
}

#[test]
fn osv_records_ranges_versions_and_duplicates() {
    let db = TestDb::new();
    db.advisory(
        "both",
        "RUSTSEC-2025-0070",
        &format!("{CRITICAL_31}\naliases = [\"GHSA-aaaa-bbbb-cccc\"]"),
        "patched = [\">= 1.0.1\"]",
    );
    let osv = db.path().join("osv");
    std::fs::create_dir(&osv).unwrap();
    std::fs::write(
        osv.join("GHSA-1111-2222-3333.json"),
        r#"{
  "schema_version": "1.6.0",
  "id": "GHSA-1111-2222-3333",
  "modified": "2025-05-01T00:00:00Z",
  "published": "2025-04-01T00:00:00Z",
  "aliases": ["CVE-2025-2222"],
  "summary": "Out-of-bounds read in parser",
  "severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}],
  "affected": [
    {"package": {"ecosystem": "crates.io", "name": "parser"},
     "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.5.0"}, {"introduced": "1.0.0"}, {"last_affected": "1.2.0"}]}],
     "versions": ["0.7.3"],
     "ecosystem_specific": {"affects": {"functions": ["parser::parse"], "os": [], "arch": []}}},
    {"package": {"ecosystem": "PyPI", "name": "parser"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}
  ],
  "references": [{"type": "ADVISORY", "url": "https://example.invalid/GHSA-1111-2222-3333"}]
}"#,
    )
    .unwrap();
    std::fs::write(
        osv.join("GHSA-aaaa-bbbb-cccc.json"),
        r#"{"id": "GHSA-aaaa-bbbb-cccc", "summary": "same as the RustSec one",
            "affected": [{"package": {"ecosystem": "crates.io", "name": "both"},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]}"#,
    )
    .unwrap();
    std::fs::write(
        osv.join("withdrawn.json"),
        r#"{"id": "GHSA-dead-dead-dead", "withdrawn": "2025-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "crates.io", "name": "parser"},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]}"#,
    )
    .unwrap();
    std::fs::write(
        osv.join("unmaintained.json"),
        r#"{"id": "RUSTSEC-2025-0071", "summary": "left alone",
            "affected": [{"package": {"ecosystem": "crates.io", "name": "lonely"},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
                          "database_specific": {"informational": "unmaintained"}}]}"#,
    )
    .unwrap();
    let mut database = db.open();
    database.add_osv_dir(&osv).unwrap();
    let lockfile = lock(&[
        ("parser", "0.4.9"),
        ("parser", "0.5.0"),
        ("parser", "0.7.3"),
        ("parser", "0.7.4"),
        ("parser", "1.2.0"),
        ("parser", "1.2.1"),
        ("both", "1.0.0"),
        ("lonely", "0.1.0"),
    ]);
    let report = scan(&database, &lockfile, &Waivers::none(), today()).unwrap();
    let found: Vec<(String, String, String)> = ids(&report);
    assert_eq!(
        found,
        [
            (
                "both".to_owned(),
                "1.0.0".to_owned(),
                "RUSTSEC-2025-0070".to_owned()
            ),
            (
                "parser".to_owned(),
                "0.4.9".to_owned(),
                "GHSA-1111-2222-3333".to_owned()
            ),
            (
                "parser".to_owned(),
                "0.7.3".to_owned(),
                "GHSA-1111-2222-3333".to_owned()
            ),
            (
                "parser".to_owned(),
                "1.2.0".to_owned(),
                "GHSA-1111-2222-3333".to_owned()
            ),
        ]
    );
    let parser = &report.vulnerabilities[1];
    assert_eq!(parser.title, "Out-of-bounds read in parser");
    assert_eq!(parser.severity, Severity::Critical);
    assert_eq!(parser.score, Some(9.3));
    assert_eq!(parser.aliases, ["CVE-2025-2222"]);
    assert_eq!(parser.functions[0].path, "parser::parse");
    assert_eq!(
        parser.url.as_deref(),
        Some("https://example.invalid/GHSA-1111-2222-3333")
    );
    assert_eq!(report.informational.len(), 1);
    assert_eq!(
        report.informational[0].informational,
        Some(Informational::Unmaintained)
    );
    assert_eq!(report.database.osv_files.len(), 4);

    // A malformed OSV file names itself and its line.
    std::fs::write(
        osv.join("zz-bad.json"),
        "{\n  \"id\": \"X\",\n  \"affected\": [,]\n}",
    )
    .unwrap();
    let mut database = db.open();
    let message = database.add_osv_dir(&osv).unwrap_err().to_string();
    assert!(message.contains("zz-bad.json:3:"), "{message}");
}

#[test]
fn renderers_carry_the_findings() {
    let db = TestDb::new();
    db.advisory(
        "risky",
        "RUSTSEC-2025-0080",
        &format!("{CRITICAL_31}\naliases = [\"CVE-2025-3333\"]"),
        "patched = [\">= 2.0.0\"]",
    );
    db.advisory("accepted", "RUSTSEC-2025-0081", MEDIUM_31, "patched = []");
    db.advisory(
        "old",
        "RUSTSEC-2025-0082",
        "informational = \"unmaintained\"",
        "patched = []",
    );
    let waivers =
        Waivers::from_waivers(vec![waiver("RUSTSEC-2025-0081", "accepted", "2027-01-01")]);
    let report = scan(
        &db.open(),
        &lock(&[("risky", "1.0.0"), ("accepted", "0.1.0"), ("old", "0.3.0")]),
        &waivers,
        today(),
    )
    .unwrap();

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["high_risk"], true);
    assert_eq!(json["vulnerabilities"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["vulnerabilities"][1]["advisory_id"],
        "RUSTSEC-2025-0080"
    );
    assert_eq!(json["vulnerabilities"][1]["severity"], "critical");
    assert_eq!(json["vulnerabilities"][1]["score"], 9.8);
    assert_eq!(
        json["vulnerabilities"][0]["waived_by"]["approved_by"],
        "security-officer"
    );
    assert_eq!(json["informational"][0]["informational"], "unmaintained");
    assert_eq!(json["counts"]["waived"], 1);

    let sarif = report.to_sarif();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let risky = results
        .iter()
        .find(|result| result["ruleId"] == "RUSTSEC-2025-0080")
        .unwrap();
    assert_eq!(risky["level"], "error");
    let accepted = results
        .iter()
        .find(|result| result["ruleId"] == "RUSTSEC-2025-0081")
        .unwrap();
    assert_eq!(accepted["suppressions"][0]["status"], "accepted");
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 3);

    let vex = report.to_cyclonedx_vex();
    assert_eq!(vex["bomFormat"], "CycloneDX");
    assert_eq!(vex["specVersion"], "1.6");
    let vulnerabilities = vex["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulnerabilities.len(), 2);
    let waived = vulnerabilities
        .iter()
        .find(|entry| entry["id"] == "RUSTSEC-2025-0081")
        .unwrap();
    assert_eq!(waived["analysis"]["state"], "not_affected");
    assert_eq!(waived["affects"][0]["ref"], "pkg:cargo/accepted@0.1.0");
    let risky = vulnerabilities
        .iter()
        .find(|entry| entry["id"] == "RUSTSEC-2025-0080")
        .unwrap();
    assert_eq!(risky["analysis"]["state"], "in_triage");
    assert_eq!(risky["ratings"][0]["method"], "CVSSv31");
    assert_eq!(risky["ratings"][0]["score"], 9.8);
    assert_eq!(risky["references"][0]["id"], "CVE-2025-3333");

    let table = report.to_table();
    assert!(table.contains("RUSTSEC-2025-0080"), "{table}");
    assert!(
        table.contains("high risk: yes (RUSTSEC-2025-0080)"),
        "{table}"
    );
    assert!(
        table.contains("waived by security-officer until 2027-01-01"),
        "{table}"
    );
}
