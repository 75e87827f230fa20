#!/bin/bash
# signalfd.t — a signalfd keeps its mask (SIGUSR1 and SIGRTMIN+2): both
# signals raised after restore are read from it.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
. "$(dirname "$0")/fdobj.sh"
need_root
plan 4
fdobj_run signalfd zsf
is "$FDOBJ_OUT" "got=2 sigs=10,2" "mask kept: both signals read from the fd"
