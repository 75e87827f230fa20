#!/bin/bash
# clock.t — CLOCK_MONOTONIC and CLOCK_BOOTTIME continue from the dump inside
# the restored pod (time namespace offsets): restored 1.5 s after the dump,
# the clocks jump forward by well under that, and never backwards.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 5

d=$(mktemp -d /tmp/zeng-clock.XXXXXX); on_exit "rm -rf $d"
pod_start zo "$ZBIN/zt-clock" > "$d/out"; ok $? "pod started"
sleep 0.3
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
n=$(wc -l < "$d/out")
sleep 1.5
pod_restore "$d/img" zr; ok $? "restore 1.5 s later"
wait_for 5 sh -c "[ \$(wc -l < $d/out) -gt $((n + 5)) ]"
set -- $(sed -n "${n}p" "$d/out"); m0=$1 b0=$2
set -- $(sed -n "$((n + 1))p" "$d/out"); m1=$1 b1=$2
dm=$((m1 - m0)); db=$((b1 - b0))
[ $dm -ge 0 ] && [ $dm -lt 700 ]; ok $? "CLOCK_MONOTONIC continues (+$dm ms across the 1.5 s pause)"
[ $db -ge 0 ] && [ $db -lt 700 ]; ok $? "CLOCK_BOOTTIME continues (+$db ms)"
