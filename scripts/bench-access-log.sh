#!/usr/bin/env bash
# GET throughput of `kvr serve` with and without the access log (--quiet),
# the log going to a file, measured with wrk (Debian package) and a Lua
# script drawing uniformly random keys key:%012d from a preloaded store.
#
#   scripts/bench-access-log.sh [KVR_BINARY...]   (default: target/release/kvr)
#
# Env: KEYS (200000), DURATION (10s), CONNS (64), ROUNDS (2), WORK (a temp dir).
# Each round runs every binary in both modes back to back, so the figures of
# one round share the machine's load. The server's CPU time per request
# (from /proc) is printed too: it depends much less on what else runs.
set -euo pipefail
KEYS=${KEYS:-200000}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-2}
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("$(dirname "$0")/../target/release/kvr")
WORK=${WORK:-$(mktemp -d)}
cd "$WORK"
if [ ! -f load.db ]; then
  python3 -c "
v = 'x' * 100
with open('load.jsonl', 'w') as f:
    for i in range($KEYS):
        f.write('{\"key\":\"key:%012d\",\"value\":\"%s\"}\n' % (i, v))
"
  "${BINS[0]}" --db load.db batch load.jsonl
fi
cat > get.lua <<LUA
math.randomseed(os.time())
request = function()
  return wrk.format("GET", string.format("/v1/kv/key:%012d", math.random(0, $KEYS - 1)))
end
LUA
SERVER_PID=""
trap '[ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true' EXIT
# The server's user + system CPU time, in clock ticks (1/100 s).
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The same for its access log thread alone (0 with --quiet).
log_cpu() {
  local t
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm")" = kvr-access-log ]; then
      awk '{print $14 + $15}' "$t/stat"
      return
    fi
  done
  echo 0
}
run() { # BINARY MODE
  local bin=$1 mode=$2 extra=()
  [ "$mode" = quiet ] && extra=(--quiet)
  cp load.db db.redb
  rm -f serve.out
  "$bin" --db db.redb serve --listen 127.0.0.1:0 "${extra[@]}" >serve.out 2>serve.log &
  local pid=$!
  SERVER_PID=$pid
  local url=""
  for _ in $(seq 100); do
    url=$(sed -n 's/^listening on //p' serve.out 2>/dev/null || true)
    [ -n "$url" ] && break
    sleep 0.05
  done
  wrk -t2 -c"$CONNS" -d2s -s get.lua "$url" >/dev/null # warm-up
  local rps cpu0 cpu1 total log0 log1
  cpu0=$(cpu "$pid")
  log0=$(log_cpu "$pid")
  read -r rps total < <(wrk -t2 -c"$CONNS" -d"$DURATION" -s get.lua "$url" |
    awk '/Requests\/sec/ {r=$2} /requests in/ {n=$1} END {print r, n}')
  cpu1=$(cpu "$pid")
  log1=$(log_cpu "$pid")
  local dropped
  dropped=$(curl -s "$url/metrics" | awk '/^kvr_log_lines_dropped_total/ {print $2}')
  kill -TERM "$pid"; wait "$pid" || true
  SERVER_PID=""
  printf '%-32s %-5s %9s req/s  %5.1f us CPU/req (log thread %4.2f)  log %7d lines  dropped %s\n' \
    "$bin" "$mode" "$rps" "$(echo "($cpu1 - $cpu0) * 10000 / $total" | bc -l)" \
    "$(echo "($log1 - $log0) * 10000 / $total" | bc -l)" "$(wc -l <serve.log)" "${dropped:-n/a}"
}
for round in $(seq "$ROUNDS"); do
  echo "round $round ($(uptime | sed 's/.*load/load/'))"
  for bin in "${BINS[@]}"; do
    run "$bin" quiet
    run "$bin" log
  done
done
