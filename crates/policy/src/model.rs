//! The bundle as written: its files as read ([`SourceFile`]), and every section of the YAML
//! files, parsed into typed values that still carry their source locations.
//!
//! Values here are shape-checked and individually valid (addresses parse, dates exist, windows
//! are not empty); cross references (a strategy naming a factor, a role inheriting a role) are
//! checked by `compile`. The `Serialize` implementations skip locations: serializing a bundle
//! yields its normalized content, which is what the revision hash covers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use portcullis_core::{Context, Effect, Environment, Principal, Request, Resource, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnostic::Location;
use crate::yaml::Pos;

/// One policy file held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Its path (shown in messages; its file name decides whether it is `tenant.yaml`).
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub location: Location,
}

impl<T: Serialize> Serialize for At<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

/// Status of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Decisions are made.
    Active,
    /// Every decision is deny.
    Suspended,
}

/// `tenant.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantSettings {
    /// The tenant id.
    pub id: Option<TenantId>,
    /// Active or suspended.
    pub status: TenantStatus,
    /// IANA time zone of the tenant; time windows and calendars are read in it.
    pub timezone: String,
    /// The tenant's host name, when it declares one.
    pub domain: Option<String>,
    /// Whether the built-in supply-chain forbid applies (it does unless switched off).
    pub supply_chain_forbid: bool,
    /// Why the built-in supply-chain forbid is off (required when it is).
    pub supply_chain_forbid_reason: Option<String>,
    /// Whether a server honours a time supplied by the caller (`context.time`); otherwise its
    /// own clock decides. For playgrounds and end-to-end tests.
    pub accept_request_time: bool,
    /// Whether roles carried by identity tokens are added to the principal's roles.
    pub trust_token_roles: bool,
    /// Principal attributes stored encrypted at rest (per-tenant field encryption).
    pub sensitive_attributes: BTreeSet<String>,
    /// Limits on the tenant's use of the decision API.
    pub quota: Option<Quota>,
    /// Free text.
    pub description: Option<String>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            id: None,
            status: TenantStatus::Active,
            timezone: "UTC".to_owned(),
            domain: None,
            supply_chain_forbid: true,
            supply_chain_forbid_reason: None,
            accept_request_time: false,
            trust_token_roles: false,
            sensitive_attributes: BTreeSet::new(),
            quota: None,
            description: None,
        }
    }
}

/// Per-tenant limits on the decision API; an absent limit is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quota {
    /// Sustained decisions per second.
    pub requests_per_second: Option<f64>,
    /// Decisions allowed in a burst above the rate.
    pub burst: Option<u32>,
    /// Decisions in progress at once.
    pub concurrent: Option<u32>,
}

/// Days of the week as a bit set (bit 0 = Monday ... bit 6 = Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Weekdays(pub u8);

impl Weekdays {
    /// Every day.
    pub const ALL: Weekdays = Weekdays(0b111_1111);
    /// The short names, Monday first.
    pub const NAMES: [&'static str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    /// Whether `day` (0 = Monday) is in the set.
    pub fn contains(self, day: u8) -> bool {
        self.0 & (1 << day) != 0
    }
}

impl Serialize for Weekdays {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = (0..7)
            .filter(|day| self.contains(*day))
            .map(|day| Self::NAMES[usize::from(day)])
            .collect();
        names.serialize(serializer)
    }
}

/// A market calendar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalendarDef {
    /// Weekdays on which the market is closed.
    pub closed_weekdays: Weekdays,
    /// Listed holidays.
    pub holidays: BTreeSet<jiff::civil::Date>,
    /// Listed extra closures (typhoons, system upgrades, ...); they count as holidays.
    pub closures: BTreeSet<jiff::civil::Date>,
    /// Dates on which the market opens although their weekday is closed.
    pub open_days: BTreeSet<jiff::civil::Date>,
    /// First date the calendar covers, if bounded.
    pub valid_from: Option<jiff::civil::Date>,
    /// Last date the calendar covers, if bounded.
    pub valid_until: Option<jiff::civil::Date>,
}

