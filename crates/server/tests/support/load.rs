//! Latency under load, for the tests that show one tenant cannot slow another: a quiet
//! tenant's p99 measured alone and while a noisy tenant floods, in alternating rounds.
//!
//! The flood is open-loop at a fixed rate: the load generator runs in the test process on the
//! same two cores as the server, so a closed-loop flood as fast as the machine allows would
//! measure CPU starvation by the test itself, which no server-side policy can prevent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Requests timed per round.
pub const SAMPLES: usize = 2000;
/// Rounds per experiment.
pub const ROUNDS: usize = 5;

/// A `/v1/check` body for `tenant`: bob downloading logs from the office.
pub fn check_body(tenant: &str) -> String {
    format!(
        r#"{{"tenant":"{tenant}","principal":{{"id":"bob"}},"action":"app:logs.download","resource":{{"type":"app","id":"payments"}},"context":{{"ip":"172.16.3.4"}}}}"#
    )
}

/// The 99th percentile.
pub fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99) / 100 - 1]
}

/// Times [`SAMPLES`] checks of `body`, one after another; each must answer 200.
pub async fn measure(http: &reqwest::Client, base: &str, body: &str) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let response = http
            .post(format!("{base}/v1/check"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().await.unwrap();
        samples.push(started.elapsed());
    }
    samples
}

/// Answers of a flood, by status.
#[derive(Debug, Default)]
pub struct Tally {
    /// 200s.
    pub answered: AtomicU64,
    /// 429s (each with Retry-After).
    pub refused: AtomicU64,
}

/// Sends `body` to `/v1/check` at `per_second` until `stop`, at most 64 in flight.
pub async fn flood(
    base: String,
    body: String,
    per_second: u64,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let http = super::client();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let due = started.elapsed().as_millis() as u64 * per_second / 1000;
        while sent < due {
            sent += 1;
            let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                continue;
            };
            let (http, base, body, tally) =
                (http.clone(), base.clone(), body.clone(), Arc::clone(&tally));
            requests.spawn(async move {
                let response = http
                    .post(format!("{base}/v1/check"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    200 => tally.answered.fetch_add(1, Ordering::Relaxed),
                    429 => {
                        assert!(response.headers().contains_key("retry-after"));
                        tally.refused.fetch_add(1, Ordering::Relaxed)
                    }
                    other => panic!("unexpected status {other}"),
                };
                response.bytes().await.unwrap();
                drop(permit);
            });
        }
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
}

/// One experiment's figures.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "the per-round figures are read through Debug in the report"
)]
pub struct Outcome {
    /// The quiet tenant's p99 alone, per round, sorted.
    pub unloaded_rounds: Vec<Duration>,
    /// Its p99 during the flood, per round, sorted.
    pub loaded_rounds: Vec<Duration>,
    /// Median over rounds, alone.
    pub unloaded: Duration,
    /// Median over rounds, during the flood.
    pub loaded: Duration,
    /// How long the flood ran in all.
    pub flood_time: Duration,
}

/// Alternates [`ROUNDS`] rounds: the quiet body alone, then while `noisy` floods at
/// `per_second`. Comparing medians over rounds keeps a passing burst of unrelated machine load
/// from deciding the outcome.
pub async fn experiment(
    http: &reqwest::Client,
    base: &str,
    quiet: &str,
    noisy: &str,
    per_second: u64,
    tally: &Arc<Tally>,
) -> Outcome {
    let (mut unloaded_rounds, mut loaded_rounds) = (Vec::new(), Vec::new());
    let mut flood_time = Duration::ZERO;
    for _ in 0..ROUNDS {
        unloaded_rounds.push(p99(measure(http, base, quiet).await));
        let stop = Arc::new(AtomicBool::new(false));
        let flooding = tokio::spawn(flood(
            base.to_owned(),
            noisy.to_owned(),
            per_second,
            Arc::clone(&stop),
            Arc::clone(tally),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        loaded_rounds.push(p99(measure(http, base, quiet).await));
        flood_time += started.elapsed() + Duration::from_millis(100);
        stop.store(true, Ordering::Relaxed);
        flooding.await.unwrap();
    }
    unloaded_rounds.sort();
    loaded_rounds.sort();
    Outcome {
        unloaded: unloaded_rounds[ROUNDS / 2],
        loaded: loaded_rounds[ROUNDS / 2],
        unloaded_rounds,
        loaded_rounds,
        flood_time,
    }
}
