#!/bin/bash
# faults.t — failures in every phase of a coordinated operation (docs/manager-protocol.md §7).
# The manager's fault points ($ZAPC_MANAGER_FAULT_FILE: "OP PHASE COMMAND") kill an agent
# (or the manager) exactly when an operation reaches a phase.  A checkpoint that fails
# must leave every pod of the job running as before, and say which node failed; a restart
# that fails must leave nothing running, and the images must still be good.
. "${ZAPC_SRC:-$(dirname "$0")/../..}/tests/lib.sh"
need_root
for b in zapc zapc-agent zapc-manager zapc-engine; do
	[ -x "$ZBIN/$b" ] || skip_all "no $b in $ZBIN"
done
plan 26

SC=$ZAPC_SRC/tests/cluster/simcluster
export SIMCLUSTER_PREFIX ZBIN
SIMCLUSTER_PREFIX=$(uniq zf)
P=$SIMCLUSTER_PREFIX
ST=/run/zapc-simcluster/$P
export ZAPC_MANAGER=$ST/manager.sock
T=$(mktemp -d /tmp/zapc-faults.XXXXXX)
export ZAPC_MANAGER_FAULT_FILE=$T/fault
# A short phase timeout: a dead peer is noticed by its connection anyway.
export SIMCLUSTER_MANAGER_ARGS="--timeout 10000"
on_exit "rm -rf '$T'"
for k in 1 2 3 4 5 6; do on_exit "cgroup_purge zapc-$P-n$k"; done
on_exit "$SC down --prefix $P"
on_exit "sim_logs $ST"

t_timeout 60 "$SC" up 6 --agents --manager > /dev/null
ok $? "6 nodes with agents and a manager"
N=$P-n
job() { t_timeout 120 "$ZBIN/zapc" job "$@"; }
apid() { cat "$ST/${N}$1/agent.pid"; }
# kill9 PID: a command for the fault file that returns once PID is gone (not even a zombie).
kill9() { echo "kill -9 $1; for i in \$(seq 100); do grep -q '^State:.*[ZX]' /proc/$1/status 2>/dev/null || [ ! -e /proc/$1 ] && break; sleep 0.02; done"; }
COUNTER='i=0; while :; do echo "{pod} $i"; i=$((i+1)); sleep 0.05; done'

# grows FILE...: the last number of every file moves within 5 s.
grows() {
	local f before
	for f in "$@"; do
		before=$(tail -n 1 "$f" | awk '{print $2 + 0}')
		wait_for 5 sh -c "[ \"\$(tail -n 1 '$f' | awk '{print \$2 + 0}')\" -gt '$before' ]" ||
			{ diag "$f stuck at $before"; return 1; }
	done
}

# checkpoint_fault JOB NODE_A NODE_B PHASE VICTIM-COMMAND WHO [--leave-running]
checkpoint_fault() {
	local j=$1 a=$2 b=$3 phase=$4 cmd=$5 who=$6 mode=${7:-}
	job run "$j" --nodes "${N}$a,${N}$b" -- sh -c "$COUNTER" > "$T/$j.run" 2>&1 ||
		{ diag "job run $j: $(cat "$T/$j.run")"; return 1; }
	wait_for 10 test -s "$ST/${N}$b/$j-1.log" || { diag "job $j: no output in 10 s"; return 1; }
	echo "checkpoint $phase $cmd" > "$ZAPC_MANAGER_FAULT_FILE"
	job checkpoint "$j" -o "$T/$j" $mode > "$T/$j.out" 2>&1
	FAIL_RC=$?
	rm -f "$ZAPC_MANAGER_FAULT_FILE"
	FAIL_MSG=$(grep '^zapc:' "$T/$j.out")
	diag "$phase: $FAIL_MSG"
	[ "$FAIL_RC" != 0 ] && echo "$FAIL_MSG" | grep -q "$who"
}

checkpoint_fault fa 1 2 sent "$(kill9 $(apid 2))" "${N}2: connection lost"
ok $? "agent killed right after the checkpoint was sent: fails, names ${N}2"
grows "$ST/${N}1/fa-0.log" "$ST/${N}2/fa-1.log"
ok $? "both pods run on (also the one whose agent died)"
is "$(job list | awk '$1 == "fa" {print $2}')" running "job still running"

checkpoint_fault fb 1 3 captured "$(kill9 $(apid 3))" "${N}3: connection lost"
ok $? "agent killed at the sync point: fails, names ${N}3"
grows "$ST/${N}1/fb-0.log" "$ST/${N}3/fb-1.log"
ok $? "both pods resumed"

