#!/bin/sh
# demo.sh — `make demo`: a zapc node on this machine, two pods talking TCP.
#
# Starts zapc-agent in a fresh network namespace (a simulated node), creates
# two pods, has one call the other over TCP on their virtual IPs, lists
# them, destroys them, stops the agent, and checks nothing is left behind.
# Cleans up on success, failure and interrupt.  Needs root.
set -u

BIN=${ZAPC_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}/bin
[ "$(id -u)" = 0 ] || { echo "demo: run as root (make demo)" >&2; exit 1; }
for p in zapc zapc-agent zapc-init; do
	[ -x "$BIN/$p" ] || { echo "demo: $BIN/$p missing (run make)" >&2; exit 1; }
done

NODE=demo$$
DIR=$(mktemp -d /tmp/zapc-demo.XXXXXX)
SOCK=$DIR/agent.sock
CG=zapc-$NODE
AGENT=""
export ZAPC_SOCKET=$SOCK

if [ -t 1 ]; then B=$(printf '\033[1m'); N=$(printf '\033[0m'); else B=; N=; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
show() { printf '$ %s\n' "$*" | sed "s|$BIN/||g"; "$@"; }
fail() { printf '\ndemo: FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
	st=$?
	trap - EXIT INT TERM
	if [ -n "$AGENT" ] && kill -0 "$AGENT" 2>/dev/null; then
		kill -TERM "$AGENT"
		i=0
		while kill -0 "$AGENT" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$AGENT" 2>/dev/null
	fi
	# anything a crashed agent could have left: its cgroups and their processes
	for r in /sys/fs/cgroup/unified /sys/fs/cgroup/freezer /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do
		[ -d "$r/$CG" ] || continue
		for d in "$r/$CG"/*/; do
			[ -d "$d" ] || continue
			[ -f "$d/cgroup.kill" ] && echo 1 >"$d/cgroup.kill"
			for p in $(cat "$d/cgroup.procs"); do kill -KILL "$p"; done
			sleep 0.2
			rmdir "$d"
		done
		rmdir "$r/$CG"
	done 2>/dev/null
	if [ $st -ne 0 ] && [ -f "$DIR/agent.log" ]; then
		echo "--- agent log:" >&2
		cat "$DIR/agent.log" >&2
	fi
	rm -rf "$DIR"
	exit $st
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Start a node: zapc-agent in its own network namespace (node name $NODE)"
unshare --net -- "$BIN/zapc-agent" --foreground --name "$NODE" --socket "$SOCK" \
	--state-dir "$DIR/state" --cgroup-parent "$CG" >"$DIR/agent.log" 2>&1 &
AGENT=$!
i=0
until "$BIN/zapc" pod list >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 100 ] && fail "the agent did not answer on $SOCK"
	kill -0 "$AGENT" 2>/dev/null || fail "the agent exited"
	sleep 0.1
done
echo "agent pid $AGENT serving $SOCK; pods get addresses from 10.200.0.0/16 on bridge zapcbr0"

step "Create pod 'server': a TCP service on port 7000 that shouts back what it hears"
show "$BIN/zapc" pod create server --ip 10.200.0.10 -- \
	socat TCP-LISTEN:7000,reuseaddr,fork "EXEC:tr a-z A-Z" || fail "pod create server"

step "Create pod 'client'"
show "$BIN/zapc" pod create client -- sleep infinity || fail "pod create client"

step "Each pod is its own little machine: own pids, hostname and network"
show "$BIN/zapc" pod exec server -- ps -o pid,ppid,comm -e || fail "pod exec ps"
show "$BIN/zapc" pod exec client -- sh -c 'echo "hostname: $(hostname)"; ip -4 -o addr show eth0 | cut -d" " -f2,7; ip route | head -1' ||
	fail "pod exec ip"

step "The client calls the server over TCP on the server's virtual IP"
i=0
until "$BIN/zapc" pod exec server -- sh -c 'grep -q ":1B58 .* 0A " /proc/net/tcp' 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 50 ] && fail "server never listened"; sleep 0.1
done
reply=$(echo "hello server, this is the client" |
	timeout 10 "$BIN/zapc" pod exec client -- socat -t 2 - TCP:10.200.0.10:7000) ||
	fail "TCP from client to server"
printf '$ echo "hello server, this is the client" | zapc pod exec client -- socat - TCP:10.200.0.10:7000\n%s\n' "$reply"
[ "$reply" = "HELLO SERVER, THIS IS THE CLIENT" ] || fail "unexpected reply '$reply'"

step "Pods on this node"
show "$BIN/zapc" pod list || fail "pod list"

step "Destroy both pods"
show "$BIN/zapc" pod destroy server || fail "pod destroy server"
show "$BIN/zapc" pod destroy client || fail "pod destroy client"
show "$BIN/zapc" pod list || fail "pod list"

step "Stop the node"
kill -TERM "$AGENT"
i=0
while kill -0 "$AGENT" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 100 ] && fail "agent did not stop"; sleep 0.1
done
wait "$AGENT" 2>/dev/null
AGENT=""
sed 's/^/  log: /' "$DIR/agent.log"
for r in /sys/fs/cgroup/unified /sys/fs/cgroup/freezer /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do
	[ -d "$r/$CG" ] && fail "cgroup $r/$CG left behind"
done
[ -e "$SOCK" ] && fail "socket $SOCK left behind"
step "Done: pods talked over their virtual IPs; nothing left behind."

# The cluster part (issue 6): a simulated cluster, a job checkpointed, restarted on other
# nodes, migrated (scripts/cluster-demo.sh; it cleans up after itself).
bash "$(dirname "$0")/cluster-demo.sh" || exit 1
