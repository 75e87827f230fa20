#!/bin/sh
# server.t — a server pod's listening TCP socket and its UDP socket through
# checkpoint + restore: the restored listener accepts new connections, and a
# datagram queued before the checkpoint is read after the restore with its
# source address and port.  Also: a checkpoint that fails (full disk) during
# a stream leaves the stream intact (capture is non-destructive, the hold is
# released).
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 11

Z="t_timeout 30 $ZBIN/zapc"
agent_start zisv || exit 1
T=$(mktemp -d /tmp/zapc-inetsrv.XXXXXX)
on_exit "umount -l '$T/small' 2>/dev/null; rm -rf '$T'"
GW=$(agent_netns ip -4 -o addr show dev zapcbr0 | awk '{ sub("/.*", "", $4); print $4; exit }')
IP=10.200.0.61 PORT=7400
ask() { agent_netns timeout -k 2 10 "$ZBIN/zi_stream" ask $IP $PORT "$1"; }

$Z pod create srv --ip $IP -- "$ZBIN/zi_stream" server $PORT "$T/trigger" > /dev/null
ok $? "a server pod listens on TCP and UDP port $PORT"
cons=$(pod_field srv console)
wait_for 5 grep -q "server listening" "$cons"
is "$(ask one)" "echo one" "it answers a connection before the checkpoint"

agent_netns timeout 5 "$ZBIN/zi_stream" udpsend $IP $PORT 7411 "queued-before"
ok $? "a datagram from $GW:7411 is queued in the pod's UDP socket (not read yet)"
$Z checkpoint srv -o "$T/img" > /dev/null
ok $? "checkpoint (the pod ends)"
$Z restore "$T/img" > /dev/null
ok $? "restore"
is "$(ask two)" "echo two" "the restored listener accepts a new connection"
touch "$T/trigger"
wait_for 5 grep -q "^udp " "$cons"
is "$(grep '^udp ' "$cons")" "udp $GW:7411 queued-before" \
	"the datagram queued before the checkpoint is read after the restore, with its source"
$Z pod destroy srv > /dev/null

# A failed checkpoint during a stream: the pod and its stream go on intact.
agent_netns timeout -k 5 100 "$ZBIN/zi_stream" peer 7401 "$T/peer" "$T/stop" 2> "$T/peer.err" &
PEER=$!
on_exit "kill $PEER 2>/dev/null"
wait_for 5 sh -c "nsenter --net=/proc/$AGENT_PID/ns/net ss -Hltn 'sport = :7401' | grep -q LISTEN"
$Z pod create app --ip 10.200.0.62 -- "$ZBIN/zi_stream" app "$GW" 7401 > /dev/null
acons=$(pod_field app console)
mkdir -p "$T/small"
mount -t tmpfs -o size=64k zapc-inet-test "$T/small"
wait_for 5 test -s "$T/peer.progress"
fails=0
for i in 1 2 3; do
	$Z checkpoint app -o "$T/small" > /dev/null 2> "$T/full.err" && fails=$((fails + 1))
	grep -q "No space left on device" "$T/full.err" || fails=$((fails + 1))
	sleep 0.2
done
ok $fails "3 checkpoints of the streaming pod to a full disk fail ($(cat "$T/full.err"))"
is "$(pod_field app state)" running "the pod keeps running"
touch "$T/stop"
wait $PEER
pst=$?
[ $pst = 0 ] || { diag "peer exit $pst: $(cat "$T/peer.err" "$T/peer" 2>&1)"; }
wait_for 10 test -s "$T/peer"
wait_for 5 grep -q "^app [0-9]" "$acons"
set -- $(grep "^app [0-9]" "$acons")
APP_SENT=$2 APP_RCVD=$3 APP_ERR=$4
set -- $(cat "$T/peer")
[ "${APP_ERR:-x}" = 0 ] && [ "${3:-x}" = 0 ] && [ -n "$APP_SENT" ] && [ "$APP_SENT" = "$2" ] && [ "$1" = "$APP_RCVD" ]
ok $? "the stream is intact: app sent ${APP_SENT:-?}, peer got ${2:-?}; peer sent ${1:-?}, app got ${APP_RCVD:-?}; errors ${APP_ERR:-?}/${3:-?}"
is "$(agent_netns nft list tables 2>/dev/null | grep -c zapc_hold)$(nsenter --net=/proc/$AGENT_PID/ns/net ps -eo comm | grep -c zapc-nethold)" 00 \
	"no hold rule and no holder left behind"
done_testing
