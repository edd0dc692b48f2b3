//! Injection detection: SQL injection and cross-site scripting in every request parameter
//! (names and values), XML bodies read safely, and uploads told apart by their content.
//!
//! The module owns three things:
//! - the detectors [`sqli`] and [`xss`] (and [`sqli_at`], [`xss_at`] with a [`Sensitivity`]),
//!   which say *what* matched in a [`Finding`];
//! - the configuration ([`RawInjection`] as written, [`Injection`] once checked);
//! - the stage [`InjectionCheck`] that applies both to a request.
//!
//! # Detection
//!
//! Both detectors run on the text as given and, when it differs, on the text decoded the
//! ways attackers encode (percent-encoding again, HTML character references, JavaScript
//! `\uXXXX`/`\xXX` escapes, NUL bytes), repeated until nothing changes (three rounds at
//! most). The engine is the pure-Rust port of libinjection (`libinjectionrs`): its SQL
//! tokenizer folds the input into a fingerprint of token classes (`s&sos` for
//! `' OR '1'='1`) matched against the known injection fingerprints, and its HTML5 tokenizer
//! finds dangerous tags and attributes in every quoting context. On top of it the module
//! adds hand-written rules for what libinjection leaves out or sees only in part:
//!
//! | level | SQL | XSS |
//! |---|---|---|
//! | `low` | libinjection | libinjection; script/iframe/object/embed tags; event-handler attributes in a tag; `javascript:`-like URLs in attributes |
//! | `medium` (default) | + time delays (`SLEEP(5)`, `WAITFOR DELAY`), `UNION SELECT` (comments folded away), stacked destructive statements, catalog objects (`information_schema`, `@@version`), error-based functions, quote-breaking tautologies, appended `WHERE n=n`, heavy queries, constant conditions (`CASE WHEN 1=2`, `elt(1=1,`), clause breakouts | + every scriptable tag (svg, math, style, base, link, meta, …), event handlers breaking out of an attribute, `javascript:`/`vbscript:`/`data:text/html` values, CSS `expression(`, script calls breaking out of a string, `document.cookie`, script written as code without markup (`alert(1)`, `!function(){…}()`, constructor chains, DOM sinks), template expressions (`${…}`, `{{…}}`), handlers with junk after the name |
//! | `high` | + bare keyword pairs (`SELECT … FROM`, `INSERT INTO`, `OR 1=1`), SQL comments after a quote | + any tag, any `on…=`, any call to `alert`/`eval`/… |
//!
//! `medium` is tuned so ordinary text passes: `O'Brien`, `select a size`, `1 OR 2 items`,
//! `<3`, `a < b and c > d`, addresses, URLs, JSON-looking text, any script.
//!
//! From `medium` on, two more detectors run ([`traversal_at`], [`command_at`]), on the same
//! decodings: **path traversal** (a `..` segment or a run of dots after a separator, dots and
//! separators encoded as `0x2e`/`%c0%af`/`%u002e`, system files such as `/etc/passwd`,
//! `/proc/self/`, `WEB-INF/`, `boot.ini`, long runs of separators, chains of `./`) and
//! **command injection** (a shell command after `;`, `|`, `&&`, a backtick or `$(`: commands
//! that take no argument alone, the others followed by an option, a path or a URL, written in
//! lower case as shells want them; a system binary by path, `/usr/bin/id`; a Windows `dir c:`;
//! `ping -n`; server-side includes, `<!--#exec`). Neither can match plain text, so words,
//! numbers and dates never reach them, nor do `Tom & Jerry; cat lovers` or `Home | About`.
//!
//! # What the stage checks
//!
//! Every query, form, JSON and multipart parameter: its name and, when it is text (JSON
//! strings included), its value. A multipart file has its file name checked like text, its
//! size against `uploads.max_bytes` (413 `upload_too_large`) and its content type detected
//! from its bytes (the `infer` crate's magic numbers, else UTF-8 text), never from its
//! name: a detected type outside `uploads.allowed_types` is 415 `upload_type_refused`, and a
//! declared type that disagrees with the detected one is 415 `upload_type_mismatch`.
//! Uploaded content itself is not scanned for SQL or script (a text file may well quote
//! either); serving uploads safely is the application's part.
//!
//! An XML body is read with `quick-xml`, which never expands entities beyond the five
//! predefined ones and character references: any `<!DOCTYPE` (an internal DTD, an external
//! entity, a billion-laughs expansion) is refused with 400 `xml_dtd_refused` before
//! anything is resolved, and an XML body that does not parse (or references an undeclared
//! entity) is 400 `malformed_body`. Its text and attribute values are checked like
//! parameters, named by path (`/order/item/@sku`). Bodies of any other type (plain text,
//! binary) are not inspected: without a structure there is no field to name, and scanning
//! opaque payloads whole would refuse more honest requests than it stops attacks.
//!
//! Refusals are 400 `sql_injection`, `xss_detected`, `path_traversal` or `command_injection`
//! naming the field; their message says which rule matched and never repeats the value. Each
//! detector can be turned off (`sql`, `xss`, `traversal`, `command`).
//!
//! # What it must not do
//!
//! It never changes a request (no sanitising: a value is passed on as it came, or refused),
//! keeps no state between requests, and decides nothing about permissions.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use quick_xml::events::Event;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use crate::params::{BodyKind, FieldValue, Params, Upload, params_of};
use crate::routes::{ConfigError, Routes, config_error, generic_name};
use crate::stage::{Check, Refusal, Stage};

/// Default body limit of the stage.
const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default upload limit.
const DEFAULT_MAX_UPLOAD_BYTES: usize = 1 << 20;
/// Upload types allowed when the configuration names none.
const DEFAULT_ALLOWED_TYPES: [&str; 6] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
];
/// Deepest XML nesting read; deeper documents are refused rather than walked.
const MAX_XML_DEPTH: usize = 256;
/// Rounds of decoding: enough for double encoding plus one layer of another scheme, few
/// enough that a crafted input cannot make decoding expensive.
const DECODING_ROUNDS: usize = 3;
/// Longest name repeated in a refusal.
const SHOWN_NAME_CHARS: usize = 64;

// ---------------------------------------------------------------------------------------
// Findings and sensitivity
// ---------------------------------------------------------------------------------------

/// How eager the detectors are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    /// libinjection and the unambiguous markup rules only: fewest false positives.
    Low,
    /// Adds the rules for encoded, time-based, stacked and breakout attacks; ordinary text
    /// passes.
    #[default]
    Medium,
    /// Also flags bare SQL keyword pairs, any tag and any script call: for fields that
    /// should never hold anything like code.
    High,
}

/// The kind of attack found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attack {
    /// SQL injection.
    SqlInjection,
    /// Cross-site scripting.
    Xss,
    /// A path leaving its folder (`../`, encoded dots) or naming a system file.
    PathTraversal,
    /// A shell or server-side-include command appended to a value.
    CommandInjection,
}

impl Attack {
    /// The refusal code for this attack.
    pub const fn code(self) -> &'static str {
        match self {
            Attack::SqlInjection => "sql_injection",
            Attack::Xss => "xss_detected",
            Attack::PathTraversal => "path_traversal",
            Attack::CommandInjection => "command_injection",
        }
    }

    fn described(self) -> &'static str {
        match self {
            Attack::SqlInjection => "SQL injection",
            Attack::Xss => "cross-site scripting",
            Attack::PathTraversal => "path traversal",
            Attack::CommandInjection => "command injection",
        }
    }
}

/// A way the input was decoded before a rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decoding {
    /// `%XX` sequences.
    Percent,
    /// HTML character references (`&lt;`, `&#60;`, `&#x3c;`).
    Entities,
    /// JavaScript escapes (`\u003c`, `\u{3c}`, `\x3c`).
    Escapes,
    /// NUL characters removed.
    Nul,
}

impl Decoding {
    fn name(self) -> &'static str {
        match self {
            Decoding::Percent => "percent",
            Decoding::Entities => "HTML entity",
            Decoding::Escapes => "escape",
            Decoding::Nul => "NUL",
        }
    }
}

/// What a detector found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The attack.
    pub attack: Attack,
    /// The rule that matched (`libinjection`, `time delay function`, `event handler`, …).
    pub rule: &'static str,
    /// What the rule matched, when it is short and safe to show: a libinjection fingerprint,
    /// a tag or attribute name, a keyword. Never the input itself.
    pub detail: Option<String>,
    /// The decodings applied before the rule matched, in order (empty: the input as given).
    pub decoded: Vec<Decoding>,
}

impl fmt::Display for Finding {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} ({}", self.attack.described(), self.rule)?;
        if let Some(detail) = &self.detail {
            write!(formatter, " `{detail}`")?;
        }
        formatter.write_str(")")?;
        if !self.decoded.is_empty() {
            let names: Vec<&str> = self
                .decoded
                .iter()
                .map(|decoding| decoding.name())
                .collect();
            write!(formatter, " after {} decoding", names.join(", "))?;
        }
        Ok(())
    }
}

/// A rule's match before it knows which decodings led to it.
struct Hit {
    rule: &'static str,
    detail: Option<String>,
}

impl Hit {
    fn new(rule: &'static str) -> Self {
        Self { rule, detail: None }
    }

    fn with(rule: &'static str, detail: impl Into<String>) -> Self {
        Self {
            rule,
            detail: Some(detail.into()),
        }
    }
}

/// SQL injection in `input`, at the default sensitivity.
pub fn sqli(input: &str) -> Option<Finding> {
    sqli_at(input, Sensitivity::Medium)
}

/// Cross-site scripting in `input`, at the default sensitivity.
pub fn xss(input: &str) -> Option<Finding> {
    xss_at(input, Sensitivity::Medium)
}

/// SQL injection in `input` at `sensitivity`.
pub fn sqli_at(input: &str, sensitivity: Sensitivity) -> Option<Finding> {
    Decodings::of(input).sqli(sensitivity)
}

/// Cross-site scripting in `input` at `sensitivity`.
pub fn xss_at(input: &str, sensitivity: Sensitivity) -> Option<Finding> {
    Decodings::of(input).xss(sensitivity)
}

