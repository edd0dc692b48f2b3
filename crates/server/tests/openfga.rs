//! OpenFGA's HTTP API on the public listener: stores, models, tuple writes and reads, the
//! change feed and every query, with OpenFGA's error bodies, authenticated by admin tokens and
//! JWTs, against a server started in this process.
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
use support::{
    ADMIN_TOKEN, AUDIT_TOKEN, client, copy_demo, server_on, token, trading_day_after_close,
};

struct Fga {
    base: String,
    admin: String,
}

impl Fga {
    async fn call(
        &self,
        bearer: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = client().request(method, format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
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

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Some(ADMIN_TOKEN), Method::POST, path, Some(body))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Some(ADMIN_TOKEN), Method::GET, path, None).await
    }
}

fn model() -> Value {
    json!({
        "schema_version": "1.1",
        "type_definitions": [
            { "type": "user" },
            { "type": "group", "relations": { "member": { "this": {} } },
              "metadata": { "relations": { "member": { "directly_related_user_types": [{ "type": "user" }] } } } },
            { "type": "document",
              "relations": {
                "owner": { "this": {} },
                "viewer": { "union": { "child": [ { "this": {} }, { "computedUserset": { "relation": "owner" } } ] } }
              },
              "metadata": { "relations": {
                "owner": { "directly_related_user_types": [{ "type": "user" }] },
                "viewer": { "directly_related_user_types": [
                    { "type": "user" }, { "type": "user", "wildcard": {} },
                    { "type": "group", "relation": "member" } ] }
              } } }
        ]
    })
}

fn key(user: &str, relation: &str, object: &str) -> Value {
    json!({ "user": user, "relation": relation, "object": object })
}

fn is_ulid(text: &str) -> bool {
    text.len() == 26
        && text.starts_with(|c: char| ('0'..='7').contains(&c))
        && text
            .chars()
            .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
}

