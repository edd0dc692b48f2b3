//! The `factors` section: each factor tests exactly one thing (an address, a time window, a
//! trading day or holiday of a calendar, a client certificate, principal attributes or a CEL
//! expression), positively or negatively.
//!
//! This module owns the kinds a factor may have and the shape of each; addresses, windows,
//! fingerprints and serials are parsed by `values`. It must not evaluate a factor (the engine
//! does) nor resolve the calendar a factor names (`compile` does).

use std::collections::BTreeSet;

use serde_json::Value;

use super::nodes::Decoder;
use crate::diagnostic::Code;
use crate::model::{CertField, CertMatcher, Direction, FactorDef, FactorKind, IpPattern, Weekdays};
use crate::values::{normalize_fingerprint, normalize_serial, parse_ip_pattern, parse_window};
use crate::yaml::{Node, NodeKind};

const FACTOR_KINDS: &[&str] = &[
    "ip",
    "time_window",
    "trading_day",
    "holiday",
    "client_cert",
    "principal_attr",
    "cel",
];

impl Decoder<'_> {
    pub(super) fn factor(&mut self, node: &Node, label: &str) -> Option<FactorDef> {
        let mut allowed = FACTOR_KINDS.to_vec();
        allowed.extend(["direction", "description"]);
        let fields = self.fields(node, label, &allowed)?;
        self.description(&fields);
        let direction = match fields.get("direction") {
            None => Direction::Positive,
            Some(value) => match self.string(value, "direction").as_deref() {
                Some("positive") => Direction::Positive,
                Some("negative") => Direction::Negative,
                Some(other) => {
                    self.report_help(
                        value,
                        Code::Value,
                        format!("unknown direction `{other}` in {label}"),
                        "direction is `positive` (holds when the factor matches) or `negative` (holds when it does not)",
                    );
                    Direction::Positive
                }
                None => Direction::Positive,
            },
        };
        let kinds: Vec<&str> = FACTOR_KINDS
            .iter()
            .copied()
            .filter(|kind| fields.get(kind).is_some())
            .collect();
        let kind = match kinds.as_slice() {
            [kind] => *kind,
            [] => {
                self.report_help(
                    node,
                    Code::MissingKey,
                    format!("{label} says nothing to test"),
                    format!("give it exactly one of: {}", FACTOR_KINDS.join(", ")),
                );
                return None;
            }
            [_, second, ..] => {
                let key = fields.key_node(second).unwrap_or(node);
                self.report_help(
                    key,
                    Code::Value,
                    format!("{label} tests more than one thing ({})", kinds.join(", ")),
                    "a factor tests one thing; define one factor per test and combine them in a strategy",
                );
                return None;
            }
        };
        let value = fields.get(kind)?;
        let kind = match kind {
            "ip" => FactorKind::Ip(self.ip_patterns(value, label)),
            "time_window" => self.time_window(value, label)?,
            "trading_day" => FactorKind::TradingDay(self.name(value, "calendar name")?),
            "holiday" => FactorKind::Holiday(self.name(value, "calendar name")?),
            "client_cert" => FactorKind::ClientCert(self.cert_matchers(value, label)),
            "principal_attr" => {
                let NodeKind::Map(entries) = &value.kind else {
                    self.wrong_type(
                        value,
                        &format!("principal_attr of {label}"),
                        "a mapping of attribute names to values",
                    );
                    return None;
                };
                if entries.is_empty() {
                    self.report(
                        value,
                        Code::Value,
                        format!("principal_attr of {label} names no attribute"),
                    );
                }
                let Value::Object(map) = self.json(value) else {
                    return None;
                };
                FactorKind::PrincipalAttr(map.into_iter().collect())
            }
            _ => FactorKind::Cel(self.cel(value, &format!("the cel of {label}"))?),
        };
        Some(FactorDef { kind, direction })
    }

    fn ip_patterns(&mut self, node: &Node, label: &str) -> BTreeSet<IpPattern> {
        let mut patterns = BTreeSet::new();
        let items = self.list(node, &format!("ip of {label}"));
        if items.is_empty() {
            self.report(
                node,
                Code::Address,
                format!("ip of {label} lists no address"),
            );
        }
        for item in items {
            let Some(text) = self.string(item, "an address") else {
                continue;
            };
            match parse_ip_pattern(&text) {
                Ok(pattern) => {
                    patterns.insert(pattern);
                }
                Err(problem) => self.report_help(
                    item,
                    Code::Address,
                    format!("bad address `{text}`: {problem}"),
                    "write an address (10.1.2.3, 2001:db8::1), a CIDR block (172.16.0.0/12, 2001:db8::/32) or an IPv4 wildcard with whole octets (172.*.*.*)",
                ),
            }
        }
        patterns
    }

    fn time_window(&mut self, node: &Node, label: &str) -> Option<FactorKind> {
        let (windows_node, weekdays) = match &node.kind {
            NodeKind::Map(_) => {
                let fields = self.fields(
                    node,
                    &format!("time_window of {label}"),
                    &["windows", "weekdays"],
                )?;
                let windows =
                    self.required(&fields, node, "windows", &format!("time_window of {label}"))?;
                let weekdays = match fields.get("weekdays") {
                    Some(list) => {
                        let set = self.weekdays(list, &format!("weekdays of {label}"));
                        if set.0 == 0 {
                            self.report(
                                list,
                                Code::Weekday,
                                format!("weekdays of {label} lists no day"),
                            );
                        }
                        set
                    }
                    None => Weekdays::ALL,
                };
                (windows, weekdays)
            }
            _ => (node, Weekdays::ALL),
        };
        let mut windows = BTreeSet::new();
        let items = self.list(windows_node, &format!("time_window of {label}"));
        if items.is_empty() {
            self.report(
                windows_node,
                Code::TimeWindow,
                format!("time_window of {label} lists no window"),
            );
        }
        for item in items {
            let Some(text) = self.string(item, "a time window") else {
                continue;
            };
            match parse_window(&text) {
                Ok(window) => {
                    windows.insert(window);
                }
                Err(problem) => self.report_help(
                    item,
                    Code::TimeWindow,
                    format!("bad time window `{text}`: {problem}"),
                    "write HH:MM-HH:MM in 24-hour time, e.g. 09:15-15:30 or 22:00-06:00 (crossing midnight); the start is inside the window, the end is not",
                ),
            }
        }
        Some(FactorKind::TimeWindow { windows, weekdays })
    }

    fn cert_matchers(&mut self, node: &Node, label: &str) -> BTreeSet<CertMatcher> {
        let mut matchers = BTreeSet::new();
        let items = self.list(node, &format!("client_cert of {label}"));
        if items.is_empty() {
            self.report(
                node,
                Code::Value,
                format!("client_cert of {label} lists no certificate"),
            );
        }
        for item in items {
            let (field, value_node) = match &item.kind {
                NodeKind::Map(_) => {
                    let Some(entry) = self.fields(
                        item,
                        "a certificate",
                        &["id", "fingerprint", "serial", "subject_cn"],
                    ) else {
                        continue;
                    };
                    let [(name, _, value)] = entry.entries.as_slice() else {
                        self.report_help(
                            item,
                            Code::Value,
                            "a certificate entry names exactly one field",
                            "write { id: ... }, { fingerprint: ... }, { serial: ... } or { subject_cn: ... }",
                        );
                        continue;
                    };
                    let field = match name.as_str() {
                        "id" => CertField::Id,
                        "fingerprint" => CertField::Fingerprint,
                        "serial" => CertField::Serial,
                        _ => CertField::SubjectCn,
                    };
                    (Some(field), *value)
                }
                _ => (None, item),
            };
            let Some(text) = self.string(value_node, "a certificate") else {
                continue;
            };
            let value = match field {
                Some(CertField::Fingerprint) => match normalize_fingerprint(&text) {
                    Some(value) => value,
                    None => {
                        self.report_help(
                            value_node,
                            Code::Value,
                            format!("bad SHA-256 fingerprint `{text}`"),
                            "a fingerprint is 64 hex digits, optionally with colons or a sha256: prefix",
                        );
                        continue;
                    }
                },
                Some(CertField::Serial) => match normalize_serial(&text) {
                    Some(value) => value,
                    None => {
                        self.report_help(
                            value_node,
                            Code::Value,
                            format!("bad certificate serial `{text}`"),
                            "a serial is hex digits, optionally with colons",
                        );
                        continue;
                    }
                },
                _ => text,
            };
            matchers.insert(CertMatcher { field, value });
        }
        matchers
    }
}
