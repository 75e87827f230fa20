/*
 * sysv.c — SysV IPC of the pod's IPC namespace: the glue.
 *
 * Dump: at the end (every process's mappings known), the engine's thread
 * joins the pod's IPC namespace (setns on /proc/INIT/ns/ipc: namespaces are
 * per thread, so the page-reading threads are not affected), saves the
 * namespace's limits (/proc/sys/kernel/{shm,msg,sem}* show the reader's
 * IPC namespace), then every shm segment, semaphore set and message queue
 * (sysv_shm.c, sysv_sem.c, sysv_msg.c), and goes back.  A pod that shares
 * the node's IPC namespace has nothing saved (its objects are the node's);
 * if it has segments attached the dump fails.
 *
 * Restore: the pod's init runs sysv_restore_early before any memory is
 * mapped; each object is created after writing its id to
 * /proc/sys/kernel/{shm,sem,msg}_next_id (CONFIG_CHECKPOINT_RESTORE; needs
 * CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the namespace), so keys and
 * ids are the same.  The saved limits are written last: creating may need
 * them raised (msgmnb/msgmax) without CAP_SYS_RESOURCE.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "agent/engine/sysv.h"
#include "lib/log.h"

static const char *const sysctls[] = {
	"shmmax", "shmall", "shmmni", "msgmax", "msgmnb", "msgmni", "sem", "shm_rmid_forced", NULL,
};

ImgIpcPerm *sysv_perm_new(const struct ipc_perm *ip, int id)
{
	ImgIpcPerm *pm = xcalloc(1, sizeof(*pm));
	img_ipc_perm__init(pm);
	pm->key = ip->__key;
	pm->id = id;
	pm->uid = ip->uid;
	pm->gid = ip->gid;
	pm->mode = ip->mode & 0777;
	return pm;
}

char *sysv_sysctl_get(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
	char *s = read_file_str(path, NULL);
	if (s)
		s[strcspn(s, "\n")] = 0;
	return s;
}

int sysv_sysctl_set(const char *name, const char *value)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
	int err = write_str(path, value);
	if (err < 0)
		log_err("restore: SysV IPC: write %s = %s: %s", path, value, strerror(-err));
	return err;
}

int sysv_next_id(const char *what, int id)
{
	char name[32], v[16];
	snprintf(name, sizeof(name), "%s_next_id", what);
	snprintf(v, sizeof(v), "%d", id);
	return sysv_sysctl_set(name, v);
}

int sysv_check_id(const char *what, const ImgIpcPerm *pm, int got)
{
	if (got < 0) {
		log_err("restore: SysV %s key %#x id %d: %s", what, (unsigned)pm->key, pm->id, strerror(errno));
		return -errno;
	}
	if (got != pm->id) {
		log_err("restore: SysV %s key %#x: got id %d instead of %d", what, (unsigned)pm->key, got, pm->id);
		return -EEXIST;
	}
	return 0;
}

static bool has_sysv_vma(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++)
		for (size_t k = 0; d->procs[i].core && k < d->procs[i].core->n_vmas; k++)
			if (d->procs[i].core->vmas[k]->kind == VK_SYSV)
				return true;
	return false;
}

static int sysv_dump_finish(struct dump_ctx *d)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", d->procs[0].hpid);
	int pod = open(path, O_RDONLY | O_CLOEXEC), self = open("/proc/thread-self/ns/ipc", O_RDONLY | O_CLOEXEC);
	struct stat ps, ss;
	int err = 0;
	if (pod < 0 || self < 0 || fstat(pod, &ps) < 0 || fstat(self, &ss) < 0) {
		err = -errno;
		log_err("dump: SysV IPC: %s: %s", path, strerror(errno));
		goto out;
	}
	if (ps.st_ino == ss.st_ino && ps.st_dev == ss.st_dev) {
		if (has_sysv_vma(d)) {
			log_err("dump: SysV shared memory attached in a pod that shares the node's IPC namespace: not supported");
			err = -ENOTSUP;
		}
		goto out;
	}
	if (setns(pod, CLONE_NEWIPC) < 0) {
		err = -errno;
		log_err("dump: SysV IPC: join the pod's IPC namespace: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; sysctls[i]; i++) {
		char *v = sysv_sysctl_get(sysctls[i]);
		if (!v)
			continue;
		ImgSysctl *s = PB_PUSH(d->files, ipc_sysctls, ImgSysctl, img_sysctl__init);
		s->name = xstrdup(sysctls[i]);
		s->value = v;
	}
	if ((err = sysv_shm_dump(d)) >= 0 && (err = sysv_sem_dump(d)) >= 0 && (err = sysv_msg_dump(d)) >= 0)
		err = sysv_shm_check_vmas(d);
	if (setns(self, CLONE_NEWIPC) < 0) {
		log_err("dump: SysV IPC: back to the engine's IPC namespace: %s", strerror(errno));
		err = -errno;
	}
out:
	if (pod >= 0)
		close(pod);
	if (self >= 0)
		close(self);
	return err;
}

const struct fd_kind fdkind_sysv = {
	.name = "SysV IPC",
	/* no .match: not a file: the namespace's objects, saved once */
	.kinds = { 0 },
	.dump_finish = sysv_dump_finish,
};

static bool valid_sysctl(const ImgSysctl *s)
{
	bool known = false;
	for (int i = 0; sysctls[i]; i++)
		known |= !strcmp(s->name, sysctls[i]);
	if (!known || strlen(s->value) > 64)
		return false;
	for (const char *c = s->value; *c; c++)
		if (!((*c >= '0' && *c <= '9') || *c == ' ' || *c == '\t' || *c == '-'))
			return false;
	return true;
}

/* objects.c, early hook: in every new task; only the init acts */
int sysv_restore_early(struct rst_ctx *r, struct rproc *p)
{
	ImgFiles *f = r->files;
	if (p != &r->procs[0] || (!f->n_sysv_shm && !f->n_sysv_sem && !f->n_sysv_msg && !f->n_ipc_sysctls))
		return 0;
	for (size_t i = 0; i < f->n_ipc_sysctls; i++)
		if (!valid_sysctl(f->ipc_sysctls[i])) {
			log_err("restore: SysV IPC: bad limit '%s' in image", f->ipc_sysctls[i]->name);
			return -EINVAL;
		}
	int err;
	if ((err = sysv_shm_restore(r)) < 0 || (err = sysv_sem_restore(r)) < 0 || (err = sysv_msg_restore(r)) < 0)
		return err;
	for (size_t i = 0; i < f->n_ipc_sysctls; i++) {
		ImgSysctl *s = f->ipc_sysctls[i];
		char *now = sysv_sysctl_get(s->name);
		bool same = now && !strcmp(now, s->value);
		free(now);
		if (!same && (err = sysv_sysctl_set(s->name, s->value)) < 0)
			return err;
	}
	return 0;
}
