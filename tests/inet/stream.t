#!/bin/sh
# stream.t — a pod's TCP connection to a peer outside it (in the agent's node
# netns) streams both ways at full speed, each side checking every byte,
# while the pod is snapshotted 20 times and checkpointed + restored (killed
# and re-created on the same node) 3 times: every byte arrives once and in
# order on both sides and the peer sees no RST.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
command -v tcpdump >/dev/null || skip_all "tcpdump missing"
SNAPS=${INET_SNAPS:-20} MOVES=${INET_MOVES:-3}
plan 9

Z="t_timeout 30 $ZBIN/zapc"
agent_start zis || exit 1
T=$(mktemp -d /tmp/zapc-inet.XXXXXX)
on_exit "rm -rf '$T'"
GW=$(agent_netns ip -4 -o addr show dev zapcbr0 | awk '{ sub("/.*", "", $4); print $4; exit }')
IP=10.200.0.60 PORT=7200

# moving — the stream advances both ways within 10 s
moving() { stream_moves "$T/peer.progress"; }

agent_netns timeout -k 5 300 tcpdump -i zapcbr0 -n -l -U 'tcp[tcpflags] & tcp-rst != 0' \
	> "$T/rst.txt" 2> "$T/tcpdump.err" &
TD=$!
on_exit "kill $TD 2>/dev/null"
export NSTAT_HISTORY="$T/nstat.hist"
agent_netns nstat -n > /dev/null 2>&1
agent_netns timeout -k 5 300 "$ZBIN/zi_stream" peer $PORT "$T/peer" "$T/stop" 2> "$T/peer.err" &
PEER=$!
on_exit "kill $PEER 2>/dev/null"
wait_for 5 grep -q "listening on" "$T/tcpdump.err"
wait_for 5 sh -c "nsenter --net=/proc/$AGENT_PID/ns/net ss -Hltn 'sport = :$PORT' | grep -q LISTEN"

$Z pod create app --ip $IP -- "$ZBIN/zi_stream" app "$GW" $PORT > /dev/null
ok $? "a pod streams to a peer in the node's netns ($GW:$PORT)"
cons=$(pod_field app console)
wait_for 5 moving
ok $? "the stream runs both ways"

fails=0
i=0
while [ $i -lt "$SNAPS" ]; do
	$Z checkpoint app -o "$T/snap" --leave-running > /dev/null 2>> "$T/ck.err" || fails=$((fails + 1))
	sleep 0.1
	i=$((i + 1))
done
moving
ok $(( fails + $? )) "$SNAPS snapshots during the stream ($fails failed), the stream goes on"

fails=0
i=0
while [ $i -lt "$MOVES" ]; do
	$Z checkpoint app -o "$T/img" > /dev/null 2>> "$T/ck.err" || fails=$((fails + 1))
	sleep 0.2
	$Z restore "$T/img" > /dev/null 2>> "$T/ck.err" || fails=$((fails + 1))
	moving || fails=$((fails + 1))
	i=$((i + 1))
done
ok $fails "$MOVES checkpoints (pod killed) + restores on the same node, the stream goes on each time"
[ -s "$T/ck.err" ] && sed 's/^/# /' "$T/ck.err"

touch "$T/stop"
wait $PEER
ok $? "the peer finished cleanly ($(cat "$T/peer" 2>/dev/null))"
wait_for 5 grep -q "^app [0-9]" "$cons"
set -- $(grep "^app [0-9]" "$cons")
APP_SENT=$2 APP_RCVD=$3 APP_ERR=$4
set -- $(cat "$T/peer")
PEER_SENT=$1 PEER_RCVD=$2 PEER_ERR=$3
[ "${APP_ERR:-x}" = 0 ] && [ "${PEER_ERR:-x}" = 0 ]
ok $? "every byte matched on both sides (app errors ${APP_ERR:-?}, peer errors ${PEER_ERR:-?})"
[ -n "$APP_SENT" ] && [ "$APP_SENT" = "$PEER_RCVD" ] && [ "$PEER_SENT" = "$APP_RCVD" ] && [ "$APP_SENT" -gt 10000000 ]
ok $? "no byte lost or duplicated: app sent ${APP_SENT:-?}, peer got ${PEER_RCVD:-?}; peer sent ${PEER_SENT:-?}, app got ${APP_RCVD:-?}"

sleep 0.3; kill $TD 2>/dev/null; wait $TD 2>/dev/null
is "$(grep -c 'Flags \[R' "$T/rst.txt")" 0 "tcpdump on the node's bridge saw no RST"
RESETS=$(agent_netns nstat -a 2>/dev/null | awk '$1=="TcpEstabResets"||$1=="TcpExtTCPAbortOnData"||$1=="TcpExtTCPAbortOnClose"||$1=="TcpOutRsts"{s+=$2} END{print s+0}')
is "$RESETS" 0 "peer's TCP counters: no reset sent or received, no abort"
done_testing
