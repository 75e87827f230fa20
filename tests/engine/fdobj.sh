# tests/engine/fdobj.sh — one run of zt-fdobjs MODE through dump + restore
# (source after lib.sh and pod.sh).  fdobj_run MODE NAME: starts the pod,
# waits for "ready", dumps (the pod is killed), restores, touches the
# trigger, waits for the answer line; reports 3 TAP results (dump, restore,
# answer) and leaves the answer in $FDOBJ_OUT.  $FDOBJ_BETWEEN, if set, is
# eval'ed between dump and restore (scratch directory in $_d).
fdobj_run() {
	_d=$(mktemp -d /tmp/zeng-$2.XXXXXX); on_exit "rm -rf $_d"
	pod_start "$2" "$ZBIN/zt-fdobjs" "$1" "$_d/trigger" > "$_d/out"
	wait_for 10 grep -q ready "$_d/out"
	t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$_d/img"; ok $? "$1: dump"
	[ -n "$FDOBJ_BETWEEN" ] && eval "$FDOBJ_BETWEEN"
	pod_restore "$_d/img" "${2}r"; ok $? "$1: restore"
	touch "$_d/trigger"
	wait_for 10 sh -c "[ \$(wc -l < '$_d/out') -ge 2 ]"
	FDOBJ_OUT=$(sed -n 2p "$_d/out")
	[ -n "$FDOBJ_OUT" ]; ok $? "$1: the restored program answers"
}
