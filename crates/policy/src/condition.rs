//! Conditions: CEL expressions compiled once at load and evaluated per decision.
//!
//! This module is the only place that touches the `cel` crate; the rest of the engine sees
//! [`Condition`] (a compiled expression) and [`Activation`] (the variables of one decision, built
//! lazily and at most once per decision). Keeping the interpreter behind this boundary means its
//! API churn stays here.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::common::value::CowVal;
use cel::context::VariableResolver;
use cel::{Context as CelContext, Env, Program, Value as CelValue};
use serde_json::Value as JsonValue;

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
    program: Program,
    text: Arc<str>,
}

/// A problem with a condition's text, at a 1-based (line, column) inside the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Line inside the expression.
    pub line: u32,
    /// Column inside the expression.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

fn environment() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    Arc::clone(ENV.get_or_init(|| Arc::new(Env::stdlib())))
}

/// Longest accepted expression, in bytes.
pub const MAX_LENGTH: usize = 8 * 1024;
/// Deepest accepted nesting of brackets in the source text.
pub const MAX_NESTING: usize = 24;
/// Deepest accepted expression tree (operators, calls, selections).
pub const MAX_DEPTH: usize = 48;

impl Condition {
    /// Compiles `text`, checking that it only reads the documented variables and stays within
    /// the size and nesting limits. The parser and the evaluator recurse over the expression,
    /// so these limits are what keeps a hostile bundle from exhausting the stack; callers that
    /// compile many conditions should do so on a thread with a generous stack (the bundle
    /// loader does).
    pub fn compile(text: &str) -> Result<Condition, Vec<SyntaxError>> {
        if text.len() > MAX_LENGTH {
            return Err(vec![SyntaxError {
                line: 1,
                column: 1,
                message: format!(
                    "the expression is {} bytes long, more than the limit of {MAX_LENGTH}",
                    text.len()
                ),
            }]);
        }
        if let Some((line, column)) = too_deeply_nested(text) {
            return Err(vec![SyntaxError {
                line,
                column,
                message: format!("brackets nest deeper than {MAX_NESTING} levels"),
            }]);
        }
        let program = Program::compile(text).map_err(|errors| {
            errors
                .errors
                .iter()
                .map(|error| SyntaxError {
                    line: u32::try_from(error.pos.0.max(1)).unwrap_or(1),
                    column: u32::try_from(error.pos.1.max(1)).unwrap_or(1),
                    message: tidy_parser_message(&error.msg),
                })
                .collect::<Vec<_>>()
        })?;
        if tree_depth(program.expression()) > MAX_DEPTH {
            return Err(vec![SyntaxError {
                line: 1,
                column: 1,
                message: format!(
                    "the expression nests deeper than {MAX_DEPTH} operators; split it into factors or rules"
                ),
            }]);
        }
        let unknown: Vec<SyntaxError> = program
            .references()
            .variables()
            .into_iter()
            .filter(|name| !VARIABLES.contains(name) && !is_comprehension_variable(text, name))
            .map(|name| {
                let (line, column) = position_of_word(text, name);
                SyntaxError {
                    line,
                    column,
                    message: format!(
                        "unknown variable `{name}`; conditions read {}",
                        VARIABLES.join(", ")
                    ),
                }
            })
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        Ok(Condition {
            program,
            text: Arc::from(text),
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The condition's value when it is decided by the variables `source` provides alone (the
    /// bundle compiler passes `action` and `tenant`, which are fixed per action): `Some(false)`
    /// when a top-level conjunct reads only those variables and is false, `Some(true)` when
    /// every conjunct does and all are true, otherwise `None`. A conjunct that errors is not
    /// decided here, so its error still surfaces at decision time.
    pub fn static_value(&self, source: &dyn VariableSource, provided: &[&str]) -> Option<bool> {
        let mut conjuncts = Vec::new();
        flatten_conjunction(self.program.expression(), &mut conjuncts);
        let activation = Activation::new(source);
        let mut context = CelContext::with_env(environment());
        context.set_variable_resolver(&activation);
        let mut all_true = true;
        for conjunct in conjuncts {
            let references = conjunct.references();
            let reads_only_provided = references
                .variables()
                .iter()
                .all(|name| provided.contains(name));
            if !reads_only_provided {
                all_true = false;
                continue;
            }
            match CelValue::resolve(conjunct, &context) {
                Ok(CelValue::Bool(false)) => return Some(false),
                Ok(CelValue::Bool(true)) => {}
                _ => all_true = false,
            }
        }
        all_true.then_some(true)
    }

    /// Evaluates the condition; anything but a boolean result is an error.
    pub fn evaluate(&self, activation: &Activation<'_>) -> Result<bool, String> {
        let mut context = CelContext::with_env(environment());
        context.set_variable_resolver(activation);
        match self.program.execute(&context) {
            Ok(CelValue::Bool(value)) => Ok(value),
            Ok(other) => Err(format!(
                "the condition yielded {} instead of a boolean",
                describe(&other)
            )),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// The operands of a chain of `&&` at the top of an expression.
fn flatten_conjunction<'e>(expression: &'e cel::IdedExpr, out: &mut Vec<&'e cel::IdedExpr>) {
    use cel::common::ast::Expr;
    match &expression.expr {
        Expr::Call(call) if call.func_name == "_&&_" && call.target.is_none() => {
            for operand in &call.args {
                flatten_conjunction(operand, out);
            }
        }
        _ => out.push(expression),
    }
}

/// The position where bracket nesting (outside string literals) first exceeds the limit.
fn too_deeply_nested(text: &str) -> Option<(u32, u32)> {
    let (mut depth, mut line, mut column) = (0usize, 1u32, 0u32);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
        }
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == open {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some((line, column));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Depth of an expression tree, walked without recursion.
fn tree_depth(root: &cel::IdedExpr) -> usize {
    use cel::common::ast::{EntryExpr, Expr};
    let mut deepest = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        let next = depth + 1;
        match &node.expr {
            Expr::Call(call) => {
                stack.extend(call.target.iter().map(|target| (&**target, next)));
                stack.extend(call.args.iter().map(|arg| (arg, next)));
            }
            Expr::Comprehension(comprehension) => {
                for part in [
                    &comprehension.iter_range,
                    &comprehension.accu_init,
                    &comprehension.loop_cond,
                    &comprehension.loop_step,
                    &comprehension.result,
                ] {
                    stack.push((part, next));
                }
            }
            Expr::List(list) => stack.extend(list.elements.iter().map(|element| (element, next))),
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(pair) = &entry.expr {
                        stack.push((&pair.key, next));
                        stack.push((&pair.value, next));
                    }
                }
            }
            Expr::Struct(structure) => {
                for entry in &structure.entries {
                    if let EntryExpr::StructField(field) = &entry.expr {
                        stack.push((&field.value, next));
                    }
                }
            }
            Expr::Select(select) => stack.push((&select.operand, next)),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    deepest
}

fn tidy_parser_message(message: &str) -> String {
    // The parser lists every token it could have accepted; keep the first clause, which says
    // what it met, and say what is missing in words.
    match message.split_once(" expecting ") {
        Some((head, _)) => {
            format!("{head}: the expression is incomplete or has an unexpected token")
        }
        None => message.to_owned(),
    }
}

/// Whether `name` is bound by a macro such as `list.exists(name, ...)`.
fn is_comprehension_variable(text: &str, name: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains(&format!("({name},"))
}

fn position_of_word(text: &str, word: &str) -> (u32, u32) {
    for (line_index, line) in text.lines().enumerate() {
        let mut search = 0;
        while let Some(found) = line[search..].find(word) {
            let start = search + found;
            let before = line[..start].chars().next_back();
            let after = line[start + word.len()..].chars().next();
            let boundary =
                |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
            if boundary(before) && after.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                let column = line[..start].chars().count() + 1;
                return (
                    u32::try_from(line_index + 1).unwrap_or(1),
                    u32::try_from(column).unwrap_or(1),
                );
            }
            search = start + word.len();
        }
    }
    (1, 1)
}

fn describe(value: &CelValue) -> &'static str {
    match value {
        CelValue::List(_) => "a list",
        CelValue::Map(_) => "a map",
        CelValue::Int(_) | CelValue::UInt(_) | CelValue::Float(_) => "a number",
        CelValue::String(_) => "a string",
        CelValue::Bytes(_) => "bytes",
        CelValue::Null => "null",
        _ => "a non-boolean value",
    }
}

/// A source of the variables of one decision. Implemented by the engine; each variable is
/// asked for at most once per decision.
pub trait VariableSource: Sync {
    /// The value of a top-level variable (one of [`VARIABLES`]) as JSON.
    fn variable(&self, name: &str) -> Option<JsonValue>;
}

/// The variables of one decision, converted to CEL values on first use.
pub struct Activation<'a> {
    source: &'a dyn VariableSource,
    cache: [OnceLock<Option<CelValue>>; 6],
}

impl std::fmt::Debug for Activation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activation").finish_non_exhaustive()
    }
}

