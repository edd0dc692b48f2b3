//! The per-tenant chain every log keeps, wherever its lines go.
//!
//! Owns `Chain` (assigning `seq`/`prev`, encoding record lines, signing checkpoints and
//! deciding when one is due), the resumption of a chain from the lines already stored
//! (`TailState`), and the [`TenantLog`] trait the writer thread drives. Files
//! ([`FileLog`](crate::FileLog)) and line streams ([`StreamLog`](crate::StreamLog)) both build
//! on it, so the same records give byte-identical lines in both. It must not do I/O.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::AuditError;
use crate::keys::{Checkpoint, SigningKey};
use crate::record::{
    Hash, Kind, LineKind, Record, ZERO_HASH, chain_fields, encode_head, hash_line, line_kind,
    now_micros,
};
use crate::store::StoreOptions;

/// One tenant's log as the writer thread uses it: records are appended in write order (the log
/// assigns `seq` and `prev`), made durable by [`sync`](TenantLog::sync), sealed by checkpoints.
pub trait TenantLog: Send {
    /// The tenant.
    fn tenant(&self) -> &str;

    /// Last assigned seq and hash.
    fn head(&self) -> (u64, Hash);

    /// Assigns `seq` and `prev`, encodes and buffers the record. Not durable until `sync`.
    fn append(&mut self, record: &mut Record) -> Result<(u64, Hash), AuditError>;

    /// Appends a record given as its chain-independent tail (everything after the chain
    /// fields, as `Record::encode_tail` writes it, which the writer's submitters do): the
    /// line is byte for byte what [`append`](TenantLog::append) writes for the same record.
    fn append_tail(&mut self, kind: Kind, tail: &[u8]) -> Result<(u64, Hash), AuditError>;

    /// Appends a signed checkpoint for the current head.
    fn checkpoint(&mut self) -> Result<(), AuditError>;

    /// Makes everything appended so far durable.
    fn sync(&mut self) -> Result<(), AuditError>;

    /// True if lines were appended since the last sync.
    fn is_dirty(&self) -> bool;

    /// Time-driven work (checkpoints by age, rotation).
    fn tick(&mut self) -> Result<(), AuditError>;

    /// Clean shutdown: a final checkpoint unless the stored chain already ends with one (an
    /// empty log that never had one gets one too), then sync.
    fn close(self: Box<Self>) -> Result<(), AuditError>;
}

/// A tenant's chain state: the head, the checkpoint schedule and the signing key.
#[derive(Debug)]
pub(crate) struct Chain {
    tenant: String,
    key: Arc<SigningKey>,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    last_seq: u64,
    last_hash: Hash,
    unsealed: u64,
    unsealed_since: Instant,
    /// The chain ends with a checkpoint for its head (written or buffered): a clean close has
    /// nothing to seal. Kept apart from `unsealed` so that reopening a sealed log, even an empty
    /// one, and closing it again adds no checkpoint.
    sealed: bool,
}

impl Chain {
    /// A chain resuming where the stored lines `tail` end (nothing stored: an empty chain).
    pub(crate) fn new(
        tenant: &str,
        options: &StoreOptions,
        key: Arc<SigningKey>,
        tail: &TailState,
    ) -> Chain {
        let (last_seq, last_hash) = tail.last.unwrap_or((0, ZERO_HASH));
        Chain {
            tenant: tenant.to_owned(),
            key,
            checkpoint_every: options.checkpoint_every,
            checkpoint_interval: options.checkpoint_interval,
            last_seq,
            last_hash,
            unsealed: 0,
            unsealed_since: Instant::now(),
            sealed: tail.is_sealed(),
        }
    }

    pub(crate) fn tenant(&self) -> &str {
        &self.tenant
    }

    pub(crate) fn head(&self) -> (u64, Hash) {
        (self.last_seq, self.last_hash)
    }

