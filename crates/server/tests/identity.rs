//! Bearer tokens: verification failures, binding to tenant and host, claims to principals, and
//! every key kind (HMAC secret, EC and Ed25519 PEM keys, JWKS).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use base64::Engine;
use serde_json::{Value, json};
use support::{ISSUER, client, demo_bundles, server_on, token, trading_day_after_close};

const HOST: &str = "ops.acme.example";

async fn check(base: &str, body: &str, token: Option<&str>, host: &str) -> (u16, Value) {
    let mut request = client()
        .post(format!("{base}/v1/check"))
        .header("content-type", "application/json")
        .header("host", host)
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let value: Value = response.json().await.unwrap();
    if status == 401 {
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer"),
            "401 carries a challenge"
        );
    }
    (status, value)
}

fn body(principal: &str) -> String {
    format!(
        r#"{{"tenant":"acme","principal":{{"id":"{principal}"}},"action":"app:release","resource":{{"type":"app","id":"payments"}},"context":{{"ip":"172.16.3.4"}}}}"#
    )
}

fn forge(header: Value, claims: Value, signature: &str) -> String {
    let encode =
        |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.{signature}", encode(&header), encode(&claims))
}

#[tokio::test]
async fn token_failures_are_401_with_a_code() {
    let server = server_on(&demo_bundles(), "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    let now = jiff::Timestamp::now().as_second();
    let other_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": ISSUER, "aud": "portcullis", "sub": "alice", "tenant": "acme", "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-0123456789abcdef0123456"),
    )
    .unwrap();
    let alg_none = forge(
        json!({"alg": "none", "typ": "JWT"}),
        json!({"iss": ISSUER, "aud": "portcullis", "sub": "alice", "tenant": "acme", "exp": now + 600}),
        "",
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired beyond the leeway",
            token(json!({"exp": now - 120})),
            "expired_token",
        ),
        (
            "not yet valid",
            token(json!({"nbf": now + 3600})),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            token(json!({"iss": "https://evil.test"})),
            "unknown_issuer",
        ),
        (
            "wrong audience",
            token(json!({"aud": "someone-else"})),
            "wrong_audience",
        ),
        ("no expiry", token(json!({"exp": null})), "invalid_token"),
        ("wrong signature", other_secret, "invalid_signature"),
        ("alg none", alg_none, "invalid_token"),
        ("garbage", "not.a.token".into(), "invalid_token"),
        (
            "tenant mismatch",
            token(json!({"tenant": "globex"})),
            "tenant_mismatch",
        ),
        (
            "no tenant claim",
            token(json!({"tenant": null})),
            "tenant_mismatch",
        ),
        ("no subject", token(json!({"sub": null})), "invalid_token"),
    ];
    for (name, token, code) in cases {
        let (status, answer) = check(&base, &body("alice"), Some(&token), HOST).await;
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{name}: {answer}");
    }
    // Within the leeway an expired token still passes.
    let (status, answer) = check(
        &base,
        &body("alice"),
        Some(&token(json!({"exp": now - 5}))),
        HOST,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // A malformed Authorization header.
    let response = client()
        .post(format!("{base}/v1/check"))
        .header("content-type", "application/json")
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .body(body("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    server.stop().await;
}

#[tokio::test]
async fn tokens_are_bound_to_the_tenant_domain_and_principal() {
    let server = server_on(&demo_bundles(), "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    let alice = token(json!({}));
    let with_host = |host: &str| {
        body("alice").replace(
            r#""ip":"172.16.3.4""#,
            &format!(r#""ip":"172.16.3.4","host":"{host}""#),
        )
    };
    let (status, answer) = check(&base, &body("alice"), Some(&alice), "127.0.0.1").await;
    assert_eq!(
        (status, answer["decision"].as_str()),
        (200, Some("allow")),
        "the Host of the call to us does not matter: {answer}"
    );
    let (status, answer) = check(
        &base,
        &with_host("ops.acme.example:443"),
        Some(&alice),
        "127.0.0.1",
    )
    .await;
    assert_eq!(
        status, 200,
        "a stated host with a port is the tenant's domain: {answer}"
    );
    let (status, answer) =
        check(&base, &with_host("evil.example"), Some(&alice), "127.0.0.1").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("domain_mismatch")),
        "{answer}"
    );
    let (status, answer) = check(&base, &body("bob"), Some(&alice), HOST).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("principal_mismatch")),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn token_roles_count_only_for_tenants_that_trust_them() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = support::copy_demo(dir.path());
    let server = server_on(&bundles, "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    // carol is an inventory clerk; her token claims operator.
    let carol = token(json!({"sub": "carol", "roles": ["operator"]}));
    let (_, answer) = check(&base, &body("carol"), Some(&carol), HOST).await;
    assert_eq!(
        answer["decision"], "deny",
        "acme does not trust token roles: {answer}"
    );
    server.stop().await;

    let tenant = bundles.join("acme/tenant.yaml");
    let text = std::fs::read_to_string(&tenant).unwrap();
    std::fs::write(&tenant, format!("{text}trust_token_roles: true\n")).unwrap();
    let server = server_on(&bundles, "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    let (_, answer) = check(&base, &body("carol"), Some(&carol), HOST).await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    assert_eq!(answer["reasons"][0]["path"], json!(["carol", "operator"]));
    server.stop().await;
}

#[tokio::test]
async fn a_token_can_be_required_for_checks() {
    let text = support::config_text(&demo_bundles(), "").replace(
        "[identity]\n",
        "[identity]\nrequire_token_for_check = true\n",
    );
    let now = trading_day_after_close();
    let server = portcullis_server::start(
        support::config(&text),
        Some(std::sync::Arc::new(move || now)),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let (status, answer) = check(&base, &body("alice"), None, HOST).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("missing_token")),
        "{answer}"
    );
    let (status, _) = check(&base, &body("alice"), Some(&token(json!({}))), HOST).await;
    assert_eq!(status, 200);
    server.stop().await;
}

fn ec_and_ed_keys(dir: &std::path::Path) -> (String, String, String) {
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    std::fs::write(dir.join("ec.pem"), ec.public_key_pem()).unwrap();
    std::fs::write(dir.join("ed.pem"), ed.public_key_pem()).unwrap();
    // A JWKS holding the EC key, for a third issuer.
    let raw = ec.public_key_raw();
    assert_eq!(raw[0], 4, "uncompressed point");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    (ec.serialize_pem(), ed.serialize_pem(), "k1".into())
}

#[tokio::test]
async fn ec_ed25519_and_jwks_keys_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (ec_private, ed_private, kid) = ec_and_ed_keys(dir.path());
    let extra = format!(
        r#"
[[identity.issuers]]
issuer = "https://ec.test"
algorithms = ["ES256"]
key_file = "{ec}"
[[identity.issuers]]
issuer = "https://ed.test"
algorithms = ["EdDSA"]
key_file = "{ed}"
[[identity.issuers]]
issuer = "https://jwks.test"
algorithms = ["ES256"]
jwks_file = "{jwks}"
"#,
        ec = dir.path().join("ec.pem").display(),
        ed = dir.path().join("ed.pem").display(),
        jwks = dir.path().join("jwks.json").display(),
    );
    let server = server_on(&demo_bundles(), &extra, trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);
    let now = jiff::Timestamp::now().as_second();
    let sign = |issuer: &str,
                algorithm: jsonwebtoken::Algorithm,
                key: jsonwebtoken::EncodingKey,
                kid: Option<&str>| {
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            &json!({"iss": issuer, "sub": "alice", "tenant": "acme", "exp": now + 600}),
            &key,
        )
        .unwrap()
    };
    let ec_key = || jsonwebtoken::EncodingKey::from_ec_pem(ec_private.as_bytes()).unwrap();
    let ed_key = || jsonwebtoken::EncodingKey::from_ed_pem(ed_private.as_bytes()).unwrap();
    let ec_public = std::fs::read(dir.path().join("ec.pem")).unwrap();
    for (name, token, status) in [
        (
            "EC PEM",
            sign(
                "https://ec.test",
                jsonwebtoken::Algorithm::ES256,
                ec_key(),
                None,
            ),
            200,
        ),
        (
            "Ed25519 PEM",
            sign(
                "https://ed.test",
                jsonwebtoken::Algorithm::EdDSA,
                ed_key(),
                None,
            ),
            200,
        ),
        (
            "JWKS with kid",
            sign(
                "https://jwks.test",
                jsonwebtoken::Algorithm::ES256,
                ec_key(),
                Some(&kid),
            ),
            200,
        ),
        (
            "JWKS with another kid",
            sign(
                "https://jwks.test",
                jsonwebtoken::Algorithm::ES256,
                ec_key(),
                Some("k9"),
            ),
            401,
        ),
        (
            "EC key, wrong issuer's algorithm",
            sign(
                "https://ed.test",
                jsonwebtoken::Algorithm::ES256,
                ec_key(),
                None,
            ),
            401,
        ),
        (
            // The classic confusion: the issuer's public key, which anyone may read, used as
            // an HMAC secret.
            "HS256 keyed with the EC issuer's public key",
            sign(
                "https://ec.test",
                jsonwebtoken::Algorithm::HS256,
                jsonwebtoken::EncodingKey::from_secret(&ec_public),
                None,
            ),
            401,
        ),
        (
            "Ed key posing as the EC issuer",
            sign(
                "https://ec.test",
                jsonwebtoken::Algorithm::EdDSA,
                ed_key(),
                None,
            ),
            401,
        ),
    ] {
        let (got, answer) = check(&base, &body("alice"), Some(&token), HOST).await;
        assert_eq!(got, status, "{name}: {answer}");
    }
    server.stop().await;
}

