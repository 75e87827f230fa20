#!/bin/bash
# timerfd.t — an armed one-shot timerfd (5 s) fires on time after restore
# (measured on the pod's continuous CLOCK_MONOTONIC), a periodic BOOTTIME
# timer keeps its 200 ms interval and O_NONBLOCK, and an expired, unread
# timer still reports its one tick.  A wall-clock timer set for a date
# (TFD_TIMER_ABSTIME, 3 s after the start) that passes while the pod is down
# (4 s between checkpoint and restore) has fired when the pod is back.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/pod.sh"
. "$(dirname "$0")/fdobj.sh"
need_root
plan 4
FDOBJ_BETWEEN='sleep 4'
fdobj_run timerfd ztf
is "$FDOBJ_OUT" "date13=1 armed=1 fired_at=on-time interval11=200ms nb11=1 ticks12=1" "time left, interval, flags and ticks kept"
