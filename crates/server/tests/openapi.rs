//! The OpenAPI documents (`/openapi.json` on the public listener, describing exactly the public
//! API, and on the admin listener, describing exactly the admin API) and the `/docs` page, held
//! against the code: every route each router registers is documented in its listener's document
//! and nothing else, every error code the server can answer is listed, the page loads nothing
//! from elsewhere, and every documented example request gets a documented status from the real
//! routers, with a body that matches the documented schema.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use portcullis_server::identity::Verifier;
use portcullis_server::snapshots::reload::reload_all;
use portcullis_server::tls::PeerInfo;
use portcullis_server::{ADMIN_OPENAPI, AppState, Config, OPENAPI, Overrides};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "ops-admin-token-for-tests";
const IDENTITY_SECRET: &str = "identity-secret-for-the-openapi-tests";
const ISSUER: &str = "https://id.acme.example";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];
/// Codes no operation can carry: they answer paths and methods that are not endpoints. The
/// document lists them in the `ErrorCode` catalogue and describes them in `info`.
const FALLBACK_CODES: [&str; 2] = ["not_found", "method_not_allowed"];

/// The two listeners, each with its own router and document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Public,
    Admin,
}

const LISTENERS: [Listener; 2] = [Listener::Public, Listener::Admin];

impl Listener {
    /// The document text this listener serves.
    fn text(self) -> &'static str {
        match self {
            Listener::Public => OPENAPI,
            Listener::Admin => ADMIN_OPENAPI,
        }
    }

    fn document(self) -> Value {
        serde_json::from_str(self.text())
            .unwrap_or_else(|e| panic!("the {self:?} document is not valid JSON: {e}"))
    }

    fn router(self, state: &Arc<AppState>) -> Router {
        match self {
            Listener::Public => portcullis_server::app(Arc::clone(state)),
            Listener::Admin => portcullis_server::admin::router(Arc::clone(state)),
        }
    }

    /// The source module that registers this listener's routes.
    fn module(self) -> &'static str {
        match self {
            Listener::Public => "edges/mod",
            Listener::Admin => "admin/mod",
        }
    }

    /// The port of the default address the document's `servers` names.
    fn default_port(self) -> &'static str {
        match self {
            Listener::Public => ":9700",
            Listener::Admin => ":9701",
        }
    }
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Follows `$ref`s (local JSON pointers) until a non-reference.
fn resolve<'d>(doc: &'d Value, mut node: &'d Value) -> &'d Value {
    for _ in 0..32 {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            return node;
        };
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("`{reference}` is not a local reference"));
        node = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("`{reference}` does not resolve"));
    }
    panic!("a $ref chain is too long")
}

/// One documented operation.
struct Operation<'d> {
    path: String,
    /// The document's own `security`, which applies where an operation has none.
    default_security: &'d Value,
    method: &'static str,
    op: &'d Value,
    /// Path-level and operation-level parameters (the latter override), resolved.
    params: Vec<&'d Value>,
}

