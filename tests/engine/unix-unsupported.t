#!/bin/bash
# unix-unsupported.t — unix socket states the engine refuses: an fd in
# flight (SCM_RIGHTS queued and not received yet) whose file no process of
# the pod holds any more, and a connection to a socket outside the pod.  Each dump fails with one line naming the pid, the
# fd and the reason, leaves no image, and the pod runs on (no gap).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
command -v python3 >/dev/null || skip_all "python3 missing"
plan 8

d=$(mktemp -d /tmp/zeng-uxu.XXXXXX); on_exit "rm -rf $d"
check() {  # NAME REGEX
	wait_for 30 test -s "$d/out.$1"
	t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img.$1" 2> "$d/err.$1"; rc=$?
	[ $rc -ne 0 ] && [ "$(wc -l < "$d/err.$1")" = 1 ] && grep -Eq "$2" "$d/err.$1"
	ok $? "$1: dump fails with one line: $(cat "$d/err.$1")"
	[ ! -e "$d/img.$1" ]; ok $? "$1: no image"
	n=$(tail -1 "$d/out.$1"); sleep 0.3
	[ "$(tail -1 "$d/out.$1")" -gt "$n" ] && [ -z "$(seq_breaks "$d/out.$1")" ]
	ok $? "$1: the pod runs on, no gap"
}

pod_start zuxr python3 -c '
import socket, os, time
a, b = socket.socketpair()
f = os.open("/dev/null", os.O_RDONLY)
socket.send_fds(a, [b"x"], [f])
os.close(f)
i = 0
while True:
    print(i, flush=True); i += 1; time.sleep(0.003)' > "$d/out.rights"; ok $? "pod with an fd in flight started"
check rights 'pid 1 fd [0-9]+: .*in flight \(SCM_RIGHTS\) that no process of the pod holds'

python3 -c '
import socket, sys, time, os
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
c = s.accept()[0]; time.sleep(60)' "$d/outside.sock" & hostpid=$!
on_exit "kill $hostpid"
wait_for 30 test -S "$d/outside.sock"
pod_start zuxo python3 -c '
import socket, sys, time
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
i = 0
while True:
    print(i, flush=True); i += 1; time.sleep(0.003)' "$d/outside.sock" > "$d/out.outside"; ok $? "pod connected outside started"
check outside 'pid 1 fd [0-9]+: unix socket socket:\[[0-9]+\] is connected to socket [0-9]+ outside the pod'
