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
    assert!(
        guard
            .unlock(None, Some("203.0.113.7".parse().unwrap()))
            .await
            .unwrap()
    );
    assert_eq!(
        login(&guard, "d", "right", "203.0.113.7").await.0,
        StatusCode::NO_CONTENT
    );
    assert!(!guard.unlock(Some("nobody"), None).await.unwrap());
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

// ---------------------------------------------------------------------------------------------
// The shared store: the real Redis server at 127.0.0.1:6379
// ---------------------------------------------------------------------------------------------

mod support;

use support::{REDIS_URL, redis_connection, redis_is_up, unique_prefix};

/// A gateway node's login protection sharing `prefix` on the machine's Redis.
fn redis_guard(prefix: &str, extra: Value) -> Arc<LoginGuard> {
    let mut raw = json!({
        "route": "POST /login", "max_failures": 3, "lockout_seconds": 60,
        "max_lockout_seconds": 200, "store": "redis", "redis_url": REDIS_URL,
        "redis_prefix": prefix, "redis_timeout_ms": 5000,
    });
    raw.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let raw: RawLogin = serde_json::from_value(raw).unwrap();
    Arc::new(LoginGuard::new(raw).unwrap())
}

#[tokio::test]
async fn three_nodes_sharing_redis_lock_out_together_and_one_unlock_lifts_it_everywhere() {
    let test = "three_nodes_sharing_redis_lock_out_together";
    if !redis_is_up(test).await {
        return;
    }
    let prefix = unique_prefix(test);
    let nodes: Vec<_> = (0..3).map(|_| redis_guard(&prefix, json!({}))).collect();
    assert!(nodes.iter().all(|node| node.is_shared()));
    // One failure on each node: three in all, the limit.
    for (index, node) in nodes.iter().enumerate() {
        let from = format!("198.51.100.{}", index + 1);
        assert_eq!(
            login(node, "carol", "wrong", &from).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Every node refuses the account now, the right password too, and says for how long.
    for node in &nodes {
        let (status, retry, body) = login(node, "Carol", "right", "198.51.100.9").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"]["code"], "login_locked");
        let seconds: u64 = retry.unwrap().parse().unwrap();
        assert!((55..=60).contains(&seconds), "{seconds}");
        // Nothing is kept in the node's own memory.
        assert_eq!(node.tracked(), 0);
    }
    // The keys are under the prefix and all expire.
    let mut connection = redis_connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(
        keys.contains(&format!("{prefix}account:carol:locked")),
        "{keys:?}"
    );
    for key in &keys {
        let left: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(left > 0, "{key} does not expire ({left})");
    }
    // A long account name is kept by its digest, not as it was sent.
    let long = "x".repeat(1_000);
    for _ in 0..3 {
        login(&nodes[0], &long, "wrong", "198.51.100.20").await;
    }
    assert_eq!(
        login(&nodes[1], &long, "right", "198.51.100.21").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}account-sha256:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(
        !keys.is_empty() && keys.iter().all(|key| key.len() < 200),
        "{keys:?}"
    );
    // An unlock on one node lifts the lockout on the others.
    assert!(nodes[1].unlock(Some(" CAROL "), None).await.unwrap());
    assert_eq!(
        login(&nodes[2], "carol", "right", "198.51.100.9").await.0,
        StatusCode::NO_CONTENT
    );
    assert!(!nodes[0].unlock(Some("carol"), None).await.unwrap());
}

#[tokio::test]
async fn a_second_shared_lockout_is_twice_as_long() {
    let test = "a_second_shared_lockout_is_twice_as_long";
    if !redis_is_up(test).await {
        return;
    }
    let prefix = unique_prefix(test);
    let node = redis_guard(
        &prefix,
        json!({"lockout_seconds": 1, "max_lockout_seconds": 100}),
    );
    for _ in 0..3 {
        login(&node, "dave", "wrong", "192.0.2.1").await;
    }
    let (status, retry, _) = login(&node, "dave", "right", "192.0.2.1").await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("1"))
    );
    // Wait out the first lockout on the server's clock.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..3 {
        login(&node, "dave", "wrong", "192.0.2.2").await;
    }
    let (status, retry, _) = login(&node, "dave", "right", "192.0.2.3").await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("2"))
    );
}

#[tokio::test]
async fn an_unreachable_redis_refuses_attempts_when_closed_and_lets_them_through_when_open() {
    // Nothing listens on port 1; the connection is refused at once.
    let unreachable = json!({"redis_url": "redis://127.0.0.1:1", "redis_timeout_ms": 500});
    let closed = redis_guard("portcullis:test:unreachable:", unreachable.clone());
    let (status, retry, body) = login(&closed, "erin", "wrong", "192.0.2.7").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["stage"], "login");
    assert_eq!(body["error"]["code"], "login_unavailable");
    assert_eq!(retry.as_deref(), Some("1"));
    let (errors, last) = closed.store_errors();
    assert_eq!(errors, 1);
    assert!(last.unwrap().0.contains("Redis"));

    let mut open = unreachable;
    open["on_store_error"] = json!("open");
    let open = redis_guard("portcullis:test:unreachable:", open);
    for _ in 0..5 {
        assert_eq!(
            login(&open, "erin", "wrong", "192.0.2.7").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&open, "erin", "right", "192.0.2.7").await.0,
        StatusCode::NO_CONTENT
    );
    // Checked and counted: two store errors per failed attempt, one for the success.
    assert_eq!(open.store_errors().0, 11);
    // An unlock cannot reach the store either, and says so.
    assert!(open.unlock(Some("erin"), None).await.is_err());
}

#[test]
fn store_settings_are_checked_and_named() {
    let error = |extra: Value| {
        let mut raw = json!({"route": "POST /login"});
        raw.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let raw: RawLogin = serde_json::from_value(raw).unwrap();
        LoginGuard::new(raw).unwrap_err().to_string()
    };
    assert!(error(json!({"redis_url": REDIS_URL})).contains("redis_url"));
    assert!(error(json!({"on_store_error": "open"})).contains("on_store_error"));
    assert!(error(json!({"store": "redis"})).contains("redis_url"));
    assert!(error(json!({"store": "memcached"})).contains("store"));
    assert!(
        error(json!({"store": "redis", "redis_url": REDIS_URL, "max_keys": 5}))
            .contains("max_keys")
    );
    assert!(
        error(json!({"store": "redis", "redis_url": REDIS_URL, "on_store_error": "maybe"}))
            .contains("on_store_error")
    );
    assert!(error(json!({"store": "redis", "redis_url": "http://x"})).contains("redis_url"));
}
