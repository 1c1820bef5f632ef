#!/usr/bin/env python3
"""POST /v1/batch import: the JSON lines of FILE in requests of LINES lines
over CONNS connections (default 1,000 and 4). Prints pairs per second.
Usage: scripts/bench/import.py URL FILE [CONNS] [LINES]"""
import http.client
import sys
import threading
import time
import urllib.parse

url, path = sys.argv[1], sys.argv[2]
conns = int(sys.argv[3]) if len(sys.argv) > 3 else 4
per = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
u = urllib.parse.urlparse(url)
lines = [l for l in open(path, "rb").read().split(b"\n") if l]
chunks = [b"\n".join(lines[i:i + per]) + b"\n" for i in range(0, len(lines), per)]
lock = threading.Lock()
state = {"next": 0, "errors": 0}


def work():
    c = http.client.HTTPConnection(u.hostname, u.port)
    while True:
        with lock:
            i = state["next"]
            state["next"] += 1
        if i >= len(chunks):
            return
        c.request("POST", "/v1/batch", chunks[i], {"Content-Type": "application/x-ndjson"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            with lock:
                state["errors"] += 1


t = time.time()
threads = [threading.Thread(target=work) for _ in range(conns)]
for x in threads:
    x.start()
for x in threads:
    x.join()
d = time.time() - t
print(f"{len(lines)} pairs in {d:.2f} s = {len(lines) / d:.0f} pairs/s "
      f"({per} lines per request, {conns} connections), {state['errors']} errors")