/// Whether a factor holds when it matches or when it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Holds when the factor matches.
    Positive,
    /// Holds when the factor does not match.
    Negative,
}

/// An address pattern: a network with a mask that need not be contiguous (so that `172.*.3.*`
/// is expressible as well as CIDR blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum IpPattern {
    /// IPv4 value and mask.
    V4 {
        /// Address bits that must match.
        value: u32,
        /// Which bits must match.
        mask: u32,
    },
    /// IPv6 value and mask.
    V6 {
        /// Address bits that must match.
        value: u128,
        /// Which bits must match.
        mask: u128,
    },
}

/// A `HH:MM-HH:MM` window in minutes of the day; `end <= start` means it crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Window {
    /// First minute inside the window.
    pub start: u16,
    /// First minute after the window (1440 for `24:00`).
    pub end: u16,
}

/// Which certificate field an allowed entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertField {
    /// The operator-assigned id.
    Id,
    /// The SHA-256 fingerprint (normalized lowercase hex).
    Fingerprint,
    /// The serial (normalized lowercase hex without leading zeros).
    Serial,
    /// The subject common name.
    SubjectCn,
}

/// One allowed certificate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CertMatcher {
    /// The field to compare, or any of them.
    pub field: Option<CertField>,
    /// The expected value (already normalized for fingerprints and serials).
    pub value: String,
}

/// A CEL expression as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelSource {
    /// The expression.
    pub text: String,
    /// Where the expression's first character sits in the file.
    pub start: Location,
    /// For block scalars: the column at which every continuation line starts.
    pub continuation_column: Option<u32>,
}

impl CelSource {
    /// Maps a 1-based (line, column) inside the expression to a place in the file.
    pub fn locate(&self, line: u32, column: u32) -> Location {
        let Some(start) = self.start.pos else {
            return self.start.clone();
        };
        let pos = if line <= 1 {
            Pos {
                line: start.line,
                column: start.column + column.saturating_sub(1),
            }
        } else {
            Pos {
                line: start.line + line - 1,
                column: self.continuation_column.unwrap_or(1) + column.saturating_sub(1),
            }
        };
        Location {
            file: self.start.file.clone(),
            pos: Some(pos),
        }
    }
}

impl Serialize for CelSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.text.serialize(serializer)
    }
}

/// What a factor tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// The client address is in one of these networks.
    Ip(BTreeSet<IpPattern>),
    /// The local time is inside one of these windows on one of these weekdays.
    TimeWindow {
        /// The windows.
        windows: BTreeSet<Window>,
        /// The weekdays on which a window may start.
        weekdays: Weekdays,
    },
    /// The local date is a trading day of the named calendar.
    TradingDay(At<String>),
    /// The local date is a day the named calendar's market is closed.
    Holiday(At<String>),
    /// The client certificate is one of these.
    ClientCert(BTreeSet<CertMatcher>),
    /// Every named principal attribute equals its value.
    PrincipalAttr(#[serde(serialize_with = "canonical::values")] BTreeMap<String, Value>),
    /// A CEL expression yields true.
    Cel(CelSource),
}

/// A factor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactorDef {
    /// What it tests.
    pub kind: FactorKind,
    /// Positive or negative.
    pub direction: Direction,
}

/// A strategy: a disjunction of conjunctions of factor names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyDef {
    /// The branches; each a set of factor names.
    pub branches: BTreeSet<BTreeSet<At<String>>>,
}

impl PartialOrd for At<String> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for At<String> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}
impl Eq for At<String> {}

/// `*` or a name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Segment {
    /// Matches anything.
    Any,
    /// Matches exactly this.
    Is(String),
}

impl Segment {
    /// Whether the segment matches `value`.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::Is(expected) => expected == value,
        }
    }
}

/// A pattern over actions, `type:verb` with `*` for either part (or `*` for all).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ActionPattern {
    /// Resource type part.
    pub kind: Segment,
    /// Verb part.
    pub verb: Segment,
    /// As written, for messages.
    pub text: String,
}

/// A pattern over resources, `type:id` with `*` for either part (or `*` for all).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourcePattern {
    /// Type part.
    pub kind: Segment,
    /// Id part.
    pub id: Segment,
}

