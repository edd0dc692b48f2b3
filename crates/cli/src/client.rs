//! The HTTP client of the subcommands that talk to a running server (`tenant`, `rebac`).
//!
//! This module owns everything about reaching a listener and reading its answer, once for every
//! such subcommand: the `--admin-url`/`--token` and `--api-url`/`--api-token` flags with their
//! environment variables and defaults, checking a base URL, the bearer token (required for the
//! admin listener, optional for the public one, never printed), building request URLs from
//! percent-encoded path segments (refusing ids no URL path can carry), the timeouts, sending,
//! telling a successful JSON answer from an error answer, reporting an error answer (its code,
//! message and bundle problems) or an unreachable server, `--json` output, the runtime the
//! calls run on, and the exit codes 0, 1 and 2.
//!
//! It does not know what any call means: paths, bodies, pagination and how an answer is shown
//! belong to the subcommand that makes the call.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Exit code for success.
pub const OK: u8 = 0;
/// Exit code for a refusal by the server.
pub const REFUSED: u8 = 1;
/// Exit code for a usage error, an unusable local file or an unreachable server.
pub const USAGE: u8 = 2;

/// How long one call may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The message for an admin call without a token.
const NO_ADMIN_TOKEN: &str = "no admin token: give --token or set PORTCULLIS_ADMIN_TOKEN (`portcullis serve` prints a generated one when none is configured)";

// ------------------------------------------------------------------ flags

/// Where the admin listener is and the token it takes; valid before or after the subcommand.
#[derive(Debug, Args)]
pub struct AdminOptions {
    /// Base URL of the admin listener.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_ADMIN_URL",
        default_value = "http://127.0.0.1:9701",
        value_name = "URL"
    )]
    admin_url: String,
    /// Admin token (sent as a bearer token; never printed).
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<Token>,
}

impl AdminOptions {
    /// The admin listener these flags name.
    pub fn listener(self) -> Listener {
        Listener::new(Kind::Admin, self.admin_url, self.token)
    }
}

/// Where the public listener is and the token it may take; valid before or after the
/// subcommand.
#[derive(Debug, Args)]
pub struct ApiOptions {
    /// Base URL of the public listener.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_API_URL",
        default_value = "http://127.0.0.1:9700",
        value_name = "URL"
    )]
    api_url: String,
    /// Bearer token, when the server requires one (never printed).
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    api_token: Option<Token>,
}

impl ApiOptions {
    /// The public listener these flags name.
    pub fn listener(self) -> Listener {
        Listener::new(Kind::Api, self.api_url, self.api_token)
    }
}

/// A bearer token; `Debug` hides it, so that no options dump can show it.
#[derive(Clone)]
pub struct Token(String);

impl FromStr for Token {
    type Err = Infallible;

