# tests/engine/pod.sh — a throw-away "pod" for engine tests (source after tests/lib.sh).
#
# Until the agent exists, a pod is: a unique v2 cgroup under
# /sys/fs/cgroup/unified and a process started in new pid/mount/ipc/uts/net
# namespaces (unshare --fork) as a session leader, moved into the cgroup
# before it starts.  Everything is removed on exit (on_exit).
#   pod_start NAME CMD...   → sets POD_CG (cgroup dir), POD_INIT (host pid of the pod's pid 1)
#   pod_restore IMG NAME    → restores IMG into a new cgroup, sets RPOD_CG, RPOD_INIT
#   pod_gone CG             → true when the cgroup has no process left
CGROOT=/sys/fs/cgroup/unified
ENGINE=$ZBIN/zapc-engine

_pod_cleanup_cg() {
	[ -d "$1" ] || return 0
	echo 1 > "$1/cgroup.kill" 2>/dev/null
	# rmdir succeeds once the last (zombie) member is reaped
	for _i in $(seq 50); do
		rmdir "$1" 2>/dev/null && return 0
		sleep 0.1
	done
}

pod_start() {
	_name=$1; shift
	POD_CG=$CGROOT/$(uniq "$_name")
	mkdir "$POD_CG" || return 1
	on_exit "_pod_cleanup_cg $POD_CG"
	# the subshell joins the cgroup, then becomes unshare; its child is the pod's pid 1
	# unshare's own complaint when its child is killed is noise: its stderr
	# goes to /dev/null, the program gets the real one back from fd 3
	unshare --fork --pid --mount-proc --mount --ipc --uts --net \
		sh -c 'echo 0 > "$0/cgroup.procs" && exec setsid "$@" 2>&3 3>&-' "$POD_CG" "$@" 3>&2 2>/dev/null &
	_outer=$!
	# bash reports a killed background job ("Killed unshare ...") on stderr:
	# the tests kill pods on purpose, so take it out of the job table
	[ -n "${BASH_VERSION:-}" ] && disown "$_outer"
	on_exit "kill -9 $_outer"
	POD_INIT=""
	for _i in $(seq 100); do
		POD_INIT=$(cat /proc/$_outer/task/$_outer/children 2>/dev/null | awk '{print $1}')
		[ -n "$POD_INIT" ] && break
		sleep 0.02
	done
	[ -n "$POD_INIT" ] || return 1
	# wait until init moved itself into the cgroup and exec'd the program
	for _i in $(seq 100); do
		grep -qx "$POD_INIT" "$POD_CG/cgroup.procs" 2>/dev/null &&
			[ "$(readlink /proc/$POD_INIT/exe)" != "$(readlink -f /bin/sh)" ] && return 0
		sleep 0.02
	done
	return 1
}

pod_restore() {
	RPOD_CG=$CGROOT/$(uniq "$2")
	mkdir -p "$RPOD_CG" || return 1
	on_exit "_pod_cleanup_cg $RPOD_CG"
	RPOD_INIT=$(t_timeout 60 "$ENGINE" restore -i "$1" --cgroup "$RPOD_CG")
}

# (cgroup.procs has size 0 in stat even when it lists pids: read it)
pod_gone() { [ -z "$(cat "$1/cgroup.procs" 2>/dev/null)" ]; }

# lines of FILE that break the sequence 0,1,2,...  (prints nothing when intact)
seq_breaks() { awk 'NR-1 != $1 { print "line " NR ": " $0; n++ } n > 5 { exit }' "$1"; }

# pod_ps INIT — "pid ppid pgid sid state comm" of every process of the pod,
# with ids as seen inside the pod; sorted by pid.  Running and sleeping (R, D,
# S) print as S: which of them a live process shows depends on the instant.
pod_ps() {
	_q=$1
	while [ -n "$_q" ]; do
		set -- $_q; _p=$1; shift; _q="$*"
		[ -r /proc/$_p/status ] || continue
		_pp=$(awk '/^PPid/ {print $2}' /proc/$_p/status)
		_ppns=$(awk '/^NSpid/ {print $NF}' /proc/$_pp/status 2>/dev/null)
		[ "$_p" = "$1" ] && _ppns=0
		awk -v pp="${_ppns:-0}" '/^Name/ {n=$2} /^State/ {s=$2; if (s == "R" || s == "D") s = "S"} /^NSpid/ {p=$NF} /^NSpgid/ {g=$NF} /^NSsid/ {i=$NF}
			END {print p, pp, g, i, s, n}' /proc/$_p/status
		_q="$_q $(cat /proc/$_p/task/*/children 2>/dev/null)"
	done | awk '$1 == 1 { $2 = 0 } { print }' | sort -n
}
