/*
 * seize.h — quiesce a pod: cgroup v2 freeze, PTRACE_SEIZE + INTERRUPT of every
 * thread, thaw (the queued INTERRUPTs trap every thread), and the way back
 * (resume untouched, or kill).
 */
#ifndef ZAPC_ENGINE_SEIZE_H
#define ZAPC_ENGINE_SEIZE_H

#include "agent/engine/engine.h"

int cg_freeze(const char *cg, int on);   /* waits for cgroup.events "frozen" */
/* Is tid asleep inside vfork() right now?  Its wchan says so: kernel_clone
 * (wait_for_vfork_done is inlined there) or wait_for_vfork_done.  Only for a
 * thread that does not trap (seize_wait_all): see vfork_pair. */
bool task_in_vfork(pid_t tid);
/* Does parent still sleep inside vfork() for child (host pids)?  Exactly
 * while the two share one mm (kcmp KCMP_VM): the child's exec or exit ends
 * both.  wchan cannot tell: a freeze or a thaw wakes the sleeping parent for
 * a moment (state R, wchan 0) and it sleeps on. */
bool vfork_pair(pid_t parent, pid_t child);
int cg_kill(const char *cg);
int cg_list(const char *cg, const char *file, pid_t **out, int *n);  /* recursive */

int seize_pod(struct dump_ctx *d, char **cgroups, int ncg);
/* Put back registers and masks, remove injected scratch, detach; thaw. */
void release_pod(struct dump_ctx *d, bool killed);

#endif
