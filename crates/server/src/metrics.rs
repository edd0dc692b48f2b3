//! Prometheus metrics: decisions by tenant, outcome and edge; decision latency; reloads.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use portcullis_core::TenantId;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The tenant label of a decision: a loaded tenant's id (shared, not copied per decision), or
/// `unknown`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum TenantLabel {
    /// A loaded tenant.
    Loaded(TenantId),
    /// A tenant that is not loaded.
    Unknown,
}

impl EncodeLabelValue for TenantLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            TenantLabel::Loaded(tenant) => tenant.as_str(),
            TenantLabel::Unknown => "unknown",
        })
    }
}

/// Labels of the decision counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// Tenant id, or `unknown` for tenants that are not loaded (callers cannot mint series).
    pub tenant: TenantLabel,
    /// `allow` or `deny`.
    pub outcome: &'static str,
    /// Which edge answered.
    pub edge: &'static str,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeLabels {
    /// Which edge answered.
    pub edge: &'static str,
}

/// Labels of the reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `applied`, `unchanged` or `failed` (per bundle).
    pub outcome: &'static str,
    /// What triggered it: `start`, `watch`, `signal`, `admin`, `upload`.
    pub trigger: &'static str,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    latency: Family<EdgeLabels, Histogram>,
    // The series a decision updates, found again by a cheap hash: the families hash their
    // labels with SipHash under a lock on every update. Handles share their series with the
    // families, which the exposition reads. Bounded like the families: loaded tenants (and
    // `unknown`) times edges times two outcomes.
    handles: RwLock<rustc_hash::FxHashMap<DecisionLabels, (Counter, Histogram)>>,
    reloads: Family<ReloadLabels, Counter>,
    tenants: Gauge,
    audit_buffered: Gauge,
    audit_capacity: Gauge,
    supply_high_risk: Gauge,
    supply_scans: Family<ScanLabels, Counter>,
    gateway_stages: Family<GatewayStageLabels, Counter>,
    gateway_latency: Family<GatewayAppLabels, Histogram>,
    gateway_stage_time: Family<GatewayStageTimeLabels, Histogram>,
    gateway_reloads: Family<ScanLabels, Counter>,
    last_reload_failures: AtomicU64,
}

/// Labels of the gateway's per-stage counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayStageLabels {
    /// The application's host as configured (`*` for the catch-all).
    pub app: String,
    /// The stage.
    pub stage: &'static str,
    /// `passed` or `refused`.
    pub outcome: &'static str,
}

/// Labels of the gateway's per-stage time histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayStageTimeLabels {
    /// The application's host as configured (`*` for the catch-all).
    pub app: String,
    /// The stage.
    pub stage: &'static str,
}

/// Labels of the gateway's latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayAppLabels {
    /// The application's host as configured.
    pub app: String,
}

