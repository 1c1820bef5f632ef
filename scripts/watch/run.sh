#!/bin/bash
# usage: run.sh LABEL [serve flags...]; prints bench JSON for 64 put clients
R=${KVR:-$(dirname "$0")/../../target/release/kvr}
label=$1; shift
D=$(mktemp -d)
$R --db $D/db.redb serve --listen 127.0.0.1:0 --quiet "$@" > $D/out 2>$D/err &
pid=$!
for i in $(seq 50); do grep -q listening $D/out && break; sleep 0.1; done
url=$(sed -n 's/listening on //p' $D/out | head -1)
if [ -n "$WATCHERS" ]; then python3 "$(dirname "$0")/idle.py" ${url#http://} $WATCHERS & wp=$!; sleep 3; fi
out=$($R --server $url bench --workload put --clients 64 --duration ${DUR:-8} --json 2>/dev/null)
rss=$(grep VmRSS /proc/$pid/status | awk '{print $2}')
echo "$label: $out rss_kib=$rss"
[ -n "$wp" ] && kill $wp
kill -TERM $pid; wait $pid 2>/dev/null
rm -rf $D
