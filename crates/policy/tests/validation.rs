//! Every kind of bundle problem is reported with its file, line, column and a useful message,
//! and loading is all-or-nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use portcullis_policy::yaml::{Pos, YamlLimits};
use portcullis_policy::{Code, Diagnostic, LoadOptions, SourceFile, compile_files};

const TENANT: &str = "tenant: acme\ntimezone: UTC\n";

fn load_with(files: &[(&str, &str)], options: &LoadOptions) -> Vec<Diagnostic> {
    let files: Vec<SourceFile> = files
        .iter()
        .map(|(name, text)| SourceFile {
            path: format!("b/{name}").into(),
            text: (*text).to_owned(),
        })
        .collect();
    match compile_files("b".as_ref(), &files, options) {
        Ok(_) => Vec::new(),
        Err(error) => error.diagnostics,
    }
}

fn load(files: &[(&str, &str)]) -> Vec<Diagnostic> {
    load_with(files, &LoadOptions::default())
}

/// Loads `policy.yaml` next to a valid tenant.yaml.
fn problems(policy: &str) -> Vec<Diagnostic> {
    load(&[("tenant.yaml", TENANT), ("policy.yaml", policy)])
}

#[track_caller]
fn assert_one(
    diagnostics: &[Diagnostic],
    file: &str,
    line: u32,
    column: u32,
    code: Code,
    needle: &str,
) {
    let found = diagnostics.iter().any(|d| {
        d.location.file.to_str() == Some(&format!("b/{file}"))
            && d.location.pos == Some(Pos { line, column })
            && d.code == code
            && d.message.contains(needle)
    });
    let listed: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        found,
        "expected {code:?} at {file}:{line}:{column} containing {needle:?}; got:\n{}",
        listed.join("\n")
    );
}

#[test]
fn a_valid_bundle_loads() {
    let diagnostics = problems("roles:\n  r: { permissions: [\"a:b\"] }\n");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
}

#[test]
fn unknown_keys_are_reported_with_a_suggestion() {
    let diagnostics =
        problems("factors:\n  P1: { ip: [\"10.0.0.0/8\"], directon: negative }\nrolez: {}\n");
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        29,
        Code::UnknownKey,
        "unknown key `directon` in factor `P1`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        3,
        1,
        Code::UnknownKey,
        "unknown key `rolez`",
    );
    let help: Vec<_> = diagnostics
        .iter()
        .filter_map(|d| d.help.as_deref())
        .collect();
    assert!(
        help.iter().any(|h| h.contains("did you mean `direction`")),
        "{help:?}"
    );
    assert!(
        help.iter().any(|h| h.contains("did you mean `roles`")),
        "{help:?}"
    );
}

#[test]
fn tenant_keys_outside_tenant_yaml_are_unknown() {
    let diagnostics = problems("timezone: UTC\n");
    assert_one(
        &diagnostics,
        "policy.yaml",
        1,
        1,
        Code::UnknownKey,
        "tenant settings belong in tenant.yaml",
    );
}

#[test]
fn unknown_references_name_what_is_missing() {
    let policy = r#"
calendars:
  cn: { holidays: [2026-01-01] }
factors:
  P1: { trading_day: nyse }
  P2: { ip: ["10.0.0.1"] }
strategies:
  s: [[P2, P9]]
roles:
  a: { inherits: [ghost] }
principals:
  ann: { roles: [admn] }
actions:
  "x:y": { strategy: missing }
rules:
  - { id: R, effect: permit, actions: ["x:y"], roles: [nobody] }
"#;
    let diagnostics = problems(policy);
    assert_one(
        &diagnostics,
        "policy.yaml",
        5,
        22,
        Code::UnknownReference,
        "unknown calendar `nyse`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        8,
        12,
        Code::UnknownReference,
        "unknown factor `P9`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        10,
        19,
        Code::UnknownReference,
        "unknown role `ghost`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        12,
        18,
        Code::UnknownReference,
        "unknown role `admn`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        14,
        22,
        Code::UnknownReference,
        "unknown strategy `missing`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        16,
        56,
        Code::UnknownReference,
        "unknown role `nobody`",
    );
    assert_eq!(diagnostics.len(), 6, "{diagnostics:#?}");
}

