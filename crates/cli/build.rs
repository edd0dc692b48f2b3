//! Captures the packages compiled into the `portcullis` binary (its SBOM, issue 16) into
//! `$OUT_DIR/sbom-packages.json`, which `src/supply.rs` embeds with `include_str!` and
//! `portcullis-supply`'s `sbom` module renders as CycloneDX or SPDX at run time.
//!
//! How: two runs of `$CARGO tree` on this package, for the target being built, offline and
//! locked (nothing is downloaded; the lockfile is not changed):
//! - `-e normal,no-proc-macro`: what is linked into the binary (no dev-dependencies, no build
//!   scripts' dependencies, no procedural macros);
//! - `-e normal,build`: everything compiled for the build, procedural macros and build
//!   scripts' dependencies included. A package only in this second tree is recorded as
//!   build-only (`build_only: true`; CycloneDX `scope: excluded`).
//!
//! The edges of both trees (`--prefix depth`: a line's parent is the nearest line above it one
//! level up) form the dependency graph. Checksums come from `Cargo.lock`, licences from the
//! packages' manifests (`cargo tree`'s `{l}`).
//!
//! Why `cargo tree` and not `cargo metadata`: `cargo metadata` loads the manifest of every
//! package of the lockfile, the other workspace members' dev-dependencies and platform-only
//! packages included, so offline it fails whenever one of those was never downloaded (here:
//! the benchmark crate's dependencies); and its resolve graph unifies features across the
//! whole workspace, so it would list optional dependencies another member turns on.
//! `cargo tree -p portcullis` resolves features the way `cargo build -p portcullis` (and
//! `cargo install`) does, and needs only the packages of this build.
//!
//! The list describes `cargo build -p portcullis` for the target. A build of several
//! workspace members at once may unify more features into shared dependencies; the list does
//! not see that.
//!
//! The script reruns only when `Cargo.lock` or a manifest of the workspace changes, so the
//! build time it records (`SOURCE_DATE_EPOCH` when set, for reproducible builds) is the time
//! of the last change of the package set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// One package line of `cargo tree`.
struct Node {
    name: String,
    version: String,
    license: Option<String>,
    /// The folder of a path package (a workspace member); `None` for registry and git ones.
    path: Option<PathBuf>,
}

type Key = (String, String);

/// Packages and edges of one `cargo tree` run.
#[derive(Default)]
struct Tree {
    nodes: BTreeMap<Key, Node>,
    edges: BTreeMap<Key, BTreeSet<Key>>,
}

fn main() {
    if let Err(message) = run() {
        // A build without its SBOM would be a binary that cannot say what it contains.
        println!("cargo::error=cannot capture the SBOM of portcullis: {message}");
        std::process::exit(1);
    }
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("the environment has no {name}"))
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env("OUT_DIR")?);
    let target = env("TARGET")?;
    let cargo = env("CARGO")?;
    let package = env("CARGO_PKG_NAME")?;
    let version = env("CARGO_PKG_VERSION")?;
    let lockfile = find_lockfile(&manifest_dir)?;
    let workspace = lockfile.parent().unwrap_or(&manifest_dir).to_owned();

    println!("cargo::rerun-if-changed={}", lockfile.display());
    println!("cargo::rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let linked = cargo_tree(
        &cargo,
        &manifest_dir,
        &package,
        &target,
        "normal,no-proc-macro",
    )?;
    let compiled = cargo_tree(&cargo, &manifest_dir, &package, &target, "normal,build")?;
    let checksums = lock_checksums(&lockfile)?;

    // Every path package's manifest: a change may change the graph.
    let mut manifests = BTreeSet::new();
    manifests.insert(workspace.join("Cargo.toml"));
    for dir in compiled
        .nodes
        .values()
        .filter_map(|node| node.path.as_ref())
    {
        manifests.insert(dir.join("Cargo.toml"));
    }
    for manifest in &manifests {
        println!("cargo::rerun-if-changed={}", manifest.display());
    }

    let mut edges = compiled.edges.clone();
    for (parent, children) in &linked.edges {
        edges
            .entry(parent.clone())
            .or_default()
            .extend(children.iter().cloned());
    }
    let mut packages = Vec::new();
    for (key, node) in &compiled.nodes {
        // A path package has no lockfile source; any other is in Cargo.lock, and one from a
        // registry has its checksum there (a git one has none).
        let (source, checksum) = if node.path.is_some() {
            (None, None)
        } else {
            let Some((source, checksum)) = checksums.get(key) else {
                return Err(format!(
                    "{} {} is not in {}",
                    node.name,
                    node.version,
                    lockfile.display()
                ));
            };
            let registry = source.starts_with("registry+") || source.starts_with("sparse+");
            if registry && checksum.is_none() {
                return Err(format!(
                    "{} {} has no checksum in {}",
                    node.name,
                    node.version,
                    lockfile.display()
                ));
            }
            (Some(source.clone()), checksum.clone())
        };
        let dependencies: Vec<String> = edges
            .get(key)
            .into_iter()
            .flatten()
            .map(|(name, version)| format!("{name}@{version}"))
            .collect();
        let mut entry = json!({
            "name": node.name,
            "version": node.version,
            "build_only": !linked.nodes.contains_key(key),
            "dependencies": dependencies,
        });
        if let Some(object) = entry.as_object_mut() {
            if let Some(source) = source {
                object.insert("source".into(), Value::String(source));
            }
            if let Some(checksum) = checksum {
                object.insert("checksum".into(), Value::String(checksum));
            }
            if let Some(license) = &node.license {
                object.insert("license".into(), Value::String(license.clone()));
            }
        }
        packages.push(entry);
    }
    let root = format!("{package}@{version}");
    if !linked
        .nodes
        .contains_key(&(package.clone(), version.clone()))
    {
        return Err(format!("`cargo tree` did not list {root}"));
    }
    let list = json!({
        "root": root,
        "target": target,
        "built_at": built_at()?,
        "generator": format!("cargo tree -p {package} --target {target} -e normal,no-proc-macro | -e normal,build"),
        "packages": packages,
    });
    let text = serde_json::to_string(&list).map_err(|error| error.to_string())?;
    let out = out_dir.join("sbom-packages.json");
    std::fs::write(&out, text).map_err(|error| format!("cannot write {}: {error}", out.display()))
}

