//! Conditions: CEL expressions compiled once at load and evaluated per decision.
//!
//! The rest of the engine sees [`Condition`] (a compiled expression that reads only the
//! documented variables) and [`Activation`] (the variables of one decision, built lazily and at
//! most once per decision, and the decision's cost budget, which all its conditions share).
//! Compiling, cost limits and evaluation belong to `portcullis-cel`, shared with the
//! relationship graph's conditions; this module adds what is particular to policies.

use std::sync::OnceLock;

use portcullis_cel::{Budget, EvalError, Expression, Input, InputError, Value as CelValue};

pub use portcullis_cel::CompileError as SyntaxError;

/// The variables a condition may read.
pub const VARIABLES: &[&str] = &[
    "principal",
    "resource",
    "action",
    "context",
    "tenant",
    "env",
];

/// A compiled condition.
#[derive(Debug)]
pub struct Condition {
    expression: Expression,
}

/// What a caller fixes when it settles conditions ahead of requests: variables fixed whole,
/// and variables of which only some fields are fixed (the others vary per request).
#[derive(Debug, Clone, Copy)]
pub struct Provided<'a> {
    /// Variables fixed whole.
    pub whole: &'a [&'a str],
    /// Variables fixed only in the listed fields.
    pub fields: &'a [(&'a str, &'a [&'a str])],
}

impl Provided<'_> {
    /// Whether `conjunct` reads only what is fixed.
    fn covers(&self, conjunct: &portcullis_cel::Part<'_>) -> bool {
        conjunct.reads_only_fields(self.whole, self.fields)
    }
}

impl Condition {
    /// Compiles `text`, checking that it only reads the documented variables and stays within
    /// the size, nesting and cost limits (`portcullis_cel::limits`).
    pub fn compile(text: &str) -> Result<Condition, Vec<SyntaxError>> {
        let expression = Expression::compile(text)?;
        let unknown: Vec<SyntaxError> = expression
            .variables()
            .iter()
            .filter(|variable| !VARIABLES.contains(&variable.name.as_str()))
            .map(|variable| SyntaxError {
                line: variable.line,
                column: variable.column,
                kind: portcullis_cel::CompileErrorKind::Variable,
                message: format!(
                    "unknown variable `{}`; conditions read {}",
                    variable.name,
                    VARIABLES.join(", ")
                ),
            })
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        Ok(Condition { expression })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        self.expression.text()
    }

    /// The worst-case cost of one evaluation, in cost units.
    pub fn estimated_cost(&self) -> u64 {
        self.expression.estimated_cost()
    }

    /// Whether a top-level conjunct reads only what `provided` fixes, so that
    /// [`Condition::static_value`] may decide the condition.
    pub fn settleable(&self, provided: &Provided<'_>) -> bool {
        self.expression
            .conjuncts()
            .iter()
            .any(|conjunct| provided.covers(conjunct))
    }

    /// The condition's value when it is decided by the variables `source` provides alone (the
    /// bundle compiler passes `action` and `tenant`, which are fixed per action): `Some(false)`
    /// when a top-level conjunct reads only those variables and is false, `Some(true)` when
    /// every conjunct does and all are true, otherwise `None`. A conjunct that errors (or runs
    /// out of `budget`) is not decided here, so its error still surfaces at decision time.
    pub fn static_value(
        &self,
        source: &dyn VariableSource,
        provided: &Provided<'_>,
        budget: &Budget,
    ) -> Option<bool> {
        let activation = Activation::new(source);
        let mut context = portcullis_cel::context();
        context.set_variable_resolver(&activation);
        let mut all_true = true;
        for conjunct in self.expression.conjuncts() {
            if !provided.covers(&conjunct) {
                all_true = false;
                continue;
            }
            match conjunct.evaluate(&context, budget) {
                Ok(CelValue::Bool(false)) => return Some(false),
                Ok(CelValue::Bool(true)) => {}
                _ => all_true = false,
            }
        }
        all_true.then_some(true)
    }

    /// Evaluates the condition, charging the decision's budget; anything but a boolean result
    /// is an error.
    pub fn evaluate(&self, activation: &Activation<'_>) -> Result<bool, String> {
        let mut context = portcullis_cel::context();
        context.set_variable_resolver(activation);
        match self.expression.evaluate_bool(&context, &activation.budget) {
            Ok(value) => Ok(value),
            // A variable over the input limits reads as undeclared to the interpreter; say why.
            Err(EvalError::Failed(message)) => match activation.input_error() {
                Some(error) => Err(error.to_string()),
                None => Err(message),
            },
            Err(error) => Err(error.to_string()),
        }
    }
}

/// A source of the variables of one decision. Implemented by the engine; each variable is
/// asked for at most once per decision.
pub trait VariableSource: Sync {
    /// The value of a top-level variable (one of [`VARIABLES`]), which may borrow from the
    /// source, or why it cannot be handed to a condition (over the input limits).
    fn variable(&self, name: &str) -> Option<Result<Input<'_>, InputError>>;
}

/// The variables of one decision, built on first use and then lent to every condition that
/// reads them, and the decision's evaluation budget, which every condition it evaluates
/// shares.
pub struct Activation<'a> {
    source: &'a dyn VariableSource,
    /// A variable built beforehand, by name, which the source is not asked for.
    lent: Option<(&'static str, &'a Result<Input<'a>, InputError>)>,
    cache: [OnceLock<Slot<'a>>; 6],
    budget: Budget,
}

/// A variable of one decision, once a condition has read it.
enum Slot<'a> {
    /// Asked of the source (`None` when it has no such variable).
    Built(Option<Result<Input<'a>, InputError>>),
    /// Lent by the caller.
    Lent(&'a Result<Input<'a>, InputError>),
}

impl<'a> Slot<'a> {
    fn value(&self) -> Option<&Result<Input<'a>, InputError>> {
        match self {
            Slot::Built(value) => value.as_ref(),
            Slot::Lent(value) => Some(value),
        }
    }
}

