#!/bin/sh
# HTTPS against plain HTTP in the same run: GET and PUT at 64 clients, 10 s
# each, alternating plain / TLS / TLS / plain so drift on a shared machine
# hits both alike. Usage: scripts/prove/tls.sh [path/to/kvr] (release build).
# A throwaway CA and certificate are made with openssl in a temp dir.
set -eu
KVR=${1:-target/release/kvr}
KVR=$(realpath "$KVR")
DIR=$(mktemp -d)
trap 'kill $PLAIN_PID $TLS_PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
cd "$DIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca-key.pem -out ca.pem -days 1 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout key.pem -out csr.pem -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.txt
openssl x509 -req -in csr.pem -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days 1 -extfile san.txt -out cert.pem 2>/dev/null

"$KVR" --db plain.redb serve --listen 127.0.0.1:0 --quiet > plain.out &
PLAIN_PID=$!
"$KVR" --db tls.redb serve --listen 127.0.0.1:0 --quiet \
    --tls-cert cert.pem --tls-key key.pem > tls.out &
TLS_PID=$!
sleep 1
PLAIN=$(sed -n 's/^listening on //p' plain.out)
TLS=$(sed -n 's/^listening on //p' tls.out)

run() { # URL WORKLOAD [extra...]
    url=$1; workload=$2; shift 2
    "$KVR" --server "$url" --cacert ca.pem bench --workload "$workload" \
        --clients 64 --duration 10 --keyspace 100000 "$@" --json |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("%-5s %-24s %9.0f ops/s  p99 %6.2f ms  errors %d" % (sys.argv[1], sys.argv[2], r["ops_per_sec"], r["p99_ms"], r["errors_total"]))' "$workload" "$url"
}
for url in "$PLAIN" "$TLS"; do
    "$KVR" --server "$url" --cacert ca.pem bench --workload put --prefill 100000 \
        --requests 1 --json > /dev/null
done
for workload in get put; do
    run "$PLAIN" $workload
    run "$TLS" $workload
    run "$TLS" $workload
    run "$PLAIN" $workload
done
# One CLI command each way (process start, connect, for TLS the system's
# roots and a handshake): the median of 20.
for url in "$PLAIN" "$TLS"; do
    python3 - "$KVR" "$url" <<'PY'
import subprocess, sys, time
kvr, url = sys.argv[1], sys.argv[2]
t = []
for _ in range(20):
    s = time.perf_counter()
    subprocess.run([kvr, "--server", url, "--cacert", "ca.pem", "get", "kvr-bench/000001"],
                   check=True, stdout=subprocess.DEVNULL)
    t.append(time.perf_counter() - s)
t.sort()
print("cli get %-24s median %.1f ms" % (url, t[10] * 1000))
PY
done
