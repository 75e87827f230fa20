/*
 * seize.h — quiesce a pod: cgroup v2 freeze, PTRACE_SEIZE + INTERRUPT of every
 * thread, thaw (the queued INTERRUPTs trap every thread), and the way back
 * (resume untouched, or kill).
 */
#ifndef ZAPC_ENGINE_SEIZE_H
#define ZAPC_ENGINE_SEIZE_H

#include "agent/engine/engine.h"

int cg_freeze(const char *cg, int on);
/* Is tid asleep inside vfork(), waiting for its child to exec or exit?  Its
 * wchan says so: kernel_clone (wait_for_vfork_done is inlined there) or
 * wait_for_vfork_done (dump_main, seize_wait_all). */
bool task_in_vfork(pid_t tid);          /* waits for cgroup.events "frozen" */
int cg_kill(const char *cg);
int cg_list(const char *cg, const char *file, pid_t **out, int *n);  /* recursive */

int seize_pod(struct dump_ctx *d, char **cgroups, int ncg);
/* Put back registers and masks, remove injected scratch, detach; thaw. */
void release_pod(struct dump_ctx *d, bool killed);

#endif
