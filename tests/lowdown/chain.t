#!/bin/bash
# chain.t — incremental images (docs/incremental.md): a program writes a known
# pattern to 4 pages between checkpoints; each increment holds those pages and
# few others; a restore from any point of a chain of 20 gives exactly the
# memory at that point; a chain with a missing, corrupt or replaced link is
# refused naming the link; squash gives an image that restores identically;
# compressed images restore identically; a full image is forced every N.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../engine/pod.sh"
need_root
N=20
NP=2048
plan $((8 + 2 * (N + 1)))

d=$(mktemp -d /tmp/zld-chain.XXXXXX); on_exit "rm -rf $d"
pod_start zld "$ZBIN/zt-lowdown-dirtypat" "$d" $NP > "$d/out"; ok $? "pod started"
wait_for 10 grep -q region "$d/out"
read -r _ addr np < "$d/out"
# checksum of the program's region in a live process
memsum2() { t_timeout 10 python3 -c "
import sys,hashlib
f=open('/proc/$1/mem','rb'); f.seek($addr); print(hashlib.sha256(f.read($np*4096)).hexdigest()[:16])"; }
json() { "$ENGINE" show "$1" --json | python3 -c "import json,sys; j=json.load(sys.stdin); print($2)"; }

# image 0: full, tracking armed; images 1..N: increments (odd ones compressed)
t_timeout 120 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img0" --leave-running --track
sum[0]=$(memsum2 "$POD_INIT")
bad=""
for i in $(seq 1 $N); do
	touch "$d/go.$i"
	wait_for 10 test -e "$d/done.$i" || bad="$bad step$i-timeout"
	rm -f "$d/go.$i"      # a restored copy must stay at its point
	z=""; [ $((i % 2)) = 1 ] && z="--compress=3"
	t_timeout 120 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img$i" --leave-running \
		--parent "$d/img$((i - 1))" --full-every 100 $z || bad="$bad dump$i"
	sum[$i]=$(memsum2 "$POD_INIT")
	st=$(json "$d/img$i" "j['stored_pages']")
	# 4 pattern pages + stack/libc data; page 0 rewritten unchanged must not be
	# stored.  The first increment also holds pages that became present
	# without a write (zero page) since the full image.
	max=40; [ $i = 1 ] && max=120
	[ "$st" -ge 4 ] && [ "$st" -le $max ] || bad="$bad img$i:$st-pages"
done
is "$bad" "" "20 increments, each stores the 4 pages written and few others ($(json "$d/img5" "j['stored_pages']") pages in img5)"
is "$(json "$d/img20" "j['parent']['depth']")" 20 "img20 is increment 20 of its chain"

for i in $(seq 0 $N); do
	pod_restore "$d/img$i" zldr; ok $? "restore point $i"
	is "$(memsum2 "$RPOD_INIT")" "${sum[$i]}" "memory of point $i exact"
	echo 1 > "$RPOD_CG/cgroup.kill"
done

# squash, then restore the squashed image
t_timeout 60 "$ENGINE" squash -i "$d/img$N" -o "$d/squashed" --compress
pod_restore "$d/squashed" zlds
is "$(memsum2 "$RPOD_INIT")" "${sum[$N]}" "squashed chain restores identically ($(json "$d/squashed" "j['parent']"), $(json "$d/squashed" "j['stored_bytes']") of $(json "$d/squashed" "j['page_bytes']") bytes)"
echo 1 > "$RPOD_CG/cgroup.kill"

# broken chains are refused, naming the link
mv "$d/img7" "$d/img7.away"
msg=$(t_timeout 60 "$ENGINE" restore -i "$d/img10" --cgroup "$CGROOT/none" 2>&1); rc=$?
[ $rc != 0 ] && echo "$msg" | grep -q "img7"; ok $? "missing link refused: $msg"
mv "$d/img7.away" "$d/img7"
cp "$d/img4" "$d/img4.good"
python3 -c "
f=open('$d/img4','r+b'); f.seek(-200,2); b=f.read(1); f.seek(-200,2); f.write(bytes([b[0]^0xff]))"
msg=$(t_timeout 60 "$ENGINE" restore -i "$d/img10" --cgroup "$CGROOT/none" 2>&1); rc=$?
[ $rc != 0 ] && echo "$msg" | grep -q "img4"; ok $? "corrupt link refused: $msg"
cp "$d/img2" "$d/img4"
msg=$(t_timeout 60 "$ENGINE" restore -i "$d/img10" --cgroup "$CGROOT/none" 2>&1); rc=$?
[ $rc != 0 ] && echo "$msg" | grep -q "img4.*stream id"; ok $? "replaced link refused: $msg"
cp "$d/img4.good" "$d/img4"

# full image forced after N increments
t_timeout 120 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/full" --leave-running \
	--parent "$d/img$N" --full-every 5
is "$(json "$d/full" "j['parent']")" "None" "--full-every 5 after 20 increments writes a full image"
