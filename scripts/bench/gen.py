#!/usr/bin/env python3
"""JSON lines of N pairs key:%012d -> 100-byte value, in random order."""
import random, sys
n = int(sys.argv[1])
order = list(range(n))
random.seed(1)
random.shuffle(order)
v = "v" * 100
w = sys.stdout.write
for i in order:
    w('{"key":"key:%012d","value":"%s"}\n' % (i, v))
