#!/usr/bin/env python3
# Power-loss durability of `kvr serve` under LazyFS (https://github.com/dsrhaslab/lazyfs).
#
# What it proves (per cycle, N cycles): with small flush parts and frequent flushes
# (KVR_FLUSH_PART_KEYS=50, KVR_FLUSH_AGE_MS=500, --memtable-mib 2) and a load that
# OVERWRITES keys PUT earlier over HTTP (so a flush in parts defers keys whose record shares
# its value with a kept watch-history row to the table's last commit), a kill -9 followed by
# a LazyFS `lazyfs::clear-cache` (every written-but-unsynced byte dropped: a power loss)
# loses no acknowledged write:
#   - every acknowledged PUT / batch line is present after restart with revision >= its
#     acknowledged one; when equal, with the exact value; when greater, the value is that
#     of a later acknowledged write (exact revision) or of a write in flight at the crash;
#   - every batch (all its keys carry a unique tag prefix) is whole or absent; acknowledged
#     batches whole; a batch's overwrites of older keys follow its tag keys (all or none);
#   - /v1/stats revision >= the highest acknowledged revision, and revisions given after
#     the restart are above every revision seen before it;
#   - every --check-every cycles (and at the end): SIGTERM, power loss again, `kvr check`
#     must print `ok:`, and the restarted server must still hold everything.
# Keys in flight at the crash (sent, no answer, or a non-2xx answer) are "maybe".
#
# LazyFS it expects (built per its README; libpcache + lazyfs), a TOML config like
#   [faults]
#   fifo_path="/tmp/lazyfs-faults.fifo"
#   [cache]
#   apply_eviction=false
#   [cache.simple]
#   custom_size="2gb"
#   blocks_per_page=1
#   [filesystem]
#   log_all_operations=false
#   logfile="/tmp/lazyfs-fs.log"
# With --lazyfs-bin the script mounts LazyFS itself (and restarts it after every power
# loss, so no cache or kernel state survives), as the README's mount-lazyfs.sh does:
#   LAZYFS_BIN MNT --config-path CONF -o allow_other -o modules=subdir -o subdir=ROOT -f
# Without --lazyfs-bin, LazyFS must already be mounted on --mnt with that config.
# The script waits for the "cache is cleared." line in the LazyFS logfile after each
# clear-cache. Metadata (create/rename/unlink/truncate) goes straight to the root dir in
# LazyFS, so only lost file DATA is simulated, not lost directory entries.
#
# Run (as root; Python 3 stdlib only):
#   nice -n 5 python3 scripts/prove/lazyfs.py --kvr target/release/kvr \
#       --lazyfs-bin /tmp/lazyfs-src/lazyfs/build/lazyfs --lazyfs-config /tmp/lazyfs-conf/lazyfs.toml \
#       --mnt /tmp/lazyfs.mnt --root /tmp/lazyfs.root --cycles 60 --check-every 5
# Self-test (must report the fabricated loss, wrong value and torn batch, exit 0 if so):
#   ... --cycles 1 --self-test
# Exit status: 0 no violation (or self-test detected), 1 violations, 2 harness error.
import argparse, http.client, json, os, random, shutil, signal, subprocess, sys, threading, time
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--kvr", default=os.environ.get("KVR", "target/release/kvr"))
ap.add_argument("--lazyfs-bin", default=None)
ap.add_argument("--lazyfs-config", default="/tmp/lazyfs-conf/lazyfs.toml")
ap.add_argument("--mnt", default="/tmp/lazyfs.mnt")
ap.add_argument("--root", default="/tmp/lazyfs.root")
ap.add_argument("--fifo", default=None, help="default: fifo_path of the config")
ap.add_argument("--lazyfs-log", default=None, help="default: logfile of the config")
ap.add_argument("--cycles", type=int, default=60)
ap.add_argument("--check-every", type=int, default=5)
ap.add_argument("--min-load", type=float, default=2.0)
ap.add_argument("--max-load", type=float, default=5.0)
ap.add_argument("--put-threads", type=int, default=2)
ap.add_argument("--overwrite-threads", type=int, default=4)
ap.add_argument("--batch-threads", type=int, default=1)
ap.add_argument("--memtable-mib", type=int, default=2)
ap.add_argument("--part-keys", default="50")
ap.add_argument("--flush-age-ms", default="500")
ap.add_argument("--seed", type=int, default=None)
ap.add_argument("--fail-dir", default="/tmp/lazyfs-fail")
ap.add_argument("--work", default="/tmp/lazyfs-work", help="server logs and pre-restart snapshots")
ap.add_argument("--self-test", action="store_true",
                help="fabricate an acknowledged PUT never sent, a wrong acknowledged value and an "
                     "acknowledged batch never sent before the first verification: all must be reported")
