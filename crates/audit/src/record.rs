//! Audit records and their canonical encoding.
//!
//! Owns the [`Record`] type, its builder, the canonical byte encoding that is both the on-disk
//! line and the input of the record hash, and a fast reader of the chain fields of a line.
//! It must not know about files, keys or masking: those live in their own modules.
//!
//! # Canonical encoding
//! One JSON object on one line, UTF-8, no insignificant whitespace, fields in this fixed order:
//! `kind, tenant, seq, prev, ts, id, trace_id, actor, edge, action, resource, outcome,
//! statements, failed_factors, source, user_agent, [request_id,] policy_revision, data_revision,
//! details`. Absent optional fields are `null`, except `request_id`, which is left out when
//! absent (it came later: records written before it existed keep their exact bytes and hashes); `ts` is RFC 3339 UTC with exactly six fractional digits;
//! strings escape only `"`, `\` and control characters (`\n \r \t \b \f`, others `\u00XX`,
//! lower-case hex); object keys inside `details` are sorted by their UTF-8 bytes at every depth;
//! numbers use serde_json's shortest round-trip form. The record hash is SHA-256 of these bytes
//! (without the trailing newline).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuditError;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The `prev` of the first record of every tenant.
pub const ZERO_HASH: Hash = [0; 32];

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An authorization decision.
    Decision,
    /// An administrative change (bundle, tenant, grant, key...).
    Change,
}

impl Kind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::Change => "change",
        }
    }
}

/// The edge a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Edge {
    /// HTTP API.
    Http,
    /// gRPC (including Envoy ext_authz).
    Grpc,
    /// Forward-auth endpoint of a reverse proxy.
    ForwardAuth,
    /// Command line.
    Cli,
    /// Admin API / console.
    Admin,
    /// The protecting gateway in front of an application.
    Gateway,
}

impl Edge {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Edge::Http => "http",
            Edge::Grpc => "grpc",
            Edge::ForwardAuth => "forward-auth",
            Edge::Cli => "cli",
            Edge::Admin => "admin",
            Edge::Gateway => "gateway",
        }
    }
}

/// The result recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Decision: permitted.
    Allow,
    /// Decision: refused.
    Deny,
    /// Decision: could not decide (fail closed).
    Error,
    /// Change: applied.
    Ok,
    /// Change: rejected or failed.
    Failed,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Error => "error",
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
        }
    }
}

/// One audit record. `seq` and `prev` are assigned by the log's single writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// `decision` or `change`.
    pub kind: Kind,
    /// Tenant id; one chain per tenant.
    pub tenant: String,
    /// Position in the tenant's chain, from 1 (0 until the writer assigns it).
    pub seq: u64,
    /// Hex SHA-256 of the previous record's canonical encoding; zeros for seq 1.
    #[serde(with = "hex_hash")]
    pub prev: Hash,
    /// UTC time of the event, microsecond precision.
    pub ts: jiff::Timestamp,
    /// Unique record id (26-char Crockford base32: 48-bit milliseconds + 80 random bits).
    pub id: String,
    /// Trace id of the request, if any.
    pub trace_id: Option<String>,
    /// Who acted (principal id), masked per tenant rules.
    pub actor: String,
    /// Edge the request came through.
    pub edge: Edge,
    /// Action requested or change made.
    pub action: String,
    /// Resource acted on.
    pub resource: String,
    /// Result.
    pub outcome: Outcome,
    /// Deciding statements (rules, roles).
    pub statements: Vec<String>,
    /// Factors that failed (e.g. mfa, device, time window).
    pub failed_factors: Vec<String>,
    /// Source address.
    pub source: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// The `X-Request-ID` of the HTTP request the decision answered; left out of the line when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Policy revision the decision was made with.
    pub policy_revision: Option<String>,
    /// Data (relations, environment) revision.
    pub data_revision: Option<String>,
    /// Free-form summary (change payload summaries); always a JSON object.
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Builder for callers: fills `ts` and `id`, leaves `seq`/`prev` to the log.
#[derive(Debug, Clone)]
pub struct RecordBuilder {
    record: Record,
}

