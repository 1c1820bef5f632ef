#!/bin/bash
# Larger than RAM: kvr serve --cache-mib 64 on a 2.9 GB file, unlimited vs in a 256 MiB memory cgroup (v1).
# CACHE_ARGS="" runs it with the default cache. Needs root for the cgroup.
set -u
KVR=${KVR:-target/release/kvr}
DB=${DB:-/tmp/kvr-prove/ram.redb}
CG=/sys/fs/cgroup/memory/kvr-prove
mode=$1
CACHE_ARGS=${CACHE_ARGS---cache-mib 64}
mkdir -p /tmp/kvr-prove
if [ "$mode" = limited ]; then
  mkdir -p $CG; echo $((256<<20)) > $CG/memory.limit_in_bytes; echo 0 > $CG/memory.failcnt 2>/dev/null
  sh -c "echo \$\$ > $CG/cgroup.procs; exec $KVR --db $DB serve --listen 127.0.0.1:0 --quiet $CACHE_ARGS" > /tmp/kvr-prove/serve.out 2>/tmp/kvr-prove/serve.err &
else
  $KVR --db $DB serve --listen 127.0.0.1:0 --quiet $CACHE_ARGS > /tmp/kvr-prove/serve.out 2>/tmp/kvr-prove/serve.err &
fi
pid=$!
for i in $(seq 100); do grep -q listening /tmp/kvr-prove/serve.out && break; sleep 0.1; done
url=$(sed -n 's/listening on //p' /tmp/kvr-prove/serve.out)
echo "mode=$mode pid=$pid url=$url file=$(stat -c %s $DB)"
for w in get put mixed; do
  $KVR bench --server $url --workload $w --keyspace 2800000 --value-size 1000 --clients 16 --duration 20 --json 2>&1 | python3 -c "import json,sys; d=json.load(sys.stdin); print('$w', {k:v for k,v in d.items() if k in ('ops_per_sec','ok','errors_total','p50_ms','p99_ms')})" 2>&1 | head -3
  echo "  server VmRSS/VmHWM: $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' ' | tr '\n' ' ')"
done
if [ "$mode" = limited ]; then
  echo "  cgroup: usage_max=$(cat $CG/memory.max_usage_in_bytes) failcnt=$(cat $CG/memory.failcnt) $(grep -E 'oom_kill ' $CG/memory.oom_control)"
fi
kill -0 $pid && echo "  server alive" || echo "  server DEAD"
kill -TERM $pid; wait $pid; echo "  exit $?"
[ "$mode" = limited ] && rmdir $CG
