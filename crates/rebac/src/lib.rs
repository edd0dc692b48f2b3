//! Relationship graph (C3): OpenFGA-compatible models, tuples and queries.
//!
//! - [`Model`]: an OpenFGA authorization model (schema 1.1) from the modeling language
//!   ([`Model::from_dsl`]) or JSON ([`Model::from_json`]), validated with every error located.
//! - [`Tuple`], [`User`], [`ObjectRef`]: relationship tuples in OpenFGA's wire shape.
//! - [`Graph`]: one tenant's in-memory index with check, batch check, list objects, list
//!   users and expand, updated incrementally.
//! - [`corpus`]: the data-driven conformance corpus format; [`generate`]: the benchmark world
//!   and small random worlds (cycles, `but not`) for property tests.
//!
//! Cycles follow OpenFGA's check: the step that closes one answers "cycle", which grants
//! nothing and which `but not` does not turn into a grant (see the `graph` module).
//!
//! This crate is synchronous and pure: no I/O, no clock reads, no async.
#![forbid(unsafe_code)]

pub mod condition;
pub mod corpus;
mod dsl;
pub mod generate;
mod graph;
mod json;
mod model;
mod tuple;

pub use condition::ParamType;
pub use graph::{
    CheckRequest, CheckResult, Graph, MAX_BATCH_CHECK_ITEMS, MAX_BUNDLE_TUPLES,
    MAX_CONTEXTUAL_TUPLES, MAX_INDEX_OBJECTS, MAX_INDEX_TUPLES, MAX_QUERY_STEPS, MAX_RESOLVE_DEPTH,
    MAX_TUPLES_PER_WRITE, QueryError, TupleFilter, UserFilter,
};
pub use model::{
    ConditionDef, DirectType, MAX_CONDITION_PARAMETERS, MAX_CONDITIONS, MAX_DIRECT_TYPES,
    MAX_MODEL_BYTES, MAX_MODEL_ERRORS, MAX_RELATIONS_PER_TYPE, MAX_REWRITE_DEPTH,
    MAX_REWRITE_OPERANDS, MAX_REWRITE_TERMS, MAX_TYPES, Model, ModelAst, ModelError, ModelErrors,
    Pos, RelationDef, Rewrite, TupleError, TypeDef,
};
pub use tuple::{ObjectRef, ParseError, Tuple, TupleCondition, User, parse_relation};

/// Checks the size of a write batch against [`MAX_TUPLES_PER_WRITE`] and validates every
/// tuple, reporting all problems.
pub fn validate_write_batch(model: &Model, tuples: &[Tuple]) -> Result<(), Vec<String>> {
    if tuples.len() > MAX_TUPLES_PER_WRITE {
        return Err(vec![format!(
            "{} tuples in one write, more than the limit of {MAX_TUPLES_PER_WRITE}; split the write",
            tuples.len()
        )]);
    }
    let errors: Vec<String> = tuples
        .iter()
        .filter_map(|tuple| model.validate_tuple(tuple).err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