    fn from_str(text: &str) -> Result<Token, Infallible> {
        Ok(Token(text.to_owned()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

// ------------------------------------------------------------------ outcomes

/// Why a subcommand did not succeed.
pub enum Failure {
    /// Bad arguments, unusable local files or an unreachable server (exit 2).
    Usage(String),
    /// The server answered with an error (exit 1, unless the subcommand says otherwise).
    Refused(Box<Refusal>),
}

/// An error answer of the server, or a successful one that is not JSON.
pub struct Refusal {
    status: StatusCode,
    /// The body as answered.
    text: String,
    /// The body as JSON (`Null` when it is not JSON).
    body: Value,
    /// Print the body verbatim on standard output.
    json: bool,
    /// What had already been done when this answer came (for calls made in batches).
    note: Option<String>,
}

impl Refusal {
    /// The error code the server gave (empty when it gave none).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The bundle problems of an `invalid_bundle` answer, to be located in local files.
    pub fn problems_mut(&mut self) -> Option<&mut Vec<Value>> {
        self.body["error"]["problems"].as_array_mut()
    }

    /// Says, after the server's error, what had already been done when it came.
    pub fn set_note(&mut self, note: String) {
        self.note = Some(note);
    }

    /// Prints the answer: verbatim on standard output with `--json`, and as an error line
    /// (with every bundle problem and the note) on standard error.
    fn report(&self) {
        if self.json {
            println!("{}", self.text.trim_end());
        }
        let error = &self.body["error"];
        match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => {
                eprintln!("error[{code}]: {message} (HTTP {})", self.status.as_u16());
            }
            _ => {
                let text = self.text.trim();
                let shown: String = text.chars().take(300).collect();
                eprintln!(
                    "error: the server answered HTTP {}{}{shown}",
                    self.status,
                    if shown.is_empty() { "" } else { ": " }
                );
            }
        }
        if let Some(problems) = error["problems"].as_array() {
            for problem in problems {
                eprintln!("{}", problem_line(problem));
            }
        }
        if let Some(note) = &self.note {
            eprintln!("note: {note}");
        }
    }
}

/// One bundle problem the way `portcullis validate` prints it.
fn problem_line(problem: &Value) -> String {
    let file = problem["file"].as_str().unwrap_or("?");
    let place = match (problem["line"].as_u64(), problem["column"].as_u64()) {
        (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
        (Some(line), None) => format!("{file}:{line}"),
        _ => file.to_owned(),
    };
    let mut text = format!(
        "{place}: error[{}]: {}",
        problem["code"].as_str().unwrap_or("?"),
        problem["message"].as_str().unwrap_or("")
    );
    if let Some(help) = problem["help"].as_str() {
        text.push_str("\n  help: ");
        text.push_str(help);
    }
    text
}

/// A successful answer.
pub struct Reply {
    /// The body as answered.
    pub text: String,
    /// The body as JSON.
    pub body: Value,
}

/// Runs a subcommand's calls on a runtime of their own.
pub fn block_on<T>(work: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::Usage(format!("cannot start the runtime: {error}")))?;
    runtime.block_on(work)
}

/// The exit code of a subcommand's outcome: the code it chose on success, [`USAGE`] after
/// printing a usage error, `refused` after reporting a refusal.
pub fn exit_code(outcome: Result<u8, Failure>, refused: u8) -> u8 {
    match outcome {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            USAGE
        }
        Err(Failure::Refused(refusal)) => {
            refusal.report();
            refused
        }
    }
}

// ------------------------------------------------------------------ listeners

/// Which listener of the server.
#[derive(Clone, Copy)]
enum Kind {
    /// The public listener (`/v1/…`); a token is sent when one is given.
    Api,
    /// The admin listener (`/admin/v1/…`); every call needs a token.
    Admin,
}

impl Kind {
    /// What messages call the listener, its flag and its environment variable.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Api => ("the API", "--api-url", "PORTCULLIS_API_URL"),
            Kind::Admin => ("the admin API", "--admin-url", "PORTCULLIS_ADMIN_URL"),
        }
    }

    /// The path every call to the listener starts with.
    fn prefix(self) -> &'static [&'static str] {
        match self {
            Kind::Api => &["v1"],
            Kind::Admin => &["admin", "v1"],
        }
    }
}

/// One listener of the server: its base URL as given (checked when first used, so that only
/// the listener a subcommand calls must be valid) and its token.
pub struct Listener {
    kind: Kind,
    url: String,
    /// `None` also when the token given is empty.
    token: Option<Token>,
}

impl Listener {
    fn new(kind: Kind, url: String, token: Option<Token>) -> Listener {
        Listener {
            kind,
            url,
            token: token.filter(|token| !token.0.is_empty()),
        }
    }

    /// Checks the base URL and the token before any call; messages then name the listener by
    /// its URL as parsed rather than as given.
    pub fn checked(self) -> Result<Listener, Failure> {
        let base = self.base()?;
        self.token()?;
        Ok(Listener {
            url: base.to_string(),
            ..self
        })
    }

