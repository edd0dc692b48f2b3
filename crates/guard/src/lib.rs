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
//! - [`session`]: the session stage ([`SessionLayer`]): logouts end a session cookie or bearer
//!   token on every node, and later requests carrying it are refused or sent to the login page;
//! - [`encode`]: output encoding for the contexts an application writes untrusted text into
//!   (HTML text, HTML attribute values, JavaScript string literals, URL components);
//! - [`origin`]: the trusted origin/referer stage ([`OriginCheck`]);
//! - [`csrf`]: CSRF tokens bound to the session, checked and rotated ([`CsrfLayer`]);
//! - [`upstream`]: the application behind the gateway, reached as a reverse proxy does
//!   ([`Upstream`]: pooled, streamed, WebSocket pass-through, timeouts);
//! - [`login`]: login protection, lockouts with doubling durations per account and address
//!   ([`LoginLayer`]);
//! - [`params`]: a request's query, form, JSON and multipart parameters, parsed once for
//!   every stage that looks at them;
//! - [`validate`]: per-route parameter rules and the validation stage ([`ValidationCheck`]);
//! - [`inject`]: the injection stage ([`InjectionCheck`]): SQL injection and XSS in every
//!   parameter (libinjection plus our own rules, three sensitivity levels, encoded input
//!   decoded), path traversal and command injection, XML bodies with any DTD refused, uploads
//!   typed by their content and size;
//! - [`ratelimit`]: the rate-limit stage ([`RateLimitCheck`]): GCRA quotas per client
//!   address, principal and tenant, kept in memory (bounded and pruned) or shared by every node
//!   through Redis, answering 429 with `Retry-After`;
//! - [`response`]: the response stages, each a layer of its own: security headers
//!   ([`SecurityHeadersLayer`]), `Secure`/`HttpOnly`/`SameSite` on cookies but a whitelist
//!   ([`CookieFlagsLayer`]), and per-role masking of JSON fields with the audit trail's masks
//!   ([`MaskingLayer`]);
//! - [`crs`]: a ModSecurity configuration (the OWASP Core Rule Set) run in the injection
//!   stage through the system's libmodsecurity (cargo feature `crs`);
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
//! twin taking the date), so the layers built on them stay easy to test and never block. The
//! rate-limit, login and session stages are the stateful parts: their state is the point, their
//! clocks can be injected for tests, and their Redis calls are bounded by a timeout.
#![forbid(unsafe_code)]

pub mod crs;
pub mod csrf;
pub mod encode;
pub mod formats;
pub mod inject;
pub mod login;
pub mod origin;
pub mod params;
pub mod ratelimit;
pub mod response;
pub mod routes;
pub mod session;
pub mod stage;
pub mod upstream;
pub mod validate;

pub use csrf::{Csrf, CsrfLayer};
pub use formats::Format;
pub use inject::{Injection, InjectionCheck, RawInjection, Sensitivity};
pub use login::{LoginGuard, LoginLayer};
pub use origin::{OriginCheck, Origins};
pub use ratelimit::{RateLimitCheck, RateLimits, RawRateLimits};
pub use response::{
    CookieFlags, CookieFlagsLayer, Masking, MaskingLayer, ResponseConfig, SecurityHeaders,
    SecurityHeadersLayer,
};
pub use session::{RawSession, SessionGuard, SessionLayer};
pub use stage::{
    BufferedBody, Caller, Check, Refusal, Stage, StageLayer, StageTimes, Trail, buffer_body,
};
pub use upstream::Upstream;
pub use validate::{Validation, ValidationCheck};
