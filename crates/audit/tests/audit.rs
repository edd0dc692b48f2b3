//! Integration tests: tampering, crash recovery, masking, rotation, index, group commit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::*;

const TENANT: &str = "acme";

fn key() -> SigningKey {
    SigningKey::from_seed([7; 32])
}

fn record(index: u64) -> Record {
    Record::decision(
        TENANT,
        format!("user-{index}"),
        "read",
        format!("doc/{index}"),
        Outcome::Allow,
    )
    .trace_id(format!("trace-{index}"))
    .source("10.0.0.1")
    .policy_revision("r1")
    .build()
}

fn options(checkpoint_every: u64) -> StoreOptions {
    StoreOptions {
        checkpoint_every,
        ..StoreOptions::default()
    }
}

/// Writes `count` records with a checkpoint every `every` and a final one; returns the segment.
fn write_log(root: &Path, count: u64, every: u64) -> PathBuf {
    let mut log = FileLog::open(root, TENANT, options(every), Arc::new(key())).unwrap();
    for index in 1..=count {
        log.append(&mut record(index)).unwrap();
    }
    log.close().unwrap();
    root.join(TENANT).join("seg-00000000000000000001.jsonl")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// Line number (1-based) of the record with `seq`.
fn line_of(lines: &[String], seq: u64) -> usize {
    let needle = format!("\"seq\":{seq},\"prev\"");
    lines
        .iter()
        .position(|line| line.contains(&needle))
        .unwrap()
        + 1
}

fn verify(root: &Path) -> Report {
    verify_dir(root, TENANT, &key().verifying_key()).unwrap()
}

fn problem(root: &Path) -> Problem {
    verify(root).problem.expect("a problem")
}

#[test]
fn intact_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 100, 10);
    let report = verify(dir.path());
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 100);
    assert_eq!(report.checkpoints, 10);
    assert_eq!(report.last_seq, 100);
}

#[test]
fn edited_field_is_reported_at_the_edited_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 50, 10);
    let mut all = lines(&path);
    let at = line_of(&all, 23);
    all[at - 1] = all[at - 1].replace("user-23", "user-99");
    write_lines(&path, &all);
    let problem = problem(dir.path());
    assert_eq!(problem.kind, ProblemKind::EditedRecord, "{problem:?}");
    assert_eq!(problem.seq, Some(23));
    assert_eq!(problem.location.line, at as u64);
    assert_eq!(problem.location.segment, "seg-00000000000000000001.jsonl");
}

#[test]
fn edit_of_record_right_before_a_checkpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 50, 10);
    let mut all = lines(&path);
    let at = line_of(&all, 50);
    all[at - 1] = all[at - 1].replace("doc/50", "doc/51");
    write_lines(&path, &all);
    let problem = problem(dir.path());
    assert_eq!(
        (problem.kind, problem.seq, problem.location.line),
        (ProblemKind::EditedRecord, Some(50), at as u64)
    );
}

#[test]
fn deleted_record_is_reported_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 50, 10);
    let mut all = lines(&path);
    let at = line_of(&all, 17);
    all.remove(at - 1);
    write_lines(&path, &all);
    let problem = problem(dir.path());
    assert_eq!(
        (problem.kind, problem.seq, problem.location.line),
        (ProblemKind::DeletedRecord, Some(17), at as u64)
    );
}

#[test]
fn inserted_record_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 50, 10);
    let mut all = lines(&path);
    let at = line_of(&all, 31);
    // A fabricated record claiming seq 31 with a guessed prev.
    let mut forged = record(31);
    forged.seq = 31;
    let forged_line = String::from_utf8(forged.canonical()).unwrap();
    all.insert(at - 1, forged_line);
    write_lines(&path, &all);
    let problem = problem(dir.path());
    assert_eq!(
        (problem.kind, problem.seq, problem.location.line),
        (ProblemKind::InsertedRecord, Some(31), at as u64)
    );
}

