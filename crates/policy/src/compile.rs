//! From the bundle model to an immutable, fast-to-evaluate [`Snapshot`].
//!
//! Compilation resolves every reference (reporting unknown ones with their location), detects
//! role inheritance cycles, interns names to dense integer ids in sorted-name order (so nothing
//! depends on the order files or entries were written in), precomputes role closures and the
//! roles able to grant each action as bit sets, compiles address sets, windows, calendars and
//! CEL programs, and turns strategies into factor bit masks. The snapshot never changes after
//! this; swapping in a new one is the only way to change policy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use portcullis_core::{Effect, TenantId};
use rustc_hash::{FxHashMap, FxHashSet};
use sha2::{Digest, Sha256};

use crate::bits::BitSet;
use crate::condition::Condition;
use crate::diagnostic::{Code, Diagnostic, Diagnostics, Location, did_you_mean};
use crate::model::*;
use crate::variables::{action_variable, tenant_variable};

pub(crate) type FactorId = usize;
pub(crate) type RoleId = usize;
pub(crate) type StrategyId = usize;
pub(crate) type ConditionId = usize;
pub(crate) type RuleId = usize;
pub(crate) type CalendarId = usize;

/// What a decision reads: a compiled bundle, shared and never changed, plus the run-time data
/// laid over it (principals and role assignments managed in the store, suspension, the data
/// revision). A new overlay is a new snapshot that shares the compiled bundle.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(crate) compiled: Arc<Compiled>,
    /// The bundle's principals merged with the run-time ones (shadows `Compiled::principals`).
    pub(crate) principals: Arc<FxHashMap<String, PrincipalEntry>>,
    /// The ids of `principals` in order, sorted when a search first enumerates them.
    pub(crate) principal_order: Arc<OnceLock<Vec<Box<str>>>>,
    /// Suspended by the store (the bundle may also say so).
    pub(crate) suspended: bool,
    /// Revision of the run-time data, when the store provided some.
    pub(crate) data_revision: Option<u64>,
    /// The tenant's live relation index, when the bundle has a model.
    pub(crate) relations: Option<Arc<crate::relations::Relations>>,
}

impl std::ops::Deref for Snapshot {
    type Target = Compiled;
    fn deref(&self) -> &Compiled {
        &self.compiled
    }
}

/// A compiled tenant bundle: everything a decision needs from the bundle.
#[derive(Debug)]
pub struct Compiled {
    pub(crate) tenant: TenantId,
    pub(crate) settings: TenantSettings,
    pub(crate) zone: jiff::tz::TimeZone,
    pub(crate) revision: Arc<str>,
    pub(crate) factors: Vec<Factor>,
    pub(crate) strategies: Vec<Strategy>,
    pub(crate) roles: Roles,
    pub(crate) principals: Arc<FxHashMap<String, PrincipalEntry>>,
    /// Declared resources: per type, per id (in id order), their attributes.
    pub(crate) resources:
        FxHashMap<String, BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    pub(crate) actions: FxHashMap<String, ActionEntry>,
    pub(crate) wildcard_grants: Vec<(ActionPattern, Grant)>,
    pub(crate) wildcard_grant_index: ActionIndex,
    pub(crate) rule_index: ActionIndex,
    pub(crate) rules: Vec<Rule>,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) calendars: Vec<Calendar>,
    pub(crate) routes: Vec<Route>,
    pub(crate) tests: Vec<At<TestDef>>,
    pub(crate) model: Option<Arc<portcullis_rebac::Model>>,
    pub(crate) model_tuples: Arc<Vec<portcullis_rebac::Tuple>>,
    /// What the bundle may not mean as written, though it loads (see [`Snapshot::warnings`]).
    pub(crate) warnings: Vec<Diagnostic>,
    /// The `temporary_access` section, compiled; `None` when the bundle has none.
    pub(crate) temporary_access: Option<crate::access::TemporaryAccess>,
}

impl Snapshot {
    /// The tenant this snapshot decides for.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// `sha256:` hash of the normalized bundle.
    pub fn revision(&self) -> &Arc<str> {
        &self.revision
    }

    /// Tenant settings (status, time zone, domain, ...).
    pub fn settings(&self) -> &TenantSettings {
        &self.settings
    }

    /// Warnings: what loads but may not mean what it says. Today: action names whose verb
    /// holds a `:` (`record:read:all`), which a request naming the plain action (`read:all`)
    /// cannot reach, as a name with a `:` is taken as already qualified.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The bundle's test cases.
    pub fn tests(&self) -> &[At<TestDef>] {
        &self.tests
    }

    /// The bundle's `temporary_access` section, compiled; `None` when it has none (the
    /// tenant takes no requests for temporary access).
    pub fn temporary_access(&self) -> Option<&crate::access::TemporaryAccess> {
        self.temporary_access.as_ref()
    }

    /// The bundle's relationship model, if it has one.
    pub fn model(&self) -> Option<&Arc<portcullis_rebac::Model>> {
        self.model.as_ref()
    }

    /// The relationship tuples the bundle ships (validated against its model).
    pub fn bundle_tuples(&self) -> &[portcullis_rebac::Tuple] {
        &self.model_tuples
    }

    /// The live relation index decisions consult, if the bundle has a model.
    pub fn relations(&self) -> Option<&Arc<crate::relations::Relations>> {
        self.relations.as_ref()
    }

    /// This snapshot with another relation index (the server's, fed from the store).
    pub fn with_relations(&self, relations: Arc<crate::relations::Relations>) -> Snapshot {
        Snapshot {
            compiled: Arc::clone(&self.compiled),
            principals: Arc::clone(&self.principals),
            principal_order: Arc::clone(&self.principal_order),
            suspended: self.suspended,
            data_revision: self.data_revision,
            relations: Some(relations),
        }
    }

