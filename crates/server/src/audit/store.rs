//! The audit trail kept in the store's `audit_log` table (`[audit] backend = "store"`): the
//! writer's sink, and the reads (query, export, tail, verify) the admin API and
//! `portcullis audit … --database-url` share.
//!
//! Writing: the audit writer is a plain thread that must block until a batch is stored, and
//! the server's runtime may be a current-thread one that is itself blocked (a decision waiting
//! for buffer room, a shutdown joining the writer). So the sink does not borrow the server's
//! runtime or pool: [`StoreTrail`] runs its own thread with a small current-thread runtime and
//! its own connection pool (same URLs, same shard placement), and the writer hands it one job
//! per batch — one transaction, one multi-row INSERT on PostgreSQL. The rows go through
//! [`TenantStore::append_audit`](portcullis_store::TenantStore::append_audit), so the tenant
//! scoping and row-level security of every store write apply.
//!
//! Recovery: [`StoreOpener`] lists the store's tenants that have a stream, so the audit writer
//! opens them all at start and seals what a crash left after a stream's last checkpoint. A
//! stream the store's tenant directory does not list (a tenant from bundle folders only, or a
//! deleted one) cannot be found from here: the service names the tenants it serves at shutdown
//! ([`AuditLog::recover`](portcullis_audit::AuditLog::recover)).
//!
//! Reading never trusts the lookup columns alone: query results are parsed from the stored
//! lines and filtered again; verification reads only the lines.

use std::sync::mpsc;

use std::sync::Arc;

use portcullis_audit::{
    AuditError, Filter, LineSink, LogOpener, Page, Record, Report, SigningKey, StoreOptions,
    StreamLine, StreamLog, TenantLog, Verifier, VerifyingKey,
};
use portcullis_store::{AuditFilter, AuditLine, Store, StoreConfig, TenantId};

/// Rows read per round trip.
const PAGE_ROWS: u32 = 10_000;

/// The name verification reports give the table (locations are `audit_log:<position>`).
pub const TABLE: &str = "audit_log";

/// Connections of the writer's own pool (one writer; one spare for a reconnect).
const WRITER_CONNECTIONS: u32 = 2;

type Reply<T> = mpsc::SyncSender<Result<T, String>>;

enum Job {
    Append {
        tenant: TenantId,
        lines: Vec<AuditLine>,
        reply: Reply<()>,
    },
    Last {
        tenant: TenantId,
        reply: Reply<Option<(u64, Vec<u8>)>>,
    },
    /// The tenants of the store's directory.
    Tenants { reply: Reply<Vec<TenantId>> },
}

/// The writer side: a thread owning a runtime and a pool, fed batches by the audit writer.
/// The thread ends when the last sink (and this handle) is dropped.
#[derive(Debug, Clone)]
pub struct StoreTrail {
    jobs: mpsc::Sender<Job>,
}

impl StoreTrail {
    /// Starts the thread and connects (running the store's migrations, like any opening).
    pub async fn open(config: &StoreConfig) -> Result<StoreTrail, String> {
        let mut config = config.clone();
        config.max_connections = WRITER_CONNECTIONS;
        let (jobs, receiver) = mpsc::channel::<Job>();
        let (ready, opened) = tokio::sync::oneshot::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name("audit-store".to_owned())
            .spawn(move || serve_jobs(&config, &receiver, ready))
            .map_err(|e| format!("cannot start the audit store thread: {e}"))?;
        opened
            .await
            .map_err(|_| "the audit store thread stopped".to_owned())??;
        Ok(StoreTrail { jobs })
    }

    /// The sink of one tenant's stream.
    pub fn sink(&self, tenant: &str) -> Result<Box<dyn LineSink>, AuditError> {
        let tenant = TenantId::new(tenant).map_err(|_| AuditError::InvalidTenant {
            tenant: tenant.to_owned(),
        })?;
        Ok(Box::new(StoreSink {
            tenant,
            jobs: self.jobs.clone(),
        }))
    }

    /// The tenants in the store's directory (on every database), with a stream or not.
    fn directory(&self) -> Result<Vec<TenantId>, AuditError> {
        ask(&self.jobs, |reply| Job::Tenants { reply })
    }
}

/// The audit writer's opener over the table: one [`StreamLog`] per tenant stream.
#[derive(Debug, Clone)]
pub struct StoreOpener {
    trail: StoreTrail,
}

impl StoreOpener {
    /// Streams written through `trail`.
    pub fn new(trail: StoreTrail) -> StoreOpener {
        StoreOpener { trail }
    }
}

impl LogOpener for StoreOpener {
    fn open(
        &mut self,
        tenant: &str,
        options: &StoreOptions,
        key: Arc<SigningKey>,
    ) -> Result<Box<dyn TenantLog>, AuditError> {
        let sink = self.trail.sink(tenant)?;
        Ok(Box::new(StreamLog::open(
            tenant,
            options.clone(),
            key,
            sink,
        )?))
    }

