//! The decision procedure.
//!
//! `decide` is synchronous and pure: it reads a [`Snapshot`] and a [`Request`] and returns a
//! [`Decision`]; it performs no I/O and reads no clock. Its semantics:
//!
//! * an unknown or suspended tenant is denied before anything else;
//! * grants come from role permissions (assigned or asserted roles, their inheritance, `*`
//!   wildcards, optional CEL conditions), permit rules, relations and approved temporary
//!   grants (inside their window, from the certificate and network they are bound to);
//! * any matching forbid rule, and the built-in supply-chain forbid for write actions, deny;
//! * the action's strategy must hold;
//! * everything else is denied.
//!
//! Conditions and factors are three-valued: true, false, or unknown when they cannot be
//! evaluated. Unknowns combine with Kleene logic (a disjunction with a true member is true, a
//! conjunction with a false member is false), which keeps short-circuiting sound: the outcome
//! does not depend on the order in which statements, branches or factors are tried. An unknown
//! that could change the outcome denies, and the error is named in the decision.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use portcullis_cel::{Field, Input, InputError};
use portcullis_core::{
    AttributeSource, Cause, Decision, DecisionError, Effect, ErrorKind, Explanation, Reason,
    ReasonKind, Request, Revision, StrategyOutcome, TenantId, qualified_action,
};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::bits::BitSet;
use crate::compile::{
    ActionEntry, ConditionId, FactorId, FactorTest, PrincipalEntry, RuleId, Snapshot, StrategyId,
};
use crate::condition::{Activation, VariableSource};
use crate::factors::{
    LocalTime, cert_matches, ip_matches, market_closed, require_ip, window_matches,
};
use crate::model::split_action;
use crate::variables::{action_variable, tenant_variable};

/// The id under which the built-in supply-chain forbid is reported.
pub const SUPPLY_CHAIN_FORBID: &str = "builtin:supply-chain";

/// The prefix of the entries that follow [`SUPPLY_CHAIN_FORBID`] in a decision's forbids, one
/// per advisory that raised the supply-chain signal: `advisory:RUSTSEC-2025-0001`.
pub const SUPPLY_CHAIN_ADVISORY: &str = "advisory:";

/// Three-valued truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn from_bool(value: bool) -> Tri {
        if value { Tri::True } else { Tri::False }
    }

    /// Kleene disjunction.
    fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::True, _) | (_, Tri::True) => Tri::True,
            (Tri::Unknown, _) | (_, Tri::Unknown) => Tri::Unknown,
            _ => Tri::False,
        }
    }
}

/// Decides `request` against `snapshot`.
pub fn decide(snapshot: &Snapshot, request: &Request) -> Decision {
    decide_with_strategy(snapshot, request, None)
}

/// Decides `request`, additionally requiring `extra_strategy` (a route's strategy) to hold.
/// An unknown strategy name denies with an error.
pub fn decide_with_strategy(
    snapshot: &Snapshot,
    request: &Request,
    extra_strategy: Option<&str>,
) -> Decision {
    decide_in(snapshot, request, extra_strategy, None, None)
}

/// Decides `request` as [`decide`] does, lending the conditions `shared`'s variable where it
/// is the request's (see [`Shared`]): the decision is the same, built with less work.
/// `declared`, when given, is what the caller already looked up: the attributes the bundle
/// declares for the request's resource (`None`: not declared), which the decision then does
/// not look up again.
pub(crate) fn decide_sharing(
    snapshot: &Snapshot,
    request: &Request,
    shared: Option<&Shared<'_>>,
    declared: Option<Option<&Map<String, Value>>>,
) -> Decision {
    decide_in(snapshot, request, None, shared, declared)
}

fn decide_in(
    snapshot: &Snapshot,
    request: &Request,
    extra_strategy: Option<&str>,
    shared: Option<&Shared<'_>>,
    declared: Option<Option<&Map<String, Value>>>,
) -> Decision {
    if request.tenant != snapshot.tenant {
        return refuse(request, &snapshot.revision, Cause::TenantUnknown);
    }
    if snapshot.is_suspended() {
        let mut decision = refuse(request, &snapshot.revision, Cause::TenantSuspended);
        decision.revision.data = snapshot.data_revision;
        return decision;
    }
    let principal = snapshot.principals.get(&request.principal.id);
    let assigned = assigned_roles(snapshot, request, principal);
    // A plain action name (`read`) is the resource type's (`record:read`).
    let action_name = qualified_action(&request.action, &request.resource.kind);
    let action: Cow<'_, ActionEntry> = match snapshot.actions.get(action_name.as_ref()) {
        Some(entry) => Cow::Borrowed(entry),
        None => Cow::Owned(unlisted_action(snapshot, &action_name)),
    };
    let declared = declared.unwrap_or_else(|| declared_resource(snapshot, &request.resource));
    let view = View::new(
        snapshot,
        request,
        principal,
        declared,
        &action_name,
        &assigned,
        action.write,
    );
    let lent = shared.and_then(|shared| shared.lend(snapshot, request, &assigned));
    let activation = Activation::lending(&view, lent);
    let mut evaluation = Evaluation {
        view: &view,
        activation: &activation,
        local_time: OnceCell::new(),
        known: BitSet::new(),
        holds: BitSet::new(),
        failed: BitSet::new(),
        errors: Vec::new(),
    };
    evaluation.run(&action, extra_strategy)
}

impl Snapshot {
    /// The most CEL cost units a decision on `action` can spend, with `extra_strategy` (a
    /// route's) if any: the estimates of every condition the decision may evaluate, capped at
    /// the decision budget. A caller that must not be delayed by an expensive tenant uses this
    /// to decide where to evaluate.
    pub fn evaluation_cost_bound(&self, action: &str, extra_strategy: Option<&str>) -> u64 {
        let action_cost = match self.actions.get(action) {
            Some(entry) => entry.cost,
            None => {
                let entry = unlisted_action(self, action);
                crate::compile::action_cost(&entry, &self.rules, &self.strategies, &self.conditions)
            }
        };
        let extra = extra_strategy
            .and_then(|name| {
                self.strategies
                    .binary_search_by(|s| (*s.name).cmp(name))
                    .ok()
            })
            .map_or(0, |id| self.strategies[id].cost);
        action_cost
            .saturating_add(extra)
            .min(portcullis_cel::limits::EVALUATION_BUDGET)
    }

    /// Whether a decision on `action` may consult the relation index (the action maps to a
    /// relation), whose queries have a step budget of their own.
    pub fn consults_relations(&self, action: &str) -> bool {
        self.relations.is_some()
            && self
                .actions
                .get(action)
                .is_some_and(|entry| entry.relation.is_some())
    }

