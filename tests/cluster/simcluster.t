#!/bin/bash
# simcluster.t — the simulated cluster: nodes reach each other over the bridge, a second
# subnet on the same switch is routed, two clusters side by side are isolated, and `down`
# removes everything (also the processes started in it, also after a failed `up`).
. "${ZAPC_SRC:-$(dirname "$0")/../..}/tests/lib.sh"
need_root
command -v nsenter >/dev/null || skip_all "no nsenter"
plan 37

SC=$ZAPC_SRC/tests/cluster/simcluster
P=$(uniq za)
Q=$(uniq zb)
R=$(uniq zc)
on_exit "$SC down --prefix $P"
on_exit "$SC down --prefix $Q"
on_exit "$SC down --prefix $R; ip netns del $R-n3"
S=$(uniq zd)
on_exit "$SC down --prefix $S"

left() { ip netns list | awk '{print $1}' | grep -E "^$1-(sw|n[0-9]+)\$"; }
ping1() { t_timeout 10 "$SC" exec "$1" --prefix "$2" -- ping -c 1 -W 2 "$3" > /dev/null 2>&1; }

out=$(t_timeout 30 "$SC" up 4 --prefix "$P" 2>&1)
ok $? "up 4"
is "$(echo "$out" | awk '{print $2}' | tr '\n' ' ')" "10.77.0.1/24 10.77.0.2/24 10.77.0.3/24 10.77.0.4/24 " \
	"nodes get .1 … .4 of the default subnet"
is "$(t_timeout 10 "$SC" status --prefix "$P" | grep -c ' UP ')" 4 "status: 4 nodes with eth0 up"
ping1 n1 "$P" 10.77.0.4
ok $? "n1 reaches n4 over the bridge"
is "$(t_timeout 10 "$SC" resolve 10.77.0.3 --prefix "$P")" "$P-n3" "resolve by address"
is "$(t_timeout 10 "$SC" resolve n2 --prefix "$P")" "$P-n2" "resolve by short name"
t_timeout 10 "$SC" resolve 10.77.0.9 --prefix "$P" > /dev/null 2>&1
st=$?
ok $((st == 0)) "resolve of an unknown host fails"

# A second subnet on the same switch.
out=$(t_timeout 30 "$SC" up 2 --prefix "$P" --subnet 10.78.0.0/24 2>&1)
ok $? "up 2 more nodes in 10.78.0.0/24"
is "$(echo "$out" | tr '\n' ' ')" "$P-n5 10.78.0.1/24 $P-n6 10.78.0.2/24 " "numbering continues, addresses from the new subnet"
ping1 n1 "$P" 10.78.0.2
ok $? "n1 (10.77.0.0/24) reaches n6 (10.78.0.0/24)"
t_timeout 10 "$SC" exec n1 --prefix "$P" -- ip route get 10.78.0.2 | grep -q "via 10.77.0.254"
ok $? "... routed through the switch's gateway"

# A second cluster with the same subnet is a separate network.
t_timeout 30 "$SC" up 2 --prefix "$Q" > /dev/null 2>&1
ok $? "second cluster up side by side"
ping1 n1 "$Q" 10.77.0.2
ok $? "its n1 reaches its own n2"
ping1 n1 "$Q" 10.77.0.4
st=$?
ok $((st == 0)) "but not 10.77.0.4, which exists only in the first cluster"

# down removes everything, including processes started inside a node.
"$SC" exec n2 --prefix "$P" -- sleep 300 &
sleeper=$!
wait_for 5 sh -c "ip netns pids $P-n2 | grep -q ."
t_timeout 30 "$SC" down --prefix "$P"
ok $? "down"
is "$(left "$P")" "" "no netns of the first cluster left"
kill -0 "$sleeper" 2>/dev/null
st=$?
ok $((st == 0)) "the process started in a node is gone"
ok $([ ! -e "/run/zapc-simcluster/$P" ]; echo $?) "state directory removed"
ping1 n1 "$Q" 10.77.0.2
ok $? "the other cluster still works"

