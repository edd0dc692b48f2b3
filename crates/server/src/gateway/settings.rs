//! The `[gateway]` section of the configuration: the applications behind the gateway, each
//! with its host, tenant, upstream, the stages that run and each stage's settings, checked
//! once at load (every error names its key, `gateway.apps[0].validation.routes[1]`).
//!
//! This module reads configuration only; it serves nothing and decides nothing.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_core::TenantId;
use portcullis_guard::csrf::RawCsrf;
use portcullis_guard::inject::{Injection, RawInjection};
use portcullis_guard::login::{LoginGuard, RawLogin};
use portcullis_guard::origin::RawOrigins;
use portcullis_guard::ratelimit::{RateLimitCheck, RateLimits, RawRateLimits};
use portcullis_guard::response::{MaskingLayer, RawResponseConfig, ResponseConfig};
use portcullis_guard::routes::RouteSet;
use portcullis_guard::session::{RawSession, SessionGuard};
use portcullis_guard::upstream::RawUpstream;
use portcullis_guard::validate::RawValidation;
use portcullis_guard::{Csrf, Origins, Stage, Upstream, Validation};
use serde::Deserialize;
use sha2::Digest as _;

/// The `[gateway]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Where the gateway listens (default `127.0.0.1:8600`).
    pub listen: Option<String>,
    /// Whether the gateway listener speaks TLS, with the certificate (and client-certificate
    /// settings) of the service's `[tls]` section.
    #[serde(default)]
    pub tls: bool,
    /// The environment variable holding the secret CSRF tokens are signed with; every gateway
    /// node needs the same one. Without it, a random key is made at start.
    pub csrf_secret_env: Option<String>,
    /// The environment variable holding the secret response pseudonyms are derived from.
    pub pseudonym_secret_env: Option<String>,
    /// The applications.
    #[serde(default)]
    pub apps: Vec<RawApp>,
}

/// One application as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    /// The host it is reached by (port ignored), or `*` for any other host.
    pub host: String,
    /// Its tenant; by default, the tenant whose `domain` is the request's host.
    pub tenant: Option<String>,
    /// The application itself.
    pub upstream: RawUpstream,
    /// The stages that run (names as in refusals); by default every stage, the rate limit
    /// only when `rate_limit` is configured.
    pub stages: Option<Vec<String>>,
    /// Trusted origins.
    #[serde(default)]
    pub origin: RawOrigins,
    /// Parameter rules.
    #[serde(default)]
    pub validation: RawValidation,
    /// CSRF tokens.
    #[serde(default)]
    pub csrf: RawCsrf,
    /// Rate limits.
    pub rate_limit: Option<RawRateLimits>,
    /// Login protection.
    pub login: Option<RawLogin>,
    /// Sessions ended by a logout.
    pub session: Option<RawSession>,
    /// Routes that need no credential (a login page, static files): the credential, resource
    /// and permission stages let them through; every other stage still applies.
    #[serde(default)]
    pub public: Vec<String>,
    /// Injection detection.
    #[serde(default)]
    pub injection: RawInjection,
    /// Security headers, cookie flags and masking.
    #[serde(default)]
    pub response: RawResponseConfig,
}

/// One application, checked and ready to serve.
pub struct App {
    /// Lower-case host, or `*`.
    pub host: String,
    /// Its configured tenant.
    pub tenant: Option<TenantId>,
    /// The stages that run.
    pub stages: BTreeSet<Stage>,
    /// The application itself.
    pub upstream: Upstream,
    /// Trusted origins.
    pub origins: Arc<Origins>,
    /// Parameter rules.
    pub validation: Arc<Validation>,
    /// CSRF tokens.
    pub csrf: Arc<Csrf>,
    /// Rate limits, when the stage runs.
    pub rate_limit: Option<RateLimitCheck>,
    /// Login protection, when the stage runs.
    pub login: Option<Arc<LoginGuard>>,
    /// Ended sessions, when the stage runs.
    pub session: Option<Arc<SessionGuard>>,
    /// Routes without credential, resource and permission stages.
    pub public: RouteSet,
    /// Injection detection.
    pub injection: Arc<Injection>,
    /// Security headers, cookie flags and masking.
    pub response: Arc<ResponseConfig>,
    /// The masking layer (with its pseudonym secret).
    pub masking: MaskingLayer,
    /// The rate-limit, login and session settings as written: a reload keeps the state
    /// (counts, lockouts, ended sessions) of an application whose settings of all three are
    /// unchanged.
    pub state_settings: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("App")
            .field("host", &self.host)
            .field("tenant", &self.tenant)
            .field("stages", &self.stages)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

/// The `[gateway]` section, checked.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Whether it speaks TLS (with the service's `[tls]` certificate).
    pub tls: bool,
    /// The applications, in configuration order.
    pub apps: Vec<Arc<App>>,
}

