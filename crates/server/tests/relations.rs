//! The relationship API of a running server, on both store backends: the conformance corpus
//! (the same files the library runs), bad input, pagination, revision tokens, and relation
//! grants in `/v1/check`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use portcullis_policy::rebac::corpus::{self, CorpusFile};
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, AUDIT_TOKEN, client, copy_demo, trading_day_after_close};

const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

struct Api {
    public: String,
    admin: String,
}

impl Api {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.admin_as(ADMIN_TOKEN, method, path, body).await
    }

    async fn admin_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = client()
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = client()
            .post(format!("{}{path}", self.public))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// A fresh PostgreSQL database for one server, dropped by [`Postgres::drop_database`].
struct Postgres {
    name: String,
}

impl Postgres {
    async fn create() -> Option<Postgres> {
        let reachable = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            sqlx::PgPool::connect(POSTGRES_ADMIN),
        )
        .await;
        let admin = match reachable {
            Ok(Ok(pool)) => pool,
            _ => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!(
                        "PostgreSQL at 127.0.0.1:5432 is not reachable, and CI=true requires it"
                    );
                }
                eprintln!("notice: PostgreSQL is not reachable; skipping the PostgreSQL run");
                return None;
            }
        };
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!("portcullis_rel_{}", hex::encode(bytes));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        Some(Postgres { name })
    }

    fn config(&self) -> String {
        format!(
            "[store]\nurl = \"postgres://portcullis_service@127.0.0.1:5432/{0}?sslmode=disable\"\nmigrate_url = \"postgres://postgres@127.0.0.1:5432/{0}\"\n",
            self.name
        )
    }

    async fn drop_database(self) {
        let admin = sqlx::PgPool::connect(POSTGRES_ADMIN).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
    }
}

async fn start(bundles: &Path, extra: &str) -> (portcullis_server::RunningServer, Api) {
    let now = trading_day_after_close();
    let server = portcullis_server::start(
        support::config(&support::config_text(bundles, extra)),
        Some(Arc::new(move || now)),
    )
    .await
    .unwrap();
    let api = Api {
        public: format!("http://{}", server.addr),
        admin: format!("http://{}", server.admin_addr),
    };
    (server, api)
}

/// Runs `scenario` on a server with the embedded SQLite store, then on one with PostgreSQL.
async fn on_both_backends<F, Fut>(scenario: F)
where
    F: Fn(Api, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let (server, api) = start(&bundles, "").await;
    scenario(api, "sqlite").await;
    server.stop().await;
    if let Some(database) = Postgres::create().await {
        let (server, api) = start(&bundles, &database.config()).await;
        scenario(api, "postgres").await;
        server.stop().await;
        database.drop_database().await;
    }
}

/// Creates a tenant whose bundle is just `model` and writes `tuples` in batches; returns the
/// last revision token.
async fn tenant_with(api: &Api, tenant: &str, model: &str, tuples: &[Value]) -> String {
    let (status, answer) = api
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/v1/tenants/{tenant}/bundle"),
            Some(json!({ "files": {
                "tenant.yaml": format!("tenant: {tenant}\ntimezone: UTC\nmodel: model.fga\n"),
                "model.fga": model,
            }})),
        )
        .await;
    assert_eq!(status, 200, "{tenant}: {answer}");
    let mut revision = String::from("0");
    for batch in tuples.chunks(100) {
        let (status, answer) = api
            .admin(
                reqwest::Method::POST,
                &format!("/admin/v1/tenants/{tenant}/tuples"),
                Some(json!({ "writes": batch })),
            )
            .await;
        assert_eq!(status, 200, "{tenant}: {answer}");
        revision = answer["revision"].as_str().unwrap().to_owned();
    }
    revision
}

