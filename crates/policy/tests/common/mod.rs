//! Helpers shared by the integration tests: bundles from strings and requests from JSON.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]
#![allow(dead_code, reason = "each test file uses a different subset")]

use portcullis_core::Request;
use portcullis_policy::{LoadOptions, Snapshot, SourceFile, compile_files};

/// Compiles a bundle whose tenant is `acme` (zone Asia/Shanghai) from `policy`, panicking with
/// every diagnostic if it does not load.
pub fn bundle(policy: &str) -> Snapshot {
    bundle_with_tenant("tenant: acme\ntimezone: Asia/Shanghai\n", policy)
}

pub fn bundle_with_tenant(tenant: &str, policy: &str) -> Snapshot {
    let files = vec![
        SourceFile {
            path: "acme/tenant.yaml".into(),
            text: tenant.to_owned(),
        },
        SourceFile {
            path: "acme/policy.yaml".into(),
            text: policy.to_owned(),
        },
    ];
    match compile_files("acme".as_ref(), &files, &LoadOptions::default()) {
        Ok(snapshot) => snapshot,
        Err(error) => panic!("{error}"),
    }
}

/// A request for tenant `acme` from a JSON fragment (tenant added when absent).
pub fn request(json: serde_json::Value) -> Request {
    let mut json = json;
    if json.get("tenant").is_none() {
        json["tenant"] = "acme".into();
    }
    serde_json::from_value(json).expect("test request")
}
