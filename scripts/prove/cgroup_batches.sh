#!/bin/bash
# Batches into kvr serve (default flags, a new file) in a 256 MiB memory
# cgroup (v1): ROUNDS rounds of CONCURRENT POST /v1/batch of a LINES-line
# body (600-byte values; 25,000 lines is 16 MB, 99,000 is 62 MB), printing
# the answers' statuses and the server's peak RSS, and at the end the
# cgroup's OOM kills. Needs root for the cgroup.
# Usage: scripts/prove/cgroup_batches.sh [ROUNDS] [CONCURRENT] [LINES]
set -u
KVR=${KVR:-target/release/kvr}
ROUNDS=${1:-8} CONCURRENT=${2:-4} LINES=${3:-25000}
W=/tmp/kvr-prove/batches
CG=/sys/fs/cgroup/memory/kvr-prove-batches
rm -rf "$W"; mkdir -p "$W" "$CG"
echo $((256 << 20)) > $CG/memory.limit_in_bytes
python3 -c "
import json
for i in range($LINES): print(json.dumps({'key': 'm%08d' % i, 'value': 'x' * 600}))" > "$W/batch.jsonl"
echo "batch: $(stat -c %s "$W/batch.jsonl") bytes"
kills() { awk '/^oom_kill /{print $2}' $CG/memory.oom_control; }
before=$(kills)
sh -c "echo \$\$ > $CG/cgroup.procs; exec $KVR --db $W/db.redb serve --listen 127.0.0.1:0 --quiet" > "$W/out" 2> "$W/err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$W/out" && break; sleep 0.1; done
url=$(sed -n 's/listening on //p' "$W/out")
for r in $(seq "$ROUNDS"); do
  pids=""
  for _ in $(seq "$CONCURRENT"); do
    curl -s -o /dev/null -w '%{http_code} ' -X POST --data-binary @"$W/batch.jsonl" "$url/v1/batch" &
    pids="$pids $!"
  done
  wait $pids
  echo " round $r: $(grep -E 'VmHWM' /proc/$pid/status 2>/dev/null | tr -s ' \t' ' ')"
done
echo "OOM kills: $(( $(kills) - before ))"
kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
rmdir $CG
