//! `[gateway]`: the guard's stages in front of a real application (an axum server started by
//! the test), on the demo tenant's routes, identities and policy; every refusal names its
//! stage and is in the audit trail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request;
use axum::routing::any;
use serde_json::{Value, json};
use support::{
    AUDIT_TOKEN, admin_call, client, demo_bundles, server_on, token, trading_day_after_close,
};

const OFFICE: &str = "172.16.3.4";
const HOST: &str = "ops.acme.example";

/// The application: answers what it was sent.
async fn application() -> SocketAddr {
    async fn echo(request: Request) -> axum::Json<Value> {
        let headers: serde_json::Map<String, Value> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or("?"))))
            .collect();
        axum::Json(json!({
            "version": format!("{:?}", request.version()),
            "method": request.method().as_str(),
            "uri": request.uri().to_string(),
            "headers": headers,
            "phone": "18912345678",
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        async fn login(body: String) -> axum::http::StatusCode {
            if body.contains("password=right") {
                axum::http::StatusCode::NO_CONTENT
            } else {
                axum::http::StatusCode::UNAUTHORIZED
            }
        }
        /// A WebSocket-like upgrade: echoes what it is sent, in upper case.
        async fn live(mut request: Request) -> axum::response::Response {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let upgraded = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let mut io = hyper_util::rt::TokioIo::new(upgraded.await.unwrap());
                let mut buffer = [0u8; 64];
                while let Ok(read) = io.read(&mut buffer).await {
                    if read == 0
                        || io
                            .write_all(&buffer[..read].to_ascii_uppercase())
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            });
            axum::response::Response::builder()
                .status(axum::http::StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(axum::body::Body::empty())
                .unwrap()
        }
        let app = Router::new()
            .route("/login", axum::routing::post(login))
            .route("/ops/apps/payments/logs/live", axum::routing::get(live))
            .route("/{*path}", any(echo));
        axum::serve(listener, app).await.unwrap()
    });
    address
}

fn gateway_section(application: SocketAddr) -> String {
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"

[[gateway.apps]]
host = "{HOST}"
upstream = {{ url = "http://{application}" }}

[gateway.apps.validation]
routes = [
  {{ route = "GET /ops/apps/{{app}}/logs/{{*rest}}", params = {{ lines = {{ type = "integer", min = 1, max = 1000 }} }} }},
]

[gateway.apps.response.masking]
rules = [ {{ route = "*", fields = [ {{ field = "phone", mask = {{ keep_prefix = 7 }} }} ] }} ]
"#
    )
}

struct Gateway {
    base: String,
    api: String,
    admin: String,
    _server: portcullis_server::RunningServer,
}

async fn gateway() -> Gateway {
    gateway_with("").await
}

/// The gateway with `extra` added to its application's settings.
async fn gateway_with(extra: &str) -> Gateway {
    let application = application().await;
    let section = gateway_section(application).replacen(
        "\n[gateway.apps.validation]",
        &format!("{extra}\n[gateway.apps.validation]"),
        1,
    );
    let server = server_on(&demo_bundles(), &section, trading_day_after_close()).await;
    Gateway {
        base: format!(
            "http://{}",
            server.gateway_addr.expect("the gateway listens")
        ),
        api: format!("http://{}", server.addr),
        admin: format!("http://{}", server.admin_addr),
        _server: server,
    }
}

