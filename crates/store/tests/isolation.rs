//! Issue 4, isolation test (d): a randomized concurrent workload — many tasks, many tenants,
//! interleaved reads and writes over the whole repository API — observes zero cross-tenant
//! rows, on SQLite and on PostgreSQL (as the unprivileged service role), with the statement
//! audit active throughout.
//!
//! How it can catch a leak:
//! * every value a tenant writes carries its name (a marker no other tenant's name contains):
//!   principal ids `<tenant>/pNNN`, attributes `{"owner": <tenant>, "n": k, "serial": s}`, roles
//!   `<tenant>-role-k`, resources `doc:<tenant>-k`, bundle files that name the tenant, bundle
//!   revisions `sha256:<tenant>-vN`, uploader `<tenant>-ops`, domain `<tenant>.example`; every
//!   row any read returns is serialized and must carry the reader's marker and no other's;
//! * writes to a tenant are serialized by a per-tenant lock in the test, which keeps an exact
//!   model of that tenant (data revision included, which every successful write raises by one);
//!   about half the reads hold the tenant's read lock and must equal the model exactly, the rest
//!   run unlocked, concurrently with that tenant's writes, and are checked for markers and shape;
//! * tasks aim deletes, revokes, activations and reads at ids that exist only in *other*
//!   tenants; those must be not found (or empty), and the owner's state — its data revision
//!   included — must still equal its model afterwards;
//! * on PostgreSQL, probes through a second pool logged in as the service role read the tables
//!   without a tenant (must see nothing) and with a tenant set (must see only its rows);
//! * a final pass compares every tenant with its model, and the statement audit must have
//!   passed every one of the (many) statements executed.
//!
//! Every task draws its choices from its own generator, seeded from one seed printed at the
//! start; set `PORTCULLIS_ISOLATION_SEED` (decimal or 0x-hex) to replay the same choices (the
//! interleaving of the tasks is the scheduler's, so a replay repeats the workload, not
//! necessarily the exact schedule), and `PORTCULLIS_ISOLATION_OPS` to change the operations
//! per backend (default 50,000, so 100,000 in all). The figures (operations per kind, mean wall
//! time, statements) are printed; see them with
//! `cargo test -p portcullis-store --test isolation -- --nocapture --test-threads 1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed check must fail the test"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use portcullis_store::{
    BundleVersion, Store, StoreError, StoredAssignment, StoredBundle, StoredPrincipal, TenantId,
    TenantRecord, TenantStatus,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::Row;
use tokio::sync::RwLock;

/// Operations per backend unless `PORTCULLIS_ISOLATION_OPS` says otherwise.
const DEFAULT_OPS: u64 = 50_000;
const TENANTS: usize = 12;
const TASKS: usize = 24;
/// Pool sizes. SQLite has one writer at a time, and a connection that finds the write lock
/// taken sleeps in SQLite's busy handler (1, 2, 5, 10 … ms): a small pool keeps the waiting in
/// the pool's queue and runs the workload about twice as fast as the default of 8.
const SQLITE_POOL: u32 = 4;
const POSTGRES_POOL: u32 = 8;
/// Principal ids per tenant: `<tenant>/p000` … (fixed width, so byte order is id order).
const PRINCIPALS: u64 = 40;
const ROLES: u64 = 4;
const DOCS: u64 = 4;
/// Per mille of operations that are also preceded by a row-level security probe (PostgreSQL).
const PROBE_PER_MILLE: u64 = 10;

const WORDS: [&str; TENANTS] = [
    "alfa", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima",
];

// ------------------------------------------------------------------ reproducible randomness

/// SplitMix64: small, fast, and enough to make each task's choices reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap()
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number")))
}

// ------------------------------------------------------------------ operations

/// Every operation the tasks choose from, with its weight (per mille).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    // Reads of the tenant's own data.
    Get,
    Principal,
    Principals,
    Assignments,
    AssignmentsOf,
    Runtime,
    ActiveBundle,
    BundleVersion,
    BundleHistory,
    Directory,
    // Reads aimed at ids that exist only in another tenant.
    ForeignPrincipal,
    ForeignAssignmentsOf,
    ForeignBundle,
    // Writes.
    Upsert,
    DeletePrincipal,
    Assign,
    Revoke,
    PutBundle,
    Activate,
    SetStatus,
    CreateAgain,
    Recreate,
    // Writes aimed at ids that exist only in another tenant.
    ForeignDeletePrincipal,
    ForeignRevoke,
    ForeignActivate,
}

const OPS: [(Op, u64); 25] = [
    (Op::Get, 30),
    (Op::Principal, 50),
    (Op::Principals, 40),
    (Op::Assignments, 35),
    (Op::AssignmentsOf, 35),
    (Op::Runtime, 40),
    (Op::ActiveBundle, 30),
    (Op::BundleVersion, 30),
    (Op::BundleHistory, 30),
    (Op::Directory, 10),
    (Op::ForeignPrincipal, 30),
    (Op::ForeignAssignmentsOf, 25),
    (Op::ForeignBundle, 25),
    (Op::Upsert, 130),
    (Op::DeletePrincipal, 50),
    (Op::Assign, 110),
    (Op::Revoke, 70),
    (Op::PutBundle, 35),
    (Op::Activate, 35),
    (Op::SetStatus, 30),
    (Op::CreateAgain, 8),
    (Op::Recreate, 2),
    (Op::ForeignDeletePrincipal, 40),
    (Op::ForeignRevoke, 40),
    (Op::ForeignActivate, 40),
];

fn pick(rng: &mut Rng) -> Op {
    let total: u64 = OPS.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.below(total);
    for (op, weight) in OPS {
        if roll < weight {
            return op;
        }
        roll -= weight;
    }
    unreachable!()
}

