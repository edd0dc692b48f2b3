//! Built-in parameter formats: the named shapes a validation rule can require of a parameter
//! (`format: email`), each a plain `fn(&str) -> bool`, and [`Format`], the name a rule holds.
//!
//! The checks are about shape and internal consistency only (a check digit, a calendar date,
//! a province code): they never look anything up, so an accepted email address may not
//! exist and an accepted identity number may belong to nobody. Acceptance says nothing about
//! safety either; an address like `o'brien@example.ie` is valid and still needs
//! [`crate::encode`] on output.
//!
//! Every check runs in time linear in its input, with no regular expressions and no
//! backtracking, so a hostile parameter cannot make validation slow. Inputs are taken as they
//! are: no trimming, no case folding beyond what a format defines (the `x` check character),
//! no full-width digits.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;

/// A built-in parameter format, named in validation rules by [`Format::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// An email address: [`email`].
    Email,
    /// A dotted-quad IPv4 address: [`ipv4`].
    Ipv4,
    /// An IPv6 address: [`ipv6`].
    Ipv6,
    /// An IPv4 or IPv6 address: [`ip`].
    Ip,
    /// A mainland China resident identity card number: [`resident_id`].
    ResidentId,
    /// A mainland China mobile number: [`mobile`].
    Mobile,
    /// A calendar date, `YYYY-MM-DD`: [`date`].
    Date,
}

impl Format {
    /// Every format, in the order error messages list them.
    pub const ALL: [Format; 7] = [
        Format::Email,
        Format::Ipv4,
        Format::Ipv6,
        Format::Ip,
        Format::ResidentId,
        Format::Mobile,
        Format::Date,
    ];

    /// The name rules use for this format, as [`FromStr`] accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Email => "email",
            Format::Ipv4 => "ipv4",
            Format::Ipv6 => "ipv6",
            Format::Ip => "ip",
            Format::ResidentId => "resident_id",
            Format::Mobile => "mobile",
            Format::Date => "date",
        }
    }

    /// Whether `input` has this format.
    pub fn check(&self, input: &str) -> bool {
        match self {
            Format::Email => email(input),
            Format::Ipv4 => ipv4(input),
            Format::Ipv6 => ipv6(input),
            Format::Ip => ip(input),
            Format::ResidentId => resident_id(input),
            Format::Mobile => mobile(input),
            Format::Date => date(input),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Parses a format name; names are lower case and matched exactly, as written in rules.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|format| format.name() == name)
            .ok_or_else(|| UnknownFormat {
                name: name.to_owned(),
            })
    }
}

/// A format name that is not one of the built-in formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{name}`: expected one of {known}", known = KnownNames)]
pub struct UnknownFormat {
    /// The name as it was written.
    pub name: String,
}

/// The names of [`Format::ALL`], comma-separated, for error messages.
struct KnownNames;

impl fmt::Display for KnownNames {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, format) in Format::ALL.iter().enumerate() {
            if index > 0 {
                formatter.write_str(", ")?;
            }
            formatter.write_str(format.name())?;
        }
        Ok(())
    }
}

/// The longest address that fits SMTP's 256-octet path with its angle brackets (RFC 5321).
const EMAIL_MAX: usize = 254;
/// RFC 5321's limit on the part before the `@`.
const EMAIL_LOCAL_MAX: usize = 64;
/// RFC 1035's limit on one label.
const LABEL_MAX: usize = 63;