    /// Names of the factors, sorted.
    pub fn factor_names(&self) -> impl Iterator<Item = &str> {
        self.factors.iter().map(|factor| &*factor.name)
    }

    /// Names of the roles, sorted.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.names.iter().map(|name| &**name)
    }

    /// The roles `role` inherits, directly or not (including itself), sorted; `None` if the
    /// role does not exist.
    pub fn role_closure(&self, role: &str) -> Option<Vec<&str>> {
        let id = *self.roles.index.get(role)?;
        Some(
            self.roles.closure[id]
                .iter()
                .map(|r| &*self.roles.names[r])
                .collect(),
        )
    }
}

/// Snapshots are shared across threads behind `Arc` and swapped atomically.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Snapshot>();
};

#[derive(Debug)]
pub(crate) struct Factor {
    pub name: Arc<str>,
    pub negative: bool,
    pub kind: FactorTest,
}

#[derive(Debug)]
pub(crate) enum FactorTest {
    Ip {
        v4: Vec<(u32, u32)>,
        v6: Vec<(u128, u128)>,
    },
    Time {
        windows: Vec<Window>,
        weekdays: Weekdays,
    },
    Calendar {
        calendar: CalendarId,
        trading: bool,
    },
    Cert(Vec<CertMatcher>),
    Attr(Vec<(String, serde_json::Value)>),
    Cel(ConditionId),
}

#[derive(Debug)]
pub(crate) struct Calendar {
    pub name: Arc<str>,
    pub closed_weekdays: Weekdays,
    pub closed_dates: Vec<jiff::civil::Date>,
    pub open_days: Vec<jiff::civil::Date>,
    pub valid_from: Option<jiff::civil::Date>,
    pub valid_until: Option<jiff::civil::Date>,
}

#[derive(Debug)]
pub(crate) struct Strategy {
    pub name: Arc<str>,
    pub branches: Vec<Branch>,
    /// The estimated cost of evaluating every CEL factor the strategy names.
    pub cost: u64,
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub factors: Vec<FactorId>,
    pub mask: BitSet,
}

#[derive(Debug, Default)]
pub(crate) struct Roles {
    pub names: Vec<Arc<str>>,
    pub index: FxHashMap<String, RoleId>,
    /// Roles each role has the permissions of (itself included).
    pub closure: Vec<BitSet>,
    /// Roles that have each role's permissions (itself included): the inverse of `closure`.
    pub holders: Vec<BitSet>,
    /// The roles each role inherits directly, in id order.
    pub edges: Vec<Vec<RoleId>>,
}

impl Roles {
    /// The shortest inheritance path from `from` to `to`, both included; `None` when `from`
    /// does not inherit `to`. Among paths of equal length, the one through roles of smaller
    /// ids (earlier names) wins. Found when a decision needs it (an allowing role grant),
    /// searching only roles that inherit `to`, so it costs at most one step per such role;
    /// storing every path instead grows with the cube of an inheritance chain's length.
    pub fn path(&self, from: RoleId, to: RoleId) -> Option<Vec<RoleId>> {
        if !self.closure.get(from)?.contains(to) {
            return None;
        }
        // Breadth-first; `visited` holds each role reached with the index of the entry it was
        // reached from, so the path is read back from the last entry.
        let mut visited: Vec<(RoleId, usize)> = vec![(from, usize::MAX)];
        let mut seen = BitSet::new();
        seen.insert(from);
        let mut next = 0;
        while next < visited.len() {
            let (role, _) = visited[next];
            if role == to {
                let mut path = Vec::new();
                let mut at = next;
                while at != usize::MAX {
                    path.push(visited[at].0);
                    at = visited[at].1;
                }
                path.reverse();
                return Some(path);
            }
            for &parent in &self.edges[role] {
                if !seen.contains(parent) && self.closure[parent].contains(to) {
                    seen.insert(parent);
                    visited.push((parent, next));
                }
            }
            next += 1;
        }
        None
    }
}

/// A permission of a role: whoever holds the role (`Roles::holders`) may, under the condition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant {
    pub role: RoleId,
    pub condition: Option<ConditionId>,
}

#[derive(Debug, Clone)]
pub(crate) struct PrincipalEntry {
    pub id: Arc<str>,
    pub kind: Option<String>,
    pub global: BitSet,
    pub scoped: Vec<(ResourcePattern, RoleId)>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Approved temporary grants of this principal (run-time data), in no particular order.
    pub grants: Vec<Arc<crate::access::TemporaryGrant>>,
}

#[derive(Debug, Clone)]
pub(crate) struct ActionEntry {
    pub write: bool,
    /// The relation on the resource that grants the action.
    pub relation: Option<Arc<str>>,
    pub strategy: Option<StrategyId>,
    pub grants: Vec<Grant>,
    /// Rules covering the action, each with whether its condition must be evaluated (a
    /// condition decided at compile time to be true for this action is not).
    pub rules: Vec<(RuleId, bool)>,
    /// Rules covering the action whose condition is false for it whatever the request (shown
    /// in explanations only).
    pub static_false: Vec<RuleId>,
    /// The most CEL cost units a decision on the action can spend on its grants', rules' and
    /// strategy's conditions (estimates, not capped by the decision budget).
    pub cost: u64,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub id: Arc<str>,
    pub effect: Effect,
    pub actions: Vec<ActionPattern>,
    pub resources: Vec<ResourcePattern>,
    pub principals: FxHashSet<String>,
    pub roles: BitSet,
    pub condition: Option<ConditionId>,
}

