#!/bin/sh
# sysvipc.t — a pod using SysV shared memory, semaphores and message queues
# (zt-sysvipc, which checks everything itself) checkpointed and restored
# through zapc: same keys and ids, content, values, messages.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 4

Z="t_timeout 30 $ZBIN/zapc"
agent_start zsv || exit 1
d=$(mktemp -d /tmp/zapc-sysv.XXXXXX)
on_exit "rm -rf '$d'"
$Z pod create sysv -- "$ZBIN/zt-sysvipc" "$d/trigger" > /dev/null
ok $? "pod created"
cons=$(pod_field sysv console)
wait_for 10 grep -q ready "$cons"
$Z checkpoint sysv -o "$d/img" > /dev/null; ok $? "checkpoint"
$Z restore "$d/img" > /dev/null; ok $? "restore"
touch "$d/trigger"
wait_for 10 grep -q "^ok\|^FAIL" "$cons"
is "$(grep "^ok\|^FAIL" "$cons")" "ok $(sed -n 's/^ready //p' "$cons")" "the restored program finds its IPC objects intact"
$Z pod destroy sysv > /dev/null 2>&1 || true   # the program exits after its answer
