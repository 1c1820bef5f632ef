# Recovery time after kill -9 under write load: restart -> /healthz 200.
import os, signal, subprocess, sys, time, urllib.request, random
KVR = os.environ.get("KVR", "target/release/kvr")
db = sys.argv[1]; cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 3
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
p, url, _ = start()
for c in range(cycles):
    load = subprocess.Popen([KVR, "bench", "--server", url, "--workload", "batch", "--batch-size", "50",
                             "--clients", "8", "--duration", "30", "--value-size", "200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5 + random.random() * 2)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    load.kill(); load.wait()
    wal = db + ".wal"
    walbytes = sum(os.path.getsize(os.path.join(wal, f)) for f in os.listdir(wal)) if os.path.isdir(wal) else 0
    if os.environ.get("COLD"):
        # Evict the file's pages from the page cache (this file only).
        fd = os.open(db, os.O_RDONLY); os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
    p, url, dt = start()
    # the recovery log line is the first stderr line
    line = p.stderr.readline().strip()
    print(f"cold={bool(os.environ.get('COLD'))} size={os.path.getsize(db)/1e9:.2f}GB cycle={c} restart_to_healthz={dt*1000:.0f}ms wal_files_bytes={walbytes} log: {line}", flush=True)
p.send_signal(signal.SIGTERM); p.wait()
