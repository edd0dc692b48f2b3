//! Software bills of materials: the packages compiled into a binary, rendered as CycloneDX 1.6
//! JSON and SPDX 2.3 JSON, and SBOM documents read back as a [`Lockfile`] to scan.
//!
//! The input is a [`PackageList`]: every package of one build (the root binary's package
//! included), each with its lockfile source, registry SHA-256, manifest licence, the
//! packages it depends on, and whether it is needed only while building (a build script's
//! dependency or a procedural macro and what those use) rather than linked into the binary.
//! The `portcullis` binary captures its own list at build time (`crates/cli/build.rs`) and
//! embeds it; this module only renders and reads, so it works on any hand-built list too.
//! The build script asks `cargo tree` (offline, locked) rather than `cargo metadata`: offline,
//! `cargo metadata` fails as soon as any package of the lockfile was never downloaded (another
//! workspace member's dev-dependency, say), and its resolve graph unifies features across the
//! whole workspace, where `cargo tree -p portcullis` resolves them as that build does.
//!
//! Rendering is deterministic: packages sorted by name and version, dependencies sorted,
//! and the CycloneDX serial number and the SPDX document namespace derived from a SHA-256
//! digest of the package list. Only the timestamp (the list's `built_at`) varies between
//! builds of the same sources.
//!
//! How each format shows the parts:
//!
//! | | CycloneDX 1.6 | SPDX 2.3 |
//! |---|---|---|
//! | the binary | `metadata.component` (`type: application`) | the package the document `DESCRIBES` |
//! | a package | a `library` component, `bom-ref` = purl | a package, `SPDXRef-Package-NAME-VERSION` |
//! | purl | `purl`: `pkg:cargo/NAME@VERSION` | `externalRefs` of type `purl` |
//! | SHA-256 from `Cargo.lock` | `hashes` (`SHA-256`) | `checksums` (`SHA256`) |
//! | licence (manifest) | `licenses[].expression` | `licenseDeclared` |
//! | graph | `dependencies` (`ref` → `dependsOn`) | `DEPENDS_ON`; `BUILD_DEPENDENCY_OF` into build-only packages |
//! | build-only | `scope: excluded`, property `portcullis:cargo:build_only = true` | a `comment` |
//! | a path package | property `portcullis:cargo:source = path`, no hash | `downloadLocation: NONE` |
//!
//! Licences are the manifests' `license` fields, with the old `A/B` form written as the SPDX
//! expression `A OR B`; a package with only a `license-file` has none (CycloneDX: no
//! `licenses`; SPDX: `NOASSERTION`).
//!
//! Reading ([`read_document`]) accepts either format: every component or package with a
//! `pkg:cargo/` purl becomes a [`Package`]; path packages (as written above) meet no
//! advisory, everything else is taken to come from crates.io.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Result, SupplyError};
use crate::lockfile::{Lockfile, Package, PackageSource};

/// The lockfile `source` of crates.io.
pub const CRATES_IO_SOURCE: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// Property names used in CycloneDX documents.
const SOURCE_PROPERTY: &str = "portcullis:cargo:source";
const BUILD_ONLY_PROPERTY: &str = "portcullis:cargo:build_only";
const TARGET_PROPERTY: &str = "portcullis:cargo:target";

/// One package of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomPackage {
    /// Crate name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// The lockfile `source` (`registry+…`, `git+…`); `None` for a workspace member or path
    /// dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The registry's SHA-256 of the `.crate` file (the lockfile `checksum`), lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The manifest's `license` field, as written there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Needed only to build (a build script's dependency, a procedural macro, or what only
    /// those use), not linked into the binary.
    #[serde(default)]
    pub build_only: bool,
    /// The packages it depends on, by [`SbomPackage::key`] (`NAME@VERSION`).
    #[serde(default)]
    pub dependencies: Vec<String>,
}

