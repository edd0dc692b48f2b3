//! Evaluation of single factors against one request.
//!
//! Each function answers "does the factor match?" before its direction is applied; `Err` means
//! the factor cannot be evaluated (missing input, calendar out of range, CEL error), which the
//! strategy logic treats as unknown and which is never silently true.

use std::net::IpAddr;

use portcullis_core::{ClientCert, Request};

use crate::compile::Calendar;
use crate::model::{CertField, CertMatcher, Weekdays, Window};
use crate::values::{normalize_fingerprint, normalize_serial};

/// The request's time in the tenant's zone, computed once per decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Local date.
    pub date: jiff::civil::Date,
    /// 0 = Monday ... 6 = Sunday.
    pub weekday: u8,
    /// Minutes since local midnight.
    pub minute: u16,
}

impl LocalTime {
    /// Converts an instant to the local time of `zone`.
    pub fn new(time: jiff::Timestamp, zone: &jiff::tz::TimeZone) -> LocalTime {
        let local = zone.to_datetime(time);
        LocalTime {
            date: local.date(),
            weekday: u8::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0),
            minute: u16::try_from(local.hour()).unwrap_or(0) * 60
                + u16::try_from(local.minute()).unwrap_or(0),
        }
    }
}

/// Whether the address is in one of the networks. IPv4-mapped IPv6 addresses count as IPv4.
pub fn ip_matches(address: IpAddr, v4: &[(u32, u32)], v6: &[(u128, u128)]) -> bool {
    let address = match address {
        IpAddr::V6(v6_address) => match v6_address.to_ipv4_mapped() {
            Some(mapped) => IpAddr::V4(mapped),
            None => IpAddr::V6(v6_address),
        },
        other => other,
    };
    match address {
        IpAddr::V4(address) => {
            let bits = u32::from(address);
            v4.iter().any(|(value, mask)| bits & mask == *value)
        }
        IpAddr::V6(address) => {
            let bits = u128::from(address);
            v6.iter().any(|(value, mask)| bits & mask == *value)
        }
    }
}

/// Whether the local time is inside one of the windows. A window is inclusive at its start and
/// exclusive at its end. A window crossing midnight belongs to the day it starts on: with
/// weekdays [fri], `22:00-06:00` covers Friday 22:00 to Saturday 05:59.
pub fn window_matches(local: &LocalTime, windows: &[Window], weekdays: Weekdays) -> bool {
    let today = local.weekday;
    let yesterday = (today + 6) % 7;
    windows.iter().any(|window| {
        if window.start < window.end {
            weekdays.contains(today) && window.start <= local.minute && local.minute < window.end
        } else {
            (weekdays.contains(today) && local.minute >= window.start)
                || (weekdays.contains(yesterday) && local.minute < window.end)
        }
    })
}

/// Whether the market of `calendar` is closed on `date`: a closed weekday (unless listed as an
/// open day), a listed holiday or a listed closure.
pub fn market_closed(
    calendar: &Calendar,
    date: jiff::civil::Date,
    weekday: u8,
) -> Result<bool, String> {
    let before = calendar.valid_from.is_some_and(|from| date < from);
    let after = calendar.valid_until.is_some_and(|until| date > until);
    if before || after {
        return Err(format!(
            "calendar `{}` has no data for {date} (it covers {} to {})",
            calendar.name,
            calendar
                .valid_from
                .map_or("-".to_owned(), |d| d.to_string()),
            calendar
                .valid_until
                .map_or("-".to_owned(), |d| d.to_string()),
        ));
    }
    if calendar.closed_dates.binary_search(&date).is_ok() {
        return Ok(true);
    }
    Ok(calendar.closed_weekdays.contains(weekday)
        && calendar.open_days.binary_search(&date).is_err())
}

