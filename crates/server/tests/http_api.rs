//! The JSON decision API and AuthZEN endpoints over real HTTP: decisions, and a table of
//! malformed requests per endpoint with the status and error code each must get.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use serde_json::{Value, json};
use support::{client, demo_server};

const CHECK: &str = r#"{"tenant":"acme","principal":{"id":"alice"},"action":"app:release","resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}"#;

async fn post(base: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, value)
}

#[tokio::test]
async fn check_decides_on_the_server_clock() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    // The server's clock says 16:00 on a trading day: release from the office is allowed.
    let (status, decision) = post(&base, "/v1/check", CHECK, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["strategy"]["branch"], json!(["P1", "P2", "P3"]));
    assert_eq!(decision["trace_id"].as_str().unwrap().len(), 32);
    // A caller-supplied time is ignored: the tenant does not accept caller time.
    let during_trading = CHECK.replace(
        r#""ip":"172.16.3.4""#,
        r#""ip":"172.16.3.4","time":"2026-03-02T10:00:00+08:00""#,
    );
    let (_, decision) = post(&base, "/v1/check", &during_trading, &[]).await;
    assert_eq!(decision["decision"], "allow");
    // Caller-supplied environment signals are ignored too.
    let claims_risk = CHECK.replace(
        r#""context""#,
        r#""env":{"supply_chain":{"high_risk":false}},"context""#,
    );
    let (status, _) = post(&base, "/v1/check", &claims_risk, &[]).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn the_supply_chain_signal_comes_from_the_server() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    server.state.set_high_risk(true);
    let (_, decision) = post(&base, "/v1/check", CHECK, &[]).await;
    assert_eq!(decision["decision"], "deny");
    assert_eq!(
        decision["forbids"],
        json!(["POL-002", "builtin:supply-chain"])
    );
    server.stop().await;
}