#[test]
fn duplicates_across_files_point_at_both_places() {
    let diagnostics = load(&[
        ("tenant.yaml", TENANT),
        (
            "a.yaml",
            "factors:\n  P1: { ip: [\"10.0.0.1\"] }\nrules:\n  - { id: R1, effect: permit, actions: [\"*\"] }\n",
        ),
        (
            "b.yaml",
            "factors:\n  P1: { ip: [\"10.0.0.2\"] }\nrules:\n  - { id: R1, effect: forbid, actions: [\"*\"] }\n",
        ),
    ]);
    assert_one(
        &diagnostics,
        "b.yaml",
        2,
        3,
        Code::Duplicate,
        "factor `P1` is defined twice; first at b/a.yaml:2:3",
    );
    assert_one(
        &diagnostics,
        "b.yaml",
        4,
        11,
        Code::Duplicate,
        "rule `R1` is defined twice; first at b/a.yaml:4:11",
    );
}

#[test]
fn duplicate_keys_within_a_file_are_yaml_errors() {
    let diagnostics = problems("roles:\n  r: {}\n  r: {}\n");
    assert_one(&diagnostics, "policy.yaml", 3, 3, Code::Yaml, "duplicate");
}

#[test]
fn role_cycles_are_named_in_order() {
    let diagnostics = problems(
        "roles:\n  c: { inherits: [a] }\n  a: { inherits: [b] }\n  b: { inherits: [c] }\n  d: { inherits: [d] }\n",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        3,
        3,
        Code::Cycle,
        "role inheritance cycle: a -> b -> c -> a",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        5,
        3,
        Code::Cycle,
        "role inheritance cycle: d -> d",
    );
    assert_eq!(
        diagnostics.len(),
        2,
        "each cycle is reported once: {diagnostics:#?}"
    );
}

#[test]
fn bad_addresses_cidrs_and_wildcards() {
    let diagnostics = problems(
        "factors:\n  P: { ip: [\"10.0.0.0/33\", \"172.*.*\", \"1.2.3.400\", \"2001:db8::*\", \"17*.0.0.1\"] }\n",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        13,
        Code::Address,
        "bad address `10.0.0.0/33`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        28,
        Code::Address,
        "four octets",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        39,
        Code::Address,
        "bad address `1.2.3.400`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        52,
        Code::Address,
        "wildcards are for IPv4",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        67,
        Code::Address,
        "`17*` is neither an octet",
    );
}

#[test]
fn bad_time_windows() {
    let diagnostics = problems(
        "factors:\n  T: { time_window: [\"9:15-15:30\", \"10:00-10:00\", \"10:00-24:01\", \"10:00\"] }\n",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        22,
        Code::TimeWindow,
        "`9:15` is not HH:MM",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        36,
        Code::TimeWindow,
        "the window is empty",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        51,
        Code::TimeWindow,
        "hours above 23",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        66,
        Code::TimeWindow,
        "separated by '-'",
    );
}

#[test]
fn bad_dates_and_weekdays() {
    let diagnostics = problems(
        "calendars:\n  c:\n    closed_weekdays: [sat, sunday, caturday]\n    holidays: [2026-02-30, 2026/01/01, { date: 2026-13-01 }]\n",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        3,
        36,
        Code::Weekday,
        "bad weekday `caturday`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        4,
        16,
        Code::Date,
        "bad date `2026-02-30`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        4,
        28,
        Code::Date,
        "bad date `2026/01/01`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        4,
        48,
        Code::Date,
        "bad date `2026-13-01`",
    );
    assert_eq!(
        diagnostics.len(),
        4,
        "`sunday` is a valid weekday: {diagnostics:#?}"
    );
}

#[test]
fn invalid_cel_points_inside_the_expression() {
    let policy = "rules:\n  - id: R\n    effect: permit\n    actions: [\"*\"]\n    when: 'principal.id == '\nroles:\n  r:\n    permissions:\n      - permission: \"a:b\"\n        when: |\n          principal.id == \"x\" &&\n            user.admin\n";
    let diagnostics = problems(policy);
    // The quoted expression starts at column 12 (after the quote at 11); the parser fails at
    // column 17 of it.
    assert_one(
        &diagnostics,
        "policy.yaml",
        5,
        28,
        Code::Cel,
        "invalid CEL at 1:17 of the expression",
    );
    // In a block scalar every line starts at the block's indentation (column 11).
    assert_one(
        &diagnostics,
        "policy.yaml",
        12,
        13,
        Code::Cel,
        "unknown variable `user`",
    );
}

