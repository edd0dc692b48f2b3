//! Forward-auth edges at the header level: nginx `auth_request`, Traefik ForwardAuth and Envoy
//! ext_authz HTTP, including proxy trust for addresses and certificates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use reqwest::Method;
use serde_json::json;
use support::{client, demo_bundles, server_on, token, trading_day_after_close};

const OFFICE: &str = "172.16.3.4";
const OUTSIDE: &str = "203.0.113.9";

fn holiday() -> jiff::Timestamp {
    "2026-02-17T10:00:00+08:00".parse().unwrap()
}

fn during_trading_hours() -> jiff::Timestamp {
    "2026-03-02T10:00:00+08:00".parse().unwrap()
}

fn client_cert(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.self_signed(&key).unwrap().pem()
}

fn escape(pem: &str) -> String {
    percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}

struct Call<'a> {
    method: Method,
    path: &'a str,
    headers: Vec<(&'a str, String)>,
}

async fn send(base: &str, call: Call<'_>) -> reqwest::Response {
    let mut request = client().request(call.method, format!("{base}{}", call.path));
    for (name, value) in call.headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

fn nginx(method: &str, uri: &str, ip: &str, principal: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-original-method", method.to_owned()),
        ("x-original-uri", uri.to_owned()),
        ("x-forwarded-for", ip.to_owned()),
        ("x-forwarded-host", "ops.acme.example".to_owned()),
        ("x-tenant-id", "acme".to_owned()),
        (
            "authorization",
            format!("Bearer {}", token(json!({ "sub": principal }))),
        ),
    ]
}

#[tokio::test]
async fn nginx_allows_with_identity_headers_and_denies_with_403() {
    let server = server_on(&demo_bundles(), "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    let allowed = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: nginx("POST", "/ops/apps/payments/release", OFFICE, "alice"),
        },
    )
    .await;
    assert_eq!(allowed.status().as_u16(), 200);
    let headers = allowed.headers();
    assert_eq!(headers["x-portcullis-user"], "alice");
    assert_eq!(headers["x-portcullis-tenant"], "acme");
    assert_eq!(headers["x-portcullis-roles"], "operator,owner,viewer");
    assert_eq!(headers["x-portcullis-decision-id"].len(), 32);

    let denied = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: nginx("POST", "/ops/apps/payments/release", OUTSIDE, "alice"),
        },
    )
    .await;
    assert_eq!(denied.status().as_u16(), 403);
    assert!(denied.headers().contains_key("x-portcullis-decision-id"));
    let body: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(body["cause"], "strategy_failed");

    let unknown = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: nginx("GET", "/somewhere/else", OFFICE, "alice"),
        },
    )
    .await;
    assert_eq!(unknown.status().as_u16(), 403);
    assert_eq!(
        unknown.json::<serde_json::Value>().await.unwrap()["cause"],
        "no_route"
    );

    let viewer = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: nginx("POST", "/ops/apps/payments/release", OFFICE, "bob"),
        },
    )
    .await;
    assert_eq!(viewer.status().as_u16(), 403, "bob may not release");

    let mut no_token = nginx("POST", "/ops/apps/payments/release", OFFICE, "alice");
    no_token.retain(|(name, _)| *name != "authorization");
    let anonymous = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: no_token,
        },
    )
    .await;
    assert_eq!(anonymous.status().as_u16(), 401, "never a redirect");
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");

    let mut no_uri = nginx("POST", "/x", OFFICE, "alice");
    no_uri.retain(|(name, _)| *name != "x-original-uri");
    let broken = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: no_uri,
        },
    )
    .await;
    assert_eq!(broken.status().as_u16(), 400);
    assert_eq!(
        broken.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "missing_header"
    );

    let traversal = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: nginx("POST", "/ops/apps/../apps/x/release", OFFICE, "alice"),
        },
    )
    .await;
    assert_eq!(traversal.status().as_u16(), 400);
    server.stop().await;
}

#[tokio::test]
async fn the_tenant_can_come_from_the_host() {
    let server = server_on(&demo_bundles(), "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    let mut headers = nginx("POST", "/ops/apps/payments/release", OFFICE, "alice");
    headers.retain(|(name, _)| *name != "x-tenant-id");
    let response = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: headers.clone(),
        },
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    for (name, value) in &mut headers {
        if *name == "x-forwarded-host" {
            *value = "unknown.example".into();
        }
    }
    let response = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers,
        },
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "missing_tenant"
    );
    server.stop().await;
}