/// A path traversal in `input` at `sensitivity` (nothing at `low`).
pub fn traversal_at(input: &str, sensitivity: Sensitivity) -> Option<Finding> {
    Decodings::of(input).traversal(sensitivity)
}

/// A command injection in `input` at `sensitivity` (nothing at `low`).
pub fn command_at(input: &str, sensitivity: Sensitivity) -> Option<Finding> {
    Decodings::of(input).command(sensitivity)
}

/// One form of an input the detectors look at: as sent, or after some rounds of decoding.
struct Form<'a> {
    text: Cow<'a, str>,
    /// Whether the text is plain ([`is_plain`]), read once for every detector and rule set.
    plain: bool,
    /// The decodings that led to this form, each named once, in the order first applied.
    decoded: Vec<Decoding>,
}

/// An input and each further decoding of it, made once for every detector that looks at it.
struct Decodings<'a> {
    forms: Vec<Form<'a>>,
}

impl<'a> Decodings<'a> {
    fn of(input: &'a str) -> Self {
        let plain = is_plain(input);
        let mut forms = vec![Form {
            text: Cow::Borrowed(input),
            plain,
            decoded: Vec::new(),
        }];
        // Plain text holds none of the bytes a decoding starts at.
        if !plain {
            for _ in 0..DECODING_ROUNDS {
                let Some(last) = forms.last() else { break };
                let Some((next, applied)) = decode_once(&last.text) else {
                    break;
                };
                let mut decoded = last.decoded.clone();
                for decoding in applied {
                    if !decoded.contains(&decoding) {
                        decoded.push(decoding);
                    }
                }
                forms.push(Form {
                    plain: is_plain(&next),
                    text: Cow::Owned(next),
                    decoded,
                });
            }
        }
        Self { forms }
    }

    /// Whether the input as sent is plain text.
    fn plain(&self) -> bool {
        self.forms.first().is_some_and(|form| form.plain)
    }

    /// The first form `rules` hit, as a finding of `attack`.
    fn find(&self, attack: Attack, rules: impl Fn(&str, bool) -> Option<Hit>) -> Option<Finding> {
        self.forms.iter().find_map(|form| {
            rules(&form.text, form.plain).map(|hit| Finding {
                attack,
                rule: hit.rule,
                detail: hit.detail,
                decoded: form.decoded.clone(),
            })
        })
    }

    fn sqli(&self, sensitivity: Sensitivity) -> Option<Finding> {
        self.find(Attack::SqlInjection, |text, plain| {
            sql_hit(text, plain, sensitivity)
        })
    }

    fn xss(&self, sensitivity: Sensitivity) -> Option<Finding> {
        self.find(Attack::Xss, |text, plain| xss_hit(text, plain, sensitivity))
    }

    fn traversal(&self, sensitivity: Sensitivity) -> Option<Finding> {
        if sensitivity == Sensitivity::Low {
            return None;
        }
        self.find(Attack::PathTraversal, |text, plain| {
            TRAVERSAL_RULES.first(text, plain)
        })
    }

    fn command(&self, sensitivity: Sensitivity) -> Option<Finding> {
        if sensitivity == Sensitivity::Low {
            return None;
        }
        self.find(Attack::CommandInjection, |text, plain| {
            COMMAND_RULES.first(text, plain)
        })
    }
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// One round of every decoding; answers the text and the decodings that changed it, or
/// `None` when none did.
fn decode_once(text: &str) -> Option<(String, Vec<Decoding>)> {
    // Every decoding starts at one of these; text without them is left as it is.
    if !text
        .bytes()
        .any(|byte| matches!(byte, b'%' | b'&' | b'\\' | b'\0'))
    {
        return None;
    }
    let mut applied = Vec::new();
    let mut current = text.to_owned();
    if current.contains('%') {
        let next = percent_encoding::percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
        if next != current {
            applied.push(Decoding::Percent);
            current = next;
        }
    }
    if current.contains('&') {
        let next = decode_entities(&current);
        if next != current {
            applied.push(Decoding::Entities);
            current = next;
        }
    }
    if current.contains('\\') {
        let next = decode_escapes(&current);
        if next != current {
            applied.push(Decoding::Escapes);
            current = next;
        }
    }
    if current.contains('\0') {
        applied.push(Decoding::Nul);
        current = current.replace('\0', "");
    }
    (!applied.is_empty()).then_some((current, applied))
}

/// Character references decoded the lenient way browsers do: numeric ones with or without
/// the `;` and with any number of leading zeros (`&#0000060`), then the named ones.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("&#") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let (hex, digits_at) = match after.as_bytes().first() {
            Some(b'x' | b'X') => (true, 1),
            _ => (false, 0),
        };
        let digits: &str = &after[digits_at..];
        let length = digits
            .bytes()
            .take_while(|byte| {
                if hex {
                    byte.is_ascii_hexdigit()
                } else {
                    byte.is_ascii_digit()
                }
            })
            .count();
        let value = (length > 0)
            .then(|| {
                let significant = digits[..length].trim_start_matches('0');
                if significant.len() > 8 {
                    return None;
                }
                u32::from_str_radix(
                    if significant.is_empty() {
                        "0"
                    } else {
                        significant
                    },
                    if hex { 16 } else { 10 },
                )
                .ok()
            })
            .flatten()
            .and_then(char::from_u32);
        match value {
            Some(character) => {
                out.push(character);
                let mut consumed = digits_at + length;
                if after[consumed..].starts_with(';') {
                    consumed += 1;
                }
                rest = &after[consumed..];
            }
            None => {
                out.push_str("&#");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    html_escape::decode_html_entities(&out).into_owned()
}

/// JavaScript (and JSON) escapes: `\uXXXX`, `\u{X…}`, `\xXX`; other backslashes stay.
fn decode_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\\') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let decoded = if let Some(braced) = after.strip_prefix("u{") {
            // At most six digits: a `}` further away is no escape's (and looking no further
            // keeps decoding linear).
            braced
                .bytes()
                .take(7)
                .position(|byte| byte == b'}')
                .and_then(|end| {
                    let digits = &braced[..end];
                    (!digits.is_empty() && digits.len() <= 6)
                        .then(|| u32::from_str_radix(digits, 16).ok())
                        .flatten()
                        .and_then(char::from_u32)
                        .map(|character| (character, 2 + end + 1))
                })
        } else if let Some(digits) = after.strip_prefix('u') {
            hex_char(digits, 4).map(|character| (character, 5))
        } else if let Some(digits) = after.strip_prefix('x') {
            hex_char(digits, 2).map(|character| (character, 3))
        } else if after.starts_with(|c: char| ('0'..='7').contains(&c)) {
            // Legacy octal escapes of JavaScript strings: `\74` is `<`, `\0` is NUL.
            let length = after
                .bytes()
                .take(3)
                .take_while(|byte| (b'0'..=b'7').contains(byte))
                .count();
            u32::from_str_radix(&after[..length], 8)
                .ok()
                .filter(|value| *value <= 0o377)
                .and_then(char::from_u32)
                .map(|character| (character, length))
        } else {
            None
        };
        match decoded {
            Some((character, consumed)) => {
                out.push(character);
                rest = &after[consumed..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character written as exactly `count` hex digits at the start of `text`.
fn hex_char(text: &str, count: usize) -> Option<char> {
    let digits = text.get(..count)?;
    if !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16)
        .ok()
        .and_then(char::from_u32)
}

// ---------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------

/// Compiled rules; a pattern that does not compile is left out, and the module's tests
/// check that none is. Each is tried in turn (most carry literals the regex engine searches for
/// first, which one set of all of them would not), except that a rule that cannot match plain
/// text ([`is_plain`]) is not tried on plain text, and that long text is first searched for all
/// of them at once.
struct RuleSet {
    rules: Vec<Rule>,
    /// Every rule at once, asked first about long text, where one pass over it costs less than
    /// a pass per rule; on short text the passes per rule, each led by its literals, cost less.
    any: Option<RegexSet>,
}

/// The length from which a text is first searched for every rule at once.
const LONG_TEXT: usize = 256;

/// One compiled rule.
struct Rule {
    name: &'static str,
    regex: Regex,
    /// Whether some plain text can hold a match: when not, plain text skips the rule.
    on_plain: bool,
}

impl Rule {
    fn compile(name: &'static str, pattern: &str) -> Option<Self> {
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(true)
            .build()
            .ok()?;
        Some(Self {
            name,
            regex,
            on_plain: matches_plain(pattern),
        })
    }

    /// Whether the rule matches `text`, which is plain when `plain`.
    fn is_match(&self, text: &str, plain: bool) -> bool {
        (self.on_plain || !plain) && self.regex.is_match(text)
    }
}

impl RuleSet {
    fn compile(patterns: &[(&'static str, &'static str)]) -> Self {
        let rules: Vec<Rule> = patterns
            .iter()
            .filter_map(|(name, pattern)| Rule::compile(name, pattern))
            .collect();
        let any = RegexSetBuilder::new(rules.iter().map(|rule| rule.regex.as_str()))
            .case_insensitive(true)
            .build()
            .ok();
        Self { rules, any }
    }

    /// The first rule that matches `text`, which is plain when `plain` ([`is_plain`]).
    fn first(&self, text: &str, plain: bool) -> Option<Hit> {
        if text.len() >= LONG_TEXT
            && let Some(any) = &self.any
            && !any.is_match(text)
        {
            return None;
        }
        self.rules
            .iter()
            .find(|rule| rule.is_match(text, plain))
            .map(|rule| Hit::new(rule.name))
    }
}

/// The bytes of plain text: ASCII letters and digits, `_`, space, `-`, `.` and `,`, what most
/// benign parameter names and values are made of (words, numbers, dates, decimals).
fn is_plain_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b' ' | b'-' | b'.' | b',')
}

/// Whether every byte of `text` is plain (see [`is_plain_byte`]).
fn is_plain(text: &str) -> bool {
    text.bytes().all(is_plain_byte)
}

/// Whether a rule (compiled case-insensitively) can match inside plain text: whether its
/// language holds a string of plain bytes only, look-arounds taken as always satisfied. That
/// over-approximates, so `false` is a proof: no plain text holds a match (a search matches a
/// substring of the text, made of the text's bytes). A pattern that does not parse is taken as
/// able to match.
fn matches_plain(pattern: &str) -> bool {
    regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(pattern)
        .map_or(true, |hir| hir_matches_plain(&hir))
}

