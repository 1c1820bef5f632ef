#!/usr/bin/env bash
# Watch fan-out figures in one run against one server on a store preloaded
# with KEYS pairs (default 1M): memory per idle watcher; PUT throughput
# (wrk, 64 connections, scripts/bench/put.lua) with no watcher, with
# WATCHERS (default 1,000) idle watchers of a prefix the writes do not
# touch, and with as many watchers of every key that read all they get;
# event latency at 64 writing clients (latency.py), without and with the
# idle watchers. Usage: [ROUNDS=2] scripts/watch/fanout.sh [SECONDS] (per
# wrk run, default 10); needs wrk, python3 and a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
KEYS=${KEYS:-1000000}
N=${WATCHERS:-1000}
export KEYS
KVR=./target/release/kvr
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
cat scripts/bench/put.lua scripts/bench/report.lua > "$W/put.lua"
python3 scripts/bench/gen.py "$KEYS" > "$W/pairs.jsonl"
$KVR --db "$W/kvr.redb" batch "$W/pairs.jsonl" 2>&1 | tail -1
rm "$W/pairs.jsonl"
$KVR --db "$W/kvr.redb" serve --listen 127.0.0.1:0 --quiet > "$W/serve.out" 2> "$W/serve.log" &
SPID=$!
for _ in $(seq 100); do grep -q listening "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$W/serve.out")
HP=${URL#http://}
rss() { awk '/VmRSS/{print $2}' "/proc/$SPID/status"; }
watchers() { # idle.py arguments after HOST:PORT N
  python3 scripts/watch/idle.py "$HP" "$N" "$@" > "$W/idle.out" &
  IPID=$!
  for _ in $(seq 600); do grep -q ready "$W/idle.out" && return; sleep 0.1; done
  echo "watchers not ready: $(cat "$W/idle.out")"; exit 1
}
unwatch() { kill "$IPID"; wait "$IPID" 2>/dev/null || true; grep drained "$W/idle.out" || true; }
cpu() { awk '{print $14 + $15}' "/proc/$SPID/stat"; } # server CPU, clock ticks
put() { # also the server's CPU time per 1,000 puts (less noisy on a shared machine)
  printf '%-52s' "$1"
  local c0 r c1
  c0=$(cpu)
  r=$(wrk -t2 -c64 -d"${SECS}s" --latency -s "$W/put.lua" "$URL" | grep RESULT)
  c1=$(cpu)
  echo "$r" | awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v s="$SECS" \
    '{split($2, a, "="); printf "%s server_cpu_ms_per_1k_puts=%.1f\n", $0, t * 1000 / hz / (a[2] * s / 1000)}'
}

sleep 2
before=$(rss)
watchers
sleep 2
after=$(rss)
unwatch
echo "$N idle watchers: RSS $before -> $after KiB, $(( (after - before) * 1024 / N )) bytes per watcher"

for round in $(seq "${ROUNDS:-2}"); do
  echo "== round $round"
  put "PUT c64, no watcher"
  watchers "prefix=idle/"
  put "PUT c64, $N idle watchers of prefix idle/"
  unwatch
  watchers "progress=10" --drain
  put "PUT c64, $N reading watchers of every key"
  unwatch
done
echo "== event latency, 64 writing clients"
printf '%-24s' "no other watcher:"; python3 scripts/watch/latency.py 127.0.0.1 "${HP#*:}" 64 200
watchers "prefix=idle/"
printf '%-24s' "$N idle watchers:"; python3 scripts/watch/latency.py 127.0.0.1 "${HP#*:}" 64 200
unwatch
