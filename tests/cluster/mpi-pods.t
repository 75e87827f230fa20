#!/bin/bash
# mpi-pods.t — an MPI job whose hydra proxies and ranks run inside pods, one pod per node
# of a 4-node simulated cluster with a zapc-agent per node (issue 6: "a launcher that hydra
# calls, which asks the agent to exec in the right pod").  The hosts hydra sees are the pods'
# virtual IPs; simcluster-launch finds the pod through the agents and runs the proxy with
# `zapc pod exec`.  Results must equal the references, the ranks must run in the pods (their
# netns are not the nodes'), and traffic must cross the bridge.
. "${ZAPC_SRC:-$(dirname "$0")/../..}/tests/lib.sh"
need_root
command -v mpiexec >/dev/null || skip_all "no mpiexec (MPICH)"
[ -x "$ZBIN/zapc-agent" ] && [ -x "$ZBIN/zapc" ] || skip_all "no zapc-agent/zapc in $ZBIN yet"
M=$ZAPC_BUILD/tests/cluster/mpi
for f in ring alltoall cpi libucxforceclose.so; do
	[ -e "$M/$f" ] || skip_all "no $M/$f (run make)"
done
plan 20

SC=$ZAPC_SRC/tests/cluster/simcluster
export SIMCLUSTER_PREFIX ZBIN
SIMCLUSTER_PREFIX=$(uniq zp)
P=$SIMCLUSTER_PREFIX
T=$(mktemp -d /tmp/zapc-mpipods.XXXXXX)
on_exit "rm -rf '$T'"
on_exit "$SC down --prefix $P"
. "$ZAPC_SRC/tests/cluster/mpilib.sh"

t_timeout 60 "$SC" up 4 --agents > /dev/null
ok $? "4 nodes with an agent each"

sock() { echo "/run/zapc-simcluster/$P/$P-n$1/agent.sock"; }
PODS=""
fail=0
for i in 1 2 3 4; do
	out=$(t_timeout 20 "$ZBIN/zapc" --socket "$(sock $i)" pod create "rank$i" -- sleep 100000) || fail=1
	ip=$(echo "$out" | sed -n 's/^pod .*: ip \([0-9.]*\),.*/\1/p')
	PODS="$PODS $ip"
done
PODS=${PODS# }
ok $fail "a pod on each node: $PODS"
set -- $PODS
is "$(t_timeout 20 "$SC" locate "$3")" "pod $(sock 3) rank3" "locate finds a pod by its IP through the agents"
node_ns=$(for i in 1 2 3 4; do "$SC" exec "n$i" -- readlink /proc/self/ns/net; done | tr -dc '0-9\n' | sort -u)

# not_in_nodes OUT: no rank ran in a node's own netns (they ran in pods).
not_in_nodes() {
	local ranks
	ranks=$(sed -n 's/^where .* netns=\([0-9]*\) .*/\1/p' "$1" | sort -u)
	[ -z "$(comm -12 <(echo "$ranks") <(echo "$node_ns"))" ]
}

HOSTS="$1:1 $2:1 $3:1 $4:1"
HOPS=4000 SIZE=4096
mpirun "$T/ring1" 1 "$1:1" -- "$M/ring" --hops $HOPS --size $SIZE
ok $? "ring on one rank in a pod (the reference)"
before=$(port_rx_all)
mpirun "$T/ring4" 4 $HOSTS -- "$M/ring" --hops $HOPS --size $SIZE --where
ok $? "ring on 4 ranks in 4 pods on 4 nodes"
after=$(port_rx_all)
is "$(grep '^ring ' "$T/ring4")" "$(grep '^ring ' "$T/ring1")" "ring result equals the one-rank run"
check_where "$T/ring4" 4 4 "$PODS"
not_in_nodes "$T/ring4"
ok $? "ranks ran in the pods' namespaces, not the nodes'"
crossed "$before" "$after" 4 $(( HOPS / 4 * (SIZE + 16) ))
ok $? "every node sent its share of the tokens across the bridge"

ref=$("$M/alltoall" --expect 4 --rounds 50)
mpirun "$T/a2a4" 4 $HOSTS -- "$M/alltoall" --rounds 50 --where
ok $? "alltoall on 4 pods"
is "$(grep '^alltoall ' "$T/a2a4")" "$ref" "alltoall result equals the computed expectation"

mpirun "$T/cpi1" 1 "$2:1" -- "$M/cpi" --rounds 10
mpirun "$T/cpi4" 4 "$1:2" "$2:2" -- "$M/cpi" --rounds 10 --where
ok $? "cpi on 4 ranks, 2 per pod on 2 nodes"
is "$(grep '^cpi ' "$T/cpi4")" "$(grep '^cpi ' "$T/cpi1")" "cpi result equals the one-rank run"
check_where "$T/cpi4" 4 2 "$1 $2"

t_timeout 60 "$SC" down
ok $? "cluster down (agents stop and destroy their pods)"
is "$(ip netns list | awk '{print $1}' | grep -cE "^$P-")" 0 "no netns left"
