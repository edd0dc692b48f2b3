//! The AuthZEN 1.0 edge as the specification defines it: lenient about unknown members,
//! strict about everything else (400 with our error body), per-item batch errors, the tenant
//! resolved without a header, `X-Request-ID` on every answer of both listeners (and in the
//! decision's audit record) and the discovery document.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use portcullis_server::{RunningServer, start};
use serde_json::{Value, json};
use support::{
    ADMIN_TOKEN, AUDIT_TOKEN, client, config, config_text, demo_bundles, demo_server, token,
    trading_day_after_close,
};

const ALLOWED: &str = r#"{"subject":{"type":"user","id":"bob"},"action":{"name":"app:logs.download"},"resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}"#;
const DENIED: &str = r#"{"subject":{"type":"user","id":"bob"},"action":{"name":"app:release"},"resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}"#;

/// A server on the demo bundles whose configuration starts with `top` (top-level keys).
async fn server_with(top: &str) -> RunningServer {
    let text = format!("{top}\n{}", config_text(&demo_bundles(), ""));
    start(config(&text), Some(Arc::new(trading_day_after_close)))
        .await
        .unwrap()
}

async fn send(
    base: &str,
    path: &str,
    body: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client().post(format!("{base}{path}")).body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, value)
}

async fn post(base: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, value) = send(base, path, body, Some("application/json"), headers).await;
    (status, value)
}

const TENANT: &[(&str, &str)] = &[("x-tenant-id", "acme")];

#[tokio::test]
async fn every_malformed_request_is_a_400_with_our_error_body() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let json = Some("application/json");
    // (path, body, content type, expected code)
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "/access/v1/evaluation",
            r#"{"action":{"name":"read"},"resource":{"type":"t","id":"1"}}"#,
            json,
            "missing_field",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":"b"},"resource":{"type":"t","id":"1"}}"#,
            json,
            "missing_field",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":"b"},"action":{"name":"read"}}"#,
            json,
            "missing_field",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"id":"b"},"action":{"name":"read"},"resource":{"type":"t","id":"1"}}"#,
            json,
            "missing_field",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"t","id":"1"}}"#,
            json,
            "missing_field",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":"b"},"action":{},"resource":{"type":"t","id":"1"}}"#,
            json,
            "missing_field",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":"b"},"action":{"name":"read"},"resource":{"id":"1"}}"#,
            json,
            "missing_field",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":"b"},"action":{"name":"read"},"resource":{"type":"t"}}"#,
            json,
            "missing_field",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":"alice","action":{"name":"read"},"resource":{"type":"t","id":"1"}}"#,
            json,
            "invalid_request",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":"b"},"action":{"name":7},"resource":{"type":"t","id":"1"}}"#,
            json,
            "invalid_request",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":"b""#,
            json,
            "malformed_json",
        ),
        ("/access/v1/evaluation", "", json, "malformed_json"),
        ("/access/v1/evaluation", "[]", json, "invalid_request"),
        (
            "/access/v1/evaluation",
            ALLOWED,
            Some("text/plain"),
            "unsupported_media_type",
        ),
        (
            "/access/v1/evaluation",
            ALLOWED,
            None,
            "unsupported_media_type",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject":{"type":"user","id":"b"},"action":{"name":"read"},"resource":{"type":"t","id":"1"},"context":{"cert":{"bogus":1}}}"#,
            json,
            "invalid_request",
        ),
        ("/access/v1/evaluations", "[]", json, "invalid_request"),
        (
            "/access/v1/evaluations",
            ALLOWED,
            Some("text/plain"),
            "unsupported_media_type",
        ),
        (
            "/access/v1/evaluations",
            r#"{"evaluations":{}}"#,
            json,
            "invalid_request",
        ),
        (
            "/access/v1/evaluations",
            r#"{"subject":{"type":"user","id":"b"},"action":{"name":"read"}}"#,
            json,
            "missing_field",
        ),
        (
            "/access/v1/evaluations",
            r#"{"evaluations":[],"options":{"evaluations_semantic":"sometimes"}}"#,
            json,
            "invalid_request",
        ),
    ];
    for (path, body, content_type, code) in cases {
        let (status, _, answer) = send(&base, path, body, *content_type, TENANT).await;
        assert_eq!(status, 400, "{path} {body:?} {content_type:?}: {answer}");
        assert_eq!(answer["error"]["code"], *code, "{path} {body:?}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Our own API keeps its 415.
    let check = r#"{"tenant":"acme","principal":{"id":"bob"},"action":"app:logs.download","resource":{"type":"app","id":"payments"}}"#;
    let (status, _, answer) = send(&base, "/v1/check", check, Some("text/plain"), &[]).await;
    assert_eq!(status, 415, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_members_are_ignored_on_authzen_and_refused_on_v1() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let lenient = r#"{"future":{"x":1},"subject":{"type":"user","id":"bob","extra":1},"action":{"name":"app:logs.download","extra":2},"resource":{"type":"app","id":"payments","extra":3},"context":{"ip":"172.16.3.4"}}"#;
    let (status, answer) = post(&base, "/access/v1/evaluation", lenient, TENANT).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["decision"], true);
    assert!(answer["context"].is_object());
    let batch = format!(
        r#"{{"future":1,"options":{{"evaluations_semantic":"execute_all","another_option":"v"}},"evaluations":[{},{}]}}"#,
        lenient.replacen('{', r#"{"item_extra":true,"#, 1),
        DENIED
    );
    let (status, answer) = post(&base, "/access/v1/evaluations", &batch, TENANT).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["evaluations"][0]["decision"], true);
    assert_eq!(answer["evaluations"][1]["decision"], false);
    let check = r#"{"tenant":"acme","principal":{"id":"bob"},"action":"app:logs.download","resource":{"type":"app","id":"payments"},"future":1}"#;
    let (status, answer) = post(&base, "/v1/check", check, &[]).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("unknown_field"))
    );
    server.stop().await;
}

