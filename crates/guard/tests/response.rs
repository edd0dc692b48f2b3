//! The response stages in front of axum routers: security headers (set, kept from the upstream,
//! overridden, turned off), cookie flags (added, whitelisted, never weakened), per-role masking
//! of JSON fields with the audit crate's masks; configuration errors naming where they are.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step must fail the test"
)]

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use http_body_util::BodyExt as _;
use portcullis_audit::mask::{Mask, Masker, MaskingConfig, derive_pseudonym_key};
use portcullis_guard::response::{
    MaskingOutcome, RawCookieFlags, RawMasking, RawResponseConfig, RawSecurityHeaders, SkipReason,
};
use portcullis_guard::{
    Caller, CookieFlags, CookieFlagsLayer, Masking, MaskingLayer, ResponseConfig, SecurityHeaders,
    SecurityHeadersLayer,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const SECRET: &[u8] = b"a master secret for the tests";

/// Parses `value` as a raw section and checks it, the error as `at: message`.
fn checked<Raw, Checked>(value: Value) -> Result<Checked, String>
where
    Raw: serde::de::DeserializeOwned,
    Checked: TryFrom<Raw, Error = portcullis_guard::validate::ConfigError>,
{
    let raw: Raw = serde_json::from_value(value).map_err(|error| error.to_string())?;
    Checked::try_from(raw).map_err(|error| error.to_string())
}

fn headers_config(value: Value) -> Result<SecurityHeaders, String> {
    checked::<RawSecurityHeaders, SecurityHeaders>(value)
}

fn cookies_config(value: Value) -> Result<CookieFlags, String> {
    checked::<RawCookieFlags, CookieFlags>(value)
}

fn masking_config(value: Value) -> Result<Masking, String> {
    checked::<RawMasking, Masking>(value)
}

async fn body_text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Security headers
// ---------------------------------------------------------------------------------------------

fn headers_app(config: SecurityHeaders) -> Router {
    Router::new()
        .route("/plain", get(|| async { "hello" }))
        .route(
            "/framed",
            get(|| async {
                (
                    [
                        (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
                        (header::CONTENT_SECURITY_POLICY, "default-src *"),
                    ],
                    "widget",
                )
            }),
        )
        .layer(SecurityHeadersLayer::new(config))
}

async fn get_headers(app: Router, path: &str) -> (StatusCode, HeaderMap) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    (response.status(), response.headers().clone())
}

#[tokio::test]
async fn default_security_headers_are_on_every_response() {
    let config = headers_config(json!({})).unwrap();
    for path in ["/plain", "/missing"] {
        let (status, headers) = get_headers(headers_app(config.clone()), path).await;
        assert_eq!(
            status,
            if path == "/plain" {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            }
        );
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(
            headers[header::REFERRER_POLICY],
            "strict-origin-when-cross-origin"
        );
        // Only sent when configured: on plain HTTP it would mean nothing.
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
    }
    // The default of the validated type is the default of the empty section.
    let defaults: Vec<_> = SecurityHeaders::default()
        .headers()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let parsed: Vec<_> = config
        .headers()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    assert_eq!(defaults, parsed);
}

#[tokio::test]
async fn the_upstreams_headers_stay_unless_overridden() {
    let (_, headers) =
        get_headers(headers_app(headers_config(json!({})).unwrap()), "/framed").await;
    assert_eq!(headers[header::X_FRAME_OPTIONS], "SAMEORIGIN");
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], "default-src *");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers.get_all(header::X_FRAME_OPTIONS).iter().count(), 1);

    let config = headers_config(json!({"override": true})).unwrap();
    let (_, headers) = get_headers(headers_app(config), "/framed").await;
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers.get_all(header::X_FRAME_OPTIONS).iter().count(), 1);
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'")
    );
}

