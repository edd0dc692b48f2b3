//! Every edge asks the one decision module, so every outcome it answers — a policy deny, a
//! denial decided before any policy (no route, an unknown tenant), an answered relationship
//! query — is a decision with a trace id, an audit record and a decision metric.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use portcullis_server::RunningServer;
use reqwest::Method;
use serde_json::{Value, json};
use support::{AUDIT_TOKEN, client, demo_bundles, server_on, token, trading_day_after_close};

const OFFICE: &str = "172.16.3.4";

async fn server() -> RunningServer {
    // Every allow recorded too, so that answered queries are found whatever the sampling.
    let extra = "[audit]\nflush_interval_ms = 2\n[audit.tenants.acme]\nsample_allows = 1.0\n";
    server_on(&demo_bundles(), extra, trading_day_after_close()).await
}

/// The records of `tenant`'s audit trail with `trace_id`, read over the admin API once
/// everything queued is written.
async fn recorded(server: &RunningServer, tenant: &str, trace_id: &str) -> Vec<Value> {
    server.state.audit.as_ref().unwrap().flush().await.unwrap();
    let response = client()
        .get(format!(
            "http://{}/admin/v1/tenants/{tenant}/audit?trace_id={trace_id}",
            server.admin_addr
        ))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    page["records"].as_array().unwrap().clone()
}