fn op_index(op: Op) -> usize {
    OPS.iter().position(|(o, _)| *o == op).unwrap()
}

// ------------------------------------------------------------------ the tenants' data

/// What the test knows a tenant holds.
#[derive(Debug, Clone)]
struct Model {
    status: TenantStatus,
    revision: i64,
    principals: BTreeMap<String, (String, Map<String, Value>)>,
    assignments: BTreeSet<(String, String, String)>,
    bundles: i64,
    active: Option<i64>,
    serial: u64,
}

impl Model {
    fn fresh() -> Model {
        Model {
            status: TenantStatus::Active,
            revision: 1,
            principals: BTreeMap::new(),
            assignments: BTreeSet::new(),
            bundles: 0,
            active: None,
            serial: 0,
        }
    }
}

/// Counters per operation kind.
#[derive(Default)]
struct Stats {
    count: [AtomicU64; OPS.len()],
    nanos: [AtomicU64; OPS.len()],
    /// Reads that held the tenant's lock and were compared with the model exactly.
    exact_reads: AtomicU64,
    /// Foreign operations whose target existed in the other tenant when chosen.
    foreign_hits: AtomicU64,
    probes: AtomicU64,
    probe_nanos: AtomicU64,
}

struct World {
    backend: &'static str,
    seed: u64,
    total: u64,
    names: Vec<String>,
    ids: Vec<TenantId>,
    models: Vec<RwLock<Model>>,
    /// Odd while a tenant is being deleted and created again; bumped twice per recreation.
    lifecycle: Vec<AtomicU64>,
    /// Bundle versions a tenant has (a hint for unlocked reads).
    bundles_hint: Vec<AtomicU64>,
    issued: AtomicU64,
    stats: Stats,
    /// PostgreSQL: a pool logged in as the service role, for the row-level security probes.
    probe: Option<sqlx::PgPool>,
}

fn principal_id(name: &str, k: u64) -> String {
    format!("{name}/p{k:03}")
}
fn role(name: &str, k: u64) -> String {
    format!("{name}-role-{k}")
}
fn resource(name: &str, k: u64) -> String {
    if k == 0 {
        "*".to_owned()
    } else {
        format!("doc:{name}-{k}")
    }
}
fn domain(name: &str) -> String {
    format!("{name}.example")
}
fn revision(name: &str, version: i64) -> String {
    format!("sha256:{name}-v{version}")
}
fn uploader(name: &str) -> String {
    format!("{name}-ops")
}
fn bundle_files(name: &str, version: i64) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("tenant.yaml".to_owned(), format!("tenant: {name}\n")),
        (
            "roles.yaml".to_owned(),
            format!("# {name}, version {version}\nroles:\n  {name}-role-0: {{}}\n"),
        ),
    ])
}

impl World {
    /// A serialized value (one row, or a whole result at once) carries no other tenant's
    /// marker. Returns the serialization.
    fn foreign_free<T: Serialize>(&self, me: usize, what: &str, value: &T, ctx: &str) -> String {
        let text = serde_json::to_string(value).unwrap();
        for (other, name) in self.names.iter().enumerate() {
            if other != me {
                assert!(
                    !text.contains(name.as_str()),
                    "{ctx}: CROSS-TENANT ROW — {what} read as {} carries {name}'s marker: {text}",
                    self.names[me]
                );
            }
        }
        text
    }

    /// A serialized row carries `me`'s marker and no other tenant's.
    fn clean<T: Serialize>(&self, me: usize, what: &str, value: &T, ctx: &str) {
        let text = self.foreign_free(me, what, value, ctx);
        assert!(
            text.contains(self.names[me].as_str()),
            "{ctx}: {what} read as {} lacks its marker: {text}",
            self.names[me]
        );
    }

    fn check_record(&self, me: usize, record: &TenantRecord, ctx: &str) {
        self.clean(me, "tenant record", record, ctx);
        assert_eq!(record.tenant, self.ids[me], "{ctx}");
        assert_eq!(
            record.domain.as_deref(),
            Some(domain(&self.names[me]).as_str()),
            "{ctx}"
        );
    }

    fn check_principal(&self, me: usize, principal: &StoredPrincipal, ctx: &str) {
        // The caller checks the whole result for other tenants' markers; the id and owner
        // checked here are this tenant's.
        let name = &self.names[me];
        let n = principal
            .attributes
            .get("n")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{ctx}: principal without n: {principal:?}"));
        assert_eq!(principal.id, principal_id(name, n), "{ctx}");
        assert_eq!(
            principal.attributes.get("owner"),
            Some(&json!(name)),
            "{ctx}"
        );
        assert!(
            principal
                .attributes
                .get("serial")
                .is_some_and(Value::is_u64)
                && principal.attributes.len() == 3,
            "{ctx}: {principal:?}"
        );
        assert!(
            matches!(principal.kind.as_str(), "user" | "service"),
            "{ctx}: {principal:?}"
        );
    }

    fn check_assignment(&self, me: usize, assignment: &StoredAssignment, ctx: &str) {
        // The caller checks the whole result for other tenants' markers.
        let name = &self.names[me];
        assert!(
            assignment.principal.starts_with(&format!("{name}/p"))
                && assignment.role.starts_with(&format!("{name}-role-"))
                && (assignment.resource == "*"
                    || assignment.resource.starts_with(&format!("doc:{name}-"))),
            "{ctx}: {assignment:?}"
        );
    }

    fn check_version(&self, me: usize, version: &BundleVersion, ctx: &str) {
        // The caller checks the whole result for other tenants' markers.
        let name = &self.names[me];
        assert_eq!(version.revision, revision(name, version.version), "{ctx}");
        assert_eq!(version.uploaded_by, uploader(name), "{ctx}");
    }