#[tokio::test]
async fn each_header_can_be_configured_or_turned_off() {
    let config = headers_config(json!({
        "hsts": {"max_age": 31536000, "include_subdomains": true, "preload": true},
        "content_security_policy": "default-src 'none'; img-src https:",
        "frame_options": "sameorigin",
        "referrer_policy": "no-referrer, Strict-Origin",
    }))
    .unwrap();
    let (_, headers) = get_headers(headers_app(config), "/plain").await;
    assert_eq!(
        headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000; includeSubDomains; preload"
    );
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; img-src https:"
    );
    assert_eq!(headers[header::X_FRAME_OPTIONS], "SAMEORIGIN");
    assert_eq!(
        headers[header::REFERRER_POLICY],
        "no-referrer, strict-origin"
    );

    let config = headers_config(json!({"hsts": {"max_age": 600}})).unwrap();
    let (_, headers) = get_headers(headers_app(config), "/plain").await;
    assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], "max-age=600");

    let config = headers_config(json!({
        "content_security_policy": false,
        "content_type_options": false,
        "frame_options": false,
        "referrer_policy": false,
    }))
    .unwrap();
    let (_, headers) = get_headers(headers_app(config), "/plain").await;
    for name in [
        header::CONTENT_SECURITY_POLICY,
        header::X_CONTENT_TYPE_OPTIONS,
        header::X_FRAME_OPTIONS,
        header::REFERRER_POLICY,
        header::STRICT_TRANSPORT_SECURITY,
    ] {
        assert!(!headers.contains_key(&name), "{name} is still sent");
    }

    // `true` asks for the default value.
    let config = headers_config(json!({"frame_options": true, "referrer_policy": true})).unwrap();
    let (_, headers) = get_headers(headers_app(config), "/plain").await;
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(
        headers[header::REFERRER_POLICY],
        "strict-origin-when-cross-origin"
    );
}

#[test]
fn security_header_errors_name_the_field() {
    let error = |value: Value| headers_config(value).unwrap_err();
    assert!(
        error(json!({"content_security_policy": "default-src 'self'\r\nX-Evil: 1"}))
            .starts_with("security_headers.content_security_policy: ")
    );
    assert!(
        error(json!({"content_security_policy": "  "}))
            .starts_with("security_headers.content_security_policy: is empty")
    );
    let frame = error(json!({"frame_options": "ALLOW-FROM https://a.example"}));
    assert!(
        frame.starts_with("security_headers.frame_options: "),
        "{frame}"
    );
    assert!(frame.contains("frame-ancestors"), "{frame}");
    assert!(
        error(json!({"referrer_policy": "origin, everywhere"}))
            .starts_with("security_headers.referrer_policy: `everywhere` is not a referrer policy")
    );
    assert!(
        error(json!({"hsts": {"max_age": 31536000, "preload": true}}))
            .starts_with("security_headers.hsts.preload: ")
    );
    assert!(
        error(json!({"hsts": {"max_age": 86400, "include_subdomains": true, "preload": true}}))
            .starts_with("security_headers.hsts.preload: ")
    );
    // Raw types refuse what they do not know, and settings of the wrong shape.
    assert!(error(json!({"x_frame_options": "deny"})).contains("unknown field"));
    assert!(error(json!({"hsts": {"max_age": 1, "subdomains": true}})).contains("unknown field"));
    assert!(error(json!({"frame_options": 1})).contains("a header value"));
}

// ---------------------------------------------------------------------------------------------
// Cookie flags
// ---------------------------------------------------------------------------------------------

fn cookies_app(config: CookieFlags) -> Router {
    Router::new()
        .route(
            "/login",
            get(|| async {
                let mut headers = HeaderMap::new();
                for cookie in [
                    "session=abc123; Path=/; Max-Age=3600; Domain=example.com",
                    "csrf_token=t0k3n; Path=/",
                    "legacy=1",
                    "pref=dark; SameSite=Strict",
                    "widget=w; samesite=None; secure; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
                    "js_flag=on; HttpOnly",
                ] {
                    headers.append(header::SET_COOKIE, HeaderValue::from_static(cookie));
                }
                (headers, "welcome")
            }),
        )
        .route("/plain", get(|| async { "no cookies" }))
        .layer(CookieFlagsLayer::new(config))
}

