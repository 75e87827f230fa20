#!/bin/sh
# pool.t — addresses come from --pod-pool (so nodes of a cluster hand out
# disjoint IPs), --ip may still pick any pod-network address, and the
# workload's output is kept in its console log (zapc pod log).
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 7

Z="t_timeout 20 $ZBIN/zapc"
agent_start zp --pod-pool 10.200.7.0/24 || exit 1
$Z pod create a -- sh -c 'echo console-line; echo err-line >&2; exec sleep 1000' >/dev/null
is "$(pod_field a ip)" 10.200.7.1 "first pod address comes from the pool"
$Z pod create b -- sleep 1000 >/dev/null
is "$(pod_field b ip)" 10.200.7.2 "second one too"
$Z pod create c --ip 10.200.0.9 -- sleep 1000 >/dev/null
is "$(pod_field c ip)" 10.200.0.9 "--ip may name an address outside the pool"
$Z pod exec b -- ping -c1 -W2 10.200.0.9 >/dev/null
ok $? "pods of pool and non-pool addresses reach each other"
wait_for 5 sh -c "$ZBIN/zapc pod log a | grep -q err-line"
is "$($Z pod log a | tr '\n' ' ')" "console-line err-line " "zapc pod log shows the workload's stdout and stderr"

d=$(mktemp -d /tmp/zapc-zp.XXXXXX)
on_exit "rm -rf '$d'"
t_timeout 10 unshare --net "$ZBIN/zapc-agent" --foreground --name "$(uniq zpbad)" --socket "$d/s" \
	--state-dir "$d" --pod-pool 10.9.0.0/24 2>"$d/err"
ok "$([ $? -ne 0 ]; echo $?)" "an agent with a pool outside the pod network refuses to start"
grep -q "not inside the pod network" "$d/err"
ok $? "and says why"
