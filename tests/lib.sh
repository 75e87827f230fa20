# tests/lib.sh — shared helpers for zapc's shell tests (source it; POSIX sh + bash ok).
#
# TAP output:  plan N | ok COND-EXIT-STATUS "what" | is GOT WANT "what" | skip_all "why" | done_testing
# Safety:      need_root; uniq NAME (a name unique to this test run);
#              on_exit "cmd" (run at exit, last registered first, pass or fail);
#              t_timeout SECS cmd... (every external command in a test gets a timeout).
# Programs:    $ZAPC_BUILD/bin/... (set by make; defaults to ./build).
# Agents:      agent_start [NAME [AGENT-OPTIONS]] (own netns, unique socket/state/cgroups,
#              stopped at exit; sets AGENT_* and ZAPC_SOCKET); agent_netns CMD...;
#              pod_field POD FIELD (from zapc pod list --json); cgroup_exists; cgroup_purge.

: "${ZAPC_SRC:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${ZAPC_BUILD:=$ZAPC_SRC/build}"
ZBIN=$ZAPC_BUILD/bin
export ZAPC_SRC ZAPC_BUILD ZBIN

_t_n=0
_t_failed=0
_t_planned=""
_t_cleanups=""

plan() { _t_planned=$1; echo "1..$1"; }
diag() { printf '# %s\n' "$*"; }

