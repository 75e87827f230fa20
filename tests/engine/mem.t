#!/bin/bash
# mem.t — every kind of memory keeps its content across checkpoint/restore
# (heap, private anon rw/ro, stack, private file with COWed pages, shared
# file, shared anon between two processes — still shared afterwards, as a
# write by one is seen by the other — MADV_DONTFORK), and the layout
# (/proc/PID/maps) is the same.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 6

d=$(mktemp -d /tmp/zeng-mem.XXXXXX); on_exit "rm -rf $d"
pod_start zm "$ZBIN/zt-mem" "$d/data" > "$d/out"; ok $? "pod started"
sleep 0.5
maps() { awk '{ print $1, $2, $3, $6 }' /proc/$1/maps | grep -v 'zapc-shm\|/dev/zero'; }
maps "$POD_INIT" > "$d/maps.before"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
n=$(wc -l < "$d/out")
pod_restore "$d/img" zr; ok $? "restore"
wait_for 10 sh -c "[ \$(wc -l < $d/out) -gt $((n + 20)) ]"; ok $? "the program runs on ($n lines before, $(wc -l < "$d/out") after)"
is "$(grep -c BAD "$d/out")" 0 "every pattern intact, shared memory still shared $(grep -m1 BAD "$d/out")"
maps "$RPOD_INIT" > "$d/maps.after"
diff "$d/maps.before" "$d/maps.after" >&2; ok $? "same memory layout"
