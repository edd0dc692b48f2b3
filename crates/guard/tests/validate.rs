//! The validation stage in front of an axum router: each rule with good and bad inputs from the
//! query, URL-encoded forms, JSON and multipart bodies; configuration errors.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed step must fail the test"
)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::routing::any;
use http_body_util::BodyExt as _;
use portcullis_guard::validate::RawValidation;
use portcullis_guard::{StageLayer, Validation, ValidationCheck};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn config(value: Value) -> Result<Validation, String> {
    let raw: RawValidation = serde_json::from_value(value).map_err(|error| error.to_string())?;
    Validation::try_from(raw).map_err(|error| error.to_string())
}

fn rules() -> Validation {
    config(json!({
        "skip": ["POST /webhooks/{*rest}"],
        "max_body_bytes": 4096,
        "routes": [
            {
                "route": "POST /orders",
                "unknown": "refuse",
                "params": {
                    "quantity": {"type": "integer", "required": true, "min": 1, "max": 100},
                    "price": {"type": "number", "min": 0.01},
                    "gift": {"type": "boolean"},
                    "email": {"format": "email"},
                    "code": {"pattern": "[A-Z]{3}-[0-9]{4}", "max_length": 8},
                    "note": {"min_length": 2, "max_length": 10},
                    "status": {"enum": ["open", "closed"]},
                    "items[].sku": {"required": true, "pattern": "[a-z0-9]+"},
                    "customer.mobile": {"format": "mobile"},
                    "attachment": {"type": "file"}
                }
            },
            {
                "route": "GET /users/{id}",
                "params": {"fields": {"enum": ["name", "email"]}, "id_card": {"format": "resident_id"}}
            },
            {
                "route": "* /any",
                "params": {"ip": {"format": "ip", "required": true}}
            }
        ]
    }))
    .unwrap()
}

fn app() -> Router {
    Router::new()
        .route("/{*path}", any(|| async { "reached" }))
        .layer(StageLayer::new(ValidationCheck::new(Arc::new(rules()))))
}

