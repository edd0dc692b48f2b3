//! File storage of one tenant's chain: append-only segments, rotation, compression, index and
//! crash recovery.
//!
//! Owns the directory layout under `<root>/<tenant>/`:
//! - `seg-<first seq, 20 digits>.jsonl`: plain segment, JSON lines (records and checkpoints in
//!   one stream); the last one is active;
//! - `seg-<…>.jsonl.gz`: a rotated segment, gzip of the plain bytes (identical lines);
//! - `seg-<…>.idx`: index of a rotated segment (seq and time range, sparse time marks, hashed
//!   trace ids); derived data, rebuilt by scanning when missing;
//! - `*.tmp`: unfinished temporaries, deleted on open.
//!
//! [`FileLog`] is used by exactly one writer: it assigns `seq` and `prev` in write order. It
//! must not mask (records arrive masked) and never rewrites a written line; the only cut it
//! makes is of a torn final line (never acknowledged) when opening after a crash.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::chain::{Chain, TailState, TenantLog};
use crate::keys::SigningKey;
use crate::record::{Hash, Kind, LineKind, Record, hash_line, index_fields, line_kind};

/// Storage tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreOptions {
    /// Write a checkpoint after this many records (0: only by time and at close).
    pub checkpoint_every: u64,
    /// Write a checkpoint when records are unsealed for this long.
    #[serde(with = "duration_millis")]
    pub checkpoint_interval: Duration,
    /// Rotate when the active segment reaches this many bytes.
    pub max_segment_bytes: u64,
    /// Rotate when the active segment is this old (and holds records).
    #[serde(with = "duration_millis")]
    pub max_segment_age: Duration,
    /// Gzip rotated segments.
    pub compress: bool,
    /// One time mark in the index every this many records.
    pub index_every: u64,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(60),
            max_segment_bytes: 64 << 20,
            max_segment_age: Duration::from_secs(24 * 3600),
            compress: true,
            index_every: 1024,
        }
    }
}

mod duration_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

/// What the log acknowledges for an appended record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Tenant.
    pub tenant: String,
    /// Assigned sequence number.
    pub seq: u64,
    /// Hex hash of the record's canonical encoding.
    pub hash: String,
}

/// A segment file found in a tenant directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Path.
    pub path: PathBuf,
    /// File name (used in report locations).
    pub name: String,
    /// First seq the segment was opened for.
    pub first_seq: u64,
    /// Gzip-compressed.
    pub compressed: bool,
}

fn segment_stem(first_seq: u64) -> String {
    format!("seg-{first_seq:020}")
}

/// Lists the segments of a tenant directory in chain order, preferring the `.gz` when a
/// compression finished but the plain file was not deleted yet.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>, AuditError> {
    let mut segments: Vec<SegmentFile> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(segments),
        Err(source) => return Err(AuditError::io(dir, source)),
    };
    for entry in entries {
        let entry = entry.map_err(|source| AuditError::io(dir, source))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (stem, compressed) = if let Some(stem) = name.strip_suffix(".jsonl.gz") {
            (stem, true)
        } else if let Some(stem) = name.strip_suffix(".jsonl") {
            (stem, false)
        } else {
            continue;
        };
        let Some(first_seq) = stem
            .strip_prefix("seg-")
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push(SegmentFile {
            path: entry.path(),
            name,
            first_seq,
            compressed,
        });
    }
    segments.sort_by_key(|segment| (segment.first_seq, !segment.compressed));
    segments.dedup_by_key(|segment| segment.first_seq);
    Ok(segments)
}

/// Reads a segment's plain bytes (decompressing `.gz`). If a plain file vanished because its
/// compression just finished, reads the `.gz` instead.
pub fn read_segment(segment: &SegmentFile) -> Result<Vec<u8>, AuditError> {
    match read_file(&segment.path, segment.compressed) {
        Err(AuditError::Io { source, .. })
            if !segment.compressed && source.kind() == std::io::ErrorKind::NotFound =>
        {
            let mut gz = segment.path.clone().into_os_string();
            gz.push(".gz");
            read_file(Path::new(&gz), true)
        }
        other => other,
    }
}

