#!/bin/bash
# pidfd.t — a pidfd (PIDFD_NONBLOCK) to a child of the pod still refers to
# that child after restore: pidfd_send_signal kills it and
# waitid(P_PIDFD) reaps it with its pod pid.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
. "$(dirname "$0")/fdobj.sh"
need_root
plan 4
fdobj_run pidfd zpf
is "$FDOBJ_OUT" "sent=0 waited=0 pid=2 sig=15 nb=1" "the pidfd signals and reaps the same child"