impl Operation<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    fn tags(&self) -> Vec<&str> {
        self.op["tags"]
            .as_array()
            .map(|tags| tags.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    fn statuses(&self) -> BTreeSet<u16> {
        self.op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{} has no responses", self.name()))
            .keys()
            .map(|status| status.parse().expect("responses are keyed by status"))
            .collect()
    }

    /// The security schemes, per alternative (`[]` is an anonymous alternative).
    fn security(&self) -> Vec<Vec<String>> {
        self.op
            .get("security")
            .unwrap_or(self.default_security)
            .as_array()
            .map(|alternatives| {
                alternatives
                    .iter()
                    .map(|alternative| {
                        alternative
                            .as_object()
                            .map(|schemes| schemes.keys().cloned().collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn uri(&self) -> String {
        let mut uri = self.path.clone();
        for param in self.params.iter().filter(|p| p["in"] == "path") {
            let name = param["name"].as_str().unwrap();
            // An integer parameter (a bundle version) has an integer example.
            let example = match &param["example"] {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                _ => panic!("{}: path parameter {name} has no example", self.name()),
            };
            uri = uri.replace(&format!("{{{name}}}"), &example);
        }
        // Query parameters with an example are sent too: some operations need one (deleting
        // a tenant takes `?confirm=<tenant>`).
        let query: Vec<String> = self
            .params
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| {
                let example = match p.get("example")? {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let encode = |text: &str| {
                    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                };
                Some(format!(
                    "{}={}",
                    encode(p["name"].as_str()?),
                    encode(&example)
                ))
            })
            .collect();
        if !query.is_empty() {
            uri = format!("{uri}?{}", query.join("&"));
        }
        uri
    }

    fn example_headers(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .filter(|p| p["in"] == "header")
            .filter_map(|p| {
                // A list (`style: simple`) is sent comma-separated.
                let example = match p.get("example")? {
                    Value::String(text) => text.clone(),
                    Value::Array(items) => items
                        .iter()
                        .map(|item| item.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()?
                        .join(", "),
                    _ => return None,
                };
                Some((p["name"].as_str()?.to_owned(), example))
            })
            .collect()
    }

    /// The JSON request body examples, by name.
    fn request_examples<'a>(&'a self, doc: &'a Value) -> Vec<(String, &'a Value)> {
        let Some(body) = self.op.get("requestBody") else {
            return Vec::new();
        };
        let media = &resolve(doc, body)["content"]["application/json"];
        examples_of(doc, media)
    }
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let item = resolve(doc, item);
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            let mut params: Vec<&Value> = Vec::new();
            let levels = [item.get("parameters"), op.get("parameters")];
            for param in levels
                .into_iter()
                .flatten()
                .flat_map(|p| p.as_array().unwrap())
            {
                let param = resolve(doc, param);
                params.retain(|known| known["name"] != param["name"] || known["in"] != param["in"]);
                params.push(param);
            }
            out.push(Operation {
                path: path.clone(),
                default_security: &doc["security"],
                method,
                op,
                params,
            });
        }
    }
    out
}

/// The keys of every JSON object, in the order the text writes them (`serde_json::Value`
/// sorts them).
#[derive(Debug, Default)]
struct Keys(Vec<(String, Keys)>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    keys.push((key, map.next_value::<Keys>()?));
                }
                Ok(Keys(keys))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Keys, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Keys::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_unit<E>(self) -> Result<Keys, E> {
                Ok(Keys::default())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Keys {
    fn get(&self, key: &str) -> Option<&Keys> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k == key)
    }
}

/// Sorts operations into the order the document lists them (paths, then methods within a
/// path). The example round trip runs every example on one state, so a stateful walkthrough
/// (create a tenant, upload its bundle, write a principal and read it back, suspend and
/// resume, delete) only works in the order the document tells it.
fn in_document_order(text: &str, operations: &mut [Operation<'_>]) {
    let keys: Keys = serde_json::from_str(text).expect("the document is valid JSON");
    let paths = keys.get("paths").expect("paths");
    operations.sort_by_key(|op| {
        let path = paths.position(&op.path).unwrap();
        let method = paths.0[path].1.position(op.method).unwrap();
        (path, method)
    });
}

/// The examples of a media type object: `examples` (resolved) or `example`.
fn examples_of<'d>(doc: &'d Value, media: &'d Value) -> Vec<(String, &'d Value)> {
    if let Some(examples) = media.get("examples").and_then(Value::as_object) {
        return examples
            .iter()
            .map(|(name, example)| (name.clone(), &resolve(doc, example)["value"]))
            .collect();
    }
    media
        .get("example")
        .map(|example| vec![("example".to_owned(), example)])
        .unwrap_or_default()
}

// ------------------------------------------------------------------------ a small validator

/// Validates `value` against a JSON Schema (2020-12) using the keywords this document uses.
/// `format` is not checked; any other keyword the validator does not know is a failure, so the
/// document cannot silently outgrow it. Patterns are read as the regex crate reads them, which
/// agrees with ECMAScript for the constructs the documents use (classes with `\uXXXX`, groups,
/// bounded repetition).
fn validate(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    validate_at(doc, schema, value, "$")
}

fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        other => panic!("unknown type `{other}` in the document"),
    }
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let Some(keywords) = schema.as_object() else {
        out.push(format!("{at}: the schema is not an object"));
        return;
    };
    for (keyword, rule) in keywords {
        match keyword.as_str() {
            "$ref" => check(doc, resolve(doc, schema), value, at, out),
            "type" => {
                let kinds: Vec<&str> = match rule {
                    Value::String(kind) => vec![kind],
                    Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
                    _ => panic!("{at}: `type` is neither a string nor a list"),
                };
                if !kinds.iter().any(|kind| has_type(value, kind)) {
                    out.push(format!("{at}: {value} is not of type {kinds:?}"));
                }
            }
            "const" if value != rule => out.push(format!("{at}: {value} is not {rule}")),
            "enum" if !rule.as_array().unwrap().contains(value) => {
                out.push(format!("{at}: {value} is not one of {rule}"));
            }
            "properties" => {
                if let Some(object) = value.as_object() {
                    for (name, sub) in rule.as_object().unwrap() {
                        if let Some(member) = object.get(name) {
                            check(doc, sub, member, &format!("{at}.{name}"), out);
                        }
                    }
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for name in rule.as_array().unwrap().iter().filter_map(Value::as_str) {
                        if !object.contains_key(name) {
                            out.push(format!("{at}: `{name}` is missing"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(object) = value.as_object() {
                    let declared = keywords.get("properties").and_then(Value::as_object);
                    for (name, member) in object {
                        if declared.is_some_and(|d| d.contains_key(name)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(true) => {}
                            Value::Bool(false) => {
                                out.push(format!("{at}: `{name}` is not a documented property"));
                            }
                            sub => check(doc, sub, member, &format!("{at}.{name}"), out),
                        }
                    }
                }
            }
            "propertyNames" => {
                if let Some(object) = value.as_object() {
                    for name in object.keys() {
                        check(doc, rule, &json!(name), &format!("{at}[key {name}]"), out);
                    }
                }
            }
            "minProperties" => {
                if let Some(object) = value.as_object()
                    && (object.len() as u64) < rule.as_u64().unwrap()
                {
                    out.push(format!("{at}: fewer than {rule} properties"));
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (index, item) in items.iter().enumerate() {
                        check(doc, rule, item, &format!("{at}[{index}]"), out);
                    }
                }
            }
            "minItems" | "maxItems" => {
                if let Some(items) = value.as_array() {
                    let bound = rule.as_u64().unwrap();
                    let len = items.len() as u64;
                    if (keyword == "minItems" && len < bound)
                        || (keyword == "maxItems" && len > bound)
                    {
                        out.push(format!("{at}: {len} items break {keyword} {bound}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(text) = value.as_str() {
                    let bound = rule.as_u64().unwrap();
                    let len = text.chars().count() as u64;
                    if (keyword == "minLength" && len < bound)
                        || (keyword == "maxLength" && len > bound)
                    {
                        out.push(format!("{at}: length {len} breaks {keyword} {bound}"));
                    }
                }
            }
            "minimum" => {
                if let Some(number) = value.as_f64()
                    && number < rule.as_f64().unwrap()
                {
                    out.push(format!("{at}: {number} is below {rule}"));
                }
            }
            "maximum" => {
                if let Some(number) = value.as_f64()
                    && number > rule.as_f64().unwrap()
                {
                    out.push(format!("{at}: {number} is above {rule}"));
                }
            }
            "pattern" => {
                if let Some(text) = value.as_str()
                    && !pattern(rule.as_str().unwrap()).is_match(text)
                {
                    out.push(format!("{at}: {text:?} does not match {rule}"));
                }
            }
            "oneOf" | "anyOf" | "allOf" => {
                let alternatives = rule.as_array().unwrap();
                let results: Vec<Vec<String>> = alternatives
                    .iter()
                    .map(|alternative| validate_at(doc, alternative, value, at))
                    .collect();
                let held = results.iter().filter(|r| r.is_empty()).count();
                let ok = match keyword.as_str() {
                    "oneOf" => held == 1,
                    "anyOf" => held >= 1,
                    _ => held == alternatives.len(),
                };
                if !ok {
                    out.push(format!(
                        "{at}: {value} fails {keyword} ({held} of {} alternatives hold): {:?}",
                        alternatives.len(),
                        results.concat()
                    ));
                }
            }
            "const" | "enum" => {}
            "description" | "examples" | "default" | "title" | "format" => {}
            other if other.starts_with("x-") => {}
            other => out.push(format!(
                "{at}: the test's validator does not know `{other}`"
            )),
        }
    }
}

/// A document's pattern, compiled (with room for bounded repetitions of Unicode classes).
fn pattern(text: &str) -> regex::Regex {
    regex::RegexBuilder::new(text)
        .size_limit(64 << 20)
        .build()
        .unwrap_or_else(|e| panic!("pattern {text:?} does not compile: {e}"))
}

fn validate_at(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    check(doc, schema, value, at, &mut problems);
    problems
}

#[test]
fn the_validator_catches_what_it_should() {
    let doc = Listener::Public.document();
    let error = json!({"$ref": "#/components/schemas/Error"});
    let good = json!({"error": {"code": "malformed_json", "message": "x"}});
    assert!(validate(&doc, &error, &good).is_empty());
    for bad in [
        json!({"error": {"code": "no_such_code", "message": "x"}}),
        json!({"error": {"code": "malformed_json"}}),
        json!({"error": {"code": "malformed_json", "message": "x", "extra": 1}}),
        json!({"error": "malformed_json"}),
    ] {
        assert!(
            !validate(&doc, &error, &bad).is_empty(),
            "{bad} should fail"
        );
    }
}

/// The pattern of a named schema of the public document (compiled once per test run).
fn schema_pattern(name: &str) -> &'static regex::Regex {
    static PATTERNS: std::sync::LazyLock<BTreeMap<String, regex::Regex>> =
        std::sync::LazyLock::new(|| {
            let doc = Listener::Public.document();
            doc["components"]["schemas"]
                .as_object()
                .unwrap()
                .iter()
                .filter_map(|(name, schema)| {
                    Some((name.clone(), pattern(schema.get("pattern")?.as_str()?)))
                })
                .collect()
        });
    PATTERNS
        .get(name)
        .unwrap_or_else(|| panic!("{name} has no pattern"))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// The documented patterns accept exactly what the server's parsers accept, on strings
    /// built from the characters the rules are about (separators, wildcards, whitespace that
    /// `\s` spells differently in ECMAScript, Python and Rust, signs, digits).
    #[test]
    fn documented_patterns_agree_with_the_parsers(
        text in "[a-c0-2:#@* \\t.+\u{85}\u{a0}\u{feff}\u{2028}é-]{0,12}",
    ) {
        use portcullis_policy::rebac::{ObjectRef, Tuple, User};
        let cases: [(&str, bool); 5] = [
            ("RelationUser", text.parse::<User>().is_ok()),
            ("RelationObject", text.parse::<ObjectRef>().is_ok()),
            ("RelationName", Tuple::parse("user:x", &text, "doc:y").is_ok()),
            ("TenantId", portcullis_core::TenantId::new(&text).is_ok()),
            ("RevisionToken", text.parse::<u64>().is_ok()),
        ];
        for (name, parsed) in cases {
            proptest::prop_assert_eq!(
                schema_pattern(name).is_match(&text),
                parsed,
                "{} and the parser disagree on {:?}",
                name,
                text
            );
        }
    }

    /// Revision tokens: every u64, and nothing above.
    #[test]
    fn the_revision_token_pattern_is_every_u64(number in proptest::prelude::any::<u64>(), zeros in 0usize..3) {
        let text = format!("{}{number}", "0".repeat(zeros));
        proptest::prop_assert!(schema_pattern("RevisionToken").is_match(&text));
        let above = (u128::from(number) + u128::from(u64::MAX) + 1).to_string();
        proptest::prop_assert!(!schema_pattern("RevisionToken").is_match(&above));
    }
}

// ------------------------------------------------------------------------ (a) the document

#[test]
fn each_document_is_openapi_3_1_with_its_listeners_endpoints() {
    let public = [
        ("post", "/v1/check"),
        ("post", "/v1/check/batch"),
        ("post", "/v1/explain"),
        ("post", "/access/v1/evaluation"),
        ("post", "/access/v1/evaluations"),
        ("get", "/.well-known/authzen-configuration"),
        ("get", "/v1/authz/nginx"),
        ("get", "/v1/authz/traefik"),
        ("get", "/v1/authz/envoy"),
        ("get", "/v1/authz/envoy/{path}"),
        ("post", "/v1/authz/envoy/{path}"),
        ("get", "/v1/sbom"),
        ("get", "/v1/security/dependency-scan"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
    ];
    let admin = [
        ("get", "/admin/v1/tenants"),
        ("get", "/admin/v1/tenants/{tenant}"),
        ("put", "/admin/v1/tenants/{tenant}/bundle"),
        ("post", "/admin/v1/reload"),
        ("get", "/openapi.json"),
    ];
    let mut ids = BTreeSet::new();
    for listener in LISTENERS {
        let doc = listener.document();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1."),
            "{listener:?}: not OpenAPI 3.1"
        );
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
        // One server, the listener's own: a client (or schemathesis) pointed at a document
        // talks to the listener that served it.
        let servers = doc["servers"].as_array().unwrap();
        assert_eq!(servers.len(), 1, "{listener:?}: servers");
        assert!(
            servers[0]["url"]
                .as_str()
                .unwrap()
                .ends_with(listener.default_port()),
            "{listener:?}: the server is not the listener's default address"
        );
        let expected: &[(&str, &str)] = match listener {
            Listener::Public => &public,
            Listener::Admin => &admin,
        };
        for (method, path) in expected {
            assert!(
                doc["paths"][path][method].is_object(),
                "{listener:?}: {method} {path} is not documented"
            );
        }
        let tags: BTreeSet<&str> = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        for op in operations(&doc) {
            let name = format!("{listener:?} {}", op.name());
            assert!(op.op["summary"].is_string(), "{name} has no summary");
            assert!(
                op.op.get("servers").is_none(),
                "{name}: the document's servers apply to every operation"
            );
            let id = op.op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no operationId"));
            // Unique across both documents: a client generated from both has no clash.
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            assert!(
                !op.tags().is_empty() && op.tags().iter().all(|t| tags.contains(t)),
                "{name} has no declared tag"
            );
            for (status, response) in op.op["responses"].as_object().unwrap() {
                let response = resolve(&doc, response);
                assert!(
                    response["description"].is_string(),
                    "{name} {status} has no description"
                );
                // Links (the stateful phase of schemathesis follows them) name an operation of
                // the same document and only parameters it has.
                for (link, spec) in response["links"].as_object().into_iter().flatten() {
                    let target = operations(&doc)
                        .into_iter()
                        .find(|other| other.op["operationId"] == spec["operationId"])
                        .unwrap_or_else(|| {
                            panic!("{name} {status} link {link}: no such operation")
                        });
                    for parameter in spec["parameters"].as_object().unwrap().keys() {
                        assert!(
                            target
                                .params
                                .iter()
                                .any(|p| p["name"] == parameter.as_str()),
                            "{name} {status} link {link}: {} has no parameter {parameter}",
                            target.name()
                        );
                    }
                }
            }
            assert_eq!(
                path_is_admin(&op.path),
                listener == Listener::Admin && op.path != "/openapi.json",
                "{name} is documented for the wrong listener"
            );
            if path_is_admin(&op.path) {
                assert_eq!(op.security(), [vec!["adminToken".to_owned()]], "{name}");
            }
            if op.path == "/openapi.json" {
                let security = op.security();
                assert!(
                    security.is_empty() || security.iter().any(Vec::is_empty),
                    "{name}: the document is served without a token"
                );
            }
            if op.path.starts_with("/v1/authz/") {
                assert_eq!(op.security(), [vec!["identityToken".to_owned()]], "{name}");
                // 429: the tenant is over its quota (`state.admit`); 414 and 431: the request
                // head is over the limits every listener checks before routing.
                assert_eq!(
                    op.statuses(),
                    BTreeSet::from([200, 400, 401, 403, 414, 429, 431]),
                    "{name}"
                );
            }
        }
    }
    let doc = Listener::Admin.document();
    let admin = &doc["components"]["securitySchemes"]["adminToken"];
    assert_eq!(
        (admin["type"].as_str(), admin["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    // The public listener takes an admin token on OpenFGA's operations (docs/openfga.md) and
    // on the supply-chain gate's reads (docs/supply-chain.md): its document declares the
    // scheme, the same as the admin document's, for those alone.
    let public = Listener::Public.document();
    assert_eq!(
        &public["components"]["securitySchemes"]["adminToken"], admin,
        "the public document declares the admin token as the admin document does"
    );
    let mut openfga = 0;
    for op in operations(&public) {
        let admin_token = op.security().iter().flatten().any(|s| s == "adminToken");
        assert_eq!(
            admin_token,
            op.tags().contains(&"OpenFGA") || op.tags().contains(&"supply chain"),
            "public {}: only OpenFGA's and the supply-chain gate's operations take an admin \
             token, and each does",
            op.name()
        );
        openfga += usize::from(admin_token && op.tags().contains(&"OpenFGA"));
    }
    assert_eq!(openfga, 16, "OpenFGA's operations");
}

/// Components of the same name mean the same thing in both documents: a schema tightened in
/// one is tightened in the other. The error catalogue differs only in which codes each listener
/// answers; a code in both has the same statuses and description.
#[test]
fn shared_components_agree_between_the_documents() {
    let public = Listener::Public.document();
    let admin = Listener::Admin.document();
    let mut shared = 0;
    for (section, items) in public["components"].as_object().unwrap() {
        for (name, item) in items.as_object().unwrap() {
            let Some(other) = admin["components"][section].get(name) else {
                continue;
            };
            shared += 1;
            if section == "schemas" && name == "ErrorCode" {
                let entries = |doc: &Value| -> BTreeMap<String, Value> {
                    doc["components"]["schemas"]["ErrorCode"]["oneOf"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| (e["const"].as_str().unwrap().to_owned(), e.clone()))
                        .collect()
                };
                let (ours, theirs) = (entries(&public), entries(&admin));
                for (code, entry) in &ours {
                    if let Some(other) = theirs.get(code) {
                        assert_eq!(entry, other, "ErrorCode `{code}` differs");
                    }
                }
                continue;
            }
            assert_eq!(item, other, "components.{section}.{name} differs");
        }
    }
    assert!(
        shared >= 10,
        "only {shared} shared components: the walk is broken"
    );
}

fn path_is_admin(path: &str) -> bool {
    path.starts_with("/admin/")
}

#[test]
fn every_reference_resolves() {
    fn walk(doc: &Value, node: &Value, found: &mut usize) {
        match node {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref") {
                    let reference = reference.as_str().expect("$ref is a string");
                    let pointer = reference.strip_prefix('#').expect("local reference");
                    assert!(
                        doc.pointer(pointer).is_some(),
                        "`{reference}` does not resolve"
                    );
                    *found += 1;
                }
                map.values().for_each(|child| walk(doc, child, found));
            }
            Value::Array(items) => items.iter().for_each(|child| walk(doc, child, found)),
            _ => {}
        }
    }
    for listener in LISTENERS {
        let doc = listener.document();
        let mut found = 0;
        walk(&doc, &doc, &mut found);
        assert!(
            found > 50,
            "{listener:?}: only {found} references: the walk is broken"
        );
    }
}

/// Every security requirement of every operation (and the document's default) names a scheme
/// of the same document's `components.securitySchemes`: a requirement naming none is one a
/// client (or schemathesis) cannot satisfy or even recognise.
#[test]
fn every_security_requirement_names_a_declared_scheme() {
    for listener in LISTENERS {
        let doc = listener.document();
        let declared = doc["components"]["securitySchemes"]
            .as_object()
            .unwrap_or_else(|| panic!("{listener:?}: no securitySchemes"));
        let mut named = 0;
        for op in operations(&doc) {
            for scheme in op.security().iter().flatten() {
                assert!(
                    declared.contains_key(scheme),
                    "{listener:?} {}: security names `{scheme}`, which the document does not declare",
                    op.name()
                );
                named += 1;
            }
        }
        assert!(
            named > 10,
            "{listener:?}: only {named} requirements: the walk is broken"
        );
    }
}

#[test]
fn every_example_matches_its_schema() {
    for listener in LISTENERS {
        examples_match_their_schemas(&listener.document());
    }
}

fn examples_match_their_schemas(doc: &Value) {
    let mut checked = 0;
    let mut problems = Vec::new();
    let mut expect = |what: String, schema: &Value, value: &Value| {
        checked += 1;
        for problem in validate(doc, schema, value) {
            problems.push(format!("{what}: {problem}"));
        }
    };
    for op in operations(doc) {
        let name = op.name();
        for param in &op.params {
            if let Some(example) = param.get("example") {
                expect(
                    format!("{name} parameter {}", param["name"]),
                    &param["schema"],
                    example,
                );
            }
        }
        if let Some(body) = op.op.get("requestBody") {
            for (media, spec) in resolve(doc, body)["content"].as_object().unwrap() {
                // An example named `invalid...` shows a request the server refuses: where the
                // schema states the rule, it is one the schema refuses too.
                for (example, value) in examples_of(doc, spec)
                    .into_iter()
                    .filter(|(example, _)| !example.starts_with("invalid"))
                {
                    expect(
                        format!("{name} request {media} `{example}`"),
                        &spec["schema"],
                        value,
                    );
                }
            }
        }
        for (status, response) in op.op["responses"].as_object().unwrap() {
            let response = resolve(doc, response);
            for (media, spec) in response["content"].as_object().into_iter().flatten() {
                for (example, value) in examples_of(doc, spec) {
                    let what = format!("{name} {status} {media} `{example}`");
                    expect(what, &spec["schema"], value);
                }
            }
            for (header, spec) in response["headers"].as_object().into_iter().flatten() {
                let spec = resolve(doc, spec);
                if let Some(example) = spec.get("example") {
                    expect(
                        format!("{name} {status} header {header}"),
                        &spec["schema"],
                        example,
                    );
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked > 30, "only {checked} examples were checked");
}

// ------------------------------------------------------------------------ reading the source

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(char),
}

/// A rough Rust lexer: identifiers, string literals (plain, byte and raw, escapes applied
/// loosely) and punctuation; comments, char literals and lifetimes' quotes are dropped.
fn lex(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == Some('/') {
            while at(i).is_some_and(|c| c != '\n') {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            i += 2;
            while at(i).is_some() && !(at(i) == Some('*') && at(i + 1) == Some('/')) {
                i += 1;
            }
            i += 2;
        } else if let Some((text, next)) = raw_string(&chars, i) {
            out.push(Token::Str(text));
            i = next;
        } else if c == '"' || (c == 'b' && at(i + 1) == Some('"')) {
            let mut k = if c == 'b' { i + 2 } else { i + 1 };
            let mut text = String::new();
            while let Some(d) = at(k) {
                match d {
                    '"' => break,
                    '\\' => {
                        if let Some(e) = at(k + 1) {
                            text.push(if e == 'n' { '\n' } else { e });
                        }
                        k += 2;
                    }
                    d => {
                        text.push(d);
                        k += 1;
                    }
                }
            }
            out.push(Token::Str(text));
            i = k + 1;
        } else if c == '\'' {
            if at(i + 1) == Some('\\') {
                let mut k = i + 3;
                while at(k).is_some_and(|d| d != '\'') {
                    k += 1;
                }
                i = k + 1;
            } else if at(i + 2) == Some('\'') {
                i += 3;
            } else {
                i += 1; // a lifetime: its name follows as an identifier
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while at(i).is_some_and(|d| d.is_alphanumeric() || d == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// `r"..."`, `r#"..."#`, `br"..."` starting at `i`: the text and the index after it.
fn raw_string(chars: &[char], i: usize) -> Option<(String, usize)> {
    let mut k = match (chars.get(i), chars.get(i + 1)) {
        (Some('r'), _) => i + 1,
        (Some('b'), Some('r')) => i + 2,
        _ => return None,
    };
    let mut hashes = 0;
    while chars.get(k) == Some(&'#') {
        hashes += 1;
        k += 1;
    }
    if chars.get(k) != Some(&'"') {
        return None;
    }
    let start = k + 1;
    let mut end = start;
    while end < chars.len()
        && !(chars[end] == '"' && (1..=hashes).all(|h| chars.get(end + h) == Some(&'#')))
    {
        end += 1;
    }
    Some((
        chars[start..end.min(chars.len())].iter().collect(),
        end + 1 + hashes,
    ))
}

fn ident(token: Option<&Token>, name: &str) -> bool {
    matches!(token, Some(Token::Ident(found)) if found == name)
}

fn punct(token: Option<&Token>, c: char) -> bool {
    token == Some(&Token::Punct(c))
}

/// The arguments of the call whose `(` is at `open`, split at top-level commas.
fn call_args(tokens: &[Token], open: usize) -> Vec<Vec<Token>> {
    let mut depth = 0;
    let mut args = vec![Vec::new()];
    for token in &tokens[open..] {
        match token {
            Token::Punct('(' | '[' | '{') => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            Token::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Token::Punct(',') if depth == 1 => {
                args.push(Vec::new());
                continue;
            }
            _ => {}
        }
        args.last_mut().unwrap().push(token.clone());
    }
    args.retain(|arg| !arg.is_empty());
    args
}

fn lex_file(path: &Path) -> Vec<Token> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Unit tests at the end of a file are not the server's behaviour.
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    lex(code)
}

/// The value of `const NAME: &str = "...";` in a module of the server crate.
fn string_const(module: &str, name: &str) -> String {
    let tokens = lex_file(&source_dir().join(format!("{module}.rs")));
    let start = tokens
        .windows(2)
        .position(|w| ident(w.first(), "const") && ident(w.get(1), name))
        .unwrap_or_else(|| panic!("no const {name} in {module}.rs"));
    tokens[start..]
        .iter()
        .find_map(|t| match t {
            Token::Str(value) => Some(value.clone()),
            _ => None,
        })
        .unwrap()
}

/// The module `other` as named from inside `module`'s folder (`forward` from `edges/mod` is
/// `edges/forward`), or from the crate root when the folder has no such file.
fn sibling(module: &str, other: &str) -> String {
    match module.rsplit_once('/') {
        Some((folder, _)) if source_dir().join(format!("{folder}/{other}.rs")).is_file() => {
            format!("{folder}/{other}")
        }
        _ => other.to_owned(),
    }
}

/// Every `.route(path, method_router)` of a source file: the path (axum's `{*rest}` captures
/// written as OpenAPI's `{rest}`) and the methods (`any` for every method).
fn routes_in(module: &str) -> Vec<(String, Vec<String>)> {
    let tokens = lex_file(&source_dir().join(format!("{module}.rs")));
    let mut routes = Vec::new();
    for i in 0..tokens.len() {
        if !(punct(tokens.get(i), '.')
            && ident(tokens.get(i + 1), "route")
            && punct(tokens.get(i + 2), '('))
        {
            continue;
        }
        let args = call_args(&tokens, i + 2);
        assert_eq!(
            args.len(),
            2,
            "{module}.rs: a .route() call without two arguments"
        );
        let path = match args[0].as_slice() {
            [Token::Str(path)] => path.clone(),
            [Token::Ident(name)] => string_const(module, name),
            [
                Token::Ident(other),
                Token::Punct(':'),
                Token::Punct(':'),
                Token::Ident(name),
            ] => string_const(&sibling(module, other), name),
            [
                Token::Ident(parent),
                Token::Punct(':'),
                Token::Punct(':'),
                Token::Ident(other),
                Token::Punct(':'),
                Token::Punct(':'),
                Token::Ident(name),
            ] => string_const(&format!("{parent}/{other}"), name),
            other => panic!("{module}.rs: cannot read the route path {other:?}"),
        };
        let mut methods = Vec::new();
        let mut depth = 0;
        for (k, token) in args[1].iter().enumerate() {
            match token {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth -= 1,
                // A layer on one route (`get(handler).layer(...)`) is not a method.
                Token::Ident(name)
                    if depth == 0
                        && punct(args[1].get(k + 1), '(')
                        && (k == 0 || punct(args[1].get(k - 1), '.'))
                        && name != "layer" =>
                {
                    let known = METHODS.contains(&name.as_str()) || name == "any";
                    assert!(
                        known,
                        "{module}.rs: unknown method router `{name}` for {path}"
                    );
                    methods.push(name.clone());
                }
                _ => {}
            }
        }
        assert!(!methods.is_empty(), "{module}.rs: no method for {path}");
        routes.push((path.replace("{*", "{"), methods));
    }
    routes
}

// ------------------------------------------------------------------------ (b) routes

#[test]
fn every_registered_route_is_documented_and_nothing_else() {
    for listener in LISTENERS {
        let doc = listener.document();
        let routes = routes_in(listener.module());
        assert!(routes.len() >= 5, "the route reader found too little");
        let mut registered = BTreeSet::new();
        for (path, methods) in &routes {
            registered.insert(path.clone());
            let item = &doc["paths"][path];
            assert!(
                item.is_object(),
                "{listener:?} route {path} is not documented in its document"
            );
            for method in methods {
                if method == "any" {
                    assert!(
                        METHODS.iter().any(|m| item.get(*m).is_some()),
                        "{path} (any method) documents no operation"
                    );
                } else {
                    assert!(
                        item[method].is_object(),
                        "{listener:?}: {method} {path} is not documented"
                    );
                }
            }
            let any = methods.iter().any(|m| m == "any");
            for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
                assert!(
                    any || methods.iter().any(|m| m == method),
                    "{listener:?}: {method} {path} is documented but not routed"
                );
            }
        }
        for path in doc["paths"].as_object().unwrap().keys() {
            assert!(
                registered.contains(path),
                "{listener:?}: {path} is documented but not routed on this listener"
            );
        }
    }
}

// ------------------------------------------------------------------------ (c) error codes

/// `snake_case` words: what error codes look like (messages have spaces).
fn code_like(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_lowercase())
        && text.split('_').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn literal_codes(tokens: &[Token], codes: &mut BTreeSet<String>) {
    for token in tokens {
        if let Token::Str(text) = token
            && code_like(text)
        {
            codes.insert(text.clone());
        }
    }
}

/// The codes of `portcullis_tenant`'s quota refusals (`QuotaLimit::code`).
fn quota_codes() -> [&'static str; 2] {
    use portcullis_tenant::quota::QuotaLimit;
    // Exhaustive: a new kind of limit stops this from compiling until it is listed here.
    let every = |limit: QuotaLimit| match limit {
        QuotaLimit::Rate | QuotaLimit::Concurrency => limit.code(),
    };
    [every(QuotaLimit::Rate), every(QuotaLimit::Concurrency)]
}

/// The tokens of the body of `fn name` in a file (between its braces), if the file defines it.
fn function_body<'t>(tokens: &'t [Token], name: &str) -> Option<&'t [Token]> {
    let start = tokens
        .windows(2)
        .position(|w| ident(w.first(), "fn") && ident(w.get(1), name))?;
    let open = start + tokens[start..].iter().position(|t| punct(Some(t), '{'))?;
    let mut depth = 0;
    for (k, token) in tokens[open..].iter().enumerate() {
        match token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(&tokens[open + 1..open + k]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every error code the server's source can answer: the code arguments of `ApiError::...(...)`
/// calls (an `if` or `match` argument gives every code-like literal of its branches),
/// following a variable to its `let` (and, when it is bound to a call of a function of the
/// same file, to that function's body) or to the closure parameter it is (and then to the
/// closure's calls) or to a quota refusal's `.limit().code()`, and `"code": "..."` in
/// hand-built error bodies.
fn error_codes_in_source() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&source_dir(), &mut files);
    let mut codes = BTreeSet::new();
    for file in files {
        let tokens = lex_file(&file);
        let mut variables = BTreeSet::new();
        for i in 0..tokens.len() {
            // `IdentityErrorKind::MissingToken => "missing_token"`: identity errors carry their
            // codes in their kind, and every edge answers them.
            if ident(tokens.get(i), "IdentityErrorKind")
                && punct(tokens.get(i + 1), ':')
                && punct(tokens.get(i + 2), ':')
                && matches!(tokens.get(i + 3), Some(Token::Ident(_)))
                && punct(tokens.get(i + 4), '=')
                && punct(tokens.get(i + 5), '>')
                && let Some(Token::Str(text)) = tokens.get(i + 6)
                && code_like(text)
            {
                codes.insert(text.clone());
            }
            let is_call = ident(tokens.get(i), "ApiError")
                && punct(tokens.get(i + 1), ':')
                && punct(tokens.get(i + 2), ':')
                && matches!(tokens.get(i + 3), Some(Token::Ident(_)))
                && punct(tokens.get(i + 4), '(');
            if is_call {
                for arg in call_args(&tokens, i + 4) {
                    match arg.as_slice() {
                        [Token::Str(text)] if code_like(text) => {
                            codes.insert(text.clone());
                        }
                        [Token::Ident(variable)] => {
                            variables.insert(variable.clone());
                        }
                        // `if suspending { "already_suspended" } else { "not_suspended" }`:
                        // every code-like literal of the branches.
                        [Token::Ident(keyword), ..] if keyword == "if" || keyword == "match" => {
                            literal_codes(&arg, &mut codes);
                        }
                        // `refusal.limit().code()`: a quota refusal's code, defined by
                        // portcullis_tenant rather than in this crate's source.
                        [
                            ..,
                            Token::Punct('.'),
                            Token::Ident(limit),
                            Token::Punct('('),
                            Token::Punct(')'),
                            Token::Punct('.'),
                            Token::Ident(code),
                            Token::Punct('('),
                            Token::Punct(')'),
                        ] if limit == "limit" && code == "code" => {
                            codes.extend(quota_codes().map(str::to_owned));
                        }
                        _ => {}
                    }
                }
            }
            if tokens.get(i) == Some(&Token::Str("code".into()))
                && punct(tokens.get(i + 1), ':')
                && let Some(Token::Str(text)) = tokens.get(i + 2)
                && code_like(text)
            {
                codes.insert(text.clone());
            }
        }
        for variable in &variables {
            for i in 0..tokens.len() {
                if !(ident(tokens.get(i), "let") && punct(tokens.get(i + 2), '=')) {
                    continue;
                }
                let Some(Token::Ident(bound)) = tokens.get(i + 1) else {
                    continue;
                };
                if bound == variable {
                    // `let code = ...;`: every code-like literal of the expression.
                    let mut depth = 0;
                    let end = tokens[i..]
                        .iter()
                        .position(|t| {
                            match t {
                                Token::Punct('(' | '[' | '{') => depth += 1,
                                Token::Punct(')' | ']' | '}') => depth -= 1,
                                _ => {}
                            }
                            depth == 0 && *t == Token::Punct(';')
                        })
                        .map_or(tokens.len(), |end| i + end);
                    literal_codes(&tokens[i..end], &mut codes);
                    // `let code = code_of(&error);`: every code-like literal of the body of
                    // the function `code_of` of the same file too.
                    if let Some(Token::Ident(function)) = tokens.get(i + 3)
                        && punct(tokens.get(i + 4), '(')
                        && let Some(body) = function_body(&tokens, function)
                    {
                        literal_codes(body, &mut codes);
                    }
                } else if punct(tokens.get(i + 3), '|') {
                    // `let name = |code: &str, ...| ApiError::...(code, ...)`: the literal
                    // at the parameter's position in every call of `name`.
                    let close = tokens[i + 4..]
                        .iter()
                        .position(|t| *t == Token::Punct('|'))
                        .map(|end| i + 4 + end)
                        .unwrap();
                    let params: Vec<String> = tokens[i + 4..close]
                        .split(|t| *t == Token::Punct(','))
                        .filter_map(|param| match param.first() {
                            Some(Token::Ident(name)) => Some(name.clone()),
                            _ => None,
                        })
                        .collect();
                    let Some(position) = params.iter().position(|p| p == variable) else {
                        continue;
                    };
                    for k in 1..tokens.len() {
                        let is_call = tokens.get(k) == Some(&Token::Ident(bound.clone()))
                            && punct(tokens.get(k + 1), '(')
                            && !ident(tokens.get(k - 1), "let")
                            && !ident(tokens.get(k - 1), "fn");
                        if is_call
                            && let Some([Token::Str(text)]) =
                                call_args(&tokens, k + 1).get(position).map(Vec::as_slice)
                            && code_like(text)
                        {
                            codes.insert(text.clone());
                        }
                    }
                }
            }
        }
    }
    codes
}

/// The `ErrorCode` catalogue: code to its documented statuses.
fn error_catalogue(doc: &Value) -> BTreeMap<String, BTreeSet<u16>> {
    doc["components"]["schemas"]["ErrorCode"]["oneOf"]
        .as_array()
        .expect("the ErrorCode catalogue")
        .iter()
        .map(|entry| {
            let code = entry["const"].as_str().unwrap().to_owned();
            let statuses = entry["x-status"]
                .as_array()
                .unwrap_or_else(|| panic!("{code} has no x-status"))
                .iter()
                .map(|s| u16::try_from(s.as_u64().unwrap()).unwrap())
                .collect();
            (code, statuses)
        })
        .collect()
}

/// The code list (`error.code` enum) of a response schema, if it has one.
fn code_list(doc: &Value, schema: &Value) -> Option<Vec<String>> {
    if let Some(codes) = schema.pointer("/properties/error/properties/code/enum") {
        return Some(
            codes
                .as_array()?
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect(),
        );
    }
    schema
        .get("$ref")
        .and_then(|_| code_list(doc, resolve(doc, schema)))
}

#[test]
fn every_error_code_of_the_source_is_documented() {
    let source = error_codes_in_source();
    for known in [
        "unknown_field",
        "invalid_token",
        "invalid_bundle",
        "missing_header",
        "not_found",
    ] {
        assert!(
            source.contains(known),
            "the source reader missed `{known}`: {source:?}"
        );
    }
    // Per document: every code a response lists is in that document's catalogue under that
    // status, and every catalogued code is listed by one of its responses (or answers paths
    // that are not endpoints). Together the documents cover every code of the source, and
    // document none that the source never answers.
    let mut catalogued = BTreeSet::new();
    let mut listed = BTreeSet::new();
    for listener in LISTENERS {
        let doc = listener.document();
        let catalogue = error_catalogue(&doc);
        let mut listed_here = BTreeSet::new();
        for op in operations(&doc) {
            let name = format!("{listener:?} {}", op.name());
            for (status, response) in op.op["responses"].as_object().unwrap() {
                let status: u16 = status.parse().unwrap();
                let response = resolve(&doc, response);
                for spec in response["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(_, s)| s)
                {
                    let Some(codes) = code_list(&doc, &spec["schema"]) else {
                        continue;
                    };
                    assert!(status >= 400, "{name} {status} lists error codes");
                    for code in codes {
                        let statuses = catalogue
                            .get(&code)
                            .unwrap_or_else(|| panic!("{name} lists `{code}`, not in ErrorCode"));
                        assert!(
                            statuses.contains(&status),
                            "{name} lists `{code}` under {status}, ErrorCode says {statuses:?}"
                        );
                        listed_here.insert(code);
                    }
                }
            }
        }
        for code in catalogue.keys() {
            assert!(
                listed_here.contains(code) || FALLBACK_CODES.contains(&code.as_str()),
                "{listener:?}: `{code}` is catalogued but no response of this listener lists it"
            );
            assert!(
                source.contains(code),
                "`{code}` is documented but the server never answers it"
            );
        }
        for code in FALLBACK_CODES {
            assert!(
                catalogue.contains_key(code),
                "{listener:?}: the fallback code `{code}` is not catalogued"
            );
        }
        catalogued.extend(catalogue.into_keys());
        listed.extend(listed_here);
    }
    for code in &source {
        assert!(
            catalogued.contains(code),
            "`{code}` is not in any ErrorCode catalogue"
        );
        assert!(
            listed.contains(code) || FALLBACK_CODES.contains(&code.as_str()),
            "no response lists `{code}`"
        );
    }
}

// ------------------------------------------------------------------------ the real API

struct Fixture {
    _bundles: tempfile::TempDir,
    state: Arc<AppState>,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A state on a copy of the demo bundles (uploads write into it), with an admin token and an
/// identity issuer whose tokens the test can mint.
async fn fixture() -> Fixture {
    let bundles = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles");
    copy_tree(&demo, bundles.path());
    let text = format!(
        r#"
[reload]
watch = false

[[admin.tokens]]
name = "ops"
token = "{ADMIN_TOKEN}"

[[identity.issuers]]
issuer = "{ISSUER}"
algorithms = ["HS256"]
secret_env = "OPENAPI_TEST_SECRET"

# A gateway application with login protection, for `POST /admin/v1/gateway/unlock`.
[gateway]
[[gateway.apps]]
host = "shop.example"
tenant = "acme"
upstream = {{ url = "http://127.0.0.1:9" }}
login = {{ route = "POST /login" }}
"#
    );
    let overrides = Overrides {
        bundles: Some(bundles.path().to_path_buf()),
        ..Default::default()
    };
    let env = |name: &str| (name == "OPENAPI_TEST_SECRET").then(|| IDENTITY_SECRET.to_owned());
    let mut config = Config::parse(&text, bundles.path(), &overrides, &env).unwrap();
    // The SBOM the `portcullis` binary would hand over (`GET /admin/v1/sbom`).
    let mut root = portcullis_supply::SbomPackage::path("portcullis", "0.1.0", "Apache-2.0");
    root.dependencies = vec!["tokio@1.0.0".into()];
    config.sbom = Some(Arc::new(portcullis_supply::PackageList {
        root: "portcullis@0.1.0".into(),
        target: "x86_64-unknown-linux-gnu".into(),
        built_at: jiff::Timestamp::UNIX_EPOCH,
        generator: "the OpenAPI tests".into(),
        packages: vec![
            root,
            portcullis_supply::SbomPackage::crates_io("tokio", "1.0.0", &"0".repeat(64), "MIT"),
        ],
    }));
    let verifier = Verifier::new(&config.identity).unwrap();
    let state = Arc::new(AppState::open(config, verifier, None).await.unwrap());
    let report = reload_all(&state, "start").await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(state.policies().len(), 2, "acme and system");
    // The access request the temporary-access examples name, made by alice.
    let now = state.now().as_microsecond();
    state
        .store
        .tenant(&portcullis_core::TenantId::new("acme").unwrap())
        .create_access_request(&portcullis_store::NewAccessRequest {
            id: "ta-0123456789abcdef0123".into(),
            requester: "alice".into(),
            action: "app:release".into(),
            resource: "app:payments".into(),
            reason: "incident 42: payments are down".into(),
            not_before_us: now,
            not_after_us: now + 3_600_000_000,
            cert: Some("cert1".into()),
            networks: vec!["172.16.0.0/12".into()],
            approvals_required: 1,
        })
        .await
        .unwrap();
    Fixture {
        _bundles: bundles,
        state,
    }
}

fn identity_token(subject: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": ISSUER, "sub": subject, "tenant": "acme", "exp": now + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(IDENTITY_SECRET.as_bytes()),
    )
    .unwrap()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    let mut request = builder
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    // The forward-auth handlers read the TCP peer; a loopback peer is a trusted proxy.
    request.extensions_mut().insert(ConnectInfo(PeerInfo {
        addr: SocketAddr::from(([127, 0, 0, 1], 40_000)),
        cert: None,
    }));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// Checks an answer against the documented response for its status: content type, body schema
/// and the headers Portcullis adds.
fn conforms(doc: &Value, op: &Operation<'_>, answer: &Answer, what: &str) {
    let status = answer.status.as_u16();
    let text = String::from_utf8_lossy(&answer.body);
    assert!(
        op.statuses().contains(&status),
        "{what}: status {status} is not documented ({:?}): {text}",
        op.statuses()
    );
    let response = resolve(doc, &op.op["responses"][status.to_string()]);
    // A response to HEAD has no body, whatever the same answer to GET would carry.
    let content = if op.method == "head" {
        None
    } else {
        response.get("content").and_then(Value::as_object)
    };
    match content {
        None => assert!(
            answer.body.is_empty(),
            "{what}: documented without a body: {text}"
        ),
        Some(content) => {
            let actual = answer
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let (media, spec) = content
                .iter()
                .find(|(media, _)| actual.starts_with(media.as_str()))
                .unwrap_or_else(|| panic!("{what}: content type `{actual}` is not documented"));
            if media == "application/json" {
                let value: Value = serde_json::from_slice(&answer.body)
                    .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
                let problems = validate(doc, &spec["schema"], &value);
                assert!(
                    problems.is_empty(),
                    "{what}: {value}\n{}",
                    problems.join("\n")
                );
            }
        }
    }
    let documented: BTreeSet<String> = response["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    for name in answer.headers.keys() {
        let name = name.as_str();
        if name.starts_with("x-portcullis-") || name == "www-authenticate" {
            assert!(
                documented.contains(name),
                "{what}: header {name} is not documented"
            );
        }
    }
}

/// What a documented request must get, beyond a documented status.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Examples named `invalid...` show a refused request (4xx); the others must succeed (2xx).
    Example(bool),
    /// Exactly this status.
    Status(u16),
    /// A question the policy answered: allowed (2xx: a decision, or a change it allowed, such
    /// as a request for temporary access made) or denied (403).
    Decided,
}

#[tokio::test]
async fn every_documented_example_gets_a_documented_answer() {
    let mut sent = 0;
    for listener in LISTENERS {
        sent += send_every_example(listener).await;
    }
    assert!(sent >= 30, "only {sent} requests were sent");
}

/// Sends every example of a listener's document to that listener's router, in document order,
/// on a state of its own; answers how many requests were sent.
async fn send_every_example(listener: Listener) -> usize {
    let doc = listener.document();
    let fixture = fixture().await;
    let router = &listener.router(&fixture.state);
    let alice = format!("Bearer {}", identity_token("alice"));
    let admin_auth = format!("Bearer {ADMIN_TOKEN}");
    let mut sent = 0;
    let mut ops = operations(&doc);
    in_document_order(listener.text(), &mut ops);
    for op in ops {
        // OpenFGA's API names stores and models by the ULIDs the server mints when a store is
        // created or a model written, so a fixed example cannot name one; tests/openfga.rs
        // drives every one of these operations against stores it creates.
        if op.tags().contains(&"OpenFGA") {
            continue;
        }
        let uri = op.uri();
        let headers = op.example_headers();
        let mut bodies: Vec<(String, Option<Vec<u8>>)> = op
            .request_examples(&doc)
            .into_iter()
            .map(|(name, value)| (name, Some(serde_json::to_vec(value).unwrap())))
            .collect();
        if bodies.is_empty() {
            assert!(
                op.op.get("requestBody").is_none(),
                "{}: a body without examples",
                op.name()
            );
            bodies.push(("no body".to_owned(), None));
        }
        let security = op.security();
        let anonymous = security.is_empty() || security.iter().any(Vec::is_empty);
        let schemes: BTreeSet<&String> = security.iter().flatten().collect();
        for (example, body) in bodies {
            let succeed = Expect::Example(!example.starts_with("invalid"));
            let mut attempts: Vec<(&str, Option<&str>, Expect)> = Vec::new();
            if anonymous {
                attempts.push(("anonymous", None, succeed));
            } else {
                attempts.push(("without a token", None, Expect::Status(401)));
            }
            if schemes.iter().any(|s| *s == "adminToken") {
                attempts.push(("with the admin token", Some(&admin_auth), succeed));
            }
            if !anonymous && schemes.iter().any(|s| *s == "identityToken") {
                attempts.push(("with alice's token", Some(&alice), Expect::Decided));
            }
            for (how, authorization, expect) in attempts {
                let mut headers = headers.clone();
                if let Some(value) = authorization {
                    headers.push(("authorization".to_owned(), value.to_owned()));
                }
                let what = format!("{} `{example}` {how}", op.name());
                let answer = send(
                    router,
                    &op.method.to_uppercase(),
                    &uri,
                    &headers,
                    body.clone(),
                )
                .await;
                sent += 1;
                conforms(&doc, &op, &answer, &what);
                let status = answer.status.as_u16();
                let text = String::from_utf8_lossy(&answer.body);
                let ok = match expect {
                    Expect::Example(true) => (200..300).contains(&status),
                    Expect::Example(false) => (400..500).contains(&status),
                    Expect::Status(wanted) => status == wanted,
                    Expect::Decided => (200..300).contains(&status) || status == 403,
                };
                assert!(
                    ok,
                    "{what}: {status} is not what the example shows ({expect:?}): {text}"
                );
            }
        }
    }
    sent
}

#[tokio::test]
async fn each_listener_serves_its_own_document_without_a_token() {
    let fixture = fixture().await;
    for listener in LISTENERS {
        let router = listener.router(&fixture.state);
        let answer = send(&router, "GET", "/openapi.json", &[], None).await;
        assert_eq!(answer.status, StatusCode::OK, "{listener:?}");
        assert_eq!(
            answer.headers[header::CONTENT_TYPE],
            "application/json",
            "{listener:?}"
        );
        assert_eq!(
            String::from_utf8(answer.body).unwrap(),
            listener.text(),
            "{listener:?} serves its own document"
        );
    }
    assert_ne!(OPENAPI, ADMIN_OPENAPI);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_the_documented_fallback_codes() {
    let fixture = fixture().await;
    let error = json!({"$ref": "#/components/schemas/Error"});
    let public = Listener::Public.router(&fixture.state);
    let admin = Listener::Admin.router(&fixture.state);
    for (listener, router, method, uri, code) in [
        (
            Listener::Public,
            &public,
            "GET",
            "/no/such/endpoint",
            "not_found",
        ),
        (
            Listener::Admin,
            &admin,
            "GET",
            "/no/such/endpoint",
            "not_found",
        ),
        (Listener::Admin, &admin, "GET", "/v1/check", "not_found"),
        (
            Listener::Public,
            &public,
            "GET",
            "/admin/v1/tenants",
            "not_found",
        ),
        (
            Listener::Public,
            &public,
            "GET",
            "/v1/check",
            "method_not_allowed",
        ),
        (
            Listener::Public,
            &public,
            "POST",
            "/healthz",
            "method_not_allowed",
        ),
        // QUERY, which OpenAPI 3.1 cannot document (the schemathesis run leaves it out).
        (
            Listener::Public,
            &public,
            "QUERY",
            "/v1/check",
            "method_not_allowed",
        ),
        (
            Listener::Admin,
            &admin,
            "POST",
            "/openapi.json",
            "method_not_allowed",
        ),
    ] {
        let doc = listener.document();
        let catalogue = error_catalogue(&doc);
        let answer = send(router, method, uri, &[], None).await;
        let value: Value = serde_json::from_slice(&answer.body).unwrap();
        assert!(
            validate(&doc, &error, &value).is_empty(),
            "{method} {uri}: {value}"
        );
        assert_eq!(value["error"]["code"], code, "{method} {uri}");
        assert!(
            catalogue[code].contains(&answer.status.as_u16()),
            "{method} {uri}"
        );
    }
}

// ------------------------------------------------------------------------ (d) the docs page

/// The values of every `name="..."` (or `'...'`) attribute in an HTML text.
fn attribute_values<'h>(html: &'h str, name: &str) -> Vec<&'h str> {
    let needle = format!("{name}=");
    let mut values = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let inner = &rest[1..];
        let end = inner.find(quote).unwrap_or(inner.len());
        values.push(&inner[..end]);
    }
    values
}

#[tokio::test]
async fn the_docs_page_is_served_and_loads_nothing_from_elsewhere() {
    let path = source_dir().join("docs.html");
    let html = std::fs::read_to_string(&path).unwrap();
    let fixture = fixture().await;
    let answer = send(
        &portcullis_server::app(Arc::clone(&fixture.state)),
        "GET",
        "/docs",
        &[],
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(answer.body).unwrap(),
        html,
        "/docs serves docs.html"
    );

    let lower = html.to_ascii_lowercase();
    for scheme in ["http://", "https://"] {
        assert!(
            !lower.contains(scheme),
            "docs.html names an absolute {scheme} URL"
        );
    }
    for attribute in ["src", "href", "action", "srcset", "data"] {
        for value in attribute_values(&lower, attribute) {
            assert!(
                !value.starts_with("//") && !value.contains(':'),
                "docs.html {attribute}=\"{value}\" is not a relative URL"
            );
        }
    }
    for forbidden in ["@import", "url(", "<link", "<iframe", "<object", "<embed"] {
        assert!(!lower.contains(forbidden), "docs.html uses {forbidden}");
    }
    assert!(
        lower.contains("<script>") && !lower.contains("<script src"),
        "the script is inline"
    );
    assert!(
        html.contains("openapi.json"),
        "the page renders openapi.json"
    );
    assert!(html.lines().count() <= 600, "docs.html should stay small");
}
