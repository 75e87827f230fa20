#!/bin/sh
# restart.t — an agent stops cleanly (pods destroyed, socket removed), can
# leave pods running (--keep-pods), runs as a daemon with a pidfile, and on
# start removes what a previous (crashed) instance left: processes,
# cgroups, veths.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 19

Z="t_timeout 20 $ZBIN/zapc"
NS=$(uniq zrns)
ip netns add "$NS" || exit 1
on_exit "ip netns del $NS"
AGENT_NETNS=/run/netns/$NS
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }

# 1. SIGTERM destroys the pods and removes the socket.
agent_start zr || exit 1
$Z pod create p1 -- sleep 1000 >/dev/null
init=$(pod_field p1 init_pid)
kill -TERM "$AGENT_PID"
wait_for 10 dead "$AGENT_PID"
ok $? "agent stops on SIGTERM"
wait_for 5 dead "$init"
ok $? "its pod was destroyed"
! cgroup_exists "$AGENT_CG"
ok $? "its cgroups (and the cgroup parent) are gone"
[ ! -e "$AGENT_SOCK" ]
ok $? "its socket is gone"
! ip -n "$NS" link show zapcbr0 >/dev/null 2>&1
ok $? "the bridge it created is gone"

# 2. A crashed agent's pod is cleaned up by the next agent.
agent_start zr || exit 1
$Z pod create p2 -- sleep 1000 >/dev/null
init=$(pod_field p2 init_pid)
veth=$(pod_field p2 veth)
cg=$AGENT_CG
kill -KILL "$AGENT_PID"
wait_for 5 dead "$AGENT_PID"
alive "$init"
ok $? "after a crash (SIGKILL) the pod is still there"
ip -n "$NS" link show "$veth" >/dev/null 2>&1
ok $? "and so is its veth"
agent_start zr || exit 1
is "$AGENT_CG" "$cg" "a new agent with the same cgroup parent starts"
wait_for 5 dead "$init"
ok $? "it killed the stale pod's processes"
! cgroup_exists "$AGENT_CG/p2"
ok $? "it removed the stale pod's cgroups"
! ip -n "$NS" link show "$veth" >/dev/null 2>&1
ok $? "it removed the stale veth"
[ -z "$(ip -n "$NS" route show proto 122)" ]
ok $? "it removed the stale pod's host route"
grep -q "removed 1 stale pod cgroups" "$AGENT_LOG"
ok $? "it logged the clean-up"

# 3. --keep-pods leaves pods running on exit.
kill -TERM "$AGENT_PID"; wait_for 10 dead "$AGENT_PID"
agent_start zr --keep-pods || exit 1
$Z pod create p3 -- sleep 1000 >/dev/null
init=$(pod_field p3 init_pid)
kill -TERM "$AGENT_PID"; wait_for 10 dead "$AGENT_PID"
alive "$init"
ok $? "--keep-pods: the pod outlives the agent"
kill -KILL "$init"

# 4. Daemon mode with a pidfile.
dir=$(mktemp -d /tmp/zapc-zrd.XXXXXX)
on_exit "rm -rf '$dir'"
name=$(uniq zrd)
on_exit "cgroup_purge zapc-$name"
t_timeout 10 nsenter --net="$AGENT_NETNS" "$ZBIN/zapc-agent" --name "$name" --socket "$dir/sock" \
	--state-dir "$dir/state" --pidfile "$dir/pid" --log "$dir/log"
ok $? "zapc-agent without --foreground returns (daemon)"
wait_for 5 test -s "$dir/pid"
pid=$(cat "$dir/pid" 2>/dev/null)
on_exit "kill -KILL $pid"
wait_for 5 t_timeout 5 "$ZBIN/zapc" --socket "$dir/sock" pod list
ok $? "the daemon serves its socket"
kill -TERM "$pid"
wait_for 10 dead "$pid"
ok $? "the daemon stops on SIGTERM"
[ ! -e "$dir/pid" ] && [ ! -e "$dir/sock" ]
ok $? "pidfile and socket removed"
grep -q "node $name stopped" "$dir/log"
ok $? "the daemon logged to its --log file"