/// Sends a request as `principal` (none: no token) from the office; the status and body.
async fn send(
    gateway: &Gateway,
    method: reqwest::Method,
    path: &str,
    principal: Option<&str>,
    extra: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", gateway.base))
        .header("host", HOST)
        .header("x-forwarded-for", OFFICE);
    if let Some(principal) = principal {
        request = request.bearer_auth(token(json!({ "sub": principal })));
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn refused_by(body: &Value, stage: &str, code: &str) {
    assert_eq!(body["error"]["stage"], stage, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

#[tokio::test]
async fn an_allowed_request_reaches_the_application_with_the_gateways_identity_headers() {
    let gateway = gateway().await;
    let (status, headers, body) = send(
        &gateway,
        reqwest::Method::GET,
        "/ops/apps/payments/logs/today?lines=20",
        Some("bob"),
        // A client cannot tell the application who it is.
        &[("x-portcullis-user", "mallory")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["uri"], "/ops/apps/payments/logs/today?lines=20");
    let seen = &body["headers"];
    assert_eq!(seen["x-portcullis-user"], "bob", "{seen}");
    assert_eq!(seen["x-portcullis-tenant"], "acme");
    assert!(
        seen["x-portcullis-roles"]
            .as_str()
            .unwrap()
            .contains("viewer"),
        "{seen}"
    );
    // The office address as the trusted proxy (the test) sent it, then that proxy.
    assert_eq!(seen["x-forwarded-for"], format!("{OFFICE}, 127.0.0.1"));
    // Response stages: masking and security headers.
    assert_eq!(body["phone"], "1891234****");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.contains_key("content-security-policy"));
    // Every stage it went through timed its part, the application's round trip and the
    // response stages too.
    let metrics = support::get_text(&gateway.api, "/metrics").await;
    for stage in [
        "credential",
        "resource",
        "validation",
        "permission",
        "injection",
        "upstream",
        "masking",
        "security_headers",
    ] {
        assert_eq!(stage_times(&metrics, stage), 1, "{stage} in\n{metrics}");
    }
}

/// How many times `stage` of the test application observed its time, from `/metrics`.
fn stage_times(metrics: &str, stage: &str) -> u64 {
    let prefix = format!(
        r#"portcullis_gateway_stage_duration_seconds_count{{app="ops.acme.example",stage="{stage}"}} "#
    );
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("{prefix} not in\n{metrics}"))
        .parse()
        .expect("a count")
}

#[tokio::test]
async fn each_stage_refuses_what_it_should_and_every_refusal_is_audited() {
    let gateway = gateway().await;
    // No credential.
    let (status, _, body) = send(
        &gateway,
        reqwest::Method::GET,
        "/ops/apps/payments/logs/today",
        None,
        &[],
    )
    .await;
    assert_eq!(status, 401);
    refused_by(&body, "credential", "missing_token");
    // Not a registered resource.
    let (status, _, body) = send(
        &gateway,
        reqwest::Method::GET,
        "/somewhere/else",
        Some("bob"),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    refused_by(&body, "resource", "unregistered_resource");
    // An untrusted origin on a state-changing request.
    let (status, _, body) = send(
        &gateway,
        reqwest::Method::POST,
        "/ops/apps/payments/release",
        Some("alice"),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(status, 403);
    refused_by(&body, "origin", "untrusted_origin");
    // A parameter out of its rule.
    let (status, _, body) = send(
        &gateway,
        reqwest::Method::GET,
        "/ops/apps/payments/logs/today?lines=abc",
        Some("bob"),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    refused_by(&body, "validation", "invalid_parameter");
    assert_eq!(body["error"]["field"], "lines");
    // The policy: bob may not release.
    let (status, _, body) = send(
        &gateway,
        reqwest::Method::POST,
        "/ops/apps/payments/release",
        Some("bob"),
        &[],
    )
    .await;
    assert_eq!(status, 403);
    refused_by(&body, "permission", "denied");
    // An injection in a parameter no rule names.
    let (status, _, body) = send(
        &gateway,
        reqwest::Method::GET,
        "/ops/apps/payments/logs/today?lines=5&q=%27%20OR%20%271%27%3D%271",
        Some("bob"),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    refused_by(&body, "injection", "sql_injection");

    // Each stage counts what it passed and refused.
    let metrics = support::get_text(&gateway.api, "/metrics").await;
    for line in [
        r#"portcullis_gateway_stage_requests_total{app="ops.acme.example",stage="validation",outcome="refused"} 1"#,
        r#"portcullis_gateway_stage_requests_total{app="ops.acme.example",stage="credential",outcome="refused"} 1"#,
        r#"portcullis_gateway_stage_requests_total{app="ops.acme.example",stage="permission",outcome="refused"} 1"#,
        r#"portcullis_gateway_stage_requests_total{app="ops.acme.example",stage="injection",outcome="refused"} 1"#,
        r#"portcullis_gateway_stage_requests_total{app="ops.acme.example",stage="credential",outcome="passed"} 5"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    // And the time each spent, a stage that refused a request included; none of these requests
    // reached the application.
    for stage in ["credential", "validation", "permission", "injection"] {
        assert!(
            stage_times(&metrics, stage) >= 1,
            "{stage} has no time observed"
        );
    }
    assert_eq!(stage_times(&metrics, "upstream"), 0);

    // The trail holds each of them, naming the stage (the policy's own denial by its cause).
    let (status, page) = admin_call(
        &gateway.admin,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit?outcome=deny&limit=50",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let records: Vec<&Value> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["edge"] == "gateway")
        .collect();
    let statements: Vec<String> = records
        .iter()
        .flat_map(|record| record["statements"].as_array().unwrap())
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    for stage in ["stage:origin", "stage:validation", "stage:injection"] {
        assert!(
            statements.iter().any(|s| s == stage),
            "{stage}: {records:?}"
        );
    }
    let causes: Vec<&Value> = records
        .iter()
        .map(|record| &record["details"]["cause"])
        .collect();
    assert!(causes.contains(&&json!("no_route")), "{records:?}");
    assert!(
        records
            .iter()
            .any(|record| record["action"] == "app:release"),
        "the policy's denial: {records:?}"
    );
}

#[tokio::test]
async fn gateway_configuration_errors_name_the_key() {
    let bundles = demo_bundles();
    for (section, key) in [
        (
            "[gateway]\n[[gateway.apps]]\nhost = \"a\"\nupstream = { url = \"https://x\" }\n",
            "gateway.apps[0].upstream.url",
        ),
        (
            "[gateway]\n[[gateway.apps]]\nhost = \"a\"\nupstream = { url = \"http://x\" }\nstages = [\"permission\"]\n",
            "gateway.apps[0].stages",
        ),
        (
            "[gateway]\n[[gateway.apps]]\nhost = \"a\"\nupstream = { url = \"http://x\" }\nstages = [\"firewall\"]\n",
            "gateway.apps[0].stages[0]",
        ),
        (
            "[gateway]\n[[gateway.apps]]\nhost = \"a\"\nupstream = { url = \"http://x\" }\n[gateway.apps.validation]\nroutes = [{ route = \"GET x\" }]\n",
            "gateway.apps[0].validation.routes[0]",
        ),
        (
            "[gateway]\n[[gateway.apps]]\nhost = \"a\"\nupstream = { url = \"http://x\" }\nstages = [\"session\"]\n",
            "gateway.apps[0].session",
        ),
        (
            "[gateway]\n[[gateway.apps]]\nhost = \"a\"\nupstream = { url = \"http://x\" }\n[gateway.apps.session]\nlogout = [\"POST /logout\"]\nlogin_page = \"login\"\n",
            "gateway.apps[0].session.login_page",
        ),
        ("[gateway]\nlisten = \"nowhere\"\n", "gateway.listen"),
        ("[gateway]\n", "gateway.apps"),
    ] {
        let error = support::config_error(&bundles, section);
        assert!(error.contains(key), "{section}: {error}");
    }
}

#[tokio::test]
async fn the_documented_configuration_parses() {
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/gateway.md"),
    )
    .unwrap();
    let section = &page[page.find("## Configuration").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &section[start..];
    let block = &block[..block.find("```").unwrap()];
    let text = support::config_text(&demo_bundles(), block);
    let config = portcullis_server::Config::parse(
        &text,
        std::path::Path::new("."),
        &portcullis_server::Overrides::default(),
        &|name| match name {
            "TEST_SECRET" => Some(support::SECRET.to_owned()),
            "CSRF_SECRET" | "MASK_SECRET" => Some("a-secret".to_owned()),
            _ => None,
        },
    )
    .unwrap_or_else(|error| panic!("docs/gateway.md's configuration: {error}"));
    let gateway = config.gateway.unwrap();
    assert_eq!(gateway.apps.len(), 1);
    assert_eq!(gateway.apps[0].host, "shop.example.com");
    assert!(gateway.apps[0].session.is_some(), "the session stage runs");
}

#[tokio::test]
async fn failed_logins_lock_out_until_an_admin_unlocks() {
    let gateway = gateway_with(
        "public = [\"POST /login\"]\nlogin = { route = \"POST /login\", max_failures = 2, lockout_seconds = 600 }\n",
    )
    .await;
    let attempt = |password: &'static str| {
        let base = gateway.base.clone();
        async move {
            let response = client()
                .post(format!("{base}/login"))
                .header("host", HOST)
                .header("x-forwarded-for", "198.51.100.20")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("username=carol&password={password}"))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, retry, response.text().await.unwrap())
        }
    };
    // The login route is public: no token needed; the application answers.
    assert_eq!(attempt("wrong").await.0, 401);
    assert_eq!(attempt("wrong").await.0, 401);
    let (status, retry, body) = attempt("right").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry.as_deref(), Some("600"));
    assert!(body.contains("\"stage\":\"login\""), "{body}");
    // An admin lifts it (an audited change); the application answers again.
    let response = client()
        .post(format!("{}/admin/v1/gateway/unlock", gateway.admin))
        .bearer_auth(support::ADMIN_TOKEN)
        .json(&json!({"app": HOST, "account": "Carol", "address": "198.51.100.20"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["unlocked"], true, "{answer}");
    assert_eq!(attempt("right").await.0, 204);
    let (status, page) = admin_call(
        &gateway.admin,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/system/audit?kind=change&limit=20",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|record| record["action"] == "POST /admin/v1/gateway/unlock"),
        "{page}"
    );
    // Unknown applications and empty requests are refused.
    for (body, code) in [
        (json!({"app": "elsewhere", "account": "x"}), 404),
        (json!({"app": HOST}), 400),
    ] {
        let response = client()
            .post(format!("{}/admin/v1/gateway/unlock", gateway.admin))
            .bearer_auth(support::ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), code, "{body}");
    }
}

/// A public form of the application (no credential, resource or permission stage): CSRF tokens
/// handed out on a page and required back, bound to the session, then injection detection,
/// before the application sees the post.
#[tokio::test]
async fn a_public_form_needs_the_sessions_csrf_token_and_clean_fields() {
    let gateway = gateway_with(r#"public = ["GET /contact", "POST /contact"]"#).await;
    let form = |cookie: &str, body: String| {
        client()
            .post(format!("{}/contact", gateway.base))
            .header("host", HOST)
            .header("x-forwarded-for", OFFICE)
            .header("cookie", cookie.to_owned())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    // The page hands out the session's token.
    let page = client()
        .get(format!("{}/contact", gateway.base))
        .header("host", HOST)
        .header("x-forwarded-for", OFFICE)
        .header("cookie", "session=s-1")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let token = page.headers()["x-csrf-token"].to_str().unwrap().to_owned();

    // With it, the post reaches the application.
    let answer = form(
        "session=s-1",
        format!("name=Li&message=hello&_csrf={token}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    let seen: Value = answer.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/contact");
    assert_eq!(seen["version"], "HTTP/1.1");

    // Without it, or with another session's, the CSRF stage refuses.
    let refused: Value = form("session=s-1", "name=Li&message=hello".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    refused_by(&refused, "csrf", "csrf_token_missing");
    let answer = form("session=s-2", format!("name=Li&_csrf={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    refused_by(&answer.json().await.unwrap(), "csrf", "csrf_token_invalid");

    // With the token but a script in a field, the injection stage refuses, naming the field.
    let answer = form(
        "session=s-1",
        format!("name=Li&message=%3Cscript%3Ealert(1)%3C%2Fscript%3E&_csrf={token}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(answer.status(), 400);
    let refused: Value = answer.json().await.unwrap();
    refused_by(&refused, "injection", "xss_detected");
    assert_eq!(refused["error"]["field"], "message");
}

/// A multipart upload is judged by its content, not its name, and by its size.
#[tokio::test]
async fn an_upload_is_judged_by_its_content_and_size() {
    let gateway = gateway_with(
        r#"public = ["POST /upload"]

[gateway.apps.injection]
uploads = { allowed_types = ["image/png"], max_bytes = 2000 }
"#,
    )
    .await;
    let upload = |name: &str, content: Vec<u8>| {
        let boundary = "portcullis-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{name}\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        body.extend(content);
        body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
        client()
            .post(format!("{}/upload", gateway.base))
            .header("host", HOST)
            .header("x-forwarded-for", OFFICE)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
    };
    // A PNG: its signature and an IHDR chunk.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    png.extend([0x90, 0x77, 0x53, 0xde]);
    let answer = upload("photo.png", png.clone()).await.unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    // An executable named like a picture.
    let answer = upload(
        "photo.png",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 415);
    let refused: Value = answer.json().await.unwrap();
    assert_eq!(refused["error"]["stage"], "injection", "{refused}");
    assert_eq!(refused["error"]["field"], "photo", "{refused}");
    // A real PNG, too large.
    let mut large = png;
    large.extend(vec![0u8; 3000]);
    let answer = upload("photo.png", large).await.unwrap();
    assert_eq!(answer.status(), 413);
    refused_by(
        &answer.json().await.unwrap(),
        "injection",
        "upload_too_large",
    );
}

/// A client speaking HTTP/2 to the gateway (cleartext, prior knowledge) goes through the same
/// stages to an application spoken to over HTTP/2 as well.
#[tokio::test]
async fn http2_clients_and_applications_get_the_same_pipeline() {
    let application = application().await;
    let section = gateway_section(application).replace(
        &format!(r#"upstream = {{ url = "http://{application}" }}"#),
        &format!(r#"upstream = {{ url = "http://{application}", protocol = "h2c" }}"#),
    );
    let server = server_on(&demo_bundles(), &section, trading_day_after_close()).await;
    let base = format!(
        "http://{}",
        server.gateway_addr.expect("the gateway listens")
    );
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let answer = h2
        .get(format!("{base}/ops/apps/payments/logs/today?lines=20"))
        .header("host", HOST)
        .header("x-forwarded-for", OFFICE)
        .bearer_auth(token(json!({ "sub": "bob" })))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.version(), reqwest::Version::HTTP_2);
    assert_eq!(answer.status(), 200);
    let seen: Value = answer.json().await.unwrap();
    assert_eq!(seen["headers"]["x-portcullis-user"], "bob", "{seen}");
    assert_eq!(seen["version"], "HTTP/2.0", "{seen}");
    assert_eq!(seen["phone"], "1891234****");
    // And a refusal is the same refusal.
    let answer = h2
        .get(format!("{base}/ops/apps/payments/logs/today?lines=0"))
        .header("host", HOST)
        .header("x-forwarded-for", OFFICE)
        .bearer_auth(token(json!({ "sub": "bob" })))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    refused_by(
        &answer.json().await.unwrap(),
        "validation",
        "invalid_parameter",
    );
}

/// The records of `tenant`'s trail written by the gateway, newest first.
async fn gateway_records(gateway: &Gateway, tenant: &str) -> Vec<Value> {
    let (status, page) = admin_call(
        &gateway.admin,
        AUDIT_TOKEN,
        reqwest::Method::GET,
        &format!("/admin/v1/tenants/{tenant}/audit?kind=decision&limit=100"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["edge"] == "gateway")
        .cloned()
        .collect()
}

#[tokio::test]
async fn requests_the_policy_is_not_asked_about_are_recorded_too() {
    let gateway = gateway_with("public = [\"GET /ops/status\"]\n").await;
    // A public route reaches the application without a credential: allowed, and on record as
    // passed by the stage that let it through.
    let (status, _, body) = send(&gateway, reqwest::Method::GET, "/ops/status", None, &[]).await;
    assert_eq!(status, 200, "{body}");
    let records = gateway_records(&gateway, "acme").await;
    let passed = records
        .iter()
        .find(|record| record["resource"] == "path:/ops/status")
        .unwrap_or_else(|| panic!("no record of the public request: {records:?}"));
    assert_eq!(passed["outcome"], "allow", "{passed}");
    assert_eq!(passed["statements"], json!(["stage:public"]), "{passed}");
    assert_eq!(passed["details"]["cause"], "passed", "{passed}");
    assert_eq!(passed["source"], OFFICE, "{passed}");

    // A host no application is reached by: refused, and on record in the `system` tenant's
    // trail, which holds what no tenant owns.
    let response = client()
        .get(format!("{}/anything", gateway.base))
        .header("host", "nobody.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    refused_by(&body, "resource", "unknown_application");
    let records = gateway_records(&gateway, "system").await;
    let refused = records
        .iter()
        .find(|record| record["resource"] == "path:/anything")
        .unwrap_or_else(|| panic!("no record of the unknown host: {records:?}"));
    assert_eq!(refused["outcome"], "deny", "{refused}");
    assert_eq!(
        refused["statements"],
        json!(["stage:resource"]),
        "{refused}"
    );
    assert_eq!(refused["details"]["cause"], "refused", "{refused}");
}

#[tokio::test]
async fn an_application_without_the_permission_stage_has_its_requests_recorded_as_unchecked() {
    let gateway =
        gateway_with("stages = [\"credential\", \"resource\", \"validation\", \"injection\"]\n")
            .await;
    // bob may not release, but nothing asks the policy here.
    let (status, _, body) = send(
        &gateway,
        reqwest::Method::POST,
        "/ops/apps/payments/release",
        Some("bob"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let records = gateway_records(&gateway, "acme").await;
    let passed = records
        .iter()
        .find(|record| record["resource"] == "path:/ops/apps/payments/release")
        .unwrap_or_else(|| panic!("no record: {records:?}"));
    assert_eq!(passed["outcome"], "allow", "{passed}");
    assert_eq!(passed["actor"], "bob", "{passed}");
    assert_eq!(passed["statements"], json!(["stage:unchecked"]), "{passed}");
}

/// An application answering `name` to every request.
async fn named_application(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let app = Router::new().fallback(move || async move { name });
        axum::serve(listener, app).await.unwrap()
    });
    address
}

#[tokio::test]
async fn a_reload_replaces_the_applications_and_keeps_the_limits_it_does_not_change() {
    let first = named_application("first").await;
    let second = named_application("second").await;
    let section = |upstream: SocketAddr, burst: u32| {
        format!(
            r#"
[gateway]
listen = "127.0.0.1:0"

[[gateway.apps]]
host = "{HOST}"
upstream = {{ url = "http://{upstream}" }}
public = ["GET /{{*rest}}"]

[gateway.apps.rate_limit]
address = {{ requests = 1, per_seconds = 3600, burst = {burst} }}
"#
        )
    };
    let server = server_on(
        &demo_bundles(),
        &section(first, 2),
        trading_day_after_close(),
    )
    .await;
    let handle = server.gateway.clone().expect("the gateway runs");
    let gateway = Gateway {
        base: format!("http://{}", server.gateway_addr.unwrap()),
        api: format!("http://{}", server.addr),
        admin: format!("http://{}", server.admin_addr),
        _server: server,
    };
    let get = || send(&gateway, reqwest::Method::GET, "/page", None, &[]);
    let (status, _, body) = get().await;
    assert_eq!((status, body), (200, json!("first")));

    // Another upstream, the same limits: the next request goes to the new application, and the
    // address has used up its burst of two across the reload.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.toml");
    std::fs::write(&file, section(second, 2)).unwrap();
    handle.reload(&file, "test").unwrap();
    let (status, _, body) = get().await;
    assert_eq!((status, body), (200, json!("second")));
    let (status, headers, body) = get().await;
    assert_eq!(status, 429, "{body}");
    refused_by(&body, "rate_limit", "rate_limited");
    assert!(headers.contains_key("retry-after"));

    // A broken section is refused with its key; what was loaded stays.
    std::fs::write(
        &file,
        section(first, 2).replace("[gateway.apps.rate_limit]", "[gateway.apps.rate_limits]"),
    )
    .unwrap();
    let error = handle.reload(&file, "test").unwrap_err();
    assert!(error.contains("rate_limits"), "{error}");
    let (status, _, _) = get().await;
    assert_eq!(status, 429);

    // Changed limits start afresh.
    std::fs::write(&file, section(first, 5)).unwrap();
    handle.reload(&file, "test").unwrap();
    let (status, _, body) = get().await;
    assert_eq!((status, body), (200, json!("first")));

    let metrics = support::get_text(&gateway.api, "/metrics").await;
    for line in [
        r#"portcullis_gateway_reloads_total{outcome="applied"} 2"#,
        r#"portcullis_gateway_reloads_total{outcome="failed"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[tokio::test]
async fn a_session_ended_by_a_logout_is_refused_from_then_on() {
    let gateway = gateway_with(
        r#"public = ["POST /logout", "GET /signout", "GET /login"]
[gateway.apps.session]
logout = ["POST /logout", "GET /signout"]
login_page = "/login"
"#,
    )
    .await;
    let logs = "/ops/apps/payments/logs/today?lines=5";
    let bob = token(json!({ "sub": "bob", "jti": "first" }));
    let bearer = format!("Bearer {bob}");
    // A request from the office to the application.
    let to = |method: reqwest::Method, path: &str| {
        client()
            .request(method, format!("{}{path}", gateway.base))
            .header("host", HOST)
            .header("x-forwarded-for", OFFICE)
    };
    let get_logs = |auth: String, extra: Vec<(&'static str, &'static str)>| {
        let mut request = to(reqwest::Method::GET, logs).header("authorization", auth);
        for (name, value) in extra {
            request = request.header(name, value);
        }
        request.send()
    };
    let response = get_logs(bearer.clone(), vec![("cookie", "session=s1")])
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // An API client logs its token out: the token is refused from then on, another is not.
    let response = to(reqwest::Method::POST, "/logout")
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the logout reaches the application");
    let response = get_logs(bearer.clone(), vec![]).await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    refused_by(&body, "session", "session_ended");
    let other = format!("Bearer {}", token(json!({ "sub": "bob", "jti": "second" })));
    let response = get_logs(other.clone(), vec![("cookie", "session=s1")])
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A browser signs out: its cookie is cleared, and a page load with it again goes to the
    // login page.
    let response = to(reqwest::Method::GET, "/signout")
        .header("cookie", "session=s1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cleared: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|cookie| cookie.starts_with("session=;") && cookie.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let response = get_logs(
        other,
        vec![("cookie", "session=s1"), ("accept", "text/html")],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");

    // Both refusals are on record, naming the stage, and counted.
    let records = gateway_records(&gateway, "acme").await;
    let ended = records
        .iter()
        .filter(|record| record["statements"] == json!(["stage:session"]))
        .count();
    assert_eq!(ended, 2, "{records:?}");
    let metrics = support::get_text(&gateway.api, "/metrics").await;
    let line = r#"portcullis_gateway_stage_requests_total{app="ops.acme.example",stage="session",outcome="refused"} 2"#;
    assert!(metrics.contains(line), "{line} not in\n{metrics}");
}

#[tokio::test]
async fn a_websocket_goes_through_every_stage_and_is_joined_to_the_application() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gateway = gateway().await;
    let open = |principal: &str| {
        format!(
            "GET /ops/apps/payments/logs/live?lines=5 HTTP/1.1\r\nHost: {HOST}\r\n\
             X-Forwarded-For: {OFFICE}\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            token(json!({ "sub": principal }))
        )
    };
    let address = gateway.base.trim_start_matches("http://").to_owned();
    // bob may read the logs: the upgrade reaches the application and the two are joined.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(open("bob").as_bytes()).await.unwrap();
    let head = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(b"tail -f").await.unwrap();
    let mut echoed = [0u8; 7];
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_exact(&mut echoed),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&echoed, b"TAIL -F");
    // Someone the policy does not know is refused before any upgrade.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(open("mallory").as_bytes()).await.unwrap();
    let head = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
}

/// The head of an HTTP/1.1 answer read from `stream`.
async fn response_head(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}
