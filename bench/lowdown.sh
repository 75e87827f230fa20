#!/bin/sh
# lowdown.sh — cheap checkpoints (issue 7, docs/incremental.md):
#   downtime of an incremental checkpoint, 1 GiB resident, 4 MiB dirtied   target < 5 ms
#   storage of a chain: 1% of 1 GiB rewritten per second, one checkpoint
#     per second, compressed, vs. the changed data compressed              target < 1.2x
#   full checkpoint downtime, deferred write vs. writing while frozen (ratio)
# Prints BENCH lines (see bench/run.sh).  Needs root and cgroup v2.
# LOWDOWN_MB (1024), LOWDOWN_SECONDS (60) make it shorter.
set -u
: "${ZAPC_BUILD:=$(pwd)/build}"
ZBIN=$ZAPC_BUILD/bin
ENGINE=$ZBIN/zapc-engine
CG=/sys/fs/cgroup/unified
MB=${LOWDOWN_MB:-1024}
SECS=${LOWDOWN_SECONDS:-60}
tmp=$(mktemp -d /var/tmp/zld-bench.XXXXXX)     # on disk: the images are written for real
pods=""
cleanup() {
	for c in $pods; do
		echo 1 > "$c/cgroup.kill" 2>/dev/null
		for i in $(seq 50); do rmdir "$c" 2>/dev/null && break; sleep 0.1; done
	done
	[ -n "${LOWDOWN_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

start_pod() {   # start_pod NAME DIR ARGS... → POD_CG, POD_INIT
	c=$CG/$1$$; d=$2; shift 2
	mkdir "$c"; pods="$pods $c"
	unshare --fork --pid --mount-proc --mount --ipc --uts --net \
		sh -c 'echo 0 > "$0/cgroup.procs" && exec setsid "$@"' "$c" "$@" > "$d/ready" 2>/dev/null &
	o=$!
	i=0
	while [ "$(cat "$d/ready" 2>/dev/null)" != ready ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
	POD_CG=$c
	POD_INIT=$(cat /proc/$o/task/$o/children | awk '{print $1}')
}
frozen_of() { awk '/^TIMING frozen_ms/ { print $3 }' "$1"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "NaN" }'; }
dump() { ZAPC_ENGINE_TIMING=1 timeout 300 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" --leave-running "$@"; }

# 1. incremental downtime: 4 MiB (1024 pages) dirtied between checkpoints
d1=$tmp/inc; mkdir "$d1"
start_pod zldi "$d1" "$ZBIN/zt-lowdown-rewriter" "$d1" "$MB" 1024 0
dump -o "$d1/img0" --track 2> "$d1/t0" > /dev/null
for i in 1 2 3 4 5 6 7; do
	touch "$d1/go.$i"
	j=0; while [ ! -e "$d1/done.$i" ] && [ $j -lt 500 ]; do sleep 0.01; j=$((j + 1)); done
	dump -o "$d1/img$i" --parent "$d1/img$((i - 1))" 2> "$d1/t$i" > /dev/null
	frozen_of "$d1/t$i" >> "$d1/frozen"
done
echo "incremental frozen times (ms): $(tr '\n' ' ' < "$d1/frozen")"
echo "last increment, frozen-window phases (ms): $(awk '/^TIMING phase/ { printf "%s=%s ", $3, $4 }' "$d1/t7")"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cpus"
echo "BENCH lowdown_incr_frozen_${MB}MiB_4MiB $(median < "$d1/frozen") ms target<5"
echo "BENCH lowdown_incr_frozen_${MB}MiB_4MiB_best $(sort -n "$d1/frozen" | head -1) ms (best of 7)"
echo "BENCH lowdown_full_frozen_${MB}MiB_tracked $(frozen_of "$d1/t0") ms (full, arming the tracking)"
echo 1 > "$POD_CG/cgroup.kill"

# 2. storage: 1% of the memory rewritten per second, a compressed increment per second
d2=$tmp/sto; mkdir "$d2"
pages=$((MB * 256 / 100))
# The reference must cover exactly the steps the chain holds: the rewriter's
# steps are held (DIR/hold) until the full image is written, and held again
# before the last increment, so no step is in the chain but not in ref
# (steps during the long write of img0 used to land in img1 uncounted).
touch "$d2/hold"
start_pod zlds "$d2" "$ZBIN/zt-lowdown-rewriter" "$d2" "$MB" "$pages" 1000
dump -o "$d2/img0" --track --compress 2> /dev/null > /dev/null
: > "$d2/ref"
rm -f "$d2/hold"
t_end=$(( $(date +%s) + SECS ))
i=0
while :; do
	last=0
	[ "$(date +%s)" -lt "$t_end" ] || { touch "$d2/hold"; sleep 0.3; last=1; }
	i=$((i + 1))
	dump -o "$d2/img$i" --parent "$d2/img$((i - 1))" --compress --full-every 1000 2> "$d2/t$i" > /dev/null ||
		{ echo "increment $i failed: $(tail -1 "$d2/t$i")"; break; }
	frozen_of "$d2/t$i" >> "$d2/frozen"
	[ $last = 1 ] && break
	sleep 0.7
done
chain=0
for k in $(seq 1 $i); do chain=$((chain + $(stat -c %s "$d2/img$k"))); done
ref=$(awk '{ b += $2; p += $1 } END { print b + 0 }' "$d2/ref")
refpages=$(awk '{ p += $1 } END { print p + 0 }' "$d2/ref")
echo "storage: $i increments in ${SECS}s, $refpages pages rewritten ($((refpages * 4)) KiB raw, $((ref / 1024)) KiB zstd-3); chain $((chain / 1024)) KiB; full image $(( $(stat -c %s "$d2/img0") / 1048576 )) MiB"
echo "BENCH lowdown_chain_vs_changed $(awk -v c="$chain" -v r="$ref" 'BEGIN { printf "%.3f", r ? c / r : 0 }') x target<1.2"
echo "BENCH lowdown_incr_frozen_1pct $(median < "$d2/frozen") ms (median, $pages pages/s dirtied)"
echo 1 > "$POD_CG/cgroup.kill"
[ -n "${LOWDOWN_KEEP:-}" ] || rm -rf "$d2"

# 3. full checkpoint: deferred write vs. writing the image while frozen
d3=$tmp/full; mkdir "$d3"
start_pod zldf "$d3" "$ZBIN/zt-lowdown-rewriter" "$d3" "$MB" 1 0
for k in 1 2 3; do
	dump -o "$d3/def" 2> "$d3/td$k" > /dev/null; frozen_of "$d3/td$k" >> "$d3/fd"; rm -f "$d3/def"
	dump -o "$d3/dir" --write-frozen 2> "$d3/tw$k" > /dev/null; frozen_of "$d3/tw$k" >> "$d3/fw"; rm -f "$d3/dir"
done
fd=$(median < "$d3/fd"); fw=$(median < "$d3/fw")
echo "BENCH lowdown_full_frozen_deferred_${MB}MiB $fd ms"
echo "BENCH lowdown_full_frozen_direct_${MB}MiB $fw ms (image written to disk while frozen)"
echo "BENCH lowdown_full_deferred_ratio $(awk -v a="$fd" -v b="$fw" 'BEGIN { printf "%.3f", b ? a / b : 0 }') x deferred/direct"
