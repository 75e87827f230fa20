#!/bin/bash
# cluster-demo.sh — the cluster part of `make demo` (issue 6): a simulated cluster of 4
# nodes plus 3 in another subnet (network namespaces + bridges, a zapc-agent per node,
# zapc-manager), a job running, a coordinated checkpoint that stops it, the restart on
# 3 other nodes, a live migration, the job finishing with the right answer, and a
# timeline of every step.  Everything is removed at the end (also on failure).
#
# The job is MPI cpi, 4 ranks in 4 pods (hydra's proxies run detached in the
# pods); ZAPC_DEMO_MPI=0, or no MPICH, runs 4 counter pods instead.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
export ZBIN=${ZAPC_BUILD:-$SRC/build}/bin ZAPC_SRC=$SRC
[ "$(id -u)" = 0 ] || { echo "cluster demo: run as root (make demo)" >&2; exit 1; }
for p in zapc zapc-agent zapc-init zapc-engine zapc-manager; do
	[ -x "$ZBIN/$p" ] || { echo "cluster demo: $ZBIN/$p missing (run make)" >&2; exit 1; }
done
SC=$SRC/tests/cluster/simcluster
export SIMCLUSTER_PREFIX=zdemo$$
P=$SIMCLUSTER_PREFIX
ST=/run/zapc-simcluster/$P
export ZAPC_MANAGER=$ST/manager.sock
IMG=$(mktemp -d /tmp/zapc-cdemo.XXXXXX)
N=$P-n
TL=()