#[derive(Debug)]
pub(crate) struct Route {
    pub methods: BTreeSet<String>,
    pub path: String,
    pub segments: Vec<PathSegment>,
    pub action: String,
    pub resource: String,
    pub strategy: Option<StrategyId>,
}

impl ActionPattern {
    /// Whether the pattern matches the action `kind:verb`.
    pub fn matches(&self, kind: &str, verb: &str) -> bool {
        self.kind.matches(kind) && self.verb.matches(verb)
    }
}

/// The estimated cost of the CEL factors a strategy names (each is evaluated at most once).
fn strategy_cost(strategy: &Strategy, factors: &[Factor], conditions: &[Condition]) -> u64 {
    let mut named = BitSet::new();
    for branch in &strategy.branches {
        named.union_with(&branch.mask);
    }
    named
        .iter()
        .filter_map(|factor| match factors.get(factor).map(|f| &f.kind) {
            Some(FactorTest::Cel(condition)) => Some(conditions[*condition].estimated_cost()),
            _ => None,
        })
        .fold(0, u64::saturating_add)
}

/// The estimated cost of every condition a decision on the action may evaluate.
pub(crate) fn action_cost(
    entry: &ActionEntry,
    rules: &[Rule],
    strategies: &[Strategy],
    conditions: &[Condition],
) -> u64 {
    let grants = entry
        .grants
        .iter()
        .filter_map(|grant| grant.condition)
        .map(|condition| conditions[condition].estimated_cost());
    let rules = entry
        .rules
        .iter()
        .filter(|(_, evaluated)| *evaluated)
        .filter_map(|(rule, _)| rules[*rule].condition)
        .map(|condition| conditions[condition].estimated_cost());
    let strategy = entry.strategy.map(|strategy| strategies[strategy].cost);
    grants
        .chain(rules)
        .chain(strategy)
        .fold(0, u64::saturating_add)
}

/// Action patterns indexed by what they fix: the whole name, the type only, the verb only, or
/// neither. Each entry carries the index of what it belongs to (a grant, a rule).
#[derive(Debug, Default)]
pub(crate) struct ActionIndex {
    exact: FxHashMap<(String, String), Vec<usize>>,
    by_kind: FxHashMap<String, Vec<usize>>,
    by_verb: FxHashMap<String, Vec<usize>>,
    any: Vec<usize>,
}

impl ActionIndex {
    pub(crate) fn new<'a>(entries: impl Iterator<Item = (usize, &'a ActionPattern)>) -> Self {
        let mut index = ActionIndex::default();
        for (owner, pattern) in entries {
            match (&pattern.kind, &pattern.verb) {
                (Segment::Is(kind), Segment::Is(verb)) => index
                    .exact
                    .entry((kind.clone(), verb.clone()))
                    .or_default()
                    .push(owner),
                (Segment::Is(kind), Segment::Any) => {
                    index.by_kind.entry(kind.clone()).or_default().push(owner)
                }
                (Segment::Any, Segment::Is(verb)) => {
                    index.by_verb.entry(verb.clone()).or_default().push(owner)
                }
                (Segment::Any, Segment::Any) => index.any.push(owner),
            }
        }
        index
    }

    /// The verbs of the patterns written for any resource type (`*:verb`).
    pub(crate) fn verbs_on_any_type(&self) -> impl Iterator<Item = String> + '_ {
        self.by_verb.keys().cloned()
    }

    /// The owners of the patterns that match `kind:verb`, in increasing order, each once.
    pub(crate) fn matching(&self, kind: &str, verb: &str) -> Vec<usize> {
        let mut found: Vec<usize> = self
            .exact
            .get(&(kind.to_owned(), verb.to_owned()))
            .into_iter()
            .chain(self.by_kind.get(kind))
            .chain(self.by_verb.get(verb))
            .chain(std::iter::once(&self.any))
            .flatten()
            .copied()
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// Orders routes: a larger key is more specific.
fn route_specificity(segments: &[PathSegment]) -> Vec<u8> {
    let mut key: Vec<u8> = segments
        .iter()
        .map(|segment| match segment {
            PathSegment::Literal(_) => 3,
            PathSegment::Param(_) => 2,
            PathSegment::Rest => 1,
        })
        .collect();
    if !matches!(segments.last(), Some(PathSegment::Rest)) {
        key.push(4);
    }
    key
}

struct Compiler<'a> {
    diagnostics: &'a mut Diagnostics,
    conditions: Vec<Condition>,
}

impl Compiler<'_> {
    fn unknown(&mut self, reference: &At<String>, kind: &str, known: &[&str]) {
        let mut diagnostic = Diagnostic::new(
            reference.location.clone(),
            Code::UnknownReference,
            format!("unknown {kind} `{}`", reference.value),
        );
        diagnostic = match did_you_mean(&reference.value, known.iter().copied()) {
            Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
            None if known.is_empty() => {
                diagnostic.with_help(format!("the bundle defines no {}", plural(kind)))
            }
            None => {
                let mut listed: Vec<&str> = known.iter().copied().take(12).collect();
                if known.len() > 12 {
                    listed.push("...");
                }
                diagnostic.with_help(format!("known {}: {}", plural(kind), listed.join(", ")))
            }
        };
        self.diagnostics.push(diagnostic);
    }

    fn condition(&mut self, source: &CelSource) -> Option<ConditionId> {
        match Condition::compile(&source.text) {
            Ok(condition) => {
                self.conditions.push(condition);
                Some(self.conditions.len() - 1)
            }
            Err(errors) => {
                for error in errors {
                    let location = source.locate(error.line, error.column);
                    let (message, help) = match error.kind {
                        portcullis_cel::CompileErrorKind::Cost => (
                            format!(
                                "the condition is too costly (at {}:{} of the expression): {}",
                                error.line, error.column, error.message
                            ),
                            "the README's \"Conditions\" section explains how cost is estimated and limited",
                        ),
                        _ => (
                            format!(
                                "invalid CEL at {}:{} of the expression: {}",
                                error.line, error.column, error.message
                            ),
                            "conditions are CEL expressions over principal, resource, action, context, tenant and env",
                        ),
                    };
                    self.diagnostics
                        .push(Diagnostic::new(location, Code::Cel, message).with_help(help));
                }
                None
            }
        }
    }
}