#[test]
fn copied_record_inserted_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 50, 10);
    let mut all = lines(&path);
    let copy = all[line_of(&all, 40) - 1].clone();
    let at = line_of(&all, 12);
    all.insert(at - 1, copy);
    write_lines(&path, &all);
    let problem = problem(dir.path());
    assert_eq!(
        (problem.kind, problem.seq, problem.location.line),
        (ProblemKind::InsertedRecord, Some(40), at as u64)
    );
}

#[test]
fn swapped_records_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 50, 10);
    let mut all = lines(&path);
    let at = line_of(&all, 24);
    all.swap(at - 1, at);
    write_lines(&path, &all);
    let problem = problem(dir.path());
    assert_eq!(
        (problem.kind, problem.seq, problem.location.line),
        (ProblemKind::Reordered, Some(25), at as u64)
    );
}

#[test]
fn truncated_records_before_a_kept_checkpoint_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 50, 10);
    let all = lines(&path);
    // Drop records 45..=50 but keep the final checkpoint line.
    let cut = line_of(&all, 45);
    let mut kept: Vec<String> = all[..cut - 1].to_vec();
    kept.push(all.last().unwrap().clone());
    write_lines(&path, &kept);
    let problem = problem(dir.path());
    assert_eq!(
        (problem.kind, problem.seq, problem.location.line),
        (ProblemKind::Truncated, Some(45), kept.len() as u64)
    );
}

#[test]
fn tail_cut_beyond_the_last_checkpoint_is_reported_as_unsealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 50, 10);
    let all = lines(&path);
    // Cut after record 45: records 46..=50 and the final checkpoint are gone.
    let cut = line_of(&all, 45);
    write_lines(&path, &all[..cut]);
    let report = verify(dir.path());
    let problem = report.problem.clone().unwrap();
    assert_eq!(problem.kind, ProblemKind::UnsealedTail);
    assert_eq!(problem.seq, Some(41));
    assert_eq!(problem.location.line, line_of(&all, 41) as u64);
    assert!(report.is_ok_while_live());
}

#[test]
fn removed_last_checkpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 45, 10);
    let mut all = lines(&path);
    assert!(all.last().unwrap().contains("\"kind\":\"checkpoint\""));
    all.pop();
    write_lines(&path, &all);
    let problem = problem(dir.path());
    assert_eq!(
        (problem.kind, problem.seq),
        (ProblemKind::UnsealedTail, Some(41))
    );
}

#[test]
fn checkpoint_signed_with_another_key_is_forged() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 30, 10);
    let mut all = lines(&path);
    let at = line_of(&all, 20) + 1;
    let checkpoint = Checkpoint::from_line(all[at - 1].as_bytes()).unwrap();
    let hash: [u8; 32] = checkpoint.hash_bytes().unwrap();
    let other = SigningKey::from_seed([9; 32]);
    let forged = Checkpoint::sign(&other, TENANT, 20, &hash, jiff::Timestamp::now());
    all[at - 1] = forged.encode();
    write_lines(&path, &all);
    let problem = problem(dir.path());
    assert_eq!(
        (problem.kind, problem.seq, problem.location.line),
        (ProblemKind::ForgedCheckpoint, Some(20), at as u64)
    );
}

#[test]
fn checkpoint_with_altered_hash_is_forged() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 30, 10);
    let mut all = lines(&path);
    let at = line_of(&all, 10) + 1;
    let mut checkpoint = Checkpoint::from_line(all[at - 1].as_bytes()).unwrap();
    checkpoint.hash = "ab".repeat(32);
    all[at - 1] = checkpoint.encode();
    write_lines(&path, &all);
    let problem = problem(dir.path());
    assert_eq!(
        (problem.kind, problem.seq, problem.location.line),
        (ProblemKind::ForgedCheckpoint, Some(10), at as u64)
    );
}

#[test]
fn verifying_with_the_wrong_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5, 10);
    let report = verify_dir(
        dir.path(),
        TENANT,
        &SigningKey::from_seed([1; 32]).verifying_key(),
    )
    .unwrap();
    assert_eq!(report.problem.unwrap().kind, ProblemKind::ForgedCheckpoint);
}