fn hir_matches_plain(hir: &regex_syntax::hir::Hir) -> bool {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(literal) => literal.0.iter().copied().all(is_plain_byte),
        HirKind::Class(Class::Unicode(class)) => {
            (0..=127u8).filter(|b| is_plain_byte(*b)).any(|byte| {
                class.ranges().iter().any(|range| {
                    range.start() <= char::from(byte) && char::from(byte) <= range.end()
                })
            })
        }
        HirKind::Class(Class::Bytes(class)) => {
            (0..=127u8).filter(|b| is_plain_byte(*b)).any(|byte| {
                class
                    .ranges()
                    .iter()
                    .any(|range| range.start() <= byte && byte <= range.end())
            })
        }
        HirKind::Repetition(repetition) => {
            repetition.min == 0 || hir_matches_plain(&repetition.sub)
        }
        HirKind::Capture(capture) => hir_matches_plain(&capture.sub),
        HirKind::Concat(parts) => parts.iter().all(hir_matches_plain),
        HirKind::Alternation(parts) => parts.iter().any(hir_matches_plain),
    }
}

/// Path traversal rules (`medium` and `high`). None can match plain text, so ordinary words,
/// numbers and decimals never reach them.
const TRAVERSAL: &[(&str, &str)] = &[
    (
        "dot-dot segment",
        r"(?:^|[/\\])\.{2,}(?:[/\\]|$)|[/\\]\.{3,}",
    ),
    (
        "encoded dot or separator",
        r"0x2e0x2e|\.\.0x(?:2f|5c)|0x2e[/\\]|%c0%a[ef]|%c1%9c|%u(?:002e|2215|2216)|\.\.%(?:2f|5c)",
    ),
    (
        "system file",
        r"[/\\](?:etc[/\\]+(?:passwd|shadow|group|hosts|issue)|proc[/\\]+self[/\\]|windows[/\\]+win\.ini|boot\.ini)|\bweb-inf[/\\]|[a-z]:[/\\]?\w*\.ini\b",
    ),
    ("repeated separators", r"^[/\\]{4,}|[/\\]{6,}"),
    (
        "current-folder chain",
        r"(?:^|[/\\])\.[/\\](?:\.[/\\]|\.{0,2}$|\.\.)",
    ),
];

/// Command injection rules (`medium` and `high`): a command after a shell separator, a system
/// binary by path, a server-side include. None can match plain text.
const COMMAND: &[(&str, &str)] = &[
    (
        "command after a separator",
        r"(?:[;|\x60]|&&|\$\()[\s+]*(?:/(?:usr/)?s?bin/)?(?-i:(?:id|whoami|uname|ifconfig|ipconfig|systeminfo|hostname|pwd|bash|sh|zsh|cmd|powershell)(?:[\s+|;&\x60)]|$)|(?:cat|ls|dir|type|echo|bash|sh|cmd|powershell|wget|curl|nc|ncat|netcat|ping|sleep|nslookup|rm|chmod)[\s+]+(?:[-/\\.~$'\x22]|[a-z]:|https?:)|(?:sleep|ping|nc|ncat|netcat)[\s+]+\d|net[\s+]+user\b)",
    ),
    ("system binary", r"(?:^|[^\w/.\-])/(?:usr/)?s?bin/[a-z]"),
    ("windows listing", r"\bdir[\s+]+[a-z]:"),
    ("ping with a count", r"[&;|][\s+]*ping[\s+]+-[nc][\s+]+\d"),
    (
        "server-side include",
        r"<!--[\s+]*#[\s+]*(?:exec|include|echo|config|printenv|fsize|flastmod)\b",
    ),
];

static TRAVERSAL_RULES: LazyLock<RuleSet> = LazyLock::new(|| RuleSet::compile(TRAVERSAL));
static COMMAND_RULES: LazyLock<RuleSet> = LazyLock::new(|| RuleSet::compile(COMMAND));

/// SQL rules added at `medium`, run on the text with comments folded into spaces.
const SQL_MEDIUM: &[(&str, &str)] = &[
    (
        "time delay function",
        r"\b(?:pg_sleep|benchmark|dbms_lock\.sleep|sys\.dbms_session\.sleep)\s*\(|\bsleep\s*\(\s*(?:\d+(?:\.\d+)?\s*\)|@|\(|select\b)",
    ),
    (
        "time delay statement",
        r#"\bwaitfor\s+(?:delay|time)\s*['"\d]"#,
    ),
    (
        "union select",
        r"\bunion(?:\s+(?:all|distinct))?[\s(]*select\b",
    ),
    (
        "stacked statement",
        r"[;')]\s*(?:drop\s+(?:table|database|schema|user|view|procedure|function)\b|truncate\s+table\b|alter\s+(?:table|user|database)\b|delete\s+from\b|insert\s+into\b|update\s+[\w.\x60\x22\[\]]+\s+set\b|shutdown\b|exec(?:ute)?\s+(?:master\.|xp_|sp_|immediate\b|\()|declare\s+@|create\s+(?:table|user|database|procedure|function|trigger)\b|select\b[^;]*\bfrom\b)",
    ),
    (
        "catalog object",
        r"\b(?:information_schema|sysobjects|syscolumns|sysusers|sqlite_master|sqlite_schema|pg_shadow|pg_user|mysql\.user|xp_cmdshell|xp_regread|xp_dirtree|sp_executesql|sp_oacreate|sp_makewebtask|dbms_pipe|utl_http|utl_inaddr|load_file|msysobjects|msysaccessobjects|all_users|all_tables|all_tab_columns|user_tables|dba_users|pg_catalog|pg_database|sysdatabases|sysibm\.\w+|syscat\.\w+|rdb\$\w+|sysmaster:\w*|ctxsys\.\w+|domain\.(?:domains|columns|tables))(?:\b|$)|@@(?:version|datadir|hostname|basedir|servername|tmpdir)\b|\binto\s+(?:out|dump)file\b",
    ),
    (
        "error-based function",
        r"\b(?:extractvalue|updatexml|name_const|geometrycollection|multipoint|polygon|linestring|exp|floor|json_keys|gtid_subset)\s*\(\s*(?:0x|\(|select\b|rand\b|concat\b|char\b|version\b|user\b|database\b|@@|~)",
    ),
    (
        "string building function",
        r"\b(?:concat(?:_ws)?|group_concat|char|chr|nchar)\s*\(\s*(?:0x[0-9a-f]+|\d+\s*,\s*\d+\s*,|select\b|@@|database\s*\(|user\s*\(|version\s*\()",
    ),
    (
        "heavy query",
        r"\b(?:repeat|randomblob|zeroblob|replicate|rpad|lpad|space|generate_series)\s*\([^;]{0,80}?\b\d{7,}\b|\bcrypt_key\s*\(",
    ),
    (
        "constant condition in a function",
        r"\b(?:elt|make_set|if|iif|nullif|ifnull|field)\s*\(\s*\(?\s*\d+\s*(?:=|<>|!=|<|>)\s*\d+\s*\)?\s*,",
    ),
    (
        "case on a constant condition",
        r"\bcase\s+when\s*\(*\s*\d+\s*(?:=|<>|!=|<=?|>=?)\s*\d+\s*\)*\s*then\b|\bcase\s+\d+\s+when\s+\d+\s+then\b",
    ),
    (
        "constant comparison then comment",
        r"\b(?:and|or|xor|where|having|not)\s+\(*\s*\d+\s*(?:=|<>|!=|<|>)\s*\(*\s*\d+\s*\)*\s*(?:--|#|/\*|;)",
    ),
    (
        "constant product condition",
        r"\(\s*\d+\s*(?:=|<>|!=)\s*\d+\s*\)\s*\*\s*\d+",
    ),
    (
        "clause breakout",
        r#"(?:^|['"\x60)\]])\s*\)*\s*(?:(?:order|group)\s+by\s+\d+(?:\s*,\s*\d+)*\s*(?:--|#|/\*|;)|having\s+\d+\s*(?:=|<>|!=|<|>)\s*\d+\s*(?:--|#|/\*|;|$))"#,
    ),
    (
        "quote-breaking condition",
        r#"['"\x60](?:\s*in\s+(?:boolean|natural\s+language)\s+mode\b)?\s*\)*\s*(?:or|and|xor|\|\||&&|rlike\b|regexp\b)\s*\(*\s*(?:not\s+)?(?:['"\x60]?[\w.]*['"\x60]?\s*(?:=|<>|!=|<=?|>=?|\blike\b|\brlike\b|\bregexp\b|\bis\b|\bin\s*\(|\bbetween\b)|true\b|false\b|null\b|\d+\s*(?:--|#|/\*|$|;|\)))"#,
    ),
    (
        "constant condition then comment",
        r"\b(?:or|and|xor)\s+(?:not\s+)?(?:true|false|null)\s*(?:--|#|/\*|;)",
    ),
    (
        "quote then trailing comment",
        r#"['"\x60]\s*\)*\s*(?:--|#|/\*)[\s-]*$"#,
    ),
    (
        "quote-breaking statement",
        r#"['"\x60](?:\s*in\s+(?:boolean|natural\s+language)\s+mode\b)?\s*\)*\s*(?:;|\bunion\b|\border\s+by\b|\bgroup\s+by\b|\bhaving\b|\bprocedure\s+analyse\b)"#,
    ),
];

