#!/bin/bash
# attrs.t — credentials (uid/gid 1000, groups 1001 1002), lowered rlimits,
# cwd, umask, comm and personality are the same after restore, and the
# (unprivileged) process keeps running.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 5

d=$(mktemp -d /tmp/zeng-attrs.XXXXXX); on_exit "rm -rf $d"
mkdir "$d/work"; chmod 755 "$d"
touch "$d/out"; chmod 666 "$d/out"
pod_start za "$ZBIN/zt-attrs" "$d/work" > "$d/out"; ok $? "pod started"
sleep 0.3
attrs() { grep -E '^(Name|Umask|Uid|Gid|Groups|CapEff|CapBnd)' /proc/$1/status
	readlink /proc/$1/cwd; cat /proc/$1/personality; grep -E 'open files|file size' /proc/$1/limits; }
attrs "$POD_INIT" > "$d/before"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
last=$(tail -1 "$d/out")
pod_restore "$d/img" zr; ok $? "restore"
attrs "$RPOD_INIT" > "$d/after"
diff "$d/before" "$d/after" >&2; ok $? "same uid/gid/groups, caps, umask, comm, cwd, personality, rlimits"
wait_for 5 sh -c "[ \$(tail -1 $d/out) -gt $((last + 10)) ]" && [ -z "$(seq_breaks "$d/out")" ]
ok $? "the unprivileged process runs on, no gap"
