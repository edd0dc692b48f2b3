//! Model errors (each kind with its position), DSL ↔ JSON round trips, tuple validation and
//! limits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::sync::Arc;

use portcullis_rebac::{
    CheckRequest, Graph, MAX_BATCH_CHECK_ITEMS, MAX_CONTEXTUAL_TUPLES, Model, ModelAst, QueryError,
    Tuple, validate_write_batch,
};
use serde_json::{Map, json};

fn errors(text: &str) -> Vec<(u32, u32, String)> {
    Model::from_dsl(text)
        .expect_err("model should be rejected")
        .0
        .into_iter()
        .map(|e| (e.line, e.column, e.message))
        .collect()
}

fn assert_error(text: &str, line: u32, column: u32, needle: &str) {
    let found = errors(text);
    assert!(
        found
            .iter()
            .any(|(l, c, m)| *l == line && *c == column && m.contains(needle)),
        "no error at {line}:{column} containing {needle:?}; got {found:#?}"
    );
}

const HEAD: &str = "model\n  schema 1.1\ntype user\n";

#[test]
fn syntax_error_is_located() {
    assert_error(
        &format!("{HEAD}type doc\n  relations\n    define viewer [user]\n"),
        6,
        19,
        "expected `:`",
    );
}

#[test]
fn undefined_type() {
    assert_error(
        &format!("{HEAD}type doc\n  relations\n    define viewer: [usr]\n"),
        6,
        21,
        "type `usr`",
    );
}

#[test]
fn undefined_relation() {
    assert_error(
        &format!("{HEAD}type doc\n  relations\n    define viewer: [user] or editor\n"),
        6,
        30,
        "`editor`",
    );
}

#[test]
fn bad_tupleset() {
    let text = format!(
        "{HEAD}type folder\n  relations\n    define viewer: [user]\ntype doc\n  relations\n    define parent: [folder] or viewer\n    define viewer: [user] or viewer from parent\n"
    );
    assert_error(&text, 10, 30, "must be directly related");
    let text = format!(
        "{HEAD}type folder\ntype doc\n  relations\n    define parent: [folder]\n    define viewer: [user] or viewer from parent\n"
    );
    assert_error(&text, 8, 30, "has a relation `viewer`");
}

#[test]
fn never_resolving_relations() {
    let text = format!("{HEAD}type doc\n  relations\n    define a: b\n    define b: a\n");
    assert_error(&text, 6, 12, "can never be satisfied");
    assert_error(&text, 7, 12, "can never be satisfied");
    let text = format!(
        "{HEAD}type doc\n  relations\n    define a: b\n    define b: a\n    define c: [user] and a\n"
    );
    assert_error(&text, 8, 12, "can never be satisfied");
}

#[test]
fn duplicates() {
    assert_error(&format!("{HEAD}type user\n"), 4, 6, "defined twice");
    assert_error(
        &format!("{HEAD}type doc\n  relations\n    define a: [user]\n    define a: [user]\n"),
        7,
        12,
        "defined twice",
    );
    let text = format!(
        "{HEAD}type doc\n  relations\n    define a: [user with c]\ncondition c(x: int) {{\n  x > 1\n}}\ncondition c(x: int) {{\n  x > 2\n}}\n"
    );
    assert_error(&text, 10, 11, "defined twice");
}

#[test]
fn condition_errors() {
    assert_error(
        &format!("{HEAD}type doc\n  relations\n    define a: [user with nope]\n"),
        6,
        16,
        "condition `nope` is not defined",
    );
    let text = format!(
        "{HEAD}type doc\n  relations\n    define a: [user with c]\ncondition c(x: integer) {{\n  x > 1\n}}\n"
    );
    assert_error(&text, 7, 16, "unknown parameter type `integer`");
    let text = format!(
        "{HEAD}type doc\n  relations\n    define a: [user with c]\ncondition c(x: int) {{\n  x >\n}}\n"
    );
    let found = errors(&text);
    assert!(
        found
            .iter()
            .any(|(l, _, m)| *l >= 8 && m.contains("invalid CEL")),
        "{found:?}"
    );
    let text = format!(
        "{HEAD}type doc\n  relations\n    define a: [user with c]\ncondition c(x: int) {{\n  y > 1\n}}\n"
    );
    assert!(
        errors(&text)
            .iter()
            .any(|(_, _, m)| m.contains("declare it"))
    );
}

