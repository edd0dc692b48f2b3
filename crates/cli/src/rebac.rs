//! `portcullis rebac …`: the relationship graph of a running server, from the command line.
//!
//! Queries (`check`, `list-objects`, `list-users`, `expand`) go to the public listener, with an
//! optional bearer token, the way `/v1/check` is called. Tuples (`write`, `read`, `changes`) and
//! the tenant's model go to the admin listener with an admin token, the way `portcullis tenant`
//! calls it. Output is short and human-readable unless `--json` asks for JSON.
//!
//! Exit status: `check` answers 0 allowed, 1 not allowed, 2 anything else (like `portcullis
//! check`). Every other subcommand answers 0 success, 1 the server refused (its error code and
//! message are printed), 2 a usage error, an unusable local file or an unreachable server (like
//! `portcullis tenant`).

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use portcullis_policy::rebac::Tuple;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{
    self, AdminOptions, ApiOptions, Client, Failure, Listener, OK, REFUSED, Reply, USAGE,
};
use crate::render::{items, print_table, text, time};

/// Most tuples (writes and deletes together) the server takes in one write.
const WRITE_BATCH: usize = 100;
/// Page size asked for when reading tuples and changes (the server's maximum).
const ADMIN_PAGE: u32 = 1000;
/// Most pages followed before giving up on a server that never stops paginating.
const MAX_PAGES: usize = 1_000_000;

/// Where the server is and how to authenticate; valid before or after the subcommand.
///
/// The listener flags are the ones every client subcommand takes; their help here says which
/// subcommands use which listener.
#[derive(Debug, Args)]
#[command(
    mut_arg("api_url", |arg| arg.help(
        "Base URL of the public listener (queries: check, list-objects, list-users, expand)",
    )),
    mut_arg("api_token", |arg| arg.help(
        "Bearer token for queries, when the server requires one (never printed)",
    )),
    mut_arg("admin_url", |arg| arg.help(
        "Base URL of the admin listener (write, read, changes, model)",
    )),
    mut_arg("token", |arg| arg.help(
        "Admin token for write, read, changes and model (sent as a bearer token; never printed)",
    )),
)]
pub struct Options {
    #[command(flatten)]
    api: ApiOptions,
    #[command(flatten)]
    admin: AdminOptions,
    /// Print JSON instead of a summary: the server's answer as it came, or for paginated
    /// subcommands every page joined into one answer.
    #[arg(long, global = true)]
    json: bool,
}

