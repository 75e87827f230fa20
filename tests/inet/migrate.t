#!/bin/bash
# migrate.t — a pod on node n1 streams both ways at full speed to a peer on
# node n3 (simulated cluster); it is migrated n1 -> n2 -> n1 with
# `zapc checkpoint -o - | zapc restore -` and `simcluster route IP NODE`:
# the stream goes on, every byte arrives once and in order on both sides,
# the peer sees no RST, and nothing is left on any node.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
command -v tcpdump >/dev/null || skip_all "tcpdump missing"
plan 12

SC=$ZAPC_SRC/tests/cluster/simcluster
export SIMCLUSTER_PREFIX ZBIN
SIMCLUSTER_PREFIX=$(uniq zim)
P=$SIMCLUSTER_PREFIX
T=$(mktemp -d /tmp/zapc-inetmig.XXXXXX)
on_exit "rm -rf '$T'"
on_exit "$SC down --prefix $P > /dev/null"
sock() { echo "/run/zapc-simcluster/$P/$P-n$1/agent.sock"; }
Z() { _n=$1; shift; t_timeout 30 "$ZBIN/zapc" --socket "$(sock $_n)" "$@"; }
PORT=7300

t_timeout 60 "$SC" up 3 --agents > /dev/null
ok $? "3 nodes with an agent each"
PEER_IP=$("$SC" exec n3 -- ip -4 -o addr show dev eth0 | awk '{ sub("/.*", "", $4); print $4 }')

"$SC" exec n3 -- timeout -k 5 200 tcpdump -i eth0 -n -l -U 'tcp[tcpflags] & tcp-rst != 0' \
	> "$T/rst.txt" 2> "$T/tcpdump.err" &
TD=$!
on_exit "kill $TD 2>/dev/null"
export NSTAT_HISTORY="$T/nstat.hist"
"$SC" exec n3 -- nstat -n > /dev/null 2>&1
"$SC" exec n3 -- timeout -k 5 200 "$ZBIN/zi_stream" peer $PORT "$T/peer" "$T/stop" 2> "$T/peer.err" &
PEER=$!
on_exit "kill $PEER 2>/dev/null"
wait_for 5 grep -q "listening on" "$T/tcpdump.err"
wait_for 5 sh -c "'$SC' exec n3 -- ss -Hltn 'sport = :$PORT' | grep -q LISTEN"

out=$(Z 1 pod create app -- "$ZBIN/zi_stream" app "$PEER_IP" $PORT)
ok $? "a pod on n1 streams to a peer on n3 ($PEER_IP:$PORT)"
IP=$(echo "$out" | sed -n 's/^pod .*: ip \([0-9.]*\),.*/\1/p')

moving() { stream_moves "$T/peer.progress"; }
wait_for 5 moving
ok $? "the stream runs both ways"

# migrate FROM TO
migrate() {
	Z $1 checkpoint app -o - 2> "$T/ck$1.err" | Z $2 restore - > "$T/rs$2.out" 2> "$T/rs$2.err"
	_st="${PIPESTATUS[0]}${PIPESTATUS[1]}"
	t_timeout 20 "$SC" route "$IP" "n$2" > /dev/null
	[ "$_st" = 00 ] || { cat "$T/ck$1.err" "$T/rs$2.err" | sed 's/^/# /'; return 1; }
}
migrate 1 2
ok $? "migrated n1 -> n2 ($IP routed to n2)"
is "$(ZAPC_SOCKET=$(sock 2) pod_field app state)$(ZAPC_SOCKET=$(sock 1) pod_field app name)" running \
	"the pod runs on n2 and is gone from n1"
moving
ok $? "the stream goes on from n2"
migrate 2 1
ok $? "migrated back n2 -> n1"
moving
ok $? "the stream goes on from n1"

cons=$(ZAPC_SOCKET=$(sock 1) pod_field app console)
touch "$T/stop"
wait $PEER
ok $? "the peer finished cleanly ($(cat "$T/peer" 2>/dev/null))"
wait_for 5 grep -q "^app [0-9]" "$cons"
set -- $(grep "^app [0-9]" "$cons")
APP_SENT=$2 APP_RCVD=$3 APP_ERR=$4
set -- $(cat "$T/peer")
PEER_SENT=$1 PEER_RCVD=$2 PEER_ERR=$3
[ "${APP_ERR:-x}" = 0 ] && [ "${PEER_ERR:-x}" = 0 ] && [ -n "$APP_SENT" ] && [ "$APP_SENT" = "$PEER_RCVD" ] &&
	[ "$PEER_SENT" = "$APP_RCVD" ] && [ "$APP_SENT" -gt 1000000 ]
ok $? "every byte once and in order: app sent ${APP_SENT:-?} (peer got ${PEER_RCVD:-?}), peer sent ${PEER_SENT:-?} (app got ${APP_RCVD:-?}), errors ${APP_ERR:-?}/${PEER_ERR:-?}"

sleep 0.3; kill $TD 2>/dev/null; wait $TD 2>/dev/null
is "$(grep -c 'Flags \[R' "$T/rst.txt")" 0 "tcpdump on the peer's node saw no RST"
RESETS=$("$SC" exec n3 -- nstat -a 2>/dev/null | awk '$1=="TcpEstabResets"||$1=="TcpExtTCPAbortOnData"||$1=="TcpExtTCPAbortOnClose"||$1=="TcpOutRsts"{s+=$2} END{print s+0}')
is "$RESETS" 0 "peer's TCP counters: no reset, no abort"
done_testing
