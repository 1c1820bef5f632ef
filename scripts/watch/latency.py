# Event latency: 64 writer threads PUT keys (keep-alive), recording when each
# write's answer (with its revision) arrived; one watcher reads GET /v1/watch
# and records when each revision's line arrived. Latency = line - ack.
import http.client, json, sys, threading, time, socket
host, port = sys.argv[1], int(sys.argv[2])
clients, per = int(sys.argv[3]), int(sys.argv[4])
acks = {}
lines = {}
lock = threading.Lock()
def watcher(ready, total_done):
    s = socket.create_connection((host, port))
    s.sendall(b"GET /v1/watch?prefix=lat/&progress=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    f = s.makefile("rb")
    # skip headers
    while f.readline() not in (b"\r\n", b""):
        pass
    ready.set()
    buf = b""
    while True:
        size = f.readline()
        n = int(size.strip(), 16)
        if n == 0:
            return
        chunk = f.read(n); f.readline()
        now = time.monotonic()
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            d = json.loads(line)
            if "revision" in d:
                lines[d["revision"]] = now
        if total_done.is_set() and len(lines) >= clients * per:
            return
def writer(i):
    c = http.client.HTTPConnection(host, port)
    for j in range(per):
        c.request("PUT", f"/v1/kv/lat/{i}/{j}", body=b"x" * 100)
        r = c.getresponse(); body = r.read()
        now = time.monotonic()
        rev = json.loads(body)["revision"]
        with lock:
            acks[rev] = now
ready, done = threading.Event(), threading.Event()
w = threading.Thread(target=watcher, args=(ready, done), daemon=True); w.start()
ready.wait()
ts = [threading.Thread(target=writer, args=(i,)) for i in range(clients)]
t0 = time.monotonic()
for t in ts: t.start()
for t in ts: t.join()
el = time.monotonic() - t0
done.set(); w.join(timeout=10)
lat = sorted((lines[r] - acks[r]) * 1000 for r in acks if r in lines)
def pct(p): return lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"{len(acks)} writes by {clients} clients in {el:.1f}s ({len(acks)/el:.0f}/s); "
      f"{len(lat)} events seen; line minus ack: p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms, max {lat[-1]:.2f} ms")
