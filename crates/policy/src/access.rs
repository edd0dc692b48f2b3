//! Temporary access (break-glass, SPEC.md C9) as the engine sees it: the tenant's settings
//! from the bundle's `temporary_access` section, and the approved grants the store hands over
//! with the run-time data.
//!
//! A grant is a permit for one principal, one action and one resource, inside a time window
//! and bound to a client certificate and/or source networks. It is one more source of grants
//! (next to role permissions, permit rules and relations): forbids, the action's strategy and
//! the tenant's status still apply. The engine compares the request's time with the window, so
//! a grant expires by itself without anything removing it.
//!
//! Approving, rejecting and revoking a request are actions of their own ([`APPROVE_ACTION`],
//! [`REJECT_ACTION`], [`REVOKE_ACTION`] on a resource of type [`REQUEST_TYPE`]), which the
//! compiler grants to the section's approver roles; the policy may constrain them further like
//! any action.

use std::sync::Arc;

use jiff::Timestamp;

use crate::model::{CertField, CertMatcher, IpPattern};
use crate::values::{normalize_fingerprint, parse_ip_pattern};

/// The action of approving an access request.
pub const APPROVE_ACTION: &str = "access_request:approve";
/// The action of rejecting an access request.
pub const REJECT_ACTION: &str = "access_request:reject";
/// The action of revoking someone else's access request (a requester withdraws their own
/// without asking).
pub const REVOKE_ACTION: &str = "access_request:revoke";
/// The resource type of an access request (its id is the request's id).
pub const REQUEST_TYPE: &str = "access_request";

/// The bundle's `temporary_access` section, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryAccess {
    /// Roles whose holders approve requests, sorted.
    pub approvers: Vec<Arc<str>>,
    /// Approvals a request needs (1 or 2).
    pub approvals_required: u8,
    /// The longest window a request may ask for, in seconds.
    pub max_window_secs: u64,
}

/// An approved request as the store hands it over: what it grants, to whom, when, bound to
/// what, and who approved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeGrant {
    /// The access request's id.
    pub id: String,
    /// The requester, to whom it grants.
    pub principal: String,
    /// The action, qualified (`type:verb`).
    pub action: String,
    /// The resource, `type:id`.
    pub resource: String,
    /// The window's start (inclusive).
    pub not_before: Timestamp,
    /// The window's end (exclusive).
    pub not_after: Timestamp,
    /// The client certificate it is bound to: a SHA-256 fingerprint (hex) or a certificate id.
    pub cert: Option<String>,
    /// The source networks it is bound to (CIDR blocks or IPv4 wildcards).
    pub networks: Vec<String>,
    /// Who approved it, in order.
    pub approvers: Vec<String>,
}

/// A grant ready for decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemporaryGrant {
    pub id: Arc<str>,
    pub action: String,
    pub resource_kind: String,
    pub resource_id: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub cert: Option<CertMatcher>,
    pub v4: Vec<(u32, u32)>,
    pub v6: Vec<(u128, u128)>,
    pub approvers: Vec<Arc<str>>,
    pub expires: Arc<str>,
}

impl TemporaryGrant {
    /// Compiles a stored grant; a grant that is not bound to anything, or whose binding does
    /// not parse, is refused with the reason (it then grants nothing).
    pub(crate) fn compile(grant: &RuntimeGrant) -> Result<TemporaryGrant, String> {
        let (kind, id) = grant
            .resource
            .split_once(':')
            .filter(|(kind, id)| !kind.is_empty() && !id.is_empty())
            .ok_or_else(|| format!("resource `{}` is not `type:id`", grant.resource))?;
        if !grant.action.contains(':') {
            return Err(format!("action `{}` is not `type:verb`", grant.action));
        }
        if grant.not_after <= grant.not_before {
            return Err("its window is empty".to_owned());
        }
        let cert = grant
            .cert
            .as_deref()
            .map(|text| match normalize_fingerprint(text) {
                Some(fingerprint) => CertMatcher {
                    field: Some(CertField::Fingerprint),
                    value: fingerprint,
                },
                None => CertMatcher {
                    field: Some(CertField::Id),
                    value: text.to_owned(),
                },
            });
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for network in &grant.networks {
            match parse_ip_pattern(network)? {
                IpPattern::V4 { value, mask } => v4.push((value, mask)),
                IpPattern::V6 { value, mask } => v6.push((value, mask)),
            }
        }
        if cert.is_none() && v4.is_empty() && v6.is_empty() {
            return Err("it is bound to neither a certificate nor a network".to_owned());
        }
        Ok(TemporaryGrant {
            id: Arc::from(grant.id.as_str()),
            action: grant.action.clone(),
            resource_kind: kind.to_owned(),
            resource_id: id.to_owned(),
            not_before: grant.not_before,
            not_after: grant.not_after,
            cert,
            v4,
            v6,
            approvers: grant
                .approvers
                .iter()
                .map(|name| Arc::from(name.as_str()))
                .collect(),
            expires: Arc::from(grant.not_after.to_string()),
        })
    }
}