    /// Encodes the next record line (without newline) at the end of `out`: the chain prefix for
    /// the next seq, then what `tail` writes. Returns its seq and hash.
    pub(crate) fn encode_record(
        &mut self,
        out: &mut Vec<u8>,
        kind: Kind,
        tail: impl FnOnce(&mut Vec<u8>),
    ) -> (u64, Hash) {
        let seq = self.last_seq + 1;
        let start = out.len();
        encode_head(out, kind, &self.tenant, seq, &self.last_hash);
        tail(out);
        let hash = hash_line(&out[start..]);
        self.last_seq = seq;
        self.last_hash = hash;
        if self.unsealed == 0 {
            self.unsealed_since = Instant::now();
        }
        self.unsealed += 1;
        self.sealed = false;
        (seq, hash)
    }

    /// Sets the chain fields of a whole record to the next place in the chain.
    pub(crate) fn place(&self, record: &mut Record) {
        record.seq = self.last_seq + 1;
        record.prev = self.last_hash;
        record.tenant.clone_from(&self.tenant);
    }

    /// A signed checkpoint for the head; the chain counts as sealed from here.
    pub(crate) fn checkpoint(&mut self) -> (Checkpoint, jiff::Timestamp) {
        let ts = now_micros();
        let checkpoint =
            Checkpoint::sign(&self.key, &self.tenant, self.last_seq, &self.last_hash, ts);
        self.unsealed = 0;
        self.sealed = true;
        (checkpoint, ts)
    }

    /// Whether the record count calls for a checkpoint now.
    pub(crate) fn checkpoint_due_by_count(&self) -> bool {
        self.checkpoint_every > 0 && self.unsealed >= self.checkpoint_every
    }

    /// Whether records have waited for a checkpoint for `checkpoint_interval`.
    pub(crate) fn checkpoint_due_by_time(&self) -> bool {
        self.unsealed > 0 && self.unsealed_since.elapsed() >= self.checkpoint_interval
    }

    /// Whether a clean close must write a checkpoint: the chain does not end with one, i.e.
    /// records follow the last checkpoint, or nothing was ever written (an empty log still ends
    /// with a signed statement that it is empty).
    pub(crate) fn needs_final_checkpoint(&self) -> bool {
        !self.sealed
    }
}

/// Where a stored chain ends, read from its lines.
#[derive(Debug, Default)]
pub(crate) struct TailState {
    /// The last record's seq and hash (from a record, or from a checkpoint covering it).
    pub(crate) last: Option<(u64, Hash)>,
    /// Whether the last line is a record, i.e. the stored chain ends unsealed (after a crash);
    /// opening it then writes a checkpoint.
    pub(crate) last_line_is_record: bool,
}

impl TailState {
    /// Whether the stored lines end with a checkpoint (which covers the head): nothing to seal.
    pub(crate) fn is_sealed(&self) -> bool {
        self.last.is_some() && !self.last_line_is_record
    }

    /// Whether the stored lines end with records no checkpoint covers: what a crash leaves,
    /// and what opening the log seals.
    pub(crate) fn is_unsealed(&self) -> bool {
        self.last_line_is_record && self.last.is_some_and(|(seq, _)| seq > 0)
    }

    /// Scans complete lines (newline-separated); returns how many record lines there were.
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> u64 {
        let mut records = 0;
        for line in bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            if self.scan_line(line) == Some(LineKind::Record) {
                records += 1;
            }
        }
        records
    }

    /// Takes one line into account; returns its kind if it was understood.
    pub(crate) fn scan_line(&mut self, line: &[u8]) -> Option<LineKind> {
        match line_kind(line) {
            Some(LineKind::Record) => {
                let fields = chain_fields(line)?;
                self.last = Some((fields.seq, hash_line(line)));
                self.last_line_is_record = true;
                Some(LineKind::Record)
            }
            Some(LineKind::Checkpoint) => {
                if let Ok(checkpoint) = Checkpoint::from_line(line)
                    && let Some(hash) = checkpoint.hash_bytes()
                    && self.last.is_none_or(|(seq, _)| checkpoint.seq >= seq)
                {
                    self.last = Some((checkpoint.seq, hash));
                }
                self.last_line_is_record = false;
                Some(LineKind::Checkpoint)
            }
            None => None,
        }
    }
}
