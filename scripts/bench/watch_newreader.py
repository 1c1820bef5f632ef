# New readers under watch memory pressure: N unread watchers (4 KiB receive
# buffer, read nothing) behind a stream of 1 MB puts; then new readers one
# second apart, each watching its own probe key, timed from the probe's PUT
# to its event line, and the server's peak RSS. BOUND: KVR_WATCH_MEMORY in
# bytes (default 4 MiB), or "default" for the server's own.
# The server runs with default flags (its access log to /dev/null).
# Usage: watch_newreader.py KVR PORT [UNREAD] [READERS] [BOUND]
import os, shutil, socket, subprocess, sys, threading, time, http.client, tempfile
kvr, port = sys.argv[1], int(sys.argv[2])
unread = int(sys.argv[3]) if len(sys.argv) > 3 else 100
readers = int(sys.argv[4]) if len(sys.argv) > 4 else 10
bound = sys.argv[5] if len(sys.argv) > 5 else str(4 << 20)
d = tempfile.mkdtemp()
env = dict(os.environ)
if bound != "default":
    env["KVR_WATCH_MEMORY"] = bound
srv = subprocess.Popen([kvr, "--db", d + "/x.redb", "serve", "--listen", f"127.0.0.1:{port}"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
srv.stdout.readline()
def put(key, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("PUT", "/v1/kv/" + key, body=body)
    r = c.getresponse(); r.read(); c.close()
    return r.status
socks = []
for i in range(unread):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /v1/watch?prefix=big/ HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
time.sleep(0.5)
stop = False
big = os.urandom(500_000).hex().encode()  # 1 MB of text
def writer():
    i = 0
    while not stop:
        put(f"big/{i % 50}", big); i += 1
        time.sleep(0.05)
threading.Thread(target=writer, daemon=True).start()
time.sleep(3)
results = [None] * readers
def reader(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /v1/watch?prefix=probe/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    s.settimeout(90)
    buf = b""
    while b"progress_revision" not in buf:
        buf += s.recv(65536)
    t0 = time.time()
    threading.Thread(target=put, args=(f"probe/{n}", b"x"), daemon=True).start()
    try:
        while b'"op":"put"' not in buf:
            chunk = s.recv(65536)
            if not chunk: break
            buf += chunk
        results[n] = round(time.time() - t0, 2) if b'"op":"put"' in buf else "closed"
    except socket.timeout:
        results[n] = "timeout"
    s.close()
ts = []
for n in range(readers):
    t = threading.Thread(target=reader, args=(n,)); t.start(); ts.append(t)
    time.sleep(1)
for t in ts: t.join()
stop = True
rss = open(f"/proc/{srv.pid}/status").read().split("VmHWM:")[1].split()[0]
print("probe latencies (s):", results, "peak RSS MB:", int(rss) // 1024)
srv.terminate(); srv.wait()
for s in socks: s.close()
shutil.rmtree(d)