    /// The roles a principal holds for a resource: assigned (globally or on the resource),
    /// asserted in the principal, and every role those inherit; sorted.
    pub fn effective_roles(
        &self,
        principal: &portcullis_core::Principal,
        resource: &portcullis_core::Resource,
    ) -> Vec<Arc<str>> {
        let entry = self.principals.get(&principal.id);
        let mut assigned = entry.map(|e| e.global.clone()).unwrap_or_default();
        if let Some(entry) = entry {
            for (pattern, role) in &entry.scoped {
                if pattern.matches(&resource.kind, &resource.id) {
                    assigned.insert(*role);
                }
            }
        }
        for name in &principal.roles {
            if let Some(role) = self.roles.index.get(name) {
                assigned.insert(*role);
            }
        }
        let mut all = BitSet::new();
        for role in assigned.iter() {
            all.union_with(&self.roles.closure[role]);
        }
        all.iter()
            .map(|role| Arc::clone(&self.roles.names[role]))
            .collect()
    }
}

/// A decision that denies before any policy is read.
/// A denial decided before any policy is evaluated (unknown or suspended tenant, no route):
/// no reasons, the bundle revision it was refused on, the request's trace id.
pub fn refuse(request: &Request, revision: &Arc<str>, cause: Cause) -> Decision {
    Decision {
        decision: Effect::Deny,
        cause,
        reasons: Vec::new(),
        strategy: None,
        forbids: Vec::new(),
        errors: Vec::new(),
        revision: Revision {
            bundle: Arc::clone(revision),
            data: None,
            tuples: None,
        },
        trace_id: request.trace_id.clone().unwrap_or_default(),
        explanation: None,
    }
}

/// Assigned roles: the bundle's global assignments, its assignments on this resource, and the
/// roles the request asserts (unknown names are ignored).
fn assigned_roles<'s>(
    snapshot: &'s Snapshot,
    request: &Request,
    principal: Option<&'s PrincipalEntry>,
) -> Cow<'s, BitSet> {
    let scoped = principal.map_or(&[][..], |entry| entry.scoped.as_slice());
    let resource = &request.resource;
    let applicable_scoped = scoped
        .iter()
        .filter(|(pattern, _)| pattern.matches(&resource.kind, &resource.id));
    if request.principal.roles.is_empty() && scoped.is_empty() {
        return match principal {
            Some(entry) => Cow::Borrowed(&entry.global),
            None => Cow::Owned(BitSet::new()),
        };
    }
    let mut roles = principal
        .map(|entry| entry.global.clone())
        .unwrap_or_default();
    for (_, role) in applicable_scoped {
        roles.insert(*role);
    }
    for name in &request.principal.roles {
        if let Some(role) = snapshot.roles.index.get(name) {
            roles.insert(*role);
        }
    }
    Cow::Owned(roles)
}

/// Grants and rules for an action the bundle never names: only wildcards can apply.
fn unlisted_action(snapshot: &Snapshot, action: &str) -> ActionEntry {
    let (kind, verb) = split_action(action);
    ActionEntry {
        write: false,
        relation: None,
        strategy: None,
        grants: snapshot
            .wildcard_grant_index
            .matching(kind, verb)
            .into_iter()
            .map(|index| snapshot.wildcard_grants[index].1)
            .collect(),
        rules: snapshot
            .rule_index
            .matching(kind, verb)
            .into_iter()
            .map(|rule| (rule, true))
            .collect(),
        static_false: Vec::new(),
        cost: 0,
    }
}

/// What conditions can see of one request.
struct View<'a> {
    snapshot: &'a Snapshot,
    request: &'a Request,
    principal: Option<&'a PrincipalEntry>,
    /// The resource's declared attributes, when the bundle declares it.
    declared_resource: Option<&'a Map<String, Value>>,
    /// The request's action, qualified by the resource type.
    action_name: &'a str,
    assigned: &'a BitSet,
    write: bool,
    inherited: OnceLock<BitSet>,
    /// What [`View::principal_attributes`], [`View::resource_attributes`] and
    /// [`View::context`] build when they cannot borrow.
    merged_principal_attributes: OnceLock<Map<String, Value>>,
    merged_resource_attributes: OnceLock<Map<String, Value>>,
    context: OnceLock<Map<String, Value>>,
}

impl<'a> View<'a> {
    fn new(
        snapshot: &'a Snapshot,
        request: &'a Request,
        principal: Option<&'a PrincipalEntry>,
        declared_resource: Option<&'a Map<String, Value>>,
        action_name: &'a str,
        assigned: &'a BitSet,
        write: bool,
    ) -> Self {
        View {
            snapshot,
            request,
            principal,
            declared_resource,
            action_name,
            assigned,
            write,
            inherited: OnceLock::new(),
            merged_principal_attributes: OnceLock::new(),
            merged_resource_attributes: OnceLock::new(),
            context: OnceLock::new(),
        }
    }

    /// Assigned roles and every role they inherit.
    fn inherited(&self) -> &BitSet {
        self.inherited
            .get_or_init(|| inherited_roles(self.snapshot, self.assigned))
    }

    fn role_names(&self) -> Vec<Arc<str>> {
        self.inherited()
            .iter()
            .map(|role| Arc::clone(&self.snapshot.roles.names[role]))
            .collect()
    }

    /// Request attributes overridden by the bundle's stored attributes.
    fn principal_attributes(&self) -> &Map<String, Value> {
        overridden(
            &self.request.principal.attributes,
            self.principal.map(|entry| &entry.attributes),
            &self.merged_principal_attributes,
        )
    }

    /// Request attributes overridden by the resource's declared ones.
    fn resource_attributes(&self) -> &Map<String, Value> {
        overridden(
            &self.request.resource.attributes,
            self.declared_resource,
            &self.merged_resource_attributes,
        )
    }

    /// The `context` variable: the request's context attributes, with its address, time,
    /// source and certificate under their names.
    fn context(&self) -> &Map<String, Value> {
        let context = &self.request.context;
        if context.ip.is_none()
            && context.time.is_none()
            && context.source.is_none()
            && context.cert.is_none()
        {
            return &context.attributes;
        }
        self.context.get_or_init(|| {
            let mut variable = context.attributes.clone();
            if let Some(ip) = context.ip {
                variable.insert("ip".into(), Value::String(ip.to_string()));
            }
            if let Some(time) = context.time {
                variable.insert("time".into(), Value::String(time.to_string()));
            }
            if let Some(source) = &context.source {
                variable.insert("source".into(), Value::String(source.clone()));
            }
            if let Some(cert) = &context.cert {
                variable.insert(
                    "cert".into(),
                    serde_json::to_value(cert).unwrap_or(Value::Null),
                );
            }
            variable
        })
    }

    /// Where each principal and resource attribute came from.
    fn attribute_sources(&self) -> BTreeMap<String, AttributeSource> {
        let mut sources = BTreeMap::new();
        let declared_principal = self.principal.map(|entry| &entry.attributes);
        for (side, request, declared) in [
            (
                "principal",
                &self.request.principal.attributes,
                declared_principal,
            ),
            (
                "resource",
                &self.request.resource.attributes,
                self.declared_resource,
            ),
        ] {
            for key in request.keys() {
                sources.insert(format!("{side}.attributes.{key}"), AttributeSource::Request);
            }
            for key in declared.into_iter().flat_map(Map::keys) {
                sources.insert(
                    format!("{side}.attributes.{key}"),
                    AttributeSource::Declared,
                );
            }
        }
        sources
    }

