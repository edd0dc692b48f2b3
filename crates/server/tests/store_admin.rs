//! The decision service on its store: run-time principals and role assignments, tenant
//! lifecycle, encrypted sensitive attributes and key rotation, through the admin API.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use support::{ADMIN_TOKEN, AUDIT_TOKEN, client, copy_demo, trading_day_after_close};

struct Api {
    public: String,
    admin: String,
}

impl Api {
    fn of(server: &portcullis_server::RunningServer) -> Api {
        Api {
            public: format!("http://{}", server.addr),
            admin: format!("http://{}", server.admin_addr),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = client()
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn decide(&self, principal: &str, action: &str) -> Value {
        client()
            .post(format!("{}/v1/check", self.public))
            .json(&json!({
                "tenant": "acme",
                "principal": { "id": principal },
                "action": action,
                "resource": { "type": "app", "id": "payments" },
                "context": { "ip": "172.16.3.4" },
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn server(bundles: &Path, data: &Path, extra: &str) -> portcullis_server::RunningServer {
    let text = replace_data_dir(&support::config_text(bundles, extra), data);
    let now = trading_day_after_close();
    portcullis_server::start(support::config(&text), Some(Arc::new(move || now)))
        .await
        .unwrap()
}

fn replace_data_dir(text: &str, data: &Path) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with("data_dir = ") {
                format!("data_dir = \"{}\"", data.display())
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn run_time_roles_and_suspension_reach_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let server = server(&bundles, &dir.path().join("data"), "").await;
    let api = Api::of(&server);
    // carol is an inventory clerk: no release.
    let before = api.decide("carol", "app:status.check").await;
    assert_eq!(before["decision"], "deny");
    let first_revision = before["revision"]["data"]
        .as_u64()
        .expect("decisions name the data revision");

    let (status, answer) = api
        .call(
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/assignments",
            Some(json!({"principal": "carol", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let after = api.decide("carol", "app:status.check").await;
    assert_eq!(after["decision"], "allow", "{after}");
    assert!(after["revision"]["data"].as_u64().unwrap() > first_revision);
    assert_eq!(after["reasons"][0]["path"], json!(["carol", "viewer"]));

    // Assignments on a resource apply only there.
    api.call(
        reqwest::Method::POST,
        "/admin/v1/tenants/acme/assignments",
        Some(json!({"principal": "carol", "role": "operator", "resource": "app:billing"})),
    )
    .await;
    assert_eq!(
        api.decide("carol", "app:release").await["decision"],
        "deny",
        "payments is not billing"
    );

    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/suspend",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let suspended = api.decide("carol", "app:status.check").await;
    assert_eq!(suspended["cause"], "tenant_suspended", "{suspended}");
    let (status, answer) = api
        .call(
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/suspend",
            None,
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("already_suspended"))
    );
    api.call(reqwest::Method::POST, "/admin/v1/tenants/acme/resume", None)
        .await;
    assert_eq!(
        api.decide("carol", "app:status.check").await["decision"],
        "allow"
    );

    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            "/admin/v1/tenants/acme/assignments",
            Some(json!({"principal": "carol", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        api.decide("carol", "app:status.check").await["decision"],
        "deny"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let server = server(&bundles, &dir.path().join("data"), "").await;
    let api = Api::of(&server);
    let cases: Vec<(reqwest::Method, &str, Option<Value>, u16, &str)> = vec![
        (
            reqwest::Method::POST,
            "/admin/v1/tenants",
            Some(json!({"tenant": "acme"})),
            409,
            "tenant_exists",
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/tenants",
            Some(json!({"tenant": "no way"})),
            400,
            "invalid_tenant",
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/tenants",
            Some(json!({"tenant": "globex", "color": "red"})),
            400,
            "unknown_field",
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/tenants/ghost/suspend",
            None,
            404,
            "unknown_tenant",
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/resume",
            None,
            409,
            "not_suspended",
        ),
        (
            reqwest::Method::DELETE,
            "/admin/v1/tenants/acme?confirm=acm",
            None,
            400,
            "confirmation_required",
        ),
        (
            reqwest::Method::DELETE,
            "/admin/v1/tenants/acme?confirm=acme",
            None,
            409,
            "managed_by_files",
        ),
        (
            reqwest::Method::GET,
            "/admin/v1/tenants/acme/principals/nobody",
            None,
            404,
            "unknown_principal",
        ),
        (
            reqwest::Method::DELETE,
            "/admin/v1/tenants/acme/principals/nobody",
            None,
            404,
            "unknown_principal",
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/assignments",
            Some(json!({"principal": "nobody", "role": "viewer"})),
            404,
            "unknown_principal",
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/assignments",
            Some(json!({"principal": "bob", "role": "wizard"})),
            400,
            "unknown_role",
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/assignments",
            Some(json!({"principal": "bob", "role": "viewer", "resource": "nocolon"})),
            400,
            "invalid_request",
        ),
        (
            reqwest::Method::DELETE,
            "/admin/v1/tenants/acme/assignments",
            Some(json!({"principal": "bob", "role": "viewer"})),
            404,
            "unknown_assignment",
        ),
        (
            reqwest::Method::PUT,
            "/admin/v1/tenants/acme/principals/dave",
            Some(json!({"attributes": {}, "extra": 1})),
            400,
            "unknown_field",
        ),
        (
            reqwest::Method::GET,
            "/admin/v1/tenants/acme/bundles/99",
            None,
            404,
            "unknown_version",
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/bundles/99/activate",
            None,
            404,
            "unknown_version",
        ),
        (
            reqwest::Method::GET,
            "/admin/v1/tenants/acme/bundles/latest",
            None,
            400,
            "invalid_path",
        ),
        (
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/bundles/1x/activate",
            None,
            400,
            "invalid_path",
        ),
        (
            reqwest::Method::GET,
            "/admin/v1/tenants/acme/principals?limit=many",
            None,
            400,
            "invalid_query",
        ),
        (
            reqwest::Method::DELETE,
            "/admin/v1/tenants/acme?confirm=acme&force=1",
            None,
            400,
            "invalid_query",
        ),
        (
            reqwest::Method::GET,
            "/admin/v1/tenants/acme/principals/%FF",
            None,
            400,
            "invalid_path",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, answer) = api.call(method.clone(), path, body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body:?}: {answer}"
        );
    }
    // A new tenant without a bundle cannot take principals yet, and decides nothing.
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/admin/v1/tenants",
            Some(json!({"tenant": "globex"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, answer) = api
        .call(
            reqwest::Method::PUT,
            "/admin/v1/tenants/globex/principals/p1",
            Some(json!({"attributes": {}})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("no_bundle"))
    );
    // Auditors read, but do not write.
    let response = client()
        .post(format!("{}/admin/v1/tenants/acme/suspend", api.admin))
        .bearer_auth(AUDIT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    server.stop().await;
}

const SENSITIVE_TENANT: &str =
    "tenant: acme\ntimezone: Asia/Shanghai\nsensitive_attributes: [phone]\n";
const PHONE_RULE: &str = "rules:\n  - id: PHONE\n    effect: permit\n    actions: [\"app:call\"]\n    when: \"principal.attributes.phone.startsWith('189')\"\n";

#[tokio::test]
async fn sensitive_attributes_are_encrypted_at_rest_and_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = dir.path().join("bundles");
    std::fs::create_dir_all(bundles.join("acme")).unwrap();
    std::fs::write(bundles.join("acme/tenant.yaml"), SENSITIVE_TENANT).unwrap();
    std::fs::write(bundles.join("acme/rules.yaml"), PHONE_RULE).unwrap();
    let system = support::demo_bundles().join("system");
    std::fs::create_dir_all(bundles.join("system")).unwrap();
    for file in std::fs::read_dir(&system).unwrap().flatten() {
        std::fs::copy(file.path(), bundles.join("system").join(file.file_name())).unwrap();
    }
    let data = dir.path().join("data");
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("k1 = {}\ncurrent = k1\n", "11".repeat(32))).unwrap();
    let extra = format!("[encryption]\nkeys_file = \"{}\"\n", keys.display());

    let server1 = server(&bundles, &data, &extra).await;
    let api = Api::of(&server1);
    let (status, answer) = api
        .call(
            reqwest::Method::PUT,
            "/admin/v1/tenants/acme/principals/dana",
            Some(json!({"attributes": {"phone": "18912345678", "team": "ops"}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let call = |api: &Api| {
        let public = api.public.clone();
        async move {
            client()
                .post(format!("{public}/v1/check"))
                .json(&json!({"tenant": "acme", "principal": {"id": "dana"}, "action": "app:call", "resource": {"type": "app", "id": "x"}}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        call(&api).await["decision"],
        "allow",
        "the decrypted attribute reaches conditions"
    );
    let (_, shown) = api
        .call(
            reqwest::Method::GET,
            "/admin/v1/tenants/acme/principals/dana",
            None,
        )
        .await;
    assert_eq!(shown["attributes"]["phone"], "<encrypted with key k1>");
    assert_eq!(shown["attributes"]["team"], "ops");
    server1.stop().await;

    // The plaintext never reaches the database files.
    let mut stored = Vec::new();
    for file in std::fs::read_dir(&data).unwrap().flatten() {
        if file.path().is_file() {
            stored.extend(std::fs::read(file.path()).unwrap());
        }
    }
    let haystack = String::from_utf8_lossy(&stored);
    assert!(
        !haystack.contains("18912345678"),
        "plaintext found in the store"
    );
    assert!(haystack.contains("v1:k1:"), "the ciphertext is stored");

    // Add k2 as the current key; old values stay readable until rotated.
    std::fs::write(
        &keys,
        format!(
            "k1 = {}\nk2 = {}\ncurrent = k2\n",
            "11".repeat(32),
            "22".repeat(32)
        ),
    )
    .unwrap();
    let server2 = server(&bundles, &data, &extra).await;
    let api = Api::of(&server2);
    assert_eq!(
        call(&api).await["decision"],
        "allow",
        "k1 values readable under a ring whose current key is k2"
    );
    let (status, rotated) = api
        .call(
            reqwest::Method::POST,
            "/admin/v1/tenants/acme/rotate-key",
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(
        (rotated["key"].as_str(), rotated["values"].as_u64()),
        (Some("k2"), Some(1))
    );
    let (_, shown) = api
        .call(
            reqwest::Method::GET,
            "/admin/v1/tenants/acme/principals/dana",
            None,
        )
        .await;
    assert_eq!(shown["attributes"]["phone"], "<encrypted with key k2>");
    assert_eq!(call(&api).await["decision"], "allow");
    server2.stop().await;

    // Without k1 the rotated value still reads; a ring without the value's key fails closed.
    std::fs::write(&keys, format!("k2 = {}\ncurrent = k2\n", "22".repeat(32))).unwrap();
    let server3 = server(&bundles, &data, &extra).await;
    assert_eq!(call(&Api::of(&server3)).await["decision"], "allow");
    server3.stop().await;
    std::fs::write(&keys, format!("k3 = {}\ncurrent = k3\n", "33".repeat(32))).unwrap();
    let server4 = server(&bundles, &data, &extra).await;
    let denied = call(&Api::of(&server4)).await;
    assert_eq!(
        denied["decision"], "deny",
        "an unreadable attribute is absent: {denied}"
    );
    server4.stop().await;
}

/// A bundle for `globex` whose viewers may do `actions`.
fn globex_bundle(actions: &[&str]) -> Value {
    json!({
        "files": {
            "tenant.yaml": "tenant: globex\ntimezone: UTC\n",
            "roles.yaml": format!(
                "roles:\n  viewer:\n    permissions: {}\nprincipals:\n  ann: {{ roles: [viewer] }}\n",
                serde_json::to_string(actions).unwrap()
            ),
        }
    })
}

#[tokio::test]
async fn store_tenants_roll_back_only_to_bundles_that_still_compile() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let data = dir.path().join("data");
    let server = server(&bundles, &data, "").await;
    let api = Api::of(&server);
    let write = || async {
        client()
            .post(format!("{}/v1/check", api.public))
            .json(&json!({
                "tenant": "globex",
                "principal": { "id": "ann" },
                "action": "doc:write",
                "resource": { "type": "doc", "id": "d1" },
            }))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["decision"]
            .clone()
    };
    for actions in [vec!["doc:read"], vec!["doc:read", "doc:write"]] {
        let (status, answer) = api
            .call(
                reqwest::Method::PUT,
                "/admin/v1/tenants/globex/bundle",
                Some(globex_bundle(&actions)),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(write().await, "allow", "version 2 grants doc:write");

    // A version that does not compile reaches the history behind the service's back (as an
    // older server, or a hand-edited database, could leave it).
    let store = portcullis_store::Store::open(&portcullis_store::StoreConfig {
        url: format!("sqlite://{}", data.join("portcullis.db").display()),
        migrate_url: None,
        shards: Default::default(),
        max_connections: 1,
    })
    .await
    .unwrap();
    let tenant = portcullis_core::TenantId::new("globex").unwrap();
    let broken = std::collections::BTreeMap::from([
        ("tenant.yaml".to_owned(), "tenant: globex\n".to_owned()),
        ("roles.yaml".to_owned(), "roles:\n  viewer: [\n".to_owned()),
    ]);
    let stored = store
        .tenant(&tenant)
        .put_bundle(&broken, "sha256:broken", "test")
        .await
        .unwrap();
    assert_eq!(stored.version, 3);
    // Make version 2 the active one again, as it was before the hand edit.
    store.tenant(&tenant).activate_bundle(2).await.unwrap();
    store.close().await;

    let (status, answer) = api
        .call(
            reqwest::Method::POST,
            "/admin/v1/tenants/globex/bundles/3/activate",
            None,
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_bundle");
    let problem = &answer["error"]["problems"][0];
    assert!(
        problem["file"].as_str().unwrap().ends_with("roles.yaml") && problem["line"].is_u64(),
        "{answer}"
    );
    let (_, history) = api
        .call(
            reqwest::Method::GET,
            "/admin/v1/tenants/globex/bundles",
            None,
        )
        .await;
    let active: Vec<&Value> = history["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{history}"))
        .iter()
        .filter(|v| v["active"] == true)
        .map(|v| &v["version"])
        .collect();
    assert_eq!(
        active,
        vec![&json!(2)],
        "the refused version was not activated: {history}"
    );
    assert_eq!(write().await, "allow", "still deciding on version 2");

    // A good version rolls back at once.
    let (status, answer) = api
        .call(
            reqwest::Method::POST,
            "/admin/v1/tenants/globex/bundles/1/activate",
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(write().await, "deny", "version 1 does not grant doc:write");

    // Demo tenants built into the server are not deleted through the API either; folder
    // tenants answer the same code.
    let (status, answer) = api
        .call(
            reqwest::Method::DELETE,
            "/admin/v1/tenants/acme?confirm=acme",
            None,
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("managed_by_files")),
        "{answer}"
    );
    server.stop().await;
}