fn plural(kind: &str) -> String {
    match kind.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{kind}s"),
    }
}

/// Compiles a decoded bundle. Problems go to `diagnostics`; the snapshot is returned only when
/// there were none (including those found before compilation).
pub(crate) fn compile(
    mut bundle: Bundle,
    model_files: &[&SourceFile],
    diagnostics: &mut Diagnostics,
) -> Option<Snapshot> {
    // Nothing is compiled for a bundle over the limits: what follows is sized by them.
    let before = diagnostics.len();
    crate::limits::check(&bundle, diagnostics);
    if diagnostics.len() > before {
        return None;
    }
    let model = crate::relations::resolve_model(&mut bundle, model_files, diagnostics);
    let model_tuples = crate::relations::bundle_tuples(model.as_deref(), &bundle, diagnostics);
    for (name, def) in &bundle.actions {
        if let Some(relation) = &def.value.relation {
            crate::relations::check_action_relation(
                name,
                relation,
                model.as_deref(),
                bundle.model.is_some(),
                diagnostics,
            );
        }
    }
    let revision = revision_of(&bundle);
    let mut compiler = Compiler {
        diagnostics,
        conditions: Vec::new(),
    };

    let zone = jiff::tz::TimeZone::get(&bundle.tenant.timezone).unwrap_or(jiff::tz::TimeZone::UTC);

    // Calendars.
    let calendar_names: Vec<&str> = bundle.calendars.keys().map(String::as_str).collect();
    let calendars: Vec<Calendar> = bundle
        .calendars
        .iter()
        .map(|(name, def)| {
            let mut closed: Vec<jiff::civil::Date> = def
                .value
                .holidays
                .iter()
                .chain(&def.value.closures)
                .copied()
                .collect();
            closed.sort();
            closed.dedup();
            Calendar {
                name: Arc::from(name.as_str()),
                closed_weekdays: def.value.closed_weekdays,
                closed_dates: closed,
                open_days: def.value.open_days.iter().copied().collect(),
                valid_from: def.value.valid_from,
                valid_until: def.value.valid_until,
            }
        })
        .collect();

    // Factors.
    let factor_names: Vec<&str> = bundle.factors.keys().map(String::as_str).collect();
    let mut factors = Vec::with_capacity(bundle.factors.len());
    for (name, def) in &bundle.factors {
        let kind = match &def.value.kind {
            FactorKind::Ip(patterns) => {
                let mut v4 = Vec::new();
                let mut v6 = Vec::new();
                for pattern in patterns {
                    match *pattern {
                        IpPattern::V4 { value, mask } => v4.push((value, mask)),
                        IpPattern::V6 { value, mask } => v6.push((value, mask)),
                    }
                }
                FactorTest::Ip { v4, v6 }
            }
            FactorKind::TimeWindow { windows, weekdays } => FactorTest::Time {
                windows: windows.iter().copied().collect(),
                weekdays: *weekdays,
            },
            FactorKind::TradingDay(calendar) | FactorKind::Holiday(calendar) => {
                let trading = matches!(def.value.kind, FactorKind::TradingDay(_));
                match calendar_names.binary_search(&calendar.value.as_str()) {
                    Ok(index) => FactorTest::Calendar {
                        calendar: index,
                        trading,
                    },
                    Err(_) => {
                        compiler.unknown(calendar, "calendar", &calendar_names);
                        continue;
                    }
                }
            }
            FactorKind::ClientCert(matchers) => {
                FactorTest::Cert(matchers.iter().cloned().collect())
            }
            FactorKind::PrincipalAttr(attributes) => FactorTest::Attr(
                attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            FactorKind::Cel(source) => match compiler.condition(source) {
                Some(id) => FactorTest::Cel(id),
                None => continue,
            },
        };
        factors.push(Factor {
            name: Arc::from(name.as_str()),
            negative: def.value.direction == Direction::Negative,
            kind,
        });
    }

    // Strategies.
    let strategy_names: Vec<&str> = bundle.strategies.keys().map(String::as_str).collect();
    let mut strategies = Vec::with_capacity(bundle.strategies.len());
    for (name, def) in &bundle.strategies {
        let mut branches = Vec::new();
        for branch in &def.value.branches {
            let mut ids = Vec::with_capacity(branch.len());
            for factor in branch {
                match factor_names.binary_search(&factor.value.as_str()) {
                    Ok(id) => ids.push(id),
                    Err(_) => compiler.unknown(factor, "factor", &factor_names),
                }
            }
            ids.sort_unstable();
            let mask = ids.iter().copied().collect();
            branches.push(Branch { factors: ids, mask });
        }
        // Shorter branches first: they settle sooner. Ties by factor ids keep it canonical.
        branches.sort_by(|a, b| (a.factors.len(), &a.factors).cmp(&(b.factors.len(), &b.factors)));
        strategies.push(Strategy {
            name: Arc::from(name.as_str()),
            branches,
            cost: 0,
        });
    }
    let lookup_strategy =
        |compiler: &mut Compiler<'_>, reference: &At<String>| -> Option<StrategyId> {
            match strategy_names.binary_search(&reference.value.as_str()) {
                Ok(id) => Some(id),
                Err(_) => {
                    compiler.unknown(reference, "strategy", &strategy_names);
                    None
                }
            }
        };

    // Roles.
    let roles = compile_roles(&bundle, &mut compiler);
    let role_names: Vec<&str> = bundle.roles.keys().map(String::as_str).collect();
    let lookup_role = |compiler: &mut Compiler<'_>, reference: &At<String>| -> Option<RoleId> {
        match roles.index.get(&reference.value) {
            Some(id) => Some(*id),
            None => {
                compiler.unknown(reference, "role", &role_names);
                None
            }
        }
    };

    // Permissions, grouped into exact-action grants and wildcard grants.
    let mut exact_grants: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    let mut wildcard_grants: Vec<(ActionPattern, Grant)> = Vec::new();
    for (role_id, (_, def)) in bundle.roles.iter().enumerate() {
        for permission in &def.value.permissions {
            let condition = match &permission.when {
                Some(source) => match compiler.condition(source) {
                    Some(id) => Some(id),
                    None => continue,
                },
                None => None,
            };
            let grant = Grant {
                role: role_id,
                condition,
            };
            let pattern = &permission.pattern.value;
            match (&pattern.kind, &pattern.verb) {
                (Segment::Is(kind), Segment::Is(verb)) => {
                    exact_grants
                        .entry(format!("{kind}:{verb}"))
                        .or_default()
                        .push(grant);
                }
                _ => wildcard_grants.push((pattern.clone(), grant)),
            }
        }
    }

    // Temporary access: holders of an approver role may approve, reject and revoke requests, as any
    // permission of theirs (so forbids and strategies on these actions apply to approvers).
    let temporary_access = bundle.temporary_access.as_ref().map(|section| {
        let mut approvers = Vec::with_capacity(section.value.approvers.len());
        for role in &section.value.approvers {
            let Some(role_id) = lookup_role(&mut compiler, role) else {
                continue;
            };
            approvers.push(Arc::clone(&roles.names[role_id]));
            for action in [
                crate::access::APPROVE_ACTION,
                crate::access::REJECT_ACTION,
                crate::access::REVOKE_ACTION,
            ] {
                let grants = exact_grants.entry(action.to_owned()).or_default();
                if !grants
                    .iter()
                    .any(|g| g.role == role_id && g.condition.is_none())
                {
                    grants.push(Grant {
                        role: role_id,
                        condition: None,
                    });
                }
            }
        }
        approvers.sort();
        approvers.dedup();
        crate::access::TemporaryAccess {
            approvers,
            approvals_required: section.value.approvals_required,
            max_window_secs: section.value.max_window_secs,
        }
    });

    // Rules.
    let mut rules = Vec::with_capacity(bundle.rules.len());
    for (id, def) in &bundle.rules {
        let mut role_set = BitSet::new();
        for role in &def.value.roles {
            if let Some(role_id) = lookup_role(&mut compiler, role) {
                role_set.insert(role_id);
            }
        }
        let condition = match &def.value.when {
            Some(source) => match compiler.condition(source) {
                Some(condition) => Some(condition),
                None => continue,
            },
            None => None,
        };
        rules.push(Rule {
            id: Arc::from(id.as_str()),
            effect: def.value.effect,
            actions: def.value.actions.iter().cloned().collect(),
            resources: def.value.resources.iter().cloned().collect(),
            principals: def.value.principals.iter().cloned().collect(),
            roles: role_set,
            condition,
        });
    }

    // Principals.
    let mut principals = FxHashMap::default();
    for (id, def) in &bundle.principals {
        let mut global = BitSet::new();
        let mut scoped = Vec::new();
        for assignment in &def.value.roles {
            let Some(role) = lookup_role(&mut compiler, &assignment.role) else {
                continue;
            };
            match &assignment.on {
                None => global.insert(role),
                Some(pattern) => scoped.push((pattern.clone(), role)),
            }
        }
        principals.insert(
            id.clone(),
            PrincipalEntry {
                id: Arc::from(id.as_str()),
                kind: def.value.kind.clone(),
                global,
                scoped,
                attributes: def.value.attributes.clone().into_iter().collect(),
                grants: Vec::new(),
            },
        );
    }

    // Resources, by type and id.
    let mut resources: FxHashMap<
        String,
        BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    > = FxHashMap::default();
    for (name, def) in &bundle.resources {
        match crate::values::parse_resource_name(name) {
            Ok((kind, id)) => {
                resources.entry(kind.to_owned()).or_default().insert(
                    id.to_owned(),
                    def.value.attributes.clone().into_iter().collect(),
                );
            }
            Err(problem) => compiler.diagnostics.push(
                Diagnostic::new(
                    def.location.clone(),
                    Code::Pattern,
                    format!("bad resource name `{name}`: {problem}"),
                )
                .with_help("resources are named type:id, e.g. record:record-2"),
            ),
        }
    }

    // Actions: every action named anywhere gets an entry with its grants and rules resolved.
    let mut action_names: BTreeSet<String> = bundle.actions.keys().cloned().collect();
    action_names.extend(exact_grants.keys().cloned());
    for rule in &rules {
        for pattern in &rule.actions {
            if let (Segment::Is(kind), Segment::Is(verb)) = (&pattern.kind, &pattern.verb) {
                action_names.insert(format!("{kind}:{verb}"));
            }
        }
    }
    for route in &bundle.routes {
        action_names.insert(route.value.action.clone());
    }
    // Wildcard permissions and rules, indexed by the part of the action they name, so that
    // resolving an action costs what it finds rather than a scan of every pattern.
    let grant_index = ActionIndex::new(
        wildcard_grants
            .iter()
            .enumerate()
            .map(|(index, (pattern, _))| (index, pattern)),
    );
    let rule_index = ActionIndex::new(
        rules
            .iter()
            .enumerate()
            .flat_map(|(index, rule)| rule.actions.iter().map(move |pattern| (index, pattern))),
    );
    let mut resolved = 0usize;
    let mut actions = FxHashMap::default();
    for name in action_names {
        let def = bundle.actions.get(&name);
        if let Some(def) = def
            && let Err(problem) = crate::values::parse_action_pattern(&name).and_then(|pattern| {
                if pattern.kind == Segment::Any || pattern.verb == Segment::Any {
                    Err("an action name has no wildcard".to_owned())
                } else {
                    Ok(())
                }
            })
        {
            compiler.diagnostics.push(
                Diagnostic::new(
                    def.location.clone(),
                    Code::Pattern,
                    format!("bad action name `{name}`: {problem}"),
                )
                .with_help("actions are named resource_type:action, e.g. app:release"),
            );
            continue;
        }
        let strategy = def
            .and_then(|def| def.value.strategy.as_ref())
            .and_then(|reference| lookup_strategy(&mut compiler, reference));
        let (kind, verb) = crate::model::split_action(&name);
        let mut grants = exact_grants.remove(&name).unwrap_or_default();
        grants.extend(
            grant_index
                .matching(kind, verb)
                .into_iter()
                .map(|index| wildcard_grants[index].1),
        );
        let rule_ids: Vec<(RuleId, bool)> = rule_index
            .matching(kind, verb)
            .into_iter()
            .map(|rule| (rule, true))
            .collect();
        resolved += grants.len() + rule_ids.len();
        if resolved > crate::limits::MAX_RESOLVED_PAIRS {
            let location = def
                .map(|def| def.location.clone())
                .unwrap_or_else(|| Location::file(&bundle.root));
            compiler.diagnostics.push(crate::limits::over_limit(
                &location,
                "permissions and rules resolved for the bundle's actions (wildcards count once per action they cover)",
                resolved,
                crate::limits::MAX_RESOLVED_PAIRS,
            ));
            return None;
        }
        actions.insert(
            name.clone(),
            ActionEntry {
                write: def.is_some_and(|def| def.value.write),
                relation: def
                    .and_then(|def| def.value.relation.as_ref())
                    .map(|relation| Arc::from(relation.value.as_str())),
                strategy,
                grants,
                rules: rule_ids,
                static_false: Vec::new(),
                cost: 0,
            },
        );
    }
    if let Some(tenant) = &bundle.tenant.id {
        settle_static_conditions(
            &mut actions,
            &rules,
            &compiler.conditions,
            tenant,
            &bundle.tenant,
        );
    }
    for strategy in &mut strategies {
        strategy.cost = strategy_cost(strategy, &factors, &compiler.conditions);
    }
    for entry in actions.values_mut() {
        entry.cost = action_cost(entry, &rules, &strategies, &compiler.conditions);
    }

    // Routes: most specific first.
    let mut routes: Vec<Route> = Vec::with_capacity(bundle.routes.len());
    for route in &bundle.routes {
        let strategy = route
            .value
            .strategy
            .as_ref()
            .and_then(|reference| lookup_strategy(&mut compiler, reference));
        if route.value.strategy.is_some() && strategy.is_none() {
            continue;
        }
        routes.push(Route {
            methods: route.value.methods.clone(),
            path: route.value.path.clone(),
            segments: route.value.segments.clone(),
            action: route.value.action.clone(),
            resource: route.value.resource.clone(),
            strategy,
        });
    }
    routes.sort_by(|a, b| {
        route_specificity(&b.segments)
            .cmp(&route_specificity(&a.segments))
            .then_with(|| a.path.cmp(&b.path))
            .then_with(|| a.methods.cmp(&b.methods))
    });

    if !compiler.diagnostics.is_empty() {
        return None;
    }
    let tenant = bundle.tenant.id.clone()?;
    let warnings = ambiguous_actions(&bundle);
    let Compiler { conditions, .. } = compiler;
    let principals = Arc::new(principals);
    let compiled = Compiled {
        tenant,
        settings: bundle.tenant,
        zone,
        revision,
        factors,
        strategies,
        roles,
        principals,
        resources,
        actions,
        wildcard_grants,
        wildcard_grant_index: grant_index,
        rule_index,
        rules,
        conditions,
        calendars,
        routes,
        tests: bundle.tests,
        model_tuples: Arc::new(model_tuples),
        model,
        warnings,
        temporary_access,
    };
    let relations = match &compiled.model {
        Some(model) => {
            let graph = portcullis_rebac::Graph::build(
                Arc::clone(model),
                compiled.model_tuples.iter().cloned(),
            )
            .ok()?;
            Some(crate::relations::Relations::new(graph, 0))
        }
        None => None,
    };
    Some(Snapshot {
        principals: Arc::clone(&compiled.principals),
        principal_order: Arc::default(),
        compiled: Arc::new(compiled),
        suspended: false,
        data_revision: None,
        relations,
    })
}

