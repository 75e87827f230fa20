#!/bin/sh
# root.t — `pod create --root DIR`: the pod pivots into DIR (its own /proc,
# /dev, /tmp ...), sees nothing else of the node, and leaves no mount behind.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
[ -L /bin ] || skip_all "needs a merged-/usr system (/bin -> usr/bin)"
plan 10

Z="t_timeout 20 $ZBIN/zapc"
agent_start zo || exit 1
R=$(mktemp -d /tmp/zapc-root.XXXXXX)
chmod 755 "$R"
# --one-file-system: never follow the /usr bind mount, even if umount failed
on_exit "rm -rf --one-file-system '$R'"
mkdir "$R/usr" "$R/tmp"
for l in bin lib lib64 sbin; do ln -s "usr/$l" "$R/$l"; done
on_exit "umount -l '$R/usr'"
mount --bind /usr "$R/usr" && mount -o remount,bind,ro "$R/usr" || exit 1

$Z pod create rooted --root "$R" -- sleep 1000 >/dev/null
ok $? "pod with its own root created"
is "$(pod_field rooted root)" "$R" "its root is listed"
is "$($Z pod exec rooted -- cat /proc/1/comm)" zapc-init "its /proc is its own"
is "$($Z pod exec rooted -- sh -c 'ls / | tr "\n" " "')" "bin dev lib lib64 proc sbin sys tmp usr " \
   "it sees only its root"
$Z pod exec rooted -- test -e "$ZAPC_SRC" 
ok "$([ $? -ne 0 ]; echo $?)" "the node's files outside the root are invisible"
$Z pod exec rooted -- sh -c 'echo written-inside >/tmp/note && echo discard >/dev/null'
is "$(cat "$R/tmp/note" 2>/dev/null)" written-inside "a file written in the pod lands in DIR; /dev/null works"
$Z pod exec rooted -- sh -c 'test -c /dev/pts/ptmx && test -c /dev/ptmx'
ok $? "the pod has its own devpts and ptmx"
$Z pod destroy rooted
ok $? "pod destroyed"
mountpoint -q "$R/proc" || mountpoint -q "$R/dev"
ok "$([ $? -ne 0 ]; echo $?)" "no pod mount is visible on the node"
t_timeout 20 setpriv --reuid nobody --regid nogroup --clear-groups "$ZBIN/zapc" --socket "$AGENT_SOCK" \
	pod create nr --root "$R" -- true 2>/dev/null
ok "$([ $? -ne 0 ]; echo $?)" "a non-root user cannot use a root directory it does not own"
