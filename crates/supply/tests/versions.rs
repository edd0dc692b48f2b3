//! Version-range semantics: property tests against the `semver` crate, and RustSec's
//! documented deviations for pre-releases and partial versions.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: failures should be loud"
)]

use portcullis_supply::version::{AffectedVersions, UnaffectedRange, next_version};
use proptest::prelude::*;
use semver::{Version, VersionReq};

fn release() -> impl Strategy<Value = Version> {
    (0u64..4, 0u64..4, 0u64..4).prop_map(|(major, minor, patch)| Version::new(major, minor, patch))
}

fn prerelease() -> impl Strategy<Value = Version> {
    (
        release(),
        prop::sample::select(vec!["0", "alpha", "alpha.1", "beta.2", "rc.1", "rc.1.0"]),
    )
        .prop_map(|(mut version, pre)| {
            version.pre = semver::Prerelease::new(pre).unwrap();
            version
        })
}

/// A requirement of one comparator with a full version, or a lower and an upper bound.
fn requirement() -> impl Strategy<Value = String> {
    let single = (
        prop::sample::select(vec![">=", ">", "<", "<=", "=", "^", "~"]),
        release(),
    )
        .prop_map(|(op, version)| format!("{op}{version}"));
    let pair = (
        prop::sample::select(vec![">=", ">"]),
        release(),
        prop::sample::select(vec!["<", "<="]),
        release(),
    )
        .prop_filter_map("empty range", |(low_op, low, high_op, high)| {
            let text = format!("{low_op}{low}, {high_op}{high}");
            let requirement = VersionReq::parse(&text).ok()?;
            UnaffectedRange::from_req(&requirement).ok().map(|_| text)
        });
    prop_oneof![single, pair]
}

proptest! {
    /// For release versions, a requirement's interval holds exactly what `VersionReq::matches`
    /// accepts.
    #[test]
    fn interval_equals_semver_matching_for_releases(text in requirement(), version in release()) {
        let requirement = VersionReq::parse(&text).unwrap();
        let range = UnaffectedRange::from_req(&requirement).unwrap();
        prop_assert_eq!(range.contains(&version), requirement.matches(&version), "{} {}", text, version);
    }

    /// The affected ranges are the complement of the patched/unaffected intervals, for any
    /// version: the inversion into `[introduced, fixed)` loses nothing.
    #[test]
    fn affected_ranges_are_the_complement(
        first in requirement(),
        second in requirement(),
        version in prop_oneof![release(), prerelease()],
    ) {
        let first_requirement = VersionReq::parse(&first).unwrap();
        let second_requirement = VersionReq::parse(&second).unwrap();
        let first_range = UnaffectedRange::from_req(&first_requirement).unwrap();
        let second_range = UnaffectedRange::from_req(&second_requirement).unwrap();
        match AffectedVersions::from_requirements(&[first_requirement], &[second_requirement]) {
            Ok(affected) => {
                let covered = first_range.contains(&version) || second_range.contains(&version);
                prop_assert_eq!(affected.is_affected(&version), !covered, "{} | {} at {}", first, second, version);
            }
            // Refused only when the two intervals share a version.
            Err(message) => prop_assert!(message.contains("overlapping"), "{}", message),
        }
    }

    /// For release versions, "affected" is "no patched or unaffected requirement matches".
    #[test]
    fn affected_means_no_requirement_matches_for_releases(
        patched in prop::collection::vec(requirement(), 0..3),
        version in release(),
    ) {
        let requirements: Vec<VersionReq> = patched.iter().map(|text| VersionReq::parse(text).unwrap()).collect();
        if let Ok(affected) = AffectedVersions::from_requirements(&requirements, &[]) {
            let matched = requirements.iter().any(|requirement| requirement.matches(&version));
            prop_assert_eq!(affected.is_affected(&version), !matched, "{:?} at {}", patched, version);
        }
    }

    /// `next_version` is the smallest version above its input.
    #[test]
    fn next_version_is_just_above(version in prop_oneof![release(), prerelease()], other in prop_oneof![release(), prerelease()]) {
        let next = next_version(&version);
        prop_assert!(next > version);
        prop_assert!(!(other > version && other < next), "{} between {} and {}", other, version, next);
    }
}

