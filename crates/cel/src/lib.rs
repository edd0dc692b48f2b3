//! Portcullis's CEL: every condition the product runs — policy conditions, CEL factors, rules,
//! and conditions on relationship tuples — is compiled and evaluated through this crate, so the
//! limits that keep one tenant's hostile expression from hurting the others are applied in one
//! place:
//!
//! * **syntax limits** ([`limits::MAX_LENGTH`], [`limits::MAX_NESTING`], [`limits::MAX_DEPTH`]):
//!   the parser and the interpreter recurse over the expression, so its size and depth are
//!   bounded before anything else reads it;
//! * **a static cost estimate** at compile time ([`Expression::estimated_cost`]): a worst-case
//!   count of the steps one evaluation takes, with every loop's body counted once per element
//!   its range can hold; an expression estimated above [`limits::MAX_STATIC_COST`] is refused,
//!   naming the loop that makes it expensive;
//! * **a run-time budget** ([`Budget`]): every evaluation is charged what it actually does (the
//!   parts outside loops up front, each loop step as it runs), against a budget that every
//!   condition of one decision (or one relationship query) shares; once it is spent, evaluation
//!   stops with [`EvalError::Budget`], which callers treat as a deny;
//! * **input limits** ([`from_json`]): values handed to an expression are bounded in string
//!   length, item count and nesting, so the estimate's assumptions hold at run time.
//!
//! The `cel` interpreter's API changes between versions; apart from the [`Value`] and
//! [`Context`] types re-exported here, nothing else in the workspace touches it.
//!
//! This crate must not know about policies, tenants or tuples: callers say which variable names
//! an expression may read and supply their values.
#![forbid(unsafe_code)]

mod cost;
pub mod limits;
mod syntax;
mod value;

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use cel::common::ast::Expr;
use cel::common::types::CelInt;
use cel::{Env, IdedExpr, Program};

pub use cel::common::value::CowVal;
pub use cel::context::VariableResolver;
pub use cel::extractors::This;
pub use cel::{Context, ExecutionError, Value};
pub use value::{Field, Input, InputError, check_json, from_json};

/// A compiled expression, instrumented so that its loops charge the run-time budget.
pub struct Expression {
    root: IdedExpr,
    text: Arc<str>,
    estimate: u64,
    base: u64,
    variables: Vec<Variable>,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expression")
            .field("text", &self.text)
            .field("estimate", &self.estimate)
            .finish_non_exhaustive()
    }
}

/// A variable an expression reads (not bound by one of its own loops), where it first appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// 1-based line inside the expression.
    pub line: u32,
    /// 1-based column inside the expression.
    pub column: u32,
}

/// A problem with an expression's text, at a 1-based (line, column) inside the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Line inside the expression.
    pub line: u32,
    /// Column inside the expression.
    pub column: u32,
    /// What kind of problem.
    pub kind: CompileErrorKind,
    /// What is wrong.
    pub message: String,
}

/// The kinds of [`CompileError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileErrorKind {
    /// The text does not parse.
    Syntax,
    /// The text is too long or nests too deeply.
    Size,
    /// The expression's estimated cost is over [`limits::MAX_STATIC_COST`].
    Cost,
    /// The expression reads a variable it may not (reported by callers).
    Variable,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Why an evaluation produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// The budget ran out: the evaluation was stopped.
    Budget {
        /// The budget the evaluation was charged against, in cost units.
        limit: u64,
    },
    /// A value handed to the expression is larger than the input limits allow.
    Input(InputError),
    /// The expression failed (a missing key, a type mismatch, a function error ...).
    Failed(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Budget { limit } => write!(
                f,
                "evaluation stopped: its cost budget of {limit} units is spent (see the CEL cost limits)"
            ),
            EvalError::Input(error) => error.fmt(f),
            EvalError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for EvalError {}

/// A cost budget shared by the evaluations of one decision (or one relationship query).
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    remaining: AtomicU64,
}

impl Budget {
    /// A budget of `limit` cost units.
    pub fn new(limit: u64) -> Budget {
        Budget {
            limit,
            remaining: AtomicU64::new(limit),
        }
    }

    /// The budget of one decision or query: [`limits::EVALUATION_BUDGET`].
    pub fn per_evaluation() -> Budget {
        Budget::new(limits::EVALUATION_BUDGET)
    }

    /// The units this budget started with.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The units spent so far.
    pub fn spent(&self) -> u64 {
        self.limit - self.remaining.load(Ordering::Relaxed)
    }

