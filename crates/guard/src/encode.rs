//! Output encoding: turning untrusted text into text that one output context reads back as
//! data, never as markup or code.
//!
//! Each function serves exactly one context, and encoding for the wrong context is not safe:
//! HTML-escaped text inside a `<script>` block is still JavaScript, and a JavaScript-escaped
//! string inside an attribute is still open to the attribute's own quote. Pick the function by
//! where the value lands:
//!
//! | where the value lands | function |
//! |---|---|
//! | element content, `<p>…</p>` | [`html_text`] |
//! | attribute value, `title="…"` or `title='…'` | [`html_attribute`] |
//! | string literal in a script block, `<script>let name = '…';</script>` | [`javascript_string`] |
//! | one path segment or query key/value, `/items/…?q=…` | [`url_component`] |
//!
//! A URL placed in an `href` or `src` needs two steps: its components encoded with
//! [`url_component`] while the URL is built, then the whole URL with [`html_attribute`]. Neither
//! step makes a `javascript:` URL harmless; choosing allowed schemes is the caller's job.
//!
//! This module owns the escaping rules only. It does not sanitize HTML (keep some tags, drop
//! others), does not decode, and does not know about templates: contexts not listed above
//! (event-handler attributes, `<style>`, unquoted script code) have no safe encoder here and
//! should not receive untrusted text at all.
//!
//! Every function returns the input unchanged, borrowed, when nothing in it needs escaping, so
//! the common case of plain words costs a scan and no allocation.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Escapes text for HTML element content: `&`, `<`, `>`, `"` and `'` become character
/// references.
///
/// Only `&` and `<` can change the meaning of element content, but the quotes are escaped as
/// well, so that text which a later template change moves into a quoted attribute stays inert.
///
/// ```
/// use portcullis_guard::encode::html_text;
/// assert_eq!(
///     html_text("<script>alert('x')</script>"),
///     "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;",
/// );
/// ```
pub fn html_text(text: &str) -> Cow<'_, str> {
    // The crate's "quoted attribute" encoder escapes exactly the five characters above.
    html_escape::encode_quoted_attribute(text)
}

/// Escapes text for an HTML attribute value: every ASCII character except letters and digits
/// becomes a character reference (`&amp;`, `&lt;`, `&gt;`, `&quot;`, else `&#xHH;`); other
/// characters stay as they are.
///
/// This is OWASP's rule for attributes. It is more than a quoted value needs (`&` and the
/// surrounding quote), and that margin is the point: the output contains no quote of
/// either kind, no backtick (which old Internet Explorer took as a quote), no space and no
/// `=`, so it stays one inert value even where a template forgot the quotes.
///
/// Not for attributes whose value is itself code or a URL scheme decision (`onclick`,
/// `style`, `href` with an untrusted scheme); see the module documentation.
///
/// ```
/// use portcullis_guard::encode::html_attribute;
/// assert_eq!(html_attribute("\" onload=\"x"), "&quot;&#x20;onload&#x3D;&quot;x");
/// ```
pub fn html_attribute(value: &str) -> Cow<'_, str> {
    // Despite its name, html-escape's unquoted-attribute encoder is the OWASP rule, and safe
    // for quoted values too.
    html_escape::encode_unquoted_attribute(value)
}

/// Escapes text for a JavaScript string literal, single- or double-quoted, inside a
/// `<script>` block: every ASCII character except letters and digits becomes `\xHH`, and the
/// line terminators U+2028 and U+2029 become `\u2028` and `\u2029`. Other characters stay.
///
/// Escaping every ASCII punctuation character, rather than only the quote and backslash,
/// keeps the literal closed whichever quote surrounds it, and leaves no `<` or `/` for the
/// HTML parser, which ends a script block at `</script` before JavaScript sees a single
/// character. U+2028 and U+2029 ended string literals (a syntax error) before ES2019, and
/// still do in JSONP-style consumers that predate it.
///
/// Not for template literals (backquoted, where `${` is code) nor for event-handler
/// attributes (where the HTML parser decodes character references first).
///
/// ```
/// use portcullis_guard::encode::javascript_string;
/// assert_eq!(javascript_string("';alert(1)//"), r"\x27\x3Balert\x281\x29\x2F\x2F");
/// ```
pub fn javascript_string(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find(needs_javascript_escape) else {
        return Cow::Borrowed(text);
    };
    // Most untrusted strings have a few punctuation characters, each growing by three bytes.
    let mut escaped = String::with_capacity(text.len() + 16);
    escaped.push_str(&text[..first]);
    for character in text[first..].chars() {
        match character {
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            ascii if ascii.is_ascii() && !ascii.is_ascii_alphanumeric() => {
                let byte = u32::from(ascii);
                escaped.push_str("\\x");
                escaped.push(hex_digit(byte >> 4));
                escaped.push(hex_digit(byte & 0xF));
            }
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

fn needs_javascript_escape(character: char) -> bool {
    matches!(character, '\u{2028}' | '\u{2029}')
        || (character.is_ascii() && !character.is_ascii_alphanumeric())
}

fn hex_digit(nibble: u32) -> char {
    // Only called with values below 16, so the fallback is never taken.
    char::from_digit(nibble, 16).map_or('0', |digit| digit.to_ascii_uppercase())
}

/// Everything outside RFC 3986's unreserved characters (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `.`,
/// `_`, `~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes text for one URL component (a path segment, a query key or value, a
/// fragment): every byte of its UTF-8 form except RFC 3986's unreserved characters becomes
/// `%HH`.
///
/// Reserved characters are encoded too (`/`, `?`, `#`, `&`, `=`, `+`, …), because inside a
/// component they would otherwise start a new segment or parameter. A space becomes `%20`, not
/// `+`, which every decoder reads as a space.
///
/// ```
/// use portcullis_guard::encode::url_component;
/// assert_eq!(url_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
/// ```
pub fn url_component(component: &str) -> Cow<'_, str> {
    percent_encoding::utf8_percent_encode(component, NOT_UNRESERVED).into()
}
