/*
 * pidfd.c — pidfds that refer to a process of the pod.
 *
 * Dump: fdinfo "Pid:" is the target's pid in the pid namespace of the /proc
 * the engine reads (the host's); it is mapped to the pod pid through the
 * process tree.  A pidfd to a process outside the pod, or to one already
 * reaped (Pid: -1), fails the dump.
 *
 * Restore: the target does not exist yet when the inventory is made, so the
 * inventory holds /dev/null in its place; in the late phase (every process
 * of the pod exists) pidfd_open(pod pid) is injected into each holder — it
 * runs in the pod's pid namespace — and dup3()ed over the placeholder.  A
 * pidfd shared between processes becomes one description per process, and
 * a pidfd inside an epoll set is refused at restore (the set was filled
 * with the placeholder).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

static int pidfd_match(const struct fd_src *s)
{
	return !strcmp(s->link, "anon_inode:[pidfd]");
}

static int pidfd_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	char *info = fd_src_fdinfo(s);
	if (!info)
		return -EIO;
	long hpid = strstr(info, "\nPid:") ? strtol(strstr(info, "\nPid:") + 5, NULL, 10) : -1;
	free(info);
	for (int i = 0; i < d->nprocs && hpid > 0; i++)
		if (d->procs[i].hpid == hpid) {
			f->kind = FK_PIDFD;
			SETOPT(f, target_pid, d->procs[i].tree->pid);
			return 0;
		}
	log_err("dump: pid %u fd %d: pidfd to %s: not supported", s->p->tree->pid, s->fd,
		hpid > 0 ? "a process outside the pod" : "a process already reaped");
	return -ENOTSUP;
}

static int pidfd_placeholder(struct rst_ctx *r, ImgFile *f)
{
	(void)r;
	(void)f;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int pidfd_restore_late(struct rst_ctx *r, struct rproc *p)
{
	for (size_t i = 0; i < p->core->n_fds; i++) {
		ImgFd *e = p->core->fds[i];
		ImgFile *f = NULL;
		for (size_t k = 0; k < r->files->n_files && !f; k++)
			if (r->files->files[k]->id == e->file_id)
				f = r->files->files[k];
		if (!f || f->kind != FK_PIDFD)
			continue;
		int err = rq_flush(r, p);     /* injected one by one below */
		if (err < 0)
			return err;
		long fd = inj_call(&p->inj, "restore: pidfd_open", SYS_pidfd_open, f->target_pid,
				   f->flags & (O_NONBLOCK | O_EXCL), 0, 0, 0, 0);
		if (fd < 0) {
			log_err("restore: pid %u fd %u: pidfd to pid %u: %s", p->tree->pid, e->fd, f->target_pid,
				strerror((int)-fd));
			return (int)fd;
		}
		long x = inj_call(&p->inj, "restore: dup3 pidfd", SYS_dup3, (uint64_t)fd, e->fd,
				  e->cloexec ? O_CLOEXEC : 0, 0, 0, 0);
		inj_call(&p->inj, "restore: close", SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0);
		if (x < 0)
			return (int)x;
	}
	return 0;
}

const struct fd_kind fdkind_pidfd = {
	.name = "pidfd",
	.match = pidfd_match,
	.dump = pidfd_dump,
	.kinds = { FK_PIDFD },
	.restore = pidfd_placeholder,
};