#[test]
fn all_errors_are_reported() {
    let text = format!(
        "{HEAD}type doc\n  relations\n    define a: [nope1]\n    define b: [nope2]\n    define c: missing\n"
    );
    assert!(errors(&text).len() >= 3, "{:?}", errors(&text));
}

#[test]
fn hostile_input_is_bounded() {
    let deep = format!(
        "{HEAD}type doc\n  relations\n    define a: {}[user]{}\n",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert!(
        errors(&deep)
            .iter()
            .any(|(_, _, m)| m.contains("nest 5000 levels deep") && m.contains("limit of 32"))
    );
    let huge = "#".repeat(2 * 1024 * 1024);
    assert!(errors(&huge)[0].2.contains("limit"));
    let json = format!(
        "{{\"schema_version\":\"1.1\",\"type_definitions\":[{{\"type\":\"doc\",\"relations\":{{\"a\":{}{{\"this\":{{}}}}{}}}}}]}}",
        "{\"union\":{\"child\":[".repeat(60),
        "]}}".repeat(60)
    );
    assert!(Model::from_json(&json).is_err());
}

fn normalized(ast: &ModelAst) -> ModelAst {
    let mut ast = ast.clone();
    ast.types.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &mut ast.types {
        t.relations.sort_by(|a, b| a.name.cmp(&b.name));
    }
    ast.conditions.sort_by(|a, b| a.name.cmp(&b.name));
    for c in &mut ast.conditions {
        c.params.sort_by(|a, b| a.0.cmp(&b.0));
    }
    ast
}

#[test]
fn dsl_json_round_trips() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut models: Vec<String> = portcullis_rebac::corpus::load_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|f| f.model)
        .collect();
    models.push(portcullis_rebac::generate::MODEL.to_owned());
    for text in models {
        let first = Model::from_dsl(&text).unwrap();
        let json = first.to_json();
        let second = Model::from_json(&json.to_string()).unwrap();
        assert_eq!(second.to_json(), json, "JSON round trip of\n{text}");
        assert_eq!(normalized(first.ast()), normalized(second.ast()));
        let third = Model::from_dsl(&first.to_dsl()).unwrap();
        assert_eq!(
            first.ast(),
            third.ast(),
            "DSL round trip of\n{text}\nprinted\n{}",
            first.to_dsl()
        );
    }
}

#[test]
fn json_errors_carry_paths() {
    let json = r#"{"schema_version":"1.1","type_definitions":[{"type":"user"},{"type":"doc","relations":{"viewer":{"computedUserset":{"relation":"editor"}}}}]}"#;
    let errors = Model::from_json(json).unwrap_err().0;
    assert!(
        errors.iter().any(
            |e| e.path.as_deref() == Some("type_definitions[1].relations.viewer")
                && e.message.contains("`editor`")
        ),
        "{errors:?}"
    );
}

fn model() -> Arc<Model> {
    Arc::new(Model::from_dsl(&format!("{HEAD}type group\n  relations\n    define member: [user]\ntype doc\n  relations\n    define viewer: [user, group#member, user with c]\n    define owner: [user]\ncondition c(n: int) {{\n  n > 1\n}}\n")).unwrap())
}

