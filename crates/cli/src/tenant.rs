//! `portcullis tenant …`: the admin API of a running server, from the command line.
//!
//! Every subcommand is one (or, for none, more than one) admin call. Output is short and
//! human-readable unless `--json` asks for the server's JSON as it was answered. Exit status:
//! 0 success, 1 the server refused (its error code and message are printed), 2 a usage error
//! or a server that could not be reached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{self, AdminOptions, Client, Failure, Listener, OK, REFUSED};
use crate::render::{items, print_table, text, time};

/// Where the admin API is and how to authenticate; valid before or after the subcommand.
#[derive(Debug, Args)]
pub struct Options {
    #[command(flatten)]
    admin: AdminOptions,
    /// Print the server's JSON answer as it came instead of a summary.
    #[arg(long, global = true)]
    json: bool,
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
    // Every subcommand calls the admin listener: its URL and token are checked before anything.
    let outcome = options.admin.listener().checked().and_then(|admin| {
        let client = Client::new(options.json)?;
        client::block_on(execute(&client, &admin, command))
    });
    client::exit_code(outcome.map(|()| OK), REFUSED)
}

// ------------------------------------------------------------------ subcommands

async fn execute(client: &Client, admin: &Listener, command: TenantCommand) -> Result<(), Failure> {
    match command {
        TenantCommand::List => {
            let reply = client
                .call(admin, Method::GET, &["tenants"], &[], None)
                .await?;
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
                .call(admin, Method::GET, &["tenants", &id], &[], None)
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
                .call(admin, Method::POST, &["tenants"], &[], Some(&body))
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
        TenantCommand::Suspend { id } => status(client, admin, &id, "suspend").await?,
        TenantCommand::Resume { id } => status(client, admin, &id, "resume").await?,
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
                    admin,
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
        TenantCommand::Upload { id, dir } => upload(client, admin, &id, &dir).await?,
        TenantCommand::Bundles { id } => {
            let reply = client
                .call(admin, Method::GET, &["tenants", &id, "bundles"], &[], None)
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
                    admin,
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
                    admin,
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
                .call(
                    admin,
                    Method::GET,
                    &["tenants", &id, "principals"],
                    &query,
                    None,
                )
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
                    admin,
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
                    admin,
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
                    admin,
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
                .call(
                    admin,
                    Method::GET,
                    &["tenants", &id, "assignments"],
                    &query,
                    None,
                )
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
                    admin,
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
                    admin,
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
                .call(
                    admin,
                    Method::POST,
                    &["tenants", &id, "rotate-key"],
                    &[],
                    None,
                )
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

async fn status(
    client: &Client,
    admin: &Listener,
    id: &str,
    operation: &str,
) -> Result<(), Failure> {
    let reply = client
        .call(admin, Method::POST, &["tenants", id, operation], &[], None)
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

async fn upload(client: &Client, admin: &Listener, id: &str, dir: &Path) -> Result<(), Failure> {
    let files = read_bundle_folder(dir)?;
    let count = files.len();
    let body = json!({ "files": files });
    match client
        .call(
            admin,
            Method::PUT,
            &["tenants", id, "bundle"],
            &[],
            Some(&body),
        )
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
                if let Some(problems) = refusal.problems_mut() {
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
