//! Login protection in front of an axum login handler, on a clock moved by hand.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed step must fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::routing::post;
use http_body_util::BodyExt as _;
use portcullis_guard::login::RawLogin;
use portcullis_guard::ratelimit::ManualClock;
use portcullis_guard::{Caller, LoginGuard, LoginLayer};
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn guard(extra: Value, clock: Arc<ManualClock>) -> Arc<LoginGuard> {
    let mut raw = json!({"route": "POST /login", "max_failures": 3, "lockout_seconds": 60, "max_lockout_seconds": 200});
    raw.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let raw: RawLogin = serde_json::from_value(raw).unwrap();
    Arc::new(LoginGuard::with_clock(raw, clock).unwrap())
}

/// The application: the password `right` logs in, anything else is 401.
fn app(guard: &Arc<LoginGuard>) -> Router {
    Router::new()
        .route(
            "/login",
            post(|body: String| async move {
                if body.contains("password=right") {
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }),
        )
        .route("/other", post(|| async { StatusCode::UNAUTHORIZED }))
        .layer(LoginLayer::new(Arc::clone(guard)))
}

async fn login(
    guard: &Arc<LoginGuard>,
    user: &str,
    password: &str,
    from: &str,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("username={user}&password={password}")))
        .unwrap();
    request.extensions_mut().insert(Caller {
        address: Some(from.parse().unwrap()),
        ..Caller::default()
    });
    let response = app(guard).oneshot(request).await.unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn failures_lock_the_account_with_doubling_lockouts() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(json!({}), Arc::clone(&clock));
    for _ in 0..3 {
        assert_eq!(
            login(&guard, "alice", "wrong", "198.51.100.1").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right password is refused before the application sees it, from any address.
    let (status, retry, body) = login(&guard, "Alice", "right", "198.51.100.2").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry.as_deref(), Some("60"));
    assert_eq!(body["error"]["stage"], "login");
    assert_eq!(body["error"]["code"], "login_locked");
    // Another account from another address is not affected.
    assert_eq!(
        login(&guard, "bob", "right", "198.51.100.3").await.0,
        StatusCode::NO_CONTENT
    );
    // After the lockout, three more failures lock for twice as long, then up to the ceiling.
    clock.advance(Duration::from_secs(61));
    for expected in ["120", "200", "200"] {
        for _ in 0..3 {
            login(&guard, "alice", "wrong", "198.51.100.4").await;
        }
        let (status, retry, _) = login(&guard, "alice", "right", "198.51.100.5").await;
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::TOO_MANY_REQUESTS, Some(expected))
        );
        clock.advance(Duration::from_secs(201));
    }
    // Once it lifts, the right password logs in, and that clears the account's history.
    assert_eq!(
        login(&guard, "alice", "right", "198.51.100.6").await.0,
        StatusCode::NO_CONTENT
    );
    for _ in 0..3 {
        login(&guard, "alice", "wrong", "198.51.100.7").await;
    }
    let (_, retry, _) = login(&guard, "alice", "right", "198.51.100.8").await;
    assert_eq!(retry.as_deref(), Some("60"));
}

#[tokio::test]
async fn an_address_trying_many_accounts_is_locked_and_unlock_lifts_it() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(json!({}), Arc::clone(&clock));
    for user in ["a", "b", "c"] {
        login(&guard, user, "wrong", "203.0.113.7").await;
    }
    let (status, _, _) = login(&guard, "d", "right", "203.0.113.7").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A success does not clear an address's failures, only an account's.
    assert!(guard.unlock(None, Some("203.0.113.7".parse().unwrap())));
    assert_eq!(
        login(&guard, "d", "right", "203.0.113.7").await.0,
        StatusCode::NO_CONTENT
    );
    assert!(!guard.unlock(Some("nobody"), None));
}

#[tokio::test]
async fn failures_outside_the_window_do_not_add_up_and_other_routes_are_not_counted() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(json!({"window_seconds": 10}), Arc::clone(&clock));
    for _ in 0..5 {
        login(&guard, "carol", "wrong", "192.0.2.1").await;
        clock.advance(Duration::from_secs(6));
        login(&guard, "carol", "wrong", "192.0.2.1").await;
        clock.advance(Duration::from_secs(11));
    }
    assert_eq!(
        login(&guard, "carol", "right", "192.0.2.1").await.0,
        StatusCode::NO_CONTENT
    );
    let other = Request::post("/other").body(Body::empty()).unwrap();
    assert_eq!(
        app(&guard).oneshot(other).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        guard.tracked(),
        1,
        "the address's failures in the window, not /other"
    );
}

#[tokio::test]
async fn state_is_bounded() {
    let clock = Arc::new(ManualClock::new());
    let guard = guard(json!({"max_keys": 4}), Arc::clone(&clock));
    for index in 0..10 {
        login(
            &guard,
            &format!("user{index}"),
            "wrong",
            &format!("192.0.2.{index}"),
        )
        .await;
    }
    assert!(guard.tracked() <= 4, "{}", guard.tracked());
    clock.advance(Duration::from_secs(1000));
    login(&guard, "late", "wrong", "192.0.2.200").await;
    assert!(
        guard.tracked() <= 2,
        "expired entries are pruned: {}",
        guard.tracked()
    );
}

#[test]
fn configuration_errors_name_the_field() {
    for (value, at) in [
        (json!({"route": "/login"}), "route"),
        (
            json!({"route": "POST /login", "max_failures": 0}),
            "max_failures",
        ),
        (
            json!({"route": "POST /login", "lockout_seconds": 100, "max_lockout_seconds": 10}),
            "max_lockout_seconds",
        ),
        (
            json!({"route": "POST /login", "failure_statuses": [401, 200]}),
            "failure_statuses[1]",
        ),
        (
            json!({"route": "POST /login", "account_field": ""}),
            "account_field",
        ),
        (json!({"route": "POST /login", "max_keys": 0}), "max_keys"),
    ] {
        let raw: RawLogin = serde_json::from_value(value.clone()).unwrap();
        let error = LoginGuard::new(raw).unwrap_err();
        assert_eq!(error.at, at, "{value}: {error}");
    }
}