impl Record {
    /// A decision record for `tenant`.
    pub fn decision(
        tenant: impl Into<String>,
        actor: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
        outcome: Outcome,
    ) -> RecordBuilder {
        RecordBuilder::new(Kind::Decision, tenant, actor, action, resource, outcome)
    }

    /// An administrative change record for `tenant` (edge defaults to `admin`).
    pub fn change(
        tenant: impl Into<String>,
        actor: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
        outcome: Outcome,
    ) -> RecordBuilder {
        RecordBuilder::new(Kind::Change, tenant, actor, action, resource, outcome).edge(Edge::Admin)
    }

    /// The canonical encoding (see the module docs), without newline.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.encode_to_vec(&mut out);
        out
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut String) {
        let mut bytes = Vec::with_capacity(512);
        self.encode_to_vec(&mut bytes);
        // The encoder only writes ASCII punctuation and whole UTF-8 strings.
        out.push_str(&String::from_utf8_lossy(&bytes));
    }

    /// Appends the canonical encoding to a byte buffer (the writer's hot path: no allocation
    /// once the buffer has grown, no formatting machinery).
    pub fn encode_to_vec(&self, out: &mut Vec<u8>) {
        encode_head(out, self.kind, &self.tenant, self.seq, &self.prev);
        self.encode_tail(out);
    }

    /// Appends everything after the chain fields (from `,"ts":` to the closing brace): the part
    /// of the line that does not depend on the record's place in the chain, so submitters can
    /// encode it before the writer assigns `seq` and `prev`.
    pub(crate) fn encode_tail(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"ts\":\"");
        put_ts(out, self.ts);
        out.extend_from_slice(b"\",\"id\":");
        put_str(out, &self.id);
        out.extend_from_slice(b",\"trace_id\":");
        put_opt(out, self.trace_id.as_deref());
        out.extend_from_slice(b",\"actor\":");
        put_str(out, &self.actor);
        out.extend_from_slice(b",\"edge\":\"");
        out.extend_from_slice(self.edge.as_str().as_bytes());
        out.extend_from_slice(b"\",\"action\":");
        put_str(out, &self.action);
        out.extend_from_slice(b",\"resource\":");
        put_str(out, &self.resource);
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(self.outcome.as_str().as_bytes());
        out.extend_from_slice(b"\",\"statements\":");
        put_list(out, &self.statements);
        out.extend_from_slice(b",\"failed_factors\":");
        put_list(out, &self.failed_factors);
        out.extend_from_slice(b",\"source\":");
        put_opt(out, self.source.as_deref());
        out.extend_from_slice(b",\"user_agent\":");
        put_opt(out, self.user_agent.as_deref());
        if let Some(request_id) = &self.request_id {
            out.extend_from_slice(b",\"request_id\":");
            put_str(out, request_id);
        }
        out.extend_from_slice(b",\"policy_revision\":");
        put_opt(out, self.policy_revision.as_deref());
        out.extend_from_slice(b",\"data_revision\":");
        put_opt(out, self.data_revision.as_deref());
        out.extend_from_slice(b",\"details\":");
        if self.details.is_empty() {
            out.extend_from_slice(b"{}");
        } else {
            let mut text = String::new();
            write_object(&mut text, &self.details);
            out.extend_from_slice(text.as_bytes());
        }
        out.push(b'}');
    }

    /// Stamps the record as new: the current time and a fresh id (reusing the id's
    /// allocation), no place in a chain yet.
    pub fn restamp(&mut self) {
        self.ts = now_micros();
        new_id_into(self.ts, &mut self.id);
        self.seq = 0;
        self.prev = ZERO_HASH;
    }

    /// SHA-256 of the canonical encoding.
    pub fn hash(&self) -> Hash {
        hash_line(&self.canonical())
    }

    /// Parses one canonical line.
    pub fn from_line(line: &[u8]) -> Result<Record, AuditError> {
        serde_json::from_slice(line).map_err(|error| AuditError::Malformed {
            reason: error.to_string(),
        })
    }
}