fn read_file(path: &Path, compressed: bool) -> Result<Vec<u8>, AuditError> {
    // `fs::read` sizes the buffer from the file length: one allocation, no regrowth.
    let raw = std::fs::read(path).map_err(|source| AuditError::io(path, source))?;
    if !compressed {
        return Ok(raw);
    }
    // The gzip trailer ends with the uncompressed size mod 2^32 (of the last member): a good
    // capacity hint for single-member files, bounded so a corrupt trailer cannot over-allocate.
    let hint = raw
        .len()
        .checked_sub(4)
        .and_then(|start| raw.get(start..))
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .map_or(0, |tail| u32::from_le_bytes(tail) as usize)
        .min(raw.len().saturating_mul(64))
        .min(1 << 30);
    let mut bytes = Vec::with_capacity(hint + 1);
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut bytes)
        .map_err(|source| AuditError::io(path, source))?;
    Ok(bytes)
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| AuditError::io(dir, source))
}

/// One tenant's append-only log. Single writer.
#[derive(Debug)]
pub struct FileLog {
    dir: PathBuf,
    chain: Chain,
    options: StoreOptions,
    file: File,
    path: PathBuf,
    segment_bytes: u64,
    segment_records: u64,
    segment_started: Instant,
    pending: Vec<u8>,
    dirty: bool,
    /// The thread compressing this log's rotated segments one after the other, started with
    /// the first rotation.
    compressor: Option<Compressor>,
}