#[test]
fn bad_tenant_ids_and_time_zones() {
    let diagnostics = load(&[(
        "tenant.yaml",
        "tenant: ac\ntimezone: Mars/Olympus\nstatus: paused\n",
    )]);
    assert_one(
        &diagnostics,
        "tenant.yaml",
        1,
        9,
        Code::TenantId,
        "bad tenant id `ac`: it is shorter than 3 characters",
    );
    assert_one(
        &diagnostics,
        "tenant.yaml",
        2,
        11,
        Code::TimeZone,
        "unknown time zone `Mars/Olympus`",
    );
    assert_one(
        &diagnostics,
        "tenant.yaml",
        3,
        9,
        Code::Value,
        "unknown tenant status `paused`",
    );
}

#[test]
fn a_missing_tenant_yaml_is_reported() {
    let diagnostics = load(&[("policy.yaml", "roles: {}\n")]);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.code == Code::MissingKey && d.message.contains("no tenant.yaml")),
        "{diagnostics:?}"
    );
}

#[test]
fn yaml_syntax_errors_do_not_hide_problems_in_other_files() {
    let diagnostics = load(&[
        ("tenant.yaml", TENANT),
        ("a.yaml", "roles:\n  x: [1, 2\n"),
        ("b.yaml", "factors:\n  P: { ip: [\"300.0.0.1\"] }\n"),
    ]);
    assert!(diagnostics.iter().any(|d| d.code == Code::Yaml
        && d.location.file.ends_with("a.yaml")
        && d.location.pos.is_some()));
    assert_one(
        &diagnostics,
        "b.yaml",
        2,
        13,
        Code::Address,
        "bad address `300.0.0.1`",
    );
}

#[test]
fn alias_bombs_and_oversized_files_are_refused() {
    let mut bomb = String::from("roles:\n  a: &a [x,x,x,x,x,x,x,x,x,x]\n");
    for (name, previous) in [
        ("b", "a"),
        ("c", "b"),
        ("d", "c"),
        ("e", "d"),
        ("f", "e"),
        ("g", "f"),
        ("h", "g"),
    ] {
        bomb.push_str(&format!(
            "  {name}: &{name} [{}]\n",
            vec![format!("*{previous}"); 10].join(",")
        ));
    }
    let diagnostics = problems(&bomb);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.code == Code::Yaml && d.message.contains("alias")),
        "{diagnostics:#?}"
    );

    let options = LoadOptions {
        yaml: YamlLimits {
            max_bytes: 64,
            ..YamlLimits::default()
        },
        ..LoadOptions::default()
    };
    let big = format!("roles:\n{}", "  r: {}\n".repeat(20));
    let diagnostics = load_with(&[("tenant.yaml", TENANT), ("big.yaml", &big)], &options);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.code == Code::Yaml && d.message.contains("more than the limit")),
        "{diagnostics:#?}"
    );
}

const MODEL: &str =
    "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n";

#[test]
fn relationship_problems_are_located() {
    // A model file that is missing, and a relation the model does not define.
    let diagnostics = load(&[
        ("tenant.yaml", TENANT),
        (
            "policy.yaml",
            "model: model.fga\nactions:\n  \"doc:read\": { relation: viewer }\n",
        ),
    ]);
    assert_one(
        &diagnostics,
        "policy.yaml",
        1,
        8,
        Code::UnknownReference,
        "model file `model.fga` is not in the bundle",
    );
    let diagnostics = load(&[
        ("tenant.yaml", TENANT),
        ("model.fga", MODEL),
        (
            "policy.yaml",
            "model: model.fga\nactions:\n  \"doc:edit\": { relation: editor }\n  \"app:run\": { relation: viewer }\n",
        ),
    ]);
    assert_one(
        &diagnostics,
        "policy.yaml",
        3,
        27,
        Code::UnknownReference,
        "type `doc` does not define in the model",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        4,
        26,
        Code::UnknownReference,
        "type `app` does not define",
    );
    // Errors inside the model file carry its own line and column.
    let diagnostics = load(&[
        ("tenant.yaml", TENANT),
        (
            "model.fga",
            "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [usr]\n",
        ),
        ("policy.yaml", "model: model.fga\n"),
    ]);
    let model_error = diagnostics
        .iter()
        .find(|d| d.code == Code::Model)
        .unwrap_or_else(|| panic!("{diagnostics:#?}"));
    assert_eq!(model_error.location.file.to_str(), Some("b/model.fga"));
    assert_eq!(model_error.location.pos.map(|p| p.line), Some(6));
    assert!(model_error.message.contains("usr"), "{model_error}");
    // A relation without any model, tuples that do not fit, and an unreferenced model file.
    let diagnostics = problems("actions:\n  \"doc:read\": { relation: viewer }\n");
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        27,
        Code::UnknownReference,
        "the bundle has no relationship model",
    );
    let diagnostics = load(&[
        ("tenant.yaml", TENANT),
        ("model.fga", MODEL),
        (
            "policy.yaml",
            "model: model.fga\ntuples:\n  - { user: \"doc:x\", relation: viewer, object: \"doc:1\" }\n  - { user: \"user:anne\", relation: owner, object: \"doc:1\" }\n  - { user: \"anne\", relation: viewer, object: \"doc:1\" }\n",
        ),
    ]);
    for line in [3, 4, 5] {
        assert!(
            diagnostics
                .iter()
                .any(|d| d.code == Code::Model && d.location.pos.map(|p| p.line) == Some(line)),
            "line {line}: {diagnostics:#?}"
        );
    }
    let diagnostics = load(&[("tenant.yaml", TENANT), ("model.fga", MODEL)]);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.message.contains("no `model:` names it")),
        "{diagnostics:#?}"
    );
}