impl ResourcePattern {
    /// Whether the pattern matches a resource.
    pub fn matches(&self, kind: &str, id: &str) -> bool {
        self.kind.matches(kind) && self.id.matches(id)
    }
}

/// One permission of a role.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PermissionDef {
    /// Which actions.
    pub pattern: At<ActionPattern>,
    /// Optional condition.
    pub when: Option<CelSource>,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleDef {
    /// Roles whose permissions this role also has.
    pub inherits: BTreeSet<At<String>>,
    /// Its own permissions (kept in a canonical order).
    pub permissions: Vec<PermissionDef>,
}

/// A role assignment of a principal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignmentDef {
    /// The role.
    pub role: At<String>,
    /// The resources it applies to; everywhere when absent.
    pub on: Option<ResourcePattern>,
}

/// A principal known to the bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrincipalDef {
    /// Its type.
    pub kind: Option<String>,
    /// Its role assignments (in a canonical order).
    pub roles: Vec<AssignmentDef>,
    /// Its attributes; they take precedence over attributes asserted in a request.
    #[serde(serialize_with = "canonical::values")]
    pub attributes: BTreeMap<String, Value>,
}

/// A resource the bundle declares.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceDef {
    /// Its attributes; a request may add others but never override these.
    #[serde(serialize_with = "canonical::values")]
    pub attributes: BTreeMap<String, Value>,
}

/// Settings of an action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionDef {
    /// The strategy that must hold for the action to be allowed.
    pub strategy: Option<At<String>>,
    /// Whether the action changes state (subject to the supply-chain forbid).
    pub write: bool,
    /// The relation on the resource that grants the action (ReBAC).
    pub relation: Option<At<String>>,
}

/// A permit or forbid rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleDef {
    /// Permit or forbid.
    pub effect: Effect,
    /// Which actions it covers.
    pub actions: BTreeSet<ActionPattern>,
    /// Which resources it covers; all when empty.
    pub resources: BTreeSet<ResourcePattern>,
    /// Which principal ids it covers; all when empty.
    pub principals: BTreeSet<String>,
    /// Which roles it covers (the principal must hold one); all when empty.
    pub roles: BTreeSet<At<String>>,
    /// Its condition.
    pub when: Option<CelSource>,
}

/// One segment of a route path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum PathSegment {
    /// Must equal this text.
    Literal(String),
    /// Captures one segment under this name.
    Param(String),
    /// Matches the rest of the path (zero or more segments); only last.
    Rest,
}

/// A route of the forward-auth and gateway route table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteDef {
    /// HTTP methods (upper case); empty means any.
    pub methods: BTreeSet<String>,
    /// The path pattern as written.
    pub path: String,
    /// The parsed path pattern.
    pub segments: Vec<PathSegment>,
    /// The action the route maps to.
    pub action: String,
    /// The resource template `type:id`, where the id may use `{param}` captures.
    pub resource: String,
    /// A strategy that must hold in addition to the action's.
    pub strategy: Option<At<String>>,
}

/// The request of a bundle test.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Defaults to the bundle's tenant.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    /// Who.
    pub principal: Principal,
    /// What.
    pub action: String,
    /// Properties of the action (`action.properties` in conditions).
    #[serde(default)]
    pub action_properties: serde_json::Map<String, Value>,
    /// On what.
    pub resource: Resource,
    /// Circumstances.
    #[serde(default)]
    pub context: Context,
    /// Environment signals (tests may set them).
    #[serde(default)]
    pub env: Environment,
}

impl TestRequest {
    /// The full request for `tenant` (unless the test names another), with explanation on.
    pub fn to_request(&self, tenant: &TenantId) -> Request {
        Request {
            tenant: self.tenant.clone().unwrap_or_else(|| tenant.clone()),
            principal: self.principal.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            context: self.context.clone(),
            env: self.env.clone(),
            explain: true,
            action_properties: self.action_properties.clone(),
            trace_id: None,
        }
    }
}