checkpoint_fault fc 1 4 written "$(kill9 $(apid 4))" "${N}4: connection lost"
ok $? "agent killed after the images were written, before the pods end: fails, names ${N}4"
grows "$ST/${N}1/fc-0.log" "$ST/${N}4/fc-1.log"
ok $? "both pods resumed instead of ending"
is "$(job list | awk '$1 == "fc" {print $2}')" running "job fc still running"

# The manager dies at the sync point: the agents abort on their own.
checkpoint_fault fe 1 5 captured "kill -9 \$(cat $ST/manager/manager.pid)" "zapc-manager"
ok $? "manager killed at the sync point: the command fails"
grows "$ST/${N}1/fe-0.log" "$ST/${N}5/fe-1.log"
ok $? "both pods resumed without the manager"
t_timeout 30 "$SC" manager
ok $? "manager restarted"
is "$(job list | awk '$1 == "fe" {print $2}')" running "the restarted manager knows the job (state file)"
job checkpoint fe -o "$T/fe-ok" --leave-running > /dev/null 2>&1
ok $? "and can checkpoint it"

# --- restart ---------------------------------------------------------------------------------
job run fd --nodes ${N}1 --pods-per-node 2 -- sh -c "$COUNTER" > /dev/null 2>&1 &&
	wait_for 5 test -s "$ST/${N}1/fd-1.log" &&
	job checkpoint fd -o "$T/fd" > /dev/null 2>&1
ok $? "job fd checkpointed (2 pods)"
echo "restart restored $(kill9 $(apid 6))" > "$ZAPC_MANAGER_FAULT_FILE"
job restart fd --from "$T/fd" --nodes ${N}5,${N}6 > "$T/fd-r1.out" 2>&1
rc=$?
rm -f "$ZAPC_MANAGER_FAULT_FILE"
msg=$(grep '^zapc:' "$T/fd-r1.out")
diag "restart: $msg"
[ $rc != 0 ] && echo "$msg" | grep -q "${N}6"
ok $? "agent killed with every pod restored (frozen): restart fails, names ${N}6"
is "$("$ZBIN/zapc" --socket "$ST/${N}5/agent.sock" pod list | grep -c '^fd-')" 0 "nothing left on ${N}5"
procs=$(cat /sys/fs/cgroup/unified/zapc-$P-n6/fd-*/cgroup.procs 2>/dev/null | wc -l)
is "$procs" 0 "no process left on ${N}6"
before=$(tail -n 1 "$ST/${N}1/fd-0.log")
sleep 0.3
is "$(tail -n 1 "$ST/${N}1/fd-0.log")" "$before" "the job did not run"

echo "restart sent $(kill9 $(apid 5))" > "$ZAPC_MANAGER_FAULT_FILE"
job restart fd --from "$T/fd" --nodes ${N}1,${N}5 > "$T/fd-r2.out" 2>&1
rc=$?
rm -f "$ZAPC_MANAGER_FAULT_FILE"
[ $rc != 0 ] && grep -q "^zapc:.*${N}5" "$T/fd-r2.out"
ok $? "agent killed while restoring: restart fails, names ${N}5"
is "$("$ZBIN/zapc" --socket "$ST/${N}1/agent.sock" pod list | grep -c '^fd-')" 0 "nothing left on ${N}1"

job restart fd --from "$T/fd" --nodes ${N}1 > "$T/fd-r3.out" 2>&1
ok $? "the same images restart fine afterwards"
grows "$ST/${N}1/fd-0.log" "$ST/${N}1/fd-1.log"
ok $? "and the job counts on"
awk '$2 != NR - 1 {bad = 1} END {exit bad}' "$ST/${N}1/fd-0.log"
ok $? "with no gap and no repeat"

# --- a checkpoint error inside one pod (no image directory there) aborts all -------------------
job run fg --nodes ${N}1 --pods-per-node 2 -- sh -c "$COUNTER" > /dev/null 2>&1
mkdir -p "$T/fg"
touch "$T/fg/${N}1"	# a file where the node's image directory must go
job checkpoint fg -o "$T/fg" > "$T/fg.out" 2>&1
rc=$?
[ $rc != 0 ] && grep -q "^zapc:.*${N}1" "$T/fg.out"
ok $? "an image that cannot be written fails the checkpoint and names the node"
grows "$ST/${N}1/fg-0.log" "$ST/${N}1/fg-1.log"
ok $? "both pods run on"