#[test]
fn tuples_are_validated() {
    let model = model();
    let bad = |t: Tuple, needle: &str| {
        let e = model.validate_tuple(&t).unwrap_err().to_string();
        assert!(e.contains(needle), "{e} lacks {needle}");
    };
    bad(
        Tuple::parse("user:a", "viewer", "folder:x").unwrap(),
        "no type `folder`",
    );
    bad(
        Tuple::parse("user:a", "editor", "doc:x").unwrap(),
        "no relation `editor`",
    );
    bad(
        Tuple::parse("group:g", "viewer", "doc:x").unwrap(),
        "may not be related directly",
    );
    bad(
        Tuple::parse("user:*", "viewer", "doc:x").unwrap(),
        "may not be related directly",
    );
    bad(
        Tuple::parse("group:g#member", "owner", "doc:x").unwrap(),
        "may not be related directly",
    );
    bad(
        Tuple::parse("user:a", "viewer", "doc:x")
            .unwrap()
            .with_condition("zz", Map::new()),
        "no condition `zz`",
    );
    bad(
        Tuple::parse("user:a", "owner", "doc:x")
            .unwrap()
            .with_condition("c", Map::new()),
        "not allowed here",
    );
    let context = json!({"n": "three"}).as_object().unwrap().clone();
    bad(
        Tuple::parse("user:a", "viewer", "doc:x")
            .unwrap()
            .with_condition("c", context),
        "expected int",
    );
    let context = json!({"m": 1}).as_object().unwrap().clone();
    bad(
        Tuple::parse("user:a", "viewer", "doc:x")
            .unwrap()
            .with_condition("c", context),
        "no parameter `m`",
    );
    assert!(
        model
            .validate_tuple(&Tuple::parse("group:g#member", "viewer", "doc:x").unwrap())
            .is_ok()
    );
}

#[test]
fn limits() {
    let model = model();
    let many: Vec<Tuple> = (0..101)
        .map(|i| Tuple::parse(&format!("user:u{i}"), "owner", "doc:x").unwrap())
        .collect();
    let e = validate_write_batch(&model, &many).unwrap_err();
    assert!(e[0].contains("more than the limit of 100"), "{e:?}");
    let graph = Graph::new(Arc::clone(&model));
    let mut request =
        CheckRequest::new("user:a".parse().unwrap(), "owner", "doc:x".parse().unwrap());
    request.contextual_tuples = many.clone();
    assert_eq!(
        graph.check(&request),
        Err(QueryError::TooManyContextualTuples(
            MAX_CONTEXTUAL_TUPLES + 1
        ))
    );
    let requests =
        vec![CheckRequest::new("user:a".parse().unwrap(), "owner", "doc:x".parse().unwrap()); 51];
    let results = graph.batch_check(&requests);
    assert!(
        results
            .iter()
            .all(|r| *r == Err(QueryError::TooManyChecks(MAX_BATCH_CHECK_ITEMS + 1)))
    );
}

#[test]
fn writes_and_deletes_are_incremental() {
    let mut graph = Graph::new(model());
    let t = Tuple::parse("user:a", "owner", "doc:x").unwrap();
    assert!(graph.write(t.clone()).unwrap());
    assert!(!graph.write(t.clone()).unwrap());
    assert_eq!(graph.len(), 1);
    let request = CheckRequest::new("user:a".parse().unwrap(), "owner", "doc:x".parse().unwrap());
    assert!(graph.check(&request).unwrap().allowed);
    assert!(graph.delete(&t));
    assert!(!graph.delete(&t));
    assert!(!graph.check(&request).unwrap().allowed);
    assert_eq!(graph.len(), 0);
}

#[test]
fn path_explains_the_grant() {
    let model = Arc::new(Model::from_dsl(portcullis_rebac::generate::MODEL).unwrap());
    let tuples = [
        Tuple::parse("folder:a", "parent", "document:1").unwrap(),
        Tuple::parse("group:eng#member", "viewer", "folder:a").unwrap(),
        Tuple::parse("user:anne", "member", "group:eng").unwrap(),
    ];
    let graph = Graph::build(model, tuples).unwrap();
    let result = graph
        .check(&CheckRequest::new(
            "user:anne".parse().unwrap(),
            "viewer",
            "document:1".parse().unwrap(),
        ))
        .unwrap();
    assert_eq!(
        result.path,
        [
            "document:1#viewer",
            "folder:a#viewer (from parent)",
            "group:eng#member",
            "user:anne"
        ]
    );
    let tree = graph
        .expand(&"document:1".parse().unwrap(), "viewer", &[])
        .unwrap();
    assert_eq!(
        tree["tree"]["root"]["union"]["nodes"][1]["leaf"]["tupleToUserset"]["computed"][0]["userset"],
        "folder:a#viewer"
    );
}

