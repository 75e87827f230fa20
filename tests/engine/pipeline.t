#!/bin/bash
# pipeline.t — a real pipeline, bash running `seq | sort | md5sum`, is
# checkpointed mid-run, killed, restored, and prints the same checksum as an
# uninterrupted run (pipe buffers with data in flight, a tree of 4 processes).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 4

d=$(mktemp -d /tmp/zeng-pipe.XXXXXX); on_exit "rm -rf $d"
cmd='seq 1 3000000 | sort | md5sum'
want=$(bash -c "$cmd")
pod_start zp bash -c "$cmd" > "$d/out"; ok $? "pod started"
sleep 0.6
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump mid-run"
[ -s "$d/out" ] && diag "finished before the dump: $(cat "$d/out")"
pod_restore "$d/img" zr; ok $? "restore"
wait_for 30 test -s "$d/out"
is "$(cat "$d/out")" "$want" "same md5sum as an uninterrupted run"
