//! A CEL expression compiled with the syntax and cost limits, then evaluated within the
//! per-decision budget over variables read from JSON.
//!
//! Input: the expression, a NUL byte, then a JSON object whose members are the variables.
//! Expressions whose name starts with `n` are declared scalar when the first byte of the JSON
//! part is a space (so both estimates of `+` are exercised).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_cel::{context, from_json, limits, Budget, EvalError, Expression};
use portcullis_fuzz::split_nul;

fuzz_target!(|data: &[u8]| {
    let (expression, variables) = split_nul(data);
    let Ok(expression) = std::str::from_utf8(expression) else {
        return;
    };
    let typed = variables.first() == Some(&b' ');
    let compiled = if typed {
        Expression::compile_typed(expression, &|name| name.starts_with('n'))
    } else {
        Expression::compile(expression)
    };
    let Ok(compiled) = compiled else {
        return;
    };
    assert!(compiled.estimated_cost() <= limits::MAX_STATIC_COST);
    let mut context = context();
    if let Ok(serde_json::Value::Object(members)) =
        serde_json::from_slice::<serde_json::Value>(variables)
    {
        for (name, value) in &members {
            match from_json(name, value) {
                Ok(value) => context.add_variable_from_value(name.clone(), value),
                Err(_) => return,
            }
        }
    }
    let budget = Budget::per_evaluation();
    let whole = compiled.evaluate(&context, &budget);
    assert!(budget.spent() <= budget.limit());
    if let Err(EvalError::Budget { limit }) = whole {
        assert_eq!(limit, limits::EVALUATION_BUDGET);
    }
    let budget = Budget::per_evaluation();
    for part in compiled.conjuncts() {
        let _ = part.reads_only(&["request", "principal"]);
        let _ = part.evaluate(&context, &budget);
    }
    let _ = compiled.evaluate_bool(&context, &Budget::new(1_000));
});