    fn principal_attribute(&self, key: &str) -> Option<&Value> {
        self.principal
            .and_then(|entry| entry.attributes.get(key))
            .or_else(|| self.request.principal.attributes.get(key))
    }
}

/// The attributes the bundle declares for `resource`, if it declares the resource.
fn declared_resource<'s>(
    snapshot: &'s Snapshot,
    resource: &portcullis_core::Resource,
) -> Option<&'s Map<String, Value>> {
    snapshot
        .resources
        .get(&resource.kind)
        .and_then(|ids| ids.get(&resource.id))
}

/// `base` with every entry of `overrides` set over it: borrowed when only one of the two has
/// entries, else merged into `merged` (once).
fn overridden<'v>(
    base: &'v Map<String, Value>,
    overrides: Option<&'v Map<String, Value>>,
    merged: &'v OnceLock<Map<String, Value>>,
) -> &'v Map<String, Value> {
    match overrides {
        None => base,
        Some(overrides) if overrides.is_empty() => base,
        Some(overrides) if base.is_empty() => overrides,
        Some(overrides) => merged.get_or_init(|| {
            let mut merged = base.clone();
            for (key, value) in overrides {
                merged.insert(key.clone(), value.clone());
            }
            merged
        }),
    }
}

/// The `principal` variable: the request's principal as the bundle completes it (its type,
/// `roles`: the roles `inherited`, `attributes`: as [`View::principal_attributes`]).
fn principal_variable<'v>(
    snapshot: &'v Snapshot,
    principal: &'v portcullis_core::Principal,
    entry: Option<&'v PrincipalEntry>,
    inherited: &BitSet,
    attributes: &'v Map<String, Value>,
) -> Result<Input<'v>, InputError> {
    let kind = entry
        .and_then(|entry| entry.kind.as_deref())
        .unwrap_or(&principal.kind);
    let roles = inherited
        .iter()
        .map(|role| &*snapshot.roles.names[role])
        .collect();
    Input::object(
        "principal",
        [
            ("id", Field::Str(&principal.id)),
            ("type", Field::Str(kind)),
            ("roles", Field::Strings(roles)),
            ("attributes", Field::Map(attributes)),
        ],
    )
}

/// The `resource` variable, its `attributes` as [`View::resource_attributes`].
fn resource_variable<'v>(
    resource: &'v portcullis_core::Resource,
    attributes: &'v Map<String, Value>,
) -> Result<Input<'v>, InputError> {
    Input::object(
        "resource",
        [
            ("type", Field::Str(&resource.kind)),
            ("id", Field::Str(&resource.id)),
            ("attributes", Field::Map(attributes)),
        ],
    )
}

/// The roles `assigned` and every role they inherit.
fn inherited_roles(snapshot: &Snapshot, assigned: &BitSet) -> BitSet {
    let mut all = BitSet::new();
    for role in assigned.iter() {
        all.union_with(&snapshot.roles.closure[role]);
    }
    all
}

impl VariableSource for View<'_> {
    fn variable(&self, name: &str) -> Option<Result<Input<'_>, InputError>> {
        let request = self.request;
        Some(match name {
            "principal" => principal_variable(
                self.snapshot,
                &request.principal,
                self.principal,
                self.inherited(),
                self.principal_attributes(),
            ),
            "resource" => resource_variable(&request.resource, self.resource_attributes()),
            "action" => action_variable(self.action_name, self.write, &request.action_properties),
            "context" => Input::map("context", self.context()),
            "tenant" => tenant_variable(&self.snapshot.tenant, &self.snapshot.settings),
            "env" => Input::object(
                "env",
                [(
                    "supply_chain",
                    Field::Object(vec![(
                        "high_risk",
                        Field::Bool(request.env.supply_chain.high_risk),
                    )]),
                )],
            ),
            _ => return None,
        })
    }
}

/// A condition variable built once for many decisions that differ in one part of the request
/// only: the `principal` of a search over resources, the `resource` of a search over subjects.
/// [`decide_sharing`] lends it to a decision only after checking that the decision would have
/// built the same value (same snapshot, same principal or resource, and for the principal the
/// same assigned roles); otherwise the decision builds its own.
pub(crate) struct Shared<'a> {
    snapshot: &'a Snapshot,
    part: SharedPart<'a>,
    value: Result<Input<'a>, InputError>,
}

impl std::fmt::Debug for Shared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

enum SharedPart<'a> {
    Principal {
        principal: &'a portcullis_core::Principal,
        assigned: BitSet,
    },
    Resource {
        resource: &'a portcullis_core::Resource,
    },
}

impl<'a> Shared<'a> {
    /// The `principal` variable of `template`, for decisions that differ from it only in the
    /// resource; `merged` holds the principal's attributes if they must be merged.
    pub(crate) fn principal(
        snapshot: &'a Snapshot,
        template: &'a Request,
        merged: &'a OnceLock<Map<String, Value>>,
    ) -> Shared<'a> {
        let principal = &template.principal;
        let entry = snapshot.principals.get(&principal.id);
        let assigned = assigned_roles(snapshot, template, entry).into_owned();
        let attributes = overridden(
            &principal.attributes,
            entry.map(|entry| &entry.attributes),
            merged,
        );
        let value = principal_variable(
            snapshot,
            principal,
            entry,
            &inherited_roles(snapshot, &assigned),
            attributes,
        );
        Shared {
            snapshot,
            part: SharedPart::Principal {
                principal,
                assigned,
            },
            value,
        }
    }

    /// The `resource` variable of `template`, for decisions that differ from it only in the
    /// principal; `merged` holds the resource's attributes if they must be merged.
    pub(crate) fn resource(
        snapshot: &'a Snapshot,
        template: &'a Request,
        merged: &'a OnceLock<Map<String, Value>>,
    ) -> Shared<'a> {
        let resource = &template.resource;
        let declared = declared_resource(snapshot, resource);
        let value = resource_variable(resource, overridden(&resource.attributes, declared, merged));
        Shared {
            snapshot,
            part: SharedPart::Resource { resource },
            value,
        }
    }

    /// The variable's slot and value, if a decision on `request` (whose principal holds the
    /// roles `assigned`) on `snapshot` would build the same.
    fn lend(
        &self,
        snapshot: &Snapshot,
        request: &Request,
        assigned: &BitSet,
    ) -> Option<(&'static str, &Result<Input<'a>, InputError>)> {
        if !std::ptr::eq(self.snapshot, snapshot) {
            return None;
        }
        let same = match &self.part {
            SharedPart::Principal {
                principal,
                assigned: shared,
            } => request.principal == **principal && assigned == shared,
            SharedPart::Resource { resource } => request.resource == **resource,
        };
        let name = match self.part {
            SharedPart::Principal { .. } => "principal",
            SharedPart::Resource { .. } => "resource",
        };
        same.then_some((name, &self.value))
    }
}