/// SQL rules added at `high`.
const SQL_HIGH: &[(&str, &str)] = &[
    ("select from", r"\bselect\b.+\bfrom\b"),
    ("insert into", r"\binsert\s+into\b"),
    ("delete from", r"\bdelete\s+from\b"),
    ("drop", r"\bdrop\s+(?:table|database|schema)\b"),
    ("update set", r"\bupdate\b.+\bset\b"),
    ("union select", r"\bunion\b.+\bselect\b"),
    (
        "boolean condition",
        r"\b(?:or|and)\s+['\x22]?\w+['\x22]?\s*(?:=|<|>|!=|<>)",
    ),
    ("quote then comment", r#"['"\x60]\s*\)*\s*(?:--|#|/\*)"#),
    ("quote then keyword", r#"['"\x60]\s*\)*\s*(?:or|and|xor)\b"#),
    ("stored procedure call", r"\bexec(?:ute)?\s*[\s(]"),
];

static SQL_MEDIUM_RULES: LazyLock<RuleSet> = LazyLock::new(|| RuleSet::compile(SQL_MEDIUM));
static SQL_HIGH_RULES: LazyLock<RuleSet> = LazyLock::new(|| RuleSet::compile(SQL_HIGH));

/// `OR 1=1`-style tautologies: the same operand on both sides (the regex crate has no
/// back-references, so the comparison is made here).
static TAUTOLOGY: LazyLock<Option<Rule>> = LazyLock::new(|| {
    Rule::compile(
        "tautology",
        r#"\b(?:or|and|xor|\|\||&&)\s+\(*\s*['"]?(\w+)['"]?\s*(?:=|like)\s*['"]?(\w+)['"]?"#,
    )
});

/// A `WHERE n = n` clause appended to a query (sqlmap's boundary): after a closing quote,
/// parenthesis or bracket, an alias, or a lone number at the start, or ended by a comment, a
/// `;` or another clause. "where 2 = 2 people met" has none of these.
static WHERE_TAUTOLOGY: LazyLock<Option<Rule>> = LazyLock::new(|| {
    Rule::compile(
        "where tautology",
        r#"(?:(?:^\s*-?\d+|['"\x60)\]]|\bas\s+\w+)\s*\)*\s*\bwhere\s+\(*\s*(\d+)\s*=\s*(\d+)\b|\bwhere\s+\(*\s*(\d+)\s*=\s*(\d+)\s*\)*\s*(?:$|--|#|/\*|;|\b(?:and|or|xor|order|group|having|limit|union)\b))"#,
    )
});

fn sql_hit(text: &str, plain: bool, sensitivity: Sensitivity) -> Option<Hit> {
    if !one_sql_token(text) {
        let detection = libinjectionrs::detect_sqli(text.as_bytes());
        if detection.is_injection() && !arithmetic_only(detection.fingerprint.as_ref(), text) {
            return Some(match detection.fingerprint {
                Some(fingerprint) => Hit::with("libinjection fingerprint", fingerprint.to_string()),
                None => Hit::new("libinjection"),
            });
        }
    }
    if sensitivity == Sensitivity::Low {
        return None;
    }
    let folded = fold_sql_comments(text);
    // Folding only happens on a `/*`, which plain text lacks.
    let plain = plain && matches!(folded, Cow::Borrowed(_));
    if let Some(hit) = SQL_MEDIUM_RULES.first(&folded, plain) {
        return Some(hit);
    }
    if let Some(tautology) = TAUTOLOGY.as_ref().filter(|rule| rule.on_plain || !plain) {
        for captures in tautology.regex.captures_iter(&folded) {
            if let (Some(left), Some(right)) = (captures.get(1), captures.get(2))
                && left.as_str().eq_ignore_ascii_case(right.as_str())
                // `or a = a` in prose needs a quote or a comment to be an attack; numbers
                // compared with themselves are an attack already.
                && (left.as_str().bytes().all(|byte| byte.is_ascii_digit())
                    || text.contains(['\'', '"', '`', '#'])
                    || text.contains("--")
                    || text.contains("/*")
                    || starts_with_connective(text))
            {
                return Some(Hit::new("tautology"));
            }
        }
    }
    if let Some(clause) = WHERE_TAUTOLOGY
        .as_ref()
        .filter(|rule| rule.on_plain || !plain)
    {
        for captures in clause.regex.captures_iter(&folded) {
            let pair = captures
                .get(1)
                .zip(captures.get(2))
                .or_else(|| captures.get(3).zip(captures.get(4)));
            if let Some((left, right)) = pair
                && left.as_str() == right.as_str()
            {
                return Some(Hit::new("where tautology"));
            }
        }
    }
    if sensitivity == Sensitivity::High {
        return SQL_HIGH_RULES.first(&folded, plain);
    }
    None
}

/// Whether libinjection reads `text` as one token that it never takes for an injection: a word
/// of ASCII letters and `_` (a name, a keyword or a function name alone), or a number of ASCII
/// digits. Most parameter names and many values are one, and libinjection's tokenizer costs
/// more than the rest of the SQL rules on them; a property test holds the crate to this.
fn one_sql_token(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && (bytes
            .iter()
            .all(|byte| byte.is_ascii_alphabetic() || *byte == b'_')
            || bytes.iter().all(u8::is_ascii_digit))
}

/// Whether a libinjection match is only numbers, parentheses and operators with no quote
/// or comment in the text: a phone number `(0230)-558129` or a sum `(2+3)*4`, which cannot
/// leave a quoted or numeric context on its own.
fn arithmetic_only(fingerprint: Option<&impl fmt::Display>, text: &str) -> bool {
    fingerprint.is_some_and(|fingerprint| {
        fingerprint
            .to_string()
            .bytes()
            .all(|byte| matches!(byte, b'1' | b'(' | b')' | b'o'))
    }) && !text.contains(['\'', '"', '`', '#', ';'])
        && !text.contains("--")
        && !text.contains("/*")
}

/// Whether the value itself starts with `or`/`and` (after quotes and parentheses): a
/// condition written to be appended to a query, as in `or a = a`.
fn starts_with_connective(text: &str) -> bool {
    let rest = text.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '(' | ')')
    });
    let word: String = rest
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(word.as_str(), "or" | "and" | "xor")
}