fn rotated_options() -> StoreOptions {
    StoreOptions {
        checkpoint_every: 25,
        max_segment_bytes: 20_000,
        index_every: 8,
        ..StoreOptions::default()
    }
}

fn write_rotated(root: &Path, count: u64) {
    let mut log = FileLog::open(root, TENANT, rotated_options(), Arc::new(key())).unwrap();
    for index in 1..=count {
        log.append(&mut record(index)).unwrap();
    }
    log.close().unwrap();
}

fn gz_segments(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(TENANT))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".jsonl.gz"))
        .collect();
    found.sort();
    found
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

#[test]
fn rotation_by_size_compresses_and_verifies_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    write_rotated(dir.path(), 400);
    let gz = gz_segments(dir.path());
    assert!(gz.len() >= 3, "{gz:?}");
    let report = verify(dir.path());
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 400);
    assert!(report.segments as usize > gz.len());
    // Query across segments, paginated.
    let mut cursor = None;
    let mut seen = Vec::new();
    loop {
        let page = query(
            dir.path(),
            TENANT,
            &Filter::default(),
            cursor.as_deref(),
            77,
        )
        .unwrap();
        seen.extend(page.records.iter().map(|record| record.seq));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (1..=400).collect::<Vec<_>>());
    // Trace id through the index.
    let filter = Filter {
        trace_id: Some("trace-123".to_owned()),
        ..Filter::default()
    };
    let page = query(dir.path(), TENANT, &filter, None, 10).unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].seq, 123);
    assert_eq!(
        tail(dir.path(), TENANT, 3)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        vec![398, 399, 400]
    );
    let mut out = Vec::new();
    assert_eq!(
        export(dir.path(), TENANT, &Filter::default(), &mut out).unwrap(),
        400
    );
    let mut verifier = Verifier::new(TENANT, &key().verifying_key());
    verifier.begin_segment("export");
    for (number, line) in out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        verifier.feed_line(number as u64 + 1, line);
    }
    assert!(verifier.finish().is_ok());
}

#[test]
fn time_range_query_uses_index_and_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let base = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let mut log = FileLog::open(dir.path(), TENANT, rotated_options(), Arc::new(key())).unwrap();
    for index in 1..=300u64 {
        let mut record = Record::decision(TENANT, "u", "read", "doc", Outcome::Deny)
            .ts(base + jiff::SignedDuration::from_secs(index as i64))
            .build();
        log.append(&mut record).unwrap();
    }
    log.close().unwrap();
    let filter = Filter {
        from: Some(base + jiff::SignedDuration::from_secs(100)),
        to: Some(base + jiff::SignedDuration::from_secs(150)),
        ..Filter::default()
    };
    let page = query(dir.path(), TENANT, &filter, None, 1000).unwrap();
    assert_eq!(
        page.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (100..150).collect::<Vec<_>>()
    );
}

#[test]
fn rotation_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        max_segment_age: Duration::from_millis(50),
        ..StoreOptions::default()
    };
    let mut log = FileLog::open(dir.path(), TENANT, options, Arc::new(key())).unwrap();
    log.append(&mut record(1)).unwrap();
    std::thread::sleep(Duration::from_millis(80));
    log.tick().unwrap();
    log.append(&mut record(2)).unwrap();
    log.close().unwrap();
    assert_eq!(gz_segments(dir.path()).len(), 1);
    assert!(verify(dir.path()).is_ok());
}

#[test]
fn edit_inside_compressed_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    write_rotated(dir.path(), 400);
    let first = gz_segments(dir.path()).remove(0);
    let text = String::from_utf8(gunzip(&first)).unwrap();
    let all: Vec<String> = text.lines().map(str::to_owned).collect();
    let at = line_of(&all, 7);
    let edited = text.replacen("user-7\"", "user-8\"", 1);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, edited.as_bytes()).unwrap();
    std::fs::write(&first, encoder.finish().unwrap()).unwrap();
    let problem = problem(dir.path());
    assert_eq!(problem.kind, ProblemKind::EditedRecord);
    assert_eq!(problem.seq, Some(7));
    assert_eq!(problem.location.line, at as u64);
    assert!(problem.location.segment.ends_with(".jsonl.gz"));
}

