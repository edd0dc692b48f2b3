//! Criterion micro-benchmarks of the audit trail: canonical encoding + hash, masking, appending
//! to a file log (buffered, no fsync), and verifying lines.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_audit::{
    FileLog, Masker, MaskingConfig, Outcome, Record, SigningKey, StoreOptions, Verifier,
};

fn sample(index: u64) -> Record {
    Record::decision(
        "acme",
        format!("user-{index}"),
        "document.read",
        format!("documents/{index}"),
        Outcome::Allow,
    )
    .trace_id(format!("{index:032x}"))
    .source("203.0.113.7")
    .user_agent("Mozilla/5.0 (X11; Linux x86_64)")
    .policy_revision("rev-42")
    .statements(vec!["permit.reader".to_owned()])
    .build()
}

fn benches(c: &mut Criterion) {
    let record = sample(1);
    c.bench_function("audit/encode+hash", |b| {
        b.iter(|| black_box(&record).hash())
    });
    let masker = Masker::new(&MaskingConfig::with_all_detectors(), [1; 32])
        .unwrap_or_else(|_| Masker::none());
    c.bench_function("audit/mask record (all detectors)", |b| {
        b.iter(|| {
            let mut copy = record.clone();
            masker.apply(&mut copy);
            copy
        })
    });
    let dir = std::env::temp_dir().join(format!("audit-bench-{}", std::process::id()));
    let key = Arc::new(SigningKey::from_seed([3; 32]));
    if let Ok(mut log) = FileLog::open(&dir, "acme", StoreOptions::default(), key.clone()) {
        let mut group = c.benchmark_group("audit/file-log");
        group.throughput(Throughput::Elements(1));
        group.bench_function("append (buffered)", |b| {
            b.iter(|| {
                let mut copy = record.clone();
                log.append(&mut copy).map(|(seq, _)| seq).unwrap_or(0)
            })
        });
        group.finish();
        let _ = log.close();
    }
    let _ = std::fs::remove_dir_all(&dir);
    // Verify 10,000 lines fed one by one (the database path).
    let dir = std::env::temp_dir().join(format!("audit-bench-v-{}", std::process::id()));
    if let Ok(mut log) = FileLog::open(&dir, "acme", StoreOptions::default(), key.clone()) {
        for index in 0..10_000 {
            let _ = log.append(&mut sample(index));
        }
        let _ = log.close();
    }
    let lines: Vec<Vec<u8>> =
        std::fs::read(dir.join("acme").join("seg-00000000000000000001.jsonl"))
            .unwrap_or_default()
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
    let public = key.verifying_key();
    let mut group = c.benchmark_group("audit/verify");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("10k lines", |b| {
        b.iter(|| {
            let mut verifier = Verifier::new("acme", &public);
            verifier.begin_segment("bench");
            for (number, line) in lines.iter().enumerate() {
                verifier.feed_line(number as u64 + 1, line);
            }
            verifier.finish().records
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(audit, benches);
criterion_main!(audit);
