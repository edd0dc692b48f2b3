//! Request bodies are read as the OpenAPI document describes them, on every JSON endpoint of
//! both listeners: an object is never read from an array (serde would take one field by field),
//! and `null` is refused except for the fields the document declares nullable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, client, demo_server};

/// One JSON endpoint, a body it accepts, and the parts of that body to break.
struct Endpoint {
    admin: bool,
    method: Method,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    valid: Value,
    success: u16,
    /// JSON pointers of objects to replace by an array of their values, with the path the
    /// error must name.
    arrays: &'static [(&'static str, &'static str)],
    /// JSON pointers of fields to set to null, with the path the error must name.
    nulls: &'static [(&'static str, &'static str)],
    /// JSON pointers of fields the document declares nullable.
    nullable: &'static [&'static str],
}

async fn send(
    base: &str,
    endpoint: &Endpoint,
    body: String,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = client()
        .request(endpoint.method.clone(), format!("{base}{}", endpoint.path))
        .header("content-type", "application/json")
        .body(body);
    if endpoint.admin {
        request = request.bearer_auth(ADMIN_TOKEN);
    }
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

/// `body` with the object at `pointer` replaced by an array of its values.
fn arrayed(body: &Value, pointer: &str) -> Value {
    let mut body = body.clone();
    let target = body
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}"));
    let values = target
        .as_object()
        .unwrap_or_else(|| panic!("{pointer} is not an object"))
        .values()
        .cloned()
        .collect();
    *target = Value::Array(values);
    body
}

/// `body` with the field at `pointer` set to null (added if absent).
fn nulled(body: &Value, pointer: &str) -> Value {
    let mut body = body.clone();
    let (parent, field) = pointer.rsplit_once('/').unwrap();
    body.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"))
        .insert(field.to_owned(), Value::Null);
    body
}

fn refusal(answer: &Value) -> (&str, &str) {
    (
        answer["error"]["code"].as_str().unwrap_or_default(),
        answer["error"]["message"].as_str().unwrap_or_default(),
    )
}

async fn exercise(server: &portcullis_server::RunningServer, endpoint: &Endpoint) {
    let base = if endpoint.admin {
        format!("http://{}", server.admin_addr)
    } else {
        format!("http://{}", server.addr)
    };
    let name = format!("{} {}", endpoint.method, endpoint.path);
    let (status, answer) = send(
        &base,
        endpoint,
        endpoint.valid.to_string(),
        endpoint.headers,
    )
    .await;
    assert_eq!(status, endpoint.success, "{name}, valid body: {answer}");

    // The whole body as an array, and each object inside it.
    let mut arrays = vec![("", "")];
    arrays.extend(endpoint.arrays);
    for (pointer, path) in arrays {
        let body = arrayed(&endpoint.valid, pointer);
        let (status, answer) = send(&base, endpoint, body.to_string(), endpoint.headers).await;
        let (code, message) = refusal(&answer);
        assert_eq!(
            (status, code),
            (400, "invalid_request"),
            "{name}, {body}: {answer}"
        );
        assert!(
            message.contains("invalid type: array, expected an object"),
            "{name}, {body}: {message}"
        );
        if !path.is_empty() {
            assert!(
                message.starts_with(&format!("{path}: ")),
                "{name}, {body}: the error names `{path}`: {message}"
            );
        }
    }
    for (pointer, path) in endpoint.nulls {
        let body = nulled(&endpoint.valid, pointer);
        let (status, answer) = send(&base, endpoint, body.to_string(), endpoint.headers).await;
        let (code, message) = refusal(&answer);
        assert_eq!(
            (status, code),
            (400, "invalid_request"),
            "{name}, {body}: {answer}"
        );
        assert!(
            message.starts_with(&format!("{path}: ")) && message.contains("null"),
            "{name}, {body}: the error names `{path}` and null: {message}"
        );
    }
    for pointer in endpoint.nullable {
        let body = nulled(&endpoint.valid, pointer);
        let (status, answer) = send(&base, endpoint, body.to_string(), endpoint.headers).await;
        assert_eq!(status, endpoint.success, "{name}, {body}: {answer}");
    }
}

const TENANT: &[(&str, &str)] = &[("x-tenant-id", "acme")];

fn check() -> Value {
    json!({
        "tenant": "acme",
        "principal": {"id": "bob", "attributes": {"shift": null}},
        "action": "app:logs.download",
        "resource": {"type": "app", "id": "payments"},
        "context": {"ip": "172.16.3.4", "cert": {"id": "cert1"}, "anything": [null, {"a": []}]},
    })
}