/// A test case carried by the bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct TestDef {
    /// Its name.
    pub name: String,
    /// The request.
    pub request: TestRequest,
    /// The expected decision.
    pub expect: Effect,
    /// Granting statement ids the decision must name, when given.
    pub reasons: Option<BTreeSet<String>>,
    /// Forbid ids the decision must name, when given.
    pub forbids: Option<BTreeSet<String>>,
}

/// A whole bundle as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bundle {
    /// The bundle folder.
    #[serde(skip)]
    pub root: PathBuf,
    /// `tenant.yaml`.
    pub tenant: TenantSettings,
    /// `calendars`.
    pub calendars: BTreeMap<String, At<CalendarDef>>,
    /// `factors`.
    pub factors: BTreeMap<String, At<FactorDef>>,
    /// `strategies`.
    pub strategies: BTreeMap<String, At<StrategyDef>>,
    /// `roles`.
    pub roles: BTreeMap<String, At<RoleDef>>,
    /// `principals`.
    pub principals: BTreeMap<String, At<PrincipalDef>>,
    /// `resources`, by `type:id`.
    pub resources: BTreeMap<String, At<ResourceDef>>,
    /// `actions`.
    pub actions: BTreeMap<String, At<ActionDef>>,
    /// `rules`, by id.
    pub rules: BTreeMap<String, At<RuleDef>>,
    /// `routes`, in a canonical order.
    pub routes: Vec<At<RouteDef>>,
    /// `tests`; not part of the revision.
    #[serde(skip)]
    pub tests: Vec<At<TestDef>>,
    /// `model`: the file holding the relationship model (its content, not its name, is part
    /// of the revision).
    #[serde(skip)]
    pub model: Option<At<String>>,
    /// The model, in OpenFGA's JSON form, once the compiler has read the file (so that a
    /// change of the model changes the revision).
    pub model_json: Option<Value>,
    /// `tuples`: relationship tuples shipped with the bundle.
    pub tuples: Vec<At<TupleDef>>,
    /// `temporary_access`: break-glass requests, their approvers and their longest window.
    pub temporary_access: Option<At<TemporaryAccessDef>>,
}

/// The `temporary_access` section: who may approve a request for temporary access, how many
/// of them must, and the longest window a grant may cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemporaryAccessDef {
    /// Roles whose holders approve (or reject) requests.
    pub approvers: Vec<At<String>>,
    /// Approvals a request needs: 1 or 2, each from a different person, never the requester.
    pub approvals_required: u8,
    /// The longest window a request may ask for, in seconds.
    pub max_window_secs: u64,
}

/// A relationship tuple written in a bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TupleDef {
    /// `type:id`, `type:*` or `type:id#relation`.
    pub user: String,
    /// The relation.
    pub relation: String,
    /// `type:id`.
    pub object: String,
    /// Condition name and stored context.
    pub condition: Option<(String, serde_json::Map<String, Value>)>,
}

/// Serializing JSON values with object keys sorted at every level: the key order of
/// `serde_json` maps depends on a crate feature that any dependency may switch on, and the
/// revision hash must not.
mod canonical {
    use std::collections::BTreeMap;

    use serde::ser::{SerializeMap, SerializeSeq};
    use serde::{Serialize, Serializer};
    use serde_json::Value;

    struct Sorted<'a>(&'a Value);

    impl Serialize for Sorted<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    let mut out = serializer.serialize_map(Some(keys.len()))?;
                    for key in keys {
                        if let Some(value) = map.get(key) {
                            out.serialize_entry(key, &Sorted(value))?;
                        }
                    }
                    out.end()
                }
                Value::Array(items) => {
                    let mut out = serializer.serialize_seq(Some(items.len()))?;
                    for item in items {
                        out.serialize_element(&Sorted(item))?;
                    }
                    out.end()
                }
                scalar => scalar.serialize(serializer),
            }
        }
    }

    pub fn values<S: Serializer>(
        map: &BTreeMap<String, Value>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for (key, value) in map {
            out.serialize_entry(key, &Sorted(value))?;
        }
        out.end()
    }
}

/// Splits `type:verb`; an action without ':' has an empty type.
pub(crate) fn split_action(action: &str) -> (&str, &str) {
    action.split_once(':').unwrap_or(("", action))
}