impl<'a> Activation<'a> {
    /// An activation reading from `source`.
    pub fn new(source: &'a dyn VariableSource) -> Self {
        Activation {
            source,
            cache: Default::default(),
        }
    }
}

impl VariableResolver for Activation<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let index = VARIABLES.iter().position(|name| *name == variable)?;
        let value = self.cache[index]
            .get_or_init(|| self.source.variable(variable).map(|json| to_cel(&json)))
            .clone()?;
        value.try_into().ok().map(CowVal::Owned)
    }
}

/// Converts JSON to a CEL value (objects become maps with string keys).
pub fn to_cel(value: &JsonValue) -> CelValue {
    match value {
        JsonValue::Null => CelValue::Null,
        JsonValue::Bool(value) => CelValue::Bool(*value),
        JsonValue::Number(number) => {
            if let Some(int) = number.as_i64() {
                CelValue::Int(int)
            } else if let Some(uint) = number.as_u64() {
                CelValue::UInt(uint)
            } else {
                CelValue::Float(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        JsonValue::String(text) => CelValue::String(Arc::new(text.clone())),
        JsonValue::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        JsonValue::Object(map) => {
            let converted: HashMap<String, CelValue> = map
                .iter()
                .map(|(key, value)| (key.clone(), to_cel(value)))
                .collect();
            CelValue::from(converted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixed(JsonValue);
    impl VariableSource for Fixed {
        fn variable(&self, name: &str) -> Option<JsonValue> {
            self.0.get(name).cloned()
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
            Condition::compile(text)
                .unwrap()
                .static_value(&fixed, &["action", "tenant"])
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