fn public_endpoints() -> Vec<Endpoint> {
    let check_arrays: &[(&str, &str)] = &[
        ("/principal", "principal"),
        ("/resource", "resource"),
        ("/context", "context"),
        ("/context/cert", "context.cert"),
    ];
    let check_nulls: &[(&str, &str)] = &[
        ("/trace_id", "trace_id"),
        ("/context/ip", "context.ip"),
        ("/context/cert/id", "context.cert.id"),
        ("/principal/attributes", "principal.attributes"),
        ("/explain", "explain"),
    ];
    let zen = json!({
        "subject": {"type": "user", "id": "bob", "properties": {"shift": null}},
        "action": {"name": "app:logs.download"},
        "resource": {"type": "app", "id": "payments"},
        "context": {"ip": "172.16.3.4", "cert": {"id": "cert1"}},
    });
    let mut zen_batch = zen.clone();
    let action = zen_batch.as_object_mut().unwrap().remove("action").unwrap();
    zen_batch["evaluations"] = json!([{ "action": action }]);
    zen_batch["options"] = json!({"evaluations_semantic": "execute_all"});
    let relation_check = json!({
        "tenant": "acme", "user": "user:alice", "relation": "viewer",
        "object": "doc:release-checklist", "context": {"time": "2026-03-02T10:00:00Z"},
        "contextual_tuples": [{"user": "user:dan", "relation": "viewer", "object": "doc:x"}],
        "consistency": {},
    });
    vec![
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/v1/check",
            headers: &[],
            valid: check(),
            success: 200,
            arrays: check_arrays,
            nulls: check_nulls,
            nullable: &[],
        },
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/v1/explain",
            headers: &[],
            valid: check(),
            success: 200,
            arrays: check_arrays,
            nulls: check_nulls,
            nullable: &[],
        },
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/v1/check/batch",
            headers: &[],
            valid: json!({ "requests": [check()] }),
            success: 200,
            arrays: &[
                ("/requests/0", "requests[0]"),
                ("/requests/0/principal", "requests[0].principal"),
                ("/requests/0/context/cert", "requests[0].context.cert"),
            ],
            nulls: &[
                ("/requests/0/trace_id", "requests[0].trace_id"),
                ("/requests/0/context/source", "requests[0].context.source"),
            ],
            nullable: &[],
        },
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/access/v1/evaluation",
            headers: TENANT,
            valid: zen,
            success: 200,
            arrays: &[
                ("/subject", "subject"),
                ("/action", "action"),
                ("/resource", "resource"),
                ("/context", "context"),
                ("/context/cert", "context.cert"),
            ],
            nulls: &[
                ("/context", "context"),
                ("/context/ip", "context.ip"),
                ("/subject/properties", "subject.properties"),
            ],
            nullable: &[],
        },
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/access/v1/evaluations",
            headers: TENANT,
            valid: zen_batch,
            success: 200,
            arrays: &[
                ("/subject", "subject"),
                ("/evaluations/0", "evaluations[0]"),
                ("/evaluations/0/action", "evaluations[0].action"),
                ("/options", "options"),
            ],
            nulls: &[
                ("/action", "action"),
                ("/evaluations/0/resource", "evaluations[0].resource"),
                (
                    "/options/evaluations_semantic",
                    "options.evaluations_semantic",
                ),
            ],
            nullable: &[],
        },
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/v1/relations/check",
            headers: &[],
            valid: relation_check.clone(),
            success: 200,
            arrays: &[
                ("/context", "context"),
                ("/contextual_tuples/0", "contextual_tuples[0]"),
                ("/consistency", "consistency"),
            ],
            nulls: &[
                ("/consistency/at_least", "consistency.at_least"),
                (
                    "/contextual_tuples/0/condition",
                    "contextual_tuples[0].condition",
                ),
                ("/consistency", "consistency"),
            ],
            nullable: &[],
        },
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/v1/relations/check/batch",
            headers: &[],
            valid: json!({
                "tenant": "acme",
                "checks": [{"user": "user:alice", "relation": "viewer",
                            "object": "doc:release-checklist", "correlation_id": "1"}],
                "consistency": {},
            }),
            success: 200,
            arrays: &[("/checks/0", "checks[0]"), ("/consistency", "consistency")],
            nulls: &[
                ("/checks/0/correlation_id", "checks[0].correlation_id"),
                ("/consistency/at_least", "consistency.at_least"),
            ],
            nullable: &[],
        },
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/v1/relations/list-objects",
            headers: &[],
            valid: json!({
                "tenant": "acme", "user": "user:alice", "relation": "viewer", "type": "doc",
                "page_size": 10, "consistency": {},
            }),
            success: 200,
            arrays: &[("/consistency", "consistency")],
            nulls: &[("/page_size", "page_size")],
            nullable: &["/continuation"],
        },
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/v1/relations/list-users",
            headers: &[],
            valid: json!({
                "tenant": "acme", "object": "doc:release-checklist", "relation": "viewer",
                "user_filters": ["user"], "context": {},
                "contextual_tuples": [{"user": "user:dan", "relation": "viewer", "object": "doc:x"}],
            }),
            success: 200,
            arrays: &[
                ("/context", "context"),
                ("/contextual_tuples/0", "contextual_tuples[0]"),
            ],
            nulls: &[(
                "/contextual_tuples/0/condition",
                "contextual_tuples[0].condition",
            )],
            nullable: &[],
        },
        Endpoint {
            admin: false,
            method: Method::POST,
            path: "/v1/relations/expand",
            headers: &[],
            valid: json!({
                "tenant": "acme", "object": "doc:release-checklist", "relation": "viewer",
                "consistency": {},
            }),
            success: 200,
            arrays: &[("/consistency", "consistency")],
            nulls: &[("/consistency/at_least", "consistency.at_least")],
            nullable: &[],
        },
    ]
}

