//! The tenant as an axum extractor, and the HTTP answers of the isolation layers.
//!
//! This module owns the reading of the `X-Tenant-ID` header into a validated [`TenantId`] and the
//! JSON error bodies for a missing or invalid tenant (`400`) and for a quota refusal (`429` with
//! `Retry-After`). It must not look the tenant up or decide anything about it: whether the tenant
//! exists, is active, or matches the caller's identity is for the handler or the engine.
//!
//! Error bodies have the shape every Portcullis API uses:
//! `{"error": {"code": "missing_tenant" | "invalid_tenant" | …, "message": "…"}}`.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::quota::QuotaRefusal;
use crate::{InvalidTenantId, TenantId};

/// The header that names the tenant.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// The tenant named by the request's `X-Tenant-ID` header, validated.
///
/// As `Tenant`, a request without the header is rejected (`400 missing_tenant`); as
/// `Option<Tenant>`, it yields `None`. A header that is present but not a valid tenant id is
/// rejected either way (`400 invalid_tenant`).
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis_tenant::toolkit::Tenant;
///
/// async fn whoami(Tenant(tenant): Tenant) -> String {
///     format!("tenant {tenant}")
/// }
/// let app: Router = Router::new().route("/whoami", get(whoami));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub TenantId);

/// Why a request has no usable tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantRejection {
    /// No `X-Tenant-ID` header, or an empty one.
    #[error("the request names no tenant: send the tenant id in the X-Tenant-ID header")]
    Missing,
    /// The header is there more than once.
    #[error("X-Tenant-ID is sent more than once; send exactly one tenant id")]
    Repeated,
    /// The header's value is not visible ASCII text.
    #[error(
        "X-Tenant-ID is not a tenant id: a tenant id is 3 to 32 characters of ASCII letters, digits and '-'"
    )]
    NotText,
    /// The header's value is not a valid tenant id.
    #[error("X-Tenant-ID: {0}")]
    Invalid(#[from] InvalidTenantId),
}

impl TenantRejection {
    /// The machine-readable error code: `missing_tenant` or `invalid_tenant`.
    pub fn code(&self) -> &'static str {
        match self {
            TenantRejection::Missing => "missing_tenant",
            TenantRejection::Repeated | TenantRejection::NotText | TenantRejection::Invalid(_) => {
                "invalid_tenant"
            }
        }
    }
}

/// Reads the tenant from request headers: `Ok(None)` when there is no `X-Tenant-ID` (or it is
/// empty), an error when it is repeated or invalid. For edges that are not axum handlers.
pub fn tenant_from_headers(headers: &HeaderMap) -> Result<Option<TenantId>, TenantRejection> {
    let mut values = headers.get_all(TENANT_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TenantRejection::Repeated);
    }
    let text = value.to_str().map_err(|_| TenantRejection::NotText)?;
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(TenantId::new(text)?))
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        tenant_from_headers(&parts.headers)?
            .map(Tenant)
            .ok_or(TenantRejection::Missing)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Tenant {
    type Rejection = TenantRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(tenant_from_headers(&parts.headers)?.map(Tenant))
    }
}

fn error_response(status: StatusCode, code: &str, message: String) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for TenantRejection {
    fn into_response(self) -> Response {
        error_response(StatusCode::BAD_REQUEST, self.code(), self.to_string())
    }
}

/// `429 Too Many Requests` with `Retry-After` and the code `rate_limited` or
/// `too_many_concurrent_requests`.
impl IntoResponse for QuotaRefusal {
    fn into_response(self) -> Response {
        let mut response = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            self.limit().code(),
            self.to_string(),
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs()),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{QuotaConfig, Quotas};
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route(
                "/required",
                get(|Tenant(tenant): Tenant| async move { tenant.to_string() }),
            )
            .route(
                "/optional",
                get(|tenant: Option<Tenant>| async move {
                    tenant.map_or_else(|| "none".to_owned(), |Tenant(t)| t.to_string())
                }),
            )
    }

    async fn call(path: &str, headers: Headers<'_>) -> (StatusCode, Option<String>, String) {
        let mut request = Request::get(path);
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    type Headers<'a> = &'a [(&'a str, &'a [u8])];

    fn error_code(body: &str) -> (String, String) {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        (
            json["error"]["code"].as_str().unwrap().to_owned(),
            json["error"]["message"].as_str().unwrap().to_owned(),
        )
    }

    #[tokio::test]
    async fn a_valid_header_yields_the_tenant() {
        let (status, _, body) = call("/required", &[("X-Tenant-ID", b"acme")]).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "acme"));
        let (status, _, body) = call("/optional", &[("x-tenant-id", b"acme-2")]).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "acme-2"));
    }

    #[tokio::test]
    async fn a_missing_header_is_400_missing_tenant() {
        for headers in [&[][..], &[("X-Tenant-ID", &b""[..])][..]] {
            let (status, content_type, body) = call("/required", headers).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(content_type.as_deref(), Some("application/json"));
            let (code, message) = error_code(&body);
            assert_eq!(code, "missing_tenant");
            assert!(message.contains("X-Tenant-ID"), "{message}");
        }
        let (status, _, body) = call("/optional", &[]).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "none"));
    }

    #[tokio::test]
    async fn an_invalid_header_is_400_invalid_tenant() {
        let long = "x".repeat(33);
        let cases: [(Headers, &str); 5] = [
            (&[("X-Tenant-ID", b"a_b")], "character other than"),
            (&[("X-Tenant-ID", b"ab")], "shorter than 3"),
            (&[("X-Tenant-ID", long.as_bytes())], "longer than 32"),
            (&[("X-Tenant-ID", b"acm\xe9")], "not a tenant id"),
            (
                &[("X-Tenant-ID", b"acme"), ("X-Tenant-ID", b"globex")],
                "more than once",
            ),
        ];
        for (headers, expected) in cases {
            for path in ["/required", "/optional"] {
                let (status, _, body) = call(path, headers).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {headers:?}");
                let (code, message) = error_code(&body);
                assert_eq!(code, "invalid_tenant");
                assert!(message.contains(expected), "{message}");
            }
        }
    }

    #[tokio::test]
    async fn a_quota_refusal_is_429_with_retry_after() {
        let quotas = Quotas::new(QuotaConfig::new(Some(0.25), Some(1), None).unwrap());
        let acme = TenantId::new("acme").unwrap();
        drop(quotas.acquire(&acme).unwrap());
        let response = quotas.acquire(&acme).unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = response.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3..=4).contains(&retry_after), "{retry_after}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let (code, message) = error_code(std::str::from_utf8(&body).unwrap());
        assert_eq!(code, "rate_limited");
        assert!(message.contains("acme"), "{message}");
    }
}
