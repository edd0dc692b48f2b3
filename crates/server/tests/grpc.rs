//! The gRPC edges over real HTTP/2 on the main listener: Envoy's ext_authz `Check` (allow with
//! identity headers, deny, 401, 400, unknown routes, client certificates, proxy trust) and the
//! `portcullis.v1.Decisions` service (check, batch, explain, identity binding, invalid input).
//!
//! The server decides on a fixed clock: 2026-03-02T16:00:00+08:00, a Monday (trading day) after
//! the close, so `release` holds from the office network (P1, P2, P3) and not from outside.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Address, CheckRequest, CheckResponse, HeaderAppendAction, HttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttributeRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use portcullis_server::edges::grpc::pb;
use portcullis_server::edges::grpc::pb::decisions_client::DecisionsClient;
use portcullis_server::{Config, Overrides, RunningServer, start};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
const ISSUER: &str = "https://idp.test.example";
const HOST: &str = "ops.acme.example";
const OFFICE: &str = "172.16.3.4";
const OUTSIDE: &str = "203.0.113.9";

/// Starts the demo bundles on the fixed clock; `extra` is appended to the configuration.
async fn server(extra: &str) -> RunningServer {
    let bundles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles");
    let text = format!(
        r#"
listen = "127.0.0.1:0"
bundles = [{bundles:?}]
data_dir = {data:?}
[reload]
watch = false
[admin]
listen = "127.0.0.1:0"
[[identity.issuers]]
issuer = "{ISSUER}"
secret_env = "TEST_SECRET"
{extra}
"#,
        bundles = bundles.display().to_string(),
        data = tempfile::tempdir().unwrap().keep().display().to_string()
    );
    let env = |name: &str| (name == "TEST_SECRET").then(|| SECRET.to_owned());
    let config = Config::parse(&text, Path::new("."), &Overrides::default(), &env).unwrap();
    let now: jiff::Timestamp = "2026-03-02T16:00:00+08:00".parse().unwrap();
    start(config, Some(Arc::new(move || now))).await.unwrap()
}

/// The one audit record of `trace_id` in `tenant`'s trail, once everything queued is written.
async fn recorded(
    server: &RunningServer,
    tenant: &str,
    trace_id: &str,
) -> portcullis_audit::Record {
    let audit = server.state.audit.as_ref().unwrap();
    audit.flush().await.unwrap();
    let filter = portcullis_audit::Filter {
        trace_id: Some(trace_id.to_owned()),
        ..Default::default()
    };
    let page = portcullis_audit::query(audit.root().unwrap(), tenant, &filter, None, 10).unwrap();
    assert_eq!(page.records.len(), 1, "{:?}", page.records);
    page.records[0].clone()
}