    fn check_bundle(&self, me: usize, bundle: &StoredBundle, ctx: &str) {
        self.clean(me, "bundle", bundle, ctx);
        self.check_version(me, &bundle.version, ctx);
        assert_eq!(
            bundle.files,
            bundle_files(&self.names[me], bundle.version.version),
            "{ctx}"
        );
    }

    /// Whether an unlocked read that found no tenant may have overlapped its recreation.
    fn may_be_missing(&self, me: usize, before: u64) -> bool {
        before % 2 == 1 || self.lifecycle[me].load(Ordering::SeqCst) != before
    }
}

// ------------------------------------------------------------------ exact comparisons

fn same_record(model: &Model, record: &TenantRecord, ctx: &str) {
    assert_eq!(
        (record.status, record.data_revision, record.active_bundle),
        (model.status, model.revision, model.active),
        "{ctx}: tenant record differs from the model (did a write from another tenant's scope change it?)"
    );
}

fn same_principals(model: &Model, principals: &[StoredPrincipal], ctx: &str) {
    let got: Vec<(&str, &str, &Map<String, Value>)> = principals
        .iter()
        .map(|p| (p.id.as_str(), p.kind.as_str(), &p.attributes))
        .collect();
    let want: Vec<(&str, &str, &Map<String, Value>)> = model
        .principals
        .iter()
        .map(|(id, (kind, attributes))| (id.as_str(), kind.as_str(), attributes))
        .collect();
    assert_eq!(got, want, "{ctx}: principals differ from the model");
}

fn assignment_set(assignments: &[StoredAssignment]) -> BTreeSet<(String, String, String)> {
    assignments
        .iter()
        .map(|a| (a.principal.clone(), a.role.clone(), a.resource.clone()))
        .collect()
}

fn same_assignments(
    want: &BTreeSet<(String, String, String)>,
    got: &[StoredAssignment],
    ctx: &str,
) {
    let set = assignment_set(got);
    assert_eq!(set.len(), got.len(), "{ctx}: duplicate assignments {got:?}");
    assert_eq!(&set, want, "{ctx}: assignments differ from the model");
}

fn same_history(world: &World, me: usize, model: &Model, history: &[BundleVersion], ctx: &str) {
    let got: Vec<(i64, &str, bool)> = history
        .iter()
        .map(|v| (v.version, v.revision.as_str(), v.active))
        .collect();
    let revisions: Vec<String> = (1..=model.bundles)
        .rev()
        .map(|v| revision(&world.names[me], v))
        .collect();
    let want: Vec<(i64, &str, bool)> = (1..=model.bundles)
        .rev()
        .zip(&revisions)
        .map(|(v, r)| (v, r.as_str(), model.active == Some(v)))
        .collect();
    assert_eq!(got, want, "{ctx}: bundle history differs from the model");
}

fn not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, ctx: &str) {
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "{ctx}: expected not found, got {result:?}"
    );
}

// ------------------------------------------------------------------ one task

