#!/bin/bash
# mpi-jobs.t — MPI jobs (ring, alltoall, cpi) run by zapc-manager with the ranks in pods,
# checkpointed at a random moment and restarted on other nodes (another subnet), or
# migrated live; the final result must equal an uninterrupted run.
#
# Hydra's proxies are started in their pods by simcluster-launch with `zapc pod exec
# --detach`: they are processes of the pods (children of the pods' inits) and talk to
# mpiexec (in pod 0) over TCP only, so every pod of the job is checkpointed whole.
. "${ZAPC_SRC:-$(dirname "$0")/../..}/tests/lib.sh"
need_root
command -v mpiexec > /dev/null || skip_all "no mpiexec (MPICH)"
for b in zapc zapc-agent zapc-manager zapc-engine; do
	[ -x "$ZBIN/$b" ] || skip_all "no $b in $ZBIN"
done
M=$ZAPC_BUILD/tests/cluster/mpi
for f in ring alltoall cpi libucxforceclose.so; do
	[ -e "$M/$f" ] || skip_all "no $M/$f (run make)"
done

SC=$ZAPC_SRC/tests/cluster/simcluster
export SIMCLUSTER_PREFIX ZBIN
SIMCLUSTER_PREFIX=$(uniq zm)
P=$SIMCLUSTER_PREFIX
ST=/run/zapc-simcluster/$P
export ZAPC_MANAGER=$ST/manager.sock
T=$(mktemp -d /tmp/zapc-mpijobs.XXXXXX)
on_exit "rm -rf '$T'"
for k in 1 2 3 4 5 6; do on_exit "cgroup_purge zapc-$P-n$k"; done
on_exit "$SC down --prefix $P"
on_exit "sim_logs $ST"
N=$P-n

t_timeout 60 "$SC" up 4 --agents --manager > /dev/null || skip_all "cannot bring up the cluster"

plan 13
t_timeout 60 "$SC" up 2 --agents --tls --subnet 10.79.0.0/24 > /dev/null
ok $? "6 nodes in two subnets, agents and a manager"
. "$ZAPC_SRC/tests/cluster/mpilib.sh"

# mpijob NAME NODES PROG ARGS...: the job's launcher (mpiexec, in pod 0) starts 4 ranks
# over the job's pods (pod IPs in {hosts}).
mpijob() {
	local name=$1 nodes=$2
	shift 2
	t_timeout 60 "$ZBIN/zapc" job run "$name" --nodes "$nodes" --mpi -- \
		env SIMCLUSTER_PREFIX="$P" ZBIN="$ZBIN" PATH=/usr/bin:/bin \
		mpiexec -f {hosts} -n 4 -launcher ssh -launcher-exec "$ZAPC_SRC/tests/cluster/simcluster-launch" \
		-localhost {ip0} -genv UCX_TLS tcp,self -genv UCX_NET_DEVICES eth0 \
		-genv MPIR_CVAR_NOLOCAL 1 -genv LD_PRELOAD "$M/libucxforceclose.so" "$@" > /dev/null
}
# result NAME PREFIX: pod 0's console (on the node the job was started on, n1) gets the line.
result() { wait_for 120 grep -q "^$2 " "$ST/${N}1/$1-0.log" && grep "^$2 " "$ST/${N}1/$1-0.log"; }
pause() { sleep "$(awk -v r=$RANDOM 'BEGIN {printf "%.2f", 0.5 + r / 32768 * 1.5}')"; }

RING="$M/ring --hops 40000 --size 4096"
mpirun "$T/ring.ref" 1 10.77.0.1:1 -- $RING
ref_ring=$(grep '^ring ' "$T/ring.ref")
ref_a2a=$("$M/alltoall" --expect 4 --rounds 4000)
mpirun "$T/cpi.ref" 1 10.77.0.1:1 -- "$M/cpi" --rounds 400
ref_cpi=$(grep '^cpi ' "$T/cpi.ref")

mpijob r0 ${N}1,${N}2 $RING && is "$(result r0 ring)" "$ref_ring" "ring uninterrupted equals the reference"
t_timeout 30 "$ZBIN/zapc" job destroy r0 > /dev/null

mpijob r1 ${N}1,${N}2 $RING; pause
t_timeout 120 "$ZBIN/zapc" job checkpoint r1 -o "$T/r1" > "$T/r1.ck" 2>&1
ok $? "ring checkpointed at a random moment" || sed "s/^/# /" "$T/r1.ck"
t_timeout 120 "$ZBIN/zapc" job restart r1 --from "$T/r1" --nodes ${N}3,${N}5,${N}6 > "$T/r1.rs" 2>&1
ok $? "ring restarted on 3 other nodes (more, another subnet)"
is "$(result r1 ring)" "$ref_ring" "ring result equals the reference"

mpijob a1 ${N}1,${N}2 "$M/alltoall" --rounds 4000; pause
t_timeout 120 "$ZBIN/zapc" job checkpoint a1 -o "$T/a1" > /dev/null 2>&1 &&
	t_timeout 120 "$ZBIN/zapc" job restart a1 --from "$T/a1" --nodes ${N}4 > /dev/null 2>&1
ok $? "alltoall checkpointed, restarted on one node (fewer)"
is "$(result a1 alltoall)" "$ref_a2a" "alltoall result equals the expectation"

mpijob c1 ${N}1,${N}2 "$M/cpi" --rounds 400; pause
t_timeout 120 "$ZBIN/zapc" job checkpoint c1 -o "$T/c1" > /dev/null 2>&1 &&
	t_timeout 120 "$ZBIN/zapc" job restart c1 --from "$T/c1" --nodes ${N}3,${N}4 > /dev/null 2>&1
ok $? "cpi checkpointed, restarted on 2 other nodes"
is "$(result c1 cpi)" "$ref_cpi" "cpi result equals the one-rank run"

mpijob m1 ${N}1,${N}2 $RING; pause
t_timeout 120 "$ZBIN/zapc" job migrate m1 --to ${N}5,${N}6 > "$T/m1.out" 2>&1
ok $? "ring migrated live to the other subnet"
is "$(result m1 ring)" "$ref_ring" "migrated ring result equals the reference"

mpijob m2 ${N}1,${N}2 "$M/alltoall" --rounds 4000; pause
t_timeout 120 "$ZBIN/zapc" job checkpoint m2 -o "$T/m2" --leave-running > /dev/null 2>&1
ok $? "alltoall snapshot while it runs"
is "$(result m2 alltoall)" "$ref_a2a" "the job finishes with the right answer after the snapshot"
