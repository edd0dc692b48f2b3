//! The size limits of models, bundles and queries: a model and a tuple set AT every limit
//! compile and answer; one over any limit is a located error naming the limit and the value;
//! queries over their bounds are errors. `measure_at_limits` (ignored by default) reports the
//! time and peak memory of each step at the limits:
//! `cargo test -p portcullis-rebac --test limits -- --ignored --nocapture measure_at_limits`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use portcullis_rebac::{
    CheckRequest, Graph, MAX_BUNDLE_TUPLES, MAX_CONDITION_PARAMETERS, MAX_CONDITIONS,
    MAX_DIRECT_TYPES, MAX_INDEX_TUPLES, MAX_MODEL_BYTES, MAX_MODEL_ERRORS, MAX_RELATIONS_PER_TYPE,
    MAX_RESOLVE_DEPTH, MAX_REWRITE_DEPTH, MAX_REWRITE_OPERANDS, MAX_REWRITE_TERMS, MAX_TYPES,
    Model, ModelError, QueryError, Tuple, User,
};
use serde_json::Map;

/// Types besides `user`, `doc` and `t0`.
const PLAIN_TYPES: usize = MAX_TYPES - 3;

/// A model at every model limit at once: [`MAX_TYPES`] types; type `t0` with
/// [`MAX_RELATIONS_PER_TYPE`] relations; `doc#parent` with [`MAX_DIRECT_TYPES`] types (so every
/// `viewer from parent` fans out to that many types); `doc#deep` nested [`MAX_REWRITE_DEPTH`]
/// levels; `doc#wide_and` and the `doc#rK` unions with [`MAX_REWRITE_OPERANDS`] operands;
/// [`MAX_CONDITIONS`] conditions with [`MAX_CONDITION_PARAMETERS`] parameters each; exactly
/// [`MAX_REWRITE_TERMS`] terms in all. `ttu_fill` chooses whether the filling operands are
/// `viewer from parent` (the costliest term) or short computed relations (the shortest JSON).
/// `pad` pads the text with comment lines to exactly [`MAX_MODEL_BYTES`].
fn model_at_limits(ttu_fill: bool, pad: bool) -> String {
    model_with_terms(ttu_fill, pad, MAX_REWRITE_TERMS)
}