async fn set_cookies(app: Router, path: &str) -> Vec<String> {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

fn whitelisting() -> Value {
    json!({"except": ["legacy"], "http_only_except": ["csrf_token", "js_flag"]})
}

#[tokio::test]
async fn cookies_get_secure_httponly_and_samesite_but_the_whitelist() {
    let cookies = set_cookies(
        cookies_app(cookies_config(whitelisting()).unwrap()),
        "/login",
    )
    .await;
    assert_eq!(
        cookies,
        [
            // Every other attribute kept as written.
            "session=abc123; Path=/; Max-Age=3600; Domain=example.com; Secure; HttpOnly; SameSite=Lax",
            // A cookie scripts read: Secure and SameSite, no HttpOnly.
            "csrf_token=t0k3n; Path=/; Secure; SameSite=Lax",
            // Fully whitelisted: untouched.
            "legacy=1",
            // A stricter SameSite than configured stays.
            "pref=dark; Secure; HttpOnly; SameSite=Strict",
            // A weaker one is replaced; Secure is not written twice.
            "widget=w; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Secure; HttpOnly; SameSite=Lax",
            // The upstream's own HttpOnly is never removed.
            "js_flag=on; Secure; HttpOnly; SameSite=Lax",
        ]
    );
    for cookie in &cookies {
        for attribute in ["Secure", "HttpOnly", "SameSite"] {
            assert!(
                cookie.matches(attribute).count() <= 1,
                "{attribute} twice in {cookie}"
            );
        }
    }
    assert!(
        set_cookies(cookies_app(CookieFlags::default()), "/plain")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn cookie_flags_follow_the_configuration() {
    let config = cookies_config(json!({"same_site": "strict"})).unwrap();
    let cookies = set_cookies(cookies_app(config), "/login").await;
    assert_eq!(
        cookies[0],
        "session=abc123; Path=/; Max-Age=3600; Domain=example.com; Secure; HttpOnly; SameSite=Strict"
    );
    assert_eq!(cookies[2], "legacy=1; Secure; HttpOnly; SameSite=Strict");

    // `none` keeps the upstream's SameSite when it has one, and needs Secure.
    let config = cookies_config(json!({"same_site": "None"})).unwrap();
    let cookies = set_cookies(cookies_app(config), "/login").await;
    assert_eq!(cookies[2], "legacy=1; Secure; HttpOnly; SameSite=None");
    assert_eq!(cookies[3], "pref=dark; Secure; HttpOnly; SameSite=Strict");

    // Flags turned off are not added, but what the upstream set stays.
    let config = cookies_config(json!({"secure": false, "http_only": false})).unwrap();
    let cookies = set_cookies(cookies_app(config), "/login").await;
    assert_eq!(
        cookies[0],
        "session=abc123; Path=/; Max-Age=3600; Domain=example.com; SameSite=Lax"
    );
    assert_eq!(
        cookies[4],
        "widget=w; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Secure; SameSite=Lax"
    );
    assert_eq!(cookies[5], "js_flag=on; HttpOnly; SameSite=Lax");
}

#[test]
fn cookie_errors_name_the_field() {
    let error = |value: Value| cookies_config(value).unwrap_err();
    let none = error(json!({"same_site": "none", "secure": false}));
    assert!(
        none.starts_with("cookies.same_site: `none` needs `secure: true`"),
        "{none}"
    );
    assert!(error(json!({"same_site": "relaxed"})).starts_with("cookies.same_site: "));
    assert!(error(json!({"except": ["ok", "bad name"]})).starts_with("cookies.except[1]: "));
    assert!(
        error(json!({"except": ["a"], "http_only_except": ["a"]}))
            .starts_with("cookies.http_only_except[0]: `a` is already in `except`")
    );
    assert!(error(json!({"http_only_except": ["a", "a"]})).contains("listed twice"));
    assert!(error(json!({"httponly": true})).contains("unknown field"));
}

// ---------------------------------------------------------------------------------------------
// Masking
// ---------------------------------------------------------------------------------------------

fn customer() -> Value {
    json!({
        "customer": {"name": "Li Lei", "phone": "18912345678", "email": "li@example.com", "vip": null},
        "items": [
            {"sku": "A-1", "card": "6222020000001234"},
            {"sku": "B-2", "card": 6222020000005678u64},
            {"sku": "C-3"},
        ],
        "secret": {"pin": "1234", "hint": "birthday"},
    })
}

fn json_response(body: String, extra: &[(&'static str, &'static str)]) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in extra {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}

fn masking_rules() -> Value {
    json!({
        "max_body_bytes": 4096,
        "rules": [
            {"route": "GET /customers/{id}", "fields": [
                {"field": "customer.phone", "mask": {"keep_prefix": 7}, "unless_roles": ["support", "admin"]},
                {"field": "items[].card", "mask": {"keep_suffix": 4}},
                {"field": "customer.email", "mask": "pseudonym", "unless_roles": ["admin"]},
                {"field": "customer.vip", "mask": "redact"},
            ]},
            {"route": "* /list", "fields": [
                {"field": "[].phone", "mask": {"keep": {"prefix": 3, "suffix": 4}}},
            ]},
            {"route": "*", "fields": [
                {"field": "secret", "mask": "redact", "unless_roles": ["admin"]},
                {"field": "note", "mask": "redact"},
            ]},
        ],
    })
}

fn masking_app(layer: MaskingLayer) -> Router {
    Router::new()
        .route(
            "/customers/{id}",
            get(|| async {
                json_response(
                    customer().to_string(),
                    &[("etag", "\"v1\""), ("cache-control", "private")],
                )
            }),
        )
        .route(
            "/list",
            get(|| async {
                json_response(
                    json!([{"phone": "13812345678"}, {"phone": "15900001111"}, {"name": "x"}])
                        .to_string(),
                    &[],
                )
            })
            .post(|| async {
                let mut response =
                    json_response(json!([{"phone": "13812345678"}]).to_string(), &[]);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json; charset=utf-8"),
                );
                response
            }),
        )
        .route(
            "/text",
            get(|| async { "note: call 18912345678 about the card" }),
        )
        .route(
            "/broken",
            get(|| async { json_response("{\"note\": \"18912345678\"".to_owned(), &[]) }),
        )
        .route(
            "/spaced",
            get(|| async { json_response("{ \"other\" : 1 }".to_owned(), &[]) }),
        )
        .route(
            "/gzipped",
            get(|| async {
                json_response(
                    "{\"note\": \"x\"}".to_owned(),
                    &[("content-encoding", "gzip")],
                )
            }),
        )
        .route("/big", get(|| async { json_response(big_note(), &[]) }))
        .route(
            "/big-stream",
            get(|| async {
                // No Content-Length: the limit is found while reading.
                let chunks = big_note()
                    .into_bytes()
                    .chunks(100)
                    .map(|chunk| Ok::<_, std::io::Error>(Bytes::copy_from_slice(chunk)))
                    .collect::<Vec<_>>();
                let mut response =
                    Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }),
        )
        .route(
            "/endless",
            get(|| async {
                // A stream that never ends: only a layer that does not buffer answers.
                use futures_util::StreamExt as _;
                let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(
                    "note: 18912345678",
                ))]);
                let body = Body::from_stream(first.chain(futures_util::stream::pending()));
                ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
            }),
        )
        .layer(layer)
}

