#!/bin/sh
# engine_bench.sh — checkpoint/restore figures of zapc-engine, with the memcpy
# floor measured in the same run (issue 3 targets):
#   frozen time of a snapshot (--leave-running), 1 process with 256 MiB
#   touched, image to memory                                      ≤ 1.5×memcpy + 5 ms
#   restore of that image                                         ≤ 2×memcpy + 10 ms
#     (from /dev/shm, and once more from a private tmpfs with huge pages,
#     huge=within_size, where reading the image costs less: docs/engine.md)
#     (printed with the fresh-memory floor: filling that much new memory of
#     another process, bench/engine_fillfloor.c)
#   dump and restore of a 100-process pod                         < 100 ms each
#     (printed with what the program itself takes to fork those 100
#     processes here, without any restore)
#   a pre-fork server (16 processes sharing 16 MiB since the forks): image
#   size, restore time, memory of the restored pod (Pss sum)    (no target)
# Prints BENCH lines (see bench/run.sh).  Needs root and cgroup v2.
set -u
: "${ZAPC_BUILD:=$(pwd)/build}"
ZBIN=$ZAPC_BUILD/bin
ENGINE=$ZBIN/zapc-engine
CG=/sys/fs/cgroup/unified
MB=${ENGINE_BENCH_MB:-256}
tmp=$(mktemp -d /dev/shm/zeng-bench.XXXXXX)   # images: in memory
# the pods' output: not under /dev/shm, which the engine saves as the pod's
# own shared memory (and a restore would not find it there)
out=$(mktemp -d /tmp/zeng-bench.XXXXXX)
huge=$(mktemp -d /tmp/zeng-bench-huge.XXXXXX)   # a tmpfs with huge pages is mounted here
pods=""
cleanup() {
	for c in $pods; do
		echo 1 > "$c/cgroup.kill" 2>/dev/null
		for i in $(seq 50); do rmdir "$c" 2>/dev/null && break; sleep 0.1; done
	done
	umount "$huge" 2>/dev/null
	rmdir "$huge" 2>/dev/null
	rm -rf "$tmp" "$out"
}
trap cleanup EXIT INT TERM

# wall time of one command, without the shell's own fork/exec overhead
WALL=$ZBIN/bench-walltime

