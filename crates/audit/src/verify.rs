//! Chain and checkpoint verification, independent of where the lines are stored.
//!
//! Owns the streaming [`Verifier`] (fed canonical lines in order, from files or a database
//! table), the [`Report`] with the FIRST problem and its location, and [`verify_dir`], which
//! reads a tenant directory (plain and gzip segments) with one hashing thread per core and
//! feeds the verifier in order. It never repairs anything.
//!
//! What is and is not detectable: every edit, deletion, insertion or reordering of records that
//! are followed by a later record or a checkpoint breaks the chain or a signature. Records after
//! the last checkpoint are reported as [`ProblemKind::UnsealedTail`] (normal for a running log or
//! after a crash before reopening; a sign of truncation for a closed one, since every clean
//! shutdown and every recovery ends the stream with a checkpoint). A cut exactly after a
//! checkpoint, together with everything that followed, leaves a valid-looking shorter log: only
//! an external anchor (a later checkpoint kept elsewhere, compared with
//! [`Report::last_checkpoint`]) reveals it.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::AuditError;
use crate::keys::{Checkpoint, CheckpointFault, VerifyingKey};
use crate::record::{Hash, LineKind, ZERO_HASH, chain_fields, hash_line, line_kind};
use crate::store::{list_segments, read_segment};

/// Where a line is: a segment file (or table) name and a 1-based line (or row) number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Segment file name, or any source name for other stores.
    pub segment: String,
    /// 1-based line number within the segment.
    pub line: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}:{}", self.segment, self.line)
    }
}

/// What kind of problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A line is not a record or checkpoint (garbled or cut).
    Malformed,
    /// A record's content changed: its hash no longer matches the `prev` of its successor or the
    /// hash in a valid checkpoint.
    EditedRecord,
    /// Sequence numbers skip: records are missing here.
    DeletedRecord,
    /// A record that does not belong to the chain at this place.
    InsertedRecord,
    /// Records are present but out of order.
    Reordered,
    /// A record or checkpoint of another tenant.
    WrongTenant,
    /// A checkpoint claims more records than precede it: records were cut.
    Truncated,
    /// A checkpoint signed by another key, or whose signature does not match its content.
    ForgedCheckpoint,
    /// A checkpoint refers to a seq that is not the one just before it.
    MisplacedCheckpoint,
    /// Records after the last checkpoint (no checkpoint seals them).
    UnsealedTail,
    /// The last line of the last segment is incomplete (a crash during a write, not yet
    /// recovered by reopening the log).
    TornTail,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Kind.
    pub kind: ProblemKind,
    /// Where the first bad line is (for deletions and truncations: where the missing records
    /// should have been).
    pub location: Location,
    /// Sequence number of the first bad (or first missing) record, when known.
    pub seq: Option<u64>,
    /// Explanation for people.
    pub detail: String,
}

/// Result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Record lines seen.
    pub records: u64,
    /// Checkpoint lines seen.
    pub checkpoints: u64,
    /// Segments (sources) seen.
    pub segments: u64,
    /// Highest record seq accepted.
    pub last_seq: u64,
    /// The last valid checkpoint `(seq, hex hash)`, to compare with an external anchor.
    pub last_checkpoint: Option<(u64, String)>,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

impl Report {
    /// True when nothing at all is wrong (including no unsealed tail).
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }

    /// True when the only finding is an unsealed tail or torn last line, which is expected for
    /// a log that is running or crashed and was not reopened yet.
    pub fn is_ok_while_live(&self) -> bool {
        match &self.problem {
            None => true,
            Some(problem) => matches!(
                problem.kind,
                ProblemKind::UnsealedTail | ProblemKind::TornTail
            ),
        }
    }
}

/// One pre-digested line.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Record {
        seq: u64,
        prev: Hash,
        hash: Hash,
        tenant_ok: bool,
    },
    Checkpoint(Box<Checkpoint>),
    Malformed(String),
}

pub(crate) fn digest_line(line: &[u8], tenant: &str) -> Entry {
    match line_kind(line) {
        Some(LineKind::Record) => match chain_fields(line) {
            Some(fields) => Entry::Record {
                seq: fields.seq,
                prev: fields.prev,
                hash: hash_line(line),
                tenant_ok: fields.tenant == tenant,
            },
            None => {
                Entry::Malformed("record line without canonical tenant/seq/prev prefix".to_owned())
            }
        },
        Some(LineKind::Checkpoint) => match Checkpoint::from_line(line) {
            Ok(checkpoint) if checkpoint.encode().as_bytes() == line => {
                Entry::Checkpoint(Box::new(checkpoint))
            }
            Ok(_) => Entry::Malformed("checkpoint line is not in canonical form".to_owned()),
            Err(error) => Entry::Malformed(error.to_string()),
        },
        None => Entry::Malformed("line is neither a record nor a checkpoint".to_owned()),
    }
}

