//! The naive truth: what every engine must answer for each query.
//!
//! Deliberately simple and independent of every engine: it walks the inheritance chain and scans
//! permission lists, and reads local time with a fixed UTC+08:00 offset (the tenant's zone has had
//! no daylight saving since 1991) instead of a time-zone database.

use std::net::IpAddr;

use jiff::civil::Weekday;
use jiff::tz::Offset;

use crate::world::{ACCEPTED_CERTS, RawQuery, WINDOW, Workload, World};

/// Whether one of the principal's roles, or a role they inherit, grants `kind:verb`.
pub fn holds_permission(world: &World, principal: usize, kind: usize, verb: usize) -> bool {
    let Some(assigned) = world.principals.get(principal) else {
        return false;
    };
    for &start in assigned {
        let mut current = Some(start);
        while let Some(role) = current.and_then(|index| world.roles.get(index)) {
            if role
                .permissions
                .iter()
                .any(|p| usize::from(p.kind) == kind && usize::from(p.verb) == verb)
            {
                return true;
            }
            current = role.inherits;
        }
    }
    false
}

/// Whether the role grants the query.
pub fn granted(world: &World, query: &RawQuery) -> bool {
    holds_permission(
        world,
        query.principal(),
        usize::from(query.kind),
        usize::from(query.verb),
    )
}

/// Whether the strategy `[[P1, P2, P3], [P1, P5]]` holds for the query.
pub fn strategy_holds(world: &World, query: &RawQuery) -> bool {
    // P1: the address is in 172.16.0.0/12.
    let p1 = match query.ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 172 && (16..32).contains(&b)
        }
        IpAddr::V6(_) => false,
    };
    let local = Offset::constant(8).to_datetime(query.time);
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    // P2 (negative): outside 09:15-15:30, start inclusive, end exclusive.
    let p2 = !(i32::from(WINDOW.0) <= minute && minute < i32::from(WINDOW.1));
    // P3: an accepted certificate id.
    let p3 = query
        .cert_id()
        .is_some_and(|id| ACCEPTED_CERTS.contains(&id));
    // P5: weekend or listed holiday.
    let day = local.date();
    let p5 = matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
        || world.holidays.contains(&day);
    (p1 && p2 && p3) || (p1 && p5)
}

/// The expected decision of `query` under `workload`.
pub fn expected(world: &World, workload: Workload, query: &RawQuery) -> bool {
    granted(world, query) && (!workload.has_strategy() || strategy_holds(world, query))
}

/// The expected decision of every query of the world.
pub fn expected_all(world: &World, workload: Workload) -> Vec<bool> {
    world
        .queries
        .iter()
        .map(|query| expected(world, workload, query))
        .collect()
}
