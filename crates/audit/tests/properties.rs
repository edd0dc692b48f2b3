//! Property tests: random record sequences verify; any single byte edit of any line is detected.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::sync::Arc;

use portcullis_audit::*;
use proptest::prelude::*;

fn key() -> SigningKey {
    SigningKey::from_seed([5; 32])
}

fn write(root: &std::path::Path, specs: &[(u8, String, u8)], every: u64) -> Vec<u8> {
    let options = StoreOptions {
        checkpoint_every: every,
        ..StoreOptions::default()
    };
    let mut log = FileLog::open(root, "t", options, Arc::new(key())).unwrap();
    for (outcome, text, kind) in specs {
        let outcome = [
            Outcome::Allow,
            Outcome::Deny,
            Outcome::Error,
            Outcome::Ok,
            Outcome::Failed,
        ][*outcome as usize % 5];
        let builder = if kind % 2 == 0 {
            Record::decision("t", text.clone(), "act", text.clone(), outcome)
        } else {
            Record::change("t", text.clone(), "act", text.clone(), outcome)
        };
        log.append(&mut builder.detail("k", serde_json::json!(text)).build())
            .unwrap();
    }
    log.close().unwrap();
    std::fs::read(root.join("t").join("seg-00000000000000000001.jsonl")).unwrap()
}

fn verify_bytes(bytes: &[u8]) -> Report {
    let mut verifier = Verifier::new("t", &key().verifying_key());
    verifier.begin_segment("p");
    let mut rest = bytes;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        verifier.feed_line(number, &rest[..end]);
        rest = rest.get(end + 1..).unwrap_or(&[]);
    }
    verifier.finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_sequences_verify(specs in proptest::collection::vec((any::<u8>(), "\\PC{0,24}", any::<u8>()), 1..40), every in 1u64..10) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &specs, every);
        let report = verify_dir(dir.path(), "t", &key().verifying_key()).unwrap();
        prop_assert!(report.is_ok(), "{:?}", report);
        prop_assert_eq!(report.records, specs.len() as u64);
    }

    #[test]
    fn any_single_byte_edit_is_detected(
        specs in proptest::collection::vec((any::<u8>(), "[a-z0-9@. ]{0,16}", any::<u8>()), 1..20),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = write(dir.path(), &specs, 5);
        prop_assert!(verify_bytes(&bytes).is_ok());
        let at = position.index(bytes.len());
        prop_assume!(bytes[at] != value);
        bytes[at] = value;
        let report = verify_bytes(&bytes);
        prop_assert!(report.problem.is_some(), "edit at {} to {} undetected", at, value);
    }
}
