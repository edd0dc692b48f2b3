//! Temporary access end to end over HTTP: a request by one person, approval by another, the
//! grant in decisions (named with its approvers and expiry), its binding to a certificate and
//! a network, revocation, the rules no policy lifts, bad input, and the audit trail of every
//! step.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::{AUDIT_TOKEN, admin_call, client, copy_demo, token};

const POLICY: &str = r#"
roles:
  engineer: { permissions: ["app:status"] }
  security-officer: {}
principals:
  olga: { roles: [engineer] }
  eddie: { roles: [engineer] }
  sofia: { roles: [security-officer] }
  leo: { roles: [security-officer] }
actions:
  "app:release": { write: true }
temporary_access:
  approvers: [security-officer]
  approvals_required: 1
  max_window: 2h
"#;

async fn call(
    base: &str,
    who: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client().request(method, format!("{base}{path}"));
    if !who.is_empty() {
        request = request.bearer_auth(token(json!({ "sub": who })));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The demo's bundles (for the `system` tenant's admin authorization) with tenant `acme`
/// replaced by [`POLICY`].
fn bundles_with_policy(dir: &std::path::Path) -> std::path::PathBuf {
    let bundles = copy_demo(dir);
    let acme = bundles.join("acme");
    std::fs::remove_dir_all(&acme).unwrap();
    std::fs::create_dir_all(&acme).unwrap();
    std::fs::write(acme.join("tenant.yaml"), "tenant: acme\ntimezone: UTC\n").unwrap();
    std::fs::write(acme.join("policy.yaml"), POLICY).unwrap();
    bundles
}

/// The decision on olga's release of payments from `ip` with certificate `cert`.
async fn release_decision(base: &str, ip: &str, cert: &str) -> Value {
    call(
        base,
        "olga",
        reqwest::Method::POST,
        "/v1/check",
        Some(release(ip, cert)),
    )
    .await
    .1
}

fn release(ip: &str, cert: &str) -> Value {
    json!({
        "tenant": "acme",
        "principal": { "id": "olga" },
        "action": "app:release",
        "resource": { "type": "app", "id": "payments" },
        "context": { "ip": ip, "cert": { "id": cert } },
    })
}

#[tokio::test]
async fn a_request_approved_by_another_person_grants_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = bundles_with_policy(dir.path());
    let now: jiff::Timestamp = "2026-12-08T10:00:00Z".parse().unwrap();
    let extra = "[audit]\nbackend = \"store\"\nflush_interval_ms = 2\n[audit.tenants.acme]\nsample_allows = 1.0\n";
    // One configuration (and so one data folder and store) for both lives of the server.
    let text = support::config_text(&bundles, extra);
    let server = portcullis_server::start(support::config(&text), Some(Arc::new(move || now)))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let access = base.clone();
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    // Denied by the policy.
    let decision = release_decision(&base, "192.0.2.10", "laptop-7").await;
    assert_eq!(decision["decision"], "deny", "{decision}");

    // Bad requests first: no token, a window over the tenant's maximum, nothing bound.
    let ask = json!({
        "action": "app:release", "resource": "app:payments",
        "reason": "incident 42: payments are down", "duration": "1h",
        "cert": "laptop-7", "networks": ["192.0.2.0/24"],
    });
    let (status, _) = call(
        &base,
        "",
        post.clone(),
        "/v1/access/requests",
        Some(ask.clone()),
    )
    .await;
    assert_eq!(status, 401);
    let mut long = ask.clone();
    long["duration"] = json!("3h");
    let (status, body) = call(
        &base,
        "olga",
        post.clone(),
        "/v1/access/requests",
        Some(long),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("window_too_long")),
        "{body}"
    );
    let mut unbound = ask.clone();
    unbound.as_object_mut().unwrap().remove("cert");
    unbound.as_object_mut().unwrap().remove("networks");
    let (status, body) = call(
        &base,
        "olga",
        post.clone(),
        "/v1/access/requests",
        Some(unbound),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unbound")),
        "{body}"
    );
    let mut bad_network = ask.clone();
    bad_network["networks"] = json!(["300.1.1.0/24"]);
    let (status, body) = call(
        &base,
        "olga",
        post.clone(),
        "/v1/access/requests",
        Some(bad_network),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_network")),
        "{body}"
    );

    // Olga asks.
    let (status, created) = call(
        &base,
        "olga",
        post.clone(),
        "/v1/access/requests",
        Some(ask),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["requester"], "olga");
    assert_eq!(created["window"]["start"], "2026-12-08T10:00:00Z");
    assert_eq!(created["window"]["end"], "2026-12-08T11:00:00Z");
    let id = created["id"].as_str().unwrap().to_owned();
    let approve = format!("/v1/access/requests/{id}/approve");

    // Nobody approves their own request; a non-approver does not even see it.
    let (status, body) = call(&access, "olga", post.clone(), &approve, Some(json!({}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("denied")),
        "{body}"
    );
    let (status, _) = call(&access, "eddie", post.clone(), &approve, Some(json!({}))).await;
    assert_eq!(status, 404);
    let (_, mine) = call(&access, "eddie", get.clone(), "/v1/access/requests", None).await;
    assert!(mine["requests"].as_array().unwrap().is_empty(), "{mine}");
    let (_, inbox) = call(
        &base,
        "sofia",
        get.clone(),
        "/v1/access/requests?status=pending",
        None,
    )
    .await;
    assert_eq!(inbox["requests"][0]["id"], id.as_str(), "{inbox}");

    // Still denied while pending.
    let decision = release_decision(&base, "192.0.2.10", "laptop-7").await;
    assert_eq!(decision["decision"], "deny");

    // Sofia approves: the grant holds, named with its approver and expiry.
    let (status, approved) = call(
        &base,
        "sofia",
        post.clone(),
        &approve,
        Some(json!({"comment": "go"})),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    let decision = release_decision(&base, "192.0.2.10", "laptop-7").await;
    assert_eq!(decision["decision"], "allow", "{decision}");
    let reason = &decision["reasons"][0];
    assert_eq!(reason["kind"], "grant");
    assert_eq!(reason["id"], id.as_str());
    assert_eq!(reason["approvers"], json!(["sofia"]));
    assert_eq!(reason["expires"], "2026-12-08T11:00:00Z");
    // Only from the bound certificate and network.
    for (ip, cert) in [("198.51.100.7", "laptop-7"), ("192.0.2.10", "laptop-8")] {
        let decision = release_decision(&base, ip, cert).await;
        assert_eq!(decision["decision"], "deny", "{ip} {cert}");
    }
    // A second approval of a closed request is refused.
    let (status, body) = call(&access, "leo", post.clone(), &approve, Some(json!({}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_pending")),
        "{body}"
    );

    // The grant survives a restart: it lives in the store.
    server.stop().await;
    let server = portcullis_server::start(support::config(&text), Some(Arc::new(move || now)))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let access = base.clone();
    let admin = format!("http://{}", server.admin_addr);
    let decision = release_decision(&base, "192.0.2.10", "laptop-7").await;
    assert_eq!(decision["decision"], "allow", "after a restart: {decision}");

    // An approver's own request: the policy lets leo approve, the store's rule does not.
    let mut own = json!({
        "action": "app:release", "resource": "app:billing", "reason": "rotate keys",
        "duration": "30m", "networks": ["192.0.2.0/24"],
    });
    let (status, created) = call(
        &access,
        "leo",
        post.clone(),
        "/v1/access/requests",
        Some(own.take()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let own_id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &access,
        "leo",
        post.clone(),
        &format!("/v1/access/requests/{own_id}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("self_approval")),
        "{body}"
    );

    // Leo revokes it: denied again at once.
    let (status, revoked) = call(
        &base,
        "leo",
        post.clone(),
        &format!("/v1/access/requests/{id}/revoke"),
        Some(json!({"comment": "done"})),
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    let decision = release_decision(&base, "192.0.2.10", "laptop-7").await;
    assert_eq!(decision["decision"], "deny");

    // Every step is in the audit trail: request, the refused self-approval, approval,
    // the refused second approval, revocation; and the allowed decision names the grant.
    let (status, trail) = admin_call(
        &admin,
        AUDIT_TOKEN,
        get.clone(),
        "/admin/v1/tenants/acme/audit?kind=change&limit=100",
    )
    .await;
    assert_eq!(status, 200, "{trail}");
    let steps: Vec<(String, String)> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"].as_str().unwrap_or("").starts_with("access."))
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("access.request", "ok"),
        ("access.approve", "failed"),
        ("access.approve", "ok"),
        ("access.approve", "failed"),
        ("access.request", "ok"),
        ("access.approve", "failed"),
        ("access.revoke", "ok"),
    ]
    .iter()
    .map(|(a, o)| ((*a).to_owned(), (*o).to_owned()))
    .collect();
    let mut sorted = steps.clone();
    sorted.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(sorted, wanted, "{trail}");
    let (_, decisions) = admin_call(
        &admin,
        AUDIT_TOKEN,
        get,
        "/admin/v1/tenants/acme/audit?kind=decision&limit=100",
    )
    .await;
    assert!(
        decisions["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.to_string().contains(&id)),
        "the allowed decision's record names the grant: {decisions}"
    );
    server.stop().await;
}

/// A gRPC call's message with `subject`'s identity token.
fn as_subject<T>(subject: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token(json!({ "sub": subject })))
            .parse()
            .unwrap(),
    );
    request
}

#[tokio::test]
async fn the_same_flow_over_grpc() {
    use pb::temporary_access_client::TemporaryAccessClient;
    use portcullis_server::edges::grpc::pb;

    let dir = tempfile::tempdir().unwrap();
    let bundles = bundles_with_policy(dir.path());
    let now: jiff::Timestamp = "2026-12-08T10:00:00Z".parse().unwrap();
    let server = support::server_on(&bundles, "", now).await;
    let base = format!("http://{}", server.addr);
    let channel = tonic::transport::Endpoint::from_shared(base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = TemporaryAccessClient::new(channel);

    // No token: UNAUTHENTICATED.
    let error = client
        .list(pb::ListAccessRequests::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unauthenticated);
    // Nothing bound: INVALID_ARGUMENT naming the code.
    let error = client
        .request(as_subject(
            "olga",
            pb::NewAccessRequest {
                action: "app:release".into(),
                resource: "app:payments".into(),
                reason: "incident 42".into(),
                duration: "1h".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(error.message().starts_with("unbound:"), "{error}");

    let created = client
        .request(as_subject(
            "olga",
            pb::NewAccessRequest {
                action: "app:release".into(),
                resource: "app:payments".into(),
                reason: "incident 42".into(),
                duration: "1h".into(),
                cert: "laptop-7".into(),
                networks: vec!["192.0.2.0/24".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.status, "pending");
    assert_eq!(created.window_end, "2026-12-08T11:00:00Z");
    let step = |id: &str| pb::AccessStep {
        id: id.to_owned(),
        comment: String::new(),
    };
    // An approver's own rule: FAILED_PRECONDITION; olga is no approver: PERMISSION_DENIED.
    let error = client
        .approve(as_subject("olga", step(&created.id)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::PermissionDenied, "{error}");
    let approved = client
        .approve(as_subject("sofia", step(&created.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.status, "approved");
    assert_eq!(approved.approvals[0].approver, "sofia");
    let error = client
        .approve(as_subject("leo", step(&created.id)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error}");
    assert!(error.message().starts_with("not_pending:"), "{error}");

    let (_, decision) = call(
        &base,
        "olga",
        reqwest::Method::POST,
        "/v1/check",
        Some(release("192.0.2.10", "laptop-7")),
    )
    .await;
    assert_eq!(
        decision["reasons"][0]["id"],
        created.id.as_str(),
        "{decision}"
    );

    let listed = client
        .list(as_subject(
            "leo",
            pb::ListAccessRequests {
                status: "approved".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.requests.len(), 1);
    let fetched = client
        .get(as_subject(
            "olga",
            pb::AccessRequestId {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.status, "approved");
    let error = client
        .get(as_subject(
            "eddie",
            pb::AccessRequestId {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);

    let revoked = client
        .revoke(as_subject("leo", step(&created.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.status, "revoked");
    assert_eq!(revoked.closed_by, "leo");
    let (_, decision) = call(
        &base,
        "olga",
        reqwest::Method::POST,
        "/v1/check",
        Some(release("192.0.2.10", "laptop-7")),
    )
    .await;
    assert_eq!(decision["decision"], "deny");
    server.stop().await;
}

/// What the test's webhook receiver got: event, delivery id, signature, body.
type Received = Arc<std::sync::Mutex<Vec<(String, String, String, Vec<u8>)>>>;

#[tokio::test]
async fn approvers_hear_of_each_step_by_a_signed_webhook_that_retries() {
    use axum::http::StatusCode;

    // A receiver that refuses its first delivery.
    let received: Received = Arc::default();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = {
        let received = Arc::clone(&received);
        let answered = Arc::clone(&answered);
        axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let received = Arc::clone(&received);
                    let answered = Arc::clone(&answered);
                    async move {
                        let header = |name: &str| {
                            headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        received.lock().unwrap().push((
                            header("x-portcullis-event"),
                            header("x-portcullis-delivery"),
                            header("x-portcullis-signature"),
                            body.to_vec(),
                        ));
                        if answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                            StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            StatusCode::OK
                        }
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let bundles = bundles_with_policy(dir.path());
    let extra = format!(
        "[temporary_access.webhook]\nurl = \"{hook}\"\nsecret_env = \"TEST_SECRET\"\nattempts = 3\n"
    );
    let now: jiff::Timestamp = "2026-12-08T10:00:00Z".parse().unwrap();
    let server = support::server_on(&bundles, &extra, now).await;
    let base = format!("http://{}", server.addr);
    let (status, created) = call(
        &base,
        "olga",
        reqwest::Method::POST,
        "/v1/access/requests",
        Some(json!({
            "action": "app:release", "resource": "app:payments", "reason": "incident 42",
            "duration": "1h", "networks": ["192.0.2.0/24"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, _) = call(
        &base,
        "sofia",
        reqwest::Method::POST,
        &format!("/v1/access/requests/{id}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);

    // Two events, the first delivered twice (refused once, then taken).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while received.lock().unwrap().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    let events: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    let mut sorted = events.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["access.approve", "access.request", "access.request"]
    );
    let requests: Vec<_> = got.iter().filter(|g| g.0 == "access.request").collect();
    assert_eq!(
        requests[0].1, requests[1].1,
        "a retry keeps its delivery id"
    );
    for (event, _, signature, body) in &got {
        // t=<seconds>,v1=<hex of HMAC-SHA256(secret, "<t>.<body>")>
        let (t, v1) = signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
            .unwrap();
        let expected = portcullis_server::webhook::signature(
            support::SECRET.as_bytes(),
            t.parse().unwrap(),
            body,
        );
        assert_eq!(expected, format!("t={t},v1={v1}"), "{event}");
        let parsed: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(parsed["event"], event.as_str());
        assert_eq!(parsed["tenant"], "acme");
        assert_eq!(parsed["request"]["id"], id);
    }
    let approval: Value =
        serde_json::from_slice(&got.iter().find(|g| g.0 == "access.approve").unwrap().3).unwrap();
    assert_eq!(approval["actor"], "sofia");
    assert_eq!(approval["request"]["status"], "approved");
    server.stop().await;
}

#[tokio::test]
async fn an_ended_window_is_recorded_as_expired_once() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = bundles_with_policy(dir.path());
    // A clock the test moves.
    let start: jiff::Timestamp = "2026-12-08T10:00:00Z".parse().unwrap();
    let offset = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let clock = {
        let offset = Arc::clone(&offset);
        move || {
            start
                .checked_add(jiff::SignedDuration::from_secs(
                    offset.load(std::sync::atomic::Ordering::SeqCst),
                ))
                .unwrap()
        }
    };
    // Allows sampled out entirely: the use of a grant is recorded all the same.
    let extra = "[audit]\nbackend = \"store\"\nflush_interval_ms = 2\n[audit.tenants.acme]\nsample_allows = 0.0\n";
    let server = portcullis_server::start(
        support::config(&support::config_text(&bundles, extra)),
        Some(Arc::new(clock)),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let post = reqwest::Method::POST;
    let (_, created) = call(
        &base,
        "olga",
        post.clone(),
        "/v1/access/requests",
        Some(json!({
            "action": "app:release", "resource": "app:payments", "reason": "incident 42",
            "duration": "1h", "cert": "laptop-7",
        })),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &base,
        "sofia",
        post.clone(),
        &format!("/v1/access/requests/{id}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    // A role's allow, sampled out.
    let mut status_check = release("192.0.2.10", "laptop-7");
    status_check["action"] = json!("app:status");
    assert_eq!(
        call(&base, "olga", post.clone(), "/v1/check", Some(status_check))
            .await
            .1["decision"],
        "allow"
    );
    let mut asked = release("192.0.2.10", "laptop-7");
    assert_eq!(
        call(
            &base,
            "olga",
            post.clone(),
            "/v1/check",
            Some(asked.clone())
        )
        .await
        .1["decision"],
        "allow"
    );

    // One second before the end nothing is recorded; at the end the grant is gone by itself,
    // and the sweep records it once.
    offset.store(3599, std::sync::atomic::Ordering::SeqCst);
    portcullis_server::edges::access::sweep_expired(&server.state).await;
    assert_eq!(
        call(
            &base,
            "olga",
            reqwest::Method::GET,
            &format!("/v1/access/requests/{id}"),
            None
        )
        .await
        .1["status"],
        "approved"
    );
    offset.store(3600, std::sync::atomic::Ordering::SeqCst);
    asked["context"]["cert"] = json!({ "id": "laptop-7" });
    let (_, decision) = call(&base, "olga", post.clone(), "/v1/check", Some(asked)).await;
    assert_eq!(
        decision["decision"], "deny",
        "expired at the exact second: {decision}"
    );
    portcullis_server::edges::access::sweep_expired(&server.state).await;
    portcullis_server::edges::access::sweep_expired(&server.state).await;
    let (_, shown) = call(
        &base,
        "olga",
        reqwest::Method::GET,
        &format!("/v1/access/requests/{id}"),
        None,
    )
    .await;
    assert_eq!(shown["status"], "expired");
    assert!(shown["closed_at"].is_string(), "{shown}");
    let (status, trail) = support::admin_call(
        &format!("http://{}", server.admin_addr),
        support::AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit?kind=change&limit=100",
    )
    .await;
    assert_eq!(status, 200, "{trail}");
    let expiries: Vec<&Value> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "access.expire")
        .collect();
    assert_eq!(expiries.len(), 1, "{trail}");
    assert_eq!(expiries[0]["actor"], "system");
    let (_, decisions) = support::admin_call(
        &format!("http://{}", server.admin_addr),
        support::AUDIT_TOKEN,
        reqwest::Method::GET,
        "/admin/v1/tenants/acme/audit?kind=decision&limit=100",
    )
    .await;
    let allowed: Vec<&Value> = decisions["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "allow")
        .collect();
    assert_eq!(
        allowed.len(),
        1,
        "only the grant's use among the allows: {decisions}"
    );
    assert!(
        allowed[0].to_string().contains(&format!("grant:{id}")),
        "{decisions}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_policy_can_say_where_approvals_come_from() {
    // Approvals only from 10.0.0.0/8, or only from loopback (where this test connects from).
    for (network, allowed) in [("10.0.0.0/8", false), ("127.0.0.0/8", true)] {
        let dir = tempfile::tempdir().unwrap();
        let bundles = bundles_with_policy(dir.path());
        let policy = format!(
            "{POLICY}factors:\n  approver-network: {{ ip: [\"{network}\"] }}\nstrategies:\n  approve-here: [[approver-network]]\n"
        )
        .replace(
            "actions:\n",
            "actions:\n  \"access_request:approve\": { strategy: approve-here }\n",
        );
        std::fs::write(bundles.join("acme/policy.yaml"), policy).unwrap();
        let now: jiff::Timestamp = "2026-12-08T10:00:00Z".parse().unwrap();
        let server = support::server_on(&bundles, "", now).await;
        let base = format!("http://{}", server.addr);
        let (status, created) = call(
            &base,
            "olga",
            reqwest::Method::POST,
            "/v1/access/requests",
            Some(json!({
                "action": "app:release", "resource": "app:payments", "reason": "incident 42",
                "duration": "1h", "networks": ["192.0.2.0/24"],
            })),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap();
        let (status, body) = call(
            &base,
            "sofia",
            reqwest::Method::POST,
            &format!("/v1/access/requests/{id}/approve"),
            Some(json!({})),
        )
        .await;
        if allowed {
            assert_eq!(status, 200, "{network}: {body}");
        } else {
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (403, Some("denied")),
                "{network}: {body}"
            );
        }
        server.stop().await;
    }
}
