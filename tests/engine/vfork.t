#!/bin/bash
# vfork.t — a process caught sleeping inside vfork() (its child not yet
# exec'd) is checkpointed anyway: the engine lets the pod run a moment and
# freezes it again instead of waiting forever for a task that cannot stop;
# snapshots and a checkpoint + restore keep the count going.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 6

d=$(mktemp -d /tmp/zeng-vfork.XXXXXX); on_exit "rm -rf $d"
pod_start zv "$ZBIN/zt-vfork" 300 > "$d/out"; ok $? "pod started"
in_vfork() { grep -q '^State:.D' /proc/$POD_INIT/status; }
fails=0
for i in 1 2 3; do
	wait_for 5 in_vfork || { fails=$((fails + 1)); echo "snapshot $i: not seen inside vfork() for 5 s" >> "$d/err"; }
	t_timeout 20 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" --leave-running -o "$d/snap" \
		2>> "$d/err" || { fails=$((fails + 1)); echo "snapshot $i: dump failed" >> "$d/err"; }
done
is "$fails" 0 "three snapshots taken while the process was inside vfork()" || diag "$(cat "$d/err")"
n0=$(tail -1 "$d/out")
wait_for 5 sh -c "[ \$(tail -1 $d/out) -gt $((n0 + 1)) ]"; ok $? "it runs on after the snapshots"
wait_for 5 in_vfork
t_timeout 20 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "checkpoint while inside vfork()"
last=$(tail -1 "$d/out")
pod_restore "$d/img" zvr; ok $? "restore"
! kill -0 $POD_INIT 2>/dev/null && kill -0 "$RPOD_INIT" 2>/dev/null &&
	wait_for 5 sh -c "[ \$(tail -1 $d/out) -gt $((last + 1)) ]"; ok $? "the restored process goes on counting (the old one is gone)"