#[tokio::test]
async fn batch_items_fail_in_their_place_and_short_circuit_as_denies() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let body = |semantic: &str| {
        format!(
            r#"{{"subject":{{"type":"user","id":"bob"}},"context":{{"ip":"172.16.3.4"}},"options":{{"evaluations_semantic":"{semantic}"}},
            "evaluations":[{{"action":{{"name":"app:logs.download"}},"resource":{{"type":"app","id":"payments"}}}},
                           {{"action":{{"name":"app:logs.download"}}}},
                           {{"action":{{"name":"app:status.check"}},"resource":{{"type":"app","id":"payments"}}}}]}}"#
        )
    };
    let (status, answer) = post(
        &base,
        "/access/v1/evaluations",
        &body("execute_all"),
        TENANT,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let items = answer["evaluations"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{answer}");
    assert_eq!(items[0]["decision"], true);
    assert_eq!(items[1]["decision"], false);
    assert_eq!(items[1]["context"]["error"]["code"], "missing_field");
    assert_eq!(
        items[1]["context"]["error"]["message"],
        "evaluations[1].resource is required"
    );
    assert_eq!(items[2]["decision"], true);
    let (_, answer) = post(
        &base,
        "/access/v1/evaluations",
        &body("deny_on_first_deny"),
        TENANT,
    )
    .await;
    assert_eq!(
        answer["evaluations"].as_array().unwrap().len(),
        2,
        "{answer}"
    );
    let (_, answer) = post(
        &base,
        "/access/v1/evaluations",
        &body("permit_on_first_permit"),
        TENANT,
    )
    .await;
    assert_eq!(
        answer["evaluations"].as_array().unwrap().len(),
        1,
        "{answer}"
    );

    // An item's context replaces the default context whole: without `ip`, the item is denied.
    let replaced = r#"{"subject":{"type":"user","id":"bob"},"action":{"name":"app:logs.download"},"resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"},
        "evaluations":[{},{"context":{"source":"batch-override"}}]}"#;
    let (_, answer) = post(&base, "/access/v1/evaluations", replaced, TENANT).await;
    assert_eq!(answer["evaluations"][0]["decision"], true, "{answer}");
    assert_eq!(answer["evaluations"][1]["decision"], false, "{answer}");

    // Without items, absent or empty, the answer is a single Access Evaluation.
    for body in [
        ALLOWED.to_owned(),
        ALLOWED.replacen('{', r#"{"evaluations":[],"#, 1),
    ] {
        let (status, answer) = post(&base, "/access/v1/evaluations", &body, TENANT).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["decision"], true, "{answer}");
        assert!(answer["context"].is_object());
        assert!(answer.get("evaluations").is_none());
    }
    server.stop().await;
}

