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
#   BENCH cluster_migrate_stream      MB/s of a live migration's stream, dump -> TLS -> restore
#   BENCH cluster_migrate_stream_plain  the same migration over plain TCP (bench-only switch)
#   BENCH cluster_migrate_ratio       TLS over plain: what TLS costs the migration (target >= 80)
#   BENCH cluster_transport_*         the agents' copy loops alone (tls_throughput --path agent)
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
	for k in $(seq 1 10); do
		for r in /sys/fs/cgroup/unified /sys/fs/cgroup/freezer /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do
			[ -d "$r/zapc-$P-n$k" ] && find "$r/zapc-$P-n$k" -depth -type d -exec rmdir {} \; 2> /dev/null
		done
	done
	rm -rf "$MEM" "$MEM.out" "$MEM.rs" "$MEM.mig"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout 120 "$SC" up 8 --agents --manager > /dev/null || { echo "cluster up failed"; exit 0; }
job() { timeout 300 "$ZBIN/zapc" job "$@"; }
# ms of a timeline line: "[  53.0 ms] ..." matching a pattern
at() { awk -v pat="$2" 'index($0, pat) {gsub(/[][]/, ""); print $1; exit}' "$1"; }

NODES=${CLUSTER_BENCH_NODES:-2 4 8}
PARTS=${CLUSTER_BENCH_PARTS:-ckpt restart migrate}
want() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
for n in $NODES; do
	want ckpt || want restart || break
	nodes=$(seq -s, -f "$P-n%g" 1 "$n")
	rot=$(seq -s, -f "$P-n%g" 2 "$n"),$P-n1
	job run b$n --nodes "$nodes" -- "$ZBIN/zt-bigmem" "$MB" > /dev/null || { echo "run b$n failed"; continue; }
	sleep 2	# every pod has touched its memory
	best=""; bestt=""
	for rep in 1 2 3; do
		want ckpt || break
		rm -rf "$MEM"
		job checkpoint b$n -o "$MEM" --leave-running > "$MEM.out" 2>&1 || { cat "$MEM.out"; continue; }
		r=$(at "$MEM.out" "pods resumed"); t=$(at "$MEM.out" "done:")
		if [ -z "$best" ] || awk -v a="$r" -v b="$best" 'BEGIN {exit !(a < b)}'; then best=$r; bestt=$t; fi
	done
	if want ckpt; then
		[ "$n" = 2 ] && sed -n '/^NODE/,$p' "$MEM.out"
		echo "BENCH cluster_ckpt_resumed_${n}n ${best:-NaN} ms ${n} pods of ${MB} MiB, images to tmpfs$([ "$n" = 4 ] && echo ', target<100')"
		echo "BENCH cluster_ckpt_total_${n}n ${bestt:-NaN} ms until every image is in memory"
	fi
	rm -rf "$MEM"
	if ! want restart; then job destroy b$n > /dev/null; continue; fi
	job checkpoint b$n -o "$MEM" > /dev/null 2>&1 || { echo "checkpoint b$n failed"; continue; }
	# 3 restarts from the same images (destroyed in between), each pod on another node.
	rs=(); bar=()
	for rep in 1 2 3; do
		t0=$(date +%s%N)
		job restart b$n --from "$MEM" --nodes "$rot" > "$MEM.rs" 2>&1 || { cat "$MEM.rs"; break; }
		t1=$(date +%s%N)
		rs+=($(( (t1 - t0) / 1000000 ))); bar+=("$(at "$MEM.rs" "all pods restored")")
		job destroy b$n > /dev/null
	done
	echo "# restart ${n}n runs (ms): ${rs[*]}; to the barrier: ${bar[*]}"
	echo "BENCH cluster_restart_${n}n $(printf '%s\n' "${rs[@]}" | sort -n | head -1) ms best of 3 (median $(printf '%s\n' "${rs[@]}" | sort -n | sed -n 2p)), each pod on another node, from tmpfs$([ "$n" = 4 ] && echo ', target<200')"
	echo "BENCH cluster_restart_barrier_${n}n $(printf '%s\n' "${bar[@]}" | sort -n | head -1) ms best, to every pod restored (frozen), before Resume"
	job destroy b$n > /dev/null 2>&1
	rm -rf "$MEM" "$MEM.out" "$MEM.rs"
done

want migrate || exit 0
# Migration streaming, like with like: the same live migration of one 256 MiB pod (dump ->
# stream -> restore, agent to agent, no image on disk) once over TLS (nodes n1 <-> n2) and once
# over plain TCP (two extra nodes whose agents are zapc-agent-plainbench: zapc-agent built
# with plain migration streams, bench-only and never installed; same helpers, same pipes, no TLS).  MB/s = image bytes over the manager's stream
# window (Go captured -> every image written and restored).  Runs interleaved, 3 each.
# The transport alone (producer -> the agents' copy loops -> consumer, no dump/restore) is
# bench/tls_throughput --path agent, printed last for reference.
SIMCLUSTER_AGENT=$ZBIN/zapc-agent-plainbench timeout 60 "$SC" up 2 --agents --manager > /dev/null ||
	{ echo "plain-stream nodes failed"; exit 0; }
mig_rate() {	# job node -> MB/s of its stream (0 on failure)
	job migrate "$1" --to "$P-$2" > "$MEM.mig" 2>&1 || { cat "$MEM.mig" >&2; echo 0; return; }
	awk '/MiB streamed at/ {for (i = 1; i <= NF; i++) if ($(i + 1) == "MiB/s") printf "%.0f\n", $i * 1.048576}' "$MEM.mig"
}
job run bm --nodes "$P-n1" -- "$ZBIN/zt-bigmem" 256 > /dev/null &&
	job run bp --nodes "$P-n9" -- "$ZBIN/zt-bigmem" 256 > /dev/null && sleep 3
tls_r=(); plain_r=()
for to in "n2 n10" "n1 n9" "n2 n10"; do
	set -- $to
	tls_r+=("$(mig_rate bm "$1")")
	plain_r+=("$(mig_rate bp "$2")")
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
best() { printf '%s\n' "$@" | sort -n | tail -1; }
echo "# migration MB/s, TLS runs: ${tls_r[*]}; plain TCP runs: ${plain_r[*]}"
tm=$(med "${tls_r[@]}"); pm=$(med "${plain_r[@]}")
echo "BENCH cluster_migrate_stream $tm MB/s median (best $(best "${tls_r[@]}")), 256 MiB pod, dump -> TLS -> restore, agent to agent"
echo "BENCH cluster_migrate_stream_plain $pm MB/s median (best $(best "${plain_r[@]}")), the same migration over plain TCP"
echo "BENCH cluster_migrate_ratio $(awk -v a="$tm" -v b="$pm" 'BEGIN {if (b > 0) printf "%.0f", 100 * a / b; else print "NaN"}') % target>=80, median TLS over median plain TCP, same migration"
job destroy bm > /dev/null
job destroy bp > /dev/null
rm -f "$MEM.mig"
# (the agents' receivers read ahead 256 KiB, agent/peer.c; AES-128-GCM is what they negotiate)
timeout 200 "$ZBIN/tls_throughput" --path agent --mib 256 --reps 3 --read-ahead 256 \
	--suites TLS_AES_128_GCM_SHA256 2> /dev/null |
	awk '$1 == "BENCH" {sub(/^BENCH tls_agent_/, "BENCH cluster_transport_"); print}'
