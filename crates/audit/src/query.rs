//! Reading a tenant's log: filtered, paginated queries, export as JSON lines, tail.
//!
//! Owns the [`Filter`], [`Page`] and cursor format. Uses segment indexes (seq and time ranges,
//! hashed trace ids) to skip whole segments and lines, and reads plain and gzip segments alike.
//! Read-only: it never writes to the log directory. Permission checks on who may query are the
//! caller's job (the admin API runs them before calling in here).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::record::{Kind, LineKind, Outcome, Record, line_kind};
use crate::store::{SegmentFile, SegmentIndex, list_segments, read_segment};

/// Which records to return. Empty fields match everything; `from` is inclusive, `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    /// Earliest time (inclusive).
    pub from: Option<jiff::Timestamp>,
    /// Latest time (exclusive).
    pub to: Option<jiff::Timestamp>,
    /// Exact (masked) actor.
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Outcome.
    pub outcome: Option<Outcome>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Record kind.
    pub kind: Option<Kind>,
}

impl Filter {
    /// True if the record passes.
    pub fn matches(&self, record: &Record) -> bool {
        self.from.is_none_or(|from| record.ts >= from)
            && self.to.is_none_or(|to| record.ts < to)
            && self
                .actor
                .as_ref()
                .is_none_or(|actor| &record.actor == actor)
            && self
                .action
                .as_ref()
                .is_none_or(|action| &record.action == action)
            && self.outcome.is_none_or(|outcome| record.outcome == outcome)
            && self
                .trace_id
                .as_ref()
                .is_none_or(|trace| record.trace_id.as_ref() == Some(trace))
            && self.kind.is_none_or(|kind| record.kind == kind)
    }

    fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Cheap byte test before parsing: a line that cannot match is skipped unparsed.
    fn may_match(&self, line: &[u8]) -> bool {
        let contains = |needle: &str| {
            let needle = needle.as_bytes();
            line.windows(needle.len()).any(|window| window == needle)
        };
        let field = |name: &str, value: &str| {
            let mut needle = format!("\"{name}\":");
            crate::record::write_str(&mut needle, value);
            contains(&needle)
        };
        self.actor
            .as_ref()
            .is_none_or(|actor| field("actor", actor))
            && self
                .action
                .as_ref()
                .is_none_or(|action| field("action", action))
            && self
                .trace_id
                .as_ref()
                .is_none_or(|trace| field("trace_id", trace))
            && self.kind.is_none_or(|kind| {
                line.starts_with(format!("{{\"kind\":\"{}\"", kind.as_str()).as_bytes())
            })
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// Matching records in chain order.
    pub records: Vec<Record>,
    /// Pass back to get the next page; `None` when there is nothing after.
    pub next_cursor: Option<String>,
}

fn parse_cursor(cursor: Option<&str>) -> Result<u64, AuditError> {
    match cursor {
        None | Some("") => Ok(0),
        Some(text) => text
            .strip_prefix("after:")
            .and_then(|seq| seq.parse().ok())
            .ok_or_else(|| AuditError::InvalidCursor {
                cursor: text.to_owned(),
            }),
    }
}

/// Whether a segment can hold matches, by its index; segments without an index are scanned.
fn segment_candidate(index: Option<&SegmentIndex>, filter: &Filter, after: u64) -> bool {
    let Some(index) = index else { return true };
    if index.records == 0 || index.last_seq <= after {
        return false;
    }
    if let (Some(from), Some(max)) = (filter.from, index.max_ts)
        && max < from
    {
        return false;
    }
    if let (Some(to), Some(min)) = (filter.to, index.min_ts)
        && min >= to
    {
        return false;
    }
    true
}

/// Called per matching line; returns false to stop.
type Visit<'a> = dyn FnMut(&[u8], Record) -> Result<bool, AuditError> + 'a;

/// Visits matching record lines of one segment in order; stops when `visit` returns false.
fn scan_segment(
    segment: &SegmentFile,
    index: Option<&SegmentIndex>,
    filter: &Filter,
    after: u64,
    visit: &mut Visit<'_>,
) -> Result<bool, AuditError> {
    let wanted_lines = match (index, &filter.trace_id) {
        (Some(index), Some(trace)) => {
            let lines = index.trace_lines(trace);
            if lines.is_empty() {
                return Ok(true);
            }
            Some(lines)
        }
        _ => None,
    };
    // Start at the last time mark at or before `from` (lines before it are older).
    let start_line = match (index, filter.from) {
        (Some(index), Some(from)) => index
            .marks
            .iter()
            .take_while(|(ts, _, _)| *ts <= from)
            .last()
            .map_or(1, |(_, _, line)| *line),
        _ => 1,
    };
    let bytes = read_segment(segment)?;
    let mut number = 0u64;
    for line in bytes.split(|&b| b == b'\n') {
        number += 1;
        if number < start_line {
            continue;
        }
        if let Some(lines) = &wanted_lines
            && lines.binary_search(&number).is_err()
        {
            continue;
        }
        if line_kind(line) != Some(LineKind::Record) || !filter.may_match(line) {
            continue;
        }
        if let Some(fields) = crate::record::chain_fields(line)
            && fields.seq <= after
        {
            continue;
        }
        let Ok(record) = Record::from_line(line) else {
            continue;
        };
        if record.seq <= after || !filter.matches(&record) {
            continue;
        }
        if !visit(line, record)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Returns up to `limit` records of `tenant` matching `filter`, after `cursor`.
pub fn query(
    root: &Path,
    tenant: &str,
    filter: &Filter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page, AuditError> {
    crate::validate_tenant(tenant)?;
    let after = parse_cursor(cursor)?;
    let limit = limit.max(1);
    let mut records: Vec<Record> = Vec::new();
    let mut more = false;
    for segment in list_segments(&root.join(tenant))? {
        let index = if segment.compressed {
            SegmentIndex::load(&segment)
        } else {
            None
        };
        if !segment_candidate(index.as_ref(), filter, after) {
            continue;
        }
        let finished = scan_segment(&segment, index.as_ref(), filter, after, &mut |_, record| {
            if records.len() == limit {
                more = true;
                return Ok(false);
            }
            records.push(record);
            Ok(true)
        })?;
        if !finished {
            break;
        }
    }
    let next_cursor = if more {
        records.last().map(|record| format!("after:{}", record.seq))
    } else {
        None
    };
    Ok(Page {
        records,
        next_cursor,
    })
}

/// Writes `tenant`'s matching records as JSON lines (their canonical stored bytes) to `out`;
/// with an empty filter the checkpoints are included too, so the export verifies with
/// [`Verifier`](crate::Verifier). Returns the number of records written.
pub fn export(
    root: &Path,
    tenant: &str,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    crate::validate_tenant(tenant)?;
    let mut written = 0u64;
    let to_io = |source| AuditError::Io {
        path: "<export output>".into(),
        source,
    };
    for segment in list_segments(&root.join(tenant))? {
        if filter.is_empty() {
            let bytes = read_segment(&segment)?;
            for line in bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
                if line.last().is_some() {
                    out.write_all(line).map_err(to_io)?;
                    out.write_all(b"\n").map_err(to_io)?;
                    if line_kind(line) == Some(LineKind::Record) {
                        written += 1;
                    }
                }
            }
            continue;
        }
        let index = if segment.compressed {
            SegmentIndex::load(&segment)
        } else {
            None
        };
        if !segment_candidate(index.as_ref(), filter, 0) {
            continue;
        }
        scan_segment(&segment, index.as_ref(), filter, 0, &mut |line, _| {
            out.write_all(line).map_err(to_io)?;
            out.write_all(b"\n").map_err(to_io)?;
            written += 1;
            Ok(true)
        })?;
    }
    Ok(written)
}

/// The last `n` records of `tenant`, oldest first.
pub fn tail(root: &Path, tenant: &str, n: usize) -> Result<Vec<Record>, AuditError> {
    crate::validate_tenant(tenant)?;
    let mut collected: Vec<Record> = Vec::new();
    for segment in list_segments(&root.join(tenant))?.iter().rev() {
        if collected.len() >= n {
            break;
        }
        let bytes = read_segment(segment)?;
        let mut found: Vec<Record> = bytes
            .split(|&b| b == b'\n')
            .rev()
            .filter(|line| line_kind(line) == Some(LineKind::Record))
            .take(n - collected.len())
            .filter_map(|line| Record::from_line(line).ok())
            .collect();
        found.reverse();
        found.append(&mut collected);
        collected = found;
    }
    Ok(collected)
}
