#!/bin/bash
# unix-snapshot.t — a snapshot (dump --leave-running) of the unix socket pod
# reads every queue without consuming it: the pod, left running, then reads
# exactly what it would have read without the snapshot (same answer as
# unix.t expects from a restored pod), SO_PEEK_OFF put back.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 3
d=$(mktemp -d /tmp/zeng-uxs.XXXXXX); on_exit "rm -rf $d"
pod_start zuxs "$ZBIN/zt-fdobjs" unix "$d/trigger" > "$d/out"
wait_for 10 grep -q ready "$d/out"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img" --leave-running; ok $? "snapshot"
[ -s "$d/img" ] && kill -0 "$POD_INIT"; ok $? "image written, the pod still runs"
touch "$d/trigger"
wait_for 10 sh -c "[ \$(wc -l < '$d/out') -ge 2 ]"
is "$(sed -n 2p "$d/out")" "pair=hello,world! dgram=a,bb,ccc seq=m1,msg2 conn=req,resp pending=first,second reply=back abstract=0,1 bound=d1,d22,x1 half=bye,EOF named=p2,p1,p3 inflight=fdmsg,via,after" \
	"the running pod reads every queue intact"