ap.add_argument("--stop-on-violation", action="store_true")
ap.add_argument("--deadline", type=float, default=0, help="stop starting cycles after this many seconds")
args = ap.parse_args()

def toml_get(path, name):
    for line in open(path):
        line = line.strip()
        if line.startswith(name) and "=" in line:
            k, v = line.split("=", 1)
            if k.strip() == name:
                return v.strip().strip('"')
    return None

FIFO = args.fifo or toml_get(args.lazyfs_config, "fifo_path")
LZLOG = args.lazyfs_log or toml_get(args.lazyfs_config, "logfile")
if not FIFO or not LZLOG:
    sys.exit("need fifo_path and logfile (config or --fifo/--lazyfs-log)")
seed = args.seed if args.seed is not None else int(time.time())
rng = random.Random(seed)
DB = os.path.join(args.mnt, "kvr.redb")
os.makedirs(args.work, exist_ok=True)
T0 = time.monotonic()

def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)

# ---------------------------------------------------------------- LazyFS control
lz_proc = None

def is_mounted():
    with open("/proc/mounts") as f:
        return any(l.split()[1] == os.path.realpath(args.mnt) and "lazyfs" in l.split()[2] for l in f)

def lz_log_count(s):
    try:
        with open(LZLOG, errors="replace") as f:
            return f.read().count(s)
    except FileNotFoundError:
        return 0