#[tokio::test]
async fn every_public_json_endpoint_reads_objects_only_and_null_only_where_nullable() {
    let server = demo_server().await;
    for endpoint in public_endpoints() {
        exercise(&server, &endpoint).await;
    }
    // The request of the security review, field by field in an array: refused, not allowed.
    let (status, answer) = send(
        &format!("http://{}", server.addr),
        &public_endpoints()[0],
        r#"["acme",["bob"],"app:logs.download",["app","payments"],{"ip":"172.16.3.4"}]"#.into(),
        &[],
    )
    .await;
    assert_eq!((status, refusal(&answer).0), (400, "invalid_request"));
    server.stop().await;
}

#[tokio::test]
async fn every_admin_json_endpoint_reads_objects_only_and_null_only_where_nullable() {
    let server = demo_server().await;
    let admin = format!("http://{}", server.admin_addr);
    let endpoints = [
        Endpoint {
            admin: true,
            method: Method::POST,
            path: "/admin/v1/tenants",
            headers: &[],
            valid: json!({"tenant": "strict-one", "domain": "one.example"}),
            success: 201,
            arrays: &[],
            nulls: &[],
            nullable: &[],
        },
        Endpoint {
            admin: true,
            method: Method::PUT,
            path: "/admin/v1/tenants/strict-one/bundle",
            headers: &[],
            valid: json!({"files": {
                "tenant.yaml": "tenant: strict-one\ntimezone: UTC\n",
                "roles.yaml": "roles:\n  viewer:\n    permissions: [\"doc:read\"]\n",
            }}),
            success: 200,
            arrays: &[("/files", "files")],
            nulls: &[("/files", "files")],
            nullable: &[],
        },
        Endpoint {
            admin: true,
            method: Method::PUT,
            path: "/admin/v1/tenants/strict-one/principals/dan",
            headers: &[],
            valid: json!({"type": "user", "attributes": {"shift": null, "teams": [{}]}}),
            success: 200,
            arrays: &[("/attributes", "attributes")],
            nulls: &[("/attributes", "attributes")],
            nullable: &["/type"],
        },
        Endpoint {
            admin: true,
            method: Method::POST,
            path: "/admin/v1/tenants/strict-one/assignments",
            headers: &[],
            valid: json!({"principal": "dan", "role": "viewer", "resource": "*"}),
            success: 200,
            arrays: &[],
            nulls: &[("/principal", "principal")],
            nullable: &["/resource"],
        },
        Endpoint {
            admin: true,
            method: Method::DELETE,
            path: "/admin/v1/tenants/strict-one/assignments",
            headers: &[],
            valid: json!({"principal": "dan", "role": "viewer", "resource": "*"}),
            success: 200,
            arrays: &[],
            nulls: &[("/role", "role")],
            nullable: &[],
        },
        Endpoint {
            admin: true,
            method: Method::POST,
            path: "/admin/v1/tenants/acme/tuples",
            headers: &[],
            valid: json!({
                "writes": [{"user": "user:dan", "relation": "viewer", "object": "doc:x"}],
                "ignore_duplicates": true,
            }),
            success: 200,
            arrays: &[("/writes/0", "writes[0]")],
            nulls: &[
                ("/writes/0/condition", "writes[0].condition"),
                ("/ignore_missing", "ignore_missing"),
            ],
            nullable: &[],
        },
    ];
    for endpoint in &endpoints {
        exercise(&server, endpoint).await;
    }

    // A tenant's id in an array creates nothing; a null domain (nullable) is no domain.
    let tenants = &endpoints[0];
    let (status, answer) = send(&admin, tenants, r#"["arraytenant"]"#.into(), &[]).await;
    assert_eq!((status, refusal(&answer).0), (400, "invalid_request"));
    let (status, answer) = send(
        &admin,
        tenants,
        json!({"tenant": "strict-two", "domain": null}).to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    for (tenant, expected) in [("arraytenant", 404), ("strict-two", 200)] {
        let response = client()
            .get(format!("{admin}/admin/v1/tenants/{tenant}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{tenant}");
    }
    // A role assignment revoked through an array body is not revoked.
    let revoke = &endpoints[4];
    let assign = &endpoints[3];
    let (status, _) = send(&admin, assign, assign.valid.to_string(), &[]).await;
    assert_eq!(status, 200);
    let (status, _) = send(&admin, revoke, r#"["dan","viewer","*"]"#.into(), &[]).await;
    assert_eq!(status, 400);
    let listed: Value = client()
        .get(format!("{admin}/admin/v1/tenants/strict-one/assignments"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["assignments"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    server.stop().await;
}
