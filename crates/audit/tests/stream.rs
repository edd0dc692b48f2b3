//! The chain as a line stream (`StreamLog` over a `LineSink`): the same bytes as the files,
//! verifiable, resumable after a clean close and after a crash, group-committed, and failing
//! closed when the sink fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use portcullis_audit::*;

const TENANT: &str = "acme";

fn key() -> SigningKey {
    SigningKey::from_seed([7; 32])
}

/// A stream in memory that behaves like the table: positions must continue the stream, a
/// batch is stored all or nothing.
#[derive(Clone, Default)]
struct MemorySink {
    lines: Arc<Mutex<Vec<StreamLine>>>,
    calls: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
}

impl LineSink for MemorySink {
    fn append(&mut self, lines: &[StreamLine]) -> Result<(), AuditError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(AuditError::Backend {
                reason: "the database is gone".to_owned(),
            });
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut stored = self.lines.lock().unwrap();
        for (offset, line) in lines.iter().enumerate() {
            if line.position != (stored.len() + offset + 1) as u64 {
                return Err(AuditError::Backend {
                    reason: format!("position {} is taken or skips", line.position),
                });
            }
        }
        stored.extend_from_slice(lines);
        Ok(())
    }

    fn last(&mut self) -> Result<Option<(u64, Vec<u8>)>, AuditError> {
        Ok(self
            .lines
            .lock()
            .unwrap()
            .last()
            .map(|line| (line.position, line.line.clone().into_bytes())))
    }
}

impl MemorySink {
    fn stored(&self) -> Vec<StreamLine> {
        self.lines.lock().unwrap().clone()
    }
}

fn options(checkpoint_every: u64) -> StoreOptions {
    StoreOptions {
        checkpoint_every,
        ..StoreOptions::default()
    }
}

fn record(index: u64) -> Record {
    let mut builder = Record::decision(
        TENANT,
        format!("user-{index}"),
        "doc:read",
        format!("doc:{index}"),
        if index.is_multiple_of(3) {
            Outcome::Deny
        } else {
            Outcome::Allow
        },
    )
    .source("10.0.0.1")
    .detail("n", serde_json::json!(index));
    if !index.is_multiple_of(4) {
        builder = builder.trace_id(format!("trace-{index}"));
    }
    if index.is_multiple_of(5) {
        // Escapes on the way: the lookup columns come from the full parser.
        builder = builder
            .user_agent("tab\there")
            .trace_id(format!("q\"{index}"));
    }
    builder.build()
}

