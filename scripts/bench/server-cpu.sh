#!/usr/bin/env bash
# One wrk run against a fresh `kvr serve` (default flags, plus $EXTRA) on a
# copy of an existing store, with the server's CPU time around it: how the
# row cache and GET figures in docs/benchmarks.md were measured.
# Usage: BASE=store.redb [KEYS=1000000] [WARM=30] [EXTRA='--cache-mib N']
#        scripts/bench/server-cpu.sh KVR_BINARY get|put|range|healthz CONNS SECS
# Needs wrk. Prints wrk's RESULT line, the server's peak RSS and its CPU
# ticks (1/100 s) during the measured run.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$1 WORKLOAD=$2 CONNS=$3 SECS=$4
: "${BASE:?BASE=store.redb: a store to copy (kvr batch of scripts/bench/gen.py N)}"
export KEYS=${KEYS:-1000000}
W=$(mktemp -d)
trap 'rc=$?; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; exit $rc' EXIT
cat "scripts/bench/$WORKLOAD.lua" scripts/bench/report.lua > "$W/load.lua"
cp "$BASE" "$W/db.redb"
# shellcheck disable=SC2086 # EXTRA is a list of flags
"$BIN" --db "$W/db.redb" serve --listen 127.0.0.1:0 ${EXTRA:-} > "$W/out" 2> "$W/log" &
PID=$!
for _ in $(seq 100); do grep -q listening "$W/out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$W/out")
if [ "${WARM:-0}" -gt 0 ]; then wrk -t2 -c"$CONNS" -d"${WARM}s" -s "$W/load.lua" "$URL" > /dev/null; fi
before=$(awk '{print $14 + $15}' /proc/$PID/stat)
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$W/load.lua" "$URL" | grep RESULT
after=$(awk '{print $14 + $15}' /proc/$PID/stat)
grep VmHWM /proc/$PID/status
echo "server cpu ticks: $((after - before))"