    /// The base URL: an http or https URL that can take a path.
    fn base(&self) -> Result<Url, Failure> {
        let (_, flag, _) = self.kind.names();
        let text = &self.url;
        let base = Url::parse(text)
            .map_err(|error| Failure::Usage(format!("{flag} `{text}` is not a URL: {error}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Failure::Usage(format!(
                "{flag} `{text}` must be an http:// or https:// URL"
            )));
        }
        Ok(base)
    }

    /// The token to send: required by the admin listener, optional for the public one.
    fn token(&self) -> Result<Option<&str>, Failure> {
        match (self.kind, self.token.as_ref().map(|token| token.0.as_str())) {
            (Kind::Admin, None) => Err(Failure::Usage(NO_ADMIN_TOKEN.to_owned())),
            (_, token) => Ok(token),
        }
    }

    /// The base, the listener's prefix and the percent-encoded `segments`, then `query`.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, Failure> {
        // URLs resolve `.` and `..` segments (also percent-encoded), so such ids cannot be sent.
        if let Some(bad) = segments
            .iter()
            .find(|segment| matches!(**segment, "" | "." | ".."))
        {
            return Err(Failure::Usage(if bad.is_empty() {
                "an id cannot be empty".to_owned()
            } else {
                format!("`{bad}` cannot be used as an id (it cannot be part of a URL path)")
            }));
        }
        let mut url = self.base()?;
        {
            let (_, flag, _) = self.kind.names();
            let mut path = url.path_segments_mut().map_err(|()| {
                Failure::Usage(format!("{flag} `{}` cannot take a path", self.url))
            })?;
            path.pop_if_empty();
            path.extend(self.kind.prefix());
            path.extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        Ok(url)
    }

    /// Why a call got no answer, naming the listener and how to point at another one.
    fn unreachable(&self, error: &reqwest::Error) -> Failure {
        // The innermost cause says what happened ("Connection refused"); the outer ones only
        // repeat that a request failed.
        let mut innermost: &dyn std::error::Error = error;
        while let Some(cause) = innermost.source() {
            innermost = cause;
        }
        let (what, flag, env) = self.kind.names();
        let base = self.url.trim_end_matches('/');
        if error.is_timeout() {
            Failure::Usage(format!(
                "{what} at {base} did not answer within {} s",
                TIMEOUT.as_secs()
            ))
        } else {
            Failure::Usage(format!(
                "cannot reach {what} at {base}: {innermost}; is `portcullis serve` running there? (set {flag} or {env})"
            ))
        }
    }
}

// ------------------------------------------------------------------ client

/// Sends calls to the server's listeners and prints answers as `--json` asks.
pub struct Client {
    http: reqwest::Client,
    json: bool,
}