/// Warnings for action names whose verb holds a `:`: a plain request name is qualified by the
/// resource type only when it holds no `:`, so `record:read:all` cannot be asked for as
/// `read:all` (that is taken as type `read`, verb `all`).
fn ambiguous_actions(bundle: &Bundle) -> Vec<Diagnostic> {
    let mut found: BTreeMap<String, Location> = BTreeMap::new();
    let mut note = |text: &str, location: &Location| {
        if let Some((_, verb)) = text.split_once(':')
            && verb.contains(':')
        {
            found
                .entry(text.to_owned())
                .or_insert_with(|| location.clone());
        }
    };
    for (name, def) in &bundle.actions {
        note(name, &def.location);
    }
    for def in bundle.roles.values() {
        for permission in &def.value.permissions {
            note(&permission.pattern.value.text, &permission.pattern.location);
        }
    }
    for def in bundle.rules.values() {
        for pattern in &def.value.actions {
            note(&pattern.text, &def.location);
        }
    }
    for route in &bundle.routes {
        note(&route.value.action, &route.location);
    }
    found
        .into_iter()
        .map(|(name, location)| {
            let (kind, verb) = name.split_once(':').unwrap_or_default();
            Diagnostic::new(
                location,
                Code::AmbiguousAction,
                format!(
                    "action `{name}` has a `:` in its verb: a request naming the plain action `{verb}` on a `{kind}` is read as type `{}`, not as `{name}`",
                    verb.split(':').next().unwrap_or_default()
                ),
            )
            .with_help(format!(
                "keep verbs free of `:` (`{kind}:{}`) or always name this action in full",
                verb.replace(':', "-")
            ))
        })
        .collect()
}

