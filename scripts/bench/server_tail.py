#!/usr/bin/env python3
"""The server's own latency percentiles from its access log (the last
field of each request line, e.g. `1.679ms`), over the lines after line
SKIP: how long kvr's handler took, from the parsed request head to the
response it hands to hyper. Not in it: waiting for a worker, parsing,
writing the response, and the load generator's side of the socket, all
of which wrk's figures hold. Usage: server_tail.py LOG SKIP"""
import sys


def millis(field):
    for unit, scale in (("ms", 1.0), ("µs", 0.001), ("us", 0.001), ("s", 1000.0)):
        if field.endswith(unit):
            return float(field[: -len(unit)]) * scale
    raise ValueError(field)


def main():
    log, skip = sys.argv[1], int(sys.argv[2])
    took = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f):
            if n < skip:
                continue
            parts = line.split()
            if len(parts) < 6 or not parts[3].startswith("/"):
                continue
            try:
                took.append(millis(parts[-1]))
            except ValueError:
                continue
    if not took:
        print("server: no request lines")
        return
    took.sort()
    at = lambda q: took[min(len(took) - 1, int(len(took) * q))]
    print(f"handler p50={at(0.5):.3f}ms p99={at(0.99):.3f}ms p99.9={at(0.999):.3f}ms")


main()
