import os, sys
start, count = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout
buf = []
for i in range(start, start + count):
    buf.append('{"key":"key:%010d","value":"%s"}\n' % (i, os.urandom(480).hex()))
    if len(buf) >= 10000:
        out.write(''.join(buf)); buf = []
out.write(''.join(buf))
