#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]
//! End to end through a real nginx: a client talks TLS (with or without a client certificate)
//! to nginx configured from `examples/nginx/`, nginx asks the real `portcullis serve` binary
//! through `auth_request`, and only what Portcullis allows reaches a small upstream started
//! here, which reports the identity headers it received.
//!
//! The configuration nginx runs is derived from the example files with exact, counted
//! replacements (ports, and two test-only changes), so the example itself is what is tested:
//!
//! * the client address: nginx trusts `X-Forwarded-For` from the test client (realip module),
//!   so the test plays an office (`172.16.3.4`) or an outside (`203.0.113.9`) caller;
//! * the decision time: the test tenant sets `accept_request_time: true` and nginx passes the
//!   test's `X-Test-Time` header as `X-Portcullis-Time` (the example removes that header), so no
//!   outcome depends on the wall clock;
//! * the client certificate is real: nginx verifies it (`ssl_verify_client optional`) against
//!   a CA generated here and forwards it as `X-SSL-Client-Cert`.
//!
//! Expected outcomes come from the formulas of SPEC.md's worked example, written out below,
//! not from the engine.
//!
//! nginx must be installed (`scripts/test` installs `nginx-light`). Without it the test is
//! skipped with a notice, except under `CI=true`, where it fails.

use std::collections::BTreeSet;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use jsonwebtoken::{EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

/// The demo tenant's domain: tokens for `acme` are accepted only for this host.
const HOST: &str = "ops.acme.example";
const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "portcullis";
const SECRET_ENV: &str = "PORTCULLIS_TEST_JWT_SECRET";
const SECRET: &str = "nginx-end-to-end-test-secret-0123456789";

/// Inside the office network `172.*.*.*` (P1).
const OFFICE: &str = "172.16.3.4";
/// Not in the office network.
const OUTSIDE: &str = "203.0.113.9";

// Times in the tenant's zone (Asia/Shanghai, +08:00).
const MON_AFTER_CLOSE: &str = "2026-03-02T16:00:00+08:00";
const MON_TRADING: &str = "2026-03-02T10:00:00+08:00";
const MON_0914: &str = "2026-03-02T09:14:00+08:00";
const MON_0915: &str = "2026-03-02T09:15:00+08:00";
const MON_1529: &str = "2026-03-02T15:29:00+08:00";
const MON_1530: &str = "2026-03-02T15:30:00+08:00";
const SAT_DAY: &str = "2026-03-07T10:00:00+08:00";
const SAT_NIGHT: &str = "2026-03-07T03:00:00+08:00";
const HOLIDAY: &str = "2026-02-17T10:00:00+08:00";

const RELEASE: &str = "/ops/apps/payments/release";
const LOGS: &str = "/ops/apps/payments/logs/today";
const STATUS: &str = "/ops/apps/payments/status";

// ------------------------------------------------------------------ expected outcomes (SPEC)

/// Listed holidays of the demo calendar (`calendar-2026.yaml`) around the dates used here.
const LISTED_HOLIDAYS: &[&str] = &[
    "2026-02-16",
    "2026-02-17",
    "2026-02-18",
    "2026-02-19",
    "2026-02-20",
    "2026-02-23",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Release,
    LogsDownload,
    StatusCheck,
}

impl Action {
    fn method_and_path(self) -> (Method, &'static str) {
        match self {
            Action::Release => (Method::POST, RELEASE),
            Action::LogsDownload => (Method::GET, LOGS),
            Action::StatusCheck => (Method::GET, STATUS),
        }
    }
}

/// The client certificate the TLS client presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cert {
    Without,
    /// CN `cert1`, listed by factor P4.
    Listed,
    /// CN `cert9`, issued by the same CA, not listed.
    Unlisted,
    /// CN `cert1`, but issued by a CA nginx does not trust.
    Foreign,
}

impl Cert {
    fn label(self) -> &'static str {
        match self {
            Cert::Without => "no certificate",
            Cert::Listed => "certificate cert1",
            Cert::Unlisted => "certificate cert9",
            Cert::Foreign => "cert1 from an unknown CA",
        }
    }
}

