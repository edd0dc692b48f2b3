//! Lines of an audit segment through the verifier `portcullis audit verify` runs (records,
//! checkpoints, the chain between them), and each line through the record and checkpoint
//! parsers.
//!
//! Input: the segment's text, one line per record or checkpoint; a form feed starts a new
//! segment. The checkpoints are checked with the key of seed [7; 32] for tenant `acme`, the key
//! the seeds were written with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_audit::{Checkpoint, Record, SigningKey, Verifier};

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_seed([7; 32]).verifying_key();
    let mut verifier = Verifier::new("acme", &key);
    for (index, segment) in data.split(|&b| b == b'\x0c').enumerate() {
        verifier.begin_segment(&format!("segment-{index}.log"));
        for (number, line) in segment.split(|&b| b == b'\n').enumerate() {
            if let Ok(record) = Record::from_line(line) {
                let _ = record.hash();
            }
            if let Ok(checkpoint) = Checkpoint::from_line(line) {
                let _ = checkpoint.hash_bytes();
                let _ = checkpoint.check(&key);
            }
            verifier.feed_line(number as u64 + 1, line);
        }
    }
    let report = verifier.finish();
    let _ = report.is_ok();
    let _ = report.is_ok_while_live();
});
