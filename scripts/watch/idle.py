import socket, sys, time
host, port = sys.argv[1].split(":"); n = int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /v1/watch?prefix=idle/ HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
time.sleep(3600)