struct Evaluation<'e, 'a> {
    view: &'a View<'a>,
    activation: &'e Activation<'a>,
    local_time: OnceCell<Result<LocalTime, String>>,
    /// Factors evaluated so far, and those that held (after direction).
    known: BitSet,
    holds: BitSet,
    /// Factors that could not be evaluated.
    failed: BitSet,
    errors: Vec<DecisionError>,
}

impl Evaluation<'_, '_> {
    fn run(&mut self, action: &ActionEntry, extra_strategy: Option<&str>) -> Decision {
        let snapshot = self.view.snapshot;
        let request = self.view.request;
        let explain = request.explain;
        let mut rule_table: BTreeMap<Arc<str>, String> = BTreeMap::new();

        // Forbids: any that holds denies; one that cannot be evaluated might hold.
        let mut forbid = Tri::False;
        let mut forbids: Vec<Arc<str>> = Vec::new();
        if snapshot.settings.supply_chain_forbid
            && action.write
            && request.env.supply_chain.high_risk
        {
            forbid = Tri::True;
            forbids.push(Arc::from(crate::engine::SUPPLY_CHAIN_FORBID));
            forbids.extend(
                request
                    .env
                    .supply_chain
                    .advisories
                    .iter()
                    .flat_map(|ids| ids.iter())
                    .map(|id| Arc::from(format!("{SUPPLY_CHAIN_ADVISORY}{id}"))),
            );
        }
        // Grants: role permissions and permit rules.
        let mut grant = Tri::False;
        let mut reasons: Vec<Reason> = Vec::new();
        if explain {
            for &rule_id in &action.static_false {
                rule_table.insert(
                    Arc::clone(&snapshot.rules[rule_id].id),
                    "condition_false".to_owned(),
                );
            }
        }
        for &(rule_id, check_condition) in &action.rules {
            let rule = &snapshot.rules[rule_id];
            let outcome = self.rule(rule_id, check_condition, explain.then_some(&mut rule_table));
            match rule.effect {
                Effect::Deny => {
                    if outcome == Tri::True {
                        forbids.push(Arc::clone(&rule.id));
                    }
                    forbid = forbid.or(outcome);
                }
                Effect::Allow => {
                    if outcome == Tri::True {
                        reasons.push(Reason::new(
                            ReasonKind::Rule,
                            Arc::clone(&rule.id),
                            Vec::new(),
                        ));
                    }
                    grant = grant.or(outcome);
                }
            }
        }
        for permission in &action.grants {
            let Some(holder) = self
                .view
                .assigned
                .iter_intersection(&snapshot.roles.holders[permission.role])
                .next()
            else {
                continue;
            };
            let role_name = &snapshot.roles.names[permission.role];
            let outcome = match permission.condition {
                None => Tri::True,
                Some(condition) => self.condition(condition, role_name),
            };
            if outcome == Tri::True {
                let mut path = Vec::with_capacity(4);
                path.push(match self.view.principal {
                    Some(entry) => Arc::clone(&entry.id),
                    None => Arc::from(request.principal.id.as_str()),
                });
                if let Some(chain) = snapshot.roles.path(holder, permission.role) {
                    path.extend(
                        chain
                            .into_iter()
                            .map(|role| Arc::clone(&snapshot.roles.names[role])),
                    );
                }
                reasons.push(Reason::new(ReasonKind::Role, Arc::clone(role_name), path));
            }
            grant = grant.or(outcome);
        }
        // The relation the action maps to, when no other grant already holds (or to explain).
        if let (Some(relation), Some(relations)) = (&action.relation, &snapshot.relations)
            && (explain || grant != Tri::True)
        {
            let outcome = self.relation(relation, relations, &mut reasons);
            grant = grant.or(outcome);
        }

        // Approved temporary grants of the principal, when nothing else granted (or to explain).
        if let Some(principal) = self.view.principal
            && !principal.grants.is_empty()
            && (explain || grant != Tri::True)
            && self.temporary_grant(&principal.grants, &mut reasons)
        {
            grant = Tri::True;
        }

        // Strategies: the action's and the route's; only worth evaluating when they can decide.
        let mut strategy_ids: Vec<StrategyId> = action.strategy.into_iter().collect();
        let mut unknown_strategy = None;
        if let Some(name) = extra_strategy {
            match snapshot
                .strategies
                .binary_search_by(|s| (*s.name).cmp(name))
            {
                Ok(id) => strategy_ids.push(id),
                Err(_) => unknown_strategy = Some(name),
            }
        }
        let mut strategy = Tri::True;
        let mut strategy_outcome = None;
        if let Some(name) = unknown_strategy {
            strategy = Tri::Unknown;
            self.errors.push(DecisionError {
                kind: ErrorKind::Factor,
                statement: Arc::from(name),
                message: format!(
                    "the route names strategy `{name}`, which the bundle does not define"
                ),
            });
        }
        if explain || (grant == Tri::True && forbid == Tri::False) {
            for id in strategy_ids {
                let (outcome, report) = self.strategy(id);
                strategy = match (strategy, outcome) {
                    (Tri::False, _) | (_, Tri::False) => Tri::False,
                    (Tri::Unknown, _) | (_, Tri::Unknown) => Tri::Unknown,
                    _ => Tri::True,
                };
                // Report the first strategy that did not hold, or the last one if all held.
                if strategy_outcome
                    .as_ref()
                    .is_none_or(|r: &StrategyOutcome| r.held)
                {
                    strategy_outcome = Some(report);
                }
            }
        }

        // One place decides, from (forbid, grant, strategy).
        let (decision, cause) = match (forbid, grant, strategy) {
            // A forbid held: forbid overrides every grant.
            (Tri::True, _, _) => (Effect::Deny, Cause::Forbidden),
            // A forbid could not be evaluated: it might hold, so fail closed.
            (Tri::Unknown, _, _) => (Effect::Deny, Cause::Error),
            // Nothing granted: the default.
            (Tri::False, Tri::False, _) => (Effect::Deny, Cause::NoGrant),
            // No grant held, but one could not be evaluated.
            (Tri::False, Tri::Unknown, _) => (Effect::Deny, Cause::Error),
            // Granted, but the strategy's conditions of time, place or device are not met.
            (Tri::False, Tri::True, Tri::False) => (Effect::Deny, Cause::StrategyFailed),
            // Granted, but a factor the strategy needed could not be evaluated.
            (Tri::False, Tri::True, Tri::Unknown) => (Effect::Deny, Cause::Error),
            // Granted, not forbidden, strategy held.
            (Tri::False, Tri::True, Tri::True) => (Effect::Allow, Cause::Granted),
        };

        let explanation = explain.then(|| self.explanation(rule_table));
        reasons.sort();
        reasons.dedup();
        forbids.sort();
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort();
        errors.dedup();
        Decision {
            decision,
            cause,
            reasons,
            strategy: strategy_outcome,
            forbids,
            errors,
            revision: Revision {
                bundle: Arc::clone(&snapshot.revision),
                data: snapshot.data_revision,
                tuples: snapshot.relations.as_ref().map(|r| r.revision()),
            },
            trace_id: request.trace_id.clone().unwrap_or_default(),
            explanation,
        }
    }

