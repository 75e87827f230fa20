/*
 * fdkinds.c — the one table of file kinds (see fdkind.h).  Order matters
 * only where two kinds could match the same file: specific kinds first.
 */
#include "agent/engine/fdkind.h"

extern const struct fd_kind fdkind_pipe, fdkind_memfile, fdkind_regfile, fdkind_eventfd, fdkind_timerfd;

const struct fd_kind *const fd_kinds[] = {
	&fdkind_pipe,      /* pipe.c: anonymous pipes and FIFOs with their data */
	&fdkind_memfile,   /* memfile.c: memfds and deleted files, content saved */
	&fdkind_regfile,   /* regfile.c: regular files, directories, a few devices */
	&fdkind_eventfd,   /* eventfd.c: counter, semaphore mode */
	&fdkind_timerfd,   /* timerfd.c: clock, remaining time, interval, unread ticks */
	NULL,
};