/// [`model_at_limits`] with `total_terms` terms instead of [`MAX_REWRITE_TERMS`].
fn model_with_terms(ttu_fill: bool, pad: bool, total_terms: usize) -> String {
    let mut text = String::from("model\n  schema 1.1\ntype user\n");
    let mut terms = 0usize;
    // t0: the most relations a type may have.
    text.push_str("type t0\n  relations\n    define viewer: [user]\n");
    terms += 1;
    for k in 1..MAX_RELATIONS_PER_TYPE {
        writeln!(text, "    define s{k}: [user]").unwrap();
        terms += 1;
    }
    for i in 1..=PLAIN_TYPES {
        writeln!(text, "type t{i}\n  relations\n    define viewer: [user]").unwrap();
        terms += 1;
    }
    text.push_str("type doc\n  relations\n");
    let parents: Vec<String> = (0..MAX_DIRECT_TYPES).map(|i| format!("t{i}")).collect();
    writeln!(text, "    define parent: [{}]", parents.join(", ")).unwrap();
    terms += 1;
    text.push_str("    define a: [user]\n");
    terms += 1;
    // Conditions, split over two relations (a relation lists at most MAX_DIRECT_TYPES types).
    let half = MAX_CONDITIONS / 2;
    for (name, range) in [("cond_a", 0..half), ("cond_b", half..MAX_CONDITIONS)] {
        let uses: Vec<String> = range.map(|c| format!("user with c{c}")).collect();
        writeln!(text, "    define {name}: [{}]", uses.join(", ")).unwrap();
        terms += 1;
    }
    // Nested exactly MAX_REWRITE_DEPTH levels: (((viewer from parent or a) and a) or a) ...
    let mut deep = "viewer from parent or a".to_owned();
    terms += 3;
    for level in 2..=MAX_REWRITE_DEPTH {
        let word = if level % 2 == 0 { "and" } else { "or" };
        deep = format!("({deep}) {word} a");
        terms += 2;
    }
    writeln!(text, "    define deep: {deep}").unwrap();
    let wide_and: Vec<&str> = std::iter::once("[user]")
        .chain(std::iter::repeat_n("a", MAX_REWRITE_OPERANDS - 1))
        .collect();
    writeln!(text, "    define wide_and: {}", wide_and.join(" and ")).unwrap();
    terms += 1 + MAX_REWRITE_OPERANDS;
    // Fill the remaining terms with unions of MAX_REWRITE_OPERANDS operands (the last one
    // smaller), within the relations doc may still define.
    let mut k = 0;
    while terms < total_terms {
        let left = total_terms - terms;
        // A union of n operands is n + 1 terms; a relation of one term is `[user]`.
        let operands = (left - 1).min(MAX_REWRITE_OPERANDS);
        if operands < 2 {
            writeln!(text, "    define r{k}: [user]").unwrap();
            terms += 1;
        } else {
            let mut parts = vec!["[user]".to_owned()];
            for j in 1..operands {
                parts.push(if ttu_fill {
                    "viewer from parent".to_owned()
                } else if k == 0 {
                    "a".to_owned()
                } else {
                    format!("r{}", (k + j) % k)
                });
            }
            writeln!(text, "    define r{k}: {}", parts.join(" or ")).unwrap();
            terms += 1 + operands;
        }
        k += 1;
    }
    assert_eq!(terms, total_terms);
    assert!(
        6 + k <= MAX_RELATIONS_PER_TYPE,
        "doc needs {} relations",
        6 + k
    );
    for c in 0..MAX_CONDITIONS {
        let params: Vec<String> = (0..MAX_CONDITION_PARAMETERS)
            .map(|p| format!("p{p}: int"))
            .collect();
        let sum: Vec<String> = (0..MAX_CONDITION_PARAMETERS)
            .map(|p| format!("p{p}"))
            .collect();
        writeln!(
            text,
            "condition c{c}({}) {{\n  {} > {c}\n}}",
            params.join(", "),
            sum.join(" + ")
        )
        .unwrap();
    }
    if pad {
        assert!(text.len() < MAX_MODEL_BYTES, "{} bytes", text.len());
        while text.len() < MAX_MODEL_BYTES {
            let room = MAX_MODEL_BYTES - text.len();
            let line = "#".repeat(room.min(100) - 1);
            text.push_str(&line);
            text.push('\n');
        }
        assert_eq!(text.len(), MAX_MODEL_BYTES);
    }
    text
}

/// [`MAX_BUNDLE_TUPLES`] tuples over the at-limits model: parents for every `doc`, users on
/// every plain type, direct grants on the filled relations, conditional grants.
fn tuples_at_limit() -> Vec<Tuple> {
    let mut tuples = Vec::with_capacity(MAX_BUNDLE_TUPLES);
    let docs = MAX_BUNDLE_TUPLES / 10;
    for d in 0..docs {
        let parent = format!("t{}:o{}", d % MAX_DIRECT_TYPES, d % 1000);
        tuples.push(Tuple::parse(&parent, "parent", &format!("doc:d{d}")).unwrap());
    }
    let mut i = 0usize;
    while tuples.len() < MAX_BUNDLE_TUPLES {
        let user = format!("user:u{i}");
        let tuple = match i % 4 {
            0 => Tuple::parse(
                &user,
                "viewer",
                &format!("t{}:o{}", i % MAX_DIRECT_TYPES, i % 1000),
            ),
            1 => Tuple::parse(
                &user,
                &format!("r{}", i % 100),
                &format!("doc:d{}", i % docs),
            ),
            2 => Tuple::parse(&user, "a", &format!("doc:d{}", i % docs)),
            _ => Tuple::parse(&user, "wide_and", &format!("doc:d{}", i % docs)),
        }
        .unwrap();
        tuples.push(tuple);
        i += 1;
    }
    tuples
}

