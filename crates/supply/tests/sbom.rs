//! SBOM documents rendered from a hand-built package list, and SBOMs read back to scan.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: failures should be loud"
)]

use portcullis_supply::sbom::{license_expression, packages_of_document};
use portcullis_supply::{PackageList, PackageSource, SbomPackage, SupplyError, read_document};
use serde_json::Value;

const SERDE_SUM: &str = "0b8e3a5a0a8d8a2e7a49a0f4f0d4d1f1c7f3d0f8d9e6d2a1b3c4d5e6f7a8b9c0";
const SYN_SUM: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const PM2_SUM: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const BITS_SUM: &str = "3333333333333333333333333333333333333333333333333333333333333333";

/// `app` (the binary) → `app-core` (path) → `serde` → `serde_derive` (proc-macro, build-only)
/// → `syn` → `proc-macro2`; `app` → `bits` (old `A/B` licence); no dev-dependency at all.
fn list() -> PackageList {
    let mut app = SbomPackage::path("app", "1.2.3", "Apache-2.0");
    app.dependencies = vec![
        "app-core@1.2.3".into(),
        "bits@0.4.0-rc.1".into(),
        "serde@1.0.200".into(),
    ];
    let mut core = SbomPackage::path("app-core", "1.2.3", "Apache-2.0");
    core.dependencies = vec!["serde@1.0.200".into()];
    let mut serde = SbomPackage::crates_io("serde", "1.0.200", SERDE_SUM, "MIT OR Apache-2.0");
    serde.dependencies = vec!["serde_derive@1.0.200".into()];
    let mut derive =
        SbomPackage::crates_io("serde_derive", "1.0.200", SYN_SUM, "MIT OR Apache-2.0");
    derive.build_only = true;
    derive.dependencies = vec!["syn@2.0.0".into(), "proc-macro2@1.0.80".into()];
    let mut syn = SbomPackage::crates_io("syn", "2.0.0", SYN_SUM, "MIT OR Apache-2.0");
    syn.build_only = true;
    syn.dependencies = vec!["proc-macro2@1.0.80".into()];
    let mut pm2 = SbomPackage::crates_io("proc-macro2", "1.0.80", PM2_SUM, "MIT OR Apache-2.0");
    pm2.build_only = true;
    let bits = SbomPackage::crates_io("bits", "0.4.0-rc.1", BITS_SUM, "MIT/Apache-2.0");
    PackageList {
        root: "app@1.2.3".into(),
        target: "x86_64-unknown-linux-gnu".into(),
        built_at: "2026-12-07T10:11:12Z".parse().unwrap(),
        generator: "hand-built".into(),
        // Deliberately unsorted: rendering sorts.
        packages: vec![syn, app, bits, pm2, derive, core, serde],
    }
}

fn component<'a>(document: &'a Value, name: &str) -> &'a Value {
    document["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|component| component["name"] == name)
        .unwrap_or_else(|| panic!("no component {name}"))
}

