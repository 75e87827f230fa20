#!/bin/bash
# counter.t — a single-process pod (counter in its own pid/mount/ipc/uts/net
# namespaces): dump kills it, restore brings it back as pid 1 of a fresh pod,
# and the counter continues exactly where it stopped.  Then --leave-running
# keeps the pod counting, and two restores of one image run side by side.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
[ -d $CGROOT ] || skip_all "no cgroup v2 at $CGROOT"
plan 15

d=$(mktemp -d /tmp/zeng-counter.XXXXXX); on_exit "rm -rf $d"
pod_start zc "$ZBIN/zt-counter" 3 > "$d/out"; ok $? "pod started"
sleep 0.3
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
wait_for 5 pod_gone "$POD_CG"; ok $? "the dumped pod is gone (default: kill)"
last=$(tail -1 "$d/out")
pod_restore "$d/img" zr; ok $? "restore"
ns=$(awk '/^NSpid/ {print $NF}' /proc/$RPOD_INIT/status 2>/dev/null)
is "$ns" 1 "restored init is pid 1 of its own pid namespace"
grep -qx "$RPOD_INIT" "$RPOD_CG/cgroup.procs"; ok $? "restored init is in the given cgroup"
[ "$(readlink /proc/$RPOD_INIT/exe)" = "$ZBIN/zt-counter" ] && [ "$(tr '\0' ' ' < /proc/$RPOD_INIT/cmdline)" = "$ZBIN/zt-counter 3 " ]
ok $? "exe link and command line are the program's ($(readlink /proc/$RPOD_INIT/exe))"
wait_for 5 sh -c "[ \$(tail -1 $d/out) -gt $((last + 20)) ]"; ok $? "the counter runs again (was $last, now $(tail -1 "$d/out"))"
is "$(seq_breaks "$d/out")" "" "the sequence has no gap and no repeat"
kill -9 "$RPOD_INIT"

# --leave-running: the pod keeps counting; the image restores side by side twice
: > "$d/out2"
pod_start zl "$ZBIN/zt-counter" 3 > "$d/out2"
sleep 0.3
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img2" --leave-running; ok $? "dump --leave-running"
n=$(tail -1 "$d/out2"); sleep 0.3
[ "$(tail -1 "$d/out2")" -gt "$n" ] && [ -z "$(seq_breaks "$d/out2")" ]; ok $? "the pod keeps counting without a break"
a=$(t_timeout 30 "$ENGINE" restore -i "$d/img" ); ra=$?
b=$(t_timeout 30 "$ENGINE" restore -i "$d/img" ); rb=$?
on_exit "kill -9 $a $b"
[ $ra = 0 ] && [ $rb = 0 ] && [ -d /proc/$a ] && [ -d /proc/$b ] && [ "$a" != "$b" ]; ok $? "two restores of one image run side by side"
[ "$(readlink /proc/$a/ns/pid)" != "$(readlink /proc/$b/ns/pid)" ]; ok $? "each in its own pid namespace"
kill -9 $a $b

# streaming: dump to stdout piped straight into a restore reading stdin
: > "$d/out3"
pod_start zs "$ZBIN/zt-counter" 3 > "$d/out3"
sleep 0.2
cg3=$CGROOT/$(uniq zsr); mkdir "$cg3"; on_exit "_pod_cleanup_cg $cg3"
pid3=$(t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o - | t_timeout 30 "$ENGINE" restore -i - --cgroup "$cg3")
ok $? "dump -o - | restore -i - (migration through a pipe)"
n=$(tail -1 "$d/out3"); sleep 0.3
[ -d /proc/$pid3 ] && [ "$(tail -1 "$d/out3")" -gt "$n" ] && [ -z "$(seq_breaks "$d/out3")" ]
ok $? "the migrated counter continues with no gap"
kill -9 "$pid3" 2>/dev/null