#[test]
fn a_model_and_tuples_at_every_limit_compile_and_answer() {
    for (ttu_fill, pad) in [(true, true), (false, false)] {
        let text = model_at_limits(ttu_fill, pad);
        let model = Arc::new(Model::from_dsl(&text).unwrap_or_else(|e| panic!("{e}")));
        assert!(model.has_relation("doc", "deep"));
        // The JSON form reads back to the same model.
        let json = model.to_json_string();
        assert_eq!(json, model.to_json().to_string());
        if json.len() <= MAX_MODEL_BYTES {
            let again = Model::from_json(&json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again.to_json_string(), json);
        }
        let graph = Graph::build(Arc::clone(&model), tuples_at_limit()).unwrap();
        assert_eq!(graph.len(), MAX_BUNDLE_TUPLES);
        // user:u0 is a viewer of t0:o0, the parent of doc:d0, and r0 reads `viewer from
        // parent`; user:u2 is directly `a` of doc:d2.
        let (user, relation, object) = if ttu_fill {
            ("user:u0", "r0", "doc:d0")
        } else {
            ("user:u2", "a", "doc:d2")
        };
        let check = |user: &str, relation: &str, object: &str| {
            graph
                .check(&CheckRequest::new(
                    user.parse().unwrap(),
                    relation,
                    object.parse().unwrap(),
                ))
                .unwrap()
                .allowed
        };
        assert!(check(user, relation, object));
        assert!(!check("user:nobody", relation, object));
        let listed = graph
            .list_objects(&"user:u2".parse().unwrap(), "a", "doc", &Map::new(), &[])
            .unwrap();
        assert!(listed.iter().any(|o| o.id == "d2"), "{listed:?}");
    }
}

/// The JSON form at its limit: the at-limits model with short operands and as many terms as
/// its JSON can hold (about 50 bytes each, so the text limit binds before the terms limit),
/// padded with spaces to exactly [`MAX_MODEL_BYTES`].
fn json_at_limits() -> String {
    let model = Model::from_dsl(&model_with_terms(false, false, 12_500)).unwrap();
    let mut json = model.to_json_string();
    assert!(
        json.len() <= MAX_MODEL_BYTES,
        "the JSON form is {} bytes",
        json.len()
    );
    json.push_str(&" ".repeat(MAX_MODEL_BYTES - json.len()));
    json
}

#[test]
fn the_json_form_at_every_limit_compiles() {
    let json = json_at_limits();
    let model = Model::from_json(&json).unwrap_or_else(|e| panic!("{e}"));
    assert!(model.has_relation("t0", &format!("s{}", MAX_RELATIONS_PER_TYPE - 1)));
}

fn dsl_errors(text: &str) -> Vec<ModelError> {
    Model::from_dsl(text).expect_err("over a limit").0
}

fn assert_located(errors: &[ModelError], line: u32, column: u32, needles: &[&str]) {
    assert!(
        errors.iter().any(|e| e.line == line
            && e.column == column
            && needles.iter().all(|n| e.message.contains(n))),
        "no error at {line}:{column} with {needles:?}: {errors:#?}"
    );
}

const HEAD: &str = "model\n  schema 1.1\ntype user\n";