/// A forward-auth call from nginx (a trusted proxy on loopback) for alice releasing payments
/// from the office, with `token`.
async fn nginx(base: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{base}/v1/authz/nginx"))
        .header("x-original-method", "POST")
        .header("x-original-uri", "/ops/apps/payments/release")
        .header("x-forwarded-for", "172.16.3.4")
        .header("x-forwarded-host", HOST)
        .header("x-tenant-id", "acme")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_required_claim_is_required_on_the_check_api_and_forward_auth() {
    // The test issuer is configured with `audiences = ["portcullis"]`.
    let server = server_on(&demo_bundles(), "", trading_day_after_close()).await;
    let base = format!("http://{}", server.addr);

    // The complete token passes both edges: the cases below differ from it by one claim.
    let complete = token(json!({}));
    let (status, answer) = check(&base, &body("alice"), Some(&complete), HOST).await;
    assert_eq!((status, answer["decision"].as_str()), (200, Some("allow")));
    let response = nginx(&base, &complete).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-portcullis-user"], "alice");

    // (claim left out, code, words the message must hold)
    let cases = [
        ("aud", "invalid_token", "`aud`"),
        ("exp", "invalid_token", "`exp`"),
        ("iss", "invalid_token", "`iss`"),
        ("sub", "invalid_token", "`sub`"),
        ("tenant", "tenant_mismatch", "names no tenant"),
    ];
    for (claim, code, words) in cases {
        let token = token(json!({ claim: null }));
        let (status, answer) = check(&base, &body("alice"), Some(&token), HOST).await;
        assert_eq!(status, 401, "check without {claim}: {answer}");
        assert_eq!(answer["error"]["code"], code, "check without {claim}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "check without {claim}: {message}");

        let response = nginx(&base, &token).await;
        assert_eq!(
            response.status().as_u16(),
            401,
            "forward-auth without {claim}"
        );
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert!(
            !response.headers().contains_key("x-portcullis-user"),
            "forward-auth without {claim} names no user"
        );
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["error"]["code"], code,
            "forward-auth without {claim}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(words),
            "forward-auth without {claim}: {message}"
        );
    }
    // An `aud` that is not a string or a list of strings is no audience.
    let numeric = token(json!({"aud": 42}));
    let (status, answer) = check(&base, &body("alice"), Some(&numeric), HOST).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("invalid_token")),
        "{answer}"
    );
    assert_eq!(nginx(&base, &numeric).await.status().as_u16(), 401);
    server.stop().await;
}

#[tokio::test]
async fn without_configured_audiences_aud_is_not_required() {
    let text = support::config_text(&demo_bundles(), "")
        .replace("audiences = [\"portcullis\"]\n", "audiences = []\n");
    assert!(text.contains("audiences = []"));
    let now = trading_day_after_close();
    let server = portcullis_server::start(
        support::config(&text),
        Some(std::sync::Arc::new(move || now)),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    for token in [token(json!({"aud": null})), token(json!({"aud": "anyone"}))] {
        let (status, answer) = check(&base, &body("alice"), Some(&token), HOST).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(nginx(&base, &token).await.status().as_u16(), 200);
    }
    // The other claims are still required.
    let (status, _) = check(
        &base,
        &body("alice"),
        Some(&token(json!({"aud": null, "exp": null}))),
        HOST,
    )
    .await;
    assert_eq!(status, 401);
    server.stop().await;
}