/// Whether `input` is an email address as people type them into forms: `local@domain`.
///
/// - The local part is one or more dot-separated runs of letters, digits and
///   ``! # $ % & ' * + - / = ? ^ _ ` { | } ~`` (RFC 5322's dot-atom), at most 64 bytes: no
///   leading, trailing or doubled dot.
/// - The domain is two or more dot-separated labels of letters, digits and hyphens, each 1 to
///   63 bytes, not starting or ending with a hyphen; the last label (the top-level domain) is
///   not all digits, which keeps out `user@192.0.2.1`.
/// - At most 254 bytes in all, which also keeps the domain within DNS's 253.
///
/// Deliberately refused although RFC 5322 allows them: quoted local parts, comments, address
/// literals (`user@[192.0.2.1]`), single-label domains (`user@localhost`), and non-ASCII
/// addresses; an internationalized domain is accepted in its `xn--` form.
pub fn email(input: &str) -> bool {
    if input.len() > EMAIL_MAX {
        return false;
    }
    let Some((local, domain)) = input.split_once('@') else {
        return false;
    };
    email_local_part(local) && email_domain(domain)
}

fn email_local_part(local: &str) -> bool {
    local.len() <= EMAIL_LOCAL_MAX
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atom_byte))
}

fn is_atom_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte)
}

fn email_domain(domain: &str) -> bool {
    let mut labels = 0_usize;
    let mut top_level = "";
    for label in domain.split('.') {
        if !ldh_label(label) {
            return false;
        }
        labels += 1;
        top_level = label;
    }
    labels >= 2 && !top_level.bytes().all(|byte| byte.is_ascii_digit())
}

/// A letters-digits-hyphens label (RFC 1035, as relaxed by RFC 1123 to allow a leading digit).
fn ldh_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= LABEL_MAX
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-')
        }
        _ => false,
    }
}

/// Whether `input` is an IPv4 address in dotted-quad form (`192.0.2.1`).
///
/// The standard library's parser is strict where lenient parsers are dangerous: exactly four
/// decimal parts of 0–255, and no leading zeros, so `010.0.0.1` (octal 8 to `inet_aton`,
/// decimal 10 to others) and shorthand like `127.1` or `0x7f.0.0.1` are refused rather than
/// read differently from the upstream application.
pub fn ipv4(input: &str) -> bool {
    input.parse::<Ipv4Addr>().is_ok()
}

/// Whether `input` is an IPv6 address in RFC 4291 text form, with `::` compression and an
/// embedded IPv4 tail allowed (`::ffff:192.0.2.1`); brackets, zone identifiers (`%eth0`) and
/// prefix lengths are not part of an address and are refused.
pub fn ipv6(input: &str) -> bool {
    input.parse::<Ipv6Addr>().is_ok()
}

/// Whether `input` is an IPv4 ([`ipv4`]) or an IPv6 ([`ipv6`]) address.
pub fn ip(input: &str) -> bool {
    input.parse::<IpAddr>().is_ok()
}

