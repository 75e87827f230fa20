#!/bin/bash
# mpi.t — MPI jobs across a 4-node simulated cluster, started by hydra through
# simcluster-launch.  Each program's result line must equal an independent reference
# (a one-rank run, or alltoall's communication-free --expect), the ranks must really run
# in different node namespaces, and their traffic must really cross the bridge (byte
# counters of each node's switch port).  Everything is removed at the end.
. "${ZAPC_SRC:-$(dirname "$0")/../..}/tests/lib.sh"
need_root
command -v mpiexec >/dev/null || skip_all "no mpiexec (MPICH)"
M=$ZAPC_BUILD/tests/cluster/mpi
for f in ring alltoall cpi libucxforceclose.so; do
	[ -e "$M/$f" ] || skip_all "no $M/$f (run make)"
done
plan 24

SC=$ZAPC_SRC/tests/cluster/simcluster
export SIMCLUSTER_PREFIX
SIMCLUSTER_PREFIX=$(uniq zm)
P=$SIMCLUSTER_PREFIX
T=$(mktemp -d /tmp/zapc-mpi.XXXXXX)
on_exit "rm -rf '$T'"
on_exit "$SC down --prefix $P"

t_timeout 30 "$SC" up 4 > /dev/null
ok $? "4-node cluster up"
. "$ZAPC_SRC/tests/cluster/mpilib.sh"
NODES="10.77.0.1 10.77.0.2 10.77.0.3 10.77.0.4"

# --- ring: 4 ranks, one per node ------------------------------------------------------------
HOPS=8000 SIZE=4096
mpirun "$T/ring1" 1 10.77.0.1:1 -- "$M/ring" --hops $HOPS --size $SIZE
ok $? "ring on one rank (the reference)"
before=$(port_rx_all)
mpirun "$T/ring4" 4 10.77.0.1:1 10.77.0.2:1 10.77.0.3:1 10.77.0.4:1 -- "$M/ring" --hops $HOPS --size $SIZE --where
ok $? "ring on 4 ranks over 4 nodes"
after=$(port_rx_all)
ref=$(grep '^ring ' "$T/ring1")
is "$(grep '^ring ' "$T/ring4")" "$ref" "ring result equals the one-rank run ($ref)"
check_where "$T/ring4" 4 4 "$NODES"
# Each node forwards HOPS/4 tokens of SIZE+16 bytes to the next node.
crossed "$before" "$after" 4 $(( HOPS / 4 * (SIZE + 16) ))
ok $? "every node sent its share of the tokens across the bridge"

# --- alltoall: 4 ranks, one per node -------------------------------------------------------
ROUNDS=100 BLOCK=16384
ref=$("$M/alltoall" --expect 4 --rounds $ROUNDS --block $BLOCK)
before=$(port_rx_all)
mpirun "$T/a2a4" 4 10.77.0.1:1 10.77.0.2:1 10.77.0.3:1 10.77.0.4:1 -- "$M/alltoall" --rounds $ROUNDS --block $BLOCK --where
ok $? "alltoall on 4 ranks over 4 nodes"
after=$(port_rx_all)
is "$(grep '^alltoall ' "$T/a2a4")" "$ref" "alltoall result equals the computed expectation ($ref)"
check_where "$T/a2a4" 4 4 "$NODES"
crossed "$before" "$after" 4 $(( ROUNDS * BLOCK * 3 ))
ok $? "every node sent its blocks to the 3 others across the bridge"

# --- cpi: 4 ranks, two per node on two nodes ---------------------------------------------
mpirun "$T/cpi1" 1 10.77.0.3:1 -- "$M/cpi" --rounds 20
ok $? "cpi on one rank (the reference)"
before=$(port_rx_all)
mpirun "$T/cpi4" 4 10.77.0.1:2 10.77.0.2:2 -- "$M/cpi" --rounds 20 --where
ok $? "cpi on 4 ranks, 2 per node on 2 nodes"
after=$(port_rx_all)
ref=$(grep '^cpi ' "$T/cpi1")
is "$(grep '^cpi ' "$T/cpi4")" "$ref" "cpi result equals the one-rank run"
pi=$(sed -n 's/^cpi .* pi=\([0-9.]*\) .*/\1/p' "$T/cpi4")
awk -v p="$pi" 'BEGIN { d = p - 3.14159265358979; exit !(d < 1e-9 && d > -1e-9) }'
ok $? "and pi=$pi is within 1e-9 of the closed form"
check_where "$T/cpi4" 4 2 "10.77.0.1 10.77.0.2"
crossed "$before" "$after" 2 $(( 20 * 1024 ))
ok $? "both nodes exchanged the block sums across the bridge"

# --- nothing left ----------------------------------------------------------------------------
t_timeout 30 "$SC" down
ok $? "cluster down"
is "$(ip netns list | awk '{print $1}' | grep -cE "^$P-")" 0 "no netns left"
