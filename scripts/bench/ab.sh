#!/usr/bin/env bash
# Two builds (or two sets of flags) under the same load: both servers run at
# once, each on its own copy of one store, and the load alternates between
# them, so that the shared machine's swings fall on both alike. Per run it
# prints ops/s and the server's CPU per request (from /proc/PID/stat), then
# the medians: how most build-against-build figures in docs/benchmarks.md
# were taken. A difference smaller than the spread of either side's runs is
# noise.
# Usage: BASE=store.redb [KEYS=1000000] [WARM=5] [CONNS=64]
#        [EXTRA_A='--flag'] [EXTRA_B='--flag']
#        scripts/bench/ab.sh KVR_A KVR_B get|put|range|healthz ROUNDS SECS
# Needs wrk and python3.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
A=$1 B=$2 WORKLOAD=$3 ROUNDS=$4 SECS=$5
CONNS=${CONNS:-64}
: "${BASE:?BASE=store.redb: a store to copy (kvr batch of scripts/bench/gen.py N)}"
[ -f "$BASE" ] || { echo "BASE=$BASE: no such store" >&2; exit 2; }
export KEYS=${KEYS:-1000000}
W=$(mktemp -d)
trap 'rc=$?; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; exit $rc' EXIT
cat "scripts/bench/$WORKLOAD.lua" scripts/bench/report.lua > "$W/load.lua"

start() { # NAME BINARY EXTRA: starts a server, sets PID_NAME and URL_NAME
  mkdir "$W/$1"
  cp "$BASE" "$W/$1/db.redb"
  # shellcheck disable=SC2086 # EXTRA is a list of flags
  # The access log (stderr) goes to a file, as a service's would.
  "$2" --db "$W/$1/db.redb" serve --listen 127.0.0.1:0 $3 > "$W/$1/out" 2> "$W/$1/log" &
  printf -v "PID_$1" %s $!
  for _ in $(seq 100); do grep -q listening "$W/$1/out" 2>/dev/null && break; sleep 0.1; done
  printf -v "URL_$1" %s "$(sed -n 's/^listening on //p' "$W/$1/out")"
}
start a "$A" "${EXTRA_A:-}"
start b "$B" "${EXTRA_B:-}"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for side in a b; do
  url=URL_$side
  wrk -t2 -c"$CONNS" -d"${WARM:-5}s" -s "$W/load.lua" "${!url}" > /dev/null
done
for round in $(seq "$ROUNDS"); do
  # Neither side is always the one measured first.
  order="a b"; [ $((round % 2)) = 0 ] && order="b a"
  for side in $order; do
    pid=PID_$side url=URL_$side
    before=$(cpu "${!pid}")
    ops=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$W/load.lua" "${!url}" |
      sed -n 's/^RESULT ops\/s=\([0-9]*\).*/\1/p')
    after=$(cpu "${!pid}")
    # CPU ticks are 1/100 s: µs per request = ticks * 10000 / requests.
    echo "$side $ops $(( (after - before) * 10000 ))" | awk '{printf "%s ops/s=%d us_per_request=%.2f\n", $1, $2, $3 / ($2 * '"$SECS"')}'
  done
done | tee "$W/runs"
python3 - "$W/runs" <<'PY'
import re, statistics, sys
runs = {"a": [], "b": []}
for line in open(sys.argv[1]):
    m = re.match(r"(\w) ops/s=(\d+) us_per_request=([\d.]+)", line)
    runs[m.group(1)].append((int(m.group(2)), float(m.group(3))))
for side, rs in runs.items():
    ops = [r[0] for r in rs]
    us = [r[1] for r in rs]
    print(f"{side}: median {statistics.median(ops):.0f} ops/s ({min(ops)}-{max(ops)}), "
          f"{statistics.median(us):.2f} us of server CPU per request ({min(us):.2f}-{max(us):.2f})")
PY