#[tokio::test]
async fn forwarded_addresses_and_certificates_need_a_trusted_peer() {
    // 127.0.0.1 (the test client) is not a trusted proxy here.
    let extra = "[proxy]\ntrusted = [\"10.0.0.0/8\"]\n";
    let server = server_on(&demo_bundles(), extra, holiday()).await;
    let base = format!("http://{}", server.addr);
    let mut headers = nginx("GET", "/ops/apps/payments/logs/today", OFFICE, "bob");
    headers.push(("x-ssl-client-verify", "SUCCESS".into()));
    headers.push(("x-ssl-client-cert", escape(&client_cert("cert1"))));
    // X-Forwarded-Host is not believed either, so the real Host must name the tenant's domain.
    let without_host = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: headers.clone(),
        },
    )
    .await;
    assert_eq!(without_host.status().as_u16(), 401);
    headers.push(("host", "ops.acme.example".into()));
    let response = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers,
        },
    )
    .await;
    // The claimed office address and certificate are ignored: the peer 127.0.0.1 is outside the
    // office, and without a certificate a holiday alone does not satisfy ops-read.
    assert_eq!(response.status().as_u16(), 403);
    server.stop().await;
}

#[tokio::test]
async fn nginx_client_certificates_from_a_trusted_proxy() {
    let server = server_on(&demo_bundles(), "", holiday()).await;
    let base = format!("http://{}", server.addr);
    let logs = |cert: Option<(&str, &str)>| {
        let mut headers = nginx("GET", "/ops/apps/payments/logs/today", OUTSIDE, "bob");
        if let Some((verify, cn)) = cert {
            headers.push(("x-ssl-client-verify", verify.to_owned()));
            headers.push(("x-ssl-client-cert", escape(&client_cert(cn))));
            headers.push(("x-ssl-client-fingerprint", "ab:cd".into()));
        }
        headers
    };
    // ops-read branch [P4, P5]: a listed certificate on a holiday.
    let listed = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: logs(Some(("SUCCESS", "cert1"))),
        },
    )
    .await;
    assert_eq!(listed.status().as_u16(), 200);
    let unverified = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: logs(Some(("FAILED:certificate has expired", "cert1"))),
        },
    )
    .await;
    assert_eq!(
        unverified.status().as_u16(),
        403,
        "only verified certificates count"
    );
    let unlisted = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: logs(Some(("SUCCESS", "cert9"))),
        },
    )
    .await;
    assert_eq!(unlisted.status().as_u16(), 403);
    let none = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: logs(None),
        },
    )
    .await;
    assert_eq!(none.status().as_u16(), 403);
    let mut garbage = logs(None);
    garbage.push(("x-ssl-client-verify", "SUCCESS".into()));
    garbage.push(("x-ssl-client-cert", "not-a-certificate".into()));
    let bad = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: garbage,
        },
    )
    .await;
    assert_eq!(bad.status().as_u16(), 400);
    server.stop().await;
}

#[tokio::test]
async fn traefik_forward_auth_headers() {
    let server = server_on(&demo_bundles(), "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    let traefik = |ip: &str| {
        vec![
            ("x-forwarded-method", "POST".to_owned()),
            (
                "x-forwarded-uri",
                "/ops/apps/payments/release?dry=1".to_owned(),
            ),
            ("x-forwarded-host", "ops.acme.example".to_owned()),
            ("x-forwarded-for", ip.to_owned()),
            ("authorization", format!("Bearer {}", token(json!({})))),
        ]
    };
    let allowed = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/traefik",
            headers: traefik(OFFICE),
        },
    )
    .await;
    assert_eq!(allowed.status().as_u16(), 200);
    assert_eq!(allowed.headers()["x-portcullis-user"], "alice");
    let denied = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/traefik",
            headers: traefik(OUTSIDE),
        },
    )
    .await;
    assert_eq!(denied.status().as_u16(), 403);
    let mut missing = traefik(OFFICE);
    missing.retain(|(name, _)| *name != "x-forwarded-method");
    let broken = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/traefik",
            headers: missing,
        },
    )
    .await;
    assert_eq!(broken.status().as_u16(), 400);

    // Traefik forwards the certificate as URL-escaped PEM without its delimiters.
    let pem = client_cert("cert2");
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let server_holiday = server_on(&demo_bundles(), "", holiday()).await;
    let base = format!("http://{}", server_holiday.addr);
    let mut headers = traefik(OUTSIDE);
    headers[1].1 = "/ops/apps/payments/logs/x".into();
    headers[0].1 = "GET".into();
    headers[4].1 = format!("Bearer {}", token(json!({"sub": "bob"})));
    headers.push(("x-forwarded-tls-client-cert", escape(&body)));
    let with_cert = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/traefik",
            headers,
        },
    )
    .await;
    assert_eq!(with_cert.status().as_u16(), 200);
    server.stop().await;
    server_holiday.stop().await;
}

