#!/bin/bash
# epoll.t — an epoll instance keeps its whole interest list: an eventfd
# (level), a pipe with data (edge-triggered), a nested epoll with its own
# eventfd, and an item whose fd was renumbered after it was added (dup2 +
# close: the kernel still knows it under the old number).  After restore
# epoll_wait returns the same user data, EPOLL_CTL_MOD/DEL find the items by
# their numbers, and the renumbered item is still delivered.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
. "$(dirname "$0")/fdobj.sh"
need_root
plan 4
fdobj_run epoll zep
is "$FDOBJ_OUT" "ready=22,23,abc nested=1:24 renumbered=1 mod=0 del=0 del26=ENOENT" "interest list, data, nesting and fd numbers kept"