/// Every line of the tenant's files, in order.
fn file_lines(root: &Path) -> Vec<String> {
    let mut segments: Vec<_> = std::fs::read_dir(root.join(TENANT))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn verify_stream(lines: &[StreamLine]) -> Report {
    let mut verifier = Verifier::new(TENANT, &key().verifying_key());
    verifier.begin_segment("memory");
    for line in lines {
        verifier.feed_line(line.position, line.line.as_bytes());
    }
    verifier.finish()
}

/// Record lines must be identical; checkpoint lines differ only by their time and signature,
/// so they are compared by place and what they cover.
fn assert_same_stream(files: &[String], stream: &[StreamLine]) {
    assert_eq!(files.len(), stream.len(), "same number of lines");
    for (index, (file, line)) in files.iter().zip(stream).enumerate() {
        assert_eq!(line.position, index as u64 + 1, "positions count lines");
        if file.starts_with("{\"kind\":\"checkpoint\"") {
            assert_eq!(line.kind, "checkpoint");
            let expected = Checkpoint::from_line(file.as_bytes()).unwrap();
            let got = Checkpoint::from_line(line.line.as_bytes()).unwrap();
            assert_eq!((got.seq, got.hash), (expected.seq, expected.hash));
            assert_eq!(line.seq, got.seq);
        } else {
            assert_eq!(&line.line, file, "record line {}", index + 1);
        }
    }
}

/// The lookup columns say what the line says.
fn assert_columns(stream: &[StreamLine]) {
    for line in stream {
        if line.kind == "checkpoint" {
            let checkpoint = Checkpoint::from_line(line.line.as_bytes()).unwrap();
            assert_eq!(line.seq, checkpoint.seq);
            assert!(line.actor.is_empty() && line.trace_id.is_empty());
            continue;
        }
        let record = Record::from_line(line.line.as_bytes()).unwrap();
        assert_eq!(line.kind, record.kind.as_str());
        assert_eq!(line.seq, record.seq);
        assert_eq!(line.ts_us, record.ts.as_microsecond());
        assert_eq!(line.actor, record.actor);
        assert_eq!(line.action, record.action);
        assert_eq!(line.outcome, record.outcome.as_str());
        assert_eq!(line.trace_id, record.trace_id.unwrap_or_default());
    }
}

#[test]
fn stream_lines_are_the_file_lines_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let mut file: Box<dyn TenantLog> =
        Box::new(FileLog::open(dir.path(), TENANT, options(7), Arc::new(key())).unwrap());
    let mut stream: Box<dyn TenantLog> = Box::new(
        StreamLog::open(TENANT, options(7), Arc::new(key()), Box::new(sink.clone())).unwrap(),
    );
    for index in 1..=40 {
        let original = record(index);
        let expected = file.append(&mut original.clone()).unwrap();
        // Half through the whole-record path, half through the tail path of the writer.
        let got = if index.is_multiple_of(2) {
            stream.append(&mut original.clone()).unwrap()
        } else {
            let canonical = original.canonical();
            let text = String::from_utf8(canonical).unwrap();
            let tail = &text[text.find(",\"ts\":").unwrap()..];
            stream.append_tail(original.kind, tail.as_bytes()).unwrap()
        };
        assert_eq!(got, expected, "record {index}");
        if index.is_multiple_of(10) {
            file.sync().unwrap();
            stream.sync().unwrap();
        }
    }
    assert!(!stream.is_dirty());
    file.close().unwrap();
    stream.close().unwrap();

    let stored = sink.stored();
    assert_same_stream(&file_lines(dir.path()), &stored);
    assert_columns(&stored);
    assert_eq!(
        stored.iter().filter(|l| l.kind == "checkpoint").count(),
        6,
        "one every 7 records and one at close"
    );
    let report = verify_stream(&stored);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.last_seq), (40, 40));
    // The same lines verify as a file too.
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(copy.path().join(TENANT)).unwrap();
    let mut text: String = stored.iter().map(|l| format!("{}\n", l.line)).collect();
    std::fs::write(
        copy.path()
            .join(TENANT)
            .join("seg-00000000000000000001.jsonl"),
        &text,
    )
    .unwrap();
    assert!(
        verify_dir(copy.path(), TENANT, &key().verifying_key())
            .unwrap()
            .is_ok()
    );

    // An edited row is named by its position and seq.
    text.clear();
    let mut tampered = stored.clone();
    let victim = tampered
        .iter_mut()
        .find(|l| l.seq == 12 && l.kind != "checkpoint")
        .unwrap();
    victim.line = victim
        .line
        .replacen("\"outcome\":\"deny\"", "\"outcome\":\"allow\"", 1);
    let position = victim.position;
    let report = verify_stream(&tampered);
    let problem = report.problem.unwrap();
    assert_eq!(problem.kind, ProblemKind::EditedRecord);
    assert_eq!(problem.seq, Some(12));
    assert_eq!(problem.location.line, position);
    assert_eq!(problem.location.segment, "memory");
}

#[test]
fn a_stream_resumes_after_a_clean_close_and_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let open_stream =
        || StreamLog::open(TENANT, options(0), Arc::new(key()), Box::new(sink.clone())).unwrap();
    let open_file = || FileLog::open(dir.path(), TENANT, options(0), Arc::new(key())).unwrap();

    // An empty log still closes with a signed statement that it is empty.
    Box::new(open_stream()).close().unwrap();
    open_file().close().unwrap();
    assert_eq!(sink.stored().len(), 1);

    // A clean close, then a reopen continues the chain without a new checkpoint.
    let (mut stream, mut file) = (open_stream(), open_file());
    assert_eq!(stream.next_position(), 2);
    for index in 1..=5 {
        let original = record(index);
        file.append(&mut original.clone()).unwrap();
        TenantLog::append(&mut stream, &mut original.clone()).unwrap();
    }
    Box::new(stream).close().unwrap();
    file.close().unwrap();
    let (mut stream, mut file) = (open_stream(), open_file());
    assert_eq!(TenantLog::head(&stream).0, 5);
    assert_eq!(stream.next_position(), sink.stored().len() as u64 + 1);

    // A crash: records stored (synced) but never sealed. Reopening seals them first.
    for index in 6..=9 {
        let original = record(index);
        file.append(&mut original.clone()).unwrap();
        TenantLog::append(&mut stream, &mut original.clone()).unwrap();
    }
    file.sync().unwrap();
    TenantLog::sync(&mut stream).unwrap();
    drop(stream);
    drop(file);
    assert_eq!(
        verify_stream(&sink.stored()).problem.unwrap().kind,
        ProblemKind::UnsealedTail
    );
    let (mut stream, mut file) = (open_stream(), open_file());
    assert_eq!(sink.stored().last().unwrap().kind, "checkpoint");
    let original = record(10);
    assert_eq!(
        TenantLog::append(&mut stream, &mut original.clone()).unwrap(),
        file.append(&mut original.clone()).unwrap()
    );
    Box::new(stream).close().unwrap();
    file.close().unwrap();

    let stored = sink.stored();
    assert_same_stream(&file_lines(dir.path()), &stored);
    let report = verify_stream(&stored);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.last_seq, 10);
}

