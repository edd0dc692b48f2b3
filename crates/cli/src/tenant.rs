//! `portcullis tenant …`: the admin API of a running server, from the command line.
//!
//! Every subcommand is one (or, for none, more than one) admin call. Output is short and
//! human-readable unless `--json` asks for the server's JSON as it was answered. Exit status:
//! 0 success, 1 the server refused (its error code and message are printed), 2 a usage error
//! or a server that could not be reached.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value, json};

/// Exit code for success.
const OK: u8 = 0;
/// Exit code for a refusal by the server.
const REFUSED: u8 = 1;
/// Exit code for a usage error or an unreachable server.
const USAGE: u8 = 2;

/// How long one admin call may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the admin API is and how to authenticate; valid before or after the subcommand.
#[derive(Args)]
pub struct Options {
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
    token: Option<String>,
    /// Print the server's JSON answer as it came instead of a summary.
    #[arg(long, global = true)]
    json: bool,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("admin_url", &self.admin_url)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("json", &self.json)
            .finish()
    }
}

/// The tenant subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List every tenant with its status and bundle revision.
    List,
    /// Show one tenant: status, domain, bundle, roles, factors.
    Show {
        /// The tenant id.
        id: String,
    },
    /// Create a tenant (active, without a bundle until one is uploaded).
    Create {
        /// The tenant id (3 to 32 letters, digits or '-').
        id: String,
        /// The host name requests for this tenant arrive on.
        #[arg(long, value_name = "HOST")]
        domain: Option<String>,
    },
    /// Suspend a tenant: every decision for it is deny until it is resumed.
    Suspend {
        /// The tenant id.
        id: String,
    },
    /// Resume a suspended tenant.
    Resume {
        /// The tenant id.
        id: String,
    },
    /// Delete a tenant and all its data; `--confirm` must repeat the id.
    Delete {
        /// The tenant id.
        id: String,
        /// The tenant id again, to confirm.
        #[arg(long, value_name = "ID")]
        confirm: Option<String>,
    },
    /// Upload a bundle folder's *.yaml and *.yml files (not sub-folders) as the tenant's bundle.
    Upload {
        /// The tenant id.
        id: String,
        /// The bundle folder.
        dir: PathBuf,
    },
    /// List the tenant's bundle versions.
    Bundles {
        /// The tenant id.
        id: String,
    },
    /// Print one bundle version's files, or write them into a folder.
    Bundle {
        /// The tenant id.
        id: String,
        /// The bundle version (see `tenant bundles`).
        version: i64,
        /// Write the files into this folder (created if needed) instead of printing them.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Make an earlier bundle version the tenant's bundle again.
    Rollback {
        /// The tenant id.
        id: String,
        /// The bundle version to activate.
        version: i64,
    },
    /// List the principals managed at run time, in id order.
    Principals {
        /// The tenant id.
        id: String,
        /// Start after this principal id (the `next` of a previous page).
        #[arg(long, value_name = "PRINCIPAL")]
        after: Option<String>,
        /// At most this many principals (the server allows 1 to 1000; default 100).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Show a principal managed at run time with its role assignments.
    Principal {
        /// The tenant id.
        id: String,
        /// The principal id.
        principal: String,
    },
    /// Create or replace a principal managed at run time.
    PrincipalSet {
        /// The tenant id.
        id: String,
        /// The principal id.
        principal: String,
        /// Its type (the server's default is `user`).
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// An attribute, `key=value`; the value is JSON when it parses as JSON, else a string.
        /// Repeat for several. The principal's attributes are replaced by exactly these.
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attrs: Vec<String>,
    },
    /// Delete a principal managed at run time.
    PrincipalDelete {
        /// The tenant id.
        id: String,
        /// The principal id.
        principal: String,
    },
    /// List role assignments made at run time.
    Assignments {
        /// The tenant id.
        id: String,
        /// Only this principal's assignments.
        #[arg(long, value_name = "PRINCIPAL")]
        principal: Option<String>,
    },
    /// Assign a role to a principal, everywhere or on resources matching `type:id`.
    Assign {
        /// The tenant id.
        id: String,
        /// The principal id.
        principal: String,
        /// A role of the tenant's bundle.
        role: String,
        /// Only on resources matching this `type:id` pattern (`*` may replace either part).
        #[arg(long, value_name = "TYPE:ID")]
        on: Option<String>,
    },
    /// Remove a role assignment made at run time.
    Revoke {
        /// The tenant id.
        id: String,
        /// The principal id.
        principal: String,
        /// The role.
        role: String,
        /// The resource pattern the role was assigned on (default: everywhere).
        #[arg(long, value_name = "TYPE:ID")]
        on: Option<String>,
    },
    /// Re-encrypt the tenant's sensitive attributes with the current master key.
    RotateKey {
        /// The tenant id.
        id: String,
    },
}

/// Runs one tenant subcommand and returns the exit code.
pub fn run(options: Options, command: TenantCommand) -> u8 {
    let result = Client::new(options).and_then(|client| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| Failure::Usage(format!("cannot start the runtime: {error}")))?;
        runtime.block_on(execute(&client, command))
    });
    match result {
        Ok(()) => OK,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            USAGE
        }
        Err(Failure::Refused(refusal)) => {
            refusal.report();
            REFUSED
        }
    }
}

