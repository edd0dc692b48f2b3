//! Envoy's external authorization over gRPC: `envoy.service.auth.v3.Authorization/Check`.
//!
//! The check request describes the original HTTP request; it is translated into a
//! [`Forwarded`] and decided by [`decide_forwarded`], exactly like the HTTP forward-auth edges.
//! The answer is always a `CheckResponse` (never a gRPC error, which Envoy would treat as the
//! service failing): `OK` with identity headers for the upstream, `PERMISSION_DENIED` with a 403,
//! `UNAUTHENTICATED` with a 401 and a `Bearer` challenge, or `INVALID_ARGUMENT` with a 400.
//!
//! What Envoy reports about the downstream connection (the client's address, its verified
//! certificate) and the `x-portcullis-time` header are believed only when the caller is a
//! configured trusted proxy, as for the HTTP edges; the certificate of the gRPC connection
//! itself is Envoy's, never the client's, so it is not used.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use envoy_types::ext_authz::v3::pb::{
    Address, Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::{HeaderValue as EnvoyHeader, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::rpc;
use serde_json::{Value, json};
use tonic::{Code, Response, Status};

use super::status_code;
use crate::decision::DecisionPath;
use crate::edges::api::header_tenant;
use crate::edges::forward::{
    Forwarded, Outcome, decide_forwarded, denied_body, is_trusted, traceparent,
};
use crate::error::ApiError;
use crate::identity::bearer;
use crate::state::AppState;
use crate::tls::{PeerInfo, client_cert_from_pem};

/// The original request's headers this edge reads.
const READ_HEADERS: [&str; 4] = [
    "authorization",
    "x-tenant-id",
    "traceparent",
    "x-portcullis-time",
];

/// The implementation of `envoy.service.auth.v3.Authorization`.
#[derive(Debug, Clone)]
pub struct EnvoyAuthorization {
    state: Arc<AppState>,
}

impl EnvoyAuthorization {
    /// A service deciding with `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        EnvoyAuthorization { state }
    }

    /// Decides a check request from a caller at `peer` (unknown when not served by our
    /// listeners).
    pub async fn decide(&self, peer: Option<&PeerInfo>, request: &CheckRequest) -> CheckResponse {
        let path = DecisionPath::new(&self.state, "envoy-grpc");
        match Self::authorize(&path, peer, request).await {
            Ok(Outcome::Allowed {
                decision,
                user,
                tenant,
                roles,
            }) => {
                let mut headers = Vec::new();
                push(&mut headers, "x-portcullis-user", &user);
                push(&mut headers, "x-portcullis-tenant", tenant.as_str());
                push(&mut headers, "x-portcullis-roles", &roles.join(","));
                push(&mut headers, "x-portcullis-decision-id", &decision.trace_id);
                CheckResponse {
                    status: Some(rpc::Status {
                        code: Code::Ok as i32,
                        ..Default::default()
                    }),
                    http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                        headers,
                        ..Default::default()
                    })),
                    ..Default::default()
                }
            }
            Ok(Outcome::Denied { decision, reason }) => {
                let body = denied_body(&decision, &reason);
                let mut headers = Vec::new();
                push(&mut headers, "content-type", "application/json");
                push(&mut headers, "x-portcullis-decision-id", &decision.trace_id);
                let cause = match &reason {
                    Value::String(cause) => cause.clone(),
                    other => other.to_string(),
                };
                denied(
                    Code::PermissionDenied,
                    format!("denied: {cause}"),
                    403,
                    headers,
                    body,
                )
            }
            Err(error) => {
                let body = json!({ "error": { "code": error.code, "message": error.message } });
                let mut headers = Vec::new();
                push(&mut headers, "content-type", "application/json");
                if let Some(challenge) = error.challenge {
                    push(&mut headers, "www-authenticate", challenge);
                }
                denied(
                    status_code(&error),
                    format!("{}: {}", error.code, error.message),
                    error.status.as_u16().into(),
                    headers,
                    body,
                )
            }
        }
    }

    async fn authorize(
        path: &DecisionPath<'_>,
        peer: Option<&PeerInfo>,
        request: &CheckRequest,
    ) -> Result<Outcome, ApiError> {
        let state = path.state();
        let limit = state.config.limits.max_header_bytes;
        let trusted =
            peer.is_some_and(|peer| is_trusted(&state.config.trusted_proxies, peer.addr.ip()));
        let attributes = request.attributes.as_ref();
        let http = attributes
            .and_then(|attributes| attributes.request.as_ref())
            .and_then(|request| request.http.as_ref())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_request",
                    "the check request has no attributes.request.http",
                )
            })?;
        if http.method.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_request",
                "attributes.request.http.method is empty",
            ));
        }
        if http.path.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_request",
                "attributes.request.http.path is empty",
            ));
        }
        // Envoy puts the query in `path`; `query` exists for compatibility and is normally empty.
        let uri = if http.query.is_empty() || http.path.contains('?') {
            Cow::Borrowed(http.path.as_str())
        } else {
            Cow::Owned(format!("{}?{}", http.path, http.query))
        };
        let headers = read_headers(http, limit)?;
        let source = attributes.and_then(|attributes| attributes.source.as_ref());

        let client_ip = if trusted {
            match source
                .and_then(|source| source.address.as_ref())
                .and_then(|address| address.address.as_ref())
            {
                Some(Address::SocketAddress(socket)) => {
                    Some(socket.address.trim().parse::<IpAddr>().map_err(|_| {
                        ApiError::bad_request(
                            "invalid_request",
                            format!(
                                "attributes.source.address holds `{}`, which is not an address",
                                socket.address
                            ),
                        )
                    })?)
                }
                // A pipe or an internal listener: the client has no network address.
                _ => None,
            }
        } else {
            // The caller is a proxy, not the client, and it is not trusted to name the client.
            None
        };
        let cert = match source.map(|source| source.certificate.as_str()) {
            Some(escaped) if trusted && !escaped.is_empty() => {
                let pem = percent_encoding::percent_decode_str(escaped).decode_utf8_lossy();
                Some(client_cert_from_pem(&pem).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_request",
                        "attributes.source.certificate is not a URL-encoded PEM certificate",
                    )
                })?)
            }
            _ => None,
        };
        let time = match headers.get("x-portcullis-time") {
            Some(value) if trusted => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|text| text.parse::<jiff::Timestamp>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_header",
                            "X-Portcullis-Time is not an RFC 3339 time with an offset",
                        )
                    })?,
            ),
            _ => None,
        };
        let forwarded = Forwarded {
            method: Cow::Borrowed(http.method.as_str()),
            uri,
            host: (!http.host.is_empty()).then_some(Cow::Borrowed(http.host.as_str())),
            tenant: header_tenant(&headers)?,
            token: bearer(&headers)?.map(Cow::Borrowed),
            principal: None,
            client_ip,
            cert,
            cert_sha1: None,
            time,
            trace_id: traceparent(&headers),
        };
        let agent = crate::edges::api::user_agent(&headers);
        decide_forwarded(path, forwarded, agent).await
    }
}