#[test]
fn one_over_each_model_limit_is_a_located_error_naming_limit_and_value() {
    // Types: the first type over the limit is named, with the count.
    let mut text = HEAD.to_owned();
    for i in 1..=MAX_TYPES {
        writeln!(text, "type t{i}").unwrap();
    }
    let errors = dsl_errors(&text);
    assert_located(
        &errors,
        4 + MAX_TYPES as u32 - 1,
        6,
        &[
            &format!("{} types", MAX_TYPES + 1),
            &format!("limit of {MAX_TYPES} types"),
        ],
    );
    // Relations per type.
    let mut text = format!("{HEAD}type doc\n  relations\n");
    for k in 0..=MAX_RELATIONS_PER_TYPE {
        writeln!(text, "    define r{k}: [user]").unwrap();
    }
    assert_located(
        &dsl_errors(&text),
        6 + MAX_RELATIONS_PER_TYPE as u32,
        12,
        &[
            &format!("{} relations", MAX_RELATIONS_PER_TYPE + 1),
            &format!("limit of {MAX_RELATIONS_PER_TYPE} relations per type"),
        ],
    );
    // Operands of one `or`: the first operand over the limit is pointed at.
    let operands: Vec<String> = (0..=MAX_REWRITE_OPERANDS)
        .map(|k| format!("x{k}"))
        .collect();
    let text = format!(
        "{HEAD}type doc\n  relations\n{}    define v: {}\n",
        (0..=MAX_REWRITE_OPERANDS)
            .map(|k| format!("    define x{k}: [user]\n"))
            .collect::<String>(),
        operands.join(" or ")
    );
    let line = 6 + MAX_REWRITE_OPERANDS as u32 + 1;
    let column = 15
        + operands[..MAX_REWRITE_OPERANDS]
            .iter()
            .map(|o| o.len() as u32 + 4)
            .sum::<u32>();
    assert_located(
        &dsl_errors(&text),
        line,
        column,
        &[
            &format!("{} operands", MAX_REWRITE_OPERANDS + 1),
            &format!("limit of {MAX_REWRITE_OPERANDS} operands"),
        ],
    );
    // Nesting depth: one level over, without going over the parentheses limit.
    let mut deep = "[user] or a".to_owned();
    for level in 2..=MAX_REWRITE_DEPTH + 1 {
        let word = if level % 2 == 0 { "and" } else { "or" };
        deep = format!("({deep}) {word} a");
    }
    let text = format!("{HEAD}type doc\n  relations\n    define a: [user]\n    define v: {deep}\n");
    // The deepest term is `[user]`, which has no position of its own: the relation's.
    let errors = dsl_errors(&text);
    assert_located(
        &errors,
        7,
        12,
        &[
            &format!("nests {} levels", MAX_REWRITE_DEPTH + 1),
            &format!("limit of {MAX_REWRITE_DEPTH} levels"),
        ],
    );
    // Directly related types.
    let mut text = HEAD.to_owned();
    for i in 0..=MAX_DIRECT_TYPES {
        writeln!(text, "type t{i}").unwrap();
    }
    let listed: Vec<String> = (0..=MAX_DIRECT_TYPES).map(|i| format!("t{i}")).collect();
    writeln!(
        text,
        "type doc\n  relations\n    define v: [{}]",
        listed.join(", ")
    )
    .unwrap();
    let line = 4 + MAX_DIRECT_TYPES as u32 + 1 + 2;
    let column = 16
        + listed[..MAX_DIRECT_TYPES]
            .iter()
            .map(|t| t.len() as u32 + 2)
            .sum::<u32>();
    assert_located(
        &dsl_errors(&text),
        line,
        column,
        &[
            &format!("{} directly related types", MAX_DIRECT_TYPES + 1),
            &format!("limit of {MAX_DIRECT_TYPES} per relation"),
        ],
    );
    // Conditions and their parameters.
    let mut text = format!("{HEAD}type doc\n  relations\n    define v: [user with c0]\n");
    for c in 0..=MAX_CONDITIONS {
        writeln!(text, "condition c{c}(x: int) {{\n  x > 0\n}}").unwrap();
    }
    assert_located(
        &dsl_errors(&text),
        7 + 3 * MAX_CONDITIONS as u32,
        11,
        &[
            &format!("{} conditions", MAX_CONDITIONS + 1),
            &format!("limit of {MAX_CONDITIONS} conditions"),
        ],
    );
    let params: Vec<String> = (0..=MAX_CONDITION_PARAMETERS)
        .map(|p| format!("p{p}: int"))
        .collect();
    let text = format!(
        "{HEAD}type doc\n  relations\n    define v: [user with c]\ncondition c({}) {{\n  p0 > 0\n}}\n",
        params.join(", ")
    );
    assert_located(
        &dsl_errors(&text),
        7,
        11,
        &[
            &format!("{} parameters", MAX_CONDITION_PARAMETERS + 1),
            &format!("limit of {MAX_CONDITION_PARAMETERS} parameters"),
        ],
    );
    // Terms in all: the relation where the count crosses the limit is pointed at.
    let per = MAX_REWRITE_OPERANDS;
    let relations = MAX_REWRITE_TERMS / (per + 1) + 1;
    let mut text = format!("{HEAD}type doc\n  relations\n    define a: [user]\n");
    let union = vec!["a"; per].join(" or ");
    for k in 0..relations {
        writeln!(text, "    define r{k}: {union}").unwrap();
    }
    let crossing = (MAX_REWRITE_TERMS - 1) / (per + 1);
    assert_located(
        &dsl_errors(&text),
        7 + crossing as u32,
        12,
        &[
            &format!("{} terms", 1 + relations * (per + 1)),
            &format!("limit of {MAX_REWRITE_TERMS} terms"),
        ],
    );
    // Text size.
    let text = format!("{HEAD}{}", "#\n".repeat(MAX_MODEL_BYTES));
    assert_located(
        &dsl_errors(&text),
        1,
        1,
        &[
            &format!("{} bytes", text.len()),
            &format!("limit of {MAX_MODEL_BYTES} bytes"),
        ],
    );
}