if [ -t 1 ]; then B=$(printf '\033[1m'); R=$(printf '\033[0m'); else B=; R=; fi
now() { date +%s%N; }
T0=$(now)
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$R"; }
show() { printf '$ %s\n' "$*" | sed "s|$ZBIN/||g; s|$SRC/||g"; "$@"; }
# timed WHAT CMD...: run, record the step's duration for the timeline
timed() {
	local what=$1 t s
	shift
	t=$(now)
	show "$@"; s=$?
	TL+=("$(printf '%8.1f s  %8.1f ms  %s' "$(awk -v a="$t" -v b="$T0" 'BEGIN {print (a - b) / 1e9}')" \
		"$(awk -v a="$(now)" -v b="$t" 'BEGIN {print (a - b) / 1e6}')" "$what")")
	return $s
}
fail() { printf '\ncluster demo: FAILED: %s\n' "$*" >&2; exit 1; }
cleanup() {
	local st=$?
	trap - EXIT INT TERM
	if [ $st != 0 ]; then   # what the engines and agents said, before it is removed
		for l in "$ST"/*/agent.log; do
			[ -f "$l" ] && grep -h "zapc-engine\|failed\|error" "$l" | tail -n 5 | sed "s|^|  ${l%/agent.log}: |; s|$ST/||"
		done >&2
	fi
	"$SC" down > /dev/null 2>&1 || st=1
	for k in 1 2 3 4 5 6 7; do
		for r in /sys/fs/cgroup/unified /sys/fs/cgroup/freezer /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do
			[ -d "$r/zapc-$P-n$k" ] && find "$r/zapc-$P-n$k" -depth -type d -exec rmdir {} \; 2> /dev/null
		done
	done
	rm -rf "$IMG"
	if [ -n "$(ip netns list | grep "^$P-")" ]; then echo "cluster demo: netns left behind" >&2; st=1; fi
	exit $st
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "A simulated cluster: 4 nodes, then 3 more in another subnet; an agent per node (mutual TLS), a manager"
timed "cluster up (4 nodes, agents, CA, manager)" "$SC" up 4 --agents --manager || fail "simcluster up"
timed "3 more nodes in 10.78.0.0/24" "$SC" up 3 --agents --tls --subnet 10.78.0.0/24 || fail "simcluster up"
show "$SC" status

# MPI or counters?  MPI by default; counters when asked (ZAPC_DEMO_MPI=0) or
# when MPICH or the test programs are missing.
MPI=0
why="ZAPC_DEMO_MPI=0"
if [ "${ZAPC_DEMO_MPI:-1}" = 1 ]; then
	if command -v mpiexec > /dev/null && [ -x "$SRC/build/tests/cluster/mpi/cpi" ]; then
		MPI=1
	else
		why="no mpiexec or no build/tests/cluster/mpi/cpi"
	fi
fi

if [ $MPI = 1 ]; then
	M=$SRC/build/tests/cluster/mpi
	step "The job: MPI cpi, 4 ranks in 4 pods on 4 nodes (hydra's proxies run in the pods)"
	timed "job run (4 pods, mpiexec in pod 0)" "$ZBIN/zapc" job run demo --nodes ${N}1,${N}2,${N}3,${N}4 --mpi -- \
		env SIMCLUSTER_PREFIX="$P" ZBIN="$ZBIN" PATH=/usr/bin:/bin \
		mpiexec -f {hosts} -n 4 -launcher ssh -launcher-exec "$SRC/tests/cluster/simcluster-launch" \
		-localhost {ip0} -genv UCX_TLS tcp,self -genv UCX_NET_DEVICES eth0 -genv MPIR_CVAR_NOLOCAL 1 \
		-genv LD_PRELOAD "$M/libucxforceclose.so" "$M/cpi" --rounds 2400 || fail "job run"
	WANT=$("$M/cpi" --rounds 2400 2>/dev/null | grep '^cpi ' || true)
	RESULT_FILE=$ST/${N}1/demo-0.log
	RESULT_PAT='^cpi '
else
	step "The job: 4 counter pods on 4 nodes (not MPI: $why)"
	# Each pod counts 0..299, one line per 30 ms, then prints the sum: 44850.
	timed "job run (4 pods)" "$ZBIN/zapc" job run demo --nodes ${N}1,${N}2,${N}3,${N}4 -- sh -c \
		's=0; i=0; while [ $i -lt 300 ]; do echo "{pod} $i"; s=$((s+i)); i=$((i+1)); sleep 0.03; done; echo "{pod} sum=$s"' ||
		fail "job run"
	WANT="sum=44850"
fi
sleep 1.5
show "$ZBIN/zapc" job status demo

step "Coordinated checkpoint: freeze every pod, one sync point, write the images, the pods end"
timed "checkpoint (stop), images to $IMG" "$ZBIN/zapc" job checkpoint demo -o "$IMG/ck" || fail "checkpoint"

step "The job is gone from its nodes"
for k in 1 2 3 4; do "$ZBIN/zapc" --socket "$ST/${N}$k/agent.sock" pod list | sed 1d; done | grep . && fail "pods left"
echo "(no pods on ${N}1..${N}4)"

step "Restart on 3 other nodes, in the other subnet: the pods keep their virtual IPs"
timed "restart on ${N}5,${N}6,${N}7" "$ZBIN/zapc" job restart demo --from "$IMG/ck" --nodes ${N}5,${N}6,${N}7 ||
	fail "restart"
show "$ZBIN/zapc" job status demo
sleep 1

step "Live migration, agent to agent over TLS (no image on disk)"
timed "migrate to ${N}1,${N}2" "$ZBIN/zapc" job migrate demo --to ${N}1,${N}2 || fail "migrate"
show "$ZBIN/zapc" job status demo

step "The job finishes"
t=$(now)
if [ $MPI = 1 ]; then
	for _ in $(seq 1200); do grep -q "$RESULT_PAT" "$RESULT_FILE" 2>/dev/null && break; sleep 0.1; done
	got=$(grep "$RESULT_PAT" "$RESULT_FILE")
	echo "result: $got"
	echo "uninterrupted: $WANT"
	[ "$got" = "$WANT" ] || fail "wrong result"
else
	for p in 0 1 2 3; do
		f=$ST/${N}$((p + 1))/demo-$p.log
		for _ in $(seq 600); do grep -q 'sum=' "$f" 2>/dev/null && break; sleep 0.1; done
		got=$(tail -n 1 "$f")
		lines=$(grep -c "^demo-$p [0-9]*\$" "$f")
		gaps=$(awk -v p="demo-$p" '$1 == p && $2 ~ /^[0-9]+$/ && $2 != n++ {g++} END {print g + 0}' "$f")
		printf '  demo-%d: %s (%d lines, %d gaps)\n' "$p" "$got" "$lines" "$gaps"
		[ "$got" = "demo-$p $WANT" ] && [ "$lines" = 300 ] && [ "$gaps" = 0 ] || fail "demo-$p: wrong result"
	done
fi
TL+=("$(printf '%8.1f s  %8.1f ms  %s' "$(awk -v a="$t" -v b="$T0" 'BEGIN {print (a - b) / 1e9}')" \
	"$(awk -v a="$(now)" -v b="$t" 'BEGIN {print (a - b) / 1e6}')" "job finished with the right answer ($WANT)")")
"$ZBIN/zapc" job destroy demo > /dev/null

step "Timeline"
printf '%10s  %11s  %s\n' "AT" "TOOK" "STEP"
printf '%s\n' "${TL[@]}"
step "Done; removing the cluster"
