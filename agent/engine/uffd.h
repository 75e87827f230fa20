/* uffd.h — a userfaultfd of a stopped task's mm, held by the engine (uffd.c). */
#ifndef ZAPC_ENGINE_UFFD_H
#define ZAPC_ENGINE_UFFD_H
#include <stdint.h>
#include <sys/types.h>

struct inj;
/* *fd: the engine's descriptor, API done with `features` (0/-errno; inj_call logs). */
int uffd_take(struct inj *t, pid_t hpid, uint64_t features, int *fd);
#endif