/// What the worked example of SPEC.md C1 says about a request, computed from its formulas.
fn spec_allows(user: &str, action: Action, ip: &str, time: &str, cert: Cert) -> bool {
    // Roles (demo bundle): alice is an operator (release, and everything a viewer may do);
    // bob is a viewer (logs download, status check).
    let granted = match user {
        "alice" => true,
        "bob" => action != Action::Release,
        _ => false,
    };
    let local = time
        .parse::<jiff::Timestamp>()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    let weekend = matches!(
        local.weekday(),
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
    );
    let listed = LISTED_HOLIDAYS.contains(&local.date().to_string().as_str());
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());

    let p1 = ip.starts_with("172."); // office network only: 172.*.*.*
    let p2 = !weekend && !listed; // trading day
    let p3 = !((9 * 60 + 15)..(15 * 60 + 30)).contains(&minute); // negative 09:15-15:30
    let p4 = cert == Cert::Listed; // cert1, cert2
    let p5 = !p2; // holiday: weekends and listed holidays
    let strategy = match action {
        // release: [[P1,P2,P3],[P1,P5]]
        Action::Release => (p1 && p2 && p3) || (p1 && p5),
        // ops-read: [[P1],[P4,P5],[P2,P3,P4]]
        Action::LogsDownload | Action::StatusCheck => p1 || (p4 && p5) || (p2 && p3 && p4),
    };
    granted && strategy
}

// ------------------------------------------------------------------ processes

/// A child process that is killed when the test ends, however it ends.
struct Running {
    name: &'static str,
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("nginx_e2e: stopped {}", self.name);
    }
}