impl RecordBuilder {
    fn new(
        kind: Kind,
        tenant: impl Into<String>,
        actor: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
        outcome: Outcome,
    ) -> RecordBuilder {
        let ts = now_micros();
        RecordBuilder {
            record: Record {
                kind,
                tenant: tenant.into(),
                seq: 0,
                prev: ZERO_HASH,
                ts,
                id: new_id(ts),
                trace_id: None,
                actor: actor.into(),
                edge: Edge::Http,
                action: action.into(),
                resource: resource.into(),
                outcome,
                statements: Vec::new(),
                failed_factors: Vec::new(),
                source: None,
                user_agent: None,
                request_id: None,
                policy_revision: None,
                data_revision: None,
                details: serde_json::Map::new(),
            },
        }
    }

    /// Sets the edge.
    pub fn edge(mut self, edge: Edge) -> Self {
        self.record.edge = edge;
        self
    }
    /// Sets the trace id.
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.record.trace_id = Some(trace_id.into());
        self
    }
    /// Sets the deciding statements.
    pub fn statements(mut self, statements: Vec<String>) -> Self {
        self.record.statements = statements;
        self
    }
    /// Sets the failed factors.
    pub fn failed_factors(mut self, factors: Vec<String>) -> Self {
        self.record.failed_factors = factors;
        self
    }
    /// Sets the source address.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.record.source = Some(source.into());
        self
    }
    /// Sets the user agent.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.record.user_agent = Some(user_agent.into());
        self
    }
    /// Sets the request id (`X-Request-ID`).
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.record.request_id = Some(request_id.into());
        self
    }
    /// Sets the policy revision.
    pub fn policy_revision(mut self, revision: impl Into<String>) -> Self {
        self.record.policy_revision = Some(revision.into());
        self
    }
    /// Sets the data revision.
    pub fn data_revision(mut self, revision: impl Into<String>) -> Self {
        self.record.data_revision = Some(revision.into());
        self
    }
    /// Adds one `details` entry.
    pub fn detail(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.record.details.insert(key.into(), value);
        self
    }
    /// Overrides the timestamp (truncated to microseconds); for imports and tests.
    pub fn ts(mut self, ts: jiff::Timestamp) -> Self {
        self.record.ts = truncate_micros(ts);
        self
    }
    /// The record.
    pub fn build(self) -> Record {
        self.record
    }
}

/// Appends the chain prefix of a record line: `{"kind":…,"tenant":…,"seq":…,"prev":"…"`.
pub(crate) fn encode_head(out: &mut Vec<u8>, kind: Kind, tenant: &str, seq: u64, prev: &Hash) {
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"tenant\":");
    put_str(out, tenant);
    out.extend_from_slice(b",\"seq\":");
    put_u64(out, seq);
    out.extend_from_slice(b",\"prev\":\"");
    put_hex(out, prev);
    out.push(b'"');
}

/// SHA-256 of a line (without its newline).
pub fn hash_line(line: &[u8]) -> Hash {
    Sha256::digest(line).into()
}

/// The current time, truncated to microseconds so it survives the encoding unchanged.
pub fn now_micros() -> jiff::Timestamp {
    truncate_micros(jiff::Timestamp::now())
}

fn truncate_micros(ts: jiff::Timestamp) -> jiff::Timestamp {
    let micros = ts.as_microsecond();
    jiff::Timestamp::from_microsecond(micros).unwrap_or(ts)
}

/// Formats a timestamp as in the canonical encoding (`2026-01-02T03:04:05.000006Z`).
pub fn format_ts(ts: jiff::Timestamp) -> String {
    let mut out = String::with_capacity(27);
    push_ts(&mut out, ts);
    out
}

fn push_ts(out: &mut String, ts: jiff::Timestamp) {
    let mut bytes = [0u8; 27];
    match ts_bytes(ts, &mut bytes) {
        Some(text) => out.push_str(text),
        None => {
            let _ = write!(out, "{ts:.6}");
        }
    }
}