    /// Whether one of the principal's temporary grants holds for this request: the same
    /// action and resource, the request's time inside the window, and the request's client
    /// certificate and address those the grant is bound to. Names the grant that held.
    fn temporary_grant(
        &self,
        grants: &[Arc<crate::access::TemporaryGrant>],
        reasons: &mut Vec<Reason>,
    ) -> bool {
        let request = self.view.request;
        // No time, no window to be inside of.
        let Some(time) = request.context.time else {
            return false;
        };
        let holding = grants.iter().find(|grant| {
            grant.action == self.view.action_name
                && grant.resource_kind == request.resource.kind
                && grant.resource_id == request.resource.id
                && grant.not_before <= time
                && time < grant.not_after
                && grant.cert.as_ref().is_none_or(|bound| {
                    request
                        .context
                        .cert
                        .as_ref()
                        .is_some_and(|cert| cert_matches(cert, std::slice::from_ref(bound)))
                })
                && ((grant.v4.is_empty() && grant.v6.is_empty())
                    || request
                        .context
                        .ip
                        .is_some_and(|ip| ip_matches(ip, &grant.v4, &grant.v6)))
        });
        let Some(grant) = holding else {
            return false;
        };
        reasons.push(Reason {
            kind: ReasonKind::Grant,
            id: Arc::clone(&grant.id),
            path: vec![Arc::from(request.principal.id.as_str())],
            approvers: grant.approvers.clone(),
            expires: Some(Arc::clone(&grant.expires)),
        });
        true
    }

    /// Whether the principal has `relation` on the resource in the relation index. A relation
    /// that cannot be resolved (a condition missing a parameter, the depth limit) is an error
    /// that denies, named in the decision.
    fn relation(
        &mut self,
        relation: &Arc<str>,
        relations: &crate::relations::Relations,
        reasons: &mut Vec<Reason>,
    ) -> Tri {
        let request = self.view.request;
        let user = portcullis_rebac::User::Object(portcullis_rebac::ObjectRef::new(
            request.principal.kind.as_str(),
            request.principal.id.as_str(),
        ));
        let mut check = portcullis_rebac::CheckRequest::new(
            user,
            &**relation,
            crate::relations::resource_object(&request.resource),
        );
        if let Ok(Value::Object(context)) = serde_json::to_value(&request.context) {
            check.context = context;
        }
        let answer = relations.read().check(&check);
        match answer {
            Ok(result) if result.allowed => {
                reasons.push(Reason::new(
                    ReasonKind::Relation,
                    Arc::clone(relation),
                    result
                        .path
                        .iter()
                        .map(|step| Arc::from(step.as_str()))
                        .collect(),
                ));
                Tri::True
            }
            Ok(_) => Tri::False,
            Err(error) => {
                self.errors.push(DecisionError {
                    kind: ErrorKind::Relation,
                    statement: Arc::clone(relation),
                    message: error.to_string(),
                });
                Tri::Unknown
            }
        }
    }

    fn explanation(&mut self, rules: BTreeMap<Arc<str>, String>) -> Explanation {
        let snapshot = self.view.snapshot;
        let factors = (0..snapshot.factors.len())
            .map(|id| {
                let value = match self.factor(id) {
                    Tri::True => Some(true),
                    Tri::False => Some(false),
                    Tri::Unknown => None,
                };
                (Arc::clone(&snapshot.factors[id].name), value)
            })
            .collect();
        Explanation {
            factors,
            roles: self.view.role_names(),
            rules,
            write: self.view.write,
            action: self.view.action_name.to_owned(),
            attributes: self.view.attribute_sources(),
        }
    }

    fn condition(&mut self, condition: ConditionId, statement: &Arc<str>) -> Tri {
        match self.view.snapshot.conditions[condition].evaluate(self.activation) {
            Ok(value) => Tri::from_bool(value),
            Err(message) => {
                self.errors.push(DecisionError {
                    kind: ErrorKind::Cel,
                    statement: Arc::clone(statement),
                    message,
                });
                Tri::Unknown
            }
        }
    }

    fn rule(
        &mut self,
        rule_id: RuleId,
        check_condition: bool,
        table: Option<&mut BTreeMap<Arc<str>, String>>,
    ) -> Tri {
        let snapshot = self.view.snapshot;
        let request = self.view.request;
        let rule = &snapshot.rules[rule_id];
        let in_scope =
            (rule.principals.is_empty() || rule.principals.contains(&request.principal.id))
                && (rule.roles.is_empty() || self.view.inherited().intersects(&rule.roles))
                && (rule.resources.is_empty()
                    || rule.resources.iter().any(|pattern| {
                        pattern.matches(&request.resource.kind, &request.resource.id)
                    }));
        let (outcome, label) = if !in_scope {
            (Tri::False, "not_matched")
        } else {
            match rule.condition.filter(|_| check_condition) {
                None => (Tri::True, "matched"),
                Some(condition) => match self.condition(condition, &rule.id) {
                    Tri::True => (Tri::True, "matched"),
                    Tri::False => (Tri::False, "condition_false"),
                    Tri::Unknown => (Tri::Unknown, "error"),
                },
            }
        };
        if let Some(table) = table {
            table.insert(Arc::clone(&rule.id), label.to_owned());
        }
        outcome
    }

    /// Evaluates a strategy's branches, skipping any branch already known to fail.
    fn strategy(&mut self, id: StrategyId) -> (Tri, StrategyOutcome) {
        let snapshot = self.view.snapshot;
        let strategy = &snapshot.strategies[id];
        let mut any_unknown = false;
        let mut held_branch = None;
        for branch in &strategy.branches {
            if self.known_to_fail(&branch.mask) {
                continue;
            }
            let mut state = Tri::True;
            for &factor in &branch.factors {
                match self.factor(factor) {
                    Tri::True => {}
                    Tri::False => {
                        state = Tri::False;
                        break;
                    }
                    Tri::Unknown => state = Tri::Unknown,
                }
            }
            match state {
                Tri::True => {
                    held_branch = Some(branch);
                    break;
                }
                Tri::Unknown => any_unknown = true,
                Tri::False => {}
            }
        }
        let name = |factor: &FactorId| Arc::clone(&snapshot.factors[*factor].name);
        match held_branch {
            Some(branch) => (
                Tri::True,
                StrategyOutcome {
                    id: Arc::clone(&strategy.name),
                    held: true,
                    branch: Some(branch.factors.iter().map(name).collect()),
                    failing: Vec::new(),
                    unknown: Vec::new(),
                },
            ),
            None => {
                let evaluated = |wanted_failed: bool| {
                    let mut names: Vec<Arc<str>> = strategy
                        .branches
                        .iter()
                        .flat_map(|branch| branch.factors.iter())
                        .filter(|factor| {
                            self.known.contains(**factor)
                                && !self.holds.contains(**factor)
                                && self.failed.contains(**factor) == wanted_failed
                        })
                        .map(name)
                        .collect();
                    names.sort();
                    names.dedup();
                    names
                };
                let (failing, unknown) = (evaluated(false), evaluated(true));
                (
                    if any_unknown {
                        Tri::Unknown
                    } else {
                        Tri::False
                    },
                    StrategyOutcome {
                        id: Arc::clone(&strategy.name),
                        held: false,
                        branch: None,
                        failing,
                        unknown,
                    },
                )
            }
        }
    }

