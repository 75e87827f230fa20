#!/bin/bash
# blocking.t — processes inside blocking syscalls are still correct after
# restore: bash waiting in wait4, a subshell in wait4 for sleep, sleep in
# clock_nanosleep, cat blocked in read on an empty pipe.  Output arrives
# complete and in order, and the sleeps still take (about) their time.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 5

d=$(mktemp -d /tmp/zeng-block.XXXXXX); on_exit "rm -rf $d"
pod_start zk bash -c 'echo start; (sleep 1; echo piped) | cat; sleep 0.5; echo done' > "$d/out"; ok $? "pod started"
sleep 0.3
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump while every process blocks"
t0=$(date +%s%N)
pod_restore "$d/img" zr; ok $? "restore"
wait_for 10 grep -q done "$d/out"
t1=$(date +%s%N)
is "$(cat "$d/out" | tr '\n' ' ')" "start piped done " "output complete and in order"
ms=$(( (t1 - t0) / 1000000 ))
[ $ms -ge 500 ] && [ $ms -lt 4000 ]; ok $? "remaining sleeps took ${ms} ms after restore (1.2 s left at dump)"