fn big_note() -> String {
    json!({"note": "x".repeat(5000)}).to_string()
}

fn masking_layer() -> MaskingLayer {
    MaskingLayer::new(masking_config(masking_rules()).unwrap(), Some(SECRET)).unwrap()
}

fn request(method: &str, path: &str, caller: Option<(&str, &[&str])>) -> Request {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    if let Some((tenant, roles)) = caller {
        request.extensions_mut().insert(Caller {
            address: None,
            principal: Some("someone".into()),
            tenant: Some(tenant.into()),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        });
    }
    request
}

/// The response's JSON, after checking that its Content-Length is its length.
async fn masked_json(response: Response<Body>) -> (Value, Option<MaskingOutcome>, HeaderMap) {
    let outcome = response.extensions().get::<MaskingOutcome>().copied();
    let headers = response.headers().clone();
    let body = body_text(response).await;
    if let Some(length) = headers.get(header::CONTENT_LENGTH) {
        assert_eq!(length.to_str().unwrap(), body.len().to_string());
    }
    (serde_json::from_str(&body).unwrap(), outcome, headers)
}

fn expected_pseudonym(tenant: &str, value: &str) -> String {
    let masker = Masker::new(
        &MaskingConfig::default(),
        derive_pseudonym_key(SECRET, tenant),
    )
    .unwrap();
    masker.pseudonym(value)
}