#[test]
fn json_limit_errors_carry_paths() {
    let json = |relations: &str| {
        format!(
            r#"{{"schema_version":"1.1","type_definitions":[{{"type":"user"}},{{"type":"doc","relations":{relations}}}]}}"#
        )
    };
    let leaf = r#"{"computedUserset":{"relation":"a"}}"#;
    let children = vec![leaf; MAX_REWRITE_OPERANDS + 1].join(",");
    let text = json(&format!(
        r#"{{"a":{{"this":{{}}}},"v":{{"difference":{{"base":{{"this":{{}}}},"subtract":{{"union":{{"child":[{children}]}}}}}}}}}}"#
    ));
    let errors = Model::from_json(&text).unwrap_err().0;
    assert!(
        errors.iter().any(|e| e.path.as_deref()
            == Some("type_definitions[1].relations.v.difference.subtract.union.child")
            && e.message
                .contains(&format!("{} operands", MAX_REWRITE_OPERANDS + 1))),
        "{errors:#?}"
    );
    let mut deep = leaf.to_owned();
    for _ in 0..=MAX_REWRITE_DEPTH {
        deep = format!(r#"{{"intersection":{{"child":[{{"this":{{}}}},{deep}]}}}}"#);
    }
    let text = json(&format!(r#"{{"a":{{"this":{{}}}},"v":{deep}}}"#));
    let errors = Model::from_json(&text).unwrap_err().0;
    // The first term 33 levels down: the `this` under the innermost intersection.
    let mut want = "type_definitions[1].relations.v".to_owned();
    for _ in 0..MAX_REWRITE_DEPTH {
        want.push_str(".intersection.child[1]");
    }
    want.push_str(".intersection.child[0]");
    assert!(
        errors
            .iter()
            .any(|e| e.path.as_deref() == Some(want.as_str())
                && e.message
                    .contains(&format!("nests {} levels", MAX_REWRITE_DEPTH + 1))),
        "{errors:#?}"
    );
}

#[test]
fn the_number_of_reported_problems_is_bounded() {
    let mut text = format!("{HEAD}type doc\n  relations\n");
    for k in 0..MAX_RELATIONS_PER_TYPE {
        writeln!(text, "    define r{k}: [nope]").unwrap();
    }
    let errors = dsl_errors(&text);
    assert_eq!(errors.len(), MAX_MODEL_ERRORS + 1);
    let last = errors.last().unwrap();
    assert!(
        last.message.contains(&format!(
            "{} more problems",
            MAX_RELATIONS_PER_TYPE - MAX_MODEL_ERRORS
        )),
        "{last:?}"
    );
    // Syntax errors stop the parser once the list is full.
    let text = format!("{HEAD}{}", "oops\n".repeat(10_000));
    let errors = dsl_errors(&text);
    assert_eq!(errors.len(), MAX_MODEL_ERRORS + 1);
}

#[test]
fn the_old_hundred_thousand_way_or_is_refused_cheaply() {
    let mut text = format!("{HEAD}type doc\n  relations\n    define a: [user]\n    define v: a");
    text.push_str(&" or a".repeat(100_000 - 1));
    let started = Instant::now();
    let errors = dsl_errors(&text);
    assert_located(
        &errors,
        7,
        15 + 5 * MAX_REWRITE_OPERANDS as u32,
        &["100000 operands", "limit of 128"],
    );
    assert_located(&errors, 7, 12, &["100002 terms", "limit of 20000"]);
    // Generous for an unoptimized build on a shared machine; the measured figure is far lower.
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

/// A chain of `group#member` usersets `depth` long, `user:u` at its bottom.
fn chain(depth: usize) -> Graph {
    let model = Arc::new(
        Model::from_dsl(&format!(
            "{HEAD}type group\n  relations\n    define member: [user, group#member]\n"
        ))
        .unwrap(),
    );
    let mut tuples = vec![Tuple::parse("user:u", "member", &format!("group:g{depth}")).unwrap()];
    for i in 0..depth {
        tuples.push(
            Tuple::parse(
                &format!("group:g{}#member", i + 1),
                "member",
                &format!("group:g{i}"),
            )
            .unwrap(),
        );
    }
    Graph::build(model, tuples).unwrap()
}

#[test]
fn list_objects_is_bounded_by_the_resolve_depth_like_check() {
    let user: User = "user:u".parse().unwrap();
    let within = chain(MAX_RESOLVE_DEPTH as usize - 1);
    let listed = within
        .list_objects(&user, "member", "group", &Map::new(), &[])
        .unwrap();
    assert_eq!(listed.len(), MAX_RESOLVE_DEPTH as usize);
    for object in &listed {
        let request = CheckRequest::new(user.clone(), "member", object.clone());
        assert!(within.check(&request).unwrap().allowed, "{object}");
    }
    let over = chain(MAX_RESOLVE_DEPTH as usize);
    assert_eq!(
        over.list_objects(&user, "member", "group", &Map::new(), &[]),
        Err(QueryError::DepthExceeded)
    );
    let request = CheckRequest::new(user, "member", "group:g0".parse().unwrap());
    assert_eq!(over.check(&request), Err(QueryError::DepthExceeded));
}

/// Groups that all contain each other, none containing the user: the worst case of a search
/// that must try every path.
fn mesh(groups: usize) -> Graph {
    let model = Arc::new(
        Model::from_dsl(&format!(
            "{HEAD}type group\n  relations\n    define member: [user, group#member]\n"
        ))
        .unwrap(),
    );
    let mut tuples = Vec::new();
    for a in 0..groups {
        for b in 0..groups {
            if a != b {
                tuples.push(
                    Tuple::parse(
                        &format!("group:g{b}#member"),
                        "member",
                        &format!("group:g{a}"),
                    )
                    .unwrap(),
                );
            }
        }
    }
    Graph::build(model, tuples).unwrap()
}

#[test]
fn a_query_over_its_step_budget_is_an_error_not_a_hang() {
    // A dense mesh of cyclic groups: a check must explore paths among 60 groups up to the depth
    // limit, far beyond the budget, and answers TooComplex instead of running on.
    let graph = mesh(60);
    let request = CheckRequest::new(
        "user:nobody".parse().unwrap(),
        "member",
        "group:g0".parse().unwrap(),
    );
    let started = Instant::now();
    assert_eq!(graph.check(&request), Err(QueryError::TooComplex));
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    // A small mesh is answered exactly.
    let graph = mesh(4);
    assert!(!graph.check(&request).unwrap().allowed);
}

#[test]
fn an_index_over_its_limit_refuses_writes_and_then_answers_no_query() {
    let model = Arc::new(
        Model::from_dsl(&format!(
            "{HEAD}type doc\n  relations\n    define blocked: [user]\n    define viewer: [user] but not blocked\n"
        ))
        .unwrap(),
    );
    let mut graph = Graph::new(model).with_max_tuples(2);
    assert!(
        graph
            .write(Tuple::parse("user:a", "viewer", "doc:1").unwrap())
            .unwrap()
    );
    assert!(
        graph
            .write(Tuple::parse("user:b", "viewer", "doc:1").unwrap())
            .unwrap()
    );
    // At the limit, writing a tuple already held is still fine ...
    assert!(
        !graph
            .write(Tuple::parse("user:a", "viewer", "doc:1").unwrap())
            .unwrap()
    );
    assert!(graph.is_complete());
    // ... but a new one is refused. Had it been `blocked`, answering without it would grant
    // what must be denied, so the index now answers every query with an error.
    let refused = graph
        .write(Tuple::parse("user:a", "blocked", "doc:1").unwrap())
        .unwrap_err();
    assert!(refused.message.contains("limits are 2 tuples"), "{refused}");
    assert!(!graph.is_complete());
    let request = CheckRequest::new(
        "user:a".parse().unwrap(),
        "viewer",
        "doc:1".parse().unwrap(),
    );
    assert_eq!(graph.check(&request), Err(QueryError::IndexIncomplete(1)));
    let user: User = "user:a".parse().unwrap();
    assert_eq!(
        graph.list_objects(&user, "viewer", "doc", &Map::new(), &[]),
        Err(QueryError::IndexIncomplete(1))
    );
    // The limit can only be lowered.
    let model = Arc::clone(graph.model());
    assert_eq!(
        Graph::new(model).with_max_tuples(usize::MAX).max_tuples(),
        MAX_INDEX_TUPLES
    );
}

/// Peak resident memory of this process, in KiB (Linux).
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn current_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One step of the measurement, run in a child process of its own so that its peak memory
/// is its own.
fn run_scenario(name: &str) {
    let dsl = model_at_limits(true, true);
    let json = json_at_limits();
    let tuples = tuples_at_limit();
    let model = Arc::new(Model::from_dsl(&dsl).unwrap());
    let hundred_k_or = {
        let mut text =
            format!("{HEAD}type doc\n  relations\n    define a: [user]\n    define v: a");
        text.push_str(&" or a".repeat(100_000 - 1));
        text
    };
    let mesh_graph = mesh(60);
    let base = current_kib();
    let started = Instant::now();
    let detail = match name {
        "from_dsl" => {
            let m = Model::from_dsl(&dsl).unwrap();
            format!(
                "{} bytes of DSL",
                dsl.len() + usize::from(m.ast().types.is_empty())
            )
        }
        "from_json" => {
            let m = Model::from_json(&json).unwrap();
            format!(
                "{} bytes of JSON, {} types",
                json.len(),
                m.ast().types.len()
            )
        }
        "to_json_string" => format!("{} bytes", model.to_json_string().len()),
        "to_json_tree" => format!(
            "{} top-level keys",
            model.to_json().as_object().unwrap().len()
        ),
        "graph_build" => {
            let g = Graph::build(Arc::clone(&model), tuples.clone()).unwrap();
            format!("{} tuples", g.len())
        }
        "refuse_100k_or" => format!("{} errors", dsl_errors(&hundred_k_or).len()),
        "check_budget" => {
            let request = CheckRequest::new(
                "user:nobody".parse().unwrap(),
                "member",
                "group:g0".parse().unwrap(),
            );
            format!("{:?}", mesh_graph.check(&request).map(|r| r.allowed))
        }
        other => panic!("unknown scenario {other}"),
    };
    let elapsed = started.elapsed();
    println!(
        "RESULT {name} {} ms, peak {} KiB above the {} KiB before it ({detail})",
        elapsed.as_millis(),
        peak_kib().saturating_sub(base),
        base
    );
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn measure_at_limits() {
    if let Ok(name) = std::env::var("LIMITS_SCENARIO") {
        run_scenario(&name);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for name in [
        "from_dsl",
        "from_json",
        "to_json_string",
        "to_json_tree",
        "graph_build",
        "refuse_100k_or",
        "check_budget",
    ] {
        let output = std::process::Command::new(&exe)
            .args(["--exact", "measure_at_limits", "--ignored", "--nocapture"])
            .env("LIMITS_SCENARIO", name)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("RESULT"))
            .unwrap_or_else(|| panic!("{name}: {}", String::from_utf8_lossy(&output.stderr)));
        println!("{line}");
    }
}