#[test]
fn wrong_shapes_say_what_was_expected() {
    let diagnostics = problems("roles:\n  r: { permissions: \"a:b\" }\nstrategies:\n  s: [P1]\n");
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        21,
        Code::Type,
        "must be a list, found a string",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        4,
        7,
        Code::Type,
        "a branch of strategy `s` must be a list of factors",
    );
}

#[test]
fn bad_patterns_and_routes() {
    let policy = r#"
roles:
  r: { permissions: ["app:rel*", "noverb", ":x"] }
routes:
  - { path: "/a/{id}/b", action: "app:read", resource: "app:{app}" }
  - { path: "/a/**/b", action: "app:read", resource: "app:x" }
  - { methods: [FETCH], path: "/a", action: "app:read", resource: "app:x" }
"#;
    let diagnostics = problems(policy);
    assert_one(
        &diagnostics,
        "policy.yaml",
        3,
        22,
        Code::Pattern,
        "`*` must replace the whole action part",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        3,
        34,
        Code::Pattern,
        "bad action pattern `noverb`",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        3,
        44,
        Code::Pattern,
        "the resource type part is empty",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        5,
        56,
        Code::Pattern,
        "`{app}` is not captured by the path",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        6,
        13,
        Code::Pattern,
        "`**` may only be the last segment",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        7,
        17,
        Code::Value,
        "unknown HTTP method `FETCH`",
    );
}

#[test]
fn switching_off_the_supply_chain_forbid_needs_a_reason() {
    let diagnostics = load(&[(
        "tenant.yaml",
        "tenant: acme\nsupply_chain: { forbid_writes: false }\n",
    )]);
    assert_one(
        &diagnostics,
        "tenant.yaml",
        2,
        15,
        Code::MissingKey,
        "switched off without a reason",
    );
    let diagnostics = load(&[(
        "tenant.yaml",
        "tenant: acme\nsupply_chain: { forbid_writes: false, reason: \"CHG-1234: vendor patch pending\" }\n",
    )]);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
}

#[test]
fn every_problem_is_reported_sorted_by_place() {
    let diagnostics = load(&[
        ("tenant.yaml", "tenant: \"a b\"\n"),
        ("z.yaml", "factors:\n  P: { ip: [\"x\"] }\n"),
        ("a.yaml", "roles:\n  r: { inherits: [nope] }\n"),
    ]);
    let places: Vec<String> = diagnostics.iter().map(|d| d.location.to_string()).collect();
    assert_eq!(
        places,
        vec!["b/a.yaml:2:19", "b/tenant.yaml:1:9", "b/z.yaml:2:13"]
    );
}

#[test]
fn oversized_and_deeply_nested_conditions_are_refused() {
    let nested = format!("{}true{}", "(".repeat(30), ")".repeat(30));
    // `||` chains are balanced by the parser; `+` chains nest one level per operator.
    let chain = format!("{} > 0", vec!["1"; 60].join(" + "));
    let long = format!("principal.id == '{}'", "x".repeat(9000));
    let policy = format!(
        "rules:\n  - {{ id: A, effect: permit, actions: [\"*\"], when: \"{nested}\" }}\n  - {{ id: B, effect: permit, actions: [\"*\"], when: \"{chain}\" }}\n  - {{ id: C, effect: permit, actions: [\"*\"], when: \"{long}\" }}\n"
    );
    let diagnostics = problems(&policy);
    assert_one(
        &diagnostics,
        "policy.yaml",
        2,
        77,
        Code::Cel,
        "brackets nest deeper than 24 levels",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        3,
        53,
        Code::Cel,
        "nests deeper than 48 operators",
    );
    assert_one(
        &diagnostics,
        "policy.yaml",
        4,
        53,
        Code::Cel,
        "more than the limit of 8192",
    );
}

