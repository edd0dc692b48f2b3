//! Value parsers: the text of one value in a bundle, turned into its model type.
//!
//! This module owns the written forms of single values: IP address patterns, time windows,
//! dates, weekdays, action and resource patterns, route paths and route resource templates,
//! and certificate fingerprints and serials. The decoder uses every parser here; the compiler
//! checks action names, the run-time overlay reads assignment patterns and factor evaluation
//! normalizes a request's certificate with the same functions, so a value means one thing
//! wherever it is read.
//!
//! Each parser is a pure function of its text that returns the value or a message saying what
//! is wrong. It must not report diagnostics, walk YAML nodes or know about locations (that is
//! `decode`'s work), and it imports nothing but the bundle model.

use std::collections::BTreeSet;

use crate::model::{
    ActionPattern, IpPattern, PathSegment, ResourcePattern, Segment, Weekdays, Window,
};

/// `mon`..`sun` (or full names, any case) to 0..6.
pub fn parse_weekday(text: &str) -> Option<u8> {
    let lower = text.to_ascii_lowercase();
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    (0u8..7).find(|day| {
        let index = usize::from(*day);
        lower == Weekdays::NAMES[index] || lower == full[index]
    })
}

/// `YYYY-MM-DD`, a date that exists in the calendar.
pub fn parse_date(text: &str) -> Result<jiff::civil::Date, String> {
    if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        text.parse::<jiff::civil::Date>()
            .map_err(|error| error.to_string())
    } else {
        Err("expected YYYY-MM-DD".to_owned())
    }
}

/// `HH:MM-HH:MM` to a window; start inclusive, end exclusive, `24:00` allowed as an end.
pub fn parse_window(text: &str) -> Result<Window, String> {
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| "expected two times separated by '-'".to_owned())?;
    let start = parse_clock(start.trim(), false)?;
    let end = parse_clock(end.trim(), true)?;
    if start == end {
        return Err(
            "start and end are equal, so the window is empty; use 00:00-24:00 for the whole day"
                .to_owned(),
        );
    }
    Ok(Window { start, end })
}

fn parse_clock(text: &str, may_be_24: bool) -> Result<u16, String> {
    let (hours, minutes) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not HH:MM"))?;
    let digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return Err(format!("`{text}` is not HH:MM"));
    }
    let hours: u16 = hours
        .parse()
        .map_err(|_| format!("`{text}` is not HH:MM"))?;
    let minutes: u16 = minutes
        .parse()
        .map_err(|_| format!("`{text}` is not HH:MM"))?;
    if minutes > 59 {
        return Err(format!("`{text}` has minutes above 59"));
    }
    if hours == 24 && minutes == 0 && may_be_24 {
        return Ok(1440);
    }
    if hours > 23 {
        return Err(format!(
            "`{text}` has hours above 23 (24:00 may only end a window)"
        ));
    }
    Ok(hours * 60 + minutes)
}

/// An address, CIDR block or IPv4 octet wildcard.
pub fn parse_ip_pattern(text: &str) -> Result<IpPattern, String> {
    use std::net::IpAddr;
    if text.contains('*') {
        if text.contains(':') {
            return Err(
                "wildcards are for IPv4; use a CIDR block such as 2001:db8::/32 for IPv6"
                    .to_owned(),
            );
        }
        let octets: Vec<&str> = text.split('.').collect();
        if octets.len() != 4 {
            return Err("an IPv4 wildcard has four octets, e.g. 172.*.*.*".to_owned());
        }
        let (mut value, mut mask) = (0u32, 0u32);
        for octet in octets {
            value <<= 8;
            mask <<= 8;
            if octet == "*" {
                continue;
            }
            let number: u8 = octet
                .parse()
                .map_err(|_| format!("`{octet}` is neither an octet (0-255) nor `*`"))?;
            value |= u32::from(number);
            mask |= 0xff;
        }
        return Ok(IpPattern::V4 { value, mask });
    }
    if text.contains('/') {
        let network: ipnet::IpNet = text.parse().map_err(|error| format!("{error}"))?;
        return Ok(match network.trunc() {
            ipnet::IpNet::V4(net) => IpPattern::V4 {
                value: u32::from(net.network()),
                mask: u32::from(net.netmask()),
            },
            ipnet::IpNet::V6(net) => IpPattern::V6 {
                value: u128::from(net.network()),
                mask: u128::from(net.netmask()),
            },
        });
    }
    match text.parse::<IpAddr>().map_err(|error| format!("{error}"))? {
        IpAddr::V4(address) => Ok(IpPattern::V4 {
            value: u32::from(address),
            mask: u32::MAX,
        }),
        IpAddr::V6(address) => Ok(IpPattern::V6 {
            value: u128::from(address),
            mask: u128::MAX,
        }),
    }
}

