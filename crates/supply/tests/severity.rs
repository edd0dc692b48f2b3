//! CVSS scoring against FIRST's published example vectors and the qualitative scale.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: failures should be loud"
)]

use portcullis_supply::{CvssVersion, Rating, Severity};

fn score(vector: &str) -> (f64, Severity) {
    let rating = Rating::from_vector(vector).unwrap();
    (rating.score, rating.severity)
}

#[test]
fn cvss_31_examples_from_first() {
    // FIRST, "CVSS v3.1: Examples".
    let cases = [
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
            6.1,
            Severity::Medium,
        ), // CVE-2013-1937
        (
            "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N",
            6.4,
            Severity::Medium,
        ), // CVE-2013-0375
        (
            "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N",
            3.1,
            Severity::Low,
        ), // CVE-2014-3566
        (
            "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H",
            9.9,
            Severity::Critical,
        ), // CVE-2012-1516
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
            7.5,
            Severity::High,
        ), // CVE-2014-0160
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            9.8,
            Severity::Critical,
        ), // CVE-2014-6271
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H",
            8.8,
            Severity::High,
        ), // CVE-2016-1645
        (
            "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N",
            0.0,
            Severity::None,
        ),
    ];
    for (vector, expected_score, expected_severity) in cases {
        assert_eq!(
            score(vector),
            (expected_score, expected_severity),
            "{vector}"
        );
    }
    let rating = Rating::from_vector("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap();
    assert_eq!((rating.score, rating.version), (9.8, CvssVersion::V30));
}

#[test]
fn cvss_40_examples_from_first() {
    // FIRST, "CVSS v4.0: Examples" and the calculator's default vector.
    let cases = [
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            9.3,
            Severity::Critical,
        ),
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H",
            10.0,
            Severity::Critical,
        ), // CVE-2021-44228
        (
            "CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            8.5,
            Severity::High,
        ), // CVE-2022-41741
        (
            "CVSS:4.0/AV:N/AC:H/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            7.7,
            Severity::High,
        ), // CVE-2020-3549
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N",
            8.7,
            Severity::High,
        ), // CVE-2014-0160
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N",
            5.1,
            Severity::Medium,
        ), // CVE-2013-1937
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N",
            0.0,
            Severity::None,
        ),
    ];
    for (vector, expected_score, expected_severity) in cases {
        assert_eq!(
            score(vector),
            (expected_score, expected_severity),
            "{vector}"
        );
    }
    assert_eq!(
        Rating::from_vector(cases[0].0).unwrap().version,
        CvssVersion::V40
    );
}

#[test]
fn qualitative_scale_boundaries() {
    let cases = [
        (0.0, Severity::None),
        (0.1, Severity::Low),
        (3.9, Severity::Low),
        (4.0, Severity::Medium),
        (6.9, Severity::Medium),
        (7.0, Severity::High),
        (8.9, Severity::High),
        (9.0, Severity::Critical),
        (10.0, Severity::Critical),
    ];
    for (value, severity) in cases {
        assert_eq!(Severity::from_score(value), severity, "{value}");
    }
    assert!(Severity::Unknown.is_high_risk());
    assert!(Severity::High.is_high_risk());
    assert!(!Severity::Medium.is_high_risk());
}

#[test]
fn bad_and_unsupported_vectors_are_refused() {
    for vector in [
        "CVSS:3.1/AV:N",
        "CVSS:9.9/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "AV:N/AC:L/Au:N/C:P/I:P/A:P",
        "nonsense",
    ] {
        assert!(Rating::from_vector(vector).is_err(), "{vector}");
    }
}
