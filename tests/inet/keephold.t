#!/bin/sh
# keephold.t — kept hold rules: a pod's first checkpoint that holds its traffic
# leaves NFQUEUE rules with --queue-bypass in the pod's netns (traffic passes
# them while no holder listens), and the pod's next checkpoints hold by
# binding the queue only: the rules are not made again (same nf_tables handles).
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
command -v strace > /dev/null || skip_all "needs strace"
plan 7

Z="t_timeout 30 $ZBIN/zapc"
agent_start zkh || exit 1
T=$(mktemp -d /tmp/zapc-kh.XXXXXX)
on_exit "rm -rf '$T'"

$Z pod create kh --ip 10.200.0.93 -- sh -c \
	'nc -l -p 5000 > /dev/null & sleep 0.3; while :; do date; sleep 0.1; done | nc 127.0.0.1 5000' > /dev/null
sleep 0.8
init=$(pod_field kh init_pid)
$Z checkpoint kh -o "$T/img" --leave-running > /dev/null
ok $? "a snapshot of a pod with TCP connections"
# table handles change when a table is made anew: the same handle after the
# second snapshot means its hold bound the queue and left the rules alone
handles() { nsenter --net=/proc/$init/ns/net nft -a list ruleset 2>/dev/null | grep -o '^table.*handle [0-9]*' | tr '\n' ' '; }
nsenter --net=/proc/$init/ns/net nft list ruleset > "$T/rules" 2>&1
is "$(grep -c 'ifname != "lo" queue num 7001 bypass' "$T/rules")" 4 \
	"the hold rules stay in the pod's netns (ip and ip6, both directions), with bypass"
h1=$(handles)
nsenter --net=/proc/$init/ns/net ss -Htn state established | grep -q ":5000"
ok $? "its connections run on through the kept rules"
strace -f -qq -e trace=execve,bpf -o "$T/strace" -p "$AGENT_PID" &
S=$!
on_exit "kill $S 2>/dev/null"
wait_for 5 test -s "$T/strace" || sleep 0.5
$Z checkpoint kh -o "$T/img" --leave-running > /dev/null
ok $? "a second snapshot"
sleep 0.2; kill $S; wait $S 2>/dev/null
h2=$(handles)
[ -n "$h1" ] && [ "$h1" = "$h2" ] && grep -q 'execve(".*zapc-engine' "$T/strace"
ok $? "it held the pod's traffic on the kept rules without making them again (tables: $h1 / $h2)"
# netstate's BPF reader: the agent loaded it once; the engine only attaches it
grep -q 'bpf(BPF_ITER_CREATE' "$T/strace" && ! grep -q 'bpf(BPF_PROG_LOAD' "$T/strace"
ok $? "the engine read TCP state with the agent's BPF reader, without loading one itself"
$Z checkpoint kh -o "$T/img" > /dev/null && $Z restore "$T/img" > /dev/null
ok $? "checkpoint (pod killed) and restore still work"