impl std::fmt::Debug for Activation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activation")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<'a> Activation<'a> {
    /// An activation reading from `source`, with a fresh decision budget.
    pub fn new(source: &'a dyn VariableSource) -> Self {
        Activation::lending(source, None)
    }

    /// Like [`Activation::new`], with the variable `lent` names taking the value it holds
    /// instead of asking `source` for it; that value must be the one `source` would give.
    pub fn lending(
        source: &'a dyn VariableSource,
        lent: Option<(&'static str, &'a Result<Input<'a>, InputError>)>,
    ) -> Self {
        Activation {
            source,
            lent,
            cache: Default::default(),
            budget: Budget::per_evaluation(),
        }
    }

    /// The cost units the decision's conditions have spent so far.
    pub fn spent(&self) -> u64 {
        self.budget.spent()
    }

    fn input_error(&self) -> Option<&InputError> {
        self.cache
            .iter()
            .find_map(|slot| match slot.get().and_then(Slot::value) {
                Some(Err(error)) => Some(error),
                _ => None,
            })
    }
}

impl portcullis_cel::VariableResolver for Activation<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<portcullis_cel::CowVal<'b, 'b>> {
        let index = VARIABLES.iter().position(|name| *name == variable)?;
        self.cache[index]
            .get_or_init(|| match self.lent {
                Some((name, value)) if name == variable => Slot::Lent(value),
                _ => Slot::Built(self.source.variable(variable)),
            })
            .value()?
            .as_ref()
            .ok()
            .map(Input::as_val)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as JsonValue, json};

    struct Fixed(JsonValue);
    impl VariableSource for Fixed {
        fn variable(&self, name: &str) -> Option<Result<Input<'_>, InputError>> {
            self.0.get(name).map(|value| Input::json(name, value))
        }
    }

    fn run(text: &str, vars: JsonValue) -> Result<bool, String> {
        let condition = Condition::compile(text).map_err(|e| format!("{e:?}"))?;
        let source = Fixed(vars);
        condition.evaluate(&Activation::new(&source))
    }

    #[test]
    fn evaluates_over_request_variables() {
        let vars = json!({
            "principal": {"id": "alice", "attributes": {"level": 3}},
            "resource": {"attributes": {"owner": "alice"}},
            "context": {"source": "internal-service"},
        });
        assert_eq!(
            run("resource.attributes.owner == principal.id", vars.clone()),
            Ok(true)
        );
        assert_eq!(
            run("principal.attributes.level > 2", vars.clone()),
            Ok(true)
        );
        assert_eq!(
            run(
                r#"context.source in ["internal-service", "authenticated-user"]"#,
                vars.clone()
            ),
            Ok(true)
        );
        assert_eq!(
            run("[1, 2].exists(x, x > principal.attributes.level)", vars),
            Ok(false)
        );
    }

    #[test]
    fn non_boolean_results_and_missing_keys_are_errors() {
        let vars = json!({"principal": {"id": "alice"}});
        let error = run("principal.id", vars.clone()).unwrap_err();
        assert!(error.contains("instead of a boolean"), "{error}");
        let error = run("principal.attributes.level > 2", vars).unwrap_err();
        assert!(error.contains("attributes"), "{error}");
    }

    #[test]
    fn conjuncts_over_fixed_variables_are_settled_statically() {
        let fixed = Fixed(
            json!({ "action": { "name": "doc:read", "write": false }, "tenant": { "id": "acme" } }),
        );
        let settle = |text: &str| {
            Condition::compile(text).unwrap().static_value(
                &fixed,
                &Provided {
                    whole: &["tenant"],
                    fields: &[("action", &["name", "write"])],
                },
                &Budget::per_evaluation(),
            )
        };
        assert_eq!(
            settle("action.write && env.supply_chain.high_risk"),
            Some(false)
        );
        assert_eq!(
            settle("env.supply_chain.high_risk && action.write"),
            Some(false),
            "any conjunct decides"
        );
        assert_eq!(settle("!action.write && tenant.id == 'acme'"), Some(true));
        assert_eq!(
            settle("!action.write && principal.id == 'x'"),
            None,
            "depends on the request"
        );
        assert_eq!(
            settle("action.write || env.supply_chain.high_risk"),
            None,
            "only conjunctions are split"
        );
        assert_eq!(
            settle("action.missing && principal.id == 'x'"),
            None,
            "errors are left to decision time"
        );
        assert_eq!(settle("[1].exists(x, x == 1) && action.write"), Some(false));
        // The action's properties come with each request: never settled, whatever the
        // compiler's `action` value holds.
        for text in [
            "!has(action.properties.soft)",
            "action.properties.soft == true",
            "size(action) == 2",
            "action['name'] == 'doc:read'",
        ] {
            assert_eq!(settle(text), None, "{text}");
        }
        assert_eq!(settle("action.name == 'doc:read'"), Some(true));
        assert_eq!(settle("[action].exists(a, a.write)"), None);
    }

    #[test]
    fn syntax_errors_carry_positions_inside_the_expression() {
        let errors = Condition::compile("principal.id == ").unwrap_err();
        assert_eq!((errors[0].line, errors[0].column), (1, 17));
        let errors = Condition::compile("principal.id == 'a' && user.admin").unwrap_err();
        assert_eq!(errors[0].column, 24);
        assert!(
            errors[0].message.contains("unknown variable `user`"),
            "{}",
            errors[0].message
        );
    }
}