# ok STATUS WHAT — STATUS is an exit status (0 = pass): `cmd; ok $? "what"`.
# Returns the check's result, so `ok $? "what" || diag "why"` works.
# With TODO="reason" set, the check is a known gap (TAP "# TODO"): it is
# reported, a failure does not fail the run, and prove says when it passes.
ok() {
	_t_n=$((_t_n + 1))
	_t_todo=${TODO:+ # TODO $TODO}
	if [ "$1" -eq 0 ]; then
		echo "ok $_t_n - $2$_t_todo"
		return 0
	fi
	echo "not ok $_t_n - $2$_t_todo"
	[ -z "${TODO:-}" ] && _t_failed=$((_t_failed + 1))
	return 1
}

# is GOT WANT WHAT
is() {
	if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; diag "got '$1', want '$2'"; return 1; fi
}

skip_all() { echo "1..0 # SKIP $*"; _t_planned=0; exit 0; }

need_root() { [ "$(id -u)" = 0 ] || skip_all "needs root"; }

# A short name unique to this run (interface names must stay under 16 chars).
uniq() { printf '%s%s' "$1" "$(printf '%05d' $(($$ % 100000)))"; }

on_exit() { _t_cleanups="$1
$_t_cleanups"; }

_t_exit() {
	st=$?
	set +e
	exec 8>&2	# cleanups run with output discarded; fd 8 reaches stderr
	printf '%s\n' "$_t_cleanups" | while IFS= read -r c; do
		[ -n "$c" ] && eval "$c" >/dev/null 2>&1
	done
	if [ -z "$_t_planned" ]; then
		echo "1..$_t_n"
	elif [ "$_t_planned" != 0 ] && [ "$_t_planned" != "$_t_n" ]; then
		diag "planned $_t_planned tests but ran $_t_n"
		st=1
	fi
	[ "$_t_failed" -gt 0 ] && st=1
	exit "$st"
}
trap _t_exit EXIT
trap 'exit 130' INT TERM

done_testing() { :; }

# t_timeout SECS CMD... — run CMD, kill it (and its group) after SECS.
t_timeout() { _s=$1; shift; timeout -k 5 "$_s" "$@"; }

# wait_for SECS CMD... — poll CMD every 50 ms until it succeeds or SECS pass.
wait_for() {
	_end=$(( $(date +%s) + $1 )); shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$_end" ] && return 1
		sleep 0.05
	done
	return 0
}

# ---------------------------------------------------------------------------
# Agents.  agent_start [NAME [AGENT-OPTIONS...]] starts a zapc-agent in the
# foreground in a fresh network namespace (or in the netns file $AGENT_NETNS
# if set, e.g. /run/netns/X of a simulated node), with a node name, socket,
# state dir and cgroup parent unique to this run; waits until it answers;
# registers its stop with on_exit.  Afterwards:
#   AGENT_NAME AGENT_PID AGENT_SOCK AGENT_DIR AGENT_CG AGENT_LOG
#   ZAPC_SOCKET (exported, so `$ZBIN/zapc pod list` talks to it)
# Run a command in the agent's netns: agent_netns CMD...
# Several agents in one test: call agent_start with different NAMEs and copy
# the variables you need after each call.
agent_start() {
	_a_name=$(uniq "${1:-za}")
	[ $# -gt 0 ] && shift
	AGENT_NAME=$_a_name
	AGENT_DIR=$(mktemp -d "/tmp/zapc-$_a_name.XXXXXX") || return 1
	chmod 755 "$AGENT_DIR"
	AGENT_SOCK=$AGENT_DIR/agent.sock
	AGENT_LOG=$AGENT_DIR/agent.log
	AGENT_CG=zapc-$_a_name
	if [ -n "${AGENT_NETNS:-}" ]; then
		nsenter --net="$AGENT_NETNS" -- "$ZBIN/zapc-agent" --foreground --name "$_a_name" \
			--socket "$AGENT_SOCK" --state-dir "$AGENT_DIR/state" \
			--cgroup-parent "$AGENT_CG" "$@" >"$AGENT_LOG" 2>&1 &
	else
		unshare --net -- "$ZBIN/zapc-agent" --foreground --name "$_a_name" \
			--socket "$AGENT_SOCK" --state-dir "$AGENT_DIR/state" \
			--cgroup-parent "$AGENT_CG" "$@" >"$AGENT_LOG" 2>&1 &
	fi
	AGENT_PID=$!
	on_exit "agent_stop $AGENT_PID '$AGENT_DIR' '$AGENT_CG'"
	if ! wait_for 10 t_timeout 5 "$ZBIN/zapc" --socket "$AGENT_SOCK" pod list; then
		diag "agent $_a_name did not come up:"
		sed 's/^/#   /' "$AGENT_LOG"
		return 1
	fi
	ZAPC_SOCKET=$AGENT_SOCK
	export ZAPC_SOCKET
}

# agent_netns CMD... — run CMD in the network namespace of the last agent.
agent_netns() { nsenter --net="/proc/$AGENT_PID/ns/net" -- "$@"; }

# agent_stop PID DIR CGROUP-PARENT — SIGTERM (then SIGKILL after 10 s), then
# remove anything the agent left: its cgroups (and their processes), its dir.
agent_stop() {
	_s_pid=$1 _s_dir=$2 _s_cg=$3
	if kill -TERM "$_s_pid" 2>/dev/null; then
		_s_end=$(( $(date +%s) + 10 ))
		while kill -0 "$_s_pid" 2>/dev/null && [ "$(date +%s)" -lt "$_s_end" ]; do
			sleep 0.05
		done
		kill -KILL "$_s_pid" 2>/dev/null
		wait "$_s_pid" 2>/dev/null
	fi
	if [ "$_t_failed" -gt 0 ] && [ -f "$_s_dir/agent.log" ]; then
		echo "# agent log ($_s_dir/agent.log):" >&8
		sed 's/^/#   /' "$_s_dir/agent.log" >&8
	fi
	cgroup_purge "$_s_cg"
	rm -rf "$_s_dir"
}

# stream_moves PROGRESS — a zi_stream peer's PROGRESS file ("sent rcvd ...") shows the
# stream advancing both ways within 10 s.
stream_moves() {
	set -- "$1" $(cut -d' ' -f1,2 "$1" 2>/dev/null)
	wait_for 10 sh -c "set -- \$(cut -d' ' -f1,2 '$1' 2>/dev/null); [ \"\${1:-0}\" -gt ${2:-0} ] && [ \"\${2:-0}\" -gt ${3:-0} ]"
}

# sim_logs STATEDIR — after a failure, the simulated cluster's agent and manager logs
# (register with on_exit after the cluster's "down", so it runs before it).
sim_logs() {
	[ "$_t_failed" -gt 0 ] || return 0
	for _l in "$1"/*/agent.log "$1"/manager/manager.log; do
		[ -f "$_l" ] || continue
		echo "# --- $_l:" >&8
		tail -n 60 "$_l" | sed 's/^/#   /' >&8
	done
}

# cgroup_purge PARENT — kill every process under PARENT in every hierarchy, remove it.
cgroup_purge() {
	for _c_root in /sys/fs/cgroup/unified /sys/fs/cgroup/freezer /sys/fs/cgroup/memory \
		       /sys/fs/cgroup/pids /sys/fs/cgroup; do
		[ -d "$_c_root/$1" ] || continue
		for _c_d in "$_c_root/$1"/*/ "$_c_root/$1/"; do
			[ -d "$_c_d" ] || continue
			[ -f "$_c_d/cgroup.kill" ] && echo 1 >"$_c_d/cgroup.kill" 2>/dev/null
			[ -f "$_c_d/freezer.state" ] && echo THAWED >"$_c_d/freezer.state" 2>/dev/null
			for _c_p in $(cat "$_c_d/cgroup.procs" 2>/dev/null); do kill -KILL "$_c_p" 2>/dev/null; done
		done
		for _c_d in "$_c_root/$1"/*/; do
			[ -d "$_c_d" ] && wait_for 3 rmdir "$_c_d"
		done
		rmdir "$_c_root/$1" 2>/dev/null
	done
	return 0
}

# cgroup_exists PARENT[/POD] — true if that cgroup exists in any hierarchy.
cgroup_exists() {
	for _c_root in /sys/fs/cgroup/unified /sys/fs/cgroup/freezer /sys/fs/cgroup/memory \
		       /sys/fs/cgroup/pids; do
		[ -d "$_c_root/$1" ] && return 0
	done
	return 1
}

# pod_field NAME FIELD — a field of a pod from `zapc pod list --json` ("" if none).
pod_field() {
	t_timeout 10 "$ZBIN/zapc" pod list --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["name"] == sys.argv[1]:
        v = p.get(sys.argv[2], "")
        print(" ".join(v) if isinstance(v, list) else v)
' "$1" "$2"
}
