#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step must fail the test"
)]

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn eval_with(text: &str, vars: serde_json::Value, budget: &Budget) -> Result<Value, EvalError> {
    let expression = Expression::compile(text).map_err(|e| EvalError::Failed(format!("{e:?}")))?;
    let mut context = context();
    if let Some(map) = vars.as_object() {
        for (name, value) in map {
            context.add_variable_from_value(name.clone(), from_json(name, value).unwrap());
        }
    }
    expression.evaluate(&context, budget)
}

fn eval(text: &str, vars: serde_json::Value) -> Result<Value, EvalError> {
    eval_with(text, vars, &Budget::per_evaluation())
}

fn seven_nested_loops() -> String {
    // The shape of the expression a hostile policy author used: 10^7 steps per evaluation.
    let mut text = String::from("principal.id == 'nobody'");
    for depth in 0..7 {
        text = format!("[0,1,2,3,4,5,6,7,8,9].exists(v{depth}, {text})");
    }
    text
}

#[test]
fn nested_loops_over_literals_are_refused_at_compile_time_with_their_location() {
    let text = seven_nested_loops();
    let errors = Expression::compile(&text).unwrap_err();
    assert_eq!(errors.len(), 1);
    let error = &errors[0];
    assert!(
        error.message.contains("estimated cost") && error.message.contains("100000"),
        "{error}"
    );
    assert!(error.message.contains("runs up to 10 times"), "{error}");
    // The outermost loop is the costliest; its position is that of its `exists` call.
    assert_eq!(error.line, 1);
    assert!(error.column > 1, "{error}");
}

#[test]
fn a_loop_over_a_request_list_is_accepted_and_nested_ones_are_refused() {
    let single = Expression::compile("principal.groups.exists(g, g == 'admin')").unwrap();
    assert!(single.estimated_cost() >= limits::MAX_INPUT_ITEMS as u64);
    assert!(single.estimated_cost() <= limits::MAX_STATIC_COST);
    let nested = Expression::compile(
        "principal.groups.exists(g, resource.attributes.groups.exists(h, g == h))",
    )
    .unwrap_err();
    assert!(
        nested[0]
            .message
            .contains("assumed to hold up to 1000 items"),
        "{}",
        nested[0].message
    );
}

#[test]
fn costs_grow_with_membership_tests_and_concatenation() {
    let scalar = Expression::compile("principal.id == 'a'").unwrap();
    let member = Expression::compile("principal.id in resource.attributes.owners").unwrap();
    assert!(member.estimated_cost() >= scalar.estimated_cost() + 1000);
    let concat = Expression::compile("size(context.a + context.b) > 2").unwrap();
    assert!(concat.estimated_cost() >= 2000);
}

#[test]
fn a_spent_budget_stops_the_evaluation() {
    let items: Vec<u32> = (0..1000).collect();
    let vars = json!({ "context": { "items": items } });
    let text = "context.items.all(x, x >= 0)";
    assert_eq!(eval(text, vars.clone()), Ok(Value::Bool(true)));
    let small = Budget::new(500);
    assert_eq!(
        eval_with(text, vars.clone(), &small),
        Err(EvalError::Budget { limit: 500 })
    );
    assert_eq!(
        small.spent(),
        500,
        "a stopped evaluation spends its whole budget"
    );
}

#[test]
fn a_spent_budget_cannot_be_absorbed_into_an_allow() {
    // `error || true` is `true` in CEL; an evaluation cut short must still fail.
    let items: Vec<u32> = (0..1000).collect();
    let vars = json!({ "context": { "items": items } });
    let text = "context.items.exists(x, x < 0) || true";
    assert_eq!(eval(text, vars.clone()), Ok(Value::Bool(true)));
    assert_eq!(
        eval_with(text, vars, &Budget::new(100)),
        Err(EvalError::Budget { limit: 100 })
    );
}

#[test]
fn evaluations_of_one_decision_share_their_budget() {
    let items: Vec<u32> = (0..1000).collect();
    let vars = json!({ "context": { "items": items } });
    let budget = Budget::new(12_000);
    let text = "context.items.all(x, x >= 0)";
    assert_eq!(
        eval_with(text, vars.clone(), &budget),
        Ok(Value::Bool(true))
    );
    let first = budget.spent();
    assert!(first > 1000, "every step is charged: {first}");
    // The budget left is not enough for a second loop of the same length.
    let mut result = Ok(Value::Null);
    for _ in 0..20 {
        result = eval_with(text, vars.clone(), &budget);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(EvalError::Budget { limit: 12_000 }));
}

