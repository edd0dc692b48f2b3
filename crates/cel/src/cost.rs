//! The static cost estimate and the instrumentation that charges the run-time budget.
//!
//! One walk over the tree computes, for every node, a worst-case **total** cost (loops counted
//! once per element their range can hold), a **base** cost (the same, with each loop's steps
//! left out: those are charged as they run), and the **size** a list or map it yields can have.
//! A list or map that comes from outside the expression (a variable, a field of one) is assumed
//! to hold [`MAX_INPUT_ITEMS`] elements, which [`crate::from_json`] enforces at run time.
//!
//! The same walk instruments every loop: the operand evaluated once per step is wrapped in a
//! call to [`TICK`], which charges that step's base cost to the thread's meter and passes the
//! operand's value through. The wrapped operand is chosen so that the interpreter's fast paths
//! for the standard macros still recognise the loop (`exists`/`all` fold with `@result || x` /
//! `@result && x`; `map`/`filter` append with `@result + [x]`, guarded or not).

use cel::IdedExpr;
use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, LiteralValue};
use cel::common::types::CelInt;

use crate::limits::MAX_INPUT_ITEMS;

/// The function the instrumentation calls once per loop step. `@` names cannot be written in
/// CEL source, so an expression cannot call it itself.
pub(crate) const TICK: &str = "@portcullis_cost";

/// Ids for the nodes the instrumentation adds: far above any the parser hands out.
const FIRST_ADDED_ID: u64 = 1 << 48;

/// The estimate of a whole expression.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Costs {
    pub total: u64,
    pub base: u64,
    pub costliest_loop: Option<LoopAt>,
}

/// The loop that contributes the most to the estimate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoopAt {
    /// The node id of the loop (its position in the text).
    pub id: u64,
    /// How many steps it can take.
    pub iterations: u64,
    /// The worst-case cost of one step.
    pub step: u64,
    /// Whether its range comes from outside the expression (assumed at the input limit).
    pub over_input: bool,
    total: u64,
}

#[derive(Debug, Clone, Copy)]
struct Estimate {
    total: u64,
    base: u64,
    /// Elements of the list or map this yields (1 for anything else).
    size: u64,
    /// Elements of each of its elements, when they are lists or maps.
    item: u64,
    /// Known to be a number, a boolean or null: `+` on it adds, it does not copy.
    scalar: bool,
}

impl Estimate {
    fn scalar(cost: u64) -> Estimate {
        Estimate {
            total: cost,
            base: cost,
            size: 1,
            item: 1,
            scalar: true,
        }
    }

    fn sized(total: u64, base: u64, size: u64, item: u64) -> Estimate {
        Estimate {
            total,
            base,
            size,
            item,
            scalar: false,
        }
    }
}

const INPUT: u64 = MAX_INPUT_ITEMS as u64;

/// A name bound by a loop, with the size of what it holds.
struct Bound {
    name: String,
    size: u64,
    item: u64,
    /// The loop's accumulator (`@result`), which the interpreter grows in place.
    accumulator: bool,
}

struct Walker<'a> {
    next_id: u64,
    costliest: Option<LoopAt>,
    /// Whether a free variable is known to hold a number or a boolean.
    scalar: &'a dyn Fn(&str) -> bool,
}

/// Estimates `root` and instruments its loops in place; `scalar` says which free variables
/// are known to hold numbers or booleans (everything else may be a list at the input limit).
pub(crate) fn instrument(root: &mut IdedExpr, scalar: &dyn Fn(&str) -> bool) -> Costs {
    let mut walker = Walker {
        next_id: FIRST_ADDED_ID,
        costliest: None,
        scalar,
    };
    let mut names = Vec::new();
    let estimate = walker.node(root, &mut names);
    Costs {
        total: estimate.total,
        base: estimate.base,
        costliest_loop: walker.costliest,
    }
}

fn sum(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0, u64::saturating_add)
}