    fn charge(&self, units: u64) -> Result<(), EvalError> {
        let remaining = self.remaining.load(Ordering::Relaxed);
        if units > remaining {
            self.remaining.store(0, Ordering::Relaxed);
            return Err(EvalError::Budget { limit: self.limit });
        }
        self.remaining.store(remaining - units, Ordering::Relaxed);
        Ok(())
    }
}

impl Expression {
    /// Compiles `text`: checks its size and nesting, parses it, estimates its cost (refusing it
    /// above [`limits::MAX_STATIC_COST`]) and instruments its loops. Which variables it may read
    /// is the caller's to check, with [`Expression::variables`].
    pub fn compile(text: &str) -> Result<Expression, Vec<CompileError>> {
        Expression::compile_typed(text, &|_| false)
    }

    /// Like [`Expression::compile`], for variables whose types are declared: `scalar` says
    /// which hold a number or a boolean, so that `+` on them is an addition in the estimate
    /// rather than a possible copy of two lists.
    pub fn compile_typed(
        text: &str,
        scalar: &dyn Fn(&str) -> bool,
    ) -> Result<Expression, Vec<CompileError>> {
        syntax::check_size(text)?;
        let program = Program::compile(text).map_err(|errors| {
            errors
                .errors
                .iter()
                .map(|error| CompileError {
                    line: u32::try_from(error.pos.0.max(1)).unwrap_or(1),
                    column: u32::try_from(error.pos.1.max(1)).unwrap_or(1),
                    kind: CompileErrorKind::Syntax,
                    message: syntax::tidy_parser_message(&error.msg),
                })
                .collect::<Vec<_>>()
        })?;
        if syntax::tree_depth(program.expression()) > limits::MAX_DEPTH {
            return Err(vec![CompileError {
                line: 1,
                column: 1,
                kind: CompileErrorKind::Size,
                message: format!(
                    "the expression nests deeper than {} operators; split it into smaller ones",
                    limits::MAX_DEPTH
                ),
            }]);
        }
        let locate = |id: u64| syntax::position(text, program.source_info().offset_for(id));
        let variables = syntax::free_variables(program.expression(), &locate);
        let mut root = program.expression().clone();
        let costs = cost::instrument(&mut root, scalar);
        if costs.total > limits::MAX_STATIC_COST {
            let (line, column) = costs.costliest_loop.map_or((1, 1), |at| locate(at.id));
            let loop_note = match costs.costliest_loop {
                Some(at) => format!(
                    "; the loop at {line}:{column} runs up to {} times at up to {} units a step{}",
                    at.iterations,
                    at.step,
                    if at.over_input {
                        format!(
                            " (a list or map from a request is assumed to hold up to {} items)",
                            limits::MAX_INPUT_ITEMS
                        )
                    } else {
                        String::new()
                    }
                ),
                None => String::new(),
            };
            return Err(vec![CompileError {
                line,
                column,
                kind: CompileErrorKind::Cost,
                message: format!(
                    "the expression's estimated cost is {} units, more than the limit of {}{loop_note}; iterate over shorter lists or nest fewer loops",
                    costs.total,
                    limits::MAX_STATIC_COST
                ),
            }]);
        }
        Ok(Expression {
            root,
            text: Arc::from(text),
            estimate: costs.total,
            base: costs.base,
            variables,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The worst-case cost of one evaluation, in units (at most [`limits::MAX_STATIC_COST`]).
    pub fn estimated_cost(&self) -> u64 {
        self.estimate
    }

    /// The variables the expression reads, each where it first appears, in order of appearance.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// The operands of the chain of `&&` at the top of the expression (the expression itself
    /// when it is not a conjunction).
    pub fn conjuncts(&self) -> Vec<Part<'_>> {
        let mut parts = Vec::new();
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            match &node.expr {
                Expr::Call(call) if call.func_name == "_&&_" && call.target.is_none() => {
                    stack.extend(call.args.iter().rev());
                }
                _ => parts.push(Part { node }),
            }
        }
        parts
    }

    /// Evaluates the expression in `context` (made with [`context`]), charging `budget`.
    pub fn evaluate(&self, context: &Context<'_, '_>, budget: &Budget) -> Result<Value, EvalError> {
        budget.charge(self.base)?;
        run_metered(&self.root, context, budget)
    }

    /// Evaluates the expression; anything but a boolean result is an error.
    pub fn evaluate_bool(
        &self,
        context: &Context<'_, '_>,
        budget: &Budget,
    ) -> Result<bool, EvalError> {
        match self.evaluate(context, budget)? {
            Value::Bool(value) => Ok(value),
            other => Err(EvalError::Failed(format!(
                "the expression yielded {} instead of a boolean",
                describe(&other)
            ))),
        }
    }
}

/// One operand of an expression's top-level conjunction.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    node: &'a IdedExpr,
}