#[test]
fn loops_still_answer_as_the_interpreter_does() {
    let vars = json!({ "context": { "items": [1, 2, 3], "names": ["a", "bb"] } });
    let cases = [
        ("context.items.exists(x, x == 2)", Value::Bool(true)),
        ("context.items.all(x, x > 1)", Value::Bool(false)),
        ("context.items.exists_one(x, x > 2)", Value::Bool(true)),
        (
            "context.items.map(x, x * 2) == [2, 4, 6]",
            Value::Bool(true),
        ),
        (
            "context.items.filter(x, x != 2) == [1, 3]",
            Value::Bool(true),
        ),
        (
            "context.items.map(x, x > 1, x) == [2, 3]",
            Value::Bool(true),
        ),
        ("context.names.all(n, size(n) > 0)", Value::Bool(true)),
        (
            "[[1, 2], [3]].exists(l, l.exists(x, x == 3))",
            Value::Bool(true),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(eval(text, vars.clone()), Ok(expected), "{text}");
    }
}

#[test]
fn inputs_beyond_the_limits_are_refused_naming_where() {
    let items: Vec<u32> = (0..1001).collect();
    let error = from_json("context", &json!({ "items": items })).unwrap_err();
    assert_eq!(error.path, "context.items");
    assert!(error.to_string().contains("1001 items"), "{error}");
    let long = "x".repeat(limits::MAX_INPUT_STRING_BYTES + 1);
    let error = from_json("principal", &json!({ "tags": ["ok", long] })).unwrap_err();
    assert_eq!(error.path, "principal.tags[1]");
    let mut deep = json!(1);
    for _ in 0..=limits::MAX_INPUT_DEPTH {
        deep = json!([deep]);
    }
    assert!(from_json("context", &deep).is_err());
    assert!(from_json("context", &json!({ "a": [1, {"b": "c"}] })).is_ok());
}

#[test]
fn variables_are_found_with_positions_and_loop_variables_are_not() {
    let expression =
        Expression::compile("principal.id == 'a' && context.items.exists(x, x == user)").unwrap();
    let names: Vec<(&str, u32, u32)> = expression
        .variables()
        .iter()
        .map(|variable| (variable.name.as_str(), variable.line, variable.column))
        .collect();
    assert_eq!(
        names,
        vec![("principal", 1, 1), ("context", 1, 24), ("user", 1, 53)]
    );
}

#[test]
fn syntax_errors_carry_positions() {
    let errors = Expression::compile("principal.id == ").unwrap_err();
    assert_eq!((errors[0].line, errors[0].column), (1, 17));
    let errors =
        Expression::compile(&format!("{}1{}", "(".repeat(30), ")".repeat(30))).unwrap_err();
    assert!(errors[0].message.contains("nest"), "{}", errors[0].message);
    let errors = Expression::compile(&"a".repeat(limits::MAX_LENGTH + 1)).unwrap_err();
    assert!(
        errors[0].message.contains("bytes long"),
        "{}",
        errors[0].message
    );
}

#[test]
fn conjuncts_split_the_top_level_and() {
    let expression =
        Expression::compile("action.write && (env.a || principal.id == 'x') && tenant.id == 't'")
            .unwrap();
    let parts = expression.conjuncts();
    assert_eq!(parts.len(), 3);
    assert!(parts[0].reads_only(&["action"]));
    assert!(!parts[1].reads_only(&["action", "env"]));
    assert!(parts[2].reads_only(&["tenant"]));
}

/// Small expressions over a list variable and literals, with loops nested up to three deep.
fn expression_strategy() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("x > 1".to_owned()),
        Just("x == 2".to_owned()),
        Just("size(context.items) > 2".to_owned()),
        Just("true".to_owned()),
        Just("context.flag".to_owned()),
        Just("2 in context.items".to_owned()),
    ];
    leaf.prop_recursive(3, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.clone().prop_map(|a| format!("!({a})")),
            inner
                .clone()
                .prop_map(|a| format!("context.items.exists(x, {a})")),
            inner
                .clone()
                .prop_map(|a| format!("[0, 1, 2, 3].all(x, {a})")),
            inner
                .clone()
                .prop_map(|a| format!("context.items.filter(x, {a}).size() >= 0")),
            inner.prop_map(|a| format!("context.items.map(x, {a}).exists(y, y)")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The instrumented expression answers as the interpreter does on the expression as
    /// written, and never spends more than its estimate.
    #[test]
    fn instrumentation_changes_no_answer_and_the_estimate_bounds_the_spend(
        text in expression_strategy(),
        items in proptest::collection::vec(0i64..5, 0..40),
        flag in any::<bool>(),
    ) {
        let vars = json!({ "context": { "items": items, "flag": flag } });
        // Expressions over the cost limit are refused, which other tests cover.
        let compiled = Expression::compile(&text);
        prop_assume!(compiled.is_ok());
        let expression = compiled.unwrap();
        let plain = Program::compile(&text).unwrap();
        let mut context = context();
        let value = from_json("context", &vars["context"]).unwrap();
        context.add_variable_from_value("context", value);
        let budget = Budget::new(u64::MAX / 2);
        let ours = expression.evaluate(&context, &budget);
        let theirs = plain.execute(&context);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(EvalError::Failed(_)), Err(_)) => {}
            _ => prop_assert!(false, "{text}: {ours:?} vs {theirs:?}"),
        }
        prop_assert!(budget.spent() <= expression.estimated_cost(),
            "{text}: spent {} > estimate {}", budget.spent(), expression.estimated_cost());
    }
}

