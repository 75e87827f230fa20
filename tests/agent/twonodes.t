#!/bin/sh
# twonodes.t — two nodes (netns + agent each) sharing the pod network with
# disjoint pools: with a route per pool between the nodes, pods reach pods
# of the other node (the node forwards and answers ARP on its bridge), also
# a pod whose IP comes from the other node's pool (as after a migration)
# once a /32 route points to its node.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 7

A=$(uniq ztna) B=$(uniq ztnb)
on_exit "ip netns del $A"
on_exit "ip netns del $B"
ip netns add "$A" && ip netns add "$B" || exit 1
ip link add eth0 netns "$A" type veth peer name eth0 netns "$B" || exit 1
ip -n "$A" addr add 10.77.9.1/24 dev eth0 && ip -n "$A" link set eth0 up && ip -n "$A" link set lo up
ip -n "$B" addr add 10.77.9.2/24 dev eth0 && ip -n "$B" link set eth0 up && ip -n "$B" link set lo up
ip -n "$A" route add 10.200.2.0/24 via 10.77.9.2
ip -n "$B" route add 10.200.1.0/24 via 10.77.9.1

AGENT_NETNS=/run/netns/$A agent_start zna --pod-pool 10.200.1.0/24 || exit 1
SA=$AGENT_SOCK
AGENT_NETNS=/run/netns/$B agent_start znb --pod-pool 10.200.2.0/24 || exit 1
SB=$AGENT_SOCK
ZA="t_timeout 20 $ZBIN/zapc --socket $SA"
ZB="t_timeout 20 $ZBIN/zapc --socket $SB"

$ZA pod create a1 -- sleep 1000 >/dev/null && $ZB pod create b1 -- sleep 1000 >/dev/null
ok $? "one pod on each node"
ipa=$(ZAPC_SOCKET=$SA pod_field a1 ip) ipb=$(ZAPC_SOCKET=$SB pod_field b1 ip)
is "$ipa $ipb" "10.200.1.1 10.200.2.1" "each from its node's pool"
$ZA pod exec a1 -- ping -c1 -W2 "$ipb" >/dev/null
ok $? "pod on node A reaches the pod on node B"
$ZB pod exec b1 -- ping -c1 -W2 "$ipa" >/dev/null
ok $? "and back"
$ZA pod exec a1 -- ip neigh show "$ipb" | grep -q "$(ip -n "$A" -br link show zapcbr0 | awk '{print $3}')"
ok $? "node A answered ARP for the remote pod with its bridge's MAC (proxy ARP)"

# A pod with an address of A's pool living on B (as after a migration).
$ZB pod create moved --ip 10.200.1.77 -- sleep 1000 >/dev/null
ip -n "$A" route add 10.200.1.77/32 via 10.77.9.2
$ZA pod exec a1 -- ping -c1 -W2 10.200.1.77 >/dev/null
ok $? "a pod of A's pool on node B is reached from A via a /32 route"
$ZB pod exec b1 -- ping -c1 -W2 10.200.1.77 >/dev/null
ok $? "and from its neighbour on B directly"
