#!/bin/bash
# files.t — fds survive at the same numbers with offsets, flags and
# close-on-exec: regular files (O_APPEND, a dup sharing its offset), a
# directory, /dev/null, /dev/zero, /dev/urandom, a pipe and a FIFO whose
# buffered bytes arrive after restore, an unlinked file and a sealed memfd
# (content and offset saved in the image), an eventfd and a timerfd.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
need_root
plan 6

d=$(mktemp -d /tmp/zeng-files.XXXXXX); on_exit "rm -rf $d"
pod_start zf "$ZBIN/zt-files" "$d" "$d/fifo" "$d/trigger" > "$d/out"; ok $? "pod started"
sleep 0.3
fdtable() { for f in /proc/$1/fd/*; do n=${f##*/}; printf '%s %s %s\n' "$n" "$(readlink $f | sed 's/:\[.*//; s/.*\/gone.txt (deleted)$/DELETED/; s/.*\/#[0-9]* (deleted)$/DELETED/')" \
	"$(grep -E '^(pos|flags)' /proc/$1/fdinfo/$n | tr -s '\t\n' '  ')"; done | sort -n; }
fdtable "$POD_INIT" > "$d/before"
t_timeout 30 "$ENGINE" dump --cgroup "$POD_CG" --init "$POD_INIT" -o "$d/img"; ok $? "dump"
pod_restore "$d/img" zr; ok $? "restore"
fdtable "$RPOD_INIT" > "$d/after"
diff "$d/before" "$d/after" >&2; ok $? "same fd numbers, files, offsets, flags (incl. close-on-exec)"
touch "$d/trigger"
wait_for 5 test -s "$d/out"
is "$(cat "$d/out")" "ro=789ab pipe=pipedata fifo=fifodata zero=04 null=1 pos3=6 flags12=nonblock cloexec9=1 deleted=data memfd=data seals=2 eventfd=5 timerfd=ticking" \
	"reads and writes behave: offsets, pipe and FIFO data, devices, shared offset, unlinked file, sealed memfd, eventfd, timerfd"
is "$(cat "$d/log.txt")" "abcdef" "appends through the dup'ed fd land after the old data"
