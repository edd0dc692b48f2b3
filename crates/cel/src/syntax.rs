//! Checks on an expression's text and tree that need no evaluation: size and nesting before
//! parsing, tree depth after, the variables it reads, and positions inside the text.

use std::collections::BTreeSet;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr};

use crate::limits::{MAX_LENGTH, MAX_NESTING};
use crate::{CompileError, CompileErrorKind, Variable};

/// Refuses a text longer than [`MAX_LENGTH`] or nesting brackets deeper than [`MAX_NESTING`].
pub(crate) fn check_size(text: &str) -> Result<(), Vec<CompileError>> {
    if text.trim().is_empty() {
        return Err(vec![CompileError {
            line: 1,
            column: 1,
            kind: CompileErrorKind::Size,
            message: "the expression is empty".to_owned(),
        }]);
    }
    if text.len() > MAX_LENGTH {
        return Err(vec![CompileError {
            line: 1,
            column: 1,
            kind: CompileErrorKind::Size,
            message: format!(
                "the expression is {} bytes long, more than the limit of {MAX_LENGTH}",
                text.len()
            ),
        }]);
    }
    if let Some((line, column)) = too_deeply_nested(text) {
        return Err(vec![CompileError {
            line,
            column,
            kind: CompileErrorKind::Size,
            message: format!("brackets nest deeper than {MAX_NESTING} levels"),
        }]);
    }
    Ok(())
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

/// The parser lists every token it could have accepted; keeps the first clause, which says
/// what it met, and says what is missing in words.
pub(crate) fn tidy_parser_message(message: &str) -> String {
    match message.split_once(" expecting ") {
        Some((head, _)) => {
            format!("{head}: the expression is incomplete or has an unexpected token")
        }
        None => message.to_owned(),
    }
}

/// Depth of an expression tree, walked without recursion (it runs before the depth is known).
pub(crate) fn tree_depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        stack.extend(children(node).into_iter().map(|child| (child, depth + 1)));
    }
    deepest
}

/// The direct sub-expressions of `node`.
pub(crate) fn children(node: &IdedExpr) -> Vec<&IdedExpr> {
    match &node.expr {
        Expr::Call(call) => call
            .target
            .iter()
            .map(|target| &**target)
            .chain(call.args.iter())
            .collect(),
        Expr::Comprehension(comprehension) => vec![
            &comprehension.iter_range,
            &comprehension.accu_init,
            &comprehension.loop_cond,
            &comprehension.loop_step,
            &comprehension.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(pair) => Some([&pair.key, &pair.value]),
                EntryExpr::StructField(_) => None,
            })
            .flatten()
            .collect(),
        Expr::Struct(structure) => structure
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                EntryExpr::StructField(field) => Some(&field.value),
                EntryExpr::MapEntry(_) => None,
            })
            .collect(),
        Expr::Select(select) => vec![&*select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

/// 1-based (line, column) of a character offset into `text`; (1, 1) when unknown.
pub(crate) fn position(text: &str, offset: Option<(u32, u32)>) -> (u32, u32) {
    let Some((start, _)) = offset else {
        return (1, 1);
    };
    let (mut line, mut column) = (1u32, 1u32);
    for (index, c) in text.chars().enumerate() {
        if index as u64 >= u64::from(start) {
            break;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// The variables `root` reads that none of its own loops bind, each once, in order of first
/// appearance; `locate` turns a node id into a position.
pub(crate) fn free_variables(root: &IdedExpr, locate: &dyn Fn(u64) -> (u32, u32)) -> Vec<Variable> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut bound = Vec::new();
    walk(root, &mut bound, &mut |name, _, id| {
        if seen.insert(name.to_owned()) {
            let (line, column) = locate(id);
            found.push(Variable {
                name: name.to_owned(),
                line,
                column,
            });
        }
    });
    found
}

/// Whether every variable `root` reads is in `names`, or is in `restricted` and read only
/// through one of the fields it allows (`action.name`, say, where `action` may be read only
/// through `name` and `write`). Any other use of a restricted variable (the whole value, an
/// index, another field, a `has()` test of another field) is a read of the whole.
pub(crate) fn reads_only_fields(
    root: &IdedExpr,
    names: &[&str],
    restricted: &[(&str, &[&str])],
) -> bool {
    let mut only = true;
    let mut bound = Vec::new();
    walk(root, &mut bound, &mut |name, field, _| {
        let allowed = names.contains(&name)
            || restricted.iter().any(|(variable, fields)| {
                *variable == name && field.is_some_and(|field| fields.contains(&field))
            });
        only &= allowed;
    });
    only
}

/// Visits every free variable of `node`: its name, the field selected on it directly (`x.f`),
/// if any, and the id of the node that reads it.
fn walk<'e>(
    node: &'e IdedExpr,
    bound: &mut Vec<&'e str>,
    found: &mut dyn FnMut(&str, Option<&str>, u64),
) {
    match &node.expr {
        Expr::Ident(name) => {
            if !bound.contains(&name.as_str()) {
                found(name, None, node.id);
            }
        }
        Expr::Select(select) if matches!(&select.operand.expr, Expr::Ident(name) if !bound.contains(&name.as_str())) => {
            if let Expr::Ident(name) = &select.operand.expr {
                found(name, Some(&select.field), select.operand.id);
            }
        }
        Expr::Comprehension(comprehension) => {
            // The range and the accumulator's start are evaluated outside the loop's scope.
            walk(&comprehension.iter_range, bound, found);
            walk(&comprehension.accu_init, bound, found);
            let depth = bound.len();
            bound.push(&comprehension.accu_var);
            // The result sees the accumulator only; the condition and the step see both.
            walk(&comprehension.result, bound, found);
            bound.push(&comprehension.iter_var);
            if let Some(second) = &comprehension.iter_var2 {
                bound.push(second);
            }
            walk(&comprehension.loop_cond, bound, found);
            walk(&comprehension.loop_step, bound, found);
            bound.truncate(depth);
        }
        _ => {
            for child in children(node) {
                walk(child, bound, found);
            }
        }
    }
}
