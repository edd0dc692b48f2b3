//! Built-in parameter formats: valid and invalid examples for each, and properties — every
//! well-formed resident identity number is accepted and every single-digit change to one is
//! refused; mobile numbers in every allowed spelling are accepted and near misses refused.
#![allow(clippy::unwrap_used, reason = "test code: failures should be loud")]

use std::net::{Ipv4Addr, Ipv6Addr};

use jiff::civil::{Date, date as civil_date};
use portcullis_guard::Format;
use portcullis_guard::formats::{date, email, ip, ipv4, ipv6, mobile, resident_id, resident_id_on};
use proptest::prelude::*;

/// The "today" resident identity numbers are judged against, fixed so tests never age.
const TODAY: Date = civil_date(2025, 6, 30);

const PROVINCES: [u32; 35] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 91,
];

/// `body` (17 digits) followed by its ISO 7064 MOD 11-2 check character, computed from the
/// standard's definition rather than from the library's tables: the check value `c` makes
/// `sum(digit × 2^(17 - i)) + c ≡ 1 (mod 11)`, and 10 is written `X`.
fn with_check(body: &str) -> String {
    assert_eq!(body.len(), 17, "body {body:?}");
    let sum: u32 = body
        .chars()
        .enumerate()
        .map(|(index, digit)| digit.to_digit(10).unwrap() * (1_u32 << (17 - index)) % 11)
        .sum();
    let check = (12 - sum % 11) % 11;
    let check = if check == 10 {
        'X'
    } else {
        char::from_digit(check, 10).unwrap()
    };
    format!("{body}{check}")
}

#[test]
fn resident_id_examples_from_the_standard() {
    // GB 11643-1999's own examples, and their check characters as the test computes them.
    for number in ["11010519491231002X", "440524188001010014"] {
        assert_eq!(with_check(&number[..17]), number);
        assert!(resident_id_on(number, TODAY), "{number}");
        assert!(resident_id(number), "{number} against the clock");
    }
    assert!(resident_id_on("11010519491231002x", TODAY));
}

#[test]
fn resident_id_valid() {
    for body in [
        "31010420000229123", // a leap day
        "91000019000101000", // born abroad
        "71000019991231000", // Taiwan
        "81000020100101555", // Hong Kong
        "82000020250630001", // born today
        "65010219800515301",
    ] {
        let number = with_check(body);
        assert!(resident_id_on(&number, TODAY), "{number}");
    }
}

#[test]
fn resident_id_invalid() {
    let valid = "11010519491231002X";
    for number in [
        "",
        "11010519491231002",   // 17 characters
        "11010519491231002X0", // 19 characters
        "110105491231002",     // the old 15-digit form
        "110105194912310021",  // wrong check digit
        "11010519491231002Y",
        "X1010519491231002X",
        " 11010519491231002X",
        "11010519491231002X ",
        "1101051949123100２X", // a full-width digit
        "11010519491231002\u{0}",
    ] {
        assert_ne!(number, valid);
        assert!(!resident_id_on(number, TODAY), "{number:?}");
    }
    for (body, why) in [
        ("10010519491231002", "province 10"),
        ("16010519491231002", "province 16"),
        ("20010519491231002", "province 20"),
        ("38010519491231002", "province 38"),
        ("47010519491231002", "province 47"),
        ("55010519491231002", "province 55"),
        ("66010519491231002", "province 66"),
        ("72010519491231002", "province 72"),
        ("83010519491231002", "province 83"),
        ("92010519491231002", "province 92"),
        ("00010519491231002", "province 00"),
        ("11010519490230002", "30 February"),
        ("11010519000229002", "1900 was not a leap year"),
        ("11010519491301002", "month 13"),
        ("11010519490001002", "month 0"),
        ("11010519490100002", "day 0"),
        ("11010519490132002", "day 32"),
        ("11010500000101002", "year 0"),
        ("11010520250701002", "born tomorrow"),
        ("11010530000101002", "born in 3000"),
    ] {
        let number = with_check(body);
        assert!(!resident_id_on(&number, TODAY), "{number}: {why}");
    }
}

fn birth_date() -> impl Strategy<Value = Date> {
    (1_i16..=2025, 1_i8..=12, 1_i8..=31).prop_filter_map("a real date up to today", |parts| {
        Date::new(parts.0, parts.1, parts.2)
            .ok()
            .filter(|birth| *birth <= TODAY)
    })
}

