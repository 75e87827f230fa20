#!/bin/sh
# states.t — every socket state netstate saves, checked from the application's
# side after restore (and after an aborted checkpoint): queues and options of
# established TCP (IPv4/IPv6), CLOSE_WAIT, FIN_WAIT1/2, LAST_ACK, urgent data,
# listeners, SYN_SENT (completes, or fails with ECONNREFUSED), UDP queues with
# source addresses (IPv4/IPv6, bound and connected).  The TAP lines come from
# the ns_states program; this script builds the network and checks cleanup.
. "${ZAPC_SRC:-.}/tests/lib.sh"
. "$ZAPC_SRC/tests/netstate/pod.sh"
need_root

P=$(uniq nst)
on_exit "pod_net_down $P"
pod_net_up $P >/dev/null 2>&1 || { echo "1..0 # SKIP could not build the test network"; _t_planned=0; exit 0; }

# ns_states prints its own plan and results; the rules check runs after it.
t_timeout 240 $ZBIN/ns_states $NS_POD $NS_PEER $POD_IP $PEER_IP $POD_IP6 $PEER_IP6 > $ZAPC_BUILD/ns_states.$$.out 2>&1
rc=$?
grep -v '^1\.\.' $ZAPC_BUILD/ns_states.$$.out
n=$(grep -c '^\(not \)\?ok ' $ZAPC_BUILD/ns_states.$$.out)
rm -f $ZAPC_BUILD/ns_states.$$.out
_t_n=$n
[ $rc = 0 ] || _t_failed=1
left=$(ip netns exec $NS_POD nft list tables ip 2>/dev/null | grep -c zapc_hold)
left6=$(ip netns exec $NS_POD nft list tables ip6 2>/dev/null | grep -c zapc_hold)
is "$left/$left6" "0/0" "no hold rule is left in the pod's netns"
[ "$n" -ge 50 ]
ok $? "ns_states ran all its checks ($n)"
