//! The edges: each turns one protocol into questions for the decision module and its answers
//! back into that protocol — the JSON API ([`api`]), OpenID AuthZEN ([`authzen`]), forward-auth
//! for nginx, Traefik and Envoy over HTTP ([`forward`]), relationship queries ([`relations`])
//! and gRPC ([`grpc`]: Envoy ext_authz and `portcullis.v1`). An edge validates the shape of what
//! it is sent and renders what it gets back; it never decides, reads a policy, or writes an
//! audit record itself.

pub mod api;
pub mod authzen;
pub mod forward;
pub mod grpc;
pub mod relations;