/// GB 11643-1999 weights of the 17 body digits: 2^(17 - i) mod 11 for the digit at 0-based
/// position i (ISO 7064 MOD 11-2).
const RESIDENT_ID_WEIGHTS: [usize; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each remainder of the weighted sum modulo 11.
const RESIDENT_ID_CHECK: [u8; 11] = *b"10X98765432";

/// Whether `input` is a mainland China resident identity card number (GB 11643-1999) whose
/// holder was born no later than today's date in UTC.
///
/// Reads the system clock; [`resident_id_on`] takes the date instead, for tests and for
/// callers that judge "today" in another time zone (during China's first eight hours of a
/// day, UTC's date is still the day before, which matters only for a holder born that day).
/// If the clock is outside the range dates can hold, the number is refused: a check that
/// cannot be made fails closed.
pub fn resident_id(input: &str) -> bool {
    match jiff::Timestamp::try_from(std::time::SystemTime::now()) {
        Ok(now) => resident_id_on(input, TimeZone::UTC.to_datetime(now).date()),
        Err(_) => false,
    }
}

/// Whether `input` is a mainland China resident identity card number (GB 11643-1999) whose
/// holder was born no later than `today`.
///
/// Eighteen characters: six digits of address code, whose first two are a province-level
/// code in use (11–15, 21–23, 31–37, 41–46, 50–54, 61–65, 71 Taiwan, 81 Hong Kong, 82 Macao,
/// 91 abroad); eight digits of birth date, `YYYYMMDD`, a real calendar date not after
/// `today`; three digits of sequence; and the ISO 7064 MOD 11-2 check character, a digit or
/// `X` (`x` accepted). The older 15-digit numbers, which have no check character, are
/// refused.
pub fn resident_id_on(input: &str, today: Date) -> bool {
    let Ok(&[body @ .., check]) = <&[u8; 18]>::try_from(input.as_bytes()) else {
        return false;
    };
    let [p0, p1, _, _, _, _, y0, y1, y2, y3, m0, m1, d0, d1, ..] = body;
    let (Some(province), Some(year), Some(month), Some(day)) = (
        decimal([p0, p1]),
        decimal([y0, y1, y2, y3]),
        decimal([m0, m1]),
        decimal([d0, d1]),
    ) else {
        return false;
    };
    province_code(province)
        && calendar_date(year, month, day).is_some_and(|birth| birth <= today)
        && resident_id_check(body) == Some(check.to_ascii_uppercase())
}

fn province_code(code: u16) -> bool {
    matches!(
        code,
        11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82 | 91
    )
}

/// The check character the 17 body characters call for, or `None` if one is not a digit.
fn resident_id_check(body: [u8; 17]) -> Option<u8> {
    let mut sum = 0_usize;
    for (character, weight) in body.into_iter().zip(RESIDENT_ID_WEIGHTS) {
        if !character.is_ascii_digit() {
            return None;
        }
        sum += usize::from(character - b'0') * weight;
    }
    RESIDENT_ID_CHECK.get(sum % 11).copied()
}

/// Whether `input` is a mainland China mobile number: eleven digits, `1`, then `3`–`9`, then
/// nine more; optionally after the country code `+86` or `86`, which may be followed by one
/// space or hyphen (`+86 13812345678`, `86-13812345678`).
///
/// The second digit is only checked to be in 3–9, the range mobile number blocks are allocated
/// from; which blocks within it are in use changes every few years and is not checked.
pub fn mobile(input: &str) -> bool {
    let number = match input
        .strip_prefix("+86")
        .or_else(|| input.strip_prefix("86"))
    {
        Some(rest) => rest.strip_prefix([' ', '-']).unwrap_or(rest),
        // Without a country code the separator has nothing to separate, so it is not allowed.
        None => input,
    };
    match number.as_bytes() {
        [b'1', second, rest @ ..] => {
            (b'3'..=b'9').contains(second) && rest.len() == 9 && rest.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// Whether `input` is a calendar date written `YYYY-MM-DD` (ISO 8601's extended form, four
/// digits of year), for a day that exists in the proleptic Gregorian calendar: `2024-02-29`
/// but not `2023-02-29`, years 0001 to 9999.
///
/// Other forms that date parsers commonly accept (`20240229`, a time after the date, a sign
/// before the year, one-digit months) are refused, so that every accepted value has one
/// spelling.
pub fn date(input: &str) -> bool {
    let Ok(&[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1]) = <&[u8; 10]>::try_from(input.as_bytes())
    else {
        return false;
    };
    match (
        decimal([y0, y1, y2, y3]),
        decimal([m0, m1]),
        decimal([d0, d1]),
    ) {
        (Some(year), Some(month), Some(day)) => calendar_date(year, month, day).is_some(),
        _ => false,
    }
}

/// The value of a run of ASCII digits, or `None` if one is not a digit.
fn decimal<const N: usize>(characters: [u8; N]) -> Option<u16> {
    characters.into_iter().try_fold(0_u16, |value, character| {
        character
            .is_ascii_digit()
            .then(|| value * 10 + u16::from(character - b'0'))
    })
}

/// The date, if it exists in the Gregorian calendar. Year 0 is refused although jiff (after
/// ISO 8601) has one: no date written by a person means it.
fn calendar_date(year: u16, month: u16, day: u16) -> Option<Date> {
    if year == 0 {
        return None;
    }
    let (year, month, day) = (
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    );
    Date::new(year, month, day).ok()
}