impl FileLog {
    /// Opens (creating if needed) `<root>/<tenant>`, recovering from a crash: a torn final line
    /// is cut, the chain resumes from the last complete record, and when records follow the
    /// last checkpoint (or a line was cut) a checkpoint seals them, fsynced before this returns.
    /// A log that ends with a checkpoint is opened without writing anything.
    pub fn open(
        root: &Path,
        tenant: &str,
        options: StoreOptions,
        key: Arc<SigningKey>,
    ) -> Result<FileLog, AuditError> {
        crate::validate_tenant(tenant)?;
        let dir = root.join(tenant);
        std::fs::create_dir_all(&dir).map_err(|source| AuditError::io(&dir, source))?;
        remove_temporaries(&dir)?;
        let mut segments = list_segments(&dir)?;
        remove_superseded_plain(&dir, &segments)?;
        let mut to_compress = Vec::new();
        let active = match segments.pop() {
            Some(last) if !last.compressed => {
                to_compress.extend(
                    segments
                        .iter()
                        .filter(|segment| !segment.compressed)
                        .cloned(),
                );
                Some(last)
            }
            Some(last) => {
                to_compress.extend(
                    segments
                        .iter()
                        .filter(|segment| !segment.compressed)
                        .cloned(),
                );
                segments.push(last);
                None
            }
            None => None,
        };
        let mut state = TailState::default();
        let mut segment_records = 0;
        let mut torn = false;
        let path;
        let file;
        let mut segment_bytes = 0;
        match active {
            Some(active) => {
                path = active.path.clone();
                // Read line by line: the active segment can be tens of MB.
                let source = File::open(&path).map_err(|source| AuditError::io(&path, source))?;
                let mut reader = std::io::BufReader::with_capacity(1 << 16, source);
                let mut line = Vec::with_capacity(1024);
                let mut complete = 0u64;
                let mut total = 0u64;
                loop {
                    line.clear();
                    let read = reader
                        .read_until(b'\n', &mut line)
                        .map_err(|source| AuditError::io(&path, source))?;
                    if read == 0 {
                        break;
                    }
                    total += read as u64;
                    let Some(content) = line.strip_suffix(b"\n") else {
                        break;
                    };
                    complete = total;
                    if !content.is_empty() && state.scan_line(content) == Some(LineKind::Record) {
                        segment_records += 1;
                    }
                }
                if complete < total {
                    torn = true;
                    let handle = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|source| AuditError::io(&path, source))?;
                    handle
                        .set_len(complete)
                        .map_err(|source| AuditError::io(&path, source))?;
                    handle
                        .sync_all()
                        .map_err(|source| AuditError::io(&path, source))?;
                    tracing::warn!(tenant, segment = %path.display(), cut = total - complete, "audit: cut a torn final line after a crash");
                }
                segment_bytes = complete;
                if state.last.is_none() {
                    load_previous(&mut state, &segments)?;
                }
                file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|source| AuditError::io(&path, source))?;
            }
            None => {
                load_previous(&mut state, &segments)?;
                let first = state.last.map_or(1, |(seq, _)| seq + 1);
                path = dir.join(format!("{}.jsonl", segment_stem(first)));
                file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .map_err(|source| AuditError::io(&path, source))?;
                sync_dir(&dir)?;
            }
        }
        let chain = Chain::new(tenant, &options, key, &state);
        let mut log = FileLog {
            dir,
            chain,
            options,
            file,
            path,
            segment_bytes,
            segment_records,
            segment_started: Instant::now(),
            // Grown by the first commits and kept (cleared, not freed) from then on: every
            // stored log is opened at start, and most of them may never be written again.
            pending: Vec::new(),
            dirty: false,
            compressor: None,
        };
        // Seal what a crash left: records after the last checkpoint, or a cut torn line. Only
        // a line is appended; nothing written before is touched.
        if torn || state.is_unsealed() {
            log.checkpoint()?;
            log.sync()?;
            tracing::warn!(
                tenant,
                seq = log.head().0,
                "audit: sealed the log a crash left unsealed with a checkpoint"
            );
        }
        for segment in to_compress {
            log.spawn_compression(segment.path);
        }
        Ok(log)
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        self.chain.tenant()
    }

    /// Last assigned seq and hash.
    pub fn head(&self) -> (u64, Hash) {
        self.chain.head()
    }

    /// Assigns `seq` and `prev`, encodes and buffers the record. Not durable until [`sync`].
    ///
    /// [`sync`]: FileLog::sync
    pub fn append(&mut self, record: &mut Record) -> Result<(u64, Hash), AuditError> {
        self.chain.place(record);
        self.push_record(record.kind, |out| record.encode_tail(out))
    }

    /// Appends a record whose chain-independent tail (see [`Record::encode_tail`]) was encoded
    /// by the submitter: writes the chain prefix for the next seq, then the tail. The line is
    /// byte for byte what [`append`](FileLog::append) writes for the same record.
    pub(crate) fn append_tail(
        &mut self,
        kind: Kind,
        tail: &[u8],
    ) -> Result<(u64, Hash), AuditError> {
        self.push_record(kind, |out| out.extend_from_slice(tail))
    }

    fn push_record(
        &mut self,
        kind: Kind,
        tail: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(u64, Hash), AuditError> {
        let start = self.pending.len();
        let (seq, hash) = self.chain.encode_record(&mut self.pending, kind, tail);
        self.pending.push(b'\n');
        self.segment_bytes += (self.pending.len() - start) as u64;
        self.segment_records += 1;
        self.dirty = true;
        if self.chain.checkpoint_due_by_count() {
            self.checkpoint()?;
        }
        if self.pending.len() >= 1 << 20 {
            self.write_pending()?;
        }
        if self.segment_bytes >= self.options.max_segment_bytes {
            self.rotate()?;
        }
        Ok((seq, hash))
    }

    /// Appends a signed checkpoint for the current head.
    pub fn checkpoint(&mut self) -> Result<(), AuditError> {
        let (checkpoint, _) = self.chain.checkpoint();
        let line = checkpoint.encode();
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.segment_bytes += line.len() as u64 + 1;
        self.dirty = true;
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), AuditError> {
        if !self.pending.is_empty() {
            self.file
                .write_all(&self.pending)
                .map_err(|source| AuditError::io(&self.path, source))?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes buffered lines and fsyncs the active segment. After it returns, everything
    /// appended so far survives a crash.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        if self.dirty {
            self.write_pending()?;
            self.file
                .sync_data()
                .map_err(|source| AuditError::io(&self.path, source))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// True if records were appended since the last sync.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Time-driven work: a checkpoint when records have been unsealed for
    /// `checkpoint_interval`, rotation when the segment is older than `max_segment_age`.
    pub fn tick(&mut self) -> Result<(), AuditError> {
        if self.chain.checkpoint_due_by_time() {
            self.checkpoint()?;
        }
        if self.segment_records > 0
            && self.segment_started.elapsed() >= self.options.max_segment_age
        {
            self.rotate()?;
        }
        Ok(())
    }

    /// Seals the active segment with a checkpoint, starts a new one and compresses the old one
    /// in the background.
    pub fn rotate(&mut self) -> Result<(), AuditError> {
        if self.segment_records == 0 {
            return Ok(());
        }
        self.checkpoint()?;
        self.sync()?;
        let next = self
            .dir
            .join(format!("{}.jsonl", segment_stem(self.chain.head().0 + 1)));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&next)
            .map_err(|source| AuditError::io(&next, source))?;
        sync_dir(&self.dir)?;
        let old = std::mem::replace(&mut self.path, next);
        self.file = file;
        self.segment_bytes = 0;
        self.segment_records = 0;
        self.segment_started = Instant::now();
        self.spawn_compression(old);
        Ok(())
    }

    /// Hands a rotated segment to the log's compression thread (started on first use). The
    /// thread works through the segments in order at idle priority, so a core saturated by
    /// decisions leaves them plain for a while rather than spawning more work.
    fn spawn_compression(&mut self, plain: PathBuf) {
        let plain = match &self.compressor {
            Some(compressor) => match compressor.sender.send(plain) {
                Ok(()) => return,
                // The thread is gone (it panicked): start another for this segment.
                Err(returned) => returned.0,
            },
            None => plain,
        };
        let compress = self.options.compress;
        let index_every = self.options.index_every;
        let (sender, receiver) = std::sync::mpsc::channel::<PathBuf>();
        let handle = std::thread::Builder::new()
            .name("audit-compress".to_owned())
            .spawn(move || {
                run_at_idle_priority();
                let mut outcome = Ok(());
                for plain in receiver {
                    if let Err(error) = finish_segment(&plain, compress, index_every) {
                        tracing::error!(%error, "audit: compressing a rotated segment failed; the plain segment is kept");
                        if outcome.is_ok() {
                            outcome = Err(error);
                        }
                    }
                }
                outcome
            });
        match handle {
            Ok(handle) => {
                let _ = sender.send(plain);
                if let Some(old) = self.compressor.replace(Compressor { sender, handle }) {
                    let _ = old.handle.join();
                }
            }
            Err(error) => tracing::error!(%error, "audit: cannot start the compression thread"),
        }
    }

    /// Waits until every rotated segment handed over so far is compressed and indexed.
    pub fn wait_compressions(&mut self) -> Result<(), AuditError> {
        let Some(compressor) = self.compressor.take() else {
            return Ok(());
        };
        drop(compressor.sender);
        compressor.handle.join().map_err(|_| AuditError::Closed {
            reason: "compression thread panicked".to_owned(),
        })?
    }

    /// Clean shutdown: a final checkpoint, fsync, and waiting for compressions.
    pub fn close(mut self) -> Result<(), AuditError> {
        if self.chain.needs_final_checkpoint() {
            self.checkpoint()?;
        }
        self.sync()?;
        self.wait_compressions()
    }
}

/// A tenant log's compression thread and the channel feeding it rotated segments.
#[derive(Debug)]
struct Compressor {
    sender: std::sync::mpsc::Sender<PathBuf>,
    handle: std::thread::JoinHandle<Result<(), AuditError>>,
}

impl TenantLog for FileLog {
    fn tenant(&self) -> &str {
        FileLog::tenant(self)
    }
    fn head(&self) -> (u64, Hash) {
        FileLog::head(self)
    }
    fn append(&mut self, record: &mut Record) -> Result<(u64, Hash), AuditError> {
        FileLog::append(self, record)
    }
    fn append_tail(&mut self, kind: Kind, tail: &[u8]) -> Result<(u64, Hash), AuditError> {
        FileLog::append_tail(self, kind, tail)
    }
    fn checkpoint(&mut self) -> Result<(), AuditError> {
        FileLog::checkpoint(self)
    }
    fn sync(&mut self) -> Result<(), AuditError> {
        FileLog::sync(self)
    }
    fn is_dirty(&self) -> bool {
        FileLog::is_dirty(self)
    }
    fn tick(&mut self) -> Result<(), AuditError> {
        FileLog::tick(self)
    }
    fn close(self: Box<Self>) -> Result<(), AuditError> {
        FileLog::close(*self)
    }
}

/// Resumes `state` from the newest earlier segment that holds a chain position.
fn load_previous(state: &mut TailState, segments: &[SegmentFile]) -> Result<(), AuditError> {
    for segment in segments.iter().rev() {
        let bytes = read_segment(segment)?;
        state.scan(&bytes);
        if state.last.is_some() {
            break;
        }
    }
    Ok(())
}

fn remove_temporaries(dir: &Path) -> Result<(), AuditError> {
    let entries = std::fs::read_dir(dir).map_err(|source| AuditError::io(dir, source))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            std::fs::remove_file(entry.path())
                .map_err(|source| AuditError::io(&entry.path(), source))?;
        }
    }
    Ok(())
}