/// The decision counter for (tenant, outcome, edge).
async fn counted(server: &RunningServer, tenant: &str, outcome: &str, edge: &str) -> u64 {
    let text = client()
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with("portcullis_decisions_total{"))
        .filter(|line| {
            line.contains(&format!("tenant=\"{tenant}\""))
                && line.contains(&format!("outcome=\"{outcome}\""))
                && line.contains(&format!("edge=\"{edge}\""))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Asserts the trail holds exactly one record of `trace_id`, a decision with `outcome`, and
/// returns it.
async fn one_record(server: &RunningServer, tenant: &str, trace_id: &str, outcome: &str) -> Value {
    let records = recorded(server, tenant, trace_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = records[0].clone();
    assert_eq!(record["kind"], "decision", "{record}");
    assert_eq!(record["outcome"], outcome, "{record}");
    record
}

fn nginx_headers(method: &str, uri: &str, tenant: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-original-method", method.to_owned()),
        ("x-original-uri", uri.to_owned()),
        ("x-forwarded-for", OFFICE.to_owned()),
        ("x-forwarded-host", "ops.acme.example".to_owned()),
        ("x-tenant-id", tenant.to_owned()),
        (
            "authorization",
            format!(
                "Bearer {}",
                token(json!({ "sub": "alice", "tenant": tenant }))
            ),
        ),
    ]
}

async fn send(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut request = client().request(method, format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_forward_auth_request_without_a_route_is_an_audited_and_counted_decision() {
    let server = server().await;
    let base = format!("http://{}", server.addr);
    let before = counted(&server, "acme", "deny", "nginx").await;
    let response = send(
        &base,
        Method::GET,
        "/v1/authz/nginx",
        &nginx_headers("DELETE", "/nowhere/at/all", "acme"),
    )
    .await;
    assert_eq!(response.status(), 403);
    let trace = response.headers()["x-portcullis-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["cause"], "no_route");
    assert_eq!(body["trace_id"], trace.as_str());
    let record = one_record(&server, "acme", &trace, "deny").await;
    assert_eq!(record["details"]["cause"], "no_route", "{record}");
    assert_eq!(record["actor"], "alice");
    assert_eq!(record["action"], "DELETE");
    assert_eq!(record["resource"], "path:/nowhere/at/all");
    assert_eq!(record["edge"], "forward-auth");
    assert_eq!(counted(&server, "acme", "deny", "nginx").await, before + 1);
    server.stop().await;
}

#[tokio::test]
async fn a_forward_auth_request_for_an_unknown_tenant_is_recorded_under_system() {
    let server = server().await;
    let base = format!("http://{}", server.addr);
    let before = counted(&server, "unknown", "deny", "traefik").await;
    let headers = vec![
        ("x-forwarded-method", "GET".to_owned()),
        ("x-forwarded-uri", "/ops/apps/payments/status".to_owned()),
        ("x-tenant-id", "ghost".to_owned()),
        (
            "authorization",
            format!(
                "Bearer {}",
                token(json!({ "sub": "alice", "tenant": "ghost" }))
            ),
        ),
    ];
    let response = send(&base, Method::GET, "/v1/authz/traefik", &headers).await;
    assert_eq!(response.status(), 403);
    let trace = response.headers()["x-portcullis-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["cause"], "tenant_unknown");
    // No log is created for a tenant id a caller invents: the record is in `system`'s.
    let record = one_record(&server, "system", &trace, "deny").await;
    assert_eq!(record["details"]["tenant"], "ghost", "{record}");
    assert_eq!(record["details"]["cause"], "tenant_unknown", "{record}");
    assert_eq!(
        counted(&server, "unknown", "deny", "traefik").await,
        before + 1
    );
    server.stop().await;
}

#[tokio::test]
async fn a_policy_deny_on_each_http_decision_edge_is_recorded_and_counted() {
    let server = server().await;
    let base = format!("http://{}", server.addr);

    // The JSON API.
    let before = counted(&server, "acme", "deny", "http").await;
    let decision: Value = client()
        .post(format!("{base}/v1/check"))
        .json(&json!({
            "tenant": "acme", "principal": { "id": "bob" }, "action": "app:release",
            "resource": { "type": "app", "id": "payments" }, "context": { "ip": OFFICE },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(decision["decision"], "deny");
    let trace = decision["trace_id"].as_str().unwrap();
    let record = one_record(&server, "acme", trace, "deny").await;
    assert_eq!(record["edge"], "http");
    assert_eq!(record["action"], "app:release");
    assert_eq!(counted(&server, "acme", "deny", "http").await, before + 1);

    // AuthZEN.
    let before = counted(&server, "acme", "deny", "authzen").await;
    let answer: Value = client()
        .post(format!("{base}/access/v1/evaluation"))
        .header("x-tenant-id", "acme")
        .json(&json!({
            "subject": { "type": "user", "id": "bob" },
            "action": { "name": "app:release" },
            "resource": { "type": "app", "id": "payments" },
            "context": { "ip": OFFICE },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["decision"], false);
    let trace = answer["context"]["id"].as_str().unwrap();
    one_record(&server, "acme", trace, "deny").await;
    assert_eq!(
        counted(&server, "acme", "deny", "authzen").await,
        before + 1
    );

    // Envoy's HTTP ext_authz.
    let before = counted(&server, "acme", "deny", "envoy-http").await;
    let response = send(
        &base,
        Method::POST,
        "/v1/authz/envoy/ops/apps/payments/release",
        &[
            ("x-forwarded-for", OFFICE.to_owned()),
            ("x-forwarded-host", "ops.acme.example".to_owned()),
            ("x-tenant-id", "acme".to_owned()),
            (
                "authorization",
                format!("Bearer {}", token(json!({ "sub": "bob" }))),
            ),
        ],
    )
    .await;
    assert_eq!(response.status(), 403);
    let trace = response.headers()["x-portcullis-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    one_record(&server, "acme", &trace, "deny").await;
    assert_eq!(
        counted(&server, "acme", "deny", "envoy-http").await,
        before + 1
    );
    server.stop().await;
}

#[tokio::test]
async fn relationship_queries_are_recorded_and_counted_as_decisions() {
    let server = server().await;
    let base = format!("http://{}", server.addr);
    let allows = counted(&server, "acme", "allow", "relations").await;
    let denies = counted(&server, "acme", "deny", "relations").await;

    let held: Value = client()
        .post(format!("{base}/v1/relations/check"))
        .json(&json!({
            "tenant": "acme", "user": "user:alice", "relation": "viewer",
            "object": "doc:release-checklist",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(held["allowed"], true, "{held}");
    let record = one_record(&server, "acme", held["trace_id"].as_str().unwrap(), "allow").await;
    assert_eq!(record["actor"], "user:alice");
    assert_eq!(record["action"], "viewer");
    assert_eq!(record["resource"], "doc:release-checklist");
    assert_eq!(record["statements"], json!(["viewer"]), "{record}");

    let refused: Value = client()
        .post(format!("{base}/v1/relations/check"))
        .json(&json!({
            "tenant": "acme", "user": "user:bob", "relation": "editor",
            "object": "doc:release-checklist",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refused["allowed"], false, "{refused}");
    one_record(
        &server,
        "acme",
        refused["trace_id"].as_str().unwrap(),
        "deny",
    )
    .await;

    let listed: Value = client()
        .post(format!("{base}/v1/relations/list-objects"))
        .json(&json!({
            "tenant": "acme", "user": "user:alice", "relation": "viewer", "type": "doc",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record = one_record(
        &server,
        "acme",
        listed["trace_id"].as_str().unwrap(),
        "allow",
    )
    .await;
    assert_eq!(record["action"], "list-objects:viewer");
    assert_eq!(record["resource"], "doc:*");

    assert_eq!(
        counted(&server, "acme", "allow", "relations").await,
        allows + 2
    );
    assert_eq!(
        counted(&server, "acme", "deny", "relations").await,
        denies + 1
    );
    server.stop().await;
}

#[tokio::test]
async fn a_refused_admin_call_is_a_recorded_decision_of_the_system_tenant() {
    let server = server().await;
    let before = counted(&server, "system", "deny", "admin").await;
    // The auditor token may read the trail, not change tenants.
    let response = client()
        .post(format!("http://{}/admin/v1/tenants", server.admin_addr))
        .bearer_auth(AUDIT_TOKEN)
        .json(&json!({ "tenant": "newco" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        counted(&server, "system", "deny", "admin").await,
        before + 1
    );
    server.state.audit.as_ref().unwrap().flush().await.unwrap();
    let page: Value = client()
        .get(format!(
            "http://{}/admin/v1/tenants/system/audit?outcome=deny&action=admin:tenants.create",
            server.admin_addr
        ))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["records"].as_array().unwrap().len(), 1, "{page}");
    server.stop().await;
}