fn put_ts(out: &mut Vec<u8>, ts: jiff::Timestamp) {
    let mut bytes = [0u8; 27];
    match ts_bytes(ts, &mut bytes) {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => {
            let mut text = String::new();
            let _ = write!(text, "{ts:.6}");
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Formats `ts` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` with integer arithmetic (the same text as
/// jiff's `{:.6}`) for years 1970..=9999; `None` outside that range (callers fall back to jiff).
fn ts_bytes(ts: jiff::Timestamp, buf: &mut [u8; 27]) -> Option<&str> {
    let micros = ts.as_microsecond();
    if micros < 0 {
        return None;
    }
    let secs = micros / 1_000_000;
    let frac = (micros % 1_000_000) as u32;
    let days = secs / 86_400;
    let rem = (secs % 86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    if !(1970..=9999).contains(&year) {
        return None;
    }
    let put = |buf: &mut [u8; 27], at: usize, width: usize, mut value: u32| {
        for index in (at..at + width).rev() {
            buf[index] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(buf, 0, 4, year as u32);
    buf[4] = b'-';
    put(buf, 5, 2, month);
    buf[7] = b'-';
    put(buf, 8, 2, day);
    buf[10] = b'T';
    put(buf, 11, 2, rem / 3600);
    buf[13] = b':';
    put(buf, 14, 2, rem / 60 % 60);
    buf[16] = b':';
    put(buf, 17, 2, rem % 60);
    buf[19] = b'.';
    put(buf, 20, 6, frac);
    buf[26] = b'Z';
    std::str::from_utf8(buf).ok()
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (non-negative), by the
/// era/day-of-era method.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day count since 1970-01-01 of a proleptic Gregorian date (inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a canonical `YYYY-MM-DDTHH:MM:SS.ffffffZ` timestamp (27 bytes); `None` for anything
/// else (callers fall back to a full parse).
pub(crate) fn parse_canonical_ts(text: &[u8]) -> Option<jiff::Timestamp> {
    if text.len() != 27 {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut value = 0i64;
        for &byte in &text[range] {
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(byte - b'0');
        }
        Some(value)
    };
    let shape = text[4] == b'-'
        && text[7] == b'-'
        && text[10] == b'T'
        && text[13] == b':'
        && text[16] == b':'
        && text[19] == b'.'
        && text[26] == b'Z';
    if !shape {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let micros = digits(20..26)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if civil_from_days(days) != (year, month as u32, day as u32) {
        return None;
    }
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    jiff::Timestamp::from_microsecond(secs * 1_000_000 + micros).ok()
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

thread_local! {
    static ID_STATE: std::cell::Cell<u128> = const { std::cell::Cell::new(0) };
}

/// A new ULID-like id: 48-bit Unix milliseconds then 80 bits that start random per thread and
/// count up, so ids are unique without a system call per record.
pub fn new_id(ts: jiff::Timestamp) -> String {
    let mut id = String::with_capacity(26);
    new_id_into(ts, &mut id);
    id
}

/// Replaces the contents of `id` with a new record id for `ts` (see [`new_id`]), reusing its
/// allocation.
fn new_id_into(ts: jiff::Timestamp, id: &mut String) {
    let millis = (ts.as_millisecond().max(0) as u128) & ((1 << 48) - 1);
    let random = ID_STATE.with(|state| {
        let mut value = state.get();
        if value == 0 {
            let mut seed = [0u8; 16];
            if getrandom::fill(&mut seed).is_err() {
                // Fall back to the clock; ids stay unique within the thread by counting.
                seed = (jiff::Timestamp::now().as_nanosecond() as u128).to_le_bytes();
            }
            value = u128::from_le_bytes(seed) | 1;
        } else {
            value = value.wrapping_add(1).max(1);
        }
        state.set(value);
        value & ((1 << 80) - 1)
    });
    let mut bits = (millis << 80) | random;
    let mut chars = [0u8; 26];
    for slot in chars.iter_mut().rev() {
        *slot = CROCKFORD[(bits & 31) as usize];
        bits >>= 5;
    }
    id.clear();
    id.extend(chars.iter().map(|&c| char::from(c)));
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn put_hex(out: &mut Vec<u8>, bytes: &[u8; 32]) {
    let mut text = [0u8; 64];
    for (pair, &byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[(byte >> 4) as usize];
        pair[1] = HEX_DIGITS[(byte & 15) as usize];
    }
    out.extend_from_slice(&text);
}

/// Value of a lower-case hex digit, 0xFF for any other byte.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xFFu8; 256];
    let mut index = 0;
    while index < 10 {
        table[b'0' as usize + index] = index as u8;
        index += 1;
    }
    let mut index = 0;
    while index < 6 {
        table[b'a' as usize + index] = 10 + index as u8;
        index += 1;
    }
    table
};

/// Decodes 64 lower-case hex digits (the only form the encoder writes).
pub(crate) fn decode_hash_lower(text: &[u8]) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    let mut bad = 0u8;
    for (slot, pair) in hash.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        bad |= high | low;
        *slot = (high << 4) | (low & 15);
    }
    if bad & 0x80 != 0 {
        return None;
    }
    Some(hash)
}

fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut text = [0u8; 20];
    let mut at = text.len();
    loop {
        at -= 1;
        text[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&text[at..]);
}

/// True for the bytes a canonical string escapes.
#[inline]
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether any byte needs escaping, eight bytes at a time: a byte below 0x20, or equal to `"`
/// or `\\`, has its high bit set in the matching term (bytes from 0x80 up never match). A borrow
/// can only set a false bit above a true one, so the answer for the word is exact.
fn any_needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
        let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
        let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
        if control | quote | backslash != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&byte| needs_escape(byte))
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.push(b'"');
    if !any_needs_escape(bytes) {
        out.extend_from_slice(bytes);
    } else {
        let mut text = String::with_capacity(bytes.len() + 8);
        write_str(&mut text, value);
        // `write_str` added the quotes too.
        out.extend_from_slice(&text.as_bytes()[1..text.len() - 1]);
    }
    out.push(b'"');
}

fn put_opt(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => put_str(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn put_list(out: &mut Vec<u8>, values: &[String]) {
    out.push(b'[');
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        put_str(out, value);
    }
    out.push(b']');
}

pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 15) as usize] as char);
    }
}