/// 17 body digits: a province in use, any rest of the address code, a birth date no later
/// than [`TODAY`], any sequence number.
fn resident_id_body() -> impl Strategy<Value = String> {
    (
        prop::sample::select(PROVINCES.as_slice()),
        0_u32..10_000,
        birth_date(),
        0_u32..1_000,
    )
        .prop_map(|(province, district, birth, sequence)| {
            format!(
                "{province:02}{district:04}{:04}{:02}{:02}{sequence:03}",
                birth.year(),
                birth.month(),
                birth.day()
            )
        })
}

proptest! {
    #[test]
    fn well_formed_resident_ids_are_accepted(body in resident_id_body()) {
        let number = with_check(&body);
        prop_assert!(resident_id_on(&number, TODAY), "{number}");
        prop_assert!(resident_id_on(&number.to_ascii_lowercase(), TODAY), "{number} lower case");
    }

    /// MOD 11-2 catches every single substitution, so whether or not the change also breaks
    /// the province or the date, the number must be refused.
    #[test]
    fn any_single_character_change_is_refused(body in resident_id_body()) {
        let number = with_check(&body);
        for index in 0..number.len() {
            let original = number.as_bytes()[index];
            let replacements: &[u8] = if index == 17 { b"0123456789X" } else { b"0123456789" };
            for &replacement in replacements.iter().filter(|&&r| r != original) {
                let mut changed = number.clone().into_bytes();
                changed[index] = replacement;
                let changed = String::from_utf8(changed).unwrap();
                prop_assert!(!resident_id_on(&changed, TODAY), "{number} → {changed}");
            }
        }
    }

    #[test]
    fn unused_province_codes_are_refused(
        province in prop::sample::select(
            (0_u32..100).filter(|code| !PROVINCES.contains(code)).collect::<Vec<_>>(),
        ),
        rest in resident_id_body(),
    ) {
        let number = with_check(&format!("{province:02}{}", &rest[2..]));
        prop_assert!(!resident_id_on(&number, TODAY), "{number}");
    }

    #[test]
    fn birth_dates_after_today_are_refused(
        days in 1_i32..2_000_000,
        rest in resident_id_body(),
    ) {
        // Two million days reach the 77th century, well within four-digit years.
        let birth = TODAY.checked_add(jiff::Span::new().days(days)).unwrap();
        let body = format!(
            "{}{:04}{:02}{:02}{}",
            &rest[..6],
            birth.year(),
            birth.month(),
            birth.day(),
            &rest[14..]
        );
        let number = with_check(&body);
        prop_assert!(!resident_id_on(&number, TODAY), "{number}");
        prop_assert!(resident_id_on(&number, birth), "{number} on its birthday");
    }
}

#[test]
fn mobile_valid() {
    for number in [
        "13812345678",
        "19912345678",
        "14700000000",
        "+8613812345678",
        "8613812345678",
        "+86 13812345678",
        "+86-13812345678",
        "86 13812345678",
        "86-13812345678",
    ] {
        assert!(mobile(number), "{number}");
    }
}

#[test]
fn mobile_invalid() {
    for number in [
        "",
        "1381234567",       // 10 digits
        "138123456789",     // 12 digits
        "12812345678",      // second digit 2
        "10812345678",      // second digit 0
        "23812345678",      // not starting with 1
        "138 1234 5678",    // spaces inside
        "138-1234-5678",    // hyphens inside
        " 13812345678",     // leading space
        "13812345678 ",     // trailing space
        "-13812345678",     // separator without a country code
        "+86  13812345678", // two separators
        "+86 -13812345678",
        "+8513812345678", // another country code
        "+ 8613812345678",
        "008613812345678", // international prefix is not a country code
        "+86",
        "86",
        "+861381234567a",
        "１３８１２３４５６７８", // full-width digits
    ] {
        assert!(!mobile(number), "{number:?}");
    }
}

const MOBILE_PREFIXES: [&str; 7] = ["", "+86", "86", "+86 ", "+86-", "86 ", "86-"];