/// The nearest `Cargo.lock` at or above the package's folder (the workspace root).
fn find_lockfile(manifest_dir: &Path) -> Result<PathBuf, String> {
    manifest_dir
        .ancestors()
        .map(|dir| dir.join("Cargo.lock"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("no Cargo.lock at or above {}", manifest_dir.display()))
}

/// The build time in seconds since 1970 as RFC 3339: `SOURCE_DATE_EPOCH` when set.
fn built_at() -> Result<String, String> {
    let seconds = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("SOURCE_DATE_EPOCH is not a number of seconds: {value:?}"))?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|error| error.to_string())?
            .as_secs(),
    };
    Ok(rfc3339(seconds))
}

/// Seconds since 1970 as `YYYY-MM-DDThh:mm:ssZ` (proleptic Gregorian calendar, UTC).
fn rfc3339(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    // Days since 1970-01-01 to a civil date (the well-known era-based conversion).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// Runs `cargo tree` with the given edge kinds and reads its packages and edges.
fn cargo_tree(
    cargo: &str,
    manifest_dir: &Path,
    package: &str,
    target: &str,
    edges: &str,
) -> Result<Tree, String> {
    let output = Command::new(cargo)
        .current_dir(manifest_dir)
        .args(["tree", "--offline", "--locked", "--quiet", "-p", package])
        .args(["--target", target, "-e", edges, "--prefix", "depth"])
        .args(["--format", "{p}\t{l}", "--charset", "ascii"])
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        // Not the outer build's: this is a query, not a build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .map_err(|error| format!("cannot run {cargo} tree: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{cargo} tree -e {edges}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| format!("`{cargo} tree` printed something that is not UTF-8"))?;
    parse_tree(&text)
}

/// Reads `--prefix depth --format "{p}\t{l}"` output: `DEPTHname vVERSION[ (…)]\tLICENSE[ (*)]`.
fn parse_tree(text: &str) -> Result<Tree, String> {
    let mut tree = Tree::default();
    let mut stack: Vec<Key> = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let depth: usize = line[..digits]
            .parse()
            .map_err(|_| format!("unexpected `cargo tree` line: {line}"))?;
        let rest = line[digits..].trim_end();
        let rest = rest.strip_suffix("(*)").unwrap_or(rest).trim_end();
        let (package, license) = rest.split_once('\t').unwrap_or((rest, ""));
        let mut words = package.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            return Err(format!("unexpected `cargo tree` line: {line}"));
        };
        let version = version.strip_prefix('v').unwrap_or(version).to_owned();
        let detail = words.collect::<Vec<_>>().join(" ");
        // A path package shows its folder, `(/abs/path)`, beside a possible `(proc-macro)`; a
        // registry one nothing but that; a git one its URL.
        let folder = detail
            .split('(')
            .skip(1)
            .filter_map(|group| group.split(')').next())
            .find(|inner| Path::new(inner).is_absolute());
        let path = folder.map(PathBuf::from);
        let key = (name.to_owned(), version.clone());
        let license = license.trim();
        tree.nodes.entry(key.clone()).or_insert_with(|| Node {
            name: name.to_owned(),
            version,
            license: (!license.is_empty()).then(|| license.to_owned()),
            path,
        });
        stack.truncate(depth);
        if let Some(parent) = stack.last() {
            tree.edges
                .entry(parent.clone())
                .or_default()
                .insert(key.clone());
        }
        if stack.len() != depth {
            return Err(format!("`cargo tree` line deeper than its parent: {line}"));
        }
        stack.push(key);
    }
    Ok(tree)
}

/// `(name, version)` → (source, checksum) from `Cargo.lock`.
///
/// Read line by line rather than with a TOML parser (which would be one more crate to compile
/// for the build script alone): a lockfile (version 3 or 4) is `[[package]]` tables whose
/// `name`, `version`, `source` and `checksum` are one-line `key = "value"` strings.
fn lock_checksums(lockfile: &Path) -> Result<HashMap<Key, (String, Option<String>)>, String> {
    let text = std::fs::read_to_string(lockfile)
        .map_err(|error| format!("cannot read {}: {error}", lockfile.display()))?;
    let mut checksums = HashMap::new();
    let mut fields: HashMap<&str, &str> = HashMap::new();
    let mut flush = |fields: &mut HashMap<&str, &str>| {
        if let (Some(name), Some(version), Some(source)) = (
            fields.get("name"),
            fields.get("version"),
            fields.get("source"),
        ) {
            checksums.insert(
                ((*name).to_owned(), (*version).to_owned()),
                (
                    (*source).to_owned(),
                    fields.get("checksum").map(|c| (*c).to_owned()),
                ),
            );
        }
        fields.clear();
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') && !line.starts_with("[\"") {
            flush(&mut fields);
            continue;
        }
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        if let Some(value) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            fields.insert(key.trim(), value);
        }
    }
    flush(&mut fields);
    if checksums.is_empty() {
        return Err(format!("{} lists no registry package", lockfile.display()));
    }
    Ok(checksums)
}