/// The relationship subcommands.
#[derive(Debug, Subcommand)]
pub enum RebacCommand {
    /// Does the user have the relation with the object? Prints the answer as JSON.
    ///
    /// Exit status: 0 allowed, 1 not allowed, 2 an error (the error is on stderr).
    Check {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// `type:id`, `type:*` or `type:id#relation` (such as `user:alice`).
        #[arg(long)]
        user: String,
        /// The relation (such as `viewer`).
        #[arg(long)]
        relation: String,
        /// `type:id` (such as `doc:readme`).
        #[arg(long)]
        object: String,
        /// Request context for conditions, as a JSON object.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
        /// Tuples that exist for this query only: a JSON or YAML list of tuples, or `-` for
        /// standard input.
        #[arg(long, value_name = "FILE")]
        contextual_tuples: Option<PathBuf>,
        /// Answer from data at least as fresh as this revision (as printed by `rebac write`).
        #[arg(long, value_name = "REVISION")]
        at_least: Option<String>,
    },
    /// Every object of a type the user has the relation with (all pages, one per line).
    ListObjects {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// `type:id`, `type:*` or `type:id#relation`.
        #[arg(long)]
        user: String,
        /// The relation.
        #[arg(long)]
        relation: String,
        /// The object type.
        #[arg(long = "type", value_name = "TYPE")]
        object_type: String,
        /// Request context for conditions, as a JSON object.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
        /// Tuples that exist for this query only: a JSON or YAML list, or `-` for standard input.
        #[arg(long, value_name = "FILE")]
        contextual_tuples: Option<PathBuf>,
        /// Answer from data at least as fresh as this revision.
        #[arg(long, value_name = "REVISION")]
        at_least: Option<String>,
        /// Objects asked for per call (the server's default and maximum is 10,000); every page
        /// is read whatever the size.
        #[arg(long, value_name = "N")]
        page_size: Option<u32>,
    },
    /// The users that have the relation with an object, of the types given by `--filter`.
    ListUsers {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// `type:id`.
        #[arg(long)]
        object: String,
        /// The relation.
        #[arg(long)]
        relation: String,
        /// A user type (`user`: objects and `user:*`) or a userset type (`team#member`);
        /// repeat for several.
        #[arg(long = "filter", value_name = "TYPE[#RELATION]", required = true)]
        filters: Vec<String>,
        /// Request context for conditions, as a JSON object.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
        /// Tuples that exist for this query only: a JSON or YAML list, or `-` for standard input.
        #[arg(long, value_name = "FILE")]
        contextual_tuples: Option<PathBuf>,
        /// Answer from data at least as fresh as this revision.
        #[arg(long, value_name = "REVISION")]
        at_least: Option<String>,
    },
    /// The tree of usersets that make up a relation of an object.
    Expand {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// `type:id`.
        #[arg(long)]
        object: String,
        /// The relation.
        #[arg(long)]
        relation: String,
        /// Answer from data at least as fresh as this revision.
        #[arg(long, value_name = "REVISION")]
        at_least: Option<String>,
    },
    /// Write and delete tuples (admin token), in batches of 100; prints the last revision.
    ///
    /// Each batch is one transaction; when a later batch is refused, the earlier ones stay
    /// written (the message says how far the write got).
    Write {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// JSON or YAML: `{writes: [...], deletes: [...]}`, or a list of tuples to write; `-`
        /// for standard input. A tuple is `{user, relation, object, condition?: {name,
        /// context}}`.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Write a tuple; repeat for several.
        #[arg(long, num_args = 3, value_names = ["USER", "RELATION", "OBJECT"])]
        add: Vec<String>,
        /// Delete a tuple; repeat for several.
        #[arg(long, num_args = 3, value_names = ["USER", "RELATION", "OBJECT"])]
        remove: Vec<String>,
        /// Writing a tuple that already exists is not an error.
        #[arg(long)]
        ignore_duplicates: bool,
        /// Deleting a tuple that does not exist is not an error.
        #[arg(long)]
        ignore_missing: bool,
    },
    /// Stored tuples (admin token), filtered, all pages.
    Read {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// Only tuples on this object (`type:id`) or on objects of this type (`type`).
        #[arg(long, value_name = "OBJECT")]
        object: Option<String>,
        /// Only tuples of this relation.
        #[arg(long)]
        relation: Option<String>,
        /// Only tuples of exactly this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// The change log of the tenant's tuples (admin token), all pages.
    Changes {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// Only changes after this revision (default: all).
        #[arg(long, value_name = "REVISION")]
        since: Option<i64>,
    },
    /// The tenant's relationship model in the modeling language (admin token).
    Model {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
    },
}

/// Runs one rebac subcommand and returns the exit code.
pub fn run(options: Options, command: RebacCommand) -> u8 {
    // For a check, 1 means "not allowed"; a refusal is an error like any other.
    let refused = if matches!(command, RebacCommand::Check { .. }) {
        USAGE
    } else {
        REFUSED
    };
    let server = Server {
        api: options.api.listener(),
        admin: options.admin.listener(),
    };
    let outcome = Client::new(options.json)
        .and_then(|client| client::block_on(execute(&client, &server, command)));
    client::exit_code(outcome, refused)
}

/// The two listeners: queries go to the public one, tuples and the model to the admin one.
/// Only the listener a subcommand calls must be valid.
struct Server {
    api: Listener,
    admin: Listener,
}

impl Server {
    /// `POST /v1/relations/{what}` on the public listener.
    async fn query(&self, client: &Client, what: &str, body: &Value) -> Result<Reply, Failure> {
        client
            .call(
                &self.api,
                Method::POST,
                &["relations", what],
                &[],
                Some(body),
            )
            .await
    }