/// Sends a request; answers the status and, for refusals, `(code, field)`.
async fn send(request: Request) -> (StatusCode, Option<(String, String)>) {
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if status == StatusCode::OK {
        assert_eq!(&bytes[..], b"reached");
        return (status, None);
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["stage"], "validation", "{body}");
    let field = body["error"]["field"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (
        status,
        Some((body["error"]["code"].as_str().unwrap().to_owned(), field)),
    )
}

fn json_order(body: Value) -> Request {
    Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn form(path: &str, body: &str) -> Request {
    Request::post(path)
        .header(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(uri: &str) -> Request {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn refused(code: &str, field: &str) -> (StatusCode, Option<(String, String)>) {
    (
        StatusCode::BAD_REQUEST,
        Some((code.to_owned(), field.to_owned())),
    )
}

const PASSED: (StatusCode, Option<(String, String)>) = (StatusCode::OK, None);

#[tokio::test]
async fn json_bodies_are_checked_leaf_by_leaf() {
    let good = json!({
        "quantity": 3, "price": 9.5, "gift": true, "email": "a.b@example.com",
        "code": "ABC-1234", "note": "hello", "status": "open",
        "items": [{"sku": "a1"}, {"sku": "b2"}], "customer": {"mobile": "13812345678"}
    });
    assert_eq!(send(json_order(good.clone())).await, PASSED);
    let cases: &[(&str, Value, &str, &str)] = &[
        ("quantity", json!(0), "invalid_parameter", "quantity"),
        ("quantity", json!(101), "invalid_parameter", "quantity"),
        ("quantity", json!("3"), "invalid_parameter", "quantity"),
        ("quantity", json!(2.5), "invalid_parameter", "quantity"),
        ("price", json!(0), "invalid_parameter", "price"),
        ("gift", json!("yes"), "invalid_parameter", "gift"),
        (
            "email",
            json!("not-an-address"),
            "invalid_parameter",
            "email",
        ),
        ("code", json!("abc-1234"), "invalid_parameter", "code"),
        ("code", json!("XABC-1234"), "invalid_parameter", "code"),
        ("note", json!("x"), "invalid_parameter", "note"),
        ("note", json!("eleven chars"), "invalid_parameter", "note"),
        ("status", json!("pending"), "invalid_parameter", "status"),
        (
            "items",
            json!([{"sku": "ok"}, {"sku": "NOT OK"}]),
            "invalid_parameter",
            "items[1].sku",
        ),
        ("items", json!([]), "missing_parameter", "items[].sku"),
        (
            "customer",
            json!({"mobile": "12345"}),
            "invalid_parameter",
            "customer.mobile",
        ),
        ("extra", json!(1), "unknown_parameter", "extra"),
    ];
    for (key, value, code, field) in cases {
        let mut body = good.clone();
        body[*key] = value.clone();
        assert_eq!(
            send(json_order(body)).await,
            refused(code, field),
            "{key} = {value}"
        );
    }
    // A missing required parameter, and null counted as missing.
    let mut body = good.clone();
    body.as_object_mut().unwrap().remove("quantity");
    assert_eq!(
        send(json_order(body)).await,
        refused("missing_parameter", "quantity")
    );
    let mut body = good;
    body["quantity"] = Value::Null;
    assert_eq!(
        send(json_order(body)).await,
        refused("missing_parameter", "quantity")
    );
    // A body that does not parse.
    let broken = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"quantity\": "))
        .unwrap();
    assert_eq!(send(broken).await, refused("malformed_body", ""));
}

#[tokio::test]
async fn forms_and_queries_are_text_read_as_their_type() {
    assert_eq!(
        send(form(
            "/orders",
            "quantity=5&price=1.5&gift=false&items%5B0%5D.sku=x1"
        ))
        .await,
        PASSED
    );
    assert_eq!(
        send(form("/orders", "quantity=five&items%5B0%5D.sku=x1")).await,
        refused("invalid_parameter", "quantity")
    );
    // Every value of a repeated name is checked.
    assert_eq!(
        send(form(
            "/orders",
            "quantity=5&quantity=500&items%5B0%5D.sku=x1"
        ))
        .await,
        refused("invalid_parameter", "quantity")
    );
    // The query counts too.
    let request = Request::post("/orders?quantity=0")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(request).await,
        refused("invalid_parameter", "quantity")
    );
    // Unknown parameters pass on a route that allows them; the path parameter is not a
    // parameter.
    assert_eq!(send(get("/users/7?fields=name&other=1")).await, PASSED);
    assert_eq!(
        send(get("/users/7?fields=password")).await,
        refused("invalid_parameter", "fields")
    );
    assert_eq!(
        send(get("/users/7?id_card=11010519491231002X")).await,
        PASSED
    );
    assert_eq!(
        send(get("/users/7?id_card=110105194912310021")).await,
        refused("invalid_parameter", "id_card")
    );
    // `*` matches any method.
    assert_eq!(send(get("/any?ip=::1")).await, PASSED);
    assert_eq!(
        send(form("/any", "ip=999.1.1.1")).await,
        refused("invalid_parameter", "ip")
    );
}

#[tokio::test]
async fn multipart_text_and_files() {
    fn multipart(parts: &[(&str, Option<&str>, &str)]) -> Request {
        let mut body = String::new();
        for (name, file, value) in parts {
            body.push_str("--XyZ\r\n");
            match file {
                Some(file) => body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: text/plain\r\n\r\n"
                )),
                None => body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                )),
            }
            body.push_str(value);
            body.push_str("\r\n");
        }
        body.push_str("--XyZ--\r\n");
        Request::post("/orders")
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
            .body(Body::from(body))
            .unwrap()
    }
    let good = [
        ("quantity", None, "2"),
        ("items[0].sku", None, "k9"),
        ("attachment", Some("a.txt"), "hello"),
    ];
    assert_eq!(send(multipart(&good)).await, PASSED);
    assert_eq!(
        send(multipart(&[
            ("quantity", None, "2"),
            ("items[0].sku", None, "k9"),
            ("attachment", None, "text, not a file")
        ]))
        .await,
        refused("invalid_parameter", "attachment")
    );
    assert_eq!(
        send(multipart(&[
            ("quantity", Some("q.txt"), "2"),
            ("items[0].sku", None, "k9")
        ]))
        .await,
        refused("invalid_parameter", "quantity")
    );
    let broken = Request::post("/orders")
        .header(header::CONTENT_TYPE, "multipart/form-data")
        .body(Body::from("--x\r\n"))
        .unwrap();
    assert_eq!(send(broken).await, refused("malformed_body", ""));
}