// ------------------------------------------------------------------ client

/// Why a subcommand did not succeed.
enum Failure {
    /// Bad arguments, unreadable local files or an unreachable server (exit 2).
    Usage(String),
    /// The server answered with an error (exit 1).
    Refused(Refusal),
}

/// An error answer of the server.
struct Refusal {
    status: StatusCode,
    /// The body as answered.
    text: String,
    /// The body as JSON (`Null` when it is not JSON).
    body: Value,
    /// Print the body verbatim on standard output.
    json: bool,
}

impl Refusal {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

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
struct Reply {
    text: String,
    body: Value,
}

struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
    json: bool,
}

impl Client {
    fn new(options: Options) -> Result<Client, Failure> {
        let base = Url::parse(&options.admin_url).map_err(|error| {
            Failure::Usage(format!(
                "--admin-url `{}` is not a URL: {error}",
                options.admin_url
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Failure::Usage(format!(
                "--admin-url `{}` must be an http:// or https:// URL",
                options.admin_url
            )));
        }
        let token = options
            .token
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                Failure::Usage(
                    "no admin token: give --token or set PORTCULLIS_ADMIN_TOKEN (`portcullis serve` prints a generated one when none is configured)".to_owned(),
                )
            })?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| Failure::Usage(format!("cannot build the HTTP client: {error}")))?;
        Ok(Client {
            http,
            base,
            token,
            json: options.json,
        })
    }

    /// `base` followed by the percent-encoded `segments`.
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
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                Failure::Usage(format!("--admin-url `{}` cannot take a path", self.base))
            })?;
            path.pop_if_empty();
            path.extend(["admin", "v1"]);
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

    /// One admin call; an error answer becomes a [`Failure::Refused`].
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let url = self.url(segments, query)?;
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let parsed = serde_json::from_str::<Value>(&text);
        if status.is_success() {
            match parsed {
                Ok(body) => Ok(Reply { text, body }),
                Err(_) => Err(Failure::Refused(Refusal {
                    status,
                    text,
                    body: Value::Null,
                    json: self.json,
                })),
            }
        } else {
            Err(Failure::Refused(Refusal {
                status,
                text,
                body: parsed.unwrap_or(Value::Null),
                json: self.json,
            }))
        }
    }

    fn unreachable(&self, error: &reqwest::Error) -> Failure {
        // The innermost cause says what happened ("Connection refused"); the outer ones only
        // repeat that a request failed.
        let mut innermost: &dyn std::error::Error = error;
        while let Some(cause) = innermost.source() {
            innermost = cause;
        }
        let base = self.base.as_str().trim_end_matches('/');
        if error.is_timeout() {
            Failure::Usage(format!(
                "the admin API at {base} did not answer within {} s",
                TIMEOUT.as_secs()
            ))
        } else {
            Failure::Usage(format!(
                "cannot reach the admin API at {base}: {innermost}; is `portcullis serve` running there? (set --admin-url or PORTCULLIS_ADMIN_URL)"
            ))
        }
    }

    /// Prints the answer verbatim with `--json`, else the summary `human` makes of it.
    fn output(&self, reply: &Reply, human: impl FnOnce(&Value)) {
        if self.json {
            println!("{}", reply.text.trim_end());
        } else {
            human(&reply.body);
        }
    }
}