fn segment(part: &str, what: &str) -> Result<Segment, String> {
    if part == "*" {
        return Ok(Segment::Any);
    }
    if part.is_empty() {
        return Err(format!("the {what} part is empty"));
    }
    if part.contains('*') {
        return Err(format!("`*` must replace the whole {what} part"));
    }
    if part.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the {what} part contains whitespace"));
    }
    Ok(Segment::Is(part.to_owned()))
}

/// `type:verb`, `type:*`, `*:verb`, `*:*` or `*`.
pub fn parse_action_pattern(text: &str) -> Result<ActionPattern, String> {
    if text == "*" {
        return Ok(ActionPattern {
            kind: Segment::Any,
            verb: Segment::Any,
            text: text.to_owned(),
        });
    }
    let (kind, verb) = text
        .split_once(':')
        .ok_or_else(|| "an action is written resource_type:action".to_owned())?;
    Ok(ActionPattern {
        kind: segment(kind, "resource type")?,
        verb: segment(verb, "action")?,
        text: text.to_owned(),
    })
}

/// A declared resource's name, `type:id` (no wildcards), split in two.
pub fn parse_resource_name(text: &str) -> Result<(&str, &str), String> {
    let (kind, id) = text
        .split_once(':')
        .ok_or_else(|| "a resource is written type:id".to_owned())?;
    for (part, what) in [(kind, "resource type"), (id, "resource id")] {
        if segment(part, what)? == Segment::Any {
            return Err(format!("a declared resource names one {what}, not `*`"));
        }
    }
    Ok((kind, id))
}

/// `type:id`, `type:*`, `*:id`, `*:*` or `*`.
pub fn parse_resource_pattern(text: &str) -> Result<ResourcePattern, String> {
    if text == "*" {
        return Ok(ResourcePattern {
            kind: Segment::Any,
            id: Segment::Any,
        });
    }
    let (kind, id) = text
        .split_once(':')
        .ok_or_else(|| "a resource is written type:id".to_owned())?;
    Ok(ResourcePattern {
        kind: segment(kind, "resource type")?,
        id: segment(id, "resource id")?,
    })
}

/// `/a/{b}/c/**` into segments.
pub fn parse_route_path(path: &str) -> Result<Vec<PathSegment>, String> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| "it does not start with '/'".to_owned())?;
    let mut segments = Vec::new();
    let mut names = BTreeSet::new();
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let count = parts.len();
    for (index, part) in parts.into_iter().enumerate() {
        if part == "**" {
            if index + 1 != count {
                return Err("`**` may only be the last segment".to_owned());
            }
            segments.push(PathSegment::Rest);
        } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!(
                    "`{part}` is not a capture; names are letters, digits and '_'"
                ));
            }
            if !names.insert(name.to_owned()) {
                return Err(format!("`{{{name}}}` is captured twice"));
            }
            segments.push(PathSegment::Param(name.to_owned()));
        } else if part.is_empty() && index + 1 != count {
            return Err("it has an empty segment ('//')".to_owned());
        } else if part.contains(['{', '}', '*']) {
            return Err(format!(
                "`{part}` mixes text with a capture or wildcard; captures take a whole segment"
            ));
        } else {
            segments.push(PathSegment::Literal(part.to_owned()));
        }
    }
    Ok(segments)
}

/// Checks a route's resource template `type:id` against the path's captures: the id may use
/// only `{name}`s the path captures.
pub fn check_resource_template(template: &str, segments: &[PathSegment]) -> Result<(), String> {
    let (kind, id) = template
        .split_once(':')
        .ok_or_else(|| "a resource is written type:id".to_owned())?;
    if kind.is_empty() || kind.contains(['{', '}', '*']) {
        return Err("the type must be a plain name".to_owned());
    }
    if id.is_empty() {
        return Err("the id is empty".to_owned());
    }
    let mut rest = id;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| "a '{' is not closed".to_owned())?;
        let name = &rest[open + 1..open + close];
        let captured = segments
            .iter()
            .any(|segment| matches!(segment, PathSegment::Param(param) if param == name));
        if !captured {
            return Err(format!("`{{{name}}}` is not captured by the path"));
        }
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err("a '}' is not opened".to_owned());
    }
    Ok(())
}

/// Lowercase hex without separators or a `sha256:` prefix; `None` unless 64 hex digits.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix("sha256:")
        .or_else(|| text.strip_prefix("SHA256:"))
        .unwrap_or(text);
    let hex: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// Lowercase hex without separators or leading zeros; `None` unless hex.
