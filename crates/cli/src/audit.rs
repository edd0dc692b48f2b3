//! `portcullis audit …`: read and verify an audit trail kept in files, offline (an auditor's
//! copy, or the server's `audit.dir`). Verification needs only the public half of the
//! checkpoint key (`audit-signing.pub`, written next to the signing key).
//!
//! Exit status: 0 success (for `verify`: the log is intact), 1 a problem found, 2 bad input.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use portcullis_audit::{Filter, Kind, Outcome, VerifyingKey};

/// Where the trail is.
#[derive(Debug, Args)]
pub struct AuditOptions {
    /// The audit root folder (one sub-folder per tenant).
    #[arg(long, global = true, default_value = ".portcullis/audit")]
    dir: PathBuf,
    /// The tenant whose chain to read.
    #[arg(long, global = true)]
    tenant: Option<String>,
}

/// Filters of `query` and `export`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// From this time (RFC 3339, inclusive).
    #[arg(long)]
    from: Option<jiff::Timestamp>,
    /// Until this time (exclusive).
    #[arg(long)]
    to: Option<jiff::Timestamp>,
    /// Exact actor (as recorded, masked).
    #[arg(long)]
    actor: Option<String>,
    /// Exact action.
    #[arg(long)]
    action: Option<String>,
    /// allow, deny, error, ok or failed.
    #[arg(long)]
    outcome: Option<String>,
    /// Trace id.
    #[arg(long)]
    trace_id: Option<String>,
    /// decision or change.
    #[arg(long)]
    kind: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> Result<Filter, String> {
        let outcome: Option<Outcome> = self
            .outcome
            .as_deref()
            .map(|text| serde_json::from_value(serde_json::Value::String(text.to_owned())))
            .transpose()
            .map_err(|_| "--outcome must be allow, deny, error, ok or failed".to_owned())?;
        let kind: Option<Kind> = self
            .kind
            .as_deref()
            .map(|text| serde_json::from_value(serde_json::Value::String(text.to_owned())))
            .transpose()
            .map_err(|_| "--kind must be decision or change".to_owned())?;
        Ok(Filter {
            from: self.from,
            to: self.to,
            actor: self.actor.clone(),
            action: self.action.clone(),
            outcome,
            trace_id: self.trace_id.clone(),
            kind,
        })
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the chain and the signed checkpoints; report the first bad record.
    Verify {
        /// The public key file (`audit-signing.pub`).
        #[arg(long)]
        public_key: PathBuf,
        /// Also fail when records follow the last checkpoint (a log that was not closed).
        #[arg(long)]
        sealed: bool,
    },
    /// Print the last records.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        count: usize,
    },
    /// Print matching records as JSON, a page at a time.
    Query {
        #[command(flatten)]
        filter: FilterArgs,
        /// Records per page.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// From a previous page's `next_cursor`.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Write matching records as JSON lines to standard output (with no filter, checkpoints
    /// too, so the export verifies).
    Export {
        #[command(flatten)]
        filter: FilterArgs,
    },
}

fn fail(message: &str) -> u8 {
    eprintln!("error: {message}");
    2
}

/// Runs one `portcullis audit` subcommand.
pub fn run(options: AuditOptions, command: AuditCommand) -> u8 {
    let Some(tenant) = options.tenant else {
        return fail("--tenant is required");
    };
    if let Err(error) = portcullis_audit::validate_tenant(&tenant) {
        return fail(&error.to_string());
    }
    if !options.dir.join(&tenant).is_dir() {
        return fail(&format!(
            "{} holds no audit log of tenant `{tenant}`",
            options.dir.display()
        ));
    }
    match command {
        AuditCommand::Verify { public_key, sealed } => {
            let key = match VerifyingKey::load(&public_key) {
                Ok(key) => key,
                Err(error) => return fail(&error.to_string()),
            };
            match portcullis_audit::verify_dir(&options.dir, &tenant, &key) {
                Ok(report) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                    let ok = if sealed {
                        report.is_ok()
                    } else {
                        report.is_ok_while_live()
                    };
                    if ok {
                        eprintln!(
                            "ok: {} records, {} checkpoints, {} segments",
                            report.records, report.checkpoints, report.segments
                        );
                        0
                    } else {
                        if let Some(problem) = &report.problem {
                            eprintln!("TAMPERED OR INCOMPLETE: {problem:?}");
                        }
                        1
                    }
                }
                Err(error) => fail(&error.to_string()),
            }
        }
        AuditCommand::Tail { count } => {
            match portcullis_audit::tail(&options.dir, &tenant, count) {
                Ok(records) => {
                    for record in records {
                        println!("{}", serde_json::to_string(&record).unwrap_or_default());
                    }
                    0
                }
                Err(error) => fail(&error.to_string()),
            }
        }
        AuditCommand::Query {
            filter,
            limit,
            cursor,
        } => {
            let filter = match filter.filter() {
                Ok(filter) => filter,
                Err(message) => return fail(&message),
            };
            match portcullis_audit::query(
                &options.dir,
                &tenant,
                &filter,
                cursor.as_deref(),
                limit.clamp(1, 10_000),
            ) {
                Ok(page) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&page).unwrap_or_default()
                    );
                    0
                }
                Err(error) => fail(&error.to_string()),
            }
        }
        AuditCommand::Export { filter } => {
            let filter = match filter.filter() {
                Ok(filter) => filter,
                Err(message) => return fail(&message),
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match portcullis_audit::export(&options.dir, &tenant, &filter, &mut out) {
                Ok(count) => {
                    let _ = out.flush();
                    eprintln!("{count} records");
                    0
                }
                Err(error) => fail(&error.to_string()),
            }
        }
    }
}