// ------------------------------------------------------------ inputs built without JSON

/// JSON values near and over each input limit: long strings and keys, long lists, deep
/// nesting, numbers of every kind.
fn json_strategy() -> impl Strategy<Value = serde_json::Value> {
    let long = "x".repeat(limits::MAX_INPUT_STRING_BYTES + 1);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (i64::MAX as u64..=u64::MAX).prop_map(serde_json::Value::from),
        (-1e9f64..1e9).prop_map(serde_json::Value::from),
        "[a-c]{0,3}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from(long.clone())),
    ];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        let long = long.clone();
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![4 => "[a-c]{1,2}".boxed(), 1 => Just(long.clone()).boxed()],
                inner.clone(),
                0..4
            )
            .prop_map(|entries| serde_json::Value::Object(entries.into_iter().collect())),
            (inner.clone(), any::<bool>()).prop_map(|(value, deep)| {
                // Past the depth limit, or just within it.
                let mut nested = value;
                let levels = if deep { limits::MAX_INPUT_DEPTH } else { 3 };
                for _ in 0..levels {
                    nested = json!([nested]);
                }
                nested
            }),
            Just(serde_json::Value::from(vec![
                1;
                limits::MAX_INPUT_ITEMS + 1
            ])),
        ]
    })
}

/// What `Input` holds, as the owned `Value` a condition's result would be.
fn value_of(input: &Input<'_>) -> Value {
    Value::try_from(&*input.as_val()).unwrap()
}

