//! Masking of personal data before a record is queued or written.
//!
//! Owns the per-tenant [`MaskingConfig`] (raw serde form), the validated [`Masker`], the keyed
//! pseudonyms and the regex-free PII detectors (mainland China mobile numbers, resident ID
//! numbers with their ISO 7064 MOD 11-2 check character, e-mail addresses, Luhn-valid bank
//! card numbers). It must never log or return the unmasked input.
//!
//! Rules name a field and a mask; a field with a rule is masked by that rule only. Every other
//! free-text field (`actor`, `action`, `resource`, `user_agent`, `statements`, `failed_factors`
//! and every string inside `details`) is scanned by the enabled detectors, and each detected
//! value is replaced by its detector's mask.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::AuditError;
use crate::record::Record;

/// Per-tenant masking configuration, as written by operators.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Field rules.
    #[serde(default)]
    pub rules: Vec<MaskRule>,
    /// Detectors applied to free text.
    #[serde(default)]
    pub detectors: Vec<DetectorKind>,
}

impl MaskingConfig {
    /// All four detectors, no field rules.
    pub fn with_all_detectors() -> MaskingConfig {
        MaskingConfig {
            rules: Vec::new(),
            detectors: vec![
                DetectorKind::Mobile,
                DetectorKind::ResidentId,
                DetectorKind::Email,
                DetectorKind::BankCard,
            ],
        }
    }
}

/// One field rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    /// `actor`, `action`, `resource`, `source`, `user_agent`, `trace_id` or `details.<key>`.
    pub field: String,
    /// How to mask it.
    pub mask: Mask,
}

/// A mask. In configuration: `"redact"`, `"pseudonym"`, `{keep_prefix: 7}`, `{keep_suffix: 4}`,
/// `{keep: {prefix: 3, suffix: 4}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Mask {
    /// Keep the first n characters, replace the rest by `*`.
    KeepPrefix(usize),
    /// Keep the last n characters.
    KeepSuffix(usize),
    /// Keep a prefix and a suffix.
    Keep(KeepBoth),
    /// Replace the whole value by `[redacted]`.
    Redact,
    /// Replace by a keyed pseudonym `p_` + 16 hex characters of HMAC-SHA256(tenant key, value).
    Pseudonym,
}

/// Prefix and suffix lengths of [`Mask::Keep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepBoth {
    /// Characters kept at the start.
    pub prefix: usize,
    /// Characters kept at the end.
    pub suffix: usize,
}

/// A PII detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Mainland China mobile number `1[3-9]\d{9}` → `138****5678`.
    Mobile,
    /// 18-character resident ID with a valid check character → `110***********123X`.
    ResidentId,
    /// E-mail address → `a***@example.com`.
    Email,
    /// 13–19 digit Luhn-valid card number → `6222********1234`.
    BankCard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Actor,
    Action,
    Resource,
    Source,
    UserAgent,
    TraceId,
}

/// Validated masking for one tenant.
#[derive(Clone)]
pub struct Masker {
    fields: Vec<(Field, Mask)>,
    details: Vec<(String, Mask)>,
    mobile: bool,
    resident_id: bool,
    email: bool,
    bank_card: bool,
    pseudonym_key: [u8; 32],
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Masker")
            .field("fields", &self.fields)
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
}

/// Derives a tenant's pseudonym key: HKDF-SHA256(ikm = master secret,
/// salt = `portcullis-audit-pseudonym-v1`, info = tenant id).
pub fn derive_pseudonym_key(master_secret: &[u8], tenant: &str) -> [u8; 32] {
    let hkdf = Hkdf::<Sha256>::new(Some(b"portcullis-audit-pseudonym-v1"), master_secret);
    let mut key = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hkdf.expand(tenant.as_bytes(), &mut key);
    key
}

impl Masker {
    /// Validates `config` for a tenant whose pseudonym key is `pseudonym_key`.
    pub fn new(config: &MaskingConfig, pseudonym_key: [u8; 32]) -> Result<Masker, AuditError> {
        let mut fields = Vec::new();
        let mut details = Vec::new();
        for rule in &config.rules {
            let field = match rule.field.as_str() {
                "actor" => Field::Actor,
                "action" => Field::Action,
                "resource" => Field::Resource,
                "source" => Field::Source,
                "user_agent" => Field::UserAgent,
                "trace_id" => Field::TraceId,
                other => match other.strip_prefix("details.") {
                    Some(key) if !key.is_empty() => {
                        details.push((key.to_owned(), rule.mask));
                        continue;
                    }
                    _ => {
                        return Err(AuditError::Config {
                            reason: format!(
                                "unknown masking field {other:?}: use actor, action, resource, source, \
                                 user_agent, trace_id or details.<key>"
                            ),
                        });
                    }
                },
            };
            if fields.iter().any(|(existing, _)| *existing == field) {
                return Err(AuditError::Config {
                    reason: format!("masking field {:?} has two rules; keep one", rule.field),
                });
            }
            fields.push((field, rule.mask));
        }
        let has = |kind| config.detectors.contains(&kind);
        Ok(Masker {
            fields,
            details,
            mobile: has(DetectorKind::Mobile),
            resident_id: has(DetectorKind::ResidentId),
            email: has(DetectorKind::Email),
            bank_card: has(DetectorKind::BankCard),
            pseudonym_key,
        })
    }