/// The model of issue 15: `parent` may point at `folder` (which defines `can_view`) and at
/// `employee` (which does not).
const PARTIAL_TTU: &str = "model\n  schema 1.1\ntype user\ntype employee\ntype folder\n  relations\n    define can_view: [user]\ntype document\n  relations\n    define parent: [folder, employee]\n    define viewer: can_view from parent\n";

#[test]
fn tuple_to_userset_is_valid_when_one_tupleset_type_defines_the_relation() {
    let model = Model::from_dsl(PARTIAL_TTU).unwrap();
    // The JSON form goes through the same validator.
    let from_json = Model::from_json(&model.to_json_string()).unwrap();
    assert_eq!(from_json.ast(), model.ast());
    // Chains and computed relations reached through such a tupleset, with wildcards.
    let chained = format!(
        "{PARTIAL_TTU}    define reader: viewer or [user:*]\ntype report\n  relations\n    define parent: [document, employee, folder]\n    define viewer: reader from parent or can_view from parent\n"
    );
    let chained = Model::from_dsl(&chained).unwrap();
    Model::from_json(&chained.to_json_string()).unwrap();
}

#[test]
fn tuple_to_userset_is_refused_when_no_tupleset_type_defines_the_relation() {
    let text = "model\n  schema 1.1\ntype user\ntype employee\ntype team\ntype document\n  relations\n    define parent: [team, employee]\n    define viewer: can_view from parent\n";
    assert_error(text, 9, 20, "none of the types `parent` may point at");
    let json = r#"{"schema_version":"1.1","type_definitions":[{"type":"user"},{"type":"employee"},{"type":"folder","relations":{"can_view":{"this":{}}},"metadata":{"relations":{"can_view":{"directly_related_user_types":[{"type":"user"}]}}}},{"type":"document","relations":{"parent":{"this":{}},"viewer":{"tupleToUserset":{"tupleset":{"relation":"parent"},"computedUserset":{"relation":"can_view"}}}},"metadata":{"relations":{"parent":{"directly_related_user_types":[{"type":"employee"}]}}}}]}"#;
    let errors = Model::from_json(json).unwrap_err().0;
    assert!(
        errors.iter().any(
            |e| e.path.as_deref() == Some("type_definitions[3].relations.viewer")
                && e.message.contains("has a relation `can_view`")
        ),
        "{errors:?}"
    );
    // With `folder` added to the tupleset's types, the same JSON model is valid.
    Model::from_json(&json.replace(
        r#"[{"type":"employee"}]"#,
        r#"[{"type":"employee"},{"type":"folder"}]"#,
    ))
    .unwrap();
}

#[test]
fn tupleset_types_without_the_relation_contribute_nothing() {
    let model = Arc::new(Model::from_dsl(PARTIAL_TTU).unwrap());
    let tuples = [
        ("user:anne", "can_view", "folder:f"),
        ("folder:f", "parent", "document:d"),
        ("employee:e", "parent", "document:d"),
        ("employee:e", "parent", "document:x"),
    ]
    .map(|(u, r, o)| Tuple::parse(u, r, o).unwrap());
    let graph = Graph::build(model, tuples).unwrap();
    let check = |user: &str, object: &str| {
        graph
            .check(&CheckRequest::new(
                user.parse().unwrap(),
                "viewer",
                object.parse().unwrap(),
            ))
            .unwrap()
            .allowed
    };
    assert!(check("user:anne", "document:d"));
    assert!(!check("user:anne", "document:x"));
    assert!(!check("user:bob", "document:d"));
    let objects = graph
        .list_objects(
            &"user:anne".parse().unwrap(),
            "viewer",
            "document",
            &Map::new(),
            &[],
        )
        .unwrap();
    assert_eq!(objects, vec!["document:d".parse().unwrap()]);
    let users = graph
        .list_users(
            &"document:d".parse().unwrap(),
            "viewer",
            &["user".parse().unwrap()],
            &Map::new(),
            &[],
        )
        .unwrap();
    assert_eq!(users, vec!["user:anne".parse().unwrap()]);
    // Expand lists only the tupleset objects whose type defines the relation.
    let tree = graph
        .expand(&"document:d".parse().unwrap(), "viewer", &[])
        .unwrap();
    assert_eq!(
        tree["tree"]["root"]["leaf"]["tupleToUserset"]["computed"],
        json!([{"userset": "folder:f#can_view"}])
    );
}

