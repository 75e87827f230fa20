#!/bin/bash
# redis.t — redis-server with a client connected over a unix socket, both in
# the pod.  The client (python, one connection for its whole life) sets keys,
# then loops INCR + CLIENT ID.  After checkpoint, kill and restore: the keys
# are there (asked by redis-cli from outside through the socket path), the
# counter goes on without a gap and the client is still served on the same
# connection (same CLIENT ID).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v python3 >/dev/null ||
	skip_all "needs redis-server, redis-cli, python3"
plan 7

d=$(mktemp -d /tmp/zeng-redis.XXXXXX); on_exit "rm -rf $d"
pod_start zredis python3 "$ZAPC_SRC/tests/redis-client.py" "$d" > "$d/out"; ok $? "redis-server and its client started"
wait_for 20 sh -c "[ \$(wc -l < '$d/out') -ge 20 ]"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img" 2> "$d/err"; ok $? "dump $(cat "$d/err")"
before=$(tail -1 "$d/out")
wait_for 5 pod_gone "$POD_CG"
pod_restore "$d/img" zredisr; ok $? "restore"
target=$(( $(wc -l < "$d/out") + 20 ))
wait_for 10 sh -c "[ \$(wc -l < '$d/out') -ge $target ]"
after=$(tail -1 "$d/out")
n0=$(head -1 "$d/out" | cut -d' ' -f1)
awk -v n0="$n0" '$1 != n0 + NR - 1 { print "line " NR ": " $0; exit 1 }' "$d/out" >&2 &&
	[ "${after% *}" -gt "${before% *}" ]
ok $? "the counter goes on without a gap ($before -> $after)"
is "$(cut -d' ' -f2 "$d/out" | sort -u | wc -l)" 1 "the same connection (one CLIENT ID) before and after"
is "$(t_timeout 5 redis-cli -s "$d/redis.sock" GET key42)" "value1764" "keys set before the checkpoint are there"
is "$(t_timeout 5 redis-cli -s "$d/redis.sock" LRANGE list 0 -1 | tr '\n' ' ')" "a b c " "and lists"
