#!/bin/bash
# prefork-py.t — a real pre-fork program: python3 builds 48 MiB of data, forks
# 4 workers that keep it (copy-on-write, untouched), and every process answers
# SIGUSR1 with the SHA-256 of the data.  Checkpointed (the pod ends) and
# restored: the image holds the data once, every restored process still has
# it (same digest as before the dump), and the restored pod uses about as
# much memory as the original (Pss), not once per process (cowshare.c).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 7

MB=48 NPROC=5
d=$(mktemp -d /tmp/zeng-prefork.XXXXXX); on_exit "rm -rf $d"
cat > "$d/prefork.py" <<'PY'
import hashlib, os, signal, sys
res = sys.argv[1]
data = os.urandom(48 << 20)
role = "parent"

def report(sig, frame):
    line = "%s %s\n" % (role, hashlib.sha256(data).hexdigest())
    fd = os.open(res, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, line.encode())
    os.close(fd)

signal.signal(signal.SIGUSR1, report)
r, w = os.pipe()
for i in range(4):
    if os.fork() == 0:
        role = "worker%d" % i
        os.write(w, b"x")
        while True:
            signal.pause()
for i in range(4):
    os.read(r, 1)
print("ready", flush=True)
while True:
    signal.pause()
PY

# digests CG — SIGUSR1 to every process; "ROLE DIGEST" lines, sorted
digests() {
	: > "$d/res"
	for p in $(cat "$1/cgroup.procs"); do kill -USR1 "$p"; done
	wait_for 20 sh -c "[ \$(wc -l < $d/res) -ge $NPROC ]"
	sort "$d/res"
}
# pss_mib CG — the memory of the pod's processes, shared pages counted once
pss_mib() {
	s=0
	for p in $(cat "$1/cgroup.procs"); do
		s=$((s + $(awk '/^Pss:/ { print $2 }' /proc/$p/smaps_rollup)))
	done
	echo $((s >> 10))
}

pod_start zpf python3 "$d/prefork.py" "$d/res" > "$d/out" && wait_for 30 grep -q ready "$d/out"
ok $? "python3 parent and 4 workers started"
before=$(digests "$POD_CG")
[ "$(echo "$before" | awk '{ print $2 }' | sort -u | wc -l)" = 1 ] && [ "$(echo "$before" | wc -l)" = $NPROC ]
ok $? "every process has the same data ($(echo "$before" | head -1 | cut -c1-30)...)"
pss0=$(pss_mib "$POD_CG")
t_timeout 60 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump (the pod ends)"
size=$(( $(stat -c %s "$d/img") >> 20 ))
[ $size -lt $((MB * 2)) ]; ok $? "the image holds the data once: $size MiB (the data is $MB MiB, $NPROC processes)"
pod_restore "$d/img" zpfr; ok $? "restore"
after=$(digests "$RPOD_CG")
is "$after" "$before" "every restored process still has exactly its data"
pss1=$(pss_mib "$RPOD_CG")
[ "$pss1" -lt $((pss0 + MB / 2)) ]; ok $? "the restored pod is as big as the original: Pss $pss1 MiB (was $pss0 MiB)"