#[tokio::test]
async fn envoy_http_mode_uses_the_original_method_and_path() {
    let server = server_on(&demo_bundles(), "", during_trading_hours()).await;
    let base = format!("http://{}", server.addr);
    let envoy = |ip: &str, principal: &str| {
        vec![
            ("host", "ops.acme.example".to_owned()),
            ("x-forwarded-for", ip.to_owned()),
            ("x-tenant-id", "acme".to_owned()),
            (
                "authorization",
                format!("Bearer {}", token(json!({ "sub": principal }))),
            ),
        ]
    };
    // During trading hours: logs from the office (ops-read [P1]) but no release.
    let logs = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/envoy/ops/apps/payments/logs/a",
            headers: envoy(OFFICE, "bob"),
        },
    )
    .await;
    assert_eq!(logs.status().as_u16(), 200);
    let release = send(
        &base,
        Call {
            method: Method::POST,
            path: "/v1/authz/envoy/ops/apps/payments/release",
            headers: envoy(OFFICE, "alice"),
        },
    )
    .await;
    assert_eq!(release.status().as_u16(), 403);
    let wrong_method = send(
        &base,
        Call {
            method: Method::DELETE,
            path: "/v1/authz/envoy/ops/apps/payments/logs/a",
            headers: envoy(OFFICE, "bob"),
        },
    )
    .await;
    assert_eq!(wrong_method.status().as_u16(), 403);

    // XFCC from Envoy: outside, with a listed certificate, during trading hours: still denied
    // (ops-read's certificate branches need a holiday or after-hours).
    let mut with_cert = envoy(OUTSIDE, "bob");
    with_cert.push((
        "x-forwarded-client-cert",
        format!(
            "Hash=00;Cert=\"{}\";Subject=\"CN=cert1\"",
            escape(&client_cert("cert1"))
        ),
    ));
    let response = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/envoy/ops/apps/payments/logs/a",
            headers: with_cert.clone(),
        },
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);
    server.stop().await;

    let server = server_on(&demo_bundles(), "", holiday()).await;
    let base = format!("http://{}", server.addr);
    let response = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/envoy/ops/apps/payments/logs/a",
            headers: with_cert,
        },
    )
    .await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "on a holiday the certificate branch holds"
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_tenants_are_not_revealed_without_an_identity() {
    let server = server_on(&demo_bundles(), "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    let mut headers = nginx("POST", "/ops/apps/payments/release", OFFICE, "alice");
    for (name, value) in &mut headers {
        if *name == "x-tenant-id" {
            *value = "globex".into();
        }
    }
    let mut anonymous = headers.clone();
    anonymous.retain(|(name, _)| *name != "authorization");
    let response = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: anonymous,
        },
    )
    .await;
    assert_eq!(
        response.status().as_u16(),
        401,
        "the same answer as for a known tenant"
    );
    // alice's token is for acme: it does not bind to globex either.
    let response = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers,
        },
    )
    .await;
    assert_eq!(response.status().as_u16(), 401);
    server.stop().await;
}

#[tokio::test]
async fn the_rfc_7239_forwarded_header_is_not_read() {
    // The peer (127.0.0.1) is a trusted proxy, but Portcullis reads the client's address only
    // from X-Forwarded-For and X-Real-IP: a `Forwarded` header naming the office is ignored,
    // so the office factor sees the peer's own address and the release strategy fails.
    let server = server_on(&demo_bundles(), "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    let mut headers: Vec<(&str, String)> =
        nginx("POST", "/ops/apps/payments/release", OFFICE, "alice")
            .into_iter()
            .filter(|(name, _)| *name != "x-forwarded-for")
            .collect();
    headers.push(("forwarded", format!("for={OFFICE};proto=https")));
    let response = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers: headers.clone(),
        },
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["cause"], "strategy_failed", "{body}");
    // The same request with X-Forwarded-For from the same proxy is allowed.
    headers.push(("x-forwarded-for", OFFICE.to_owned()));
    let response = send(
        &base,
        Call {
            method: Method::GET,
            path: "/v1/authz/nginx",
            headers,
        },
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    server.stop().await;
}

