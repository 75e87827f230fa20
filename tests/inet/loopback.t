#!/bin/sh
# loopback.t — a TCP connection inside one pod, over its loopback (an MPI
# launcher and its local proxy talk like this): both ends are saved with the
# pod, checkpointed (pod killed) and restored twice, and snapshotted; the
# stream goes on and every byte arrives once and in order on both sides.
# Loopback's MSS (65483) is above what TCP_MAXSEG accepts (32767).
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 6

Z="t_timeout 30 $ZBIN/zapc"
agent_start zil || exit 1
T=$(mktemp -d /tmp/zapc-lo.XXXXXX)
on_exit "rm -rf '$T'"

$Z pod create lo --ip 10.200.0.61 -- sh -c \
	"'$ZBIN/zi_stream' peer 7300 '$T/peer' '$T/stop' & sleep 0.3; '$ZBIN/zi_stream' app 127.0.0.1 7300; wait" > /dev/null
ok $? "a pod streams to itself over 127.0.0.1"
cons=$(pod_field lo console)
# moving — the stream advances both ways within 10 s
moving() { stream_moves "$T/peer.progress"; }
wait_for 5 test -s "$T/peer.progress" && moving
ok $? "the stream runs"

fails=0
$Z checkpoint lo -o "$T/snap" --leave-running > /dev/null 2>> "$T/ck.err" || fails=$((fails + 1))
for i in 1 2; do
	$Z checkpoint lo -o "$T/img" > /dev/null 2>> "$T/ck.err" || fails=$((fails + 1))
	$Z restore "$T/img" > /dev/null 2>> "$T/ck.err" || fails=$((fails + 1))
	moving || fails=$((fails + 1))
done
ok $fails "a snapshot and 2 checkpoints (pod killed) + restores, the stream goes on each time $(head -c 300 "$T/ck.err")"

touch "$T/stop"
wait_for 10 grep -q "^app [0-9]" "$cons"
ok $? "both ends finished" ||
	diag "peer progress $(cat "$T/peer.progress"), 1 s later $(sleep 1; cat "$T/peer.progress"); console: $(tail -c 300 "$cons")"
set -- $(grep "^app [0-9]" "$cons")
APP_SENT=$2 APP_RCVD=$3 APP_ERR=$4
set -- $(cat "$T/peer" 2>/dev/null)
PEER_SENT=$1 PEER_RCVD=$2 PEER_ERR=$3
[ "${APP_ERR:-x}" = 0 ] && [ "${PEER_ERR:-x}" = 0 ]
ok $? "every byte matched on both sides (errors: app ${APP_ERR:-?}, peer ${PEER_ERR:-?})"
[ -n "$APP_SENT" ] && [ "$APP_SENT" = "$PEER_RCVD" ] && [ "$PEER_SENT" = "$APP_RCVD" ] && [ "$APP_SENT" -gt 10000000 ]
ok $? "no byte lost or duplicated: app sent ${APP_SENT:-?}, peer got ${PEER_RCVD:-?}; peer sent ${PEER_SENT:-?}, app got ${APP_RCVD:-?}"
