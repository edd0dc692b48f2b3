//! The generated world every engine is measured on: roles, inheritance chains, principals,
//! a trading calendar, and the raw queries.
//!
//! Everything is derived from [`Params`] and a fixed seed, so two runs (and two machines) see the
//! same world. This module owns the *facts*; how each engine encodes them lives in
//! [`crate::engines`], and the naive truth for every query lives in [`crate::reference`].

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use jiff::civil::{Date, Weekday, date};
use jiff::tz::TimeZone;

use crate::reference;
use crate::rng::Rng;

/// The seed every world is generated from.
pub const SEED: u64 = 0x0050_4f52_5443_554c;

/// The tenant's time zone (China Standard Time, UTC+08:00 all year).
pub const TIME_ZONE: &str = "Asia/Shanghai";

/// The office network of factor P1.
pub const OFFICE_NETWORK: &str = "172.16.0.0/12";

/// Start and end (exclusive) of the trading window of factor P2, in minutes after local
/// midnight: 09:15 and 15:30.
pub const WINDOW: (u16, u16) = (9 * 60 + 15, 15 * 60 + 30);

/// Certificate ids accepted by factor P3.
pub const ACCEPTED_CERTS: [&str; 2] = ["cert-a", "cert-b"];

/// Certificate ids presented by queries: the accepted ones and one that is not accepted.
pub const PRESENTED_CERTS: [&str; 3] = ["cert-a", "cert-b", "cert-z"];

/// Listed 2026 holidays of the calendar (all fall on weekdays; weekends are closed anyway).
pub const HOLIDAYS: [(i16, i8, i8); 15] = [
    (2026, 1, 1),
    (2026, 1, 2),
    (2026, 2, 16),
    (2026, 2, 17),
    (2026, 2, 18),
    (2026, 2, 19),
    (2026, 2, 20),
    (2026, 4, 6),
    (2026, 5, 1),
    (2026, 5, 4),
    (2026, 5, 5),
    (2026, 6, 19),
    (2026, 9, 25),
    (2026, 10, 1),
    (2026, 10, 2),
];

/// The two workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Role-based access only.
    W1,
    /// W1 plus the strategy `[[P1, P2, P3], [P1, P5]]` on every action.
    W2,
}

impl Workload {
    /// `w1` or `w2`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
        }
    }

    /// Whether requests carry the strategy's inputs (address, time, certificate).
    pub fn has_strategy(self) -> bool {
        self == Workload::W2
    }
}

/// The size of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Number of roles.
    pub roles: usize,
    /// Direct permissions of each role.
    pub permissions_per_role: usize,
    /// Resource types (`t0`, `t1`, ...).
    pub resource_types: usize,
    /// Verbs per resource type (`a0`, `a1`, ...).
    pub verbs: usize,
    /// Roles per inheritance chain: `r0 <- r1 <- r2 <- r3` is a chain of 4.
    pub chain_length: usize,
    /// Number of principals.
    pub principals: usize,
    /// Each principal holds 1 to this many roles.
    pub max_roles_per_principal: usize,
    /// Distinct resource ids per type.
    pub resources: usize,
    /// Number of queries.
    pub queries: usize,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            roles: 50,
            permissions_per_role: 20,
            resource_types: 20,
            verbs: 10,
            chain_length: 4,
            principals: 10_000,
            max_roles_per_principal: 3,
            resources: 1_000,
            queries: 100_000,
            seed: SEED,
        }
    }
}

impl Params {
    /// A much smaller world with the same shape, for tests.
    pub fn small() -> Self {
        Params {
            principals: 300,
            queries: 2_000,
            ..Params::default()
        }
    }

    /// Number of distinct permissions (`type:verb` pairs).
    pub fn permission_count(&self) -> usize {
        self.resource_types * self.verbs
    }
}

/// A permission: a verb on a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission {
    /// Resource type index.
    pub kind: u8,
    /// Verb index.
    pub verb: u8,
}

/// One role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role this one inherits (it has all of that role's permissions), if any.
    pub inherits: Option<usize>,
    /// Direct permissions, distinct.
    pub permissions: Vec<Permission>,
}

/// Every name the engines use, prepared once so that building a request only copies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `u0`, `u1`, ...
    pub principals: Vec<String>,
    /// `r0`, `r1`, ...
    pub roles: Vec<String>,
    /// `t0`, `t1`, ...
    pub types: Vec<String>,
    /// `a0`, `a1`, ...
    pub verbs: Vec<String>,
    /// `t{type}:a{verb}`, indexed by `type * verbs + verb`.
    pub actions: Vec<String>,
    /// `res-0`, `res-1`, ...
    pub resources: Vec<String>,
}

