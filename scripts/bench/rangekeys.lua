-- wrk: GET /v1/range of 100 keys only (keys_only=true: what Redis's
-- ZRANGEBYLEX returns) from a uniformly random start.
local keys = tonumber(os.getenv("KEYS") or "1000000")
request = function()
  return wrk.format("GET", string.format("/v1/range?start=key:%012d&limit=100&keys_only=true", math.random(0, keys - 1)))
end
