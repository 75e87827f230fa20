/*
 * epoll.c — epoll instances with their whole interest list.
 *
 * Dump: every "tfd: N events: E data: D ..." line of the epoll's fdinfo is
 * one watched (file, fd number) pair.  The watched file is found by
 * kcmp(KCMP_EPOLL_TFD), which compares a file held at some fd of some process
 * with the file the epoll registered — it works even when the watcher closed
 * its fd since.  The image records a (pod pid, fd) that holds that file; a
 * watched file no pod process holds any more fails the dump.
 *
 * Restore: epoll_create1 for each instance; once every description exists
 * (the `finish` hook) each pair is re-added with epoll_ctl.  The kernel keys
 * an item by (file, fd number) and EPOLL_CTL_MOD/DEL look it up by the
 * number the program uses, so the target is put at its original number in
 * the engine for the call (whatever the engine had there is moved aside and
 * put back); closing that temporary fd does not remove the item (items go
 * only when the file itself is released).  Epoll inside epoll works the same
 * way.  Level-triggered readiness is recomputed by the kernel on ADD; a
 * pending edge of an EPOLLET item is not kept (docs/engine-objects.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

static int epoll_match(const struct fd_src *s)
{
	return !strcmp(s->link, "anon_inode:[eventpoll]");
}

/* The watched file (epoll efd of the process epid, target tfd/toff) is fd of hpid. */
struct epoll_target {
	pid_t epid;
	struct kcmp_epoll_slot slot;
};

static bool holds_target(pid_t hpid, int fd, void *arg)
{
	struct epoll_target *t = arg;
	return syscall(SYS_kcmp, hpid, t->epid, KCMP_EPOLL_TFD, fd, &t->slot) == 0;
}

/* A (process, fd) of the pod holding the file that epoll (s) watches as tfd/toff. */
static int find_holder(struct dump_ctx *d, const struct fd_src *s, uint32_t tfd, uint32_t toff,
		       uint32_t *pid, uint32_t *fd)
{
	struct epoll_target t = { s->p->hpid, { .efd = (uint32_t)s->fd, .tfd = tfd, .toff = toff } };
	/* the usual case: the watcher still holds it at the same number */
	if (holds_target(s->p->hpid, (int)tfd, &t)) {
		*pid = s->p->tree->pid;
		*fd = tfd;
		return 0;
	}
	return pod_fd_find(d, holds_target, &t, pid, fd);
}

static int epoll_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	char *info = fd_src_fdinfo(s);
	int err = 0;
	if (!info)
		return -EIO;
	f->kind = FK_EPOLL;
	for (char *line = strstr(info, "tfd:"); line && !err; line = strstr(line + 4, "tfd:")) {
		int tfd;
		unsigned events;
		unsigned long long data;
		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3 || tfd < 0) {
			log_err("dump: pid %u fd %d: epoll fdinfo line not understood", s->p->tree->pid, s->fd);
			err = -ENOTSUP;
			break;
		}
		uint32_t toff = 0;
		for (size_t k = 0; k < f->n_epoll; k++)
			toff += f->epoll[k]->fd == (uint32_t)tfd;
		ImgEpollTarget *t = PB_PUSH(f, epoll, ImgEpollTarget, img_epoll_target__init);
		t->fd = (uint32_t)tfd;
		t->events = events;
		t->data = data;
		if (find_holder(d, s, (uint32_t)tfd, toff, &t->holder_pid, &t->holder_fd) < 0) {
			log_err("dump: pid %u fd %d: epoll watches a file (added as fd %d) that no process of the pod "
				"holds any more: not supported", s->p->tree->pid, s->fd, tfd);
			err = -ENOTSUP;
		}
	}
	free(info);
	return err;
}

static int epoll_restore(struct rst_ctx *r, ImgFile *f)
{
	(void)r;
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0) {
		log_err("restore: file %u: epoll_create1: %s", f->id, strerror(errno));
		return -errno;
	}
	return fd;
}

/* The inventory fd of the file pod pid `pid` holds at `fd` (-1: none;
 * -2: a pidfd, whose inventory entry is only a placeholder, see pidfd.c). */
static int holder_file(struct rst_ctx *r, uint32_t pid, uint32_t fd)
{
	for (int i = 0; i < r->nprocs; i++) {
		ImgProcCore *c = r->procs[i].core;
		if (!c || c->pid != pid)
			continue;
		for (size_t k = 0; k < c->n_fds; k++)
			if (c->fds[k]->fd == fd) {
				for (size_t j = 0; j < r->files->n_files; j++)
					if (r->files->files[j]->id == c->fds[k]->file_id &&
					    r->files->files[j]->kind == FK_PIDFD)
						return -2;
				return inv_fd_for_file(r, c->fds[k]->file_id);
			}
	}
	return -1;
}

/* epoll_ctl(ADD) of tgt under the fd number n (see the header comment). */
static int add_as(int ep, int tgt, int n, struct epoll_event *ev)
{
	int e = fcntl(ep, F_DUPFD_CLOEXEC, n + 1), save = -1, saved_fl = 0, err = 0;
	if (e < 0)
		return -errno;
	if (tgt != n) {
		saved_fl = fcntl(n, F_GETFD);
		if (saved_fl >= 0 && (save = fcntl(n, F_DUPFD_CLOEXEC, n + 1)) < 0) {
			err = -errno;
			goto out;
		}
		if (dup3(tgt, n, O_CLOEXEC) < 0) {
			err = -errno;
			goto put_back;
		}
	}
	if (epoll_ctl(e, EPOLL_CTL_ADD, n, ev) < 0)
		err = -errno;
put_back:
	if (tgt != n) {
		if (save >= 0) {
			dup3(save, n, (saved_fl & FD_CLOEXEC) ? O_CLOEXEC : 0);
			close(save);
		} else {
			close(n);
		}
	}
out:
	close(e);
	return err;
}

static int epoll_finish(struct rst_ctx *r)
{
	for (size_t i = 0; i < r->files->n_files; i++) {
		ImgFile *f = r->files->files[i];
		if (f->kind != FK_EPOLL)
			continue;
		if (f->n_epoll > MAX_FILES)
			return -E2BIG;
		for (size_t k = 0; k < f->n_epoll; k++) {
			ImgEpollTarget *t = f->epoll[k];
			int tgt = holder_file(r, t->holder_pid, t->holder_fd), err;
			if (tgt == -2) {
				log_err("restore: epoll file %u: watches a pidfd (pid %u fd %u): not supported", f->id,
					t->holder_pid, t->holder_fd);
				return -ENOTSUP;
			}
			if (tgt < 0 || t->fd >= MAX_FDS) {
				log_err("restore: epoll file %u: watched pid %u fd %u missing in image", f->id,
					t->holder_pid, t->holder_fd);
				return -EINVAL;
			}
			struct epoll_event ev = { .events = t->events, .data.u64 = t->data };
			if ((err = add_as(r->file_fd[i], tgt, (int)t->fd, &ev)) < 0) {
				log_err("restore: epoll file %u: add fd %u (events %#x): %s", f->id, t->fd, t->events,
					strerror(-err));
				return err;
			}
		}
	}
	return 0;
}

const struct fd_kind fdkind_epoll = {
	.name = "epoll",
	.match = epoll_match,
	.dump = epoll_dump,
	.kinds = { FK_EPOLL },
	.restore = epoll_restore,
	.finish = epoll_finish,
};
