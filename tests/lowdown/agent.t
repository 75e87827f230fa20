#!/bin/sh
# agent.t — incremental checkpoints as a user runs them: zapc checkpoint
# --parent through the agent stores only what changed; zapc restore of an
# increment continues the counter; zapc image squash gives one image that
# restores too.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 9

Z="t_timeout 30 $ZBIN/zapc"
agent_start zld || exit 1
d=$(mktemp -d /tmp/zld-agent.XXXXXX)
on_exit "rm -rf '$d'"
steps() { awk 'NR > 1 && $1 != p + 1 { print "line " NR ": " p " then " $1; n++ } { p = $1 } n > 5 { exit }' "$1"; }
grows() { _n=$(tail -1 "$1"); sleep "${2:-0.3}"; [ "$(tail -1 "$1")" -gt "$_n" ]; }
json() { "$ZBIN/zapc" image show "$1" --json | python3 -c "import json,sys; j=json.load(sys.stdin); print($2)"; }

$Z pod create ldc --ip 10.200.0.97 -- "$ZBIN/zt-counter" 3 > /dev/null
ok $? "counter pod created"
cons=$(pod_field ldc console)
wait_for 5 grows "$cons" 0.05
$Z checkpoint ldc -o "$d/c0" --leave-running --track --compress > /dev/null
ok $? "full checkpoint with --track --compress"
sleep 0.2
$Z checkpoint ldc -o "$d/c1" --leave-running --parent "$d/c0" > /dev/null
sleep 0.2
$Z checkpoint ldc -o "$d/c2" --parent "$d/c1" > /dev/null
ok $? "two incremental checkpoints --parent (the pod ends with the second)"
full=$(json "$d/c0" "j['present_pages']"); inc=$(json "$d/c2" "j['stored_pages']")
[ "$inc" -gt 0 ] && [ $((inc * 4)) -lt "$full" ]
ok $? "the second increment stores few pages ($inc of $full; the first stored $(json "$d/c1" "j['stored_pages']"))"
$Z restore "$d/c2" > /dev/null
ok $? "restore of the increment (a chain of 3)"
cons=$(pod_field ldc console)
wait_for 5 grows "$cons" 0.1
is "$(steps "$cons")" "" "the counter continues with no gap and no repeat"
$Z checkpoint ldc -o "$d/c3" > /dev/null
$Z image squash "$d/c2" -o "$d/sq" > /dev/null
is "$(json "$d/sq" "j['parent']")" "None" "zapc image squash writes one full image"
$Z restore "$d/sq" > /dev/null
ok $? "the squashed image restores"
wait_for 5 grows "$cons" 0.1
ok $? "and runs"
$Z pod destroy ldc > /dev/null
