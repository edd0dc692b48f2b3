//! The one decision path. Every edge — the JSON API, AuthZEN, forward-auth for nginx, Traefik
//! and Envoy, Envoy ext_authz and `portcullis.v1` over gRPC, relationship queries and the admin
//! API's own authorization — asks here, and nowhere else:
//!
//! ```text
//! edge ──▶ identity ──▶ tenant ──▶ admission ──▶ request ──▶ evaluation ──▶ audit ──▶ metrics ──▶ edge
//!          (token)      (named,     (quota)       (route,      (inline or     (every     (every
//!                        found by                  context)     on the pool)   outcome)   outcome)
//!                        host, bound)
//! ```
//!
//! A [`DecisionPath`] is made per question and loads the policy set **once**: that one set
//! serves identity binding, tenant lookup by host, route matching, the decision and whatever the
//! edge renders from it, so a reload in between can never bind on one bundle and decide on
//! the next. Denials decided before any policy is read (an unknown tenant, no route) and answered
//! relationship queries are decisions too: each gets the server's clock and a trace id, an
//! audit record (under the tenant's sampling rules: allows may be sampled, denies never are)
//! and a decision metric.
//!
//! Evaluation runs on the caller's thread when it is cheap. A decision whose conditions may
//! cost more than [`INLINE_COST`] units, or that may walk the relation index, runs on the
//! evaluation pool instead, so that one tenant's expensive policy holds its own answers back
//! and not the runtime that serves every tenant.
//!
//! Most questions are answered without waiting for anything: [`DecisionPath::decide_now`]
//! evaluates a cheap decision and queues its record there and then, and hands back a
//! [`Decided::Later`] — a boxed continuation on the same policy set — only for a decision that
//! must go to the evaluation pool or wait for room in a full audit buffer. Keeping those
//! waiting states out of the common path keeps small the futures that every request moves
//! (forward-auth's handlers are plain functions that answer at once, or return that
//! continuation); [`DecisionPath::decide`] is the same for edges that simply await it.
//!
//! Edges translate their protocol into calls here and render what comes back; the protocol
//! errors they answer are theirs ([`IdentityError`] has no HTTP in it). This module must not
//! know about HTTP bodies, gRPC messages or proxy headers.

use std::sync::Arc;
use std::time::Instant;

use portcullis_core::{
    Cause, Decision, DecisionError, Effect, ErrorKind, Principal, Request, TenantId,
};
use portcullis_policy::{PolicySet, RouteMatch, SearchKind, SearchPage, Snapshot};
use portcullis_tenant::quota::{QuotaLimit, QuotaPermit};

use crate::audit::{NotQueued, WaitingRecord};
use crate::error::ApiError;
use crate::identity::{HostBinding, Identity, IdentityError, IdentityErrorKind, strip_port};
use crate::metrics::TenantLabel;
use crate::state::AppState;
use portcullis_audit::AuditError;

/// Decisions whose conditions may cost more than this many CEL units (a few hundred
/// microseconds of evaluation), or that may consult the relation index, are evaluated on the
/// evaluation pool rather than on the caller's thread.
pub const INLINE_COST: u64 = 2_000;

/// One question's way through the server: the state, and the policy set loaded for it.
pub struct DecisionPath<'s> {
    state: &'s AppState,
    policies: Arc<PolicySet>,
    edge: &'static str,
}

impl std::fmt::Debug for DecisionPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionPath")
            .field("edge", &self.edge)
            .field("tenants", &self.policies.len())
            .finish_non_exhaustive()
    }
}

impl<'s> DecisionPath<'s> {
    /// A path for a question that arrived at `edge` (its name in metrics and audit records),
    /// with the policy set as it is now.
    pub fn new(state: &'s AppState, edge: &'static str) -> Self {
        DecisionPath {
            state,
            policies: state.policies(),
            edge,
        }
    }

