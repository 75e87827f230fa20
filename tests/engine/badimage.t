#!/bin/bash
# badimage.t — truncated, corrupted (single flipped bytes), wrong-version and
# wrong-architecture images: restore exits non-zero with exactly one error
# line, and leaves no process behind (the cgroup it was restoring into is
# empty again, no pid printed).  Flips inside page data hit after processes were
# already being rebuilt, so they test the all-or-nothing rollback too.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 14

d=$(mktemp -d /tmp/zeng-bad.XXXXXX); on_exit "rm -rf $d"
pod_start zb "$ZBIN/zt-tree" > "$d/out" || exit 1
sleep 0.5
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img" || exit 1
size=$(stat -c %s "$d/img")
cg=$CGROOT/$(uniq zbr); mkdir -p "$cg"; on_exit "_pod_cleanup_cg $cg"

try() {   # try WHAT FILE
	t_timeout 30 "$ENGINE" restore -i "$2" --cgroup "$cg" > "$d/pid" 2> "$d/err"; rc=$?
	lines=$(wc -l < "$d/err")
	# the new init joins the cgroup before it forks anything: an empty cgroup
	# means no process of the failed restore is left
	[ $rc -ne 0 ] && [ "$lines" = 1 ] && wait_for 5 pod_gone "$cg" && ! [ -s "$d/pid" ]
	ok $? "$1: fails with one line, nothing left ($(head -c 150 "$d/err"))"
}
for off in 20 200 $((size / 2)) $((size - 30)); do
	head -c $off "$d/img" > "$d/trunc"; try "truncated at $off" "$d/trunc"
done
flip() {  # flip OFFSET
	cp "$d/img" "$d/flip"
	b=$(od -An -tu1 -j "$1" -N1 "$d/img" | tr -d ' ')
	printf "$(printf '\\%03o' $(( b ^ 0x40 )))" | dd of="$d/flip" bs=1 seek="$1" conv=notrunc status=none
}
for off in 5 30 60 300 $((size / 3)) $((size / 2)) $((size * 3 / 4)) $((size - 40)); do
	flip $off; try "byte $off flipped" "$d/flip"
done
# header fields rewritten with a valid header CRC: version 99, arch i386
python3 - "$d/img" "$d" <<'PY'
import struct, sys
def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
img = open(sys.argv[1], 'rb').read()
for name, off, val in (('version', 8, 99), ('arch', 12, 0x40000003)):
    h = bytearray(img[:40])
    struct.pack_into('<I', h, off, val)
    struct.pack_into('<I', h, 36, crc32c(bytes(h[:36])))
    open(sys.argv[2] + '/' + name, 'wb').write(bytes(h) + img[40:])
PY
try "wrong version" "$d/version"
try "wrong architecture" "$d/arch"