#[tokio::test]
async fn masking_hides_fields_from_roles_that_may_not_see_them() {
    let layer = masking_layer();
    let stats = layer.stats();
    let app = masking_app(layer);
    let response = app
        .clone()
        .oneshot(request("GET", "/customers/7", Some(("acme", &["agent"]))))
        .await
        .unwrap();
    let (body, outcome, headers) = masked_json(response).await;
    // The example: keep the first 7 of an 11-digit mobile number.
    assert_eq!(body["customer"]["phone"], "1891234****");
    assert_eq!(
        body["customer"]["email"],
        expected_pseudonym("acme", "li@example.com")
    );
    assert!(
        body["customer"]["email"]
            .as_str()
            .unwrap()
            .starts_with("p_")
    );
    assert_eq!(body["customer"]["name"], "Li Lei");
    // null holds nothing and stays.
    assert_eq!(body["customer"]["vip"], Value::Null);
    // Every element of the array; a number is masked as its text.
    assert_eq!(body["items"][0]["card"], "************1234");
    assert_eq!(body["items"][1]["card"], "************5678");
    assert_eq!(body["items"][2], json!({"sku": "C-3"}));
    // The `*` rule: an object under `redact` goes whole.
    assert_eq!(body["secret"], "[redacted]");
    assert_eq!(outcome, Some(MaskingOutcome::Masked { values: 5 }));
    // The ETag described the unmasked body; other headers stay.
    assert!(!headers.contains_key(header::ETAG));
    assert_eq!(headers[header::CACHE_CONTROL], "private");
    assert_eq!(stats.masked(), 1);

    // Support sees the phone; the cards and the pseudonym are still masked.
    let response = app
        .clone()
        .oneshot(request("GET", "/customers/7", Some(("acme", &["support"]))))
        .await
        .unwrap();
    let (body, _, _) = masked_json(response).await;
    assert_eq!(body["customer"]["phone"], "18912345678");
    assert_eq!(body["items"][0]["card"], "************1234");
    assert!(
        body["customer"]["email"]
            .as_str()
            .unwrap()
            .starts_with("p_")
    );

    // Pseudonyms are keyed per tenant.
    let response = app
        .clone()
        .oneshot(request("GET", "/customers/7", Some(("globex", &["agent"]))))
        .await
        .unwrap();
    let (body, _, _) = masked_json(response).await;
    assert_eq!(
        body["customer"]["email"],
        expected_pseudonym("globex", "li@example.com")
    );
    assert_ne!(
        expected_pseudonym("globex", "li@example.com"),
        expected_pseudonym("acme", "li@example.com")
    );

    // No caller: no roles, so everything is masked.
    let response = app
        .clone()
        .oneshot(request("GET", "/customers/7", None))
        .await
        .unwrap();
    let (body, _, _) = masked_json(response).await;
    assert_eq!(body["customer"]["phone"], "1891234****");
    assert_eq!(body["secret"], "[redacted]");
    assert_eq!(
        body["customer"]["email"],
        expected_pseudonym("", "li@example.com")
    );
}

