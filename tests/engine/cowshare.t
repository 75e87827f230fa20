#!/bin/bash
# cowshare.t — a pre-fork server (zt-cowshare: a parent with 64 MiB, 6 children
# and a grandchild, most of the memory still shared copy-on-write since the
# forks) is stored once: the image holds the shared pages in the parent only,
# and the restored children share them with the restored parent again (same
# physical page, /proc/PID/pagemap), while every process still holds exactly
# its own memory (each checks all of it on SIGUSR1: pages the children changed,
# pages the parent changed after the forks, MADV_DONTNEED'd and munmapped
# pieces, a heap buffer, a region of its own).  The knobs prove the checks can
# fail: ZAPC_ENGINE_NO_COWSHARE=1 stores every page per process (a big image),
# ZAPC_RESTORE_COWSHARE=0 copies inherited pages (no shared PFN), as a restore
# without the seed (ZAPC_RESTORE_SEED=0) does.  A snapshot
# (--leave-running, pages read copy-on-write, agent/engine/cowsnap.c) keeps the
# same content.  Images rewritten to lie about the shared ranges (zt-cowedit,
# valid checksums) are refused with one line, nothing left behind.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 27

MB=64 NCHILD=6 NPROC=8   # parent, children, grandchild
CHECK_PAGE=1000          # a page of the shared region no process changes
d=$(mktemp -d /tmp/zeng-cowshare.XXXXXX); on_exit "rm -rf $d"

# what every process reports when all its memory is right (sorted by role)
want_ok=$( { echo parent OK; echo grandchild OK; for k in $(seq 0 $((NCHILD - 1))); do echo "child$k OK"; done; } |
	sort | tr '\n' ' ')

# start NAME OUT — a zt-cowshare pod; waits for its "ready ADDR" line
start() {
	pod_start "$1" "$ZBIN/zt-cowshare" $MB $NCHILD "$d/res" > "$2" &&
		wait_for 20 grep -q '^ready ' "$2"
}

# verify CG — SIGUSR1 to every process of the pod; prints the sorted result
# lines (one per process, joined) once NPROC arrived or 15 s passed
verify() {
	: > "$d/res"
	for p in $(cat "$1/cgroup.procs"); do kill -USR1 "$p"; done
	wait_for 15 sh -c "[ \$(wc -l < $d/res) -ge $NPROC ]"
	sleep 0.1   # a late extra line (a process reporting twice) would show
	sort "$d/res" | tr '\n' ' '
}

