//! A full audit buffer under the `block` policy waits without holding the runtime: while a
//! decision waits for room, the same single-threaded runtime keeps answering other
//! connections; once the wait passes `max_wait_ms` the decision fails closed (a deny naming the
//! audit trail), and decisions are allowed again when the writer catches up.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use support::{client, copy_demo, server_on, token, trading_day_after_close};

async fn check(base: &str) -> Value {
    client()
        .post(format!("{base}/v1/check"))
        .json(&json!({
            "tenant": "acme", "principal": { "id": "bob" }, "action": "app:logs.download",
            "resource": { "type": "app", "id": "payments" }, "context": { "ip": "172.16.3.4" },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Forward-auth's question (nginx): bob downloads the logs of app payments from the office.
/// The status and the decision id.
async fn forward(base: &str) -> (u16, String) {
    let response = client()
        .get(format!("{base}/v1/authz/nginx"))
        .header("x-original-method", "GET")
        .header("x-original-uri", "/ops/apps/payments/logs/x")
        .header("x-forwarded-for", "172.16.3.4")
        .header("x-forwarded-host", "ops.acme.example")
        .header("x-tenant-id", "acme")
        .bearer_auth(token(json!({ "sub": "bob" })))
        .send()
        .await
        .unwrap();
    let id = response
        .headers()
        .get("x-portcullis-decision-id")
        .map(|id| id.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), id)
}

// `#[tokio::test]` runs the server and the test on one thread: exactly the runtime a server
// confined to one CPU uses.
#[tokio::test(flavor = "current_thread")]
async fn a_full_buffer_waits_without_stalling_other_connections_then_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let extra = "[audit]\nbackend = \"store\"\ncapacity = 2\nflush_interval_ms = 2\n\
                 [audit.tenants.acme]\nsample_allows = 1.0\non_full = { block = { max_wait_ms = 800 } }\n";
    let server = server_on(&bundles, extra, trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    assert_eq!(check(&base).await["decision"], "allow");
    assert_eq!(forward(&base).await.0, 200);

    // Another process holds the store's database: the audit writer cannot commit, so the
    // buffer fills.
    let database = server.state.config.data_dir.join("portcullis.db");
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .unwrap();

    let waiting: Vec<_> = (0..6)
        .map(|_| {
            let base = base.clone();
            tokio::spawn(async move { check(&base).await })
        })
        .collect();
    // Forward-auth decisions, answered at once while there is room, wait like the others.
    let forwarded: Vec<_> = (0..4)
        .map(|_| {
            let base = base.clone();
            tokio::spawn(async move { forward(&base).await })
        })
        .collect();
    // While decisions wait for room in the full buffer, the runtime answers other
    // connections at once.
    let mut saw_full = false;
    let mut slowest = Duration::ZERO;
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_millis(700) {
        let (buffered, capacity) = server.state.audit.as_ref().unwrap().buffer();
        saw_full |= buffered >= capacity;
        let started = Instant::now();
        let health = client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_full, "the buffer never filled");
    assert!(
        slowest < Duration::from_millis(200),
        "a health check waited {slowest:?} behind a full audit buffer"
    );

    // The lock outlasts the wait: the decisions that found no room are denied, naming the
    // audit trail; none is answered without its record.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    let mut refused = 0;
    for handle in waiting {
        let decision = handle.await.unwrap();
        if decision["decision"] == "deny" {
            assert_eq!(decision["cause"], "error", "{decision}");
            assert_eq!(decision["errors"][0]["kind"], "audit", "{decision}");
            refused += 1;
        }
    }
    assert!(refused > 0, "some decisions waited past max_wait_ms");
    // Forward-auth answers 403 for a decision that found no room, never 200 without its
    // record; every answer carries its decision id.
    let mut forward_refused = 0;
    for handle in forwarded {
        let (status, id) = handle.await.unwrap();
        assert!(
            status == 200 || status == 403,
            "forward-auth answered {status}"
        );
        assert_eq!(id.len(), 32, "decision id {id:?}");
        if status == 403 {
            forward_refused += 1;
        }
    }
    assert!(
        forward_refused > 0,
        "some forward-auth decisions waited past max_wait_ms"
    );

    // The writer catches up and decisions are recorded again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while check(&base).await["decision"] != "allow" || forward(&base).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "decisions stayed refused after the lock was released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}