#[test]
fn torn_tail_is_recovered_and_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = FileLog::open(dir.path(), TENANT, options(1000), Arc::new(key())).unwrap();
    for index in 1..=20 {
        log.append(&mut record(index)).unwrap();
    }
    log.sync().unwrap();
    drop(log); // crash: no close, no final checkpoint
    let path = dir
        .path()
        .join(TENANT)
        .join("seg-00000000000000000001.jsonl");
    let mut half = String::from_utf8(record(21).canonical()).unwrap();
    half.truncate(half.len() / 2);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, half.as_bytes()).unwrap();
    drop(file);
    let before = verify(dir.path());
    assert_eq!(before.problem.unwrap().kind, ProblemKind::TornTail);
    let mut log = FileLog::open(dir.path(), TENANT, options(1000), Arc::new(key())).unwrap();
    assert_eq!(log.head().0, 20);
    for index in 21..=30 {
        let (seq, _) = log.append(&mut record(index)).unwrap();
        assert_eq!(seq, index);
    }
    log.close().unwrap();
    let report = verify(dir.path());
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 30);
    assert!(!std::fs::read_to_string(&path).unwrap().contains(&half));
}

#[test]
fn reopen_after_clean_close_adds_no_checkpoint_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5, 100);
    let mut log = FileLog::open(dir.path(), TENANT, options(100), Arc::new(key())).unwrap();
    assert_eq!(log.append(&mut record(6)).unwrap().0, 6);
    log.close().unwrap();
    let report = verify(dir.path());
    assert!(report.is_ok());
    assert_eq!(report.checkpoints, 2);
}

/// Appends `count` records for `tenant` under `root` and makes them durable, then stops
/// cleanly (`crash` false) or the way a crash does: no close, so no final checkpoint. Returns
/// the active segment.
fn write_tenant(root: &Path, tenant: &str, count: u64, crash: bool) -> PathBuf {
    let mut log = FileLog::open(root, tenant, options(1000), Arc::new(key())).unwrap();
    for index in 1..=count {
        let mut record = record(index);
        record.tenant = tenant.to_owned();
        log.append(&mut record).unwrap();
    }
    if crash {
        log.sync().unwrap();
        drop(log);
    } else {
        log.close().unwrap();
    }
    root.join(tenant).join("seg-00000000000000000001.jsonl")
}

fn crash_after(root: &Path, tenant: &str, count: u64) -> PathBuf {
    write_tenant(root, tenant, count, true)
}

fn verify_tenant(root: &Path, tenant: &str) -> Report {
    verify_dir(root, tenant, &key().verifying_key()).unwrap()
}

fn checkpoint_count(path: &Path) -> usize {
    lines(path)
        .iter()
        .filter(|line| line.contains("\"kind\":\"checkpoint\""))
        .count()
}

#[test]
fn reopen_after_a_crash_writes_a_checkpoint_and_reopen_of_a_sealed_log_writes_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = crash_after(dir.path(), TENANT, 5);
    let unsealed = verify(dir.path());
    assert_eq!(
        unsealed.problem.unwrap().kind,
        ProblemKind::UnsealedTail,
        "the crash left records after the last checkpoint"
    );
    assert_eq!(checkpoint_count(&path), 0);

    // Opening seals the tail at once, durably, before anything is written.
    let log = FileLog::open(dir.path(), TENANT, options(1000), Arc::new(key())).unwrap();
    let after_open = std::fs::read(&path).unwrap();
    let last = lines(&path).pop().unwrap();
    assert!(last.contains("\"kind\":\"checkpoint\""), "{last}");
    assert!(
        last.contains("\"seq\":5,"),
        "it covers the last record: {last}"
    );
    let report = verify(dir.path());
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.checkpoints), (5, 1));

    // A sealed log: neither a reopen (after another crash) nor a clean close adds a line.
    drop(log);
    let log = FileLog::open(dir.path(), TENANT, options(1000), Arc::new(key())).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), after_open);
    log.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), after_open);
    FileLog::open(dir.path(), TENANT, options(1000), Arc::new(key()))
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), after_open);
}