#[derive(Debug, Clone)]
struct Seen {
    seq: u64,
    hash: Hash,
    location: Location,
}

#[derive(Debug, Clone)]
enum Suspect {
    /// seq as expected but prev differs from the previous record's hash.
    PrevMismatch(Seen),
    /// seq larger than expected.
    Gap(Seen),
}

/// Streaming verifier: feed every line of one tenant in stored order, then [`finish`].
///
/// [`finish`]: Verifier::finish
#[derive(Debug)]
pub struct Verifier {
    key: VerifyingKey,
    tenant: String,
    segment: String,
    last_seq: u64,
    last_hash: Hash,
    last_location: Option<Location>,
    last_checkpoint_seq: Option<u64>,
    first_unsealed: Option<(u64, Location)>,
    suspect: Option<Suspect>,
    report: Report,
}

impl Verifier {
    /// A verifier for `tenant`'s chain, checking checkpoints with `key`.
    pub fn new(tenant: &str, key: &VerifyingKey) -> Verifier {
        Verifier {
            key: key.clone(),
            tenant: tenant.to_owned(),
            segment: String::new(),
            last_seq: 0,
            last_hash: ZERO_HASH,
            last_location: None,
            last_checkpoint_seq: None,
            first_unsealed: None,
            suspect: None,
            report: Report::default(),
        }
    }

    /// Starts a new segment (file, table, partition); locations name it.
    pub fn begin_segment(&mut self, name: &str) {
        self.segment = name.to_owned();
        self.report.segments += 1;
    }

    /// Feeds one canonical line (without newline) found at `line` (1-based) of the current
    /// segment.
    pub fn feed_line(&mut self, line: u64, bytes: &[u8]) {
        let entry = digest_line(bytes, &self.tenant);
        self.feed_entry(line, entry);
    }

    /// Reports a torn final line at `line`.
    pub(crate) fn torn_tail(&mut self, line: u64) {
        let location = self.location(line);
        self.fail(
            ProblemKind::TornTail,
            location,
            Some(self.last_seq + 1),
            "the last line is incomplete".to_owned(),
        );
    }

    fn location(&self, line: u64) -> Location {
        Location {
            segment: self.segment.clone(),
            line,
        }
    }

    fn fail(&mut self, kind: ProblemKind, location: Location, seq: Option<u64>, detail: String) {
        if self.report.problem.is_none() {
            self.report.problem = Some(Problem {
                kind,
                location,
                seq,
                detail,
            });
        }
    }

    pub(crate) fn feed_entry(&mut self, line: u64, entry: Entry) {
        match &entry {
            Entry::Record { .. } => self.report.records += 1,
            Entry::Checkpoint(_) => self.report.checkpoints += 1,
            Entry::Malformed(_) => {}
        }
        if self.report.problem.is_some() {
            return;
        }
        if let Some(suspect) = self.suspect.take() {
            self.resolve(suspect, Some((line, &entry)));
            return;
        }
        match entry {
            Entry::Malformed(reason) => {
                let location = self.location(line);
                self.fail(ProblemKind::Malformed, location, None, reason);
            }
            Entry::Record {
                seq,
                prev,
                hash,
                tenant_ok,
            } => {
                let seen = Seen {
                    seq,
                    hash,
                    location: self.location(line),
                };
                if !tenant_ok {
                    self.fail(
                        ProblemKind::WrongTenant,
                        seen.location,
                        Some(seq),
                        format!("record of another tenant (expected {})", self.tenant),
                    );
                } else if seq == self.last_seq + 1 && prev == self.last_hash {
                    self.accept(seen);
                } else if seq == self.last_seq + 1 {
                    self.suspect = Some(Suspect::PrevMismatch(seen));
                } else if seq > self.last_seq + 1 {
                    self.suspect = Some(Suspect::Gap(seen));
                } else {
                    let detail = format!("seq {seq} appears after seq {}", self.last_seq);
                    self.fail(
                        ProblemKind::InsertedRecord,
                        seen.location,
                        Some(seq),
                        detail,
                    );
                }
            }
            Entry::Checkpoint(checkpoint) => self.checkpoint(line, &checkpoint),
        }
    }

