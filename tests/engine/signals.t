#!/bin/bash
# signals.t — handlers and their flags, the blocked mask, pending signals
# (thread-directed and a queued real-time signal with its value), the
# sigaltstack, an interval timer and a POSIX timer all survive; pending
# signals are delivered after restore, not before, and exactly once.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 8

d=$(mktemp -d /tmp/zeng-sig.XXXXXX); on_exit "rm -rf $d"
pod_start zs "$ZBIN/zt-signals" "$d/trigger" > "$d/out"; ok $? "pod started"
sleep 0.4
disp0=$(grep -E '^Sig(Ign|Cgt)' /proc/$POD_INIT/status | tr '\n' ' ')
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
set -- $(tail -1 "$d/out"); a0=$2 p0=$3
pod_restore "$d/img" zr; ok $? "restore"
# default dispositions stay default (the engine itself ignores SIGPIPE)
is "$(grep -E '^Sig(Ign|Cgt)' /proc/$RPOD_INIT/status | tr '\n' ' ')" "$disp0" \
	"ignored and caught signals are the same sets as before (SigIgn, SigCgt)"
sleep 0.3
is "$(grep -c USR2 "$d/out")" 0 "blocked signals stay pending until unblocked"
touch "$d/trigger"
wait_for 5 grep -q USR2 "$d/out"
is "$(grep USR2 "$d/out")" "USR2 1 RT 42 USR1-onstack 1 flags 1" \
	"pending SIGUSR2 and queued SIGRTMIN+1 (value 42) delivered; handler flags kept; SIGUSR1 ran on the altstack"
sleep 0.3
set -- $(tail -1 "$d/out")
[ "$2" -gt $((a0 + 5)) ]; ok $? "interval timer keeps firing ($a0 → $2)" || diag "$(tail -5 $d/out)"
[ "$3" -gt $((p0 + 3)) ]; ok $? "POSIX timer keeps firing ($p0 → $3)"
