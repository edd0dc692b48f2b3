//! The protection pipeline (C8): what a web application needs between the network and its
//! handlers, and on the way back out.
//!
//! The pipeline will become a stack of tower layers (registered resources, parameter
//! validation, CSRF, rate limits, injection detection, response hardening) that any Rust
//! service can mount and that `portcullis gateway` runs in front of an upstream. This crate
//! holds its building blocks; so far:
//! - [`stage`]: the stages and their fixed order, the [`Refusal`] every stage answers with,
//!   the [`Trail`] of stages a request has passed, and [`StageLayer`], which mounts one
//!   request stage ([`Check`]) in front of any tower service;
//! - [`encode`]: output encoding for the contexts an application writes untrusted text into
//!   (HTML text, HTML attribute values, JavaScript string literals, URL components);
//! - [`params`]: a request's query, form, JSON and multipart parameters, parsed once for
//!   every stage that looks at them;
//! - [`validate`]: per-route parameter rules and the validation stage ([`ValidationCheck`]);
//! - [`formats`]: the built-in parameter formats that validation rules name ([`Format`]: email
//!   address, IPv4/IPv6 address, mainland resident identity number, mobile number, date).
//!
//! ```
//! use portcullis_guard::{Format, encode};
//!
//! assert_eq!(encode::html_text("<b>"), "&lt;b&gt;");
//! let format: Format = "mobile".parse()?;
//! assert!(format.check("+86 13812345678"));
//! # Ok::<(), portcullis_guard::formats::UnknownFormat>(())
//! ```
//!
//! Boundaries: the crate decides nothing about permissions (that is the decision module's,
//! reached through the server) and reads no configuration files. Every function here depends on
//! its arguments alone (the one exception, [`formats::resident_id`], reads the clock and has a
//! twin taking the date), so the layers built on them stay easy to test and never block.
#![forbid(unsafe_code)]

pub mod encode;
pub mod formats;
pub mod params;
pub mod stage;
pub mod validate;

pub use formats::Format;
pub use stage::{BufferedBody, Caller, Check, Refusal, Stage, StageLayer, Trail, buffer_body};
pub use validate::{Validation, ValidationCheck};