#[test]
fn an_empty_log_is_sealed_once_not_at_every_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(TENANT)
        .join("seg-00000000000000000001.jsonl");
    for _ in 0..3 {
        FileLog::open(dir.path(), TENANT, options(1000), Arc::new(key()))
            .unwrap()
            .close()
            .unwrap();
        assert_eq!(checkpoint_count(&path), 1);
    }
    let report = verify(dir.path());
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.checkpoints), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_seals_every_stored_log_at_start_and_shutdown_without_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Two tenants a crash left unsealed, one closed cleanly, and folders that hold no log.
    let acme = crash_after(root, "acme", 7);
    let beta = crash_after(root, "beta", 3);
    let gamma = write_tenant(root, "gamma", 4, false);
    std::fs::create_dir_all(root.join("no-segments")).unwrap();
    std::fs::create_dir_all(root.join("not a tenant")).unwrap();
    std::fs::write(
        root.join("not a tenant")
            .join("seg-00000000000000000001.jsonl"),
        "x\n",
    )
    .unwrap();
    let gamma_before = std::fs::read(&gamma).unwrap();
    for tenant in ["acme", "beta"] {
        assert_eq!(
            verify_tenant(root, tenant).problem.unwrap().kind,
            ProblemKind::UnsealedTail
        );
    }

    // Opening the writer recovers every stored log: the crashed ones are sealed before it
    // returns, though neither tenant writes again.
    let log = AuditLog::open(AuditConfig::new(root), key(), b"master").unwrap();
    for (tenant, path, records) in [("acme", &acme, 7), ("beta", &beta, 3)] {
        let report = verify_tenant(root, tenant);
        assert!(report.is_ok(), "{tenant} sealed at start: {report:?}");
        assert_eq!((report.records, report.checkpoints), (records, 1));
        assert_eq!(checkpoint_count(path), 1);
    }
    assert_eq!(std::fs::read(&gamma).unwrap(), gamma_before);
    let sealed_at_start = (std::fs::read(&acme).unwrap(), std::fs::read(&beta).unwrap());

    // Recovering tenants by name opens only stored logs: none is created.
    log.recover(["acme".to_owned(), "delta".to_owned()])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || log.shutdown().unwrap())
        .await
        .unwrap();
    assert!(!root.join("delta").exists());
    assert!(list_dir(&root.join("no-segments")).is_empty());
    assert_eq!(list_dir(&root.join("not a tenant")).len(), 1);

    // A clean shutdown of sealed logs, and a second start and stop, add nothing.
    assert_eq!(
        (std::fs::read(&acme).unwrap(), std::fs::read(&beta).unwrap()),
        sealed_at_start
    );
    let log = AuditLog::open(AuditConfig::new(root), key(), b"master").unwrap();
    tokio::task::spawn_blocking(move || log.shutdown().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (std::fs::read(&acme).unwrap(), std::fs::read(&beta).unwrap()),
        sealed_at_start
    );
    assert_eq!(std::fs::read(&gamma).unwrap(), gamma_before);
    for tenant in ["acme", "beta", "gamma"] {
        let report = verify_tenant(root, tenant);
        assert!(report.is_ok(), "{tenant}: {report:?}");
    }

    // Now that the tail is sealed, cutting the last record is caught.
    let mut all = lines(&acme);
    let at = line_of(&all, 7);
    all.remove(at - 1);
    write_lines(&acme, &all);
    let report = verify_tenant(root, "acme");
    assert!(!report.is_ok_while_live(), "{report:?}");
    let problem = report.problem.unwrap();
    assert_eq!(
        (problem.kind, problem.seq),
        (ProblemKind::Truncated, Some(7))
    );
}

fn list_dir(path: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(path)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect()
}

