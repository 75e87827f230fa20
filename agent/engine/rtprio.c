/*
 * rtprio.c — the engine runs SCHED_FIFO while a tracked increment holds the
 * pod frozen (docs/incremental.md).  That window is a few ms of engine work
 * (page-table walks, /proc reads, a few ptrace round trips); on a loaded
 * node every time the engine blocks it waits behind the other runnable tasks
 * for a time slice, which multiplied the downtime (measured 10–27 ms at load
 * 8 on 2 CPUs vs ~5 ms idle).  Only for increments with live tracking, whose
 * window is short, and snapshots whose big processes are captured
 * copy-on-write (cowsnap.c) and that copy at most 64 MiB frozen (dump.c;
 * should a fork fail, the big copy that follows leaves real-time first): a
 * full dump copies all memory frozen and must not hold a CPU at real-time
 * priority for seconds.  The pod's own threads are not
 * boosted (if the engine died, they would stay real-time).
 * ZAPC_NO_RT=1 turns it off.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

static int saved_policy = -1;
static struct sched_param saved_param;

void rt_enter(void)
{
	if (getenv("ZAPC_NO_RT"))
		return;
	int pol = sched_getscheduler(0);
	struct sched_param old, sp = { .sched_priority = 1 };
	if (pol < 0 || sched_getparam(0, &old) < 0)
		return;
	if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) {
		log_debug("dump: no real-time priority for the frozen window: %s", strerror(errno));
		return;
	}
	saved_policy = pol;
	saved_param = old;
}

void rt_leave(void)
{
	if (saved_policy < 0)
		return;
	if (sched_setscheduler(0, saved_policy, &saved_param) < 0)
		log_warn("dump: back to scheduling policy %d: %s", saved_policy, strerror(errno));
	saved_policy = -1;
}
