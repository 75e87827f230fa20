#!/bin/bash
# mounts.t — mounts a pod made itself come back on restore: a tmpfs with its
# files (content, modes, a symlink, a subdirectory), a bind mount of one of
# its directories, a read-only bind of a node directory, a proc; a file
# the pod keeps open in the tmpfs is the same file after the restore.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 16
_d=$(mktemp -d /tmp/zeng-mnt.XXXXXX); on_exit "rm -rf $_d"
mkdir -p "$_d/mnt" "$_d/bind" "$_d/hostdir" "$_d/hb" "$_d/p2"
echo node-file > "$_d/hostdir/n.txt"
cat > "$_d/pod.sh" <<'POD'
D=$1
mount -t tmpfs -o size=4m,mode=0751 tmpfs "$D/mnt" || exit 1
mkdir -m 0710 "$D/mnt/sub"
printf 'hello tmpfs\n' > "$D/mnt/a.txt"; chmod 0604 "$D/mnt/a.txt"
head -c 100000 /dev/urandom > "$D/mnt/sub/blob"
ln -s a.txt "$D/mnt/link"
mount --bind "$D/mnt/sub" "$D/bind"
mount --bind -o ro "$D/hostdir" "$D/hb" && mount -o remount,bind,ro "$D/hb"
mount -t proc proc "$D/p2"
exec 3>>"$D/mnt/log"
echo ready > "$D/state"
n=0
while :; do
	n=$((n+1)); echo "line $n" >&3
	if [ -e "$D/trigger" ]; then
		{ cat "$D/mnt/a.txt" "$D/mnt/link"; md5sum < "$D/bind/blob"; cat "$D/hb/n.txt"
		  touch "$D/hb/x" 2>/dev/null && echo hb-writable || echo hb-ro
		  [ -r "$D/p2/1/status" ] && echo proc-ok; } > "$D/result"
		rm "$D/trigger"
	fi
	sleep 0.05
done
POD
pod_start zmnt sh "$_d/pod.sh" "$_d"
wait_for 10 grep -q ready "$_d/state"
before_md5=$(nsenter -t "$POD_INIT" -m md5sum < /dev/null "$_d/mnt/sub/blob" 2>/dev/null | cut -d' ' -f1)
# mount point, fstype, per-mount options, as the pod sees them
mounts_of() { awk -v d="$_d" 'index($5, d) == 1 { for (i = 7; $i != "-"; i++); print $5, $(i+1), $6 }' /proc/$1/mountinfo | sort; }
before_mnt=$(mounts_of "$POD_INIT")
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$_d/img"; ok $? "dump"
wait_for 10 pod_gone "$POD_CG"; ok $? "the checkpointed pod is gone"
[ -z "$(ls "$_d/mnt")" ]; ok $? "the node never saw the pod's tmpfs"
lines=$(wc -l < "$_d/state")
pod_restore "$_d/img" zmntr; ok $? "restore"
after_mnt=$(mounts_of "$RPOD_INIT")
[ $(echo "$before_mnt" | wc -l) -eq 4 ]; ok $? "four mounts made in the pod" || diag "$before_mnt"
is "$after_mnt" "$before_mnt" "the same mounts with the same options"
is "$(t_timeout 10 nsenter -t "$RPOD_INIT" -m stat -c '%n %a %F' "$_d/mnt" "$_d/mnt/sub" "$_d/mnt/a.txt" "$_d/mnt/link" | tr '\n' ';')" \
	"$_d/mnt 751 directory;$_d/mnt/sub 710 directory;$_d/mnt/a.txt 604 regular file;$_d/mnt/link 777 symbolic link;" \
	"files, modes, symlink in the restored tmpfs"
touch "$_d/trigger"
wait_for 10 sh -c "[ ! -e '$_d/trigger' ]"
is "$(sed -n 1,2p "$_d/result" | tr '\n' ';')" "hello tmpfs;hello tmpfs;" "the pod reads its tmpfs files"
is "$(sed -n 3p "$_d/result" | cut -d' ' -f1)" "$before_md5" "the bind mount of a tmpfs directory has the same 100 kB blob"
is "$(sed -n 4,5p "$_d/result" | tr '\n' ';')" "node-file;hb-ro;" "the node directory bound read-only"
is "$(sed -n 6p "$_d/result")" "proc-ok" "the pod's extra proc mount"
sleep 0.2
log=$(t_timeout 10 nsenter -t "$RPOD_INIT" -m cat "$_d/mnt/log")
n1=$(echo "$log" | head -1); nl=$(echo "$log" | wc -l)
[ "$n1" = "line 1" ] && [ "$nl" -gt 5 ] && [ -z "$(echo "$log" | awk '$2 != NR')" ]
ok $? "the log kept open in the tmpfs goes on in the same file (line 1..$nl)"
[ -n "$before_md5" ]; ok $? "the blob was read before the checkpoint"

# a mount of another kind (here a second devpts instance) fails the dump
# with the mount named; the pod runs on
mkdir -p "$_d/u/pts2"
pod_start zmntu sh -c 'mount -t devpts -o newinstance devpts "$1/pts2" && echo ready > "$1/state" && while :; do date +%s%N > "$1/tick"; sleep 0.05; done' sh "$_d/u"
wait_for 10 grep -q ready "$_d/u/state"
err=$(t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$_d/u/img" 2>&1)
[ $? -ne 0 ]; ok $? "dump of a pod with a devpts mount of its own fails"
echo "$err" | grep -q "dump: mount at $_d/u/pts2 (devpts from devpts, root /) made in the pod: not supported"
ok $? "the error names the mount" || diag "$err"
t1=$(cat "$_d/u/tick"); sleep 0.3
[ "$(cat "$_d/u/tick")" != "$t1" ]; ok $? "the pod runs on"