/// A `.jsonl` whose `.jsonl.gz` exists was already compressed (the `.gz` is renamed into place
/// only when complete): delete the plain copy.
fn remove_superseded_plain(dir: &Path, segments: &[SegmentFile]) -> Result<(), AuditError> {
    for segment in segments.iter().filter(|segment| segment.compressed) {
        let plain = dir.join(format!("{}.jsonl", segment_stem(segment.first_seq)));
        if plain.exists() {
            std::fs::remove_file(&plain).map_err(|source| AuditError::io(&plain, source))?;
        }
    }
    Ok(())
}

/// Index of a rotated segment (`seg-….idx`, one JSON object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentIndex {
    /// First record seq (0 if none).
    pub first_seq: u64,
    /// Last record seq.
    pub last_seq: u64,
    /// Record count.
    pub records: u64,
    /// Earliest record time.
    pub min_ts: Option<jiff::Timestamp>,
    /// Latest record time.
    pub max_ts: Option<jiff::Timestamp>,
    /// Sparse time marks: `(ts, seq, 1-based line)` every `index_every` records.
    pub marks: Vec<(jiff::Timestamp, u64, u64)>,
    /// Hashed trace ids: hex of `(first 8 bytes of SHA-256(trace id), line as u32)` pairs,
    /// 24 hex characters each, sorted. Hashes, so the index never holds raw values.
    pub traces: String,
}