    /// A path that goes on with a question started on another path, with that path's policy
    /// set ([`into_policies`](DecisionPath::into_policies)): for edges that hand a question
    /// still waiting to a future of its own.
    pub fn resume(state: &'s AppState, edge: &'static str, policies: Arc<PolicySet>) -> Self {
        DecisionPath {
            state,
            policies,
            edge,
        }
    }

    /// The policy set this question is answered with, to [`resume`](DecisionPath::resume) it.
    pub fn into_policies(self) -> Arc<PolicySet> {
        self.policies
    }

    /// The server state.
    pub fn state(&self) -> &'s AppState {
        self.state
    }

    /// The edge the question arrived at.
    pub fn edge(&self) -> &'static str {
        self.edge
    }

    /// The policy set this question is answered with.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The policy set this question is answered with, shared, for a later path about the same
    /// request to [`resume`](DecisionPath::resume) with.
    pub fn policy_set(&self) -> &Arc<PolicySet> {
        &self.policies
    }

    /// A tenant's snapshot in this question's policy set.
    pub fn snapshot(&self, tenant: &TenantId) -> Option<&Arc<Snapshot>> {
        self.policies.get(tenant)
    }

    // ---------------------------------------------------------------------------- identity

    /// The caller's identity: the bearer token verified, when one was sent; without one,
    /// nothing, or [`IdentityErrorKind::MissingToken`] when `required`.
    pub fn identify(
        &self,
        token: Option<&str>,
        required: bool,
    ) -> Result<Option<Arc<Identity>>, IdentityError> {
        match token {
            Some(token) => self.state.verifier.verify(token).map(Some),
            None if required => Err(IdentityError::new(
                IdentityErrorKind::MissingToken,
                "a bearer token is required",
            )),
            None => Ok(None),
        }
    }

    /// Whether the decision APIs require a token.
    pub fn token_required(&self) -> bool {
        self.state.verifier.required_for_check()
    }

    /// Binds an identity to a tenant (its tenant claim) and host (the tenant's domain), with
    /// this question's snapshot of the tenant; returns the principal.
    pub fn bind(
        &self,
        identity: &Identity,
        tenant: &TenantId,
        host: HostBinding<'_>,
    ) -> Result<Principal, IdentityError> {
        identity.bind(tenant, self.snapshot(tenant).map(|s| &**s), host)
    }

    // ------------------------------------------------------------------------------ tenant

    /// The tenant that declares `host` (port ignored, case-insensitive) as its domain.
    pub fn tenant_of_host(&self, host: Option<&str>) -> Option<TenantId> {
        let wanted = host.map(strip_port)?;
        self.policies.tenant_of_domain(wanted).cloned()
    }

    /// The tenant of a request that does not name it in its body (the AuthZEN endpoints), in
    /// the documented order:
    ///
    /// 1. `header`: the tenant the caller named (`X-Tenant-ID`);
    /// 2. the tenant claim of the verified bearer token (`identity`);
    /// 3. the tenant whose `domain` is `host` (the Host the request was sent to, port ignored);
    /// 4. the listener's `default_tenant`.
    ///
    /// A rule that names a tenant must agree with the others that name one: a header and a
    /// token claim that differ are refused (`tenant_mismatch`, as identity binding answers it),
    /// and so is a header or token naming another tenant than the one whose domain the request
    /// was sent to (`tenant_host_mismatch`). No rule at all is `missing_tenant`.
    pub fn resolve_tenant(
        &self,
        header: Option<TenantId>,
        identity: Option<&Identity>,
        host: Option<&str>,
    ) -> Result<(TenantId, TenantSource), ApiError> {
        let claimed = identity.and_then(|identity| identity.tenant.as_deref());
        let of_host = self.tenant_of_host(host);
        let (tenant, source) = match (header, claimed) {
            (Some(header), Some(claimed)) if claimed != header.as_str() => {
                return Err(IdentityError::new(
                    IdentityErrorKind::TenantMismatch,
                    "X-Tenant-ID names another tenant than the bearer token",
                )
                .into());
            }
            (Some(header), _) => (header, TenantSource::Header),
            (None, Some(claimed)) => {
                let tenant = TenantId::new(claimed).map_err(|_| {
                    ApiError::from(IdentityError::new(
                        IdentityErrorKind::TenantMismatch,
                        "the token's tenant claim is not a valid tenant id",
                    ))
                })?;
                (tenant, TenantSource::Token)
            }
            (None, None) => match (of_host, &self.state.config.default_tenant) {
                (Some(tenant), _) => return Ok((tenant, TenantSource::Host)),
                (None, Some(tenant)) => return Ok((tenant.clone(), TenantSource::Default)),
                (None, None) => {
                    return Err(ApiError::bad_request(
                        "missing_tenant",
                        "no tenant: send X-Tenant-ID, a bearer token with a tenant claim, \
                         address a tenant's domain as the Host, or set default_tenant in the \
                         server configuration",
                    ));
                }
            },
        };
        if let Some(of_host) = of_host
            && of_host != tenant
        {
            return Err(ApiError::bad_request(
                "tenant_host_mismatch",
                format!(
                    "the request names tenant `{tenant}` but was sent to the domain of tenant `{of_host}`"
                ),
            ));
        }
        Ok((tenant, source))
    }

    // --------------------------------------------------------------------------- admission

    /// Admits one request of `tenant` under its quota; the permit is held until the answer is
    /// sent, evaluation included. Call it after the caller's identity is established, so that
    /// anonymous callers cannot use up a tenant's quota. Only loaded tenants are counted: a
    /// request for any other tenant is denied anyway, and quota state for every id a caller
    /// can invent would grow without bound.
    pub fn admit(&self, tenant: &TenantId) -> Result<Option<QuotaPermit>, ApiError> {
        if self.snapshot(tenant).is_none() {
            return Ok(None);
        }
        self.state
            .quotas
            .acquire(tenant)
            .map(Some)
            .map_err(|refusal| {
                let limit = match refusal.limit() {
                    QuotaLimit::Rate => "requests per second",
                    QuotaLimit::Concurrency => "concurrent requests",
                };
                ApiError {
                    retry_after: Some(refusal.retry_after_secs()),
                    ..ApiError::new(
                        http::StatusCode::TOO_MANY_REQUESTS,
                        refusal.limit().code(),
                        format!(
                            "tenant `{tenant}` is over its quota of {limit}; retry after {} s",
                            refusal.retry_after_secs()
                        ),
                    )
                }
            })
    }

    // ------------------------------------------------------------------------------- route

    /// The route of `tenant` that `method` and `path` match, from this question's snapshot.
    pub fn route(&self, tenant: &TenantId, method: &str, path: &str) -> Option<RouteMatch<'_>> {
        self.snapshot(tenant)?.match_route(method, path)
    }

    // ---------------------------------------------------------------------------- decision

    /// Decides `request` (with `strategy`, a route's, in addition to the action's): the
    /// server's clock (unless the tenant accepts the caller's), environment signals and a trace
    /// id are applied, the policy is evaluated, the decision is recorded — a decision the audit
    /// log cannot accept is denied — and counted. Returns the request as decided with the
    /// decision.
    pub async fn decide(
        &self,
        request: Request,
        strategy: Option<&str>,
        user_agent: Option<&str>,
    ) -> (Request, Decision) {
        self.decide_now(request, strategy, user_agent)
            .finish(self)
            .await
    }

    /// [`decide`](DecisionPath::decide) as far as it goes without waiting: a cheap decision
    /// whose record the audit buffer takes is done here and now; one that must run on the
    /// evaluation pool, or whose record must wait for room, is handed back to be completed
    /// with [`Decided::finish`]. Edges that answer most questions without waiting use it to
    /// keep the waiting machinery out of their common path.
    pub fn decide_now(
        &self,
        mut request: Request,
        strategy: Option<&str>,
        user_agent: Option<&str>,
    ) -> Decided {
        // A plain action name is decided, and recorded, in its qualified form.
        request.qualify_action();
        self.prepare(&mut request);
        let started = Instant::now();
        let Some(snapshot) = self.snapshot(&request.tenant) else {
            let decision =
                portcullis_policy::refuse(&request, &unknown_revision(), Cause::TenantUnknown);
            return self.finish_now(request, decision, user_agent, started);
        };
        let costly = snapshot.evaluation_cost_bound(&request.action, strategy) > INLINE_COST
            || snapshot.consults_relations(&request.action);
        if costly {
            return Decided::Later(Box::new(Pending {
                stage: Stage::Evaluate {
                    snapshot: Arc::clone(snapshot),
                    strategy: strategy.map(str::to_owned),
                    user_agent: user_agent.map(str::to_owned),
                },
                request,
                started,
            }));
        }
        let decision = portcullis_policy::decide_with_strategy(snapshot, &request, strategy);
        self.finish_now(request, decision, user_agent, started)
    }

    /// A denial decided before any policy is evaluated (the tenant is unknown, or no route
    /// matches), recorded and counted like every decision.
    pub async fn refuse(
        &self,
        request: Request,
        cause: Cause,
        user_agent: Option<&str>,
    ) -> (Request, Decision) {
        self.refuse_now(request, cause, user_agent)
            .finish(self)
            .await
    }

    /// [`refuse`](DecisionPath::refuse) as far as it goes without waiting (see
    /// [`decide_now`](DecisionPath::decide_now)).
    pub fn refuse_now(
        &self,
        mut request: Request,
        cause: Cause,
        user_agent: Option<&str>,
    ) -> Decided {
        let started = Instant::now();
        let decision = self.without_policy(&mut request, cause);
        self.finish_now(request, decision, user_agent, started)
    }

    /// A decision of `cause` made without the policy: the request gets the server's clock and
    /// a trace id, the decision the revision of the tenant's bundle (if loaded) and no reason.
    fn without_policy(&self, request: &mut Request, cause: Cause) -> Decision {
        self.prepare(request);
        let revision = match self.snapshot(&request.tenant) {
            Some(snapshot) => Arc::clone(snapshot.revision()),
            None => unknown_revision(),
        };
        portcullis_policy::refuse(request, &revision, cause)
    }

    /// A request a protection stage of the gateway refused before its policy was asked,
    /// recorded and counted like every decision: denied with [`Cause::Refused`], the stage
    /// named in the decision's `forbids` as `stage:<name>`.
    pub async fn refuse_at_stage(
        &self,
        mut request: Request,
        stage: &str,
        user_agent: Option<&str>,
    ) -> (Request, Decision) {
        let started = Instant::now();
        let mut decision = self.without_policy(&mut request, Cause::Refused);
        decision.forbids = vec![Arc::from(format!("stage:{stage}"))];
        self.finish_now(request, decision, user_agent, started)
            .finish(self)
            .await
    }

    /// A request the gateway let through to its application without a policy question (a
    /// public route, or an application without a permission stage), recorded and counted like
    /// every decision: allowed with [`Cause::Passed`], one reason of kind
    /// [`ReasonKind::Stage`](portcullis_core::ReasonKind::Stage) naming why as `stage:<why>`.
    pub async fn pass_at_stage(
        &self,
        mut request: Request,
        why: &str,
        user_agent: Option<&str>,
    ) -> (Request, Decision) {
        let started = Instant::now();
        let mut decision = self.without_policy(&mut request, Cause::Passed);
        decision.decision = Effect::Allow;
        decision.reasons = vec![portcullis_core::Reason::new(
            portcullis_core::ReasonKind::Stage,
            Arc::from(format!("stage:{why}")),
            Vec::new(),
        )];
        self.finish_now(request, decision, user_agent, started)
            .finish(self)
            .await
    }

    /// Records an answer the edge computed from this question's snapshot (a relationship
    /// query): the request gets the server's clock and a trace id, the decision its trace id;
    /// it is audited and counted like every decision.
    pub async fn record(
        &self,
        mut request: Request,
        mut decision: Decision,
        user_agent: Option<&str>,
    ) -> (Request, Decision) {
        self.prepare(&mut request);
        decision.trace_id = request.trace_id.clone().unwrap_or_default();
        self.finish_now(request, decision, user_agent, Instant::now())
            .finish(self)
            .await
    }

    /// Runs `job` where a question of `tenant` that may be expensive must run: on the
    /// evaluation pool. Relationship queries use it; policy decisions choose by their cost.
    pub async fn run_costly<T, F>(&self, job: F) -> Result<T, crate::evaluation::PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.state.evaluation.run(job).await
    }

    /// Applies the server's clock, environment and a trace id to a request.
    fn prepare(&self, request: &mut Request) {
        let caller_time = self
            .snapshot(&request.tenant)
            .is_some_and(|snapshot| snapshot.settings().accept_request_time);
        if !caller_time || request.context.time.is_none() {
            request.context.time = Some(self.state.now());
        }
        request.env = self.state.environment();
        if request.trace_id.as_deref().is_none_or(str::is_empty) {
            request.trace_id = Some(self.state.new_trace_id());
        }
    }

    /// Evaluates a request on the evaluation pool; if the pool cannot take it, the request
    /// is denied with the reason.
    async fn evaluate_on_pool(
        &self,
        snapshot: Arc<Snapshot>,
        request: Request,
        strategy: Option<String>,
    ) -> (Request, Decision) {
        // The request travels to the pool and back; if the pool cannot take it, a copy
        // answers the denial.
        let kept = request.clone();
        let job_snapshot = Arc::clone(&snapshot);
        let outcome = self
            .state
            .evaluation
            .run(move || {
                let decision = portcullis_policy::decide_with_strategy(
                    &job_snapshot,
                    &request,
                    strategy.as_deref(),
                );
                (request, decision)
            })
            .await;
        match outcome {
            Ok(answer) => answer,
            Err(error) => {
                let mut decision =
                    portcullis_policy::refuse(&kept, snapshot.revision(), Cause::Error);
                decision.trace_id = kept.trace_id.clone().unwrap_or_default();
                decision.errors.push(DecisionError {
                    kind: ErrorKind::Cel,
                    statement: Arc::from("evaluation"),
                    message: error.to_string(),
                });
                (kept, decision)
            }
        }
    }

    /// One page of a search (which subjects, resources or actions `template` would be allowed
    /// with; see `portcullis_policy::Snapshot::search`), answered from this question's
    /// snapshot on the evaluation pool, with the template prepared like every request (the
    /// server's clock, environment, a trace id). The search is recorded and counted as one
    /// decision on the template: allowed when the page found anything. An unknown tenant
    /// finds nothing.
    pub async fn search(
        &self,
        mut template: Request,
        kind: SearchKind,
        after: Option<String>,
        limit: usize,
        user_agent: Option<&str>,
    ) -> Result<(SearchPage, Decision), SearchFailure> {
        if kind != SearchKind::Action {
            template.qualify_action();
        }
        self.prepare(&mut template);
        let started = Instant::now();
        let Some(snapshot) = self.snapshot(&template.tenant).cloned() else {
            let decision =
                portcullis_policy::refuse(&template, &unknown_revision(), Cause::TenantUnknown);
            let (_, decision) = self.finish(template, decision, user_agent, started).await;
            let page = SearchPage {
                results: Vec::new(),
                next: None,
            };
            return Ok((page, decision));
        };
        let job_snapshot = Arc::clone(&snapshot);
        let job_template = template.clone();
        let outcome = self
            .state
            .evaluation
            .run(move || job_snapshot.search(kind, &job_template, after.as_deref(), limit))
            .await;
        let mut decision =
            portcullis_policy::refuse(&template, snapshot.revision(), Cause::NoGrant);
        decision.revision.data = snapshot.data_revision();
        let page = match outcome {
            Ok(Ok(page)) => {
                if !page.results.is_empty() {
                    decision.decision = Effect::Allow;
                    decision.cause = Cause::Granted;
                }
                Ok(page)
            }
            Ok(Err(error)) => Err(SearchFailure::Search(error)),
            Err(error) => Err(SearchFailure::Busy(error)),
        };
        if let Err(failure) = &page {
            decision.cause = Cause::Error;
            decision.errors.push(DecisionError {
                kind: ErrorKind::Relation,
                statement: Arc::from("search"),
                message: failure.to_string(),
            });
        }
        let (_, decision) = self.finish(template, decision, user_agent, started).await;
        page.map(|page| (page, decision))
    }

    /// Audits and counts a decision; a decision the audit log refuses becomes a denial.
    async fn finish(
        &self,
        request: Request,
        decision: Decision,
        user_agent: Option<&str>,
        started: Instant,
    ) -> (Request, Decision) {
        match self.queue_record(request, decision, user_agent, started) {
            Ok(done) => done,
            Err(waiting) => Box::pin(self.record_when_room(waiting, started)).await,
        }
    }

    /// Audits and counts a decision if its record can be queued at once; otherwise hands it
    /// back to wait for room in the audit buffer.
    fn finish_now(
        &self,
        request: Request,
        decision: Decision,
        user_agent: Option<&str>,
        started: Instant,
    ) -> Decided {
        match self.queue_record(request, decision, user_agent, started) {
            Ok((request, decision)) => Decided::Now(request, decision),
            Err(waiting) => Decided::Later(Box::new(Pending {
                request: waiting.request,
                stage: Stage::Record {
                    decision: waiting.decision,
                    record: waiting.record,
                },
                started,
            })),
        }
    }

    /// Queues a decision's record and counts the decision; a decision the audit log refuses
    /// becomes a denial. A record the full buffer does not take is handed back.
    fn queue_record(
        &self,
        request: Request,
        mut decision: Decision,
        user_agent: Option<&str>,
        started: Instant,
    ) -> Result<(Request, Decision), Box<Unrecorded>> {
        if let Some(audit) = &self.state.audit {
            let known = self.snapshot(&request.tenant).is_some();
            let request_id = crate::request_id::current();
            let queued = audit.decision_now(
                &request,
                &decision,
                self.edge,
                user_agent,
                request_id
                    .as_ref()
                    .map(crate::request_id::RequestId::as_str),
                known,
            );
            match queued {
                Ok(()) => {}
                Err(NotQueued::Refused(error)) => refused_by_audit(&request, &mut decision, &error),
                Err(NotQueued::Full(record)) => {
                    return Err(Box::new(Unrecorded {
                        request,
                        decision,
                        record,
                    }));
                }
            }
        }
        self.count(&request, &decision, started);
        Ok((request, decision))
    }

    /// Waits for room for a decision's record, then counts the decision; a record that
    /// finds no room in time turns the decision into a denial.
    async fn record_when_room(
        &self,
        waiting: Box<Unrecorded>,
        started: Instant,
    ) -> (Request, Decision) {
        let Unrecorded {
            request,
            mut decision,
            record,
        } = *waiting;
        if let Some(audit) = &self.state.audit
            && let Err(error) = audit.wait_for_room(record).await
        {
            refused_by_audit(&request, &mut decision, &error);
        }
        self.count(&request, &decision, started);
        (request, decision)
    }

    /// Counts a decision in the metrics.
    fn count(&self, request: &Request, decision: &Decision, started: Instant) {
        // Only loaded tenants get their own series: callers must not be able to mint labels.
        let label = if self.snapshot(&request.tenant).is_some() {
            TenantLabel::Loaded(request.tenant.clone())
        } else {
            TenantLabel::Unknown
        };
        self.state
            .metrics
            .decision(label, decision.is_allowed(), self.edge, started.elapsed());
    }
}

