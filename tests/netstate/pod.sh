# tests/netstate/pod.sh — a tiny simulated network for the netstate tests (source it).
#
# pod_net_up PREFIX: netns ${PREFIX}s (switch, bridge br0), ${PREFIX}p (peer,
# 10.99.0.2 and fd99::2 on eth0), ${PREFIX}a (pod, 10.99.0.1 and fd99::1, fixed
# MAC).  Writes the helper ${POD_HELPER} used by ns_stream for migrations:
#   helper link NS   — give NS the pod's link (same MAC/IP) on the switch
#   helper unlink NS — remove the pod's link from NS
# Everything is registered with on_exit.
POD_IP=10.99.0.1
PEER_IP=10.99.0.2
POD_IP6=fd99::1
PEER_IP6=fd99::2
POD_MAC=02:99:00:00:00:01

pod_net_up() {
	P=$1
	NS_SW=${P}s NS_PEER=${P}p NS_POD=${P}a
	POD_HELPER=$(mktemp /tmp/${P}-helper.XXXXXX)
	on_exit "rm -f $POD_HELPER"
	cat > "$POD_HELPER" <<EOS
#!/bin/sh
set -e
case "\$1" in
link)
	ip link add vpod netns $NS_SW type veth peer name eth0 netns "\$2"
	ip -n "\$2" link set eth0 address $POD_MAC
	ip -n "\$2" link set lo up
	ip -n "\$2" addr add $POD_IP/24 dev eth0
	ip -n "\$2" addr add $POD_IP6/64 dev eth0 nodad
	ip -n "\$2" link set eth0 up
	ip -n $NS_SW link set vpod master br0 up ;;
unlink)
	ip -n "\$2" link del eth0 ;;
esac
EOS
	chmod +x "$POD_HELPER"
	for n in $NS_SW $NS_PEER $NS_POD; do
		ip netns add $n || return 1
		on_exit "ip netns del $n"
	done
	ip -n $NS_SW link add br0 type bridge || return 1
	ip -n $NS_SW link set br0 up
	ip -n $NS_SW link set lo up
	ip link add vpeer netns $NS_SW type veth peer name eth0 netns $NS_PEER || return 1
	ip -n $NS_PEER link set lo up
	ip -n $NS_PEER addr add $PEER_IP/24 dev eth0
	ip -n $NS_PEER addr add $PEER_IP6/64 dev eth0 nodad
	ip -n $NS_PEER link set eth0 up
	ip -n $NS_SW link set vpeer master br0 up
	"$POD_HELPER" link $NS_POD || return 1
	# the bridge forwards as soon as the ports are up (no STP)
	wait_for 5 ip netns exec $NS_POD ping -c1 -W1 $PEER_IP
}

# Delete every netns whose name starts with the prefix (migrations create more).
pod_net_down() {
	for n in $(ip netns list | awk '{print $1}' | grep "^$1"); do ip netns del "$n"; done
}
