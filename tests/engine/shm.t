#!/bin/bash
# shm.t — POSIX shared memory in /dev/shm: an object only mapped (shm_open,
# mmap, close) and one held by an fd.  Between checkpoint and restore both
# files are deleted, as the pod's own /dev/shm tmpfs would be gone: after
# restore their content, mode and offset are back, and the mapping and the
# file are still one object (a write through the mapping is read through a
# new shm_open).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
. "$(dirname "$0")/fdobj.sh"
need_root
plan 5
FDOBJ_BETWEEN='rm -f /dev/shm/zt-$(basename $_d)-map /dev/shm/zt-$(basename $_d)-fd; ls /dev/shm/zt-$(basename $_d)-* >/dev/null 2>&1; ok $((!$?)) "shm files removed before restore"'
fdobj_run shm zsh
is "$FDOBJ_OUT" "map=MAPPED-only,page2 fd=fd file=MAPPED-only mode=640" "shared memory content, sharing, mode and offset kept"