/// Decides, per action, the conditions that depend only on the action and the tenant (for
/// example `action.write && env.supply_chain.high_risk` on a read action), so that decisions do
/// not evaluate them: a grant or rule whose condition is false for the action is dropped from
/// it, a condition that is true for it is not evaluated.
fn settle_static_conditions(
    actions: &mut FxHashMap<String, ActionEntry>,
    rules: &[Rule],
    conditions: &[Condition],
    tenant: &TenantId,
    settings: &TenantSettings,
) {
    struct Fixed<'a> {
        action: &'a str,
        write: bool,
        properties: &'a serde_json::Map<String, serde_json::Value>,
        tenant: &'a TenantId,
        settings: &'a TenantSettings,
    }
    impl crate::condition::VariableSource for Fixed<'_> {
        fn variable(
            &self,
            name: &str,
        ) -> Option<Result<portcullis_cel::Input<'_>, portcullis_cel::InputError>> {
            match name {
                "action" => Some(action_variable(self.action, self.write, self.properties)),
                "tenant" => Some(tenant_variable(self.tenant, self.settings)),
                _ => None,
            }
        }
    }
    // The action's name and write flag are fixed per action; its properties come with each
    // request.
    const FIXED: crate::condition::Provided<'static> = crate::condition::Provided {
        whole: &["tenant"],
        fields: &[("action", crate::variables::SETTLED_ACTION_FIELDS)],
    };
    let no_properties = serde_json::Map::new();
    // Only conditions with a conjunct over the fixed variables alone can be settled; the rest
    // are not evaluated here at all. Those that can share one budget for the whole bundle:
    // once it is spent, what is left is decided per request, as without this step.
    let settleable: Vec<bool> = conditions
        .iter()
        .map(|condition| condition.settleable(&FIXED))
        .collect();
    let budget = portcullis_cel::Budget::new(portcullis_cel::limits::EVALUATION_BUDGET * 10);
    let settle = |condition: ConditionId, fixed: &Fixed| -> Option<bool> {
        if settleable[condition] {
            conditions[condition].static_value(fixed, &FIXED, &budget)
        } else {
            None
        }
    };
    for (name, entry) in actions.iter_mut() {
        let fixed = Fixed {
            action: name,
            write: entry.write,
            properties: &no_properties,
            tenant,
            settings,
        };
        entry.grants.retain_mut(|grant| {
            let Some(condition) = grant.condition else {
                return true;
            };
            match settle(condition, &fixed) {
                Some(false) => false,
                Some(true) => {
                    grant.condition = None;
                    true
                }
                None => true,
            }
        });
        let mut kept = Vec::with_capacity(entry.rules.len());
        for &(rule, _) in &entry.rules {
            match rules[rule]
                .condition
                .map(|condition| settle(condition, &fixed))
            {
                Some(Some(false)) => entry.static_false.push(rule),
                Some(Some(true)) => kept.push((rule, false)),
                _ => kept.push((rule, true)),
            }
        }
        entry.rules = kept;
    }
}

