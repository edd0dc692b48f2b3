//! The keys of `tenant.yaml`: the tenant id, status, time zone, domain, supply-chain forbid,
//! request time, token roles, sensitive attributes, quota and description.
//!
//! This module owns how each of these keys is read and checked on its own (a valid tenant id,
//! a known IANA zone, a host name, a positive quota). It must not decide which file is
//! `tenant.yaml` (the loader does) nor read any other section.

use portcullis_core::TenantId;

use super::nodes::{Decoder, Fields};
use crate::diagnostic::Code;
use crate::model::{Bundle, Quota, TenantStatus};
use crate::yaml::{Node, NodeKind};

impl Decoder<'_> {
    pub(super) fn tenant(&mut self, bundle: &mut Bundle, fields: &Fields<'_>, root: &Node) {
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
}