proptest! {
    #[test]
    fn mobile_numbers_with_any_prefix_are_accepted(
        prefix in prop::sample::select(MOBILE_PREFIXES.as_slice()),
        number in "1[3-9][0-9]{9}",
    ) {
        prop_assert!(mobile(&format!("{prefix}{number}")), "{prefix}{number}");
    }

    #[test]
    fn second_digit_below_three_is_refused(
        prefix in prop::sample::select(MOBILE_PREFIXES.as_slice()),
        number in "1[0-2][0-9]{9}",
    ) {
        prop_assert!(!mobile(&format!("{prefix}{number}")), "{prefix}{number}");
    }

    #[test]
    fn wrong_lengths_are_refused(
        prefix in prop::sample::select(MOBILE_PREFIXES.as_slice()),
        number in prop_oneof!["1[3-9][0-9]{0,8}", "1[3-9][0-9]{10,16}"],
    ) {
        prop_assert!(!mobile(&format!("{prefix}{number}")), "{prefix}{number}");
    }

    #[test]
    fn a_non_digit_anywhere_in_the_number_is_refused(
        prefix in prop::sample::select(MOBILE_PREFIXES.as_slice()),
        number in "1[3-9][0-9]{9}",
        index in 0_usize..11,
        intruder in "[^0-9]",
    ) {
        let mut changed: Vec<char> = number.chars().collect();
        changed[index] = intruder.chars().next().unwrap();
        let changed: String = changed.into_iter().collect();
        prop_assert!(!mobile(&format!("{prefix}{changed}")), "{prefix}{changed}");
    }
}

#[test]
fn email_valid() {
    for address in [
        "user@example.com",
        "first.last+tag@sub.example.co.uk",
        "o'brien@example.ie",
        "a@b.cn",
        "x@xn--fiqs8s.cn",
        "user_name-1@my-host.example",
        "!#$%&'*+-/=?^_`{|}~@example.org",
        "user@123.example",
        "user@example.xn--p1ai",
        &format!("{}@example.com", "a".repeat(64)),
        &format!("a@{}.com", "b".repeat(63)),
    ] {
        assert!(email(address), "{address}");
    }
    // The longest domain and the longest address (254 bytes leave 252 for the domain).
    let label = "c".repeat(63);
    let domain = format!("{label}.{label}.{label}.{}", "d".repeat(60));
    assert_eq!(domain.len(), 252);
    assert!(email(&format!("a@{domain}")));
    let address = format!("{}@{label}.{label}.{}", "a".repeat(64), "e".repeat(61));
    assert_eq!(address.len(), 254);
    assert!(email(&address), "{address}");
}

#[test]
fn email_invalid() {
    let label = "c".repeat(63);
    let long_domain = format!("{label}.{label}.{label}.{}", "d".repeat(61));
    let too_long = format!("{}@{label}.{label}.{}", "a".repeat(64), "e".repeat(62));
    for address in [
        "",
        "plain",
        "@example.com",
        "user@",
        "user@@example.com",
        "a@b@example.com",
        "user@localhost",
        ".user@example.com",
        "user.@example.com",
        "us..er@example.com",
        "user@.example.com",
        "user@-example.com",
        "user@example-.com",
        "user@example..com",
        "user@example.com.",
        "user@192.0.2.1",
        "user@[192.0.2.1]",
        "user@exa_mple.com",
        "user name@example.com",
        "\"user name\"@example.com",
        "user@example.com (comment)",
        "<user@example.com>",
        "用户@example.com",
        "user@例子.中国",
        "user@example.com\n",
        " user@example.com",
        "user(x)@example.com",
        "user@example.c0m.123",
        &format!("{}@example.com", "a".repeat(65)),
        &format!("a@{}.com", "b".repeat(64)),
        &format!("a@{long_domain}"),
        &too_long,
    ] {
        assert!(!email(address), "{address:?}");
    }
    assert_eq!(long_domain.len(), 253);
    assert_eq!(too_long.len(), 255);
}

/// Addresses of the everyday kind: a dotted local part with the usual symbols, a domain of
/// hyphenated labels, an alphabetic top-level domain.
const ORDINARY_ADDRESS: &str = concat!(
    "[a-z0-9_+-]{1,20}(\\.[a-z0-9]{1,10}){0,2}",
    "@[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]{1,10}){0,2}\\.[a-z]{2,6}",
);

proptest! {
    #[test]
    fn ordinary_addresses_are_accepted(address in ORDINARY_ADDRESS) {
        prop_assert!(email(&address), "{address}");
    }

    #[test]
    fn anything_without_exactly_one_at_is_refused(input in any::<String>()) {
        prop_assume!(input.matches('@').count() != 1);
        prop_assert!(!email(&input), "{input:?}");
    }
}