/// An HS256 token for `subject` in `tenant`, valid for an hour of real time (the token library
/// checks expiry against the system clock; decisions use the server's clock).
fn token(subject: &str, tenant: &str) -> String {
    let exp = jiff::Timestamp::now().as_second() + 3600;
    let claims = json!({ "iss": ISSUER, "sub": subject, "tenant": tenant, "exp": exp });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn channel(server: &RunningServer, authority: Option<&str>) -> Channel {
    let mut endpoint = Endpoint::from_shared(format!("http://{}", server.addr)).unwrap();
    if let Some(authority) = authority {
        endpoint = endpoint.origin(format!("http://{authority}").parse().unwrap());
    }
    endpoint.connect().await.unwrap()
}

/// An ext_authz check request as Envoy sends it.
fn envoy_request(
    method: &str,
    path: &str,
    client: &str,
    headers: &[(&str, &str)],
    certificate: Option<&str>,
) -> CheckRequest {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(envoy_types::pb::envoy::config::core::v3::Address {
                    address: Some(Address::SocketAddress(SocketAddress {
                        address: client.to_owned(),
                        ..Default::default()
                    })),
                }),
                certificate: certificate.unwrap_or_default().to_owned(),
                ..Default::default()
            }),
            request: Some(AttributeRequest {
                http: Some(HttpRequest {
                    method: method.to_owned(),
                    path: path.to_owned(),
                    host: HOST.to_owned(),
                    scheme: "https".to_owned(),
                    protocol: "HTTP/1.1".to_owned(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn envoy_check(server: &RunningServer, request: CheckRequest) -> CheckResponse {
    let mut client = AuthorizationClient::new(channel(server, None).await);
    client.check(request).await.unwrap().into_inner()
}

/// The gRPC status code of a check response.
fn code(response: &CheckResponse) -> Code {
    Code::from(response.status.as_ref().unwrap().code)
}

/// Upstream headers of an allow.
fn ok_headers(response: &CheckResponse) -> HashMap<String, String> {
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("not an OK response: {response:?}");
    };
    for option in &ok.headers {
        assert_eq!(
            option.append_action,
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            "identity headers must replace what the client sent"
        );
    }
    ok.headers
        .iter()
        .map(|option| {
            let header = option.header.as_ref().unwrap();
            (header.key.clone(), header.value.clone())
        })
        .collect()
}

/// Status, headers and JSON body of a denial.
fn denied(response: &CheckResponse) -> (i32, HashMap<String, String>, Value) {
    let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("not a denied response: {response:?}");
    };
    let headers = denied
        .headers
        .iter()
        .map(|option| {
            let header = option.header.as_ref().unwrap();
            (header.key.clone(), header.value.clone())
        })
        .collect();
    (
        denied.status.unwrap().code,
        headers,
        serde_json::from_str(&denied.body).unwrap(),
    )
}

fn bearer(subject: &str) -> String {
    format!("Bearer {}", token(subject, "acme"))
}

const RELEASE: &str = "/ops/apps/payments/release";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn envoy_allows_a_release_from_the_office_with_identity_headers() {
    let server = server("").await;
    let auth = bearer("alice");
    let headers = [
        ("authorization", auth.as_str()),
        ("x-tenant-id", "acme"),
        ("traceparent", TRACEPARENT),
    ];
    let response = envoy_check(
        &server,
        envoy_request("POST", RELEASE, OFFICE, &headers, None),
    )
    .await;
    assert_eq!(code(&response), Code::Ok, "{response:?}");
    let upstream = ok_headers(&response);
    assert_eq!(upstream["x-portcullis-user"], "alice");
    assert_eq!(upstream["x-portcullis-tenant"], "acme");
    let roles: Vec<&str> = upstream["x-portcullis-roles"].split(',').collect();
    assert!(roles.contains(&"operator"), "{roles:?}");
    assert_eq!(
        upstream["x-portcullis-decision-id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    // Raw headers (`encode_raw_headers`) arrive in `header_map` instead of `headers`; the tenant
    // may also be found by the host alone.
    let mut raw = envoy_request("POST", RELEASE, OFFICE, &[], None);
    let http = raw
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.header_map = Some(HeaderMap {
        headers: vec![HeaderValue {
            key: "authorization".into(),
            value: String::new(),
            raw_value: auth.clone().into_bytes(),
        }],
    });
    let response = envoy_check(&server, raw).await;
    assert_eq!(code(&response), Code::Ok, "{response:?}");
    assert_eq!(ok_headers(&response)["x-portcullis-user"], "alice");
    server.stop().await;
}

#[tokio::test]
async fn envoy_denies_a_release_from_outside_with_a_403() {
    let server = server("").await;
    let auth = bearer("alice");
    let headers = [("authorization", auth.as_str()), ("x-tenant-id", "acme")];
    let response = envoy_check(
        &server,
        envoy_request("POST", RELEASE, OUTSIDE, &headers, None),
    )
    .await;
    assert_eq!(code(&response), Code::PermissionDenied);
    let (status, headers, body) = denied(&response);
    assert_eq!(status, 403);
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["cause"], "strategy_failed");
    assert_eq!(body["strategy"]["id"], "release");
    assert_eq!(body["strategy"]["held"], false);
    assert_eq!(headers["x-portcullis-decision-id"], body["trace_id"]);
    assert_eq!(headers["content-type"], "application/json");
    server.stop().await;
}

#[tokio::test]
async fn envoy_answers_a_missing_or_invalid_token_with_a_401() {
    let server = server("").await;
    let response = envoy_check(
        &server,
        envoy_request("POST", RELEASE, OFFICE, &[("x-tenant-id", "acme")], None),
    )
    .await;
    assert_eq!(code(&response), Code::Unauthenticated);
    let (status, headers, body) = denied(&response);
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(body["error"]["code"], "missing_token");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bearer token")
    );

    let forged = format!("{}x", bearer("alice"));
    let response = envoy_check(
        &server,
        envoy_request(
            "POST",
            RELEASE,
            OFFICE,
            &[("authorization", &forged), ("x-tenant-id", "acme")],
            None,
        ),
    )
    .await;
    assert_eq!(code(&response), Code::Unauthenticated);
    assert_eq!(denied(&response).2["error"]["code"], "invalid_signature");

    let other_tenant = format!("Bearer {}", token("alice", "globex"));
    let response = envoy_check(
        &server,
        envoy_request(
            "POST",
            RELEASE,
            OFFICE,
            &[("authorization", &other_tenant), ("x-tenant-id", "acme")],
            None,
        ),
    )
    .await;
    assert_eq!(code(&response), Code::Unauthenticated);
    assert_eq!(denied(&response).2["error"]["code"], "tenant_mismatch");
    server.stop().await;
}

#[tokio::test]
async fn envoy_answers_bad_input_with_a_400_not_a_transport_error() {
    let server = server("").await;
    let auth = bearer("alice");
    let response = envoy_check(
        &server,
        envoy_request(
            "POST",
            RELEASE,
            OFFICE,
            &[("authorization", &auth), ("x-tenant-id", "ac me")],
            None,
        ),
    )
    .await;
    assert_eq!(code(&response), Code::InvalidArgument);
    let (status, _, body) = denied(&response);
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_tenant");

    // No HTTP attributes at all.
    let response = envoy_check(&server, CheckRequest::default()).await;
    assert_eq!(code(&response), Code::InvalidArgument);
    let (status, _, body) = denied(&response);
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("attributes.request.http")
    );

    // A path that climbs out of its route.
    let response = envoy_check(
        &server,
        envoy_request(
            "GET",
            "/ops/apps/payments/logs/../../x",
            OFFICE,
            &[("authorization", &auth), ("x-tenant-id", "acme")],
            None,
        ),
    )
    .await;
    assert_eq!(code(&response), Code::InvalidArgument);

    // A certificate that is not one.
    let response = envoy_check(
        &server,
        envoy_request(
            "GET",
            "/ops/apps/payments/status",
            OFFICE,
            &[("authorization", &auth), ("x-tenant-id", "acme")],
            Some("not%20a%20certificate"),
        ),
    )
    .await;
    assert_eq!(code(&response), Code::InvalidArgument);
    assert!(
        denied(&response).2["error"]["message"]
            .as_str()
            .unwrap()
            .contains("certificate")
    );
    server.stop().await;
}

#[tokio::test]
async fn envoy_denies_an_unknown_route() {
    let server = server("").await;
    let auth = bearer("alice");
    let response = envoy_check(
        &server,
        envoy_request(
            "DELETE",
            "/ops/apps/payments",
            OFFICE,
            &[("authorization", &auth), ("x-tenant-id", "acme")],
            None,
        ),
    )
    .await;
    assert_eq!(code(&response), Code::PermissionDenied);
    let (status, headers, body) = denied(&response);
    assert_eq!(status, 403);
    assert_eq!(body["cause"], "no_route");
    // An unmatched route is a decision like the others: it has a trace id, an audit record
    // naming its cause, and a decision metric.
    let trace = headers
        .get("x-portcullis-decision-id")
        .expect("the denial carries its decision id");
    assert_eq!(body["trace_id"], trace.as_str());
    let record = recorded(&server, "acme", trace).await;
    assert_eq!(record.outcome, portcullis_audit::Outcome::Deny);
    assert_eq!(record.details["cause"], "no_route");
    assert_eq!(record.action, "DELETE");
    assert!(
        server
            .state
            .metrics
            .encode()
            .lines()
            .any(|line| line.starts_with("portcullis_decisions_total{")
                && line.contains("edge=\"envoy-grpc\"")
                && line.contains("outcome=\"deny\"")),
        "counted"
    );
    server.stop().await;
}

fn certificate_pem(common_name: &str) -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// Envoy's URL encoding of a PEM certificate (`%xx` for everything but unreserved characters).
fn url_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn envoy_takes_the_client_certificate_for_p4() {
    let server = server("").await;
    let auth = bearer("bob");
    let headers = [("authorization", auth.as_str()), ("x-tenant-id", "acme")];
    let logs = "/ops/apps/payments/logs/today?lines=100";
    // From outside, on a trading day after the close: ops-read holds with a listed certificate.
    let listed = url_encode(&certificate_pem("cert1"));
    let response = envoy_check(
        &server,
        envoy_request("GET", logs, OUTSIDE, &headers, Some(&listed)),
    )
    .await;
    assert_eq!(code(&response), Code::Ok, "{response:?}");
    assert_eq!(ok_headers(&response)["x-portcullis-user"], "bob");

    let unlisted = url_encode(&certificate_pem("laptop-9"));
    for certificate in [None, Some(unlisted.as_str())] {
        let response = envoy_check(
            &server,
            envoy_request("GET", logs, OUTSIDE, &headers, certificate),
        )
        .await;
        assert_eq!(code(&response), Code::PermissionDenied);
        let (_, _, body) = denied(&response);
        assert_eq!(body["cause"], "strategy_failed");
    }
    server.stop().await;
}

#[tokio::test]
async fn envoy_believes_the_client_address_only_from_a_trusted_proxy() {
    // This test's connections come from loopback, which is not trusted here.
    let server = server("[proxy]\ntrusted = [\"10.0.0.0/8\"]").await;
    let auth = bearer("alice");
    let headers = [("authorization", auth.as_str()), ("x-tenant-id", "acme")];
    let response = envoy_check(
        &server,
        envoy_request("POST", RELEASE, OFFICE, &headers, None),
    )
    .await;
    assert_eq!(code(&response), Code::PermissionDenied, "{response:?}");
    assert_eq!(denied(&response).2["cause"], "strategy_failed");

    // Nor its word for the client's certificate.
    let bob = bearer("bob");
    let listed = url_encode(&certificate_pem("cert1"));
    let response = envoy_check(
        &server,
        envoy_request(
            "GET",
            "/ops/apps/payments/status",
            OUTSIDE,
            &[("authorization", &bob), ("x-tenant-id", "acme")],
            Some(&listed),
        ),
    )
    .await;
    assert_eq!(code(&response), Code::PermissionDenied, "{response:?}");
    server.stop().await;
}

fn check(principal: &str, ip: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        tenant: "acme".into(),
        principal: Some(pb::Principal {
            id: principal.into(),
            ..Default::default()
        }),
        action: "app:release".into(),
        resource: Some(pb::Resource {
            r#type: "app".into(),
            id: "payments".into(),
            attributes: None,
        }),
        context: Some(pb::Context {
            ip: ip.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn decisions_check_batch_and_explain() {
    let server = server("").await;
    let mut client = DecisionsClient::new(channel(&server, None).await);

    let decision = client
        .check(check("alice", OFFICE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision.decision, pb::Effect::Allow as i32);
    assert_eq!(decision.cause, "granted");
    let strategy = decision.strategy.unwrap();
    assert_eq!(strategy.id, "release");
    assert!(strategy.held);
    assert_eq!(strategy.branch, ["P1", "P2", "P3"]);
    assert_eq!(decision.reasons[0].kind, "role");
    assert_eq!(decision.reasons[0].id, "operator");
    assert!(decision.revision.unwrap().bundle.starts_with("sha256:"));
    assert_eq!(decision.trace_id.len(), 32);
    assert!(decision.explanation.is_none());

    // The caller's time is not honoured by a tenant that does not accept it.
    let mut during_trading = check("alice", OFFICE);
    during_trading.context.as_mut().unwrap().time = "2026-03-02T10:00:00+08:00".into();
    during_trading.trace_id = "abc-123".into();
    let decision = client.check(during_trading).await.unwrap().into_inner();
    assert_eq!(decision.decision, pb::Effect::Allow as i32);
    assert_eq!(decision.trace_id, "abc-123");

    let explained = client
        .explain(check("alice", OUTSIDE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explained.decision, pb::Effect::Deny as i32);
    assert_eq!(explained.cause, "strategy_failed");
    let explanation = portcullis_server::edges::grpc::struct_to_json(
        &explained.explanation.unwrap(),
        "explanation",
    )
    .unwrap();
    assert_eq!(explanation["factors"]["P1"], false);
    assert_eq!(explanation["factors"]["P2"], true);
    assert_eq!(explanation["write"], true);

    let batch = client
        .batch_check(pb::BatchCheckRequest {
            requests: vec![check("alice", OFFICE), check("bob", OFFICE)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.decisions.len(), 2);
    assert_eq!(batch.decisions[0].decision, pb::Effect::Allow as i32);
    assert_eq!(batch.decisions[1].decision, pb::Effect::Deny as i32);
    assert_eq!(batch.decisions[1].cause, "no_grant");

    // Attributes travel as google.protobuf.Struct and reach conditions as JSON.
    let mut own_doc = check("alice", OFFICE);
    own_doc.action = "doc:edit".into();
    own_doc.resource = Some(pb::Resource {
        r#type: "doc".into(),
        id: "runbook".into(),
        attributes: Some(portcullis_server::edges::grpc::json_to_struct(
            json!({ "owner": "alice" }).as_object().unwrap(),
        )),
    });
    let decision = client.check(own_doc).await.unwrap().into_inner();
    assert_eq!(decision.decision, pb::Effect::Allow as i32, "{decision:?}");
    assert_eq!(decision.reasons[0].id, "owner");
    server.stop().await;
}

#[tokio::test]
async fn decisions_reject_invalid_input_naming_the_field() {
    let server = server("[limits]\nmax_batch = 2").await;
    let mut client = DecisionsClient::new(channel(&server, None).await);

    let mut bad_tenant = check("alice", OFFICE);
    bad_tenant.tenant = "a b".into();
    let mut bad_ip = check("alice", OFFICE);
    bad_ip.context.as_mut().unwrap().ip = "300.1.1.1".into();
    let mut bad_time = check("alice", OFFICE);
    bad_time.context.as_mut().unwrap().time = "yesterday at five".into();
    let mut no_resource = check("alice", OFFICE);
    no_resource.resource = None;
    for (request, field) in [
        (bad_tenant, "tenant"),
        (bad_ip, "context.ip"),
        (bad_time, "context.time"),
        (no_resource, "resource"),
    ] {
        let status = client.check(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{field}: {}",
            status.message()
        );
    }

    let mut second = check("bob", OFFICE);
    second.context.as_mut().unwrap().ip = "office".into();
    let status = client
        .batch_check(pb::BatchCheckRequest {
            requests: vec![check("alice", OFFICE), second],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("requests[1].context.ip: "),
        "{}",
        status.message()
    );

    let status = client
        .batch_check(pb::BatchCheckRequest { requests: vec![] })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .batch_check(pb::BatchCheckRequest {
            requests: vec![check("alice", OFFICE); 3],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("the limit is 2"),
        "{}",
        status.message()
    );

    let mut bad_explain = check("alice", OFFICE);
    bad_explain.principal.as_mut().unwrap().id.clear();
    let status = client.explain(bad_explain).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("principal.id: "),
        "{}",
        status.message()
    );
    server.stop().await;
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn decisions_bind_the_bearer_identity_like_the_http_api() {
    let server = server("").await;
    // The demo tenant declares the domain ops.acme.example: the call must be addressed to it.
    let mut client = DecisionsClient::new(channel(&server, Some(HOST)).await);
    let alice = token("alice", "acme");

    let decision = client
        .check(with_token(check("alice", OFFICE), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision.decision, pb::Effect::Allow as i32);

    let status = client
        .check(with_token(check("bob", OFFICE), &alice))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("principal_mismatch: "),
        "{}",
        status.message()
    );

    let status = client
        .batch_check(with_token(
            pb::BatchCheckRequest {
                requests: vec![check("alice", OFFICE)],
            },
            &token("alice", "globex"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().starts_with("tenant_mismatch: "),
        "{}",
        status.message()
    );

    let status = client
        .explain(with_token(check("alice", OFFICE), "not-a-jwt"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // Checking a request addressed to another host, the same token does not bind. (The
    // authority of the call to us says nothing about the checked request's host.)
    let mut elsewhere = check("alice", OFFICE);
    if let Some(context) = elsewhere.context.as_mut() {
        context.attributes = Some(prost_types::Struct {
            fields: [(
                "host".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("evil.example".into())),
                },
            )]
            .into_iter()
            .collect(),
        });
    }
    let status = client
        .check(with_token(elsewhere, &alice))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().starts_with("domain_mismatch: "),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn grpc_and_http_share_the_listener() {
    let server = server("").await;
    let health = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let mut client = DecisionsClient::new(channel(&server, None).await);
    assert!(client.check(check("alice", OFFICE)).await.is_ok());
    let mut envoy = AuthorizationClient::new(channel(&server, None).await);
    assert!(envoy.check(CheckRequest::default()).await.is_ok());
    server.stop().await;
}
