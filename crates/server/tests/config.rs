//! Configuration: defaults, overrides, and refusal of invalid values naming the key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::path::Path;

use portcullis_server::{Config, Overrides};

fn parse(text: &str) -> Result<Config, portcullis_server::ConfigError> {
    let bundles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/bundles");
    let text = format!("bundles = [\"{}\"]\n{text}", bundles.display());
    Config::parse(
        &text,
        Path::new("."),
        &Overrides::default(),
        &|name| match name {
            "GOOD_SECRET" => Some("s".repeat(40)),
            "SHORT_SECRET" => Some("short".into()),
            _ => None,
        },
    )
}

#[track_caller]
fn refused(text: &str, key: &str, needle: &str) {
    let error = parse(text).expect_err(text);
    assert_eq!(error.key, key, "{error}");
    assert!(error.message.contains(needle), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("configuration key `{key}`")),
        "{error}"
    );
}

#[test]
fn defaults_are_loopback() {
    let config = parse("").unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:9700");
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9701");
    assert_eq!(config.limits.max_batch, 100);
    assert_eq!(config.limits.max_header_bytes, 16 * 1024);
    assert_eq!(config.limits.max_header_section_bytes, 64 * 1024);
    assert_eq!(config.limits.max_uri_bytes, 16 * 1024);
    assert_eq!(config.trusted_proxies.len(), 2);
    assert!(config.reload.watch);
}

#[test]
fn overrides_win() {
    let overrides = Overrides {
        listen: Some("127.0.0.1:1234".parse().unwrap()),
        ..Overrides::default()
    };
    let config = Config::parse(
        "listen = \"127.0.0.1:9\"",
        Path::new("."),
        &overrides,
        &|_| None,
    )
    .unwrap();
    assert_eq!(config.listen.port(), 1234);
}

