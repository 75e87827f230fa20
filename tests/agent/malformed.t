#!/bin/sh
# malformed.t — garbage, truncated frames, huge lengths and unknown commands
# get an error (or a close) and the agent keeps serving the next client.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
command -v python3 >/dev/null || skip_all "python3 missing"
plan 16

Z="t_timeout 20 $ZBIN/zapc"
agent_start zm || exit 1

# raw MODE: send a crafted frame, print the agent's answer (status, error) or "closed".
raw() {
	t_timeout 10 python3 - "$AGENT_SOCK" "$1" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
mode = sys.argv[2]
if mode == "garbage":
    body = b"\xff\xfe\xfd\xfc\x01\x02\x03garbage"
    s.sendall(struct.pack(">I", len(body)) + body)
elif mode == "huge":
    s.sendall(struct.pack(">I", 0xfffffff0) + b"abc")
elif mode == "truncated":
    s.sendall(struct.pack(">I", 100) + b"only ten b")
    s.shutdown(socket.SHUT_WR)
elif mode == "unknown":
    body = bytes([0xa2, 0x06, 0x00])      # field 100, empty: no known command
    s.sendall(struct.pack(">I", len(body)) + body)
elif mode == "manyfds":
    body = bytes([0x1a, 0x00])            # PodList
    fds = [sys.stdin.fileno()] * 20
    socket.send_fds(s, [struct.pack(">I", len(body)) + body], fds)
elif mode == "listfds":
    body = bytes([0x1a, 0x00])            # PodList, with 3 fds it does not use
    socket.send_fds(s, [struct.pack(">I", len(body)) + body], [0, 1, 2])
elif mode == "twice":
    body = b"\x0a\x05\xff\xff"            # bad embedded length
    s.sendall((struct.pack(">I", len(body)) + body) * 2)
s.settimeout(5)
def answer():
    hdr = b""
    while len(hdr) < 4:
        c = s.recv(4 - len(hdr))
        if not c:
            return None
        hdr += c
    n = struct.unpack(">I", hdr)[0]
    data = b""
    while len(data) < n:
        c = s.recv(n - len(data))
        if not c:
            return None
        data += c
    return data
n = 2 if mode == "twice" else 1
for i in range(n):
    a = answer()
    if a is None:
        print("closed")
        break
    # Response: field 1 status (varint, zigzag-free int32), field 2 error (string)
    i, status, err = 0, 0, ""
    while i < len(a):
        key = a[i]; i += 1
        if key == 0x08:
            v, shift = 0, 0
            while True:
                b = a[i]; i += 1
                v |= (b & 0x7f) << shift; shift += 7
                if not b & 0x80: break
            status = v - (1 << 64) if v >= 1 << 63 else v
        elif key == 0x12:
            l = a[i]; i += 1
            err = a[i:i+l].decode(); i += l
        else:
            break
    print("status %d %s" % (status, err))
PY
}

serving() { $Z pod list >/dev/null; }

out=$(raw garbage)
case $out in "status -74 "*) ok 0 "garbage payload answered with EBADMSG";; *) ok 1 "garbage: $out";; esac
serving; ok $? "agent still serves after garbage"
out=$(raw huge)
case $out in "status -90 "*) ok 0 "4 GiB length answered with EMSGSIZE";; *) ok 1 "huge: $out";; esac
serving; ok $? "agent still serves after a huge length"
out=$(raw truncated)
is "$out" closed "truncated frame: connection closed without an answer"
serving; ok $? "agent still serves after a truncated frame"
out=$(raw unknown)
case $out in "status -95 "*) ok 0 "unknown command answered with EOPNOTSUPP";; *) ok 1 "unknown: $out";; esac
serving; ok $? "agent still serves after an unknown command"
out=$(raw twice | tr '\n' '|')
case $out in "status -74 "*"|status -74 "*) ok 0 "two bad requests on one connection: two answers";; *) ok 1 "twice: $out";; esac
$Z pod create after -- sleep 100 >/dev/null
ok $? "a pod can still be created"
kill -0 "$AGENT_PID"
ok $? "agent process alive"
grep -q "malformed request" "$AGENT_LOG"
ok $? "the agent logged the malformed request"

nfd() { ls "/proc/$AGENT_PID/fd" | wc -l; }
before=$(nfd)
out=$(raw manyfds </dev/null)
case $out in "status -105 "*) ok 0 "20 fds with one request answered with ENOBUFS";; *) ok 1 "manyfds: $out";; esac
out=$(raw listfds </dev/null)
is "$out" "status 0 " "fds a command does not use are accepted and ignored"
serving; ok $? "agent still serves after fd abuse"
is "$(nfd)" "$before" "the agent kept none of the fds passed to it"
