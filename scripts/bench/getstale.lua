-- wrk: GET /v1/kv/key:NNNNNNNNNNNN?consistency=stale, keys uniformly random over KEYS.
local keys = tonumber(os.getenv("KEYS") or "1000000")
request = function()
  return wrk.format("GET", string.format("/v1/kv/key:%012d?consistency=stale", math.random(0, keys - 1)))
end
