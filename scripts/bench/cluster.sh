#!/usr/bin/env bash
# Cluster figures (issue 12): a 3-node kvr cluster next to a standalone
# kvr serve on the same preloaded data, same run, wrk as the load; the time
# a new node takes to join and become a voter; failover times over kills of
# the leader; Redis (every write fsynced) as the peer when installed.
# Servers run with default flags. Usage: scripts/bench/cluster.sh [SECONDS] [KILLS] (0: no
# failovers); needs wrk
# and a release build. KEYS (default 1M) pairs are preloaded.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
KILLS=${2:-20}
KEYS=${KEYS:-1000000}
export KEYS
# KVR=path runs another build (an earlier commit's, to compare).
KVR=${KVR:-$PWD/target/release/kvr}
W=$(mktemp -d)
# serve() runs in $(...), so its servers are not this shell's jobs: their
# pids are kept in $W/pids.
stop_all() { kill $(cat "$W/pids" 2>/dev/null) $(jobs -p) 2>/dev/null || true; : > "$W/pids"; sleep 0.5; }
trap 'stop_all; rm -rf "$W"' EXIT
for s in put get getstale; do cat scripts/bench/$s.lua scripts/bench/report.lua > "$W/$s.lua"; done

python3 scripts/bench/gen.py "$KEYS" > "$W/pairs.jsonl"
$KVR --db "$W/alone.redb" batch "$W/pairs.jsonl" 2>&1 | tail -1
cp "$W/alone.redb" "$W/n1.redb"

serve() { # name db extra... -> prints the URL
  local name=$1 db=$2; shift 2
  $KVR --db "$W/$db" serve --listen 127.0.0.1:0 "$@" > "$W/$name.out" 2> "$W/$name.log" &
  echo $! >> "$W/pids"
  echo "$name $!" >> "$W/names"
  for _ in $(seq 600); do grep -q '^listening' "$W/$name.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$W/$name.out"
}
voters() { curl -s "$1/v1/cluster" | python3 -c 'import json,sys; print(sum(n["voter"] for n in json.load(sys.stdin)["nodes"]))'; }

# Redis next to it when installed (the same machine, the same run).
REDIS_PORT=
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
  REDIS_PORT=6391
  redis-server --port "$REDIS_PORT" --dir "$W" --save '' --appendonly yes \
    --appendfsync always --daemonize no > "$W/redis.log" 2>&1 &
  echo $! >> "$W/pids"
fi
ALONE=$(serve alone alone.redb)
N1=$(serve n1 n1.redb --raft-listen 127.0.0.1:0 --cluster-init)
t0=$(date +%s.%N)
N2=$(serve n2 n2.redb --raft-listen 127.0.0.1:0 --join "$N1")
until [ "$(voters "$N1")" = 2 ]; do sleep 0.1; done
t1=$(date +%s.%N)
keys2=$(curl -s "$N2/v1/stats?consistency=stale" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"])')
echo "join of a new node to a ${KEYS}-key cluster until it votes: $(python3 -c "print(round($t1-$t0,2))") s (it then holds $keys2 keys)"
N3=$(serve n3 n3.redb --raft-listen 127.0.0.1:0 --join "$N1")
until [ "$(voters "$N1")" = 3 ]; do sleep 0.1; done

wrk_run() { # name script url conns
  printf '%-40s' "$1"; wrk -t2 -c"$4" -d"${SECS}s" --latency -s "$W/$2.lua" "$3" | grep RESULT
}
for round in 1 2; do
  echo "== round $round"
  wrk_run "standalone PUT c64" put "$ALONE" 64
  wrk_run "cluster PUT c64 via leader" put "$N1" 64
  wrk_run "cluster PUT c64 via follower" put "$N2" 64
  wrk_run "standalone GET c64" get "$ALONE" 64
  wrk_run "cluster GET c64 leader (linearizable)" get "$N1" 64
  wrk_run "cluster GET c64 follower (linearizable)" get "$N2" 64
  wrk_run "cluster GET c64 follower (stale)" getstale "$N2" 64
  if [ -n "$REDIS_PORT" ]; then
    # The peer: Redis with every write fsynced, random keys over KEYS.
    # (GETs find only the keys the SETs wrote: a part of KEYS.)
    redis-benchmark -p "$REDIS_PORT" -t set,get -c 64 -n $((SECS * 30000)) -r "$KEYS" -d 100 -q |
      tr '\r' '\n' | grep 'requests per second' | sed 's/^/redis (appendfsync always) c64 /'
  fi
done
# Resident memory once the rounds are done (the Raft log's index grows with
# the entries since the last snapshot).
printf 'resident memory after the rounds:'
while read -r name pid; do
  printf ' %s %s MB' "$name" "$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")"
done < "$W/names"
echo " (log index $(curl -s "$N1/v1/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin)["committed"])'))"
stop_all
[ "$KILLS" -gt 0 ] || exit 0
echo "== failover, default flags"
python3 scripts/bench/failover.py "$KVR" "$W" "$KILLS"
rm -f "$W"/f*.redb; rm -rf "$W"/f*.redb.raft
echo "== failover, --heartbeat-ms 50 --election-timeout-ms 150-300"
python3 scripts/bench/failover.py "$KVR" "$W" "$KILLS" --heartbeat-ms 50 --election-timeout-ms 150-300
