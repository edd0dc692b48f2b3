//! Shared vocabulary of Portcullis.
//!
//! This crate owns the types every other crate speaks: the validated [`TenantId`], the parts of
//! an authorization [`Request`] (principal, action, resource, context, environment signals) and
//! the [`Decision`] that answers it. It holds no logic beyond parsing and validating these types;
//! it must never depend on another Portcullis crate.
#![forbid(unsafe_code)]

mod decision;
mod request;
mod tenant;

pub use decision::{
    AttributeSource, Cause, Decision, DecisionError, Effect, ErrorKind, Explanation, Reason,
    ReasonKind, Revision, StrategyOutcome,
};
pub use request::{
    ClientCert, Context, Environment, Principal, Request, Resource, SupplyChain, qualified_action,
};
pub use tenant::{InvalidTenantId, TenantId};
