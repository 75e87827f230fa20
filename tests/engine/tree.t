#!/bin/bash
# tree.t — the process tree survives: pids, parents, sessions, process groups,
# an orphan re-parented to init, a zombie, a stopped process — all identical
# inside the restored pod; the init's counter continues.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 6

d=$(mktemp -d /tmp/zeng-tree.XXXXXX); on_exit "rm -rf $d"
pod_start zt "$ZBIN/zt-tree" > "$d/out"; ok $? "pod started"
# the tree is complete once init prints and H has stopped itself
wait_for 10 sh -c "[ -s $d/out ] && grep -q '^State:.T' /proc/\$(cat /proc/$POD_INIT/task/*/children | tr ' ' '\n' | tail -1)/status"
sleep 0.1
pod_ps "$POD_INIT" > "$d/before"
diag "$(cat "$d/before")"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
last=$(tail -1 "$d/out")
pod_restore "$d/img" zr; ok $? "restore"
# (the stopped process re-enters its stop just after the engine detaches)
same_tree() { pod_ps "$RPOD_INIT" > "$d/after"; cmp -s "$d/before" "$d/after"; }
wait_for 3 same_tree
diff "$d/before" "$d/after" >&2; ok $? "same pids, parents, groups, sessions, states (zombie, stopped)"
wait_for 5 sh -c "[ \$(tail -1 $d/out) -gt $((last + 10)) ]"; ok $? "init's counter continues"
is "$(seq_breaks "$d/out")" "" "no gap, no repeat"
