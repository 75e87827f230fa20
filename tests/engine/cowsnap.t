#!/bin/bash
# cowsnap.t — a snapshot (--leave-running) of a process that rewrites its
# memory all the time holds the memory as of the freeze: the pages of a big
# process are read copy-on-write from a stopped fork after the pod resumed
# (agent/engine/cowsnap.c), while the pod goes on sweeping.  The restored
# sweeper checks every page against its own counters (zt-sweeper).  The
# capture helper must stay invisible: no SIGCHLD, no waitable child, no task
# left in the pod.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 8

d=$(mktemp -d /tmp/zeng-cow.XXXXXX); on_exit "rm -rf $d"
pod_start zcow "$ZBIN/zt-sweeper" 64 > "$d/out"; ok $? "pod started"
wait_for 20 grep -q sweep "$d/out"; ok $? "the sweeper runs"
ZAPC_ENGINE_TIMING=1 t_timeout 60 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" --leave-running \
	-o "$d/img" 2> "$d/dump.err"; ok $? "snapshot"
grep -q "from the snapshot child" "$d/dump.err"; ok $? "pages were read from the copy-on-write child"
n=$(grep -c sweep "$d/out")
wait_for 20 sh -c "[ \$(grep -c sweep $d/out) -gt $((n + 2)) ]"
# no task left in the pod, not even a zombie child of the sweeper
is "$(cat "$POD_CG/cgroup.procs" | wc -l) [$(cat /proc/$POD_INIT/task/*/children)] $(grep -c BAD "$d/out")" "1 [] 0" \
	"the pod sweeps on alone, saw no child $(grep -m1 BAD "$d/out")"
echo 1 > "$POD_CG/cgroup.kill"
wait_for 10 pod_gone "$POD_CG"
n=$(grep -c sweep "$d/out")
pod_restore "$d/img" zcowr; ok $? "restore"
wait_for 30 sh -c "[ \$(grep -c sweep $d/out) -gt $((n + 4)) ] || grep -q BAD $d/out"
is "$(grep -c BAD "$d/out")" 0 "every page as of the freeze $(grep -m1 BAD "$d/out")"
[ -n "$RPOD_INIT" ] && kill -0 "$RPOD_INIT" 2>/dev/null; ok $? "the restored sweeper runs on ($n sweeps lines before, $(grep -c sweep "$d/out") after)"