fn depends_on(document: &Value, reference: &str) -> Vec<String> {
    let entry = document["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["ref"] == reference)
        .unwrap_or_else(|| panic!("no dependencies entry for {reference}"));
    entry["dependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn cyclonedx_has_every_package_with_purl_hash_and_licence() {
    let document = list().to_cyclonedx();
    assert_eq!(document["bomFormat"], "CycloneDX");
    assert_eq!(document["specVersion"], "1.6");
    assert_eq!(document["metadata"]["timestamp"], "2026-12-07T10:11:12Z");
    let root = &document["metadata"]["component"];
    assert_eq!(root["name"], "app");
    assert_eq!(root["version"], "1.2.3");
    assert_eq!(root["type"], "application");
    assert_eq!(root["bom-ref"], "pkg:cargo/app@1.2.3");
    let names: Vec<&str> = document["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|component| component["name"].as_str().unwrap())
        .collect();
    // Sorted by name; the root is the metadata component, not a library.
    assert_eq!(
        names,
        [
            "app-core",
            "bits",
            "proc-macro2",
            "serde",
            "serde_derive",
            "syn"
        ]
    );
    let serde = component(&document, "serde");
    assert_eq!(serde["purl"], "pkg:cargo/serde@1.0.200");
    assert_eq!(serde["bom-ref"], "pkg:cargo/serde@1.0.200");
    assert_eq!(serde["type"], "library");
    assert_eq!(serde["scope"], "required");
    assert_eq!(serde["hashes"][0]["alg"], "SHA-256");
    assert_eq!(serde["hashes"][0]["content"], SERDE_SUM);
    assert_eq!(serde["licenses"][0]["expression"], "MIT OR Apache-2.0");
    // The deprecated `A/B` licence form is written as an SPDX expression.
    let bits = component(&document, "bits");
    assert_eq!(bits["licenses"][0]["expression"], "MIT OR Apache-2.0");
    assert_eq!(bits["purl"], "pkg:cargo/bits@0.4.0-rc.1");
    // A path package has no registry hash and says where it comes from.
    let core = component(&document, "app-core");
    assert!(core.get("hashes").is_none(), "{core}");
    assert!(
        core["properties"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "portcullis:cargo:source" && p["value"] == "path"),
        "{core}"
    );
}

#[test]
fn cyclonedx_marks_build_only_packages_excluded() {
    let document = list().to_cyclonedx();
    for name in ["serde_derive", "syn", "proc-macro2"] {
        let component = component(&document, name);
        assert_eq!(component["scope"], "excluded", "{component}");
        assert!(
            component["properties"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "portcullis:cargo:build_only" && p["value"] == "true"),
            "{component}"
        );
    }
    for name in ["serde", "bits", "app-core"] {
        assert_eq!(component(&document, name)["scope"], "required");
    }
}

#[test]
fn cyclonedx_graph_starts_at_the_root() {
    let document = list().to_cyclonedx();
    assert_eq!(
        depends_on(&document, "pkg:cargo/app@1.2.3"),
        [
            "pkg:cargo/app-core@1.2.3",
            "pkg:cargo/bits@0.4.0-rc.1",
            "pkg:cargo/serde@1.0.200"
        ]
    );
    assert_eq!(
        depends_on(&document, "pkg:cargo/serde_derive@1.0.200"),
        ["pkg:cargo/proc-macro2@1.0.80", "pkg:cargo/syn@2.0.0"]
    );
    assert!(depends_on(&document, "pkg:cargo/proc-macro2@1.0.80").is_empty());
    // Every package has one entry; the root is the only one nothing depends on.
    let entries = document["dependencies"].as_array().unwrap();
    assert_eq!(entries.len(), 7);
    let depended: Vec<&str> = entries
        .iter()
        .flat_map(|entry| entry["dependsOn"].as_array().unwrap())
        .map(|value| value.as_str().unwrap())
        .collect();
    let roots: Vec<&str> = entries
        .iter()
        .map(|entry| entry["ref"].as_str().unwrap())
        .filter(|reference| !depended.contains(reference))
        .collect();
    assert_eq!(roots, ["pkg:cargo/app@1.2.3"]);
}

#[test]
fn rendering_is_deterministic_but_the_time() {
    let first = list();
    let mut second = list();
    second.packages.reverse();
    assert_eq!(first.to_cyclonedx(), second.to_cyclonedx());
    assert_eq!(first.to_spdx(), second.to_spdx());
    second.built_at = "2027-01-01T00:00:00Z".parse().unwrap();
    let (a, b) = (first.to_cyclonedx(), second.to_cyclonedx());
    assert_eq!(a["serialNumber"], b["serialNumber"]);
    assert_ne!(a["metadata"]["timestamp"], b["metadata"]["timestamp"]);
    let serial = a["serialNumber"].as_str().unwrap();
    assert!(serial.starts_with("urn:uuid:"), "{serial}");
    assert_eq!(serial.len(), "urn:uuid:".len() + 36);
    // A different package set gets a different serial number.
    let mut third = list();
    third.packages[2].version = "0.4.0".into();
    third.packages[1].dependencies[1] = "bits@0.4.0".into();
    assert_ne!(third.to_cyclonedx()["serialNumber"], a["serialNumber"]);
}

fn spdx_package<'a>(document: &'a Value, name: &str) -> &'a Value {
    document["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == name)
        .unwrap_or_else(|| panic!("no package {name}"))
}

fn relationships(document: &Value, kind: &str) -> Vec<(String, String)> {
    document["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == kind)
        .map(|r| {
            (
                r["spdxElementId"].as_str().unwrap().to_owned(),
                r["relatedSpdxElement"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn spdx_has_every_package_with_purl_checksum_and_licence() {
    let document = list().to_spdx();
    assert_eq!(document["spdxVersion"], "SPDX-2.3");
    assert_eq!(document["dataLicense"], "CC0-1.0");
    assert_eq!(document["SPDXID"], "SPDXRef-DOCUMENT");
    assert_eq!(document["creationInfo"]["created"], "2026-12-07T10:11:12Z");
    assert_eq!(document["packages"].as_array().unwrap().len(), 7);
    let serde = spdx_package(&document, "serde");
    assert_eq!(serde["SPDXID"], "SPDXRef-Package-serde-1.0.200");
    assert_eq!(serde["versionInfo"], "1.0.200");
    assert_eq!(serde["checksums"][0]["algorithm"], "SHA256");
    assert_eq!(serde["checksums"][0]["checksumValue"], SERDE_SUM);
    assert_eq!(serde["licenseDeclared"], "MIT OR Apache-2.0");
    assert_eq!(serde["externalRefs"][0]["referenceType"], "purl");
    assert_eq!(
        serde["externalRefs"][0]["referenceLocator"],
        "pkg:cargo/serde@1.0.200"
    );
    assert_eq!(
        serde["downloadLocation"],
        "https://crates.io/api/v1/crates/serde/1.0.200/download"
    );
    // SPDX ids allow no `_`.
    assert_eq!(
        spdx_package(&document, "serde_derive")["SPDXID"],
        "SPDXRef-Package-serde.derive-1.0.200"
    );
    let core = spdx_package(&document, "app-core");
    assert_eq!(core["downloadLocation"], "NONE");
    assert!(core.get("checksums").is_none());
    assert_eq!(
        spdx_package(&document, "app")["primaryPackagePurpose"],
        "APPLICATION"
    );
    assert!(
        spdx_package(&document, "syn")["comment"]
            .as_str()
            .unwrap()
            .starts_with("Build-time only")
    );
}

#[test]
fn spdx_graph_describes_the_root() {
    let document = list().to_spdx();
    assert_eq!(
        relationships(&document, "DESCRIBES"),
        [(
            "SPDXRef-DOCUMENT".to_owned(),
            "SPDXRef-Package-app-1.2.3".to_owned()
        )]
    );
    let depends = relationships(&document, "DEPENDS_ON");
    assert!(depends.contains(&(
        "SPDXRef-Package-app-1.2.3".into(),
        "SPDXRef-Package-serde-1.0.200".into()
    )));
    // Between build-only packages: DEPENDS_ON; into one from a linked package: a build
    // dependency.
    assert!(depends.contains(&(
        "SPDXRef-Package-syn-2.0.0".into(),
        "SPDXRef-Package-proc-macro2-1.0.80".into()
    )));
    assert_eq!(
        relationships(&document, "BUILD_DEPENDENCY_OF"),
        [(
            "SPDXRef-Package-serde.derive-1.0.200".to_owned(),
            "SPDXRef-Package-serde-1.0.200".to_owned()
        )]
    );
    // 1 DESCRIBES + 3 + 1 + 1 (BUILD_DEPENDENCY_OF) + 2 + 1 edges.
    assert_eq!(document["relationships"].as_array().unwrap().len(), 9);
}

#[test]
fn package_list_round_trips_and_is_checked() {
    let list = list();
    let parsed = PackageList::from_json(&list.to_json()).unwrap();
    assert_eq!(parsed, list);
    let mut dangling = list.clone();
    dangling.packages[0].dependencies.push("ghost@1.0.0".into());
    let error = PackageList::from_json(&dangling.to_json()).unwrap_err();
    assert!(error.to_string().contains("ghost@1.0.0"), "{error}");
    let mut rootless = list;
    rootless.root = "other@1.0.0".into();
    let error = PackageList::from_json(&rootless.to_json()).unwrap_err();
    assert!(error.to_string().contains("other@1.0.0"), "{error}");
}

#[test]
fn package_list_as_lockfile_keeps_sources() {
    let lockfile = list().to_lockfile().unwrap();
    assert_eq!(lockfile.packages.len(), 7);
    let source = |name: &str| {
        lockfile
            .packages
            .iter()
            .find(|package| package.name == name)
            .unwrap()
            .source
            .clone()
    };
    assert_eq!(source("app"), PackageSource::Local);
    assert_eq!(source("app-core"), PackageSource::Local);
    assert_eq!(source("serde"), PackageSource::CratesIo);
    // Build-only packages are scanned too.
    assert_eq!(source("syn"), PackageSource::CratesIo);
}

#[test]
fn both_documents_read_back_as_the_same_packages() {
    let list = list();
    let mut expected: Vec<(String, String, PackageSource)> = list
        .to_lockfile()
        .unwrap()
        .packages
        .into_iter()
        .map(|package| (package.name, package.version.to_string(), package.source))
        .collect();
    expected.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for document in [list.to_cyclonedx(), list.to_spdx()] {
        let mut read: Vec<(String, String, PackageSource)> = packages_of_document(&document)
            .unwrap()
            .into_iter()
            .map(|package| (package.name, package.version.to_string(), package.source))
            .collect();
        read.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert_eq!(read, expected);
    }
}

#[test]
fn foreign_cyclonedx_purls_are_read_with_qualifiers_and_nesting() {
    let document = serde_json::json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": [
            { "type": "library", "name": "a", "purl": "pkg:cargo/a@1.0.0?repository_url=x#sub",
              "components": [{ "type": "library", "name": "b", "purl": "pkg:cargo/b@2.0.0%2Bmeta" }] },
            { "type": "library", "name": "left-pad", "purl": "pkg:npm/left-pad@1.3.0" }
        ]
    });
    let packages = packages_of_document(&document).unwrap();
    let read: Vec<String> = packages
        .iter()
        .map(|package| format!("{}@{}", package.name, package.version))
        .collect();
    assert_eq!(read, ["a@1.0.0", "b@2.0.0+meta"]);
    assert!(packages.iter().all(|p| p.source == PackageSource::CratesIo));
}

#[test]
fn unusable_documents_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("not-json.json", "{ nope", "not JSON"),
        ("other.json", "{\"hello\": 1}", "neither a CycloneDX"),
        (
            "empty.json",
            "{\"bomFormat\": \"CycloneDX\", \"components\": []}",
            "no package with a `pkg:cargo/` purl",
        ),
        (
            "badversion.json",
            "{\"bomFormat\": \"CycloneDX\", \"components\": [{\"purl\": \"pkg:cargo/a@one\"}]}",
            "bad version",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let error = read_document(&path).unwrap_err();
        assert!(matches!(error, SupplyError::Sbom { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains(name), "{message}");
        assert!(message.contains(expected), "{message}");
    }
    let missing = read_document(dir.path().join("missing.json")).unwrap_err();
    assert!(missing.to_string().contains("missing.json"), "{missing}");
}

#[test]
fn licence_expressions() {
    assert_eq!(
        license_expression("MIT/Apache-2.0").as_deref(),
        Some("MIT OR Apache-2.0")
    );
    assert_eq!(
        license_expression("Apache-2.0 / MIT").as_deref(),
        Some("Apache-2.0 OR MIT")
    );
    assert_eq!(
        license_expression("(MIT OR Apache-2.0) AND Unicode-3.0").as_deref(),
        Some("(MIT OR Apache-2.0) AND Unicode-3.0")
    );
    assert_eq!(license_expression("  "), None);
}
