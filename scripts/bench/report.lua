-- Appended to the scripts above by run.sh and cluster.sh: a seed of its
-- own for each wrk thread, and one line with the figures.
--
-- The seed: unseeded, every thread's math.random (LuaJIT) draws the same
-- sequence, so with -t2 half the requests repeat a key the other thread
-- has just used (for a PUT, a key still in kvr's memory table), which
-- flatters the server; redis-benchmark -r draws its keys at random.
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
init = function(args)
  math.randomseed(os.time() * 1000 + thread_number * 7919)
  math.random(); math.random()
end
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format("RESULT ops/s=%.0f p50=%.2fms p99=%.2fms p99.9=%.2fms errors=%d non2xx=%d\n",
    summary.requests / s, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
