//! Prints the audit trail's headline figures: sustained append throughput with group commit
//! (submitter thread → bounded buffer → writer thread: encode, hash, write, fsync every 10 ms)
//! and the time to verify the resulting 1,000,000-record tenant directory (plain and gzip
//! segments, parallel hashing). Usage:
//! `cargo run --release -p portcullis-audit --example audit_throughput -- [records] [dir]`.

use std::time::Instant;

use portcullis_audit::{
    AuditConfig, AuditError, AuditLog, Outcome, Record, SigningKey, verify_dir,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let base = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("audit-report-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&base);
    let key = SigningKey::from_seed([42; 32]);
    let config = AuditConfig::new(&base);
    println!(
        "records: {count}, capacity {}, flush interval {} ms, segment {} MiB, checkpoint every {}",
        config.capacity,
        config.flush_interval_ms,
        config.store.max_segment_bytes >> 20,
        config.store.checkpoint_every
    );
    let log = AuditLog::open(config, key.clone(), b"bench-master-secret")?;
    let started = Instant::now();
    let mut full_retries = 0u64;
    // The record a server would submit for decision `index`; rebuilt identically when the
    // buffer is full (`try_submit` consumes it), so retries measure the same work.
    let make = |index: u64| {
        Record::decision(
            "acme",
            format!("user-{}", index % 5000),
            "document.read",
            format!("documents/{index}"),
            if index.is_multiple_of(10) {
                Outcome::Deny
            } else {
                Outcome::Allow
            },
        )
        .trace_id(format!("{index:032x}"))
        .source("203.0.113.7")
        .user_agent("Mozilla/5.0 (X11; Linux x86_64)")
        .policy_revision("rev-42")
        .data_revision("data-7")
        .statements(vec!["permit.reader".to_owned()])
        .build()
    };
    for index in 0..count {
        loop {
            match log.try_submit(make(index)) {
                Ok(()) => break,
                Err(AuditError::BufferFull { .. }) => {
                    full_retries += 1;
                    std::thread::yield_now();
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(log.flush())?;
    let elapsed = started.elapsed();
    println!(
        "append (submit → durable, group commit): {count} records in {:.3} s = {:.0} records/s ({full_retries} full-buffer retries)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
    log.shutdown()?;
    let (mut plain, mut compressed, mut bytes) = (0, 0, 0u64);
    for entry in std::fs::read_dir(base.join("acme"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        bytes += entry.metadata()?.len();
        if name.ends_with(".jsonl") {
            plain += 1;
        } else if name.ends_with(".jsonl.gz") {
            compressed += 1;
        }
    }
    println!(
        "on disk: {plain} plain + {compressed} gzip segments, {:.1} MiB incl. indexes",
        bytes as f64 / (1 << 20) as f64
    );
    let started = Instant::now();
    let report = verify_dir(&base, "acme", &key.verifying_key())?;
    let elapsed = started.elapsed();
    println!(
        "verify: {} records, {} checkpoints, {} segments in {:.3} s = {:.0} records/s; ok = {}",
        report.records,
        report.checkpoints,
        report.segments,
        elapsed.as_secs_f64(),
        report.records as f64 / elapsed.as_secs_f64(),
        report.is_ok()
    );
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}
