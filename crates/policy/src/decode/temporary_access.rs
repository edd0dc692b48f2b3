//! The `temporary_access` section: the roles whose holders approve break-glass requests, how
//! many approvals a request needs, and the longest window a grant may cover.
//!
//! ```yaml
//! temporary_access:
//!   approvers: [security-officer]
//!   approvals_required: 1     # or 2
//!   max_window: 4h            # h, m and s, e.g. 90m or 1h30m; at most 30 days
//! ```
//!
//! This module reads the section's shape and values; `compile` checks that the roles exist.

use super::nodes::Decoder;
use crate::diagnostic::Code;
use crate::model::{At, TemporaryAccessDef};
use crate::yaml::{Node, NodeKind};

/// The longest `max_window` a bundle may set: 30 days.
pub const MAX_WINDOW_LIMIT_SECS: u64 = 30 * 24 * 3600;

impl Decoder<'_> {
    pub(super) fn temporary_access(
        &mut self,
        key: &Node,
        node: &Node,
        target: &mut Option<At<TemporaryAccessDef>>,
    ) {
        if let Some(previous) = &*target {
            let first = previous.location.clone();
            self.report_help(
                key,
                Code::Duplicate,
                "`temporary_access` is set twice in the bundle",
                format!("keep one; the other is at {first}"),
            );
            return;
        }
        let Some(fields) = self.fields(
            node,
            "temporary_access",
            &[
                "approvers",
                "approvals_required",
                "max_window",
                "description",
            ],
        ) else {
            return;
        };
        self.description(&fields);
        let mut approvers = Vec::new();
        if let Some(list) = self.required(&fields, node, "approvers", "temporary_access") {
            for item in self.list(list, "temporary_access.approvers") {
                if let Some(role) = self.name(item, "an approver role") {
                    approvers.push(role);
                }
            }
            let written = matches!(&list.kind, NodeKind::Seq(items) if !items.is_empty());
            if !written {
                self.report(
                    list,
                    Code::Value,
                    "temporary_access.approvers must name at least one role",
                );
            }
        }
        let mut approvals_required = 1;
        if let Some(count) = fields.get("approvals_required") {
            match count.kind {
                NodeKind::Int(value @ (1 | 2)) => approvals_required = value as u8,
                _ => self.report_help(
                    count,
                    Code::Value,
                    "temporary_access.approvals_required must be 1 or 2",
                    "2 means two different approvers, neither of them the requester",
                ),
            }
        }
        let mut max_window_secs = 4 * 3600;
        if let Some(window) = self.required(&fields, node, "max_window", "temporary_access")
            && let Some(text) = self.string(window, "temporary_access.max_window")
        {
            match parse_duration(&text) {
                Some(secs) if (60..=MAX_WINDOW_LIMIT_SECS).contains(&secs) => {
                    max_window_secs = secs;
                }
                Some(_) => self.report_help(
                    window,
                    Code::Value,
                    format!("temporary_access.max_window `{text}` is out of range"),
                    "a window is at least 1m and at most 720h (30 days)",
                ),
                None => self.report_help(
                    window,
                    Code::Value,
                    format!("temporary_access.max_window `{text}` is not a duration"),
                    "write hours, minutes and seconds such as 4h, 90m or 1h30m",
                ),
            }
        }
        *target = Some(At {
            value: TemporaryAccessDef {
                approvers,
                approvals_required,
                max_window_secs,
            },
            location: self.location(key),
        });
    }
}

/// A duration written as hours, minutes and seconds (`4h`, `90m`, `1h30m`, `45s`), each unit
/// at most once and in that order, in seconds. `None` for anything else.
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut last_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        let (rank, scale) = match rest.as_bytes().get(digits)? {
            b'h' => (1, 3600),
            b'm' => (2, 60),
            b's' => (3, 1),
            _ => return None,
        };
        if rank <= last_unit {
            return None;
        }
        last_unit = rank;
        total = total.checked_add(value.checked_mul(scale)?)?;
        rest = &rest[digits + 1..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use proptest::prelude::*;

    #[test]
    fn reads_hours_minutes_and_seconds() {
        assert_eq!(parse_duration("4h"), Some(14_400));
        assert_eq!(parse_duration("90m"), Some(5_400));
        assert_eq!(parse_duration("1h30m"), Some(5_400));
        assert_eq!(parse_duration("1h0m5s"), Some(3_605));
        for bad in [
            "", "h", "4", "4d", "30m1h", "1h1h", "-1h", "1.5h", "4 h", "1h 30m",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn a_written_duration_reads_back(h in 0u64..1000, m in 0u64..1000, s in 0u64..1000) {
            let text = format!("{h}h{m}m{s}s");
            prop_assert_eq!(parse_duration(&text), Some(h * 3600 + m * 60 + s));
        }

        #[test]
        fn any_text_is_read_or_refused_without_panic(text in ".{0,24}") {
            let _ = parse_duration(&text);
        }
    }
}