# pfns INIT CG ADDR — "pid:pfn" of page CHECK_PAGE of the region at ADDR, the
# pod's init (the parent) first, then the others
pfns() {
	python3 - "$@" $CHECK_PAGE <<'EOF'
import struct, sys
init, cg, addr, page = sys.argv[1], sys.argv[2], int(sys.argv[3], 16), int(sys.argv[4])
pids = [init] + [p for p in open(cg + "/cgroup.procs").read().split() if p != init]
out = []
for pid in pids:
    with open("/proc/%s/pagemap" % pid, "rb") as f:
        f.seek((addr // 4096 + page) * 8)
        e = struct.unpack("<Q", f.read(8))[0]
    # bit 63 present, bits 0-54 the PFN (visible to root)
    out.append("%s:%s" % (pid, e & ((1 << 55) - 1) if e >> 63 else "absent"))
print(" ".join(out))
EOF
}
# all_same "pid:pfn ..." — every process has the parent's PFN
all_same() { [ "$(echo "$1" | tr ' ' '\n' | cut -d: -f2 | sort -u)" != absent ] &&
	[ "$(echo "$1" | tr ' ' '\n' | cut -d: -f2 | sort -u | wc -l)" = 1 ] && [ "$(echo "$1" | wc -w)" = $NPROC ]; }
# none_shares "pid:pfn ..." — no other process has the parent's PFN
none_shares() {
	first=$(echo "$1" | cut -d' ' -f1 | cut -d: -f2)
	[ -n "$first" ] && [ "$first" != absent ] && [ "$(echo "$1" | tr ' ' '\n' | cut -d: -f2 | grep -cx "$first")" = 1 ]
}
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
mib() { echo "$(( $1 >> 20 )) MiB"; }

# the program itself: every process finds its memory right, shares the untouched pages
start zcs "$d/out"; ok $? "pod started and ready ($(head -1 "$d/out"))"
addr=$(awk '/^ready/ { print $2 }' "$d/out")
is "$(verify "$POD_CG")" "$want_ok" "all $NPROC processes verify their memory before the dump"
f=$(pfns "$POD_INIT" "$POD_CG" "$addr")
all_same "$f"; ok $? "before the dump page $CHECK_PAGE is one physical page in all processes" || diag "pid:pfn $f"

# the shared pages are stored once
t_timeout 60 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
s=$(size "$d/img")
[ "$s" -gt 0 ] && [ "$s" -lt $(( (MB + 24) << 20 )) ]
ok $? "image holds the shared memory once: $(mib "$s") < $((MB + 24)) MiB"
start zcsn "$d/outn"; ok $? "second pod ready"
ZAPC_ENGINE_NO_COWSHARE=1 t_timeout 60 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/imgn"
ok $? "dump with ZAPC_ENGINE_NO_COWSHARE=1"
s=$(size "$d/imgn")
[ "$s" -gt $(( (4 * MB) << 20 )) ]; ok $? "without detection every process stores its pages: $(mib "$s") > $((4 * MB)) MiB"
rm -f "$d/imgn"

# restore: the same tree, every process with exactly its memory
pod_restore "$d/img" zcsr; ok $? "restore"
is "$(wc -l < "$RPOD_CG/cgroup.procs") $(cat /proc/$RPOD_INIT/task/*/children 2>/dev/null | wc -w)" "$NPROC $NCHILD" \
	"the process tree is intact ($NPROC processes, the parent has $NCHILD children)"
is "$(verify "$RPOD_CG")" "$want_ok" "all $NPROC restored processes verify their memory"

# the untouched pages are shared again after restore
f=$(pfns "$RPOD_INIT" "$RPOD_CG" "$addr")
all_same "$f"; ok $? "page $CHECK_PAGE is one physical page in all restored processes" || diag "pid:pfn $f"
echo 1 > "$RPOD_CG/cgroup.kill"; wait_for 10 pod_gone "$RPOD_CG"

# other ways: pages copied from the restored parent, same memory, not shared
restore_with() {   # restore_with NAME VAR=VALUE WHAT
	RPOD_CG=$CGROOT/$(uniq "$1"); mkdir "$RPOD_CG"; on_exit "_pod_cleanup_cg $RPOD_CG"
	RPOD_INIT=$(env "$2" timeout -k 5 60 "$ENGINE" restore -i "$d/img" --cgroup "$RPOD_CG")
	ok $? "restore $3 ($2)"
	is "$(verify "$RPOD_CG")" "$want_ok" "all $NPROC processes verify their memory ($3)"
}
restore_with zcsc ZAPC_RESTORE_COWSHARE=0 "with inherited pages copied"
f=$(pfns "$RPOD_INIT" "$RPOD_CG" "$addr")
none_shares "$f"; ok $? "copied: no child has the parent's physical page" || diag "pid:pfn $f"
echo 1 > "$RPOD_CG/cgroup.kill"; wait_for 10 pod_gone "$RPOD_CG"
# without the restore seed every task is a fork of the engine
restore_with zcsz ZAPC_RESTORE_SEED=0 "without the seed"
echo 1 > "$RPOD_CG/cgroup.kill"; wait_for 10 pod_gone "$RPOD_CG"

# an image that lies about what is shared (valid checksums, zt-cowedit) is
# refused with one line naming the process and the range; nothing is left
nlie=0
lie() {   # lie WHAT PID [ADDR NPAGES]
	what=$1; shift
	"$ZBIN/zt-cowedit" "$d/img" "$d/lie" "$@" || { ok 1 "$what: zt-cowedit"; return; }
	nlie=$((nlie + 1))
	cg=$CGROOT/$(uniq zcsl$nlie); mkdir "$cg"; on_exit "_pod_cleanup_cg $cg"
	t_timeout 30 "$ENGINE" restore -i "$d/lie" --cgroup "$cg" > "$d/pid" 2> "$d/err"; rc=$?
	[ $rc -ne 0 ] && [ "$(wc -l < "$d/err")" = 1 ] && grep -q "pid $1.*shared with" "$d/err" &&
		wait_for 5 pod_gone "$cg" && ! [ -s "$d/pid" ]
	ok $? "$what: refused, nothing left ($(head -c 160 "$d/err"))"
	rm -f "$d/lie"
}
lie "pages shared at an address the child has no mapping" 2 1000 1
lie "shared pages running past the mapping" 2 "$addr" 1000000
lie "the pod's init claims a parent's pages" 1 "$addr" 1

# show reports the pages each child takes from its parent
t_timeout 30 "$ENGINE" show "$d/img" --json > "$d/json"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$d/json"; ok $? "show --json parses"
pfp=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
print(" ".join("%d:%s" % (p["pid"], p.get("pages_from_parent", "none")) for p in j["processes"]))' "$d/json")
echo "$pfp" | tr ' ' '\n' | grep -v '^1:' | awk -F: -v n=$((NPROC - 1)) '$2 ~ /^[0-9]+$/ && $2 > 0 { c++ } END { exit c != n }'
ok $? "every child takes pages from its parent (pid:pages_from_parent $pfp)"
rm -f "$d/img"

# a snapshot of a running pod: the pod goes on, the image restores the same memory
start zcss "$d/outs"; ok $? "third pod ready"
ZAPC_ENGINE_COW_MIN_KB=1024 t_timeout 60 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" --leave-running \
	-o "$d/img2"; ok $? "snapshot (--leave-running, pages read copy-on-write)"
is "$(verify "$POD_CG")" "$want_ok" "the snapshotted pod runs on with its memory intact"
echo 1 > "$POD_CG/cgroup.kill"; wait_for 10 pod_gone "$POD_CG"
pod_restore "$d/img2" zcssr; ok $? "restore the snapshot"
is "$(verify "$RPOD_CG")" "$want_ok" "all $NPROC processes restored from the snapshot verify their memory"