#[tokio::test]
async fn skipped_and_unruled_routes_pass_and_bodies_are_bounded() {
    assert_eq!(
        send(form("/webhooks/github/push", "anything=1")).await,
        PASSED
    );
    assert_eq!(send(form("/elsewhere", "quantity=-1")).await, PASSED);
    let large = json!({"quantity": 1, "note": "x".repeat(5000)});
    let response = app().oneshot(json_order(large)).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn bodies_of_other_types_are_not_read_and_stream_on() {
    // Larger than the stage's limit, but of a type no stage parses: the query is checked, the
    // body is left to the application whole.
    let upload = |query: &str| {
        Request::post(format!("/orders?{query}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(vec![7u8; 10_000]))
            .unwrap()
    };
    let counting = Router::new()
        .route(
            "/orders",
            any(|request: Request| async move {
                let bytes = request.into_body().collect().await.unwrap().to_bytes();
                bytes.len().to_string()
            }),
        )
        .layer(StageLayer::new(ValidationCheck::new(Arc::new(rules()))));
    let response = counting
        .clone()
        .oneshot(upload("quantity=2&items%5B0%5D.sku=a"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"10000");
    let response = counting.oneshot(upload("quantity=0")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn configuration_errors_name_where_they_are() {
    let cases = [
        (json!({"routes": [{"route": "/orders"}]}), "routes[0]"),
        (json!({"routes": [{"route": "post /orders"}]}), "routes[0]"),
        (json!({"routes": [{"route": "POST orders"}]}), "routes[0]"),
        (
            json!({"routes": [{"route": "GET /a", "params": {"q": {"pattern": "("}}}]}),
            "routes[0].params.q.pattern",
        ),
        (
            json!({"routes": [{"route": "GET /a", "params": {"q": {"type": "integer", "min": 5, "max": 1}}}]}),
            "routes[0].params.q",
        ),
        (
            json!({"routes": [{"route": "GET /a", "params": {"q": {"min": 1}}}]}),
            "routes[0].params.q",
        ),
        (
            json!({"routes": [{"route": "GET /a", "params": {"q": {"type": "integer", "max_length": 3}}}]}),
            "routes[0].params.q",
        ),
        (
            json!({"routes": [{"route": "GET /a", "params": {"q": {"min_length": 3, "max_length": 1}}}]}),
            "routes[0].params.q",
        ),
        (
            json!({"routes": [{"route": "GET /a", "params": {"q": {"enum": []}}}]}),
            "routes[0].params.q.enum",
        ),
        (
            json!({"routes": [{"route": "GET /a", "params": {"q": {"format": "postcode"}}}]}),
            "routes[0].params.q.format",
        ),
        (
            json!({"routes": [{"route": "GET /a"}, {"route": "GET /a"}]}),
            "routes[1]",
        ),
        (json!({"skip": ["GET nowhere"]}), "skip[0]"),
        (json!({"max_body_bytes": 0}), "max_body_bytes"),
    ];
    for (value, at) in cases {
        let error = config(value.clone()).unwrap_err();
        assert!(error.starts_with(&format!("{at}:")), "{value}: {error}");
    }
    // Unknown keys are refused by the parser, naming the key.
    let error = config(json!({"routes": [{"route": "GET /a", "params": {"q": {"maximum": 3}}}]}))
        .unwrap_err();
    assert!(error.contains("maximum"), "{error}");
}

fn range_rules(min: i64, max: i64) -> Validation {
    config(json!({"routes": [{"route": "GET /n", "params": {"n": {"type": "integer", "min": min, "max": max}}}]}))
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// An integer range accepts exactly the integers inside it, from the query and from JSON.
    #[test]
    fn integer_ranges_accept_exactly_their_members(min in -1000i64..1000, span in 0i64..500, value in -2000i64..2000) {
        let rules = range_rules(min, min + span);
        let route = rules.rules_for(&axum::http::Method::GET, "/n").unwrap().clone();
        let inside = (min..=min + span).contains(&value);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for request in [
            Request::get(format!("/n?n={value}")).body(Body::empty()).unwrap(),
            Request::get("/n")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({"n": value}).to_string()))
                .unwrap(),
        ] {
            let params = runtime
                .block_on(portcullis_guard::params::params_of(request, 1024, portcullis_guard::Stage::Validation))
                .unwrap()
                .1;
            prop_assert_eq!(route.check(&params).is_ok(), inside);
        }
    }

    /// A length rule counts characters, not bytes.
    #[test]
    fn lengths_count_characters(text in "\\PC{0,20}", max in 0usize..20) {
        let rules = config(json!({"routes": [{"route": "GET /t", "params": {"t": {"max_length": max}}}]})).unwrap();
        let route = rules.rules_for(&axum::http::Method::GET, "/t").unwrap().clone();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let request = Request::get("/t")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"t": text}).to_string()))
            .unwrap();
        let params = runtime
            .block_on(portcullis_guard::params::params_of(request, 4096, portcullis_guard::Stage::Validation))
            .unwrap()
            .1;
        prop_assert_eq!(route.check(&params).is_ok(), text.chars().count() <= max);
    }
}