// ------------------------------------------------------------------ subcommands

async fn execute(client: &Client, command: TenantCommand) -> Result<(), Failure> {
    match command {
        TenantCommand::List => {
            let reply = client.call(Method::GET, &["tenants"], &[], None).await?;
            client.output(&reply, |body| {
                let rows: Vec<Vec<String>> = items(&body["tenants"])
                    .iter()
                    .map(|t| {
                        vec![
                            text(&t["tenant"]),
                            text(&t["status"]),
                            text(&t["domain"]),
                            text(&t["data_revision"]),
                            short_revision(&t["revision"]),
                            text(&t["tests"]),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    println!("no tenants");
                } else {
                    print_table(
                        &["TENANT", "STATUS", "DOMAIN", "DATA", "REVISION", "TESTS"],
                        &rows,
                    );
                }
            });
        }
        TenantCommand::Show { id } => {
            let reply = client
                .call(Method::GET, &["tenants", &id], &[], None)
                .await?;
            client.output(&reply, |t| {
                let mut lines = vec![
                    ("tenant", text(&t["tenant"])),
                    ("status", text(&t["status"])),
                    ("domain", text(&t["domain"])),
                    ("timezone", text(&t["timezone"])),
                    ("revision", text(&t["revision"])),
                    ("data revision", text(&t["data_revision"])),
                    ("active bundle", text(&t["active_bundle"])),
                    ("source", text(&t["source"])),
                    ("tests", text(&t["tests"])),
                ];
                if t.get("roles").is_some() {
                    lines.push(("roles", list(&t["roles"])));
                }
                if t.get("factors").is_some() {
                    lines.push(("factors", list(&t["factors"])));
                }
                print_fields(&lines);
            });
        }
        TenantCommand::Create { id, domain } => {
            let mut body = json!({ "tenant": id });
            if let Some(domain) = domain {
                body["domain"] = Value::String(domain);
            }
            let reply = client
                .call(Method::POST, &["tenants"], &[], Some(&body))
                .await?;
            client.output(&reply, |t| {
                let domain = t["domain"]
                    .as_str()
                    .map(|d| format!(", domain {d}"))
                    .unwrap_or_default();
                println!(
                    "created tenant {} ({}{domain}); upload a bundle with `portcullis tenant upload {} DIR`",
                    text(&t["tenant"]),
                    text(&t["status"]),
                    text(&t["tenant"]),
                );
            });
        }
        TenantCommand::Suspend { id } => status(client, &id, "suspend").await?,
        TenantCommand::Resume { id } => status(client, &id, "resume").await?,
        TenantCommand::Delete { id, confirm } => {
            match confirm.as_deref() {
                Some(repeated) if repeated == id => {}
                Some(repeated) => {
                    return Err(Failure::Usage(format!(
                        "refusing to delete tenant `{id}`: --confirm `{repeated}` does not repeat its id; deleting removes all its data, so give --confirm {id}"
                    )));
                }
                None => {
                    return Err(Failure::Usage(format!(
                        "refusing to delete tenant `{id}` without confirmation: deleting removes all its data; repeat its id with --confirm {id}"
                    )));
                }
            }
            let reply = client
                .call(
                    Method::DELETE,
                    &["tenants", &id],
                    &[("confirm", id.clone())],
                    None,
                )
                .await?;
            client.output(&reply, |t| {
                println!("deleted tenant {}", text(&t["tenant"]));
            });
        }
        TenantCommand::Upload { id, dir } => upload(client, &id, &dir).await?,
        TenantCommand::Bundles { id } => {
            let reply = client
                .call(Method::GET, &["tenants", &id, "bundles"], &[], None)
                .await?;
            client.output(&reply, |body| {
                let rows: Vec<Vec<String>> = items(&body["versions"])
                    .iter()
                    .map(|v| {
                        vec![
                            text(&v["version"]),
                            if v["active"].as_bool() == Some(true) {
                                "*".to_owned()
                            } else {
                                String::new()
                            },
                            text(&v["revision"]),
                            text(&v["uploaded_by"]),
                            time(&v["uploaded_at_us"]),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    println!("tenant {id} has no uploaded bundle");
                } else {
                    print_table(
                        &[
                            "VERSION",
                            "ACTIVE",
                            "REVISION",
                            "UPLOADED BY",
                            "UPLOADED AT",
                        ],
                        &rows,
                    );
                }
            });
        }
        TenantCommand::Bundle { id, version, out } => {
            let number = version.to_string();
            let reply = client
                .call(
                    Method::GET,
                    &["tenants", &id, "bundles", &number],
                    &[],
                    None,
                )
                .await?;
            let files: BTreeMap<String, String> = reply.body["files"]
                .as_object()
                .map(|files| {
                    files
                        .iter()
                        .map(|(name, text)| (name.clone(), text.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            match out {
                Some(dir) => {
                    let written = write_files(&dir, &files)?;
                    client.output(&reply, |_| {
                        for path in &written {
                            println!("wrote {}", path.display());
                        }
                    });
                }
                None => client.output(&reply, |_| {
                    let mut first = true;
                    for (name, content) in &files {
                        if !first {
                            println!();
                        }
                        first = false;
                        println!("==> {name} <==");
                        print!("{content}");
                        if !content.ends_with('\n') {
                            println!();
                        }
                    }
                }),
            }
        }
        TenantCommand::Rollback { id, version } => {
            let number = version.to_string();
            let reply = client
                .call(
                    Method::POST,
                    &["tenants", &id, "bundles", &number, "activate"],
                    &[],
                    None,
                )
                .await?;
            client.output(&reply, |body| {
                println!(
                    "tenant {} now uses bundle version {} (revision {})",
                    text(&body["tenant"]),
                    text(&body["version"]),
                    text(&body["revision"]),
                );
            });
        }
        TenantCommand::Principals { id, after, limit } => {
            let mut query = Vec::new();
            if let Some(after) = after {
                query.push(("after", after));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let reply = client
                .call(Method::GET, &["tenants", &id, "principals"], &query, None)
                .await?;
            client.output(&reply, |body| {
                let rows: Vec<Vec<String>> = items(&body["principals"])
                    .iter()
                    .map(|p| {
                        vec![
                            text(&p["id"]),
                            text(&p["type"]),
                            attributes(&p["attributes"]),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    println!("no principals managed at run time");
                } else {
                    print_table(&["PRINCIPAL", "TYPE", "ATTRIBUTES"], &rows);
                }
                if let Some(next) = body["next"].as_str() {
                    println!("more: portcullis tenant principals {id} --after {next}");
                }
            });
        }
        TenantCommand::Principal { id, principal } => {
            let reply = client
                .call(
                    Method::GET,
                    &["tenants", &id, "principals", &principal],
                    &[],
                    None,
                )
                .await?;
            client.output(&reply, |p| {
                print_fields(&[("principal", text(&p["id"])), ("type", text(&p["type"]))]);
                let attributes = p["attributes"].as_object().cloned().unwrap_or_default();
                if attributes.is_empty() {
                    println!("attributes: none");
                } else {
                    println!("attributes:");
                    for (key, value) in &attributes {
                        println!("  {key} = {value}");
                    }
                }
                let assignments = items(&p["assignments"]);
                if assignments.is_empty() {
                    println!("assignments: none");
                } else {
                    println!("assignments:");
                    for a in assignments {
                        println!("  {} on {}", text(&a["role"]), text(&a["resource"]));
                    }
                }
            });
        }
        TenantCommand::PrincipalSet {
            id,
            principal,
            kind,
            attrs,
        } => {
            let mut attributes = Map::new();
            for attr in &attrs {
                let (key, value) = parse_attr(attr)?;
                attributes.insert(key, value);
            }
            let mut body = json!({ "attributes": attributes });
            if let Some(kind) = kind {
                body["type"] = Value::String(kind);
            }
            let reply = client
                .call(
                    Method::PUT,
                    &["tenants", &id, "principals", &principal],
                    &[],
                    Some(&body),
                )
                .await?;
            client.output(&reply, |r| {
                println!(
                    "saved principal {} in tenant {} (data revision {})",
                    text(&r["principal"]),
                    text(&r["tenant"]),
                    text(&r["data_revision"]),
                );
            });
        }
        TenantCommand::PrincipalDelete { id, principal } => {
            let reply = client
                .call(
                    Method::DELETE,
                    &["tenants", &id, "principals", &principal],
                    &[],
                    None,
                )
                .await?;
            client.output(&reply, |r| {
                println!(
                    "deleted principal {} from tenant {} (data revision {})",
                    text(&r["principal"]),
                    text(&r["tenant"]),
                    text(&r["data_revision"]),
                );
            });
        }
        TenantCommand::Assignments { id, principal } => {
            let query: Vec<(&str, String)> =
                principal.map(|p| ("principal", p)).into_iter().collect();
            let reply = client
                .call(Method::GET, &["tenants", &id, "assignments"], &query, None)
                .await?;
            client.output(&reply, |body| {
                let rows: Vec<Vec<String>> = items(&body["assignments"])
                    .iter()
                    .map(|a| {
                        vec![
                            text(&a["principal"]),
                            text(&a["role"]),
                            text(&a["resource"]),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    println!("no role assignments made at run time");
                } else {
                    print_table(&["PRINCIPAL", "ROLE", "RESOURCE"], &rows);
                }
            });
        }
        TenantCommand::Assign {
            id,
            principal,
            role,
            on,
        } => {
            let body = assignment(&principal, &role, on)?;
            let reply = client
                .call(
                    Method::POST,
                    &["tenants", &id, "assignments"],
                    &[],
                    Some(&body),
                )
                .await?;
            client.output(&reply, |r| {
                println!(
                    "assigned role {} to {} on {} in tenant {} (data revision {})",
                    text(&r["role"]),
                    text(&r["principal"]),
                    text(&r["resource"]),
                    text(&r["tenant"]),
                    text(&r["data_revision"]),
                );
            });
        }
        TenantCommand::Revoke {
            id,
            principal,
            role,
            on,
        } => {
            let body = assignment(&principal, &role, on)?;
            let resource = text(&body["resource"]);
            let reply = client
                .call(
                    Method::DELETE,
                    &["tenants", &id, "assignments"],
                    &[],
                    Some(&body),
                )
                .await?;
            client.output(&reply, |r| {
                println!(
                    "revoked role {role} from {principal} on {resource} in tenant {} (data revision {})",
                    text(&r["tenant"]),
                    text(&r["data_revision"]),
                );
            });
        }
        TenantCommand::RotateKey { id } => {
            let reply = client
                .call(Method::POST, &["tenants", &id, "rotate-key"], &[], None)
                .await?;
            client.output(&reply, |r| {
                println!(
                    "tenant {}: re-encrypted {} value(s) of {} principal(s); current key {}",
                    text(&r["tenant"]),
                    text(&r["values"]),
                    text(&r["principals"]),
                    text(&r["key"]),
                );
            });
        }
    }
    Ok(())
}

async fn status(client: &Client, id: &str, operation: &str) -> Result<(), Failure> {
    let reply = client
        .call(Method::POST, &["tenants", id, operation], &[], None)
        .await?;
    client.output(&reply, |r| {
        println!(
            "tenant {} is {} (data revision {})",
            text(&r["tenant"]),
            text(&r["status"]),
            text(&r["data_revision"]),
        );
    });
    Ok(())
}

async fn upload(client: &Client, id: &str, dir: &Path) -> Result<(), Failure> {
    let files = read_bundle_folder(dir)?;
    let count = files.len();
    let body = json!({ "files": files });
    match client
        .call(Method::PUT, &["tenants", id, "bundle"], &[], Some(&body))
        .await
    {
        Ok(reply) => {
            client.output(&reply, |r| {
                println!(
                    "uploaded {count} file{} from {} to tenant {}: revision {}",
                    if count == 1 { "" } else { "s" },
                    dir.display(),
                    text(&r["tenant"]),
                    text(&r["revision"]),
                );
            });
            Ok(())
        }
        Err(Failure::Refused(mut refusal)) => {
            if refusal.code() == "invalid_bundle" {
                // The server names files `<tenant>/<name>`; show the local path instead.
                let prefix = format!("{id}/");
                if let Some(problems) = refusal.body["error"]["problems"].as_array_mut() {
                    for problem in problems {
                        if let Some(name) = problem["file"]
                            .as_str()
                            .and_then(|file| file.strip_prefix(&prefix))
                        {
                            problem["file"] = Value::String(dir.join(name).display().to_string());
                        }
                    }
                }
            }
            Err(Failure::Refused(refusal))
        }
        Err(other) => Err(other),
    }
}

/// The folder's bundle files by name, chosen as `validate` and `serve` choose them: the
/// `*.yaml` and `*.yml` files and the relationship model (`*.fga`, `*.json`), not sub-folders
/// or hidden files.
fn read_bundle_folder(dir: &Path) -> Result<BTreeMap<String, String>, Failure> {
    let sources =
        portcullis_policy::read_bundle_dir(dir, &portcullis_policy::LoadOptions::default())
            .map_err(|error| {
                let reasons: Vec<String> = error
                    .diagnostics
                    .iter()
                    .map(|diagnostic| diagnostic.message.clone())
                    .collect();
                Failure::Usage(format!(
                    "cannot read {}: {}",
                    dir.display(),
                    reasons.join("; ")
                ))
            })?;
    let mut files = BTreeMap::new();
    for source in sources {
        if let Some(name) = source.path.file_name().and_then(|name| name.to_str()) {
            files.insert(name.to_owned(), source.text);
        }
    }
    if files.is_empty() {
        return Err(Failure::Usage(format!(
            "{} holds no bundle file to upload (.yaml, .yml, or a .fga/.json model)",
            dir.display()
        )));
    }
    Ok(files)
}

/// Writes a downloaded bundle's files into `dir`; names that are not plain file names are
/// refused rather than written elsewhere.
fn write_files(dir: &Path, files: &BTreeMap<String, String>) -> Result<Vec<PathBuf>, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|error| Failure::Usage(format!("cannot create {}: {error}", dir.display())))?;
    let mut written = Vec::new();
    for (name, content) in files {
        let plain = Path::new(name)
            .file_name()
            .is_some_and(|file| file == name.as_str())
            && name != ".."
            && name != ".";
        if !plain {
            return Err(Failure::Usage(format!(
                "the bundle holds a file named `{name}`, which is not a plain file name; nothing more was written"
            )));
        }
        let path = dir.join(name);
        std::fs::write(&path, content)
            .map_err(|error| Failure::Usage(format!("cannot write {}: {error}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// `key=value`: the value as JSON when it parses, else as a string.
fn parse_attr(attr: &str) -> Result<(String, Value), Failure> {
    let Some((key, raw)) = attr.split_once('=') else {
        return Err(Failure::Usage(format!("--attr `{attr}` is not key=value")));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(Failure::Usage(format!(
            "--attr `{attr}` has no key before '='"
        )));
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((key.to_owned(), value))
}

fn assignment(principal: &str, role: &str, on: Option<String>) -> Result<Value, Failure> {
    let resource = on.unwrap_or_else(|| "*".to_owned());
    let valid = resource == "*"
        || resource
            .split_once(':')
            .is_some_and(|(kind, id)| !kind.is_empty() && !id.is_empty());
    if !valid {
        return Err(Failure::Usage(format!(
            "--on `{resource}` must be a `type:id` pattern (`*` may replace either part)"
        )));
    }
    Ok(json!({ "principal": principal, "role": role, "resource": resource }))
}

// ------------------------------------------------------------------ rendering

/// A JSON value as a table cell or field: strings bare, null as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn list(value: &Value) -> String {
    let names: Vec<String> = items(value).iter().map(text).collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(", ")
    }
}

/// `sha256:` and the first 12 hex digits, enough to tell revisions apart in a table.
fn short_revision(value: &Value) -> String {
    match value.as_str() {
        Some(revision) => revision.chars().take(19).collect(),
        None => "-".to_owned(),
    }
}

fn attributes(value: &Value) -> String {
    match value.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".to_owned(),
    }
}

/// Microseconds since the epoch as an RFC 3339 time (UTC, whole seconds).
fn time(value: &Value) -> String {
    value
        .as_i64()
        .and_then(|us| jiff::Timestamp::from_second(us.div_euclid(1_000_000)).ok())
        .map(|at| at.to_string())
        .unwrap_or_else(|| text(value))
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_fields(fields: &[(&str, String)]) {
    let width = fields
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    for (name, value) in fields {
        let label = format!("{name}:");
        println!("{label:<width$} {value}");
    }
}
