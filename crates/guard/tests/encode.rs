//! Output encoding: known vectors for each context, and properties over arbitrary text — the
//! output holds none of the characters that could leave its context, and decoding it the way
//! that context does gives the input back.
#![allow(clippy::unwrap_used, reason = "test code: failures should be loud")]

use std::borrow::Cow;

use portcullis_guard::encode::{html_attribute, html_text, javascript_string, url_component};
use proptest::prelude::*;

const SCRIPT: &str = "<script>alert('x')</script>";

#[test]
fn html_text_vectors() {
    for (input, expected) in [
        (SCRIPT, "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"),
        ("Tom & \"Jerry\"", "Tom &amp; &quot;Jerry&quot;"),
        ("&amp;", "&amp;amp;"),
        ("a > b", "a &gt; b"),
        // Nothing else is touched: slashes, equals signs, backticks, controls, non-ASCII.
        ("a/b=`c`\t\u{2028}中", "a/b=`c`\t\u{2028}中"),
        ("", ""),
    ] {
        assert_eq!(html_text(input), expected, "input {input:?}");
    }
}

#[test]
fn html_attribute_vectors() {
    for (input, expected) in [
        (
            SCRIPT,
            "&lt;script&gt;alert&#x28;&#x27;x&#x27;&#x29;&lt;&#x2F;script&gt;",
        ),
        ("\" onload=\"x", "&quot;&#x20;onload&#x3D;&quot;x"),
        (
            "' autofocus onfocus='x",
            "&#x27;&#x20;autofocus&#x20;onfocus&#x3D;&#x27;x",
        ),
        ("`x`", "&#x60;x&#x60;"),
        ("a&b", "a&amp;b"),
        ("tab\there", "tab&#x09;here"),
        ("naïve 中文", "naïve&#x20;中文"),
        ("", ""),
    ] {
        assert_eq!(html_attribute(input), expected, "input {input:?}");
    }
}

#[test]
fn javascript_string_vectors() {
    for (input, expected) in [
        (
            SCRIPT,
            r"\x3Cscript\x3Ealert\x28\x27x\x27\x29\x3C\x2Fscript\x3E",
        ),
        ("';alert(1)//", r"\x27\x3Balert\x281\x29\x2F\x2F"),
        ("\"", r"\x22"),
        ("back\\slash", r"back\x5Cslash"),
        ("line\nfeed\r", r"line\x0Afeed\x0D"),
        ("<!--", r"\x3C\x21\x2D\x2D"),
        ("a\u{2028}b\u{2029}c", r"a\u2028b\u2029c"),
        ("${x}", r"\x24\x7Bx\x7D"),
        ("\0", r"\x00"),
        ("\u{7f}", r"\x7F"),
        ("名字 é", r"名字\x20é"),
        ("", ""),
    ] {
        assert_eq!(javascript_string(input), expected, "input {input:?}");
    }
}

#[test]
fn url_component_vectors() {
    for (input, expected) in [
        ("a b&c=d/é", "a%20b%26c%3Dd%2F%C3%A9"),
        ("-._~AZaz09", "-._~AZaz09"),
        ("100%", "100%25"),
        ("a+b", "a%2Bb"),
        (":/?#[]@", "%3A%2F%3F%23%5B%5D%40"),
        ("!$&'()*,;=", "%21%24%26%27%28%29%2A%2C%3B%3D"),
        (SCRIPT, "%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E"),
        ("中", "%E4%B8%AD"),
        ("", ""),
    ] {
        assert_eq!(url_component(input), expected, "input {input:?}");
    }
}

#[test]
fn nothing_to_escape_borrows() {
    assert!(matches!(html_text("plain words 中文"), Cow::Borrowed(_)));
    assert!(matches!(html_attribute("plainWords中文"), Cow::Borrowed(_)));
    assert!(matches!(
        javascript_string("plainWords中文"),
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        url_component("plain-words_1.0~"),
        Cow::Borrowed(_)
    ));
}

/// Arbitrary Unicode, and text dense in ASCII punctuation, controls and the JavaScript line
/// terminators, where escaping happens.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[\\x00-\\x7F\u{2028}\u{2029}é中😀]{0,64}",]
}