#[test]
fn key_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let secret = generate_key().unwrap();
    secret.save(&dir.path().join("audit.key")).unwrap();
    secret
        .verifying_key()
        .save(&dir.path().join("audit.pub"))
        .unwrap();
    let loaded = SigningKey::load(&dir.path().join("audit.key")).unwrap();
    let public = VerifyingKey::load(&dir.path().join("audit.pub")).unwrap();
    assert_eq!(loaded.key_id(), secret.key_id());
    assert_eq!(public, secret.verifying_key());
    assert_eq!(public.key_id().len(), 16);
    assert!(
        secret.save(&dir.path().join("audit.key")).is_err(),
        "never overwrites"
    );
}

#[test]
fn wrong_tenant_record_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 10, 100);
    let mut all = lines(&path);
    all[2] = all[2].replacen("\"tenant\":\"acme\"", "\"tenant\":\"other\"", 1);
    write_lines(&path, &all);
    assert_eq!(problem(dir.path()).kind, ProblemKind::WrongTenant);
}

// ----- masking -----

fn masker(config: MaskingConfig) -> Masker {
    Masker::new(&config, mask::derive_pseudonym_key(b"master", TENANT)).unwrap()
}

#[test]
fn field_rules() {
    let config: MaskingConfig = serde_json::from_value(serde_json::json!({
        "rules": [
            {"field": "actor", "mask": {"keep_prefix": 7}},
            {"field": "resource", "mask": {"keep_suffix": 4}},
            {"field": "source", "mask": {"keep": {"prefix": 3, "suffix": 2}}},
            {"field": "user_agent", "mask": "redact"},
            {"field": "details.customer", "mask": "pseudonym"}
        ]
    }))
    .unwrap();
    let masker = masker(config);
    let mut record = Record::decision(
        TENANT,
        "18912345678",
        "read",
        "account/998877",
        Outcome::Allow,
    )
    .source("192.168.1.20")
    .user_agent("curl/8")
    .detail("customer", serde_json::json!("alice"))
    .build();
    masker.apply(&mut record);
    assert_eq!(record.actor, "1891234****");
    assert_eq!(record.resource, "**********8877");
    assert_eq!(record.source.as_deref(), Some("192*******20"));
    assert_eq!(record.user_agent.as_deref(), Some("[redacted]"));
    let token = record.details["customer"].as_str().unwrap().to_owned();
    assert!(token.starts_with("p_") && token.len() == 18 && !token.contains("alice"));
    assert_eq!(masker.pseudonym("alice"), token, "deterministic");
    let other = Masker::new(
        &MaskingConfig::default(),
        mask::derive_pseudonym_key(b"master", "globex"),
    )
    .unwrap();
    assert_ne!(other.pseudonym("alice"), token, "keyed per tenant");
}

#[test]
fn unknown_fields_and_rules_are_rejected() {
    assert!(serde_json::from_value::<MaskingConfig>(serde_json::json!({"rulez": []})).is_err());
    assert!(
        serde_json::from_value::<MaskingConfig>(
            serde_json::json!({"rules": [{"field": "actor", "mask": "redact", "x": 1}]})
        )
        .is_err()
    );
    let config: MaskingConfig = serde_json::from_value(
        serde_json::json!({"rules": [{"field": "password", "mask": "redact"}]}),
    )
    .unwrap();
    assert!(Masker::new(&config, [0; 32]).is_err());
}

#[test]
fn detectors_positive_and_negative() {
    let masker = masker(MaskingConfig::with_all_detectors());
    assert_eq!(
        masker.detect("call 13812345678 now"),
        "call 138****5678 now"
    );
    assert_eq!(
        masker.detect("call 12812345678 now"),
        "call 12812345678 now",
        "2nd digit 2 is not mobile"
    );
    assert_eq!(
        masker.detect("n=138123456789"),
        "n=138123456789",
        "12 digits are not a mobile"
    );
    // Valid resident ID (checksum X) and a bad checksum.
    assert_eq!(
        masker.detect("id 11010519491231002X."),
        "id 110***********002X."
    );
    assert_eq!(
        masker.detect("id 110105194912310021."),
        "id 110105194912310021."
    );
    assert_eq!(
        masker.detect("mail bob.smith+x@example.co.uk, ok"),
        "mail b***@example.co.uk, ok"
    );
    assert_eq!(masker.detect("not@mail"), "not@mail");
    assert_eq!(
        masker.detect("card 4111111111111111 paid"),
        "card 4111********1111 paid"
    );
    assert_eq!(
        masker.detect("card 4111111111111112 paid"),
        "card 4111111111111112 paid",
        "Luhn-invalid"
    );
    assert_eq!(masker.detect("plain text"), "plain text");
    let only_mobile = masker_with(&[DetectorKind::Mobile]);
    assert_eq!(
        only_mobile.detect("4111111111111111 13812345678"),
        "4111111111111111 138****5678"
    );
}

