//! A ModSecurity configuration — the OWASP Core Rule Set with the user's own tuning — run in
//! the injection stage through the system's libmodsecurity, for teams that bring years of CRS
//! exclusions and paranoia settings with them.
//!
//! The settings ([`RawCrs`]) name ModSecurity configuration files, loaded in order with their
//! `Include`s followed, and directives added after them (a paranoia level, an exclusion):
//!
//! ```toml
//! [gateway.apps.injection.crs]
//! files = ["/etc/modsecurity/crs/crs-setup.conf", "/usr/share/modsecurity-crs/rules/*.conf"]
//! directives = '''
//! SecRuleEngine On
//! SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=2"
//! '''
//! ```
//!
//! A file name may end in a `*.conf`-style pattern, expanded in name order as ModSecurity's
//! own `Include` does. The rules run after the stage's own detectors, on the request's method,
//! URI, headers and the body the stage read (forms, JSON, multipart, XML); the first
//! disruptive intervention (a `deny`, CRS's anomaly-score block) refuses the request with its
//! status (403 unless a rule says otherwise), code `crs_refused`, and the ids of the rules its
//! log names. An error of libmodsecurity while a request is processed refuses it (500
//! `crs_failed`): the stage fails closed.
//!
//! The engine is the cargo feature `crs` of this crate (the system library `libmodsecurity`
//! 3.0.6 or later, found with `pkg-config`). In a build without it, configuring `crs` is an
//! error naming the key, never a stage that silently lets everything through. The evaluation is
//! synchronous, on the thread that serves the request, as in nginx's ModSecurity module.

use std::path::PathBuf;

#[cfg(feature = "crs")]
use axum::http::StatusCode;
use axum::http::{HeaderMap, Method, Uri};
use serde::Deserialize;

use crate::routes::{ConfigError, config_error};
use crate::stage::Refusal;
#[cfg(feature = "crs")]
use crate::stage::Stage;

/// The `crs` settings as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCrs {
    /// ModSecurity configuration files, loaded in order; the last part of a name may be a
    /// `*` pattern (`rules/*.conf`).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Directives loaded after the files.
    pub directives: Option<String>,
}

/// A loaded ModSecurity configuration.
pub struct Crs {
    #[cfg(feature = "crs")]
    engine: engine::Engine,
    /// The files loaded, for `Debug`.
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for Crs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Crs")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// The files a name stands for: itself, or with a `*` in its last part, the matching files of
/// its folder in name order.
fn expand(file: &std::path::Path) -> Result<Vec<PathBuf>, String> {
    let name = file
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return Ok(vec![file.to_path_buf()]);
    };
    let folder = file.parent().unwrap_or(std::path::Path::new("."));
    let entries = std::fs::read_dir(folder)
        .map_err(|error| format!("cannot read {}: {error}", folder.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.len() >= prefix.len() + suffix.len()
                        && name.starts_with(prefix)
                        && name.ends_with(suffix)
                })
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(format!("no file matches {}", file.display()));
    }
    Ok(found)
}

impl Crs {
    /// Loads the configuration; an error names the key (`files[1]`, `directives`).
    pub fn new(raw: RawCrs) -> Result<Self, ConfigError> {
        if raw.files.is_empty() && raw.directives.is_none() {
            return Err(config_error(
                "files",
                "name at least one ModSecurity configuration file, or give `directives`",
            ));
        }
        let mut files = Vec::new();
        for (index, file) in raw.files.iter().enumerate() {
            files.extend(
                expand(file).map_err(|problem| config_error(format!("files[{index}]"), problem))?,
            );
        }
        #[cfg(feature = "crs")]
        {
            let engine = engine::Engine::load(&raw, &files)?;
            Ok(Self { engine, files })
        }
        #[cfg(not(feature = "crs"))]
        {
            let _ = files;
            Err(config_error(
                "files",
                "this build cannot run ModSecurity rules: build with the cargo feature `crs` \
                 (and the system's libmodsecurity)",
            ))
        }
    }

    /// Runs the rules on a request: `Err` with the refusal when they intervene.
    pub fn inspect(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        client: Option<std::net::IpAddr>,
    ) -> Result<(), Refusal> {
        #[cfg(feature = "crs")]
        {
            self.engine.inspect(method, uri, headers, body, client)
        }
        #[cfg(not(feature = "crs"))]
        {
            let _ = (method, uri, headers, body, client);
            Ok(())
        }
    }
}

/// The refusal for an intervention with `status` whose log is `log`.
#[cfg(feature = "crs")]
fn refused(status: i32, log: Option<&str>) -> Refusal {
    let status = u16::try_from(status)
        .ok()
        .and_then(|status| StatusCode::from_u16(status).ok())
        .filter(|status| status.is_client_error() || status.is_server_error())
        .unwrap_or(StatusCode::FORBIDDEN);
    let ids = rule_ids(log.unwrap_or_default());
    let message = if ids.is_empty() {
        "the ModSecurity rules refused the request".to_owned()
    } else {
        format!(
            "the ModSecurity rules refused the request (rule {})",
            ids.join(", ")
        )
    };
    Refusal::new(Stage::Injection, status, "crs_refused", message)
}