pub(crate) fn write_str(out: &mut String, value: &str) {
    out.push('"');
    let bytes = value.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&value[start..index]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = index + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

fn write_object(out: &mut String, map: &serde_json::Map<String, serde_json::Value>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    out.push('{');
    for (index, key) in keys.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_str(out, key);
        out.push(':');
        if let Some(value) = map.get(key) {
            write_value(out, value);
        }
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &serde_json::Value) {
    match value {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(true) => out.push_str("true"),
        serde_json::Value::Bool(false) => out.push_str("false"),
        serde_json::Value::Number(number) => {
            let _ = write!(out, "{number}");
        }
        serde_json::Value::String(text) => write_str(out, text),
        serde_json::Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => write_object(out, map),
    }
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &super::Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<super::Hash, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut hash).map_err(serde::de::Error::custom)?;
        Ok(hash)
    }
}

/// The chain fields of a line, read without a full parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    Record,
    Checkpoint,
}

/// What the verifier needs from a record line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainFields<'a> {
    pub tenant: &'a str,
    pub seq: u64,
    pub prev: Hash,
}

/// Classifies a line by its leading `kind`.
pub(crate) fn line_kind(line: &[u8]) -> Option<LineKind> {
    if line.starts_with(b"{\"kind\":\"decision\",") || line.starts_with(b"{\"kind\":\"change\",") {
        Some(LineKind::Record)
    } else if line.starts_with(b"{\"kind\":\"checkpoint\",") {
        Some(LineKind::Checkpoint)
    } else {
        None
    }
}

