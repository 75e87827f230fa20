#!/bin/bash
# sysvipc.t — SysV IPC of the pod's IPC namespace survives checkpoint and
# restore: shm segments (content, key, id, owner, mode; attached at the same
# addresses in two processes, read-only attach, a segment removed while
# attached), semaphore values, queued messages with their types and order.
# zt-sysvipc checks all of it itself after the restore; ipcs inside the pod
# must show the same objects before and after.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 10
_d=$(mktemp -d /tmp/zeng-sysv.XXXXXX); on_exit "rm -rf $_d"
pod_start zsysv "$ZBIN/zt-sysvipc" "$_d/trigger" > "$_d/out"
wait_for 10 grep -q ready "$_d/out"
# key, id, owner, perms, size/nsems/messages, nattch/status
ipcs_of() { t_timeout 10 nsenter -t "$1" -i ipcs -a | awk 'NF && $1 ~ /^0x/'; }
before=$(ipcs_of "$POD_INIT")
[ $(echo "$before" | wc -l) -eq 5 ]; ok $? "five objects in the pod's IPC namespace" || diag "$before"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$_d/img"; ok $? "dump"
wait_for 10 pod_gone "$POD_CG"
is "$(t_timeout 10 "$ENGINE" show "$_d/img" | grep -c '^sysv \(shm\|sem\|msg\): key')" 5 "zapc-engine show lists the five objects"
pod_restore "$_d/img" zsysvr; ok $? "restore"
after=$(ipcs_of "$RPOD_INIT")
is "$after" "$before" "ipcs in the restored pod shows the same objects" || diag "$before"
touch "$_d/trigger"
wait_for 10 sh -c "[ \$(wc -l < '$_d/out') -ge 2 ]"
res=$(sed -n 2p "$_d/out")
ids=$(sed -n '1s/^ready //p' "$_d/out")
is "$res" "ok $ids" "the restored program finds its IPC objects intact"
# the node's IPC namespace has none of them
! ipcs -a | grep -q 0x5a5a000; ok $? "nothing leaked into the node's IPC namespace"

# a segment mapped in part cannot be re-attached as it was: the dump says so
# and the pod runs on
pod_start zsysvp "$ZBIN/zt-sysvipc" "$_d/trigger2" partial > "$_d/out2"
wait_for 10 grep -q ready "$_d/out2"
err=$(t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$_d/img2" 2>&1)
[ $? -ne 0 ]; ok $? "dump of a partly mapped segment fails"
echo "$err" | grep -Eq "dump: pid 1 vma 0x[0-9a-f]+-0x[0-9a-f]+: SysV shared memory id [0-9]+ mapped in part .*not supported"
ok $? "the error names pid, mapping, segment" || diag "$err"
touch "$_d/trigger2"
wait_for 10 sh -c "[ \$(wc -l < '$_d/out2') -ge 2 ]"
is "$(sed -n 2p "$_d/out2")" "alive" "the pod runs on after the refused dump"
