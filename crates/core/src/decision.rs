//! The answer to a request: allow or deny, with everything that decided it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The request may happen.
    Allow,
    /// The request may not happen.
    Deny,
}

impl Effect {
    /// `"allow"` or `"deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// A decision with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The outcome.
    pub decision: Effect,
    /// Why, in one word: `granted` for an allow, otherwise what denied.
    pub cause: Cause,
    /// The grants that held: roles (with the path from the principal), permit rules, relations.
    pub reasons: Vec<Reason>,
    /// The strategy attached to the action, if any, and how it fared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyOutcome>,
    /// Ids of the forbid statements that matched.
    pub forbids: Vec<Arc<str>>,
    /// Errors met while deciding (every one of them named the statement it came from).
    pub errors: Vec<DecisionError>,
    /// The policy and data revision the decision was made on.
    pub revision: Revision,
    /// The trace id of the request.
    pub trace_id: String,
    /// The full explanation, when the request asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

impl Decision {
    /// True when the decision is allow.
    pub fn is_allowed(&self) -> bool {
        self.decision == Effect::Allow
    }
}

/// The single cause of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A grant held, no forbid matched and the strategy (if any) held.
    Granted,
    /// No role, rule or relation granted the action (the default deny).
    NoGrant,
    /// A forbid statement matched.
    Forbidden,
    /// The action's strategy did not hold.
    StrategyFailed,
    /// An error made the outcome undecidable, so the engine failed closed.
    Error,
    /// The tenant is suspended.
    TenantSuspended,
    /// The tenant is not known.
    TenantUnknown,
    /// The tenant's route table maps no route to the request (forward-auth and the gateway:
    /// an unregistered method and path is refused).
    NoRoute,
    /// A protection stage of the gateway refused the request before its policy was asked
    /// (invalid parameters, a CSRF token, a rate limit, an injection, a missing credential);
    /// the decision's `forbids` names the stage as `stage:<name>`.
    Refused,
    /// The gateway let the request through to its application without a policy question: the
    /// route is public, or the application runs no permission stage. The decision allows; its
    /// one reason, of kind [`ReasonKind::Stage`], says which (`stage:public`,
    /// `stage:unchecked`).
    Passed,
}

/// One statement that granted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reason {
    /// What kind of statement.
    pub kind: ReasonKind,
    /// Its id (role name, rule id or relation).
    pub id: Arc<str>,
    /// For roles: the principal, then every role from the assigned one to the granting one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<Arc<str>>,
    /// For a temporary grant: the people who approved it, in the order they approved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<Arc<str>>,
    /// For a temporary grant: when it expires (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Arc<str>>,
}

impl Reason {
    /// A reason of `kind` with its id and path, and no grant details.
    pub fn new(kind: ReasonKind, id: Arc<str>, path: Vec<Arc<str>>) -> Self {
        Reason {
            kind,
            id,
            path,
            approvers: Vec::new(),
            expires: None,
        }
    }
}

/// Kinds of granting statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonKind {
    /// A role permission.
    Role,
    /// A permit rule.
    Rule,
    /// A relation in the relationship graph.
    Relation,
    /// A gateway stage that let a request through without the policy ([`Cause::Passed`]).
    Stage,
    /// An approved temporary grant (break-glass access): its id is the access request's, its
    /// path the requester, and the reason names its approvers and expiry.
    Grant,
}

/// How the action's strategy fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyOutcome {
    /// Strategy id.
    pub id: Arc<str>,
    /// Whether it held.
    pub held: bool,
    /// The branch (conjunction of factors) that held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<Vec<Arc<str>>>,
    /// When it did not hold: the factors that were evaluated and did not hold, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<Arc<str>>,
    /// When it did not hold: the factors that could not be evaluated (see `errors`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<Arc<str>>,
}

/// An error met while deciding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DecisionError {
    /// Where it came from.
    pub kind: ErrorKind,
    /// The statement (rule, factor, role permission) whose evaluation failed.
    pub statement: Arc<str>,
    /// What went wrong.
    pub message: String,
}

/// Sources of evaluation errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A CEL condition failed to evaluate or did not yield a boolean.
    Cel,
    /// A factor could not be evaluated (for example a missing context value).
    Factor,
    /// A relation could not be resolved (a condition parameter missing, the depth limit).
    Relation,
    /// The decision could not be recorded in the audit trail (the service denies it).
    Audit,
}

/// The policy and data revision behind a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// `sha256:` of the normalized bundle.
    pub bundle: Arc<str>,
    /// Revision of the tenant's run-time data in the store (principals, assignments, status),
    /// when a store is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<u64>,
    /// Revision of the relationship tuples, once relationships are in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuples: Option<u64>,
}

/// The full explanation of a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// Every factor of the tenant with its value (after direction); `null` when it errored.
    pub factors: BTreeMap<Arc<str>, Option<bool>>,
    /// The principal's effective roles (assigned, asserted and inherited), sorted.
    pub roles: Vec<Arc<str>>,
    /// Every rule that applies to the action, with its outcome: `matched`, `not_matched`,
    /// `condition_false` or `error`.
    pub rules: BTreeMap<Arc<str>, String>,
    /// Whether the action is a write action.
    pub write: bool,
    /// The action as decided: a plain name is qualified by the resource type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// Where each attribute conditions saw came from, by path (`principal.attributes.role`,
    /// `resource.attributes.status`): `declared` (the bundle or the store, which win) or
    /// `request`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttributeSource>,
}

/// Where an attribute of a decision's principal or resource came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeSource {
    /// Declared in the bundle (or stored): authoritative, a request cannot override it.
    Declared,
    /// Given by the request, for an attribute nothing declares.
    Request,
}
