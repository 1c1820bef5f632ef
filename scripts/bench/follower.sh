#!/usr/bin/env bash
# PUTs and stale GETs through one follower of a three-node cluster at the
# same time (wrk -t1 -c16 each), for builds given as arguments, alternating
# in rounds: what a follower's answer to a forwarded write costs, and
# whether its stale reads wait for writes in flight. KEYS (default 100k)
# pairs are preloaded. Usage: scripts/bench/follower.sh KVR [KVR...]
# (SECS, default 10; ROUNDS, default 2). Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-2}
KEYS=${KEYS:-100000}
export KEYS
[ $# -gt 0 ] || { echo "usage: $0 KVR [KVR...]" >&2; exit 2; }
W=$(mktemp -d)
stop_all() { kill $(cat "$W/pids" 2>/dev/null) 2>/dev/null || true; : > "$W/pids"; sleep 1; }
trap 'stop_all; rm -rf "$W"' EXIT
for s in put getstale; do cat scripts/bench/$s.lua scripts/bench/report.lua > "$W/$s.lua"; done
python3 scripts/bench/gen.py "$KEYS" > "$W/pairs.jsonl"
serve() { # kvr name extra... -> prints the URL
  local kvr=$1 name=$2; shift 2
  "$kvr" --db "$W/$name.redb" serve --listen 127.0.0.1:0 --raft-listen 127.0.0.1:0 "$@" \
    > "$W/$name.out" 2> "$W/$name.log" &
  echo $! >> "$W/pids"
  for _ in $(seq 600); do grep -q '^listening' "$W/$name.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$W/$name.out"
}
voters() { curl -s "$1/v1/cluster" | python3 -c 'import json,sys; print(sum(n["voter"] for n in json.load(sys.stdin)["nodes"]))'; }
for round in $(seq "$ROUNDS"); do
  for kvr in "$@"; do
    rm -rf "$W"/n*.redb "$W"/n*.redb.raft
    "$kvr" --db "$W/n1.redb" batch "$W/pairs.jsonl" 2> /dev/null
    N1=$(serve "$kvr" n1 --cluster-init)
    N2=$(serve "$kvr" n2 --join "$N1")
    until [ "$(voters "$N1")" = 2 ]; do sleep 0.1; done
    serve "$kvr" n3 --join "$N1" > /dev/null
    until [ "$(voters "$N1")" = 3 ]; do sleep 0.1; done
    sleep 1
    echo "== round $round $kvr"
    wrk -t1 -c16 -d"${SECS}s" --latency -s "$W/put.lua" "$N2" | grep RESULT | sed 's/^/PUT via follower    /' &
    wrk -t1 -c16 -d"${SECS}s" --latency -s "$W/getstale.lua" "$N2" | grep RESULT | sed 's/^/stale GET follower  /'
    wait
    stop_all
  done
done
