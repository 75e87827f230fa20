#!/bin/bash
# badimage-big.t — corrupt or truncated page data of an image with big page
# records (a 32 MiB process): those records are read from the image file by
# both cores at once (agent/engine/pagefill.c file jobs), each checked against
# its stored checksum before anything restored runs.  Restore fails with one
# error line naming the record and leaves no process behind; the intact image
# still restores.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 5

d=$(mktemp -d /tmp/zeng-badbig.XXXXXX); on_exit "rm -rf $d"
pod_start zbb "$ZBIN/zt-bigmem" 32 > "$d/out" || exit 1
wait_for 20 grep -q ready "$d/out"
t_timeout 60 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump of a 32 MiB process"
size=$(stat -c %s "$d/img")
cg=$CGROOT/$(uniq zbbr); mkdir -p "$cg"; on_exit "_pod_cleanup_cg $cg"

try() {   # try WHAT FILE PATTERN
	t_timeout 60 "$ENGINE" restore -i "$2" --cgroup "$cg" > "$d/pid" 2> "$d/err"; rc=$?
	lines=$(wc -l < "$d/err")
	[ $rc -ne 0 ] && [ "$lines" = 1 ] && grep -q "$3" "$d/err" && wait_for 5 pod_gone "$cg" && ! [ -s "$d/pid" ]
	ok $? "$1: fails with one line, nothing left ($(head -c 150 "$d/err"))"
}
cp "$d/img" "$d/flip"
b=$(od -An -tu1 -j $((size / 2)) -N1 "$d/img" | tr -d ' ')
printf "$(printf '\\%03o' $(( b ^ 0x40 )))" | dd of="$d/flip" bs=1 seek=$((size / 2)) conv=notrunc status=none
try "byte in the middle of the page data flipped" "$d/flip" "record [0-9]* 'pages' at offset [0-9]*: checksum mismatch"
head -c $((size / 2)) "$d/img" > "$d/trunc"
try "truncated in the middle of the page data" "$d/trunc" "truncated"
head -c $((size - 100)) "$d/img" > "$d/trunc2"
try "truncated before the trailer" "$d/trunc2" "truncated"
rp=$(t_timeout 60 "$ENGINE" restore -i "$d/img" --cgroup "$cg")
[ -n "$rp" ] && kill -0 "$rp"; ok $? "the intact image restores"