async fn task(world: Arc<World>, store: Store, number: usize) {
    let mut rng = Rng::new(world.seed ^ (number as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut done = 0u64;
    loop {
        let issued = world.issued.fetch_add(1, Ordering::Relaxed);
        if issued >= world.total {
            break;
        }
        let me = rng.index(TENANTS);
        let op = pick(&mut rng);
        let ctx = format!(
            "[{} seed={:#x} task={number} step={done} {op:?} tenant={}]",
            world.backend, world.seed, world.names[me]
        );
        if world.probe.is_some() && rng.chance(PROBE_PER_MILLE) {
            let started = Instant::now();
            let locked = rng.chance(500);
            probe(&world, me, locked, &format!("{ctx} probe")).await;
            world.stats.probes.fetch_add(1, Ordering::Relaxed);
            world
                .stats
                .probe_nanos
                .fetch_add(elapsed_nanos(started), Ordering::Relaxed);
        }
        let started = Instant::now();
        run_op(&world, &store, &mut rng, me, op, &ctx).await;
        let slot = op_index(op);
        world.stats.count[slot].fetch_add(1, Ordering::Relaxed);
        world.stats.nanos[slot].fetch_add(elapsed_nanos(started), Ordering::Relaxed);
        done += 1;
    }
}

fn elapsed_nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Another tenant than `me`.
fn other(rng: &mut Rng, me: usize) -> usize {
    (me + 1 + rng.index(TENANTS - 1)) % TENANTS
}

/// An id, assignment and bundle count of `owner`, read from its model (the lock is released
/// before the caller takes another: one lock at a time, so no lock-order deadlock).
async fn foreign_targets(
    world: &World,
    rng: &mut Rng,
    owner: usize,
) -> (String, (String, String, String), i64, bool, bool) {
    let model = world.models[owner].read().await;
    let name = &world.names[owner];
    let (principal, principal_exists) = if model.principals.is_empty() {
        (principal_id(name, rng.below(PRINCIPALS)), false)
    } else {
        let index = rng.index(model.principals.len());
        (model.principals.keys().nth(index).unwrap().clone(), true)
    };
    let (assignment, assignment_exists) = if model.assignments.is_empty() {
        (
            (
                principal_id(name, rng.below(PRINCIPALS)),
                role(name, rng.below(ROLES)),
                resource(name, rng.below(DOCS + 1)),
            ),
            false,
        )
    } else {
        let index = rng.index(model.assignments.len());
        (model.assignments.iter().nth(index).unwrap().clone(), true)
    };
    (
        principal,
        assignment,
        model.bundles,
        principal_exists,
        assignment_exists,
    )
}

#[allow(
    clippy::too_many_lines,
    reason = "one match arm per operation reads best as one piece"
)]
async fn run_op(world: &World, store: &Store, rng: &mut Rng, me: usize, op: Op, ctx: &str) {
    let name = world.names[me].as_str();
    let scope = store.tenant(&world.ids[me]);
    let locked = rng.chance(500);
    match op {
        // -------------------------------------------------------------- reads
        Op::Get
        | Op::Principal
        | Op::Principals
        | Op::Assignments
        | Op::AssignmentsOf
        | Op::Runtime
        | Op::ActiveBundle
        | Op::BundleVersion
        | Op::BundleHistory => {
            let guard = if locked {
                world.stats.exact_reads.fetch_add(1, Ordering::Relaxed);
                Some(world.models[me].read().await)
            } else {
                None
            };
            let model = guard.as_deref();
            let epoch = world.lifecycle[me].load(Ordering::SeqCst);
            match op {
                Op::Get => match scope.get().await.unwrap() {
                    Some(record) => {
                        world.check_record(me, &record, ctx);
                        if let Some(model) = model {
                            same_record(model, &record, ctx);
                        }
                    }
                    None => assert!(
                        model.is_none() && world.may_be_missing(me, epoch),
                        "{ctx}: the tenant vanished"
                    ),
                },
                Op::Principal => {
                    let id = principal_id(name, rng.below(PRINCIPALS));
                    let found = scope.principal(&id).await.unwrap();
                    if let Some(principal) = &found {
                        world.clean(me, "principal", principal, ctx);
                        world.check_principal(me, principal, ctx);
                        assert_eq!(principal.id, id, "{ctx}");
                    }
                    if let Some(model) = model {
                        assert_eq!(
                            found.map(|p| (p.kind, p.attributes)),
                            model.principals.get(&id).cloned(),
                            "{ctx}: principal {id} differs from the model"
                        );
                    }
                }
                Op::Principals => {
                    let limit = 1 + u32::try_from(rng.below(15)).unwrap();
                    let mut all: Vec<StoredPrincipal> = Vec::new();
                    let mut pages = 0;
                    loop {
                        let after = all.last().map(|p| p.id.clone());
                        let page = scope.principals(after.as_deref(), limit).await.unwrap();
                        assert!(page.len() <= limit as usize, "{ctx}: page over the limit");
                        world.foreign_free(me, "principals page", &page, ctx);
                        for principal in &page {
                            world.check_principal(me, principal, ctx);
                            if let Some(last) = all.last() {
                                assert!(last.id < principal.id, "{ctx}: pages out of order");
                            }
                            all.push(principal.clone());
                        }
                        pages += 1;
                        assert!(pages <= PRINCIPALS + 2, "{ctx}: pagination does not end");
                        if page.len() < limit as usize {
                            break;
                        }
                    }
                    if let Some(model) = model {
                        same_principals(model, &all, ctx);
                    }
                }
                Op::Assignments => {
                    let assignments = scope.assignments(None).await.unwrap();
                    world.foreign_free(me, "assignments", &assignments, ctx);
                    for assignment in &assignments {
                        world.check_assignment(me, assignment, ctx);
                    }
                    if let Some(model) = model {
                        same_assignments(&model.assignments, &assignments, ctx);
                    }
                }
                Op::AssignmentsOf => {
                    let id = principal_id(name, rng.below(PRINCIPALS));
                    let assignments = scope.assignments(Some(&id)).await.unwrap();
                    world.foreign_free(me, "assignments", &assignments, ctx);
                    for assignment in &assignments {
                        world.check_assignment(me, assignment, ctx);
                        assert_eq!(assignment.principal, id, "{ctx}");
                    }
                    if let Some(model) = model {
                        let want = model
                            .assignments
                            .iter()
                            .filter(|(p, _, _)| *p == id)
                            .cloned()
                            .collect();
                        same_assignments(&want, &assignments, ctx);
                    }
                }
                Op::Runtime => match scope.runtime().await {
                    Ok(runtime) => {
                        world.foreign_free(me, "runtime data", &runtime, ctx);
                        world.check_record(me, &runtime.tenant, ctx);
                        for principal in &runtime.principals {
                            world.check_principal(me, principal, ctx);
                        }
                        for assignment in &runtime.assignments {
                            world.check_assignment(me, assignment, ctx);
                        }
                        if let Some(model) = model {
                            same_record(model, &runtime.tenant, ctx);
                            same_principals(model, &runtime.principals, ctx);
                            same_assignments(&model.assignments, &runtime.assignments, ctx);
                        }
                    }
                    Err(StoreError::NotFound(_))
                        if model.is_none() && world.may_be_missing(me, epoch) => {}
                    Err(error) => panic!("{ctx}: {error}"),
                },
                Op::ActiveBundle => match scope.bundle(None).await {
                    Ok(found) => {
                        if let Some(bundle) = &found {
                            world.check_bundle(me, bundle, ctx);
                            assert!(bundle.version.active, "{ctx}: {:?}", bundle.version);
                        }
                        if let Some(model) = model {
                            assert_eq!(
                                found.map(|b| b.version.version),
                                model.active,
                                "{ctx}: active bundle differs from the model"
                            );
                        }
                    }
                    Err(StoreError::NotFound(_))
                        if model.is_none() && world.may_be_missing(me, epoch) => {}
                    Err(error) => panic!("{ctx}: {error}"),
                },
                Op::BundleVersion => {
                    let known = match model {
                        Some(model) => model.bundles,
                        None => {
                            i64::try_from(world.bundles_hint[me].load(Ordering::Relaxed)).unwrap()
                        }
                    };
                    let version =
                        1 + i64::try_from(rng.below(u64::try_from(known).unwrap() + 1)).unwrap();
                    match scope.bundle(Some(version)).await {
                        Ok(found) => {
                            if let Some(bundle) = &found {
                                world.check_bundle(me, bundle, ctx);
                                assert_eq!(bundle.version.version, version, "{ctx}");
                            }
                            if let Some(model) = model {
                                assert_eq!(
                                    found.map(|b| (b.version.version, b.version.active)),
                                    (version <= model.bundles)
                                        .then_some((version, model.active == Some(version))),
                                    "{ctx}: bundle version {version} differs from the model"
                                );
                            }
                        }
                        Err(StoreError::NotFound(_))
                            if model.is_none() && world.may_be_missing(me, epoch) => {}
                        Err(error) => panic!("{ctx}: {error}"),
                    }
                }
                Op::BundleHistory => match scope.bundle_history().await {
                    Ok(history) => {
                        world.foreign_free(me, "bundle history", &history, ctx);
                        for version in &history {
                            world.check_version(me, version, ctx);
                        }
                        assert!(
                            history.windows(2).all(|w| w[0].version > w[1].version)
                                && history.iter().filter(|v| v.active).count() <= 1,
                            "{ctx}: {history:?}"
                        );
                        if let Some(model) = model {
                            same_history(world, me, model, &history, ctx);
                        }
                    }
                    Err(StoreError::NotFound(_))
                        if model.is_none() && world.may_be_missing(me, epoch) => {}
                    Err(error) => panic!("{ctx}: {error}"),
                },
                _ => unreachable!(),
            }
        }
        Op::Directory => {
            let directory = store.directory().await.unwrap();
            let mut seen = BTreeSet::new();
            for entry in &directory {
                let index = world
                    .ids
                    .iter()
                    .position(|id| *id == entry.tenant)
                    .unwrap_or_else(|| panic!("{ctx}: unknown tenant {entry:?}"));
                assert!(seen.insert(index), "{ctx}: listed twice: {entry:?}");
                assert_eq!(
                    entry.domain.as_deref(),
                    Some(domain(&world.names[index]).as_str()),
                    "{ctx}"
                );
            }
        }

        // -------------------------------------------------------------- foreign reads
        Op::ForeignPrincipal | Op::ForeignAssignmentsOf | Op::ForeignBundle => {
            let owner = other(rng, me);
            let (principal, _, their_bundles, exists, _) = foreign_targets(world, rng, owner).await;
            let guard = if locked {
                world.stats.exact_reads.fetch_add(1, Ordering::Relaxed);
                Some(world.models[me].read().await)
            } else {
                None
            };
            let epoch = world.lifecycle[me].load(Ordering::SeqCst);
            match op {
                Op::ForeignPrincipal => {
                    if exists {
                        world.stats.foreign_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    let found = scope.principal(&principal).await.unwrap();
                    assert!(
                        found.is_none(),
                        "{ctx}: CROSS-TENANT ROW — {name} reads {principal}: {found:?}"
                    );
                }
                Op::ForeignAssignmentsOf => {
                    if exists {
                        world.stats.foreign_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    let found = scope.assignments(Some(&principal)).await.unwrap();
                    assert!(
                        found.is_empty(),
                        "{ctx}: CROSS-TENANT ROW — {name} reads the assignments of {principal}: {found:?}"
                    );
                }
                Op::ForeignBundle => {
                    // A version the other tenant has and this one (as far as the test knows)
                    // has not.
                    let ours = match &guard {
                        Some(model) => model.bundles,
                        None => {
                            i64::try_from(world.bundles_hint[me].load(Ordering::Relaxed)).unwrap()
                        }
                    };
                    let span = u64::try_from((their_bundles - ours).max(1)).unwrap();
                    let version = ours + 1 + i64::try_from(rng.below(span)).unwrap();
                    if version <= their_bundles {
                        world.stats.foreign_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    match scope.bundle(Some(version)).await {
                        Ok(Some(bundle)) => {
                            // Unlocked, this tenant may have reached that version meanwhile:
                            // then it must be its own.
                            assert!(
                                guard.is_none(),
                                "{ctx}: {name} has no version {version}, yet read {bundle:?}"
                            );
                            world.check_bundle(me, &bundle, ctx);
                        }
                        Ok(None) => {}
                        Err(StoreError::NotFound(_))
                            if guard.is_none() && world.may_be_missing(me, epoch) => {}
                        Err(error) => panic!("{ctx}: {error}"),
                    }
                }
                _ => unreachable!(),
            }
        }

        // -------------------------------------------------------------- writes
        Op::Upsert
        | Op::DeletePrincipal
        | Op::Assign
        | Op::Revoke
        | Op::PutBundle
        | Op::Activate
        | Op::SetStatus
        | Op::CreateAgain
        | Op::Recreate => {
            let mut model = world.models[me].write().await;
            write(world, &scope, rng, me, op, &mut model, ctx).await;
            world.bundles_hint[me].store(u64::try_from(model.bundles).unwrap(), Ordering::Relaxed);
        }

        // -------------------------------------------------------------- foreign writes
        Op::ForeignDeletePrincipal | Op::ForeignRevoke | Op::ForeignActivate => {
            let owner = other(rng, me);
            let (principal, assignment, their_bundles, principal_exists, assignment_exists) =
                foreign_targets(world, rng, owner).await;
            // Held for writing: were the call to succeed, it would change this tenant's
            // revision, which the model (and every exact read after it) would catch.
            let model = world.models[me].write().await;
            let before = model.revision;
            match op {
                Op::ForeignDeletePrincipal => {
                    if principal_exists {
                        world.stats.foreign_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    // Not found here, and the owner keeps the principal and its assignments.
                    not_found(scope.delete_principal(&principal).await, ctx);
                }
                Op::ForeignRevoke => {
                    if assignment_exists {
                        world.stats.foreign_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    let (principal, role, resource) = &assignment;
                    not_found(scope.revoke(principal, role, resource).await, ctx);
                }
                Op::ForeignActivate => {
                    let span = u64::try_from((their_bundles - model.bundles).max(1)).unwrap();
                    let version = model.bundles + 1 + i64::try_from(rng.below(span)).unwrap();
                    if version <= their_bundles {
                        world.stats.foreign_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    not_found(scope.activate_bundle(version).await, ctx);
                }
                _ => unreachable!(),
            }
            assert_eq!(model.revision, before, "{ctx}");
        }
    }
}

/// A write to `me`, whose model the caller holds for writing; checks the outcome the model
/// predicts and updates the model.
async fn write(
    world: &World,
    scope: &portcullis_store::TenantStore<'_>,
    rng: &mut Rng,
    me: usize,
    op: Op,
    model: &mut Model,
    ctx: &str,
) {
    let name = world.names[me].as_str();
    let next = model.revision + 1;
    match op {
        Op::Upsert => {
            let k = rng.below(PRINCIPALS);
            let id = principal_id(name, k);
            let kind = if rng.chance(500) { "user" } else { "service" };
            model.serial += 1;
            let attributes = json!({ "owner": name, "n": k, "serial": model.serial })
                .as_object()
                .unwrap()
                .clone();
            let revision = scope
                .upsert_principal(&id, kind, &attributes)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(revision, next, "{ctx}");
            model.revision = revision;
            model.principals.insert(id, (kind.to_owned(), attributes));
        }
        Op::DeletePrincipal => {
            let id = if !model.principals.is_empty() && rng.chance(700) {
                let index = rng.index(model.principals.len());
                model.principals.keys().nth(index).unwrap().clone()
            } else {
                principal_id(name, rng.below(PRINCIPALS))
            };
            let result = scope.delete_principal(&id).await;
            if model.principals.remove(&id).is_some() {
                let revision = result.unwrap_or_else(|e| panic!("{ctx}: delete {id}: {e}"));
                assert_eq!(revision, next, "{ctx}");
                model.revision = revision;
                model.assignments.retain(|(p, _, _)| *p != id);
            } else {
                // Not found: the transaction rolls back, the principal's assignments stay.
                not_found(result, ctx);
            }
        }
        Op::Assign => {
            let principal = if !model.principals.is_empty() && rng.chance(800) {
                let index = rng.index(model.principals.len());
                model.principals.keys().nth(index).unwrap().clone()
            } else {
                principal_id(name, rng.below(PRINCIPALS))
            };
            let role = role(name, rng.below(ROLES));
            let resource = resource(name, rng.below(DOCS + 1));
            let revision = scope
                .assign(&principal, &role, &resource)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(revision, next, "{ctx}");
            model.revision = revision;
            model.assignments.insert((principal, role, resource));
        }
        Op::Revoke => {
            let target = if !model.assignments.is_empty() && rng.chance(750) {
                let index = rng.index(model.assignments.len());
                model.assignments.iter().nth(index).unwrap().clone()
            } else {
                (
                    principal_id(name, rng.below(PRINCIPALS)),
                    role(name, rng.below(ROLES)),
                    resource(name, rng.below(DOCS + 1)),
                )
            };
            let result = scope.revoke(&target.0, &target.1, &target.2).await;
            if model.assignments.remove(&target) {
                let revision = result.unwrap_or_else(|e| panic!("{ctx}: revoke {target:?}: {e}"));
                assert_eq!(revision, next, "{ctx}");
                model.revision = revision;
            } else {
                not_found(result, ctx);
            }
        }
        Op::PutBundle => {
            let version = model.bundles + 1;
            // Known store bug (SQLite): put_bundle and activate_bundle open a deferred
            // transaction, read, then write; when another connection (another tenant's write)
            // holds or has just released the write lock at that moment, SQLite refuses the
            // upgrade at once, without the busy timeout: "(code: 5) database is locked" or
            // "(code: 517)". Rare and timing-dependent; it fails here until the store begins its
            // write transactions with BEGIN IMMEDIATE.
            let stored = scope
                .put_bundle(
                    &bundle_files(name, version),
                    &revision(name, version),
                    &uploader(name),
                )
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(
                (
                    stored.version,
                    stored.revision.as_str(),
                    stored.uploaded_by.as_str(),
                    stored.active
                ),
                (
                    version,
                    revision(name, version).as_str(),
                    uploader(name).as_str(),
                    true
                ),
                "{ctx}"
            );
            model.bundles = version;
            model.active = Some(version);
            model.revision = next;
        }
        Op::Activate => {
            let version =
                1 + i64::try_from(rng.below(u64::try_from(model.bundles).unwrap() + 2)).unwrap();
            let result = scope.activate_bundle(version).await;
            if version <= model.bundles {
                // Known store bug (SQLite), as in PutBundle: "database is locked" when another
                // tenant's write overlaps the read-then-write transaction.
                let revision = result.unwrap_or_else(|e| panic!("{ctx}: activate {version}: {e}"));
                assert_eq!(revision, next, "{ctx}");
                model.revision = revision;
                model.active = Some(version);
            } else {
                not_found(result, ctx);
            }
        }
        Op::SetStatus => {
            let status = if rng.chance(500) {
                TenantStatus::Active
            } else {
                TenantStatus::Suspended
            };
            let revision = scope
                .set_status(status)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(revision, next, "{ctx}");
            model.revision = revision;
            model.status = status;
        }
        Op::CreateAgain => {
            let result = scope.create(Some(&domain(name))).await;
            assert!(
                matches!(result, Err(StoreError::Conflict(_))),
                "{ctx}: creating an existing tenant: {result:?}"
            );
        }
        Op::Recreate => {
            world.lifecycle[me].fetch_add(1, Ordering::SeqCst);
            scope
                .delete()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: delete: {e}"));
            let record = scope
                .create(Some(&domain(name)))
                .await
                .unwrap_or_else(|e| panic!("{ctx}: create: {e}"));
            world.lifecycle[me].fetch_add(1, Ordering::SeqCst);
            *model = Model::fresh();
            world.check_record(me, &record, ctx);
            same_record(model, &record, ctx);
        }
        _ => unreachable!(),
    }
}

// ------------------------------------------------------------------ PostgreSQL probes

/// Reads the tables through the service role directly: without a tenant nothing, with tenant
/// `me` set only `me`'s rows (exactly the model's, when `locked`).
async fn probe(world: &World, me: usize, locked: bool, ctx: &str) {
    let pool = world.probe.as_ref().unwrap();
    for sql in [
        "SELECT /* rls-probe */ count(*) AS n FROM tenants",
        "SELECT /* rls-probe */ count(*) AS n FROM principals",
        "SELECT /* rls-probe */ count(*) AS n FROM bundles",
        "SELECT /* rls-probe */ count(*) AS n FROM role_assignments",
    ] {
        let count: i64 = sqlx::query(sql).fetch_one(pool).await.unwrap().get("n");
        assert_eq!(count, 0, "{ctx}: without a tenant, `{sql}` sees rows");
    }

    let guard = if locked {
        Some(world.models[me].read().await)
    } else {
        None
    };
    let name = world.names[me].as_str();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(name)
        .execute(&mut *tx)
        .await
        .unwrap();
    let tenants: Vec<String> = sqlx::query("SELECT /* rls-probe */ tenant_id FROM tenants")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get("tenant_id"))
        .collect();
    assert!(
        tenants.iter().all(|t| t == name) && tenants.len() <= 1,
        "{ctx}: tenants seen as {name}: {tenants:?}"
    );
    let principals: Vec<(String, String, String)> = sqlx::query(
        "SELECT /* rls-probe */ tenant_id, principal_id, attributes::text AS attributes FROM principals ORDER BY principal_id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get("tenant_id"), row.get("principal_id"), row.get("attributes")))
    .collect();
    for row in &principals {
        assert_eq!(
            row.0, name,
            "{ctx}: principal row of another tenant: {row:?}"
        );
        world.clean(me, "principal row", row, ctx);
    }
    let assignments: Vec<(String, String, String, String)> = sqlx::query(
        "SELECT /* rls-probe */ tenant_id, principal_id, role, resource FROM role_assignments",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            row.get("tenant_id"),
            row.get("principal_id"),
            row.get("role"),
            row.get("resource"),
        )
    })
    .collect();
    for row in &assignments {
        assert_eq!(
            row.0, name,
            "{ctx}: assignment row of another tenant: {row:?}"
        );
        world.clean(me, "assignment row", row, ctx);
    }
    let bundles: Vec<(String, i64, String, String)> = sqlx::query(
        "SELECT /* rls-probe */ tenant_id, version, revision, files::text AS files FROM bundles",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            row.get("tenant_id"),
            row.get("version"),
            row.get("revision"),
            row.get("files"),
        )
    })
    .collect();
    for row in &bundles {
        assert_eq!(row.0, name, "{ctx}: bundle row of another tenant: {row:?}");
        world.clean(me, "bundle row", row, ctx);
    }
    tx.commit().await.unwrap();
    if let Some(model) = guard {
        assert_eq!(tenants.len(), 1, "{ctx}");
        assert_eq!(
            principals.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            model.principals.keys().cloned().collect::<Vec<_>>(),
            "{ctx}: principal rows differ from the model"
        );
        assert_eq!(
            assignments
                .iter()
                .map(|r| (r.1.clone(), r.2.clone(), r.3.clone()))
                .collect::<BTreeSet<_>>(),
            model.assignments,
            "{ctx}: assignment rows differ from the model"
        );
        assert_eq!(
            bundles.len(),
            usize::try_from(model.bundles).unwrap(),
            "{ctx}"
        );
    }
}

// ------------------------------------------------------------------ the run

/// Runs the workload on one backend; returns how many statements it executed.
async fn run(backend: support::TestStore, seed: u64, total: u64) -> usize {
    let started = Instant::now();
    let statements_before = support::captured_count();
    let names: Vec<String> = WORDS
        .iter()
        .enumerate()
        .map(|(i, word)| format!("iso{i:02}-{word}"))
        .collect();
    let ids: Vec<TenantId> = names.iter().map(|n| TenantId::new(n).unwrap()).collect();
    for (id, name) in ids.iter().zip(&names) {
        backend
            .store
            .tenant(id)
            .create(Some(&domain(name)))
            .await
            .unwrap();
    }
    let probe_pool = match &backend.database {
        Some(database) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .connect(&format!(
                    "postgres://portcullis_service@127.0.0.1:5432/{database}?sslmode=disable"
                ))
                .await
                .unwrap();
            let who: String = sqlx::query("SELECT current_user AS u")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get("u");
            assert_eq!(who, "portcullis_service");
            Some(pool)
        }
        None => None,
    };
    let world = Arc::new(World {
        backend: backend.name,
        seed,
        total,
        names,
        ids,
        models: (0..TENANTS).map(|_| RwLock::new(Model::fresh())).collect(),
        lifecycle: (0..TENANTS).map(|_| AtomicU64::new(0)).collect(),
        bundles_hint: (0..TENANTS).map(|_| AtomicU64::new(0)).collect(),
        issued: AtomicU64::new(0),
        stats: Stats::default(),
        probe: probe_pool,
    });

    let workload = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for number in 0..TASKS {
        tasks.spawn(task(world.clone(), backend.store.clone(), number));
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined {
            tasks.abort_all();
            match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("a task failed: {error}"),
            }
        }
    }
    let workload = workload.elapsed();

    // Every tenant equals its model, and nothing is left over.
    let final_pass = Instant::now();
    let directory = backend.store.directory().await.unwrap();
    assert_eq!(directory.len(), TENANTS, "{directory:?}");
    for me in 0..TENANTS {
        let ctx = format!(
            "[{} seed={seed:#x} final {}]",
            world.backend, world.names[me]
        );
        let model = world.models[me].read().await;
        let scope = backend.store.tenant(&world.ids[me]);
        let entry = directory
            .iter()
            .find(|e| e.tenant == world.ids[me])
            .unwrap();
        assert_eq!(
            (entry.status, entry.data_revision),
            (model.status, model.revision),
            "{ctx}"
        );
        let runtime = scope.runtime().await.unwrap();
        world.foreign_free(me, "runtime data", &runtime, &ctx);
        world.check_record(me, &runtime.tenant, &ctx);
        same_record(&model, &runtime.tenant, &ctx);
        for principal in &runtime.principals {
            world.check_principal(me, principal, &ctx);
        }
        same_principals(&model, &runtime.principals, &ctx);
        for assignment in &runtime.assignments {
            world.check_assignment(me, assignment, &ctx);
        }
        same_assignments(&model.assignments, &runtime.assignments, &ctx);
        let history = scope.bundle_history().await.unwrap();
        world.foreign_free(me, "bundle history", &history, &ctx);
        for version in &history {
            world.check_version(me, version, &ctx);
        }
        same_history(&world, me, &model, &history, &ctx);
        for version in 1..=model.bundles + 1 {
            let bundle = scope.bundle(Some(version)).await.unwrap();
            match bundle {
                Some(bundle) => {
                    assert!(version <= model.bundles, "{ctx}");
                    world.check_bundle(me, &bundle, &ctx);
                }
                None => assert_eq!(version, model.bundles + 1, "{ctx}"),
            }
        }
        drop(model);
        if world.probe.is_some() {
            probe(&world, me, true, &format!("{ctx} probe")).await;
        }
    }
    let final_pass = final_pass.elapsed();

    // Statements the run executed (the audit checks them all at the end of the test).
    let statements = support::captured_count() - statements_before;
    assert!(
        statements >= usize::try_from(total).unwrap(),
        "{}: only {statements} statements captured for {total} operations",
        world.backend
    );

    // Figures.
    let stats = &world.stats;
    let ops: u64 = stats.count.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    assert_eq!(ops, total, "{}", world.backend);
    eprintln!(
        "isolation/{}: {ops} operations by {TASKS} tasks on {TENANTS} tenants in {:.2} s \
         ({:.0} ops/s; {} exact reads under the tenant lock, {} foreign targets that existed \
         in their owner, {} PostgreSQL probes); {statements} statements captured; final pass \
         {:.2} s; whole backend {:.2} s",
        world.backend,
        workload.as_secs_f64(),
        ops as f64 / workload.as_secs_f64(),
        stats.exact_reads.load(Ordering::Relaxed),
        stats.foreign_hits.load(Ordering::Relaxed),
        stats.probes.load(Ordering::Relaxed),
        final_pass.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    for (slot, (op, _)) in OPS.iter().enumerate() {
        let count = stats.count[slot].load(Ordering::Relaxed);
        let nanos = stats.nanos[slot].load(Ordering::Relaxed);
        eprintln!(
            "  {:<24} {count:>6} ops, mean {:>8.1} µs (wall, under contention)",
            format!("{op:?}"),
            if count == 0 {
                0.0
            } else {
                nanos as f64 / count as f64 / 1000.0
            }
        );
        assert!(
            count > 0 || total < 10_000,
            "{}: {op:?} never ran",
            world.backend
        );
    }
    let probes = stats.probes.load(Ordering::Relaxed);
    if probes > 0 {
        eprintln!(
            "  {:<24} {probes:>6} runs, mean {:>8.1} µs",
            "probe",
            stats.probe_nanos.load(Ordering::Relaxed) as f64 / probes as f64 / 1000.0
        );
    }
    if let Some(pool) = &world.probe {
        pool.close().await;
    }
    backend.finish().await;
    statements
}

fn seed() -> u64 {
    env_number("PORTCULLIS_ISOLATION_SEED").unwrap_or_else(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        u64::from_le_bytes(bytes)
    })
}