#[test]
fn a_stream_that_ends_in_garbage_is_not_resumed() {
    let sink = MemorySink::default();
    sink.lines.lock().unwrap().push(StreamLine {
        position: 1,
        seq: 1,
        kind: "decision",
        ts_us: 0,
        actor: String::new(),
        action: String::new(),
        outcome: String::new(),
        trace_id: String::new(),
        line: "{\"forged\":true}".to_owned(),
    });
    let error = StreamLog::open(TENANT, options(0), Arc::new(key()), Box::new(sink)).unwrap_err();
    assert!(error.to_string().contains("position 1"), "{error}");
}

fn stream_log(sink: &MemorySink, capacity: usize) -> AuditLog {
    let config = AuditConfig {
        capacity,
        flush_interval_ms: 20,
        ..AuditConfig::new("unused")
    };
    let sinks = sink.clone();
    AuditLog::open_with(
        config,
        key(),
        b"master",
        StreamOpener(move |tenant: &str| {
            assert_eq!(tenant, TENANT, "one tenant in this test");
            Ok(Box::new(sinks.clone()) as Box<dyn LineSink>)
        }),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_group_commits_to_the_sink_and_fails_closed() {
    let sink = MemorySink::default();
    let log = stream_log(&sink, 10_000);
    for index in 1..=2000 {
        log.try_submit(record(index)).unwrap();
    }
    let receipt = log
        .append_durable(
            Record::change(TENANT, "ops", "POST /admin", "tenant:acme", Outcome::Ok).build(),
        )
        .await
        .unwrap();
    assert_eq!(receipt.seq, 2001);
    // Durable means stored when the call returns.
    assert!(
        sink.stored()
            .iter()
            .any(|l| l.seq == 2001 && l.kind == "change")
    );
    let calls = sink.calls.load(Ordering::SeqCst);
    assert!(
        calls < 100,
        "2001 records in {calls} sink calls: one per flush interval, not one per record"
    );
    log.shutdown().unwrap();
    let stored = sink.stored();
    let report = verify_stream(&stored);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 2001);
    assert_columns(&stored);

    // A sink that fails: the durable append is refused, and so is everything after it.
    let log = stream_log(&sink, 100);
    sink.broken.store(true, Ordering::SeqCst);
    let refused = log
        .append_durable(
            Record::change(TENANT, "ops", "POST /admin", "tenant:acme", Outcome::Ok).build(),
        )
        .await;
    assert!(
        refused.is_err(),
        "a change whose record was not stored is refused"
    );
    let later = log.try_submit(record(1));
    assert!(
        matches!(later, Err(AuditError::Closed { .. })),
        "the writer fails closed: {later:?}"
    );
    assert!(log.shutdown().is_err());
    assert_eq!(sink.stored().len(), stored.len(), "nothing half-written");
}

/// Several tenants' streams in memory, like the table, behind an opener that can list the
/// tenants with a stream (as the service's store opener does).
#[derive(Clone, Default)]
struct MemoryStore {
    sinks: Arc<Mutex<HashMap<String, MemorySink>>>,
}

impl MemoryStore {
    fn sink(&self, tenant: &str) -> MemorySink {
        self.sinks
            .lock()
            .unwrap()
            .entry(tenant.to_owned())
            .or_default()
            .clone()
    }
}

impl LogOpener for MemoryStore {
    fn open(
        &mut self,
        tenant: &str,
        options: &StoreOptions,
        key: Arc<SigningKey>,
    ) -> Result<Box<dyn TenantLog>, AuditError> {
        let sink = Box::new(self.sink(tenant));
        Ok(Box::new(StreamLog::open(
            tenant,
            options.clone(),
            key,
            sink,
        )?))
    }

    fn stored_tenants(&mut self) -> Result<Vec<String>, AuditError> {
        Ok(self
            .sinks
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, sink)| !sink.stored().is_empty())
            .map(|(tenant, _)| tenant.clone())
            .collect())
    }

    fn has_log(&mut self, tenant: &str) -> Result<bool, AuditError> {
        Ok(!self.sink(tenant).stored().is_empty())
    }
}

