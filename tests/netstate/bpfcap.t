#!/bin/sh
# bpfcap.t — the BPF reader of TCP state (docs/netstate.md, "BPF reader"):
# a pod's connections in different states, with options set, checkpointed as
# the engine does it and restored; streams (checksums), options, urgent byte,
# FINs checked from the application's side; records equal to the syscall
# path's; a reader failing mid-capture falls back cleanly.  Then the same
# with ZAPC_NETSTATE_NO_BPF=1 (the syscall path only).  TAP lines come from
# ns_bpfcap.
. "${ZAPC_SRC:-.}/tests/lib.sh"
. "$ZAPC_SRC/tests/netstate/pod.sh"
need_root

P=$(uniq nsb)
on_exit "pod_net_down $P"
pod_net_up $P >/dev/null 2>&1 || { echo "1..0 # SKIP could not build the test network"; _t_planned=0; exit 0; }

OUT=$ZAPC_BUILD/ns_bpfcap.$$.out
on_exit "rm -f $OUT"
total=0
for mode in ${BPFCAP_MODES:-bpf nobpf}; do
	if [ $mode = bpf ]; then
		t_timeout 120 $ZBIN/ns_bpfcap $NS_POD $NS_PEER $POD_IP $PEER_IP $POD_IP6 $PEER_IP6 > $OUT 2>&1
	else
		ZAPC_NETSTATE_NO_BPF=1 t_timeout 120 $ZBIN/ns_bpfcap $NS_POD $NS_PEER $POD_IP $PEER_IP $POD_IP6 $PEER_IP6 > $OUT 2>&1
	fi
	rc=$?
	# renumber the program's TAP lines into ours
	while IFS= read -r line; do
		case "$line" in
		"ok "*|"not ok "*)
			total=$((total + 1))
			st=${line%% [0-9]*}
			echo "$st $total - [$mode] ${line#* - }" ;;
		1..*) ;;
		*) echo "# $line" ;;
		esac
	done < $OUT
	[ $rc = 0 ] || _t_failed=1
done
_t_n=$total
left=$(ip netns exec $NS_POD nft list tables 2>/dev/null | grep -c zapc_hold)
is "$left" "0" "no hold rule is left in the pod's netns"
[ "$total" -ge 40 ]
ok $? "ns_bpfcap ran all its checks twice ($total)"
