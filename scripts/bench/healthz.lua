-- wrk: GET /healthz, the HTTP ceiling (no storage work).
request = function()
  return wrk.format("GET", "/healthz")
end