fn affected(patched: &[&str], unaffected: &[&str], version: &str) -> bool {
    let parse = |texts: &[&str]| -> Vec<VersionReq> {
        texts
            .iter()
            .map(|text| VersionReq::parse(text).unwrap())
            .collect()
    };
    AffectedVersions::from_requirements(&parse(patched), &parse(unaffected))
        .unwrap()
        .is_affected(&Version::parse(version).unwrap())
}

#[test]
fn pre_releases_are_ordered_by_precedence() {
    // Below the patched release: affected.
    assert!(affected(&[">= 1.2.0"], &[], "1.2.0-rc.1"));
    // Above it: patched, though `VersionReq::matches` refuses pre-releases of other versions.
    assert!(!affected(&[">= 1.2.0"], &[], "1.3.0-alpha"));
    assert!(
        !VersionReq::parse(">= 1.2.0")
            .unwrap()
            .matches(&Version::parse("1.3.0-alpha").unwrap())
    );
    // A patched pre-release covers later pre-releases of the same version.
    assert!(!affected(&[">= 2.0.0-rc.2"], &[], "2.0.0-rc.10"));
    assert!(affected(&[">= 2.0.0-rc.2"], &[], "2.0.0-rc.1"));
    // Caret and tilde stop before the next major's / minor's pre-releases.
    assert!(affected(&["^1.2.3"], &[], "2.0.0-alpha"));
    assert!(!affected(&["^1.2.3"], &[], "1.9.9-beta"));
    assert!(affected(&["~1.2"], &[], "1.3.0-0"));
    assert!(affected(&["^0.2.3"], &[], "0.3.0-alpha"));
    // Pre-releases of 1.0.0 sort below it, so `< 1.0.0` covers them.
    assert!(!affected(&[], &["< 1.0.0"], "1.0.0-beta"));
    assert!(affected(&[], &["< 1.0.0"], "1.0.0"));
}

#[test]
fn partial_versions_mean_zero_as_rustsec_reads_them() {
    // RustSec turns `> 1.2` into "above 1.2.0"; the semver crate reads it as "1.3.0 or later".
    assert!(!affected(&["> 1.2"], &[], "1.2.1"));
    assert!(
        !VersionReq::parse("> 1.2")
            .unwrap()
            .matches(&Version::parse("1.2.1").unwrap())
    );
    // `<= 1.2` is "up to 1.2.0" for RustSec, "below 1.3.0" for semver.
    assert!(affected(&[], &["<= 1.2"], "1.2.1"));
}

#[test]
fn requirements_rustsec_refuses_are_refused() {
    for (patched, unaffected) in [
        (vec![">= 1.0.0, < 2.0.0, < 3.0.0"], vec![]),
        (vec![">= 1.0.0, >= 1.1.0"], vec![]),
        (vec!["< 1.0.0, <= 1.1.0"], vec![]),
        (vec!["^1.0.0, < 1.5.0"], vec![]),
        (vec!["=1.0.0, >= 0.5.0"], vec![]),
        (vec!["1.*"], vec![]),
        (vec![">= 2.0.0, < 1.0.0"], vec![]),
        (vec![">= 1.0.0"], vec!["< 1.0.1"]),
        (vec![">= 1.0.0"], vec!["=1.0.0"]),
    ] {
        let parse = |texts: &[&str]| -> Vec<VersionReq> {
            texts
                .iter()
                .map(|text| VersionReq::parse(text).unwrap())
                .collect()
        };
        assert!(
            AffectedVersions::from_requirements(&parse(&patched), &parse(&unaffected)).is_err(),
            "{patched:?} {unaffected:?}"
        );
    }
    // Adjacent but disjoint is fine.
    assert!(!affected(&[">= 1.0.0"], &["< 1.0.0"], "9.0.0"));
    assert!(!affected(&[">= 1.0.0"], &["< 1.0.0"], "1.0.0-rc.1"));
}