impl Part<'_> {
    /// Whether the operand reads only variables named in `names`.
    pub fn reads_only(&self, names: &[&str]) -> bool {
        syntax::free_variables(self.node, &|_| (1, 1))
            .iter()
            .all(|variable| names.contains(&variable.name.as_str()))
    }

    /// Whether the operand reads only variables named in `names`, or variables named in
    /// `restricted` through the fields listed for them (`("action", &["name", "write"])`
    /// allows `action.name` but not `action.properties` or `action` as a whole).
    pub fn reads_only_fields(&self, names: &[&str], restricted: &[(&str, &[&str])]) -> bool {
        syntax::reads_only_fields(self.node, names, restricted)
    }

    /// Evaluates the operand, charging `budget` for its loops (the parts outside loops are
    /// covered by the whole expression's estimate, which the caller bounded at compile time).
    pub fn evaluate(&self, context: &Context<'_, '_>, budget: &Budget) -> Result<Value, EvalError> {
        run_metered(self.node, context, budget)
    }
}

/// A fresh evaluation context for [`Expression::evaluate`]; callers add their variables or a
/// variable resolver, and any functions of their own.
pub fn context<'p, 'v>() -> Context<'p, 'v> {
    Context::with_env(environment())
}

fn environment() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    Arc::clone(ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Registration fails only on a clash with an existing overload, and `@` names cannot be
        // written in CEL source: the standard library has none of this name.
        let _ = env.add_overload(
            cost::TICK,
            "@portcullis_cost(int,dyn)",
            vec![cel::common::types::INT_TYPE, cel::common::types::DYN_TYPE],
            tick,
        );
        Arc::new(env)
    }))
}

#[derive(Clone, Copy)]
struct Meter {
    remaining: u64,
    exhausted: bool,
}

thread_local! {
    /// The budget of the evaluation running on this thread. The interpreter calls [`tick`]
    /// through a plain function pointer, which cannot capture the budget; evaluation is
    /// synchronous, so the thread's meter is the evaluation's.
    static METER: Cell<Option<Meter>> = const { Cell::new(None) };
}

fn run_metered(
    root: &IdedExpr,
    context: &Context<'_, '_>,
    budget: &Budget,
) -> Result<Value, EvalError> {
    let start = Meter {
        remaining: budget.remaining.load(Ordering::Relaxed),
        exhausted: false,
    };
    let outer = METER.with(|meter| meter.replace(Some(start)));
    let result = Value::resolve(root, context);
    let end = METER.with(|meter| meter.replace(outer)).unwrap_or(start);
    budget.remaining.store(end.remaining, Ordering::Relaxed);
    // A spent budget wins over any value: CEL's `||` and `&&` absorb errors (`error || true` is
    // `true`), so a result computed after the budget ran out is not to be trusted.
    if end.exhausted {
        return Err(EvalError::Budget {
            limit: budget.limit,
        });
    }
    result.map_err(|error| EvalError::Failed(error.to_string()))
}

/// Charges one loop step (its cost is the first argument) and passes the second through.
fn tick<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let mut args = args.into_iter();
    let units = args
        .next()
        .and_then(|units| units.downcast_ref::<CelInt>().map(|units| *units.inner()))
        .and_then(|units| u64::try_from(units).ok())
        .unwrap_or(1);
    let spent = METER.with(|meter| {
        let mut current = meter.get()?;
        if current.exhausted || units > current.remaining {
            current.remaining = 0;
            current.exhausted = true;
            meter.set(Some(current));
            return Some(false);
        }
        current.remaining -= units;
        meter.set(Some(current));
        Some(true)
    });
    if spent == Some(false) {
        return Err(ExecutionError::function_error(
            "cost",
            "the evaluation's cost budget is spent",
        ));
    }
    args.next()
        .ok_or_else(|| ExecutionError::invalid_argument_count(2, 1))
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Null => "null",
        _ => "a non-boolean value",
    }
}

#[cfg(test)]
mod tests;