fn names(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

async fn run_corpus_file(api: &Api, backend: &str, index: usize, file: &CorpusFile) {
    let tenant = format!("corpus-{index:02}");
    let tuples: Vec<Value> = file
        .tuples
        .iter()
        .map(|t| serde_json::to_value(t).unwrap())
        .collect();
    let revision = tenant_with(api, &tenant, &file.model, &tuples).await;
    let label = |what: &str, n: usize| format!("{backend} {} ({}) {what} #{n}", tenant, file.name);
    for (n, case) in file.tests.check.iter().enumerate() {
        let (status, answer) = api
            .post(
                "/v1/relations/check",
                json!({
                    "tenant": tenant, "user": case.user, "relation": case.relation,
                    "object": case.object, "context": case.context,
                    "contextual_tuples": case.contextual_tuples,
                    "consistency": { "at_least": revision },
                }),
            )
            .await;
        match (&case.expect, &case.error) {
            (_, Some(error)) => {
                assert!(
                    (400..500).contains(&status),
                    "{}: expected an error, got {status} {answer}",
                    label("check", n)
                );
                let message = answer["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(error.as_str()),
                    "{}: `{message}` lacks `{error}`",
                    label("check", n)
                );
            }
            (Some(expect), None) => {
                assert_eq!(status, 200, "{}: {answer}", label("check", n));
                assert_eq!(
                    answer["allowed"],
                    json!(expect),
                    "{}: {answer}",
                    label("check", n)
                );
            }
            (None, None) => panic!("{}: nothing expected", label("check", n)),
        }
    }
    for (n, case) in file.tests.list_objects.iter().enumerate() {
        let (status, answer) = api
            .post(
                "/v1/relations/list-objects",
                json!({
                    "tenant": tenant, "user": case.user, "relation": case.relation,
                    "type": case.object_type, "context": case.context,
                    "contextual_tuples": case.contextual_tuples,
                }),
            )
            .await;
        if let Some(error) = &case.error {
            assert!(
                (400..500).contains(&status),
                "{}: {answer}",
                label("list_objects", n)
            );
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(error.as_str()),
                "{}: {answer}",
                label("list_objects", n)
            );
            continue;
        }
        assert_eq!(status, 200, "{}: {answer}", label("list_objects", n));
        let expected: BTreeSet<String> = case.expect.iter().cloned().collect();
        assert_eq!(
            names(&answer["objects"]),
            expected,
            "{}",
            label("list_objects", n)
        );
    }
    for (n, case) in file.tests.list_users.iter().enumerate() {
        let (status, answer) = api
            .post(
                "/v1/relations/list-users",
                json!({
                    "tenant": tenant, "object": case.object, "relation": case.relation,
                    "user_filters": case.filters, "context": case.context,
                    "contextual_tuples": case.contextual_tuples,
                }),
            )
            .await;
        if let Some(error) = &case.error {
            assert!(
                (400..500).contains(&status),
                "{}: {answer}",
                label("list_users", n)
            );
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(error.as_str()),
                "{}: {answer}",
                label("list_users", n)
            );
            continue;
        }
        assert_eq!(status, 200, "{}: {answer}", label("list_users", n));
        let expected: BTreeSet<String> = case.expect.iter().cloned().collect();
        assert_eq!(
            names(&answer["users"]),
            expected,
            "{}",
            label("list_users", n)
        );
    }
}

#[tokio::test]
async fn the_conformance_corpus_passes_against_a_running_server() {
    let files =
        corpus::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../rebac/tests/corpus"))
            .unwrap();
    assert!(files.len() >= 12, "the corpus has {} files", files.len());
    let files = Arc::new(files);
    on_both_backends(|api, backend| {
        let files = Arc::clone(&files);
        async move {
            for (index, file) in files.iter().enumerate() {
                run_corpus_file(&api, backend, index, file).await;
            }
        }
    })
    .await;
}

const DOCS: &str = "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, group#member]\ntype doc\n  relations\n    define viewer: [user, group#member, user with office]\ncondition office(ip: ipaddress) {\n  ip.in_cidr(\"10.0.0.0/8\")\n}\n";

