//! The group-commit writer used by the servers: [`AuditLog`].
//!
//! Owns the bounded buffer, the single writer thread (which assigns `seq`/`prev` in write order
//! for every tenant, so stored order is chain order; the tenant logs are files or line streams,
//! see [`LogOpener`]), the per-tenant policies (masking, sampling, full-buffer behaviour),
//! durability acknowledgements and the recovery of every stored tenant log when the writer
//! starts (so a tail a crash left unsealed is sealed at once, not at the tenant's next write,
//! and the log is closed with the others at shutdown). Records are masked on the caller's
//! thread before they are queued. It must not drop a record silently: a record that cannot be
//! queued is refused to the caller, who then fails the decision closed.
//!
//! Durability: [`AuditLog::append_durable`] returns only after the record is fsynced (for a
//! line stream: after its sink stored the batch).
//! [`AuditLog::submit`] returns once queued; the writer fsyncs every `flush_interval`, so a
//! crash loses at most the decisions of the last interval.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, oneshot};

use crate::AuditError;
use crate::chain::TenantLog;
use crate::keys::SigningKey;
use crate::mask::{Masker, MaskingConfig, derive_pseudonym_key};
use crate::record::{Kind, Outcome, Record};
use crate::store::{FileLog, Receipt, StoreOptions, list_segments};
use crate::stream::{LineSink, StreamLog};

/// Opens tenants' logs for the writer: every stored log when the writer starts (see
/// [`stored_tenants`](LogOpener::stored_tenants)), the logs [`AuditLog::recover`] names, and any
/// other the first time its tenant is written. Opening recovers a log, which seals with a
/// checkpoint the records a crash left after the last one.
pub trait LogOpener: Send + 'static {
    /// Opens (and recovers) `tenant`'s log.
    fn open(
        &mut self,
        tenant: &str,
        options: &StoreOptions,
        key: Arc<SigningKey>,
    ) -> Result<Box<dyn TenantLog>, AuditError>;

    /// The tenants whose logs are stored, opened (so recovered and sealed) before the writer
    /// starts. The default lists none: logs are then recovered when first written or named to
    /// [`AuditLog::recover`].
    fn stored_tenants(&mut self) -> Result<Vec<String>, AuditError> {
        Ok(Vec::new())
    }

    /// Whether `tenant` has a stored log ([`AuditLog::recover`] opens only those, so that
    /// recovering never creates a log). The default, for an opener that cannot tell, is no.
    fn has_log(&mut self, tenant: &str) -> Result<bool, AuditError> {
        let _ = tenant;
        Ok(false)
    }
}

/// Tenant logs as segment files under a root folder ([`FileLog`]).
#[derive(Debug, Clone)]
pub struct FileOpener {
    root: PathBuf,
}

impl FileOpener {
    /// Files under `root` (one folder per tenant).
    pub fn new(root: impl Into<PathBuf>) -> FileOpener {
        FileOpener { root: root.into() }
    }
}

impl LogOpener for FileOpener {
    fn open(
        &mut self,
        tenant: &str,
        options: &StoreOptions,
        key: Arc<SigningKey>,
    ) -> Result<Box<dyn TenantLog>, AuditError> {
        Ok(Box::new(FileLog::open(
            &self.root,
            tenant,
            options.clone(),
            key,
        )?))
    }

    /// Every folder under the root named like a tenant that holds at least one segment (other
    /// folders are left alone: opening one would create a log).
    fn stored_tenants(&mut self) -> Result<Vec<String>, AuditError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(AuditError::io(&self.root, source)),
        };
        let mut tenants = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| AuditError::io(&self.root, source))?;
            let Ok(tenant) = entry.file_name().into_string() else {
                continue;
            };
            if crate::validate_tenant(&tenant).is_ok()
                && entry.file_type().is_ok_and(|kind| kind.is_dir())
                && self.has_log(&tenant)?
            {
                tenants.push(tenant);
            }
        }
        tenants.sort();
        Ok(tenants)
    }

    fn has_log(&mut self, tenant: &str) -> Result<bool, AuditError> {
        crate::validate_tenant(tenant)?;
        Ok(!list_segments(&self.root.join(tenant))?.is_empty())
    }
}

/// Tenant logs as line streams ([`StreamLog`]); the function gives the sink of a tenant.
pub struct StreamOpener<F>(pub F);

