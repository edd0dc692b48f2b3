//! How the subcommands that talk to a server (`tenant`, `rebac`) show JSON answers as text:
//! a value as a cell, a list's items, a time, and aligned tables.
//!
//! Only what every such subcommand shows the same way lives here; a summary that one
//! subcommand alone prints (an expand tree, a principal) stays with it. Nothing here decides
//! between JSON and text output: that is the client's `--json` handling.

use serde_json::Value;

/// A JSON value as a table cell, field or line: strings bare, null as `-`.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The items of a JSON list (none when it is not a list).
pub fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Microseconds since the epoch as an RFC 3339 time (UTC, whole seconds).
pub fn time(value: &Value) -> String {
    value
        .as_i64()
        .and_then(|us| jiff::Timestamp::from_second(us.div_euclid(1_000_000)).ok())
        .map(|at| at.to_string())
        .unwrap_or_else(|| text(value))
}

/// Prints `headers` and `rows` as columns two spaces apart, the last column unpadded.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cells_show_strings_bare_null_as_a_dash_and_other_values_as_json() {
        assert_eq!(text(&json!("acme")), "acme");
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(text(&json!(42)), "42");
        assert_eq!(text(&json!(["a"])), "[\"a\"]");
    }

    #[test]
    fn items_of_anything_but_a_list_are_none() {
        assert_eq!(items(&json!([1, 2])).len(), 2);
        assert!(items(&json!({ "a": 1 })).is_empty());
        assert!(items(&Value::Null).is_empty());
    }

    #[test]
    fn times_are_whole_utc_seconds_and_other_values_stay_cells() {
        assert_eq!(
            time(&json!(1_767_225_600_999_999_i64)),
            "2026-01-01T00:00:00Z"
        );
        // Before the epoch, the second the instant falls in.
        assert_eq!(time(&json!(-1)), "1969-12-31T23:59:59Z");
        assert_eq!(time(&json!("soon")), "soon");
        assert_eq!(time(&Value::Null), "-");
    }
}