impl Names {
    fn new(params: &Params) -> Self {
        let list = |prefix: &str, count: usize| -> Vec<String> {
            (0..count).map(|i| format!("{prefix}{i}")).collect()
        };
        let mut actions = Vec::with_capacity(params.permission_count());
        for kind in 0..params.resource_types {
            for verb in 0..params.verbs {
                actions.push(format!("t{kind}:a{verb}"));
            }
        }
        Names {
            principals: list("u", params.principals),
            roles: list("r", params.roles),
            types: list("t", params.resource_types),
            verbs: list("a", params.verbs),
            actions,
            resources: list("res-", params.resources),
        }
    }
}

/// One query exactly as generated, before any engine sees it. Each engine's timed code converts
/// it into that engine's own request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawQuery {
    /// Principal index.
    pub principal: u32,
    /// Resource type index.
    pub kind: u8,
    /// Verb index.
    pub verb: u8,
    /// Action index (`kind * verbs + verb`), into [`Names::actions`].
    pub action: u16,
    /// Resource id index.
    pub resource: u32,
    /// Client address (used by W2).
    pub ip: IpAddr,
    /// When the request happens (used by W2).
    pub time: Timestamp,
    /// Index into [`PRESENTED_CERTS`] of the presented client certificate, if any (used by W2).
    pub cert: Option<u8>,
}

impl RawQuery {
    /// Principal index as usize.
    pub fn principal(&self) -> usize {
        self.principal as usize
    }

    /// Action index as usize.
    pub fn action(&self) -> usize {
        usize::from(self.action)
    }

    /// Resource index as usize.
    pub fn resource(&self) -> usize {
        self.resource as usize
    }

    /// The presented certificate id, if any.
    pub fn cert_id(&self) -> Option<&'static str> {
        self.cert
            .and_then(|index| PRESENTED_CERTS.get(usize::from(index)).copied())
    }
}

/// The world: roles, principals, calendar and queries.
#[derive(Debug, Clone)]
pub struct World {
    /// How it was generated.
    pub params: Params,
    /// Roles by index.
    pub roles: Vec<Role>,
    /// Assigned roles of each principal (distinct).
    pub principals: Vec<Vec<usize>>,
    /// Names shared with the engines.
    pub names: Arc<Names>,
    /// Listed holidays, sorted.
    pub holidays: Vec<Date>,
    /// The queries, shared by both workloads (W1 ignores address, time and certificate).
    pub queries: Vec<RawQuery>,
}

impl World {
    /// Generates the world for `params`.
    pub fn generate(params: Params) -> Result<World> {
        if params.permission_count() > usize::from(u16::MAX)
            || params.resource_types > 256
            || params.verbs > 256
            || params.permissions_per_role > params.permission_count()
            || params.chain_length == 0
            || params.max_roles_per_principal == 0
            || params.max_roles_per_principal > params.roles
        {
            bail!("unsupported world parameters: {params:?}");
        }
        let mut rng = Rng::new(params.seed);
        let roles = (0..params.roles)
            .map(|index| Role {
                inherits: (index % params.chain_length != 0).then(|| index - 1),
                permissions: distinct(
                    &mut rng,
                    params.permissions_per_role,
                    params.permission_count(),
                )
                .into_iter()
                .map(|p| permission(&params, p))
                .collect(),
            })
            .collect();
        let principals = (0..params.principals)
            .map(|_| {
                let count = 1 + rng.below(params.max_roles_per_principal);
                distinct(&mut rng, count, params.roles)
            })
            .collect();
        let mut holidays = HOLIDAYS
            .iter()
            .map(|&(y, m, d)| date(y, m, d))
            .collect::<Vec<_>>();
        holidays.sort();
        let mut world = World {
            params,
            roles,
            principals,
            names: Arc::new(Names::new(&params)),
            holidays,
            queries: Vec::new(),
        };
        world.queries = world.generate_queries(&mut rng)?;
        Ok(world)
    }

    /// The direct permissions of a role.
    pub fn role(&self, index: usize) -> Option<&Role> {
        self.roles.get(index)
    }

