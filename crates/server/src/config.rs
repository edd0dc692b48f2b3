//! Server configuration: one TOML file, parsed into raw structs and then converted once into
//! validated types that cannot hold an invalid state. Every error names the offending key.
//!
//! Secrets never need to be written in the file: admin tokens and HMAC keys can come from
//! environment variables (`*_env` keys) or files (`*_file` keys), and `PORTCULLIS_ADMIN_TOKEN`
//! adds an admin token named `env`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use portcullis_core::TenantId;
use serde::Deserialize;

/// A configuration problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted path of the key (`admin.listen`, `identity.issuers[0].key_file`, ...).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// A public base URL: `http` or `https`, a host, an optional port and path; no query, fragment,
/// user information or whitespace. Returned without a trailing slash.
fn public_url(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| format!("`{value}` must start with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("`{value}` names no host"));
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@'))
    {
        return Err(format!(
            "`{value}` must be a plain base URL (no query, fragment, user or spaces)"
        ));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

// ---------------------------------------------------------------------------- raw (file) form

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    default_tenant: Option<String>,
    public_url: Option<String>,
    grpc_listen: Option<String>,
    bundles: Option<Vec<PathBuf>>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    encryption: RawEncryption,
    #[serde(default)]
    quota: RawQuota,
    #[serde(default)]
    reload: RawReload,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    identity: RawIdentity,
    tls: Option<RawTls>,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    audit: crate::audit::RawAudit,
    supply_chain: Option<RawSupplyChain>,
    integrity: Option<RawIntegrity>,
    gateway: Option<crate::gateway::settings::RawGateway>,
    temporary_access: Option<RawTemporaryAccess>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemporaryAccess {
    webhook: Option<RawWebhook>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret_env: String,
    attempts: Option<u32>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegrity {
    manifest: Option<PathBuf>,
    trust_key: Option<PathBuf>,
    on_failure: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSupplyChain {
    database: Option<PathBuf>,
    osv: Option<PathBuf>,
    waivers: Option<PathBuf>,
    interval_seconds: Option<u64>,
    on_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    url_env: Option<String>,
    migrate_url: Option<String>,
    migrate_url_env: Option<String>,
    max_connections: Option<u32>,
    poll_ms: Option<u64>,
    #[serde(default)]
    shards: std::collections::BTreeMap<String, RawShard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShard {
    url: Option<String>,
    url_env: Option<String>,
    migrate_url: Option<String>,
    migrate_url_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    keys_file: Option<PathBuf>,
    keys_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    requests_per_second: Option<f64>,
    burst: Option<u32>,
    concurrent: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReload {
    watch: Option<bool>,
    debounce_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<usize>,
    max_batch: Option<usize>,
    max_header_bytes: Option<usize>,
    max_header_section_bytes: Option<usize>,
    max_uri_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    trusted: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    allow_remote: Option<bool>,
    #[serde(default)]
    tokens: Vec<RawAdminToken>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdminToken {
    name: String,
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    principal_claim: Option<String>,
    tenant_claim: Option<String>,
    roles_claim: Option<String>,
    attribute_claims: Option<Vec<String>>,
    leeway_seconds: Option<u64>,
    require_token_for_check: Option<bool>,
    #[serde(default)]
    issuers: Vec<RawIssuer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    audiences: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
    key_file: Option<PathBuf>,
    jwks_file: Option<PathBuf>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    client_auth: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

// ---------------------------------------------------------------------------- validated form

/// The default tenant of the demo configuration (no `bundles` configured): the AuthZEN
/// certification tenant, so that a plain AuthZEN call to the demo is answered.
pub const DEMO_DEFAULT_TENANT: &str = "authzen";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Main listener: JSON API, AuthZEN, forward-auth, health, metrics and (unless
    /// `grpc_listen` is set) gRPC.
    pub listen: SocketAddr,
    /// A separate gRPC listener, if wanted.
    pub grpc_listen: Option<SocketAddr>,
    /// Bundle folders (each a bundle or a folder of bundles).
    pub bundles: Vec<PathBuf>,
    /// Whether the bundles served are the demo bundles built into the binary.
    pub embedded_demo: bool,
    /// Where the embedded store and a generated encryption key live.
    pub data_dir: PathBuf,
    /// The store.
    pub store: StoreSettings,
    /// Master keys for per-tenant field encryption.
    pub encryption: EncryptionSource,
    /// Limits for tenants that do not declare their own `quota`.
    pub default_quota: portcullis_tenant::quota::QuotaConfig,
    /// Hot reload.
    pub reload: ReloadConfig,
    /// Request limits.
    pub limits: Limits,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The tenant of AuthZEN requests that name none by header, token or host.
    pub default_tenant: Option<portcullis_core::TenantId>,
    /// The public base URL of the main listener (`https://pdp.example.com`), without a
    /// trailing slash; the AuthZEN discovery document is built from it.
    pub public_url: Option<String>,
    /// The admin listener and its tokens.
    pub admin: AdminConfig,
    /// Token verification.
    pub identity: IdentityConfig,
    /// TLS on the main listener.
    pub tls: Option<TlsConfig>,
    /// Logging.
    pub log: LogConfig,
    /// The audit trail (`None` when `audit.enabled = false`).
    pub audit: Option<crate::audit::AuditSettings>,
    /// The supply-chain gate (`None` without a `[supply_chain]` section).
    pub supply_chain: Option<crate::supply::SupplySettings>,
    /// The integrity check at start (`None` without `[integrity]` or `--verify-integrity`).
    pub integrity: Option<crate::supply::IntegritySettings>,
    /// The SBOM of the running binary, served by `GET /admin/v1/sbom`. Not read from the file:
    /// the `portcullis` binary sets it from the package list embedded at build time.
    pub sbom: Option<std::sync::Arc<portcullis_supply::PackageList>>,
    /// The protecting gateway (`None` without a `[gateway]` section).
    pub gateway: Option<crate::gateway::settings::GatewaySettings>,
    /// The file this configuration was read from (`None` for the defaults or parsed text):
    /// a reload reads the gateway's section from it again.
    pub config_file: Option<PathBuf>,
    /// The webhook told of every step of temporary access (`None` without
    /// `[temporary_access.webhook]`).
    pub access_webhook: Option<crate::webhook::WebhookSettings>,
}

/// Where the store lives.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Connection settings (URLs may hold passwords; their Debug output hides them).
    pub store: portcullis_store::StoreConfig,
    /// How often to compare tenant revisions with the store, as a fallback for missed
    /// notifications (and the only way SQLite-backed nodes would learn of others' changes).
    pub poll: Duration,
}

/// Where the master keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptionSource {
    /// A key ring file (`name = key` lines and `current = name`).
    File(PathBuf),
    /// A key ring in an environment variable (same format), already read.
    Env(String, String),
    /// Nothing configured: a key ring is generated in the data folder on first start.
    Generated,
}

/// Hot reload settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadConfig {
    /// Watch the bundle folders for changes.
    pub watch: bool,
    /// Quiet time before a burst of file events triggers a reload.
    pub debounce: Duration,
}

/// Request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most checks in one batch.
    pub max_batch: usize,
    /// Largest header value of any request (forwarded certificates included): 431 beyond.
    pub max_header_bytes: usize,
    /// Largest header section (every name and value together): 431 beyond.
    pub max_header_section_bytes: usize,
    /// Longest request URI (the request target as sent): 414 beyond.
    pub max_uri_bytes: usize,
}

/// The longest URI hyper's HTTP/1 parser accepts at all; `limits.max_uri_bytes` cannot exceed it.
pub const HTTP1_MAX_URI_BYTES: usize = 65_534;

/// The admin listener.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where admin endpoints listen.
    pub listen: SocketAddr,
    /// Named admin tokens; the name is the principal id in the `system` tenant.
    pub tokens: Vec<AdminToken>,
}

/// One admin token.
#[derive(Clone)]
pub struct AdminToken {
    /// The principal this token authenticates, in the `system` tenant.
    pub name: String,
    /// The secret.
    pub secret: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How identity tokens are verified and mapped.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Claim holding the principal id.
    pub principal_claim: String,
    /// Claim holding the tenant id.
    pub tenant_claim: String,
    /// Claim holding roles (used only for tenants that trust token roles).
    pub roles_claim: String,
    /// Claims copied into principal attributes.
    pub attribute_claims: Vec<String>,
    /// Allowed clock skew for `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// Whether `/v1/check` and its siblings require a bearer token.
    pub require_token_for_check: bool,
    /// Trusted issuers.
    pub issuers: Vec<IssuerConfig>,
}

/// One trusted token issuer.
#[derive(Clone)]
pub struct IssuerConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values (any one must be present); empty means `aud` is not checked.
    pub audiences: Vec<String>,
    /// Accepted algorithms.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Where the keys come from.
    pub keys: KeySource,
}

impl std::fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerConfig")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Verification keys of an issuer.
#[derive(Clone)]
pub enum KeySource {
    /// A PEM public key (RSA, EC or Ed25519).
    Pem(Vec<u8>),
    /// A JWKS document.
    Jwks(Vec<u8>),
    /// An HMAC secret.
    Secret(Vec<u8>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeySource::Pem(_) => "KeySource::Pem",
            KeySource::Jwks(_) => "KeySource::Jwks",
            KeySource::Secret(_) => "KeySource::Secret",
        })
    }
}

/// TLS on the main listener.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Server private key (PEM).
    pub key_file: PathBuf,
    /// Client certificate authorities (PEM), for mTLS.
    pub client_ca_file: Option<PathBuf>,
    /// Whether client certificates are required, optional or not asked for.
    pub client_auth: ClientAuth,
}