/// The text with `/* … */` comments turned into a space (MySQL's executable `/*!50000 … */`
/// comments keep their content, as MySQL runs it), so `UNION/**/SELECT` reads as two words.
fn fold_sql_comments(text: &str) -> Cow<'_, str> {
    if !text.contains("/*") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        out.push(' ');
        let inside = &rest[start + 2..];
        if let Some(executable) = inside.strip_prefix('!') {
            let version_digits = executable.bytes().take_while(u8::is_ascii_digit).count();
            rest = &executable[version_digits..];
            continue;
        }
        match inside.find("*/") {
            Some(end) => rest = &inside[end + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    // The closing marks of executable comments.
    Cow::Owned(out.replace("*/", " "))
}

/// Tags that run script or load active content by themselves.
const SCRIPT_TAGS: &[&str] = &["script", "iframe", "object", "embed", "applet"];

/// Tags that can run script through their content or attributes, added at `medium`.
const ACTIVE_TAGS: &[&str] = &[
    "frame",
    "frameset",
    "svg",
    "math",
    "style",
    "base",
    "link",
    "meta",
    "xml",
    "xss",
    "import",
    "isindex",
    "layer",
    "ilayer",
    "bgsound",
    "portal",
    "template",
    "noscript",
    "animate",
    "set",
    "handler",
    "listener",
    "vmlframe",
    "xmp",
    "plaintext",
    "foreignobject",
];

/// Event-handler names (without the `on`), for handlers written outside a tag (breaking out
/// of an attribute), where a generic `on…=` would catch words like `online=`.
const EVENT_NAMES: &[&str] = &[
    "abort",
    "activate",
    "afterprint",
    "afterscriptexecute",
    "animationcancel",
    "animationend",
    "animationiteration",
    "animationstart",
    "auxclick",
    "beforeactivate",
    "beforecopy",
    "beforecut",
    "beforedeactivate",
    "beforeinput",
    "beforepaste",
    "beforeprint",
    "beforescriptexecute",
    "beforetoggle",
    "beforeunload",
    "begin",
    "blur",
    "bounce",
    "cancel",
    "canplay",
    "canplaythrough",
    "change",
    "click",
    "close",
    "contextmenu",
    "copy",
    "cuechange",
    "cut",
    "dblclick",
    "deactivate",
    "drag",
    "dragend",
    "dragenter",
    "dragexit",
    "dragleave",
    "dragover",
    "dragstart",
    "drop",
    "durationchange",
    "emptied",
    "end",
    "ended",
    "error",
    "finish",
    "focus",
    "focusin",
    "focusout",
    "formdata",
    "fullscreenchange",
    "hashchange",
    "help",
    "input",
    "invalid",
    "keydown",
    "keypress",
    "keyup",
    "load",
    "loadeddata",
    "loadedmetadata",
    "loadend",
    "loadstart",
    "message",
    "mousedown",
    "mouseenter",
    "mouseleave",
    "mousemove",
    "mouseout",
    "mouseover",
    "mouseup",
    "mousewheel",
    "pagehide",
    "pageshow",
    "paste",
    "pause",
    "play",
    "playing",
    "pointercancel",
    "pointerdown",
    "pointerenter",
    "pointerleave",
    "pointermove",
    "pointerout",
    "pointerover",
    "pointerrawupdate",
    "pointerup",
    "popstate",
    "progress",
    "propertychange",
    "ratechange",
    "readystatechange",
    "repeat",
    "reset",
    "resize",
    "scroll",
    "scrollend",
    "search",
    "securitypolicyviolation",
    "seeked",
    "seeking",
    "select",
    "selectionchange",
    "selectstart",
    "show",
    "start",
    "storage",
    "submit",
    "suspend",
    "timeupdate",
    "toggle",
    "touchend",
    "touchmove",
    "touchstart",
    "transitioncancel",
    "transitionend",
    "transitionrun",
    "transitionstart",
    "unload",
    "volumechange",
    "waiting",
    "webkitanimationend",
    "webkitanimationiteration",
    "webkitanimationstart",
    "webkittransitionend",
    "wheel",
];

/// Script-ish rules added at `medium`, on the whole text.
const XSS_MEDIUM: &[(&str, &str)] = &[
    ("closing script tag", r"</\s*script\b"),
    (
        "script call breaking out of a string",
        r#"['"\x60]\s*(?:[;,)}\]+\-*/|&^%?:]|\binstanceof\b|\bin\b)+\s*(?:(?:window|self|top|this|parent|globalThis|frames)\s*(?:\.|\[\s*['"\x60]))?\s*(?:alert|prompt|confirm|eval|print|fetch|import|settimeout|setinterval|function|atob|open)\s*(?:\(|\x60)"#,
    ),
    (
        "script object access",
        r"\b(?:document\s*\.\s*(?:cookie|domain|write(?:ln)?|location)|window\s*\.\s*(?:location|name|open)|string\s*\.\s*fromcharcode|localstorage\s*\.|sessionstorage\s*\.)\b",
    ),
    (
        "css expression",
        r"\bexpression\s*\(|-moz-binding\s*:|\bbehavior\s*:\s*url\s*\(",
    ),
    (
        "script call",
        r"\b(?:alert|prompt|confirm|eval|settimeout|setinterval|setimmediate|execscript|globaleval)(?:\s*\x60|\((?:\)|[^)\s]))",
    ),
    (
        "script function as a value",
        r"\(\s*(?:alert|prompt|confirm|eval)\s*\)\s*[(\x60]|[,:=\[](?:alert|prompt|confirm|eval)\s*[)\]},;]|\(\s*\d+\s*,\s*(?:alert|prompt|confirm|eval)\s*\)",
    ),
    (
        "function expression",
        r"(?:^|[!~+\-,(;=&|?:]|\bvoid|\bnew|\btypeof|\breturn)\s*function\s*[\w$]*\s*\([^)]*\)\s*\{",
    ),
    (
        "constructor chain",
        r"\bconstructor\s*(?:\.\s*constructor\b|\(|\[)|\[\s*['\x22\x60]constructor['\x22\x60]\s*\]|\b__proto__\b|\bfunction\s*\(\s*['\x22\x60]|\.prototype\.[\w$]+\s*=",
    ),
    (
        "script property by name",
        r"\b(?:top|parent|self|window|frames|globalThis|document|this)\s*\[\s*['\x22\x60/]",
    ),
    (
        "DOM sink",
        r"\.\s*(?:inner|outer)html\s*\+?=|\binsertadjacenthtml\s*\(|\bdangerouslysetinnerhtml\b|\bnew\s+(?:function|worker|sharedworker)\s*\(|\bimport\s*\(\s*['\x22\x60]?data:|\bwindow\s*\.\s*(?:opener|top|parent|onmessage|addeventlistener|postmessage)\b|\blocation\s*\.\s*(?:hash|search|href)\b|\.\s*set(?:attribute(?:ns)?)\s*\([^)]*['\x22\x60]on[a-z]+['\x22\x60]",
    ),
    (
        "arrow function handler",
        r"\bon[a-z]{3,}\s*=\s*(?:\(\s*[\w$,\s]*\)|[\w$]+)\s*=>",
    ),
    (
        "obfuscated script",
        r"\(\s*!\s*\[\s*\]\s*\+\s*\[\s*\]\s*\)|!\s*\+\s*\[\s*\]|\b(?:alert|prompt|confirm|eval|write(?:ln)?|open)\s*\x60",
    ),
    (
        "template expression",
        r"\$\{[^}\n]*[(.*+\[|'\x22][^}\n]*\}|[#*]\{[^}\n]*[(.*+\[][^}\n]*\}|\{\{[^\n]*?[(.*|\[_'\x22$+][^\n]*?\}\}|<%=?[^%]*[(.*+'\x22][^%]*%>|\{%-?\s*(?:for|if|import|load|set|include|extends|raw|macro|csrf_token)\b|\{!!.*!!\}|<#(?:assign|import|include)\b|#set\s*\(\s*\$",
    ),
    (
        "markdown script link",
        r"\]\(\s*(?:javascript|vbscript|livescript|data|file)\s*:[^)\s]*[(\x60]|\]:\s*(?:javascript|vbscript|livescript|data|file)\s*:\S*[(\x60]",
    ),
    (
        "PDF script action",
        r"/S\s*/(?:javascript|launch)\b|/JS\s*[(<]",
    ),
];

/// Script-ish rules added at `high`.
const XSS_HIGH: &[(&str, &str)] = &[
    (
        "script call",
        r"\b(?:alert|prompt|confirm|eval|settimeout|setinterval|atob)\s*(?:\(|\x60)",
    ),
    ("event handler", r"\bon[a-z]{3,}\s*="),
    ("script url", r"\b(?:java|vb|live)script\s*:"),
];

static XSS_MEDIUM_RULES: LazyLock<RuleSet> = LazyLock::new(|| RuleSet::compile(XSS_MEDIUM));
static XSS_HIGH_RULES: LazyLock<RuleSet> = LazyLock::new(|| RuleSet::compile(XSS_HIGH));

/// An event handler outside a tag: after a quote, space or slash (the attribute being
/// broken out of), then `=`.
static HANDLER_OUTSIDE_TAG: LazyLock<Option<Rule>> = LazyLock::new(|| {
    Rule::compile(
        "event handler outside a tag",
        r#"[\s"'\x60/;]on([a-z]+)\s*=\s*(.?)"#,
    )
});

fn xss_hit(text: &str, plain: bool, sensitivity: Sensitivity) -> Option<Hit> {
    // libinjection's XSS verdicts all come from a tag, a comment or a doctype (`<`) or from an
    // attribute given a value (`=`): text with neither is not parsed (see the property test).
    if text.contains(['<', '=']) && libinjectionrs::detect_xss(text.as_bytes()).is_injection() {
        return Some(Hit::new("libinjection"));
    }
    if let Some(hit) = markup_hit(text, sensitivity) {
        return Some(hit);
    }
    if sensitivity == Sensitivity::Low {
        return None;
    }
    if let Some(hit) = script_url(text, true) {
        return Some(hit);
    }
    // Every match of the rule holds its `=`.
    if let Some(handler) = HANDLER_OUTSIDE_TAG
        .as_ref()
        .filter(|rule| (rule.on_plain || !plain) && text.contains('='))
    {
        let quoted = text.contains(['"', '\'', '`', '<', '>']);
        for captures in handler.regex.captures_iter(text) {
            let (Some(event), Some(next)) = (captures.get(1), captures.get(2)) else {
                continue;
            };
            let event = event.as_str().to_ascii_lowercase();
            // Breaking out needs a quote somewhere, or a value that is code already.
            let code_like = quoted
                || matches!(next.as_str(), "\"" | "'" | "`")
                || text[next.start()..].contains(['(', '`', '=']);
            if EVENT_NAMES.contains(&event.as_str()) && code_like {
                return Some(Hit::with(
                    "event handler outside a tag",
                    format!("on{event}"),
                ));
            }
        }
    }
    if let Some(hit) = XSS_MEDIUM_RULES.first(text, plain) {
        return Some(hit);
    }
    if sensitivity == Sensitivity::High {
        return XSS_HIGH_RULES.first(text, plain);
    }
    None
}

/// Scans `text` for tags the way a lenient HTML parser would: `<` then a letter opens a tag;
/// attributes are read up to `>` or the end (an unclosed tag still counts: the page around
/// an injection closes it).
fn markup_hit(text: &str, sensitivity: Sensitivity) -> Option<Hit> {
    let bytes = text.as_bytes();
    let mut position = 0;
    while let Some(offset) = memchr_lt(&bytes[position..]) {
        let open = position + offset;
        position = open + 1;
        let mut cursor = open + 1;
        if bytes.get(cursor) == Some(&b'/') {
            cursor += 1;
        }
        if !bytes.get(cursor).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let name_start = cursor;
        while bytes
            .get(cursor)
            .is_some_and(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b':' | b'_'))
        {
            cursor += 1;
        }
        let name = text[name_start..cursor].to_ascii_lowercase();
        // Namespaced tags (`svg:script`) act as their local name.
        let local = name.rsplit(':').next().unwrap_or(&name).to_owned();
        if SCRIPT_TAGS.contains(&local.as_str()) {
            return Some(Hit::with("script tag", local));
        }
        if sensitivity >= Sensitivity::Medium && ACTIVE_TAGS.contains(&local.as_str()) {
            return Some(Hit::with("active tag", local));
        }
        let (attributes, end) = read_attributes(text, cursor);
        for (attribute, value) in &attributes {
            if let Some(hit) = attribute_hit(attribute, value.as_deref(), sensitivity) {
                return Some(hit);
            }
        }
        if sensitivity == Sensitivity::High {
            return Some(Hit::with("tag", local));
        }
        position = end.max(position);
    }
    None
}

fn memchr_lt(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&byte| byte == b'<')
}

/// The attributes of a tag whose name ends at `from`, and where the tag ends.
fn read_attributes(text: &str, from: usize) -> (Vec<(String, Option<String>)>, usize) {
    let bytes = text.as_bytes();
    let mut attributes = Vec::new();
    let mut cursor = from;
    loop {
        while bytes
            .get(cursor)
            .is_some_and(|byte| byte.is_ascii_whitespace() || matches!(byte, b'/' | b'\0'))
        {
            cursor += 1;
        }
        match bytes.get(cursor) {
            None => return (attributes, cursor),
            Some(b'>') => return (attributes, cursor + 1),
            // A new `<` inside a tag starts the scan over from there (`<scr<script>ipt>`).
            Some(b'<') => return (attributes, cursor),
            Some(_) => {}
        }
        let name_start = cursor;
        // A quote may start a name in the HTML5 tokenizer (`<img """ onerror=…>`), so a
        // name runs until a separator.
        while bytes
            .get(cursor)
            .is_some_and(|byte| !byte.is_ascii_whitespace() && !matches!(byte, b'/' | b'>' | b'='))
            || (cursor == name_start && bytes.get(cursor) == Some(&b'='))
        {
            cursor += 1;
        }
        let name = text[name_start..cursor].to_ascii_lowercase();
        while bytes.get(cursor).is_some_and(u8::is_ascii_whitespace) {
            cursor += 1;
        }
        if bytes.get(cursor) != Some(&b'=') {
            attributes.push((name, None));
            continue;
        }
        cursor += 1;
        while bytes.get(cursor).is_some_and(u8::is_ascii_whitespace) {
            cursor += 1;
        }
        let value = match bytes.get(cursor) {
            Some(&quote) if matches!(quote, b'"' | b'\'' | b'`') => {
                let start = cursor + 1;
                let end = text[start..]
                    .find(quote as char)
                    .map_or(text.len(), |length| start + length);
                cursor = (end + 1).min(text.len());
                &text[start..end]
            }
            _ => {
                let start = cursor;
                while bytes
                    .get(cursor)
                    .is_some_and(|byte| !byte.is_ascii_whitespace() && *byte != b'>')
                {
                    cursor += 1;
                }
                &text[start..cursor]
            }
        };
        attributes.push((name, Some(value.to_owned())));
    }
}