#[test]
fn list_users_reports_a_condition_error_like_list_objects() {
    let model = Arc::new(
        Model::from_dsl(&format!(
            "{HEAD}type folder\n  relations\n    define viewer: [user]\ntype document\n  relations\n    define parent: [folder with a, folder with b]\n    define viewer: viewer from parent\ncondition a(x: int) {{\n  x > 0\n}}\ncondition b(y: int) {{\n  y > 0\n}}\n"
        ))
        .unwrap(),
    );
    let mut graph = Graph::new(model);
    for (user, relation, object, condition) in [
        ("folder:f", "parent", "document:1", Some("a")),
        ("folder:g", "parent", "document:1", Some("b")),
        ("user:jon", "viewer", "folder:f", None),
        ("user:jon", "viewer", "folder:g", None),
    ] {
        let mut tuple = Tuple::parse(user, relation, object).unwrap();
        tuple.condition = condition.map(|name| portcullis_rebac::TupleCondition {
            name: name.to_owned(),
            context: Map::new(),
        });
        graph.write(tuple).unwrap();
    }
    let mut context = Map::new();
    context.insert("x".into(), json!(1));
    let missing = QueryError::MissingParameter {
        condition: "b".into(),
        parameter: "y".into(),
    };
    let objects = graph.list_objects(
        &"user:jon".parse().unwrap(),
        "viewer",
        "document",
        &context,
        &[],
    );
    assert_eq!(objects, Err(missing.clone()));
    let users = graph.list_users(
        &"document:1".parse().unwrap(),
        "viewer",
        &["user".parse().unwrap()],
        &context,
        &[],
    );
    assert_eq!(users, Err(missing));
    // With both parameters, both answer.
    context.insert("y".into(), json!(0));
    let users = graph
        .list_users(
            &"document:1".parse().unwrap(),
            "viewer",
            &["user".parse().unwrap()],
            &context,
            &[],
        )
        .unwrap();
    assert_eq!(users, vec!["user:jon".parse().unwrap()]);
}

/// Models OpenFGA refuses (found by the differential test) are refused here too.
#[test]
fn models_openfga_refuses_are_refused() {
    let refused = |text: &str, needle: &str| {
        let error = Model::from_dsl(text)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{text}"));
        assert!(error.to_string().contains(needle), "{error}");
    };
    let head = "model\n  schema 1.1\ntype user\ntype doc\n  relations\n";
    // Computed relations that loop, though each has direct types.
    refused(
        &format!("{head}    define r0: [user] or r1\n    define r1: [user] or r0\n"),
        "cycle",
    );
    // A `but not` whose subtracted operand only leads back to the relation itself.
    refused(
        &format!("{head}    define parent: [doc]\n    define r0: [user] but not r0 from parent\n"),
        "no entrypoint",
    );
    // Relation names longer than 50 characters.
    refused(
        &format!("{head}    define {}: [user]\n", "n".repeat(51)),
        "longer than 50",
    );
    assert!(Model::from_dsl(&format!("{head}    define {}: [user]\n", "n".repeat(50))).is_ok());
    // Still accepted: a loop through `from` with a direct way in.
    assert!(
        Model::from_dsl(&format!(
            "{head}    define parent: [doc]\n    define r0: [user] or r0 from parent\n"
        ))
        .is_ok()
    );
}

/// `doc:1#viewer@doc:1#viewer` holds without a tuple; OpenFGA refuses to store it.
#[test]
fn a_tuple_naming_its_own_userset_is_refused() {
    let model = Model::from_dsl(
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user, doc#viewer]\n",
    )
    .unwrap();
    let own = Tuple::parse("doc:1#viewer", "viewer", "doc:1").unwrap();
    assert!(model.validate_tuple(&own).is_err());
    let other = Tuple::parse("doc:2#viewer", "viewer", "doc:1").unwrap();
    assert!(model.validate_tuple(&other).is_ok());
}