/// Client certificate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Not asked for.
    None,
    /// Asked for and verified when presented.
    Optional,
    /// Required.
    Required,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `text` or `json`.
    pub json: bool,
    /// A tracing filter such as `info` or `portcullis=debug`.
    pub level: String,
}

/// Defaults used when nothing is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9700";
/// Default admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9701";
/// The environment variable that adds an admin token named `env`.
pub const ADMIN_TOKEN_ENV: &str = "PORTCULLIS_ADMIN_TOKEN";

fn socket(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        error(
            key,
            format!("`{value}` is not an address and port such as 127.0.0.1:9700"),
        )
    })
}

fn read_secret(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| error(key, format!("cannot read {}: {e}", path.display())))?;
    let trimmed = bytes.trim_ascii().to_vec();
    if trimmed.is_empty() {
        return Err(error(key, format!("{} is empty", path.display())));
    }
    Ok(trimmed)
}

fn env_secret(
    key: &str,
    variable: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, ConfigError> {
    match lookup(variable) {
        Some(value) if !value.is_empty() => Ok(value.into_bytes()),
        _ => Err(error(
            key,
            format!("environment variable {variable} is not set"),
        )),
    }
}

fn webhook_settings(
    raw: RawWebhook,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::webhook::WebhookSettings, ConfigError> {
    let key = "temporary_access.webhook";
    let url = reqwest::Url::parse(&raw.url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| {
            error(
                format!("{key}.url"),
                format!("`{}` is not an http(s) URL", raw.url),
            )
        })?;
    let secret = env_secret(&format!("{key}.secret_env"), &raw.secret_env, env)?;
    if secret.len() < 16 {
        return Err(error(
            format!("{key}.secret_env"),
            "the signing secret must be at least 16 bytes",
        ));
    }
    let attempts = raw.attempts.unwrap_or(6);
    if !(1..=20).contains(&attempts) {
        return Err(error(format!("{key}.attempts"), "from 1 to 20"));
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(5000);
    if !(100..=60_000).contains(&timeout_ms) {
        return Err(error(
            format!("{key}.timeout_ms"),
            "from 100 to 60000 milliseconds",
        ));
    }
    Ok(crate::webhook::WebhookSettings {
        url,
        secret,
        attempts,
        timeout: Duration::from_millis(timeout_ms),
        first_retry: Duration::from_millis(500),
    })
}

fn algorithm(key: &str, name: &str) -> Result<jsonwebtoken::Algorithm, ConfigError> {
    use jsonwebtoken::Algorithm::*;
    Ok(match name {
        "HS256" => HS256,
        "HS384" => HS384,
        "HS512" => HS512,
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        other => {
            return Err(error(
                key,
                format!(
                    "unknown algorithm `{other}`; use HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 or EdDSA (`none` is never accepted)"
                ),
            ));
        }
    })
}

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--bundles`.
    pub bundles: Option<PathBuf>,
    /// `--admin-listen`.
    pub admin_listen: Option<SocketAddr>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--verify-integrity`: the signed manifest to check at start.
    pub verify_integrity: Option<PathBuf>,
    /// `--trust-key`: the public key the manifest must be signed with.
    pub trust_key: Option<PathBuf>,
}

impl Config {
    /// Reads and validates a configuration file (or the defaults when `path` is `None`),
    /// applying overrides and environment variables.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| error("(file)", format!("cannot read {}: {e}", path.display())))?;
                Some((
                    text,
                    path.parent().map(Path::to_path_buf).unwrap_or_default(),
                ))
            }
            None => None,
        };
        let env = |name: &str| std::env::var(name).ok();
        let mut config = match raw {
            Some((text, base)) => Config::parse(&text, &base, overrides, &env),
            None => Config::parse("", Path::new("."), overrides, &env),
        }?;
        config.config_file = path.map(Path::to_path_buf);
        // What this process really runs with: its own executable and this file must be the
        // ones the manifest covers.
        if let Some(integrity) = &mut config.integrity {
            integrity.binary = std::env::current_exe().ok();
            integrity.config_file = path.map(Path::to_path_buf);
        }
        Ok(config)
    }

    /// Parses configuration text. Relative paths are resolved against `base` (the file's
    /// folder); `env` looks up environment variables.
    pub fn parse(
        text: &str,
        base: &Path,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            let location = e
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            let key = message
                .split('`')
                .nth(1)
                .filter(|_| message.starts_with("unknown field"))
                .unwrap_or("(file)")
                .to_owned();
            error(key, format!("{message}{location}"))
        })?;
        let resolve = |path: &Path| {
            if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            }
        };

        let listen = match (overrides.listen, &raw.listen) {
            (Some(listen), _) => listen,
            (None, Some(value)) => socket("listen", value)?,
            (None, None) => socket("listen", DEFAULT_LISTEN)?,
        };
        let grpc_listen = raw
            .grpc_listen
            .as_deref()
            .map(|v| socket("grpc_listen", v))
            .transpose()?;
        let (bundles, embedded_demo) = match (&overrides.bundles, &raw.bundles) {
            (Some(dir), _) => (vec![dir.clone()], false),
            (None, Some(dirs)) if !dirs.is_empty() => {
                (dirs.iter().map(|d| resolve(d)).collect(), false)
            }
            (None, Some(_)) => return Err(error("bundles", "lists no folder")),
            (None, None) => {
                let demo = PathBuf::from("examples/demo/bundles");
                let authzen = PathBuf::from("examples/authzen");
                if demo.is_dir() {
                    let mut folders = vec![demo];
                    if authzen.is_dir() {
                        folders.push(authzen);
                    }
                    (folders, false)
                } else {
                    (Vec::new(), true)
                }
            }
        };
        for (index, dir) in bundles.iter().enumerate() {
            if !dir.is_dir() {
                return Err(error(
                    format!("bundles[{index}]"),
                    format!("{} is not a folder", dir.display()),
                ));
            }
        }

        let debounce_ms = raw.reload.debounce_ms.unwrap_or(300);
        if !(10..=60_000).contains(&debounce_ms) {
            return Err(error("reload.debounce_ms", "must be between 10 and 60000"));
        }
        let reload = ReloadConfig {
            watch: raw.reload.watch.unwrap_or(true) && !embedded_demo,
            debounce: Duration::from_millis(debounce_ms),
        };

        let max_header_bytes = raw.limits.max_header_bytes.unwrap_or(16 * 1024);
        let limits = Limits {
            max_body_bytes: raw.limits.max_body_bytes.unwrap_or(1024 * 1024),
            max_batch: raw.limits.max_batch.unwrap_or(100),
            max_header_bytes,
            // One header may be as large as allowed and still leave room for the others.
            max_header_section_bytes: raw
                .limits
                .max_header_section_bytes
                .unwrap_or_else(|| (64 * 1024).max(2 * max_header_bytes)),
            max_uri_bytes: raw.limits.max_uri_bytes.unwrap_or(16 * 1024),
        };
        if !(1024..=64 * 1024 * 1024).contains(&limits.max_body_bytes) {
            return Err(error(
                "limits.max_body_bytes",
                "must be between 1024 and 67108864",
            ));
        }
        if !(1..=10_000).contains(&limits.max_batch) {
            return Err(error("limits.max_batch", "must be between 1 and 10000"));
        }
        if !(1024..=1024 * 1024).contains(&limits.max_header_bytes) {
            return Err(error(
                "limits.max_header_bytes",
                "must be between 1024 and 1048576",
            ));
        }
        if !(limits.max_header_bytes..=4 * 1024 * 1024).contains(&limits.max_header_section_bytes) {
            return Err(error(
                "limits.max_header_section_bytes",
                format!(
                    "must be between limits.max_header_bytes ({}) and 4194304",
                    limits.max_header_bytes
                ),
            ));
        }
        if !(1024..=HTTP1_MAX_URI_BYTES).contains(&limits.max_uri_bytes) {
            return Err(error(
                "limits.max_uri_bytes",
                format!("must be between 1024 and {HTTP1_MAX_URI_BYTES}"),
            ));
        }

        let trusted = raw
            .proxy
            .trusted
            .unwrap_or_else(|| vec!["127.0.0.1/32".into(), "::1/128".into()]);
        let mut trusted_proxies = Vec::with_capacity(trusted.len());
        for (index, value) in trusted.iter().enumerate() {
            let network = value
                .parse::<IpNet>()
                .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    error(
                        format!("proxy.trusted[{index}]"),
                        format!("`{value}` is not an address or CIDR block"),
                    )
                })?;
            trusted_proxies.push(network);
        }

        // The demo answers plain AuthZEN calls with its AuthZEN tenant unless told otherwise.
        let demo = overrides.bundles.is_none() && raw.bundles.is_none();
        let default_tenant = raw
            .default_tenant
            .as_deref()
            .or(demo.then_some(DEMO_DEFAULT_TENANT))
            .map(portcullis_core::TenantId::new)
            .transpose()
            .map_err(|e| error("default_tenant", e.to_string()))?;
        let public_url = raw
            .public_url
            .as_deref()
            .map(public_url)
            .transpose()
            .map_err(|message| error("public_url", message))?;

        let admin_listen = match (overrides.admin_listen, &raw.admin.listen) {
            (Some(listen), _) => listen,
            (None, Some(value)) => socket("admin.listen", value)?,
            (None, None) => socket("admin.listen", DEFAULT_ADMIN_LISTEN)?,
        };
        if !admin_listen.ip().is_loopback() && !raw.admin.allow_remote.unwrap_or(false) {
            return Err(error(
                "admin.listen",
                format!(
                    "{admin_listen} is not a loopback address; set admin.allow_remote = true to expose admin endpoints beyond this host"
                ),
            ));
        }
        if admin_listen == listen && listen.port() != 0 {
            return Err(error("admin.listen", "must differ from `listen`"));
        }
        let mut tokens = Vec::new();
        for (index, token) in raw.admin.tokens.iter().enumerate() {
            let key = format!("admin.tokens[{index}]");
            if token.name.is_empty() || token.name.chars().any(char::is_whitespace) {
                return Err(error(
                    format!("{key}.name"),
                    "must be a non-empty name without spaces",
                ));
            }
            let secret = match (&token.token, &token.token_env, &token.token_file) {
                (Some(secret), None, None) => secret.clone().into_bytes(),
                (None, Some(variable), None) => {
                    env_secret(&format!("{key}.token_env"), variable, env)?
                }
                (None, None, Some(path)) => {
                    read_secret(&format!("{key}.token_file"), &resolve(path))?
                }
                _ => {
                    return Err(error(
                        &key,
                        "give exactly one of token, token_env, token_file",
                    ));
                }
            };
            let secret = String::from_utf8(secret)
                .map_err(|_| error(&key, "the token is not UTF-8 text"))?;
            if secret.len() < 16 {
                return Err(error(&key, "the token is shorter than 16 characters"));
            }
            tokens.push(AdminToken {
                name: token.name.clone(),
                secret,
            });
        }
        if let Some(secret) = env(ADMIN_TOKEN_ENV).filter(|s| !s.is_empty()) {
            if secret.len() < 16 {
                return Err(error(
                    ADMIN_TOKEN_ENV,
                    "the token is shorter than 16 characters",
                ));
            }
            tokens.push(AdminToken {
                name: "env".into(),
                secret,
            });
        }

        let identity = Self::identity(raw.identity, &resolve, env)?;

        let tls = match raw.tls {
            None => None,
            Some(tls) => {
                let client_auth = match tls.client_auth.as_deref() {
                    None if tls.client_ca_file.is_some() => ClientAuth::Optional,
                    None | Some("none") => ClientAuth::None,
                    Some("optional") => ClientAuth::Optional,
                    Some("required") => ClientAuth::Required,
                    Some(other) => {
                        return Err(error(
                            "tls.client_auth",
                            format!("`{other}`: use none, optional or required"),
                        ));
                    }
                };
                if client_auth != ClientAuth::None && tls.client_ca_file.is_none() {
                    return Err(error(
                        "tls.client_ca_file",
                        "is required when client_auth is optional or required",
                    ));
                }
                for (key, path) in [
                    ("tls.cert_file", Some(&tls.cert_file)),
                    ("tls.key_file", Some(&tls.key_file)),
                    ("tls.client_ca_file", tls.client_ca_file.as_ref()),
                ] {
                    if let Some(path) = path
                        && !resolve(path).is_file()
                    {
                        return Err(error(
                            key,
                            format!("{} does not exist", resolve(path).display()),
                        ));
                    }
                }
                Some(TlsConfig {
                    cert_file: resolve(&tls.cert_file),
                    key_file: resolve(&tls.key_file),
                    client_ca_file: tls.client_ca_file.as_deref().map(resolve),
                    client_auth,
                })
            }
        };

        let data_dir = resolve(raw.data_dir.as_deref().unwrap_or(Path::new(".portcullis")));
        let store = Self::store(raw.store, overrides, &data_dir, env)?;
        let encryption = match (raw.encryption.keys_file, raw.encryption.keys_env) {
            (Some(file), None) => {
                let file = resolve(&file);
                if !file.is_file() {
                    return Err(error(
                        "encryption.keys_file",
                        format!("{} does not exist", file.display()),
                    ));
                }
                EncryptionSource::File(file)
            }
            (None, Some(variable)) => match env(&variable) {
                Some(text) if !text.is_empty() => EncryptionSource::Env(variable, text),
                _ => {
                    return Err(error(
                        "encryption.keys_env",
                        format!("environment variable {variable} is not set"),
                    ));
                }
            },
            (None, None) => EncryptionSource::Generated,
            (Some(_), Some(_)) => {
                return Err(error("encryption", "give keys_file or keys_env, not both"));
            }
        };
        let audit = raw
            .audit
            .settings(&data_dir, &resolve, env)
            .map_err(|(key, message)| error(&key, message))?;
        let supply_chain = match raw.supply_chain {
            None => None,
            Some(raw) => Some(supply_settings(raw, &resolve)?),
        };
        let integrity = integrity_settings(raw.integrity, overrides, &resolve)?;
        let gateway = raw
            .gateway
            .map(|raw| crate::gateway::settings::GatewaySettings::parse(raw, env))
            .transpose()
            .map_err(|(key, message)| error(key, message))?;
        if gateway.as_ref().is_some_and(|gateway| gateway.tls) && tls.is_none() {
            return Err(error(
                "gateway.tls",
                "the gateway's TLS uses the [tls] section's certificate, and there is none",
            ));
        }
        let access_webhook = match raw.temporary_access.and_then(|raw| raw.webhook) {
            None => None,
            Some(raw) => Some(webhook_settings(raw, env)?),
        };
        let default_quota = portcullis_tenant::quota::QuotaConfig::new(
            raw.quota.requests_per_second,
            raw.quota.burst,
            raw.quota.concurrent,
        )
        .map_err(|e| error("quota", e.to_string()))?;

        let log = LogConfig {
            json: match raw.log.format.as_deref() {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => {
                    return Err(error("log.format", format!("`{other}`: use text or json")));
                }
            },
            level: raw.log.level.unwrap_or_else(|| "info".into()),
        };

        Ok(Config {
            listen,
            grpc_listen,
            bundles,
            embedded_demo,
            data_dir,
            store,
            encryption,
            default_quota,
            reload,
            limits,
            trusted_proxies,
            default_tenant,
            public_url,
            admin: AdminConfig {
                listen: admin_listen,
                tokens,
            },
            identity,
            tls,
            log,
            audit,
            supply_chain,
            integrity,
            sbom: None,
            gateway,
            config_file: None,
            access_webhook,
        })
    }

    fn store(
        raw: RawStore,
        overrides: &Overrides,
        data_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<StoreSettings, ConfigError> {
        let pick = |key: &str,
                    direct: Option<String>,
                    variable: Option<String>|
         -> Result<Option<String>, ConfigError> {
            match (direct, variable) {
                (Some(value), None) => Ok(Some(value)),
                (None, Some(variable)) => match env(&variable) {
                    Some(value) if !value.is_empty() => Ok(Some(value)),
                    _ => Err(error(
                        format!("{key}_env"),
                        format!("environment variable {variable} is not set"),
                    )),
                },
                (None, None) => Ok(None),
                (Some(_), Some(_)) => Err(error(key, format!("give {key} or {key}_env, not both"))),
            }
        };
        let configured = pick("store.url", raw.url, raw.url_env)?;
        let url = match (&overrides.database_url, configured) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url,
            (None, None) => format!("sqlite://{}", data_dir.join("portcullis.db").display()),
        };
        let scheme_ok = |url: &str| {
            url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:")
        };
        if !scheme_ok(&url) {
            return Err(error("store.url", "must start with sqlite: or postgres:"));
        }
        let migrate_url = pick("store.migrate_url", raw.migrate_url, raw.migrate_url_env)?;
        let mut shards = std::collections::BTreeMap::new();
        for (tenant, shard) in raw.shards {
            let key = format!("store.shards.{tenant}");
            let id = TenantId::new(&tenant).map_err(|e| error(&key, e.to_string()))?;
            let shard_url = pick(&format!("{key}.url"), shard.url, shard.url_env)?
                .ok_or_else(|| error(format!("{key}.url"), "is required"))?;
            if !shard_url.starts_with("postgres") {
                return Err(error(
                    format!("{key}.url"),
                    "shards are PostgreSQL databases (postgres://…)",
                ));
            }
            let shard_migrate = pick(
                &format!("{key}.migrate_url"),
                shard.migrate_url,
                shard.migrate_url_env,
            )?;
            shards.insert(id, (shard_url, shard_migrate));
        }
        if !shards.is_empty() && !url.starts_with("postgres") {
            return Err(error("store.shards", "shards need a PostgreSQL store.url"));
        }
        let poll_ms = raw.poll_ms.unwrap_or(1000);
        if !(50..=60_000).contains(&poll_ms) {
            return Err(error("store.poll_ms", "must be between 50 and 60000"));
        }
        let max_connections = raw.max_connections.unwrap_or(8);
        if !(1..=256).contains(&max_connections) {
            return Err(error("store.max_connections", "must be between 1 and 256"));
        }
        Ok(StoreSettings {
            store: portcullis_store::StoreConfig {
                url,
                migrate_url,
                shards,
                max_connections,
            },
            poll: Duration::from_millis(poll_ms),
        })
    }

    fn identity(
        raw: RawIdentity,
        resolve: &dyn Fn(&Path) -> PathBuf,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<IdentityConfig, ConfigError> {
        let leeway_seconds = raw.leeway_seconds.unwrap_or(30);
        if leeway_seconds > 300 {
            return Err(error("identity.leeway_seconds", "must be at most 300"));
        }
        let mut issuers = Vec::with_capacity(raw.issuers.len());
        for (index, issuer) in raw.issuers.into_iter().enumerate() {
            let key = format!("identity.issuers[{index}]");
            if issuer.issuer.is_empty() {
                return Err(error(format!("{key}.issuer"), "must not be empty"));
            }
            let keys = match (
                &issuer.key_file,
                &issuer.jwks_file,
                &issuer.secret_env,
                &issuer.secret_file,
            ) {
                (Some(path), None, None, None) => {
                    KeySource::Pem(read_secret(&format!("{key}.key_file"), &resolve(path))?)
                }
                (None, Some(path), None, None) => {
                    KeySource::Jwks(read_secret(&format!("{key}.jwks_file"), &resolve(path))?)
                }
                (None, None, Some(variable), None) => {
                    KeySource::Secret(env_secret(&format!("{key}.secret_env"), variable, env)?)
                }
                (None, None, None, Some(path)) => {
                    KeySource::Secret(read_secret(&format!("{key}.secret_file"), &resolve(path))?)
                }
                _ => {
                    return Err(error(
                        &key,
                        "give exactly one of key_file, jwks_file, secret_env, secret_file",
                    ));
                }
            };
            if let KeySource::Secret(secret) = &keys
                && secret.len() < 32
            {
                return Err(error(&key, "an HMAC secret must be at least 32 bytes"));
            }
            let names = issuer.algorithms.unwrap_or_else(|| match keys {
                KeySource::Secret(_) => vec!["HS256".into()],
                _ => vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
            });
            if names.is_empty() {
                return Err(error(format!("{key}.algorithms"), "lists no algorithm"));
            }
            let algorithms = names
                .iter()
                .enumerate()
                .map(|(i, name)| algorithm(&format!("{key}.algorithms[{i}]"), name))
                .collect::<Result<Vec<_>, _>>()?;
            let hmac = |a: &jsonwebtoken::Algorithm| {
                matches!(
                    a,
                    jsonwebtoken::Algorithm::HS256
                        | jsonwebtoken::Algorithm::HS384
                        | jsonwebtoken::Algorithm::HS512
                )
            };
            let secret_keys = matches!(keys, KeySource::Secret(_));
            if algorithms.iter().any(|a| hmac(a) != secret_keys) {
                return Err(error(
                    format!("{key}.algorithms"),
                    "HS* algorithms go with secret_env/secret_file, the others with key_file/jwks_file",
                ));
            }
            issuers.push(IssuerConfig {
                issuer: issuer.issuer,
                audiences: issuer.audiences.unwrap_or_default(),
                algorithms,
                keys,
            });
        }
        Ok(IdentityConfig {
            principal_claim: raw.principal_claim.unwrap_or_else(|| "sub".into()),
            tenant_claim: raw.tenant_claim.unwrap_or_else(|| "tenant".into()),
            roles_claim: raw.roles_claim.unwrap_or_else(|| "roles".into()),
            attribute_claims: raw.attribute_claims.unwrap_or_default(),
            leeway_seconds,
            require_token_for_check: raw.require_token_for_check.unwrap_or(false),
            issuers,
        })
    }
}

