//! OpenID AuthZEN 1.0 conformance, checked as someone else's client would: the certification
//! harness (`../shared/conformance/authzen/run.py`, every level plus the extras) runs against a
//! real `portcullis serve` on HTTPS with a test certificate, serving the `examples/authzen`
//! tenant as the default tenant, so the harness sends no Portcullis-specific header. Any
//! failing check fails the test.
//!
//! The harness lives outside the repository; when it (or `python3`) is missing the test is
//! skipped with a notice, except under `CI=true`, where it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Skips outside CI, fails under `CI=true`.
fn unavailable(message: &str) {
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{message}; CI must run the AuthZEN conformance harness");
    }
    eprintln!("authzen_conformance: skipped: {message}");
}

/// A server certificate for 127.0.0.1 and localhost, and the CA that signed it (PEM).
fn certificates() -> (String, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "Portcullis AuthZEN test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// The server, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_authzen_certification_harness_passes_every_check() {
    let harness = repository().join("../shared/conformance/authzen/run.py");
    if !harness.is_file() {
        return unavailable(&format!("{} is missing", harness.display()));
    }
    if Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_or(true, |status| !status.success())
    {
        return unavailable("python3 is not installed");
    }

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (ca, cert, key) = certificates();
    fs::write(root.join("ca.pem"), ca).unwrap();
    fs::write(root.join("server.pem"), cert).unwrap();
    fs::write(root.join("server.key"), key).unwrap();
    let port = free_port();
    let admin_port = free_port();
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
bundles = [{bundles:?}]
default_tenant = "authzen"

[tls]
cert_file = "server.pem"
key_file = "server.key"

[reload]
watch = false

[admin]
listen = "127.0.0.1:{admin_port}"

[log]
level = "warn"
"#,
        bundles = repository().join("examples/authzen").display().to_string(),
    );
    fs::write(root.join("portcullis.toml"), config).unwrap();
    let log = root.join("portcullis.log");
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("serve")
            .arg("--config")
            .arg(root.join("portcullis.toml"))
            .current_dir(root)
            .env_remove("PORTCULLIS_ADMIN_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "portcullis serve exited ({status}):\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "portcullis serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let output = Command::new("python3")
        .arg(&harness)
        .arg("--base-url")
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("--cafile")
        .arg(root.join("ca.pem"))
        .arg("--json-out")
        .arg(root.join("results.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The harness's summary, for the test log.
    if let Some(summary) = stdout.find("== Summary") {
        eprintln!("{}", &stdout[summary..]);
    }
    let results: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("results.json")).unwrap_or_default())
            .unwrap_or_default();
    let failed: Vec<String> = results["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|check| check["ok"] != true)
        .map(|check| {
            format!(
                "{} {}: expected {}, observed {}",
                check["id"].as_str().unwrap_or("?"),
                check["label"].as_str().unwrap_or("?"),
                check["expected"],
                check["observed"]
            )
        })
        .collect();
    assert!(
        output.status.success() && failed.is_empty(),
        "the harness failed ({}):\n{}\n{stdout}\n{}",
        output.status,
        failed.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    // Every sub-level is certifiable.
    let certifiable = results["certifiable"].as_object().unwrap();
    assert_eq!(certifiable.len(), 7, "{certifiable:?}");
    assert!(certifiable.values().all(|ok| ok == true), "{certifiable:?}");
}