impl<F> std::fmt::Debug for StreamOpener<F> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StreamOpener")
            .finish_non_exhaustive()
    }
}

impl<F> LogOpener for StreamOpener<F>
where
    F: FnMut(&str) -> Result<Box<dyn LineSink>, AuditError> + Send + 'static,
{
    fn open(
        &mut self,
        tenant: &str,
        options: &StoreOptions,
        key: Arc<SigningKey>,
    ) -> Result<Box<dyn TenantLog>, AuditError> {
        crate::validate_tenant(tenant)?;
        let sink = (self.0)(tenant)?;
        Ok(Box::new(StreamLog::open(
            tenant,
            options.clone(),
            key,
            sink,
        )?))
    }

    /// Whether the tenant's stream holds any line. (The sink function cannot list tenants:
    /// [`stored_tenants`](LogOpener::stored_tenants) keeps its default; an opener over a store
    /// that can list them implements it.)
    fn has_log(&mut self, tenant: &str) -> Result<bool, AuditError> {
        crate::validate_tenant(tenant)?;
        Ok((self.0)(tenant)?.last()?.is_some())
    }
}

/// What `submit` does when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FullPolicy {
    /// Wait up to `max_wait_ms` for room, then fail.
    Block {
        /// Longest wait, milliseconds.
        max_wait_ms: u64,
    },
    /// Fail at once.
    Deny,
}

/// Per-tenant audit policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantPolicy {
    /// Masking rules and detectors.
    pub masking: MaskingConfig,
    /// Fraction of allow decisions recorded (0.0..=1.0); denies, errors and changes always are.
    pub sample_allows: f64,
    /// Full-buffer behaviour.
    pub on_full: FullPolicy,
}

impl Default for TenantPolicy {
    fn default() -> TenantPolicy {
        TenantPolicy {
            masking: MaskingConfig::with_all_detectors(),
            sample_allows: 1.0,
            on_full: FullPolicy::Block { max_wait_ms: 100 },
        }
    }
}

/// Configuration of an [`AuditLog`]. `root` is used by the files backend
/// ([`AuditLog::open`]) only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Root directory; one sub-directory per tenant.
    pub root: PathBuf,
    /// Storage options.
    #[serde(default)]
    pub store: StoreOptions,
    /// Buffer capacity (decision records).
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Group-commit interval, milliseconds.
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// Policy of tenants without their own entry.
    #[serde(default)]
    pub default_policy: TenantPolicy,
    /// Per-tenant policies.
    #[serde(default)]
    pub tenants: HashMap<String, TenantPolicy>,
}

fn default_capacity() -> usize {
    65_536
}

fn default_flush_ms() -> u64 {
    10
}

