#!/bin/bash
# hold.t — the traffic hold: NFQUEUE keeps packets and delivers them late on
# release; DROP mode drops; the rules disappear on release, on drop, when the
# caller dies and when the holder dies; kept rules (--queue-bypass) stay and
# let traffic pass between holds; stale conntrack entries are removed.
. "${ZAPC_SRC:-.}/tests/lib.sh"
. "$ZAPC_SRC/tests/netstate/pod.sh"
need_root
plan 25

P=$(uniq nsh)
on_exit "pod_net_down $P"
pod_net_up $P >/dev/null 2>&1
ok $? "test network up"
T=$(mktemp -d /tmp/$P.XXXXXX)
on_exit "rm -rf $T"
# the hold's nf_tables tables in the pod's netns (ip and ip6), seen by nft(8)
rules() { ip netns exec $NS_POD nft list tables 2>/dev/null | grep -c 'zapc_hold$'; }
# rules ARG of both tables that hold what: "queue num 77" ...
rules_with() { ip netns exec $NS_POD nft list ruleset 2>/dev/null | grep -c "ifname != \"lo\" $1\$"; }
PING="ip netns exec $NS_PEER ping -n -q"

# start_hold MODE: runs ns_hold with a fifo as its stdin
start_hold() {
	rm -f $T/in; mkfifo $T/in
	t_timeout 60 $ZBIN/ns_hold $NS_POD 77 $1 < $T/in > $T/out 2>$T/err &
	HOLD=$!
	exec 7>$T/in
	wait_for 10 grep -q mode $T/out
}
tell() { echo "$1" >&7; }
# held_ping WHAT: a ping sent during the hold started by start_hold is held (checked with
# "count"), then answered once the hold is released (two checks).
held_ping() {
	$PING -c 1 -W 3 $POD_IP > $T/ping 2>&1 &
	_p=$!
	sleep 1
	tell count; sleep 0.3
	n=$(awk '/^count/{print $2}' $T/out)
	[ "${n:-0}" -ge 1 ]; ok $? "$1: the echo request is held (count $n)"
	tell release; wait $HOLD
	wait $_p
	ok $? "$1: after release it is answered (rtt $(grep -o 'rtt.*' $T/ping))"
	exec 7>&-
}

# NFQUEUE: a ping sent while held is answered only after the release.
start_hold nfqueue
is "$(cat $T/out)" "mode nfqueue" "NFQUEUE hold is in force"
is "$(rules)/$(rules_with 'queue num 77')" 2/4 "hold rules installed in the pod's netns (ip and ip6: prerouting and output but lo, to queue 77)"
held_ping NFQUEUE
is "$(rules)" 0 "rules removed on release"

# DROP mode: packets are dropped, then traffic flows again.
start_hold drop
is "$(cat $T/out)" "mode drop" "DROP hold is in force"
is "$(rules_with drop)" 4 "drop rules in both families, both directions"
$PING -c 1 -W 1 $POD_IP >/dev/null 2>&1
[ $? != 0 ]; ok $? "a ping during a DROP hold gets no answer"
tell drop; wait $HOLD
$PING -c 1 -W 2 $POD_IP >/dev/null 2>&1
ok $? "after the hold ends, pings are answered"
exec 7>&-

# The caller dies: the holder notices, drops, removes the rules.
start_hold nfqueue
tell die; wait $HOLD 2>/dev/null
wait_for 5 test "$(rules)" = 0
ok $? "caller killed mid-hold: the holder removed the rules"
exec 7>&-

# The holder dies: release still returns and removes the rules.
start_hold nfqueue
holder=$(awk '/^holder/{print $2}' $T/err)
[ -n "$holder" ] && kill -9 $holder
ok $? "the holder process was found and killed ($holder)"
sleep 0.2
tell release; wait $HOLD
is "$(rules)" 0 "holder killed mid-hold: release removed the rules itself"
grep -q "lost" $T/err; ok $? "and said so in the log"
exec 7>&-

# Kept rules: installed by the first hold, left in place; between holds the
# queue has no listener and --queue-bypass lets traffic pass; a second hold
# with the rules present holds again without touching the rules.
start_hold keep
is "$(cat $T/out)" "mode nfqueue" "a hold with kept rules is in force"
held_ping "kept rules"
is "$(rules)/$(rules_with 'queue num 7001 bypass')" 2/4 "the rules stay after the release, with bypass"
$PING -c 3 -i 0.2 -W 2 $POD_IP > /dev/null 2>&1
ok $? "with no hold, traffic passes the kept rules"
start_hold kept
held_ping "a second hold on the kept rules"
for f in ip ip6; do ip netns exec $NS_POD nft delete table $f zapc_hold 2>/dev/null; done
is "$(rules)" 0 "(kept rules removed by the test)"

# Stale conntrack entries for the pod's address are deleted (from it and to
# it); an entry of other addresses stays.
ct() { ip netns exec $NS_POD conntrack "$@" >/dev/null 2>&1; }
ct -I -p udp -s $POD_IP -d $PEER_IP --sport 5000 --dport 6000 -t 300
ct -I -p tcp -s $PEER_IP -d $POD_IP --sport 7000 --dport 80 --state ESTABLISHED -t 300
ct -I -p udp -s 192.0.2.7 -d 192.0.2.8 --sport 1 --dport 2 -t 300
ctlist() { ip netns exec $NS_POD conntrack -L 2>/dev/null | grep -c "$1"; }
is "$(ctlist "src=$POD_IP dst=$PEER_IP sport=5000")/$(ctlist "dst=$POD_IP sport=7000")/$(ctlist 'src=192.0.2.7 ')" 1/1/1 \
	"conntrack entries from the pod, to the pod and of others exist"
$ZBIN/ns_hold ctflush $NS_POD $POD_IP
ok $? "netstate_conntrack_flush ran"
is "$(ctlist "src=$POD_IP dst=$PEER_IP sport=5000")/$(ctlist "dst=$POD_IP sport=7000")/$(ctlist 'src=192.0.2.7 ')" 0/0/1 \
	"the pod's entries are gone both ways, the other one stays"
ct -D -s 192.0.2.7
