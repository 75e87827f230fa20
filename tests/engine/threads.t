#!/bin/bash
# threads.t — a 5-thread program keeps its threads (same TIDs), each with its
# TLS, its own AVX-512 (or AVX2) register contents and its rseq registration,
# and all keep running.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 7

d=$(mktemp -d /tmp/zeng-thr.XXXXXX); on_exit "rm -rf $d"
pod_start zh "$ZBIN/zt-threads" > "$d/out"; ok $? "pod started"
sleep 0.3
tids() { for t in /proc/$1/task/*; do awk '/^NSpid/ {print $NF}' $t/status; done | sort -n | tr '\n' ' '; }
before=$(tids "$POD_INIT")
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
last=$(tail -1 "$d/out")
pod_restore "$d/img" zr; ok $? "restore"
is "$(tids "$RPOD_INIT")" "$before" "same thread ids"
sleep 0.4
now=$(tail -1 "$d/out")
set -- $last; l1=$2 l2=$3 l3=$4 l4=$5
set -- $now
[ "$2" -gt "$l1" ] && [ "$3" -gt "$l2" ] && [ "$4" -gt "$l3" ] && [ "$5" -gt "$l4" ]; ok $? "every thread runs on ($last → $now)"
is "$(grep -c BAD "$d/out")" 0 "TLS, vector registers and rseq intact in every thread ($7)"
is "$(awk 'NR-1 != $1' "$d/out" | head -1)" "" "main thread's sequence continues"