#[tokio::test]
async fn explain_batch_and_trace_ids() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let (status, decision) = post(&base, "/v1/explain", CHECK, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(decision["explanation"]["factors"]["P1"], true);
    let traced = CHECK.replace(r#""tenant""#, r#""trace_id":"abc-123","tenant""#);
    let (_, decision) = post(&base, "/v1/check", &traced, &[]).await;
    assert_eq!(decision["trace_id"], "abc-123");
    let batch = format!(
        r#"{{"requests":[{CHECK},{}]}}"#,
        CHECK.replace("alice", "bob")
    );
    let (status, answer) = post(&base, "/v1/check/batch", &batch, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(answer["decisions"][0]["decision"], "allow");
    assert_eq!(answer["decisions"][1]["decision"], "deny");
    assert_eq!(answer["decisions"][1]["cause"], "no_grant");
    server.stop().await;
}

#[tokio::test]
async fn authzen_evaluation_and_evaluations() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let tenant = [("x-tenant-id", "acme")];
    let single = r#"{"subject":{"type":"user","id":"bob"},"action":{"name":"app:logs.download"},"resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}"#;
    let (status, answer) = post(&base, "/access/v1/evaluation", single, &tenant).await;
    assert_eq!(status, 200);
    assert_eq!(answer["decision"], true);
    assert_eq!(answer["context"]["reasons"][0]["id"], "viewer");

    let many = r#"{"subject":{"type":"user","id":"bob"},"resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"},
        "evaluations":[{"action":{"name":"app:logs.download"}},{"action":{"name":"app:release"}},{"action":{"name":"app:status.check"}}]}"#;
    let (status, answer) = post(&base, "/access/v1/evaluations", many, &tenant).await;
    assert_eq!(status, 200);
    let decisions: Vec<bool> = answer["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_bool().unwrap())
        .collect();
    assert_eq!(decisions, [true, false, true]);

    let deny_first = many.replace(
        r#""evaluations""#,
        r#""options":{"evaluations_semantic":"deny_on_first_deny"},"evaluations""#,
    );
    let (_, answer) = post(&base, "/access/v1/evaluations", &deny_first, &tenant).await;
    assert_eq!(
        answer["evaluations"].as_array().unwrap().len(),
        2,
        "stops at the first deny"
    );
    let permit_first = many.replace(
        r#""evaluations""#,
        r#""options":{"evaluations_semantic":"permit_on_first_permit"},"evaluations""#,
    );
    let (_, answer) = post(&base, "/access/v1/evaluations", &permit_first, &tenant).await;
    assert_eq!(
        answer["evaluations"].as_array().unwrap().len(),
        1,
        "stops at the first permit"
    );

    let discovery: Value = client()
        .get(format!("{base}/.well-known/authzen-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        discovery["access_evaluation_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/access/v1/evaluation")
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_a_status_and_a_code() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let huge = format!(
        r#"{{"tenant":"acme","principal":{{"id":"{}"}},"action":"a:b","resource":{{"type":"t","id":"i"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let too_many = format!(r#"{{"requests":[{}]}}"#, vec![CHECK; 101].join(","));
    let tenant = ("x-tenant-id", "acme");
    // (path, body, extra headers, expected status, expected error code)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("/v1/check", "{".into(), vec![], 400, "malformed_json"),
        ("/v1/check", "[]".into(), vec![], 400, "invalid_request"),
        ("/v1/check", r#"{"tenant":"acme"}"#.into(), vec![], 400, "missing_field"),
        ("/v1/check", CHECK.replace(r#""tenant":"acme""#, r#""tenant":"ac me""#), vec![], 400, "invalid_tenant"),
        ("/v1/check", CHECK.replace(r#""tenant":"acme""#, r#""tenant":"ab""#), vec![], 400, "invalid_tenant"),
        ("/v1/check", CHECK.replace(r#""action""#, r#""extra":1,"action""#), vec![], 400, "unknown_field"),
        ("/v1/check", CHECK.replace(r#""id":"alice""#, r#""id":"alice","role":"x""#), vec![], 400, "unknown_field"),
        ("/v1/check", CHECK.replace("172.16.3.4", "999.1.1.1"), vec![], 400, "invalid_request"),
        ("/v1/check", CHECK.replace(r#""ip""#, r#""time":"yesterday","ip""#), vec![], 400, "invalid_request"),
        ("/v1/check", CHECK.into(), vec![("x-tenant-id", "globex")], 400, "tenant_mismatch"),
        ("/v1/check", CHECK.into(), vec![("x-tenant-id", "no way")], 400, "invalid_tenant"),
        ("/v1/check", huge.clone(), vec![], 413, "body_too_large"),
        ("/v1/explain", "{".into(), vec![], 400, "malformed_json"),
        ("/v1/check/batch", r#"{"requests":[]}"#.into(), vec![], 400, "empty_batch"),
        ("/v1/check/batch", too_many, vec![], 400, "batch_too_large"),
        ("/v1/check/batch", r#"{"checks":[]}"#.into(), vec![], 400, "unknown_field"),
        ("/v1/check/batch", format!(r#"{{"requests":[{CHECK},{{"tenant":"x y"}}]}}"#), vec![], 400, "invalid_tenant"),
        ("/access/v1/evaluation", r#"{"subject":{"type":"user","id":"bob"},"action":{"name":"a:b"},"resource":{"type":"t","id":"1"}}"#.into(), vec![], 400, "missing_tenant"),
        ("/access/v1/evaluation", r#"{"subject":{"type":"user"},"action":{"name":"a:b"},"resource":{"type":"t","id":"1"}}"#.into(), vec![tenant], 400, "missing_field"),
        ("/access/v1/evaluation", r#"{"subject":{"type":"user","id":"b","properties":{"roles":"admin"}},"action":{"name":"a:b"},"resource":{"type":"t","id":"1"}}"#.into(), vec![tenant], 400, "invalid_request"),
        ("/access/v1/evaluation", r#"{"subject":{"type":"user","id":"b"},"action":{"name":"a:b"},"resource":{"type":"t","id":"1"},"context":{"ip":"nope"}}"#.into(), vec![tenant], 400, "invalid_request"),
        ("/access/v1/evaluations", r#"{"subject":{"type":"user","id":"b"},"action":{"name":"a:b"},"resource":{"type":"t","id":"1"},"options":{"evaluations_semantic":"sometimes"}}"#.into(), vec![tenant], 400, "invalid_request"),
        ("/access/v1/evaluations", huge, vec![tenant], 413, "body_too_large"),
    ];
    for (path, body, headers, status, code) in cases {
        let (got, answer) = post(&base, path, &body, &headers).await;
        assert_eq!(
            got,
            status,
            "{path} {}: {answer}",
            &body[..body.len().min(120)]
        );
        assert_eq!(
            answer["error"]["code"],
            code,
            "{path} {}: {answer}",
            &body[..body.len().min(120)]
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    // Not JSON at all.
    let response = client()
        .post(format!("{base}/v1/check"))
        .body(CHECK)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "unsupported_media_type");
    // Unknown paths and methods answer JSON too.
    let response = client()
        .get(format!("{base}/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let response = client()
        .get(format!("{base}/v1/check"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
    server.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    assert_eq!(
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let ready: Value = client()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["tenants"], 2);
    post(&base, "/v1/check", CHECK, &[]).await;
    post(&base, "/v1/check", &CHECK.replace("alice", "bob"), &[]).await;
    let metrics = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"portcullis_decisions_total{tenant="acme",outcome="allow",edge="http"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"portcullis_decisions_total{tenant="acme",outcome="deny",edge="http"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_decision_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"portcullis_bundle_reloads_total{outcome="applied",trigger="start"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_tenants 2"), "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_tenants_cannot_mint_metric_series() {
    let server = demo_server().await;
    let base = format!("http://{}", server.addr);
    let (_, decision) = post(&base, "/v1/check", &CHECK.replace("acme", "nobody"), &[]).await;
    assert_eq!(decision["cause"], "tenant_unknown");
    let metrics = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("nobody"), "{metrics}");
    assert!(
        metrics.contains(
            r#"portcullis_decisions_total{tenant="unknown",outcome="deny",edge="http"} 1"#
        ),
        "{metrics}"
    );
    server.stop().await;
}