/// The key CSRF tokens are signed with when no secret is configured: made once per process,
/// so that a reload of the configuration does not invalidate the tokens already issued.
fn process_csrf_key() -> Result<[u8; 32], getrandom::Error> {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(*key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)?;
    Ok(*KEY.get_or_init(|| key))
}

/// An error of a stage's settings, under the application's key.
fn nested<'a>(
    at: &'a str,
    key: &'a str,
) -> impl FnOnce(portcullis_guard::routes::ConfigError) -> (String, String) + 'a {
    move |error| (format!("{at}.{key}.{}", error.at), error.message)
}

/// The stages an application runs when it does not list them: every one, those with settings
/// of their own only when they have them.
fn default_stages(rate_limited: bool, login: bool, session: bool) -> BTreeSet<Stage> {
    Stage::ALL
        .into_iter()
        .filter(|stage| *stage != Stage::Upstream)
        .filter(|stage| rate_limited || *stage != Stage::RateLimit)
        .filter(|stage| login || *stage != Stage::Login)
        .filter(|stage| session || *stage != Stage::Session)
        .collect()
}

impl GatewaySettings {
    /// Reads the `[gateway]` section of the configuration file at `path` (the rest of the file
    /// is not checked here), for a reload. An error names the key, or the file.
    pub fn read(
        path: &std::path::Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, (String, String)> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            (
                "(file)".to_owned(),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
            (
                "(file)".to_owned(),
                format!("{}: {}", path.display(), e.message()),
            )
        })?;
        let section = table
            .remove("gateway")
            .ok_or_else(|| ("gateway".to_owned(), "the section is gone".to_owned()))?;
        let raw = RawGateway::deserialize(section)
            .map_err(|e| ("gateway".to_owned(), e.message().to_owned()))?;
        Self::parse(raw, env)
    }

    /// Checks the section; an error names the key (`gateway.apps[0].validation.routes[1]`).
    pub fn parse(
        raw: RawGateway,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, (String, String)> {
        let listen = raw
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8600")
            .parse()
            .map_err(|e| ("gateway.listen".to_owned(), format!("not an address: {e}")))?;
        let secret =
            |key: &str, variable: &Option<String>| -> Result<Option<String>, (String, String)> {
                match variable {
                    None => Ok(None),
                    Some(name) => env(name).map(Some).ok_or_else(|| {
                        (
                            format!("gateway.{key}"),
                            format!("environment variable {name} is not set"),
                        )
                    }),
                }
            };
        let csrf_key: [u8; 32] = match secret("csrf_secret_env", &raw.csrf_secret_env)? {
            Some(secret) => sha2::Sha256::digest(secret.as_bytes()).into(),
            None => process_csrf_key().map_err(|e| {
                (
                    "gateway.csrf_secret_env".to_owned(),
                    format!("no secret and no randomness to make one: {e}"),
                )
            })?,
        };
        let pseudonym_secret = secret("pseudonym_secret_env", &raw.pseudonym_secret_env)?;
        if raw.apps.is_empty() {
            return Err(("gateway.apps".into(), "no application is configured".into()));
        }
        let mut apps = Vec::with_capacity(raw.apps.len());
        let mut hosts = BTreeSet::new();
        for (index, app) in raw.apps.into_iter().enumerate() {
            let at = format!("gateway.apps[{index}]");
            let host = app.host.trim().to_ascii_lowercase();
            if host.is_empty() || !hosts.insert(host.clone()) {
                return Err((
                    format!("{at}.host"),
                    format!("`{host}` is empty or already used"),
                ));
            }
            let tenant = app
                .tenant
                .as_deref()
                .map(TenantId::new)
                .transpose()
                .map_err(|e| (format!("{at}.tenant"), e.to_string()))?;
            let stages = match &app.stages {
                None => default_stages(
                    app.rate_limit.is_some(),
                    app.login.is_some(),
                    app.session.is_some(),
                ),
                Some(names) => {
                    let mut stages = BTreeSet::new();
                    for (position, name) in names.iter().enumerate() {
                        let stage = Stage::from_name(name)
                            .filter(|stage| *stage != Stage::Upstream)
                            .ok_or_else(|| {
                                (
                                    format!("{at}.stages[{position}]"),
                                    format!("`{name}` is not a stage the gateway runs"),
                                )
                            })?;
                        stages.insert(stage);
                    }
                    stages
                }
            };
            if (stages.contains(&Stage::Resource) || stages.contains(&Stage::Permission))
                && !stages.contains(&Stage::Credential)
            {
                return Err((
                    format!("{at}.stages"),
                    "`resource` and `permission` need `credential`".into(),
                ));
            }
            let state_settings = format!("{:?} {:?} {:?}", app.rate_limit, app.login, app.session);
            let rate_limit = match (stages.contains(&Stage::RateLimit), app.rate_limit) {
                (true, None) => {
                    return Err((
                        format!("{at}.rate_limit"),
                        "the stage runs without limits".into(),
                    ));
                }
                (true, Some(raw)) => Some(RateLimitCheck::new(
                    RateLimits::try_from(raw)
                        .map_err(|e| (format!("{at}.rate_limit.{}", e.field), e.problem))?,
                )),
                (false, _) => None,
            };
            let login = match (stages.contains(&Stage::Login), app.login) {
                (true, None) => {
                    return Err((
                        format!("{at}.login"),
                        "the stage runs without a login route".into(),
                    ));
                }
                (true, Some(raw)) => Some(Arc::new(
                    LoginGuard::new(raw).map_err(nested(&at, "login"))?,
                )),
                (false, _) => None,
            };
            let session = match (stages.contains(&Stage::Session), app.session) {
                (true, None) => {
                    return Err((
                        format!("{at}.session"),
                        "the stage runs without logout routes".into(),
                    ));
                }
                (true, Some(raw)) => Some(Arc::new(
                    SessionGuard::new(raw).map_err(nested(&at, "session"))?,
                )),
                (false, _) => None,
            };
            let public = RouteSet::parse(&app.public, "public")
                .map_err(|e| (format!("{at}.{}", e.at), e.message))?;
            let upstream = Upstream::try_from(app.upstream).map_err(nested(&at, "upstream"))?;
            let response =
                ResponseConfig::try_from(app.response).map_err(nested(&at, "response"))?;
            let masking = MaskingLayer::new(
                response.masking.clone(),
                pseudonym_secret.as_deref().map(str::as_bytes),
            )
            .map_err(nested(&at, "response"))?;
            apps.push(Arc::new(App {
                host,
                tenant,
                stages,
                upstream,
                origins: Arc::new(Origins::try_from(app.origin).map_err(nested(&at, "origin"))?),
                validation: Arc::new(
                    Validation::try_from(app.validation).map_err(nested(&at, "validation"))?,
                ),
                csrf: Arc::new(Csrf::new(app.csrf, csrf_key).map_err(nested(&at, "csrf"))?),
                rate_limit,
                login,
                session,
                public,
                injection: Arc::new(
                    Injection::try_from(app.injection).map_err(nested(&at, "injection"))?,
                ),
                response: Arc::new(response),
                masking,
                state_settings,
            }));
        }
        Ok(Self {
            listen,
            tls: raw.tls,
            apps,
        })
    }
}