    /// A masker that changes nothing.
    pub fn none() -> Masker {
        Masker {
            fields: Vec::new(),
            details: Vec::new(),
            mobile: false,
            resident_id: false,
            email: false,
            bank_card: false,
            pseudonym_key: [0; 32],
        }
    }

    fn rule(&self, field: Field) -> Option<Mask> {
        self.fields
            .iter()
            .find(|(candidate, _)| *candidate == field)
            .map(|(_, mask)| *mask)
    }

    /// Masks a record in place.
    pub fn apply(&self, record: &mut Record) {
        self.field(Field::Actor, &mut record.actor);
        self.field(Field::Action, &mut record.action);
        self.field(Field::Resource, &mut record.resource);
        if let Some(source) = record.source.as_mut() {
            self.field(Field::Source, source);
        }
        if let Some(user_agent) = record.user_agent.as_mut() {
            self.field(Field::UserAgent, user_agent);
        }
        if let Some(trace_id) = record.trace_id.as_mut() {
            // Trace ids are opaque; only an explicit rule touches them.
            if let Some(mask) = self.rule(Field::TraceId) {
                *trace_id = self.mask_value(trace_id, mask);
            }
        }
        for text in record
            .statements
            .iter_mut()
            .chain(record.failed_factors.iter_mut())
        {
            self.detect_in_place(text);
        }
        for (key, value) in record.details.iter_mut() {
            match self.details.iter().find(|(name, _)| name == key) {
                Some((_, mask)) => self.mask_json(value, *mask),
                None => self.detect_json(value),
            }
        }
    }

    fn field(&self, field: Field, value: &mut String) {
        match self.rule(field) {
            Some(mask) => *value = self.mask_value(value, mask),
            None if field != Field::Source => self.detect_in_place(value),
            None => {}
        }
    }

    fn mask_json(&self, value: &mut serde_json::Value, mask: Mask) {
        match value {
            serde_json::Value::String(text) => *text = self.mask_value(text, mask),
            serde_json::Value::Number(number) => {
                *value = serde_json::Value::String(self.mask_value(&number.to_string(), mask));
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().for_each(|item| self.mask_json(item, mask))
            }
            serde_json::Value::Object(map) => {
                map.values_mut().for_each(|item| self.mask_json(item, mask))
            }
            serde_json::Value::Null | serde_json::Value::Bool(_) => {}
        }
    }

