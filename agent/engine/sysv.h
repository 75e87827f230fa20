/*
 * sysv.h — SysV IPC of the pod's IPC namespace (internal to sysv*.c).
 *
 * sysv.c enters the pod's IPC namespace at the end of the dump and calls
 * each object type's dump; on restore the pod's init (still engine code, in
 * its new IPC namespace) calls each type's restore before any process's
 * memory is mapped, so attached shm segments can be re-attached (mm.c).
 */
#ifndef ZAPC_ENGINE_SYSV_H
#define ZAPC_ENGINE_SYSV_H

#include <sys/ipc.h>

#include "agent/engine/engine.h"

#define SYSV_SHM_CONTENT_MAX (256ull << 20)

/* dump side: called with the engine's thread inside the pod's IPC ns */
int sysv_shm_dump(struct dump_ctx *d);
int sysv_sem_dump(struct dump_ctx *d);
int sysv_msg_dump(struct dump_ctx *d);
/* every VK_SYSV mapping names a saved segment and covers it whole */
int sysv_shm_check_vmas(struct dump_ctx *d);

/* restore side: in the pod's init, in the pod's IPC namespace */
int sysv_shm_restore(struct rst_ctx *r);
int sysv_sem_restore(struct rst_ctx *r);
int sysv_msg_restore(struct rst_ctx *r);
/* from the engine, once every process is mapped: IPC_RMID of segments that
 * had been removed while attached */
int sysv_shm_restore_late(struct rst_ctx *r, struct rproc *p);

/* helpers (sysv.c) */
ImgIpcPerm *sysv_perm_new(const struct ipc_perm *ip, int id);
/* write ID to /proc/sys/kernel/WHAT_next_id so the next object gets it */
int sysv_next_id(const char *what, int id);
/* read / write /proc/sys/kernel/NAME (value without the newline) */
char *sysv_sysctl_get(const char *name);
int sysv_sysctl_set(const char *name, const char *value);
/* check an id the kernel returned against the saved one */
int sysv_check_id(const char *what, const ImgIpcPerm *pm, int got);

#endif
