"""JSON lines for kvr batch: N random keys k:<12 hex>, values of SIZE bytes.

Usage: python3 scripts/ops/gen.py N SIZE | kvr --db big.redb batch
"""
import sys, random
n = int(sys.argv[1]); size = int(sys.argv[2])
r = random.Random(1)
out = sys.stdout
pad = 'v' * size
for i in range(n):
    k = r.getrandbits(48)
    out.write('{"key":"k:%012x","value":"%08d%s"}\n' % (k, i, pad[:size-8]))