    /// An admin call about one tenant: `/admin/v1/tenants/{tenant}/{segments…}`.
    async fn admin(
        &self,
        client: &Client,
        method: Method,
        tenant: &str,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let mut path = vec!["tenants", tenant];
        path.extend_from_slice(segments);
        client.call(&self.admin, method, &path, query, body).await
    }
}

// ------------------------------------------------------------------ subcommands

async fn execute(client: &Client, server: &Server, command: RebacCommand) -> Result<u8, Failure> {
    match command {
        RebacCommand::Check {
            tenant,
            user,
            relation,
            object,
            context,
            contextual_tuples,
            at_least,
        } => {
            let mut body = json!({
                "tenant": tenant, "user": user, "relation": relation, "object": object,
            });
            add_query_options(&mut body, context, contextual_tuples, at_least)?;
            let reply = server.query(client, "check", &body).await?;
            let Some(allowed) = reply.body["allowed"].as_bool() else {
                return Err(Failure::Usage(format!(
                    "the server's answer has no `allowed`: {}",
                    reply.text.trim()
                )));
            };
            if client.json() {
                println!("{}", reply.text.trim_end());
            } else {
                println!("{}", pretty(&reply.body));
            }
            return Ok(if allowed { OK } else { REFUSED });
        }
        RebacCommand::ListObjects {
            tenant,
            user,
            relation,
            object_type,
            context,
            contextual_tuples,
            at_least,
            page_size,
        } => {
            let mut body = json!({
                "tenant": tenant, "user": user, "relation": relation, "type": object_type,
            });
            add_query_options(&mut body, context, contextual_tuples, at_least)?;
            if let Some(size) = page_size {
                body["page_size"] = json!(size);
            }
            list_objects(client, server, body).await?;
        }
        RebacCommand::ListUsers {
            tenant,
            object,
            relation,
            filters,
            context,
            contextual_tuples,
            at_least,
        } => {
            let mut body = json!({
                "tenant": tenant, "object": object, "relation": relation, "user_filters": filters,
            });
            add_query_options(&mut body, context, contextual_tuples, at_least)?;
            let reply = server.query(client, "list-users", &body).await?;
            client.output(&reply, |answer| {
                for user in items(&answer["users"]) {
                    println!("{}", text(user));
                }
            });
        }
        RebacCommand::Expand {
            tenant,
            object,
            relation,
            at_least,
        } => {
            let mut body = json!({ "tenant": tenant, "object": object, "relation": relation });
            add_query_options(&mut body, None, None, at_least)?;
            let reply = server.query(client, "expand", &body).await?;
            client.output(&reply, |answer| {
                let mut out = String::new();
                render_node(&answer["tree"]["root"], 0, &mut out);
                print!("{out}");
            });
        }
        RebacCommand::Write {
            tenant,
            file,
            add,
            remove,
            ignore_duplicates,
            ignore_missing,
        } => {
            let mut change = match &file {
                Some(path) => read_write_file(path)?,
                None => Change::default(),
            };
            for (index, parts) in add.chunks(3).enumerate() {
                change.writes.push(quick_tuple("--add", index, parts)?);
            }
            for (index, parts) in remove.chunks(3).enumerate() {
                change.deletes.push(quick_tuple("--remove", index, parts)?);
            }
            if change.writes.is_empty() && change.deletes.is_empty() {
                return Err(Failure::Usage(
                    "nothing to write: give --file FILE, --add USER RELATION OBJECT or --remove USER RELATION OBJECT".to_owned(),
                ));
            }
            write(
                client,
                server,
                &tenant,
                &change,
                ignore_duplicates,
                ignore_missing,
            )
            .await?;
        }
        RebacCommand::Read {
            tenant,
            object,
            relation,
            user,
        } => read(client, server, &tenant, object, relation, user).await?,
        RebacCommand::Changes { tenant, since } => changes(client, server, &tenant, since).await?,
        RebacCommand::Model { tenant } => {
            let reply = server
                .admin(client, Method::GET, &tenant, &["model"], &[], None)
                .await?;
            client.output(&reply, |answer| {
                let dsl = answer["dsl"].as_str().unwrap_or("");
                print!("{dsl}");
                if !dsl.ends_with('\n') {
                    println!();
                }
            });
        }
    }
    Ok(OK)
}

/// Adds `context`, `contextual_tuples` and `consistency` to a query body.
fn add_query_options(
    body: &mut Value,
    context: Option<String>,
    contextual_tuples: Option<PathBuf>,
    at_least: Option<String>,
) -> Result<(), Failure> {
    if let Some(context) = context {
        let parsed: Value = serde_json::from_str(&context)
            .map_err(|error| Failure::Usage(format!("--context is not JSON: {error}")))?;
        if !parsed.is_object() {
            return Err(Failure::Usage(
                "--context must be a JSON object, such as '{\"time\": \"2026-03-02T10:00:00Z\"}'"
                    .to_owned(),
            ));
        }
        body["context"] = parsed;
    }
    if let Some(path) = contextual_tuples {
        let (name, document) = read_document(&path)?;
        let list = match document {
            Value::Array(list) => list,
            Value::Object(mut map) if map.len() == 1 && map.contains_key("contextual_tuples") => {
                match map.remove("contextual_tuples") {
                    Some(Value::Array(list)) => list,
                    _ => {
                        return Err(Failure::Usage(format!(
                            "{name}: `contextual_tuples` must be a list of tuples"
                        )));
                    }
                }
            }
            _ => {
                return Err(Failure::Usage(format!(
                    "{name}: contextual tuples must be a list of tuples ({{user, relation, object}})"
                )));
            }
        };
        let tuples = parse_tuples(&name, "contextual_tuples", list)?;
        body["contextual_tuples"] = Value::Array(tuples);
    }
    if let Some(revision) = at_least {
        body["consistency"] = json!({ "at_least": revision });
    }
    Ok(())
}

async fn list_objects(client: &Client, server: &Server, mut body: Value) -> Result<(), Failure> {
    let mut objects: Vec<Value> = Vec::new();
    let mut revision = Value::Null;
    for _ in 0..MAX_PAGES {
        let reply = server.query(client, "list-objects", &body).await?;
        objects.extend(items(&reply.body["objects"]).iter().cloned());
        revision = reply.body["revision"].clone();
        let next = match &reply.body["continuation"] {
            Value::String(next) if !next.is_empty() => next.clone(),
            _ => {
                let joined = json!({ "objects": objects, "revision": revision });
                client.output_joined(&joined, || {
                    for object in &objects {
                        println!("{}", text(object));
                    }
                });
                return Ok(());
            }
        };
        if body["continuation"].as_str() == Some(next.as_str()) {
            return Err(Failure::Usage(format!(
                "the server answered the same continuation `{next}` twice; stopping"
            )));
        }
        body["continuation"] = Value::String(next);
        // Later pages are never answered from older data than the first.
        if let Some(first) = revision.as_str()
            && body["consistency"]["at_least"].is_null()
        {
            body["consistency"] = json!({ "at_least": first });
        }
    }
    Err(Failure::Usage(format!(
        "list-objects did not end after {MAX_PAGES} pages (last revision {})",
        text(&revision)
    )))
}

/// Tuples to write and delete, as the JSON the server takes.
#[derive(Default)]
struct Change {
    writes: Vec<Value>,
    deletes: Vec<Value>,
}

/// Reads `{writes, deletes}` or a plain list of tuples (to write) from JSON or YAML.
fn read_write_file(path: &Path) -> Result<Change, Failure> {
    let (name, document) = read_document(path)?;
    match document {
        Value::Array(list) => Ok(Change {
            writes: parse_tuples(&name, "", list)?,
            deletes: Vec::new(),
        }),
        Value::Object(map) => {
            let mut change = Change::default();
            for (key, value) in map {
                let list = match value {
                    Value::Array(list) => list,
                    Value::Null => Vec::new(),
                    _ => {
                        return Err(Failure::Usage(format!(
                            "{name}: `{key}` must be a list of tuples"
                        )));
                    }
                };
                match key.as_str() {
                    "writes" => change.writes = parse_tuples(&name, "writes", list)?,
                    "deletes" => change.deletes = parse_tuples(&name, "deletes", list)?,
                    _ => {
                        return Err(Failure::Usage(format!(
                            "{name}: unknown key `{key}`; expected `writes` and `deletes` (or a plain list of tuples to write)"
                        )));
                    }
                }
            }
            Ok(change)
        }
        _ => Err(Failure::Usage(format!(
            "{name}: expected `{{writes: [...], deletes: [...]}}` or a list of tuples"
        ))),
    }
}

/// Checks every tuple's shape locally (so a typo is found before anything is written) and
/// returns them in the form the server takes.
fn parse_tuples(name: &str, field: &str, list: Vec<Value>) -> Result<Vec<Value>, Failure> {
    let mut problems = Vec::new();
    let mut tuples = Vec::with_capacity(list.len());
    for (index, item) in list.into_iter().enumerate() {
        let shown = item.to_string();
        match serde_json::from_value::<Tuple>(item) {
            Ok(tuple) => match serde_json::to_value(&tuple) {
                Ok(value) => tuples.push(value),
                Err(error) => problems.push(format!("{name}: {field}[{index}]: {error}")),
            },
            Err(error) => {
                let shown: String = shown.chars().take(120).collect();
                problems.push(format!("{name}: {field}[{index}] {shown}: {error}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(tuples)
    } else {
        let count = problems.len();
        Err(Failure::Usage(format!(
            "{count} invalid tuple{}; nothing was written:\n  {}",
            if count == 1 { "" } else { "s" },
            problems.join("\n  ")
        )))
    }
}

/// `--add USER RELATION OBJECT` as a tuple.
fn quick_tuple(flag: &str, index: usize, parts: &[String]) -> Result<Value, Failure> {
    let [user, relation, object] = parts else {
        return Err(Failure::Usage(format!(
            "{flag} takes three values: USER RELATION OBJECT"
        )));
    };
    let tuple = Tuple::parse(user, relation, object).map_err(|error| {
        Failure::Usage(format!(
            "{flag} {user} {relation} {object} (#{}): {error}; nothing was written",
            index + 1
        ))
    })?;
    serde_json::to_value(&tuple)
        .map_err(|error| Failure::Usage(format!("cannot encode the tuple: {error}")))
}

async fn write(
    client: &Client,
    server: &Server,
    tenant: &str,
    change: &Change,
    ignore_duplicates: bool,
    ignore_missing: bool,
) -> Result<(), Failure> {
    // Writes first, then deletes, cut into batches of at most WRITE_BATCH tuples.
    let total = change.writes.len() + change.deletes.len();
    let batches = total.div_ceil(WRITE_BATCH);
    let mut revision = Value::Null;
    let mut answers = Vec::with_capacity(batches);
    for batch in 0..batches {
        let start = batch * WRITE_BATCH;
        let end = (start + WRITE_BATCH).min(total);
        let writes = slice(&change.writes, start, end);
        let deletes = slice(
            &change.deletes,
            start.saturating_sub(change.writes.len()),
            end.saturating_sub(change.writes.len()),
        );
        let mut body = json!({ "writes": writes, "deletes": deletes });
        if ignore_duplicates {
            body["ignore_duplicates"] = Value::Bool(true);
        }
        if ignore_missing {
            body["ignore_missing"] = Value::Bool(true);
        }
        match server
            .admin(client, Method::POST, tenant, &["tuples"], &[], Some(&body))
            .await
        {
            Ok(reply) => {
                revision = reply.body["revision"].clone();
                answers.push(reply.body);
            }
            Err(Failure::Refused(mut refusal)) if batches > 1 => {
                refusal.set_note(if batch == 0 {
                    format!("batch 1 of {batches} was refused; nothing was written")
                } else {
                    format!(
                        "batch {} of {batches} (tuples {}..{}) was refused; batches 1 to {batch} (the first {start} tuples) were written, up to revision {}",
                        batch + 1,
                        start + 1,
                        end,
                        text(&revision)
                    )
                });
                return Err(Failure::Refused(refusal));
            }
            Err(other) => return Err(other),
        }
    }
    let joined = json!({
        "tenant": tenant,
        "written": change.writes.len(),
        "deleted": change.deletes.len(),
        "batches": batches,
        "revision": revision,
    });
    client.output_joined(&joined, || {
        println!(
            "wrote {} and deleted {} tuple{} in tenant {tenant} ({batches} batch{}): revision {}",
            change.writes.len(),
            change.deletes.len(),
            if change.deletes.len() == 1 { "" } else { "s" },
            if batches == 1 { "" } else { "es" },
            text(&revision)
        );
    });
    Ok(())
}

/// The part of `list` that falls in `start..end` (clamped).
fn slice(list: &[Value], start: usize, end: usize) -> &[Value] {
    let end = end.min(list.len());
    let start = start.min(end);
    &list[start..end]
}

async fn read(
    client: &Client,
    server: &Server,
    tenant: &str,
    object: Option<String>,
    relation: Option<String>,
    user: Option<String>,
) -> Result<(), Failure> {
    let mut filter: Vec<(&str, String)> = Vec::new();
    for (key, value) in [("object", object), ("relation", relation), ("user", user)] {
        if let Some(value) = value {
            filter.push((key, value));
        }
    }
    filter.push(("page_size", ADMIN_PAGE.to_string()));
    let mut tuples: Vec<Value> = Vec::new();
    let mut continuation: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = filter.clone();
        if let Some(next) = &continuation {
            query.push(("continuation", next.clone()));
        }
        let reply = server
            .admin(client, Method::GET, tenant, &["tuples"], &query, None)
            .await?;
        tuples.extend(items(&reply.body["tuples"]).iter().cloned());
        match reply.body["continuation"].as_str() {
            Some(next) if !next.is_empty() => {
                if continuation.as_deref() == Some(next) {
                    return Err(Failure::Usage(format!(
                        "the server answered the same continuation `{next}` twice; stopping"
                    )));
                }
                continuation = Some(next.to_owned());
            }
            _ => {
                let joined = json!({ "tuples": tuples });
                client.output_joined(&joined, || {
                    if tuples.is_empty() {
                        println!("no tuples");
                        return;
                    }
                    let rows: Vec<Vec<String>> = tuples
                        .iter()
                        .map(|t| {
                            vec![
                                text(&t["object"]),
                                text(&t["relation"]),
                                text(&t["user"]),
                                condition(t),
                            ]
                        })
                        .collect();
                    print_table(&["OBJECT", "RELATION", "USER", "CONDITION"], &rows);
                });
                return Ok(());
            }
        }
    }
    Err(Failure::Usage(format!(
        "reading tuples did not end after {MAX_PAGES} pages"
    )))
}

async fn changes(
    client: &Client,
    server: &Server,
    tenant: &str,
    since: Option<i64>,
) -> Result<(), Failure> {
    let mut since = since.unwrap_or(0);
    let mut all: Vec<Value> = Vec::new();
    for _ in 0..MAX_PAGES {
        let query = [
            ("since", since.to_string()),
            ("page_size", ADMIN_PAGE.to_string()),
        ];
        let reply = server
            .admin(
                client,
                Method::GET,
                tenant,
                &["tuples", "changes"],
                &query,
                None,
            )
            .await?;
        let page = items(&reply.body["changes"]);
        let next = reply.body["next_since"].as_i64().unwrap_or(since);
        all.extend(page.iter().cloned());
        if page.is_empty() || next <= since {
            let joined = json!({ "changes": all, "next_since": since });
            client.output_joined(&joined, || {
                if all.is_empty() {
                    println!("no changes after revision {since}");
                    return;
                }
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        let t = &c["tuple"];
                        vec![
                            text(&c["revision"]),
                            text(&c["operation"]),
                            text(&t["object"]),
                            text(&t["relation"]),
                            text(&t["user"]),
                            condition(t),
                            time(&c["changed_at_us"]),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "REVISION",
                        "OPERATION",
                        "OBJECT",
                        "RELATION",
                        "USER",
                        "CONDITION",
                        "AT",
                    ],
                    &rows,
                );
            });
            return Ok(());
        }
        since = next;
    }
    Err(Failure::Usage(format!(
        "reading changes did not end after {MAX_PAGES} pages"
    )))
}

// ------------------------------------------------------------------ local files

/// Reads a JSON or YAML document from a file or standard input (`-`); returns a name for
/// messages and the document.
fn read_document(path: &Path) -> Result<(String, Value), Failure> {
    let (name, source) = if path.as_os_str() == "-" {
        let mut source = String::new();
        std::io::stdin()
            .read_to_string(&mut source)
            .map_err(|error| Failure::Usage(format!("cannot read standard input: {error}")))?;
        ("<stdin>".to_owned(), source)
    } else {
        let source = std::fs::read_to_string(path)
            .map_err(|error| Failure::Usage(format!("cannot read {}: {error}", path.display())))?;
        (path.display().to_string(), source)
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let json_first = source.trim_start().starts_with(['{', '[']);
    let document = match extension.as_deref() {
        Some("json") => serde_json::from_str::<Value>(&source)
            .map_err(|error| format!("{name}: invalid JSON: {error}")),
        Some("yaml" | "yml") => serde_saphyr::from_str::<Value>(&source)
            .map_err(|error| format!("{name}: invalid YAML: {error}")),
        _ => match serde_json::from_str::<Value>(&source) {
            Ok(value) => Ok(value),
            Err(json_error) => serde_saphyr::from_str::<Value>(&source).map_err(|yaml_error| {
                if json_first {
                    format!("{name}: invalid JSON: {json_error}")
                } else {
                    format!("{name}: invalid YAML: {yaml_error}")
                }
            }),
        },
    };
    document
        .map(|document| (name, document))
        .map_err(Failure::Usage)
}

// ------------------------------------------------------------------ rendering

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A stored tuple's condition: `name {context}`, or `-`.
fn condition(tuple: &Value) -> String {
    match tuple["condition"].as_str() {
        Some(name) => match tuple["context"].as_object() {
            Some(context) if !context.is_empty() => {
                format!("{name} {}", Value::Object(context.clone()))
            }
            _ => name.to_owned(),
        },
        None => "-".to_owned(),
    }
}

/// One node of an expand tree, indented by `depth`.
fn render_node(node: &Value, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let name = text(&node["name"]);
    let line = |out: &mut String, text: String| {
        out.push_str(&indent);
        out.push_str(&text);
        out.push('\n');
    };
    if let Some(leaf) = node.get("leaf") {
        if let Some(users) = leaf.get("users") {
            let users: Vec<String> = items(&users["users"]).iter().map(text).collect();
            let shown = if users.is_empty() {
                "(none)".to_owned()
            } else {
                users.join(", ")
            };
            line(out, format!("{name}: direct: {shown}"));
        } else if let Some(computed) = leaf.get("computed") {
            line(
                out,
                format!("{name}: computed: {}", text(&computed["userset"])),
            );
        } else if let Some(ttu) = leaf.get("tupleToUserset") {
            let sets: Vec<String> = items(&ttu["computed"])
                .iter()
                .map(|c| text(&c["userset"]))
                .collect();
            let shown = if sets.is_empty() {
                "(none)".to_owned()
            } else {
                sets.join(", ")
            };
            line(
                out,
                format!(
                    "{name}: from {}: {shown}",
                    text(&ttu["tupleset"]).rsplit('#').next().unwrap_or("")
                ),
            );
        } else {
            line(out, format!("{name}: {leaf}"));
        }
        return;
    }
    for operator in ["union", "intersection"] {
        if let Some(group) = node.get(operator) {
            line(out, format!("{name}: {operator}"));
            for child in items(&group["nodes"]) {
                render_node(child, depth + 1, out);
            }
            return;
        }
    }
    if let Some(difference) = node.get("difference") {
        line(out, format!("{name}: but not"));
        render_node(&difference["base"], depth + 1, out);
        render_node(&difference["subtract"], depth + 1, out);
        return;
    }
    line(out, format!("{name}: {node}"));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn batches_cover_writes_then_deletes() {
        let list = |n: usize| (0..n).map(|i| json!(i)).collect::<Vec<_>>();
        let writes = list(150);
        let deletes = list(70);
        // Batch 2 (100..200): writes 100..150, deletes 0..50.
        assert_eq!(slice(&writes, 100, 200).len(), 50);
        assert_eq!(slice(&deletes, 0, 50).len(), 50);
        // Batch 3 (200..220): no writes, deletes 50..70.
        assert!(slice(&writes, 200, 220).is_empty());
        assert_eq!(slice(&deletes, 50, 70).len(), 20);
    }
}