/// A field of an object built from parts, and the JSON it stands for.
#[derive(Debug, Clone)]
enum FieldSpec {
    Null,
    Bool(bool),
    Str(String),
    Strings(Vec<String>),
    Map(serde_json::Map<String, serde_json::Value>),
    Json(serde_json::Value),
    Object(Vec<(&'static str, FieldSpec)>),
}

const FIELD_NAMES: [&str; 4] = ["id", "type", "roles", "attributes"];

fn field_strategy() -> impl Strategy<Value = FieldSpec> {
    let long = "x".repeat(limits::MAX_INPUT_STRING_BYTES + 1);
    let plain = prop_oneof![
        Just(FieldSpec::Null),
        any::<bool>().prop_map(FieldSpec::Bool),
        prop_oneof![3 => "[a-c]{0,3}".boxed(), 1 => Just(long.clone()).boxed()]
            .prop_map(FieldSpec::Str),
        prop_oneof![
            3 => proptest::collection::vec(
                prop_oneof![3 => "[a-c]{0,3}".boxed(), 1 => Just(long.clone()).boxed()],
                0..4
            )
            .boxed(),
            1 => Just(vec![String::new(); limits::MAX_INPUT_ITEMS + 1]).boxed(),
        ]
        .prop_map(FieldSpec::Strings),
        json_strategy().prop_map(|value| match value {
            serde_json::Value::Object(entries) => FieldSpec::Map(entries),
            other => FieldSpec::Json(other),
        }),
        json_strategy().prop_map(FieldSpec::Json),
    ];
    plain.prop_recursive(2, 8, 4, |inner| {
        (
            Just(FIELD_NAMES).prop_shuffle(),
            proptest::collection::vec(inner, 4),
        )
            .prop_map(|(names, fields)| FieldSpec::Object(names.into_iter().zip(fields).collect()))
    })
}

impl FieldSpec {
    fn field(&self) -> Field<'_> {
        match self {
            FieldSpec::Null => Field::Null,
            FieldSpec::Bool(value) => Field::Bool(*value),
            FieldSpec::Str(text) => Field::Str(text),
            FieldSpec::Strings(items) => Field::Strings(items.iter().map(String::as_str).collect()),
            FieldSpec::Map(entries) => Field::Map(entries),
            FieldSpec::Json(value) => Field::Json(value),
            FieldSpec::Object(fields) => Field::Object(
                fields
                    .iter()
                    .map(|(name, spec)| (*name, spec.field()))
                    .collect(),
            ),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            FieldSpec::Null => serde_json::Value::Null,
            FieldSpec::Bool(value) => json!(value),
            FieldSpec::Str(text) => json!(text),
            FieldSpec::Strings(items) => json!(items),
            FieldSpec::Map(entries) => serde_json::Value::Object(entries.clone()),
            FieldSpec::Json(value) => value.clone(),
            FieldSpec::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(name, spec)| ((*name).to_owned(), spec.json()))
                    .collect(),
            ),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `Input::json` and `Input::map` give what `from_json` gives: the same value, or the same
    /// error.
    #[test]
    fn inputs_from_json_equal_from_json(value in json_strategy()) {
        let expected = from_json("v", &value);
        let input = Input::json("v", &value);
        prop_assert_eq!(input.as_ref().map(value_of), expected.as_ref().cloned());
        if let serde_json::Value::Object(entries) = &value {
            let input = Input::map("v", entries);
            prop_assert_eq!(input.as_ref().map(value_of), expected.as_ref().cloned());
        }
    }

    /// An object built from fields is the value, or the error, `from_json` gives for the JSON
    /// object with those fields, whatever order they are given in.
    #[test]
    fn objects_from_fields_equal_their_json(
        names in Just(FIELD_NAMES).prop_shuffle(),
        specs in proptest::collection::vec(field_strategy(), 4),
    ) {
        let fields: Vec<(&'static str, FieldSpec)> = names.into_iter().zip(specs).collect();
        let json = FieldSpec::Object(fields.clone()).json();
        let expected = from_json("v", &json);
        let parts: [(&'static str, Field<'_>); 4] =
            std::array::from_fn(|index| (fields[index].0, fields[index].1.field()));
        let input = Input::object("v", parts);
        prop_assert_eq!(input.as_ref().map(value_of), expected.as_ref().cloned());
    }
}

#[test]
fn an_object_of_fields_reports_the_problem_its_json_would() {
    let long = "x".repeat(limits::MAX_INPUT_STRING_BYTES + 1);
    let items = vec![String::new(); limits::MAX_INPUT_ITEMS + 1];
    let attributes = json!({ "note": long }).as_object().cloned().unwrap();
    let built = Input::object(
        "principal",
        [
            ("id", Field::Str(&long)),
            ("type", Field::Str("user")),
            (
                "roles",
                Field::Strings(items.iter().map(String::as_str).collect()),
            ),
            ("attributes", Field::Map(&attributes)),
        ],
    )
    .unwrap_err();
    let json = json!({ "id": long, "type": "user", "roles": items, "attributes": attributes });
    let expected = from_json("principal", &json).unwrap_err();
    assert_eq!(built, expected);
    assert!(built.path.starts_with("principal."), "{built}");
}
