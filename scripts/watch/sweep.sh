#!/bin/bash
# 1M keys that expire in the same second: time from their expiry until the
# server has swept them all (keys == 0).
R=${KVR:-$(dirname "$0")/../../target/release/kvr}
N=${N:-1000000}
D=$(mktemp -d)
$R --db $D/db.redb serve --listen 127.0.0.1:0 --quiet > $D/out 2>$D/err &
pid=$!
for i in $(seq 50); do grep -q listening $D/out && break; sleep 0.1; done
url=$(sed -n 's/listening on //p' $D/out | head -1)
at=$(( $(date +%s%3N) + ${LEAD:-60000} ))
python3 - "$N" "$at" > $D/lines <<'PY'
import sys
n, at = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout
for i in range(n):
    out.write('{"key":"exp/%08d","value":"v","expires_at_ms":%d}\n' % (i, at))
PY
t0=$(date +%s%3N)
$R --server $url batch --chunk-size 100000 $D/lines 2>/dev/null
t1=$(date +%s%3N)
echo "loaded $N keys in $((t1 - t0)) ms; they expire at +$((at - t1)) ms"
while [ $(date +%s%3N) -lt $at ]; do sleep 0.05; done
while true; do
  k=$(curl -s $url/v1/stats | sed -n "s/.*\"keys\":\([0-9]*\).*/\1/p"); [ -z "$k" ] && { echo "no stats; server: $(tail -3 $D/err)"; break; }
  [ "$k" = 0 ] && break
  sleep 0.2
done
t2=$(date +%s%3N)
echo "swept $N keys in $((t2 - at)) ms after their expiry; server RSS $(grep VmRSS /proc/$pid/status | awk '{print $2}') KiB"
kill -TERM $pid; wait $pid 2>/dev/null; rm -rf $D