#[test]
fn ip_addresses() {
    for (input, is_ipv4, is_ipv6) in [
        ("192.0.2.1", true, false),
        ("0.0.0.0", true, false),
        ("255.255.255.255", true, false),
        ("::1", false, true),
        ("::", false, true),
        ("2001:db8::1", false, true),
        ("2001:DB8:0:0:0:0:0:1", false, true),
        ("::ffff:192.0.2.1", false, true),
        ("256.0.0.1", false, false),
        ("1.2.3", false, false),
        ("1.2.3.4.5", false, false),
        ("010.0.0.1", false, false),
        ("127.1", false, false),
        ("0x7f.0.0.1", false, false),
        ("2130706433", false, false),
        (" 192.0.2.1", false, false),
        ("192.0.2.1/24", false, false),
        ("192.0.2.1:80", false, false),
        ("[::1]", false, false),
        ("fe80::1%eth0", false, false),
        ("2001:db8:::1", false, false),
        ("2001:db8::1::2", false, false),
        ("12345::", false, false),
        ("", false, false),
    ] {
        assert_eq!(ipv4(input), is_ipv4, "ipv4 {input:?}");
        assert_eq!(ipv6(input), is_ipv6, "ipv6 {input:?}");
        assert_eq!(ip(input), is_ipv4 || is_ipv6, "ip {input:?}");
    }
}

proptest! {
    #[test]
    fn every_ipv4_address_in_canonical_form(address in any::<Ipv4Addr>()) {
        let text = address.to_string();
        prop_assert!(ipv4(&text) && ip(&text) && !ipv6(&text), "{text}");
    }

    #[test]
    fn every_ipv6_address_in_canonical_form(address in any::<Ipv6Addr>()) {
        let text = address.to_string();
        prop_assert!(ipv6(&text) && ip(&text) && !ipv4(&text), "{text}");
    }

    #[test]
    fn leading_zeros_are_refused(octets in any::<[u8; 4]>(), part in 0_usize..4) {
        let mut parts: Vec<String> = octets.iter().map(u8::to_string).collect();
        parts[part].insert(0, '0');
        let text = parts.join(".");
        prop_assert!(!ipv4(&text) && !ip(&text), "{text}");
    }
}

#[test]
fn dates() {
    for input in [
        "2024-02-29",
        "2000-02-29",
        "2025-12-31",
        "0001-01-01",
        "9999-12-31",
        "1970-01-01",
    ] {
        assert!(date(input), "{input}");
    }
    for input in [
        "",
        "2023-02-29",
        "1900-02-29",
        "2024-04-31",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
        "2024-01-32",
        "0000-01-01",
        "24-01-01",
        "2024-1-01",
        "2024-01-1",
        "2024/01/01",
        "20240101",
        "2024-01-01T00:00",
        "2024-01-01 ",
        " 2024-01-01",
        "+2024-01-01",
        "-2024-01-01",
        "10000-01-01",
        "2024-0a-01",
        "２０２４-01-01",
    ] {
        assert!(!date(input), "{input:?}");
    }
}

proptest! {
    /// Every four-digit year, two-digit month and two-digit day is accepted exactly when it is
    /// a day of the calendar.
    #[test]
    fn dates_agree_with_the_calendar(year in 1_i16..=9999, month in 0_i8..=99, day in 0_i8..=99) {
        let input = format!("{year:04}-{month:02}-{day:02}");
        prop_assert_eq!(date(&input), Date::new(year, month, day).is_ok(), "{}", input);
    }
}

#[test]
fn format_names() {
    let names = [
        "email",
        "ipv4",
        "ipv6",
        "ip",
        "resident_id",
        "mobile",
        "date",
    ];
    assert_eq!(Format::ALL.map(Format::name), names);
    for format in Format::ALL {
        assert_eq!(format.to_string().parse::<Format>().unwrap(), format);
    }
    for unknown in ["phone", "Email", "EMAIL", " email", "resident-id", ""] {
        let error = unknown.parse::<Format>().unwrap_err();
        assert_eq!(error.name, unknown);
        let message = error.to_string();
        assert!(message.contains(&format!("`{unknown}`")), "{message}");
        assert!(
            message.ends_with("email, ipv4, ipv6, ip, resident_id, mobile, date"),
            "{message}"
        );
    }
}

#[test]
fn format_check_dispatches() {
    for (name, valid, invalid) in [
        ("email", "user@example.com", "user@localhost"),
        ("ipv4", "192.0.2.1", "::1"),
        ("ipv6", "::1", "192.0.2.1"),
        ("ip", "::1", "localhost"),
        ("resident_id", "11010519491231002X", "110105194912310021"),
        ("mobile", "+86 13812345678", "12812345678"),
        ("date", "2024-02-29", "2023-02-29"),
    ] {
        let format: Format = name.parse().unwrap();
        assert!(format.check(valid), "{name} {valid}");
        assert!(!format.check(invalid), "{name} {invalid}");
    }
}
