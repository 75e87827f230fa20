#!/bin/sh
# bench/inet.sh — TCP sockets through the engine (zapc checkpoint/restore via
# an agent): frozen time of a pod holding 100 established connections (and of
# a pod without sockets, for comparison), and the time from the end of
# `zapc restore` until the peer has a byte back on each of the 100 restored
# connections (its bytes go through the restored sockets and the pod's echo).
# Needs root; starts its own agent and removes everything.
ZAPC_SRC=${ZAPC_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
ZAPC_BUILD=${ZAPC_BUILD:-$ZAPC_SRC/build}
. "$ZAPC_SRC/tests/lib.sh" >/dev/null
_t_planned=0
ROUNDS=${ROUNDS:-5}
Z="t_timeout 60 $ZBIN/zapc"
agent_start zib > /dev/null || { echo "inet bench: agent did not start"; exit 1; }
T=$(mktemp -d /tmp/zapc-inetb.XXXXXX)
on_exit "rm -rf '$T'"
IP=10.200.0.63 PORT=7500

# frozen_of POD — median frozen time (ms) of ROUNDS snapshots, from the agent's log
frozen_of() {
	: > "$T/f"
	i=0
	while [ $i -lt "$ROUNDS" ]; do
		n=$(grep -c "checkpoint done" "$AGENT_LOG")
		$Z checkpoint "$1" -o "$T/snap" --leave-running > /dev/null || return 1
		grep "pod $1: checkpoint done" "$AGENT_LOG" | tail -1 | sed 's/.*frozen \([0-9]*\) us.*/\1/' >> "$T/f"
		i=$((i + 1))
	done
	sort -n "$T/f" | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1000 }'
}

$Z pod create plain -- sleep 100000 > /dev/null
base=$(frozen_of plain)
$Z pod destroy plain > /dev/null

$Z pod create echo --ip $IP -- "$ZBIN/zi_stream" echo $PORT > /dev/null
wait_for 5 grep -q "echo listening" "$(pod_field echo console)"
agent_netns timeout -k 5 120 "$ZBIN/zi_stream" conns $IP $PORT 100 "$T/first" > "$T/conns.out" 2>&1 &
C=$!
on_exit "kill $C 2>/dev/null"
wait_for 10 grep -q "connected 100" "$T/conns.out" || { echo "inet bench: 100 connections failed"; exit 1; }
conns=$(frozen_of echo)

$Z checkpoint echo -o "$T/img" > /dev/null || { echo "inet bench: checkpoint failed"; exit 1; }
$Z restore "$T/img" > /dev/null || { echo "inet bench: restore failed"; exit 1; }
touch "$T/first.go"
wait $C
first=$(cat "$T/first" 2>/dev/null)
echo "pod without sockets frozen ${base} ms; with 100 connections frozen ${conns} ms (median of $ROUNDS snapshots; the hold starts before the freeze)"
[ -n "$base" ] && echo "BENCH inet_frozen_no_sockets_ms $base ms median, pod without sockets (reference)"
[ -n "$conns" ] && echo "BENCH inet_frozen_100_conns_ms $conns ms median (hold started before the freeze); issue target: capture < 1 ms on top of freezing"
[ -n "$first" ] && echo "BENCH inet_restore_first_echo_100_conns_ms $first ms from restore done to a byte back on all 100; target first byte < 50 ms"