/// A decision taken at once, or what it still waits for.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "the common case is taken at once and must not allocate; the rare one is boxed"
)]
pub enum Decided {
    /// Decided, recorded and counted: the request as decided and the decision.
    Now(Request, Decision),
    /// Waiting for the evaluation pool or for room in the audit buffer; complete it with
    /// [`Decided::finish`] on a path with the same policy set.
    Later(Box<Pending>),
}

impl Decided {
    /// The request and decision, once whatever the decision waits for is done.
    pub async fn finish(self, path: &DecisionPath<'_>) -> (Request, Decision) {
        match self {
            Decided::Now(request, decision) => (request, decision),
            // Boxed so that the futures of the edges' common path stay small.
            Decided::Later(pending) => Box::pin(pending.complete(path)).await,
        }
    }
}

/// What a decision that could not be taken at once still has to do.
#[derive(Debug)]
pub struct Pending {
    stage: Stage,
    request: Request,
    started: Instant,
}

#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a stage lives inside the boxed `Pending` only"
)]
enum Stage {
    /// To be evaluated on the evaluation pool, then recorded.
    Evaluate {
        snapshot: Arc<Snapshot>,
        strategy: Option<String>,
        user_agent: Option<String>,
    },
    /// Decided; its record waits for room in the audit buffer.
    Record {
        decision: Decision,
        record: Box<WaitingRecord>,
    },
}