#[tokio::test]
async fn a_caller_that_may_see_everything_gets_the_upstreams_bytes() {
    let layer = MaskingLayer::new(
        masking_config(json!({"rules": [
            {"route": "GET /customers/{id}", "fields": [
                {"field": "customer.phone", "mask": "redact", "unless_roles": ["admin"]},
            ]},
        ]}))
        .unwrap(),
        None,
    )
    .unwrap();
    let response = masking_app(layer)
        .oneshot(request("GET", "/customers/7", Some(("acme", &["admin"]))))
        .await
        .unwrap();
    // No rule applies: the layer does not even look, so no outcome is recorded.
    assert!(response.extensions().get::<MaskingOutcome>().is_none());
    assert!(response.headers().contains_key(header::ETAG));
    assert_eq!(body_text(response).await, customer().to_string());
}

#[tokio::test]
async fn root_arrays_any_method_routes_and_json_suffix_types() {
    let app = masking_app(masking_layer());
    let response = app
        .clone()
        .oneshot(request("GET", "/list", Some(("acme", &["agent"]))))
        .await
        .unwrap();
    let (body, _, _) = masked_json(response).await;
    assert_eq!(
        body,
        json!([{"phone": "138****5678"}, {"phone": "159****1111"}, {"name": "x"}])
    );
    // `* /list` covers POST too, and `application/problem+json` is JSON.
    let response = app
        .oneshot(request("POST", "/list", Some(("acme", &["agent"]))))
        .await
        .unwrap();
    let (body, outcome, _) = masked_json(response).await;
    assert_eq!(body, json!([{"phone": "138****5678"}]));
    assert_eq!(outcome, Some(MaskingOutcome::Masked { values: 1 }));
}

#[tokio::test]
async fn head_requests_are_not_read() {
    let layer = masking_layer();
    let stats = layer.stats();
    let response = masking_app(layer)
        .oneshot(request("HEAD", "/big", Some(("acme", &["agent"]))))
        .await
        .unwrap();
    assert!(response.extensions().get::<MaskingOutcome>().is_none());
    assert_eq!(stats.skipped(SkipReason::TooLarge), 0);
}

#[tokio::test]
async fn json_without_the_fields_passes_byte_for_byte() {
    let response = masking_app(masking_layer())
        .oneshot(request("GET", "/spaced", Some(("acme", &["agent"]))))
        .await
        .unwrap();
    assert_eq!(
        response.extensions().get::<MaskingOutcome>(),
        Some(&MaskingOutcome::NothingToMask)
    );
    assert_eq!(body_text(response).await, "{ \"other\" : 1 }");
}

#[tokio::test]
async fn responses_that_cannot_be_masked_pass_unchanged_and_are_counted() {
    let layer = masking_layer();
    let stats = layer.stats();
    let app = masking_app(layer);
    let send = |path: &'static str| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(request("GET", path, Some(("acme", &["agent"]))))
                .await
                .unwrap();
            let outcome = response.extensions().get::<MaskingOutcome>().copied();
            (outcome, body_text(response).await)
        }
    };

    let (outcome, body) = send("/text").await;
    assert_eq!(outcome, Some(MaskingOutcome::Skipped(SkipReason::NotJson)));
    assert_eq!(body, "note: call 18912345678 about the card");

    let (outcome, body) = send("/broken").await;
    assert_eq!(
        outcome,
        Some(MaskingOutcome::Skipped(SkipReason::Unparsable))
    );
    assert_eq!(body, "{\"note\": \"18912345678\"");

    let (outcome, body) = send("/gzipped").await;
    assert_eq!(outcome, Some(MaskingOutcome::Skipped(SkipReason::Encoded)));
    assert_eq!(body, "{\"note\": \"x\"}");

    // Larger than the limit, declared or found while reading: replayed whole.
    for path in ["/big", "/big-stream"] {
        let (outcome, body) = send(path).await;
        assert_eq!(
            outcome,
            Some(MaskingOutcome::Skipped(SkipReason::TooLarge)),
            "{path}"
        );
        assert_eq!(body, big_note(), "{path}");
    }

    assert_eq!(stats.skipped(SkipReason::NotJson), 1);
    assert_eq!(stats.skipped(SkipReason::Unparsable), 1);
    assert_eq!(stats.skipped(SkipReason::Encoded), 1);
    assert_eq!(stats.skipped(SkipReason::TooLarge), 2);
    assert_eq!(stats.skipped(SkipReason::Unreadable), 0);
    assert_eq!(stats.masked(), 0);
}

