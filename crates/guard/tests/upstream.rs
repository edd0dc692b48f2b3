//! The upstream stage in front of a real application: an axum server started by the test, the
//! stage served by another (so client connections, upgrades and streaming are real).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed step must fail the test"
)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{any, get};
use portcullis_guard::upstream::RawUpstream;
use portcullis_guard::{Caller, Upstream};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// The application: echoes what it received, sleeps, or switches protocols.
async fn application() -> SocketAddr {
    async fn echo(request: Request) -> Response {
        let headers: serde_json::Map<String, Value> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or("?"))))
            .collect();
        let version = format!("{:?}", request.version());
        let uri = request.uri().to_string();
        let method = request.method().to_string();
        let body = axum::body::to_bytes(request.into_body(), 1 << 24)
            .await
            .unwrap();
        let answer = json!({
            "method": method, "uri": uri, "version": version, "headers": headers,
            "body_length": body.len(),
        });
        (
            [
                ("connection", "close, x-private"),
                ("x-private", "secret"),
                ("x-app", "yes"),
            ],
            axum::Json(answer),
        )
            .into_response()
    }
    async fn upgrade(mut request: Request) -> Response {
        let upgraded = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let mut io = hyper_util::rt::TokioIo::new(upgraded.await.unwrap());
            let mut buffer = [0u8; 64];
            loop {
                let read = io.read(&mut buffer).await.unwrap();
                if read == 0 {
                    break;
                }
                // Echo in upper case, so the test sees the application answered.
                let upper: Vec<u8> = buffer[..read].to_ascii_uppercase();
                io.write_all(&upper).await.unwrap();
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .body(Body::empty())
            .unwrap()
    }
    serve(
        Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/app/socket", get(upgrade))
            .route("/{*path}", any(echo)),
    )
    .await
}

/// The gateway: the upstream stage behind a layer that sets the caller's address.
async fn gateway(url: String, extra: Value) -> SocketAddr {
    let mut raw = json!({"url": url});
    raw.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let raw: RawUpstream = serde_json::from_value(raw).unwrap();
    let upstream = Upstream::try_from(raw).unwrap();
    let router = Router::new()
        .fallback_service(upstream)
        .layer(axum::middleware::from_fn(
            |mut request: Request, next: axum::middleware::Next| async move {
                request.extensions_mut().insert(Caller {
                    address: Some("203.0.113.9".parse().unwrap()),
                    ..Caller::default()
                });
                next.run(request).await
            },
        ));
    serve(router).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn requests_reach_the_application_under_its_prefix_with_forwarding_headers() {
    let app = application().await;
    let gateway = gateway(format!("http://{app}/app/"), json!({})).await;
    let response = client()
        .post(format!("http://{gateway}/orders/7?x=1&y=%20"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-kept", "kept")
        .body(vec![b'a'; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Hop-by-hop headers of the answer are dropped, the others kept.
    assert!(response.headers().get("x-private").is_none());
    assert_eq!(response.headers()["x-app"], "yes");
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/app/orders/7?x=1&y=%20");
    assert_eq!(seen["body_length"], 3 * 1024 * 1024);
    let headers = &seen["headers"];
    assert!(headers.get("x-hop").is_none(), "{headers}");
    assert_eq!(headers["x-kept"], "kept");
    assert_eq!(headers["x-forwarded-for"], "198.51.100.1");
    assert_eq!(headers["x-forwarded-host"], gateway.to_string());
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["host"], app.to_string());
}

#[tokio::test]
async fn h2c_reaches_the_application_over_http2() {
    let app = application().await;
    let gateway = gateway(format!("http://{app}"), json!({"protocol": "h2c"})).await;
    let seen: Value = client()
        .get(format!("http://{gateway}/v"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["uri"], format!("http://{app}/v"));
}

async fn refusal(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn an_unreachable_or_slow_application_is_a_refusal_of_the_upstream_stage() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let gateway_down = gateway(format!("http://{closed}"), json!({})).await;
    let (status, body) = refusal(
        client()
            .get(format!("http://{gateway_down}/x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert_eq!(body["error"]["stage"], "upstream");

    let app = application().await;
    let gateway_slow = gateway(format!("http://{app}"), json!({"timeout_seconds": 1})).await;
    let (status, body) = refusal(
        client()
            .get(format!("http://{gateway_slow}/slow"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn websocket_upgrades_are_joined_end_to_end() {
    let app = application().await;
    let gateway = gateway(format!("http://{app}/app"), json!({})).await;
    let mut stream = TcpStream::connect(gateway).await.unwrap();
    stream
        .write_all(
            b"GET /socket HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    stream.write_all(b"hello through").await.unwrap();
    let mut echoed = [0u8; 13];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"HELLO THROUGH");
}

#[test]
fn base_urls_are_checked() {
    for (url, extra) in [
        ("https://app.internal", json!({})),
        ("app.internal:80", json!({})),
        ("http://app.internal/?q=1", json!({})),
        ("http://app.internal", json!({"timeout_seconds": 0})),
    ] {
        let mut raw = json!({"url": url});
        raw.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let raw: RawUpstream = serde_json::from_value(raw).unwrap();
        assert!(Upstream::try_from(raw).is_err(), "{url} {extra}");
    }
}