/// A decision whose record the full audit buffer did not take.
struct Unrecorded {
    request: Request,
    decision: Decision,
    record: Box<WaitingRecord>,
}

impl Pending {
    async fn complete(self, path: &DecisionPath<'_>) -> (Request, Decision) {
        let Pending {
            stage,
            request,
            started,
        } = self;
        let waiting = match stage {
            Stage::Evaluate {
                snapshot,
                strategy,
                user_agent,
            } => {
                let (request, decision) = path.evaluate_on_pool(snapshot, request, strategy).await;
                match path.queue_record(request, decision, user_agent.as_deref(), started) {
                    Ok(done) => return done,
                    Err(waiting) => waiting,
                }
            }
            Stage::Record { decision, record } => Box::new(Unrecorded {
                request,
                decision,
                record,
            }),
        };
        path.record_when_room(waiting, started).await
    }
}

/// A decision the audit log could not record becomes a denial that says so.
fn refused_by_audit(request: &Request, decision: &mut Decision, error: &AuditError) {
    tracing::error!(tenant = %request.tenant, %error, "the audit log refused a decision record; denying");
    decision.decision = Effect::Deny;
    decision.cause = Cause::Error;
    decision.reasons.clear();
    decision.errors.push(DecisionError {
        kind: ErrorKind::Audit,
        statement: Arc::from("audit"),
        message: format!("the decision could not be recorded: {error}"),
    });
}

/// Which rule of [`DecisionPath::resolve_tenant`] named the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantSource {
    /// `X-Tenant-ID`.
    Header,
    /// The verified token's tenant claim.
    Token,
    /// The Host matched a tenant's `domain`.
    Host,
    /// The listener's `default_tenant`.
    Default,
}

/// Why a search was not answered.
#[derive(Debug)]
pub enum SearchFailure {
    /// Its candidates could not be enumerated (a relation query over its budget).
    Search(portcullis_policy::SearchError),
    /// The evaluation pool could not take it.
    Busy(crate::evaluation::PoolError),
}

impl std::fmt::Display for SearchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchFailure::Search(error) => {
                write!(f, "the search could not list candidates: {error}")
            }
            SearchFailure::Busy(error) => write!(f, "the search was not run: {error}"),
        }
    }
}

/// The revision named by decisions on a tenant that is not loaded.
fn unknown_revision() -> Arc<str> {
    Arc::from("none")
}