#[tokio::test]
async fn tuples_tokens_pages_and_bad_input() {
    on_both_backends(|api, backend| async move {
        let tenant = "docs";
        let tuples: Vec<Value> = (0..250)
            .map(|n| json!({ "user": "group:eng#member", "relation": "viewer", "object": format!("doc:{n:03}") }))
            .chain([json!({ "user": "user:anne", "relation": "member", "object": "group:eng" })])
            .collect();
        let revision = tenant_with(&api, tenant, DOCS, &tuples).await;

        // List objects pages through all 250 documents without losing or repeating one.
        let mut seen = Vec::new();
        let mut continuation = Value::Null;
        loop {
            let (status, answer) = api
                .post(
                    "/v1/relations/list-objects",
                    json!({ "tenant": tenant, "user": "user:anne", "relation": "viewer", "type": "doc",
                            "page_size": 100, "continuation": continuation }),
                )
                .await;
            assert_eq!(status, 200, "{backend}: {answer}");
            seen.extend(names(&answer["objects"]));
            continuation = answer["continuation"].clone();
            if continuation.is_null() {
                break;
            }
        }
        assert_eq!(seen.len(), 250, "{backend}");
        assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 250);

        // A write returns a token; a query demanding it sees the write; a token from the
        // future is refused rather than answered from old data.
        let (status, written) = api
            .admin(
                reqwest::Method::POST,
                "/admin/v1/tenants/docs/tuples",
                Some(json!({ "writes": [{ "user": "user:bob", "relation": "viewer", "object": "doc:x",
                                          "condition": { "name": "office" } }] })),
            )
            .await;
        assert_eq!(status, 200, "{written}");
        let token = written["revision"].as_str().unwrap().to_owned();
        assert!(token.parse::<u64>().unwrap() > revision.parse::<u64>().unwrap());
        let check = |ip: Option<&str>, at_least: &str| {
            let mut context = serde_json::Map::new();
            if let Some(ip) = ip {
                context.insert("ip".into(), json!(ip));
            }
            json!({ "tenant": tenant, "user": "user:bob", "relation": "viewer", "object": "doc:x",
                    "context": context, "consistency": { "at_least": at_least } })
        };
        let (status, answer) = api.post("/v1/relations/check", check(Some("10.1.2.3"), &token)).await;
        assert_eq!((status, &answer["allowed"]), (200, &json!(true)), "{backend}: {answer}");
        assert_eq!(answer["path"], json!(["doc:x#viewer", "user:bob [condition office]"]), "{answer}");
        let (_, answer) = api.post("/v1/relations/check", check(Some("192.0.2.1"), &token)).await;
        assert_eq!(answer["allowed"], json!(false));
        let (status, answer) = api.post("/v1/relations/check", check(None, &token)).await;
        assert_eq!(status, 422, "{backend}: a missing parameter is an error, not a deny: {answer}");
        assert_eq!(answer["error"]["code"], "missing_condition_parameter");
        let (status, answer) = api.post("/v1/relations/check", check(Some("10.1.2.3"), "999999")).await;
        assert_eq!(status, 409, "{backend}: {answer}");
        assert_eq!(answer["error"]["code"], "revision_not_seen");

        // Bad input, each with a clear error.
        let too_many: Vec<Value> = (0..101)
            .map(|n| json!({ "user": "user:anne", "relation": "viewer", "object": format!("doc:{n}") }))
            .collect();
        for (body, status, code, needle) in [
            (json!({ "writes": too_many }), 400, "too_many", "limit of 100"),
            (json!({ "writes": [{ "user": "doc:1", "relation": "viewer", "object": "doc:2" }] }), 400, "invalid_tuple", "doc"),
            (json!({ "writes": [{ "user": "user:anne", "relation": "viewer", "object": "doc:2", "condition": { "name": "nowhere" } }] }), 400, "invalid_tuple", "nowhere"),
            (json!({ "writes": [{ "user": "user:anne", "relation": "owner", "object": "doc:2" }] }), 400, "invalid_tuple", "owner"),
            (json!({ "writes": [{ "user": "anne", "relation": "viewer", "object": "doc:2" }] }), 400, "invalid_request", "anne"),
            (json!({ "deletes": [{ "user": "user:zed", "relation": "viewer", "object": "doc:2" }] }), 404, "not_found", "does not exist"),
            (json!({}), 400, "invalid_request", "neither"),
        ] {
            let (got, answer) = api
                .admin(reqwest::Method::POST, "/admin/v1/tenants/docs/tuples", Some(body.clone()))
                .await;
            assert_eq!(got, status, "{backend}: {body} -> {answer}");
            assert_eq!(answer["error"]["code"], code, "{backend}: {body} -> {answer}");
            assert!(
                answer["error"]["message"].as_str().unwrap().contains(needle),
                "{backend}: {body} -> {answer}"
            );
        }
        let contextual: Vec<Value> = (0..101)
            .map(|n| json!({ "user": "user:anne", "relation": "viewer", "object": format!("doc:{n}") }))
            .collect();
        for (path, body, code) in [
            ("/v1/relations/check", json!({ "tenant": tenant, "user": "nobody", "relation": "viewer", "object": "doc:1" }), "invalid_user"),
            ("/v1/relations/check", json!({ "tenant": tenant, "user": "user:a", "relation": "viewer", "object": "doc:1", "contextual_tuples": contextual }), "too_many"),
            ("/v1/relations/check", json!({ "tenant": tenant, "user": "user:a", "relation": "editor", "object": "doc:1" }), "unknown_relation"),
            ("/v1/relations/check", json!({ "tenant": tenant, "user": "user:a", "relation": "viewer", "object": "nosuch:1" }), "unknown_type"),
            ("/v1/relations/check", json!({ "tenant": tenant, "user": "robot:a", "relation": "viewer", "object": "doc:1" }), "unknown_type"),
            ("/v1/relations/list-objects", json!({ "tenant": tenant, "user": "user:a", "relation": "viewer", "type": "nosuch" }), "unknown_type"),
            ("/v1/relations/check", json!({ "tenant": tenant, "user": "user:b:c", "relation": "viewer", "object": "doc:1" }), "invalid_user"),
            ("/v1/relations/check", json!({ "tenant": tenant, "user": "user:a", "relation": "viewer", "object": "doc:1:2" }), "invalid_object"),
            ("/v1/relations/check", json!({ "tenant": tenant, "user": "user:a", "relation": "viewer", "object": "doc:1", "extra": 1 }), "unknown_field"),
            ("/v1/relations/check", json!({ "tenant": "acme", "user": "user:a", "relation": "viewer", "object": "doc:1", "consistency": { "at_least": "soon" } }), "invalid_consistency"),
            ("/v1/relations/check", json!({ "tenant": "system", "user": "user:a", "relation": "viewer", "object": "doc:1" }), "no_model"),
            ("/v1/relations/list-users", json!({ "tenant": tenant, "object": "doc:1", "relation": "viewer", "user_filters": [] }), "invalid_request"),
            ("/v1/relations/list-objects", json!({ "tenant": tenant, "user": "user:a", "relation": "viewer", "type": "doc", "page_size": 0 }), "invalid_page_size"),
        ] {
            let (status, answer) = api.post(path, body.clone()).await;
            assert!((400..500).contains(&status), "{backend}: {body} -> {status} {answer}");
            assert_eq!(answer["error"]["code"], code, "{backend}: {body} -> {answer}");
        }

        // Reads and the change log through the admin API; auditors read but do not write.
        let (status, page) = api
            .admin_as(AUDIT_TOKEN, reqwest::Method::GET, "/admin/v1/tenants/docs/tuples?object=doc:x", None)
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["tuples"][0]["user"], "user:bob");
        assert_eq!(page["tuples"][0]["condition"], "office");
        let (status, changes) = api
            .admin_as(AUDIT_TOKEN, reqwest::Method::GET, &format!("/admin/v1/tenants/docs/tuples/changes?since={revision}"), None)
            .await;
        assert_eq!(status, 200, "{changes}");
        assert_eq!(changes["changes"].as_array().unwrap().len(), 1);
        assert_eq!(changes["next_since"].to_string(), token);
        let (status, _) = api
            .admin_as(AUDIT_TOKEN, reqwest::Method::POST, "/admin/v1/tenants/docs/tuples", Some(json!({ "writes": [] })))
            .await;
        assert_eq!(status, 403);
        let (status, model) = api.admin(reqwest::Method::GET, "/admin/v1/tenants/docs/model", None).await;
        assert_eq!(status, 200);
        assert!(model["dsl"].as_str().unwrap().contains("define viewer"));
        assert_eq!(model["authorization_model"]["schema_version"], "1.1");
        // A tenant of the directory without a bundle has no model yet (409, as for principals);
        // only a tenant that does not exist is a 404.
        let (status, _) = api
            .admin(reqwest::Method::POST, "/admin/v1/tenants", Some(json!({ "tenant": "docs-empty" })))
            .await;
        assert_eq!(status, 201);
        let (status, answer) = api.admin(reqwest::Method::GET, "/admin/v1/tenants/docs-empty/model", None).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("no_bundle")), "{answer}");
        let (status, answer) = api.admin(reqwest::Method::GET, "/admin/v1/tenants/no-such-tenant/model", None).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("unknown_tenant")), "{answer}");

        // Deleting takes access away at once; a suspended tenant answers nothing.
        let (status, _) = api
            .admin(reqwest::Method::POST, "/admin/v1/tenants/docs/tuples",
                   Some(json!({ "deletes": [{ "user": "user:anne", "relation": "member", "object": "group:eng" }] })))
            .await;
        assert_eq!(status, 200);
        let (_, answer) = api
            .post("/v1/relations/check", json!({ "tenant": tenant, "user": "user:anne", "relation": "viewer", "object": "doc:001" }))
            .await;
        assert_eq!(answer["allowed"], json!(false), "{backend}: {answer}");
        api.admin(reqwest::Method::POST, "/admin/v1/tenants/docs/suspend", None).await;
        let (status, answer) = api
            .post("/v1/relations/check", json!({ "tenant": tenant, "user": "user:bob", "relation": "viewer", "object": "doc:x" }))
            .await;
        assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("tenant_suspended")));
    })
    .await;
}