    fn detect_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => self.detect_in_place(text),
            serde_json::Value::Number(number) => {
                let text = number.to_string();
                if let Some(masked) = self.detect_changed(&text) {
                    *value = serde_json::Value::String(masked);
                }
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().for_each(|item| self.detect_json(item))
            }
            serde_json::Value::Object(map) => {
                map.values_mut().for_each(|item| self.detect_json(item))
            }
            serde_json::Value::Null | serde_json::Value::Bool(_) => {}
        }
    }

    /// Applies one mask to a value.
    pub fn mask_value(&self, value: &str, mask: Mask) -> String {
        match mask {
            Mask::KeepPrefix(n) => keep(value, n, 0),
            Mask::KeepSuffix(n) => keep(value, 0, n),
            Mask::Keep(KeepBoth { prefix, suffix }) => keep(value, prefix, suffix),
            Mask::Redact => "[redacted]".to_owned(),
            Mask::Pseudonym => self.pseudonym(value),
        }
    }

    /// The keyed pseudonym of a value: `p_` + 16 hex characters.
    pub fn pseudonym(&self, value: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.pseudonym_key) {
            Ok(mac) => mac,
            // HMAC accepts keys of any length; this arm cannot be reached.
            Err(_) => return "p_unavailable".to_owned(),
        };
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("p_{}", hex::encode(&digest[..8]))
    }

    fn any_detector(&self) -> bool {
        self.mobile || self.resident_id || self.email || self.bank_card
    }

    fn detect_in_place(&self, value: &mut String) {
        if let Some(masked) = self.detect_changed(value) {
            *value = masked;
        }
    }

    /// Runs the enabled detectors over free text and returns the masked text.
    pub fn detect(&self, text: &str) -> String {
        match self.detect_changed(text) {
            Some(masked) => masked,
            None => text.to_owned(),
        }
    }

    /// The masked text, or `None` when no detector fired (the common case: no allocation).
    fn detect_changed(&self, text: &str) -> Option<String> {
        if !self.any_detector() || !needs_scan(text) {
            return None;
        }
        let bytes = text.as_bytes();
        // Byte ranges to replace, with their masked text; found left to right, never overlapping.
        let mut spans: Vec<(usize, usize, String)> = Vec::new();
        let mut index = 0;
        while index < bytes.len() {
            let byte = bytes[index];
            if byte.is_ascii_digit() && (index == 0 || !bytes[index - 1].is_ascii_alphanumeric()) {
                let start = index;
                let mut end = index;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                let digits = &bytes[start..end];
                let mut id_end = end;
                if digits.len() == 17 && end < bytes.len() && matches!(bytes[end], b'X' | b'x') {
                    id_end = end + 1;
                }
                let bounded =
                    |stop: usize| stop >= bytes.len() || !bytes[stop].is_ascii_alphanumeric();
                if self.resident_id && bounded(id_end) && is_resident_id(&bytes[start..id_end]) {
                    spans.push((start, id_end, keep(&text[start..id_end], 3, 4)));
                    index = id_end;
                    continue;
                }
                if bounded(end) {
                    if self.mobile && is_mobile(digits) {
                        spans.push((start, end, keep(&text[start..end], 3, 4)));
                    } else if self.bank_card && is_bank_card(digits) {
                        spans.push((start, end, keep(&text[start..end], 4, 4)));
                    }
                }
                index = end;
                continue;
            }
            if byte == b'@'
                && self.email
                && let Some((start, end)) = email_span(bytes, index)
            {
                let local_start = start;
                // Drop spans the local part already produced (digits inside an address).
                spans.retain(|(span_start, _, _)| *span_start < local_start);
                let first = text[start..]
                    .chars()
                    .next()
                    .map(String::from)
                    .unwrap_or_default();
                spans.push((start, end, format!("{first}***{}", &text[index..end])));
                index = end;
                continue;
            }
            index += 1;
        }
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (start, end, replacement) in spans {
            out.push_str(&text[last..start]);
            out.push_str(&replacement);
            last = end;
        }
        out.push_str(&text[last..]);
        (out != text).then_some(out)
    }
}

/// Cheap pre-check: detectors only fire on text with a digit run or an `@`.
fn needs_scan(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit() || b == b'@')
}

/// Keeps `prefix` and `suffix` characters and replaces the rest by `*`; a value not longer than
/// what would be kept is masked entirely, so a mask never reveals a whole short value.
fn keep(value: &str, prefix: usize, suffix: usize) -> String {
    let count = value.chars().count();
    if count <= prefix + suffix {
        return "*".repeat(count.max(1));
    }
    let mut out = String::with_capacity(value.len());
    for (index, ch) in value.chars().enumerate() {
        if index < prefix || index >= count - suffix {
            out.push(ch);
        } else {
            out.push('*');
        }
    }
    out
}

/// `1[3-9]\d{9}`.
pub fn is_mobile(digits: &[u8]) -> bool {
    digits.len() == 11
        && digits[0] == b'1'
        && (b'3'..=b'9').contains(&digits[1])
        && digits.iter().all(u8::is_ascii_digit)
}

/// 17 digits and an ISO 7064 MOD 11-2 check character (`0-9` or `X`).
pub fn is_resident_id(text: &[u8]) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    if text.len() != 18 || !text[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = text[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(digit, weight)| u32::from(digit - b'0') * weight)
        .sum();
    CHECK[(sum % 11) as usize] == text[17].to_ascii_uppercase()
}

/// 13–19 digits passing the Luhn check.
pub fn is_bank_card(digits: &[u8]) -> bool {
    if !(13..=19).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum = 0u32;
    for (position, digit) in digits.iter().rev().enumerate() {
        let mut value = u32::from(digit - b'0');
        if position % 2 == 1 {
            value *= 2;
            if value > 9 {
                value -= 9;
            }
        }
        sum += value;
    }
    sum.is_multiple_of(10)
}

fn email_span(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let local_char =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
    let mut start = at;
    while start > 0 && local_char(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = at + 1;
    while end < bytes.len() && domain_char(bytes[end]) {
        end += 1;
    }
    // Trailing dots belong to the sentence, not the domain.
    while end > at + 1 && bytes[end - 1] == b'.' {
        end -= 1;
    }
    let domain = &bytes[at + 1..end];
    let dot = domain.iter().rposition(|&b| b == b'.')?;
    let valid = start < at
        && dot > 0
        && domain.len() - dot > 2
        && domain[dot + 1..].iter().all(u8::is_ascii_alphabetic);
    valid.then_some((start, end))
}
