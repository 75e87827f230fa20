#!/bin/sh
# clockshift.t — `zapc restore --shift-clocks` through the agent: the pod's
# CLOCK_MONOTONIC/BOOTTIME count the 1.5 s it was down; a plain restore makes
# them continue from the checkpoint (the default).
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 8

Z="t_timeout 30 $ZBIN/zapc"
agent_start zcs || exit 1
d=$(mktemp -d /tmp/zapc-clksh.XXXXXX)
on_exit "rm -rf '$d'"
$Z pod create clk -- "$ZBIN/zt-clock" > /dev/null
ok $? "clock pod created"
cons=$(pod_field clk console)
wait_for 5 sh -c "[ \$(wc -l < '$cons') -gt 10 ]"

# checkpoint, wait 1.5 s, restore with OPTS; prints the monotonic and boottime jumps (ms)
jump() {
	$Z checkpoint clk -o "$d/img" > /dev/null || return 1
	_n=$(wc -l < "$cons")
	set -- $(sed -n "${_n}p" "$cons"); _m0=$1 _b0=$2
	sleep 1.5
	$Z restore "$d/img" $OPTS > /dev/null || return 1
	wait_for 5 sh -c "[ \$(wc -l < '$cons') -gt $((_n + 3)) ]"
	set -- $(sed -n "$((_n + 1))p" "$cons")
	echo "$(($1 - _m0)) $(($2 - _b0))"
}
OPTS=--shift-clocks
j=$(jump); ok $? "checkpoint and restore --shift-clocks"
set -- $j
[ "${1:-0}" -ge 1400 ] && [ "$1" -lt 5000 ]; ok $? "CLOCK_MONOTONIC counts the downtime (+${1:-?} ms)"
[ "${2:-0}" -ge 1400 ] && [ "$2" -lt 5000 ]; ok $? "CLOCK_BOOTTIME counts the downtime (+${2:-?} ms)"
OPTS=
j=$(jump); ok $? "checkpoint and plain restore"
set -- $j
[ -n "$1" ] && [ "$1" -ge 0 ] && [ "$1" -lt 700 ]; ok $? "CLOCK_MONOTONIC continues (+${1:-?} ms)"
[ -n "$2" ] && [ "$2" -ge 0 ] && [ "$2" -lt 700 ]; ok $? "CLOCK_BOOTTIME continues (+${2:-?} ms)"
$Z pod destroy clk > /dev/null
ok $? "pod destroyed"