/// Labels of a supply-chain scan, or of a reload of the gateway's configuration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScanLabels {
    /// A scan: `ok` or `error` (the scan could not run). A gateway reload: `applied` or
    /// `failed`.
    pub outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("portcullis");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let latency = Family::<EdgeLabels, Histogram>::new_with_constructor(|| {
            // 1 µs to ~16 s.
            Histogram::new(exponential_buckets(0.000_001, 2.0, 25))
        });
        let reloads = Family::<ReloadLabels, Counter>::default();
        let tenants = Gauge::default();
        registry.register(
            "decisions",
            "Decisions made, by tenant, outcome and edge",
            decisions.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time to decide, from a parsed request to a decision, by edge",
            latency.clone(),
        );
        registry.register(
            "bundle_reloads",
            "Bundle (re)loads, by outcome and trigger",
            reloads.clone(),
        );
        registry.register("tenants", "Tenants with a loaded bundle", tenants.clone());
        let audit_buffered = Gauge::default();
        let audit_capacity = Gauge::default();
        registry.register(
            "audit_buffered_records",
            "Decision records waiting in the audit buffer for the next group commit",
            audit_buffered.clone(),
        );
        registry.register(
            "audit_buffer_capacity_records",
            "Capacity of the audit buffer; when full, the tenant's policy blocks or denies",
            audit_capacity.clone(),
        );
        let supply_high_risk = Gauge::default();
        let supply_scans = Family::<ScanLabels, Counter>::default();
        registry.register(
            "supply_chain_high_risk",
            "1 while the dependency scan finds an unwaived high-risk advisory (writes are denied)",
            supply_high_risk.clone(),
        );
        registry.register(
            "supply_chain_scans",
            "Dependency scans of this binary, by outcome",
            supply_scans.clone(),
        );
        let gateway_stages = Family::<GatewayStageLabels, Counter>::default();
        let gateway_latency = Family::<GatewayAppLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_001, 2.0, 25))
        });
        registry.register(
            "gateway_stage_requests",
            "Gateway requests each stage passed or refused, by application",
            gateway_stages.clone(),
        );
        let gateway_stage_time =
            Family::<GatewayStageTimeLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_000_25, 2.0, 25))
            });
        registry.register(
            "gateway_stage_duration_seconds",
            "Time each stage spent on a gateway request and its answer (the stages inside it not counted; the upstream's is its round trip), by application",
            gateway_stage_time.clone(),
        );
        registry.register(
            "gateway_duration_seconds",
            "Time from a request's arrival at the gateway to its answer's head, upstream included, by application",
            gateway_latency.clone(),
        );
        let gateway_reloads = Family::<ScanLabels, Counter>::default();
        registry.register(
            "gateway_reloads",
            "Reloads of the gateway's configuration, by outcome",
            gateway_reloads.clone(),
        );
        Metrics {
            registry,
            decisions,
            latency,
            handles: RwLock::default(),
            reloads,
            tenants,
            audit_buffered,
            audit_capacity,
            supply_high_risk,
            supply_scans,
            gateway_stages,
            gateway_latency,
            gateway_stage_time,
            gateway_reloads,
            last_reload_failures: AtomicU64::new(0),
        }
    }

    /// The counter of one gateway application's stage and outcome (taken once per application,
    /// so that a request only increments).
    pub fn gateway_stage(&self, app: &str, stage: &'static str, outcome: &'static str) -> Counter {
        self.gateway_stages
            .get_or_create(&GatewayStageLabels {
                app: app.to_owned(),
                stage,
                outcome,
            })
            .clone()
    }

    /// The time histogram of one gateway application's stage (taken once per application).
    pub fn gateway_stage_time(&self, app: &str, stage: &'static str) -> Histogram {
        self.gateway_stage_time
            .get_or_create(&GatewayStageTimeLabels {
                app: app.to_owned(),
                stage,
            })
            .clone()
    }

    /// Counts one reload of the gateway's configuration (`applied` or `failed`).
    pub fn gateway_reload(&self, outcome: &'static str) {
        self.gateway_reloads
            .get_or_create(&ScanLabels { outcome })
            .inc();
    }

    /// The latency histogram of one gateway application.
    pub fn gateway_latency(&self, app: &str) -> Histogram {
        self.gateway_latency
            .get_or_create(&GatewayAppLabels {
                app: app.to_owned(),
            })
            .clone()
    }

    /// Counts one decision.
    pub fn decision(
        &self,
        tenant: TenantLabel,
        allowed: bool,
        edge: &'static str,
        elapsed: Duration,
    ) {
        let labels = DecisionLabels {
            tenant,
            outcome: if allowed { "allow" } else { "deny" },
            edge,
        };
        let seconds = elapsed.as_secs_f64();
        let known = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&labels)
            .map(|(counter, latency)| {
                counter.inc();
                latency.observe(seconds);
            });
        if known.is_some() {
            return;
        }
        let counter = self.decisions.get_or_create(&labels).clone();
        let latency = self.latency.get_or_create(&EdgeLabels { edge }).clone();
        counter.inc();
        latency.observe(seconds);
        self.handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(labels, (counter, latency));
    }

    /// Forgets the series handles of tenants no longer loaded (their series stay exposed).
    pub fn retain_tenants(&self, loaded: impl Fn(&TenantId) -> bool) {
        self.handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|labels, _| match &labels.tenant {
                TenantLabel::Loaded(tenant) => loaded(tenant),
                TenantLabel::Unknown => true,
            });
    }

    /// Counts one bundle (re)load.
    pub fn reload(&self, outcome: &'static str, trigger: &'static str) {
        self.reloads
            .get_or_create(&ReloadLabels { outcome, trigger })
            .inc();
    }

    /// Records how many tenants are loaded and how many bundles failed in the last reload.
    pub fn loaded(&self, tenants: usize, failures: usize) {
        self.tenants.set(i64::try_from(tenants).unwrap_or(i64::MAX));
        self.last_reload_failures
            .store(failures as u64, Ordering::Relaxed);
    }

    /// Bundles that failed in the last reload.
    pub fn last_reload_failures(&self) -> u64 {
        self.last_reload_failures.load(Ordering::Relaxed)
    }

    /// Counts one dependency scan and sets the supply-chain signal's gauge.
    pub fn supply_scan(&self, outcome: &'static str, high_risk: bool) {
        self.supply_scans
            .get_or_create(&ScanLabels { outcome })
            .inc();
        self.supply_high_risk.set(i64::from(high_risk));
    }

    /// Records the audit buffer's level and capacity (read at each scrape).
    pub fn audit_buffer(&self, buffered: usize, capacity: usize) {
        self.audit_buffered
            .set(i64::try_from(buffered).unwrap_or(i64::MAX));
        self.audit_capacity
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn series(metrics: &Metrics, needle: &str) -> Option<String> {
        metrics
            .encode()
            .lines()
            .find(|line| line.starts_with(needle))
            .map(str::to_owned)
    }

    #[test]
    fn decisions_counted_through_the_handles_reach_the_exposition() {
        let metrics = Metrics::new();
        let acme = TenantLabel::Loaded(TenantId::new("acme").unwrap());
        for _ in 0..3 {
            metrics.decision(acme.clone(), true, "http", Duration::from_micros(5));
        }
        metrics.decision(acme.clone(), false, "http", Duration::from_micros(5));
        metrics.decision(
            TenantLabel::Unknown,
            false,
            "nginx",
            Duration::from_micros(5),
        );
        let allowed = series(
            &metrics,
            r#"portcullis_decisions_total{tenant="acme",outcome="allow",edge="http"}"#,
        );
        assert!(allowed.is_some_and(|line| line.ends_with(" 3")));
        let denied = series(
            &metrics,
            r#"portcullis_decisions_total{tenant="acme",outcome="deny",edge="http"}"#,
        );
        assert!(denied.is_some_and(|line| line.ends_with(" 1")));
        let latency = series(
            &metrics,
            r#"portcullis_decision_duration_seconds_count{edge="http"}"#,
        );
        assert!(latency.is_some_and(|line| line.ends_with(" 4")));

        // Forgetting a tenant's handles keeps its series and counts on from them.
        metrics.retain_tenants(|_| false);
        metrics.decision(acme, true, "http", Duration::from_micros(5));
        let allowed = series(
            &metrics,
            r#"portcullis_decisions_total{tenant="acme",outcome="allow",edge="http"}"#,
        );
        assert!(allowed.is_some_and(|line| line.ends_with(" 4")));
    }
}
