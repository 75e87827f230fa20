/*
 * pipe.c — anonymous pipes and FIFOs with the bytes buffered in them.
 *
 * Dump: a new read end is opened through /proc/PID/fd/N (works for pipes and
 * FIFOs alike, without touching the task's own description), and tee(2)
 * copies the buffered bytes into a private pipe without consuming them.
 * Restore: one pipe per image pipe (capacity first, then the bytes); a FIFO
 * is opened O_RDWR once as the filler so opening either end never blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "agent/engine/fdkind.h"
#include "lib/log.h"

int pipe_dump(struct dump_ctx *d, struct dproc *p, int fd, uint32_t ino, int *unused)
{
	(void)unused;
	for (size_t i = 0; i < d->files->n_pipes; i++)
		if (d->files->pipes[i]->id == ino)
			return 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->hpid, fd);
	int rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), tmp[2] = { -1, -1 }, err = 0;
	if (rd < 0) {
		log_err("dump: pid %u fd %d: open pipe for reading: %s", p->tree->pid, fd, strerror(errno));
		return -errno;
	}
	int cap = fcntl(rd, F_GETPIPE_SZ);
	ImgPipe *pp = PB_PUSH(d->files, pipes, ImgPipe, img_pipe__init);
	pp->id = ino;
	pp->capacity = cap > 0 ? (uint32_t)cap : 65536;
	uint8_t *buf = xcalloc(1, pp->capacity);
	size_t len = 0;
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) < 0 || (cap > 0 && fcntl(tmp[1], F_SETPIPE_SZ, cap) < 0)) {
		err = -errno;
		goto out;
	}
	ssize_t n = tee(rd, tmp[1], INT_MAX, SPLICE_F_NONBLOCK);
	if (n < 0 && errno != EAGAIN) {
		err = -errno;
		goto out;
	}
	while (n > 0 && len < pp->capacity) {
		ssize_t k = read(tmp[0], buf + len, pp->capacity - len);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
out:
	if (err)
		log_err("dump: pid %u fd %d: copy pipe data: %s", p->tree->pid, fd, strerror(-err));
	pp->data.len = len;
	pp->data.data = buf;
	close(rd);
	if (tmp[0] >= 0) {
		close(tmp[0]);
		close(tmp[1]);
	}
	return err;
}

static int pipe_index(struct rst_ctx *r, uint32_t id)
{
	for (size_t i = 0; i < r->files->n_pipes; i++)
		if (r->files->pipes[i]->id == id)
			return (int)i;
	return -1;
}

static int fill(int wfd, const ImgPipe *pp)
{
	size_t off = 0;
	while (off < pp->data.len) {
		ssize_t n = write(wfd, pp->data.data + off, pp->data.len - off);
		if (n <= 0)
			return -(n < 0 ? errno : EIO);
		off += (size_t)n;
	}
	return 0;
}

/* Anonymous pipes: create and fill them all (FIFOs are filled when first opened). */
int pipes_restore_inventory(struct rst_ctx *r)
{
	size_t n = r->files->n_pipes;
	r->pipe_rfd = xcalloc(n, sizeof(int));
	r->pipe_wfd = xcalloc(n, sizeof(int));
	for (size_t i = 0; i < n; i++) {
		ImgPipe *pp = r->files->pipes[i];
		r->pipe_rfd[i] = r->pipe_wfd[i] = -1;
		if (pp->data.len > pp->capacity || pp->capacity > (1u << 30)) {
			log_err("restore: pipe %u: %zu bytes in a %u-byte pipe", pp->id, pp->data.len, pp->capacity);
			return -EINVAL;
		}
		/* a FIFO? then its file entries carry the path */
		const char *fifo = NULL;
		for (size_t k = 0; k < r->files->n_files; k++) {
			ImgFile *f = r->files->files[k];
			if (f->kind == FK_FIFO && f->has_pipe_id && f->pipe_id == pp->id)
				fifo = f->path;
		}
		char key[32];
		snprintf(key, sizeof(key), "pipe:[%u]", pp->id);
		int inh = fifo ? -1 : inherited_fd(r, key);
		if (inh >= 0) {
			/* an end held outside the pod: the caller gave us its replacement;
			 * both ends of the pod map to it, nothing is refilled */
			r->pipe_rfd[i] = r->pipe_wfd[i] = inv_move(r, fcntl(inh, F_DUPFD_CLOEXEC, 0));
			if (r->pipe_rfd[i] < 0)
				return -errno;
			continue;
		}
		if (fifo) {
			if (fifo[0] != '/')
				return -EINVAL;
			int fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0) {
				log_err("restore: fifo %s: %s", fifo, strerror(errno));
				return -errno;
			}
			r->pipe_rfd[i] = r->pipe_wfd[i] = inv_move(r, fd);
		} else {
			int p[2];
			if (pipe2(p, O_CLOEXEC) < 0)
				return -errno;
			r->pipe_rfd[i] = inv_move(r, p[0]);
			r->pipe_wfd[i] = inv_move(r, p[1]);
		}
		if (pp->capacity > 4096 && fcntl(r->pipe_wfd[i], F_SETPIPE_SZ, (int)pp->capacity) < 0)
			log_warn("restore: pipe %u: capacity %u: %s", pp->id, pp->capacity, strerror(errno));
		int fl = fcntl(r->pipe_wfd[i], F_GETFL);
		fcntl(r->pipe_wfd[i], F_SETFL, fl | O_NONBLOCK);
		int err = fill(r->pipe_wfd[i], pp);
		fcntl(r->pipe_wfd[i], F_SETFL, fl);
		if (err < 0) {
			log_err("restore: pipe %u: refill %zu bytes: %s", pp->id, pp->data.len, strerror(-err));
			return err;
		}
	}
	return 0;
}

int pipe_inv_fd(struct rst_ctx *r, ImgFile *f)
{
	int i = f->has_pipe_id ? pipe_index(r, f->pipe_id) : -1;
	if (i < 0) {
		log_err("restore: file %u: pipe missing in image", f->id);
		return -EINVAL;
	}
	int acc = (int)(f->flags & O_ACCMODE), fd;
	if (f->kind == FK_FIFO) {
		fd = open(f->path, acc | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			log_err("restore: fifo %s: %s", f->path, strerror(errno));
			return -errno;
		}
		fd = inv_move(r, fd);
	} else {
		fd = acc == O_RDONLY ? r->pipe_rfd[i] : r->pipe_wfd[i];
	}
	if (fcntl(fd, F_SETFL, (int)(f->flags & (O_NONBLOCK | O_APPEND | O_ASYNC))) < 0)
		return -errno;
	return fd;
}

/* --- the pipe kind (fdkind.h) ------------------------------------------- */

static int pipe_match(const struct fd_src *s)
{
	return !strncmp(s->link, "pipe:", 5) ||
	       (S_ISFIFO(s->st.st_mode) && s->link[0] == '/' && !strstr(s->link, " (deleted)"));
}

static int pipe_kind_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	f->kind = !strncmp(s->link, "pipe:", 5) ? FK_PIPE : FK_FIFO;
	if (f->kind == FK_FIFO)
		f->path = xstrdup(s->link);
	SETOPT(f, pipe_id, (uint32_t)s->st.st_ino);
	return pipe_dump(d, s->p, s->fd, (uint32_t)s->st.st_ino, NULL);
}

const struct fd_kind fdkind_pipe = {
	.name = "pipe",
	.match = pipe_match,
	.dump = pipe_kind_dump,
	.kinds = { FK_PIPE, FK_FIFO },
	.prepare = pipes_restore_inventory,
	.restore = pipe_inv_fd,
};
