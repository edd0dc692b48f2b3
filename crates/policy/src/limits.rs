//! How large a bundle may be, section by section.
//!
//! A bundle is written by a tenant's policy author, and the service compiles every tenant's
//! bundle in the same process: these limits keep one author from spending the memory and time
//! that the others need. Each is checked after decoding and before anything is compiled, and a
//! bundle over one is refused with a located diagnostic (code `limit`) naming the limit and the
//! value found. `cargo run --release -p portcullis-bench --bin limits` measures how long a bundle
//! at every limit at once takes to compile and how much memory it needs (docs/performance.md,
//! "Limits"): well under a second with its declared resources at 20,000, over a second at
//! [`MAX_RESOURCES`], where parsing their YAML alone takes most of it.
//!
//! CEL expressions have limits of their own (`portcullis_cel::limits`): size, depth and cost.

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Location};
use crate::model::{Bundle, FactorKind, SourceFile};

/// Most roles in a bundle.
pub const MAX_ROLES: usize = 5_000;
/// Most roles one role inherits directly.
pub const MAX_INHERITS_PER_ROLE: usize = 100;
/// Longest chain of inheritance, counted in roles (a role that inherits nothing has depth 1).
pub const MAX_INHERITANCE_DEPTH: usize = 32;
/// Most permissions of one role.
pub const MAX_PERMISSIONS_PER_ROLE: usize = 1_000;
/// Most permissions of all roles together.
pub const MAX_PERMISSIONS: usize = 10_000;
/// Most principals a bundle declares.
pub const MAX_PRINCIPALS: usize = 10_000;
/// Most resources a bundle declares. A search over all of them (AuthZEN resource search) takes
/// about 280 ms at this number, over the 200 ms of its target (docs/performance.md, "Search").
pub const MAX_RESOURCES: usize = 100_000;
/// Most role assignments of one principal.
pub const MAX_ASSIGNMENTS_PER_PRINCIPAL: usize = 100;
/// Most actions a bundle declares.
pub const MAX_ACTIONS: usize = 5_000;
/// Most rules.
pub const MAX_RULES: usize = 1_000;
/// Most action, resource, principal or role entries of one rule, each.
pub const MAX_RULE_ENTRIES: usize = 1_000;
/// Most factors.
pub const MAX_FACTORS: usize = 1_000;
/// Most entries of one factor (address patterns, windows, certificates, attributes).
pub const MAX_FACTOR_ENTRIES: usize = 5_000;
/// Most strategies.
pub const MAX_STRATEGIES: usize = 1_000;
/// Most branches of one strategy.
pub const MAX_BRANCHES: usize = 64;
/// Most calendars.
pub const MAX_CALENDARS: usize = 100;
/// Most dates one calendar lists (holidays, closures and open days together).
pub const MAX_CALENDAR_DATES: usize = 5_000;
/// Most routes.
pub const MAX_ROUTES: usize = 5_000;
/// Most test cases.
pub const MAX_TESTS: usize = 2_000;
/// Most CEL expressions (permission conditions, rule conditions and CEL factors together).
pub const MAX_CONDITIONS: usize = 1_000;
/// Most relationship tuples a bundle ships (more belong in the store).
pub const MAX_BUNDLE_TUPLES: usize = portcullis_rebac::MAX_BUNDLE_TUPLES;
/// Most (action, grant or rule) pairs compilation may resolve: every wildcard permission and
/// rule is resolved for every action it covers.
pub const MAX_RESOLVED_PAIRS: usize = 1_000_000;

