//! `portcullis access …`: temporary access (break-glass) from the command line — ask for it,
//! approve, reject or revoke a request, list requests.
//!
//! Every call goes to the public listener with the caller's own identity token
//! (`--api-token` or `PORTCULLIS_API_TOKEN`): the requester and the approver are who the token
//! says, and the tenant is the token's tenant claim. Output is short and human-readable unless
//! `--json` asks for the server's answer as it came.
//!
//! Exit status: 0 success, 1 the server refused (its error code and message are printed: a
//! denial, the request's own approver, a window too long, ...), 2 a usage error or an
//! unreachable server.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{self, ApiOptions, Client, Failure, Listener, OK, REFUSED, Reply};
use crate::render::{items, print_table, text};

/// Where the server is and whose token to send; valid before or after the subcommand.
#[derive(Debug, Args)]
#[command(
    mut_arg("api_token", |arg| arg.help(
        "Your identity token (a JWT from a configured issuer; never printed): it names who asks or approves, and the tenant",
    )),
)]
pub struct Options {
    #[command(flatten)]
    api: ApiOptions,
    /// Print the server's answer as JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
}

/// The temporary-access subcommands.
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Ask for an action on a resource (or a route) for a bounded window, bound to a client
    /// certificate and/or networks. Prints the new request's id.
    Request {
        /// The action (`type:verb`, or a verb of the resource's type).
        #[arg(long, requires = "resource", conflicts_with = "route")]
        action: Option<String>,
        /// The resource, `type:id`.
        #[arg(long, requires = "action")]
        resource: Option<String>,
        /// A route of the tenant instead: `METHOD PATH` (such as `POST /ops/apps/payments/release`).
        #[arg(long, value_name = "METHOD PATH")]
        route: Option<String>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// How long: hours, minutes and seconds such as `1h` or `1h30m`.
        #[arg(long, conflicts_with = "end", required_unless_present = "end")]
        duration: Option<String>,
        /// When the window starts (RFC 3339); now when not given.
        #[arg(long)]
        start: Option<String>,
        /// When the window ends (RFC 3339), instead of `--duration`.
        #[arg(long)]
        end: Option<String>,
        /// The client certificate the grant is bound to: its SHA-256 fingerprint or its id.
        #[arg(long)]
        cert: Option<String>,
        /// A source network the grant is bound to (CIDR block or IPv4 wildcard); repeatable.
        #[arg(long = "network", value_name = "CIDR")]
        networks: Vec<String>,
    },
    /// Approve a request (as an approver other than its requester).
    Approve {
        /// The request's id.
        id: String,
        /// What you say.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a pending request.
    Reject {
        /// The request's id.
        id: String,
        /// What you say.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Revoke an approved request at once, or withdraw your pending one.
    Revoke {
        /// The request's id.
        id: String,
        /// What you say.
        #[arg(long)]
        comment: Option<String>,
    },
    /// List your requests; an approver sees every request of the tenant.
    List {
        /// Only requests with this status: pending, approved, rejected, revoked, expired.
        #[arg(long)]
        status: Option<String>,
        /// Only your own requests, even as an approver.
        #[arg(long)]
        mine: bool,
        /// At most this many, newest first (the server's default is 100, its maximum 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// Runs one subcommand.
pub fn run(options: Options, command: AccessCommand) -> u8 {
    let api = options.api.listener();
    let outcome = Client::new(options.json)
        .and_then(|client| client::block_on(execute(&client, api, command)));
    client::exit_code(outcome, REFUSED)
}

async fn execute(client: &Client, api: Listener, command: AccessCommand) -> Result<u8, Failure> {
    let api = api.checked()?;
    match command {
        AccessCommand::Request {
            action,
            resource,
            route,
            reason,
            duration,
            start,
            end,
            cert,
            networks,
        } => {
            let mut body = Map::new();
            if let Some(route) = route {
                let Some((method, path)) = route.trim().split_once(' ') else {
                    return Err(Failure::Usage(format!(
                        "--route `{route}` is not `METHOD PATH` (such as `POST /ops/apps/payments/release`)"
                    )));
                };
                body.insert(
                    "route".into(),
                    json!({ "method": method, "path": path.trim() }),
                );
            } else if let (Some(action), Some(resource)) = (action, resource) {
                body.insert("action".into(), json!(action));
                body.insert("resource".into(), json!(resource));
            } else {
                return Err(Failure::Usage(
                    "give --action and --resource, or --route".to_owned(),
                ));
            }
            body.insert("reason".into(), json!(reason));
            for (key, value) in [
                ("duration", duration),
                ("start", start),
                ("end", end),
                ("cert", cert),
            ] {
                if let Some(value) = value {
                    body.insert(key.into(), json!(value));
                }
            }
            if !networks.is_empty() {
                body.insert("networks".into(), json!(networks));
            }
            let reply = client
                .call(
                    &api,
                    Method::POST,
                    &["access", "requests"],
                    &[],
                    Some(&Value::Object(body)),
                )
                .await?;
            client.output(&reply, |request| {
                println!("{}", text(&request["id"]));
                summary(request);
            });
            Ok(OK)
        }
        AccessCommand::Approve { id, comment } => step(client, &api, &id, "approve", comment).await,
        AccessCommand::Reject { id, comment } => step(client, &api, &id, "reject", comment).await,
        AccessCommand::Revoke { id, comment } => step(client, &api, &id, "revoke", comment).await,
        AccessCommand::List {
            status,
            mine,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(status) = status {
                query.push(("status", status));
            }
            if mine {
                query.push(("mine", "true".to_owned()));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let reply = client
                .call(&api, Method::GET, &["access", "requests"], &query, None)
                .await?;
            client.output(&reply, |answer| {
                let rows: Vec<Vec<String>> = items(&answer["requests"])
                    .iter()
                    .map(|request| {
                        vec![
                            text(&request["id"]),
                            text(&request["status"]),
                            text(&request["requester"]),
                            text(&request["action"]),
                            text(&request["resource"]),
                            text(&request["window"]["end"]),
                        ]
                    })
                    .collect();
                print_table(
                    &["ID", "STATUS", "REQUESTER", "ACTION", "RESOURCE", "ENDS"],
                    &rows,
                );
            });
            Ok(OK)
        }
    }
}

async fn step(
    client: &Client,
    api: &Listener,
    id: &str,
    what: &str,
    comment: Option<String>,
) -> Result<u8, Failure> {
    let body = match comment {
        Some(comment) => json!({ "comment": comment }),
        None => json!({}),
    };
    let reply: Reply = client
        .call(
            api,
            Method::POST,
            &["access", "requests", id, what],
            &[],
            Some(&body),
        )
        .await?;
    client.output(&reply, summary);
    Ok(OK)
}

/// One request in a few lines.
fn summary(request: &Value) {
    println!(
        "{} {}: {} on {} for {}",
        text(&request["id"]),
        text(&request["status"]),
        text(&request["action"]),
        text(&request["resource"]),
        text(&request["requester"]),
    );
    println!(
        "  window {} to {}",
        text(&request["window"]["start"]),
        text(&request["window"]["end"])
    );
    let approvers: Vec<String> = items(&request["approvals"])
        .iter()
        .map(|approval| text(&approval["approver"]))
        .collect();
    if !approvers.is_empty() {
        println!(
            "  approved by {} ({} required)",
            approvers.join(", "),
            text(&request["approvals_required"])
        );
    }
}