    /// Whether some factor of `mask` is already known not to hold.
    fn known_to_fail(&self, mask: &BitSet) -> bool {
        mask.iter_intersection(&self.known)
            .any(|factor| !self.holds.contains(factor))
    }

    fn local_time(&self) -> Result<LocalTime, String> {
        self.local_time
            .get_or_init(|| {
                let time = self.view.request.context.time.ok_or_else(|| {
                    "the request has no context.time, which this factor needs".to_owned()
                })?;
                Ok(LocalTime::new(time, &self.view.snapshot.zone))
            })
            .clone()
    }

    /// Evaluates a factor at most once per decision; the result is after its direction.
    fn factor(&mut self, id: FactorId) -> Tri {
        if self.known.contains(id) {
            return if self.holds.contains(id) {
                Tri::True
            } else if self.failed.contains(id) {
                Tri::Unknown
            } else {
                Tri::False
            };
        }
        let snapshot = self.view.snapshot;
        let factor = &snapshot.factors[id];
        let request = self.view.request;
        let matched: Result<bool, String> = match &factor.kind {
            FactorTest::Ip { v4, v6 } => require_ip(request).map(|ip| ip_matches(ip, v4, v6)),
            FactorTest::Time { windows, weekdays } => self
                .local_time()
                .map(|local| window_matches(&local, windows, *weekdays)),
            FactorTest::Calendar { calendar, trading } => self.local_time().and_then(|local| {
                market_closed(&snapshot.calendars[*calendar], local.date, local.weekday)
                    .map(|closed| closed != *trading)
            }),
            FactorTest::Cert(allowed) => Ok(request
                .context
                .cert
                .as_ref()
                .is_some_and(|cert| cert_matches(cert, allowed))),
            FactorTest::Attr(expected) => Ok(expected
                .iter()
                .all(|(key, value)| self.view.principal_attribute(key) == Some(value))),
            FactorTest::Cel(condition) => {
                match snapshot.conditions[*condition].evaluate(self.activation) {
                    Ok(value) => Ok(value),
                    Err(message) => Err(format!("CEL: {message}")),
                }
            }
        };
        self.known.insert(id);
        match matched {
            Ok(matched) => {
                let holds = matched != factor.negative;
                if holds {
                    self.holds.insert(id);
                }
                Tri::from_bool(holds)
            }
            Err(message) => {
                self.failed.insert(id);
                self.errors.push(DecisionError {
                    kind: if matches!(factor.kind, FactorTest::Cel(_)) {
                        ErrorKind::Cel
                    } else {
                        ErrorKind::Factor
                    },
                    statement: Arc::clone(&factor.name),
                    message,
                });
                Tri::Unknown
            }
        }
    }
}

/// Several tenants' snapshots: decides for whichever tenant a request names.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    tenants: BTreeMap<TenantId, Arc<Snapshot>>,
    /// The tenants declaring each domain (lowercase), so that a tenant is found by the host a
    /// request was sent to without looking at every tenant.
    domains: FxHashMap<Box<str>, BTreeSet<TenantId>>,
}

impl PolicySet {
    /// An empty set (every decision is `tenant_unknown`).
    pub fn new() -> Self {
        PolicySet::default()
    }

    /// Removes a tenant; returns its snapshot if it had one.
    pub fn remove(&mut self, tenant: &TenantId) -> Option<Arc<Snapshot>> {
        let removed = self.tenants.remove(tenant)?;
        self.forget_domain(&removed);
        Some(removed)
    }

    /// Adds or replaces a tenant's snapshot.
    pub fn insert(&mut self, snapshot: Arc<Snapshot>) {
        if let Some(domain) = &snapshot.settings().domain {
            self.domains
                .entry(domain.to_ascii_lowercase().into())
                .or_default()
                .insert(snapshot.tenant().clone());
        }
        let tenant = snapshot.tenant().clone();
        if let Some(replaced) = self.tenants.insert(tenant, Arc::clone(&snapshot)) {
            let moved = replaced
                .settings()
                .domain
                .as_deref()
                .map(str::to_ascii_lowercase)
                != snapshot
                    .settings()
                    .domain
                    .as_deref()
                    .map(str::to_ascii_lowercase);
            if moved {
                self.forget_domain(&replaced);
            }
        }
    }

    fn forget_domain(&mut self, snapshot: &Snapshot) {
        let Some(domain) = &snapshot.settings().domain else {
            return;
        };
        let key = domain.to_ascii_lowercase();
        if let Some(tenants) = self.domains.get_mut(key.as_str()) {
            tenants.remove(snapshot.tenant());
            if tenants.is_empty() {
                self.domains.remove(key.as_str());
            }
        }
    }

    /// A tenant's snapshot.
    pub fn get(&self, tenant: &TenantId) -> Option<&Arc<Snapshot>> {
        self.tenants.get(tenant)
    }

    /// The tenant whose `domain` is `host` (ASCII case ignored, no port); of several declaring
    /// it, the first by tenant id.
    pub fn tenant_of_domain(&self, host: &str) -> Option<&TenantId> {
        let key = if host.bytes().any(|byte| byte.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(host.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(host)
        };
        self.domains.get(key.as_ref())?.first()
    }

    /// All snapshots, by tenant id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Snapshot>> {
        self.tenants.values()
    }

    /// How many tenants.
    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// Decides a request for the tenant it names; an unknown tenant is denied.
    pub fn decide(&self, request: &Request) -> Decision {
        match self.tenants.get(&request.tenant) {
            Some(snapshot) => decide(snapshot, request),
            None => refuse(request, &Arc::from("none"), Cause::TenantUnknown),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code: a failed setup step must fail the test"
    )]

    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const TENANT: &str = "tenant: acme\ntimezone: Asia/Shanghai\ndomain: acme.example\n";