/// Attributes that take a URL (where a `javascript:` URL runs).
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "data",
    "background",
    "lowsrc",
    "dynsrc",
    "poster",
    "codebase",
    "xlink:href",
    "to",
    "from",
    "values",
    "by",
    "srcdoc",
    "content",
    "code",
    "ping",
    "cite",
    "longdesc",
    "usemap",
    "profile",
    "classid",
    "archive",
];

fn attribute_hit(name: &str, value: Option<&str>, sensitivity: Sensitivity) -> Option<Hit> {
    let name = name.trim_matches(|c: char| matches!(c, '"' | '\'' | '`'));
    if name.len() > 2
        && name.starts_with("on")
        && name[2..].bytes().all(|byte| byte.is_ascii_alphabetic())
    {
        return Some(Hit::with("event handler attribute", name.to_owned()));
    }
    // `onload!#$%=`: browsers read the junk as part of the name, some parsers drop it.
    if sensitivity >= Sensitivity::Medium && name.len() > 4 && name.starts_with("on") {
        let letters = name[2..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if letters >= 3
            && name[2 + letters..]
                .bytes()
                .all(|byte| !byte.is_ascii_alphanumeric() && !byte.is_ascii_whitespace())
        {
            return Some(Hit::with(
                "event handler attribute",
                name[..2 + letters].to_owned(),
            ));
        }
    }
    let value = value?;
    let decoded = decode_entities(value);
    if (URL_ATTRIBUTES.contains(&name) || sensitivity >= Sensitivity::Medium)
        && let Some(hit) = script_url(&decoded, false)
    {
        return Some(hit);
    }
    if sensitivity >= Sensitivity::Medium && name == "style" {
        let style: String = decoded
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '\\')
            .collect::<String>()
            .to_ascii_lowercase();
        if style.contains("expression(")
            || style.contains("javascript:")
            || style.contains("behavior:")
            || style.contains("-moz-binding")
        {
            return Some(Hit::with("script in style attribute", "style"));
        }
    }
    if sensitivity >= Sensitivity::Medium && name == "srcdoc" && decoded.contains('<') {
        return Some(Hit::with("markup in srcdoc", "srcdoc"));
    }
    None
}

/// Script-running URL schemes: at the start of `text` (after the whitespace and control
/// characters browsers skip inside URLs), or, when `anywhere`, after any non-letter with
/// code-like text following.
fn script_url(text: &str, anywhere: bool) -> Option<Hit> {
    // Every scheme looked for ends in ':'; dropping controls and case keeps or lacks it alike.
    if !text.contains(':') {
        return None;
    }
    // Browsers drop tabs and newlines anywhere in a URL and controls and spaces before it.
    let squeezed: String = text
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r' | '\0'))
        .collect::<String>()
        .to_ascii_lowercase();
    let trimmed = squeezed.trim_start_matches(|c: char| c.is_ascii_control() || c == ' ');
    for scheme in ["javascript:", "vbscript:", "livescript:"] {
        if let Some(rest) = trimmed.strip_prefix(scheme)
            && scheme_payload(rest)
        {
            return Some(Hit::with("script URL", scheme.trim_end_matches(':')));
        }
        if anywhere {
            let mut search = 0;
            while let Some(found) = squeezed[search..].find(scheme) {
                let at = search + found;
                search = at + scheme.len();
                let before_is_letter = squeezed[..at]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric);
                if !before_is_letter && scheme_payload(&squeezed[search..]) {
                    return Some(Hit::with("script URL", scheme.trim_end_matches(':')));
                }
            }
        }
    }
    if let Some(rest) = trimmed.strip_prefix("data:") {
        let media: String = rest
            .chars()
            .take_while(|c| !matches!(c, ',' | ';'))
            .filter(|c| !c.is_whitespace())
            .collect();
        if matches!(
            media.as_str(),
            "text/html"
                | "application/xhtml+xml"
                | "image/svg+xml"
                | "text/javascript"
                | "application/javascript"
                | "application/x-javascript"
                | "text/xml"
                | "application/xml"
                | "text/xsl"
        ) {
            return Some(Hit::with("script-capable data URL", media));
        }
    }
    None
}

/// Whether what follows a script scheme looks like code rather than prose
/// ("JavaScript: The Good Parts" is a book title, `javascript:alert(1)` is not).
fn scheme_payload(rest: &str) -> bool {
    let Some(first) = rest.chars().next() else {
        return false;
    };
    !first.is_whitespace() || rest.contains(['(', '`', '=', '\\', '[', '<', '{'])
}

// ---------------------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------------------

/// The content type of `bytes`: from magic numbers, else `text/plain` for UTF-8 text
/// without control characters, else `application/octet-stream`.
pub fn detect_type(bytes: &[u8]) -> &'static str {
    if let Some(kind) = infer::get(bytes) {
        return kind.mime_type();
    }
    let text = std::str::from_utf8(bytes).is_ok_and(|text| {
        !text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
    });
    if text {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

/// A declared media type's essence, lower case, with the common aliases resolved.
fn essence(media_type: &str) -> String {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
        "image/x-png" => "image/png".into(),
        "application/x-pdf" => "application/pdf".into(),
        "image/x-icon" => "image/vnd.microsoft.icon".into(),
        _ => essence,
    }
}

/// The upload rules.
#[derive(Debug, Clone)]
pub struct Uploads {
    allowed_types: Vec<String>,
    max_bytes: usize,
}

impl Uploads {
    fn allows(&self, media_type: &str) -> bool {
        self.allowed_types.iter().any(|allowed| {
            allowed == media_type
                || allowed
                    .strip_suffix("/*")
                    .is_some_and(|major| media_type.split('/').next() == Some(major))
        })
    }

    /// Checks one file part named `field`.
    pub fn check(&self, field: &str, upload: &Upload) -> Result<(), Refusal> {
        if upload.bytes.len() > self.max_bytes {
            return Err(Refusal::new(
                Stage::Injection,
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload_too_large",
                format!(
                    "the file is {} bytes, larger than the {} allowed",
                    upload.bytes.len(),
                    self.max_bytes
                ),
            )
            .with_field(field));
        }
        let detected = detect_type(&upload.bytes);
        let declared = upload
            .content_type
            .as_deref()
            .map(essence)
            .filter(|declared| !declared.is_empty() && declared != "application/octet-stream");
        // Magic numbers cannot tell one text format from another, so a text file is taken
        // at its declared text type (and then has to be an allowed one).
        let effective = match (&declared, detected) {
            (Some(declared), "text/plain") if declared.starts_with("text/") => declared.clone(),
            _ => detected.to_owned(),
        };
        let declared_shown = declared.as_deref().unwrap_or("nothing");
        if !self.allows(&effective) {
            return Err(Refusal::new(
                Stage::Injection,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "upload_type_refused",
                format!(
                    "the file's content is {effective} (declared {declared_shown}), which is not an allowed type"
                ),
            )
            .with_field(field));
        }
        if let Some(declared) = &declared
            && *declared != effective
        {
            return Err(Refusal::new(
                Stage::Injection,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "upload_type_mismatch",
                format!("the file is declared {declared} but its content is {effective}"),
            )
            .with_field(field));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// The injection section as written.
///
/// ```yaml
/// sensitivity: medium          # low | medium | high
/// sql: true                    # SQL injection detection
/// xss: true                    # cross-site scripting detection
/// skip: ["POST /webhooks/{*rest}", "article.body"]   # routes, or parameter names
/// max_body_bytes: 1048576
/// uploads: { allowed_types: [image/png, image/jpeg, application/pdf, text/plain], max_bytes: 1048576 }
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInjection {
    /// How eager the detectors are (default `medium`).
    #[serde(default)]
    pub sensitivity: Sensitivity,
    /// Whether SQL injection is looked for (default true).
    #[serde(default)]
    pub sql: Option<bool>,
    /// Whether cross-site scripting is looked for (default true).
    #[serde(default)]
    pub xss: Option<bool>,
    /// Whether path traversal is looked for (default true; from `medium` on).
    #[serde(default)]
    pub traversal: Option<bool>,
    /// Whether command injection is looked for (default true; from `medium` on).
    #[serde(default)]
    pub command: Option<bool>,
    /// Routes never checked (`METHOD /path`, templates as axum writes them, `*` for any
    /// method), and parameter names never checked (a rich-text field; JSON paths with array
    /// indexes written `[]`: `posts[].body`; XML fields by path: `/post/body`).
    #[serde(default)]
    pub skip: Vec<String>,
    /// Largest body read, in bytes (default 1 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Upload rules.
    #[serde(default)]
    pub uploads: Option<RawUploads>,
    /// A ModSecurity configuration (the OWASP Core Rule Set) run after the detectors; needs
    /// the cargo feature `crs` ([`crate::crs`]).
    #[serde(default)]
    pub crs: Option<crate::crs::RawCrs>,
}

/// The upload rules as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUploads {
    /// Media types allowed, by content (`type/subtype`, or `type/*`). Default: PNG, JPEG,
    /// GIF, WebP, PDF and plain text.
    #[serde(default)]
    pub allowed_types: Option<Vec<String>>,
    /// Largest file, in bytes (default 1 MiB; the body limit applies too).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

/// Whether a skip entry names a route rather than a parameter: `METHOD /path`.
fn is_route(entry: &str) -> bool {
    // An upper-case first word is a method even when the path is wrong, so the mistake is
    // reported instead of the entry silently becoming a parameter name.
    entry.trim().split_once(' ').is_some_and(|(method, path)| {
        method == "*"
            || (method.bytes().all(|byte| byte.is_ascii_alphabetic())
                && (path.trim_start().starts_with('/')
                    || method.bytes().all(|byte| byte.is_ascii_uppercase())))
    })
}

/// The checked injection configuration.
#[derive(Debug, Clone)]
pub struct Injection {
    sensitivity: Sensitivity,
    sql: bool,
    xss: bool,
    traversal: bool,
    command: bool,
    skip_routes: Routes<()>,
    skip_params: HashSet<String>,
    max_body_bytes: usize,
    uploads: Uploads,
    crs: Option<Arc<crate::crs::Crs>>,
}

impl Default for Injection {
    fn default() -> Self {
        Self {
            sensitivity: Sensitivity::Medium,
            sql: true,
            xss: true,
            traversal: true,
            command: true,
            skip_routes: Routes::default(),
            skip_params: HashSet::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            uploads: Uploads {
                allowed_types: DEFAULT_ALLOWED_TYPES
                    .iter()
                    .map(|t| (*t).to_owned())
                    .collect(),
                max_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            },
            crs: None,
        }
    }
}

impl TryFrom<RawInjection> for Injection {
    type Error = ConfigError;

    fn try_from(raw: RawInjection) -> Result<Self, ConfigError> {
        let mut skip_routes = Routes::default();
        let mut skip_params = HashSet::new();
        for (index, entry) in raw.skip.iter().enumerate() {
            let at = format!("skip[{index}]");
            if is_route(entry) {
                skip_routes.insert(entry, (), &at)?;
            } else if entry.trim().is_empty() || entry.trim() != entry {
                return Err(config_error(
                    at,
                    format!("`{entry}` is neither `METHOD /path` nor a parameter name"),
                ));
            } else {
                skip_params.insert(generic_name(entry).into_owned());
            }
        }
        let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(config_error("max_body_bytes", "must be above 0"));
        }
        let raw_uploads = raw.uploads.unwrap_or_default();
        let max_bytes = raw_uploads.max_bytes.unwrap_or(DEFAULT_MAX_UPLOAD_BYTES);
        if max_bytes == 0 {
            return Err(config_error("uploads.max_bytes", "must be above 0"));
        }
        let allowed_types = match raw_uploads.allowed_types {
            None => DEFAULT_ALLOWED_TYPES
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            Some(types) => {
                let mut checked = Vec::with_capacity(types.len());
                for (index, media_type) in types.iter().enumerate() {
                    let normalized = essence(media_type);
                    let well_formed = normalized.split_once('/').is_some_and(|(major, minor)| {
                        let token = |part: &str| {
                            !part.is_empty()
                                && part.bytes().all(|byte| {
                                    byte.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&byte)
                                })
                        };
                        token(major) && (minor == "*" || token(minor))
                    });
                    if !well_formed || media_type.contains(';') {
                        return Err(config_error(
                            format!("uploads.allowed_types[{index}]"),
                            format!(
                                "`{media_type}` is not a media type (`type/subtype` or `type/*`)"
                            ),
                        ));
                    }
                    checked.push(normalized);
                }
                checked
            }
        };
        let sql = raw.sql.unwrap_or(true);
        let xss = raw.xss.unwrap_or(true);
        Ok(Self {
            sensitivity: raw.sensitivity,
            sql,
            xss,
            traversal: raw.traversal.unwrap_or(true),
            command: raw.command.unwrap_or(true),
            skip_routes,
            skip_params,
            max_body_bytes,
            uploads: Uploads {
                allowed_types,
                max_bytes,
            },
            crs: raw
                .crs
                .map(crate::crs::Crs::new)
                .transpose()
                .map_err(|error| config_error(format!("crs.{}", error.at), error.message))?
                .map(Arc::new),
        })
    }
}

impl Injection {
    /// Whether requests to `path` with `method` are skipped.
    pub fn skips_route(&self, method: &Method, path: &str) -> bool {
        self.skip_routes.find(method, path).is_some()
    }

