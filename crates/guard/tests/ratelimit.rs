//! The rate-limit stage: configuration errors naming the field, the stage in front of an axum
//! router answering 429 with `Retry-After`, and the Redis store against the real server at
//! 127.0.0.1:6379 — three nodes enforcing one limit, keys that expire, and an unreachable or
//! silent server failing as configured.
//!
//! Tests that need Redis check that it answers first: under `CI=true` they fail when it does
//! not, elsewhere they print a notice and pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step must fail the test"
)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use http_body_util::BodyExt as _;
use portcullis_guard::ratelimit::{
    DEFAULT_MAX_KEYS, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, KeyKind, ManualClock,
    OnStoreError, StoreConfig,
};
use portcullis_guard::{
    Caller, RateLimitCheck, RateLimits, RawRateLimits, Refusal, Stage, StageLayer, Trail,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

mod support;

use support::{REDIS_URL, redis_connection, redis_is_up, unique_prefix};

fn limits(config: Value) -> RateLimits {
    let raw: RawRateLimits = serde_json::from_value(config).unwrap();
    raw.try_into().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

fn config_error(config: Value) -> String {
    let raw: RawRateLimits = serde_json::from_value(config).unwrap();
    match RateLimits::try_from(raw) {
        Ok(limits) => panic!("accepted: {limits:?}"),
        Err(error) => {
            assert!(
                error.to_string().contains(&format!("`{}`", error.field)),
                "{error}"
            );
            error.field
        }
    }
}

#[test]
fn config_errors_name_the_field() {
    let quota = json!({"requests": 10, "per_seconds": 60});
    let cases = [
        (json!({}), "address"),
        (
            json!({"address": {"requests": 0, "per_seconds": 1}}),
            "address.requests",
        ),
        (json!({"tenant": {"requests": 1}}), "tenant.per_seconds"),
        (
            json!({"principal": {"per_seconds": 1}}),
            "principal.requests",
        ),
        (
            json!({"tenant": {"requests": 1, "per_seconds": 0}}),
            "tenant.per_seconds",
        ),
        (
            json!({"principal": {"requests": 1, "per_seconds": 1, "burst": 0}}),
            "principal.burst",
        ),
        (
            json!({"address": {"requests": 1, "per_seconds": 400 * 86_400}}),
            "address.per_seconds",
        ),
        (
            json!({"address": {"requests": 2_000_001, "per_seconds": 2}}),
            "address.requests",
        ),
        (
            json!({"address": {"requests": 1, "per_seconds": 86_400, "burst": 4_000}}),
            "address.burst",
        ),
        (json!({"address": quota, "store": "memcached"}), "store"),
        (
            json!({"address": quota, "on_store_error": "maybe"}),
            "on_store_error",
        ),
        (json!({"address": quota, "max_keys": 0}), "max_keys"),
        (
            json!({"address": quota, "tenant": quota, "max_keys": 1}),
            "max_keys",
        ),
        (
            json!({"address": quota, "redis_url": REDIS_URL}),
            "redis_url",
        ),
        (
            json!({"address": quota, "redis_prefix": "x:"}),
            "redis_prefix",
        ),
        (
            json!({"address": quota, "redis_timeout_ms": 10}),
            "redis_timeout_ms",
        ),
        (json!({"address": quota, "store": "redis"}), "redis_url"),
        (
            json!({"address": quota, "store": "redis", "redis_url": "http://127.0.0.1"}),
            "redis_url",
        ),
        (
            json!({"address": quota, "store": "redis", "redis_url": REDIS_URL, "max_keys": 5}),
            "max_keys",
        ),
        (
            json!({"address": quota, "store": "redis", "redis_url": REDIS_URL, "redis_prefix": ""}),
            "redis_prefix",
        ),
        (
            json!({"address": quota, "store": "redis", "redis_url": REDIS_URL, "redis_timeout_ms": 0}),
            "redis_timeout_ms",
        ),
    ];
    for (config, field) in cases {
        assert_eq!(config_error(config.clone()), field, "{config}");
    }
}

#[test]
fn unknown_fields_are_refused() {
    for config in [
        json!({"adress": {"requests": 1, "per_seconds": 1}}),
        json!({"address": {"requests": 1, "per_minute": 1}}),
    ] {
        let error = serde_json::from_value::<RawRateLimits>(config).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }
}

#[test]
fn defaults() {
    let local = limits(json!({"address": {"requests": 10, "per_seconds": 60}}));
    let quota = local.quota(KeyKind::Address).unwrap();
    assert_eq!(
        (quota.requests(), quota.per_seconds(), quota.burst()),
        (10, 60, 10)
    );
    assert_eq!(quota.emission_interval(), Duration::from_secs(6));
    assert_eq!(quota.tolerance(), Duration::from_secs(54));
    assert!(local.quota(KeyKind::Principal).is_none());
    assert_eq!(local.on_store_error(), OnStoreError::Closed);
    assert!(
        matches!(local.store(), StoreConfig::Local { max_keys } if max_keys.get() == DEFAULT_MAX_KEYS)
    );

    let shared = limits(json!({
        "tenant": {"requests": 10, "per_seconds": 60, "burst": 1},
        "store": "redis",
        "redis_url": "redis://:secret@127.0.0.1:6379/2",
        "on_store_error": "open",
    }));
    assert_eq!(shared.on_store_error(), OnStoreError::Open);
    let StoreConfig::Redis(redis) = shared.store() else {
        panic!("redis store expected");
    };
    assert_eq!(redis.prefix(), DEFAULT_REDIS_PREFIX);
    assert_eq!(redis.timeout(), DEFAULT_REDIS_TIMEOUT);
    assert!(
        !format!("{shared:?}").contains("secret"),
        "the password must not be printed: {shared:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The stage in front of a router
// ---------------------------------------------------------------------------------------------

fn app(check: RateLimitCheck) -> Router {
    Router::new()
        .route(
            "/",
            get(|request: Request| async move {
                let passed = request
                    .extensions()
                    .get::<Trail>()
                    .is_some_and(|trail| trail.has_passed(Stage::RateLimit));
                if passed { "ok" } else { "no trail" }
            }),
        )
        .layer(StageLayer::new(check))
}

fn request(caller: &Caller) -> Request {
    let mut request = Request::get("/").body(Body::empty()).unwrap();
    request.extensions_mut().insert(caller.clone());
    request
}

async fn send(router: &Router, caller: &Caller) -> Response {
    router.clone().oneshot(request(caller)).await.unwrap()
}

async fn body_json(response: Response) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn from(address: &str) -> Caller {
    Caller {
        address: Some(address.parse::<IpAddr>().unwrap()),
        ..Caller::default()
    }
}

#[tokio::test]
async fn the_stage_answers_429_with_retry_after() {
    let clock = ManualClock::new();
    let check = RateLimitCheck::with_clock(
        limits(json!({"address": {"requests": 3, "per_seconds": 30}})),
        Arc::new(clock.clone()),
    );
    let router = app(check.clone());
    let caller = from("198.51.100.7");
    for _ in 0..3 {
        let response = send(&router, &caller).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }
    let response = send(&router, &caller).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "10");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        response
            .extensions()
            .get::<Refusal>()
            .map(|refusal| refusal.stage),
        Some(Stage::RateLimit)
    );
    let body = body_json(response).await;
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["stage"], "rate_limit");
    assert_eq!(body["error"]["field"], "address");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("address") && message.contains("3 per 30 s"),
        "{message}"
    );

    // Another client is not affected; the first one is let in again once a slot refills.
    assert_eq!(
        send(&router, &from("198.51.100.8")).await.status(),
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(send(&router, &caller).await.status(), StatusCode::OK);
    assert_eq!(
        send(&router, &caller).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(check.metrics().limited, 2);
}

#[tokio::test]
async fn requests_without_a_caller_pass() {
    let check = RateLimitCheck::new(limits(
        json!({"address": {"requests": 1, "per_seconds": 60}}),
    ));
    let router = app(check);
    for _ in 0..3 {
        let request = Request::get("/").body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

fn redis_limits(prefix: &str, quotas: Value) -> RateLimits {
    let mut config = quotas;
    config["store"] = json!("redis");
    config["redis_url"] = json!(REDIS_URL);
    config["redis_prefix"] = json!(prefix);
    // Generous: the tests share a small machine with other suites.
    config["redis_timeout_ms"] = json!(5_000);
    limits(config)
}

#[tokio::test]
async fn three_nodes_sharing_redis_enforce_one_limit() {
    if !redis_is_up("three_nodes_sharing_redis_enforce_one_limit").await {
        return;
    }
    let prefix = unique_prefix("three_nodes");
    let limits = redis_limits(
        &prefix,
        json!({"principal": {"requests": 5, "per_seconds": 60}}),
    );
    let nodes: Vec<Router> = (0..3)
        .map(|_| app(RateLimitCheck::new(limits.clone())))
        .collect();
    let alice = Caller {
        principal: Some("alice".into()),
        ..Caller::default()
    };
    let mut statuses = Vec::new();
    for round in 0..12 {
        let response = send(&nodes[round % 3], &alice).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = response.headers()[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=12).contains(&retry_after), "{retry_after}");
            let body = body_json(response).await;
            assert_eq!(body["error"]["field"], "principal");
            assert_eq!(body["error"]["stage"], "rate_limit");
            statuses.push(StatusCode::TOO_MANY_REQUESTS);
        } else {
            statuses.push(response.status());
        }
    }
    let allowed = statuses
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    assert_eq!(allowed, 5, "{statuses:?}");
    assert!(
        statuses[5..]
            .iter()
            .all(|status| *status == StatusCode::TOO_MANY_REQUESTS),
        "every node refuses once the shared limit is used: {statuses:?}"
    );
    // Another principal has its own limit, on every node.
    let bob = Caller {
        principal: Some("bob".into()),
        ..Caller::default()
    };
    for node in &nodes {
        assert_eq!(send(node, &bob).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn redis_keys_are_prefixed_and_expire() {
    if !redis_is_up("redis_keys_are_prefixed_and_expire").await {
        return;
    }
    let prefix = unique_prefix("expiry");
    let check = RateLimitCheck::new(redis_limits(
        &prefix,
        json!({
            "address": {"requests": 10, "per_seconds": 20},
            "tenant": {"requests": 1, "per_seconds": 60},
        }),
    ));
    let caller = Caller {
        address: Some("203.0.113.9".parse().unwrap()),
        tenant: Some("acme".into()),
        ..Caller::default()
    };
    check.check_caller(&caller).await.unwrap();
    let mut connection = redis_connection().await;
    let address_key = format!("{prefix}address:203.0.113.9");
    let tenant_key = format!("{prefix}tenant:acme");
    let address_ttl: i64 = redis::cmd("PTTL")
        .arg(&address_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    let tenant_ttl: i64 = redis::cmd("PTTL")
        .arg(&tenant_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    // A key expires when it comes to rest: T after its one request.
    assert!((1..=2_000).contains(&address_ttl), "{address_ttl}");
    assert!((50_000..=60_000).contains(&tenant_ttl), "{tenant_ttl}");

    // The tenant refuses; the address is not charged for the refused request.
    let address_tat: String = redis::cmd("GET")
        .arg(&address_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    let refusal = check.check_caller(&caller).await.unwrap_err();
    assert_eq!(refusal.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refusal.field.as_deref(), Some("tenant"));
    assert!(
        (59..=60).contains(&refusal.retry_after.unwrap()),
        "{refusal:?}"
    );
    let unchanged: String = redis::cmd("GET")
        .arg(&address_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(address_tat, unchanged);
    assert!(
        address_tat.bytes().all(|byte| byte.is_ascii_digit()),
        "whole microseconds, not exponent notation: {address_tat}"
    );
}

#[tokio::test]
async fn the_script_is_loaded_again_after_a_flush() {
    if !redis_is_up("the_script_is_loaded_again_after_a_flush").await {
        return;
    }
    let prefix = unique_prefix("flush");
    let check = RateLimitCheck::new(redis_limits(
        &prefix,
        json!({"address": {"requests": 3, "per_seconds": 60}}),
    ));
    let caller = from("192.0.2.44");
    check.check_caller(&caller).await.unwrap();
    let mut connection = redis_connection().await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut connection)
        .await
        .unwrap();
    check.check_caller(&caller).await.unwrap();
    check.check_caller(&caller).await.unwrap();
    assert!(check.check_caller(&caller).await.is_err());
    assert_eq!(check.metrics().refused_on_store_error, 0);
}

// ---------------------------------------------------------------------------------------------
// Redis failing
// ---------------------------------------------------------------------------------------------

fn unreachable(on_store_error: &str, url: &str, timeout_ms: u64) -> RateLimitCheck {
    RateLimitCheck::new(limits(json!({
        "address": {"requests": 100, "per_seconds": 1},
        "store": "redis",
        "redis_url": url,
        "redis_timeout_ms": timeout_ms,
        "on_store_error": on_store_error,
    })))
}

#[tokio::test]
async fn an_unreachable_redis_refuses_when_closed() {
    let check = unreachable("closed", "redis://127.0.0.1:1", 1_000);
    let router = app(check.clone());
    for _ in 0..2 {
        let response = send(&router, &from("192.0.2.1")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "rate_limit_unavailable");
        assert_eq!(body["error"]["stage"], "rate_limit");
    }
    let metrics = check.metrics();
    assert_eq!(metrics.refused_on_store_error, 2);
    assert_eq!(metrics.passed_on_store_error, 0);
    assert!(metrics.last_store_error.is_some());
}

#[tokio::test]
async fn an_unreachable_redis_lets_through_and_counts_when_open() {
    let check = unreachable("open", "redis://127.0.0.1:1", 1_000);
    let router = app(check.clone());
    for _ in 0..3 {
        assert_eq!(
            send(&router, &from("192.0.2.1")).await.status(),
            StatusCode::OK
        );
    }
    let metrics = check.metrics();
    assert_eq!(metrics.passed_on_store_error, 3);
    assert_eq!(metrics.refused_on_store_error, 0);
    assert_eq!(metrics.limited, 0);
}

#[tokio::test]
async fn a_silent_redis_fails_within_the_timeout() {
    // Accepts connections and never answers, like a server that hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let check = unreachable("closed", &format!("redis://127.0.0.1:{port}"), 200);
    let started = Instant::now();
    let refusal = check.check_caller(&from("192.0.2.1")).await.unwrap_err();
    assert_eq!(refusal.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    holder.abort();
}
