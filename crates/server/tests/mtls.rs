//! TLS on our own listener with client certificates: a verified certificate feeds the
//! `client_cert` factor; an unverifiable one is refused at the handshake.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

mod support;

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca(name: &str) -> Pki {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    Pki {
        ca_pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

fn leaf(pki: &Pki, cn: &str, server: bool) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names = if server {
        vec!["localhost".to_owned()]
    } else {
        vec![]
    };
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![if server {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = params.signed_by(&key, &pki.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()]);
    if let Some((cert, key)) = identity {
        builder = builder
            .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn verified_client_certificates_feed_the_cert_factor() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = ca("Acme Client CA");
    let stranger = ca("Someone Else");
    let (server_cert, server_key) = leaf(&trusted, "localhost", true);
    let extra = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\nclient_auth = \"optional\"\n",
        write(dir.path(), "server.pem", &server_cert),
        write(dir.path(), "server.key", &server_key),
        write(dir.path(), "ca.pem", &trusted.ca_pem),
    );
    // A listed holiday: ops-read's branch [P4, P5] needs only a listed certificate.
    let holiday: jiff::Timestamp = "2026-02-17T10:00:00+08:00".parse().unwrap();
    let text = support::config_text(&support::demo_bundles(), &extra);
    let server = portcullis_server::start(support::config(&text), Some(Arc::new(move || holiday)))
        .await
        .unwrap();
    let url = format!(
        "https://localhost:{}/v1/authz/envoy/ops/apps/payments/logs/today",
        server.addr.port()
    );
    let bob = support::token(json!({"sub": "bob"}));
    let call = |client: reqwest::Client| {
        let url = url.clone();
        let bob = bob.clone();
        async move {
            client
                .get(url)
                .header("host", "ops.acme.example")
                .header("x-tenant-id", "acme")
                .bearer_auth(bob)
                .send()
                .await
        }
    };

    let (listed_cert, listed_key) = leaf(&trusted, "cert1", false);
    let listed = call(client(&trusted.ca_pem, Some((&listed_cert, &listed_key))))
        .await
        .unwrap();
    assert_eq!(
        listed.status().as_u16(),
        200,
        "a verified, listed certificate on a holiday"
    );

    let (unlisted_cert, unlisted_key) = leaf(&trusted, "cert9", false);
    let unlisted = call(client(
        &trusted.ca_pem,
        Some((&unlisted_cert, &unlisted_key)),
    ))
    .await
    .unwrap();
    assert_eq!(unlisted.status().as_u16(), 403);

    let anonymous = call(client(&trusted.ca_pem, None)).await.unwrap();
    assert_eq!(
        anonymous.status().as_u16(),
        403,
        "optional client auth: no certificate, no P4"
    );

    let (forged_cert, forged_key) = leaf(&stranger, "cert1", false);
    let forged = call(client(&trusted.ca_pem, Some((&forged_cert, &forged_key)))).await;
    assert!(
        forged.is_err(),
        "a certificate from another CA fails the handshake"
    );

    server.stop().await;
}

#[tokio::test]
async fn the_gateway_listener_speaks_tls_with_the_services_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ca("Acme Server CA");
    let (server_cert, server_key) = leaf(&pki, "localhost", true);
    // The application: answers the scheme the gateway says the client used.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let application = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
            headers
                .get("x-forwarded-proto")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("none")
                .to_owned()
        });
        axum::serve(listener, app).await.unwrap();
    });
    let extra = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n[gateway]\nlisten = \"127.0.0.1:0\"\ntls = true\n\n[[gateway.apps]]\nhost = \"*\"\ntenant = \"acme\"\nupstream = {{ url = \"http://{application}\" }}\nstages = [\"security_headers\"]\n",
        write(dir.path(), "server.pem", &server_cert),
        write(dir.path(), "server.key", &server_key),
    );
    let text = support::config_text(&support::demo_bundles(), &extra);
    let server = portcullis_server::start(support::config(&text), None)
        .await
        .unwrap();
    let port = server.gateway_addr.unwrap().port();
    let response = client(&pki.ca_pem, None)
        .get(format!("https://localhost:{port}/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "https");
    // Plain HTTP is not spoken there.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/anything"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // Without a [tls] section the setting is refused.
    let error = support::config_error(
        &support::demo_bundles(),
        "[gateway]\ntls = true\n[[gateway.apps]]\nhost = \"a\"\nupstream = { url = \"http://x\" }\n",
    );
    assert!(error.contains("gateway.tls"), "{error}");
}