    /// Half the queries are granted by the roles, half are not, shuffled.
    fn generate_queries(&self, rng: &mut Rng) -> Result<Vec<RawQuery>> {
        let days = CalendarDays::new_2026(&self.holidays)?;
        let zone = TimeZone::get(TIME_ZONE).context("time zone database")?;
        let total = self.params.queries;
        let mut queries = Vec::with_capacity(total);
        for index in 0..total {
            let granted = index < total / 2;
            let (principal, kind, verb) = self.pick_subject(rng, granted)?;
            let ip = pick_ip(rng);
            let time = pick_time(rng, &days, &zone)?;
            let cert = if rng.percent(80) {
                // Ids are few; the conversion cannot fail.
                u8::try_from(rng.below(PRESENTED_CERTS.len())).ok()
            } else {
                None
            };
            queries.push(RawQuery {
                principal: u32::try_from(principal)?,
                kind: u8::try_from(kind)?,
                verb: u8::try_from(verb)?,
                action: u16::try_from(kind * self.params.verbs + verb)?,
                resource: u32::try_from(rng.below(self.params.resources))?,
                ip,
                time,
                cert,
            });
        }
        rng.shuffle(&mut queries);
        Ok(queries)
    }

    /// A principal and a permission that the principal holds (`granted`) or does not.
    fn pick_subject(&self, rng: &mut Rng, granted: bool) -> Result<(usize, usize, usize)> {
        for _ in 0..10_000 {
            let principal = rng.below(self.params.principals);
            let Some(assigned) = self.principals.get(principal) else {
                continue;
            };
            if granted {
                // Walk up the chain from one assigned role by a random number of steps.
                let Some(&start) = rng.pick(assigned) else {
                    continue;
                };
                let mut role = start;
                for _ in 0..rng.below(self.params.chain_length) {
                    match self.roles.get(role).and_then(|r| r.inherits) {
                        Some(parent) => role = parent,
                        None => break,
                    }
                }
                let Some(held) = self.roles.get(role).and_then(|r| rng.pick(&r.permissions)) else {
                    continue;
                };
                return Ok((principal, usize::from(held.kind), usize::from(held.verb)));
            }
            for _ in 0..20 {
                let kind = rng.below(self.params.resource_types);
                let verb = rng.below(self.params.verbs);
                if !reference::holds_permission(self, principal, kind, verb) {
                    return Ok((principal, kind, verb));
                }
            }
        }
        bail!("could not find a query with granted = {granted}")
    }
}

/// `count` distinct numbers below `bound`.
fn distinct(rng: &mut Rng, count: usize, bound: usize) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    while chosen.len() < count.min(bound) {
        let candidate = rng.below(bound);
        if !chosen.contains(&candidate) {
            chosen.push(candidate);
        }
    }
    chosen
}

fn permission(params: &Params, index: usize) -> Permission {
    Permission {
        kind: u8::try_from(index / params.verbs).unwrap_or(u8::MAX),
        verb: u8::try_from(index % params.verbs).unwrap_or(u8::MAX),
    }
}

/// 70% inside the office network (including its first and last address), the rest outside
/// (including the addresses just beyond each end).
fn pick_ip(rng: &mut Rng) -> IpAddr {
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 0));
    let size: u32 = 1 << 20;
    let address = match rng.below(100) {
        0..=64 => base + (rng.next_u64() as u32 % size),
        65..=67 => base,
        68..=69 => base + size - 1,
        70..=72 => base - 1,
        73..=75 => base + size,
        76..=87 => u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (rng.next_u64() as u32 % (1 << 24)),
        _ => u32::from(Ipv4Addr::new(203, 0, 113, 0)) + (rng.next_u64() as u32 % 256),
    };
    IpAddr::V4(Ipv4Addr::from(address))
}

/// The 2026 days of each kind.
struct CalendarDays {
    trading: Vec<Date>,
    weekend: Vec<Date>,
    holiday: Vec<Date>,
}

impl CalendarDays {
    fn new_2026(holidays: &[Date]) -> Result<Self> {
        let mut days = CalendarDays {
            trading: Vec::new(),
            weekend: Vec::new(),
            holiday: Vec::new(),
        };
        let mut day = date(2026, 1, 1);
        while day.year() == 2026 {
            if matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
                days.weekend.push(day);
            } else if holidays.binary_search(&day).is_ok() {
                days.holiday.push(day);
            } else {
                days.trading.push(day);
            }
            day = day.tomorrow()?;
        }
        Ok(days)
    }
}

/// A local time in 2026: half on trading days, a quarter each on weekends and listed holidays;
/// the minute is uniform except that the window's edges are drawn often.
fn pick_time(rng: &mut Rng, days: &CalendarDays, zone: &TimeZone) -> Result<Timestamp> {
    let pool = match rng.below(4) {
        0 | 1 => &days.trading,
        2 => &days.weekend,
        _ => &days.holiday,
    };
    let day = *rng.pick(pool).context("empty day pool")?;
    let edges = [
        WINDOW.0 - 1,
        WINDOW.0,
        WINDOW.0 + 1,
        WINDOW.1 - 1,
        WINDOW.1,
        WINDOW.1 + 1,
        0,
        24 * 60 - 1,
    ];
    let minute = if rng.percent(15) {
        *rng.pick(&edges).context("no edges")?
    } else {
        u16::try_from(rng.below(24 * 60))?
    };
    let second = i8::try_from(rng.below(60))?;
    let local = day.at(
        i8::try_from(minute / 60)?,
        i8::try_from(minute % 60)?,
        second,
        0,
    );
    Ok(local.to_zoned(zone.clone())?.timestamp())
}