impl Client {
    /// A client; `json` prints answers as they came instead of a summary.
    pub fn new(json: bool) -> Result<Client, Failure> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| Failure::Usage(format!("cannot build the HTTP client: {error}")))?;
        Ok(Client { http, json })
    }

    /// Whether answers are printed as JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// One call to `listener` at its prefix followed by `segments`; an error answer, or a
    /// successful one that is not JSON, becomes a [`Failure::Refused`].
    pub async fn call(
        &self,
        listener: &Listener,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let token = listener.token()?;
        let url = listener.url(segments, query)?;
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| listener.unreachable(&error))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| listener.unreachable(&error))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(body) if status.is_success() => Ok(Reply { text, body }),
            parsed => Err(Failure::Refused(Box::new(Refusal {
                status,
                text,
                body: if status.is_success() {
                    Value::Null
                } else {
                    parsed.unwrap_or(Value::Null)
                },
                json: self.json,
                note: None,
            }))),
        }
    }

    /// Prints the answer verbatim with `--json`, else the summary `human` makes of it.
    pub fn output(&self, reply: &Reply, human: impl FnOnce(&Value)) {
        if self.json {
            println!("{}", reply.text.trim_end());
        } else {
            human(&reply.body);
        }
    }

    /// Prints `joined` (several answers made into one) with `--json`, else `human`.
    pub fn output_joined(&self, joined: &Value, human: impl FnOnce()) {
        if self.json {
            println!("{joined}");
        } else {
            human();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

    use serde_json::json;

    use super::*;

    fn admin(url: &str, token: Option<&str>) -> Listener {
        Listener::new(
            Kind::Admin,
            url.to_owned(),
            token.map(|t| Token(t.to_owned())),
        )
    }

    fn usage(outcome: Result<impl Sized, Failure>) -> String {
        match outcome {
            Err(Failure::Usage(message)) => message,
            Err(Failure::Refused(_)) => panic!("a refusal, not a usage error"),
            Ok(_) => panic!("no error"),
        }
    }

    #[test]
    fn urls_put_the_listener_prefix_after_the_base_path_and_encode_segments() {
        let listener = admin("http://127.0.0.1:9701/portcullis/", Some("t"));
        let url = listener
            .url(&["tenants", "a/b c"], &[("confirm", "x&y".to_owned())])
            .ok()
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9701/portcullis/admin/v1/tenants/a%2Fb%20c?confirm=x%26y"
        );
        let api = Listener::new(Kind::Api, "https://decide.example".to_owned(), None);
        assert_eq!(
            api.url(&["relations", "check"], &[]).ok().unwrap().as_str(),
            "https://decide.example/v1/relations/check"
        );
    }

    #[test]
    fn ids_no_url_path_can_carry_are_refused() {
        let listener = admin("http://127.0.0.1:9701", Some("t"));
        assert_eq!(
            usage(listener.url(&["tenants", ""], &[])),
            "an id cannot be empty"
        );
        for id in [".", ".."] {
            assert_eq!(
                usage(listener.url(&["tenants", id], &[])),
                format!("`{id}` cannot be used as an id (it cannot be part of a URL path)")
            );
        }
    }

    #[test]
    fn base_urls_must_be_http_or_https_and_take_a_path() {
        assert_eq!(
            usage(admin("nope", Some("t")).base()),
            "--admin-url `nope` is not a URL: relative URL without a base"
        );
        for url in ["ftp://example.com", "mailto:someone@example.com"] {
            assert_eq!(
                usage(admin(url, Some("t")).base()),
                format!("--admin-url `{url}` must be an http:// or https:// URL")
            );
        }
        let api = Listener::new(Kind::Api, "file:///tmp".to_owned(), None);
        assert_eq!(
            usage(api.base()),
            "--api-url `file:///tmp` must be an http:// or https:// URL"
        );
    }

    #[test]
    fn the_admin_listener_needs_a_token_and_the_public_one_does_not() {
        assert_eq!(usage(admin("http://h", None).token()), NO_ADMIN_TOKEN);
        assert_eq!(usage(admin("http://h", Some("")).token()), NO_ADMIN_TOKEN);
        assert_eq!(
            admin("http://h", Some("s3")).token().ok().flatten(),
            Some("s3")
        );
        let api = Listener::new(Kind::Api, "http://h".to_owned(), Some(Token(String::new())));
        assert_eq!(api.token().ok().flatten(), None);
    }

    #[test]
    fn checking_reports_the_url_before_the_token_and_then_names_the_parsed_url() {
        assert!(usage(admin("nope", None).checked()).contains("is not a URL"));
        assert_eq!(usage(admin("http://h", None).checked()), NO_ADMIN_TOKEN);
        let checked = admin("HTTP://Example.COM:80", Some("t"))
            .checked()
            .ok()
            .unwrap();
        assert_eq!(checked.url, "http://example.com/");
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let options = AdminOptions {
            admin_url: "http://h".to_owned(),
            token: Some(Token("s3cr3t".to_owned())),
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<hidden>"), "{shown}");
    }

    #[test]
    fn bundle_problems_read_like_validate_output() {
        let problem = json!({
            "file": "acme/roles.yaml", "line": 3, "column": 7,
            "code": "unknown_role", "message": "no role `admn`", "help": "did you mean `admin`?",
        });
        assert_eq!(
            problem_line(&problem),
            "acme/roles.yaml:3:7: error[unknown_role]: no role `admn`\n  help: did you mean `admin`?"
        );
        assert_eq!(
            problem_line(&json!({ "file": "tenant.yaml", "line": 1, "code": "c", "message": "m" })),
            "tenant.yaml:1: error[c]: m"
        );
        assert_eq!(problem_line(&json!({})), "?: error[?]: ");
    }
}
