//! A tenant's chain kept as a stream of numbered lines in some other store (a database table).
//!
//! Owns [`StreamLog`], the [`LineSink`] trait it writes through and the [`StreamLine`] it hands
//! over: the canonical line (byte for byte what [`FileLog`](crate::FileLog) writes for the same
//! records), its position in the tenant's stream and copies of a few fields for lookups.
//! Chaining and checkpoints are the shared `Chain`'s; this module only numbers lines, buffers
//! them and hands each batch to the sink at [`sync`](StreamLog::sync) (one call per group
//! commit). It never reads the stream except its last line, to resume the chain on open.

use std::sync::Arc;

use serde::Serialize;

use crate::AuditError;
use crate::chain::{Chain, TailState, TenantLog};
use crate::keys::SigningKey;
use crate::record::{Hash, Kind, Record, lookup_fields};
use crate::store::StoreOptions;

/// Hand lines to the sink early when this many are buffered (a sync still makes them durable
/// together with the rest); bounds the memory of one batch under a burst.
const MAX_BUFFERED_LINES: usize = 8192;

/// One line of a tenant's stream, as a sink stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamLine {
    /// Position in the tenant's stream, from 1, without gaps (records and checkpoints alike).
    pub position: u64,
    /// The record's seq; for a checkpoint, the seq it covers.
    pub seq: u64,
    /// `decision`, `change` or `checkpoint`.
    pub kind: &'static str,
    /// Time of the record (or of the checkpoint), microseconds since the Unix epoch.
    pub ts_us: i64,
    /// Actor as recorded (masked); empty for a checkpoint.
    pub actor: String,
    /// Action; empty for a checkpoint.
    pub action: String,
    /// Outcome; empty for a checkpoint.
    pub outcome: String,
    /// Trace id; empty when the record has none, and for a checkpoint.
    pub trace_id: String,
    /// The canonical line, without newline.
    pub line: String,
}

/// Where a [`StreamLog`] puts its lines: one tenant's stream in some store.
pub trait LineSink: Send {
    /// Stores `lines` (their positions continue the stream) all or nothing. When it returns
    /// `Ok`, the lines are durable. A position that is already taken (another writer) must fail.
    fn append(&mut self, lines: &[StreamLine]) -> Result<(), AuditError>;

    /// The last stored line: its position and canonical bytes; `None` for an empty stream.
    fn last(&mut self) -> Result<Option<(u64, Vec<u8>)>, AuditError>;
}

/// One tenant's chain written to a [`LineSink`]. Single writer.
pub struct StreamLog {
    chain: Chain,
    sink: Box<dyn LineSink>,
    next_position: u64,
    pending: Vec<StreamLine>,
}

