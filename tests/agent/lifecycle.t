#!/bin/sh
# lifecycle.t — a pod is its own world (pid ns, hostname, netns, cgroups),
# `pod exec` runs inside it with the caller's stdio and exit status, and a
# destroyed or finished pod leaves nothing behind.
. "${ZAPC_SRC:-.}/tests/lib.sh"
need_root
plan 38

Z="t_timeout 20 $ZBIN/zapc"
agent_start zl || exit 1

$Z pod create web -- sleep 1000 >/dev/null
ok $? "pod create"
is "$(pod_field web state)" running "pod listed as running"
ip=$(pod_field web ip)
init=$(pod_field web init_pid)
veth=$(pod_field web veth)
case $ip in 10.200.*) ok 0 "pod got an address of the pod network ($ip)";; *) ok 1 "pod address '$ip'";; esac
is "$(pod_field web mac)" "$(printf '02:5a:%02x:%02x:%02x:%02x' $(echo "$ip" | tr . ' '))" "MAC derived from the IP"
netns=$(readlink "/proc/$init/ns/net")
ok "$([ -n "$netns" ] && [ "$netns" != "$(readlink /proc/$AGENT_PID/ns/net)" ]; echo $?)" "pod has its own netns"
cgroup_exists "$AGENT_CG/web"
ok $? "pod cgroup exists"
grep -qx "$init" "/sys/fs/cgroup/unified/$AGENT_CG/web/cgroup.procs" 2>/dev/null ||
	grep -qx "$init" "/sys/fs/cgroup/freezer/$AGENT_CG/web/cgroup.procs"
ok $? "pod init is in the pod cgroup"
agent_netns ip link show "$veth" 2>/dev/null | grep -q "master zapcbr0"
ok $? "host end of the veth is on the node bridge"

agent_netns ip route show "$ip/32" | grep -q "dev zapcbr0"
ok $? "the node has a host route to the pod on its bridge"

# Inside the pod.
is "$($Z pod exec web -- cat /proc/1/comm)" zapc-init "pid 1 of the pod is zapc-init"
is "$($Z pod exec web -- sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = sleep ] && awk "{print \$1, \$4}" $p/stat; done')" \
   "2 1" "the workload is pid 2, child of pid 1"
n=$($Z pod exec web -- sh -c 'ls -d /proc/[0-9]* | wc -l')
hostn=$(ls -d /proc/[0-9]* | wc -l)
ok "$([ "$n" -ge 3 ] && [ "$n" -le 6 ] && [ "$hostn" -gt 20 ]; echo $?)" "pod sees only its own processes ($n in the pod, $hostn on the node)"
is "$($Z pod exec web -- hostname)" web "pod hostname is its name"
$Z pod exec web -- ip -o -4 addr show eth0 | grep -q " $ip/16 "
ok $? "exec sees the pod's eth0 with its IP"
is "$($Z pod exec web -- cat /sys/class/net/eth0/address)" "$(pod_field web mac)" "pod's /sys shows its own eth0"
$Z pod exec web -- sh -c 'exit 7'
is $? 7 "exec exit status propagated"
$Z pod exec web -- sh -c 'kill -TERM $$'
is $? 143 "exec killed by a signal: 128+signal"
$Z pod exec web -- /no/such/program 2>/dev/null
is $? 127 "exec of a missing program: 127"
is "$(echo hello-stdin | $Z pod exec web -- tr a-z A-Z)" HELLO-STDIN "exec uses the caller's stdin and stdout"
is "$($Z pod exec web -- sh -c 'echo err >&2' 2>&1 >/dev/null)" err "exec uses the caller's stderr"
timeout 1 $ZBIN/zapc pod exec web -- sleep 300
wait_for 5 grep -q "exec helper .* ended: exit code 129" "$AGENT_LOG"
ok $? "a client that goes away hangs up its command (SIGHUP, exit code 129)"
$Z pod exec web -- sh -c 'ps -o comm= -e | grep -c "^sleep$"' | grep -qx 1
ok $? "the hung-up command is gone from the pod"
$Z pod exec nosuch -- true 2>/dev/null
ok "$([ $? -ne 0 ]; echo $?)" "exec in a missing pod fails"
$Z pod create web -- true 2>/dev/null
ok "$([ $? -ne 0 ]; echo $?)" "a second pod with the same name is refused"

err=$($Z pod create bad -- /no/such/program 2>&1)
ok "$([ $? -ne 0 ]; echo $?)" "create with a missing program fails"
case $err in *"cannot start /no/such/program: No such file or directory"*) ok 0 "and says why";;
	*) ok 1 "and says why ($err)";; esac
! cgroup_exists "$AGENT_CG/bad"
ok $? "the failed pod left no cgroup"

# Destroy: nothing left behind.
$Z pod destroy web
ok $? "pod destroy"
wait_for 5 sh -c "! kill -0 $init 2>/dev/null"
ok $? "pod init is gone"
! agent_netns ip link show "$veth" >/dev/null 2>&1
ok $? "veth is gone"
! cgroup_exists "$AGENT_CG/web"
ok $? "pod cgroups are gone in every hierarchy"
[ -z "$(agent_netns ip route show "$ip/32")" ]
ok $? "the host route is gone"
left=0
for f in /proc/[0-9]*/ns/net /proc/[0-9]*/fd/*; do
	[ "$(readlink "$f" 2>/dev/null)" = "$netns" ] && left=$((left + 1))
done
is $left 0 "no process or fd refers to the pod's netns any more"
is "$(pod_field web name)" "" "pod no longer listed"

# A pod whose workload ends on its own is torn down by the agent.
$Z pod create brief -- sh -c 'echo bye; exit 3' >/dev/null
ok $? "pod with a short workload created"
wait_for 10 sh -c "[ -z \"\$(ZAPC_SOCKET=$AGENT_SOCK $ZBIN/zapc pod list --json | grep brief)\" ]"
ok $? "it disappears when its workload exits"
! cgroup_exists "$AGENT_CG/brief"
ok $? "its cgroups are gone"
grep -q "brief: init .* exited with status 3" "$AGENT_LOG"
ok $? "the agent logged the workload's exit status"
