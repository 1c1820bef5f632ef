#!/usr/bin/env bash
# Cluster PUT throughput with node-to-node TLS against plain HTTP, same run
# (SPEC "TLS" in cluster mode): a fresh 3-node cluster per round, plain and
# all-TLS alternated (plain, TLS, TLS, plain), wrk with 64 connections
# against the leader. Certificates from a throwaway CA made with openssl.
# Usage: scripts/bench/cluster_tls.sh [SECONDS]; needs wrk, openssl, curl
# and a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
KVR=$PWD/target/release/kvr
W=$(mktemp -d)
# serve() runs in $(...), so its servers are not this shell's jobs: their
# pids are kept in $W/pids.
stop_all() { kill $(cat "$W/pids" 2>/dev/null) $(jobs -p) 2>/dev/null || true; : > "$W/pids"; sleep 0.5; }
trap 'stop_all; rm -rf "$W"' EXIT
cat scripts/bench/put.lua scripts/bench/report.lua > "$W/put.lua"

# A CA and one certificate per node, for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$W/ca-key.pem" -out "$W/ca.pem" -days 1 -subj /CN=bench-ca 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$W/san.txt"
for n in n1 n2 n3; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$W/$n-key.pem" -out "$W/$n.csr" -subj "/CN=$n" 2>/dev/null
  openssl x509 -req -in "$W/$n.csr" -CA "$W/ca.pem" -CAkey "$W/ca-key.pem" \
    -CAcreateserial -days 1 -extfile "$W/san.txt" -out "$W/$n.pem" 2>/dev/null
done

serve() { # dir name extra... -> prints the URL
  local d=$1 name=$2; shift 2
  $KVR --db "$d/$name.redb" serve --quiet --listen 127.0.0.1:0 --raft-listen 127.0.0.1:0 \
    "$@" > "$d/$name.out" 2> "$d/$name.log" &
  echo $! >> "$W/pids"
  for _ in $(seq 600); do grep -q '^raft listening' "$d/$name.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$d/$name.out"
}
voters() { curl -s --cacert "$W/ca.pem" "$1/v1/cluster" |
  python3 -c 'import json,sys; print(sum(n["voter"] for n in json.load(sys.stdin)["nodes"]))'; }

round() { # plain|tls
  local d="$W/$1-$RANDOM"; mkdir -p "$d"
  tls() { if [ "$1" = tls ]; then echo --tls-cert "$W/$2.pem" --tls-key "$W/$2-key.pem" --cacert "$W/ca.pem"; fi; }
  local n1 n2
  # shellcheck disable=SC2046
  n1=$(serve "$d" n1 $(tls "$1" n1) --cluster-init)
  # shellcheck disable=SC2046
  n2=$(serve "$d" n2 $(tls "$1" n2) --join "$n1")
  # shellcheck disable=SC2046
  serve "$d" n3 $(tls "$1" n3) --join "$n1" > /dev/null
  until [ "$(voters "$n1")" = 3 ]; do sleep 0.1; done
  printf '%-52s ' "cluster PUT c64 $1 ($n1)"
  wrk -t2 -c64 -d"${SECS}s" --latency -s "$W/put.lua" "$n1" | grep RESULT
  stop_all
}
for mode in plain tls tls plain; do round "$mode"; done