/// The two backends run one after the other (the figures stay each backend's own), and the
/// audit checks every statement captured so far at the end of each.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn workload(backend: impl Future<Output = support::TestStore>) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let seed = seed();
    let total = env_number("PORTCULLIS_ISOLATION_OPS").unwrap_or(DEFAULT_OPS);
    let backend = backend.await;
    eprintln!(
        "isolation/{}: seed {seed:#x}, {total} operations (replay the same choices with \
         PORTCULLIS_ISOLATION_SEED={seed:#x})",
        backend.name
    );
    let statements = run(backend, seed, total).await;
    // The statement audit was on throughout: every statement names its tenant.
    let audit = Instant::now();
    let audited = support::audit_check();
    assert!(audited >= statements, "{audited} < {statements}");
    eprintln!(
        "isolation: the audit passed all {audited} statements captured in this process in {:.2} s",
        audit.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_workload_sees_no_other_tenants_rows() {
    // On tmpfs where there is one: the store commits with synchronous=FULL, and an fsync per
    // write would make this test about the disk, not about isolation.
    let shm = std::path::Path::new("/dev/shm");
    workload(support::sqlite_with(
        SQLITE_POOL,
        shm.is_dir().then_some(shm),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_workload_sees_no_other_tenants_rows() {
    if !support::postgres_available().await {
        return;
    }
    workload(support::postgres_with(POSTGRES_POOL, false)).await;
}
