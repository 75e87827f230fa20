#!/bin/bash
# inotify.t — an inotify instance keeps its watches with their wd numbers
# (1 and 3: wd 2 was removed before the checkpoint) and masks: after
# restore, creating a file in the watched directory and writing the watched
# file give the same events under the same wds.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
. "$(dirname "$0")/fdobj.sh"
need_root
plan 4
fdobj_run inotify zin
is "$FDOBJ_OUT" "wds=1,3 ev=1:100:new,3:2:,3:8: nb=1" "watches, wds and masks kept"