/// The entities `html_text` writes, one of which must follow every `&` of its output.
const TEXT_ENTITIES: [&str; 5] = ["&amp;", "&lt;", "&gt;", "&quot;", "&#x27;"];

/// Undoes `javascript_string` the way a JavaScript parser reads `\xHH` and `\uHHHH` escapes,
/// refusing any other escape, so that the test also proves only those two are written.
fn unescape_javascript(escaped: &str) -> Option<String> {
    let mut text = String::new();
    let mut characters = escaped.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            text.push(character);
            continue;
        }
        let digits = match characters.next()? {
            'x' => 2,
            'u' => 4,
            _ => return None,
        };
        let hex: String = characters.by_ref().take(digits).collect();
        if hex.len() != digits || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return None;
        }
        text.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
    }
    Some(text)
}

proptest! {
    #[test]
    fn html_text_round_trips_without_markup(input in text()) {
        let encoded = html_text(&input);
        prop_assert!(!encoded.contains(['<', '>', '"', '\'']), "{encoded:?}");
        for (index, _) in encoded.match_indices('&') {
            prop_assert!(
                TEXT_ENTITIES.iter().any(|entity| encoded[index..].starts_with(entity)),
                "bare & in {encoded:?}"
            );
        }
        prop_assert_eq!(html_escape::decode_html_entities(&encoded), input.as_str());
    }

    #[test]
    fn html_attribute_output_is_one_inert_value(input in text()) {
        let encoded = html_attribute(&input);
        // ASCII in the output is letters, digits and the three characters of a reference:
        // no quote, backtick, angle bracket, equals sign, whitespace or control.
        for character in encoded.chars().filter(char::is_ascii) {
            prop_assert!(
                character.is_ascii_alphanumeric() || matches!(character, '&' | '#' | ';'),
                "{character:?} in {encoded:?}"
            );
        }
        let non_ascii = |text: &str| text.chars().filter(|c| !c.is_ascii()).collect::<String>();
        prop_assert_eq!(non_ascii(&encoded), non_ascii(&input));
    }

    /// html-escape's decoder (like the HTML standard) leaves references to NUL and to controls
    /// other than whitespace undecoded, so the round trip is over text without them.
    #[test]
    fn html_attribute_round_trips(
        input in prop_oneof![
            "[\\t\\n\\x0C\\r\\x20-\\x7E]{0,64}",
            any::<String>().prop_filter("C0 controls and DEL", |text| {
                !text.chars().any(|c| c.is_ascii_control() && !c.is_ascii_whitespace())
            }),
        ],
    ) {
        let encoded = html_attribute(&input);
        prop_assert_eq!(html_escape::decode_html_entities(&encoded), input.as_str());
    }

    #[test]
    fn javascript_string_round_trips_without_breakouts(input in text()) {
        let encoded = javascript_string(&input);
        for character in encoded.chars() {
            prop_assert!(
                !character.is_ascii() || character.is_ascii_alphanumeric() || character == '\\',
                "{character:?} in {encoded:?}"
            );
            prop_assert!(!matches!(character, '\u{2028}' | '\u{2029}'), "{encoded:?}");
        }
        prop_assert_eq!(unescape_javascript(&encoded), Some(input));
    }

    #[test]
    fn url_component_round_trips_through_percent_decoding(input in text()) {
        let encoded = url_component(&input);
        let bytes = encoded.as_bytes();
        let mut index = 0;
        while let Some(&byte) = bytes.get(index) {
            if byte == b'%' {
                let hex = bytes.get(index + 1..index + 3).unwrap_or_default();
                prop_assert!(
                    hex.len() == 2
                        && hex.iter().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)),
                    "bad escape in {encoded:?}"
                );
                index += 3;
            } else {
                prop_assert!(
                    byte.is_ascii_alphanumeric() || b"-._~".contains(&byte),
                    "{:?} in {encoded:?}",
                    char::from(byte)
                );
                index += 1;
            }
        }
        let decoded = percent_encoding::percent_decode_str(&encoded).decode_utf8().unwrap();
        prop_assert_eq!(decoded, input.as_str());
    }
}
