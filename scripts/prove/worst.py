# Worst case replay: one maximal batch (100,000 lines, ~60 MB) acknowledged, then kill -9 at once.
import os, signal, subprocess, sys, time, urllib.request
KVR = os.environ.get("KVR", "target/release/kvr")
db = sys.argv[1]
def start():
    t0 = time.monotonic()
    p = subprocess.Popen([KVR, "--db", db, "serve", "--listen", "127.0.0.1:0", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = p.stdout.readline().strip().removeprefix("listening on ")
    while True:
        try:
            if urllib.request.urlopen(url + "/healthz", timeout=5).status == 200: break
        except Exception: time.sleep(0.002)
    return p, url, time.monotonic() - t0
body = "".join('{"key":"%s","value":"%s"}\n' % (os.urandom(8).hex(), os.urandom(280).hex()) for i in range(100000)).encode()
for cold in (False, True):
    p, url, _ = start()
    t = time.monotonic()
    r = urllib.request.urlopen(urllib.request.Request(url + "/v1/batch", data=body, method="POST"), timeout=120)
    ack = time.monotonic() - t
    os.kill(p.pid, signal.SIGKILL); p.wait()
    if cold:
        fd = os.open(db, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
    p, url, dt = start()
    print(f"cold={cold} batch={len(body)/1e6:.1f}MB acked in {ack:.2f}s status={r.status}; restart_to_healthz={dt*1000:.0f}ms; {p.stderr.readline().strip()}", flush=True)
    p.send_signal(signal.SIGTERM); p.wait()
