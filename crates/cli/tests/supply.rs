//! `portcullis sbom` and `portcullis scan`, run as a user would run them.
//!
//! The SBOM is checked against the workspace's `Cargo.lock` (every package with its SHA-256,
//! no dev-only package, `portcullis` the root) and against the formats' schemas: CycloneDX 1.6
//! with PyPI `cyclonedx-python-lib[json-validation]`, SPDX 2.3 with PyPI `spdx-tools`
//! (`scripts/test` installs both; without them these two tests are skipped, or fail under
//! `CI=true`). The scans use the RustSec snapshot in `shared/data` beside the repository.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts `output` is a refusal of unusable input (exit status 2) naming `what`.
fn unusable(output: &Output, what: &str) {
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains(what), "{stderr}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_of(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The RustSec snapshot in `shared/data` beside the repository (or `PORTCULLIS_ADVISORY_DB`).
fn snapshot() -> PathBuf {
    if let Ok(path) = std::env::var("PORTCULLIS_ADVISORY_DB") {
        return PathBuf::from(path);
    }
    let path = workspace().join("../shared/data/rustsec-advisory-db-2025-12-29");
    assert!(
        path.join("crates").is_dir(),
        "the RustSec snapshot is missing at {} (set PORTCULLIS_ADVISORY_DB)",
        path.display()
    );
    path
}

/// `Cargo.lock`: (name, version) → checksum (`None` for path packages), and each package's
/// dependencies as the lockfile writes them (`name` or `name version`).
struct Lock {
    checksums: BTreeMap<(String, String), Option<String>>,
    dependencies: BTreeMap<(String, String), Vec<String>>,
}

fn lock() -> Lock {
    let text = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap();
    let parsed: toml::Table = text.parse().unwrap();
    let mut checksums = BTreeMap::new();
    let mut dependencies = BTreeMap::new();
    for package in parsed["package"].as_array().unwrap() {
        let key = (
            package["name"].as_str().unwrap().to_owned(),
            package["version"].as_str().unwrap().to_owned(),
        );
        checksums.insert(
            key.clone(),
            package
                .get("checksum")
                .and_then(|c| c.as_str())
                .map(str::to_owned),
        );
        let deps = package
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|deps| {
                deps.iter()
                    .map(|d| d.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        dependencies.insert(key, deps);
    }
    Lock {
        checksums,
        dependencies,
    }
}

impl Lock {
    /// Every package reachable from `root` in the lockfile's graph (a superset of any build:
    /// all targets, features and dependency kinds).
    fn closure(&self, root: &str) -> BTreeSet<(String, String)> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<(String, String)> = self
            .checksums
            .keys()
            .filter(|(name, _)| name == root)
            .cloned()
            .collect();
        while let Some(key) = todo.pop() {
            if !seen.insert(key.clone()) {
                continue;
            }
            for dependency in self.dependencies.get(&key).into_iter().flatten() {
                let mut words = dependency.split(' ');
                let name = words.next().unwrap();
                let version = words.next();
                for candidate in self.checksums.keys() {
                    if candidate.0 == name && version.is_none_or(|v| v == candidate.1) {
                        todo.push(candidate.clone());
                    }
                }
            }
        }
        seen
    }
}

/// A component's property value.
fn property<'a>(component: &'a Value, name: &str) -> Option<&'a str> {
    component["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["value"].as_str())
}

#[test]
fn cyclonedx_sbom_lists_the_binarys_packages_with_lockfile_hashes() {
    let document = json_of(&run(&["sbom"]));
    assert_eq!(document["bomFormat"], "CycloneDX");
    assert_eq!(document["specVersion"], "1.6");
    let root = &document["metadata"]["component"];
    assert_eq!(root["name"], "portcullis");
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        root["bom-ref"],
        format!("pkg:cargo/portcullis@{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(document["metadata"]["timestamp"].as_str().is_some());

    let lock = lock();
    let closure = lock.closure("portcullis");
    let components = document["components"].as_array().unwrap();
    assert!(components.len() > 100, "{} components", components.len());
    let mut linked = BTreeSet::new();
    let mut build_only = BTreeSet::new();
    for component in components {
        let name = component["name"].as_str().unwrap().to_owned();
        let version = component["version"].as_str().unwrap().to_owned();
        // A purl percent-encodes `+` (build metadata, e.g. `toml 1.2.1+spec-1.1.0`).
        assert_eq!(
            component["purl"],
            format!("pkg:cargo/{name}@{}", version.replace('+', "%2B")),
            "{component}"
        );
        let key = (name.clone(), version.clone());
        assert!(
            closure.contains(&key),
            "{name} {version} is not a dependency of portcullis in Cargo.lock"
        );
        match lock.checksums.get(&key).unwrap() {
            Some(checksum) => {
                assert_eq!(component["hashes"][0]["alg"], "SHA-256", "{component}");
                assert_eq!(component["hashes"][0]["content"], *checksum, "{component}");
            }
            None => {
                assert!(component.get("hashes").is_none(), "{component}");
                assert_eq!(property(component, "portcullis:cargo:source"), Some("path"));
            }
        }
        match component["scope"].as_str().unwrap() {
            "required" => linked.insert(name),
            "excluded" => {
                assert_eq!(
                    property(component, "portcullis:cargo:build_only"),
                    Some("true")
                );
                build_only.insert(name)
            }
            other => panic!("scope {other} of {component}"),
        };
    }
    // What the binary's manifest and its own crates ask for at run time is linked…
    for name in [
        "portcullis-core",
        "portcullis-server",
        "portcullis-supply",
        "mimalloc",
        "tokio",
        "hyper",
        "rustls",
        "clap",
        "serde_json",
        "reqwest",
        "sqlx-core",
        "cargo-lock",
        "cvss",
    ] {
        assert!(linked.contains(name), "{name} is not listed as linked");
    }
    // …procedural macros and build scripts' dependencies are only marked…
    for name in ["serde_derive", "syn", "tonic-prost-build", "tempfile"] {
        assert!(
            build_only.contains(name),
            "{name} is not listed as build-only"
        );
    }
    // …and dev-only packages are absent.
    for name in [
        "proptest",
        "rcgen",
        "insta",
        "criterion",
        "axum-test",
        "tempfile",
    ] {
        assert!(
            !linked.contains(name),
            "dev-only {name} is listed as linked"
        );
    }
    for name in ["proptest", "rcgen", "insta", "criterion"] {
        assert!(
            !build_only.contains(name),
            "dev-only {name} is listed as build-only"
        );
    }

    // The graph: every reference is a component or the root, and the root is the only package
    // nothing depends on.
    let mut references: BTreeSet<&str> = components
        .iter()
        .map(|component| component["bom-ref"].as_str().unwrap())
        .collect();
    let root_ref = root["bom-ref"].as_str().unwrap();
    references.insert(root_ref);
    let entries = document["dependencies"].as_array().unwrap();
    assert_eq!(entries.len(), references.len());
    let mut depended = BTreeSet::new();
    for entry in entries {
        assert!(
            references.contains(entry["ref"].as_str().unwrap()),
            "{entry}"
        );
        for dependency in entry["dependsOn"].as_array().unwrap() {
            let dependency = dependency.as_str().unwrap();
            assert!(references.contains(dependency), "{dependency}");
            depended.insert(dependency);
        }
    }
    let roots: Vec<&&str> = references.difference(&depended).collect();
    assert_eq!(roots, [&root_ref]);
    let direct: Vec<&str> = entries
        .iter()
        .find(|entry| entry["ref"] == root_ref)
        .unwrap()["dependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().unwrap())
        .collect();
    assert!(
        direct
            .iter()
            .any(|d| d.starts_with("pkg:cargo/portcullis-supply@"))
    );
    assert!(direct.iter().any(|d| d.starts_with("pkg:cargo/mimalloc@")));
}

#[test]
fn spdx_sbom_lists_the_same_packages() {
    let cyclonedx = json_of(&run(&["sbom", "--format", "cyclonedx"]));
    let spdx = json_of(&run(&["sbom", "--format", "spdx"]));
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let mut from_cyclonedx: BTreeMap<String, Option<String>> = cyclonedx["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["purl"].as_str().unwrap().to_owned(),
                c["hashes"][0]["content"].as_str().map(str::to_owned),
            )
        })
        .collect();
    from_cyclonedx.insert(
        cyclonedx["metadata"]["component"]["purl"]
            .as_str()
            .unwrap()
            .to_owned(),
        None,
    );
    let lock = lock();
    let mut from_spdx = BTreeMap::new();
    let mut root_id = None;
    for package in spdx["packages"].as_array().unwrap() {
        let purl = package["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap()
            .to_owned();
        let checksum = package["checksums"][0]["checksumValue"]
            .as_str()
            .map(str::to_owned);
        let key = (
            package["name"].as_str().unwrap().to_owned(),
            package["versionInfo"].as_str().unwrap().to_owned(),
        );
        assert_eq!(lock.checksums.get(&key).unwrap(), &checksum, "{package}");
        if package["name"] == "portcullis" {
            root_id = Some(package["SPDXID"].as_str().unwrap().to_owned());
        }
        from_spdx.insert(purl, checksum);
    }
    assert_eq!(from_spdx, from_cyclonedx);
    let describes: Vec<&Value> = spdx["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "DESCRIBES")
        .collect();
    assert_eq!(describes.len(), 1);
    assert_eq!(describes[0]["spdxElementId"], "SPDXRef-DOCUMENT");
    assert_eq!(
        describes[0]["relatedSpdxElement"].as_str(),
        root_id.as_deref()
    );
}

#[test]
fn sbom_output_file_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sbom.json");
    let output = run(&["sbom", "--output", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["bomFormat"], "CycloneDX");
    let bad = dir.path().join("no/such/folder/sbom.json");
    let output = run(&["sbom", "--output", bad.to_str().unwrap()]);
    unusable(&output, "no/such/folder/sbom.json");
    let output = run(&["sbom", "--format", "xml"]);
    assert_eq!(output.status.code(), Some(2));
}

// ------------------------------------------------------------------ schema validation

/// Skips (prints why) outside CI, fails under `CI=true`.
fn missing(what: &str) {
    let why = format!("{what} is missing (scripts/test installs it)");
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{why}, and CI=true requires it");
    }
    eprintln!("skipped: {why}");
}

fn has_python_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn python(script: &str, file: &Path) -> Output {
    Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap()
}

/// Runs a validation script on `file`; it must succeed. Its standard output.
fn validated(script: &str, file: &Path) -> String {
    let output = python(script, file);
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Breaks the JSON document in `file` with `damage`; the validation script must then fail.
fn refused_when(script: &str, file: &Path, damage: impl FnOnce(&mut Value)) {
    let mut document: Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    damage(&mut document);
    std::fs::write(file, document.to_string()).unwrap();
    assert!(!python(script, file).status.success());
}

#[test]
fn cyclonedx_sbom_is_valid_against_the_official_schema() {
    if !has_python_module("cyclonedx.validation.json") || !has_python_module("jsonschema") {
        return missing("python3 with cyclonedx-python-lib[json-validation]");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sbom.cdx.json");
    assert_eq!(
        run(&["sbom", "--output", path.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let script = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
with open(sys.argv[1]) as f:
    data = f.read()
error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data)
if error is not None:
    print(error)
    sys.exit(1)
print("valid")
"#;
    assert_eq!(validated(script, &path).trim(), "valid");

    // The check can fail: a document breaking the schema is refused.
    refused_when(script, &path, |document| {
        document["components"][0]["scope"] = Value::from("sometimes");
    });
}

#[test]
fn spdx_sbom_is_valid_spdx_2_3() {
    if !has_python_module("spdx_tools.spdx.parser.parse_anything") {
        return missing("python3 with spdx-tools");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sbom.spdx.json");
    assert_eq!(
        run(&[
            "sbom",
            "--format",
            "spdx",
            "--output",
            path.to_str().unwrap()
        ])
        .status
        .code(),
        Some(0)
    );
    // spdx-tools parses the JSON (refusing unknown or missing fields) and validates the whole
    // document against SPDX 2.3: ids, references, relationships, licence expressions, dates.
    let script = r#"
import sys
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
document = parse_file(sys.argv[1])
messages = validate_full_spdx_document(document, "SPDX-2.3")
for message in messages:
    print(message.validation_message, message.context)
if messages:
    sys.exit(1)
print("valid", len(document.packages), len(document.relationships))
"#;
    let stdout = validated(script, &path);
    assert!(stdout.starts_with("valid "), "{stdout}");

    refused_when(script, &path, |document| {
        document["relationships"][0]["relatedSpdxElement"] = Value::from("SPDXRef-Nowhere");
    });
}

// ------------------------------------------------------------------ scan

#[test]
fn self_scan_against_the_snapshot_passes() {
    let db = snapshot();
    let output = run(&["scan", "--self", "--db", db.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    // `--self` is the default; JSON says how many packages were scanned.
    let report = json_of(&run(&[
        "scan",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(report["high_risk"], false, "{report}");
    let sbom = json_of(&run(&["sbom"]));
    let packages = sbom["components"].as_array().unwrap().len() + 1;
    assert_eq!(
        report["counts"]["packages"].as_u64(),
        Some(packages as u64),
        "{}",
        report["counts"]
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The version of `name` in this binary's SBOM.
fn version_in_sbom(name: &str) -> String {
    let sbom = json_of(&run(&["sbom"]));
    sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name && c["scope"] == "required")
        .unwrap_or_else(|| panic!("{name} is not in the SBOM"))["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

const ADVISORY: &str = "RUSTSEC-2026-0900";

/// A copy of the snapshot plus one critical advisory against `mimalloc` that no released
/// version patches.
fn database_with_advisory(dir: &Path) -> PathBuf {
    let db = dir.join("advisory-db");
    copy_dir(&snapshot(), &db);
    let advisory = format!(
        "```toml\n[advisory]\nid = \"{ADVISORY}\"\npackage = \"mimalloc\"\ndate = \"2026-01-05\"\n\
         url = \"https://example.invalid/{ADVISORY}\"\n\
         cvss = \"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\"\n\n[versions]\n\
         patched = [\">= 999.0.0\"]\n```\n\n# Test advisory against mimalloc\n\nFor tests.\n"
    );
    let folder = db.join("crates/mimalloc");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(format!("{ADVISORY}.md")), advisory).unwrap();
    db
}

#[test]
fn an_advisory_against_a_linked_crate_makes_the_scan_high_risk_until_waived() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_with_advisory(dir.path());
    let db = db.to_str().unwrap();
    let version = version_in_sbom("mimalloc");

    let table = run(&["scan", "--self", "--db", db]);
    assert_eq!(table.status.code(), Some(1), "{}", text(&table.stderr));
    let stdout = text(&table.stdout);
    assert!(stdout.contains(ADVISORY), "{stdout}");
    assert!(stdout.contains("mimalloc"), "{stdout}");

    let json = run(&["scan", "--self", "--db", db, "--format", "json"]);
    assert_eq!(json.status.code(), Some(1), "{}", text(&json.stderr));
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["high_risk"], true);
    let findings = report["vulnerabilities"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["advisory_id"], ADVISORY);
    assert_eq!(findings[0]["package"], "mimalloc");
    assert_eq!(findings[0]["version"], version.as_str());

    for format in ["sarif", "cyclonedx"] {
        let output = run(&["scan", "--self", "--db", db, "--format", format]);
        assert_eq!(output.status.code(), Some(1), "{format}");
        let document: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(document.to_string().contains(ADVISORY), "{format}");
    }

    // The same finding through the SBOM document and through the lockfile.
    for format in ["cyclonedx", "spdx"] {
        let sbom = dir.path().join(format!("sbom.{format}.json"));
        run(&[
            "sbom",
            "--format",
            format,
            "--output",
            sbom.to_str().unwrap(),
        ]);
        let output = run(&["scan", "--sbom", sbom.to_str().unwrap(), "--db", db]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        assert!(text(&output.stdout).contains(ADVISORY));
    }
    let lockfile = workspace().join("Cargo.lock");
    let output = run(&["scan", "--lock", lockfile.to_str().unwrap(), "--db", db]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));

    // A waiver for it brings the exit status back to 0 and the report says who waived it.
    let waivers = dir.path().join("waivers.toml");
    std::fs::write(
        &waivers,
        format!(
            "[[waiver]]\nadvisory = \"{ADVISORY}\"\npackage = \"mimalloc\"\n\
             reason = \"test: the allocator's affected path is not used\"\n\
             expires = \"2999-12-31\"\napproved_by = \"security-officer\"\n"
        ),
    )
    .unwrap();
    let waived = run(&[
        "scan",
        "--self",
        "--db",
        db,
        "--waivers",
        waivers.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(waived.status.code(), Some(0), "{}", text(&waived.stderr));
    let report: Value = serde_json::from_slice(&waived.stdout).unwrap();
    assert_eq!(report["high_risk"], false);
    assert_eq!(
        report["vulnerabilities"][0]["waived_by"]["approved_by"], "security-officer",
        "{report}"
    );

    // A waiver for another package does nothing.
    std::fs::write(
        &waivers,
        format!(
            "[[waiver]]\nadvisory = \"{ADVISORY}\"\npackage = \"tokio\"\nreason = \"x\"\n\
             expires = \"2999-12-31\"\napproved_by = \"someone\"\n"
        ),
    )
    .unwrap();
    let other = run(&[
        "scan",
        "--self",
        "--db",
        db,
        "--waivers",
        waivers.to_str().unwrap(),
    ]);
    assert_eq!(other.status.code(), Some(1), "{}", text(&other.stderr));
}

#[test]
fn unusable_inputs_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = snapshot();
    let db = db.to_str().unwrap();

    let missing_db = dir.path().join("no-such-db");
    let output = run(&["scan", "--self", "--db", missing_db.to_str().unwrap()]);
    unusable(&output, "no-such-db");

    let not_a_db = dir.path().join("not-a-db");
    std::fs::create_dir(&not_a_db).unwrap();
    let output = run(&["scan", "--db", not_a_db.to_str().unwrap()]);
    unusable(&output, "not-a-db");

    let waivers = dir.path().join("bad-waivers.toml");
    std::fs::write(&waivers, "[[waiver]]\nadvisory = \"RUSTSEC-2026-0001\"\n").unwrap();
    let output = run(&["scan", "--db", db, "--waivers", waivers.to_str().unwrap()]);
    unusable(&output, "bad-waivers.toml");

    let missing_waivers = dir.path().join("absent-waivers.toml");
    let output = run(&[
        "scan",
        "--db",
        db,
        "--waivers",
        missing_waivers.to_str().unwrap(),
    ]);
    unusable(&output, "absent-waivers.toml");

    let sbom = dir.path().join("bad-sbom.json");
    std::fs::write(&sbom, "{\"hello\": true}").unwrap();
    let output = run(&["scan", "--db", db, "--sbom", sbom.to_str().unwrap()]);
    unusable(&output, "bad-sbom.json");

    let lockfile = dir.path().join("Broken.lock");
    std::fs::write(&lockfile, "[[package]]\nname = 3\n").unwrap();
    let output = run(&["scan", "--db", db, "--lock", lockfile.to_str().unwrap()]);
    unusable(&output, "Broken.lock");

    // Usage errors: two inputs at once, no --db.
    for args in [
        &["scan", "--db", db, "--self", "--lock", "Cargo.lock"][..],
        &["scan", "--self"][..],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!text(&output.stderr).contains("panicked"), "{args:?}");
    }
}

#[test]
fn yanked_versions_come_from_the_given_index_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = snapshot();
    let db = db.to_str().unwrap();
    // An index checkout where the tokio this binary is built with is yanked, and nothing else
    // is known.
    let version = version_in_sbom("tokio");
    let index = dir.path().join("index");
    let file = index.join("to/ki/tokio");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        format!(
            "{{\"name\":\"tokio\",\"vers\":\"0.0.1\",\"yanked\":false}}\n\
             {{\"name\":\"tokio\",\"vers\":\"{version}\",\"yanked\":true}}\n"
        ),
    )
    .unwrap();
    let index = index.to_str().unwrap();
    let output = run(&[
        "scan", "--self", "--db", db, "--index", index, "--format", "json",
    ]);
    // Yanked is reported but is not high risk.
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report = json_of(&output);
    assert_eq!(
        report["yanked"],
        serde_json::json!([{"package": "tokio", "version": version}]),
        "{report}"
    );
    let looked_up = report["index"]["checked"].as_u64().unwrap();
    assert!(looked_up > 100, "{report}");
    assert_eq!(report["index"]["unknown"].as_u64(), Some(looked_up - 1));
    let table = run(&["scan", "--self", "--db", db, "--index", index]);
    assert!(
        text(&table.stdout).contains(&format!("yanked: tokio {version}")),
        "{}",
        text(&table.stdout)
    );
    // Without --index nothing is said about yanked versions.
    let plain = json_of(&run(&["scan", "--self", "--db", db, "--format", "json"]));
    assert_eq!(plain["yanked"], serde_json::json!([]));
    assert!(plain["index"].is_null());
    // An unusable copy is an input error naming the file.
    std::fs::write(&file, "{\"vers\": [\n").unwrap();
    unusable(
        &run(&["scan", "--self", "--db", db, "--index", index]),
        "tokio",
    );
    unusable(
        &run(&["scan", "--self", "--db", db, "--index", "/no/such/index"]),
        "/no/such/index",
    );
}
