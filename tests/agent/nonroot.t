#!/bin/sh
# nonroot.t — the agent checks callers with SO_PEERCRED: a non-root user
# cannot exec in, destroy or see root's pod; its own pod runs as itself.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
command -v setpriv >/dev/null || skip_all "setpriv missing"
id nobody >/dev/null 2>&1 || skip_all "no user nobody"
plan 9

Z="t_timeout 20 $ZBIN/zapc"
NOBODY="t_timeout 20 setpriv --reuid nobody --regid nogroup --clear-groups $ZBIN/zapc --socket"
agent_start zn || exit 1
setpriv --reuid nobody --regid nogroup --clear-groups test -x "$ZBIN/zapc" ||
	skip_all "nobody cannot run $ZBIN/zapc"

$Z pod create rootpod -- sleep 1000 >/dev/null
ok $? "root creates a pod"
err=$($NOBODY "$AGENT_SOCK" pod exec rootpod -- true 2>&1)
st=$?
ok "$([ $st -ne 0 ] && echo "$err" | grep -q "permission denied"; echo $?)" "nobody cannot exec in root's pod ($err)"
$NOBODY "$AGENT_SOCK" pod destroy rootpod 2>/dev/null
ok "$([ $? -ne 0 ]; echo $?)" "nobody cannot destroy root's pod"
is "$(pod_field rootpod state)" running "root's pod still running"
is "$($NOBODY "$AGENT_SOCK" pod list --json | grep -c rootpod)" 0 "nobody does not see root's pod"

$NOBODY "$AGENT_SOCK" pod create mine -- sleep 1000 >/dev/null
ok $? "nobody creates its own pod"
is "$($NOBODY "$AGENT_SOCK" pod exec mine -- id -u)" "$(id -u nobody)" "its exec runs as nobody"
is "$($Z pod exec mine -- sh -c 'awk "/^Uid/{print \$2}" /proc/2/status')" "$(id -u nobody)" \
   "its workload runs as nobody"
$Z pod destroy mine
ok $? "root may destroy nobody's pod"