fn masker_with(detectors: &[DetectorKind]) -> Masker {
    masker(MaskingConfig {
        rules: Vec::new(),
        detectors: detectors.to_vec(),
    })
}

const RAW_PII: [&str; 5] = [
    "13812345678",
    "11010519491231002X",
    "bob.smith@example.com",
    "4111111111111111",
    "18912345678",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_pii_never_reaches_any_written_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AuditConfig::new(dir.path());
    config.store = StoreOptions {
        max_segment_bytes: 8_000,
        checkpoint_every: 10,
        ..StoreOptions::default()
    };
    config.default_policy.masking.rules.push(MaskRule {
        field: "actor".to_owned(),
        mask: Mask::Pseudonym,
    });
    let log = AuditLog::open(config, key(), b"master").unwrap();
    for index in 0..200 {
        let record = Record::decision(
            TENANT,
            "18912345678",
            "read",
            "user/13812345678/profile",
            Outcome::Deny,
        )
        .trace_id(format!("t{index}"))
        .user_agent("app bob.smith@example.com")
        .detail("id_number", serde_json::json!("11010519491231002X"))
        .detail(
            "nested",
            serde_json::json!({"card": ["4111111111111111"], "n": 13812345678u64}),
        )
        .build();
        log.submit(record).await.unwrap();
    }
    let change = Record::change(
        TENANT,
        "admin",
        "bundle.update",
        "bundles/acme",
        Outcome::Ok,
    )
    .detail(
        "note",
        serde_json::json!("contact 13812345678 or bob.smith@example.com"),
    )
    .build();
    log.append_durable(change).await.unwrap();
    tokio::task::spawn_blocking(move || log.shutdown().unwrap())
        .await
        .unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path().join(TENANT)).unwrap() {
        let path = entry.unwrap().path();
        let bytes = if path.to_string_lossy().ends_with(".gz") {
            gunzip(&path)
        } else {
            std::fs::read(&path).unwrap()
        };
        let raw = std::fs::read(&path).unwrap();
        for pii in RAW_PII {
            for haystack in [&bytes, &raw] {
                assert!(
                    !haystack
                        .windows(pii.len())
                        .any(|window| window == pii.as_bytes()),
                    "{pii} in {}",
                    path.display()
                );
            }
        }
        files += 1;
    }
    assert!(
        files >= 3,
        "segments, compressed segments and indexes were checked"
    );
    assert!(!gz_segments(dir.path()).is_empty());
    assert!(verify(dir.path()).is_ok());
}