impl SbomPackage {
    /// A crates.io package with its checksum and licence, no dependencies.
    pub fn crates_io(name: &str, version: &str, checksum: &str, license: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            source: Some(CRATES_IO_SOURCE.to_owned()),
            checksum: Some(checksum.to_owned()),
            license: Some(license.to_owned()),
            build_only: false,
            dependencies: Vec::new(),
        }
    }

    /// A path package (a workspace member), no dependencies.
    pub fn path(name: &str, version: &str, license: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            source: None,
            checksum: None,
            license: Some(license.to_owned()),
            build_only: false,
            dependencies: Vec::new(),
        }
    }

    /// `NAME@VERSION`, the key dependencies refer to.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The package URL, `pkg:cargo/NAME@VERSION`.
    pub fn purl(&self) -> String {
        format!(
            "pkg:cargo/{}@{}",
            purl_escape(&self.name),
            purl_escape(&self.version)
        )
    }

    /// Whether it comes from crates.io.
    pub fn is_crates_io(&self) -> bool {
        self.source.as_deref().is_some_and(|source| {
            source == CRATES_IO_SOURCE || source == "sparse+https://index.crates.io/"
        })
    }

    /// The licence as an SPDX expression (`A/B` becomes `A OR B`), if the manifest has one.
    pub fn license_expression(&self) -> Option<String> {
        self.license.as_deref().and_then(license_expression)
    }

    /// Its source as a short word: `crates.io`, `path`, or the lockfile source.
    pub fn source_label(&self) -> String {
        match &self.source {
            None => "path".to_owned(),
            Some(_) if self.is_crates_io() => "crates.io".to_owned(),
            Some(source) => source.clone(),
        }
    }
}

/// The packages of one build of a binary, captured when it was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageList {
    /// The binary's package, by key (`NAME@VERSION`); it is one of `packages`.
    pub root: String,
    /// The target triple it was built for.
    pub target: String,
    /// When the list was captured (the build time; `SOURCE_DATE_EPOCH` when set).
    pub built_at: jiff::Timestamp,
    /// How the list was captured (e.g. the command).
    #[serde(default)]
    pub generator: String,
    /// Every package, the root included.
    pub packages: Vec<SbomPackage>,
}

/// A problem in a [`PackageList`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("package list: {0}")]
pub struct PackageListError(pub String);