impl SegmentIndex {
    /// Builds the index by scanning a segment's plain bytes.
    pub fn build(bytes: &[u8], index_every: u64) -> SegmentIndex {
        let mut builder = IndexBuilder::new(index_every);
        for line in bytes.split(|&b| b == b'\n') {
            builder.line(line);
        }
        builder.finish()
    }

    /// Lines whose trace id hashes like `trace_id` (callers confirm on the record).
    pub fn trace_lines(&self, trace_id: &str) -> Vec<u64> {
        let key = trace_key(trace_id);
        let bytes = self.traces.as_bytes();
        let count = bytes.len() / 24;
        let entry_key = |index: usize| {
            std::str::from_utf8(&bytes[index * 24..index * 24 + 16])
                .ok()
                .and_then(|text| u64::from_str_radix(text, 16).ok())
        };
        let (mut low, mut high) = (0, count);
        while low < high {
            let middle = (low + high) / 2;
            if entry_key(middle).is_some_and(|found| found < key) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let mut lines = Vec::new();
        while low < count && entry_key(low) == Some(key) {
            if let Some(line) = std::str::from_utf8(&bytes[low * 24 + 16..low * 24 + 24])
                .ok()
                .and_then(|text| u64::from_str_radix(text, 16).ok())
            {
                lines.push(line);
            }
            low += 1;
        }
        lines
    }

    /// The index file of a segment.
    pub fn path_for(segment: &SegmentFile) -> PathBuf {
        segment
            .path
            .with_file_name(format!("{}.idx", segment_stem(segment.first_seq)))
    }

    /// Loads a segment's index, if present and readable.
    pub fn load(segment: &SegmentFile) -> Option<SegmentIndex> {
        let bytes = std::fs::read(SegmentIndex::path_for(segment)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

fn trace_key(trace_id: &str) -> u64 {
    let digest = hash_line(trace_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Compresses a rotated plain segment (if asked) and writes its index: `.gz.tmp` → fsync →
/// rename to `.gz` → index → delete the plain file.
/// Builds a segment's index one line at a time (lines without their newline, numbered from 1).
struct IndexBuilder {
    index: SegmentIndex,
    traces: Vec<(u64, u32)>,
    line_number: u64,
    index_every: u64,
}

impl IndexBuilder {
    fn new(index_every: u64) -> IndexBuilder {
        IndexBuilder {
            index: SegmentIndex::default(),
            traces: Vec::new(),
            line_number: 0,
            index_every,
        }
    }

    fn line(&mut self, line: &[u8]) {
        self.line_number += 1;
        if line_kind(line) != Some(LineKind::Record) {
            return;
        }
        let parsed;
        let (seq, ts, trace) = match index_fields(line) {
            Some(fields) => fields,
            None => {
                let Ok(record) = Record::from_line(line) else {
                    return;
                };
                parsed = record;
                (parsed.seq, parsed.ts, parsed.trace_id.as_deref())
            }
        };
        let index = &mut self.index;
        if index.records == 0 {
            index.first_seq = seq;
        }
        index.last_seq = seq;
        if self.index_every > 0 && index.records.is_multiple_of(self.index_every) {
            index.marks.push((ts, seq, self.line_number));
        }
        index.records += 1;
        index.min_ts = Some(index.min_ts.map_or(ts, |min| min.min(ts)));
        index.max_ts = Some(index.max_ts.map_or(ts, |max| max.max(ts)));
        if let Some(trace) = trace {
            self.traces.push((
                trace_key(trace),
                self.line_number.try_into().unwrap_or(u32::MAX),
            ));
        }
    }

    fn finish(mut self) -> SegmentIndex {
        self.traces.sort_unstable();
        let mut text = String::with_capacity(self.traces.len() * 24);
        for (key, line) in self.traces {
            let _ = write!(text, "{key:016x}{line:08x}");
        }
        self.index.traces = text;
        self.index
    }
}

/// Lowers the calling thread to the idle scheduling class: compressing a rotated segment is
/// housekeeping that must not take a busy core from the decisions and the writer. It runs when
/// the core has nothing else to do (and still gets a small share on a saturated one).
fn run_at_idle_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        if let Err(error) = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        ) {
            tracing::debug!(
                ?error,
                "audit: cannot lower the compression thread's priority"
            );
        }
    }
}

/// Compresses a rotated segment (when `compress`) and writes its index, streaming: the segment
/// is read once, a line at a time, into the gzip encoder and the index builder.
fn finish_segment(plain: &Path, compress: bool, index_every: u64) -> Result<(), AuditError> {
    let dir = plain.parent().unwrap_or(Path::new("."));
    let source = File::open(plain).map_err(|source| AuditError::io(plain, source))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, source);
    let gz = {
        let mut gz = plain.as_os_str().to_owned();
        gz.push(".gz");
        PathBuf::from(gz)
    };
    let tmp = {
        let mut tmp = gz.as_os_str().to_owned();
        tmp.push(".tmp");
        PathBuf::from(tmp)
    };
    let mut encoder = if compress {
        let file = File::create(&tmp).map_err(|source| AuditError::io(&tmp, source))?;
        Some(flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 16, file),
            // Fast level: rotated segments are highly repetitive JSON, level 1 still shrinks
            // them about fourfold at a fraction of the CPU of higher levels.
            flate2::Compression::fast(),
        ))
    } else {
        None
    };
    let mut builder = IndexBuilder::new(index_every);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| AuditError::io(plain, source))?;
        if read == 0 {
            break;
        }
        if let Some(encoder) = encoder.as_mut() {
            encoder
                .write_all(&line)
                .map_err(|source| AuditError::io(&tmp, source))?;
        }
        builder.line(line.strip_suffix(b"\n").unwrap_or(&line));
    }
    if let Some(encoder) = encoder {
        let writer = encoder
            .finish()
            .map_err(|source| AuditError::io(&tmp, source))?;
        let file = writer
            .into_inner()
            .map_err(|error| AuditError::io(&tmp, error.into_error()))?;
        file.sync_all()
            .map_err(|source| AuditError::io(&tmp, source))?;
        std::fs::rename(&tmp, &gz).map_err(|source| AuditError::io(&gz, source))?;
        sync_dir(dir)?;
    }
    // The read buffer is no longer needed: give it back before the index is written.
    drop(reader);
    let index = builder.finish();
    let stem = plain
        .file_name()
        .map(|name| name.to_string_lossy().trim_end_matches(".jsonl").to_owned())
        .unwrap_or_default();
    let index_path = dir.join(format!("{stem}.idx"));
    let tmp = dir.join(format!("{stem}.idx.tmp"));
    // Written as it is encoded: a segment's index holds megabytes of trace hashes, and a
    // second copy of them as one JSON string would only raise the peak.
    let file = File::create(&tmp).map_err(|source| AuditError::io(&tmp, source))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
    serde_json::to_writer(&mut out, &index).map_err(|error| {
        if error.is_io() {
            AuditError::io(&tmp, error.into())
        } else {
            AuditError::Malformed {
                reason: error.to_string(),
            }
        }
    })?;
    drop(index);
    out.flush().map_err(|source| AuditError::io(&tmp, source))?;
    drop(out);
    std::fs::rename(&tmp, &index_path).map_err(|source| AuditError::io(&index_path, source))?;
    if compress {
        std::fs::remove_file(plain).map_err(|source| AuditError::io(plain, source))?;
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;

    fn record(index: u64) -> Record {
        Record::decision("t", format!("user-{index}"), "read", "doc", Outcome::Allow)
            .trace_id(format!("trace-{index}"))
            .detail("n", serde_json::json!(index))
            .build()
    }

    /// The writer thread's path (tail encoded by the submitter) writes exactly the bytes of the
    /// whole-record path, so chains and hashes cannot depend on which one was used.
    #[test]
    fn append_tail_writes_the_same_bytes_as_append() {
        let key = Arc::new(SigningKey::from_seed([9; 32]));
        let options = StoreOptions {
            checkpoint_every: 0,
            ..StoreOptions::default()
        };
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut whole = FileLog::open(one.path(), "t", options.clone(), Arc::clone(&key)).unwrap();
        let mut split = FileLog::open(two.path(), "t", options, key).unwrap();
        for index in 0..50 {
            let original = record(index);
            let mut copy = original.clone();
            let expected = whole.append(&mut copy).unwrap();
            let mut tail = Vec::new();
            original.encode_tail(&mut tail);
            assert_eq!(split.append_tail(original.kind, &tail).unwrap(), expected);
        }
        whole.sync().unwrap();
        split.sync().unwrap();
        let name = "seg-00000000000000000001.jsonl";
        let bytes = std::fs::read(one.path().join("t").join(name)).unwrap();
        assert_eq!(
            bytes,
            std::fs::read(two.path().join("t").join(name)).unwrap()
        );
        let index = SegmentIndex::build(&bytes, 16);
        assert_eq!(
            (index.first_seq, index.last_seq, index.records),
            (1, 50, 50)
        );
        assert_eq!(index.marks.len(), 4);
        assert_eq!(index.trace_lines("trace-7"), vec![8]);
    }

    /// Rotated segments are compressed and indexed by streaming them: the `.gz` holds the
    /// segment's exact bytes and the index equals the one built from the whole segment in
    /// memory; several rotations queue on the one compression thread.
    #[test]
    fn streamed_compression_keeps_the_bytes_and_the_index() {
        let key = Arc::new(SigningKey::from_seed([3; 32]));
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            checkpoint_every: 7,
            max_segment_bytes: 4096,
            index_every: 5,
            ..StoreOptions::default()
        };
        let public = key.verifying_key();
        let mut log = FileLog::open(dir.path(), "t", options, key).unwrap();
        for index in 0..200 {
            log.append(&mut record(index)).unwrap();
        }
        log.close().unwrap();
        let folder = dir.path().join("t");
        let mut compressed = 0;
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".jsonl.gz") else {
                continue;
            };
            compressed += 1;
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(File::open(&path).unwrap())
                .read_to_end(&mut plain)
                .unwrap();
            assert!(plain.ends_with(b"\n") && plain.len() >= 4096, "{name}");
            let stored: SegmentIndex =
                serde_json::from_slice(&std::fs::read(folder.join(format!("{stem}.idx"))).unwrap())
                    .unwrap();
            assert_eq!(stored, SegmentIndex::build(&plain, 5), "{name}");
            assert!(stored.records > 0 && !stored.marks.is_empty(), "{name}");
            assert!(!folder.join(format!("{stem}.jsonl")).exists(), "{name}");
        }
        assert!(compressed >= 5, "{compressed} compressed segments");
        let report = crate::verify_dir(dir.path(), "t", &public).unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.records, 200);
    }

    /// The compression thread runs in the idle scheduling class (policy 5, `SCHED_IDLE`).
    #[cfg(target_os = "linux")]
    #[test]
    fn compression_runs_in_the_idle_class() {
        let stat = std::thread::spawn(|| {
            run_at_idle_priority();
            std::fs::read_to_string("/proc/thread-self/stat").unwrap()
        })
        .join()
        .unwrap();
        // Fields after the command name: state is field 3, the policy field 41.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(fields[41 - 3], "5", "{stat}");
    }
}