    /// Conditions over every variable, so that decisions carry their values and errors.
    const POLICY: &str = r#"
roles:
  base: { permissions: ["doc:read"] }
  member:
    inherits: [base]
    permissions:
      - { permission: "doc:write", when: "resource.attributes.team == principal.attributes.team" }
      - { permission: "doc:tag", when: "'owner' in principal.roles || size(principal.roles) > 2 && 'a' in resource.attributes.tags" }
  owner:
    permissions:
      - { permission: "doc:delete", when: "principal.type == 'user' && resource.id == 'd1'" }
      - { permission: "app:run", when: "context.source == 'internal' || context.level > 2" }
rules:
  - id: props
    effect: permit
    actions: ["doc:read", "app:run"]
    when: "has(action.properties.ok) && action.write == false && tenant.domain == 'acme.example'"
  - id: risky
    effect: forbid
    actions: ["doc:write"]
    when: "env.supply_chain.high_risk || context.ip == '10.0.0.1'"
principals:
  alice:
    roles: [member, { role: owner, on: "doc:d1" }]
    attributes: { team: red, level: 3 }
  bob: { type: service, roles: [base, owner] }
  carol: { roles: [member] }
resources:
  "doc:d1": { attributes: { team: red, tags: [a, b] } }
  "doc:d2":
  "doc:d3": { attributes: { team: blue } }
"#;

