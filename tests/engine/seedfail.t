#!/bin/bash
# seedfail.t — a task that the restore seed cannot set up (its cwd is gone)
# fails the restore with one line naming the pid, the step and the path, and
# leaves nothing behind (restore_seed.c reports which op of which task failed).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 4

d=$(mktemp -d /tmp/zeng-seedfail.XXXXXX); on_exit "rm -rf $d"
mkdir "$d/cwd"
cd "$d/cwd" && pod_start zsf "$ZBIN/zt-bigmem" 0 3 > "$d/out"
cd /
wait_for 10 grep -q ready "$d/out"; ok $? "pod of 3 processes started in $d/cwd"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
rmdir "$d/cwd"
RPOD_CG=$CGROOT/$(uniq zsfr)
mkdir -p "$RPOD_CG"; on_exit "_pod_cleanup_cg $RPOD_CG"
err=$(t_timeout 60 "$ENGINE" restore -i "$d/img" --cgroup "$RPOD_CG" 2>&1 >/dev/null)
echo "$err" | grep -Eq "^zapc-engine: restore: pid [0-9]+: cwd $d/cwd: No such file or directory$"
ok $? "restore fails naming pid, step and path" || diag "$err"
sleep 0.3
[ -z "$(cat "$RPOD_CG/cgroup.procs")" ]; ok $? "no process of the failed restore is left"