    /// Whether the parameter `name` is skipped.
    pub fn skips_param(&self, name: &str) -> bool {
        !self.skip_params.is_empty()
            && (self.skip_params.contains(name)
                || self.skip_params.contains(generic_name(name).as_ref()))
    }

    /// The body limit.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The first attack in `text`, by the enabled detectors at the configured sensitivity.
    pub fn scan(&self, text: &str) -> Option<Finding> {
        let forms = Decodings::of(text);
        if self.sql
            && let Some(finding) = forms.sqli(self.sensitivity)
        {
            return Some(finding);
        }
        if self.xss
            && let Some(finding) = forms.xss(self.sensitivity)
        {
            return Some(finding);
        }
        // Both need a byte plain text never has (a separator, a quote, `%`, `<`, `:`, `$`).
        if (self.traversal || self.command) && !forms.plain() {
            if self.traversal
                && let Some(finding) = forms.traversal(self.sensitivity)
            {
                return Some(finding);
            }
            if self.command
                && let Some(finding) = forms.command(self.sensitivity)
            {
                return Some(finding);
            }
        }
        None
    }

    /// Checks parsed parameters (and an XML body) as the stage does.
    pub fn inspect(&self, params: &Params) -> Result<(), Refusal> {
        for field in &params.fields {
            if self.skips_param(&field.name) {
                continue;
            }
            if let Some(finding) = self.scan(&field.name) {
                return Err(refusal(&finding, &field.name, true));
            }
            match &field.value {
                FieldValue::File(upload) => {
                    if let Some(finding) = self.scan(&upload.file_name) {
                        return Err(refusal(&finding, &field.name, false));
                    }
                    self.uploads.check(&field.name, upload)?;
                }
                value => {
                    if let Some(text) = value.as_text()
                        && let Some(finding) = self.scan(text)
                    {
                        return Err(refusal(&finding, &field.name, false));
                    }
                }
            }
        }
        if params.body_kind == BodyKind::Xml {
            self.inspect_xml(&params.body)?;
        }
        Ok(())
    }

    /// Reads an XML body: refuses any DTD, checks every text and attribute value.
    fn inspect_xml(&self, body: &[u8]) -> Result<(), Refusal> {
        let malformed = xml_malformed;
        let text = std::str::from_utf8(body)
            .map_err(|error| malformed(format!("the XML body is not UTF-8: {error}")))?;
        let mut reader = quick_xml::Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        let mut path: Vec<String> = Vec::new();
        // Text of the current element, gathered across entity references and CDATA.
        let mut pending = String::new();
        let mut seen_root = false;
        loop {
            let event = reader
                .read_event()
                .map_err(|error| malformed(format!("the XML body does not parse: {error}")))?;

            match event {
                Event::DocType(_) => {
                    return Err(Refusal::new(
                        Stage::Injection,
                        StatusCode::BAD_REQUEST,
                        "xml_dtd_refused",
                        "XML bodies with a document type declaration (DTD, entities) are refused",
                    ));
                }
                Event::Start(start) => {
                    self.flush_xml_text(&mut pending, &path)?;
                    self.open_element(&start, &mut path, &mut seen_root)?;
                }
                Event::Empty(start) => {
                    self.flush_xml_text(&mut pending, &path)?;
                    self.open_element(&start, &mut path, &mut seen_root)?;
                    path.pop();
                }
                Event::End(_) => {
                    self.flush_xml_text(&mut pending, &path)?;
                    path.pop();
                }
                Event::Text(content) => pending.push_str(&content.xml10_content()),
                Event::CData(content) => pending.push_str(&content.xml10_content()),
                Event::GeneralRef(reference) => {
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(character)) => Some(character.to_string()),
                        Ok(None) => {
                            let name: &str = reference.as_ref();
                            quick_xml::escape::resolve_predefined_entity(name).map(str::to_owned)
                        }
                        Err(error) => {
                            return Err(malformed(format!(
                                "an XML character reference does not parse: {error}"
                            )));
                        }
                    };
                    match resolved {
                        Some(resolved) => pending.push_str(&resolved),
                        None => {
                            return Err(malformed(
                                "the XML body references an entity it does not (and may not) declare"
                                    .into(),
                            ));
                        }
                    }
                }
                Event::Eof => {
                    if !path.is_empty() {
                        return Err(malformed(format!(
                            "the XML body ends inside <{}>",
                            path.last().map_or("", String::as_str)
                        )));
                    }
                    if !seen_root {
                        return Err(malformed("the XML body has no root element".into()));
                    }
                    return Ok(());
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            }
        }
    }

    /// Enters an element: checks its attribute values, named `/path/@attribute`.
    fn open_element(
        &self,
        start: &quick_xml::events::BytesStart<'_>,
        path: &mut Vec<String>,
        seen_root: &mut bool,
    ) -> Result<(), Refusal> {
        if path.is_empty() && *seen_root {
            return Err(xml_malformed(
                "the XML body has more than one root element".into(),
            ));
        }
        *seen_root = true;
        let name = start.name();
        let name: &str = name.as_ref();
        path.push(name.to_owned());
        if path.len() > MAX_XML_DEPTH {
            return Err(xml_malformed(format!(
                "the XML body nests deeper than {MAX_XML_DEPTH} levels"
            )));
        }
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|error| {
                xml_malformed(format!("an XML attribute does not parse: {error}"))
            })?;
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|error| {
                    xml_malformed(format!("an XML attribute value does not parse: {error}"))
                })?;
            let key: &str = attribute.key.as_ref();
            let field = format!("{}/@{key}", xml_path(path));
            if self.skips_param(&field) {
                continue;
            }
            if let Some(finding) = self.scan(&value) {
                return Err(refusal(&finding, &field, false));
            }
        }
        Ok(())
    }

    fn flush_xml_text(&self, pending: &mut String, path: &[String]) -> Result<(), Refusal> {
        if pending.trim().is_empty() {
            pending.clear();
            return Ok(());
        }
        let field = xml_path(path);
        let text = std::mem::take(pending);
        if !self.skips_param(&field)
            && let Some(finding) = self.scan(&text)
        {
            return Err(refusal(&finding, &field, false));
        }
        Ok(())
    }
}

/// 400 `malformed_body` for an XML body.
fn xml_malformed(message: String) -> Refusal {
    Refusal::new(
        Stage::Injection,
        StatusCode::BAD_REQUEST,
        "malformed_body",
        message,
    )
}

/// An XML field's name: its element path, `/order/item`.
fn xml_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        out.push('/');
        out.push_str(element);
    }
    out
}

/// The refusal for `finding` in field `name` (the name itself when `in_name`).
fn refusal(finding: &Finding, name: &str, in_name: bool) -> Refusal {
    let shown = shown_name(name);
    let message = if in_name {
        format!("a parameter name looks like {finding}")
    } else {
        format!("`{shown}` looks like {finding}")
    };
    Refusal::new(
        Stage::Injection,
        StatusCode::BAD_REQUEST,
        finding.attack.code(),
        message,
    )
    .with_field(shown)
}