    fn accept(&mut self, seen: Seen) {
        self.last_seq = seen.seq;
        self.last_hash = seen.hash;
        if self.first_unsealed.is_none() {
            self.first_unsealed = Some((seen.seq, seen.location.clone()));
        }
        self.last_location = Some(seen.location);
        self.report.last_seq = seen.seq;
    }

    fn checkpoint(&mut self, line: u64, checkpoint: &Checkpoint) {
        let location = self.location(line);
        if checkpoint.tenant != self.tenant {
            self.fail(
                ProblemKind::WrongTenant,
                location,
                None,
                "checkpoint of another tenant".to_owned(),
            );
            return;
        }
        if let Err(fault) = checkpoint.check(&self.key) {
            let detail = match fault {
                CheckpointFault::WrongKey => format!(
                    "checkpoint for seq {} is signed by key {}, not by {}",
                    checkpoint.seq,
                    checkpoint.key_id,
                    self.key.key_id()
                ),
                CheckpointFault::BadSignature => {
                    format!(
                        "checkpoint for seq {} has a signature that does not match its content",
                        checkpoint.seq
                    )
                }
            };
            self.fail(
                ProblemKind::ForgedCheckpoint,
                location,
                Some(checkpoint.seq),
                detail,
            );
            return;
        }
        let Some(hash) = checkpoint.hash_bytes() else {
            self.fail(
                ProblemKind::Malformed,
                location,
                Some(checkpoint.seq),
                "checkpoint hash is not hex".to_owned(),
            );
            return;
        };
        if checkpoint.seq > self.last_seq {
            let detail = format!(
                "checkpoint claims seq {} but the chain ends at seq {}: records {}..={} are missing",
                checkpoint.seq,
                self.last_seq,
                self.last_seq + 1,
                checkpoint.seq
            );
            self.fail(
                ProblemKind::Truncated,
                location,
                Some(self.last_seq + 1),
                detail,
            );
        } else if checkpoint.seq < self.last_seq {
            let detail = format!(
                "checkpoint for seq {} found after seq {}",
                checkpoint.seq, self.last_seq
            );
            self.fail(
                ProblemKind::MisplacedCheckpoint,
                location,
                Some(checkpoint.seq),
                detail,
            );
        } else if hash != self.last_hash {
            // The signature is valid, so the checkpoint is authentic: the record changed.
            let record_location = self.last_location.clone().unwrap_or(location);
            let detail = format!(
                "record {} does not match the hash in the signed checkpoint",
                checkpoint.seq
            );
            self.fail(
                ProblemKind::EditedRecord,
                record_location,
                Some(checkpoint.seq),
                detail,
            );
        } else {
            self.last_checkpoint_seq = Some(checkpoint.seq);
            self.report.last_checkpoint = Some((checkpoint.seq, checkpoint.hash.clone()));
            self.first_unsealed = None;
        }
    }

    /// Decides what a suspicious record was, using the line after it (if any).
    fn resolve(&mut self, suspect: Suspect, next: Option<(u64, &Entry)>) {
        let next_record = match next {
            Some((_, Entry::Record { seq, prev, .. })) => Some((*seq, *prev)),
            _ => None,
        };
        let next_checkpoint = match next {
            Some((_, Entry::Checkpoint(checkpoint))) if checkpoint.check(&self.key).is_ok() => {
                checkpoint.hash_bytes().map(|hash| (checkpoint.seq, hash))
            }
            _ => None,
        };
        // Does the following line vouch for the suspect record as it is?
        let vouched = |seen: &Seen| {
            next_record == Some((seen.seq + 1, seen.hash))
                || next_checkpoint == Some((seen.seq, seen.hash))
        };
        match suspect {
            Suspect::PrevMismatch(seen) => {
                if next_record.is_some_and(|(seq, prev)| seq == seen.seq && prev == self.last_hash)
                {
                    let detail = format!(
                        "record claiming seq {} does not belong to the chain",
                        seen.seq
                    );
                    self.fail(
                        ProblemKind::InsertedRecord,
                        seen.location,
                        Some(seen.seq),
                        detail,
                    );
                } else if vouched(&seen) && self.last_seq > 0 {
                    let location = self.last_location.clone().unwrap_or(seen.location);
                    let detail = format!(
                        "record {} was changed: its hash differs from the prev stored in record {}",
                        self.last_seq, seen.seq
                    );
                    self.fail(
                        ProblemKind::EditedRecord,
                        location,
                        Some(self.last_seq),
                        detail,
                    );
                } else {
                    let detail = format!(
                        "record {} does not chain to record {} (its prev field, or the record before it, was changed)",
                        seen.seq, self.last_seq
                    );
                    self.fail(
                        ProblemKind::EditedRecord,
                        seen.location,
                        Some(seen.seq),
                        detail,
                    );
                }
            }
            Suspect::Gap(seen) => {
                let expected = self.last_seq + 1;
                let next_is_expected = next_record.is_some_and(|(seq, _)| seq == expected);
                if next_is_expected && next_record.is_some_and(|(seq, _)| seen.seq == seq + 1) {
                    let detail = format!("record {} stands before record {expected}", seen.seq);
                    self.fail(
                        ProblemKind::Reordered,
                        seen.location,
                        Some(seen.seq),
                        detail,
                    );
                } else if next_is_expected {
                    let detail = format!(
                        "record claiming seq {} stands where seq {expected} belongs",
                        seen.seq
                    );
                    self.fail(
                        ProblemKind::InsertedRecord,
                        seen.location,
                        Some(seen.seq),
                        detail,
                    );
                } else {
                    let detail = format!("records {expected}..={} are missing", seen.seq - 1);
                    self.fail(
                        ProblemKind::DeletedRecord,
                        seen.location,
                        Some(expected),
                        detail,
                    );
                }
            }
        }
    }

