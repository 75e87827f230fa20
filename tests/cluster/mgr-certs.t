#!/bin/bash
# mgr-certs.t — the manager protocol accepts only the cluster CA's manager: a manager with
# a certificate from another CA, or from the right CA under another name, is refused by the
# agent; an "agent" whose certificate is not from the cluster CA is refused by the manager.
. "${ZAPC_SRC:-$(dirname "$0")/../..}/tests/lib.sh"
need_root
for b in zapc zapc-agent zapc-manager; do
	[ -x "$ZBIN/$b" ] || skip_all "no $b in $ZBIN"
done
command -v openssl > /dev/null || skip_all "no openssl"
plan 8

SC=$ZAPC_SRC/tests/cluster/simcluster
export SIMCLUSTER_PREFIX ZBIN
SIMCLUSTER_PREFIX=$(uniq zc)
P=$SIMCLUSTER_PREFIX
ST=/run/zapc-simcluster/$P
T=$(mktemp -d /tmp/zapc-mcerts.XXXXXX)
on_exit "rm -rf '$T'"
on_exit "cgroup_purge zapc-$P-n1"
on_exit "$SC down --prefix $P"

t_timeout 60 "$SC" up 1 --agents --tls > /dev/null
ok $? "a node whose agent serves the manager protocol"
Z=$ZBIN/zapc
"$Z" ca init "$T/rogue-ca" > /dev/null &&
	"$Z" ca issue manager --ca "$T/rogue-ca" -o "$T/rogue-mgr" > /dev/null &&
	"$Z" ca issue intruder --ca "$ST/ca" -o "$T/intruder" > /dev/null &&
	"$Z" ca issue manager --ca "$ST/ca" -o "$T/good" > /dev/null &&
	"$Z" ca issue "$P-n1" --ca "$T/rogue-ca" -o "$T/rogue-node" --ip 10.77.0.1 > /dev/null
ok $? "certificates: a rogue CA's manager, an intruder from the cluster CA, a good manager"

# manager TLS-DIR NODES-FILE NAME: start a manager in the switch netns; sets MSOCK.
manager() {
	MSOCK=$T/$3.sock
	setsid nsenter --net="/run/netns/$P-sw" -- "$ZBIN/zapc-manager" --tls-dir "$1" \
		--nodes-file "$2" --socket "$MSOCK" --state-dir "$T/$3.state" --timeout 5000 \
		> "$T/$3.log" 2>&1 < /dev/null &
	on_exit "kill $!"
	wait_for 10 test -S "$MSOCK"
}
run_job() { t_timeout 30 "$Z" job --manager "$MSOCK" run c1 --nodes "$P-n1" -- sleep 1000 2>&1; }

manager "$T/rogue-mgr" "$ST/manager-nodes" rogue
out=$(run_job)
diag "$out"
echo "$out" | grep -q "not signed by cluster CA"
ok $? "a manager from another CA gets nowhere (it does not trust the cluster's agents either)"
# A client that trusts the cluster CA but presents the rogue CA's manager certificate:
# the agent itself must refuse it.
echo | t_timeout 10 nsenter --net="/run/netns/$P-sw" -- openssl s_client -quiet -connect 10.77.0.1:7470 \
	-cert "$T/rogue-mgr/node.crt" -key "$T/rogue-mgr/node.key" -CAfile "$ST/ca/ca.crt" \
	> "$T/sclient.out" 2>&1
wait_for 5 grep -q "not signed by cluster CA" "$ST/$P-n1/agent.log"
ok $? "the agent refuses a client certificate from another CA (its log says so)"

manager "$T/intruder" "$ST/manager-nodes" intruder
out=$(run_job)
diag "$out"
echo "$out" | grep -q "refused: 'intruder' is not this agent's manager"
ok $? "a cluster certificate with another name is refused as manager"

# An impostor at the node's address with a certificate from another CA.
echo "$P-n1 10.77.0.1:7479" > "$T/imp-nodes"
setsid nsenter --net="/run/netns/$P-n1" -- openssl s_server -quiet -accept 10.77.0.1:7479 \
	-cert "$T/rogue-node/node.crt" -key "$T/rogue-node/node.key" -tls1_3 \
	> /dev/null 2>&1 < /dev/null &
on_exit "kill $!"
sleep 0.5
manager "$T/good" "$T/imp-nodes" impostor
out=$(run_job)
diag "$out"
echo "$out" | grep -q "not signed by cluster CA"
ok $? "the manager refuses an agent whose certificate is not from the cluster CA"

manager "$T/good" "$ST/manager-nodes" good
out=$(run_job)
ok $? "the cluster's manager is accepted (job run)"
t_timeout 30 "$Z" job --manager "$MSOCK" destroy c1 > /dev/null
ok $? "job destroyed"
