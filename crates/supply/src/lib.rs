//! Supply-chain security (C7): the offline advisory scan, the SBOM and integrity manifests.
//!
//! Scans the packages of a `Cargo.lock` against a RustSec advisory-db folder and OSV JSON
//! files, with the same matching rules as cargo-audit (`cargo audit --no-fetch`), severities
//! computed from CVSS 3.x/4.0 vectors, and waivers with expiry. Nothing touches the network.
//!
//! ```no_run
//! use portcullis_supply::{ScanFiles, scan_files};
//! let mut files = ScanFiles::new("advisory-db", "Cargo.lock");
//! files.waivers = Some("waivers.toml".into());
//! let report = scan_files(&files)?;
//! if report.high_risk() {
//!     eprintln!("{}", report.to_table());
//! }
//! # Ok::<(), portcullis_supply::SupplyError>(())
//! ```
//!
//! Layout of the crate:
//! - [`lockfile`]: the packages to scan ([`Lockfile`], [`Package`]);
//! - [`database`]: the advisory-db folder, read lazily per package, and its [`Revision`];
//! - [`advisory`]: the [`Advisory`] model and the RustSec Markdown/TOML parser;
//! - [`osv`]: OSV JSON records for crates.io;
//! - [`version`]: RustSec's version-range semantics (patched/unaffected, pre-releases);
//! - [`severity`]: CVSS scoring and the qualitative [`Severity`];
//! - [`waiver`]: the waiver (VEX) file;
//! - [`index`]: yanked versions, from a copy of the registry index ([`RegistryIndex`]);
//! - [`mod@scan`]: matching, producing a [`Report`];
//! - [`report`], [`render`]: the report and its table, JSON, SARIF and CycloneDX VEX forms;
//! - [`sbom`]: a binary's package list ([`PackageList`]) as CycloneDX 1.6 and SPDX 2.3 SBOMs,
//!   and SBOM documents read back as packages to scan ([`read_document`]);
//! - [`integrity`]: Ed25519-signed manifests of SHA-256 file digests (the binary, its
//!   configuration, its bundle files), their keys and their verification.
//!
//! Semantics worth knowing:
//! - Withdrawn advisories are ignored. Informational ones (`unmaintained`, `unsound`,
//!   `notice`) are reported apart and never make the report high risk.
//! - `[affected] os`/`arch`/`functions` are reported, not used to filter (cargo-audit filters
//!   on them only when given a target).
//! - A vulnerability without a CVSS vector has severity `unknown`, counted as high unless
//!   waived.
//! - Yanked versions are reported (apart, never high risk) when the scan is given a copy of the
//!   crates.io index ([`index`]: an index checkout, or Cargo's own cache of it); without one
//!   they are not known.
//! - A missing database folder is an error ([`SupplyError::Database`]); the caller decides to
//!   fail closed.
//! - Packages without a lockfile source (workspace members, path dependencies) and git
//!   packages meet no advisory, as in cargo-audit; crates.io through the sparse index is
//!   crates.io (cargo-audit 0.22 matches nothing to it; see [`mod@scan`]).
//!
//! Dependencies: `cargo-lock` and `cvss` from the RustSec project, `semver` for requirements.
//! The `rustsec` crate itself is not used: its `Database::open` parses every advisory of the
//! database, which is what the scan avoids by reading only the folders of locked crates. The
//! matching rules are reimplemented in [`version`] and [`mod@scan`], and `bench/supply/compare.sh`
//! checks them against cargo-audit on every advisory of the snapshot.
#![forbid(unsafe_code)]

pub mod advisory;
pub mod database;
pub mod error;
pub mod index;
pub mod integrity;
pub mod lockfile;
pub mod osv;
pub mod render;
pub mod report;
pub mod sbom;
pub mod scan;
pub mod severity;
pub mod version;
pub mod waiver;

pub use advisory::{Advisory, AffectedFunction, Informational, Origin};
pub use database::{AdvisoryDatabase, Revision};
pub use error::{Position, Result, SupplyError};
pub use index::{IndexState, RegistryIndex};
pub use lockfile::{Lockfile, Package, PackageSource};
pub use report::{Counts, DatabaseInfo, Finding, IndexInfo, Report, WaiverRef, Yanked};
pub use sbom::{PackageList, PackageListError, SbomPackage, read_document};
pub use scan::{ScanFiles, check_yanked, scan, scan_files};
pub use severity::{CvssVersion, Rating, Severity};
pub use waiver::{Waiver, Waivers};
