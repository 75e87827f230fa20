#!/bin/sh
# checkpoint.t — zapc checkpoint / restore / image show through the agent, as
# a user runs them: a counter pod is saved and restored and its output goes on
# with no gap and no repeat; a snapshot leaves it running; the stream goes
# through a pipe; a full disk fails the checkpoint with the pod still running
# and the previous image intact; a corrupt image restores nothing; a non-root
# user cannot checkpoint root's pod or restore.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 41

Z="t_timeout 30 $ZBIN/zapc"
agent_start zk || exit 1
d=$(mktemp -d /tmp/zapc-ckpt.XXXXXX)
on_exit "umount -l '$d/small' 2>/dev/null; rm -rf '$d'"

# 0, 1, 2, ... in the console: every line equals its line number - 1.
breaks() { awk 'NR-1 != $1 { print "line " NR ": " $0; n++ } n > 5 { exit }' "$1"; }
# From any start: every line is the previous one plus one.
steps() { awk 'NR > 1 && $1 != p + 1 { print "line " NR ": " p " then " $1; n++ } { p = $1 } n > 5 { exit }' "$1"; }
grows() { _n=$(tail -1 "$1"); sleep "${2:-0.3}"; [ "$(tail -1 "$1")" -gt "$_n" ]; }

$Z pod create cnt --ip 10.200.0.77 -- "$ZBIN/zt-counter" 3 > /dev/null
ok $? "counter pod created"
cons=$(pod_field cnt console)
wait_for 5 grows "$cons" 0.05

# 1. checkpoint (pod ends), restore, continue
$Z checkpoint cnt -o "$d/img" > "$d/ck.out"
ok $? "checkpoint cnt -o DIR"
grep -q "pod cnt checkpointed to $d/img/image.zapc: 2 processes" "$d/ck.out"
ok $? "it reports what it saved ($(cat "$d/ck.out"))"
[ -s "$d/img/image.zapc" ] && [ -z "$(ls -A "$d/img" | grep -v '^image.zapc$')" ]
ok $? "DIR holds image.zapc and nothing else"
is "$(pod_field cnt name)" "" "the checkpointed pod is gone"
last=$(tail -1 "$cons")
sleep 0.3
is "$(tail -1 "$cons")" "$last" "nothing runs while the pod is saved"
$Z restore "$d/img" > "$d/rs.out"
ok $? "restore DIR"
grep -q "pod cnt restored from $d/img/image.zapc: ip 10.200.0.77" "$d/rs.out"
ok $? "restored with its name and IP ($(cat "$d/rs.out"))"
is "$(pod_field cnt state)" running "pod list shows it running"
is "$(pod_field cnt argv)" "$ZBIN/zt-counter 3" "and its workload's command"
init=$(pod_field cnt init_pid)
is "$(awk '/^NSpid/ {print $NF}' /proc/$init/status)" 1 "its init is pid 1 of a new pid namespace"
is "$($Z pod exec cnt -- cat /proc/1/comm)" zapc-init "pod exec reaches the restored pod: its pid 1 is the restored zapc-init"
$Z pod create fresh -- sleep 1000 > /dev/null
# What a pod sees of its own mounts: its /dev/shm tmpfs (64 MiB, not the
# node's), its own devpts instance, a /sys showing only its interfaces.
view='echo "shm $(stat -f -c %b /dev/shm) pts-is-node $([ "$(stat -c %d /dev/pts)" = "$1" ] && echo yes || echo no) net $(ls /sys/class/net | tr "\n" " ")"'
node_pts=$(stat -c %d /dev/pts)
is "$($Z pod exec cnt -- sh -c "$view" sh "$node_pts")" "$($Z pod exec fresh -- sh -c "$view" sh "$node_pts")" \
	"the restored pod sees its own /dev/shm, devpts and /sys, as a new pod does"
$Z pod destroy fresh > /dev/null
wait_for 5 grows "$cons" 0.1
ok $? "the counter runs again (was $last)"
is "$(breaks "$cons")" "" "its output has no gap and no repeat"

# 2. snapshot: --leave-running, then the image restored beside the original
$Z checkpoint cnt -o "$d/snap" --leave-running > /dev/null
ok $? "checkpoint --leave-running"
is "$(pod_field cnt state)" running "the pod still runs"
grows "$cons"
ok $? "and keeps counting"
$Z restore "$d/snap" --pod cnt2 --ip 10.200.0.78 > /dev/null
ok $? "the snapshot restores beside it as cnt2 with another IP"
is "$(pod_field cnt2 ip)" 10.200.0.78 "cnt2 has the new IP"
$Z pod destroy cnt2 > /dev/null
ok $? "cnt2 destroyed"
# cnt2's processes wrote to the same console file (it is in the image): start afresh.
: > "$cons"

