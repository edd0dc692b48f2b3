//! The `calendars` section: market calendars with their closed weekdays, holidays, closures,
//! open days and the range of dates they cover.
//!
//! This module owns the shape of a calendar and the messages about it; dates and weekdays are
//! parsed by `values`. It must not check the factors that name a calendar: `compile` resolves
//! those references.

use std::collections::BTreeSet;

use super::nodes::Decoder;
use crate::diagnostic::Code;
use crate::model::{CalendarDef, Weekdays};
use crate::values::parse_date;
use crate::yaml::{Node, NodeKind};

impl Decoder<'_> {
    pub(super) fn calendar(&mut self, node: &Node, label: &str) -> Option<CalendarDef> {
        let allowed = [
            "closed_weekdays",
            "holidays",
            "closures",
            "open_days",
            "valid_from",
            "valid_until",
            "description",
        ];
        let fields = self.fields(node, label, &allowed)?;
        self.description(&fields);
        let closed_weekdays = match fields.get("closed_weekdays") {
            Some(list) => self.weekdays(list, &format!("closed_weekdays of {label}")),
            None => Weekdays(0b110_0000),
        };
        let holidays = self.date_list(fields.get("holidays"), label);
        let closures = self.date_list(fields.get("closures"), label);
        let open_days = self.date_list(fields.get("open_days"), label);
        let valid_from = fields.get("valid_from").and_then(|n| self.date(n));
        let valid_until = fields.get("valid_until").and_then(|n| self.date(n));
        if let (Some(from), Some(until), Some(node)) =
            (valid_from, valid_until, fields.get("valid_until"))
            && until < from
        {
            self.report(
                node,
                Code::Date,
                format!("{label} ends ({until}) before it starts ({from})"),
            );
        }
        Some(CalendarDef {
            closed_weekdays,
            holidays,
            closures,
            open_days,
            valid_from,
            valid_until,
        })
    }

    fn date_list(&mut self, node: Option<&Node>, label: &str) -> BTreeSet<jiff::civil::Date> {
        let mut dates = BTreeSet::new();
        let Some(node) = node else {
            return dates;
        };
        for item in self.list(node, &format!("a date list of {label}")) {
            // An entry is a date, or `{ date: 2026-01-01, name: New Year }`.
            let date_node = match &item.kind {
                NodeKind::Map(_) => {
                    let Some(entry) = self.fields(item, "a holiday", &["date", "name"]) else {
                        continue;
                    };
                    if let Some(name) = entry.get("name") {
                        self.string(name, "holiday name");
                    }
                    match self.required(&entry, item, "date", "a holiday") {
                        Some(date) => date,
                        None => continue,
                    }
                }
                _ => item,
            };
            if let Some(date) = self.date(date_node) {
                dates.insert(date);
            }
        }
        dates
    }

    fn date(&mut self, node: &Node) -> Option<jiff::civil::Date> {
        let text = self.string(node, "a date")?;
        match parse_date(&text) {
            Ok(date) => Some(date),
            Err(error) => {
                self.report_help(
                    node,
                    Code::Date,
                    format!("bad date `{text}`: {error}"),
                    "dates are written YYYY-MM-DD and must exist in the calendar, e.g. 2026-02-16",
                );
                None
            }
        }
    }
}
