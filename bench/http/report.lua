-- Shared by the wrk scripts: prints one machine-readable RESULT line at the end of a run
-- (throughput, latency percentiles including p99.9, error counts). Latencies are in
-- microseconds, as wrk measures them (from write of the request to read of the response).
function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local errors = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_s=%.3f rps=%.1f p50_us=%d p75_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f connect_err=%d read_err=%d write_err=%d timeout_err=%d non2xx=%d\n",
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
      errors.connect, errors.read, errors.write, errors.timeout, errors.status))
end
