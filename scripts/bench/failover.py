#!/usr/bin/env python3
"""Failover times of a kvr cluster: kill -9 the leader, time until a PUT
through another node succeeds; restart the killed node; repeat.
Usage: failover.py KVR DIR ROUNDS [extra serve flags...]; the cluster is
started here (3 nodes on 127.0.0.1) and stopped at the end."""
import http.client, json, os, signal, subprocess, sys, time

kvr, d, rounds, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
ports = {1: (7301, 7311), 2: (7302, 7312), 3: (7303, 7313)}
procs = {}

def start(i, flags):
    listen, raft = ports[i]
    out = open(f"{d}/f{i}.out", "w")
    err = open(f"{d}/f{i}.err", "a")
    procs[i] = subprocess.Popen([kvr, "--db", f"{d}/f{i}.redb", "serve", "--quiet",
        "--listen", f"127.0.0.1:{listen}", "--raft-listen", f"127.0.0.1:{raft}"] + flags + extra,
        stdout=out, stderr=err)

def req(i, method, path, body=None, timeout=1.0):
    c = http.client.HTTPConnection("127.0.0.1", ports[i][0], timeout=timeout)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()

def wait(pred, secs=30):
    end = time.time() + secs
    while time.time() < end:
        try:
            if pred():
                return True
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit("timed out")

def status(i):
    s, b = req(i, "GET", "/v1/cluster?")
    return json.loads(b)

start(1, ["--cluster-init"]); wait(lambda: req(1, "GET", "/healthz")[0] == 200)
start(2, ["--join", f"http://127.0.0.1:{ports[1][0]}"])
start(3, ["--join", f"http://127.0.0.1:{ports[1][0]}"])
wait(lambda: sum(n["voter"] for n in status(1)["nodes"]) == 3)
times = []
for r in range(rounds):
    leader = next(i for i in ports if status(i)["state"] == "leader")
    others = [i for i in ports if i != leader]
    procs[leader].send_signal(signal.SIGKILL); procs[leader].wait()
    t0 = time.time()
    n = 0
    while True:
        i = others[n % 2]; n += 1
        try:
            s, _ = req(i, "PUT", f"/v1/kv/failover-{r}", b"x", timeout=0.5)
            if s == 200:
                break
        except Exception:
            pass
        time.sleep(0.01)
    times.append(time.time() - t0)
    start(leader, [])
    wait(lambda: all(status(i)["leader"] is not None and status(i)["applied"] >= status(others[0])["applied"] - 1 for i in ports))
    time.sleep(0.5)
for p in procs.values():
    p.terminate()
for p in procs.values():
    p.wait()
times.sort()
ms = [round(t * 1000) for t in times]
print(json.dumps({"rounds": rounds, "flags": extra, "median_ms": ms[len(ms)//2], "max_ms": ms[-1], "min_ms": ms[0], "all_ms": ms}))