pub fn normalize_serial(text: &str) -> Option<String> {
    let hex: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = hex.trim_start_matches('0').to_ascii_lowercase();
    Some(if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn clock(minute: u16) -> String {
        format!("{:02}:{:02}", minute / 60, minute % 60)
    }

    /// `None` stands for a `*` part.
    fn part() -> impl Strategy<Value = Option<String>> {
        prop_oneof![Just(None), "[a-z][a-z0-9_.-]{0,8}".prop_map(Some)]
    }

    fn written(part: &Option<String>) -> &str {
        part.as_deref().unwrap_or("*")
    }

    fn expected(part: &Option<String>) -> Segment {
        part.clone().map_or(Segment::Any, Segment::Is)
    }

    proptest! {
        #[test]
        fn windows_read_back_the_minutes_they_were_written_with(
            start in 0u16..1440,
            end in 1u16..=1440,
        ) {
            prop_assume!(start != end);
            let text = format!("{}-{}", clock(start), clock(end));
            prop_assert_eq!(parse_window(&text), Ok(Window { start, end }));
        }

        #[test]
        fn dates_read_back_the_day_they_were_written_with(
            year in 1000i16..=9999,
            month in 1i8..=12,
            day in 1i8..=28,
        ) {
            let date = jiff::civil::date(year, month, day);
            prop_assert_eq!(parse_date(&date.to_string()), Ok(date));
        }

        #[test]
        fn ipv4_blocks_keep_the_network_bits_of_their_prefix(address: u32, prefix in 0u32..=32) {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            let text = format!("{}/{prefix}", Ipv4Addr::from(address));
            prop_assert_eq!(
                parse_ip_pattern(&text),
                Ok(IpPattern::V4 { value: address & mask, mask })
            );
        }

        #[test]
        fn ipv4_wildcards_fix_exactly_the_octets_written(
            octets in proptest::array::uniform4(proptest::option::of(any::<u8>())),
        ) {
            let text = octets
                .iter()
                .map(|octet| octet.map_or("*".to_owned(), |value| value.to_string()))
                .collect::<Vec<_>>()
                .join(".");
            let (mut value, mut mask) = (0u32, 0u32);
            for octet in octets {
                value = (value << 8) | u32::from(octet.unwrap_or(0));
                mask = (mask << 8) | if octet.is_some() { 0xff } else { 0 };
            }
            prop_assert_eq!(parse_ip_pattern(&text), Ok(IpPattern::V4 { value, mask }));
        }

        #[test]
        fn action_and_resource_patterns_keep_their_parts(first in part(), second in part()) {
            let text = format!("{}:{}", written(&first), written(&second));
            prop_assert_eq!(
                parse_action_pattern(&text),
                Ok(ActionPattern { kind: expected(&first), verb: expected(&second), text: text.clone() })
            );
            prop_assert_eq!(
                parse_resource_pattern(&text),
                Ok(ResourcePattern { kind: expected(&first), id: expected(&second) })
            );
        }

        #[test]
        fn fingerprints_and_serials_normalize_to_bare_lowercase_hex(
            bytes in proptest::array::uniform32(any::<u8>()),
            leading_zeros in 0usize..4,
        ) {
            let bare: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            let written = format!(
                "sha256:{}",
                bytes.iter().map(|byte| format!("{byte:02X}")).collect::<Vec<_>>().join(":")
            );
            prop_assert_eq!(normalize_fingerprint(&written), Some(bare.clone()));
            let serial = format!("{}{}", "0".repeat(leading_zeros), bare.to_ascii_uppercase());
            let expected_serial = bare.trim_start_matches('0');
            let expected_serial = if expected_serial.is_empty() { "0" } else { expected_serial };
            prop_assert_eq!(normalize_serial(&serial), Some(expected_serial.to_owned()));
        }
    }

    #[test]
    fn weekdays_are_read_by_short_or_full_name_in_any_case() {
        for (day, (short, full)) in Weekdays::NAMES
            .iter()
            .zip([
                "Monday",
                "TUESDAY",
                "wednesday",
                "Thursday",
                "friday",
                "Saturday",
                "SUNDAY",
            ])
            .enumerate()
        {
            let day = u8::try_from(day).unwrap();
            assert_eq!(parse_weekday(short), Some(day));
            assert_eq!(parse_weekday(&short.to_ascii_uppercase()), Some(day));
            assert_eq!(parse_weekday(full), Some(day));
        }
        assert_eq!(parse_weekday("mo"), None);
        assert_eq!(parse_weekday("weekday"), None);
    }
}
