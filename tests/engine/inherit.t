#!/bin/bash
# inherit.t — a pod whose stdout is a pipe read outside the pod (as an agent
# capturing a pod's output would hold it): after restore the caller hands in
# a new pipe with --inherit-fd N:pipe:[INODE] (the key `show` prints), and
# the restored counter's output arrives there, continuing the sequence.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 5

d=$(mktemp -d /tmp/zeng-inh.XXXXXX); on_exit "rm -rf $d"
pod_start zi "$ZBIN/zt-counter" 3 > >(cat > "$d/out1"); ok $? "pod started, stdout is a pipe read outside"
sleep 0.3
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
key=$("$ENGINE" show "$d/img" | awk '$1 == "fd" && $2 == "1:" { print $4 }')
case "$key" in pipe:*) ok 0 "show names the pipe: $key" ;; *) ok 1 "show names the pipe (got '$key')" ;; esac
# a fresh pipe: its reader is `cat`, its write end goes to the engine as fd 7
rcg=$CGROOT/$(uniq zir); mkdir "$rcg"; on_exit "_pod_cleanup_cg $rcg"
pid=$(t_timeout 30 "$ENGINE" restore -i "$d/img" --cgroup "$rcg" --inherit-fd "7:$key" 7> >(cat > "$d/out2")); ok $? "restore with --inherit-fd 7:$key"
sleep 0.4
kill -9 "$pid" 2>/dev/null
sleep 0.1
cat "$d/out1" "$d/out2" > "$d/all"
[ "$(wc -l < "$d/out2")" -gt 10 ] && [ -z "$(seq_breaks "$d/all")" ]
ok $? "output continues in the new pipe with no gap ($(tail -1 "$d/out1") → $(tail -1 "$d/out2"))"
