#!/bin/sh
# stream.t — a full-speed bidirectional TCP stream between a pod and a peer
# survives 50 snapshot checkpoints and 5 migrations to a new netns with the
# same address: every byte checked on both sides, and the peer sees no RST.
. "${ZAPC_SRC:-.}/tests/lib.sh"
. "$ZAPC_SRC/tests/netstate/pod.sh"
need_root
plan 9

P=$(uniq nss)
on_exit "pod_net_down $P"
pod_net_up $P
ok $? "pod, peer and switch netns are up"

T=$(mktemp -d /tmp/$P.XXXXXX)
on_exit "rm -rf $T"
PORT=7100

# Watch the peer's wire for resets, and its TCP counters.
t_timeout 300 ip netns exec $NS_PEER tcpdump -i eth0 -n -l -U 'tcp[tcpflags] & tcp-rst != 0' \
	> $T/rst.txt 2>$T/tcpdump.err &
TD=$!
on_exit "kill $TD"
ip netns exec $NS_PEER nstat -n >/dev/null 2>&1
t_timeout 300 ip netns exec $NS_PEER $ZBIN/ns_stream peer $PORT $T/peer.txt 2>$T/peer.err &
PEER=$!
on_exit "kill $PEER"
sleep 0.3

t_timeout 280 $ZBIN/ns_stream driver $NS_POD $PEER_IP $PORT 50 5 $T/app.state $POD_HELPER \
	> $T/driver.txt 2>$T/driver.err
ok $? "driver: 50 snapshots and 5 migrations done"
is "$(awk '/^buffers over the autotuning ceiling/ { print $NF }' $T/driver.txt)" 0 \
	"restored buffers stay within the autotuning ceiling (tcp_wmem/tcp_rmem)"
wait $PEER
ok $? "peer finished cleanly"
sed 's/^/# /' $T/driver.txt $T/peer.txt; grep -v '^driver: migration' $T/driver.err | head -20 | sed 's/^/# /'

set -- $(grep '^app ' $T/driver.txt)
APP_SENT=$2 APP_RCVD=$3 APP_ERR=$4
set -- $(cat $T/peer.txt)
PEER_SENT=$1 PEER_RCVD=$2 PEER_ERR=$3
[ "${APP_ERR:-x}" = 0 ] && [ "${PEER_ERR:-x}" = 0 ]
ok $? "every byte matched on both sides (app errors $APP_ERR, peer errors $PEER_ERR)"
[ -n "$APP_SENT" ] && [ "$APP_SENT" = "$PEER_RCVD" ] && [ "$PEER_SENT" = "$APP_RCVD" ] && [ "$APP_SENT" -gt 10000000 ]
ok $? "no byte lost or duplicated: app sent $APP_SENT, peer got $PEER_RCVD; peer sent $PEER_SENT, app got $APP_RCVD"

grep -q "listening on eth0" $T/tcpdump.err
ok $? "tcpdump was capturing on the peer's eth0"
sleep 0.5; kill $TD 2>/dev/null; wait $TD 2>/dev/null
is "$(grep -c 'Flags \[R' $T/rst.txt)" 0 "tcpdump on the peer saw no RST"
RESETS=$(ip netns exec $NS_PEER nstat -a 2>/dev/null | awk '$1=="TcpEstabResets"||$1=="TcpExtTCPAbortOnData"||$1=="TcpExtTCPAbortOnClose"{s+=$2} END{print s+0}')
is "$RESETS" 0 "peer's TCP counters: no established connection reset or aborted"