#[tokio::test]
async fn the_openfga_api_serves_stores_models_tuples_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let server = server_on(&bundles, "", trading_day_after_close()).await;
    let fga = Fga {
        base: format!("http://{}", server.addr),
        admin: format!("http://{}", server.admin_addr),
    };

    // Stores: creating one is an admin's change.
    let (status, body) = fga
        .call(
            None,
            Method::POST,
            "/stores",
            Some(json!({ "name": "demo" })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("bearer_token_missing")),
        "{body}"
    );
    let (status, body) = fga
        .call(
            Some(AUDIT_TOKEN),
            Method::POST,
            "/stores",
            Some(json!({ "name": "demo" })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, body) = fga.post("/stores", json!({ "name": "demo" })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "demo");
    let store = body["id"].as_str().unwrap().to_owned();
    assert!(is_ulid(&store), "{store}");
    let (status, body) = fga.get(&format!("/stores/{store}")).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some(store.as_str())),
        "{body}"
    );
    let (status, body) = fga.get("/stores").await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&store.as_str()) && ids.contains(&"acme"),
        "{ids:?}"
    );
    let (status, body) = fga.get("/stores/01ARZ3NDEKTSV4RRFFQ69G5FAV").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("store_id_not_found")),
        "{body}"
    );

    // No model yet.
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/check"),
            json!({ "tuple_key": key("user:anne", "viewer", "document:1") }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("latest_authorization_model_not_found")),
        "{body}"
    );

    // Models: written in the JSON form, the id is the bundle revision as a ULID.
    let (status, body) = fga.post(&format!("/stores/{store}/authorization-models"), json!({ "schema_version": "1.1", "type_definitions": [{ "type": "document", "relations": { "viewer": { "computedUserset": { "relation": "nothing" } } } }] })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_authorization_model")),
        "{body}"
    );
    let (status, body) = fga
        .post(&format!("/stores/{store}/authorization-models"), model())
        .await;
    assert_eq!(status, 201, "{body}");
    let model_id = body["authorization_model_id"].as_str().unwrap().to_owned();
    assert!(is_ulid(&model_id), "{model_id}");
    let (status, body) = fga
        .get(&format!("/stores/{store}/authorization-models/{model_id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorization_model"]["id"], model_id.as_str());
    assert_eq!(
        body["authorization_model"]["type_definitions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Tuples: limits, options and errors as OpenFGA answers them.
    let too_many: Vec<Value> = (0..101)
        .map(|i| key(&format!("user:u{i}"), "viewer", "document:1"))
        .collect();
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/write"),
            json!({ "writes": { "tuple_keys": too_many } }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("exceeded_entity_limit")),
        "{body}"
    );
    let writes = json!({ "writes": { "tuple_keys": [
        key("user:anne", "owner", "document:1"),
        key("group:eng#member", "viewer", "document:2"),
        key("user:bob", "member", "group:eng"),
        key("user:*", "viewer", "document:public"),
    ] }, "authorization_model_id": model_id });
    let (status, body) = fga
        .call(
            Some(&token(json!({ "tenant": store }))),
            Method::POST,
            &format!("/stores/{store}/write"),
            Some(writes.clone()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "an identity token does not write: {body}"
    );
    let (status, body) = fga
        .post(&format!("/stores/{store}/write"), writes.clone())
        .await;
    assert_eq!((status, &body), (200, &json!({})));
    let (status, body) = fga
        .post(&format!("/stores/{store}/write"), writes.clone())
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("write_failed_due_to_invalid_input")),
        "{body}"
    );
    let mut ignoring = writes.clone();
    ignoring["writes"]["on_duplicate"] = json!("ignore");
    let (status, body) = fga.post(&format!("/stores/{store}/write"), ignoring).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/write"),
            json!({ "writes": { "tuple_keys": [key("user:anne", "editor", "document:1")] } }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_error")),
        "{body}"
    );
    let (status, body) = fga.post(&format!("/stores/{store}/write"), json!({ "deletes": { "tuple_keys": [key("user:zed", "owner", "document:1")], "on_missing": "ignore" } })).await;
    assert_eq!(status, 200, "{body}");

    // Check, with contextual tuples, model id and consistency.
    let check = |user: &str, object: &str| json!({ "tuple_key": key(user, "viewer", object), "authorization_model_id": model_id, "consistency": "HIGHER_CONSISTENCY" });
    for (user, object, allowed) in [
        ("user:anne", "document:1", true),
        ("user:bob", "document:2", true),
        ("user:carl", "document:public", true),
        ("user:carl", "document:1", false),
    ] {
        let (status, body) = fga
            .post(&format!("/stores/{store}/check"), check(user, object))
            .await;
        assert_eq!(
            (status, body["allowed"].as_bool()),
            (200, Some(allowed)),
            "{user} {object}: {body}"
        );
    }
    let (status, body) = fga.post(&format!("/stores/{store}/check"), json!({ "tuple_key": key("user:carl", "viewer", "document:1"), "contextual_tuples": { "tuple_keys": [key("user:carl", "owner", "document:1")] } })).await;
    assert_eq!(
        (status, body["allowed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, body) = fga
        .call(
            None,
            Method::POST,
            &format!("/stores/{store}/check"),
            Some(check("user:anne", "document:1")),
        )
        .await;
    assert_eq!(
        (status, body["allowed"].as_bool()),
        (200, Some(true)),
        "anonymous queries as on /v1/relations: {body}"
    );
    let (status, body) = fga
        .call(
            Some(&token(json!({ "tenant": "acme" }))),
            Method::POST,
            &format!("/stores/{store}/check"),
            Some(check("user:anne", "document:1")),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "a token of another tenant: {body}"
    );
    for (body, code) in [
        (
            json!({ "tuple_key": key("user:anne", "viewer", "folder:1") }),
            "type_not_found",
        ),
        (
            json!({ "tuple_key": key("user:anne", "reader", "document:1") }),
            "relation_not_found",
        ),
        (
            json!({ "tuple_key": key("user:anne", "viewer", "document:1"), "authorization_model_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV" }),
            "authorization_model_not_found",
        ),
        (
            json!({ "tuple_key": key("user:a:b", "viewer", "document:1") }),
            "invalid_user",
        ),
        (
            json!({ "tuple_key": { "user": "user:anne", "relation": "viewer" } }),
            "validation_error",
        ),
        (
            json!({ "tuple_key": key("user:anne", "viewer", "document:1"), "consistency": "SOMETIMES" }),
            "validation_error",
        ),
    ] {
        let (status, answer) = fga
            .post(&format!("/stores/{store}/check"), body.clone())
            .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{body}: {answer}"
        );
        assert!(answer["message"].is_string());
    }

    // Batch check: answers keyed by correlation id.
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/batch-check"),
            json!({ "checks": [
        { "tuple_key": key("user:anne", "viewer", "document:1"), "correlation_id": "a" },
        { "tuple_key": key("user:carl", "viewer", "document:1"), "correlation_id": "b" },
        { "tuple_key": key("user:anne", "reader", "document:1"), "correlation_id": "c" },
    ] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["a"]["allowed"], true);
    assert_eq!(body["result"]["b"]["allowed"], false);
    assert_eq!(
        body["result"]["c"]["error"]["input_error"], "relation_not_found",
        "{body}"
    );
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/batch-check"),
            json!({ "checks": [
        { "tuple_key": key("user:anne", "viewer", "document:1"), "correlation_id": "a" },
        { "tuple_key": key("user:anne", "viewer", "document:2"), "correlation_id": "a" },
    ] }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_error")),
        "{body}"
    );

    // List objects, plain and streamed.
    let list = json!({ "type": "document", "relation": "viewer", "user": "user:bob" });
    let (status, body) = fga
        .post(&format!("/stores/{store}/list-objects"), list.clone())
        .await;
    assert_eq!(
        (status, &body["objects"]),
        (200, &json!(["document:2", "document:public"])),
        "{body}"
    );
    let (status, body) = fga
        .post(&format!("/stores/{store}/streamed-list-objects"), list)
        .await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = body
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({ "result": { "object": "document:2" } }),
            json!({ "result": { "object": "document:public" } })
        ]
    );

    // List users.
    let (status, body) = fga.post(&format!("/stores/{store}/list-users"), json!({
        "object": { "type": "document", "id": "2" }, "relation": "viewer", "user_filters": [{ "type": "user" }],
        "contextual_tuples": [key("user:dora", "viewer", "document:2")],
    })).await;
    assert_eq!(status, 200, "{body}");
    let mut users: Vec<String> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["object"]["id"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    assert_eq!(users, ["bob", "dora"]);
    let (status, body) = fga.post(&format!("/stores/{store}/list-users"), json!({
        "object": { "type": "document", "id": "2" }, "relation": "viewer", "user_filters": [{ "type": "group", "relation": "member" }],
    })).await;
    assert_eq!(
        (status, &body["users"]),
        (
            200,
            &json!([{ "userset": { "type": "group", "id": "eng", "relation": "member" } }])
        ),
        "{body}"
    );

    // Expand.
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/expand"),
            json!({ "tuple_key": { "relation": "viewer", "object": "document:1" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tree"]["root"]["name"], "document:1#viewer", "{body}");

    // Read, in pages.
    let (status, body) = fga
        .post(&format!("/stores/{store}/read"), json!({ "page_size": 2 }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tuples"].as_array().unwrap().len(), 2);
    assert!(body["tuples"][0]["timestamp"].is_string());
    let mut read = body["tuples"].as_array().unwrap().len();
    let mut next = body["continuation_token"].as_str().unwrap().to_owned();
    assert!(!next.is_empty());
    while !next.is_empty() {
        let (status, body) = fga
            .post(
                &format!("/stores/{store}/read"),
                json!({ "page_size": 2, "continuation_token": next }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        read += body["tuples"].as_array().unwrap().len();
        next = body["continuation_token"].as_str().unwrap().to_owned();
    }
    assert_eq!(read, 4, "every tuple read once, in pages");
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/read"),
            json!({ "tuple_key": { "object": "document:1" } }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["tuples"][0]["key"],
        key("user:anne", "owner", "document:1")
    );
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/read"),
            json!({ "page_size": 101 }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("page_size_invalid")),
        "{body}"
    );

    // The change feed, in pages that may split one write.
    let (status, body) = fga
        .get(&format!("/stores/{store}/changes?page_size=3"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changes"].as_array().unwrap().len(), 3);
    assert_eq!(body["changes"][0]["operation"], "TUPLE_OPERATION_WRITE");
    let next = body["continuation_token"].as_str().unwrap().to_owned();
    let (status, body) = fga
        .get(&format!(
            "/stores/{store}/changes?page_size=3&continuation_token={next}"
        ))
        .await;
    assert_eq!(
        (status, body["changes"].as_array().unwrap().len()),
        (200, 1),
        "{body}"
    );
    assert_eq!(
        body["changes"][0]["tuple_key"],
        key("user:*", "viewer", "document:public")
    );
    let (status, body) = fga
        .get(&format!("/stores/{store}/changes?type=group"))
        .await;
    assert_eq!(
        (status, body["changes"].as_array().unwrap().len()),
        (200, 1),
        "{body}"
    );
    let (status, body) = fga
        .get(&format!("/stores/{store}/changes?continuation_token=nope"))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_continuation_token")),
        "{body}"
    );

    // A second model: a new bundle version, the tuples kept; both models listed, newest first.
    let mut second = model();
    second["type_definitions"][2]["relations"]["editor"] = json!({ "this": {} });
    second["type_definitions"][2]["metadata"]["relations"]["editor"] =
        json!({ "directly_related_user_types": [{ "type": "user" }] });
    let (status, body) = fga
        .post(&format!("/stores/{store}/authorization-models"), second)
        .await;
    assert_eq!(status, 201, "{body}");
    let second_id = body["authorization_model_id"].as_str().unwrap().to_owned();
    assert_ne!(second_id, model_id);
    let (status, body) = fga
        .get(&format!("/stores/{store}/authorization-models"))
        .await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<&str> = body["authorization_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [second_id.as_str(), model_id.as_str()]);
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/check"),
            json!({ "tuple_key": key("user:anne", "viewer", "document:1") }),
        )
        .await;
    assert_eq!(
        (status, body["allowed"].as_bool()),
        (200, Some(true)),
        "tuples kept: {body}"
    );
    let (status, body) = fga.post(&format!("/stores/{store}/check"), json!({ "tuple_key": key("user:anne", "viewer", "document:1"), "authorization_model_id": model_id })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_error")),
        "an older model is not evaluated: {body}"
    );
    let history: Value = client()
        .get(format!("{}/admin/v1/tenants/{store}/bundles", fga.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        2,
        "{history}"
    );

    // An existing tenant is a store too.
    let (status, body) = fga
        .call(
            Some(&token(json!({ "tenant": "acme" }))),
            Method::POST,
            "/stores/acme/check",
            Some(json!({ "tuple_key": key("user:alice", "viewer", "doc:release-checklist") })),
        )
        .await;
    assert_eq!(
        (status, body["allowed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );

    // The changes are in the audit trail.
    let audit: Value = client()
        .get(format!("{}/admin/v1/tenants/{store}/audit", fga.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = audit.to_string();
    assert!(
        text.contains("POST /stores/{store_id}/write")
            && text.contains("POST /stores/{store_id}/authorization-models"),
        "{text}"
    );

    // Deleting a store; folder tenants are refused.
    let (status, body) = fga
        .call(Some(ADMIN_TOKEN), Method::DELETE, "/stores/acme", None)
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = fga
        .call(
            Some(ADMIN_TOKEN),
            Method::DELETE,
            &format!("/stores/{store}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = fga.get(&format!("/stores/{store}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("store_id_not_found")),
        "{body}"
    );
    server.stop().await;
}

/// A server on a copy of the demo bundles with a new store named `name` holding [`model`]:
/// the server, a client for it and the store's id.
async fn store_with_model(dir: &std::path::Path, name: &str) -> (RunningServer, Fga, String) {
    let bundles = copy_demo(dir);
    let server = server_on(&bundles, "", trading_day_after_close()).await;
    let fga = Fga {
        base: format!("http://{}", server.addr),
        admin: format!("http://{}", server.admin_addr),
    };
    let (status, body) = fga.post("/stores", json!({ "name": name })).await;
    assert_eq!(status, 201, "{body}");
    let store = body["id"].as_str().unwrap().to_owned();
    let (status, body) = fga
        .post(&format!("/stores/{store}/authorization-models"), model())
        .await;
    assert_eq!(status, 201, "{body}");
    (server, fga, store)
}

/// A `page_size` query parameter that is not a number (empty, as `?page_size=` sends it, or
/// text) is a 400 with OpenFGA's error body naming the parameter on every list endpoint that
/// reads it from the query; out of range is `page_size_invalid`; 0 is the default page.
#[tokio::test]
async fn malformed_page_sizes_are_openfga_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (server, fga, store) = store_with_model(dir.path(), "pages").await;
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/write"),
            json!({ "writes": { "tuple_keys": [key("user:anne", "owner", "document:1")] } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let endpoints = [
        "/stores".to_owned(),
        format!("/stores/{store}/authorization-models"),
        format!("/stores/{store}/changes"),
    ];
    for endpoint in &endpoints {
        for (query, code) in [
            ("page_size=", "validation_error"),
            ("page_size=ten", "validation_error"),
            ("page_size=1.5", "validation_error"),
            ("page_size=-1", "page_size_invalid"),
            ("page_size=101", "page_size_invalid"),
        ] {
            let (status, body) = fga.get(&format!("{endpoint}?{query}")).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some(code)),
                "{endpoint}?{query}: {body}"
            );
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("page_size"), "{endpoint}?{query}: {body}");
            assert_eq!(
                body.as_object().map(serde_json::Map::len),
                Some(2),
                "only code and message: {body}"
            );
        }
        let (status, body) = fga.get(&format!("{endpoint}?page_size=0")).await;
        assert_eq!(status, 200, "{endpoint}?page_size=0: {body}");
    }
    // Alongside other parameters too.
    let (status, body) = fga
        .get(&format!("/stores/{store}/changes?type=document&page_size="))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_error")),
        "{body}"
    );
    server.stop().await;
}

/// A relation or type name no model could define (with `*`, `:`, `#`, `@` or whitespace, or
/// empty) is the request's `validation_error` on every query, naming the member: in a batch
/// check too, where it is not one check's answer but the whole batch's refusal. A well-formed
/// name the model lacks stays the model's answer (`relation_not_found`, per check in a batch).
#[tokio::test]
async fn malformed_relation_names_are_validation_errors_of_the_whole_query() {
    let dir = tempfile::tempdir().unwrap();
    let (server, fga, store) = store_with_model(dir.path(), "names").await;

    let checks = |relation: &str| {
        json!({ "checks": [
            { "tuple_key": key("user:anne", "viewer", "document:1"), "correlation_id": "a" },
            { "tuple_key": key("user:anne", relation, "document:1"), "correlation_id": "b" },
        ] })
    };
    for bad in ["viewer*", "view er", "a:b", "a#b", "a@b"] {
        let requests = [
            (
                "check",
                json!({ "tuple_key": key("user:anne", bad, "document:1") }),
                "tuple_key.relation",
            ),
            ("batch-check", checks(bad), "tuple_key.relation"),
            (
                "expand",
                json!({ "tuple_key": { "relation": bad, "object": "document:1" } }),
                "tuple_key.relation",
            ),
            (
                "list-objects",
                json!({ "type": "document", "relation": bad, "user": "user:anne" }),
                "`relation`",
            ),
            (
                "list-objects",
                json!({ "type": bad, "relation": "viewer", "user": "user:anne" }),
                "`type`",
            ),
            (
                "streamed-list-objects",
                json!({ "type": "document", "relation": bad, "user": "user:anne" }),
                "`relation`",
            ),
            (
                "list-users",
                json!({ "object": { "type": "document", "id": "1" }, "relation": bad,
                "user_filters": [{ "type": "user" }] }),
                "`relation`",
            ),
            (
                "list-users",
                json!({ "object": { "type": "document", "id": "1" }, "relation": "viewer",
                "user_filters": [{ "type": bad }] }),
                "user_filters.type",
            ),
            (
                "list-users",
                json!({ "object": { "type": "document", "id": "1" }, "relation": "viewer",
                "user_filters": [{ "type": "group", "relation": bad }] }),
                "user_filters.relation",
            ),
        ];
        for (endpoint, request, named) in requests {
            let (status, body) = fga
                .post(&format!("/stores/{store}/{endpoint}"), request)
                .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some("validation_error")),
                "{endpoint} with {bad:?}: {body}"
            );
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains(named), "{endpoint} with {bad:?}: {body}");
        }
    }

    // A well-formed relation the model does not define: the model's answer, per check.
    let (status, body) = fga
        .post(&format!("/stores/{store}/batch-check"), checks("editor"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["a"]["allowed"], json!(false), "{body}");
    assert_eq!(
        body["result"]["b"]["error"]["input_error"],
        json!("relation_not_found"),
        "{body}"
    );
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/check"),
            json!({ "tuple_key": key("user:anne", "editor", "document:1") }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("relation_not_found")),
        "{body}"
    );
    // An empty user filter relation is absent: the type's own users.
    let (status, body) = fga
        .post(
            &format!("/stores/{store}/list-users"),
            json!({ "object": { "type": "document", "id": "1" }, "relation": "viewer",
                "user_filters": [{ "type": "user", "relation": "" }] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}