impl std::fmt::Debug for StreamLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StreamLog")
            .field("tenant", &self.chain.tenant())
            .field("next_position", &self.next_position)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl StreamLog {
    /// Opens `tenant`'s stream in `sink`, resuming the chain after its last line. A stream
    /// that ends with a record (the writer stopped without sealing it) is sealed with a
    /// checkpoint at once, as [`FileLog::open`](crate::FileLog::open) does after a crash.
    /// A last line that is neither a record nor a checkpoint is refused: the chain cannot be
    /// resumed from it (the stream was damaged; verify it).
    pub fn open(
        tenant: &str,
        options: StoreOptions,
        key: Arc<SigningKey>,
        mut sink: Box<dyn LineSink>,
    ) -> Result<StreamLog, AuditError> {
        crate::validate_tenant(tenant)?;
        let mut state = TailState::default();
        let mut next_position = 1;
        if let Some((position, line)) = sink.last()? {
            if state.scan_line(&line).is_none() || state.last.is_none() {
                return Err(AuditError::Malformed {
                    reason: format!(
                        "the audit stream of tenant {tenant} ends with a line (position {position}) that is neither a record nor a checkpoint; the chain cannot be resumed"
                    ),
                });
            }
            next_position = position + 1;
        }
        let chain = Chain::new(tenant, &options, key, &state);
        let mut log = StreamLog {
            chain,
            sink,
            next_position,
            pending: Vec::new(),
        };
        if state.is_unsealed() {
            TenantLog::checkpoint(&mut log)?;
            TenantLog::sync(&mut log)?;
            tracing::warn!(
                tenant,
                seq = log.chain.head().0,
                "audit: sealed the stream a crash left unsealed with a checkpoint"
            );
        }
        Ok(log)
    }

    /// Position the next line will get.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    fn push_record(
        &mut self,
        kind: Kind,
        record: Option<&Record>,
        tail: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(u64, Hash), AuditError> {
        let mut bytes = Vec::with_capacity(512);
        let (seq, hash) = self.chain.encode_record(&mut bytes, kind, tail);
        let line = String::from_utf8(bytes).map_err(|error| AuditError::Malformed {
            reason: format!("record line is not UTF-8: {error}"),
        })?;
        let mut stream_line = StreamLine {
            position: self.next_position,
            seq,
            kind: kind.as_str(),
            ts_us: 0,
            actor: String::new(),
            action: String::new(),
            outcome: String::new(),
            trace_id: String::new(),
            line,
        };
        match record {
            Some(record) => fill_from_record(&mut stream_line, record),
            None => match lookup_fields(stream_line.line.as_bytes()) {
                Some(fields) => {
                    stream_line.ts_us = fields.ts.as_microsecond();
                    stream_line.actor = fields.actor.to_owned();
                    stream_line.action = fields.action.to_owned();
                    stream_line.outcome = fields.outcome.to_owned();
                    stream_line.trace_id = fields.trace_id.unwrap_or_default().to_owned();
                }
                // An escape on the way: the full parser unescapes.
                None => {
                    let record = Record::from_line(stream_line.line.as_bytes())?;
                    fill_from_record(&mut stream_line, &record);
                }
            },
        }
        self.next_position += 1;
        self.pending.push(stream_line);
        if self.chain.checkpoint_due_by_count() {
            TenantLog::checkpoint(self)?;
        }
        if self.pending.len() >= MAX_BUFFERED_LINES {
            self.write_pending()?;
        }
        Ok((seq, hash))
    }

    fn write_pending(&mut self) -> Result<(), AuditError> {
        if !self.pending.is_empty() {
            self.sink.append(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

fn fill_from_record(line: &mut StreamLine, record: &Record) {
    line.ts_us = record.ts.as_microsecond();
    line.actor.clone_from(&record.actor);
    line.action.clone_from(&record.action);
    line.outcome = record.outcome.as_str().to_owned();
    line.trace_id = record.trace_id.clone().unwrap_or_default();
}

impl TenantLog for StreamLog {
    fn tenant(&self) -> &str {
        self.chain.tenant()
    }

    fn head(&self) -> (u64, Hash) {
        self.chain.head()
    }

    fn append(&mut self, record: &mut Record) -> Result<(u64, Hash), AuditError> {
        self.chain.place(record);
        let record: &Record = record;
        self.push_record(record.kind, Some(record), |out| record.encode_tail(out))
    }

    fn append_tail(&mut self, kind: Kind, tail: &[u8]) -> Result<(u64, Hash), AuditError> {
        self.push_record(kind, None, |out| out.extend_from_slice(tail))
    }

    fn checkpoint(&mut self) -> Result<(), AuditError> {
        let (checkpoint, ts) = self.chain.checkpoint();
        self.pending.push(StreamLine {
            position: self.next_position,
            seq: checkpoint.seq,
            kind: "checkpoint",
            ts_us: ts.as_microsecond(),
            actor: String::new(),
            action: String::new(),
            outcome: String::new(),
            trace_id: String::new(),
            line: checkpoint.encode(),
        });
        self.next_position += 1;
        Ok(())
    }

    /// Hands the buffered lines to the sink in one call; durable when it returns.
    fn sync(&mut self) -> Result<(), AuditError> {
        self.write_pending()
    }

    fn is_dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    fn tick(&mut self) -> Result<(), AuditError> {
        if self.chain.checkpoint_due_by_time() {
            TenantLog::checkpoint(self)?;
        }
        Ok(())
    }

    fn close(mut self: Box<Self>) -> Result<(), AuditError> {
        if self.chain.needs_final_checkpoint() {
            TenantLog::checkpoint(&mut *self)?;
        }
        TenantLog::sync(&mut *self)
    }
}
