//! From YAML trees to the bundle model, collecting every problem with its location.
//!
//! Each file is decoded on its own and merged into one [`Bundle`]; an id defined twice (in the
//! same section of two files, or twice in a list) is reported at the second place with a pointer
//! to the first. Nothing here resolves references between sections; `compile` does that.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use portcullis_core::{Effect, TenantId};
use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::*;
use crate::values::{
    check_resource_template, normalize_fingerprint, normalize_serial, parse_action_pattern,
    parse_date, parse_ip_pattern, parse_route_path, parse_window,
};
use crate::yaml::{Node, NodeKind};

mod nodes;

use nodes::{Decoder, Fields};

/// Sections any bundle file may hold.
pub const SECTIONS: &[&str] = &[
    "calendars",
    "factors",
    "strategies",
    "roles",
    "principals",
    "actions",
    "rules",
    "routes",
    "tests",
    "model",
    "tuples",
];

/// Keys only `tenant.yaml` may hold.
pub const TENANT_KEYS: &[&str] = &[
    "tenant",
    "status",
    "timezone",
    "domain",
    "supply_chain",
    "accept_request_time",
    "trust_token_roles",
    "sensitive_attributes",
    "quota",
    "description",
];

const FACTOR_KINDS: &[&str] = &[
    "ip",
    "time_window",
    "trading_day",
    "holiday",
    "client_cert",
    "principal_attr",
    "cel",
];

/// Decodes one file into `bundle`, reporting problems into `diagnostics`.
pub fn decode_file(
    bundle: &mut Bundle,
    file: &Arc<Path>,
    source: &str,
    root: &Node,
    is_tenant_file: bool,
    diagnostics: &mut Diagnostics,
) {
    let mut decoder = Decoder {
        file: Arc::clone(file),
        source,
        diagnostics,
    };
    decoder.file_root(bundle, root, is_tenant_file);
}

