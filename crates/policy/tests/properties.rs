//! Property tests of the evaluator:
//! (a) a strategy's outcome equals a brute-force evaluation of its DNF formula;
//! (b) shuffling files, roles, rules and list entries never changes a decision;
//! (c) role closures equal naive graph reachability.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use portcullis_core::{Decision, Request};
use portcullis_policy::{LoadOptions, SourceFile, compile_files, decide};
use proptest::prelude::*;
use serde_json::json;

fn compile(files: Vec<(String, String)>) -> portcullis_policy::Snapshot {
    let files: Vec<SourceFile> = files
        .into_iter()
        .map(|(name, text)| SourceFile {
            path: format!("t/{name}").into(),
            text,
        })
        .collect();
    match compile_files("t".as_ref(), &files, &LoadOptions::default()) {
        Ok(snapshot) => snapshot,
        Err(error) => panic!("{error}"),
    }
}

// ------------------------------------------------------------------ (a) strategies

/// A random DNF over `n` attribute factors: branches of (factor, negated) literals.
fn dnf(n: usize) -> impl Strategy<Value = (Vec<bool>, Vec<Vec<usize>>)> {
    (
        proptest::collection::vec(any::<bool>(), n),
        proptest::collection::vec(proptest::collection::btree_set(0..n, 1..=n.min(4)), 1..5)
            .prop_map(|branches| {
                branches
                    .into_iter()
                    .map(|b| b.into_iter().collect())
                    .collect()
            }),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn strategies_equal_their_dnf(
        (negative, branches) in dnf(6),
        values in proptest::collection::vec(any::<bool>(), 6),
    ) {
        let mut policy = String::from("factors:\n");
        for (i, negative) in negative.iter().enumerate() {
            let direction = if *negative { "negative" } else { "positive" };
            policy.push_str(&format!("  f{i}: {{ principal_attr: {{ a{i}: true }}, direction: {direction} }}\n"));
        }
        let rendered: Vec<String> = branches
            .iter()
            .map(|b| format!("[{}]", b.iter().map(|i| format!("f{i}")).collect::<Vec<_>>().join(", ")))
            .collect();
        policy.push_str(&format!("strategies:\n  s: [{}]\n", rendered.join(", ")));
        policy.push_str("roles:\n  r: { permissions: [\"x:y\"] }\nactions:\n  \"x:y\": { strategy: s }\n");
        let snapshot = compile(vec![
            ("tenant.yaml".into(), "tenant: acme\n".into()),
            ("p.yaml".into(), policy),
        ]);
        let attributes: serde_json::Map<String, serde_json::Value> =
            values.iter().enumerate().map(|(i, v)| (format!("a{i}"), json!(v))).collect();
        let request = common::request(json!({
            "principal": { "id": "p", "roles": ["r"], "attributes": attributes },
            "action": "x:y",
            "resource": { "type": "x", "id": "1" },
        }));
        let holds = |i: usize| values[i] != negative[i];
        let expected = branches.iter().any(|branch| branch.iter().all(|i| holds(*i)));
        let decision = decide(&snapshot, &request);
        prop_assert_eq!(decision.is_allowed(), expected);
        let outcome = decision.strategy.expect("strategy reported");
        prop_assert_eq!(outcome.held, expected);
        if let Some(branch) = outcome.branch {
            // The reported branch really holds.
            for factor in branch {
                let index: usize = factor[1..].parse().unwrap();
                prop_assert!(holds(index));
            }
        } else {
            // Every reported failing factor really fails.
            for factor in outcome.failing {
                let index: usize = factor[1..].parse().unwrap();
                prop_assert!(!holds(index));
            }
        }
    }
}

// ------------------------------------------------------------------ (b) order independence

/// A random world: roles with permissions and acyclic inheritance, principals, rules.
#[derive(Debug, Clone)]
struct World {
    roles: Vec<(Vec<String>, Vec<usize>)>,
    principals: Vec<Vec<usize>>,
    rules: Vec<(bool, Vec<String>, Option<String>)>,
    strategy_actions: Vec<String>,
}

const ACTIONS: &[&str] = &["doc:read", "doc:write", "doc:*", "*:read", "app:run", "*"];
const CONDITIONS: &[&str] = &[
    "context.source == 'svc'",
    "resource.id == 'r1'",
    "principal.id == 'p0'",
    "resource.attributes.level > 2",
];

fn world() -> impl Strategy<Value = World> {
    let role = (
        proptest::collection::vec(proptest::sample::select(ACTIONS), 0..4),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
    );
    (
        proptest::collection::vec(role, 1..7),
        proptest::collection::vec(
            proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
            1..5,
        ),
        proptest::collection::vec(
            (
                any::<bool>(),
                proptest::collection::vec(proptest::sample::select(ACTIONS), 1..3),
                proptest::option::of(proptest::sample::select(CONDITIONS)),
            ),
            0..5,
        ),
        proptest::collection::vec(
            proptest::sample::select(&["doc:read", "doc:write", "app:run"][..]),
            0..2,
        ),
    )
        .prop_map(|(roles, principals, rules, strategy_actions)| {
            let count = roles.len();
            World {
                // Role i may only inherit roles with a smaller index: no cycles.
                roles: roles
                    .into_iter()
                    .enumerate()
                    .map(|(i, (permissions, parents))| {
                        let parents = if i == 0 {
                            Vec::new()
                        } else {
                            parents.iter().map(|p| p.index(i)).collect()
                        };
                        (
                            permissions.into_iter().map(str::to_owned).collect(),
                            parents,
                        )
                    })
                    .collect(),
                principals: principals
                    .into_iter()
                    .map(|roles| roles.iter().map(|r| r.index(count)).collect())
                    .collect(),
                rules: rules
                    .into_iter()
                    .map(|(permit, actions, when)| {
                        (
                            permit,
                            actions.into_iter().map(str::to_owned).collect(),
                            when.map(str::to_owned),
                        )
                    })
                    .collect(),
                strategy_actions: strategy_actions.into_iter().map(str::to_owned).collect(),
            }
        })
}

/// Renders the world into files. `order` permutes entries and list items; `split` decides
/// which file each section entry goes to.
fn render(world: &World, order: &[usize], split: usize) -> Vec<(String, String)> {
    let permute = |n: usize, salt: usize| -> Vec<usize> {
        let mut indices: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = order[(i + salt) % order.len()] % (i + 1);
            indices.swap(i, j);
        }
        indices
    };
    let file_count = split % 3 + 1;
    let mut files: Vec<String> = vec![String::new(); file_count];
    let mut sections: Vec<BTreeMap<&str, Vec<String>>> = vec![BTreeMap::new(); file_count];
    for (k, i) in permute(world.roles.len(), 1).into_iter().enumerate() {
        let (permissions, parents) = &world.roles[i];
        let mut permissions: Vec<String> = permissions.iter().map(|p| format!("\"{p}\"")).collect();
        let p_order = permute(permissions.len(), i + 2);
        permissions = p_order.iter().map(|j| permissions[*j].clone()).collect();
        let mut parents: Vec<String> = parents.iter().map(|p| format!("r{p}")).collect();
        parents.reverse();
        sections[(k + split) % file_count]
            .entry("roles")
            .or_default()
            .push(format!(
                "  r{i}: {{ permissions: [{}], inherits: [{}] }}",
                permissions.join(", "),
                parents.join(", ")
            ));
    }
    for (k, i) in permute(world.principals.len(), 3).into_iter().enumerate() {
        let mut roles: Vec<String> = world.principals[i]
            .iter()
            .map(|r| format!("r{r}"))
            .collect();
        if k % 2 == 1 {
            roles.reverse();
        }
        sections[(k + split + 1) % file_count]
            .entry("principals")
            .or_default()
            .push(format!("  p{i}: {{ roles: [{}] }}", roles.join(", ")));
    }
    for (k, i) in permute(world.rules.len(), 5).into_iter().enumerate() {
        let (permit, actions, when) = &world.rules[i];
        let mut actions: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
        if k % 2 == 0 {
            actions.reverse();
        }
        let when = when
            .as_ref()
            .map(|w| format!(", when: \"{w}\""))
            .unwrap_or_default();
        sections[(k + split + 2) % file_count]
            .entry("rules")
            .or_default()
            .push(format!(
                "  - {{ id: R{i}, effect: {}, actions: [{}]{when} }}",
                if *permit { "permit" } else { "forbid" },
                actions.join(", ")
            ));
    }
    sections[split % file_count]
        .entry("factors")
        .or_default()
        .push("  office: { ip: [\"10.0.0.0/8\", \"192.168.0.0/16\"] }".into());
    sections[(split + 1) % file_count]
        .entry("factors")
        .or_default()
        .push("  svc: { cel: \"context.source == 'svc'\" }".into());
    let branches = if split.is_multiple_of(2) {
        "[[office], [svc, office]]"
    } else {
        "[[office, svc], [office]]"
    };
    sections[(split + 2) % file_count]
        .entry("strategies")
        .or_default()
        .push(format!("  s: {branches}"));
    for action in &world.strategy_actions {
        sections[split % file_count]
            .entry("actions")
            .or_default()
            .push(format!("  \"{action}\": {{ strategy: s }}"));
    }
    for (file, sections) in files.iter_mut().zip(&sections) {
        for (name, entries) in sections {
            // Duplicate action entries are rejected; keep the first.
            let mut seen = BTreeSet::new();
            let entries: Vec<&String> = entries
                .iter()
                .filter(|e| seen.insert((*e).clone()))
                .collect();
            let body = entries
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            file.push_str(&format!("{name}:\n{body}\n"));
        }
    }
    let mut out = vec![(
        "tenant.yaml".to_owned(),
        "tenant: acme\ntimezone: UTC\n".to_owned(),
    )];
    for (i, text) in files.into_iter().enumerate() {
        out.push((format!("part-{}.yaml", (i + split) % file_count), text));
    }
    out
}