/// The headers this edge reads, from `headers` (lower-case keys) or, when Envoy sends raw
/// headers, from `header_map`.
fn read_headers(http: &HttpRequest, limit: usize) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    for name in READ_HEADERS {
        let value = http.headers.get(name).map(String::as_bytes).or_else(|| {
            http.header_map.as_ref().and_then(|map| {
                map.headers
                    .iter()
                    .find(|header| header.key.eq_ignore_ascii_case(name))
                    .map(|header| {
                        if header.raw_value.is_empty() {
                            header.value.as_bytes()
                        } else {
                            header.raw_value.as_slice()
                        }
                    })
            })
        });
        let Some(value) = value else { continue };
        if value.len() > limit {
            return Err(crate::connection::header_too_large(format!(
                "{name} is longer than {limit} bytes"
            )));
        }
        let value = HeaderValue::from_bytes(value).map_err(|_| {
            ApiError::bad_request(
                "invalid_header",
                format!("{name} is not a valid header value"),
            )
        })?;
        headers.insert(HeaderName::from_static(name), value);
    }
    Ok(headers)
}

/// Adds an upstream or downstream header that replaces any of the same name, so a client cannot
/// smuggle its own `x-portcullis-*` values past the proxy.
fn push(headers: &mut Vec<HeaderValueOption>, key: &str, value: &str) {
    headers.push(HeaderValueOption {
        header: Some(EnvoyHeader {
            key: key.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    });
}

fn denied(
    code: Code,
    message: String,
    http_status: i32,
    headers: Vec<HeaderValueOption>,
    body: Value,
) -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status {
            code: code as i32,
            message,
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: http_status }),
            headers,
            body: body.to_string(),
        })),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Authorization for EnvoyAuthorization {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<PeerInfo>>()
            .map(|ConnectInfo(peer)| peer.clone());
        Ok(Response::new(
            self.decide(peer.as_ref(), request.get_ref()).await,
        ))
    }
}