#[test]
fn quotas_and_sensitive_attributes_are_checked() {
    let diagnostics = load(&[(
        "tenant.yaml",
        "tenant: acme\nquota: { requests_per_second: -1, burst: 0, concurent: 5 }\nsensitive_attributes: [phone, \"bad name\"]\n",
    )]);
    assert_one(
        &diagnostics,
        "tenant.yaml",
        2,
        31,
        Code::Value,
        "requests_per_second must be a positive number",
    );
    assert_one(
        &diagnostics,
        "tenant.yaml",
        2,
        42,
        Code::Value,
        "quota.burst must be a positive whole number",
    );
    assert_one(
        &diagnostics,
        "tenant.yaml",
        2,
        45,
        Code::UnknownKey,
        "unknown key `concurent`",
    );
    assert_one(
        &diagnostics,
        "tenant.yaml",
        3,
        31,
        Code::Value,
        "not a valid name",
    );
    let ok = load(&[(
        "tenant.yaml",
        "tenant: acme\nquota: { requests_per_second: 500.5, burst: 1000, concurrent: 64 }\nsensitive_attributes: [phone, national_id]\n",
    )]);
    assert!(ok.is_empty(), "{ok:?}");
}

// ------------------------------------------------------------------ limits

/// `r0` with a permission, and `rN` inheriting `rN-1` up to `count` roles (the reproduction of
/// the inheritance chain that used to compile in cubic memory).
fn role_chain(count: usize, closed: bool) -> String {
    let mut policy = String::from("roles:\n");
    for role in 0..count {
        if role == 0 {
            let first = if closed {
                format!("inherits: [r{}], ", count - 1)
            } else {
                String::new()
            };
            policy.push_str(&format!("  r0: {{ {first}permissions: [\"app:x\"] }}\n"));
        } else {
            policy.push_str(&format!("  r{role}: {{ inherits: [r{}] }}\n", role - 1));
        }
    }
    policy
}

#[test]
fn a_thousand_role_inheritance_chain_is_refused_at_the_depth_limit() {
    let diagnostics = problems(&role_chain(1000, false));
    assert!(
        diagnostics.iter().any(|d| d.code == Code::Limit
            && d.message.contains("inheritance chain")
            && d.message.contains(&format!(
                "limit of {}",
                portcullis_policy::limits::MAX_INHERITANCE_DEPTH
            ))),
        "{diagnostics:?}"
    );
    // A chain at the limit compiles.
    let at_limit = role_chain(portcullis_policy::limits::MAX_INHERITANCE_DEPTH, false);
    assert_eq!(problems(&at_limit), Vec::new());
}

#[test]
fn a_thousand_role_inheritance_cycle_is_refused_before_any_closure_is_built() {
    let diagnostics = problems(&role_chain(1000, true));
    assert_eq!(
        diagnostics.iter().filter(|d| d.code == Code::Cycle).count(),
        1,
        "{diagnostics:?}"
    );
    assert!(
        diagnostics[0].message.contains("r0 -> r999"),
        "{}",
        diagnostics[0].message
    );
}

#[test]
fn sections_over_their_limits_are_refused_where_the_limit_is_passed() {
    let limit = portcullis_policy::limits::MAX_ROLES;
    let mut policy = String::from("roles:\n");
    for role in 0..=limit {
        policy.push_str(&format!(
            "  role{role:05}: {{ permissions: [\"app:x\"] }}\n"
        ));
    }
    let diagnostics = problems(&policy);
    // Roles are kept in name order; the first one past the limit is role10000, on line 10,002.
    assert_one(
        &diagnostics,
        "policy.yaml",
        (limit + 2) as u32,
        3,
        Code::Limit,
        &format!(
            "{} roles in the bundle, more than the limit of {limit}",
            limit + 1
        ),
    );

    let mut policy = String::from("factors:\n  wide:\n    ip:\n");
    for entry in 0..=portcullis_policy::limits::MAX_FACTOR_ENTRIES {
        policy.push_str(&format!(
            "      - 10.{}.{}.0/24\n",
            entry / 256 % 256,
            entry % 256
        ));
    }
    assert_one(
        &problems(&policy),
        "policy.yaml",
        2,
        3,
        Code::Limit,
        "entries of factor `wide`",
    );
}