#[tokio::test]
async fn check_decisions_are_granted_by_relations_written_at_run_time() {
    on_both_backends(|api, backend| async move {
        let check = |who: &str| {
            json!({ "tenant": "acme", "principal": { "id": who }, "action": "doc:read",
                    "resource": { "type": "doc", "id": "release-checklist" }, "explain": true })
        };
        // alice is in team ops, which is in platform, which views the runbooks folder.
        let (_, decision) = api.post("/v1/check", check("alice")).await;
        assert_eq!(decision["decision"], "allow", "{backend}: {decision}");
        assert_eq!(decision["reasons"][0]["kind"], "relation");
        let path: Vec<String> = decision["reasons"][0]["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(path.first().map(String::as_str), Some("doc:release-checklist#viewer"));
        assert_eq!(path.last().map(String::as_str), Some("user:alice"));
        assert!(path.iter().any(|s| s.starts_with("folder:runbooks#viewer")), "{path:?}");
        let (_, decision) = api.post("/v1/check", check("dave")).await;
        assert_eq!(decision["decision"], "deny");

        // A tuple written through the admin API grants the next decision.
        let (status, written) = api
            .admin(reqwest::Method::POST, "/admin/v1/tenants/acme/tuples",
                   Some(json!({ "writes": [{ "user": "user:dave", "relation": "member", "object": "team:ops" }] })))
            .await;
        assert_eq!(status, 200, "{written}");
        let (_, decision) = api.post("/v1/check", check("dave")).await;
        assert_eq!(decision["decision"], "allow", "{backend}: {decision}");
        assert_eq!(
            decision["revision"]["tuples"].to_string(),
            written["revision"].as_str().unwrap(),
            "the decision names the tuple revision it used"
        );
    })
    .await;
}

#[tokio::test]
async fn the_grpc_api_writes_and_queries_relations() {
    use pb::relation_tuples_client::RelationTuplesClient;
    use pb::relations_client::RelationsClient;
    use portcullis_server::edges::grpc::pb;
    use tonic::transport::Endpoint;

    let dir = tempfile::tempdir().unwrap();
    let bundles = copy_demo(dir.path());
    let (server, _api) = start(&bundles, "").await;
    let public = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let admin = Endpoint::from_shared(format!("http://{}", server.admin_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut relations = RelationsClient::new(public.clone());
    let mut tuples = RelationTuplesClient::new(admin);

    let tuple = |user: &str, relation: &str, object: &str| pb::RelationTuple {
        user: user.into(),
        relation: relation.into(),
        object: object.into(),
        condition: None,
    };
    let mut write = tonic::Request::new(pb::WriteTuplesRequest {
        tenant: "acme".into(),
        writes: vec![tuple("user:erin", "member", "team:ops")],
        ..Default::default()
    });
    write.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    let revision = tuples.write(write).await.unwrap().into_inner().revision;

    // Without an admin token, tuple calls are refused.
    let refused = tuples
        .read(pb::ReadTuplesRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let answer = relations
        .check(pb::RelationCheckRequest {
            tenant: "acme".into(),
            user: "user:erin".into(),
            relation: "viewer".into(),
            object: "doc:release-checklist".into(),
            consistency: Some(pb::Consistency {
                at_least: revision.clone(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.allowed, "{answer:?}");
    assert_eq!(answer.path.last().map(String::as_str), Some("user:erin"));

    let listed = relations
        .list_objects(pb::ListObjectsRequest {
            tenant: "acme".into(),
            user: "user:erin".into(),
            relation: "viewer".into(),
            r#type: "doc".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.objects, ["doc:release-checklist"]);
    assert!(listed.continuation.is_empty());
    let mut stream = relations
        .streamed_list_objects(pb::ListObjectsRequest {
            tenant: "acme".into(),
            user: "user:erin".into(),
            relation: "viewer".into(),
            r#type: "folder".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        streamed.push(item.object);
    }
    assert_eq!(streamed, ["folder:release", "folder:runbooks"]);

    let users = relations
        .list_users(pb::ListUsersRequest {
            tenant: "acme".into(),
            object: "team:ops".into(),
            relation: "member".into(),
            user_filters: vec!["user".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(users.users, ["user:alice", "user:erin"]);

    let batch = relations
        .batch_check(pb::RelationBatchCheckRequest {
            tenant: "acme".into(),
            checks: vec![
                pb::RelationCheckRequest {
                    user: "user:carol".into(),
                    relation: "viewer".into(),
                    object: "doc:postmortem-42".into(),
                    correlation_id: "no-time".into(),
                    ..Default::default()
                },
                pb::RelationCheckRequest {
                    user: "user:bob".into(),
                    relation: "viewer".into(),
                    object: "doc:postmortem-42".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.results[0].error_code, "missing_condition_parameter");
    assert_eq!(batch.results[0].correlation_id, "no-time");
    assert!(batch.results[1].allowed);

    // An unknown type and an unknown relation have codes of their own.
    for (object, relation, code) in [
        ("nosuch:1", "viewer", "unknown_type"),
        ("doc:postmortem-42", "nosuch", "unknown_relation"),
    ] {
        let status = relations
            .check(pb::RelationCheckRequest {
                tenant: "acme".into(),
                user: "user:bob".into(),
                relation: relation.into(),
                object: object.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("{code}: ")),
            "{status:?}"
        );
    }

    let tree = relations
        .expand(pb::ExpandRequest {
            tenant: "acme".into(),
            object: "team:ops".into(),
            relation: "member".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(tree.fields.contains_key("tree"), "{tree:?}");

    let bad = relations
        .check(pb::RelationCheckRequest {
            tenant: "acme".into(),
            user: "erin".into(),
            relation: "viewer".into(),
            object: "doc:x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("invalid_user"), "{}", bad.message());
    server.stop().await;
}
