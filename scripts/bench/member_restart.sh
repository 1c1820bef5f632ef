#!/usr/bin/env bash
# A cluster member's restart after kill -9 with a long Raft log to replay:
# a 3-node cluster (default flags), wrk PUTs through the leader for SECS
# (new entries since the last snapshot, which comes every 2,000,000 entries
# or 256 MiB of log), then the leader is killed (-9) and started again. It
# prints the log's size, then the time from the restart to its
# `listening` line, to its first stale read answered (200), and to /readyz
# 200 (caught up with the new leader).
# Usage: scripts/bench/member_restart.sh [SECS]; needs wrk and a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-60}
KVR=${KVR:-$PWD/target/release/kvr}
W=$(mktemp -d)
trap 'kill $(cat "$W/pids" 2>/dev/null) 2>/dev/null || true; sleep 0.5; rm -rf "$W"' EXIT
cat scripts/bench/put.lua scripts/bench/report.lua > "$W/put.lua"

start() { # name listen raft extra...
  local name=$1 listen=$2 raft=$3; shift 3
  $KVR --db "$W/$name.redb" serve --listen "$listen" --raft-listen "$raft" "$@" \
    > "$W/$name.out" 2> "$W/$name.log" &
  echo $! >> "$W/pids"
  echo $! > "$W/$name.pid"
}
wait_line() { for _ in $(seq 6000); do grep -q '^listening' "$W/$1.out" 2>/dev/null && return; sleep 0.01; done; }
code() { curl -s -o /dev/null -w '%{http_code}' "$1"; }
now() { date +%s.%N; }

url_of() { sed -n 's/^listening on //p' "$W/$1.out"; }
start n1 127.0.0.1:0 127.0.0.1:0 --cluster-init
wait_line n1
N1=$(url_of n1)
for _ in $(seq 100); do grep -q '^raft listening' "$W/n1.out" && break; sleep 0.05; done
RAFT1=$(sed -n 's/^raft listening on //p' "$W/n1.out")
until [ "$(code "$N1/readyz")" = 200 ]; do sleep 0.1; done
start n2 127.0.0.1:0 127.0.0.1:0 --join "$N1"
start n3 127.0.0.1:0 127.0.0.1:0 --join "$N1"
for n in n2 n3; do
  wait_line $n
  until [ "$(code "$(url_of $n)/readyz")" = 200 ]; do sleep 0.1; done
done

wrk -t2 -c64 -d"${SECS}s" -s "$W/put.lua" "$N1" | grep RESULT
committed=$(curl -s "$N1/v1/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin)["committed"])')
echo "log: $(du -sm "$W/n1.redb.raft" | cut -f1) MB in $(ls "$W/n1.redb.raft" | grep -c seg) segments, committed index $committed; file $(du -m "$W/n1.redb" | cut -f1) MB"

kill -9 "$(cat "$W/n1.pid")"
sleep 0.2
: > "$W/n1.out"
t0=$(now)
start n1 "${N1#http://}" "$RAFT1"
wait_line n1
t1=$(now)
until [ "$(code "$N1/v1/stats?consistency=stale")" = 200 ]; do sleep 0.01; done
t2=$(now)
until [ "$(code "$N1/readyz")" = 200 ]; do sleep 0.01; done
t3=$(now)
python3 -c "print(f'restart after kill -9: listening {$t1-$t0:.2f} s, first stale read {$t2-$t0:.2f} s, ready {$t3-$t0:.2f} s')"
curl -s "$N1/v1/stats?consistency=stale"; echo
echo "its start, as it logged it:"
grep 'kvr serve:' "$W/n1.log" | tail -n 4 | cut -c1-220
