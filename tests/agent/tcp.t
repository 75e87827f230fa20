#!/bin/sh
# tcp.t — two pods on one node reach each other over TCP on their virtual
# IPs; the bytes received are the bytes sent (checksums compared).
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
command -v socat >/dev/null || skip_all "socat missing"
plan 6

Z="t_timeout 20 $ZBIN/zapc"
agent_start zt || exit 1
work=$(mktemp -d /tmp/zapc-tcp.XXXXXX)
on_exit "rm -rf '$work'"
head -c 3000000 /dev/urandom >"$work/sent"

$Z pod create srv --ip 10.200.0.50 -- socat -u TCP-LISTEN:7000,reuseaddr "CREATE:$work/received" >/dev/null
ok $? "server pod created with a chosen IP"
is "$(pod_field srv ip)" 10.200.0.50 "it has that IP"
$Z pod create cli -- sleep 1000 >/dev/null
ok $? "client pod created"
wait_for 10 $Z pod exec srv -- sh -c 'grep -q ":1B58 .* 0A " /proc/net/tcp'
$Z pod exec cli -- socat -u "FILE:$work/sent" TCP:10.200.0.50:7000
ok $? "client pod sent 3 MB to the server pod's IP"
# The server pod's workload ends after the transfer: wait for it to go.
wait_for 10 sh -c "[ -z \"\$(ZAPC_SOCKET=$AGENT_SOCK $ZBIN/zapc pod list --json | grep '\"srv\"')\" ]"
ok $? "server pod finished after the transfer"
is "$(sha256sum <"$work/received")" "$(sha256sum <"$work/sent")" "received bytes match the sent bytes (sha256)"