async fn decision_records(admin_base: &str) -> Vec<Value> {
    let response = client()
        .get(format!(
            "{admin_base}/admin/v1/tenants/acme/audit?kind=decision&limit=100"
        ))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["records"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn x_request_id_is_echoed_everywhere_and_recorded_with_the_decision() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let admin_base = format!("http://{}", server.admin_addr);

    // A denied check (denies are always recorded) with the caller's id.
    let id = "req-7f3a-check";
    let (status, headers, _) = send(
        &base,
        "/access/v1/evaluation",
        DENIED,
        Some("application/json"),
        &[("x-tenant-id", "acme"), ("x-request-id", id)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-request-id"], id);
    let mut found = None;
    for _ in 0..50 {
        found = decision_records(&admin_base)
            .await
            .into_iter()
            .find(|record| record["request_id"] == id);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record = found.expect("the decision record carries the request id");
    assert_eq!(record["action"], "app:release");
    // The trail still verifies with the new field in it.
    let verify: Value = client()
        .get(format!("{admin_base}/admin/v1/tenants/acme/audit/verify"))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");

    // Without one, or with an unusable one, an id is generated.
    for sent in [None, Some("x".repeat(201)), Some("tab\there".to_owned())] {
        let mut request = client()
            .post(format!("{base}/access/v1/evaluation"))
            .header("content-type", "application/json")
            .header("x-tenant-id", "acme")
            .body(ALLOWED);
        if let Some(sent) = &sent {
            request = request.header("x-request-id", sent.as_str());
        }
        let response = request.send().await.unwrap();
        let got = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(got.len(), 36, "{got}");
        assert_ne!(Some(got), sent);
    }

    // Error answers, fallbacks, operations and the admin listener echo it too.
    let probes = [
        client().get(format!("{base}/no/such/path")),
        client().get(format!("{base}/access/v1/evaluation")),
        client().get(format!("{base}/healthz")),
        client().get(format!("{base}/.well-known/authzen-configuration")),
        client()
            .post(format!("{base}/access/v1/evaluation"))
            .body("{"),
        client()
            .get(format!("{admin_base}/admin/v1/tenants"))
            .bearer_auth(ADMIN_TOKEN),
        client().get(format!("{admin_base}/admin/v1/tenants")),
        client().get(format!("{admin_base}/nothing")),
        // A head over the configured limits is refused before any router runs.
        client()
            .get(format!("{base}/healthz"))
            .header("x-oversized", "a".repeat(17 * 1024)),
    ];
    let last = probes.len() - 1;
    for (index, probe) in probes.into_iter().enumerate() {
        let id = format!("probe-{index}");
        let response = probe.header("x-request-id", &id).send().await.unwrap();
        if index == last {
            assert_eq!(response.status(), 431);
        }
        assert_eq!(
            response
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().unwrap()),
            Some(id.as_str()),
            "probe {index}: {}",
            response.status()
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_tenant_is_resolved_in_the_documented_order_and_conflicts_are_refused() {
    let server = server_with(r#"default_tenant = "system""#).await;
    let base = format!("http://{}", server.addr);
    let decided = |answer: &Value| answer["context"]["revision"]["bundle"].clone();
    let (_, by_header) = post(&base, "/access/v1/evaluation", ALLOWED, TENANT).await;
    assert_eq!(by_header["decision"], true, "1. X-Tenant-ID: {by_header}");

    let bearer = format!("Bearer {}", token(json!({"sub": "bob", "tenant": "acme"})));
    let (_, by_token) = post(
        &base,
        "/access/v1/evaluation",
        ALLOWED,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(by_token["decision"], true, "2. token claim: {by_token}");
    assert_eq!(decided(&by_token), decided(&by_header));

    let (_, by_host) = post(
        &base,
        "/access/v1/evaluation",
        ALLOWED,
        &[("host", "ops.acme.example:8080")],
    )
    .await;
    assert_eq!(by_host["decision"], true, "3. host: {by_host}");
    assert_eq!(decided(&by_host), decided(&by_header));

    // 4. The default tenant (`system`) knows nothing of apps: a deny on its revision.
    let (status, by_default) = post(&base, "/access/v1/evaluation", ALLOWED, &[]).await;
    assert_eq!(status, 200, "{by_default}");
    assert_eq!(by_default["decision"], false, "4. default: {by_default}");
    assert_ne!(decided(&by_default), decided(&by_header));
    let (_, batch) = post(
        &base,
        "/access/v1/evaluations",
        &format!(r#"{{"evaluations":[{ALLOWED}]}}"#),
        &[("host", "ops.acme.example")],
    )
    .await;
    assert_eq!(batch["evaluations"][0]["decision"], true, "{batch}");

    // Conflicts.
    let other = format!(
        "Bearer {}",
        token(json!({"sub": "bob", "tenant": "system"}))
    );
    let (status, answer) = post(
        &base,
        "/access/v1/evaluation",
        ALLOWED,
        &[("x-tenant-id", "acme"), ("authorization", &other)],
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (401, json!("tenant_mismatch"))
    );
    let (status, answer) = post(
        &base,
        "/access/v1/evaluation",
        ALLOWED,
        &[("x-tenant-id", "system"), ("host", "ops.acme.example")],
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("tenant_host_mismatch"))
    );
    let (status, answer) = post(
        &base,
        "/access/v1/evaluation",
        ALLOWED,
        &[("authorization", &other), ("host", "ops.acme.example")],
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("tenant_host_mismatch"))
    );
    server.stop().await;

    // No rule at all.
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let (status, answer) = post(&base, "/access/v1/evaluation", ALLOWED, &[]).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("missing_tenant"))
    );
    let message = answer["error"]["message"].as_str().unwrap();
    for way in ["X-Tenant-ID", "token", "domain", "default_tenant"] {
        assert!(message.contains(way), "{message}");
    }
    server.stop().await;
}

async fn discovery(base: &str, headers: &[(&str, &str)]) -> (String, Value) {
    let mut request = client().get(format!("{base}/.well-known/authzen-configuration"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.json().await.unwrap())
}

#[tokio::test]
async fn discovery_names_absolute_endpoints_from_configuration_and_trusted_proxies() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let (content_type, document) = discovery(&base, &[]).await;
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(document["policy_decision_point"], base);
    for (key, path) in [
        ("access_evaluation_endpoint", "/access/v1/evaluation"),
        ("access_evaluations_endpoint", "/access/v1/evaluations"),
        ("search_subject_endpoint", "/access/v1/search/subject"),
        ("search_resource_endpoint", "/access/v1/search/resource"),
        ("search_action_endpoint", "/access/v1/search/action"),
    ] {
        assert_eq!(document[key], format!("{base}{path}"), "{key}");
    }
    // The test client is on 127.0.0.1, a trusted proxy by default.
    let (_, document) = discovery(
        &base,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "pdp.example.com"),
        ],
    )
    .await;
    assert_eq!(document["policy_decision_point"], "https://pdp.example.com");
    let (_, document) = discovery(&base, &[("host", "ops.acme.example")]).await;
    assert_eq!(document["policy_decision_point"], "http://ops.acme.example");
    server.stop().await;

    // From an untrusted peer the forwarded headers are not believed.
    let untrusted = config_text(&demo_bundles(), "[proxy]\ntrusted = [\"192.0.2.0/24\"]");
    let server = start(config(&untrusted), Some(Arc::new(trading_day_after_close)))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let (_, document) = discovery(
        &base,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "pdp.example.com"),
        ],
    )
    .await;
    assert_eq!(document["policy_decision_point"], base);
    server.stop().await;

    // A configured public URL wins.
    let server = server_with(r#"public_url = "https://pdp.example.com/""#).await;
    let base = format!("http://{}", server.addr);
    let (_, document) = discovery(&base, &[("x-forwarded-host", "elsewhere.example")]).await;
    assert_eq!(document["policy_decision_point"], "https://pdp.example.com");
    assert_eq!(
        document["access_evaluation_endpoint"],
        "https://pdp.example.com/access/v1/evaluation"
    );
    server.stop().await;
}
