#!/bin/bash
# cluster.sh — zapc-manager on a simulated cluster: coordinated checkpoint (snapshot, images
# to memory: a tmpfs) and restart from those images, for jobs of one 64 MiB pod per node on
# 2, 4 and 8 nodes; then live migration streaming (agent to agent over TLS) against plain
# loopback TCP.  Targets (issue 6): checkpoint < 100 ms at 4 nodes (command to every pod
# resumed), restart < 200 ms at 4 nodes, migration >= 80 % of loopback TCP.
#
#   BENCH cluster_ckpt_resumed_<N>n   ms from the manager's command to every pod resumed
#   BENCH cluster_ckpt_total_<N>n     ms until every image is written (deferred write)
#   BENCH cluster_restart_<N>n        ms from the command to every pod running (routes included)
#   BENCH cluster_migrate_stream      MB/s of the image stream, dump -> TLS -> restore
#   BENCH cluster_migrate_ratio       that over plain loopback TCP (bench/tls_throughput)
set -u
cd "$(dirname "$0")/.."
: "${ZAPC_BUILD:=$PWD/build}"
export ZBIN=$ZAPC_BUILD/bin ZAPC_SRC=$PWD
for b in zapc zapc-agent zapc-manager zapc-engine zt-bigmem; do
	[ -x "$ZBIN/$b" ] || { echo "no $ZBIN/$b (run make)"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 0; }
SC=$PWD/tests/cluster/simcluster
export SIMCLUSTER_PREFIX=zb$$
P=$SIMCLUSTER_PREFIX
ST=/run/zapc-simcluster/$P
export ZAPC_MANAGER=$ST/manager.sock
MEM=/dev/shm/zapc-bench-$$
MB=${CLUSTER_BENCH_MIB:-64}
cleanup() {
	"$SC" down > /dev/null 2>&1
	for k in $(seq 1 8); do
		for r in /sys/fs/cgroup/unified /sys/fs/cgroup/freezer /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do
			[ -d "$r/zapc-$P-n$k" ] && find "$r/zapc-$P-n$k" -depth -type d -exec rmdir {} \; 2> /dev/null
		done
	done
	rm -rf "$MEM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout 120 "$SC" up 8 --agents --manager > /dev/null || { echo "cluster up failed"; exit 0; }
job() { timeout 300 "$ZBIN/zapc" job "$@"; }
# ms of a timeline line: "[  53.0 ms] ..." matching a pattern
at() { awk -v pat="$2" 'index($0, pat) {gsub(/[][]/, ""); print $1; exit}' "$1"; }

for n in 2 4 8; do
	nodes=$(seq -s, -f "$P-n%g" 1 "$n")
	rot=$(seq -s, -f "$P-n%g" 2 "$n"),$P-n1
	job run b$n --nodes "$nodes" -- "$ZBIN/zt-bigmem" "$MB" > /dev/null || { echo "run b$n failed"; continue; }
	sleep 2	# every pod has touched its memory
	best=""; bestt=""
	for rep in 1 2 3; do
		rm -rf "$MEM"
		job checkpoint b$n -o "$MEM" --leave-running > "$MEM.out" 2>&1 || { cat "$MEM.out"; continue; }
		r=$(at "$MEM.out" "pods resumed"); t=$(at "$MEM.out" "done:")
		if [ -z "$best" ] || awk -v a="$r" -v b="$best" 'BEGIN {exit !(a < b)}'; then best=$r; bestt=$t; fi
	done
	[ "$n" = 2 ] && sed -n '/^NODE/,$p' "$MEM.out"
	echo "BENCH cluster_ckpt_resumed_${n}n ${best:-NaN} ms ${n} pods of ${MB} MiB, images to tmpfs$([ "$n" = 4 ] && echo ', target<100')"
	echo "BENCH cluster_ckpt_total_${n}n ${bestt:-NaN} ms until every image is in memory"
	rm -rf "$MEM"
	job checkpoint b$n -o "$MEM" > /dev/null 2>&1 || { echo "checkpoint b$n failed"; continue; }
	t0=$(date +%s%N)
	job restart b$n --from "$MEM" --nodes "$rot" > "$MEM.rs" 2>&1 || { cat "$MEM.rs"; continue; }
	t1=$(date +%s%N)
	echo "BENCH cluster_restart_${n}n $(( (t1 - t0) / 1000000 )) ms each pod on another node, from tmpfs$([ "$n" = 4 ] && echo ', target<200')"
	echo "BENCH cluster_restart_barrier_${n}n $(at "$MEM.rs" "all pods restored") ms to every pod restored (frozen), before Resume"
	job destroy b$n > /dev/null
	rm -rf "$MEM" "$MEM.out" "$MEM.rs"
done

# Migration streaming: one 256 MiB pod, n1 -> n2 -> n1 (best of 2).
job run bm --nodes "$P-n1" -- "$ZBIN/zt-bigmem" 256 > /dev/null && sleep 3
best=0
for to in n2 n1; do
	job migrate bm --to "$P-$to" > "$MEM.mig" 2>&1 || { cat "$MEM.mig"; continue; }
	s=$(awk '/streamed and restored/ {gsub(/[()]/, ""); for (i = 1; i <= NF; i++) if ($(i + 1) == "ms;") print $i}' "$MEM.mig")
	mib=$(awk '/MiB streamed at/ {for (i = 1; i <= NF; i++) if ($(i + 1) == "MiB" && $(i + 2) == "streamed") print $i}' "$MEM.mig")
	r=$(awk -v m="$mib" -v s="$s" 'BEGIN {if (s > 0) printf "%.0f", m * 1.048576 / (s / 1000); else print 0}')
	[ "$r" -gt "$best" ] && best=$r
done
tcp=$(timeout 120 "$ZBIN/tls_throughput" --mib 256 --reps 2 2>/dev/null | awk '$1 == "BENCH" && $2 == "tls_stream_tcp" {print $3}')
echo "BENCH cluster_migrate_stream $best MB/s 256 MiB pod, dump -> TLS (agent to agent) -> restore, incl. restore"
echo "BENCH cluster_migrate_tcp ${tcp:-NaN} MB/s plain loopback TCP (tls_throughput)"
echo "BENCH cluster_migrate_ratio $(awk -v a="$best" -v b="${tcp:-0}" 'BEGIN {if (b > 0) printf "%.0f", 100 * a / b; else print "NaN"}') % target>=80"
job destroy bm > /dev/null
rm -f "$MEM.mig"
