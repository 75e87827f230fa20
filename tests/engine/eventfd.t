#!/bin/bash
# eventfd.t — an eventfd keeps its counter (42) and O_NONBLOCK, a semaphore
# eventfd keeps counting down one at a time (EFD_SEMAPHORE), across a
# checkpoint and restore.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
. "$(dirname "$0")/fdobj.sh"
need_root
plan 4
fdobj_run eventfd zev
is "$FDOBJ_OUT" "ev=42 sem=1,1 nb=EAGAIN" "counter, semaphore mode and non-blocking kept"