fn requests(world: &World) -> Vec<Request> {
    let mut requests = Vec::new();
    for principal in 0..world.principals.len() {
        for action in ["doc:read", "doc:write", "app:run", "x:read"] {
            for (source, ip, resource) in [("svc", "10.1.1.1", "r1"), ("web", "8.8.8.8", "r2")] {
                requests.push(common::request(json!({
                    "principal": { "id": format!("p{principal}") },
                    "action": action,
                    "resource": { "type": action.split(':').next().unwrap(), "id": resource, "attributes": { "level": 3 } },
                    "context": { "source": source, "ip": ip },
                })));
            }
        }
    }
    requests
}

fn summary(decision: &Decision) -> String {
    let mut decision = decision.clone();
    decision.trace_id.clear();
    serde_json::to_string(&decision).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn shuffling_never_changes_a_decision(
        world in world(),
        order_a in proptest::collection::vec(any::<usize>(), 8),
        order_b in proptest::collection::vec(any::<usize>(), 8),
        split_a in 0usize..6,
        split_b in 0usize..6,
    ) {
        let a = compile(render(&world, &order_a, split_a));
        let b = compile(render(&world, &order_b, split_b));
        prop_assert_eq!(a.revision(), b.revision());
        for request in requests(&world) {
            let mut explained = request.clone();
            explained.explain = true;
            prop_assert_eq!(summary(&decide(&a, &request)), summary(&decide(&b, &request)));
            prop_assert_eq!(summary(&decide(&a, &explained)), summary(&decide(&b, &explained)));
        }
    }
}