#[tokio::test]
async fn other_responses_keep_streaming() {
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        masking_app(masking_layer()).oneshot(request("GET", "/endless", Some(("acme", &[])))),
    )
    .await
    .expect("the layer waited for a body it must not buffer")
    .unwrap();
    assert_eq!(
        response.extensions().get::<MaskingOutcome>(),
        Some(&MaskingOutcome::Skipped(SkipReason::NotJson))
    );
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "note: 18912345678");
}

#[tokio::test]
async fn a_body_that_fails_midway_fails_for_the_client_as_it_would_without_the_layer() {
    let app = Router::new()
        .route(
            "/failing",
            get(|| async {
                let chunks = [
                    Ok(Bytes::from("{\"note\": \"18912345678\"")),
                    Err(std::io::Error::other("upstream went away")),
                ];
                let body = Body::from_stream(futures_util::stream::iter(chunks));
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            }),
        )
        .layer(masking_layer());
    let response = app
        .oneshot(request("GET", "/failing", Some(("acme", &["agent"]))))
        .await
        .unwrap();
    assert_eq!(
        response.extensions().get::<MaskingOutcome>(),
        Some(&MaskingOutcome::Skipped(SkipReason::Unreadable))
    );
    assert!(response.into_body().collect().await.is_err());
}

#[tokio::test]
async fn trailers_survive_masking() {
    let app = Router::new()
        .route(
            "/trailed",
            get(|| async {
                let mut trailers = HeaderMap::new();
                trailers.insert("x-checksum", HeaderValue::from_static("abc"));
                let body = http_body_util::Full::new(Bytes::from("{\"note\": \"secret\"}"))
                    .map_err(|never| match never {})
                    .with_trailers(async move { Some(Ok::<_, std::io::Error>(trailers)) });
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::new(body),
                )
                    .into_response()
            }),
        )
        .layer(masking_layer());
    let response = app
        .oneshot(request("GET", "/trailed", Some(("acme", &["agent"]))))
        .await
        .unwrap();
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-checksum"], "abc");
    assert_eq!(collected.to_bytes(), "{\"note\":\"[redacted]\"}");
}

#[test]
fn the_audit_masks_are_the_ones_used() {
    // The masks come from portcullis-audit; this pins the behaviour the examples rely on.
    let masker = Masker::none();
    assert_eq!(
        masker.mask_value("18912345678", Mask::KeepPrefix(7)),
        "1891234****"
    );
    assert_eq!(masker.mask_value("anything", Mask::Redact), "[redacted]");
}

