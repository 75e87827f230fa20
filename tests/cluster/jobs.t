#!/bin/bash
# jobs.t — zapc-manager end to end on a simulated cluster (docs/manager-protocol.md):
# a job of counter pods (each prints "POD N" every 50 ms to its console) spread over
# nodes; coordinated snapshot and checkpoint, restart on more nodes in two subnets,
# on fewer nodes, live migration agent to agent; every pod's output goes on with no
# gap and no repeat, and the pods reach each other at their virtual IPs after moving.
. "${ZAPC_SRC:-$(dirname "$0")/../..}/tests/lib.sh"
need_root
for b in zapc zapc-agent zapc-manager zapc-engine; do
	[ -x "$ZBIN/$b" ] || skip_all "no $b in $ZBIN"
done
plan 35

SC=$ZAPC_SRC/tests/cluster/simcluster
export SIMCLUSTER_PREFIX ZBIN
SIMCLUSTER_PREFIX=$(uniq zj)
P=$SIMCLUSTER_PREFIX
ST=/run/zapc-simcluster/$P
export ZAPC_MANAGER=$ST/manager.sock
T=$(mktemp -d /tmp/zapc-jobs.XXXXXX)
on_exit "rm -rf '$T'"
for k in 1 2 3 4 5 6; do on_exit "cgroup_purge zapc-$P-n$k"; done
on_exit "$SC down --prefix $P"
on_exit "sim_logs $ST"

# the manager's timeline (its log) shows which agent reported what, and when
ZAPC_MANAGER_TIMING=1 t_timeout 60 "$SC" up 4 --agents --manager > /dev/null
ok $? "4 nodes with agents (TLS) and a manager"
t_timeout 60 "$SC" up 2 --agents --tls --subnet 10.79.0.0/24 > /dev/null
ok $? "2 more nodes in another subnet"

job() { t_timeout 120 "$ZBIN/zapc" job "$@"; }
N=$P-n

# The counter: one line per 50 ms, numbered from 0.
job run cnt --nodes ${N}1,${N}2 --pods-per-node 2 -- \
	sh -c 'i=0; while :; do echo "{pod} $i"; i=$((i+1)); sleep 0.05; done' > "$T/run" 2>&1
ok $? "job run: 4 pods on 2 nodes"
is "$(grep -c '^pod cnt-' "$T/run")" 4 "four pods with their IPs"
PODS="cnt-0 cnt-1 cnt-2 cnt-3"
# Consoles stay where the pod was created (restored processes keep their files).
console() { case $1 in cnt-0|cnt-1) echo "$ST/${N}1/$1.log" ;; *) echo "$ST/${N}2/$1.log" ;; esac; }
last() { tail -n 1 "$(console "$1")" 2>/dev/null | awk '{print $2 + 0}'; }
# all_grow: every pod's counter moves within 5 s.
all_grow() {
	local p before
	for p in $PODS; do
		before=$(last "$p")
		wait_for 5 sh -c "[ \"\$(tail -n 1 '$(console "$p")' | awk '{print \$2 + 0}')\" -gt '${before:-0}' ]" ||
			{ diag "$p stuck at $before"; return 1; }
	done
}
# contiguous: each console is POD 0, POD 1, ... with no gap and no repeat.
contiguous() {
	local p
	for p in $PODS; do
		awk -v p="$p" '$1 != p || $2 != NR - 1 {print "line " NR ": " $0; bad = 1; exit} END {exit bad}' \
			"$(console "$p")" || { diag "$p: not contiguous"; return 1; }
	done
}
all_grow
ok $? "every pod counts"

job list > "$T/list"
grep -q '^cnt  *running  *4 ' "$T/list"
ok $? "job list shows the job running with 4 pods"

# --- snapshot: the job goes on --------------------------------------------------------------
job checkpoint cnt -o "$T/snap" --leave-running > "$T/snap.out" 2>&1
ok $? "snapshot of the job (--leave-running)"
grep -q 'the sync point' "$T/snap.out"
ok $? "the output shows the sync point"
# "pods resumed" is printed once both agents reported their pods running
# again (the manager's log has their reports), not when the manager sent Go
awk '/the sync point/ { s = NR } /pods resumed/ { r = NR } /done:/ { d = NR }
	END { exit !(s && r > s && d > r) }' "$T/snap.out"
