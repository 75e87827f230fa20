#!/bin/sh
# bench/netstate.sh — netstate figures: capture time for 100 connections, and
# how fast a restored connection hears from its peer after an NFQUEUE hold
# versus DROP rules.  Needs root; builds its own netns and removes them.
ZAPC_SRC=${ZAPC_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
ZAPC_BUILD=${ZAPC_BUILD:-$ZAPC_SRC/build}
. "$ZAPC_SRC/tests/lib.sh" >/dev/null
. "$ZAPC_SRC/tests/netstate/pod.sh"
_t_planned=0
P=$(uniq nsb)
on_exit "pod_net_down $P"
pod_net_up $P >/dev/null 2>&1 || { echo "netstate bench: network setup failed"; exit 1; }
B=$ZBIN/netstate_bench
HOLD_MS=${HOLD_MS:-1000}

capout=$(timeout 120 $B capture $NS_POD $NS_PEER $POD_IP $PEER_IP 100 | tee -a /dev/stderr)
# the engine's way (sock_diag + 2 threads), and each socket on its own (as before)
cap=$(echo "$capout" | sed -n 's/^capture: [0-9]* established connections: min [0-9.]* ms, median \([0-9.]*\) ms.*/\1/p')
capcpu=$(echo "$capout" | sed -n 's/^capture: [0-9]* established connections: .*CPU median \([0-9.]*\) ms.*/\1/p')
single=$(echo "$capout" | sed -n 's/^capture (each socket on its own.*median \([0-9.]*\) ms (.*/\1/p')
nobpf=$(echo "$capout" | sed -n 's/^capture (BPF reader off): [0-9]* established connections: min [0-9.]* ms, median \([0-9.]*\) ms.*/\1/p')
nobpfcpu=$(echo "$capout" | sed -n 's/^capture (BPF reader off): .*CPU median \([0-9.]*\) ms.*/\1/p')
bpfload=$(echo "$capout" | sed -n 's/^capture: records with and without the BPF reader identical.*BPF load \([0-9.]*\) ms.*/\1/p')
nfq=$(timeout 60 $B recovery $NS_POD $NS_PEER $POD_IP $PEER_IP $HOLD_MS nfqueue | tee -a /dev/stderr | awk '/^RESULT/{print $3}')
drop=$(timeout 60 $B recovery $NS_POD $NS_PEER $POD_IP $PEER_IP $HOLD_MS drop | tee -a /dev/stderr | awk '/^RESULT/{print $3}')
awk -v a="$nfq" -v b="$drop" 'BEGIN{ if (a > 0 && b > 0) printf "recovery after a %s ms hold: nfqueue %.1f ms, drop %.1f ms, drop/nfqueue = %.0fx (target nfqueue < 50 ms)\n", '"$HOLD_MS"', a*1e3, b*1e3, b/a; else print "recovery: a run failed" }'
[ -n "$cap" ] && echo "BENCH netstate_capture_100_conns_ms $cap ms median, as the engine does it; target < 1 ms on top of freezing"
[ -n "$capcpu" ] && echo "BENCH netstate_capture_100_conns_cpu_ms $capcpu ms CPU (both threads), median"
[ -n "$nobpf" ] && echo "BENCH netstate_capture_100_conns_nobpf_ms $nobpf ms median, the same with the BPF reader off (CPU $nobpfcpu ms)"
[ -n "$bpfload" ] && echo "BENCH netstate_bpf_load_ms $bpfload ms to load and attach the BPF reader (before the freeze)"
[ -n "$single" ] && echo "BENCH netstate_capture_100_conns_single_ms $single ms median, each socket on its own (the way before sock_diag)"
awk -v a="$nfq" -v b="$drop" 'BEGIN{ if (a > 0 && b > 0) {
	printf "BENCH netstate_first_byte_after_hold_nfqueue_ms %.1f ms target < 50 ms\n", a*1e3
	printf "BENCH netstate_first_byte_after_hold_drop_ms %.1f ms DROP rules, for comparison\n", b*1e3
	printf "BENCH netstate_drop_over_nfqueue_ratio %.0f x\n", b/a } }'
