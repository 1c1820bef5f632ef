# usage: idle.py HOST:PORT N [QUERY] [--drain]
# Opens N watch streams (default query prefix=idle/), prints "ready N" once
# every stream has sent its first line, then holds them. With --drain each
# stream is read and discarded as fast as it comes (a watcher that keeps
# up); at SIGTERM it prints the bytes read and the lagging ends seen.
import selectors, signal, socket, sys, time
host, port = sys.argv[1].split(":"); n = int(sys.argv[2])
args = [a for a in sys.argv[3:] if not a.startswith("--")]
query = args[0] if args else "prefix=idle/"
drain = "--drain" in sys.argv
socks = []
for i in range(n):
    s = socket.create_connection((host, int(port)))
    s.sendall(f"GET /v1/watch?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    socks.append(s)
for s in socks:
    got = b""
    while b"progress_revision" not in got:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("a watch stream closed before its first line")
        got += chunk
print(f"ready {n}", flush=True)
total, lagging, tail = 0, 0, {}
def stop(*_):
    if drain:
        print(f"drained {total} bytes, {lagging} lagging ends", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
if not drain:
    while True:
        time.sleep(3600)
sel = selectors.DefaultSelector()
for s in socks:
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        try:
            data = key.fileobj.recv(1 << 16)
        except BlockingIOError:
            continue
        if not data:
            sel.unregister(key.fileobj)
            continue
        total += len(data)
        # (A lagging line may straddle two reads: keep a short tail.)
        t = tail.get(key.fileobj, b"") + data
        lagging += t.count(b'"error":"lagging"')
        tail[key.fileobj] = t[-32:] if b'"error":"lagging"' not in t[-32:] else b""
