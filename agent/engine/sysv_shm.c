/*
 * sysv_shm.c — SysV shared memory segments of the pod's IPC namespace.
 *
 * Dump (in the pod's IPC namespace, sysv.c): every segment, found with
 * shmctl(SHM_INFO) + shmctl(SHM_STAT_ANY) by index, is saved with key, id,
 * owner, mode, size, whether it was removed while still attached (SHM_DEST),
 * and its content: the engine attaches it read-only, copies it (trailing
 * zero pages left out) and detaches.  A segment mapped in a process is a
 * VK_SYSV VMA (mm.c; the inode of the "/SYSV%08x" mapping is the segment's
 * id): restore re-attaches it with shmat at the same address.
 *
 * Restore (in the pod's init): shm_next_id = id, shmget(key, size,
 * IPC_CREAT|IPC_EXCL), IPC_SET owner/mode, content written through a
 * temporary attach.  The processes' own attaches are injected by mm.c.
 * A segment removed while attached is removed again (IPC_RMID) by an
 * injected shmctl once every process is mapped.
 *
 * SHM_LOCK is applied again.  Not kept: creator uid/gid and pid (the
 * restorer's), last attach/detach times and pid.  The dump's own attach updates shm_atime/dtime
 * and shm_lpid of a pod that goes on running (--leave-running).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>

#include "agent/engine/sysv.h"
#include "lib/log.h"

#define SHM_SIZE_MAX (64ull << 30)   /* a hostile image cannot ask for more */

static size_t used_len(const uint8_t *p, size_t len)
{
	static const uint8_t zero[4096];
	while (len) {
		size_t off = (len - 1) / PAGE * PAGE;
		if (memcmp(p + off, zero, len - off))
			break;
		len = off;
	}
	return len;
}

int sysv_shm_dump(struct dump_ctx *d)
{
	struct shm_info info;
	int max = shmctl(0, SHM_INFO, (struct shmid_ds *)&info);
	uint64_t total = 0;
	for (int idx = 0; idx <= max; idx++) {
		struct shmid_ds ds;
		int id = shmctl(idx, SHM_STAT_ANY, &ds);
		if (id < 0)
			continue;           /* unused index */
		if ((total += ds.shm_segsz) > SYSV_SHM_CONTENT_MAX) {
			log_err("dump: SysV shared memory id %d: more than %llu bytes of segments: not supported", id,
				SYSV_SHM_CONTENT_MAX);
			return -ENOTSUP;
		}
		void *m = shmat(id, NULL, SHM_RDONLY);
		if (m == (void *)-1) {
			log_err("dump: SysV shared memory id %d: attach: %s", id, strerror(errno));
			return -errno;
		}
		ImgSysvShm *s = PB_PUSH(d->files, sysv_shm, ImgSysvShm, img_sysv_shm__init);
		s->perm = sysv_perm_new(&ds.shm_perm, id);
		s->size = ds.shm_segsz;
		s->content.len = used_len(m, ds.shm_segsz);
		s->content.data = xcalloc(1, s->content.len + 1);
		memcpy(s->content.data, m, s->content.len);
		if (ds.shm_perm.mode & SHM_DEST)
			SETOPT(s, dest, 1);
		if (ds.shm_perm.mode & SHM_LOCKED)
			SETOPT(s, locked, 1);
		shmdt(m);
	}
	return 0;
}

static ImgSysvShm *find_shm(ImgFiles *f, uint32_t id)
{
	for (size_t i = 0; i < f->n_sysv_shm; i++)
		if ((uint32_t)f->sysv_shm[i]->perm->id == id)
			return f->sysv_shm[i];
	return NULL;
}

int sysv_shm_check_vmas(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		for (size_t k = 0; p->core && k < p->core->n_vmas; k++) {
			ImgVma *v = p->core->vmas[k];
			if (v->kind != VK_SYSV)
				continue;
			ImgSysvShm *s = find_shm(d->files, v->shm_id);
			if (!s) {
				log_err("dump: pid %u vma %#llx: SysV shared memory id %u not found in the pod's IPC namespace",
					p->tree->pid, (unsigned long long)v->start, v->shm_id);
				return -ENOTSUP;
			}
			if (v->pgoff || v->end - v->start != (s->size + PAGE - 1) / PAGE * PAGE) {
				log_err("dump: pid %u vma %#llx-%#llx: SysV shared memory id %u mapped in part (split by mprotect/munmap/mremap): not supported",
					p->tree->pid, (unsigned long long)v->start, (unsigned long long)v->end, v->shm_id);
				return -ENOTSUP;
			}
		}
	}
	return 0;
}

int sysv_shm_restore(struct rst_ctx *r)
{
	for (size_t i = 0; i < r->files->n_sysv_shm; i++) {
		ImgSysvShm *s = r->files->sysv_shm[i];
		ImgIpcPerm *pm = s->perm;
		if (!pm || pm->id < 0 || !s->size || s->size > SHM_SIZE_MAX || s->content.len > s->size) {
			log_err("restore: SysV shared memory %zu: bad record", i);
			return -EINVAL;
		}
		int err = sysv_next_id("shm", pm->id);
		if (err < 0)
			return err;
		int id = shmget(pm->key, s->size, IPC_CREAT | IPC_EXCL | (int)(pm->mode & 0777));
		if ((err = sysv_check_id("shared memory", pm, id)) < 0)
			return err;
		struct shmid_ds ds;
		if (shmctl(id, IPC_STAT, &ds) < 0)
			return -errno;
		ds.shm_perm.uid = pm->uid;
		ds.shm_perm.gid = pm->gid;
		ds.shm_perm.mode = pm->mode & 0777;
		if (shmctl(id, IPC_SET, &ds) < 0) {
			log_err("restore: SysV shared memory id %d: owner %u:%u: %s", id, pm->uid, pm->gid, strerror(errno));
			return -errno;
		}
		if (s->has_locked && s->locked && shmctl(id, SHM_LOCK, NULL) < 0) {
			log_err("restore: SysV shared memory id %d: SHM_LOCK: %s", id, strerror(errno));
			return -errno;
		}
		if (s->content.len) {
			void *m = shmat(id, NULL, 0);
			if (m == (void *)-1) {
				log_err("restore: SysV shared memory id %d: attach: %s", id, strerror(errno));
				return -errno;
			}
			memcpy(m, s->content.data, s->content.len);
			shmdt(m);
		}
	}
	return 0;
}

/* objects.c, late hook: once the last live process is mapped, segments that
 * had been removed while attached are removed again (they live on while
 * attached, with key IPC_PRIVATE, as before) */
int sysv_shm_restore_late(struct rst_ctx *r, struct rproc *p)
{
	int last = r->nprocs - 1;
	while (last > 0 && r->procs[last].tree->zombie)
		last--;
	if (p != &r->procs[last])
		return 0;
	for (size_t i = 0; i < r->files->n_sysv_shm; i++) {
		ImgSysvShm *s = r->files->sysv_shm[i];
		if (!s->has_dest || !s->dest)
			continue;
		int err = rq_flush(r, p);     /* injected one by one below */
		if (err < 0)
			return err;
		long x = inj_call(&p->inj, "restore: SysV shm IPC_RMID", SYS_shmctl, (uint64_t)s->perm->id, IPC_RMID,
				  0, 0, 0, 0);
		if (x < 0)
			return (int)x;
	}
	return 0;
}