ok $? "the output says the pods resumed, between the sync point and the end"
is "$(grep -c "TIMING manager .* ${N}[12] reached resumed" "$ST/manager/manager.log")" 2 \
	"both nodes reported their pods resumed to the manager"
n=$(ls "$T"/snap/*/*/image.zapc 2>/dev/null | wc -l)
is "$n" 4 "one image per pod under DIR/NODE/POD/"
all_grow
ok $? "pods run on after the snapshot"

# --- checkpoint, restart on 3 other nodes (more nodes, two subnets) ---------------------------
job checkpoint cnt -o "$T/ck1" > "$T/ck1.out" 2>&1
ok $? "checkpoint of the job"
is "$(job list | awk '$1 == "cnt" {print $2}')" checkpointed "job is checkpointed"
left=$(for k in 1 2; do "$ZBIN/zapc" --socket "$ST/${N}$k/agent.sock" pod list | grep -c '^cnt-'; done | paste -sd+ | bc)
is "$left" 0 "its pods are gone from the nodes"
before=$(last cnt-2)
sleep 0.3
is "$(last cnt-2)" "$before" "counters stopped"

job restart cnt --from "$T/ck1" --nodes ${N}3,${N}5,${N}6 > "$T/rs1.out" 2>&1
ok $? "restart on 3 other nodes (2 of them in the other subnet)"
job status cnt > "$T/st1"
is "$(awk '$1 ~ /^cnt-/ {print $3}' "$T/st1" | sort -u | tr '\n' ' ')" "${N}3 ${N}5 ${N}6 " "pods placed on n3, n5, n6"
all_grow
ok $? "every pod counts again"
contiguous
ok $? "every console goes on with no gap and no repeat"

# The pods reach each other at their virtual IPs on their new nodes (routes by the hook).
ip3=$(awk '$1 == "cnt-3" {print $2}' "$T/st1")
node0=$(awk '$1 == "cnt-0" {print $3}' "$T/st1")
t_timeout 10 "$ZBIN/zapc" --socket "$ST/$node0/agent.sock" pod exec cnt-0 -- ping -c 1 -W 2 "$ip3" > /dev/null 2>&1
ok $? "cnt-0 on $node0 pings cnt-3 at $ip3 across subnets"

# --- fewer nodes: all four pods on one node ----------------------------------------------
job checkpoint cnt -o "$T/ck2" > /dev/null 2>&1 &&
	job restart cnt --from "$T/ck2" --nodes ${N}2 > "$T/rs2.out" 2>&1
ok $? "checkpoint, restart on a single node"
all_grow
ok $? "every pod counts on one node"
contiguous
ok $? "no gap, no repeat"

# --- live migration, agent to agent -------------------------------------------------------
job migrate cnt --to ${N}4,${N}1 > "$T/mig.out" 2>&1
ok $? "migrate to n4 and n1" || sed 's/^/# /' "$T/mig.out"
grep -q 'MiB streamed at' "$T/mig.out"
ok $? "migration reports bytes and rate"
is "$(job status cnt | awk '$1 ~ /^cnt-/ {print $3}' | sort -u | tr '\n' ' ')" "${N}1 ${N}4 " "pods now on n1 and n4"
is "$("$ZBIN/zapc" --socket "$ST/${N}2/agent.sock" pod list | grep -c '^cnt-')" 0 "no copy left on the source node"
all_grow
ok $? "every pod counts after the migration"
contiguous
ok $? "no gap, no repeat"
[ -z "$(find "$T" -newer "$T/rs2.out" -name '*.zapc')" ]
ok $? "no image written to disk during the migration"

# Each node both gives and receives pods.
job migrate cnt --to ${N}1,${N}4 > "$T/swap.out" 2>&1
ok $? "swap migration: n4's pods to n1 and n1's to n4 at once" || sed 's/^/# /' "$T/swap.out"
all_grow && contiguous
ok $? "every pod counts on, no gap, no repeat"

job destroy cnt > /dev/null
ok $? "job destroy"
left=$(for k in 1 2 3 4 5 6; do "$ZBIN/zapc" --socket "$ST/${N}$k/agent.sock" pod list | grep -c '^cnt-'; done | paste -sd+ | bc)
is "$left" 0 "no pod left on any node"