impl Decoder<'_> {
    // ---------------------------------------------------------------- file and sections

    fn file_root(&mut self, bundle: &mut Bundle, root: &Node, is_tenant_file: bool) {
        let mut allowed: Vec<&str> = SECTIONS.to_vec();
        if is_tenant_file {
            allowed.extend_from_slice(TENANT_KEYS);
        }
        if root.kind == NodeKind::Null {
            return;
        }
        let Some(fields) = self.fields(root, "a bundle file", &allowed) else {
            return;
        };
        if is_tenant_file {
            self.tenant(bundle, &fields, root);
        }
        for (name, key, value) in &fields.entries {
            match name.as_str() {
                "calendars" => {
                    self.named_section(value, "calendar", &mut bundle.calendars, Self::calendar)
                }
                "factors" => self.named_section(value, "factor", &mut bundle.factors, Self::factor),
                "strategies" => {
                    self.named_section(value, "strategy", &mut bundle.strategies, Self::strategy)
                }
                "roles" => self.named_section(value, "role", &mut bundle.roles, Self::role),
                "principals" => {
                    self.named_section(value, "principal", &mut bundle.principals, Self::principal)
                }
                "actions" => self.named_section(value, "action", &mut bundle.actions, Self::action),
                "rules" => self.rules(value, &mut bundle.rules),
                "routes" => self.routes(value, &mut bundle.routes),
                "tests" => self.tests(value, &mut bundle.tests),
                "model" => {
                    if let Some(previous) = &bundle.model {
                        let first = previous.location.clone();
                        self.report_help(
                            key,
                            Code::Duplicate,
                            "`model` is set twice in the bundle",
                            format!("keep one; the other is at {first}"),
                        );
                    } else if let Some(name) = self.name(value, "the model file name") {
                        bundle.model = Some(name);
                    }
                }
                "tuples" => self.tuples(value, &mut bundle.tuples),
                _ => {}
            }
        }
    }

    fn tenant(&mut self, bundle: &mut Bundle, fields: &Fields<'_>, root: &Node) {
        let settings = &mut bundle.tenant;
        if let Some(node) = self.required(fields, root, "tenant", "tenant.yaml")
            && let Some(text) = self.string(node, "tenant")
        {
            match TenantId::new(&text) {
                Ok(id) => settings.id = Some(id),
                Err(error) => self.report_help(
                    node,
                    Code::TenantId,
                    format!("bad tenant id `{}`: {}", error.value, error.problem),
                    "a tenant id is 3 to 32 characters of ASCII letters, digits and '-'",
                ),
            }
        }
        if let Some(node) = fields.get("status") {
            match self.string(node, "status").as_deref() {
                Some("active") => settings.status = TenantStatus::Active,
                Some("suspended") => settings.status = TenantStatus::Suspended,
                Some(other) => self.report_help(
                    node,
                    Code::Value,
                    format!("unknown tenant status `{other}`"),
                    "status is `active` or `suspended`",
                ),
                None => {}
            }
        }
        if let Some(node) = fields.get("timezone")
            && let Some(zone) = self.string(node, "timezone")
        {
            if jiff::tz::TimeZone::get(&zone).is_err() {
                let help = "use an IANA time zone name such as Asia/Shanghai, Europe/London or UTC";
                self.report_help(
                    node,
                    Code::TimeZone,
                    format!("unknown time zone `{zone}`"),
                    help,
                );
            }
            settings.timezone = zone;
        }
        if let Some(node) = fields.get("domain")
            && let Some(domain) = self.string(node, "domain")
        {
            let valid = domain.len() <= 253
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if valid {
                settings.domain = Some(domain.to_ascii_lowercase());
            } else {
                self.report_help(
                    node,
                    Code::Value,
                    format!("`{domain}` is not a host name"),
                    "domain is a DNS host name such as ops.acme.example",
                );
            }
        }
        if let Some(node) = fields.get("description") {
            settings.description = self.string(node, "description");
        }
        if let Some(node) = fields.get("accept_request_time") {
            settings.accept_request_time = self.bool(node, "accept_request_time").unwrap_or(false);
        }
        if let Some(list) = fields.get("sensitive_attributes") {
            for item in self.list(list, "sensitive_attributes") {
                if let Some(name) = self.name(item, "an attribute name") {
                    settings.sensitive_attributes.insert(name.value);
                }
            }
        }
        if let Some(node) = fields.get("quota") {
            settings.quota = self.quota(node);
        }
        if let Some(node) = fields.get("trust_token_roles") {
            settings.trust_token_roles = self.bool(node, "trust_token_roles").unwrap_or(false);
        }
        if let Some(node) = fields.get("supply_chain")
            && let Some(supply) = self.fields(node, "supply_chain", &["forbid_writes", "reason"])
        {
            if let Some(flag) = supply.get("forbid_writes")
                && let Some(value) = self.bool(flag, "supply_chain.forbid_writes")
            {
                settings.supply_chain_forbid = value;
            }
            if let Some(reason) = supply.get("reason") {
                settings.supply_chain_forbid_reason = self.string(reason, "supply_chain.reason");
            }
            if !settings.supply_chain_forbid && settings.supply_chain_forbid_reason.is_none() {
                self.report_help(
                        node,
                        Code::MissingKey,
                        "the built-in supply-chain forbid is switched off without a reason",
                        "add `reason:` saying why writes may proceed while a high-risk dependency is present",
                    );
            }
        }
    }

    fn quota(&mut self, node: &Node) -> Option<Quota> {
        let fields = self.fields(
            node,
            "quota",
            &["requests_per_second", "burst", "concurrent"],
        )?;
        let mut quota = Quota {
            requests_per_second: None,
            burst: None,
            concurrent: None,
        };
        if let Some(rate) = fields.get("requests_per_second") {
            match rate.kind {
                NodeKind::Int(value) if value > 0 => quota.requests_per_second = Some(value as f64),
                NodeKind::Float(value) if value > 0.0 && value.is_finite() => {
                    quota.requests_per_second = Some(value)
                }
                _ => self.report(
                    rate,
                    Code::Value,
                    "quota.requests_per_second must be a positive number",
                ),
            }
        }
        for (key, slot) in [
            ("burst", &mut quota.burst),
            ("concurrent", &mut quota.concurrent),
        ] {
            if let Some(value) = fields.get(key) {
                match value.kind {
                    NodeKind::Int(count) if count > 0 && count <= i64::from(u32::MAX) => {
                        *slot = u32::try_from(count).ok();
                    }
                    _ => self.report(
                        value,
                        Code::Value,
                        format!("quota.{key} must be a positive whole number"),
                    ),
                }
            }
        }
        Some(quota)
    }

    // ---------------------------------------------------------------- calendars

    fn calendar(&mut self, node: &Node, label: &str) -> Option<CalendarDef> {
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

    // ---------------------------------------------------------------- factors

    fn factor(&mut self, node: &Node, label: &str) -> Option<FactorDef> {
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

    // ---------------------------------------------------------------- strategies

    fn strategy(&mut self, node: &Node, label: &str) -> Option<StrategyDef> {
        let mut branches = BTreeSet::new();
        let items = self.list(node, label);
        if items.is_empty() {
            self.report_help(
                node,
                Code::Value,
                format!("{label} has no branch, so it could never hold"),
                "write it as a list of branches, each a list of factors: [[P1, P2], [P3]]",
            );
            return None;
        }
        for branch in items {
            let NodeKind::Seq(factors) = &branch.kind else {
                self.report_help(
                    branch,
                    Code::Type,
                    format!(
                        "a branch of {label} must be a list of factors, found {}",
                        branch.kind.describe()
                    ),
                    "a strategy is a list of branches, each a list of factors: [[P1, P2], [P3]]",
                );
                continue;
            };
            if factors.is_empty() {
                self.report(
                    branch,
                    Code::Value,
                    format!("{label} has an empty branch, which would always hold"),
                );
                continue;
            }
            let mut set = BTreeSet::new();
            for factor in factors {
                if let Some(name) = self.name(factor, "a factor name") {
                    set.insert(name);
                }
            }
            branches.insert(set);
        }
        Some(StrategyDef { branches })
    }

    // ---------------------------------------------------------------- roles and principals

    fn role(&mut self, node: &Node, label: &str) -> Option<RoleDef> {
        let fields = self.fields(node, label, &["inherits", "permissions", "description"])?;
        self.description(&fields);
        let mut inherits = BTreeSet::new();
        if let Some(list) = fields.get("inherits") {
            for item in self.list(list, &format!("inherits of {label}")) {
                if let Some(name) = self.name(item, "a role name") {
                    inherits.insert(name);
                }
            }
        }
        let mut permissions = Vec::new();
        if let Some(list) = fields.get("permissions") {
            for item in self.list(list, &format!("permissions of {label}")) {
                let (pattern_node, when) = match &item.kind {
                    NodeKind::Map(_) => {
                        let Some(entry) =
                            self.fields(item, "a permission", &["permission", "when"])
                        else {
                            continue;
                        };
                        let Some(pattern) =
                            self.required(&entry, item, "permission", "a conditional permission")
                        else {
                            continue;
                        };
                        let when = match entry.get("when") {
                            Some(cel) => match self.cel(cel, "a permission condition") {
                                Some(cel) => Some(cel),
                                None => continue,
                            },
                            None => None,
                        };
                        (pattern, when)
                    }
                    _ => (item, None),
                };
                let Some(pattern) = self.action_pattern(pattern_node) else {
                    continue;
                };
                permissions.push(PermissionDef { pattern, when });
            }
        }
        permissions.sort_by(|a, b| {
            (&a.pattern.value, a.when.as_ref().map(|c| &c.text))
                .cmp(&(&b.pattern.value, b.when.as_ref().map(|c| &c.text)))
        });
        Some(RoleDef {
            inherits,
            permissions,
        })
    }

    fn principal(&mut self, node: &Node, label: &str) -> Option<PrincipalDef> {
        let fields = self.fields(node, label, &["type", "roles", "attributes", "description"])?;
        self.description(&fields);
        let kind = fields
            .get("type")
            .and_then(|n| self.name(n, "principal type"))
            .map(|n| n.value);
        let mut roles = Vec::new();
        if let Some(list) = fields.get("roles") {
            for item in self.list(list, &format!("roles of {label}")) {
                match &item.kind {
                    NodeKind::Map(_) => {
                        let Some(entry) = self.fields(item, "a role assignment", &["role", "on"])
                        else {
                            continue;
                        };
                        let Some(role_node) =
                            self.required(&entry, item, "role", "a role assignment")
                        else {
                            continue;
                        };
                        let Some(role) = self.name(role_node, "a role name") else {
                            continue;
                        };
                        let on = match entry.get("on") {
                            Some(on) => match self.resource_pattern(on) {
                                Some(pattern) => Some(pattern),
                                None => continue,
                            },
                            None => None,
                        };
                        roles.push(AssignmentDef { role, on });
                    }
                    _ => {
                        if let Some(role) = self.name(item, "a role name") {
                            roles.push(AssignmentDef { role, on: None });
                        }
                    }
                }
            }
        }
        roles.sort_by(|a, b| (&a.role, &a.on).cmp(&(&b.role, &b.on)));
        roles.dedup_by(|a, b| a.role == b.role && a.on == b.on);
        let mut attributes = BTreeMap::new();
        if let Some(map) = fields.get("attributes") {
            match self.json(map) {
                Value::Object(object) => attributes.extend(object),
                Value::Null => {}
                _ => self.wrong_type(map, &format!("attributes of {label}"), "a mapping"),
            }
        }
        Some(PrincipalDef {
            kind,
            roles,
            attributes,
        })
    }

    // ---------------------------------------------------------------- actions

    fn action(&mut self, node: &Node, label: &str) -> Option<ActionDef> {
        let fields = self.fields(
            node,
            label,
            &["strategy", "write", "relation", "description"],
        )?;
        self.description(&fields);
        let strategy = fields
            .get("strategy")
            .and_then(|n| self.name(n, "a strategy name"));
        let write = match fields.get("write") {
            Some(flag) => self
                .bool(flag, &format!("write of {label}"))
                .unwrap_or(false),
            None => false,
        };
        let relation = fields
            .get("relation")
            .and_then(|n| self.name(n, "a relation name"));
        Some(ActionDef {
            strategy,
            write,
            relation,
        })
    }

    // ---------------------------------------------------------------- tuples

    /// Relationship tuples shipped with the bundle, in OpenFGA's wire shape; they are checked
    /// against the model when the bundle is compiled.
    fn tuples(&mut self, node: &Node, target: &mut Vec<At<TupleDef>>) {
        for item in self.list(node, "the tuples section") {
            let Some(fields) = self.fields(
                item,
                "a tuple",
                &["user", "relation", "object", "condition"],
            ) else {
                continue;
            };
            let user = self
                .required(&fields, item, "user", "a tuple")
                .and_then(|n| self.string(n, "the tuple's user"));
            let relation = self
                .required(&fields, item, "relation", "a tuple")
                .and_then(|n| self.string(n, "the tuple's relation"));
            let object = self
                .required(&fields, item, "object", "a tuple")
                .and_then(|n| self.string(n, "the tuple's object"));
            let condition = match fields.get("condition") {
                None => None,
                Some(node) => {
                    let Some(condition) =
                        self.fields(node, "a tuple condition", &["name", "context"])
                    else {
                        continue;
                    };
                    let name = self
                        .required(&condition, node, "name", "a tuple condition")
                        .and_then(|n| self.string(n, "the condition name"));
                    let context = match condition.get("context") {
                        Some(context) => match self.json(context) {
                            Value::Object(map) => map,
                            _ => {
                                self.wrong_type(context, "the condition context", "a mapping");
                                continue;
                            }
                        },
                        None => serde_json::Map::new(),
                    };
                    match name {
                        Some(name) => Some((name, context)),
                        None => continue,
                    }
                }
            };
            if let (Some(user), Some(relation), Some(object)) = (user, relation, object) {
                target.push(At {
                    value: TupleDef {
                        user,
                        relation,
                        object,
                        condition,
                    },
                    location: self.location(item),
                });
            }
        }
    }

    // ---------------------------------------------------------------- rules

    fn rules(&mut self, node: &Node, target: &mut BTreeMap<String, At<RuleDef>>) {
        let allowed = [
            "id",
            "effect",
            "actions",
            "resources",
            "principals",
            "roles",
            "when",
            "description",
        ];
        for item in self.list(node, "the rules section") {
            let Some(fields) = self.fields(item, "a rule", &allowed) else {
                continue;
            };
            self.description(&fields);
            let Some(id) = self
                .required(&fields, item, "id", "a rule")
                .and_then(|n| self.name(n, "rule id"))
            else {
                continue;
            };
            let label = format!("rule `{}`", id.value);
            let effect = match self
                .required(&fields, item, "effect", &label)
                .map(|n| (n, self.string(n, "effect")))
            {
                Some((_, Some(text))) if text == "permit" => Some(Effect::Allow),
                Some((_, Some(text))) if text == "forbid" => Some(Effect::Deny),
                Some((effect_node, Some(text))) => {
                    self.report_help(
                        effect_node,
                        Code::Value,
                        format!("unknown effect `{text}` in {label}"),
                        "effect is `permit` or `forbid`",
                    );
                    None
                }
                _ => None,
            };
            let mut actions = BTreeSet::new();
            if let Some(list) = self.required(&fields, item, "actions", &label) {
                let items = self.list(list, &format!("actions of {label}"));
                if items.is_empty() {
                    self.report_help(
                        list,
                        Code::Value,
                        format!("{label} lists no action"),
                        "use [\"*\"] for every action",
                    );
                }
                for action in items {
                    if let Some(pattern) = self.action_pattern(action) {
                        actions.insert(pattern.value);
                    }
                }
            }
            let mut resources = BTreeSet::new();
            if let Some(list) = fields.get("resources") {
                for resource in self.list(list, &format!("resources of {label}")) {
                    if let Some(pattern) = self.resource_pattern(resource) {
                        resources.insert(pattern);
                    }
                }
            }
            let mut principals = BTreeSet::new();
            if let Some(list) = fields.get("principals") {
                for principal in self.list(list, &format!("principals of {label}")) {
                    if let Some(name) = self.name(principal, "a principal id") {
                        principals.insert(name.value);
                    }
                }
            }
            let mut roles = BTreeSet::new();
            if let Some(list) = fields.get("roles") {
                for role in self.list(list, &format!("roles of {label}")) {
                    if let Some(name) = self.name(role, "a role name") {
                        roles.insert(name);
                    }
                }
            }
            let when = fields
                .get("when")
                .and_then(|n| self.cel(n, &format!("the condition of {label}")));
            let Some(effect) = effect else {
                continue;
            };
            if let Some(previous) = target.get(&id.value) {
                let message = format!("{label} is defined twice; first at {}", previous.location);
                let location = id.location.clone();
                self.diagnostics.push(
                    Diagnostic::new(location, Code::Duplicate, message)
                        .with_help("give each rule a unique id"),
                );
                continue;
            }
            target.insert(
                id.value,
                At {
                    value: RuleDef {
                        effect,
                        actions,
                        resources,
                        principals,
                        roles,
                        when,
                    },
                    location: id.location,
                },
            );
        }
    }

    // ---------------------------------------------------------------- routes

    fn routes(&mut self, node: &Node, target: &mut Vec<At<RouteDef>>) {
        let allowed = [
            "methods",
            "path",
            "action",
            "resource",
            "strategy",
            "description",
        ];
        for item in self.list(node, "the routes section") {
            let Some(fields) = self.fields(item, "a route", &allowed) else {
                continue;
            };
            self.description(&fields);
            let mut methods = BTreeSet::new();
            if let Some(list) = fields.get("methods") {
                for method in self.list(list, "methods of a route") {
                    let Some(text) = self.string(method, "an HTTP method") else {
                        continue;
                    };
                    let upper = text.to_ascii_uppercase();
                    if HTTP_METHODS.contains(&upper.as_str()) {
                        methods.insert(upper);
                    } else {
                        self.report_help(
                            method,
                            Code::Value,
                            format!("unknown HTTP method `{text}`"),
                            format!(
                                "methods are {}; leave `methods` out to match any",
                                HTTP_METHODS.join(", ")
                            ),
                        );
                    }
                }
            }
            let path_node = self.required(&fields, item, "path", "a route");
            let action_node = self.required(&fields, item, "action", "a route");
            let resource_node = self.required(&fields, item, "resource", "a route");
            let (Some(path_node), Some(action_node), Some(resource_node)) =
                (path_node, action_node, resource_node)
            else {
                continue;
            };
            let Some(path) = self.string(path_node, "route path") else {
                continue;
            };
            let segments = match parse_route_path(&path) {
                Ok(segments) => segments,
                Err(problem) => {
                    self.report_help(
                        path_node,
                        Code::Pattern,
                        format!("bad route path `{path}`: {problem}"),
                        "a path starts with '/', captures whole segments as {name} and may end with ** to match the rest",
                    );
                    continue;
                }
            };
            let Some(action) = self.string(action_node, "route action") else {
                continue;
            };
            if let Err(problem) = parse_action_pattern(&action).and_then(|p| {
                if p.kind == Segment::Any || p.verb == Segment::Any {
                    Err("a route maps to one action, without wildcards".to_owned())
                } else {
                    Ok(())
                }
            }) {
                self.report(
                    action_node,
                    Code::Pattern,
                    format!("bad route action `{action}`: {problem}"),
                );
                continue;
            }
            let Some(resource) = self.string(resource_node, "route resource") else {
                continue;
            };
            if let Err(problem) = check_resource_template(&resource, &segments) {
                self.report_help(
                    resource_node,
                    Code::Pattern,
                    format!("bad route resource `{resource}`: {problem}"),
                    "write type:id, where the id may use {name} captured by the path, e.g. app:{app}",
                );
                continue;
            }
            let strategy = fields
                .get("strategy")
                .and_then(|n| self.name(n, "a strategy name"));
            target.push(At {
                value: RouteDef {
                    methods,
                    path,
                    segments,
                    action,
                    resource,
                    strategy,
                },
                location: self.location(item),
            });
        }
    }

    // ---------------------------------------------------------------- tests

    fn tests(&mut self, node: &Node, target: &mut Vec<At<TestDef>>) {
        let allowed = ["name", "request", "expect", "reasons", "forbids"];
        for item in self.list(node, "the tests section") {
            let Some(fields) = self.fields(item, "a test", &allowed) else {
                continue;
            };
            let name = self
                .required(&fields, item, "name", "a test")
                .and_then(|n| self.string(n, "test name"));
            let request_node = self.required(&fields, item, "request", "a test");
            let request = request_node.and_then(|request_node| {
                let value = self.json(request_node);
                match serde_json::from_value::<TestRequest>(value) {
                    Ok(request) => Some(request),
                    Err(error) => {
                        self.report_help(
                            request_node,
                            Code::Value,
                            format!("bad test request: {error}"),
                            "a request has principal, action, resource and optionally context, env, explain",
                        );
                        None
                    }
                }
            });
            let expect = match self
                .required(&fields, item, "expect", "a test")
                .map(|n| (n, self.string(n, "expect")))
            {
                Some((_, Some(text))) if text == "allow" => Some(Effect::Allow),
                Some((_, Some(text))) if text == "deny" => Some(Effect::Deny),
                Some((expect_node, Some(text))) => {
                    self.report_help(
                        expect_node,
                        Code::Value,
                        format!("unknown expectation `{text}`"),
                        "expect `allow` or `deny`",
                    );
                    None
                }
                _ => None,
            };
            let id_set = |key: &str, decoder: &mut Self| {
                fields.get(key).map(|list| {
                    decoder
                        .list(list, key)
                        .iter()
                        .filter_map(|entry| decoder.string(entry, "an id"))
                        .collect::<BTreeSet<String>>()
                })
            };
            let reasons = id_set("reasons", self);
            let forbids = id_set("forbids", self);
            if let (Some(name), Some(request), Some(expect)) = (name, request, expect) {
                target.push(At {
                    value: TestDef {
                        name,
                        request,
                        expect,
                        reasons,
                        forbids,
                    },
                    location: self.location(item),
                });
            }
        }
    }
}

/// Methods a route may name.
pub const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];