#[test]
fn invalid_values_name_their_key() {
    refused(
        "listen = \"localhost\"",
        "listen",
        "not an address and port",
    );
    refused("lisen = \"127.0.0.1:1\"", "lisen", "unknown field");
    refused(
        "[admin]\nlisten = \"0.0.0.0:9701\"",
        "admin.listen",
        "not a loopback address",
    );
    refused(
        "listen = \"127.0.0.1:9800\"\n[admin]\nlisten = \"127.0.0.1:9800\"",
        "admin.listen",
        "must differ",
    );
    refused(
        "[[admin.tokens]]\nname = \"ops\"\ntoken = \"short\"",
        "admin.tokens[0]",
        "shorter than 16",
    );
    refused(
        "[[admin.tokens]]\nname = \"ops\"",
        "admin.tokens[0]",
        "exactly one of",
    );
    refused(
        "[[admin.tokens]]\nname = \"ops\"\ntoken_env = \"UNSET\"",
        "admin.tokens[0].token_env",
        "UNSET is not set",
    );
    refused(
        "[proxy]\ntrusted = [\"10.0.0.0/33\"]",
        "proxy.trusted[0]",
        "not an address or CIDR",
    );
    refused(
        "[limits]\nmax_batch = 0",
        "limits.max_batch",
        "between 1 and 10000",
    );
    refused(
        "[limits]\nmax_header_bytes = 8192\nmax_header_section_bytes = 4096",
        "limits.max_header_section_bytes",
        "between limits.max_header_bytes (8192) and 4194304",
    );
    refused(
        "[limits]\nmax_uri_bytes = 65535",
        "limits.max_uri_bytes",
        "between 1024 and 65534",
    );
    refused(
        "[reload]\ndebounce_ms = 1",
        "reload.debounce_ms",
        "between 10 and 60000",
    );
    refused(
        "[identity]\nleeway_seconds = 3600",
        "identity.leeway_seconds",
        "at most 300",
    );
    refused(
        "[[identity.issuers]]\nissuer = \"x\"\nsecret_env = \"SHORT_SECRET\"",
        "identity.issuers[0]",
        "at least 32 bytes",
    );
    refused(
        "[[identity.issuers]]\nissuer = \"x\"\nsecret_env = \"MISSING\"",
        "identity.issuers[0].secret_env",
        "MISSING is not set",
    );
    refused(
        "[[identity.issuers]]\nissuer = \"x\"\nsecret_env = \"GOOD_SECRET\"\nalgorithms = [\"none\"]",
        "identity.issuers[0].algorithms[0]",
        "`none` is never accepted",
    );
    refused(
        "[[identity.issuers]]\nissuer = \"x\"\nsecret_env = \"GOOD_SECRET\"\nalgorithms = [\"RS256\"]",
        "identity.issuers[0].algorithms",
        "HS* algorithms go with",
    );
    refused(
        "[[identity.issuers]]\nissuer = \"x\"\nkey_file = \"/nonexistent.pem\"",
        "identity.issuers[0].key_file",
        "cannot read",
    );
    refused(
        "[tls]\ncert_file = \"/nonexistent.pem\"\nkey_file = \"/nonexistent.key\"",
        "tls.cert_file",
        "does not exist",
    );
    refused(
        "[tls]\ncert_file = \"a\"\nkey_file = \"b\"\nclient_auth = \"required\"",
        "tls.client_ca_file",
        "required when client_auth",
    );
    refused("[log]\nformat = \"xml\"", "log.format", "use text or json");
    let not_a_folder = Config::parse(
        "bundles = [\"/nonexistent\"]",
        Path::new("."),
        &Overrides::default(),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(not_a_folder.key, "bundles[0]");
}

#[test]
fn the_admin_token_can_come_from_the_environment() {
    let config = Config::parse("", Path::new("."), &Overrides::default(), &|name| {
        (name == "PORTCULLIS_ADMIN_TOKEN").then(|| "env-token-0123456789".to_owned())
    })
    .unwrap();
    assert_eq!(config.admin.tokens.len(), 1);
    assert_eq!(config.admin.tokens[0].name, "env");
    assert!(
        !format!("{:?}", config.admin.tokens).contains("env-token"),
        "secrets are not printed"
    );
}

#[test]
fn the_audit_backend_is_files_or_store() {
    use portcullis_server::audit::AuditBackend;
    let backend = |text: &str| parse(text).unwrap().audit.unwrap().backend;
    assert_eq!(backend(""), AuditBackend::Files);
    assert_eq!(
        backend("[audit]\nbackend = \"files\"\ndir = \"/tmp/audit\""),
        AuditBackend::Files
    );
    assert_eq!(backend("[audit]\nbackend = \"store\""), AuditBackend::Store);
    refused(
        "[audit]\nbackend = \"kafka\"",
        "audit.backend",
        "use files or store",
    );
    refused(
        "[audit]\nbackend = \"store\"\ndir = \"/tmp/audit\"",
        "audit.dir",
        "files\" only",
    );
}

#[test]
fn the_header_section_limit_follows_a_large_header_limit() {
    let config = parse("[limits]\nmax_header_bytes = 100000").unwrap();
    assert_eq!(config.limits.max_header_section_bytes, 200_000);
    let config = parse("[limits]\nmax_header_bytes = 2048").unwrap();
    assert_eq!(config.limits.max_header_section_bytes, 64 * 1024);
    let config =
        parse("[limits]\nmax_header_bytes = 2048\nmax_header_section_bytes = 2048").unwrap();
    assert_eq!(config.limits.max_header_section_bytes, 2048);
}

#[test]
fn default_tenant_and_public_url_are_validated() {
    let config = parse("").unwrap();
    assert_eq!(config.default_tenant, None);
    assert_eq!(config.public_url, None);
    let config =
        parse("default_tenant = \"acme\"\npublic_url = \"https://pdp.example.com/\"").unwrap();
    assert_eq!(config.default_tenant.unwrap().as_str(), "acme");
    assert_eq!(
        config.public_url.as_deref(),
        Some("https://pdp.example.com")
    );
    let config = parse("public_url = \"http://10.0.0.1:9700/authz\"").unwrap();
    assert_eq!(
        config.public_url.as_deref(),
        Some("http://10.0.0.1:9700/authz")
    );
    refused("default_tenant = \"a b\"", "default_tenant", "");
    refused("default_tenant = \"ab\"", "default_tenant", "");
    refused("public_url = \"pdp.example.com\"", "public_url", "https://");
    refused(
        "public_url = \"ftp://pdp.example.com\"",
        "public_url",
        "https://",
    );
    refused("public_url = \"https://\"", "public_url", "no host");
    refused(
        "public_url = \"https://pdp.example.com/?x=1\"",
        "public_url",
        "query",
    );
    refused(
        "public_url = \"https://user@pdp.example.com\"",
        "public_url",
        "user",
    );
}

#[test]
fn the_temporary_access_webhook_is_checked_key_by_key() {
    let section = |body: &str| format!("[temporary_access.webhook]\n{body}");
    let config = parse(&section(
        "url = \"https://hooks.example/portcullis\"\nsecret_env = \"GOOD_SECRET\"\n",
    ))
    .unwrap();
    let webhook = config.access_webhook.unwrap();
    assert_eq!(webhook.attempts, 6);
    assert_eq!(webhook.timeout.as_millis(), 5000);
    assert!(
        !format!("{webhook:?}").contains("ssss"),
        "the secret stays out of Debug"
    );
    refused(
        &section("url = \"ftp://hooks.example\"\nsecret_env = \"GOOD_SECRET\"\n"),
        "temporary_access.webhook.url",
        "not an http(s) URL",
    );
    refused(
        &section("url = \"https://hooks.example\"\nsecret_env = \"MISSING\"\n"),
        "temporary_access.webhook.secret_env",
        "MISSING is not set",
    );
    refused(
        &section("url = \"https://hooks.example\"\nsecret_env = \"SHORT_SECRET\"\n"),
        "temporary_access.webhook.secret_env",
        "at least 16 bytes",
    );
    refused(
        &section("url = \"https://hooks.example\"\nsecret_env = \"GOOD_SECRET\"\nattempts = 0\n"),
        "temporary_access.webhook.attempts",
        "from 1 to 20",
    );
    refused(
        &section("url = \"https://hooks.example\"\nsecret_env = \"GOOD_SECRET\"\ntimeout_ms = 5\n"),
        "temporary_access.webhook.timeout_ms",
        "from 100",
    );
    assert!(
        parse("[temporary_access]\n")
            .unwrap()
            .access_webhook
            .is_none()
    );
}