impl AuditConfig {
    /// Defaults under `root`.
    pub fn new(root: impl Into<PathBuf>) -> AuditConfig {
        AuditConfig {
            root: root.into(),
            store: StoreOptions::default(),
            capacity: default_capacity(),
            flush_interval_ms: default_flush_ms(),
            default_policy: TenantPolicy::default(),
            tenants: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct TenantState {
    tenant: Arc<str>,
    /// The tenant's number in `Shared::names`: queued decisions carry it instead of the id.
    slot: u32,
    policy: TenantPolicy,
    masker: Masker,
}

/// Where a durable append's result goes.
type DurableReply = oneshot::Sender<Result<Receipt, AuditError>>;

enum Item {
    /// A masked decision, encoded by the submitter except for its chain fields
    /// ([`Record::encode_tail`]): the writer only adds `seq`/`prev`, hashes and writes. The
    /// encoded bytes are `Queue::bytes[start..end]`: queued decisions share one buffer, so no
    /// allocation is made per record and none crosses from the submitters to the writer.
    Decision {
        /// The tenant's slot in `Shared::names`.
        slot: u32,
        kind: Kind,
        start: usize,
        end: usize,
    },
    Durable(Box<Record>, oneshot::Sender<Result<Receipt, AuditError>>),
    Flush(oneshot::Sender<Result<(), AuditError>>),
    /// Open the stored logs of these tenants that are not open yet ([`AuditLog::recover`]).
    Recover(Vec<String>, oneshot::Sender<Result<(), AuditError>>),
}

#[derive(Default)]
struct Queue {
    items: Vec<Item>,
    /// The encoded tails of the queued decisions, back to back.
    bytes: Vec<u8>,
    closed: bool,
    /// Durable appends and flushes waiting in `items`: they wake the writer at once.
    urgent: usize,
    /// The writer sleeps with nothing to write: the next record wakes it.
    idle: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    permits: Semaphore,
    capacity: usize,
    /// Queued decision records that wake the writer before the commit interval is up.
    wake_batch: usize,
    tenants: RwLock<HashMap<String, Arc<TenantState>>>,
    /// Every tenant seen so far, by slot (slots are never reused).
    names: RwLock<Vec<Arc<str>>>,
    /// Slot by tenant id.
    slots: Mutex<HashMap<String, u32>>,
    configured: RwLock<HashMap<String, TenantPolicy>>,
    default_policy: TenantPolicy,
    master_secret: Vec<u8>,
    failed: Mutex<Option<String>>,
    /// Set once `failed` holds a reason: lets submitters skip the lock on the hot path.
    has_failed: AtomicBool,
    stopped: AtomicBool,
    paused: AtomicBool,
}

/// The audit log of all tenants: masking, bounded buffer, group-commit writer thread.
pub struct AuditLog {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AuditLog")
            .field("buffered", &self.buffered())
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer over segment files under `config.root`. `pseudonym_secret` is the
    /// master secret from which each tenant's pseudonym key is derived; `key` signs checkpoints.
    pub fn open(
        config: AuditConfig,
        key: SigningKey,
        pseudonym_secret: &[u8],
    ) -> Result<AuditLog, AuditError> {
        std::fs::create_dir_all(&config.root)
            .map_err(|source| AuditError::io(&config.root, source))?;
        let opener = FileOpener::new(config.root.clone());
        AuditLog::open_with(config, key, pseudonym_secret, opener)
    }

    /// Starts the writer over the tenant logs `opener` opens (files, line streams...);
    /// `config.root` is not used.
    ///
    /// Before it returns, every log the opener lists as stored is opened, which recovers it:
    /// a log a crash left with records after its last checkpoint is sealed with a checkpoint
    /// now, whether or not its tenant is ever written again, and [`shutdown`](AuditLog::shutdown)
    /// closes it cleanly. A log that cannot be recovered is an error (nothing starts).
    pub fn open_with(
        config: AuditConfig,
        key: SigningKey,
        pseudonym_secret: &[u8],
        opener: impl LogOpener,
    ) -> Result<AuditLog, AuditError> {
        if config.capacity == 0 {
            return Err(AuditError::Config {
                reason: "capacity must be at least 1".to_owned(),
            });
        }
        for (tenant, policy) in config
            .tenants
            .iter()
            .chain([(&"default".to_owned(), &config.default_policy)])
        {
            Masker::new(&policy.masking, [0; 32])?;
            if !(0.0..=1.0).contains(&policy.sample_allows) {
                return Err(AuditError::Config {
                    reason: format!("tenant {tenant}: sample_allows must be within 0.0..=1.0"),
                });
            }
        }
        let mut opener = opener;
        let key = Arc::new(key);
        let mut logs = HashMap::new();
        for tenant in opener.stored_tenants()? {
            let log = opener.open(&tenant, &config.store, Arc::clone(&key))?;
            logs.insert(tenant, log);
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            permits: Semaphore::new(config.capacity),
            capacity: config.capacity,
            wake_batch: (config.capacity / 2).clamp(1, 4096),
            tenants: RwLock::new(HashMap::new()),
            names: RwLock::new(Vec::new()),
            slots: Mutex::new(HashMap::new()),
            configured: RwLock::new(config.tenants.clone()),
            default_policy: config.default_policy.clone(),
            master_secret: pseudonym_secret.to_vec(),
            failed: Mutex::new(None),
            has_failed: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            paused: AtomicBool::new(false),
        });
        let writer = Writer {
            shared: Arc::clone(&shared),
            opener: Box::new(opener),
            options: config.store,
            key,
            flush_interval: Duration::from_millis(config.flush_interval_ms.max(1)),
            logs,
        };
        let thread = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| AuditError::Io {
                path: PathBuf::from("<audit-writer thread>"),
                source,
            })?;
        Ok(AuditLog {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Replaces a tenant's policy (validated first).
    pub fn set_tenant_policy(&self, tenant: &str, policy: TenantPolicy) -> Result<(), AuditError> {
        crate::validate_tenant(tenant)?;
        let state = Arc::new(self.shared.build_state(tenant, policy.clone())?);
        if let Ok(mut configured) = self.shared.configured.write() {
            configured.insert(tenant.to_owned(), policy);
        }
        if let Ok(mut tenants) = self.shared.tenants.write() {
            tenants.insert(tenant.to_owned(), state);
        }
        Ok(())
    }

    /// Test hook: while paused the writer drains nothing (to exercise full-buffer policies).
    #[doc(hidden)]
    pub fn pause_writer_for_tests(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Records currently buffered (for a gauge).
    pub fn buffered(&self) -> usize {
        self.shared
            .capacity
            .saturating_sub(self.shared.permits.available_permits())
    }

    /// Buffer capacity.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Whether the caller should record this decision: changes, denies and errors always; allows
    /// with the tenant's `sample_allows` probability, decided deterministically from the id.
    pub fn should_record(&self, record: &Record) -> bool {
        match self.shared.state(&record.tenant) {
            Ok(state) => should_record(state.policy.sample_allows, record),
            Err(_) => true,
        }
    }

    /// Queues a decision record (masked first; an allow the tenant's sampling leaves out is
    /// accepted without being queued). Applies the tenant's full-buffer policy; an error means
    /// the record was not accepted and the decision must be denied.
    pub async fn submit(&self, record: Record) -> Result<(), AuditError> {
        let prepared = self.prepare(record)?;
        let permit = match prepared.state.policy.on_full {
            FullPolicy::Deny => self.shared.permits.try_acquire().ok(),
            FullPolicy::Block { max_wait_ms } => {
                match tokio::time::timeout(
                    Duration::from_millis(max_wait_ms),
                    self.shared.permits.acquire(),
                )
                .await
                {
                    Ok(Ok(permit)) => Some(permit),
                    _ => None,
                }
            }
        };
        let Some(permit) = permit else {
            return Err(self.full(&prepared));
        };
        permit.forget();
        self.shared.push_decision(&prepared)
    }

    /// Queues a decision record without waiting (sampling as in [`AuditLog::submit`]): fails at
    /// once when the buffer is full.
    pub fn try_submit(&self, record: Record) -> Result<(), AuditError> {
        let prepared = self.prepare(record)?;
        self.try_queue(&prepared)
    }

    /// Masks and encodes a decision record for [`AuditLog::try_queue`], looking the tenant up
    /// once. The record is consumed: what reaches the queue is its masked encoding only. An
    /// allow the tenant's sampling leaves out is neither masked nor encoded.
    pub fn prepare(&self, mut record: Record) -> Result<PreparedDecision, AuditError> {
        self.prepare_in_place(&mut record)
    }

    /// Like [`AuditLog::prepare`] for a record the caller keeps: it is masked in place (so its
    /// fields must all be set again before it is used for another decision). Callers that
    /// record many decisions reuse one record and its allocations this way.
    pub fn prepare_in_place(&self, record: &mut Record) -> Result<PreparedDecision, AuditError> {
        let state = self.shared.state(&record.tenant)?;
        self.shared.check_failed()?;
        let sampled_out = !should_record(state.policy.sample_allows, record);
        let mut tail = Vec::new();
        if !sampled_out {
            state.masker.apply(record);
            tail = SCRATCH
                .try_with(|scratch| {
                    scratch
                        .try_borrow_mut()
                        .map(|mut buffer| std::mem::take(&mut *buffer))
                })
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            tail.clear();
            record.encode_tail(&mut tail);
        }
        Ok(PreparedDecision {
            state,
            kind: record.kind,
            tail,
            sampled_out,
        })
    }

    /// Queues a prepared decision if the buffer has room (`BufferFull` otherwise: the caller
    /// may wait and try again, or refuse the decision). A decision the tenant's sampling leaves
    /// out is accepted without being queued.
    pub fn try_queue(&self, prepared: &PreparedDecision) -> Result<(), AuditError> {
        if prepared.sampled_out {
            return Ok(());
        }
        match self.shared.permits.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(self.full(prepared)),
        }
        self.shared.push_decision(prepared)
    }

    fn full(&self, prepared: &PreparedDecision) -> AuditError {
        AuditError::BufferFull {
            tenant: prepared.state.tenant.to_string(),
            capacity: self.shared.capacity,
        }
    }

    /// Appends an administrative change and returns once it is fsynced. Changes bypass the
    /// buffer limit: they are rare and must never be refused for lack of room.
    pub async fn append_durable(&self, record: Record) -> Result<Receipt, AuditError> {
        let state = self.shared.state(&record.tenant)?;
        let record = self.shared.prepare(&state, record)?;
        let (sender, receiver) = oneshot::channel();
        self.shared.push(Item::Durable(Box::new(record), sender))?;
        receiver.await.map_err(|_| AuditError::Closed {
            reason: "writer stopped".to_owned(),
        })?
    }

    /// Waits until everything queued before the call is written and fsynced.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (sender, receiver) = oneshot::channel();
        self.shared.push(Item::Flush(sender))?;
        receiver.await.map_err(|_| AuditError::Closed {
            reason: "writer stopped".to_owned(),
        })?
    }

    /// Opens the stored logs of `tenants` that are not open yet, as if the writer had listed
    /// them at start: opening seals with a checkpoint what a crash left after a log's last one,
    /// and [`shutdown`](AuditLog::shutdown) then closes them with the others. For openers that
    /// cannot list their logs (a store whose tenants the caller knows better); tenants without
    /// a stored log are skipped, so no log is created. Returns the first failure to open one.
    pub async fn recover(
        &self,
        tenants: impl IntoIterator<Item = String>,
    ) -> Result<(), AuditError> {
        let (sender, receiver) = oneshot::channel();
        self.shared
            .push(Item::Recover(tenants.into_iter().collect(), sender))?;
        receiver.await.map_err(|_| AuditError::Closed {
            reason: "writer stopped".to_owned(),
        })?
    }

    /// Stops accepting records, writes everything queued, writes a final checkpoint for every
    /// open tenant log that does not end with one (every stored log is open, see
    /// [`open_with`](AuditLog::open_with)), fsyncs and joins the writer thread. Blocks; from
    /// async code call it in `spawn_blocking` or after the runtime's work is done.
    pub fn shutdown(&self) -> Result<(), AuditError> {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.closed = true;
        }
        self.shared.wake.notify_one();
        let handle = self.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(handle) = handle {
            handle.join().map_err(|_| AuditError::Closed {
                reason: "writer thread panicked".to_owned(),
            })?;
        }
        match self
            .shared
            .failed
            .lock()
            .ok()
            .and_then(|failed| failed.clone())
        {
            Some(reason) => Err(AuditError::Closed { reason }),
            None => Ok(()),
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if !self.shared.stopped.load(Ordering::Acquire) {
            let _ = self.shutdown();
        }
    }
}

thread_local! {
    /// A submitter thread's encoding buffer, reused from one decision to the next.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A decision record masked and encoded for the queue ([`AuditLog::prepare`]).
pub struct PreparedDecision {
    state: Arc<TenantState>,
    kind: Kind,
    tail: Vec<u8>,
    sampled_out: bool,
}

impl PreparedDecision {
    /// Whether the tenant's sampling leaves this decision out of the trail.
    pub fn sampled_out(&self) -> bool {
        self.sampled_out
    }

    /// The tenant's full-buffer policy.
    pub fn on_full(&self) -> &FullPolicy {
        &self.state.policy.on_full
    }
}

impl std::fmt::Debug for PreparedDecision {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PreparedDecision")
            .field("tenant", &self.state.tenant)
            .field("bytes", &self.tail.len())
            .field("sampled_out", &self.sampled_out)
            .finish()
    }
}

impl Drop for PreparedDecision {
    fn drop(&mut self) {
        // Hand the buffer back to this thread for its next decision.
        let buffer = std::mem::take(&mut self.tail);
        let _ = SCRATCH.try_with(|scratch| {
            if let Ok(mut slot) = scratch.try_borrow_mut()
                && slot.capacity() < buffer.capacity()
            {
                *slot = buffer;
            }
        });
    }
}

/// How a decision record names a temporary grant among its deciding statements
/// (`grant:<access request id>`): an allow it names is never sampled out.
pub const GRANT_STATEMENT: &str = "grant:";

/// Sampling rule shared by [`AuditLog::should_record`] and callers without a log: changes,
/// denies and allows by a temporary grant always, other allows as `sample_allows` says.
pub fn should_record(sample_allows: f64, record: &Record) -> bool {
    if record.kind == Kind::Change || record.outcome != Outcome::Allow || sample_allows >= 1.0 {
        return true;
    }
    // Every use of temporary (break-glass) access is on record, whatever the sampling.
    if record
        .statements
        .iter()
        .any(|statement| statement.starts_with(GRANT_STATEMENT))
    {
        return true;
    }
    if sample_allows <= 0.0 {
        return false;
    }
    let digest = crate::record::hash_line(record.id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let unit = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
    unit < sample_allows
}

impl Shared {
    fn build_state(&self, tenant: &str, policy: TenantPolicy) -> Result<TenantState, AuditError> {
        let masker = Masker::new(
            &policy.masking,
            derive_pseudonym_key(&self.master_secret, tenant),
        )?;
        let (slot, tenant) = self.slot(tenant)?;
        Ok(TenantState {
            tenant,
            slot,
            policy,
            masker,
        })
    }

    /// The tenant's slot and shared id, given on first sight.
    fn slot(&self, tenant: &str) -> Result<(u32, Arc<str>), AuditError> {
        let mut names = self.names.write().map_err(|_| AuditError::Closed {
            reason: "tenant table poisoned".to_owned(),
        })?;
        let mut slots = self.slots.lock().map_err(|_| AuditError::Closed {
            reason: "tenant table poisoned".to_owned(),
        })?;
        if let Some(&slot) = slots.get(tenant) {
            return Ok((slot, Arc::clone(&names[slot as usize])));
        }
        let slot = u32::try_from(names.len()).map_err(|_| AuditError::Closed {
            reason: "too many tenants".to_owned(),
        })?;
        let name: Arc<str> = Arc::from(tenant);
        names.push(Arc::clone(&name));
        slots.insert(tenant.to_owned(), slot);
        Ok((slot, name))
    }

    fn state(&self, tenant: &str) -> Result<Arc<TenantState>, AuditError> {
        if let Some(state) = self
            .tenants
            .read()
            .ok()
            .and_then(|tenants| tenants.get(tenant).cloned())
        {
            return Ok(state);
        }
        crate::validate_tenant(tenant)?;
        let policy = self
            .configured
            .read()
            .ok()
            .and_then(|configured| configured.get(tenant).cloned())
            .unwrap_or_else(|| self.default_policy.clone());
        let state = Arc::new(self.build_state(tenant, policy)?);
        if let Ok(mut tenants) = self.tenants.write() {
            tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::clone(&state));
        }
        Ok(state)
    }

    fn check_failed(&self) -> Result<(), AuditError> {
        if self.has_failed.load(Ordering::Acquire)
            && let Some(reason) = self.failed.lock().ok().and_then(|failed| failed.clone())
        {
            return Err(AuditError::Closed { reason });
        }
        Ok(())
    }

    fn prepare(&self, state: &TenantState, mut record: Record) -> Result<Record, AuditError> {
        self.check_failed()?;
        state.masker.apply(&mut record);
        Ok(record)
    }

    /// Appends a prepared decision to the queue; its permit is already taken (and is given
    /// back if the queue refuses it).
    fn push_decision(&self, prepared: &PreparedDecision) -> Result<(), AuditError> {
        let result = self.push_with(|queue| {
            let start = queue.bytes.len();
            queue.bytes.extend_from_slice(&prepared.tail);
            Item::Decision {
                slot: prepared.state.slot,
                kind: prepared.kind,
                start,
                end: queue.bytes.len(),
            }
        });
        result.inspect_err(|_| self.permits.add_permits(1))
    }

    fn push(&self, item: Item) -> Result<(), AuditError> {
        self.push_with(|_| item)
    }

    /// Queues the item `make` builds under the queue lock, and wakes the writer when the item
    /// is urgent, the writer is idle or a batch is full.
    fn push_with(&self, make: impl FnOnce(&mut Queue) -> Item) -> Result<(), AuditError> {
        let mut queue = self.queue.lock().map_err(|_| AuditError::Closed {
            reason: "queue poisoned".to_owned(),
        })?;
        if queue.closed {
            return Err(AuditError::Closed {
                reason: "audit log is shut down".to_owned(),
            });
        }
        let item = make(&mut queue);
        let urgent = !matches!(item, Item::Decision { .. });
        queue.items.push(item);
        if urgent {
            queue.urgent += 1;
        }
        let wake = urgent || queue.idle || queue.items.len() == self.wake_batch;
        if wake {
            queue.idle = false;
        }
        drop(queue);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Encoded bytes a batch buffer keeps between commits (about 4,500 decisions).
const KEEP_BATCH_BYTES: usize = 2 << 20;
/// Items a batch list keeps between commits.
const KEEP_BATCH_ITEMS: usize = 8192;
/// Decisions the writer appends before it offers its core to other threads: on a busy core
/// a whole commit's worth (hundreds of records, most of a millisecond) at once would hold
/// up every request waiting for that core.
const YIELD_EVERY: usize = 128;

struct Writer {
    shared: Arc<Shared>,
    opener: Box<dyn LogOpener>,
    options: StoreOptions,
    key: Arc<SigningKey>,
    flush_interval: Duration,
    logs: HashMap<String, Box<dyn TenantLog>>,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<Item> = Vec::with_capacity(4096);
        let mut bytes: Vec<u8> = Vec::with_capacity(4096 * 448);
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut last_sync = Instant::now();
        let mut last_tick = Instant::now();
        let mut durable: Vec<(DurableReply, Result<Receipt, AuditError>)> = Vec::new();
        let mut flushes: Vec<oneshot::Sender<Result<(), AuditError>>> = Vec::new();
        loop {
            let closed = {
                let Ok(mut queue) = self.shared.queue.lock() else {
                    break;
                };
                // Group commit: decision records wait for the next commit (at most the flush
                // interval) unless enough of them pile up; durable appends and flushes are
                // written at once. Waking the writer for every record would cost a context
                // switch per decision on a busy core.
                while !queue.closed {
                    if self.shared.paused.load(Ordering::Acquire) {
                        match self
                            .shared
                            .wake
                            .wait_timeout(queue, Duration::from_millis(1))
                        {
                            Ok((guard, _)) => queue = guard,
                            Err(_) => return,
                        }
                        continue;
                    }
                    if queue.urgent > 0 || queue.items.len() >= self.shared.wake_batch {
                        break;
                    }
                    let dirty = self.logs.values().any(|log| log.is_dirty());
                    let idle = queue.items.is_empty() && !dirty;
                    let wait = if idle {
                        Duration::from_millis(500)
                    } else {
                        self.flush_interval.saturating_sub(last_sync.elapsed())
                    };
                    if wait.is_zero() {
                        break;
                    }
                    queue.idle = idle;
                    match self.shared.wake.wait_timeout(queue, wait) {
                        Ok((guard, timeout)) => {
                            queue = guard;
                            queue.idle = false;
                            if timeout.timed_out() {
                                // Time-driven work (commit, checkpoints, rotation) is due.
                                break;
                            }
                        }
                        Err(_) => return,
                    }
                }
                queue.urgent = 0;
                std::mem::swap(&mut batch, &mut queue.items);
                std::mem::swap(&mut bytes, &mut queue.bytes);
                queue.closed
            };
            let mut decisions = 0;
            let mut failure: Option<String> = None;
            // Tenants seen since the last batch (slots only grow).
            if let Ok(shared) = self.shared.names.read()
                && shared.len() > names.len()
            {
                names.extend(shared[names.len()..].iter().cloned());
            }
            for item in batch.drain(..) {
                match item {
                    Item::Decision {
                        slot,
                        kind,
                        start,
                        end,
                    } => {
                        decisions += 1;
                        if decisions % YIELD_EVERY == 0 {
                            std::thread::yield_now();
                        }
                        let tail = bytes.get(start..end).unwrap_or_default();
                        let result = match names.get(slot as usize) {
                            Some(tenant) => self
                                .log_for(tenant)
                                .and_then(|log| log.append_tail(kind, tail)),
                            None => Err(AuditError::Closed {
                                reason: format!("unknown tenant slot {slot}"),
                            }),
                        };
                        if let Err(error) = result {
                            failure.get_or_insert_with(|| error.to_string());
                        }
                    }
                    Item::Durable(mut record, sender) => {
                        let result = self.append(&mut record).map(|(seq, hash)| Receipt {
                            tenant: record.tenant.clone(),
                            seq,
                            hash: hex::encode(hash),
                        });
                        if let Err(error) = &result {
                            failure.get_or_insert_with(|| error.to_string());
                        }
                        durable.push((sender, result));
                    }
                    Item::Flush(sender) => flushes.push(sender),
                    Item::Recover(tenants, sender) => {
                        let _ = sender.send(self.recover(&tenants));
                    }
                }
            }
            bytes.clear();
            // A burst may have grown the batch buffers far beyond a normal commit's: give the
            // memory back rather than keep the peak for the life of the process.
            if bytes.capacity() > KEEP_BATCH_BYTES {
                bytes.shrink_to(KEEP_BATCH_BYTES);
            }
            if batch.capacity() > KEEP_BATCH_ITEMS {
                batch.shrink_to(KEEP_BATCH_ITEMS);
            }
            if decisions > 0 {
                self.shared.permits.add_permits(decisions);
            }
            let due = last_sync.elapsed() >= self.flush_interval;
            if !durable.is_empty() || !flushes.is_empty() || due || closed {
                let synced = self.sync_all();
                last_sync = Instant::now();
                if let Err(error) = &synced {
                    failure.get_or_insert_with(|| error.to_string());
                }
                // Refuse new records before anyone hears of the failure.
                if let Some(reason) = failure.take() {
                    self.fail(reason);
                }
                for (sender, result) in durable.drain(..) {
                    let result = match (&synced, result) {
                        (Err(error), Ok(_)) => Err(AuditError::Closed {
                            reason: format!("could not make the records durable: {error}"),
                        }),
                        (_, result) => result,
                    };
                    let _ = sender.send(result);
                }
                for sender in flushes.drain(..) {
                    let result = match &synced {
                        Ok(()) => Ok(()),
                        Err(error) => Err(AuditError::Closed {
                            reason: format!("could not make the records durable: {error}"),
                        }),
                    };
                    let _ = sender.send(result);
                }
            }
            if let Some(reason) = failure {
                self.fail(reason);
            }
            if last_tick.elapsed() >= Duration::from_millis(200) {
                last_tick = Instant::now();
                for log in self.logs.values_mut() {
                    if let Err(error) = log.tick() {
                        tracing::error!(%error, tenant = log.tenant(), "audit: checkpoint or rotation failed");
                    }
                }
            }
            if closed {
                let still_queued = self
                    .shared
                    .queue
                    .lock()
                    .map(|queue| !queue.items.is_empty())
                    .unwrap_or(false);
                if !still_queued {
                    break;
                }
            }
        }
        for (tenant, log) in self.logs.drain() {
            if let Err(error) = log.close() {
                tracing::error!(%error, tenant, "audit: closing a tenant log failed");
                if let Ok(mut failed) = self.shared.failed.lock() {
                    failed.get_or_insert(error.to_string());
                    self.shared.has_failed.store(true, Ordering::Release);
                }
            }
        }
        self.shared.stopped.store(true, Ordering::Release);
    }

    /// From now on every record is refused (fail closed).
    fn fail(&self, reason: String) {
        tracing::error!(%reason, "audit writer failed; refusing further records");
        if let Ok(mut failed) = self.shared.failed.lock() {
            failed.get_or_insert(reason);
            self.shared.has_failed.store(true, Ordering::Release);
        }
    }

    fn append(&mut self, record: &mut Record) -> Result<(u64, crate::record::Hash), AuditError> {
        self.log_for(&record.tenant)?.append(record)
    }

    /// Opens the stored logs of `tenants` not open yet (recovering them); the first failure.
    fn recover(&mut self, tenants: &[String]) -> Result<(), AuditError> {
        let mut first_error = None;
        for tenant in tenants {
            if self.logs.contains_key(tenant) {
                continue;
            }
            let opened = match self.opener.has_log(tenant) {
                Ok(true) => self
                    .opener
                    .open(tenant, &self.options, Arc::clone(&self.key))
                    .map(Some),
                Ok(false) => Ok(None),
                Err(error) => Err(error),
            };
            match opened {
                Ok(Some(log)) => {
                    self.logs.insert(tenant.clone(), log);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(%error, tenant, "audit: cannot recover a tenant log");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The tenant's log, opened (with crash recovery) on first use.
    fn log_for(&mut self, tenant: &str) -> Result<&mut dyn TenantLog, AuditError> {
        if !self.logs.contains_key(tenant) {
            let log = self
                .opener
                .open(tenant, &self.options, Arc::clone(&self.key))?;
            self.logs.insert(tenant.to_owned(), log);
        }
        match self.logs.get_mut(tenant) {
            Some(log) => Ok(log.as_mut()),
            None => Err(AuditError::Closed {
                reason: "tenant log vanished".to_owned(),
            }),
        }
    }

    fn sync_all(&mut self) -> Result<(), AuditError> {
        let mut first_error = None;
        for log in self.logs.values_mut() {
            if let Err(error) = log.sync() {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
