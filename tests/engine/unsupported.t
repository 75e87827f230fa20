#!/bin/bash
# unsupported.t — a pod holding an object the engine does not handle yet (a
# raw ICMP socket; TCP/UDP are handled by inet.c) cannot be checkpointed: the dump fails with one line naming
# the process, the fd and the type, writes no image, and the pod keeps
# running unharmed (its counter goes on with no gap).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 5

d=$(mktemp -d /tmp/zeng-uns.XXXXXX); on_exit "rm -rf $d"
pod_start zu python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
i = 0
while True:
    print(i, flush=True); i += 1; time.sleep(0.003)' > "$d/out"; ok $? "pod started"
wait_for 30 test -s "$d/out"    # python may take more than a second to start on a loaded machine
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img" 2> "$d/err"; rc=$?
[ $rc -ne 0 ] && [ "$(wc -l < "$d/err")" = 1 ]; ok $? "dump fails with one line: $(cat "$d/err")"
grep -q 'pid 1 fd [0-9]*: socket:' "$d/err"; ok $? "the line names pid, fd and type"
[ ! -e "$d/img" ]; ok $? "no image left behind"
n=$(tail -1 "$d/out"); sleep 0.3
[ "$(tail -1 "$d/out")" -gt "$n" ] && [ -z "$(seq_breaks "$d/out")" ] &&
	! grep -q T /proc/$POD_INIT/stat 2>/dev/null && [ "$(awk '/TracerPid/ {print $2}' /proc/$POD_INIT/status)" = 0 ]
ok $? "the pod runs on unharmed, untraced, no gap"
