#!/usr/bin/env bash
# Instructions per request of two builds, counted by valgrind (cachegrind)
# rather than timed: for a difference of a few percent that the shared
# machine's swings hide from ab.sh (whose CPU per request moves between
# modes ~30 % apart from one server process to the next). Each build's
# server runs under cachegrind on its own copy of one store and answers the
# N requests and then 2N (fixed seed, 4 keep-alive connections from
# python3); the difference over N is printed, so that what does not grow
# with the requests drops out: start-up and stop, and the row cache's
# warm-up, which the first GET misses set off and which is over within the
# first 20,000 GETs of a 1M-key store. Group commits of PUTs depend on
# timing, so a PUT figure moves more than a GET figure.
# Caveats: an instruction is not a cycle (a `memcpy` runs many per cycle,
# a cache miss none). Most builds repeat within ~0.5 %, but one build gave
# 16,281 and then 17,402 per GET, the whole gap in `memcpy`: run each side
# twice, and look with OUT= where a difference lies.
# With OUT=DIR it keeps the cachegrind files there (A.N.cg, A.2N.cg, ...):
# `cg_diff A.N.cg A.2N.cg | cg_annotate /dev/stdin` shows where the
# instructions of N requests went.
# Usage: BASE=store.redb [OUT=DIR] scripts/bench/instructions.sh KVR_A KVR_B get|put|healthz|range|rangekeys [N]
# Needs valgrind and python3.
set -euo pipefail
shopt -s inherit_errexit
A=$1 B=$2 WORKLOAD=$3 N=${4:-20000}
: "${BASE:?BASE=store.redb: a store to copy (kvr batch of scripts/bench/gen.py N)}"
[ -f "$BASE" ] || { echo "BASE=$BASE: no such store" >&2; exit 2; }
W=$(mktemp -d)
trap 'rc=$?; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; exit $rc' EXIT

count() { # BINARY REQUESTS SIDE: instructions of one server run
  local dir
  dir=$(mktemp -d -p "$W")
  cp "$BASE" "$dir/db.redb"
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$dir/cg" \
    "$1" --db "$dir/db.redb" serve --listen 127.0.0.1:0 > "$dir/out" 2> /dev/null &
  local pid=$!
  for _ in $(seq 600); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
  python3 - "$(sed -n 's/^listening on //p' "$dir/out")" "$2" "$WORKLOAD" <<'PY'
import http.client, random, sys, threading
from urllib.parse import urlparse
url, n, workload = urlparse(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
random.seed(7)
keys = [random.randrange(1000000) for _ in range(n)]  # the first N the same
def run(part):
    conn = http.client.HTTPConnection(url.hostname, url.port)
    for k in part:
        if workload == "put":
            conn.request("PUT", "/v1/kv/key:%012d" % k, body=b"v" * 100)
        elif workload == "healthz":
            conn.request("GET", "/healthz")
        elif workload == "range":
            conn.request("GET", "/v1/range?start=key:%012d&limit=100" % k)
        elif workload == "rangekeys":
            conn.request("GET", "/v1/range?start=key:%012d&limit=100&keys_only=true" % k)
        else:
            conn.request("GET", "/v1/kv/key:%012d" % k)
        reply = conn.getresponse()
        reply.read()
        assert reply.status in (200, 404), reply.status
threads = [threading.Thread(target=run, args=(keys[i::4],)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
PY
  kill -TERM "$pid"
  wait "$pid" || true
  if [ -n "${OUT:-}" ]; then cp "$dir/cg" "$OUT/$3.$2.cg"; fi
  sed -n 's/^summary: //p' "$dir/cg"
}

for side in A B; do
  binary=${!side}
  once=$(count "$binary" "$N" "$side")
  twice=$(count "$binary" $((2 * N)) "$side")
  echo "$side $binary: $(( (twice - once) / N )) instructions per $WORKLOAD ($twice - $once over $N)"
done