#[test]
fn declared_resources_over_their_limit_are_refused_where_the_limit_is_passed() {
    let limit = portcullis_policy::limits::MAX_RESOURCES;
    let mut policy = String::from("resources:\n");
    for resource in 0..=limit {
        policy.push_str(&format!("  \"doc:r{resource:06}\":\n"));
    }
    // Resources are kept in id order; the first one past the limit is the last, on the line
    // after the limit's.
    assert_one(
        &problems(&policy),
        "policy.yaml",
        (limit + 2) as u32,
        3,
        Code::Limit,
        &format!(
            "{} resources in the bundle, more than the limit of {limit}",
            limit + 1
        ),
    );
    let mut policy = String::from("resources:\n");
    for resource in 0..limit {
        policy.push_str(&format!("  \"doc:r{resource:06}\":\n"));
    }
    assert!(problems(&policy).is_empty());
}

#[test]
fn wildcards_resolving_past_the_limit_are_refused() {
    // 1,001 roles with `*:*` each apply to each of 1,000 declared actions: 1,001,000 pairs.
    let mut policy = String::from("roles:\n");
    for role in 0..1001 {
        policy.push_str(&format!("  r{role}: {{ permissions: [\"*:*\"] }}\n"));
    }
    policy.push_str("actions:\n");
    for action in 0..1000 {
        policy.push_str(&format!("  \"a:v{action}\": {{}}\n"));
    }
    let diagnostics = problems(&policy);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.code == Code::Limit && d.message.contains("resolved")),
        "{diagnostics:?}"
    );
}

/// The 342-byte condition of the hostile-author reproduction: seven nested loops over ten
/// numbers, 10^7 steps per decision.
fn seven_nested_loops() -> String {
    let mut text = String::from("principal.id == 'nobody'");
    for depth in 0..7 {
        text = format!("[0,1,2,3,4,5,6,7,8,9].exists(v{depth}, {text})");
    }
    text
}

#[test]
fn costly_conditions_are_refused_at_load_with_their_location_and_estimate() {
    let condition = seven_nested_loops();
    let policy = format!(
        "roles:\n  r: {{ permissions: [{{ permission: \"app:x\", when: \"{condition}\" }}] }}\nrules:\n  - {{ id: R, effect: permit, actions: [\"app:y\"], when: \"{condition}\" }}\nfactors:\n  F: {{ cel: \"{condition}\" }}\n"
    );
    let diagnostics = problems(&policy);
    let costly: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.code == Code::Cel && d.message.contains("too costly"))
        .collect();
    assert_eq!(costly.len(), 3, "{diagnostics:?}");
    for diagnostic in costly {
        assert!(
            diagnostic.message.contains("estimated cost")
                && diagnostic.message.contains("runs up to 10 times"),
            "{diagnostic}"
        );
        assert!(diagnostic.location.pos.is_some(), "{diagnostic}");
    }
    // The condition of a rule is located inside the YAML line that holds it.
    assert!(
        diagnostics.iter().any(|d| d
            .location
            .pos
            .is_some_and(|pos| pos.line == 4 && pos.column > 60)),
        "{diagnostics:?}"
    );
}

#[test]
fn a_bundle_at_every_limit_compiles() {
    let files = portcullis_policy::limits::bundle_at_limits();
    let snapshot = match compile_files("limits".as_ref(), &files, &LoadOptions::default()) {
        Ok(snapshot) => snapshot,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(
        snapshot.role_names().count(),
        portcullis_policy::limits::MAX_ROLES
    );
    assert_eq!(
        snapshot.bundle_tuples().len(),
        portcullis_policy::limits::MAX_BUNDLE_TUPLES
    );
    let resources: usize = (0..50)
        .map(|kind| {
            let ask = portcullis_core::Request {
                tenant: portcullis_core::TenantId::new("limits").unwrap(),
                principal: portcullis_core::Principal::user("p0"),
                action: "v".into(),
                action_properties: Default::default(),
                resource: portcullis_core::Resource::new(format!("k{kind}"), ""),
                context: Default::default(),
                env: Default::default(),
                explain: false,
                trace_id: None,
            };
            snapshot
                .search_candidates(portcullis_policy::SearchKind::Resource, &ask)
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(resources, portcullis_policy::limits::MAX_RESOURCES);
}
