-- wrk: PUT /v1/kv/key:NNNNNNNNNNNN with a 100-byte body, keys uniformly
-- random over KEYS (default 1,000,000).
local keys = tonumber(os.getenv("KEYS") or "1000000")
local body = string.rep("v", 100)
request = function()
  return wrk.format("PUT", string.format("/v1/kv/key:%012d", math.random(0, keys - 1)), nil, body)
end
