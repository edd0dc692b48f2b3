//! The limits every CEL expression runs under. They are documented in the README (Conditions:
//! limits and cost) and in SECURITY.md; change them there too.
//!
//! A cost unit is one step of the interpreter: one literal, variable, field selection, operator
//! or function call evaluated, one element scanned by `in`, or one element copied by `+`.
//! Measured on the benchmark machine, a unit takes 0.05–0.3 µs (the upper end for loops, which
//! bind a variable per step), so [`EVALUATION_BUDGET`] bounds the conditions of one decision to
//! tens of milliseconds at worst.

/// Longest accepted expression, in bytes.
pub const MAX_LENGTH: usize = 8 * 1024;

/// Deepest accepted nesting of brackets in the source text (checked before parsing: the parser
/// recurses over brackets).
pub const MAX_NESTING: usize = 24;

/// Deepest accepted expression tree (operators, calls, selections, loops).
pub const MAX_DEPTH: usize = 48;

/// Highest accepted static cost estimate of one expression, in cost units.
pub const MAX_STATIC_COST: u64 = 100_000;

/// The run-time budget of one decision or one relationship query, in cost units, shared by
/// every condition it evaluates.
pub const EVALUATION_BUDGET: u64 = 200_000;

/// Most items of a list or entries of a map handed to an expression; also the number of
/// elements the estimate assumes for any list or map that comes from a request.
pub const MAX_INPUT_ITEMS: usize = 1_000;

/// Longest string handed to an expression, in bytes.
pub const MAX_INPUT_STRING_BYTES: usize = 16 * 1024;

/// Deepest nesting of lists and maps handed to an expression.
pub const MAX_INPUT_DEPTH: usize = 32;