# 3. the stream through a pipe: checkpoint -o - | restore -.  On one node the
# original lives until its image is complete, so the copy needs its own name and IP.
$Z checkpoint cnt -o - 2> "$d/pipe.err" | $Z restore - --pod cnt3 --ip 10.200.0.79 > /dev/null
ok $? "checkpoint -o - | restore - (the stream through a pipe)"
is "$(pod_field cnt name)$(pod_field cnt3 state)" running "the original is gone, the copy runs"
wait_for 5 grows "$cons" 0.1
ok $? "the piped pod counts on"
is "$(steps "$cons")" "" "across the move no number is skipped or repeated"
$Z checkpoint cnt3 -o - 2> "$d/tty.err" > /dev/null < /dev/null
ok $? "-o - to /dev/null is allowed (not a terminal)"
is "$(pod_field cnt3 name)" "" "that pod is gone (saved to /dev/null)"

# 4. a full disk: the checkpoint fails, the pod runs on, the previous image stays
$Z pod create full -- "$ZBIN/zt-counter" 3 > /dev/null
fcons=$(pod_field full console)
mkdir -p "$d/small"
mount -t tmpfs -o size=400k zapc-test "$d/small"
$Z checkpoint full -o "$d/small" --leave-running > /dev/null
ok $? "a first image fits on the small disk"
sum=$(sha256sum < "$d/small/image.zapc")
head -c 150k /dev/zero > "$d/small/filler"
$Z checkpoint full -o "$d/small" 2> "$d/full.err" > /dev/null
st=$?
[ $st -ne 0 ] && [ "$(wc -l < "$d/full.err")" = 1 ] && grep -q "No space left on device" "$d/full.err"
ok $? "checkpoint to a full disk fails with one line ($(cat "$d/full.err"))"
is "$(pod_field full state)" running "the pod keeps running"
grows "$fcons" && [ -z "$(breaks "$fcons")" ]
ok $? "and counting with no gap"
is "$(sha256sum < "$d/small/image.zapc")" "$sum" "the previous image is intact"
is "$(ls -A "$d/small" | sort | tr '\n' ' ')" "filler image.zapc " "no temporary file is left"

# 5. a corrupt image: one line, no pod, nothing left
cp "$d/small/image.zapc" "$d/bad.zapc"
printf 'X' | dd of="$d/bad.zapc" bs=1 seek=5000 conv=notrunc 2> /dev/null
$Z restore "$d/bad.zapc" --pod bad --ip 10.200.0.90 2> "$d/bad.err" > /dev/null
st=$?
[ $st -ne 0 ] && [ "$(wc -l < "$d/bad.err")" = 1 ] && grep -q "image: record" "$d/bad.err"
ok $? "a corrupt image is refused naming the record ($(cat "$d/bad.err"))"
is "$(pod_field bad name)$(ls /sys/fs/cgroup/unified/$AGENT_CG 2>/dev/null | grep -c '^bad$')" "0" \
	"no pod and no cgroup left of it"

# 6. permissions
$Z pod destroy full > /dev/null
$Z restore "$d/snap" --pod mine > /dev/null
setpriv --reuid=65534 --regid=65534 --clear-groups "$ZBIN/zapc" checkpoint mine -o - \
	2> "$d/perm.err" > /dev/null
st=$?
[ $st -ne 0 ] && grep -q "permission denied" "$d/perm.err"
ok $? "a non-root user cannot checkpoint root's pod"
$Z pod destroy mine > /dev/null

# 7. exec --detach: a command started in a running pod becomes one of its
# processes (child of its init, own session) and is saved and restored with it.
$Z pod create host --ip 10.200.0.78 -- sleep 100000 > /dev/null
$Z pod exec host --detach -- sh -c 'i=0; while :; do echo $i >> '"$d/det.out"'; i=$((i+1)); sleep 0.05; done' \
	< /dev/null > /dev/null 2>&1
ok $? "pod exec --detach returns at once with status 0"
wait_for 5 test -s "$d/det.out"
is "$($Z pod exec host -- sh -c 'for p in /proc/[0-9]*; do [ "${p#/proc/}" != $$ ] && [ "$(cat $p/comm)" = sh ] && grep -q det.out $p/cmdline 2>/dev/null && awk "{print \$4, (\$6 == \$1)}" $p/stat; done' | sort -u | head -1)" \
	"1 1" "the detached command's parent is the pod's init and it leads its own session"
$Z checkpoint host -o "$d/det" > /dev/null && $Z restore "$d/det" > /dev/null
ok $? "the pod with the detached command is checkpointed and restored"
n=$(wc -l < "$d/det.out"); sleep 0.5
[ "$(wc -l < "$d/det.out")" -gt "$n" ] && [ -z "$(steps "$d/det.out")" ]
ok $? "the detached command counts on after the restore, no gap, no repeat $(steps "$d/det.out" | head -1)"
$Z pod exec host --detach -- /no/such/program > /dev/null 2>&1
is $? 127 "pod exec --detach of a missing program fails with 127"
$Z pod destroy host > /dev/null
done_testing