    /// Ends verification and returns the report.
    pub fn finish(mut self) -> Report {
        if self.report.problem.is_none()
            && let Some(suspect) = self.suspect.take()
        {
            self.resolve(suspect, None);
        }
        if self.report.problem.is_none()
            && let Some((seq, location)) = self.first_unsealed.take()
        {
            let detail = format!(
                "records {seq}..={} follow the last checkpoint ({}); expected while the log runs, \
                     a sign of truncation for a closed log",
                self.last_seq,
                self.last_checkpoint_seq
                    .map_or("none".to_owned(), |seq| seq.to_string())
            );
            self.fail(ProblemKind::UnsealedTail, location, Some(seq), detail);
        }
        self.report
    }
}

/// Digests of one segment, computed on a worker thread.
struct SegmentDigest {
    entries: Vec<(u64, Entry)>,
    torn_line: Option<u64>,
}

/// Verifies `tenant`'s directory under `root`: all segments in order, compressed or not.
pub fn verify_dir(root: &Path, tenant: &str, key: &VerifyingKey) -> Result<Report, AuditError> {
    crate::validate_tenant(tenant)?;
    let dir = root.join(tenant);
    let segments = list_segments(&dir)?;
    let count = segments.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count.max(1));
    let next = AtomicUsize::new(0);
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..count).map(|_| std::sync::mpsc::sync_channel(1)).unzip();
    let mut verifier = Verifier::new(tenant, key);
    std::thread::scope(|scope| -> Result<(), AuditError> {
        for _ in 0..threads {
            let senders = &senders;
            let segments = &segments;
            let next = &next;
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(segment) = segments.get(index) else {
                        break;
                    };
                    let result = read_segment(segment).map(|bytes| digest_segment(&bytes, tenant));
                    if senders[index].send(result).is_err() {
                        break;
                    }
                }
            });
        }
        for (index, receiver) in receivers.into_iter().enumerate() {
            let digest = receiver.recv().map_err(|_| AuditError::Closed {
                reason: "verification worker stopped".to_owned(),
            })??;
            verifier.begin_segment(&segments[index].name);
            for (line, entry) in digest.entries {
                verifier.feed_entry(line, entry);
            }
            if let Some(line) = digest.torn_line {
                if index + 1 == count {
                    verifier.torn_tail(line);
                } else {
                    verifier.feed_entry(line, Entry::Malformed("line without newline".to_owned()));
                }
            }
        }
        Ok(())
    })?;
    Ok(verifier.finish())
}

fn digest_segment(bytes: &[u8], tenant: &str) -> SegmentDigest {
    let mut entries = Vec::with_capacity(bytes.len() / 400 + 1);
    let mut torn_line = None;
    let mut line_number = 0u64;
    let mut rest = bytes;
    while !rest.is_empty() {
        line_number += 1;
        match memchr::memchr(b'\n', rest) {
            Some(end) => {
                entries.push((line_number, digest_line(&rest[..end], tenant)));
                rest = &rest[end + 1..];
            }
            None => {
                torn_line = Some(line_number);
                break;
            }
        }
    }
    SegmentDigest { entries, torn_line }
}
