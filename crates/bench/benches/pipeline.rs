//! Criterion benchmark of the guard's protection pipeline in process: a 1 KB JSON `POST` with
//! ten fields through every guard stage the gateway stacks — origin, parameter validation,
//! CSRF, rate limits, injection detection, response masking, cookie flags and security headers
//! — to an application answering in process, against the same request to the same application
//! with no stage (the floor: what axum and tower cost without the pipeline).
//!
//! The stages that ask the decision path (credential, resource, permission) are the service's
//! and are measured with it (`bench/http`, `bench/gateway`).
//!
//! ```text
//! cargo bench -p portcullis-bench --bench pipeline
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark setup: a broken setup must stop the run"
)]

use std::hint::black_box;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::post;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use portcullis_guard::csrf::RawCsrf;
use portcullis_guard::inject::RawInjection;
use portcullis_guard::origin::RawOrigins;
use portcullis_guard::ratelimit::RawRateLimits;
use portcullis_guard::response::{
    CookieFlags, CookieFlagsLayer, Masking, MaskingLayer, RawCookieFlags, RawMasking,
    RawSecurityHeaders, SecurityHeaders, SecurityHeadersLayer,
};
use portcullis_guard::validate::RawValidation;
use portcullis_guard::{
    Caller, Csrf, CsrfLayer, Injection, InjectionCheck, OriginCheck, Origins, RateLimitCheck,
    RateLimits, StageLayer, Validation, ValidationCheck,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const SESSION: &str = "s3ss10n-0123456789abcdef";

fn parsed<R: DeserializeOwned, T: TryFrom<R>>(value: Value) -> T
where
    T::Error: std::fmt::Debug,
{
    let raw: R = serde_json::from_value(value).expect("a valid section");
    T::try_from(raw).expect("a valid configuration")
}

/// The ten fields: what an order form sends, about 1 KB in all.
fn body() -> Vec<u8> {
    let body = json!({
        "customer": "Li Wei",
        "email": "li.wei@example.com",
        "phone": "18912345678",
        "street": "88 Century Avenue, Pudong New Area, Shanghai",
        "postcode": "200120",
        "sku": "SHOE-RUN-42-BLK",
        "quantity": 2,
        "coupon": "WINTER-2026",
        "gift": false,
        "note": "Please leave the parcel with the building's reception if nobody answers the door. \
                 The reception is open from eight in the morning to eight in the evening on \
                 weekdays and from nine to six at weekends; ask for the concierge, who knows us. \
                 If the parcel does not fit through the door, call the phone number above and \
                 someone will come down to collect it. Thank you for the quick delivery last time, \
                 it was much appreciated, and the running shoes were exactly the right size. \
                 We would like the same again, in black rather than white if you have them. \
                 Should black be out of stock, dark blue or grey will do just as well; please do \
                 not send any other colour. The invoice should go to the company, whose tax \
                 number is on file from the previous order.",
    });
    let bytes = serde_json::to_vec(&body).expect("JSON");
    assert!((900..=1100).contains(&bytes.len()), "{} bytes", bytes.len());
    bytes
}

fn request(body: &[u8], token: &str) -> Request<Body> {
    let mut request = Request::post("/orders")
        .header(header::HOST, "shop.example")
        .header(header::ORIGIN, "https://shop.example")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, format!("session={SESSION}"))
        .header("x-csrf-token", token)
        .body(Body::from(body.to_vec()))
        .expect("a request");
    request.extensions_mut().insert(Caller {
        address: Some("203.0.113.7".parse().expect("an address")),
        principal: Some("li".into()),
        tenant: Some("shop".into()),
        roles: vec!["customer".into()],
    });
    request
}

/// The application: reads the order and answers it with the customer's phone number (masked
/// on the way back) and a cookie (flagged on the way back).
fn application() -> Router {
    Router::new().route(
        "/orders",
        post(|body: axum::body::Bytes| async move {
            let order: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            (
                [(header::SET_COOKIE, "last_order=42; Path=/")],
                axum::Json(json!({"order": 42, "customer": {"phone": order["phone"]}})),
            )
        }),
    )
}

/// Every guard stage, in the gateway's order (layers wrap outside in: the last is the first).
fn protected(csrf: Arc<Csrf>) -> Router {
    let origins: Origins = parsed::<RawOrigins, _>(json!({"trusted": ["https://shop.example"]}));
    let validation: Validation = parsed::<RawValidation, _>(json!({"routes": [{
        "route": "POST /orders",
        "unknown": "refuse",
        "params": {
            "customer": {"type": "string", "required": true, "max_length": 80},
            "email": {"format": "email", "required": true},
            "phone": {"format": "mobile"},
            "street": {"type": "string", "max_length": 200},
            "postcode": {"pattern": "[0-9]{6}"},
            "sku": {"pattern": "[A-Z0-9-]+", "required": true},
            "quantity": {"type": "integer", "min": 1, "max": 100, "required": true},
            "coupon": {"type": "string", "max_length": 40},
            "gift": {"type": "boolean"},
            "note": {"type": "string", "max_length": 2000},
        },
    }]}));
    let limits: RateLimits = parsed::<RawRateLimits, _>(json!({
        "address": {"requests": 1_000_000, "per_seconds": 1, "burst": 1_000_000},
        "principal": {"requests": 1_000_000, "per_seconds": 1, "burst": 1_000_000},
    }));
    let injection: Injection = parsed::<RawInjection, _>(json!({"sensitivity": "medium"}));
    let masking: Masking = parsed::<RawMasking, _>(json!({"rules": [{"route": "*", "fields": [
        {"field": "customer.phone", "mask": {"keep_prefix": 7}},
    ]}]}));
    let cookies: CookieFlags = parsed::<RawCookieFlags, _>(json!({}));
    let headers: SecurityHeaders = parsed::<RawSecurityHeaders, _>(json!({}));
    application()
        .layer(MaskingLayer::new(masking, None).expect("masking"))
        .layer(CookieFlagsLayer::new(cookies))
        .layer(StageLayer::new(InjectionCheck::new(Arc::new(injection))))
        .layer(StageLayer::new(RateLimitCheck::new(limits)))
        .layer(CsrfLayer::new(csrf))
        .layer(StageLayer::new(ValidationCheck::new(Arc::new(validation))))
        .layer(StageLayer::new(OriginCheck::new(Arc::new(origins))))
        .layer(SecurityHeadersLayer::new(headers))
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let body = body();
    let csrf = Arc::new(Csrf::new(RawCsrf::default(), [7; 32]).expect("a CSRF configuration"));
    let token = csrf.token_for(SESSION);
    let floor = application();
    let pipeline = protected(csrf);

    // Both answer, and the pipeline's answer went through every stage.
    let answer = |service: &Router| {
        runtime.block_on(async {
            let response = service
                .clone()
                .oneshot(request(&body, &token))
                .await
                .expect("an answer");
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes();
            (status, headers, bytes)
        })
    };
    let (status, _, bytes) = answer(&floor);
    assert!(status.is_success(), "{status}");
    assert!(String::from_utf8_lossy(&bytes).contains("18912345678"));
    let (status, headers, bytes) = answer(&pipeline);
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(String::from_utf8_lossy(&bytes).contains("1891234****"));
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));

    let mut group = c.benchmark_group("pipeline/1KB JSON, 10 fields");
    for (name, service) in [
        ("no stage (floor)", &floor),
        ("every guard stage", &pipeline),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || request(&body, &token),
                |request| {
                    runtime.block_on(async {
                        let response = service.clone().oneshot(request).await.expect("an answer");
                        black_box(response.into_body().collect().await.expect("a body"));
                    })
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