start_pod() {   # start_pod NAME ARGS... → prints host pid of init
	c=$CG/$1$$; shift
	mkdir "$c"; pods="$pods $c"
	unshare --fork --pid --mount-proc --mount --ipc --uts --net \
		sh -c 'echo 0 > "$0/cgroup.procs" && exec setsid "$@"' "$c" "$@" > "$out/ready.$$" 2>/dev/null &
	o=$!
	i=0
	while [ "$(cat "$out/ready.$$" 2>/dev/null)" != ready ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
	POD_CG=$c
	POD_INIT=$(cat /proc/$o/task/$o/children | awk '{print $1}')
}

memcpy_ms=$("$ZBIN/bench-engine-memcpy" "$MB")
echo "BENCH engine_memcpy_${MB}MiB $memcpy_ms ms floor"

start_pod zbm "$ZBIN/zt-bigmem" "$MB" 1
# a snapshot (--leave-running): the frozen time is what the pod does not run
frozen=$(ZAPC_ENGINE_TIMING=1 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" --leave-running -o "$tmp/img" 2>&1 |
	awk '/^TIMING frozen_ms/ { print $3 }')
target=$(awk -v m="$memcpy_ms" 'BEGIN { printf "%.1f", 1.5 * m + 5 }')
echo "BENCH engine_frozen_${MB}MiB ${frozen:-NaN} ms target<=$target"
mkdir "$CG/zbr$$"; pods="$pods $CG/zbr$$"
rp=$("$WALL" "$out/wall" "$ENGINE" restore -i "$tmp/img" --cgroup "$CG/zbr$$")
target=$(awk -v m="$memcpy_ms" 'BEGIN { printf "%.1f", 2 * m + 10 }')
# a restore that failed has no time
[ -n "$rp" ] && ms=$(cat "$out/wall") || ms=NaN
echo "BENCH engine_restore_${MB}MiB $ms ms target<=$target"
[ -n "$rp" ] && kill -9 "$rp" 2>/dev/null
rm -f "$tmp/img"
# the same from a tmpfs with 2 MiB pages (huge=within_size): the image's page
# cache is 2 MiB folios, so reading it skips /dev/shm's per-4 KiB-page costs
ms=NaN
if mount -t tmpfs -o "huge=within_size,size=$((MB * 2 + 64))m,mode=0700" zeng-bench-huge "$huge" 2>/dev/null &&
   "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" --leave-running -o "$huge/img" 2>/dev/null; then
	mkdir "$CG/zbh$$"; pods="$pods $CG/zbh$$"
	rp=$("$WALL" "$out/wall" "$ENGINE" restore -i "$huge/img" --cgroup "$CG/zbh$$")
	[ -n "$rp" ] && ms=$(cat "$out/wall") && kill -9 "$rp" 2>/dev/null
fi
echo "BENCH engine_restore_${MB}MiB_hugetmpfs $ms ms target<=$target"
rm -f "$huge/img"
umount "$huge" 2>/dev/null
# what filling that much fresh memory of another process costs here at
# best (no image read, no checksum): the floor under the restore on a
# machine where a fresh page costs far more than a memcpy (PVM guest)
floor=$("$ZBIN/bench-engine-fillfloor" "$MB" | awk '/^floor/ { print $2, $3 }')
set -- ${floor:-NaN none}
echo "BENCH engine_fresh_memory_floor_${MB}MiB $1 ms way=$2 (fill only, best of 3)"

start_pod zbp "$ZBIN/zt-bigmem" 0 100
"$WALL" "$out/wall" "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$tmp/img100" && ms=$(cat "$out/wall") || ms=NaN
echo "BENCH engine_dump_100proc $ms ms target<100"
mkdir "$CG/zbq$$"; pods="$pods $CG/zbq$$"
rp=$("$WALL" "$out/wall" "$ENGINE" restore -i "$tmp/img100" --cgroup "$CG/zbq$$")
[ -n "$rp" ] && ms=$(cat "$out/wall") || ms=NaN
echo "BENCH engine_restore_100proc $ms ms target<100"
[ -n "$rp" ] && kill -9 "$rp" 2>/dev/null
# what the program itself needs to make those 100 processes here (no
# restore: main to every child running; a fresh process costs ~1 ms of CPU
# on this PVM guest), best of 3
best=
for i in 1 2 3; do
	us=$("$ZBIN/zt-bigmem" 0 100 time | awk '/^created_us/ { print $2 }')
	[ -n "$us" ] && { [ -z "$best" ] || [ "$us" -lt "$best" ]; } && best=$us
done
echo "BENCH engine_create_100proc_floor $(awk -v u="${best:-0}" 'BEGIN { printf "%.1f", u / 1000 }') ms" \
	"(zt-bigmem forking its own 100 processes, no restore; best of 3)"

# a pre-fork server: 16 processes forked after the parent touched 16 MiB,
# all still shared copy-on-write — stored once, shared again after restore
# (docs/engine.md "Memory a child shares with its parent"); no target
start_pod zbf "$ZBIN/zt-bigmem" 16 16
"$WALL" "$out/wall" "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$tmp/imgpf" && ms=$(cat "$out/wall") || ms=NaN
mb=$(( $(stat -c %s "$tmp/imgpf" 2>/dev/null || echo 0) >> 20 ))
echo "BENCH engine_dump_prefork_16x16MiB $ms ms image=${mb}MiB"
mkdir "$CG/zbg$$"; pods="$pods $CG/zbg$$"
rp=$("$WALL" "$out/wall" "$ENGINE" restore -i "$tmp/imgpf" --cgroup "$CG/zbg$$")
[ -n "$rp" ] && ms=$(cat "$out/wall") || ms=NaN
pss=0
for pid in $(cat "$CG/zbg$$/cgroup.procs" 2>/dev/null); do
	pss=$((pss + $(awk '/^Pss:/ { print $2 }' /proc/$pid/smaps_rollup 2>/dev/null || echo 0)))
done
echo "BENCH engine_restore_prefork_16x16MiB $ms ms pss=$((pss >> 10))MiB"
[ -n "$rp" ] && kill -9 "$rp" 2>/dev/null
exit 0
