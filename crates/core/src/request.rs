//! The authorization request: who wants to do what to which resource, in which circumstances.
//!
//! Every edge (HTTP, gRPC, forward-auth, CLI, library) builds one of these and hands it to the
//! engine. Deserialization rejects unknown fields everywhere except `context`, which is an open
//! map by design.

use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::TenantId;

/// One authorization question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The tenant whose policies decide.
    pub tenant: TenantId,
    /// Who is asking.
    pub principal: Principal,
    /// What they want to do, written `resource_type:verb` (for example `app:release`).
    pub action: String,
    /// Properties of the action (AuthZEN's `action.properties`), readable by conditions as
    /// `action.properties`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub action_properties: Map<String, Value>,
    /// What they want to do it to.
    pub resource: Resource,
    /// The circumstances: address, time, client certificate, request source and anything else.
    #[serde(default)]
    pub context: Context,
    /// Live environment signals. Only the CLI and bundle tests may supply these; a server
    /// computes them itself.
    #[serde(default)]
    pub env: Environment,
    /// Whether the decision should carry the full explanation (every factor's value, the
    /// effective roles and every rule's outcome).
    #[serde(default)]
    pub explain: bool,
    /// A caller-supplied trace id, echoed in the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Request {
    /// Writes a plain action name (`read`) in its qualified form (`record:read`, from the
    /// resource type), as decisions and audit records show it. A name that already carries a
    /// `type:` prefix, or a request whose resource has no type, is left as it is.
    pub fn qualify_action(&mut self) {
        if let std::borrow::Cow::Owned(qualified) =
            qualified_action(&self.action, &self.resource.kind)
        {
            self.action = qualified;
        }
    }
}

/// The qualified form of an action name: `verb` on a resource of type `kind` is `kind:verb`;
/// a name with a `:` already, or an empty `kind`, is returned unchanged.
pub fn qualified_action<'a>(action: &'a str, kind: &str) -> std::borrow::Cow<'a, str> {
    if action.contains(':') || kind.is_empty() {
        std::borrow::Cow::Borrowed(action)
    } else {
        let mut qualified = String::with_capacity(kind.len() + 1 + action.len());
        qualified.push_str(kind);
        qualified.push(':');
        qualified.push_str(action);
        std::borrow::Cow::Owned(qualified)
    }
}

/// The subject of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Principal id, unique within the tenant.
    pub id: String,
    /// Principal type; `user` unless stated.
    #[serde(rename = "type", default = "Principal::default_kind")]
    pub kind: String,
    /// Roles asserted by the caller (an edge only passes these on when the tenant trusts them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Attributes asserted by the caller. Attributes stored for the principal in the bundle take
    /// precedence over these.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

impl Principal {
    fn default_kind() -> String {
        "user".to_owned()
    }

    /// A principal of type `user` with no asserted roles or attributes.
    pub fn user(id: impl Into<String>) -> Self {
        Principal {
            id: id.into(),
            kind: Self::default_kind(),
            roles: Vec::new(),
            attributes: Map::new(),
        }
    }
}

/// The object of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Resource type, for example `app`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource id within its type.
    pub id: String,
    /// Attributes of the resource, readable by conditions.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

impl Resource {
    /// A resource with no attributes.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Resource {
            kind: kind.into(),
            id: id.into(),
            attributes: Map::new(),
        }
    }
}

/// The circumstances of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// The client's address (as established by the edge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// When the request happens. Servers use their own clock unless the tenant allows
    /// caller-supplied time; the CLI and bundle tests honour it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    /// The client certificate, as verified by our listener or a trusted proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<ClientCert>,
    /// Where the request comes from (for example `internal-service` or `authenticated-user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Any other context attribute, readable by conditions as `context.<name>`.
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// What is known of a verified client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCert {
    /// An operator-assigned certificate id (for example from a certificate registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// SHA-256 fingerprint of the DER certificate, hex (colons and case are ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Serial number, hex (colons, case and leading zeros are ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The subject's common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_cn: Option<String>,
    /// The full subject distinguished name, for conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The issuer distinguished name, for conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// Live environment signals readable by conditions as `env`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Supply-chain state of this very binary.
    #[serde(default)]
    pub supply_chain: SupplyChain,
}

/// Supply-chain signal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplyChain {
    /// True while a high-risk vulnerable dependency is present.
    #[serde(default)]
    pub high_risk: bool,
    /// The advisories that make it so (RustSec or OSV ids), named by a decision the built-in
    /// supply-chain forbid denies; `None` while the signal is low.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advisories: Option<std::sync::Arc<[std::sync::Arc<str>]>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_request() {
        let raw = r#"{ "tenant": "acme",
          "principal": { "id": "alice", "attributes": {} },
          "action": "app:release",
          "resource": { "type": "app", "id": "payments", "attributes": {} },
          "context": { "ip": "172.16.3.4", "time": "2026-03-02T16:00:00+08:00",
                       "cert": { "id": "cert1" }, "source": "authenticated-user", "device": "d-7" },
          "explain": true }"#;
        let request: Request = serde_json::from_str(raw).unwrap();
        assert_eq!(request.principal.kind, "user");
        assert_eq!(request.context.ip, Some("172.16.3.4".parse().unwrap()));
        assert_eq!(
            request.context.time.unwrap().to_string(),
            "2026-03-02T08:00:00Z"
        );
        assert_eq!(request.context.attributes["device"], "d-7");
        assert!(request.explain);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values_by_name() {
        let unknown = r#"{"tenant":"acme","principal":{"id":"a","role":"x"},"action":"a:b","resource":{"type":"t","id":"i"}}"#;
        let err = serde_json::from_str::<Request>(unknown)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `role`"), "{err}");
        let bad_ip = r#"{"tenant":"acme","principal":{"id":"a"},"action":"a:b","resource":{"type":"t","id":"i"},"context":{"ip":"300.1.1.1"}}"#;
        let err = serde_json::from_str::<Request>(bad_ip)
            .unwrap_err()
            .to_string();
        assert!(err.to_lowercase().contains("ip"), "{err}");
        let bad_tenant = r#"{"tenant":"a b","principal":{"id":"a"},"action":"a:b","resource":{"type":"t","id":"i"}}"#;
        let err = serde_json::from_str::<Request>(bad_tenant)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid tenant id"), "{err}");
    }
}