impl Walker<'_> {
    fn node(&mut self, node: &mut IdedExpr, names: &mut Vec<Bound>) -> Estimate {
        let id = node.id;
        match &mut node.expr {
            Expr::Literal(LiteralValue::String(_) | LiteralValue::Bytes(_)) => {
                Estimate::sized(1, 1, 1, 1)
            }
            Expr::Literal(_) | Expr::Unspecified => Estimate::scalar(1),
            Expr::Ident(name) => match names.iter().rev().find(|bound| bound.name == *name) {
                Some(bound) => Estimate::sized(1, 1, bound.size, bound.item),
                None if (self.scalar)(name) => Estimate::scalar(1),
                None => Estimate::sized(1, 1, INPUT, INPUT),
            },
            Expr::Select(select) => {
                let operand = self.node(&mut select.operand, names);
                let total = operand.total.saturating_add(1);
                let base = operand.base.saturating_add(1);
                if select.test {
                    Estimate::scalar(total).with_base(base)
                } else {
                    Estimate::sized(total, base, operand.item, operand.item)
                }
            }
            Expr::List(list) => {
                let parts: Vec<Estimate> = list
                    .elements
                    .iter_mut()
                    .map(|element| self.node(element, names))
                    .collect();
                Estimate::sized(
                    sum(parts.iter().map(|part| part.total)).saturating_add(1),
                    sum(parts.iter().map(|part| part.base)).saturating_add(1),
                    parts.len() as u64,
                    parts.iter().map(|part| part.size).max().unwrap_or(1),
                )
            }
            Expr::Map(map) => {
                let mut parts = Vec::new();
                for entry in &mut map.entries {
                    if let EntryExpr::MapEntry(pair) = &mut entry.expr {
                        parts.push(self.node(&mut pair.key, names));
                        parts.push(self.node(&mut pair.value, names));
                    }
                }
                Estimate::sized(
                    sum(parts.iter().map(|part| part.total)).saturating_add(1),
                    sum(parts.iter().map(|part| part.base)).saturating_add(1),
                    (parts.len() / 2) as u64,
                    parts.iter().map(|part| part.size).max().unwrap_or(1),
                )
            }
            Expr::Struct(structure) => {
                let mut parts = Vec::new();
                for entry in &mut structure.entries {
                    if let EntryExpr::StructField(field) = &mut entry.expr {
                        parts.push(self.node(&mut field.value, names));
                    }
                }
                Estimate::sized(
                    sum(parts.iter().map(|part| part.total)).saturating_add(1),
                    sum(parts.iter().map(|part| part.base)).saturating_add(1),
                    1,
                    1,
                )
            }
            Expr::Call(call) => self.call(call, names),
            Expr::Comprehension(comprehension) => self.comprehension(id, comprehension, names),
        }
    }

    fn call(&mut self, call: &mut CallExpr, names: &mut Vec<Bound>) -> Estimate {
        let target = call.target.as_mut().map(|target| self.node(target, names));
        let args: Vec<Estimate> = call
            .args
            .iter_mut()
            .map(|arg| self.node(arg, names))
            .collect();
        let all = || target.iter().chain(args.iter());
        // `@result + [x]` and `@result + 1` in a loop's step grow the accumulator in place.
        let onto_accumulator = matches!(
            call.args.first().map(|arg| &arg.expr),
            Some(Expr::Ident(name)) if names.iter().rev().any(|bound| bound.name == *name && bound.accumulator)
        );
        let own = sum(all().map(|part| part.total)).saturating_add(1);
        let own_base = sum(all().map(|part| part.base)).saturating_add(1);
        // Work that grows with the operands' sizes, and what the call yields. An operand of
        // unknown type from a request may be a list (or a string) at the input limit, so
        // `+` on two of them is costed as a copy of both.
        let sized = |extra: u64, size: u64, item: u64| {
            Estimate::sized(
                own.saturating_add(extra),
                own_base.saturating_add(extra),
                size,
                item,
            )
        };
        match (call.func_name.as_str(), args.as_slice()) {
            // `x in list` scans the list.
            ("@in", [_, list]) => Estimate::scalar(own.saturating_add(list.size))
                .with_base(own_base.saturating_add(list.size)),
            // Adding to a number adds numbers.
            ("_+_" | "_-_", [left, right]) if left.scalar || right.scalar => {
                Estimate::scalar(own).with_base(own_base)
            }
            ("_+_", [left, right]) => {
                let size = left.size.saturating_add(right.size);
                let copied = if size > 2 && !onto_accumulator {
                    size
                } else {
                    0
                };
                sized(copied, size, left.item.max(right.item))
            }
            ("_[_]", [container, _]) => sized(0, container.item, container.item),
            ("_?_:_", [_, yes, no]) => sized(0, yes.size.max(no.size), yes.item.max(no.item)),
            // Conversions yield what they are given.
            ("dyn" | "optional.of" | "optional.ofNonZeroValue" | "orValue" | "value", _) => {
                let size = all().map(|part| part.size).max().unwrap_or(1);
                let item = all().map(|part| part.item).max().unwrap_or(1);
                sized(0, size, item)
            }
            // Every other standard function or operator yields a number, a boolean or a
            // short string.
            _ => Estimate::scalar(own).with_base(own_base),
        }
    }

    fn comprehension(
        &mut self,
        id: u64,
        comprehension: &mut ComprehensionExpr,
        names: &mut Vec<Bound>,
    ) -> Estimate {
        let range = self.node(&mut comprehension.iter_range, names);
        let init = self.node(&mut comprehension.accu_init, names);
        let iterations = range.size;
        let depth = names.len();
        // The accumulator grows by at most one element a step (`map`, `filter`).
        let is_list = matches!(comprehension.accu_init.expr, Expr::List(_));
        names.push(Bound {
            name: comprehension.accu_var.clone(),
            size: if is_list { iterations } else { 1 },
            item: range.item,
            accumulator: true,
        });
        let result = self.node(&mut comprehension.result, names);
        for name in std::iter::once(&comprehension.iter_var).chain(&comprehension.iter_var2) {
            names.push(Bound {
                name: name.clone(),
                size: range.item,
                item: range.item,
                accumulator: false,
            });
        }
        let condition = self.node(&mut comprehension.loop_cond, names);
        let step = self.node(&mut comprehension.loop_step, names);
        names.truncate(depth);

        // One step: the condition, the step, and the charge itself.
        let step_total = condition.total.saturating_add(step.total).saturating_add(1);
        let step_base = condition.base.saturating_add(step.base).saturating_add(1);
        let loops = iterations.saturating_mul(step_total);
        let total = sum([range.total, init.total, result.total, loops]);
        let at = LoopAt {
            id,
            iterations,
            step: step_total,
            over_input: iterations >= INPUT,
            total: loops,
        };
        if self
            .costliest
            .is_none_or(|costliest| costliest.total < loops)
        {
            self.costliest = Some(at);
        }
        self.wrap_step(comprehension, step_base);
        let base = sum([range.base, init.base, result.base]);
        if is_list {
            Estimate::sized(total, base, iterations, step.item)
        } else {
            Estimate::scalar(total).with_base(base)
        }
    }

    /// Wraps the operand the loop evaluates once per step in a charge of `units`.
    fn wrap_step(&mut self, comprehension: &mut ComprehensionExpr, units: u64) {
        let accu = comprehension.accu_var.clone();
        let is_accu = |node: &IdedExpr| matches!(&node.expr, Expr::Ident(name) if *name == accu);
        let target: &mut IdedExpr = match &mut comprehension.loop_step.expr {
            // `@result || x`, `@result && x` (`exists`, `all`).
            Expr::Call(call)
                if matches!(call.func_name.as_str(), "_||_" | "_&&_")
                    && call.target.is_none()
                    && call.args.len() == 2
                    && is_accu(&call.args[0]) =>
            {
                &mut call.args[1]
            }
            // `cond ? step : @result` (`filter`, `exists_one`): the condition runs every step.
            Expr::Call(call)
                if call.func_name == "_?_:_" && call.target.is_none() && call.args.len() == 3 =>
            {
                &mut call.args[0]
            }
            // `@result + [x]` (`map`).
            Expr::Call(call)
                if call.func_name == "_+_"
                    && call.target.is_none()
                    && call.args.len() == 2
                    && is_accu(&call.args[0])
                    && matches!(&call.args[1].expr, Expr::List(list) if list.elements.len() == 1) =>
            {
                match &mut call.args[1].expr {
                    Expr::List(list) => &mut list.elements[0],
                    _ => &mut comprehension.loop_cond,
                }
            }
            _ => &mut comprehension.loop_cond,
        };
        let inner = std::mem::take(target);
        let units = i64::try_from(units).unwrap_or(i64::MAX);
        let literal_id = self.fresh_id();
        let call_id = self.fresh_id();
        *target = IdedExpr {
            id: call_id,
            expr: Expr::Call(CallExpr {
                func_name: TICK.to_owned(),
                target: None,
                args: vec![
                    IdedExpr {
                        id: literal_id,
                        expr: Expr::Literal(LiteralValue::Int(CelInt::from(units))),
                    },
                    inner,
                ],
            }),
        };
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

impl Estimate {
    fn with_base(mut self, base: u64) -> Estimate {
        self.base = base;
        self
    }
}