// ------------------------------------------------------------------ (c) role closure

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn role_closure_equals_reachability(
        edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
    ) {
        let count = 12;
        // Keep the graph acyclic: an edge always points to a smaller index.
        let edges: BTreeSet<(usize, usize)> = edges
            .into_iter()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.max(b), a.min(b)))
            .collect();
        let mut policy = String::from("roles:\n");
        for role in 0..count {
            let parents: Vec<String> = edges.iter().filter(|(a, _)| *a == role).map(|(_, b)| format!("r{b}")).collect();
            policy.push_str(&format!("  r{role}: {{ inherits: [{}] }}\n", parents.join(", ")));
        }
        let snapshot = compile(vec![("tenant.yaml".into(), "tenant: acme\n".into()), ("p.yaml".into(), policy)]);
        // Naive reachability by repeated relaxation (Floyd-Warshall).
        let mut reach = vec![vec![false; count]; count];
        for (i, row) in reach.iter_mut().enumerate() {
            row[i] = true;
        }
        for (a, b) in &edges {
            reach[*a][*b] = true;
        }
        for k in 0..count {
            for i in 0..count {
                for j in 0..count {
                    if reach[i][k] && reach[k][j] {
                        reach[i][j] = true;
                    }
                }
            }
        }
        for (role, row) in reach.iter().enumerate() {
            let mut expected: Vec<String> = (0..count).filter(|j| row[*j]).map(|j| format!("r{j}")).collect();
            expected.sort();
            let closure: Vec<String> = snapshot
                .role_closure(&format!("r{role}"))
                .unwrap()
                .into_iter()
                .map(str::to_owned)
                .collect();
            prop_assert_eq!(closure, expected);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A role grant allows exactly when the assigned role inherits the granting one, and the
    /// reason's path is a shortest inheritance path between them.
    #[test]
    fn role_grants_follow_shortest_inheritance_paths(
        edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
        assigned in 0usize..12,
        wanted in 0usize..12,
    ) {
        let count = 12;
        let edges: BTreeSet<(usize, usize)> = edges
            .into_iter()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.max(b), a.min(b)))
            .collect();
        let mut policy = String::from("roles:\n");
        for role in 0..count {
            let parents: Vec<String> = edges.iter().filter(|(a, _)| *a == role).map(|(_, b)| format!("r{b}")).collect();
            policy.push_str(&format!(
                "  r{role}: {{ inherits: [{}], permissions: [\"x:use{role}\"] }}\n",
                parents.join(", ")
            ));
        }
        policy.push_str(&format!("principals:\n  p: {{ roles: [r{assigned}] }}\n"));
        let snapshot = compile(vec![("tenant.yaml".into(), "tenant: acme\n".into()), ("p.yaml".into(), policy)]);
        // Shortest distances from the assigned role, breadth-first.
        let mut distance = vec![usize::MAX; count];
        distance[assigned] = 0;
        let mut queue = std::collections::VecDeque::from([assigned]);
        while let Some(role) = queue.pop_front() {
            for (_, parent) in edges.iter().filter(|(a, _)| *a == role) {
                if distance[*parent] == usize::MAX {
                    distance[*parent] = distance[role] + 1;
                    queue.push_back(*parent);
                }
            }
        }
        let request: Request = common::request(json!({
            "principal": {"id": "p"}, "action": format!("x:use{wanted}"),
            "resource": {"type": "x", "id": "1"},
        }));
        let decision = decide(&snapshot, &request);
        prop_assert_eq!(decision.is_allowed(), distance[wanted] != usize::MAX);
        if decision.is_allowed() {
            let path: Vec<String> = decision.reasons[0].path.iter().map(|step| step.to_string()).collect();
            prop_assert_eq!(path.len(), distance[wanted] + 2, "{:?}", path);
            prop_assert_eq!(&path[0], "p");
            prop_assert_eq!(&path[1], &format!("r{assigned}"));
            prop_assert_eq!(path.last().unwrap(), &format!("r{wanted}"));
            for step in path[1..].windows(2) {
                let from: usize = step[0][1..].parse().unwrap();
                let to: usize = step[1][1..].parse().unwrap();
                prop_assert!(edges.contains(&(from, to)), "{:?} is not an edge", step);
            }
        }
    }
}