def lazyfs_start():
    global lz_proc
    if not args.lazyfs_bin:
        if not is_mounted():
            sys.exit(f"LazyFS is not mounted on {args.mnt}")
        return
    assert not is_mounted(), "something is already mounted on " + args.mnt
    # LazyFS truncates its logfile when it starts: start from an empty one
    open(LZLOG, "w").close()
    n0 = 0
    out = open(os.path.join(args.work, "lazyfs.stdout"), "a")
    lz_proc = subprocess.Popen([args.lazyfs_bin, args.mnt, "--config-path", args.lazyfs_config,
                                "-o", "allow_other", "-o", "modules=subdir", "-o", "subdir=" + args.root, "-f"],
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    t = time.monotonic()
    while not (is_mounted() and lz_log_count("waiting for fault commands") > n0):
        if lz_proc.poll() is not None:
            sys.exit(f"lazyfs exited with {lz_proc.returncode}")
        if time.monotonic() - t > 60:
            sys.exit("lazyfs did not come up in 60 s")
        time.sleep(0.05)

def lazyfs_stop():
    global lz_proc
    if not args.lazyfs_bin or lz_proc is None:
        return
    subprocess.run(["fusermount3", "-u", args.mnt], check=False)
    try:
        lz_proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        lz_proc.kill(); lz_proc.wait()
    lz_proc = None

def power_loss():
    """Drop every unsynced byte (lazyfs::clear-cache), wait for it, then restart LazyFS."""
    n0 = lz_log_count("cache is cleared.")
    fd = os.open(FIFO, os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"lazyfs::clear-cache\n")
    os.close(fd)
    t = time.monotonic()
    while lz_log_count("cache is cleared.") <= n0:
        if time.monotonic() - t > 60:
            sys.exit("clear-cache not confirmed in 60 s")
        time.sleep(0.02)
    lazyfs_stop()
    lazyfs_start()

# ---------------------------------------------------------------- kvr server
server = None  # (proc, host, port, stderr path)
srv_count = 0

def server_start():
    global server, srv_count
    srv_count += 1
    errp = os.path.join(args.work, f"server-{srv_count:04d}.stderr")
    env = dict(os.environ, KVR_FLUSH_PART_KEYS=args.part_keys, KVR_FLUSH_AGE_MS=args.flush_age_ms)
    p = subprocess.Popen([args.kvr, "--db", DB, "serve", "--listen", "127.0.0.1:0", "--quiet",
                          "--memtable-mib", str(args.memtable_mib)],
                         stdout=subprocess.PIPE, stderr=open(errp, "w"), env=env, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on http://"):
        p.kill(); p.wait()
        sys.exit(f"server did not start: {line!r}; stderr: {open(errp).read()[-2000:]}")
    hp = line.removeprefix("listening on http://")
    host, port = hp.rsplit(":", 1)
    server = (p, host, int(port), errp)
    threading.Thread(target=lambda: p.stdout.read(), daemon=True).start()

def server_kill9():
    p = server[0]
    p.send_signal(signal.SIGKILL); p.wait()

def server_term():
    p = server[0]
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait(); return "timeout (killed)"
    return rc

def conn():
    return http.client.HTTPConnection(server[1], server[2], timeout=30)

def req(c, method, path, body=None):
    c.request(method, path, body=body, headers={"Content-Type": "application/octet-stream"} if body is not None else {})
    r = c.getresponse()
    return r.status, r.read(), r

def get_json(path):
    c = conn()
    try:
        st, b, _ = req(c, "GET", path)
        if st != 200:
            raise RuntimeError(f"GET {path}: {st} {b[:200]!r}")
        return json.loads(b)
    finally:
        c.close()

def scan_all():
    out, cursor = {}, None
    while True:
        q = "/v1/range?prefix=&limit=10000" + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
        j = get_json(q)
        for it in j["items"]:
            out[it["key"]] = (it["revision"], it["value"])
        cursor = j.get("cursor")
        if not cursor:
            return out

# ---------------------------------------------------------------- model
# writes[key] = list of writes since the key's last verified state:
#   dict(value, rev (int|None), acked bool, batch tag|None)
# base[key] = (rev, value) verified present (durable) state, or absent.
writes = {}
base = {}
value_owner = {}          # value -> write dict (values are unique)
batches = {}              # tag -> dict(keys:[tag keys], over:[(key,value)], rev, n, acked, status)
pending_batches = []      # tags of the current cycle (acked or maybe) to verify
max_acked_rev = 0
max_seen_rev = 0
lock = threading.Lock()
tot = dict(cycles=0, puts=0, overwrites=0, batches=0, batch_lines=0, maybe=0, rejected=0, lost=0,
           wrong=0, torn=0, stats_bad=0, rev_back=0, checks_ok=0, checks_bad=0)

def add_write(key, value, rev, acked, tag=None):
    w = dict(key=key, value=value, rev=rev, acked=acked, tag=tag)
    writes.setdefault(key, []).append(w)
    value_owner[value] = w

def verify(cyc, found, violations, label):
    """Compare the server's whole key space with the model; then make the found state the base."""
    lost = wrong = torn = 0
    keys = set(writes) | set(base)
    for k in keys:
        ws = writes.get(k, [])
        acked = [w for w in ws if w["acked"]]
        b = base.get(k)
        need = max([w["rev"] for w in acked] + ([b[0]] if b else []), default=None)
        f = found.get(k)
        if need is None:
            # only in-flight writes: absent, or one of them
            if f is not None:
                w = value_owner.get(f[1])
                if not (w and w["key"] == k and not w["acked"] and w in ws):
                    wrong += 1
                    violations.append(dict(kind="wrong_value", key=k, found=f, expected="absent or in-flight write"))
            continue
        if f is None:
            lost += 1
            exp = max(acked, key=lambda w: w["rev"]) if acked else dict(rev=b[0], value=b[1])
            violations.append(dict(kind="lost", key=k, acked_rev=exp["rev"], acked_value=exp["value"], found=None))
            continue
        rf, vf = f
        if rf < need:
            lost += 1
            exp = max(acked, key=lambda w: w["rev"]) if acked and max(w["rev"] for w in acked) == need else dict(rev=b[0], value=b[1])
            violations.append(dict(kind="lost", key=k, acked_rev=exp["rev"], acked_value=exp["value"], found=[rf, vf]))
            continue
        if rf == need:
            exp_v = next((w["value"] for w in acked if w["rev"] == need), b[1] if b and b[0] == need else None)
            if vf != exp_v:
                wrong += 1
                violations.append(dict(kind="wrong_value", key=k, acked_rev=need, acked_value=exp_v, found=[rf, vf]))
            continue
        w = value_owner.get(vf)
        ok = w is not None and w["key"] == k and w in ws and (w["rev"] == rf if w["acked"] else True)
        if not ok:
            wrong += 1
            violations.append(dict(kind="wrong_value", key=k, need_rev_at_least=need, found=[rf, vf],
                                   found_value_is=(dict(rev=w["rev"], acked=w["acked"], key=w["key"]) if w else None)))
    # batches: whole or absent by tag; acked ones whole; their overwrites follow the tag keys
    tag_count = {}
    for k in found:
        if k.startswith("b") and "/" in k:
            t = k[:k.index("/") + 1]
            tag_count[t] = tag_count.get(t, 0) + 1
    for tag in pending_batches:
        bt = batches[tag]
        present = [k for k in bt["keys"] if k in found and found[k][1] == value_of_batch_key(tag, k)]
        n_any = tag_count.get(tag, 0)
        over_applied = [k for k, v in bt["over"] if k in found and (found[k][1] == v or
                        (bt["rev"] is not None and found[k][0] > bt["rev"]))]
        whole = len(present) == len(bt["keys"])
        if bt["acked"]:
            ok = whole and len(over_applied) == len(bt["over"])
        else:
            ok = (whole and n_any == len(bt["keys"])) or n_any == 0
            if ok and n_any == 0:
                # absent: none of its overwrites may show
                ok = not any(k in found and found[k][1] == v for k, v in bt["over"])
            elif ok and whole:
                revs = [found[k][0] for k in bt["keys"]]
                ok = all(k in found and (found[k][1] == v or found[k][0] > max(revs)) for k, v in bt["over"])
        if not ok:
            torn += 1
            violations.append(dict(kind="torn_batch", tag=tag, acked=bt["acked"], rev=bt["rev"],
                                   tag_keys=len(bt["keys"]), found_tag_keys=n_any, found_exact=len(present),
                                   overwrites=len(bt["over"]), overwrites_found=len(over_applied)))
    # the found state is now the durable base
    for k in keys:
        f = found.get(k)
        if f is None:
            base.pop(k, None)
        else:
            base[k] = f
    for k in found:
        if k not in keys:
            wrong += 1
            violations.append(dict(kind="unknown_key", key=k, found=found[k]))
            base[k] = found[k]
    writes.clear()
    value_owner.clear()
    return lost, wrong, torn

def value_of_batch_key(tag, k):
    return batches[tag]["vals"][k]

# ---------------------------------------------------------------- load
def run_load(cyc, secs):
    stop = threading.Event()
    cyc_stats = dict(puts=0, overwrites=0, batches=0, batch_lines=0, maybe=0, rejected=0, first_rev=None)
    old_keys = list(base.keys())
    recent = []  # keys PUT in this cycle and acknowledged
    st_lock = threading.Lock()

    def note_rev(r):
        global max_acked_rev
        with st_lock:
            if cyc_stats["first_rev"] is None or r < cyc_stats["first_rev"]:
                cyc_stats["first_rev"] = r
            max_acked_rev = max(max_acked_rev, r)

    def one_put(c, key, value, kind):
        try:
            st, body, _ = req(c, "PUT", "/v1/kv/" + urllib.parse.quote(key, safe=""), value.encode())
        except Exception:
            with lock:
                add_write(key, value, None, False)
                cyc_stats["maybe"] += 1
            return None, True
        if 200 <= st < 300:
            r = json.loads(body)["revision"]
            with lock:
                add_write(key, value, r, True)
                cyc_stats[kind] += 1
            note_rev(r)
            return r, False
        with lock:  # not acknowledged: treat as possibly applied
            add_write(key, value, None, False)
            cyc_stats["rejected"] += 1
        return None, False

    def pad(r):
        return "." * r.randint(20, 300)

    def putter(t):
        r = random.Random(rng.random())
        c = conn(); seq = 0
        while not stop.is_set():
            seq += 1
            key = f"p{cyc:04d}-{t}-{seq:06d}"
            rev, broken = one_put(c, key, f"P{cyc}.{t}.{seq}{pad(r)}", "puts")
            if rev is not None:
                with st_lock: recent.append(key)
            if broken:
                c.close(); c = conn()
        c.close()

    def overwriter(t):
        r = random.Random(rng.random())
        c = conn(); seq = 0
        while not stop.is_set():
            seq += 1
            with st_lock:
                pool = old_keys if (old_keys and (not recent or r.random() < 0.7)) else recent
                if not pool:
                    key = None
                else:
                    key = pool[r.randrange(len(pool))]
            if key is None:
                time.sleep(0.01); continue
            _, broken = one_put(c, key, f"O{cyc}.{t}.{seq}{pad(r)}", "overwrites")
            if broken:
                c.close(); c = conn()
        c.close()

    def batcher(t):
        r = random.Random(rng.random())
        c = conn(); seq = 0
        while not stop.is_set():
            seq += 1
            tag = f"b{cyc:04d}-{t}-{seq:05d}/"
            n = r.randint(20, 200)
            lines, keys, vals, over = [], [], {}, []
            for i in range(n):
                k = f"{tag}{i:03d}"; v = f"B{tag}{i}{pad(r)}"
                keys.append(k); vals[k] = v; lines.append((k, v))
            if r.random() < 0.5:
                with st_lock:
                    pool = old_keys + recent
                    cand = {pool[r.randrange(len(pool))] for _ in range(r.randint(1, 20))} if pool else set()
                for j, k in enumerate(sorted(cand)):
                    if k.startswith("b"):  # keep tag prefixes counting only this batch's own keys
                        continue
                    v = f"X{tag}{j}{pad(r)}"
                    over.append((k, v)); lines.append((k, v))
                r.shuffle(lines)
            body = "".join(json.dumps({"key": k, "value": v}) + "\n" for k, v in lines).encode()
            bt = dict(keys=keys, vals=vals, over=over, rev=None, n=len(lines), acked=False)
            try:
                st, resp, _ = req(c, "POST", "/v1/batch", body)
            except Exception:
                st, resp = None, None
            with lock:
                batches[tag] = bt
                pending_batches.append(tag)
                if st is not None and 200 <= st < 300:
                    j = json.loads(resp)
                    R = j["revision"]; bt["rev"] = R; bt["acked"] = True
                    if j.get("applied") != len(lines):
                        print(f"  !! batch {tag} applied={j.get('applied')} of {len(lines)}", flush=True)
                    first = R - len(lines) + 1
                    for i, (k, v) in enumerate(lines):
                        add_write(k, v, first + i, True, tag)
                    cyc_stats["batches"] += 1; cyc_stats["batch_lines"] += len(lines)
                else:
                    for k, v in lines:
                        add_write(k, v, None, False, tag)
                    cyc_stats["maybe" if st is None else "rejected"] += 1
            if st is not None and 200 <= st < 300:
                note_rev(bt["rev"])
            if st is None:
                c.close(); c = conn()
        c.close()

    ths = [threading.Thread(target=putter, args=(i,)) for i in range(args.put_threads)]
    ths += [threading.Thread(target=overwriter, args=(i,)) for i in range(args.overwrite_threads)]
    ths += [threading.Thread(target=batcher, args=(i,)) for i in range(args.batch_threads)]
    for th in ths: th.start()
    time.sleep(secs)
    try:  # flush activity of this server so far (evidence that flushes in parts ran)
        c = conn(); st, body, _ = req(c, "GET", "/metrics"); c.close()
        for l in body.decode().splitlines():
            for m in ("kvr_flushes_total", "kvr_flush_parts_total"):
                if l.startswith(m + " "):
                    cyc_stats[m] = int(float(l.split()[1]))
    except Exception:
        pass
    server_kill9()      # the crash lands while every thread has a request in flight or about to
    stop.set()
    for th in ths: th.join()
    return cyc_stats

# ---------------------------------------------------------------- cycle
def snapshot_root():
    snap = os.path.join(args.work, "pre-restart")
    shutil.rmtree(snap, ignore_errors=True)
    shutil.copytree(args.root, snap, symlinks=True)

def keep_failure(cyc, violations, tag):
    d = f"{args.fail_dir}-{cyc}"
    os.makedirs(d, exist_ok=True)
    shutil.copytree(os.path.join(args.work, "pre-restart"), os.path.join(d, "db-before-restart"), dirs_exist_ok=True)
    shutil.copytree(args.root, os.path.join(d, "db-after-verify"), dirs_exist_ok=True, symlinks=True)
    with open(os.path.join(d, f"violations-{tag}.json"), "w") as f:
        json.dump(violations, f, indent=1)
    shutil.copy(server[3], d)
    log(f"  kept failure data in {d}")

def verify_and_report(cyc, label, violations):
    global max_seen_rev
    found = scan_all()
    stats = get_json("/v1/stats")
    lost, wrong, torn = verify(cyc, found, violations, label)
    stats_bad = 0
    if stats["revision"] < max_acked_rev:
        stats_bad = 1
        violations.append(dict(kind="stats_revision_back", stats=stats, max_acked_rev=max_acked_rev))
    if stats["keys"] != len(found):
        violations.append(dict(kind="stats_keys_mismatch", stats=stats, scanned=len(found)))
        stats_bad += 1
    max_seen_rev = max(max_seen_rev, stats["revision"], max([r for r, _ in found.values()], default=0))
    return lost, wrong, torn, stats_bad, len(found), stats

def check_file():
    p = subprocess.run([args.kvr, "--db", DB, "check"], capture_output=True, text=True, timeout=600)
    out = (p.stdout + p.stderr).strip()
    return p.returncode == 0 and p.stdout.startswith("ok"), p.returncode, out

scanned_srv = 1
def main():
    global max_seen_rev
    log(f"seed={seed} kvr={args.kvr} db={DB} parts={args.part_keys} age_ms={args.flush_age_ms} "
        f"memtable_mib={args.memtable_mib} cycles={args.cycles} check_every={args.check_every} self_test={args.self_test}")
    os.makedirs(args.root, exist_ok=True)
    lazyfs_start()
    if os.path.exists(DB):
        sys.exit(f"{DB} exists: start from an empty root dir")
    server_start()
    any_violation = False
    selftest_expect = None
    for cyc in range(1, args.cycles + 1):
        if args.deadline and time.monotonic() - T0 > args.deadline:
            log(f"deadline reached before cycle {cyc}")
            break
        secs = rng.uniform(args.min_load, args.max_load)
        cs = run_load(cyc, secs)
        if cs["first_rev"] is not None and cs["first_rev"] <= max_seen_rev:
            tot["rev_back"] += 1; any_violation = True
            log(f"  !! revision went back: first acknowledged revision {cs['first_rev']} <= {max_seen_rev} seen before")
        power_loss()
        snapshot_root()
        if args.self_test and cyc == 1:
            # an acknowledged PUT that was never sent, a wrong recorded value, an acknowledged batch never sent
            add_write("selftest-never-sent", "never-sent-value", max_acked_rev, True)
            victim = next(w for ws in writes.values() for w in ws if w["acked"] and w["tag"] is None
                          and len(ws) == 1 and w["key"] not in base)
            value_owner.pop(victim["value"], None)
            victim["value"] = victim["value"] + "-tampered"; value_owner[victim["value"]] = victim
            tag = "bselftest/"
            batches[tag] = dict(keys=[tag + "000", tag + "001"], vals={tag + "000": "s0", tag + "001": "s1"},
                                over=[], rev=max_acked_rev, n=2, acked=True)
            pending_batches.append(tag)
            add_write(tag + "000", "s0", max_acked_rev - 1, True, tag)
            add_write(tag + "001", "s1", max_acked_rev, True, tag)
            selftest_expect = ("selftest-never-sent", victim["key"], tag)
            log(f"  self-test: fabricated lost key selftest-never-sent, tampered value of {victim['key']} "
                f"(rev {victim['rev']}), fabricated acknowledged batch {tag}")
        t = time.monotonic()
        server_start()
        first_srv_of_cycle = srv_count
        violations = []
        lost, wrong, torn, sbad, nkeys, stats = verify_and_report(cyc, "kill9", violations)
        pending_batches.clear()
        line = (f"cycle {cyc}: load {secs:.1f}s puts={cs['puts']} overwrites={cs['overwrites']} "
                f"batches={cs['batches']} ({cs['batch_lines']} lines) maybe={cs['maybe']} rejected={cs['rejected']} "
                f"flushes={cs.get('kvr_flushes_total')} parts={cs.get('kvr_flush_parts_total')} | "
                f"after kill-9+power-loss: keys={nkeys} rev={stats['revision']} (max acked {max_acked_rev}) "
                f"lost={lost} wrong={wrong} torn={torn} stats_bad={sbad} restart+verify={time.monotonic()-t:.1f}s")
        for k in ("puts", "overwrites", "batches", "batch_lines", "maybe", "rejected"):
            tot[k] += cs[k]
        tot["cycles"] += 1; tot["lost"] += lost; tot["wrong"] += wrong; tot["torn"] += torn; tot["stats_bad"] += sbad
        if args.check_every and (cyc % args.check_every == 0 or cyc == args.cycles):
            rc = server_term()
            power_loss()
            ok, crc, out = check_file()
            tot["checks_ok" if ok else "checks_bad"] += 1
            server_start()
            v2 = []
            l2, w2, t2, s2, n2, st2 = verify_and_report(cyc, "term", v2)
            tot["lost"] += l2; tot["wrong"] += w2; tot["torn"] += t2; tot["stats_bad"] += s2
            violations += v2
            line += (f" | SIGTERM rc={rc} + power-loss: check rc={crc} {'ok' if ok else 'FAILED'} "
                     f"({out.splitlines()[-1] if out else ''}) then keys={n2} lost={l2} wrong={w2} torn={t2}")
            if not ok:
                violations.append(dict(kind="check_failed", rc=crc, output=out[-4000:]))
        log(line)
        if violations:
            for v in violations[:20]:
                log("  VIOLATION", json.dumps(v)[:600])
            if len(violations) > 20:
                log(f"  ... {len(violations)} violations in all")
            if args.self_test and cyc == 1:
                def who(v):
                    k = v.get("key") or v.get("tag") or ""
                    return selftest_expect[2] if k.startswith(selftest_expect[2]) else k
                got = {who(v) for v in violations}
                real = [v for v in violations if who(v) not in selftest_expect]
                if set(selftest_expect) <= got and not real:
                    log("SELF-TEST PASSED: all three fabricated faults were reported, nothing else")
                else:
                    log(f"SELF-TEST: expected {selftest_expect}, got {sorted(map(str, got))}")
                    any_violation = True
                    keep_failure(cyc, violations, "selftest")
            else:
                any_violation = True
                keep_failure(cyc, violations, f"cycle{cyc}")
                if args.stop_on_violation:
                    break
        elif args.self_test and cyc == 1:
            log("SELF-TEST FAILED: fabricated faults not reported")
            any_violation = True
        # odd lines in the stderr of every server of this cycle (and the killed one of the last)
        global scanned_srv
        for i in range(scanned_srv, srv_count + 1):
            pth = os.path.join(args.work, f"server-{i:04d}.stderr")
            for j, l in enumerate(open(pth, errors="replace")):
                if (j == 0 and i == first_srv_of_cycle) or any(
                        w in l.lower() for w in ("panic", "error", "corrupt", "warn", "fail", "torn", "invalid")):
                    log(f"  server-{i:04d} stderr:", l.rstrip()[:400])
        scanned_srv = srv_count
    log("TOTAL " + " ".join(f"{k}={v}" for k, v in tot.items()) + f" elapsed={time.monotonic()-T0:.0f}s")
    server_term()
    lazyfs_stop()
    return 1 if any_violation else 0

if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        try:
            if server and server[0].poll() is None:
                server[0].kill(); server[0].wait()
        except Exception:
            pass
        try:
            lazyfs_stop()
        except Exception:
            pass
