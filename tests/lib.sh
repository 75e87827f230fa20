# tests/lib.sh — shared helpers for zapc's shell tests (source it; POSIX sh + bash ok).
#
# TAP output:  plan N | ok COND-EXIT-STATUS "what" | is GOT WANT "what" | skip_all "why" | done_testing
# Safety:      need_root; uniq NAME (a name unique to this test run);
#              on_exit "cmd" (run at exit, last registered first, pass or fail);
#              t_timeout SECS cmd... (every external command in a test gets a timeout).
# Programs:    $ZAPC_BUILD/bin/... (set by make; defaults to ./build).

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
ok() {
	_t_n=$((_t_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $_t_n - $2"
	else
		echo "not ok $_t_n - $2"
		_t_failed=$((_t_failed + 1))
	fi
}

# is GOT WANT WHAT
is() {
	if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; diag "got '$1', want '$2'"; fi
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