    /// The directory's tenants whose stream holds a line.
    fn stored_tenants(&mut self) -> Result<Vec<String>, AuditError> {
        let mut tenants = Vec::new();
        for tenant in self.trail.directory()? {
            if self.has_log(tenant.as_str())? {
                tenants.push(tenant.as_str().to_owned());
            }
        }
        Ok(tenants)
    }

    fn has_log(&mut self, tenant: &str) -> Result<bool, AuditError> {
        Ok(self.trail.sink(tenant)?.last()?.is_some())
    }
}

fn serve_jobs(
    config: &StoreConfig,
    jobs: &mpsc::Receiver<Job>,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(format!(
                "cannot start the audit store runtime: {error}"
            )));
            return;
        }
    };
    let store = match runtime.block_on(Store::open(config)) {
        Ok(store) => store,
        Err(error) => {
            let _ = ready.send(Err(format!("audit store: {error}")));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Append {
                tenant,
                lines,
                reply,
            } => {
                let result = runtime
                    .block_on(store.tenant(&tenant).append_audit(&lines))
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
            Job::Last { tenant, reply } => {
                let result = runtime
                    .block_on(store.tenant(&tenant).audit_tail(1))
                    .map_err(|e| e.to_string())
                    .and_then(|lines| match lines.into_iter().next() {
                        None => Ok(None),
                        Some(line) => u64::try_from(line.position)
                            .map(|position| Some((position, line.line.into_bytes())))
                            .map_err(|_| format!("negative position {}", line.position)),
                    });
                let _ = reply.send(result);
            }
            Job::Tenants { reply } => {
                let result = runtime
                    .block_on(store.directory())
                    .map(|entries| entries.into_iter().map(|entry| entry.tenant).collect())
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
        }
    }
    runtime.block_on(store.close());
}

/// One tenant's stream in `audit_log`.
struct StoreSink {
    tenant: TenantId,
    jobs: mpsc::Sender<Job>,
}

impl StoreSink {
    fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, AuditError> {
        ask(&self.jobs, job)
    }
}

/// Hands a job to the store thread and waits for its answer.
fn ask<T>(jobs: &mpsc::Sender<Job>, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, AuditError> {
    let (reply, answer) = mpsc::sync_channel(1);
    let stopped = || AuditError::Backend {
        reason: "the audit store thread stopped".to_owned(),
    };
    jobs.send(job(reply)).map_err(|_| stopped())?;
    answer
        .recv()
        .map_err(|_| stopped())?
        .map_err(|reason| AuditError::Backend { reason })
}

fn column(value: u64) -> Result<i64, AuditError> {
    i64::try_from(value).map_err(|_| AuditError::Backend {
        reason: format!("{value} does not fit a bigint column"),
    })
}

impl LineSink for StoreSink {
    fn append(&mut self, lines: &[StreamLine]) -> Result<(), AuditError> {
        let rows = lines
            .iter()
            .map(|line| {
                Ok(AuditLine {
                    position: column(line.position)?,
                    seq: column(line.seq)?,
                    kind: line.kind.to_owned(),
                    ts_us: line.ts_us,
                    actor: line.actor.clone(),
                    action: line.action.clone(),
                    outcome: line.outcome.clone(),
                    trace_id: line.trace_id.clone(),
                    line: line.line.clone(),
                })
            })
            .collect::<Result<Vec<_>, AuditError>>()?;
        let tenant = self.tenant.clone();
        self.ask(|reply| Job::Append {
            tenant,
            lines: rows,
            reply,
        })
    }

    fn last(&mut self) -> Result<Option<(u64, Vec<u8>)>, AuditError> {
        let tenant = self.tenant.clone();
        self.ask(|reply| Job::Last { tenant, reply })
    }
}

// ------------------------------------------------------------------ reads

fn backend(error: portcullis_store::StoreError) -> AuditError {
    AuditError::Backend {
        reason: error.to_string(),
    }
}

fn is_record(line: &AuditLine) -> bool {
    line.kind != "checkpoint"
}

/// The lookup a filter asks of the table (records only: checkpoints are never query results).
fn table_filter(filter: &Filter) -> AuditFilter {
    AuditFilter {
        from_us: filter.from.map(|ts| ts.as_microsecond()),
        to_us: filter.to.map(|ts| ts.as_microsecond()),
        actor: filter.actor.clone(),
        action: filter.action.clone(),
        outcome: filter.outcome.map(|outcome| outcome.as_str().to_owned()),
        trace_id: filter.trace_id.clone(),
        kind: filter.kind.map(|kind| kind.as_str().to_owned()),
        records_only: true,
    }
}

/// A cursor of this module: `at:<position>` (positions, not sequence numbers, so it is not
/// confused with a cursor of the files).
fn parse_cursor(cursor: Option<&str>) -> Result<i64, AuditError> {
    match cursor {
        None | Some("") => Ok(0),
        Some(text) => text
            .strip_prefix("at:")
            .and_then(|position| position.parse::<i64>().ok())
            .filter(|position| *position >= 0)
            .ok_or_else(|| AuditError::InvalidCursor {
                cursor: text.to_owned(),
            }),
    }
}

/// Up to `limit` records of `tenant` matching `filter`, after `cursor`, in chain order.
pub async fn query(
    store: &Store,
    tenant: &TenantId,
    filter: &Filter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page, AuditError> {
    let mut after = parse_cursor(cursor)?;
    let limit = limit.clamp(1, 10_000);
    let lookup = table_filter(filter);
    let tenant_store = store.tenant(tenant);
    // The columns match nearly every row the lines match: one row more than asked tells
    // whether there is a next page.
    let page_rows = u32::try_from(limit + 1).unwrap_or(PAGE_ROWS).min(PAGE_ROWS);
    let mut records = Vec::new();
    let mut next_cursor = None;
    'pages: loop {
        let rows = tenant_store
            .audit_query(&lookup, after, page_rows)
            .await
            .map_err(backend)?;
        let full = rows.len() == page_rows as usize;
        for row in &rows {
            if records.len() == limit {
                next_cursor = Some(format!("at:{after}"));
                break 'pages;
            }
            after = row.position;
            if let Ok(record) = Record::from_line(row.line.as_bytes())
                && filter.matches(&record)
            {
                records.push(record);
            }
        }
        if !full {
            break;
        }
    }
    Ok(Page {
        records,
        next_cursor,
    })
}

/// Writes `tenant`'s matching records to `out` as JSON lines (the stored canonical lines); with
/// an empty filter every line, checkpoints included, so the export verifies. Returns the number
/// of records written.
pub async fn export(
    store: &Store,
    tenant: &TenantId,
    filter: &Filter,
    out: &mut Vec<u8>,
) -> Result<u64, AuditError> {
    let tenant_store = store.tenant(tenant);
    let everything = *filter == Filter::default();
    let lookup = table_filter(filter);
    let mut after = 0;
    let mut written = 0;
    loop {
        let rows = if everything {
            tenant_store.audit_lines(after, PAGE_ROWS).await
        } else {
            tenant_store.audit_query(&lookup, after, PAGE_ROWS).await
        }
        .map_err(backend)?;
        for row in &rows {
            after = row.position;
            if !everything {
                match Record::from_line(row.line.as_bytes()) {
                    Ok(record) if filter.matches(&record) => {}
                    _ => continue,
                }
            }
            out.extend_from_slice(row.line.as_bytes());
            out.push(b'\n');
            if is_record(row) {
                written += 1;
            }
        }
        if rows.len() < PAGE_ROWS as usize {
            return Ok(written);
        }
    }
}

/// The last `count` records of `tenant`, oldest first.
pub async fn tail(
    store: &Store,
    tenant: &TenantId,
    count: usize,
) -> Result<Vec<Record>, AuditError> {
    let tenant_store = store.tenant(tenant);
    // Checkpoints are interleaved: read a little more than asked, and more if needed.
    let mut window = count.saturating_add(16).min(1 << 20);
    loop {
        let rows = tenant_store
            .audit_tail(u32::try_from(window).unwrap_or(u32::MAX))
            .await
            .map_err(backend)?;
        let exhausted = rows.len() < window;
        let mut records: Vec<Record> = rows
            .iter()
            .rev()
            .filter(|row| is_record(row))
            .take(count)
            .filter_map(|row| Record::from_line(row.line.as_bytes()).ok())
            .collect();
        if records.len() >= count || exhausted || window >= 1 << 20 {
            records.reverse();
            return Ok(records);
        }
        window = window.saturating_mul(4).min(1 << 20);
    }
}

/// Verifies `tenant`'s stream in the table: every line in position order through the
/// [`Verifier`]; a problem's location is `audit_log:<position>`.
pub async fn verify(
    store: &Store,
    tenant: &TenantId,
    key: &VerifyingKey,
) -> Result<Report, AuditError> {
    let tenant_store = store.tenant(tenant);
    let mut verifier = Verifier::new(tenant.as_str(), key);
    verifier.begin_segment(TABLE);
    let mut after = 0;
    loop {
        let rows = tenant_store
            .audit_lines(after, PAGE_ROWS)
            .await
            .map_err(backend)?;
        for row in &rows {
            after = row.position;
            verifier.feed_line(
                u64::try_from(row.position).unwrap_or(0),
                row.line.as_bytes(),
            );
        }
        if rows.len() < PAGE_ROWS as usize {
            return Ok(verifier.finish());
        }
    }
}
