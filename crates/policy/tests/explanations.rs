//! Snapshot tests of full decisions with explanations, on the demo bundle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::path::PathBuf;

use portcullis_core::Request;
use portcullis_policy::{LoadOptions, Snapshot, decide, load_bundle};
use serde_json::json;

/// Snapshots with sorted map keys, whatever order `serde_json` keeps objects in.
macro_rules! snapshot {
    ($value:expr) => {
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!($value);
        })
    };
}

fn demo() -> Snapshot {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles/acme");
    load_bundle(&dir, &LoadOptions::default()).unwrap_or_else(|error| panic!("{error}"))
}

fn explain(request: serde_json::Value) -> serde_json::Value {
    let mut request = request;
    request["tenant"] = "acme".into();
    request["explain"] = true.into();
    request["trace_id"] = "trace-1".into();
    let request: Request = serde_json::from_value(request).unwrap();
    let mut decision = serde_json::to_value(decide(&demo(), &request)).unwrap();
    // The revision changes with every edit of the demo bundle; its format is tested elsewhere.
    decision["revision"]["bundle"] = "sha256:<demo>".into();
    decision
}

#[test]
fn release_allowed_after_the_close() {
    snapshot!(explain(json!({
        "principal": { "id": "alice" },
        "action": "app:release",
        "resource": { "type": "app", "id": "payments" },
        "context": { "ip": "172.16.3.4", "time": "2026-03-02T16:00:00+08:00" },
    })));
}

#[test]
fn release_denied_during_trading_hours() {
    snapshot!(explain(json!({
        "principal": { "id": "alice" },
        "action": "app:release",
        "resource": { "type": "app", "id": "payments" },
        "context": { "ip": "172.16.3.4", "time": "2026-03-02T10:00:00+08:00" },
    })));
}

#[test]
fn logs_from_outside_with_a_certificate_on_a_holiday() {
    snapshot!(explain(json!({
        "principal": { "id": "bob" },
        "action": "app:logs.download",
        "resource": { "type": "app", "id": "payments" },
        "context": { "ip": "203.0.113.9", "time": "2026-02-17T10:00:00+08:00", "cert": { "id": "cert2" } },
    })));
}

#[test]
fn inventory_write_forbidden_by_the_supply_chain_signal() {
    snapshot!(explain(json!({
        "principal": { "id": "inventory-service", "type": "service" },
        "action": "inventory:increase",
        "resource": { "type": "inventory", "id": "sku-1" },
        "context": { "source": "internal-service" },
        "env": { "supply_chain": { "high_risk": true } },
    })));
}

#[test]
fn a_calendar_outside_its_year_is_an_error() {
    snapshot!(explain(json!({
        "principal": { "id": "alice" },
        "action": "app:release",
        "resource": { "type": "app", "id": "payments" },
        "context": { "ip": "172.16.3.4", "time": "2027-03-01T16:00:00+08:00" },
    })));
}