// ----- group commit -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submitters_all_land_in_a_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(AuditConfig::new(dir.path()), key(), b"master").unwrap());
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            for index in 0..250 {
                log.submit(record(task * 1000 + index)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let receipt = log
        .append_durable(Record::change(TENANT, "admin", "x", "y", Outcome::Ok).build())
        .await
        .unwrap();
    assert_eq!(receipt.seq, 8001);
    log.flush().await.unwrap();
    let log = Arc::try_unwrap(log).unwrap();
    tokio::task::spawn_blocking(move || log.shutdown().unwrap())
        .await
        .unwrap();
    let report = verify(dir.path());
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 8001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buffer_deny_fails_at_once_and_block_waits_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AuditConfig::new(dir.path());
    config.capacity = 4;
    config.default_policy.on_full = FullPolicy::Deny;
    let blocking = TenantPolicy {
        on_full: FullPolicy::Block { max_wait_ms: 150 },
        ..TenantPolicy::default()
    };
    config.tenants.insert("slow".to_owned(), blocking);
    let log = AuditLog::open(config, key(), b"master").unwrap();
    log.pause_writer_for_tests(true);
    for index in 0..4 {
        log.submit(record(index)).await.unwrap();
    }
    assert_eq!(log.buffered(), 4);
    let started = std::time::Instant::now();
    let error = log.submit(record(5)).await.unwrap_err();
    assert!(
        matches!(error, AuditError::BufferFull { capacity: 4, .. }),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "deny is immediate"
    );
    assert!(log.try_submit(record(6)).is_err());
    let started = std::time::Instant::now();
    let slow = Record::decision("slow", "u", "read", "d", Outcome::Deny).build();
    let error = log.submit(slow.clone()).await.unwrap_err();
    assert!(matches!(error, AuditError::BufferFull { .. }));
    assert!(
        started.elapsed() >= Duration::from_millis(140),
        "block waited {:?}",
        started.elapsed()
    );
    // With room freed during the wait, a blocked submit succeeds.
    let waiter = {
        let slow = slow.clone();
        let log = &log;
        async move { log.submit(slow).await }
    };
    let resume = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        log.pause_writer_for_tests(false);
    };
    let (result, ()) = tokio::join!(waiter, resume);
    result.unwrap();
    log.flush().await.unwrap();
    assert_eq!(
        verify(dir.path()).records,
        4,
        "the 4 accepted records landed"
    );
    assert_eq!(
        verify_dir(dir.path(), "slow", &key().verifying_key())
            .unwrap()
            .records,
        1
    );
    log.shutdown().unwrap();
}

#[test]
fn sampling_never_drops_denies_changes_or_uses_of_temporary_grants() {
    let deny = Record::decision(TENANT, "u", "a", "r", Outcome::Deny).build();
    let change = Record::change(TENANT, "u", "a", "r", Outcome::Ok).build();
    assert!(writer::should_record(0.0, &deny));
    assert!(writer::should_record(0.0, &change));
    // An allow by a temporary grant is always recorded.
    let mut by_grant = Record::decision(TENANT, "u", "a", "r", Outcome::Allow).build();
    by_grant.statements = vec![format!("{}ta-1", writer::GRANT_STATEMENT)];
    assert!(writer::should_record(0.0, &by_grant));
    by_grant.statements = vec!["ta-1".to_owned()];
    assert!(
        !writer::should_record(0.0, &by_grant),
        "a role named like a grant is not one"
    );
    let allows: Vec<Record> = (0..2000)
        .map(|i| Record::decision(TENANT, "u", "a", format!("r{i}"), Outcome::Allow).build())
        .collect();
    assert!(allows.iter().all(|r| !writer::should_record(0.0, r)));
    let kept = allows
        .iter()
        .filter(|r| writer::should_record(0.25, r))
        .count();
    assert!((300..700).contains(&kept), "{kept}");
    assert_eq!(
        allows
            .iter()
            .filter(|r| writer::should_record(0.25, r))
            .count(),
        kept,
        "deterministic"
    );
}

#[test]
fn canonical_encoding_round_trips_and_sorts_details() {
    let record = Record::decision(TENANT, "a\"b\\c\n\u{1}é", "read", "doc", Outcome::Allow)
        .detail("z", serde_json::json!({"b": 1, "a": [true, null, 1.5]}))
        .detail("a", serde_json::json!("x"))
        .build();
    let line = String::from_utf8(record.canonical()).unwrap();
    assert!(
        line.contains(r#""details":{"a":"x","z":{"a":[true,null,1.5],"b":1}}"#),
        "{line}"
    );
    assert!(line.contains(r#""actor":"a\"b\\c\n\u0001é""#), "{line}");
    let parsed = Record::from_line(line.as_bytes()).unwrap();
    assert_eq!(parsed, record);
    assert_eq!(parsed.canonical(), record.canonical());
    assert_eq!(record.id.len(), 26);
}
