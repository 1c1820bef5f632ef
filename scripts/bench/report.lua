-- Appended to the scripts above by run.sh: one line with the figures.
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format("RESULT ops/s=%.0f p50=%.2fms p99=%.2fms p99.9=%.2fms errors=%d non2xx=%d\n",
    summary.requests / s, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
