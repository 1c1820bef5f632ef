#!/usr/bin/env bash
# Measures kvr serve (default flags) and Redis (appendfsync always) side by
# side with independent load generators, on a store preloaded with KEYS
# pairs (default 1M). Usage: scripts/bench/run.sh [SECONDS] ; needs wrk,
# redis-server, redis-benchmark and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
KEYS=${KEYS:-1000000}
export KEYS
KVR=./target/release/kvr
W=$(mktemp -d)
trap 'rc=$?; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; exit $rc' EXIT
for s in put get range rangekeys healthz; do cat scripts/bench/$s.lua scripts/bench/report.lua > "$W/$s.lua"; done

python3 scripts/bench/gen.py "$KEYS" > "$W/pairs.jsonl"
# The input on disk first, as a file to import usually is: otherwise its
# 138 MB of writeback competes with the import's own fsync.
sync
printf '%-28s' "import: kvr batch"; $KVR --db "$W/kvr.redb" batch "$W/pairs.jsonl" 2>&1 | tail -1
BATCH_BYTES=$(stat -c %s "$W/kvr.redb")
# redb sets a file's length ahead of its pages (doubling it below 4 GiB);
# pages never written take no disk blocks, so the disk used is told too.
BATCH_DISK=$(du -B1 "$W/kvr.redb" | cut -f1)
# The same pairs over HTTP into an empty server (1,000 lines per request, 4
# connections).
$KVR --db "$W/http.redb" serve --listen 127.0.0.1:0 > "$W/http.out" 2> "$W/http.log" &
HTTP_PID=$!
for _ in $(seq 100); do grep -q listening "$W/http.out" 2>/dev/null && break; sleep 0.1; done
printf '%-28s' "import: POST /v1/batch"
python3 scripts/bench/import.py "$(sed -n 's/^listening on //p' "$W/http.out")" "$W/pairs.jsonl" 4 1000
kill $HTTP_PID; wait $HTTP_PID 2>/dev/null || true
HTTP_BYTES=$(stat -c %s "$W/http.redb")
HTTP_DISK=$(du -B1 "$W/http.redb" | cut -f1)
$KVR --db "$W/kvr.redb" serve --listen 127.0.0.1:0 > "$W/serve.out" 2> "$W/serve.log" &
for _ in $(seq 100); do grep -q listening "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$W/serve.out")

redis-server --port 6399 --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always \
  --dir "$W" --appendfilename r.aof --daemonize no > "$W/redis.log" 2>&1 &
sleep 1
redis-benchmark -p 6399 -r "$KEYS" -n "$KEYS" -t set -d 100 -c 64 -P 100 -q > /dev/null
# The same keys as members of a sorted set, for ZRANGEBYLEX (Redis's range).
python3 -c '
import sys
w = sys.stdout.write
for i in range(int(sys.argv[1])):
    m = "key:%012d" % i
    w("*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$1\r\n0\r\n$%d\r\n%s\r\n" % (len(m), m))
' "$KEYS" | redis-cli -p 6399 --pipe > /dev/null

# Redis rewrites its AOF in the background once it has doubled (it does
# after the load above, and may during its SET rounds): a rewrite writes
# ~100 MB and forks, and one that overlapped kvr's first PUT round gave it a
# p99 of 152 ms (2026-12-04). Each kvr round waits until none runs and the
# disk has taken its writes; Redis's own rounds keep its default behaviour.
redis_quiet() {
  for _ in $(seq 600); do
    redis-cli -p 6399 info persistence | grep -q '^aof_rewrite_in_progress:0' && break
    sleep 0.1
  done
  sync
}
wrk_run() { # name script conns
  local seen
  redis_quiet
  seen=$(wc -l < "$W/serve.log")
  printf '%-28s' "$1"; wrk -t2 -c"$3" -d"${SECS}s" --latency -s "$W/$2.lua" "$URL" | grep RESULT
  # The same requests as kvr's handler timed them (its access log): wrk's
  # figures also hold parsing, writing, waiting for a core, and wrk's own
  # side of the socket, on the same two cores.
  sleep 0.5
  printf '%-28s' ""; python3 scripts/bench/server_tail.py "$W/serve.log" "$seen"
}
redis_run() { # name test conns requests
  printf '%-28s' "$1"
  redis-benchmark -p 6399 -c "$3" -r "$KEYS" -n "$4" -t "$2" -d 100 -q 2>/dev/null | tr '\r' '\n' | grep -a "requests per second" | tail -1
}
for round in 1 2; do
  echo "== round $round"
  wrk_run "kvr PUT c64" put 64
  redis_run "redis SET c64 (always)" set 64 $((SECS * 45000))
  wrk_run "kvr GET c64" get 64
  wrk_run "kvr /healthz c64" healthz 64
  redis_run "redis GET c64" get 64 $((SECS * 80000))
  wrk_run "kvr range100 c16" range 16
  # Keys only, as ZRANGEBYLEX answers: the like-for-like figure.
  wrk_run "kvr range100 keys_only c16" rangekeys 16
  printf '%-28s' "redis ZRANGEBYLEX 100 c16"
  redis-benchmark -p 6399 -c 16 -r "$KEYS" -n $((SECS * 15000)) -q \
    ZRANGEBYLEX z '[key:__rand_int__' + LIMIT 0 100 2>/dev/null |
    tr '\r' '\n' | grep -a "requests per second" | tail -1
done
echo "== kvr files: $BATCH_BYTES bytes after kvr batch; $HTTP_BYTES after POST /v1/batch of the same pairs" \
  "($(python3 -c "print(round($HTTP_BYTES / $BATCH_BYTES, 2))")x); disk used $BATCH_DISK and $HTTP_DISK bytes" \
  "($(python3 -c "print(round($HTTP_DISK / $BATCH_DISK, 2))")x); $(stat -c %s "$W/kvr.redb")" \
  "after kvr batch and then the rounds' random PUTs"
