#!/bin/bash
# churn.t — the pre-copy race (docs/incremental.md): a program writes its
# pages without pause while increments are taken, so pages are written
# between the pre-copy (copy + re-protect, pod running) and the freeze.
# Every increment must still be one instant: a restored copy checks that no
# page it already rewrote in the current round came back older.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../engine/pod.sh"
need_root
N=4
NP=4096
plan $((4 + 2 * N))

d=$(mktemp -d /tmp/zld-churn.XXXXXX); on_exit "rm -rf $d"
pod_start zldc "$ZBIN/zt-lowdown-churn" "$d" $NP; ok $? "pod started"
wait_for 10 grep -q ok "$d/log"
t_timeout 120 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img0" --leave-running --track
bad=""
pre=0
for i in $(seq 1 $N); do
	sleep 0.3
	# the last one as if the pre-copy had failed: its pages are read frozen
	lost=""; [ $i = $N ] && lost=1
	ZAPC_TEST_PRECOPY_LOST=$lost ZAPC_ENGINE_DEBUG=1 t_timeout 120 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img$i" \
		--leave-running --parent "$d/img$((i - 1))" 2> "$d/err$i" || bad="$bad dump$i"
	n=$(sed -n 's/.*pre-copied \([0-9]*\) written pages.*/\1/p' "$d/err$i" | head -1)
	pre=$((pre + ${n:-0}))
done
is "$bad" "" "$N increments taken while the program writes ($pre pages pre-copied in all)"
[ "$pre" -gt 0 ]; ok $? "the increments used pre-copied pages"
grep -q "pre-copied.*(lost: read while frozen)" "$d/err$N"; ok $? "increment $N took the failed pre-copy path"
echo 1 > "$POD_CG/cgroup.kill"
[ -e "$d/bad" ] && diag "original: $(head -3 "$d/bad")"
rm -f "$d/bad"

for i in $(seq 1 $N); do
	: > "$d/log"
	pod_restore "$d/img$i" zldcr; ok $? "restore point $i"
	wait_for 20 test "$(grep -c ok "$d/log")" -ge 3
	echo 1 > "$RPOD_CG/cgroup.kill"
	is "$(cat "$d/bad" 2>/dev/null)" "" "point $i is one instant ($(grep -c ok "$d/log") rounds checked after restore)"
	rm -f "$d/bad"
done