#[test]
fn masking_errors_name_the_field() {
    let error = |value: Value| masking_config(value).unwrap_err();
    let rule = |route: &str, field: Value| json!({"rules": [{"route": route, "fields": [field]}]});

    let mask = error(rule("GET /a", json!({"field": "a", "mask": "blur"})));
    assert!(
        mask.starts_with("masking.rules[0].fields[0].mask: "),
        "{mask}"
    );
    assert!(mask.contains("keep_prefix"), "{mask}");
    assert!(
        error(rule(
            "GET /a",
            json!({"field": "a", "mask": {"keep_prefix": "7"}})
        ))
        .starts_with("masking.rules[0].fields[0].mask: ")
    );
    for field in ["items[0].card", "", "a..b", "a.[]"] {
        assert!(
            error(rule("GET /a", json!({"field": field, "mask": "redact"})))
                .starts_with("masking.rules[0].fields[0].field: "),
            "{field:?}"
        );
    }
    assert!(
        error(rule(
            "GET /a",
            json!({"field": "a", "mask": "redact", "unless_roles": [""]})
        ))
        .starts_with("masking.rules[0].fields[0].unless_roles[0]: ")
    );
    for route in ["GET customers", "get /a", "/a"] {
        assert!(
            error(rule(route, json!({"field": "a", "mask": "redact"})))
                .starts_with("masking.rules[0].route: "),
            "{route}"
        );
    }
    let duplicate = error(json!({"rules": [
        {"route": "GET /a/{id}", "fields": [{"field": "a", "mask": "redact"}]},
        {"route": "GET /a/{id}", "fields": [{"field": "b", "mask": "redact"}]},
    ]}));
    assert!(
        duplicate.starts_with("masking.rules[1].route: "),
        "{duplicate}"
    );
    let stars = error(json!({"rules": [
        {"route": "*", "fields": [{"field": "a", "mask": "redact"}]},
        {"route": "*", "fields": [{"field": "b", "mask": "redact"}]},
    ]}));
    assert!(stars.starts_with("masking.rules[1].route: "), "{stars}");
    assert!(
        error(json!({"rules": [{"route": "*", "fields": []}]}))
            .starts_with("masking.rules[0].fields: lists no field")
    );
    assert!(error(json!({"max_body_bytes": 0})).starts_with("masking.max_body_bytes: "));
    assert!(
        error(rule(
            "GET /a",
            json!({"field": "a", "mask": "redact", "unles_roles": []})
        ))
        .contains("unknown field")
    );

    // A pseudonym needs the secret its keys are derived from.
    let config =
        masking_config(rule("GET /a", json!({"field": "a", "mask": "pseudonym"}))).unwrap();
    let missing = MaskingLayer::new(config.clone(), None)
        .unwrap_err()
        .to_string();
    assert!(
        missing
            .starts_with("masking.rules[0].fields[0].mask: `pseudonym` needs a pseudonym secret"),
        "{missing}"
    );
    assert!(MaskingLayer::new(config, Some(SECRET)).is_ok());
}

// ---------------------------------------------------------------------------------------------
// All three
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_three_layers_stack_from_one_configuration() {
    let raw: RawResponseConfig = serde_json::from_value(json!({
        "security_headers": {"hsts": {"max_age": 600}},
        "cookies": {"http_only_except": ["csrf_token"]},
        "masking": {"rules": [{"route": "GET /me", "fields": [
            {"field": "phone", "mask": {"keep_prefix": 7}},
        ]}]},
    }))
    .unwrap();
    let config = ResponseConfig::try_from(raw).unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|| async {
                let mut response = json_response(json!({"phone": "18912345678"}).to_string(), &[]);
                response.headers_mut().insert(
                    header::SET_COOKIE,
                    HeaderValue::from_static("csrf_token=abc; Path=/"),
                );
                response
            }),
        )
        .layer(MaskingLayer::new(config.masking, None).unwrap())
        .layer(CookieFlagsLayer::new(config.cookies))
        .layer(SecurityHeadersLayer::new(config.security_headers));
    let response = app
        .oneshot(request("GET", "/me", Some(("acme", &["agent"]))))
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::STRICT_TRANSPORT_SECURITY],
        "max-age=600"
    );
    assert_eq!(
        response.headers()[header::SET_COOKIE],
        "csrf_token=abc; Path=/; Secure; SameSite=Lax"
    );
    let (body, _, _) = masked_json(response).await;
    assert_eq!(body, json!({"phone": "1891234****"}));

    // Errors from the combined configuration name the section too.
    let raw: RawResponseConfig =
        serde_json::from_value(json!({"cookies": {"same_site": "none", "secure": false}})).unwrap();
    let error = ResponseConfig::try_from(raw).unwrap_err();
    assert_eq!(error.at, "cookies.same_site");
    assert!(
        serde_json::from_value::<RawResponseConfig>(json!({"cookie": {}}))
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );
}