/// Checks the counts of a decoded bundle; every limit exceeded is one diagnostic.
pub(crate) fn check(bundle: &Bundle, diagnostics: &mut Diagnostics) {
    let folder = Location::file(&bundle.root);
    let mut over = |location: Option<&Location>, what: &str, found: usize, limit: usize| {
        if found > limit {
            diagnostics.push(over_limit(location.unwrap_or(&folder), what, found, limit));
        }
    };
    let nth = |locations: &mut dyn Iterator<Item = &Location>, n: usize| locations.nth(n).cloned();

    let roles = bundle.roles.len();
    let at = nth(&mut bundle.roles.values().map(|d| &d.location), MAX_ROLES);
    over(at.as_ref(), "roles in the bundle", roles, MAX_ROLES);
    let mut permissions = 0usize;
    let mut conditions = 0usize;
    let mut first_over_permissions = None;
    for (name, def) in &bundle.roles {
        over(
            Some(&def.location),
            &format!("roles that role `{name}` inherits"),
            def.value.inherits.len(),
            MAX_INHERITS_PER_ROLE,
        );
        over(
            Some(&def.location),
            &format!("permissions of role `{name}`"),
            def.value.permissions.len(),
            MAX_PERMISSIONS_PER_ROLE,
        );
        permissions += def.value.permissions.len();
        if permissions > MAX_PERMISSIONS && first_over_permissions.is_none() {
            first_over_permissions = Some(def.location.clone());
        }
        conditions += def
            .value
            .permissions
            .iter()
            .filter(|permission| permission.when.is_some())
            .count();
    }
    over(
        first_over_permissions.as_ref(),
        "permissions of all roles",
        permissions,
        MAX_PERMISSIONS,
    );

    let at = nth(
        &mut bundle.principals.values().map(|d| &d.location),
        MAX_PRINCIPALS,
    );
    over(
        at.as_ref(),
        "principals in the bundle",
        bundle.principals.len(),
        MAX_PRINCIPALS,
    );
    for (id, def) in &bundle.principals {
        over(
            Some(&def.location),
            &format!("role assignments of principal `{id}`"),
            def.value.roles.len(),
            MAX_ASSIGNMENTS_PER_PRINCIPAL,
        );
    }

    let at = nth(
        &mut bundle.resources.values().map(|d| &d.location),
        MAX_RESOURCES,
    );
    over(
        at.as_ref(),
        "resources in the bundle",
        bundle.resources.len(),
        MAX_RESOURCES,
    );

    let at = nth(
        &mut bundle.actions.values().map(|d| &d.location),
        MAX_ACTIONS,
    );
    over(at.as_ref(), "actions", bundle.actions.len(), MAX_ACTIONS);

    let at = nth(&mut bundle.rules.values().map(|d| &d.location), MAX_RULES);
    over(at.as_ref(), "rules", bundle.rules.len(), MAX_RULES);
    for (id, def) in &bundle.rules {
        let rule = &def.value;
        for (what, count) in [
            ("actions", rule.actions.len()),
            ("resources", rule.resources.len()),
            ("principals", rule.principals.len()),
            ("roles", rule.roles.len()),
        ] {
            over(
                Some(&def.location),
                &format!("{what} of rule `{id}`"),
                count,
                MAX_RULE_ENTRIES,
            );
        }
        conditions += usize::from(rule.when.is_some());
    }

    let at = nth(
        &mut bundle.factors.values().map(|d| &d.location),
        MAX_FACTORS,
    );
    over(at.as_ref(), "factors", bundle.factors.len(), MAX_FACTORS);
    for (name, def) in &bundle.factors {
        let entries = match &def.value.kind {
            FactorKind::Ip(patterns) => patterns.len(),
            FactorKind::TimeWindow { windows, .. } => windows.len(),
            FactorKind::ClientCert(matchers) => matchers.len(),
            FactorKind::PrincipalAttr(attributes) => attributes.len(),
            FactorKind::Cel(_) => {
                conditions += 1;
                1
            }
            FactorKind::TradingDay(_) | FactorKind::Holiday(_) => 1,
        };
        over(
            Some(&def.location),
            &format!("entries of factor `{name}`"),
            entries,
            MAX_FACTOR_ENTRIES,
        );
    }

    let at = nth(
        &mut bundle.strategies.values().map(|d| &d.location),
        MAX_STRATEGIES,
    );
    over(
        at.as_ref(),
        "strategies",
        bundle.strategies.len(),
        MAX_STRATEGIES,
    );
    for (name, def) in &bundle.strategies {
        over(
            Some(&def.location),
            &format!("branches of strategy `{name}`"),
            def.value.branches.len(),
            MAX_BRANCHES,
        );
    }

    let at = nth(
        &mut bundle.calendars.values().map(|d| &d.location),
        MAX_CALENDARS,
    );
    over(
        at.as_ref(),
        "calendars",
        bundle.calendars.len(),
        MAX_CALENDARS,
    );
    for (name, def) in &bundle.calendars {
        let calendar = &def.value;
        over(
            Some(&def.location),
            &format!("dates of calendar `{name}`"),
            calendar.holidays.len() + calendar.closures.len() + calendar.open_days.len(),
            MAX_CALENDAR_DATES,
        );
    }

    let at = nth(&mut bundle.routes.iter().map(|d| &d.location), MAX_ROUTES);
    over(at.as_ref(), "routes", bundle.routes.len(), MAX_ROUTES);
    let at = nth(&mut bundle.tests.iter().map(|d| &d.location), MAX_TESTS);
    over(at.as_ref(), "tests", bundle.tests.len(), MAX_TESTS);
    let at = nth(
        &mut bundle.tuples.iter().map(|d| &d.location),
        MAX_BUNDLE_TUPLES,
    );
    over(
        at.as_ref(),
        "relationship tuples in the bundle",
        bundle.tuples.len(),
        MAX_BUNDLE_TUPLES,
    );
    over(
        None,
        "CEL conditions (permission and rule conditions and CEL factors)",
        conditions,
        MAX_CONDITIONS,
    );
}