impl PackageList {
    /// Reads a list from its JSON form.
    pub fn from_json(text: &str) -> std::result::Result<Self, PackageListError> {
        let list: Self =
            serde_json::from_str(text).map_err(|error| PackageListError(error.to_string()))?;
        list.check()?;
        Ok(list)
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks the root and every dependency name a package of the list, and keys are unique.
    pub fn check(&self) -> std::result::Result<(), PackageListError> {
        let mut keys = BTreeSet::new();
        for package in &self.packages {
            if !keys.insert(package.key()) {
                return Err(PackageListError(format!(
                    "{} is listed twice",
                    package.key()
                )));
            }
        }
        if !keys.contains(&self.root) {
            return Err(PackageListError(format!(
                "the root {} is not among the packages",
                self.root
            )));
        }
        for package in &self.packages {
            for dependency in &package.dependencies {
                if !keys.contains(dependency) {
                    return Err(PackageListError(format!(
                        "{} depends on {dependency}, which is not among the packages",
                        package.key()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The root package.
    pub fn root_package(&self) -> Option<&SbomPackage> {
        self.packages
            .iter()
            .find(|package| package.key() == self.root)
    }

    /// The packages sorted by name and version, each with sorted, deduplicated dependencies.
    fn sorted(&self) -> Vec<SbomPackage> {
        let mut packages = self.packages.clone();
        for package in &mut packages {
            package.dependencies.sort();
            package.dependencies.dedup();
        }
        packages.sort_by(|left, right| {
            (&left.name, version_order(&left.version))
                .cmp(&(&right.name, version_order(&right.version)))
        });
        packages
    }

    /// A SHA-256 digest of the list without its time: equal lists give equal digests.
    pub fn content_digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.root.as_bytes());
        hasher.update([0]);
        hasher.update(self.target.as_bytes());
        hasher.update([0]);
        hasher.update(serde_json::to_vec(&self.sorted()).unwrap_or_default());
        hasher.finalize().into()
    }

    /// A UUID taken from [`Self::content_digest`], with the version and variant bits of a
    /// name-based UUID (RFC 9562 layout, version nibble 5) so schemas that check them accept it.
    pub fn content_uuid(&self) -> String {
        let digest = self.content_digest();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x50;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex = hex_string(&bytes);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// The build time as `YYYY-MM-DDThh:mm:ssZ`.
    fn timestamp(&self) -> String {
        self.built_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// The packages as a [`Lockfile`] to scan: every package, build-only ones included (a
    /// compromised build dependency compromises the binary too); path packages as
    /// [`PackageSource::Local`]. A version that is not semver is an error.
    pub fn to_lockfile(&self) -> std::result::Result<Lockfile, PackageListError> {
        let packages = self
            .sorted()
            .into_iter()
            .map(|package| {
                let version = Version::parse(&package.version).map_err(|error| {
                    PackageListError(format!("{}: bad version: {error}", package.key()))
                })?;
                let source = match &package.source {
                    None => PackageSource::Local,
                    Some(_) if package.is_crates_io() => PackageSource::CratesIo,
                    Some(source) => match source.strip_prefix("registry+") {
                        Some(url) => PackageSource::Registry(url.to_owned()),
                        None => match source.strip_prefix("sparse+") {
                            Some(url) => PackageSource::Registry(url.to_owned()),
                            None => PackageSource::Other(source.clone()),
                        },
                    },
                };
                Ok(Package {
                    name: package.name,
                    version,
                    source,
                })
            })
            .collect::<std::result::Result<Vec<_>, PackageListError>>()?;
        Ok(Lockfile::from_packages(packages))
    }

    /// The list as a CycloneDX 1.6 JSON document.
    pub fn to_cyclonedx(&self) -> Value {
        let packages = self.sorted();
        let purls: HashMap<String, String> = packages
            .iter()
            .map(|package| (package.key(), package.purl()))
            .collect();
        let root = packages.iter().find(|package| package.key() == self.root);
        let mut components = Vec::new();
        let mut dependencies = Vec::new();
        for package in &packages {
            let depends_on: Vec<&String> = package
                .dependencies
                .iter()
                .filter_map(|key| purls.get(key))
                .collect();
            dependencies.push(json!({ "ref": package.purl(), "dependsOn": depends_on }));
            if package.key() == self.root {
                continue;
            }
            components.push(cyclonedx_component(package, "library"));
        }
        let mut metadata = json!({
            "timestamp": self.timestamp(),
            "tools": {
                "components": [{
                    "type": "application",
                    "name": crate::render::TOOL_NAME,
                    "version": crate::render::TOOL_VERSION,
                }]
            },
            "properties": [{ "name": TARGET_PROPERTY, "value": self.target }],
        });
        if let (Some(root), Some(object)) = (root, metadata.as_object_mut()) {
            object.insert(
                "component".to_owned(),
                cyclonedx_component(root, "application"),
            );
        }
        json!({
            "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "serialNumber": format!("urn:uuid:{}", self.content_uuid()),
            "version": 1,
            "metadata": metadata,
            "components": components,
            "dependencies": dependencies,
        })
    }

    /// The list as an SPDX 2.3 JSON document.
    pub fn to_spdx(&self) -> Value {
        let packages = self.sorted();
        let ids = spdx_ids(&packages);
        let root_name = self
            .root_package()
            .map_or_else(|| self.root.clone(), |root| root.name.clone());
        let mut spdx_packages = Vec::new();
        let mut relationships = Vec::new();
        if let Some(root_id) = ids.get(&self.root) {
            relationships.push(json!({
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": root_id,
            }));
        }
        let build_only: HashMap<String, bool> = packages
            .iter()
            .map(|package| (package.key(), package.build_only))
            .collect();
        for package in &packages {
            let key = package.key();
            let Some(id) = ids.get(&key) else { continue };
            spdx_packages.push(spdx_package(package, id, key == self.root));
            for dependency in &package.dependencies {
                let Some(dependency_id) = ids.get(dependency) else {
                    continue;
                };
                let into_build_only = build_only.get(dependency).copied().unwrap_or(false);
                relationships.push(if into_build_only && !package.build_only {
                    json!({
                        "spdxElementId": dependency_id,
                        "relationshipType": "BUILD_DEPENDENCY_OF",
                        "relatedSpdxElement": id,
                    })
                } else {
                    json!({
                        "spdxElementId": id,
                        "relationshipType": "DEPENDS_ON",
                        "relatedSpdxElement": dependency_id,
                    })
                });
            }
        }
        let version = self.root_package().map_or("", |root| root.version.as_str());
        json!({
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": format!("{root_name}-{version}"),
            "documentNamespace": format!(
                "https://spdx.org/spdxdocs/{root_name}-{version}-{}",
                self.content_uuid()
            ),
            "creationInfo": {
                "created": self.timestamp(),
                "creators": [format!(
                    "Tool: {}-{}",
                    crate::render::TOOL_NAME,
                    crate::render::TOOL_VERSION
                )],
                "comment": format!("Packages compiled into {root_name} {version} for {}.", self.target),
            },
            "packages": spdx_packages,
            "relationships": relationships,
        })
    }
}

/// A version's sort key: semver order when it parses, text order after.
fn version_order(version: &str) -> (Option<Version>, String) {
    (Version::parse(version).ok(), version.to_owned())
}

fn hex_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Percent-encodes what a purl's name or version may not hold literally.
fn purl_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn purl_unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = match (bytes.get(index), bytes.get(index + 1..index + 3)) {
            (Some(b'%'), Some(hex)) => std::str::from_utf8(hex)
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match decoded {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A manifest `license` field as an SPDX expression: the deprecated `A/B` form becomes
/// `A OR B`; blank is none.
pub fn license_expression(license: &str) -> Option<String> {
    let parts: Vec<&str> = license
        .split('/')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" OR "))
    }
}

fn cyclonedx_component(package: &SbomPackage, kind: &str) -> Value {
    let purl = package.purl();
    let mut component = json!({
        "type": kind,
        "bom-ref": purl,
        "name": package.name,
        "version": package.version,
        "purl": purl,
    });
    let Some(object) = component.as_object_mut() else {
        return component;
    };
    if kind == "library" {
        object.insert(
            "scope".to_owned(),
            json!(if package.build_only {
                "excluded"
            } else {
                "required"
            }),
        );
    }
    if let Some(checksum) = &package.checksum {
        object.insert(
            "hashes".to_owned(),
            json!([{ "alg": "SHA-256", "content": checksum }]),
        );
    }
    if let Some(expression) = package.license_expression() {
        object.insert("licenses".to_owned(), json!([{ "expression": expression }]));
    }
    if package.is_crates_io() {
        object.insert(
            "externalReferences".to_owned(),
            json!([{
                "type": "distribution",
                "url": crates_io_download(package),
            }]),
        );
    }
    let mut properties = vec![json!({ "name": SOURCE_PROPERTY, "value": package.source_label() })];
    if package.build_only {
        properties.push(json!({ "name": BUILD_ONLY_PROPERTY, "value": "true" }));
    }
    object.insert("properties".to_owned(), Value::Array(properties));
    component
}

fn crates_io_download(package: &SbomPackage) -> String {
    format!(
        "https://crates.io/api/v1/crates/{}/{}/download",
        package.name, package.version
    )
}

/// `SPDXRef-Package-NAME-VERSION` for each package, with characters SPDX ids may not hold
/// replaced by `.` and a counter on the rare collision.
fn spdx_ids(packages: &[SbomPackage]) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for package in packages {
        let clean = |text: &str| -> String {
            text.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '.'
                    }
                })
                .collect()
        };
        let base = format!(
            "SPDXRef-Package-{}-{}",
            clean(&package.name),
            clean(&package.version)
        );
        let mut id = base.clone();
        let mut counter = 2;
        while !taken.insert(id.clone()) {
            id = format!("{base}-{counter}");
            counter += 1;
        }
        ids.insert(package.key(), id);
    }
    ids
}

fn spdx_package(package: &SbomPackage, id: &str, root: bool) -> Value {
    let download = if package.is_crates_io() {
        crates_io_download(package)
    } else if package.source.is_none() {
        "NONE".to_owned()
    } else {
        "NOASSERTION".to_owned()
    };
    let mut value = json!({
        "SPDXID": id,
        "name": package.name,
        "versionInfo": package.version,
        "downloadLocation": download,
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": package.license_expression().unwrap_or_else(|| "NOASSERTION".to_owned()),
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": if root { "APPLICATION" } else { "LIBRARY" },
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": package.purl(),
        }],
    });
    let Some(object) = value.as_object_mut() else {
        return value;
    };
    if let Some(checksum) = &package.checksum {
        object.insert(
            "checksums".to_owned(),
            json!([{ "algorithm": "SHA256", "checksumValue": checksum }]),
        );
    }
    if package.build_only {
        object.insert(
            "comment".to_owned(),
            json!(
                "Build-time only: a build script's dependency or a procedural macro; not linked into the binary."
            ),
        );
    }
    value
}

/// Reads the `pkg:cargo/` packages of a CycloneDX or SPDX JSON document.
pub fn read_document(path: impl AsRef<Path>) -> Result<Lockfile> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| SupplyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let error = |message: String| SupplyError::Sbom {
        path: path.to_owned(),
        message,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        error(format!(
            "not JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let packages = packages_of_document(&value).map_err(error)?;
    Ok(Lockfile {
        path: Some(PathBuf::from(path)),
        packages,
    })
}

/// The `pkg:cargo/` packages of a parsed CycloneDX or SPDX document.
pub fn packages_of_document(document: &Value) -> std::result::Result<Vec<Package>, String> {
    let mut found: Vec<(String, String, PackageSource)> = Vec::new();
    if document.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
        if let Some(component) = document.pointer("/metadata/component") {
            cyclonedx_packages(component, &mut found);
        }
        if let Some(components) = document.get("components").and_then(Value::as_array) {
            for component in components {
                cyclonedx_packages(component, &mut found);
            }
        }
    } else if document
        .get("spdxVersion")
        .and_then(Value::as_str)
        .is_some_and(|version| version.starts_with("SPDX-2"))
    {
        for package in document
            .get("packages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let purls = package
                .get("externalRefs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|reference| {
                    reference.get("referenceType").and_then(Value::as_str) == Some("purl")
                })
                .filter_map(|reference| reference.get("referenceLocator").and_then(Value::as_str));
            let download = package.get("downloadLocation").and_then(Value::as_str);
            for purl in purls {
                if let Some((name, version)) = cargo_purl(purl) {
                    let source = match download {
                        Some("NONE") => PackageSource::Local,
                        Some(location) if location.starts_with("git+") => {
                            PackageSource::Other(location.to_owned())
                        }
                        _ => PackageSource::CratesIo,
                    };
                    found.push((name, version, source));
                }
            }
        }
    } else {
        return Err(
            "neither a CycloneDX document (`bomFormat: CycloneDX`) nor an SPDX 2 document (`spdxVersion: SPDX-2.x`)"
                .to_owned(),
        );
    }
    if found.is_empty() {
        return Err("no package with a `pkg:cargo/` purl".to_owned());
    }
    let mut seen = BTreeSet::new();
    let mut packages = Vec::new();
    for (name, version, source) in found {
        if !seen.insert((name.clone(), version.clone())) {
            continue;
        }
        let parsed = Version::parse(&version)
            .map_err(|e| format!("pkg:cargo/{name}@{version}: bad version: {e}"))?;
        packages.push(Package {
            name,
            version: parsed,
            source,
        });
    }
    Ok(packages)
}

fn cyclonedx_packages(component: &Value, found: &mut Vec<(String, String, PackageSource)>) {
    if let Some((name, version)) = component
        .get("purl")
        .and_then(Value::as_str)
        .and_then(cargo_purl)
    {
        let property = |wanted: &str| {
            component
                .get("properties")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|property| property.get("name").and_then(Value::as_str) == Some(wanted))
                .and_then(|property| property.get("value").and_then(Value::as_str))
        };
        let source = match property(SOURCE_PROPERTY) {
            None | Some("crates.io") => PackageSource::CratesIo,
            Some("path") => PackageSource::Local,
            Some(other) => match other.strip_prefix("registry+") {
                Some(url) => PackageSource::Registry(url.to_owned()),
                None => PackageSource::Other(other.to_owned()),
            },
        };
        found.push((name, version, source));
    }
    if let Some(children) = component.get("components").and_then(Value::as_array) {
        for child in children {
            cyclonedx_packages(child, found);
        }
    }
}

/// Name and version of a `pkg:cargo/NAME@VERSION[?qualifiers][#subpath]` purl.
fn cargo_purl(purl: &str) -> Option<(String, String)> {
    let rest = purl.strip_prefix("pkg:cargo/")?;
    let rest = rest.split(['?', '#']).next()?;
    let (name, version) = rest.rsplit_once('@')?;
    let name = purl_unescape(name.trim_matches('/'));
    let version = purl_unescape(version);
    if name.is_empty() || version.is_empty() {
        return None;
    }
    Some((name, version))
}