/// Whether the certificate is one of the allowed ones.
pub fn cert_matches(cert: &ClientCert, allowed: &[CertMatcher]) -> bool {
    let fingerprint = cert.fingerprint.as_deref().and_then(normalize_fingerprint);
    let serial = cert.serial.as_deref().and_then(normalize_serial);
    allowed.iter().any(|matcher| {
        let value = matcher.value.as_str();
        let id = || cert.id.as_deref() == Some(value);
        let cn = || cert.subject_cn.as_deref() == Some(value);
        let by_fingerprint = || fingerprint.as_deref() == Some(value);
        let by_serial = || serial.as_deref() == Some(value);
        match matcher.field {
            Some(CertField::Id) => id(),
            Some(CertField::SubjectCn) => cn(),
            Some(CertField::Fingerprint) => by_fingerprint(),
            Some(CertField::Serial) => by_serial(),
            None => {
                id() || cn()
                    || normalize_fingerprint(value)
                        .is_some_and(|v| fingerprint.as_deref() == Some(&v))
                    || normalize_serial(value).is_some_and(|v| serial.as_deref() == Some(&v))
            }
        }
    })
}

/// The request's client address, or why there is none.
pub fn require_ip(request: &Request) -> Result<IpAddr, String> {
    request
        .context
        .ip
        .ok_or_else(|| "the request has no context.ip, which this factor needs".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IpPattern;
    use crate::values::{parse_ip_pattern, parse_window};

    type Networks = (Vec<(u32, u32)>, Vec<(u128, u128)>);

    fn sets(patterns: &[&str]) -> Networks {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for pattern in patterns {
            match parse_ip_pattern(pattern).unwrap() {
                IpPattern::V4 { value, mask } => v4.push((value, mask)),
                IpPattern::V6 { value, mask } => v6.push((value, mask)),
            }
        }
        (v4, v6)
    }

    #[test]
    fn ip_wildcards_cidrs_exact_and_mapped_addresses() {
        let (v4, v6) = sets(&[
            "172.*.*.*",
            "10.1.0.0/16",
            "192.168.1.7",
            "2001:db8::/32",
            "10.*.3.*",
        ]);
        let check = |a: &str| ip_matches(a.parse().unwrap(), &v4, &v6);
        assert!(check("172.16.3.4"));
        assert!(check("172.255.0.1"));
        assert!(!check("173.0.0.1"));
        assert!(check("10.1.200.3"));
        assert!(!check("10.2.0.1"));
        assert!(check("10.9.3.77"), "non-contiguous wildcard");
        assert!(check("192.168.1.7"));
        assert!(!check("192.168.1.8"));
        assert!(check("2001:db8:ffff::1"));
        assert!(!check("2001:db9::1"));
        assert!(
            check("::ffff:172.16.3.4"),
            "IPv4-mapped IPv6 counts as IPv4"
        );
    }

    #[test]
    fn ip_pattern_errors_name_the_problem() {
        assert!(
            parse_ip_pattern("172.*.*")
                .unwrap_err()
                .contains("four octets")
        );
        assert!(
            parse_ip_pattern("172.*.*.300")
                .unwrap_err()
                .contains("`300`")
        );
        assert!(
            parse_ip_pattern("2001:db8::*")
                .unwrap_err()
                .contains("IPv6")
        );
        assert!(parse_ip_pattern("10.0.0.0/33").is_err());
        assert!(parse_ip_pattern("not-an-address").is_err());
        assert!(parse_ip_pattern("17*.1.1.1").is_err());
    }

    fn at(weekday: u8, hh: u16, mm: u16) -> LocalTime {
        LocalTime {
            date: jiff::civil::date(2026, 3, 2),
            weekday,
            minute: hh * 60 + mm,
        }
    }

    #[test]
    fn windows_are_start_inclusive_end_exclusive() {
        let windows = [parse_window("09:15-15:30").unwrap()];
        assert!(!window_matches(&at(0, 9, 14), &windows, Weekdays::ALL));
        assert!(window_matches(&at(0, 9, 15), &windows, Weekdays::ALL));
        assert!(window_matches(&at(0, 15, 29), &windows, Weekdays::ALL));
        assert!(!window_matches(&at(0, 15, 30), &windows, Weekdays::ALL));
    }

    #[test]
    fn windows_crossing_midnight_belong_to_their_start_day() {
        let windows = [parse_window("22:00-06:00").unwrap()];
        let friday_only = Weekdays(1 << 4);
        assert!(window_matches(&at(4, 23, 0), &windows, friday_only));
        assert!(
            window_matches(&at(5, 5, 59), &windows, friday_only),
            "Saturday early morning"
        );
        assert!(!window_matches(&at(5, 6, 0), &windows, friday_only));
        assert!(
            !window_matches(&at(5, 23, 0), &windows, friday_only),
            "Saturday evening starts a new window"
        );
        assert!(
            !window_matches(&at(4, 5, 0), &windows, friday_only),
            "Friday early belongs to Thursday"
        );
        let whole_day = [parse_window("00:00-24:00").unwrap()];
        assert!(window_matches(&at(2, 23, 59), &whole_day, Weekdays::ALL));
    }

    #[test]
    fn window_errors_name_the_problem() {
        assert!(parse_window("09:15").unwrap_err().contains("'-'"));
        assert!(parse_window("9:15-15:30").unwrap_err().contains("HH:MM"));
        assert!(
            parse_window("09:15-25:00")
                .unwrap_err()
                .contains("above 23")
        );
        assert!(
            parse_window("09:60-10:00")
                .unwrap_err()
                .contains("above 59")
        );
        assert!(parse_window("10:00-10:00").unwrap_err().contains("empty"));
        assert!(parse_window("24:00-10:00").unwrap_err().contains("24:00"));
    }

    fn calendar() -> Calendar {
        Calendar {
            name: "x".into(),
            closed_weekdays: Weekdays(0b110_0000),
            closed_dates: vec![
                jiff::civil::date(2026, 1, 1),
                jiff::civil::date(2026, 10, 1),
            ],
            open_days: vec![jiff::civil::date(2026, 1, 4)],
            valid_from: Some(jiff::civil::date(2026, 1, 1)),
            valid_until: Some(jiff::civil::date(2026, 12, 31)),
        }
    }

    #[test]
    fn calendars_close_on_weekends_and_listed_days_and_refuse_other_years() {
        let cal = calendar();
        let day = |y, m, d| jiff::civil::date(y, m, d);
        let weekday =
            |d: jiff::civil::Date| u8::try_from(d.weekday().to_monday_zero_offset()).unwrap();
        let closed = |d: jiff::civil::Date| market_closed(&cal, d, weekday(d));
        assert_eq!(closed(day(2026, 3, 2)), Ok(false), "a Monday");
        assert_eq!(closed(day(2026, 3, 7)), Ok(true), "a Saturday");
        assert_eq!(
            closed(day(2026, 1, 1)),
            Ok(true),
            "a listed holiday on a Thursday"
        );
        assert_eq!(
            closed(day(2026, 1, 4)),
            Ok(false),
            "a Sunday listed as an open day"
        );
        let error = closed(day(2027, 1, 4)).unwrap_err();
        assert!(error.contains("no data for 2027-01-04"), "{error}");
    }

    #[test]
    fn certificates_match_by_any_listed_field() {
        let fingerprint = "AB:CD:".repeat(16);
        let fingerprint = fingerprint.trim_end_matches(':');
        let normalized = normalize_fingerprint(fingerprint).unwrap();
        let cert = ClientCert {
            id: Some("cert1".into()),
            fingerprint: Some(fingerprint.to_owned()),
            serial: Some("00:1A:2b".into()),
            subject_cn: Some("ops-laptop-7".into()),
            ..ClientCert::default()
        };
        let any = |value: &str| CertMatcher {
            field: None,
            value: value.into(),
        };
        let field = |field, value: &str| CertMatcher {
            field: Some(field),
            value: value.into(),
        };
        assert!(cert_matches(&cert, &[any("cert1")]));
        assert!(cert_matches(&cert, &[any("ops-laptop-7")]));
        assert!(cert_matches(&cert, &[any(&normalized)]));
        assert!(cert_matches(
            &cert,
            &[field(CertField::Fingerprint, &normalized)]
        ));
        assert!(cert_matches(&cert, &[field(CertField::Serial, "1a2b")]));
        assert!(
            !cert_matches(&cert, &[field(CertField::Id, "ops-laptop-7")]),
            "typed entries only match their field"
        );
        assert!(!cert_matches(&cert, &[any("cert2")]));
        assert!(!cert_matches(&ClientCert::default(), &[any("cert1")]));
    }
}