/// The public listeners answer forward-auth without their router (a shortcut); every path
/// the router would send to a forward-auth edge, and the paths next to them it would not, must
/// be answered alike both ways: status, identity headers and the denial's cause.
#[tokio::test]
async fn the_listener_shortcut_answers_as_the_router_does() {
    use portcullis_server::tls::PeerInfo;
    use tower::ServiceExt;

    let server = server_on(&demo_bundles(), "", during_trading_hours()).await;
    let base = format!("http://{}", server.addr);
    let router = portcullis_server::serve::public_router(std::sync::Arc::clone(&server.state));
    let traefik = |uri: &str| {
        let mut headers = nginx("GET", uri, OFFICE, "bob");
        headers.retain(|(name, _)| !name.starts_with("x-original"));
        headers.push(("x-forwarded-method", "GET".to_owned()));
        headers.push(("x-forwarded-uri", uri.to_owned()));
        headers
    };
    let cases = [
        (
            "/v1/authz/nginx",
            nginx("GET", "/ops/apps/payments/logs/a", OFFICE, "bob"),
        ),
        (
            "/v1/authz/nginx",
            nginx("GET", "/ops/apps/payments/logs/a", OUTSIDE, "bob"),
        ),
        ("/v1/authz/nginx", nginx("GET", "/nowhere", OFFICE, "bob")),
        ("/v1/authz/nginx", Vec::new()),
        (
            "/v1/authz/nginx/",
            nginx("GET", "/ops/apps/payments/logs/a", OFFICE, "bob"),
        ),
        (
            "/v1/authz/nginxx",
            nginx("GET", "/ops/apps/payments/logs/a", OFFICE, "bob"),
        ),
        ("/v1/authz/traefik", traefik("/ops/apps/payments/logs/a")),
        (
            "/v1/authz/envoy/ops/apps/payments/logs/a",
            nginx("GET", "/", OFFICE, "bob"),
        ),
        ("/v1/authz/envoy", nginx("GET", "/", OFFICE, "bob")),
        ("/v1/authz/envoy/", nginx("GET", "/", OFFICE, "bob")),
        ("/v1/authz/envoyx/a", nginx("GET", "/", OFFICE, "bob")),
    ];
    let peer = PeerInfo {
        addr: "127.0.0.1:40000".parse().unwrap(),
        cert: None,
    };
    for (path, headers) in cases {
        let over_the_listener = send(
            &base,
            Call {
                method: Method::GET,
                path,
                headers: headers.clone(),
            },
        )
        .await;
        let mut request = axum::http::Request::get(path);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let mut request = request.body(axum::body::Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer.clone()));
        let routed = router.clone().oneshot(request).await.unwrap();
        assert_eq!(
            over_the_listener.status().as_u16(),
            routed.status().as_u16(),
            "{path} {headers:?}"
        );
        for name in [
            "x-portcullis-user",
            "x-portcullis-tenant",
            "x-portcullis-roles",
        ] {
            assert_eq!(
                over_the_listener
                    .headers()
                    .get(name)
                    .map(|value| value.as_bytes().to_vec()),
                routed
                    .headers()
                    .get(name)
                    .map(|value| value.as_bytes().to_vec()),
                "{path}: {name}"
            );
        }
        let status = routed.status();
        let routed_body = axum::body::to_bytes(routed.into_body(), usize::MAX)
            .await
            .unwrap();
        let listener_body = over_the_listener.bytes().await.unwrap();
        if status.is_client_error() {
            let cause = |body: &[u8]| {
                serde_json::from_slice::<serde_json::Value>(body)
                    .map(|value| (value["cause"].clone(), value["error"]["code"].clone()))
                    .unwrap_or_default()
            };
            assert_eq!(cause(&listener_body), cause(&routed_body), "{path}");
        }
    }
    server.stop().await;
}
