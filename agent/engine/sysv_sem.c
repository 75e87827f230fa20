/*
 * sysv_sem.c — SysV semaphore sets of the pod's IPC namespace.
 *
 * Dump (in the pod's IPC namespace, sysv.c): every set, found with
 * semctl(SEM_INFO) + semctl(SEM_STAT_ANY) by index: key, id, owner, mode
 * and the value of each semaphore (GETALL).  Restore (in the pod's init):
 * sem_next_id = id, semget(key, nsems, IPC_CREAT|IPC_EXCL), SETALL,
 * IPC_SET owner/mode.
 *
 * Not kept: SEM_UNDO adjustments (the per-process undo lists have no
 * interface to read them: a process that exits after the restore does not
 * undo what it did before the checkpoint), sempid/semncnt/semzcnt (waiters
 * are processes blocked in semop: they retry after the restore), creator
 * ids, sem_otime/ctime.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sem.h>

#include "agent/engine/sysv.h"
#include "lib/log.h"

#define NSEMS_MAX 32000   /* SEMMSL's ceiling */

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
	struct seminfo *info;
};

int sysv_sem_dump(struct dump_ctx *d)
{
	struct seminfo info;
	int max = semctl(0, 0, SEM_INFO, (union semun){ .info = &info });
	for (int idx = 0; idx <= max; idx++) {
		struct semid_ds ds;
		int id = semctl(idx, 0, SEM_STAT_ANY, (union semun){ .buf = &ds });
		if (id < 0)
			continue;
		if (ds.sem_nsems > NSEMS_MAX)
			return -EINVAL;
		unsigned short *vals = xcalloc(ds.sem_nsems + 1, sizeof(*vals));
		if (semctl(id, 0, GETALL, (union semun){ .array = vals }) < 0) {
			log_err("dump: SysV semaphore set id %d: GETALL: %s", id, strerror(errno));
			free(vals);
			return -errno;
		}
		ImgSysvSem *s = PB_PUSH(d->files, sysv_sem, ImgSysvSem, img_sysv_sem__init);
		s->perm = sysv_perm_new(&ds.sem_perm, id);
		s->n_values = ds.sem_nsems;
		s->values = xcalloc(ds.sem_nsems + 1, sizeof(*s->values));
		for (size_t k = 0; k < ds.sem_nsems; k++)
			s->values[k] = vals[k];
		free(vals);
	}
	return 0;
}

int sysv_sem_restore(struct rst_ctx *r)
{
	for (size_t i = 0; i < r->files->n_sysv_sem; i++) {
		ImgSysvSem *s = r->files->sysv_sem[i];
		ImgIpcPerm *pm = s->perm;
		if (!pm || pm->id < 0 || !s->n_values || s->n_values > NSEMS_MAX) {
			log_err("restore: SysV semaphore set %zu: bad record", i);
			return -EINVAL;
		}
		unsigned short *vals = xcalloc(s->n_values, sizeof(*vals));
		for (size_t k = 0; k < s->n_values; k++) {
			if (s->values[k] > 32767) {   /* SEMVMX */
				free(vals);
				log_err("restore: SysV semaphore set id %d: bad value", pm->id);
				return -EINVAL;
			}
			vals[k] = (unsigned short)s->values[k];
		}
		int err = sysv_next_id("sem", pm->id);
		int id = err < 0 ? -1 : semget(pm->key, (int)s->n_values, IPC_CREAT | IPC_EXCL | (int)(pm->mode & 0777));
		if (err < 0 || (err = sysv_check_id("semaphore set", pm, id)) < 0) {
			free(vals);
			return err;
		}
		struct semid_ds ds;
		if (semctl(id, 0, SETALL, (union semun){ .array = vals }) < 0 ||
		    semctl(id, 0, IPC_STAT, (union semun){ .buf = &ds }) < 0) {
			err = -errno;
			log_err("restore: SysV semaphore set id %d: values: %s", id, strerror(errno));
			free(vals);
			return err;
		}
		free(vals);
		ds.sem_perm.uid = pm->uid;
		ds.sem_perm.gid = pm->gid;
		ds.sem_perm.mode = pm->mode & 0777;
		if (semctl(id, 0, IPC_SET, (union semun){ .buf = &ds }) < 0) {
			log_err("restore: SysV semaphore set id %d: owner %u:%u: %s", id, pm->uid, pm->gid, strerror(errno));
			return -errno;
		}
	}
	return 0;
}