    fn snapshot() -> &'static Snapshot {
        static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
        SNAPSHOT.get_or_init(|| {
            let mut bundle = crate::model::Bundle::default();
            let mut diagnostics = crate::diagnostic::Diagnostics::default();
            for (path, text) in [("acme/tenant.yaml", TENANT), ("acme/policy.yaml", POLICY)] {
                let file: Arc<std::path::Path> = Arc::from(std::path::Path::new(path));
                let root = crate::yaml::parse(text, &crate::yaml::YamlLimits::default()).unwrap();
                let tenant = path.ends_with("tenant.yaml");
                crate::decode::decode_file(
                    &mut bundle,
                    &file,
                    text,
                    &root,
                    tenant,
                    &mut diagnostics,
                );
            }
            let snapshot = crate::compile::compile(bundle, &[], &mut diagnostics);
            assert!(diagnostics.is_empty(), "{diagnostics:?}");
            snapshot.unwrap()
        })
    }

    /// Attribute maps: small, overlapping the bundle's keys, sometimes over an input limit.
    fn attributes() -> impl Strategy<Value = Value> {
        let value = prop_oneof![
            4 => prop_oneof![Just(json!("red")), Just(json!("blue")), Just(json!(3)), Just(json!(["a"]))],
            1 => Just(json!("x".repeat(portcullis_cel::limits::MAX_INPUT_STRING_BYTES + 1))),
            1 => Just(json!(vec![0; portcullis_cel::limits::MAX_INPUT_ITEMS + 1])),
        ];
        proptest::collection::btree_map(
            proptest::sample::select(&["team", "level", "tags", "ip", "source", "ok"][..]),
            value,
            0..3,
        )
        .prop_map(|entries| json!(entries))
    }

    fn requests() -> impl Strategy<Value = Request> {
        (
            (
                proptest::sample::select(&["alice", "bob", "carol", "dave"][..]),
                proptest::sample::select(&["user", "service"][..]),
                proptest::sample::subsequence(&["base", "owner", "ghost"][..], 0..3),
                attributes(),
            ),
            (
                proptest::sample::select(&["doc", "app"][..]),
                proptest::sample::select(&["d1", "d2", "d3", "d9", ""][..]),
                attributes(),
            ),
            proptest::sample::select(
                &["read", "write", "tag", "delete", "doc:write", "app:run", "purge"][..],
            ),
            attributes(),
            (
                proptest::option::of(Just("10.0.0.1")),
                proptest::option::of(Just("2026-03-02T10:00:00Z")),
                proptest::option::of(Just("internal")),
                any::<bool>(),
                attributes(),
            ),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(principal, resource, action, properties, context, high_risk, explain)| {
                    let mut context_json = json!({});
                    if let Some(ip) = context.0 {
                        context_json["ip"] = json!(ip);
                    }
                    if let Some(time) = context.1 {
                        context_json["time"] = json!(time);
                    }
                    if let Some(source) = context.2 {
                        context_json["source"] = json!(source);
                    }
                    if context.3 {
                        context_json["cert"] = json!({ "subject_cn": "svc", "serial": "0a" });
                    }
                    let mut request: Request = serde_json::from_value(json!({
                        "tenant": "acme",
                        "principal": {
                            "id": principal.0,
                            "type": principal.1,
                            "roles": principal.2,
                            "attributes": principal.3,
                        },
                        "action": action,
                        "action_properties": properties,
                        "resource": { "type": resource.0, "id": resource.1, "attributes": resource.2 },
                        "context": context_json,
                        "env": { "supply_chain": { "high_risk": high_risk } },
                        "explain": explain,
                    }))
                    .unwrap();
                    // Set directly, as an edge may: the keys may be those of the typed fields.
                    if let Value::Object(attributes) = context.4 {
                        request.context.attributes = attributes;
                    }
                    request
                },
            )
    }

    /// The variables as JSON, built the way decisions built them before they were built as
    /// CEL values directly: the reference the values must equal.
    fn reference(view: &View<'_>, name: &str) -> Option<Value> {
        let request = view.request;
        let mut principal_attributes = request.principal.attributes.clone();
        if let Some(entry) = view.principal {
            for (key, value) in &entry.attributes {
                principal_attributes.insert(key.clone(), value.clone());
            }
        }
        let mut resource_attributes = request.resource.attributes.clone();
        for (key, value) in view.declared_resource.into_iter().flatten() {
            resource_attributes.insert(key.clone(), value.clone());
        }
        Some(match name {
            "principal" => json!({
                "id": request.principal.id,
                "type": view.principal.and_then(|p| p.kind.clone()).unwrap_or_else(|| request.principal.kind.clone()),
                "roles": view.role_names().iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "attributes": principal_attributes,
            }),
            "resource" => json!({
                "type": request.resource.kind,
                "id": request.resource.id,
                "attributes": resource_attributes,
            }),
            "action" => json!({
                "name": view.action_name,
                "write": view.write,
                "properties": request.action_properties,
            }),
            "context" => {
                let mut context = request.context.attributes.clone();
                if let Some(ip) = request.context.ip {
                    context.insert("ip".into(), Value::String(ip.to_string()));
                }
                if let Some(time) = request.context.time {
                    context.insert("time".into(), Value::String(time.to_string()));
                }
                if let Some(source) = &request.context.source {
                    context.insert("source".into(), Value::String(source.clone()));
                }
                if let Some(cert) = &request.context.cert {
                    context.insert("cert".into(), serde_json::to_value(cert).unwrap());
                }
                Value::Object(context)
            }
            "tenant" => json!({
                "id": view.snapshot.tenant.as_str(),
                "timezone": view.snapshot.settings.timezone,
                "domain": view.snapshot.settings.domain,
            }),
            "env" => json!({ "supply_chain": { "high_risk": request.env.supply_chain.high_risk } }),
            _ => return None,
        })
    }

    fn as_value(input: &Input<'_>) -> portcullis_cel::Value {
        portcullis_cel::Value::try_from(&*input.as_val()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every variable a decision hands its conditions is the value, or the input error,
        /// of the JSON it stands for.
        #[test]
        fn variables_equal_their_json(request in requests()) {
            let snapshot = snapshot();
            let principal = snapshot.principals.get(&request.principal.id);
            let assigned = assigned_roles(snapshot, &request, principal);
            let action_name = qualified_action(&request.action, &request.resource.kind);
            let write = snapshot
                .actions
                .get(action_name.as_ref())
                .is_some_and(|entry| entry.write);
            let declared = declared_resource(snapshot, &request.resource);
            let view = View::new(
                snapshot,
                &request,
                principal,
                declared,
                &action_name,
                &assigned,
                write,
            );
            for name in crate::condition::VARIABLES.iter().chain(&["nothing"]) {
                let expected = reference(&view, name)
                    .map(|json| portcullis_cel::from_json(name, &json));
                let found = view
                    .variable(name)
                    .map(|value| value.as_ref().map(as_value).map_err(Clone::clone));
                prop_assert_eq!(found, expected, "{}", name);
            }
        }

        /// A decision lent a search's shared variable (and the resource's declared attributes)
        /// is the decision made without it, whether or not the variable is the decision's own.
        #[test]
        fn shared_variables_change_no_decision(template in requests(), other in requests()) {
            let snapshot = snapshot();
            let merged = [OnceLock::new(), OnceLock::new(), OnceLock::new(), OnceLock::new()];
            let shared = [
                Shared::principal(snapshot, &template, &merged[0]),
                Shared::resource(snapshot, &template, &merged[1]),
                Shared::principal(snapshot, &other, &merged[2]),
                Shared::resource(snapshot, &other, &merged[3]),
            ];
            let mut asks = vec![other.clone()];
            for action in ["read", "write", "tag", "delete", "app:run"] {
                let mut varied = template.clone();
                action.clone_into(&mut varied.action);
                for id in ["d1", "d2", "d3", "d9", ""] {
                    let mut ask = varied.clone();
                    id.clone_into(&mut ask.resource.id);
                    asks.push(ask);
                }
                for id in ["alice", "bob", "carol", "dave"] {
                    let mut ask = varied.clone();
                    id.clone_into(&mut ask.principal.id);
                    asks.push(ask);
                }
            }
            for ask in &asks {
                let expected = decide(snapshot, ask);
                // Given or not the resource's declared attributes, as a search gives them.
                let declared = declared_resource(snapshot, &ask.resource);
                for shared in &shared {
                    for declared in [None, Some(declared)] {
                        prop_assert_eq!(
                            &decide_sharing(snapshot, ask, Some(shared), declared),
                            &expected
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_search_lends_the_unchanging_variable() {
        let snapshot = snapshot();
        let template: Request = serde_json::from_value(json!({
            "tenant": "acme",
            "principal": { "id": "alice" },
            "action": "write",
            "resource": { "type": "doc", "id": "" },
        }))
        .unwrap();
        let merged = OnceLock::new();
        let shared = Shared::principal(snapshot, &template, &merged);
        let mut ask = template.clone();
        "d3".clone_into(&mut ask.resource.id);
        let assigned = assigned_roles(snapshot, &ask, snapshot.principals.get("alice"));
        let lent = shared.lend(snapshot, &ask, &assigned);
        assert!(matches!(lent, Some(("principal", Ok(_)))));
        // Alice's `owner` role on `doc:d1` changes her roles there: not lent.
        "d1".clone_into(&mut ask.resource.id);
        let assigned = assigned_roles(snapshot, &ask, snapshot.principals.get("alice"));
        assert!(shared.lend(snapshot, &ask, &assigned).is_none());
        // Another principal's variable is never lent.
        "carol".clone_into(&mut ask.principal.id);
        let assigned = assigned_roles(snapshot, &ask, snapshot.principals.get("carol"));
        assert!(shared.lend(snapshot, &ask, &assigned).is_none());
    }

    /// One snapshot per tenant (ten0..ten3) and domain (none, `a.example`, `A.Example`, `b.example`).
    fn domain_snapshots() -> &'static Vec<Vec<Arc<Snapshot>>> {
        static SNAPSHOTS: OnceLock<Vec<Vec<Arc<Snapshot>>>> = OnceLock::new();
        SNAPSHOTS.get_or_init(|| {
            (0..4)
                .map(|tenant| {
                    [
                        None,
                        Some("a.example"),
                        Some("A.Example"),
                        Some("b.example"),
                    ]
                    .into_iter()
                    .map(|domain| {
                        let mut text = format!("tenant: ten{tenant}\ntimezone: UTC\n");
                        if let Some(domain) = domain {
                            text.push_str(&format!("domain: {domain}\n"));
                        }
                        let mut bundle = crate::model::Bundle::default();
                        let mut diagnostics = crate::diagnostic::Diagnostics::default();
                        let file: Arc<std::path::Path> =
                            Arc::from(std::path::Path::new("t/tenant.yaml"));
                        let root =
                            crate::yaml::parse(&text, &crate::yaml::YamlLimits::default()).unwrap();
                        crate::decode::decode_file(
                            &mut bundle,
                            &file,
                            &text,
                            &root,
                            true,
                            &mut diagnostics,
                        );
                        let snapshot = crate::compile::compile(bundle, &[], &mut diagnostics);
                        assert!(diagnostics.is_empty(), "{diagnostics:?}");
                        Arc::new(snapshot.unwrap())
                    })
                    .collect()
                })
                .collect()
        })
    }

    proptest! {
        /// Finding a tenant by domain answers what looking at every tenant answers, through
        /// any sequence of snapshots added, replaced and removed.
        #[test]
        fn tenant_of_domain_equals_a_scan(
            steps in proptest::collection::vec((0usize..4, 0usize..4, any::<bool>()), 0..24),
        ) {
            let snapshots = domain_snapshots();
            let mut set = PolicySet::new();
            for (tenant, domain, insert) in steps {
                let snapshot = &snapshots[tenant][domain];
                if insert {
                    set.insert(Arc::clone(snapshot));
                } else {
                    set.remove(snapshot.tenant());
                }
                for host in ["a.example", "A.EXAMPLE", "b.example", "c.example"] {
                    let scanned = set.iter().find(|snapshot| {
                        snapshot
                            .settings()
                            .domain
                            .as_deref()
                            .is_some_and(|domain| domain.eq_ignore_ascii_case(host))
                    });
                    let found = set.tenant_of_domain(host);
                    prop_assert_eq!(
                        found.cloned(),
                        scanned.map(|snapshot| snapshot.tenant().clone()),
                        "host {}", host
                    );
                }
            }
        }
    }
}