/// Reads `tenant`, `seq` and `prev` from the fixed prefix of a canonical record line.
pub(crate) fn chain_fields(line: &[u8]) -> Option<ChainFields<'_>> {
    let (tenant, seq, prev_hex, _) = chain_prefix(line)?;
    let prev = decode_hash_lower(prev_hex)?;
    Some(ChainFields { tenant, seq, prev })
}

/// Splits the canonical prefix of a record line: tenant, seq, the 64 bytes of `prev` hex (not
/// yet validated) and the rest of the line after the closing quote of `prev`.
fn chain_prefix(line: &[u8]) -> Option<(&str, u64, &[u8], &[u8])> {
    let rest = line
        .strip_prefix(b"{\"kind\":\"decision\",\"tenant\":\"")
        .or_else(|| line.strip_prefix(b"{\"kind\":\"change\",\"tenant\":\""))?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    let tenant = std::str::from_utf8(&rest[..end]).ok()?;
    let rest = rest[end + 1..].strip_prefix(b",\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let mut seq = 0u64;
    for &digit in &rest[..digits] {
        seq = seq.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    let rest = rest[digits..].strip_prefix(b",\"prev\":\"")?;
    if rest.len() < 65 || rest[64] != b'"' {
        return None;
    }
    Some((tenant, seq, &rest[..64], &rest[65..]))
}

/// Reads a JSON string without escapes at the start of `rest` (which must begin with its
/// opening quote): its contents and what follows the closing quote. `None` for an escaped
/// string (callers fall back to a full parse).
fn plain_str(rest: &[u8]) -> Option<(&str, &[u8])> {
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    Some((std::str::from_utf8(&rest[..end]).ok()?, &rest[end + 1..]))
}

/// Reads `seq`, `ts`, `trace_id` of a canonical record line and returns the rest after the
/// trace id.
fn head_fields(line: &[u8]) -> Option<(u64, jiff::Timestamp, Option<&str>, &[u8])> {
    let (_, seq, _, rest) = chain_prefix(line)?;
    let rest = rest.strip_prefix(b",\"ts\":\"")?;
    let ts = parse_canonical_ts(rest.get(..27)?)?;
    let rest = rest[27..].strip_prefix(b"\",\"id\":")?;
    let (_, rest) = plain_str(rest)?;
    let rest = rest.strip_prefix(b",\"trace_id\":")?;
    if let Some(rest) = rest.strip_prefix(b"null") {
        Some((seq, ts, None, rest))
    } else {
        let (trace, rest) = plain_str(rest)?;
        Some((seq, ts, Some(trace), rest))
    }
}

/// What a segment index needs from a record line: `seq`, `ts` and the raw `trace_id` (JSON
/// string contents, `None` for `null`). Read from the fixed canonical prefix; `None` when the
/// line is not in that exact form (callers then fall back to a full parse).
pub(crate) fn index_fields(line: &[u8]) -> Option<(u64, jiff::Timestamp, Option<&str>)> {
    let (seq, ts, trace, rest) = head_fields(line)?;
    rest.starts_with(b",").then_some((seq, ts, trace))
}

/// The lookup fields of a record line (the columns a database store keeps beside the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LookupFields<'a> {
    pub seq: u64,
    pub ts: jiff::Timestamp,
    pub trace_id: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub outcome: &'a str,
}

/// Reads the lookup fields from the canonical prefix of a record line, without a full parse.
/// `None` when a string on the way holds an escape or the line is not canonical (callers then
/// parse the whole record, which unescapes).
pub(crate) fn lookup_fields(line: &[u8]) -> Option<LookupFields<'_>> {
    let (seq, ts, trace_id, rest) = head_fields(line)?;
    let rest = rest.strip_prefix(b",\"actor\":")?;
    let (actor, rest) = plain_str(rest)?;
    let rest = rest.strip_prefix(b",\"edge\":")?;
    let (_, rest) = plain_str(rest)?;
    let rest = rest.strip_prefix(b",\"action\":")?;
    let (action, rest) = plain_str(rest)?;
    let rest = rest.strip_prefix(b",\"resource\":")?;
    let (_, rest) = plain_str(rest)?;
    let rest = rest.strip_prefix(b",\"outcome\":")?;
    let (outcome, rest) = plain_str(rest)?;
    if !rest.starts_with(b",\"statements\":") {
        return None;
    }
    Some(LookupFields {
        seq,
        ts,
        trace_id,
        actor,
        action,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record::decision("acme", "u\"1\n", "read", "doc/\u{e9}\\x", Outcome::Deny)
            .trace_id("trace-1")
            .source("203.0.113.7")
            .statements(vec!["a".to_owned(), "b\tc".to_owned()])
            .detail("z", serde_json::json!({"b": 1, "a": [true, null, 2.5]}))
            .detail("\u{1}k", serde_json::json!("v"))
            .build()
    }

    /// The byte encoder matches the reference text encoder (`write_str`/`write_object`) and
    /// head + tail is exactly the whole line.
    #[test]
    fn byte_encoder_matches_text_encoder() {
        let mut record = sample();
        record.seq = 42;
        record.prev = [0xab; 32];
        let line = record.canonical();
        let mut reference = String::new();
        reference.push_str("{\"kind\":\"decision\",\"tenant\":");
        write_str(&mut reference, "acme");
        reference.push_str(",\"seq\":42,\"prev\":\"");
        push_hex(&mut reference, &[0xab; 32]);
        reference.push_str("\",\"ts\":\"");
        reference.push_str(&format!("{:.6}", record.ts));
        reference.push_str("\",\"id\":");
        write_str(&mut reference, &record.id);
        reference.push_str(",\"trace_id\":\"trace-1\",\"actor\":");
        write_str(&mut reference, &record.actor);
        reference.push_str(",\"edge\":\"http\",\"action\":\"read\",\"resource\":");
        write_str(&mut reference, &record.resource);
        reference.push_str(",\"outcome\":\"deny\",\"statements\":[\"a\",\"b\\tc\"],\"failed_factors\":[],\"source\":\"203.0.113.7\",\"user_agent\":null,\"policy_revision\":null,\"data_revision\":null,\"details\":");
        write_object(&mut reference, &record.details);
        reference.push('}');
        assert_eq!(String::from_utf8(line.clone()).unwrap(), reference);
        let mut split = Vec::new();
        encode_head(
            &mut split,
            record.kind,
            &record.tenant,
            record.seq,
            &record.prev,
        );
        record.encode_tail(&mut split);
        assert_eq!(split, line);
        let mut text = String::new();
        record.encode_into(&mut text);
        assert_eq!(text.as_bytes(), line.as_slice());
        assert_eq!(Record::from_line(&line).unwrap(), record);
    }

    /// A request id sits after `user_agent` when present; a record without one encodes exactly
    /// as records did before the field existed, so their hashes (and chains) stay valid.
    #[test]
    fn request_id_is_encoded_only_when_present() {
        let without = sample();
        let line = String::from_utf8(without.canonical()).unwrap();
        assert!(!line.contains("request_id"), "{line}");
        assert!(line.contains(",\"user_agent\":null,\"policy_revision\":null,"));

        let mut with = without.clone();
        with.request_id = Some("req \"7\"".to_owned());
        let line = with.canonical();
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(
            text.contains(
                ",\"user_agent\":null,\"request_id\":\"req \\\"7\\\"\",\"policy_revision\":"
            ),
            "{text}"
        );
        let read = Record::from_line(&line).unwrap();
        assert_eq!(read, with);
        assert_eq!(read.hash(), hash_line(&line));
        assert_ne!(with.hash(), without.hash());
        assert_eq!(
            Record::from_line(&without.canonical()).unwrap().request_id,
            None
        );
    }

    #[test]
    fn timestamp_formatting_and_parsing_match_jiff() {
        let mut micros: i64 = 0;
        // Dates across leap years, century rules and the end of the supported range.
        let fixed = [
            0,
            951_782_400_000_000,     // 2000-02-29
            4_107_542_399_999_999,   // 2100-02-28T23:59:59.999999
            4_107_542_400_000_000,   // 2100-03-01
            253_402_207_200_000_000, // jiff::Timestamp::MAX, whole microseconds
        ];
        let mut samples: Vec<i64> = fixed.to_vec();
        for _ in 0..20_000 {
            micros = micros
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            samples.push(micros.rem_euclid(253_402_207_200_000_000));
        }
        for value in samples {
            let ts = jiff::Timestamp::from_microsecond(value).unwrap();
            let expected = format!("{ts:.6}");
            assert_eq!(format_ts(ts), expected);
            assert_eq!(
                parse_canonical_ts(expected.as_bytes()),
                Some(ts),
                "{expected}"
            );
        }
        // Before 1970 and invalid dates take the slow paths.
        let early = jiff::Timestamp::from_microsecond(-1).unwrap();
        assert_eq!(format_ts(early), format!("{early:.6}"));
        assert_eq!(parse_canonical_ts(b"2023-02-29T00:00:00.000000Z"), None);
        assert_eq!(parse_canonical_ts(b"2023-01-01T24:00:00.000000Z"), None);
        assert_eq!(parse_canonical_ts(b"2023-01-01T00:00:00.000000"), None);
    }

    proptest::proptest! {
        #[test]
        fn word_escape_scan_matches_the_byte_scan(bytes in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::any::<u8>(),
                proptest::sample::select(vec![0u8, 0x1f, 0x20, b'"', b'\\', 0x7f, 0x80, 0xff]),
            ],
            0..40,
        )) {
            proptest::prop_assert_eq!(
                any_needs_escape(&bytes),
                bytes.iter().any(|&byte| needs_escape(byte))
            );
        }
    }

    #[test]
    fn hash_decoding_accepts_only_lower_hex() {
        let text = hex::encode([0x0f, 0xa9].repeat(16));
        assert_eq!(
            decode_hash_lower(text.as_bytes()).map(|hash| hash.to_vec()),
            Some([0x0f, 0xa9].repeat(16))
        );
        assert_eq!(decode_hash_lower(text.to_uppercase().as_bytes()), None);
        assert_eq!(decode_hash_lower(&text.as_bytes()[1..]), None);
        let mut bad = text.into_bytes();
        bad[10] = b'g';
        assert_eq!(decode_hash_lower(&bad), None);
    }

    #[test]
    fn index_fields_match_full_parse() {
        let mut record = sample();
        record.seq = 7;
        let line = record.canonical();
        let (seq, ts, trace) = index_fields(&line).unwrap();
        assert_eq!((seq, ts, trace), (7, record.ts, Some("trace-1")));
        record.trace_id = None;
        let line = record.canonical();
        assert_eq!(index_fields(&line), Some((7, record.ts, None)));
        // An escaped trace id is left to the full parser.
        record.trace_id = Some("a\"b".to_owned());
        assert_eq!(index_fields(&record.canonical()), None);
    }

    #[test]
    fn lookup_fields_match_full_parse() {
        let mut record = Record::decision("acme", "anne", "doc:read", "doc:1", Outcome::Deny)
            .trace_id("trace-9")
            .build();
        record.seq = 12;
        let line = record.canonical();
        assert_eq!(
            lookup_fields(&line),
            Some(LookupFields {
                seq: 12,
                ts: record.ts,
                trace_id: Some("trace-9"),
                actor: "anne",
                action: "doc:read",
                outcome: "deny",
            })
        );
        record.trace_id = None;
        assert_eq!(lookup_fields(&record.canonical()).unwrap().trace_id, None);
        // Escapes anywhere on the way are left to the full parser.
        let escaped = sample().canonical();
        assert_eq!(lookup_fields(&escaped), None);
        record.resource = "doc\\1".to_owned();
        assert_eq!(lookup_fields(&record.canonical()), None);
    }
}
