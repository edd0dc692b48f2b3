//! Measurement helpers shared by the `report` and `alloc-stats` binaries.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::engines::Engine;
use crate::world::RawQuery;

/// Latency and throughput of one engine on one workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Per-call samples taken.
    pub samples: usize,
    /// Passes over the query list.
    pub passes: usize,
    /// Median per-call time, timer overhead subtracted, in nanoseconds.
    pub p50: f64,
    /// 99th percentile per-call time, timer overhead subtracted, in nanoseconds.
    pub p99: f64,
    /// Mean per-call time, timer overhead subtracted, in nanoseconds.
    pub mean: f64,
    /// Decisions per second in a loop without per-call timers.
    pub throughput: f64,
}

/// The cost of reading the clock twice back to back, as seen by per-call timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimerOverhead {
    /// Median of `Instant::now()` → `Instant::now()` differences, nanoseconds.
    pub p50: f64,
    /// 99th percentile of the same, nanoseconds.
    pub p99: f64,
}

/// The value at quantile `q` of sorted samples.
pub fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let last = sorted.len() - 1;
    let index = ((last as f64) * q).round() as usize;
    sorted.get(index.min(last)).copied().unwrap_or(0) as f64
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Measures the timer itself over `rounds` back-to-back reads.
pub fn timer_overhead(rounds: usize) -> TimerOverhead {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let end = Instant::now();
        samples.push(nanos(end.duration_since(start)));
    }
    samples.sort_unstable();
    TimerOverhead {
        p50: quantile(&samples, 0.5),
        p99: quantile(&samples, 0.99),
    }
}

/// Times every call of `engine` over `passes` passes of `queries`, then measures throughput
/// over the same passes with no per-call timer.
pub fn latency<E: Engine>(
    engine: &mut E,
    queries: &[RawQuery],
    passes: usize,
    overhead: TimerOverhead,
) -> Result<Latency> {
    let passes = passes.max(1);
    let mut samples = Vec::with_capacity(queries.len() * passes);
    for _ in 0..passes {
        for query in queries {
            let start = Instant::now();
            let allowed = engine.decide(black_box(query));
            let end = Instant::now();
            black_box(allowed.with_context(|| format!("{} failed", engine.name()))?);
            samples.push(nanos(end.duration_since(start)));
        }
    }
    let start = Instant::now();
    for _ in 0..passes {
        for query in queries {
            black_box(engine.decide(black_box(query))?);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    samples.sort_unstable();
    let net = |value: f64| (value - overhead.p50).max(0.0);
    let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / samples.len().max(1) as f64;
    Ok(Latency {
        samples: samples.len(),
        passes,
        p50: net(quantile(&samples, 0.5)),
        p99: net(quantile(&samples, 0.99)),
        mean: net(mean),
        throughput: (queries.len() * passes) as f64 / elapsed,
    })
}

/// Resident set size of this process in bytes, from `/proc/self/status` (Linux).
pub fn resident_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("VmRSS value")?;
    Ok(kib * 1024)
}