/// `[integrity]` and `--verify-integrity` / `--trust-key` (which win): a manifest needs a
/// trusted key and the other way round.
fn integrity_settings(
    raw: Option<RawIntegrity>,
    overrides: &Overrides,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<crate::supply::IntegritySettings>, ConfigError> {
    let raw = raw.unwrap_or_default();
    let manifest = overrides
        .verify_integrity
        .clone()
        .or_else(|| raw.manifest.as_deref().map(resolve));
    let trust_key = overrides
        .trust_key
        .clone()
        .or_else(|| raw.trust_key.as_deref().map(resolve));
    let read_only_on_failure = match raw.on_failure.as_deref() {
        None | Some("refuse") => false,
        Some("read_only") => true,
        Some(other) => {
            return Err(error(
                "integrity.on_failure",
                format!(
                    "`{other}`: use refuse (do not start) or read_only (start with every write denied)"
                ),
            ));
        }
    };
    match (manifest, trust_key) {
        (None, None) if raw.on_failure.is_none() => Ok(None),
        (Some(manifest), Some(trust_key)) => Ok(Some(crate::supply::IntegritySettings {
            manifest,
            trust_key,
            read_only_on_failure,
            binary: None,
            config_file: None,
        })),
        (None, _) => Err(error(
            "integrity.manifest",
            "name the signed manifest (or pass --verify-integrity)",
        )),
        (Some(_), None) => Err(error(
            "integrity.trust_key",
            "name the public key the manifest must be signed with (or pass --trust-key)",
        )),
    }
}

/// `[supply_chain]`: the database folder is required; the others are optional.
fn supply_settings(
    raw: RawSupplyChain,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<crate::supply::SupplySettings, ConfigError> {
    let database = raw.database.ok_or_else(|| {
        error(
            "supply_chain.database",
            "name the advisory database folder (a RustSec advisory-db checkout)",
        )
    })?;
    let interval = raw.interval_seconds.unwrap_or(3600);
    if !(1..=7 * 86_400).contains(&interval) {
        return Err(error(
            "supply_chain.interval_seconds",
            "must be between 1 and 604800 (a week)",
        ));
    }
    let fail_closed = match raw.on_error.as_deref() {
        None | Some("high_risk") => true,
        Some("keep") => false,
        Some(other) => {
            return Err(error(
                "supply_chain.on_error",
                format!("`{other}`: use high_risk (fail closed) or keep (the last result stands)"),
            ));
        }
    };
    Ok(crate::supply::SupplySettings {
        database: resolve(&database),
        osv: raw.osv.as_deref().map(resolve),
        waivers: raw.waivers.as_deref().map(resolve),
        interval: Duration::from_secs(interval),
        fail_closed,
        packages: None,
    })
}