/// A name as repeated to the client: at most [`SHOWN_NAME_CHARS`] characters, with markup
/// characters escaped (a name can be the attack).
fn shown_name(name: &str) -> String {
    let cut: String = name.chars().take(SHOWN_NAME_CHARS).collect();
    let escaped = crate::encode::html_text(&cut).into_owned();
    if name.chars().count() > SHOWN_NAME_CHARS {
        format!("{escaped}…")
    } else {
        escaped
    }
}

// ---------------------------------------------------------------------------------------
// The stage
// ---------------------------------------------------------------------------------------

/// The injection stage.
#[derive(Debug, Clone)]
pub struct InjectionCheck {
    config: Arc<Injection>,
}

impl InjectionCheck {
    /// The stage with `config`.
    pub fn new(config: Arc<Injection>) -> Self {
        Self { config }
    }
}

impl Check for InjectionCheck {
    const STAGE: Stage = Stage::Injection;

    async fn check(&self, request: Request<Body>) -> Result<Request<Body>, Refusal> {
        if self
            .config
            .skips_route(request.method(), request.uri().path())
        {
            return Ok(request);
        }
        let (request, params) = params_of(request, self.config.max_body_bytes, Self::STAGE).await?;
        self.config.inspect(&params)?;
        if let Some(crs) = &self.config.crs {
            let client = request
                .extensions()
                .get::<crate::stage::Caller>()
                .and_then(|caller| caller.address);
            crs.inspect(
                request.method(),
                request.uri(),
                request.headers(),
                &params.body,
                client,
            )?;
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "tests: a failed step must fail the test"
    )]

    use super::*;

    #[test]
    fn every_rule_compiles() {
        assert_eq!(SQL_MEDIUM_RULES.rules.len(), SQL_MEDIUM.len());
        assert_eq!(SQL_HIGH_RULES.rules.len(), SQL_HIGH.len());
        assert_eq!(XSS_MEDIUM_RULES.rules.len(), XSS_MEDIUM.len());
        assert_eq!(XSS_HIGH_RULES.rules.len(), XSS_HIGH.len());
        for set in [
            &*SQL_MEDIUM_RULES,
            &*SQL_HIGH_RULES,
            &*XSS_MEDIUM_RULES,
            &*XSS_HIGH_RULES,
        ] {
            assert!(set.any.is_some());
        }
        assert!(TAUTOLOGY.is_some());
        assert!(WHERE_TAUTOLOGY.is_some());
        assert_eq!(TRAVERSAL_RULES.rules.len(), TRAVERSAL.len());
        assert_eq!(COMMAND_RULES.rules.len(), COMMAND.len());
        assert!(HANDLER_OUTSIDE_TAG.is_some());
    }

    #[test]
    fn entities_decode_leniently() {
        assert_eq!(decode_entities("&#60;&#x3C;&#0000060&lt;"), "<<<<");
        assert_eq!(decode_entities("&#;&#xZZ;"), "&#;&#xZZ;");
        assert_eq!(decode_escapes(r"\u003c\x3e\u{3c}\q"), r"<><\q");
    }

    #[test]
    fn comments_fold_into_spaces() {
        assert_eq!(fold_sql_comments("1/**/union/*x*/select"), "1 union select");
        assert_eq!(
            fold_sql_comments("/*!50000union*/ select"),
            " union  select"
        );
    }

    fn rule<'a>(set: &'a RuleSet, name: &str) -> &'a Rule {
        set.rules.iter().find(|rule| rule.name == name).unwrap()
    }

    #[test]
    fn rules_that_need_more_than_plain_text_are_known_from_their_syntax() {
        // Words and spaces alone make these.
        assert!(rule(&SQL_MEDIUM_RULES, "union select").on_plain);
        assert!(rule(&SQL_MEDIUM_RULES, "catalog object").on_plain);
        assert!(TAUTOLOGY.as_ref().unwrap().on_plain);
        // These need a character plain text lacks: `<`, a quote, `=`, `(`.
        assert!(!rule(&XSS_MEDIUM_RULES, "closing script tag").on_plain);
        assert!(!rule(&SQL_MEDIUM_RULES, "quote-breaking condition").on_plain);
        assert!(!WHERE_TAUTOLOGY.as_ref().unwrap().on_plain);
        assert!(!HANDLER_OUTSIDE_TAG.as_ref().unwrap().on_plain);
        assert!(!rule(&SQL_MEDIUM_RULES, "time delay function").on_plain);
        // A class or a repetition that can stay within plain text.
        assert!(matches_plain(r"a[<b]c"));
        assert!(matches_plain(r"x(?:<)*y"));
        assert!(!matches_plain(r"x(?:<)+y"));
        assert!(!matches_plain(r"\bon\w+="));
        // Rules fold case as they match: the Kelvin sign matches a plain `k`; `é` nothing plain.
        assert!(matches_plain("k"));
        assert!(matches_plain("\u{212A}"));
        assert!(!matches_plain("\u{e9}"));
        assert!(is_plain("running shoes 42, 2026-12-07 3.5"));
        assert!(!is_plain("caf\u{e9}"));
        assert!(!is_plain("a=b"));
    }

    /// Every rule set names, for `text`, the first of its rules that matches when each is tried
    /// in turn.
    fn first_rules_agree(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        for set in [
            &*SQL_MEDIUM_RULES,
            &*SQL_HIGH_RULES,
            &*XSS_MEDIUM_RULES,
            &*XSS_HIGH_RULES,
        ] {
            let every = set
                .rules
                .iter()
                .find(|rule| rule.regex.is_match(text))
                .map(|rule| rule.name);
            proptest::prop_assert_eq!(
                set.first(text, is_plain(text)).map(|hit| hit.rule),
                every,
                "{:?}",
                text
            );
        }
        Ok(())
    }

    proptest::proptest! {
        /// Skipping the rules that cannot match plain text never changes which rule a text
        /// hits: checked on text made of plain pieces, the rules' own words among them, and of
        /// pieces that are not plain.
        #[test]
        fn the_plain_text_screen_never_changes_a_verdict(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "union", "select", "all", "from", "where", "or", "and", "like", "sleep",
                    "waitfor", "delay", "case", "when", "then", "information_schema", "into",
                    "outfile", "document", "cookie", "proto", "__proto__", "constructor",
                    "dangerouslysetinnerhtml", "onerror", "alert", "script", "1", "42", "a",
                    " ", "-", "--", ".", ",", "_", "=", "'", "(", ")", "<", ";", "#", "/*",
                    "\u{212A}", "\u{17F}",
                ]),
                0..10,
            )
        ) {
            let text: String = pieces.concat();
            first_rules_agree(&text)?;
            for single in [&*TAUTOLOGY, &*WHERE_TAUTOLOGY, &*HANDLER_OUTSIDE_TAG] {
                let single = single.as_ref().unwrap();
                if single.regex.is_match(&text) {
                    proptest::prop_assert!(single.on_plain || !is_plain(&text), "{}", text);
                }
            }
        }
    }

    proptest::proptest! {
        /// The premise of skipping libinjection's XSS parse: without `<` or `=` it finds
        /// nothing, whatever else the text holds (quotes, backquotes, slashes, event handler and
        /// script words).
        #[test]
        fn libinjection_finds_no_xss_without_a_tag_or_an_attribute_value(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "onerror", "onload", "style", "href", "src", "javascript:", "alert(1)",
                    "xmlns", "formaction", "\"", "'", "`", "/", ">", " ", "\t", "\n", "&#",
                    "!--", "[if", "xml", "import", "entity", "doctype", "x", "\u{0}", ";",
                ]),
                0..12,
            )
        ) {
            let text: String = pieces.concat();
            proptest::prop_assert!(!libinjectionrs::detect_xss(text.as_bytes()).is_injection(), "{:?}", text);
        }

        /// The premise of not asking libinjection about one word or one number: it finds no
        /// SQL injection in a word of letters and `_`, SQL's keywords and functions among them,
        /// or in a number.
        #[test]
        fn libinjection_finds_no_sql_injection_in_one_word_or_number(
            word in proptest::sample::select(vec![
                "union", "select", "sleep", "benchmark", "version", "user", "database", "null",
                "or", "and", "xor", "not", "like", "rlike", "regexp", "div", "mod", "is", "in",
                "between", "case", "when", "exec", "execute", "waitfor", "delay", "declare",
                "drop", "insert", "update", "delete", "having", "limit", "order", "group", "by",
                "into", "outfile", "load_file", "char", "concat", "substring", "ascii", "pg_sleep",
                "current_user", "session_user", "information_schema", "true", "false",
                "utc_time", "localtime", "sysdate", "xp_cmdshell", "sp_executesql", "b", "x",
                "n", "e", "q", "u", "_",
            ]),
            random in "[A-Za-z_]{1,40}",
            digits in "[0-9]{1,40}",
        ) {
            for text in [
                word.to_owned(),
                word.to_ascii_uppercase(),
                random,
                digits,
            ] {
                proptest::prop_assert!(one_sql_token(&text), "{}", text);
                proptest::prop_assert!(
                    !libinjectionrs::detect_sqli(text.as_bytes()).is_injection(),
                    "{}",
                    text
                );
            }
        }

        /// Long text first searched for every rule at once names the same rule as trying each.
        #[test]
        fn long_text_names_the_same_rule(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "union", " select ", "from", "sleep(1)", "'", ";", "drop table x",
                    "<script", "onerror=", "alert(1)", "information_schema", "document.cookie",
                    "words and more words ", "caf\u{e9} ", "1=1", "--", "/*",
                ]),
                20..60,
            )
        ) {
            let text: String = pieces.concat();
            first_rules_agree(&text)?;
        }
    }

    #[test]
    fn skip_entries_are_routes_or_names() {
        assert!(is_route("POST /webhooks/{*rest}"));
        assert!(is_route("* /any"));
        assert!(!is_route("article.body"));
        assert_eq!(generic_name("posts[12].body"), "posts[].body");
    }
}