/// The diagnostic for `found` of `what`, over `limit`.
pub(crate) fn over_limit(
    location: &Location,
    what: &str,
    found: usize,
    limit: usize,
) -> Diagnostic {
    Diagnostic::new(
        location.clone(),
        Code::Limit,
        format!("{found} {what}, more than the limit of {limit}"),
    )
    .with_help("the README's \"Limits\" section lists every limit of a bundle; split the policy or simplify it")
}

/// A bundle with every section at its limit at once (tenant `limits`), for the test that it
/// compiles and the benchmark that measures how long that takes and how much memory it needs.
/// Inheritance is as deep and as wide as allowed, a tenth of the permissions are wildcards,
/// and every condition is as costly as the CEL limits let an expression be.
pub fn bundle_at_limits() -> Vec<SourceFile> {
    use std::fmt::Write as _;
    let mut files = Vec::new();
    let mut file = |name: &str, text: String| {
        files.push(SourceFile {
            path: format!("limits/{name}").into(),
            text,
        });
    };
    file(
        "tenant.yaml",
        "tenant: limits\ntimezone: Asia/Shanghai\nmodel: model.fga\n".to_owned(),
    );
    file(
        "model.fga",
        "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, group#member]\ntype doc\n  relations\n    define parent: [group]\n    define viewer: [user, group#member] or member from parent\n".to_owned(),
    );

    // Calendars and factors.
    let mut text = String::from("calendars:\n");
    for calendar in 0..MAX_CALENDARS {
        let _ = writeln!(
            text,
            "  c{calendar}:\n    closed_weekdays: [sat, sun]\n    holidays:"
        );
        let dates = if calendar == 0 {
            MAX_CALENDAR_DATES
        } else {
            10
        };
        let start = jiff::civil::date(2000, 1, 1);
        for day in 0..dates {
            let date = start
                .checked_add(jiff::Span::new().days(i64::try_from(day).unwrap_or(0)))
                .unwrap_or(start);
            let _ = writeln!(text, "      - {date}");
        }
    }
    text.push_str("factors:\n");
    let costly = costly_condition();
    for factor in 0..MAX_FACTORS {
        match factor % 5 {
            0 if factor == 0 => {
                text.push_str("  f0:\n    ip:\n");
                for entry in 0..MAX_FACTOR_ENTRIES {
                    let _ = writeln!(text, "      - 10.{}.{}.0/24", entry / 256, entry % 256);
                }
            }
            0 => {
                let _ = writeln!(
                    text,
                    "  f{factor}: {{ ip: [\"172.*.*.*\", \"10.{}.0.0/16\"] }}",
                    factor % 256
                );
            }
            1 => {
                let _ = writeln!(
                    text,
                    "  f{factor}: {{ time_window: [\"09:15-15:30\"], direction: negative }}"
                );
            }
            2 => {
                let _ = writeln!(
                    text,
                    "  f{factor}: {{ trading_day: c{} }}",
                    factor % MAX_CALENDARS
                );
            }
            3 => {
                let _ = writeln!(text, "  f{factor}: {{ client_cert: [cert{factor}] }}");
            }
            _ => {
                let _ = writeln!(text, "  f{factor}: {{ cel: \"{costly}\" }}");
            }
        }
    }
    text.push_str("strategies:\n");
    for strategy in 0..MAX_STRATEGIES {
        let branches = if strategy == 0 { MAX_BRANCHES } else { 3 };
        let list: Vec<String> = (0..branches)
            .map(|branch| {
                let a = (strategy + branch) % MAX_FACTORS;
                let b = (strategy * 7 + branch * 3 + 1) % MAX_FACTORS;
                format!("[f{a}, f{b}]")
            })
            .collect();
        let _ = writeln!(text, "  s{strategy}: [{}]", list.join(", "));
    }
    file("factors.yaml", text);

    // Roles: chains as deep as allowed, one role inheriting as many as allowed, and
    // permissions up to the limits, a tenth of them wildcards.
    let mut text = String::from("roles:\n");
    let per_role = (MAX_PERMISSIONS - MAX_PERMISSIONS_PER_ROLE) / (MAX_ROLES - 1);
    let mut conditions = MAX_FACTORS / 5;
    for role in 0..MAX_ROLES {
        let mut inherits = Vec::new();
        if role % MAX_INHERITANCE_DEPTH != 0 {
            inherits.push(format!("r{}", role - 1));
        }
        if role == MAX_ROLES - 1 {
            inherits = (0..MAX_INHERITS_PER_ROLE)
                .map(|parent| format!("r{}", parent * MAX_INHERITANCE_DEPTH))
                .collect();
        }
        let count = if role == 0 {
            MAX_PERMISSIONS_PER_ROLE
        } else {
            per_role
        };
        let _ = writeln!(
            text,
            "  r{role}:\n    inherits: [{}]\n    permissions:",
            inherits.join(", ")
        );
        for permission in 0..count {
            let action = (role * 31 + permission * 17) % MAX_ACTIONS;
            if role % 100 == 0 && permission == 0 {
                let _ = writeln!(text, "      - \"a{}:*\"", action % 100);
            } else if conditions < MAX_CONDITIONS / 2 && permission == 1 {
                conditions += 1;
                let _ = writeln!(
                    text,
                    "      - {{ permission: \"a{}:v{action}\", when: \"{costly}\" }}",
                    action % 100
                );
            } else {
                let _ = writeln!(text, "      - \"a{}:v{action}\"", action % 100);
            }
        }
    }
    file("roles.yaml", text);

    let mut text = String::from("resources:\n");
    for resource in 0..MAX_RESOURCES {
        let _ = writeln!(
            text,
            "  \"k{}:r{resource}\": {{ attributes: {{ n: {resource} }} }}",
            resource % 50
        );
    }
    file("resources.yaml", text);

    let mut text = String::from("principals:\n");
    for principal in 0..MAX_PRINCIPALS {
        if principal == 0 {
            let roles: Vec<String> = (0..MAX_ASSIGNMENTS_PER_PRINCIPAL)
                .map(|r| format!("r{}", (r * 97) % MAX_ROLES))
                .collect();
            let _ = writeln!(
                text,
                "  p0: {{ roles: [{}], attributes: {{ level: 3 }} }}",
                roles.join(", ")
            );
        } else {
            let _ = writeln!(
                text,
                "  p{principal}: {{ roles: [r{}, r{}] }}",
                principal % MAX_ROLES,
                (principal * 13) % MAX_ROLES
            );
        }
    }
    file("principals.yaml", text);

    let mut text = String::from("actions:\n");
    for action in 0..MAX_ACTIONS {
        let _ = writeln!(
            text,
            "  \"a{}:v{action}\": {{ strategy: s{}, write: {} }}",
            action % 100,
            action % MAX_STRATEGIES,
            action % 2 == 0
        );
    }
    text.push_str("rules:\n");
    for rule in 0..MAX_RULES {
        let actions = if rule == 0 {
            (0..MAX_RULE_ENTRIES)
                .map(|a| format!("\"a{}:v{a}\"", a % 100))
                .collect::<Vec<_>>()
        } else {
            vec![format!("\"a{}:v{}\"", rule % 100, (rule * 7) % MAX_ACTIONS)]
        };
        let effect = if rule % 3 == 0 { "forbid" } else { "permit" };
        if conditions < MAX_CONDITIONS {
            conditions += 1;
            let _ = writeln!(
                text,
                "  - {{ id: R{rule}, effect: {effect}, actions: [{}], when: \"{costly}\" }}",
                actions.join(", ")
            );
        } else {
            let _ = writeln!(
                text,
                "  - {{ id: R{rule}, effect: {effect}, actions: [{}] }}",
                actions.join(", ")
            );
        }
    }
    text.push_str("routes:\n");
    for route in 0..MAX_ROUTES {
        let _ = writeln!(
            text,
            "  - {{ methods: [GET], path: \"/r{route}/{{id}}/**\", action: \"a{}:v{route}\", resource: \"doc:{{id}}\" }}",
            route % 100
        );
    }
    file("rules.yaml", text);

    let mut text = String::from("tests:\n");
    for test in 0..MAX_TESTS {
        let _ = writeln!(
            text,
            "  - {{ name: t{test}, request: {{ principal: {{ id: p{test} }}, action: \"a{}:v{test}\", resource: {{ type: doc, id: d{test} }} }}, expect: deny }}",
            test % 100
        );
    }
    file("tests.yaml", text);

    let mut text = String::from("tuples:\n");
    for tuple in 0..MAX_BUNDLE_TUPLES {
        match tuple % 3 {
            0 => {
                let _ = writeln!(
                    text,
                    "  - {{ user: \"user:u{tuple}\", relation: member, object: \"group:g{}\" }}",
                    tuple % 1000
                );
            }
            1 => {
                let _ = writeln!(
                    text,
                    "  - {{ user: \"group:g{}\", relation: parent, object: \"doc:d{tuple}\" }}",
                    tuple % 1000
                );
            }
            _ => {
                let _ = writeln!(
                    text,
                    "  - {{ user: \"user:u{tuple}\", relation: viewer, object: \"doc:d{}\" }}",
                    tuple % 5000
                );
            }
        }
    }
    file("tuples.yaml", text);
    files
}

/// A condition just under the CEL cost limit: a loop over a request list with a membership
/// test in each step, and a few comparisons.
fn costly_condition() -> &'static str {
    "principal.id != 'nobody' && context.tags.exists(t, t == resource.id || t == principal.id) && !(resource.id in principal.attributes.blocked) && size(context.tags) < 500"
}