/// `sha256:` over the canonical JSON of the bundle (sorted maps and sets, no locations, no
/// tests): two bundles with the same meaning have the same revision whatever their layout.
/// The model's own maps are `BTreeMap`s; the JSON attribute values inside it are written with
/// sorted keys by `model::canonical`, whatever order `serde_json` keeps them in.
fn revision_of(bundle: &Bundle) -> Arc<str> {
    let mut hasher = Sha256::new();
    // Writing into a hasher cannot fail, and the model serializes without errors.
    let _ = serde_json::to_writer(HashWriter(&mut hasher), bundle);
    Arc::from(format!("sha256:{}", hex::encode(hasher.finalize())))
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn compile_roles(bundle: &Bundle, compiler: &mut Compiler<'_>) -> Roles {
    let names: Vec<Arc<str>> = bundle
        .roles
        .keys()
        .map(|name| Arc::from(name.as_str()))
        .collect();
    let index: FxHashMap<String, RoleId> = bundle
        .roles
        .keys()
        .enumerate()
        .map(|(id, name)| (name.clone(), id))
        .collect();
    let known: Vec<&str> = bundle.roles.keys().map(String::as_str).collect();
    // Direct inheritance edges, sorted (BTreeSet order) so paths are canonical.
    let mut edges: Vec<Vec<RoleId>> = Vec::with_capacity(names.len());
    for def in bundle.roles.values() {
        let mut targets = Vec::new();
        for parent in &def.value.inherits {
            match index.get(&parent.value) {
                Some(id) => targets.push(*id),
                None => compiler.unknown(parent, "role", &known),
            }
        }
        edges.push(targets);
    }
    let count = names.len();
    let empty = |edges: Vec<Vec<RoleId>>| Roles {
        names: names.clone(),
        index: index.clone(),
        closure: vec![BitSet::new(); count],
        holders: vec![BitSet::new(); count],
        edges,
    };
    // Cycles and over-deep chains are refused before any closure is built: a closure over a
    // cycle is meaningless, and one over a long chain is what a hostile bundle would use.
    if report_cycles(bundle, &names, &edges, compiler) {
        return empty(edges);
    }
    let order = parents_first(&edges);
    let mut depth = vec![0usize; count];
    let mut deepest_reported = 0usize;
    let locations: Vec<&Location> = bundle.roles.values().map(|def| &def.location).collect();
    for &role in &order {
        depth[role] = 1 + edges[role].iter().map(|&p| depth[p]).max().unwrap_or(0);
        if depth[role] == crate::limits::MAX_INHERITANCE_DEPTH + 1 && deepest_reported < 10 {
            deepest_reported += 1;
            compiler.diagnostics.push(crate::limits::over_limit(
                locations[role],
                &format!("roles in the inheritance chain of role `{}`", names[role]),
                depth[role],
                crate::limits::MAX_INHERITANCE_DEPTH,
            ));
        }
    }
    if deepest_reported > 0 {
        return empty(edges);
    }

    // Closures as bit sets, parents before children: a role's closure is itself plus its
    // parents' closures. Holders are the transpose, children before parents. Both take one
    // set union per inheritance edge, and memory of one bit per (role, role) pair.
    let mut closure = vec![BitSet::new(); count];
    for &role in &order {
        let mut own = BitSet::new();
        own.insert(role);
        for &parent in &edges[role] {
            own.union_with(&closure[parent]);
        }
        closure[role] = own;
    }
    let mut children: Vec<Vec<RoleId>> = vec![Vec::new(); count];
    for (child, parents) in edges.iter().enumerate() {
        for &parent in parents {
            children[parent].push(child);
        }
    }
    let mut holders = vec![BitSet::new(); count];
    for &role in order.iter().rev() {
        let mut own = BitSet::new();
        own.insert(role);
        for &child in &children[role] {
            own.union_with(&holders[child]);
        }
        holders[role] = own;
    }
    Roles {
        names,
        index,
        closure,
        holders,
        edges,
    }
}

/// The roles in an order where every role comes after every role it inherits (the graph has
/// no cycle). Iterative depth-first search: a chain may be as long as the role limit.
fn parents_first(edges: &[Vec<RoleId>]) -> Vec<RoleId> {
    let mut order = Vec::with_capacity(edges.len());
    let mut done = BitSet::new();
    let mut stack: Vec<(RoleId, usize)> = Vec::new();
    for root in 0..edges.len() {
        if done.contains(root) {
            continue;
        }
        done.insert(root);
        stack.push((root, 0));
        while let Some(&mut (role, ref mut next)) = stack.last_mut() {
            if let Some(&parent) = edges[role].get(*next) {
                *next += 1;
                if !done.contains(parent) {
                    done.insert(parent);
                    stack.push((parent, 0));
                }
            } else {
                order.push(role);
                stack.pop();
            }
        }
    }
    order
}

/// Most inheritance cycles reported for one bundle (each costs a scan of the search stack).
const MAX_CYCLES_REPORTED: usize = 10;

/// Reports each inheritance cycle once, naming its roles in order, at the definition of its
/// alphabetically first role.
fn report_cycles(
    bundle: &Bundle,
    names: &[Arc<str>],
    edges: &[Vec<RoleId>],
    compiler: &mut Compiler<'_>,
) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; names.len()];
    let mut reported: BTreeSet<Vec<RoleId>> = BTreeSet::new();
    let locations: Vec<&Location> = bundle.roles.values().map(|def| &def.location).collect();
    for root in 0..names.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative depth-first search; `stack` holds (role, next edge index).
        let mut stack: Vec<(RoleId, usize)> = vec![(root, 0)];
        marks[root] = Mark::Active;
        while let Some(&mut (role, ref mut next)) = stack.last_mut() {
            if let Some(&target) = edges[role].get(*next) {
                *next += 1;
                match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::Active;
                        stack.push((target, 0));
                    }
                    Mark::Active if reported.len() >= MAX_CYCLES_REPORTED => {}
                    Mark::Active => {
                        let start = stack.iter().position(|(r, _)| *r == target).unwrap_or(0);
                        let mut cycle: Vec<RoleId> =
                            stack[start..].iter().map(|(r, _)| *r).collect();
                        // Rotate so the smallest id comes first: one report per cycle.
                        if let Some(min_at) = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, r)| **r)
                            .map(|(i, _)| i)
                        {
                            cycle.rotate_left(min_at);
                        }
                        if reported.insert(cycle.clone()) {
                            let mut chain: Vec<&str> = cycle.iter().map(|r| &*names[*r]).collect();
                            chain.push(&names[cycle[0]]);
                            compiler.diagnostics.push(
                                Diagnostic::new(
                                    locations[cycle[0]].clone(),
                                    Code::Cycle,
                                    format!("role inheritance cycle: {}", chain.join(" -> ")),
                                )
                                .with_help("inheritance must form a hierarchy; remove one of these `inherits` entries"),
                            );
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                marks[role] = Mark::Done;
                stack.pop();
            }
        }
    }
    !reported.is_empty()
}
