#!/bin/bash
# mpserver.t — a multi-process server (master with epoll over a unix
# listener, connections, a worker socketpair and an edge-triggered eventfd;
# a worker process; a client process on one connection) checkpointed while
# serving, killed and restored: the client keeps getting answers on its
# connection, the eventfd's count is intact (total = 5*floor(k/5) on every
# line) and a new client from outside is served through the listener.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 6

d=$(mktemp -d /tmp/zeng-mps.XXXXXX); on_exit "rm -rf $d"
pod_start zmps "$ZBIN/zt-mpserver" "$d/srv.sock" > "$d/out"; ok $? "server started"
wait_for 10 sh -c "[ \$(wc -l < '$d/out') -ge 30 ]"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img" 2> "$d/err"; ok $? "dump $(cat "$d/err")"
before=$(tail -1 "$d/out" | cut -d' ' -f1)
wait_for 5 pod_gone "$POD_CG"
pod_restore "$d/img" zmpsr; ok $? "restore"
target=$(( $(wc -l < "$d/out") + 30 ))
wait_for 10 sh -c "[ \$(wc -l < '$d/out') -ge $target ]"
after=$(tail -1 "$d/out" | cut -d' ' -f1)
[ "$after" -gt $((before + 20)) ] && awk '$1 != NR || $2 != 5 * int($1 / 5) { print "line " NR ": " $0; exit 1 }' "$d/out" >&2
ok $? "the client is served on, counts intact ($before -> $after)"
r=$(t_timeout 5 python3 -c '
import socket, sys
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); c.sendall(b"q"); print(c.recv(64).decode().split()[0])' "$d/srv.sock")
[ -n "$r" ] && [ "$r" -gt "$after" ]; ok $? "a new client is served through the restored listener (answer $r)"
is "$(pod_ps "$RPOD_INIT" | wc -l)" 3 "master, worker and client all restored"
