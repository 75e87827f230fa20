#!/bin/bash
# seedrange.t — a process with memory where the restore seed lives (the 2 MiB
# at 0x7f8000000000, agent/engine/seed.h) is laid out by the engine's injected
# batch instead of by its seed task (docs/engine.md "Creating the tasks"),
# while its child, without that page, lays out its own: both keep their
# memory and the same layout (/proc/PID/maps), and the program runs on.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 7

d=$(mktemp -d /tmp/zeng-seedrange.XXXXXX); on_exit "rm -rf $d"
ZT_MEM_AT=7f8000100000 pod_start zsr "$ZBIN/zt-mem" "$d/data" > "$d/out"; ok $? "pod started"
wait_for 10 sh -c "[ \$(wc -l < $d/out) -gt 2 ]"
maps() {   # every process of the pod, by its pid inside the pod
	for p in $(cat "$1/cgroup.procs"); do
		ns=$(awk '/^NSpid/ { print $NF }' /proc/$p/status)
		awk -v ns="$ns" '{ print ns, $1, $2, $3, $6 }' /proc/$p/maps | grep -v 'zapc-shm\|/dev/zero'
	done | sort
}
maps "$POD_CG" > "$d/maps.before"
grep -q '^1 7f8000100000-7f8000101000 ' "$d/maps.before"; ok $? "the init has a page in the seed's range"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
n=$(wc -l < "$d/out")
RPOD_CG=$CGROOT/$(uniq zsrr); mkdir "$RPOD_CG"; on_exit "_pod_cleanup_cg $RPOD_CG"
RPOD_INIT=$(ZAPC_ENGINE_DEBUG=1 t_timeout 60 "$ENGINE" restore -i "$d/img" --cgroup "$RPOD_CG" 2> "$d/err"); ok $? "restore"
grep -q '1 of 2 tasks map their own layout' "$d/err"; ok $? "one task laid out by the engine, one by itself ($(grep -o '[0-9]* of [0-9]* tasks map their own layout' "$d/err"))"
wait_for 10 sh -c "[ \$(wc -l < $d/out) -gt $((n + 20)) ]"
is "$(grep -c BAD "$d/out")" 0 "every pattern intact after restore $(grep -m1 BAD "$d/out")"
maps "$RPOD_CG" > "$d/maps.after"
diff "$d/maps.before" "$d/maps.after" >&2; ok $? "same memory layout in both processes"