/// Stores `count` records in `sink` and stops the way a crash does (no close).
fn crash_stream(sink: &MemorySink, count: u64) {
    let mut stream = StreamLog::open(
        TENANT,
        options(1000),
        Arc::new(key()),
        Box::new(sink.clone()),
    )
    .unwrap();
    for index in 1..=count {
        TenantLog::append(&mut stream, &mut record(index)).unwrap();
    }
    TenantLog::sync(&mut stream).unwrap();
    drop(stream);
    assert_eq!(
        verify_stream(&sink.stored()).problem.unwrap().kind,
        ProblemKind::UnsealedTail,
        "the crash left records after the last checkpoint"
    );
}

fn writer_config() -> AuditConfig {
    AuditConfig {
        flush_interval_ms: 5,
        store: options(1000),
        ..AuditConfig::new("unused")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_stream_is_sealed_when_the_writer_starts_and_never_again() {
    let store = MemoryStore::default();
    let sink = store.sink(TENANT);
    crash_stream(&sink, 6);

    // Sealed before `open_with` returns, though the tenant writes nothing.
    let log = AuditLog::open_with(writer_config(), key(), b"master", store.clone()).unwrap();
    let sealed = sink.stored();
    assert_eq!(sealed.len(), 7);
    assert_eq!((sealed[6].kind, sealed[6].seq), ("checkpoint", 6));
    let report = verify_stream(&sealed);
    assert!(report.is_ok(), "{report:?}");

    // A clean shutdown, and another start and stop, add nothing to a sealed stream.
    tokio::task::spawn_blocking(move || log.shutdown().unwrap())
        .await
        .unwrap();
    assert_eq!(sink.stored(), sealed);
    let log = AuditLog::open_with(writer_config(), key(), b"master", store.clone()).unwrap();
    tokio::task::spawn_blocking(move || log.shutdown().unwrap())
        .await
        .unwrap();
    assert_eq!(sink.stored(), sealed);

    // Sealed, the stream reveals a cut of its last record.
    let mut cut = sealed.clone();
    cut.remove(5);
    let problem = verify_stream(&cut).problem.unwrap();
    assert_eq!(
        (problem.kind, problem.seq),
        (ProblemKind::Truncated, Some(6))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_seals_the_named_streams_that_exist_and_creates_none() {
    let store = MemoryStore::default();
    let sink = store.sink(TENANT);
    crash_stream(&sink, 4);
    let crashed = sink.stored();

    // A sink function cannot list tenants: nothing is recovered at start...
    let sinks = store.clone();
    let log = AuditLog::open_with(
        writer_config(),
        key(),
        b"master",
        StreamOpener(move |tenant: &str| Ok(Box::new(sinks.sink(tenant)) as Box<dyn LineSink>)),
    )
    .unwrap();
    assert_eq!(sink.stored(), crashed);

    // ...until the caller names the tenants it knows; one without a stream gets none.
    log.recover([TENANT.to_owned(), "beta".to_owned()])
        .await
        .unwrap();
    let sealed = sink.stored();
    assert_eq!(sealed.len(), crashed.len() + 1);
    assert_eq!(sealed.last().unwrap().kind, "checkpoint");
    assert!(verify_stream(&sealed).is_ok());
    tokio::task::spawn_blocking(move || log.shutdown().unwrap())
        .await
        .unwrap();
    assert_eq!(
        sink.stored(),
        sealed,
        "a sealed stream closes without a line"
    );
    assert!(store.sink("beta").stored().is_empty(), "no stream created");
}