// ------------------------------------------------------------------ parser robustness

const FRAGMENTS: &[&str] = &[
    "factors:\n",
    "roles:\n",
    "strategies:\n",
    "rules:\n",
    "tests:\n",
    "calendars:\n",
    "actions:\n",
    "principals:\n",
    "routes:\n",
    "  P1: ",
    "  r: ",
    "  - ",
    "{ ip: [",
    "\"10.0.0.1\"",
    "\"172.*.*.*\"",
    "{ time_window: [\"09:15-15:30\"] }",
    "{ holiday: c }",
    "inherits: [r]",
    "permissions: [\"a:*\"]",
    "when: \"",
    "principal.id == ",
    "'x'",
    " && ",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "*",
    "&a ",
    "*a",
    ":",
    ",",
    "  ",
    "\n",
    "\t",
    "'",
    "\"",
    "[[P1]]",
    "id: R",
    "effect: permit",
    "actions: [\"*\"]",
    "2026-02-30",
    "mon",
    "~",
    "!!str ",
    "- [",
    "#",
    "|\n    ",
    "\u{feff}",
    "é",
    "\\",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_policy_text_never_panics(pieces in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..40)) {
        let text: String = pieces.concat();
        let files = vec![
            SourceFile { path: "t/tenant.yaml".into(), text: "tenant: acme\n".into() },
            SourceFile { path: "t/p.yaml".into(), text },
        ];
        match compile_files("t".as_ref(), &files, &LoadOptions::default()) {
            Ok(_) => {}
            Err(error) => {
                prop_assert!(!error.diagnostics.is_empty());
                for diagnostic in &error.diagnostics {
                    prop_assert!(!diagnostic.message.is_empty());
                    prop_assert!(!diagnostic.message.contains("internal error"), "{}", diagnostic);
                    prop_assert!(diagnostic.location.file.starts_with("t"));
                }
            }
        }
    }
}
