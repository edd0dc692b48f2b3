//! Limits on request heads, over real TCP on the public and the admin listener: a header, all
//! headers together or a URI over the configured limit is answered 431 or 414 with the JSON
//! error body of every other error — also far beyond the limit, where hyper would otherwise
//! answer by itself with an empty body — and heads within the limits are served as before.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::{ADMIN_TOKEN, client, demo_bundles, demo_server, server_on, trading_day_after_close};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The JSON error's code, checking the body is the documented error shape.
    fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let value: Value = serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "{} with a body that is not JSON: {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        });
        let message = value["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{value}");
        value["error"]["code"].as_str().unwrap().to_owned()
    }

    fn message(&self) -> String {
        let value: Value = serde_json::from_slice(&self.body).unwrap();
        value["error"]["message"].as_str().unwrap().to_owned()
    }
}

/// Sends `method target` with `headers` on a fresh HTTP/1.1 connection and reads the answer
/// up to the end of the connection.
async fn raw(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, String)]) -> Answer {
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let end = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    Answer {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    }
}

fn filler(length: usize) -> String {
    "a".repeat(length)
}

fn admin_auth() -> (&'static str, String) {
    ("authorization", format!("Bearer {ADMIN_TOKEN}"))
}

#[tokio::test]
async fn oversized_heads_get_json_errors_on_both_listeners() {
    // Defaults: 16 KiB per header, 64 KiB for all headers, 16 KiB for the URI.
    let server = demo_server().await;
    for (listener, addr, path, auth) in [
        ("public", server.addr, "/healthz", None),
        (
            "admin",
            server.admin_addr,
            "/admin/v1/tenants",
            Some(admin_auth()),
        ),
    ] {
        let with_auth = |mut headers: Vec<(&'static str, String)>| {
            headers.extend(auth.clone());
            headers
        };
        // Within the limits: served as ever.
        let query = format!("?q={}", filler(16 * 1024 - path.len() - 3));
        let served = raw(
            addr,
            "GET",
            &format!("{path}{query}"),
            &with_auth(vec![
                ("x-large", filler(16 * 1024)),
                ("x-more", filler(16 * 1024)),
                ("x-yet-more", filler(16 * 1024)),
            ]),
        )
        .await;
        assert_eq!(served.status, 200, "{listener}: {served:?}");

        // (what, target, headers, status, words of the message)
        type Case<'a> = (&'a str, String, Vec<(&'a str, String)>, u16, &'a str);
        let cases: Vec<Case> = vec![
            (
                "one header over max_header_bytes",
                path.to_owned(),
                vec![("x-large", filler(16 * 1024 + 1))],
                431,
                "the x-large header is 16385 bytes long; at most 16384",
            ),
            (
                "headers together over max_header_section_bytes",
                path.to_owned(),
                (0..5)
                    .map(|index| {
                        let name: &'static str = ["x-a", "x-b", "x-c", "x-d", "x-e"][index];
                        (name, filler(15 * 1024))
                    })
                    .collect(),
                431,
                "at most 65536 are accepted",
            ),
            (
                // Beyond hyper's default buffer (about 408 KiB), which used to answer by
                // itself with an empty body.
                "a header of 450 KiB",
                path.to_owned(),
                vec![("x-huge", filler(450 * 1024))],
                431,
                "at most 16384",
            ),
            (
                "a URI over max_uri_bytes",
                format!("{path}?q={}", filler(16 * 1024)),
                vec![],
                414,
                "at most 16384 are accepted",
            ),
            (
                "a URI of 60 KiB",
                format!("{path}?q={}", filler(60 * 1024)),
                vec![],
                414,
                "at most 16384 are accepted",
            ),
        ];
        for (what, target, headers, status, words) in cases {
            let answer = raw(addr, "GET", &target, &with_auth(headers.clone())).await;
            assert_eq!(answer.status, status, "{listener}, {what}: {answer:?}");
            let code = if status == 414 {
                "uri_too_long"
            } else {
                "header_too_large"
            };
            assert_eq!(answer.error_code(), code, "{listener}, {what}");
            assert!(
                answer.message().contains(words),
                "{listener}, {what}: {}",
                answer.message()
            );
            // Refused before anything else: no token needed to be told.
            if auth.is_some() {
                let anonymous = raw(addr, "GET", &target, &headers).await;
                assert_eq!(anonymous.status, status, "{listener}, {what}, no token");
                assert_eq!(anonymous.error_code(), code);
            }
        }
        // HEAD: the same status, and no body, as HTTP wants.
        let answer = raw(addr, "HEAD", &format!("{path}?q={}", filler(20_000)), &[]).await;
        assert_eq!(answer.status, 414, "{listener}");
        assert!(answer.body.is_empty(), "{listener}: {answer:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn forward_auth_refuses_an_oversized_certificate_header_with_431() {
    let server = demo_server().await;
    let answer = raw(
        server.addr,
        "GET",
        "/v1/authz/nginx",
        &[
            ("x-original-uri", "/ops/apps/payments/logs/today".to_owned()),
            ("x-ssl-client-verify", "SUCCESS".to_owned()),
            ("x-ssl-client-cert", filler(17 * 1024)),
        ],
    )
    .await;
    assert_eq!(answer.status, 431, "{answer:?}");
    assert_eq!(answer.error_code(), "header_too_large");
    assert!(
        answer.message().contains("x-ssl-client-cert"),
        "{}",
        answer.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn configured_limits_apply_and_http2_answers_the_same() {
    let server = server_on(
        &demo_bundles(),
        "[limits]\nmax_header_bytes = 2048\nmax_header_section_bytes = 4096\nmax_uri_bytes = 1024\n",
        trading_day_after_close(),
    )
    .await;
    let base = format!("http://{}", server.addr);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (name, client) in [("HTTP/1.1", client()), ("HTTP/2", h2)] {
        let get = |path: String, headers: Vec<(&'static str, String)>| {
            let mut request = client.get(format!("{base}{path}"));
            for (header, value) in headers {
                request = request.header(header, value);
            }
            request.send()
        };
        let served = get(
            format!("/healthz?q={}", filler(900)),
            vec![("x-a", filler(2000)), ("x-b", filler(1500))],
        )
        .await
        .unwrap();
        assert_eq!(served.status().as_u16(), 200, "{name}");
        for (path, headers, status, code) in [
            (
                "/healthz".to_owned(),
                vec![("x-a", filler(2049))],
                431,
                "header_too_large",
            ),
            (
                "/healthz".to_owned(),
                vec![
                    ("x-a", filler(2000)),
                    ("x-b", filler(2000)),
                    ("x-c", filler(200)),
                ],
                431,
                "header_too_large",
            ),
            (
                format!("/healthz?q={}", filler(1100)),
                vec![],
                414,
                "uri_too_long",
            ),
            // hyper's HTTP/2 header list used to stop at 16 KiB with an empty 431.
            (
                "/healthz".to_owned(),
                vec![("x-a", filler(100 * 1024))],
                431,
                "header_too_large",
            ),
        ] {
            let response = get(path, headers).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{name}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{name}"
            );
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["error"]["code"], code, "{name}: {answer}");
        }
    }
    server.stop().await;
}
