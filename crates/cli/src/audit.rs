//! `portcullis audit …`: read and verify an audit trail kept in files, offline (an auditor's
//! copy, or the server's `audit.dir`), or kept in the store's `audit_log` table
//! (`--database-url`, for `[audit] backend = "store"`). Verification needs only the public half
//! of the checkpoint key (`audit-signing.pub`, written next to the signing key).
//!
//! Exit status: 0 success (for `verify`: the log is intact), 1 a problem found, 2 bad input.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use portcullis_audit::{AuditError, Filter, Kind, Outcome, Page, Record, Report, VerifyingKey};
use portcullis_store::{Store, StoreConfig, TenantId};

/// Where the trail is.
#[derive(Debug, Args)]
pub struct AuditOptions {
    /// The audit root folder (one sub-folder per tenant).
    #[arg(long, global = true, default_value = ".portcullis/audit")]
    dir: PathBuf,
    /// Read the store's `audit_log` table at this URL (`postgres://…` or `sqlite://…`) instead
    /// of the files. The role must be able to read the table: the service role, or the owner.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// With `--database-url` naming the service role on PostgreSQL: the owner's URL, used only
    /// to check (and apply) the store's migrations when connecting.
    #[arg(long, global = true)]
    migrate_url: Option<String>,
    /// The tenant whose chain to read.
    #[arg(long, global = true)]
    tenant: Option<String>,
}

/// A trail to read: files, or the table through a store opened on a runtime of our own.
enum Trail {
    Files(PathBuf),
    Table {
        runtime: tokio::runtime::Runtime,
        store: Store,
        tenant: TenantId,
    },
}

impl Trail {
    fn open(options: &AuditOptions, tenant: &str) -> Result<Trail, String> {
        let Some(url) = &options.database_url else {
            portcullis_audit::validate_tenant(tenant).map_err(|e| e.to_string())?;
            if !options.dir.join(tenant).is_dir() {
                return Err(format!(
                    "{} holds no audit log of tenant `{tenant}`",
                    options.dir.display()
                ));
            }
            return Ok(Trail::Files(options.dir.clone()));
        };
        let tenant = TenantId::new(tenant).map_err(|e| e.to_string())?;
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if !Path::new(path).is_file() {
                return Err(format!("{path}: no such store"));
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        let config = StoreConfig {
            url: url.clone(),
            migrate_url: options.migrate_url.clone(),
            max_connections: 1,
            ..StoreConfig::default()
        };
        let store = runtime
            .block_on(Store::open(&config))
            .map_err(|e| format!("store: {e}"))?;
        Ok(Trail::Table {
            runtime,
            store,
            tenant,
        })
    }

    fn verify(&self, tenant: &str, key: &VerifyingKey) -> Result<Report, AuditError> {
        match self {
            Trail::Files(dir) => portcullis_audit::verify_dir(dir, tenant, key),
            Trail::Table {
                runtime,
                store,
                tenant,
            } => runtime.block_on(portcullis_server::audit::store::verify(store, tenant, key)),
        }
    }

    fn tail(&self, tenant: &str, count: usize) -> Result<Vec<Record>, AuditError> {
        match self {
            Trail::Files(dir) => portcullis_audit::tail(dir, tenant, count),
            Trail::Table {
                runtime,
                store,
                tenant,
            } => runtime.block_on(portcullis_server::audit::store::tail(store, tenant, count)),
        }
    }

    fn query(
        &self,
        tenant: &str,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, AuditError> {
        match self {
            Trail::Files(dir) => portcullis_audit::query(dir, tenant, filter, cursor, limit),
            Trail::Table {
                runtime,
                store,
                tenant,
            } => runtime.block_on(portcullis_server::audit::store::query(
                store, tenant, filter, cursor, limit,
            )),
        }
    }

    fn export(
        &self,
        tenant: &str,
        filter: &Filter,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, AuditError> {
        match self {
            Trail::Files(dir) => portcullis_audit::export(dir, tenant, filter, out),
            Trail::Table {
                runtime,
                store,
                tenant,
            } => {
                let mut bytes = Vec::new();
                let count = runtime.block_on(portcullis_server::audit::store::export(
                    store, tenant, filter, &mut bytes,
                ))?;
                out.write_all(&bytes).map_err(|source| AuditError::Io {
                    path: "<export output>".into(),
                    source,
                })?;
                Ok(count)
            }
        }
    }

    fn close(self) {
        if let Trail::Table { runtime, store, .. } = self {
            runtime.block_on(store.close());
        }
    }
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
    let Some(tenant) = options.tenant.clone() else {
        return fail("--tenant is required");
    };
    if options.migrate_url.is_some() && options.database_url.is_none() {
        return fail("--migrate-url goes with --database-url");
    }
    let trail = match Trail::open(&options, &tenant) {
        Ok(trail) => trail,
        Err(message) => return fail(&message),
    };
    let code = run_on(&trail, &tenant, command);
    trail.close();
    code
}

fn run_on(trail: &Trail, tenant: &str, command: AuditCommand) -> u8 {
    match command {
        AuditCommand::Verify { public_key, sealed } => {
            let key = match VerifyingKey::load(&public_key) {
                Ok(key) => key,
                Err(error) => return fail(&error.to_string()),
            };
            match trail.verify(tenant, &key) {
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
        AuditCommand::Tail { count } => match trail.tail(tenant, count) {
            Ok(records) => {
                for record in records {
                    println!("{}", serde_json::to_string(&record).unwrap_or_default());
                }
                0
            }
            Err(error) => fail(&error.to_string()),
        },
        AuditCommand::Query {
            filter,
            limit,
            cursor,
        } => {
            let filter = match filter.filter() {
                Ok(filter) => filter,
                Err(message) => return fail(&message),
            };
            match trail.query(tenant, &filter, cursor.as_deref(), limit.clamp(1, 10_000)) {
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
            match trail.export(tenant, &filter, &mut out) {
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