impl Running {
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The nginx binary, if installed (`/usr/sbin` is often not on a user's PATH).
fn find_nginx() -> Option<PathBuf> {
    ["nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|candidate| {
            Command::new(candidate)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

// ------------------------------------------------------------------ certificates

struct Pki {
    /// Trust anchor for the server certificate.
    server_ca: String,
    server_cert: String,
    server_key: String,
    /// The CA nginx verifies client certificates against.
    client_ca: String,
    /// Client identities (certificate and key, PEM), by [`Cert`].
    listed: String,
    /// The listed client certificate alone.
    listed_cert: String,
    unlisted: String,
    foreign: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    common_name: &str,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> (String, String) {
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let server_ca = ca("Portcullis test server CA");
    let client_ca = ca("Portcullis test client CA");
    let foreign_ca = ca("Someone else's CA");
    let (server_cert, server_key) = leaf(
        HOST,
        vec![HOST.to_owned()],
        ExtendedKeyUsagePurpose::ServerAuth,
        &server_ca,
    );
    let client = |name: &str, issuer: &CertifiedIssuer<'static, KeyPair>| {
        leaf(
            name,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            issuer,
        )
    };
    let (listed_cert, listed_key) = client("cert1", &client_ca);
    let (unlisted_cert, unlisted_key) = client("cert9", &client_ca);
    let (foreign_cert, foreign_key) = client("cert1", &foreign_ca);
    Pki {
        server_ca: server_ca.pem(),
        server_cert,
        server_key,
        client_ca: client_ca.pem(),
        listed: format!("{listed_cert}{listed_key}"),
        listed_cert,
        unlisted: format!("{unlisted_cert}{unlisted_key}"),
        foreign: format!("{foreign_cert}{foreign_key}"),
    }
}

// ------------------------------------------------------------------ tokens

#[derive(Debug, Clone, Copy)]
enum Token {
    Missing,
    Valid,
    WrongSignature,
    Expired,
    OtherTenant,
    WrongAudience,
    /// Without the claim named: each is required (`aud` because the issuer lists audiences).
    Lacking(&'static str),
}

fn token(kind: Token, user: &str) -> Option<String> {
    let now = jiff::Timestamp::now().as_second();
    let mut claims = json!({
        "sub": user, "tenant": "acme", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600,
    });
    let mut secret = SECRET;
    match kind {
        Token::Missing => return None,
        Token::Valid => {}
        Token::WrongSignature => secret = "a-different-secret-that-is-long-enough-too",
        Token::Expired => claims["exp"] = json!(now - 3600),
        Token::OtherTenant => claims["tenant"] = json!("globex"),
        Token::WrongAudience => claims["aud"] = json!("someone-else"),
        Token::Lacking(claim) => {
            claims.as_object_mut().unwrap().remove(claim);
        }
    }
    Some(
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap(),
    )
}

// ------------------------------------------------------------------ the upstream

/// What the upstream application received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    user: Option<String>,
    tenant: Option<String>,
    roles: Option<String>,
    decision_id: Option<String>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn upstream(
    axum::extract::State(log): axum::extract::State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> axum::Json<Value> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        user: header("x-portcullis-user"),
        tenant: header("x-portcullis-tenant"),
        roles: header("x-portcullis-roles"),
        decision_id: header("x-portcullis-decision-id"),
    };
    let body = json!({
        "upstream": "ops-app",
        "method": seen.method,
        "path": seen.path,
        "user": seen.user,
        "roles": seen.roles,
    });
    log.lock().unwrap().push(seen);
    axum::Json(body)
}

// ------------------------------------------------------------------ the environment

struct Environment {
    // Dropped in this order: nginx, portcullis, then the folder.
    _nginx: Running,
    _portcullis: Running,
    nginx_addr: SocketAddr,
    log: Log,
    clients: Clients,
    /// The listed client certificate (PEM), for forging nginx's certificate headers.
    listed_cert: String,
    dir: tempfile::TempDir,
}

struct Clients {
    none: reqwest::Client,
    listed: reqwest::Client,
    unlisted: reqwest::Client,
    foreign: reqwest::Client,
}

impl Clients {
    fn get(&self, cert: Cert) -> &reqwest::Client {
        match cert {
            Cert::Without => &self.none,
            Cert::Listed => &self.listed,
            Cert::Unlisted => &self.unlisted,
            Cert::Foreign => &self.foreign,
        }
    }
}

/// Copies a bundle folder's files (YAML, relationship model, …), not its subfolders.
fn copy_bundle(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Replaces `from` by `to`, which must occur exactly once: a change to the example that the
/// derivation no longer matches fails here, not later in a confusing way.
fn replace_once(text: &str, from: &str, to: &str, file: &str) -> String {
    let count = text.matches(from).count();
    assert_eq!(
        count, 1,
        "examples/nginx/{file}: expected `{from}` exactly once, found it {count} times"
    );
    text.replacen(from, to, 1)
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn start(nginx: &Path) -> Environment {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // nginx started as root may read and write as an unprivileged user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let pki = pki();

    // The upstream application.
    let log: Log = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(upstream)
        .with_state(Arc::clone(&log));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // Portcullis: the demo tenant, accepting the caller's time, and the system tenant.
    let demo = repository().join("examples/demo/bundles");
    let bundles = root.join("bundles");
    copy_bundle(&demo.join("acme"), &bundles.join("acme"));
    copy_bundle(&demo.join("system"), &bundles.join("system"));
    let tenant_file = bundles.join("acme/tenant.yaml");
    let mut tenant = fs::read_to_string(&tenant_file).unwrap();
    assert!(!tenant.contains("accept_request_time"), "{tenant}");
    tenant.push_str(
        "\n# Test only: decide at the time the test names, never the wall clock.\n\
         accept_request_time: true\n",
    );
    fs::write(&tenant_file, tenant).unwrap();

    let portcullis_port = free_port();
    let admin_port = free_port();
    let config = format!(
        r#"listen = "127.0.0.1:{portcullis_port}"
bundles = [{bundles:?}]

[reload]
watch = false

[proxy]
trusted = ["127.0.0.1/32"]

[admin]
listen = "127.0.0.1:{admin_port}"

[[identity.issuers]]
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
secret_env = "{SECRET_ENV}"

[log]
level = "warn"
"#,
        bundles = bundles.display().to_string(),
    );
    let config_file = root.join("portcullis.toml");
    fs::write(&config_file, config).unwrap();
    let portcullis_out = root.join("portcullis.out");
    let portcullis_err = root.join("portcullis.err");
    let mut portcullis = Running {
        name: "portcullis serve",
        child: Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("serve")
            .arg("--config")
            .arg(&config_file)
            .env(SECRET_ENV, SECRET)
            .env_remove("PORTCULLIS_ADMIN_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&portcullis_out).unwrap())
            .stderr(fs::File::create(&portcullis_err).unwrap())
            .spawn()
            .unwrap(),
    };
    let probe = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let ready = format!("http://127.0.0.1:{portcullis_port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = portcullis.exited() {
            panic!(
                "portcullis serve exited ({status}):\n{}\n{}",
                tail(&portcullis_out),
                tail(&portcullis_err)
            );
        }
        if let Ok(response) = probe.get(&ready).send().await
            && response.status() == StatusCode::OK
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "portcullis serve not ready after 20 s:\n{}",
            tail(&portcullis_err)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // nginx, configured from examples/nginx.
    let prefix = root.join("nginx");
    let conf = prefix.join("conf");
    fs::create_dir_all(conf.join("tls")).unwrap();
    fs::create_dir_all(prefix.join("logs")).unwrap();
    fs::create_dir_all(prefix.join("temp")).unwrap();
    let example = repository().join("examples/nginx");
    let nginx_port = free_port();
    for file in [
        "nginx.conf",
        "portcullis-site.conf",
        "portcullis-auth.conf",
        "portcullis-protect.conf",
    ] {
        let mut text = fs::read_to_string(example.join(file)).unwrap();
        match file {
            "portcullis-site.conf" => {
                text = replace_once(
                    &text,
                    "listen 443 ssl;",
                    &format!("listen 127.0.0.1:{nginx_port} ssl;"),
                    file,
                );
                text = replace_once(
                    &text,
                    "server 127.0.0.1:9700;",
                    &format!("server 127.0.0.1:{portcullis_port};"),
                    file,
                );
                text = replace_once(
                    &text,
                    "server 127.0.0.1:8080;",
                    &format!("server {upstream_addr};"),
                    file,
                );
                // Test only: the test client says which address it plays.
                text = replace_once(
                    &text,
                    "    server_name ops.acme.example;\n",
                    "    server_name ops.acme.example;\n    \
                     set_real_ip_from 127.0.0.1;\n    \
                     real_ip_header X-Forwarded-For;\n",
                    file,
                );
            }
            "portcullis-auth.conf" => {
                // Test only: the test client says when the request happens.
                text = replace_once(
                    &text,
                    "proxy_set_header X-Portcullis-Time \"\";",
                    "proxy_set_header X-Portcullis-Time $http_x_test_time;",
                    file,
                );
            }
            _ => {}
        }
        fs::write(conf.join(file), text).unwrap();
    }
    for (name, pem) in [
        ("ops.acme.example.crt", &pki.server_cert),
        ("ops.acme.example.key", &pki.server_key),
        ("client-ca.crt", &pki.client_ca),
    ] {
        fs::write(conf.join("tls").join(name), pem).unwrap();
    }
    let nginx_args = |command: &mut Command| {
        command
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(conf.join("nginx.conf"))
            .arg("-g")
            // One process, in the foreground, so killing it leaves nothing behind.
            .arg("daemon off; master_process off;");
    };
    let mut check = Command::new(nginx);
    nginx_args(&mut check);
    let checked = check.arg("-t").output().unwrap();
    assert!(
        checked.status.success(),
        "nginx -t refused the derived configuration:\n{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let nginx_err = root.join("nginx.err");
    let mut command = Command::new(nginx);
    nginx_args(&mut command);
    let mut nginx = Running {
        name: "nginx",
        child: command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&nginx_err).unwrap())
            .spawn()
            .unwrap(),
    };
    let nginx_addr: SocketAddr = format!("127.0.0.1:{nginx_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(nginx_addr).is_err() {
        if let Some(status) = nginx.exited() {
            panic!(
                "nginx exited ({status}):\n{}\n{}",
                tail(&nginx_err),
                tail(&prefix.join("logs/error.log"))
            );
        }
        assert!(Instant::now() < deadline, "nginx not listening after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let client = |identity: Option<&str>| {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .resolve(HOST, nginx_addr)
            .tls_certs_only([reqwest::Certificate::from_pem(pki.server_ca.as_bytes()).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        if let Some(identity) = identity {
            builder = builder.identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    };
    let clients = Clients {
        none: client(None),
        listed: client(Some(&pki.listed)),
        unlisted: client(Some(&pki.unlisted)),
        foreign: client(Some(&pki.foreign)),
    };
    Environment {
        _nginx: nginx,
        _portcullis: portcullis,
        nginx_addr,
        log,
        clients,
        listed_cert: pki.listed_cert.clone(),
        dir,
    }
}

// ------------------------------------------------------------------ cases

#[derive(Debug, Clone)]
struct Case {
    name: String,
    user: &'static str,
    token: Token,
    method: Method,
    path: &'static str,
    ip: &'static str,
    time: &'static str,
    cert: Cert,
    /// Extra headers the client sends (forgery attempts).
    headers: Vec<(&'static str, String)>,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 200 from the upstream, which saw the user's identity.
    Allow,
    /// 403 by a policy decision (with its decision id); the upstream never saw the request.
    Deny,
    /// 403 because no route matches (no decision is made); the upstream never saw it.
    NoRoute,
    /// Refused with this status; the upstream never saw the request.
    Refuse(u16),
}

impl Expect {
    fn label(self) -> String {
        match self {
            Expect::Allow => "allow".into(),
            Expect::Deny => "deny".into(),
            Expect::NoRoute => "no route".into(),
            Expect::Refuse(status) => status.to_string(),
        }
    }
}

impl Case {
    /// A case of the worked example: the outcome follows from the SPEC formulas.
    fn spec(
        user: &'static str,
        action: Action,
        ip: &'static str,
        time: &'static str,
        cert: Cert,
    ) -> Case {
        let (method, path) = action.method_and_path();
        let expect = if spec_allows(user, action, ip, time, cert) {
            Expect::Allow
        } else {
            Expect::Deny
        };
        let place = if ip == OFFICE { "office" } else { "outside" };
        Case {
            name: format!("{user} from {place} at {time}, {}", cert.label()),
            user,
            token: Token::Valid,
            method,
            path,
            ip,
            time,
            cert,
            headers: Vec::new(),
            expect,
        }
    }

    fn named(mut self, name: &str) -> Case {
        self.name = format!("{name}: {}", self.name);
        self
    }
}

fn cases(pki_listed_cert_pem: &str) -> Vec<Case> {
    use Action::*;
    use Cert::*;
    let mut cases = vec![
        // release: [[P1,P2,P3],[P1,P5]], alice (operator).
        Case::spec("alice", Release, OFFICE, MON_AFTER_CLOSE, Without),
        Case::spec("alice", Release, OFFICE, MON_TRADING, Without),
        Case::spec("alice", Release, OFFICE, MON_0914, Without),
        Case::spec("alice", Release, OFFICE, MON_0915, Without),
        Case::spec("alice", Release, OFFICE, MON_1529, Without),
        Case::spec("alice", Release, OFFICE, MON_1530, Without),
        Case::spec("alice", Release, OFFICE, SAT_DAY, Without),
        Case::spec("alice", Release, OFFICE, HOLIDAY, Without),
        Case::spec("alice", Release, OUTSIDE, MON_AFTER_CLOSE, Without),
        Case::spec("alice", Release, OUTSIDE, MON_AFTER_CLOSE, Listed),
        Case::spec("alice", Release, OUTSIDE, HOLIDAY, Listed),
        Case::spec("alice", Release, OUTSIDE, SAT_DAY, Without),
        // A viewer holds no release permission, whatever the circumstances.
        Case::spec("bob", Release, OFFICE, MON_AFTER_CLOSE, Without),
        // ops-read: [[P1],[P4,P5],[P2,P3,P4]], bob (viewer).
        Case::spec("bob", LogsDownload, OFFICE, MON_TRADING, Without),
        Case::spec("bob", LogsDownload, OFFICE, SAT_NIGHT, Without),
        Case::spec("bob", LogsDownload, OFFICE, MON_TRADING, Unlisted),
        Case::spec("bob", LogsDownload, OUTSIDE, MON_AFTER_CLOSE, Without),
        Case::spec("bob", LogsDownload, OUTSIDE, SAT_DAY, Without),
        Case::spec("bob", LogsDownload, OUTSIDE, HOLIDAY, Without),
        Case::spec("bob", LogsDownload, OUTSIDE, HOLIDAY, Listed),
        Case::spec("bob", LogsDownload, OUTSIDE, SAT_DAY, Listed),
        Case::spec("bob", LogsDownload, OUTSIDE, MON_AFTER_CLOSE, Listed),
        Case::spec("bob", LogsDownload, OUTSIDE, MON_TRADING, Listed),
        Case::spec("bob", LogsDownload, OUTSIDE, MON_0914, Listed),
        Case::spec("bob", LogsDownload, OUTSIDE, MON_0915, Listed),
        Case::spec("bob", LogsDownload, OUTSIDE, MON_1529, Listed),
        Case::spec("bob", LogsDownload, OUTSIDE, MON_1530, Listed),
        Case::spec("bob", LogsDownload, OUTSIDE, HOLIDAY, Unlisted),
        Case::spec("bob", LogsDownload, OUTSIDE, MON_AFTER_CLOSE, Unlisted),
        Case::spec("alice", StatusCheck, OUTSIDE, SAT_DAY, Listed),
        Case::spec("alice", StatusCheck, OUTSIDE, MON_TRADING, Listed),
    ];

    // Identity: the token is checked before anything else.
    let allowed = || Case::spec("alice", Release, OFFICE, MON_AFTER_CLOSE, Without);
    assert_eq!(allowed().expect, Expect::Allow);
    for (token, name) in [
        (Token::Missing, "no token"),
        (Token::WrongSignature, "a token signed with another key"),
        (Token::Expired, "an expired token"),
        (Token::OtherTenant, "a token issued for another tenant"),
        (Token::WrongAudience, "a token for another audience"),
        (Token::Lacking("aud"), "a token without an audience"),
        (Token::Lacking("exp"), "a token without an expiry"),
        (Token::Lacking("iss"), "a token without an issuer"),
        (Token::Lacking("tenant"), "a token without a tenant"),
    ] {
        cases.push(Case {
            token,
            expect: Expect::Refuse(401),
            ..allowed().named(name)
        });
    }

    // The token is bound to the tenant's domain: the same token for another host is refused.
    cases.push(Case {
        headers: vec![("Host", "portal.globex.example".to_owned())],
        expect: Expect::Refuse(401),
        ..allowed().named("a request for a host other than the tenant's domain")
    });

    // The route table decides what exists.
    cases.push(Case {
        path: "/ops/apps/payments/secrets",
        method: Method::GET,
        expect: Expect::NoRoute,
        ..allowed().named("unknown route")
    });
    cases.push(Case {
        method: Method::DELETE,
        expect: Expect::NoRoute,
        ..allowed().named("known path, method without a route")
    });

    // Forgeries: the headers Portcullis believes from nginx are set by nginx, never by the
    // client.
    let forged_cert = percent_encoding::utf8_percent_encode(
        pki_listed_cert_pem,
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let forged = Case::spec("bob", LogsDownload, OUTSIDE, HOLIDAY, Without);
    assert_eq!(forged.expect, Expect::Deny);
    cases.push(Case {
        headers: vec![
            ("X-SSL-Client-Verify", "SUCCESS".to_owned()),
            ("X-SSL-Client-Cert", forged_cert),
        ],
        ..forged.named("client-supplied certificate headers are ignored")
    });
    let during_trading = Case::spec("alice", Release, OFFICE, MON_TRADING, Without);
    assert_eq!(during_trading.expect, Expect::Deny);
    cases.push(Case {
        headers: vec![("X-Portcullis-Time", SAT_DAY.to_owned())],
        ..during_trading.named("a client-supplied X-Portcullis-Time is ignored")
    });
    cases.push(Case {
        headers: vec![("X-Tenant-ID", "globex".to_owned())],
        ..allowed().named("a client-supplied X-Tenant-ID is ignored")
    });
    cases.push(Case {
        headers: vec![
            ("X-Portcullis-User", "mallory".to_owned()),
            ("X-Portcullis-Roles", "platform-admin".to_owned()),
        ],
        ..allowed().named("the upstream sees Portcullis's identity, not the client's")
    });

    // A certificate nginx cannot verify never reaches Portcullis: nginx answers 400.
    cases.push(Case {
        expect: Expect::Refuse(400),
        ..Case::spec("bob", LogsDownload, OUTSIDE, HOLIDAY, Foreign)
            .named("a certificate from an unknown CA")
    });

    // Fail closed: a request Portcullis refuses as malformed (a path that is not UTF-8 once
    // decoded) is answered 400 by Portcullis, which nginx turns into 500.
    cases.push(Case {
        path: "/ops/apps/%ff/logs/today",
        expect: Expect::Refuse(500),
        ..Case::spec("bob", LogsDownload, OFFICE, MON_TRADING, Without)
            .named("a malformed path fails closed")
    });
    cases
}

/// Sends one case through nginx; returns a description of what went wrong, if anything.
async fn run(env: &Environment, case: &Case) -> Result<String, String> {
    env.log.lock().unwrap().clear();
    let url = format!("https://{HOST}:{}{}", env.nginx_addr.port(), case.path);
    let mut request = env
        .clients
        .get(case.cert)
        .request(case.method.clone(), &url)
        .header("X-Forwarded-For", case.ip)
        .header("X-Test-Time", case.time);
    if let Some(token) = token(case.token, case.user) {
        request = request.bearer_auth(token);
    }
    for (name, value) in &case.headers {
        request = request.header(*name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {e:?}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    let seen = env.log.lock().unwrap().clone();
    let summary = match seen.len() {
        0 => format!("{status}, upstream not reached"),
        1 => format!("{status}, upstream reached"),
        n => format!("{status}, upstream reached {n} times"),
    };
    match case.expect {
        Expect::Allow => {
            if status != 200 || seen.len() != 1 {
                return Err(format!(
                    "expected 200 from the upstream; got {summary}: {body}"
                ));
            }
            let seen = &seen[0];
            let roles: BTreeSet<&str> = seen.roles.as_deref().unwrap_or("").split(',').collect();
            let role = if case.user == "alice" {
                "operator"
            } else {
                "viewer"
            };
            if seen.user.as_deref() != Some(case.user)
                || seen.tenant.as_deref() != Some("acme")
                || !roles.contains(role)
                || seen.decision_id.as_deref().is_none_or(str::is_empty)
                || seen.method != case.method.as_str()
            {
                return Err(format!(
                    "the upstream did not get the identity of {} with role {role}: {seen:?}",
                    case.user
                ));
            }
            let echoed: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            if echoed["user"] != json!(case.user) {
                return Err(format!(
                    "the upstream's answer did not reach the client: {body}"
                ));
            }
        }
        Expect::Deny | Expect::NoRoute | Expect::Refuse(_) => {
            let expected = match case.expect {
                Expect::Refuse(code) => code,
                _ => 403,
            };
            if status != expected || !seen.is_empty() {
                return Err(format!(
                    "expected {expected} without the upstream; got {summary}: {body}"
                ));
            }
            if matches!(case.expect, Expect::Refuse(status) if status != 401) {
                // nginx's own page: the request was refused before or after Portcullis.
                return Ok(summary);
            }
            // The JSON pages of examples/nginx/portcullis-auth.conf.
            let error: Value =
                serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {body}"))?;
            let code = &error["error"]["code"];
            let decision_id = headers
                .get("x-portcullis-decision-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // Portcullis's challenge, passed on by nginx, once.
            let challenges: Vec<_> = headers.get_all("www-authenticate").iter().collect();
            let challenged =
                challenges.len() == 1 && challenges[0].to_str().is_ok_and(|v| v == "Bearer");
            let fine = match case.expect {
                Expect::Refuse(_) => challenged && code == "unauthenticated",
                // A policy decision carries its id, for support to find the decision.
                Expect::Deny => {
                    code == "forbidden"
                        && !decision_id.is_empty()
                        && error["error"]["decision_id"] == decision_id
                }
                Expect::NoRoute | Expect::Allow => code == "forbidden",
            };
            if !fine {
                return Err(format!("unexpected refusal: {headers:?} {body}"));
            }
        }
    }
    Ok(summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_enforces_the_worked_example() {
    let Some(nginx) = find_nginx() else {
        let message =
            "nginx is not installed (scripts/test installs the Debian package nginx-light)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}; CI must run the nginx end-to-end test");
        }
        eprintln!("nginx_e2e: SKIPPED: {message}");
        return;
    };
    let started = Instant::now();
    let env = start(&nginx).await;
    eprintln!(
        "nginx_e2e: {} and portcullis serve ready in {:?}",
        nginx.display(),
        started.elapsed()
    );

    let cases = cases(&env.listed_cert);
    let mut failures = Vec::new();
    for case in &cases {
        let request = format!("{} {}", case.method, case.path);
        let expect = case.expect.label();
        match run(&env, case).await {
            Ok(summary) => {
                eprintln!(
                    "  ok    {expect:<8} {summary:<26} {request:<33} {}",
                    case.name
                )
            }
            Err(problem) => {
                eprintln!(
                    "  FAIL  {expect:<8} {request:<33} {}\n        {problem}",
                    case.name
                );
                failures.push(format!("{request} {}: {problem}", case.name));
            }
        }
    }
    eprintln!(
        "nginx_e2e: {} passed, {} failed in {:?}",
        cases.len() - failures.len(),
        failures.len(),
        started.elapsed()
    );
    if !failures.is_empty() {
        let root = env.dir.path();
        panic!(
            "{} of {} cases failed:\n{}\n--- nginx error.log\n{}\n--- portcullis stderr\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n"),
            tail(&root.join("nginx/logs/error.log")),
            tail(&root.join("portcullis.err"))
        );
    }
}
