#!/bin/bash
# clockshift.t — restore --shift-clocks: the pod's CLOCK_MONOTONIC and
# CLOCK_BOOTTIME count the time the pod was down (restored 1.5 s after the
# dump, they jump by about that); the same image restored without the
# option continues where it was (the default, also clock.t).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 8

d=$(mktemp -d /tmp/zeng-clksh.XXXXXX); on_exit "rm -rf $d"
pod_start zcs "$ZBIN/zt-clock" > "$d/out"; ok $? "pod started"
sleep 0.3
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
wait_for 10 pod_gone "$POD_CG"
n=$(wc -l < "$d/out")
set -- $(sed -n "${n}p" "$d/out"); m0=$1 b0=$2
sleep 1.5

# restore IMG NAME [OPTION]: the first line the restored pod printed, in $m1 $b1
restore_jump() {
	RPOD_CG=$CGROOT/$(uniq "$2")
	mkdir -p "$RPOD_CG" && on_exit "_pod_cleanup_cg $RPOD_CG"
	t_timeout 60 "$ENGINE" restore -i "$1" --cgroup "$RPOD_CG" $3 > /dev/null || return 1
	wait_for 5 sh -c "[ \$(wc -l < $d/out) -gt $((n + 5)) ]"
	set -- $(sed -n "$((n + 1))p" "$d/out"); m1=$1 b1=$2
	echo 1 > "$RPOD_CG/cgroup.kill"
	wait_for 10 pod_gone "$RPOD_CG"
	sed -i "$((n + 1)),\$d" "$d/out"     # the restored pod appends at its offset: keep the first n lines
}
restore_jump "$d/img" zcsa --shift-clocks; ok $? "restore with --shift-clocks 1.5 s later"
dm=$((m1 - m0)); db=$((b1 - b0))
[ $dm -ge 1400 ] && [ $dm -lt 5000 ]; ok $? "CLOCK_MONOTONIC counts the downtime (+$dm ms)"
[ $db -ge 1400 ] && [ $db -lt 5000 ]; ok $? "CLOCK_BOOTTIME counts the downtime (+$db ms)"
restore_jump "$d/img" zcsb; ok $? "restore without the option"
dm=$((m1 - m0)); db=$((b1 - b0))
[ $dm -ge 0 ] && [ $dm -lt 700 ]; ok $? "CLOCK_MONOTONIC continues (+$dm ms)"
[ $db -ge 0 ] && [ $db -lt 700 ]; ok $? "CLOCK_BOOTTIME continues (+$db ms)"