/// The rule ids a ModSecurity log line names (`[id "949110"]`), in order, once each.
#[cfg(feature = "crs")]
fn rule_ids(log: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for part in log.split("[id \"").skip(1) {
        let id: String = part.chars().take_while(char::is_ascii_digit).collect();
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// A failure of libmodsecurity itself: the request is refused.
#[cfg(feature = "crs")]
fn failed(during: &str, error: impl std::fmt::Display) -> Refusal {
    tracing::error!(%error, during, "libmodsecurity failed on a request; refused");
    Refusal::new(
        Stage::Injection,
        StatusCode::INTERNAL_SERVER_ERROR,
        "crs_failed",
        "the ModSecurity rules could not be run on this request",
    )
}

#[cfg(feature = "crs")]
mod engine {
    use std::path::PathBuf;

    use axum::http::{HeaderMap, Method, Uri};
    use modsecurity::msc::ModSecurity;
    use modsecurity::rules::Rules;
    use modsecurity::transaction::Transaction;

    use super::{RawCrs, failed, refused};
    use crate::routes::{ConfigError, config_error};
    use crate::stage::Refusal;

    /// libmodsecurity's engine and the loaded rules (both shared by every request; each
    /// request gets its own transaction).
    pub(super) struct Engine {
        modsecurity: ModSecurity,
        rules: Rules,
    }

    impl Engine {
        pub(super) fn load(raw: &RawCrs, files: &[PathBuf]) -> Result<Self, ConfigError> {
            let mut rules = Rules::new();
            for (index, file) in files.iter().enumerate() {
                rules.add_file(file).map_err(|error| {
                    config_error(
                        format!("files[{index}]"),
                        format!("{}: {error}", file.display()),
                    )
                })?;
            }
            if let Some(directives) = &raw.directives {
                rules
                    .add_plain(directives)
                    .map_err(|error| config_error("directives", error.to_string()))?;
            }
            Ok(Self {
                modsecurity: ModSecurity::builder().with_log_callbacks().build(),
                rules,
            })
        }

        pub(super) fn inspect(
            &self,
            method: &Method,
            uri: &Uri,
            headers: &HeaderMap,
            body: &[u8],
            client: Option<std::net::IpAddr>,
        ) -> Result<(), Refusal> {
            let mut transaction = self
                .modsecurity
                .transaction_builder()
                .with_rules(&self.rules)
                // The rules' messages (each match, each warning) go to the service's log.
                .with_logging(|message| {
                    if let Some(message) = message {
                        tracing::debug!(target: "portcullis_guard::crs", "{message}");
                    }
                })
                .build()
                .map_err(|error| failed("transaction", error))?;
            let client = client.map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string());
            transaction
                .process_connection(&client, 0, "0.0.0.0", 0)
                .map_err(|error| failed("connection", error))?;
            let target = uri.path_and_query().map_or("/", |target| target.as_str());
            transaction
                .process_uri(target, method.as_str(), "1.1")
                .map_err(|error| failed("uri", error))?;
            for (name, value) in headers {
                // A value that is not text is given as ModSecurity would see its bytes.
                let value = String::from_utf8_lossy(value.as_bytes());
                transaction
                    .add_request_header(name.as_str(), &value)
                    .map_err(|error| failed("headers", error))?;
            }
            transaction
                .process_request_headers()
                .map_err(|error| failed("headers", error))?;
            intervened(&mut transaction)?;
            if !body.is_empty() {
                transaction
                    .append_request_body(body)
                    .map_err(|error| failed("body", error))?;
            }
            transaction
                .process_request_body()
                .map_err(|error| failed("body", error))?;
            intervened(&mut transaction)?;
            Ok(())
        }
    }

    /// The refusal for the transaction's disruptive intervention, when it has one by now.
    fn intervened(transaction: &mut Transaction<'_>) -> Result<(), Refusal> {
        match transaction.intervention() {
            Some(intervention) if intervention.disruptive() => {
                Err(refused(intervention.status(), intervention.log()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(all(test, feature = "crs"))]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_read_from_the_log() {
        let log = r#"ModSecurity: Access denied with code 403 (phase 2). [file "x"] [line "80"] [id "949110"] [msg "Inbound Anomaly Score Exceeded"] [id "949110"] [id "942100"]"#;
        assert_eq!(rule_ids(log), ["949110", "942100"]);
        assert!(rule_ids("nothing").is_empty());
        let refusal = refused(0, Some(log));
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        assert!(
            refusal.message.contains("949110, 942100"),
            "{}",
            refusal.message
        );
        assert_eq!(refused(406, None).status, StatusCode::NOT_ACCEPTABLE);
    }
}
