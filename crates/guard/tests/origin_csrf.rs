//! The trusted-origin and CSRF stages in front of an axum router.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed step must fail the test"
)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse as _;
use axum::routing::{any, post};
use http_body_util::BodyExt as _;
use portcullis_guard::csrf::RawCsrf;
use portcullis_guard::origin::RawOrigins;
use portcullis_guard::{Csrf, CsrfLayer, OriginCheck, Origins, StageLayer};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn origins(value: Value) -> Result<Origins, String> {
    let raw: RawOrigins = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Origins::try_from(raw).map_err(|e| e.to_string())
}

async fn answer(app: Router, request: Request) -> (StatusCode, HeaderMap, Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn origin_app(config: Value) -> Router {
    let check = OriginCheck::new(Arc::new(origins(config).unwrap()));
    Router::new()
        .route("/{*path}", any(|| async { "reached" }))
        .layer(StageLayer::new(check))
}

fn request(method: &str, headers: &[(&str, &str)]) -> Request {
    let mut builder = Request::builder().method(method).uri("/orders");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn state_changing_requests_need_a_trusted_origin() {
    let config = json!({"trusted": ["https://app.example.com", "http://localhost:8080"]});
    // Method, request headers, and the refusal's (code, field) when refused.
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<(&'a str, &'a str)>,
    );
    let cases: &[Case<'_>] = &[
        ("GET", &[("origin", "https://evil.example")], None),
        ("POST", &[("origin", "https://app.example.com")], None),
        ("POST", &[("origin", "https://APP.example.com:443")], None),
        ("DELETE", &[("origin", "http://localhost:8080")], None),
        (
            "POST",
            &[("origin", "http://app.example.com")],
            Some(("untrusted_origin", "origin")),
        ),
        (
            "POST",
            &[("origin", "https://app.example.com:8443")],
            Some(("untrusted_origin", "origin")),
        ),
        (
            "POST",
            &[("origin", "https://evil.example")],
            Some(("untrusted_origin", "origin")),
        ),
        (
            "POST",
            &[("origin", "null")],
            Some(("untrusted_origin", "origin")),
        ),
        (
            "PUT",
            &[("referer", "https://app.example.com/cart?step=2")],
            None,
        ),
        (
            "PUT",
            &[("referer", "https://evil.example/app.example.com")],
            Some(("untrusted_origin", "referer")),
        ),
        // The Origin header wins over the Referer.
        (
            "POST",
            &[
                ("origin", "https://evil.example"),
                ("referer", "https://app.example.com/"),
            ],
            Some(("untrusted_origin", "origin")),
        ),
        // The request's own host.
        (
            "POST",
            &[
                ("host", "gw.internal:9000"),
                ("origin", "http://gw.internal:9000"),
            ],
            None,
        ),
        (
            "POST",
            &[
                ("host", "gw.internal:9000"),
                ("origin", "http://gw.internal:9001"),
            ],
            Some(("untrusted_origin", "origin")),
        ),
        // Neither header: not a browser; passes unless required.
        ("POST", &[], None),
    ];
    for (method, headers, expected) in cases {
        let (status, _, body) = answer(origin_app(config.clone()), request(method, headers)).await;
        match expected {
            None => assert_eq!(status, StatusCode::OK, "{method} {headers:?}: {body}"),
            Some((code, field)) => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {headers:?}");
                assert_eq!(body["error"]["code"], *code, "{method} {headers:?}");
                assert_eq!(body["error"]["field"], *field);
                assert_eq!(body["error"]["stage"], "origin");
            }
        }
    }
    let strict =
        json!({"trusted": ["https://app.example.com"], "require": true, "same_host": false});
    let (status, _, body) = answer(origin_app(strict.clone()), request("POST", &[])).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("origin_missing"))
    );
    let (status, _, _) = answer(
        origin_app(strict),
        request(
            "POST",
            &[("host", "gw.internal"), ("origin", "http://gw.internal")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[test]
fn origins_that_are_not_origins_are_configuration_errors() {
    for (index, bad) in [
        "app.example.com",
        "https://a.example/path",
        "ftp://a.example",
        "https://user@a.example",
        "https://a.example/?q",
    ]
    .iter()
    .enumerate()
    {
        let mut trusted = vec!["https://fine.example"; index + 1];
        trusted[index] = bad;
        let error = origins(json!({"trusted": trusted})).unwrap_err();
        assert!(
            error.starts_with(&format!("trusted[{index}]:")),
            "{bad}: {error}"
        );
    }
    assert!(origins(json!({"trusted": ["https://a.example/"]})).is_ok());
    assert!(
        origins(json!({"trusted": [], "strict": true}))
            .unwrap_err()
            .contains("strict")
    );
}

const KEY: [u8; 32] = [7; 32];

fn csrf(value: Value) -> Csrf {
    let raw: RawCsrf = serde_json::from_value(value).unwrap();
    Csrf::new(raw, KEY).unwrap()
}

fn csrf_app(config: Value) -> Router {
    Router::new()
        .route(
            "/login",
            post(|| async {
                ([(header::SET_COOKIE, "session=s9; Path=/; HttpOnly")], "in").into_response()
            }),
        )
        .route(
            "/logout",
            post(|| async {
                ([(header::SET_COOKIE, "session=; Path=/; Max-Age=0")], "out").into_response()
            }),
        )
        .route("/{*path}", any(|| async { "reached" }))
        .layer(CsrfLayer::new(Arc::new(csrf(config))))
}

fn csrf_request(method: &str, path: &str, headers: &[(&str, String)], body: &str) -> Request {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn synchronizer_tokens_are_bound_to_the_session() {
    let config = json!({});
    let tokens = csrf(config.clone());
    let session = |id: &str| ("cookie", format!("theme=dark; session={id}"));
    let app = || csrf_app(config.clone());
    // No session: nothing to protect.
    let (status, _, _) = answer(app(), csrf_request("POST", "/orders", &[], "")).await;
    assert_eq!(status, StatusCode::OK);
    // A session without a token, with another session's token, with garbage.
    let other = tokens.token_for("s2");
    for (headers, code) in [
        (vec![session("s1")], "csrf_token_missing"),
        (
            vec![session("s1"), ("x-csrf-token", other)],
            "csrf_token_invalid",
        ),
        (
            vec![session("s1"), ("x-csrf-token", "abc.def".into())],
            "csrf_token_invalid",
        ),
    ] {
        let (status, _, body) = answer(app(), csrf_request("POST", "/orders", &headers, "")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(body["error"]["code"], code);
        assert_eq!(body["error"]["stage"], "csrf");
        assert_eq!(body["error"]["field"], "x-csrf-token");
    }
    // The header, or the form field.
    let token = tokens.token_for("s1");
    let (status, headers, _) = answer(
        app(),
        csrf_request(
            "POST",
            "/orders",
            &[session("s1"), ("x-csrf-token", token.clone())],
            "",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let issued = headers["x-csrf-token"].to_str().unwrap();
    assert!(tokens.verify("s1", issued) && !tokens.verify("s2", issued));
    let form = format!("item=3&_csrf={token}");
    let (status, _, _) = answer(
        app(),
        csrf_request(
            "POST",
            "/orders",
            &[
                session("s1"),
                ("content-type", "application/x-www-form-urlencoded".into()),
            ],
            &form,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Safe methods are not checked, and get the token to use.
    let (status, headers, _) =
        answer(app(), csrf_request("GET", "/page", &[session("s1")], "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(tokens.verify("s1", headers["x-csrf-token"].to_str().unwrap()));
    // Logging in rotates: the token handed out is the new session's.
    let (status, headers, _) = answer(
        app(),
        csrf_request(
            "POST",
            "/login",
            &[session("s1"), ("x-csrf-token", token)],
            "",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rotated = headers["x-csrf-token"].to_str().unwrap();
    assert!(tokens.verify("s9", rotated) && !tokens.verify("s1", rotated));
    assert!(
        headers
            .get_all(header::SET_COOKIE)
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("csrf_token="))
    );
}

#[tokio::test]
async fn double_submit_needs_the_cookie_to_match() {
    let config = json!({"mode": "double_submit"});
    let tokens = csrf(config.clone());
    let app = || csrf_app(config.clone());
    let token = tokens.token_for("s1");
    let cookies = |csrf: &str| ("cookie", format!("session=s1; csrf_token={csrf}"));
    let (status, _, _) = answer(
        app(),
        csrf_request(
            "POST",
            "/orders",
            &[cookies(&token), ("x-csrf-token", token.clone())],
            "",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stale = tokens.token_for("s1");
    let (status, _, body) = answer(
        app(),
        csrf_request(
            "POST",
            "/orders",
            &[cookies(&stale), ("x-csrf-token", token.clone())],
            "",
        ),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("csrf_token_invalid"))
    );
    // Login sets the new session's token cookie; logout clears it.
    let (_, headers, _) = answer(
        app(),
        csrf_request(
            "POST",
            "/login",
            &[cookies(&token), ("x-csrf-token", token.clone())],
            "",
        ),
    )
    .await;
    let set: Vec<&str> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let cookie = set.iter().find(|c| c.starts_with("csrf_token=")).unwrap();
    let value = cookie
        .trim_start_matches("csrf_token=")
        .split(';')
        .next()
        .unwrap();
    assert!(tokens.verify("s9", value), "{set:?}");
    assert!(
        cookie.contains("SameSite=Strict")
            && cookie.contains("Secure")
            && !cookie.contains("HttpOnly")
    );
    let (_, headers, _) = answer(
        app(),
        csrf_request(
            "POST",
            "/logout",
            &[cookies(&token), ("x-csrf-token", token)],
            "",
        ),
    )
    .await;
    let set: Vec<&str> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("csrf_token=;") && c.contains("Max-Age=0")),
        "{set:?}"
    );
}

#[test]
fn csrf_configuration_errors_name_the_field() {
    for (value, at) in [
        (json!({"session_cookie": "a", "cookie": "a"}), "cookie"),
        (json!({"cookie": "bad name"}), "cookie"),
        (json!({"header": "bad header"}), "header"),
        (json!({"field": ""}), "field"),
        (json!({"max_body_bytes": 0}), "max_body_bytes"),
    ] {
        let raw: RawCsrf = serde_json::from_value(value.clone()).unwrap();
        let error = Csrf::new(raw, KEY).unwrap_err().to_string();
        assert!(error.starts_with(&format!("{at}:")), "{value}: {error}");
    }
}

proptest! {
    /// A token verifies for its session only, and any changed character breaks it.
    #[test]
    fn tokens_verify_for_their_session_only(session in "[a-zA-Z0-9]{1,40}", other in "[a-zA-Z0-9]{1,40}", at in 0usize..97) {
        let tokens = csrf(json!({}));
        let token = tokens.token_for(&session);
        prop_assert!(tokens.verify(&session, &token));
        prop_assert_eq!(tokens.verify(&other, &token), other == session);
        let mut bytes = token.clone().into_bytes();
        let at = at % bytes.len();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(!tokens.verify(&session, &changed));
        // Another key does not accept it.
        let raw: RawCsrf = serde_json::from_value(json!({})).unwrap();
        prop_assert!(!Csrf::new(raw, [8; 32]).unwrap().verify(&session, &token));
    }
}
