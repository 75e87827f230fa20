#!/bin/sh
# redis.t — `zapc checkpoint` / `zapc restore` of a pod running redis-server
# and a client that keeps one unix-socket connection (through the agent:
# the pod's own netns and IP).  After restore the keys are there and the
# client is served on the same connection with no gap.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v python3 >/dev/null ||
	skip_all "needs redis-server, redis-cli, python3"
plan 7

Z="t_timeout 30 $ZBIN/zapc"
agent_start zrd || exit 1
d=$(mktemp -d /tmp/zapc-redis.XXXXXX)
on_exit "rm -rf '$d'"
$Z pod create rds -- python3 "$ZAPC_SRC/tests/redis-client.py" "$d" > /dev/null
ok $? "pod with redis-server and a client created"
cons=$(pod_field rds console)
wait_for 20 sh -c "[ \$(wc -l < '$cons' 2>/dev/null || echo 0) -ge 20 ]"
$Z checkpoint rds -o "$d/img" > "$d/ck.out" 2>&1
ok $? "checkpoint ($(cat "$d/ck.out"))"
before=$(tail -1 "$cons" | cut -d' ' -f1)
$Z restore "$d/img" > "$d/rs.out" 2>&1
ok $? "restore ($(cat "$d/rs.out"))"
target=$(( $(wc -l < "$cons") + 20 ))
wait_for 10 sh -c "[ \$(wc -l < '$cons') -ge $target ]"
after=$(tail -1 "$cons" | cut -d' ' -f1)
n0=$(head -1 "$cons" | cut -d' ' -f1)
awk -v n0="$n0" '$1 != n0 + NR - 1 { print "line " NR ": " $0; exit 1 }' "$cons" >&2 && [ "$after" -gt "$before" ]
ok $? "the client is served on without a gap ($before -> $after)"
is "$(cut -d' ' -f2 "$cons" | sort -u | wc -l)" 1 "on the same connection (one CLIENT ID)"
is "$(t_timeout 5 redis-cli -s "$d/redis.sock" GET key42)" "value1764" "keys set before the checkpoint are there"
$Z pod destroy rds > /dev/null
ok $? "pod destroyed"