# A failed up (a node netns is in the way) is cleaned up by down.
ip netns add "$R-n3"
t_timeout 30 "$SC" up 4 --prefix "$R" > /dev/null 2>&1
st=$?
ok $((st == 0)) "up fails when a node namespace already exists"
t_timeout 30 "$SC" down --prefix "$R"
ok $? "down after the failed up"
is "$(left "$R")" "" "nothing of the failed cluster left"

# --agents: one real zapc-agent per node, each in its node's netns.
t_timeout 30 "$SC" up 2 --prefix "$S" --agents > /dev/null
ok $? "up --agents starts an agent per node and waits for its socket"
is "$(t_timeout 10 "$SC" status --prefix "$S" | grep -c ' pid ')" 2 "status shows both agents running"
n2ns=$(t_timeout 10 "$SC" exec n2 --prefix "$S" -- readlink /proc/self/ns/net)
is "$(readlink "/proc/$(cat "/run/zapc-simcluster/$S/$S-n2/agent.pid")/ns/net")" "$n2ns" \
	"n2's agent runs in n2's netns"
is "$("$SC" exec n1 --prefix "$S" -- cat /proc/sys/net/ipv4/conf/zapcbr0/proxy_arp)" 1 \
	"the agent turned on proxy ARP on its pod bridge (pods ARP for pods on other nodes)"
# A pod with an address from n1's pool (10.200.1.0/24) lives on n2, as after a migration.
ZAPC_SOCKET="/run/zapc-simcluster/$S/$S-n2/agent.sock" t_timeout 20 "$ZBIN/zapc" \
	pod create moved --ip 10.200.1.5 -- sleep 1000 > /dev/null
ok $? "a pod with an address of n1's pool created on n2"
ping1 n1 "$S" 10.200.1.5
st=$?
ok $((st == 0)) "before 'route', n1 looks for its pool's address on its own bridge"
t_timeout 10 "$SC" route 10.200.1.5 n2 --prefix "$S"
ok $? "route 10.200.1.5 n2"
ping1 n1 "$S" 10.200.1.5
ok $? "now n1 reaches the moved pod on n2 through the switch"
t_timeout 10 "$SC" unroute 10.200.1.5 --prefix "$S"
ping1 n1 "$S" 10.200.1.5
st=$?
ok $((st == 0)) "unroute takes it back"
# The one-process hook (zapc-simroute) sets exactly the routes of the shell version.
routes() { for ns in "$S-sw" "$S-n1" "$S-n2"; do echo "$ns"; ip -n "$ns" route show | grep '^10\.200\.9\.'; done; }
ZBIN= t_timeout 10 "$SC" route 10.200.9.1 n2 10.200.9.2 n1 --prefix "$S" && sh_routes=$(routes) &&
	ZBIN= t_timeout 10 "$SC" unroute 10.200.9.1 --prefix "$S" && ZBIN= t_timeout 10 "$SC" unroute 10.200.9.2 --prefix "$S"
ok $? "shell route/unroute (ZBIN unset)"
is "$(echo "$sh_routes" | grep -c '^10')" 6 "... 2 routes in each of the 3 namespaces"
t_timeout 10 "$SC" route 10.200.9.1 n2 10.200.9.2 n1 --prefix "$S"
c_routes=$(routes)
is "$c_routes" "$sh_routes" "zapc-simroute sets the same routes as the shell version"
t_timeout 10 "$SC" unroute 10.200.9.1 --prefix "$S" && t_timeout 10 "$SC" unroute 10.200.9.2 --prefix "$S"
is "$(routes | grep -c '^10')" 0 "zapc-simroute's unroute removes them all"
apid=$(cat "/run/zapc-simcluster/$S/$S-n1/agent.pid")
t_timeout 30 "$SC" down --prefix "$S"
ok $? "down with agents"
state=$(sed 's/.*) //' "/proc/$apid/stat" 2>/dev/null | cut -d' ' -f1)
ok $([ -z "$state" ] || [ "$state" = Z ]; echo $?) "agent stopped"
