//! Keeps the supply-chain signal current for the running service (see [`crate::supply`]): a
//! scan at start (before the listeners open), every `interval_seconds`, on `SIGHUP` and on an
//! admin call; each publishes the signal decisions read, counts the scan in the metrics, and
//! logs and audits a change of the signal in the `system` tenant's trail
//! (`supply_chain.raised` / `supply_chain.cleared`).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::audit::SYSTEM_TENANT;
use crate::state::AppState;
use crate::supply::{ScanStatus, is_change, run, status_after};

/// Runs one scan (when configured), publishes its signal and records a change of it. Returns
/// the new status.
pub async fn scan(state: &Arc<AppState>, trigger: &'static str) -> Arc<ScanStatus> {
    let Some(settings) = state.config.supply_chain.clone() else {
        return state.supply.status();
    };
    let _one = state.supply.one_at_a_time().await;
    let at = state.now();
    let today = at.to_zoned(jiff::tz::TimeZone::UTC).date();
    let blocking = settings.clone();
    let scanned = tokio::task::spawn_blocking(move || run(&blocking, today))
        .await
        .unwrap_or_else(|e| Err(format!("the scan stopped: {e}")));
    let previous = state.supply.status();
    let status = Arc::new(status_after(&settings, scanned, &previous, trigger, at));
    state.set_supply_signal(status.high_risk, &status.advisories);
    state.metrics.supply_scan(
        if status.error.is_some() {
            "error"
        } else {
            "ok"
        },
        status.high_risk,
    );
    state.supply.publish(Arc::clone(&status));
    if is_change(&previous, &status) {
        record(state, &status).await;
    }
    status
}

/// Logs and audits a change of the signal (in the `system` tenant's trail, as an
/// administrative event of the service itself).
async fn record(state: &AppState, status: &ScanStatus) {
    if status.high_risk {
        tracing::warn!(reason = %status.reason, "supply-chain signal raised: writes are denied");
    } else {
        tracing::info!(reason = %status.reason, "supply-chain signal low: writes are allowed");
    }
    let Some(audit) = &state.audit else {
        return;
    };
    let mut details = Map::new();
    details.insert("high_risk".into(), Value::Bool(status.high_risk));
    details.insert(
        "advisories".into(),
        Value::Array(
            status
                .advisories
                .iter()
                .cloned()
                .map(Value::String)
                .collect(),
        ),
    );
    details.insert("reason".into(), Value::String(status.reason.clone()));
    if let Some(trigger) = status.trigger {
        details.insert("trigger".into(), Value::String(trigger.into()));
    }
    if let Some(report) = &status.report
        && let Ok(revision) = serde_json::to_value(&report.database)
    {
        details.insert("database".into(), revision);
    }
    let action = if status.high_risk {
        "supply_chain.raised"
    } else {
        "supply_chain.cleared"
    };
    if let Err(error) = audit
        .change(
            SYSTEM_TENANT,
            "portcullis",
            action,
            "tenant:*",
            true,
            details,
        )
        .await
    {
        tracing::error!(%error, action, "a change of the supply-chain signal could not be audited");
    }
}

/// Scans at start and then every `interval` until `stop` changes.
pub fn spawn_periodic(
    state: Arc<AppState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = state.config.supply_chain.as_ref()?.interval;
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => { scan(&state, "interval").await; }
                _ = stop.changed() => break,
            }
        }
    }))
}
