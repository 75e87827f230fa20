#!/bin/bash
# pty.t — an interactive shell on a pty of the pod's own devpts, driven by a
# program in the pod through the master, is checkpointed and restored: the
# pty keeps its index (/dev/pts/1, with 0 free), window size and settings;
# the shell keeps its controlling tty (it can open /dev/tty), its job
# control (a foreground command reads the tty) and its variables; output the
# driver had not read yet at the checkpoint is read after the restore.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 15
_d=$(mktemp -d /tmp/zeng-pty.XXXXXX); on_exit "rm -rf $_d"
pod_start zpty "$ZBIN/zt-ptydrv" "$_d" > "$_d/out"
wait_for 10 grep -q ready "$_d/out"
is "$(sed -n 1p "$_d/out")" "ready /dev/pts/1" "the shell's pty is /dev/pts/1"
printf 'X=remembered; stty intr ^G; echo "A$((40+2))"\n' > "$_d/cmd1"
wait_for 10 grep -q A42 "$_d/out"; ok $? "the shell answers before the checkpoint"
echo "#pause" > "$_d/cmd2"; sleep 0.1
printf 'echo "Q$((3*7))"\n' > "$_d/cmd3"
sleep 0.5           # the shell runs it; its output waits in the pty
! grep -q Q21 "$_d/out"; ok $? "the output waits unread in the pty at the checkpoint"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$_d/img"; ok $? "dump"
wait_for 10 pod_gone "$POD_CG"; ok $? "the checkpointed pod is gone"
pod_restore "$_d/img" zptyr; ok $? "restore"
# the restored pod's own devpts has exactly the shell's pty
is "$(t_timeout 10 nsenter -t "$RPOD_INIT" -m ls /dev/pts | tr '\n' ' ')" "1 ptmx " "the restored devpts has pts 1 only"
echo "#resume" > "$_d/cmd4"
wait_for 10 grep -q Q21 "$_d/out"; ok $? "the output the driver had not read comes after the restore"
printf 'echo "B-$X-$(tty)-$(stty size)"; stty -a | grep -o "intr = ^G"; echo C-ctty >/dev/tty; read v; echo "D-$v"\n' > "$_d/cmd5"
sleep 0.3
printf 'typed-after\n' > "$_d/cmd6"
wait_for 10 grep -q "^D-typed-after" "$_d/out"
tr -d '\r' < "$_d/out" > "$_d/clean"
[ -n "$ZT_KEEP" ] && cp "$_d/out" "$ZT_KEEP"
grep -q "^B-remembered-/dev/pts/1-40 132$" "$_d/clean"; ok $? "variables, tty name and window size kept" || diag "$(tail -5 "$_d/clean")"
grep -q "^intr = ^G$" "$_d/clean"; ok $? "terminal settings kept"
grep -q "^C-ctty$" "$_d/clean"; ok $? "the shell still has its controlling tty"
grep -q "^D-typed-after$" "$_d/clean"; ok $? "a foreground read gets the typed line (job control intact)" || diag "$(tail -c 600 "$_d/clean")"

# a pty of the node's devpts cannot be re-created: the dump says so, the pod runs on
mkdir "$_d/n"
pod_start zptyn "$ZBIN/zt-ptydrv" "$_d/n" node > "$_d/n/out"
wait_for 10 grep -q ready "$_d/n/out"
err=$(t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$_d/n/img" 2>&1)
[ $? -ne 0 ]; ok $? "dump of a pod using the node's ptys fails"
echo "$err" | grep -Eq "dump: pid 1 fd [0-9]+: /dev/(ptmx|pts/[0-9]+) is a pty of the node's devpts, not the pod's: not supported"
ok $? "the error names pid, fd and the pty" || diag "$err"
printf 'echo "E$((6*7))"\n' > "$_d/n/cmd1"
wait_for 10 grep -q E42 "$_d/n/out"; ok $? "the shell of that pod still answers"
