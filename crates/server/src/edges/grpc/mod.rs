//! The gRPC edges of the decision service (SPEC.md C2): Envoy's external authorization
//! (`envoy.service.auth.v3.Authorization/Check`) and the Portcullis decision API
//! (`portcullis.v1.Decisions`: `Check`, `BatchCheck`, `Explain`), the relationship API, and
//! temporary access (`portcullis.v1.TemporaryAccess`).
//!
//! Both share the main listener with the HTTP API (gRPC is HTTP/2 with
//! `content-type: application/grpc`, served by the same axum router), and both only translate:
//! Envoy's check goes through [`crate::edges::forward::decide_forwarded`] like the HTTP forward-auth
//! edges, and the decision API through [`crate::state::AppState::decide`] like `POST /v1/check`.
//! Nothing here decides anything, and bad input is answered, never a reason to fail the call in
//! an unexpected way: Envoy always gets a `CheckResponse`, the decision API a status that names
//! the offending field.

mod access;
mod convert;
mod decisions;
mod envoy;
mod relations;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, Request, StatusCode, header};
use tonic::server::NamedService;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::state::AppState;

pub use access::AccessService;
pub use convert::{json_to_struct, struct_to_json};
pub use decisions::DecisionService;
pub use envoy::EnvoyAuthorization;
pub use relations::{RelationService, TupleService};

/// Types and services generated from `proto/portcullis/v1/decisions.proto`.
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    clippy::allow_attributes_without_reason,
    reason = "generated"
)]
pub mod pb {
    tonic::include_proto!("portcullis.v1");
}

type EnvoyServer = envoy_types::ext_authz::v3::pb::AuthorizationServer<EnvoyAuthorization>;
type DecisionsServer = pb::decisions_server::DecisionsServer<DecisionService>;
type RelationsServer = pb::relations_server::RelationsServer<RelationService>;
type TuplesServer = pb::relation_tuples_server::RelationTuplesServer<TupleService>;
type AccessServer = pb::temporary_access_server::TemporaryAccessServer<AccessService>;

/// Adds the gRPC services to a router (normally the public router, so they share its listener).
pub fn add_services(router: Router, state: &Arc<AppState>) -> Router {
    // Envoy's check requests keep tonic's default limit (4 MiB): the proxy's own configuration
    // decides how much of a request it forwards.
    let envoy = EnvoyServer::new(EnvoyAuthorization::new(Arc::clone(state)));
    // The decision API takes what a JSON body may hold.
    let decisions = DecisionsServer::new(DecisionService::new(Arc::clone(state)))
        .max_decoding_message_size(state.config.limits.max_body_bytes);
    let relations = RelationsServer::new(RelationService::new(Arc::clone(state)))
        .max_decoding_message_size(state.config.limits.max_body_bytes);
    let access = AccessServer::new(AccessService::new(Arc::clone(state)))
        .max_decoding_message_size(state.config.limits.max_body_bytes);
    router
        .route_service(&service_path::<EnvoyServer>(), envoy)
        .route_service(
            &service_path::<DecisionsServer>(),
            decisions.map_request(with_host::<axum::body::Body>),
        )
        .route_service(
            &service_path::<RelationsServer>(),
            relations.map_request(with_host::<axum::body::Body>),
        )
        .route_service(
            &service_path::<AccessServer>(),
            access.map_request(with_host::<axum::body::Body>),
        )
}

/// Adds the gRPC services of the admin listener (tuple writes and reads) to the admin router.
pub fn add_admin_services(router: Router, state: &Arc<AppState>) -> Router {
    let tuples = TuplesServer::new(TupleService::new(Arc::clone(state)))
        .max_decoding_message_size(state.config.limits.max_body_bytes);
    router.route_service(&service_path::<TuplesServer>(), tuples)
}

fn service_path<S: NamedService>() -> String {
    format!("/{}/{{*method}}", S::NAME)
}

/// HTTP/2 carries the host in `:authority`, which hyper keeps in the URI; identity binding reads
/// the `Host` header (as it does for HTTP/1.1), so the authority is copied there when absent.
fn with_host<B>(mut request: Request<B>) -> Request<B> {
    if !request.headers().contains_key(header::HOST)
        && let Some(value) = request
            .uri()
            .authority()
            .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
    {
        request.headers_mut().insert(header::HOST, value);
    }
    request
}

/// The gRPC status for an error the HTTP API would answer with `error.status`.
pub fn status_code(error: &ApiError) -> tonic::Code {
    match error.status {
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
        StatusCode::NOT_FOUND => tonic::Code::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => {
            tonic::Code::ResourceExhausted
        }
        status if status.is_server_error() => tonic::Code::Internal,
        _ => tonic::Code::InvalidArgument,
    }
}

/// An [`ApiError`] as a gRPC status: the same stable code, then the message.
pub fn to_status(error: &ApiError) -> tonic::Status {
    tonic::Status::new(
        status_code(error),
        format!("{}: {}", error.code, error.message),
    )
}
