//! Yanked versions, looked up in copies of the registry index built in temporary folders: an
//! index checkout (JSON lines) and Cargo's index cache.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: failures should be loud"
)]

mod common;

use std::path::Path;

use common::{TestDb, lock, package, today};
use portcullis_supply::{
    IndexState, Lockfile, PackageSource, RegistryIndex, SupplyError, Waivers, check_yanked, scan,
};
use semver::Version;

/// One index line, as crates.io writes it.
fn line(name: &str, version: &str, yanked: bool) -> String {
    format!(
        "{{\"name\":\"{name}\",\"vers\":\"{version}\",\"deps\":[],\"cksum\":\"{}\",\"features\":{{}},\"yanked\":{yanked}}}",
        "0".repeat(64)
    )
}

/// Where the index keeps `name`'s file, below `root`.
fn file_of(root: &Path, name: &str) -> std::path::PathBuf {
    let relative = match name.len() {
        1 | 2 => format!("{}/{name}", name.len()),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    };
    root.join(relative)
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// An index checkout: one JSON line per version.
fn checkout(root: &Path, crates: &[(&str, &[(&str, bool)])]) {
    for (name, versions) in crates {
        let text: String = versions
            .iter()
            .map(|(version, yanked)| line(name, version, *yanked) + "\n")
            .collect();
        write(&file_of(root, name), text.as_bytes());
    }
}

/// Cargo's cache of the sparse index: `root/.cache/…`, header, revision, then NUL-ended
/// version and line pairs.
fn cargo_cache(root: &Path, crates: &[(&str, &[(&str, bool)])]) {
    for (name, versions) in crates {
        let mut bytes = vec![3, 2, 0, 0, 0];
        bytes.extend_from_slice(b"etag: \"abc\"\0");
        for (version, yanked) in *versions {
            bytes.extend_from_slice(version.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(line(name, version, *yanked).as_bytes());
            bytes.push(0);
        }
        write(&file_of(&root.join(".cache"), name), &bytes);
    }
}

const CRATES: &[(&str, &[(&str, bool)])] = &[
    (
        "widget",
        &[("1.0.0", false), ("1.0.1", true), ("1.1.0", false)],
    ),
    ("ab", &[("0.1.0", true)]),
    ("xyz", &[("2.0.0-rc.1", true), ("2.0.0", false)]),
];

fn lockfile() -> Lockfile {
    let mut lockfile = lock(&[
        ("widget", "1.0.1"),
        ("widget", "1.1.0"),
        ("ab", "0.1.0"),
        ("xyz", "2.0.0-rc.1"),
        ("xyz", "2.0.0"),
        // Not in the copy: not known to be yanked, counted apart.
        ("absent", "1.0.0"),
        ("widget", "9.9.9"),
    ]);
    // A path crate and a git crate are not looked up, whatever the index says.
    lockfile
        .packages
        .push(package("widget", "1.0.1", PackageSource::Local));
    lockfile.packages.push(package(
        "ab",
        "0.1.0",
        PackageSource::Other("git+https://example.invalid/ab".into()),
    ));
    lockfile
}

#[test]
fn yanked_versions_are_found_in_an_index_checkout_and_in_cargos_cache() {
    let db = TestDb::new();
    for (form, build) in [
        (
            "checkout",
            checkout as fn(&Path, &[(&str, &[(&str, bool)])]),
        ),
        ("cache", cargo_cache),
    ] {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), CRATES);
        let index = RegistryIndex::open(dir.path()).unwrap();
        let lockfile = lockfile();
        let mut report = scan(&db.open(), &lockfile, &Waivers::none(), today()).unwrap();
        assert!(report.yanked.is_empty() && report.index.is_none());
        check_yanked(&mut report, &lockfile, &index).unwrap();
        let found: Vec<String> = report
            .yanked
            .iter()
            .map(|yanked| format!("{}@{}", yanked.package, yanked.version))
            .collect();
        assert_eq!(
            found,
            ["ab@0.1.0", "widget@1.0.1", "xyz@2.0.0-rc.1"],
            "{form}"
        );
        let info = report.index.as_ref().unwrap();
        assert_eq!((info.checked, info.unknown), (7, 2), "{form}");
        assert_eq!(report.counts.yanked, 3, "{form}");
        // Yanked is a warning, never high risk.
        assert!(!report.high_risk(), "{form}");
        let table = report.to_table();
        assert!(table.contains("yanked: widget 1.0.1"), "{form}: {table}");
        assert!(
            table.contains("7 crates.io packages looked up, 2 not in it, 3 yanked"),
            "{form}: {table}"
        );
        let sarif = report.to_sarif();
        let results = sarif["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 3, "{form}");
        assert!(
            results
                .iter()
                .all(|result| result["ruleId"] == "yanked" && result["level"] == "warning")
        );
        assert_eq!(report.to_json().matches("\"package\": \"ab\"").count(), 1);
    }
}

#[test]
fn each_version_is_looked_up_exactly() {
    let dir = tempfile::tempdir().unwrap();
    cargo_cache(dir.path(), CRATES);
    let index = RegistryIndex::open(dir.path()).unwrap();
    let state = |name: &str, version: &str| index.state(name, &Version::parse(version).unwrap());
    assert_eq!(state("widget", "1.0.1").unwrap(), IndexState::Yanked);
    assert_eq!(state("widget", "1.0.0").unwrap(), IndexState::Published);
    assert_eq!(state("Widget", "1.0.1").unwrap(), IndexState::Yanked);
    assert_eq!(state("xyz", "2.0.0").unwrap(), IndexState::Published);
    assert_eq!(state("xyz", "2.0.0-rc.1").unwrap(), IndexState::Yanked);
    assert_eq!(state("widget", "1.0.1-rc.1").unwrap(), IndexState::Unknown);
    assert_eq!(state("nothing", "1.0.0").unwrap(), IndexState::Unknown);
}

#[test]
fn unusable_copies_are_errors_naming_the_file() {
    let db = TestDb::new();
    let missing = db.path().join("no-index");
    assert!(matches!(
        RegistryIndex::open(&missing),
        Err(SupplyError::Io { .. })
    ));
    let file = db.write("index-file", "not a folder");
    assert!(
        RegistryIndex::open(&file)
            .unwrap_err()
            .to_string()
            .contains("not a folder")
    );

    let dir = tempfile::tempdir().unwrap();
    checkout(dir.path(), CRATES);
    // A broken line in a checkout: the file and the line are named.
    let broken = file_of(dir.path(), "widget");
    write(
        &broken,
        format!("{}\n{{\"vers\": 1}}\n", line("widget", "1.0.0", false)).as_bytes(),
    );
    let index = RegistryIndex::open(dir.path()).unwrap();
    let lockfile = lock(&[("widget", "1.0.1")]);
    let mut report = scan(&db.open(), &lockfile, &Waivers::none(), today()).unwrap();
    let message = check_yanked(&mut report, &lockfile, &index)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&broken.display().to_string()) && message.contains("line 2"),
        "{message}"
    );
    // A truncated cache file.
    let dir = tempfile::tempdir().unwrap();
    let cached = file_of(&dir.path().join(".cache"), "widget");
    write(&cached, b"\x03\x02\x00\x00\x00rev\x001.0.1\x00");
    let index = RegistryIndex::open(dir.path()).unwrap();
    let message = index
        .state("widget", &Version::new(1, 0, 1))
        .unwrap_err()
        .to_string();
    assert!(message.contains(&cached.display().to_string()), "{message}");
}
