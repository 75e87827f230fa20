# redis-client.py DIR — starts redis-server on DIR/redis.sock, sets key0..key99 and a
# list, then keeps one connection and prints "INCR-value CLIENT-ID" every 10 ms
# (tests/agent/redis.t and tests/engine/redis.t checkpoint it).
import socket, subprocess, sys, time
d = sys.argv[1]
subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", d + "/redis.sock", "--save", "",
                  "--appendonly", "no", "--dir", d, "--logfile", d + "/redis.log"])
c = socket.socket(socket.AF_UNIX)
for _ in range(200):
    try:
        c.connect(d + "/redis.sock"); break
    except OSError:
        time.sleep(0.05)
f = c.makefile("rb")
def cmd(*a):
    c.sendall(("*%d\r\n" % len(a) + "".join("$%d\r\n%s\r\n" % (len(x), x) for x in a)).encode())
    l = f.readline().decode().strip()
    if l.startswith("$"):
        return f.readline().decode().strip()
    return l[1:]
for i in range(100):
    cmd("SET", "key%d" % i, "value%d" % (i * i))
cmd("RPUSH", "list", "a", "b", "c")
while True:
    print(cmd("INCR", "n"), cmd("CLIENT", "ID"), flush=True)
    time.sleep(0.01)