/// The bundle of `workload` as in-memory YAML files (the format of DESIGN.md §3).
pub fn bundle_files(world: &World, workload: Workload) -> Vec<portcullis_policy::SourceFile> {
    let names = &world.names;
    let file = |name: &str, text: String| portcullis_policy::SourceFile {
        path: format!("bench/{name}").into(),
        text,
    };
    let mut files = vec![file(
        "tenant.yaml",
        format!("tenant: bench\nstatus: active\ntimezone: {TIME_ZONE}\n"),
    )];

    let mut roles = String::from("roles:\n");
    for (index, role) in world.roles.iter().enumerate() {
        let _ = write!(roles, "  {}: {{ ", names.roles[index]);
        if let Some(parent) = role.inherits {
            let _ = write!(roles, "inherits: [{}], ", names.roles[parent]);
        }
        roles.push_str("permissions: [");
        for (i, p) in role.permissions.iter().enumerate() {
            if i > 0 {
                roles.push_str(", ");
            }
            let action = usize::from(p.kind) * world.params.verbs + usize::from(p.verb);
            let _ = write!(roles, "\"{}\"", names.actions[action]);
        }
        roles.push_str("] }\n");
    }
    files.push(file("roles.yaml", roles));

    let mut principals = String::from("principals:\n");
    for (index, assigned) in world.principals.iter().enumerate() {
        let _ = write!(principals, "  {}: {{ roles: [", names.principals[index]);
        for (i, role) in assigned.iter().enumerate() {
            if i > 0 {
                principals.push_str(", ");
            }
            principals.push_str(&names.roles[*role]);
        }
        principals.push_str("] }\n");
    }
    files.push(file("principals.yaml", principals));

    if workload.has_strategy() {
        let mut text = String::from(
            "calendars:\n  bench-calendar:\n    closed_weekdays: [sat, sun]\n    holidays: [",
        );
        for (i, day) in world.holidays.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            let _ = write!(text, "{day}");
        }
        let _ = write!(
            text,
            "]\nfactors:\n  P1: {{ ip: [\"{OFFICE_NETWORK}\"] }}\n  \
             P2: {{ time_window: [\"{:02}:{:02}-{:02}:{:02}\"], direction: negative }}\n  \
             P3: {{ client_cert: [{}] }}\n  P5: {{ holiday: bench-calendar }}\n\
             strategies:\n  guarded: [[P1, P2, P3], [P1, P5]]\nactions:\n",
            WINDOW.0 / 60,
            WINDOW.0 % 60,
            WINDOW.1 / 60,
            WINDOW.1 % 60,
            ACCEPTED_CERTS.join(", "),
        );
        for action in &names.actions {
            let _ = writeln!(text, "  \"{action}\": {{ strategy: guarded }}");
        }
        files.push(file("strategy.yaml", text));
    }
    files
}

/// The local facts a strategy needs, computed from a raw timestamp by the peers' timed request
/// builders (Portcullis computes the same inside `decide`).
#[derive(Debug, Clone)]
pub struct TenantClock {
    zone: TimeZone,
    holidays: Vec<Date>,
}

/// Local minute of the day and whether the market is closed (weekend or listed holiday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalFacts {
    /// Minutes after local midnight.
    pub minute: u16,
    /// Weekend or listed holiday.
    pub holiday: bool,
}

impl TenantClock {
    /// The clock of the world's tenant.
    pub fn new(world: &World) -> Result<Self> {
        Ok(TenantClock {
            zone: TimeZone::get(TIME_ZONE).context("time zone database")?,
            holidays: world.holidays.clone(),
        })
    }

    /// The local facts at `time`.
    pub fn facts(&self, time: Timestamp) -> LocalFacts {
        let local = self.zone.to_datetime(time);
        let day = local.date();
        let weekend = matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday);
        LocalFacts {
            minute: u16::try_from(local.hour()).unwrap_or(0) * 60
                + u16::try_from(local.minute()).unwrap_or(0),
            holiday: weekend || self.holidays.binary_search(&day).is_ok(),
        }
    }
}
