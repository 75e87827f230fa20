/*
 * files.c — fd tables and open file descriptions: regular files (offset,
 * flags), directories, a few character devices, files behind mappings; the
 * restore-side "inventory".
 *
 * Dump: /proc/PID/fd + fdinfo (pos, flags incl. the fd's O_CLOEXEC); a
 * duplicate taken with pidfd_getfd gives fstat; descriptions shared between
 * fds or processes (dup, fork) are found with kcmp(KCMP_FILE) and stored once.
 * Anything not handled (sockets, eventfd, ...) fails the dump with pid, fd
 * and type, before the commit point, so the pod runs on unharmed.
 *
 * Restore: before the tree is forked, the engine opens every description
 * once, at fd numbers above every fd of the image (the inventory); each
 * forked task inherits it, dup3()s what it needs to the image's numbers
 * (so sharing between processes is kept), and closes the rest.  Mapping
 * code uses inventory fds by number; the inventory is closed last.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

int pipe_dump(struct dump_ctx *d, struct dproc *p, int fd, uint32_t ino, int *cap);
int pipes_restore_inventory(struct rst_ctx *r);
int pipe_inv_fd(struct rst_ctx *r, ImgFile *f);

static const char *const ok_chr[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", NULL };

uint32_t mapped_file_id(struct dump_ctx *d, const char *path, uint32_t flags)
{
	for (size_t i = 0; i < d->files->n_files; i++) {
		ImgFile *f = d->files->files[i];
		if (f->kind == FK_MAPPED && f->flags == flags && !strcmp(f->path, path))
			return f->id;
	}
	ImgFile *f = PB_PUSH(d->files, files, ImgFile, img_file__init);
	f->id = d->next_file_id++;
	f->kind = FK_MAPPED;
	f->path = xstrdup(path);
	f->flags = flags;
	struct stat st;
	if (stat(path, &st) == 0) {
		SETOPT(f, size, (uint64_t)st.st_size);
		SETOPT(f, mtime_ns, (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec);
	}
	return f->id;
}

static int fdinfo(pid_t pid, int fd, uint64_t *pos, uint32_t *flags)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	char *s = read_file_str(path, NULL);
	if (!s)
		return -errno;
	char *p = strstr(s, "pos:");
	*pos = p ? strtoull(p + 4, NULL, 10) : 0;
	p = strstr(s, "flags:");
	*flags = p ? (uint32_t)strtoul(p + 6, NULL, 8) : 0;
	free(s);
	return 0;
}

/* Content of an unlinked file or memfd (read through our duplicate, with pread
 * so the shared offset does not move). */
static int save_content(ImgFile *f, int lfd, const struct stat *st, uint32_t pid, int fd)
{
	if ((uint64_t)st->st_size > MAX_SAVED_FILE) {
		log_err("dump: pid %u fd %d: deleted file/memfd of %lld bytes is too big to save", pid, fd,
			(long long)st->st_size);
		return -EFBIG;
	}
	uint8_t *buf = xcalloc(1, (size_t)st->st_size);
	size_t off = 0;
	while (off < (size_t)st->st_size) {
		ssize_t n = pread(lfd, buf + off, (size_t)st->st_size - off, (off_t)off);
		if (n < 0) {
			int e = errno;
			free(buf);
			log_err("dump: pid %u fd %d: read content: %s", pid, fd, strerror(e));
			return -e;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	SETOPT(f, content, ((ProtobufCBinaryData){ off, buf }));
	return 0;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int files_dump(struct dump_ctx *d, struct dproc *p)
{
	char path[64], link[4096];
	snprintf(path, sizeof(path), "/proc/%d/fd", p->hpid);
	DIR *dir = opendir(path);
	if (!dir)
		return -errno;
	int *fds = NULL, nfds = 0, err = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		fds = realloc(fds, (size_t)(nfds + 1) * sizeof(int));
		fds[nfds++] = atoi(de->d_name);
	}
	closedir(dir);
	qsort(fds, (size_t)nfds, sizeof(int), cmp_int);
	int pidfd = (int)syscall(SYS_pidfd_open, p->hpid, 0);
	if (pidfd < 0) {
		free(fds);
		return -errno;
	}
	for (int i = 0; i < nfds && !err; i++) {
		int fd = fds[i], lfd = -1;
		uint64_t pos = 0;
		uint32_t flags = 0;
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->hpid, fd);
		if (read_link(path, link, sizeof(link)) < 0 || fdinfo(p->hpid, fd, &pos, &flags) < 0) {
			err = -errno;
			log_err("dump: pid %u fd %d: %s", p->tree->pid, fd, strerror(errno));
			break;
		}
		if (!strncmp(link, "socket:", 7) ||
		    (!strncmp(link, "anon_inode:", 11) && strcmp(link, "anon_inode:[eventfd]") &&
		     strcmp(link, "anon_inode:[timerfd]"))) {
			log_err("dump: pid %u fd %d: %s is not supported", p->tree->pid, fd, link);
			err = -ENOTSUP;
			break;
		}
		lfd = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
		struct stat st;
		if (lfd < 0 || fstat(lfd, &st) < 0) {
			err = -errno;
			log_err("dump: pid %u fd %d: take a copy: %s", p->tree->pid, fd, strerror(errno));
			if (lfd >= 0)
				close(lfd);
			break;
		}
		/* a description seen before (dup, inherited)? */
		uint32_t id = 0;
		for (int k = 0; k < d->nfdescs && !id; k++) {
			struct fdesc *o = &d->fdescs[k];
			if (o->dev == st.st_dev && o->ino == st.st_ino &&
			    syscall(SYS_kcmp, o->hpid, p->hpid, KCMP_FILE, o->fd, fd) == 0)
				id = o->id;
		}
		if (!id) {
			ImgFile *f = xcalloc(1, sizeof(*f));
			img_file__init(f);
			f->id = id = d->next_file_id++;
			f->flags = flags & ~(uint32_t)O_CLOEXEC;
			if (!strncmp(link, "anon_inode:", 11)) {
				char ip[64];
				snprintf(ip, sizeof(ip), "/proc/%d/fdinfo/%d", p->hpid, fd);
				char *info = read_file_str(ip, NULL);
				err = !info ? -errno : !strcmp(link, "anon_inode:[eventfd]") ? eventfd_dump(f, info)
										: timerfd_dump(f, info);
				free(info);
				if (err < 0)
					log_err("dump: pid %u fd %d: %s: %s", p->tree->pid, fd, link, strerror(-err));
			} else if (!strncmp(link, "pipe:", 5)) {
				f->kind = FK_PIPE;
				SETOPT(f, pipe_id, (uint32_t)st.st_ino);
				err = pipe_dump(d, p, fd, (uint32_t)st.st_ino, NULL);
			} else if (!strncmp(link, "/memfd:", 7) && S_ISREG(st.st_mode)) {
				f->kind = FK_MEMFD;
				char *del = strstr(link, " (deleted)");
				if (del)
					*del = 0;
				f->path = xstrdup(link + 7);
				SETOPT(f, pos, pos);
				int seals = fcntl(lfd, F_GET_SEALS);
				if (seals > 0)
					SETOPT(f, seals, (uint32_t)seals);
				err = save_content(f, lfd, &st, p->tree->pid, fd);
			} else if (strstr(link, " (deleted)") && S_ISREG(st.st_mode) && link[0] == '/') {
				f->kind = FK_REG;
				*strstr(link, " (deleted)") = 0;
				f->path = xstrdup(link);
				SETOPT(f, pos, pos);
				SETOPT(f, deleted, 1);
				err = save_content(f, lfd, &st, p->tree->pid, fd);
			} else if (strstr(link, " (deleted)") || link[0] != '/') {
				log_err("dump: pid %u fd %d: '%s' is not supported", p->tree->pid, fd, link);
				err = -ENOTSUP;
			} else if (S_ISFIFO(st.st_mode)) {
				f->kind = FK_FIFO;
				f->path = xstrdup(link);
				SETOPT(f, pipe_id, (uint32_t)st.st_ino);
				err = pipe_dump(d, p, fd, (uint32_t)st.st_ino, NULL);
			} else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
				f->kind = S_ISREG(st.st_mode) ? FK_REG : FK_DIR;
				f->path = xstrdup(link);
				SETOPT(f, pos, pos);
				SETOPT(f, size, (uint64_t)st.st_size);
			} else if (S_ISCHR(st.st_mode)) {
				bool ok = false;
				for (int k = 0; ok_chr[k]; k++)
					ok |= !strcmp(ok_chr[k], link);
				if (!ok) {
					log_err("dump: pid %u fd %d: character device %s is not supported",
						p->tree->pid, fd, link);
					err = -ENOTSUP;
				}
				f->kind = FK_CHR;
				f->path = xstrdup(link);
			} else {
				log_err("dump: pid %u fd %d: file type %o of '%s' is not supported", p->tree->pid, fd,
					st.st_mode & S_IFMT, link);
				err = -ENOTSUP;
			}
			d->files->files = realloc(d->files->files, (d->files->n_files + 1) * sizeof(ImgFile *));
			d->files->files[d->files->n_files++] = f;
			d->fdescs = realloc(d->fdescs, (size_t)(d->nfdescs + 1) * sizeof(*d->fdescs));
			d->fdescs[d->nfdescs++] = (struct fdesc){ p->hpid, fd, st.st_dev, st.st_ino, id };
		}
		close(lfd);
		ImgFd *e = PB_PUSH(p->core, fds, ImgFd, img_fd__init);
		e->fd = (uint32_t)fd;
		e->file_id = id;
		e->cloexec = !!(flags & O_CLOEXEC);
	}
	close(pidfd);
	free(fds);
	return err;
}

/* ------------------------------------------------------------------ restore */

static int file_index(struct rst_ctx *r, uint32_t id)
{
	for (size_t i = 0; i < r->files->n_files; i++)
		if (r->files->files[i]->id == id)
			return (int)i;
	return -1;
}

int inherited_fd(struct rst_ctx *r, const char *key)
{
	for (int i = 0; key && i < r->ninherit; i++)
		if (!strcmp(r->inherit[i].key, key))
			return r->inherit[i].fd;
	return -1;
}

int inv_fd_for_file(struct rst_ctx *r, uint32_t id)
{
	int i = file_index(r, id);
	return i < 0 ? -1 : r->file_fd[i];
}

int inv_fd_for_shm(struct rst_ctx *r, uint32_t id)
{
	for (size_t i = 0; i < r->files->n_shms; i++)
		if (r->files->shms[i]->id == id)
			return r->shm_fd[i];
	return -1;
}

/* Move fd into the inventory range (>= inv_base). */
int inv_move(struct rst_ctx *r, int fd)
{
	if (fd < 0 || fd >= r->inv_base)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, r->inv_base);
	int e = errno;
	close(fd);
	errno = e;
	return n;
}

/* A memfd or an unlinked file: a new anonymous inode with the saved bytes
 * (O_TMPFILE in the old directory, else a memfd), reopened through
 * /proc/self/fd with the original access mode and flags. */
static int restore_saved(struct rst_ctx *r, ImgFile *f)
{
	int tmp = -1, fd = -1;
	if (f->kind == FK_MEMFD) {
		tmp = memfd_create(f->path ? f->path : "", MFD_CLOEXEC | (f->has_seals ? MFD_ALLOW_SEALING : 0));
	} else {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s", f->path ? f->path : "/");
		char *slash = strrchr(dir, '/');
		if (slash)
			slash[slash == dir ? 1 : 0] = 0;
		tmp = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (tmp < 0)
			tmp = memfd_create("zapc-deleted", MFD_CLOEXEC);
	}
	if (tmp < 0) {
		log_err("restore: file %u (%s): %s", f->id, f->path ? f->path : "", strerror(errno));
		return -errno;
	}
	size_t off = 0;
	while (f->has_content && off < f->content.len) {
		ssize_t n = write(tmp, f->content.data + off, f->content.len - off);
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(tmp);
			log_err("restore: file %u: write content: %s", f->id, strerror(e));
			return -e;
		}
		off += (size_t)n;
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tmp);
	uint32_t fl = f->flags & ~(uint32_t)(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY);
	fd = open(proc, (int)(fl | O_CLOEXEC));
	if (fd < 0) {
		int e = errno;
		close(tmp);
		log_err("restore: file %u: reopen: %s", f->id, strerror(e));
		return -e;
	}
	if (f->has_seals && f->seals)
		fcntl(tmp, F_ADD_SEALS, (int)f->seals);
	close(tmp);
	if (f->has_pos && lseek(fd, (off_t)f->pos, SEEK_SET) < 0 && f->pos) {
		close(fd);
		return -errno;
	}
	return inv_move(r, fd);
}

int files_restore_inventory(struct rst_ctx *r)
{
	ImgFiles *fs = r->files;
	int err;
	if (fs->n_files > MAX_FILES || fs->n_shms > MAX_FILES || fs->n_pipes > MAX_FILES) {
		log_err("restore: too many files in image");
		return -E2BIG;
	}
	r->file_fd = xcalloc(fs->n_files, sizeof(int));
	r->shm_fd = xcalloc(fs->n_shms, sizeof(int));
	for (size_t i = 0; i < fs->n_shms; i++) {
		ImgShm *s = fs->shms[i];
		int fd = memfd_create("zapc-shm", MFD_CLOEXEC);
		if (fd < 0 || s->size > (1ull << 40) || ftruncate(fd, (off_t)s->size) < 0) {
			log_err("restore: shared memory %u (%llu bytes): %s", s->id, (unsigned long long)s->size,
				strerror(errno));
			return -errno;
		}
		r->shm_fd[i] = inv_move(r, fd);
	}
	if ((err = pipes_restore_inventory(r)) < 0)
		return err;
	for (size_t i = 0; i < fs->n_files; i++) {
		ImgFile *f = fs->files[i];
		for (size_t k = 0; k < i; k++)
			if (fs->files[k]->id == f->id) {
				log_err("restore: file id %u twice in image", f->id);
				return -EINVAL;
			}
		int fd = -1;
		uint32_t fl = f->flags & ~(uint32_t)(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY);
		switch (f->kind) {
		case FK_REG: case FK_DIR: case FK_CHR: case FK_MAPPED:
			if (f->kind == FK_REG && f->has_deleted && f->deleted) {
				fd = restore_saved(r, f);
				if (fd < 0)
					return fd;
				break;
			}
			if (!f->path || f->path[0] != '/') {
				log_err("restore: file %u has no absolute path", f->id);
				return -EINVAL;
			}
			if (f->kind != FK_MAPPED && inherited_fd(r, f->path) >= 0) {
				fd = inv_move(r, fcntl(inherited_fd(r, f->path), F_DUPFD_CLOEXEC, 0));
				break;
			}
			fd = open(f->path, (int)(fl | O_CLOEXEC));
			if (fd < 0) {
				log_err("restore: open %s: %s", f->path, strerror(errno));
				return -errno;
			}
			if (f->kind == FK_MAPPED && f->has_size) {
				struct stat st;
				if (fstat(fd, &st) == 0 && (uint64_t)st.st_size != f->size)
					log_warn("restore: %s changed size since the checkpoint", f->path);
			}
			if ((f->kind == FK_REG || f->kind == FK_DIR) && f->has_pos &&
			    lseek(fd, (off_t)f->pos, SEEK_SET) < 0 && f->pos) {
				log_err("restore: %s: seek to %llu: %s", f->path, (unsigned long long)f->pos,
					strerror(errno));
				close(fd);
				return -errno;
			}
			fd = inv_move(r, fd);
			break;
		case FK_EVENTFD: case FK_TIMERFD:
			fd = f->kind == FK_EVENTFD ? eventfd_restore(f) : timerfd_restore(f);
			if (fd < 0)
				return fd;
			fd = inv_move(r, fd);
			break;
		case FK_MEMFD:
			fd = restore_saved(r, f);
			if (fd < 0)
				return fd;
			break;
		case FK_PIPE: case FK_FIFO:
			fd = pipe_inv_fd(r, f);
			if (fd < 0)
				return fd;
			break;
		default:
			log_err("restore: file %u: unknown kind %d", f->id, f->kind);
			return -EINVAL;
		}
		if (fd < 0)
			return -errno;
		r->file_fd[i] = fd;
	}
	return 0;
}

/* In the new task: fds to their numbers, close everything else below the inventory. */
int files_restore_early(struct rst_ctx *r, struct rproc *p)
{
	ImgProcCore *c = p->core;
	uint8_t *want = xcalloc((size_t)r->inv_base, 1);
	for (size_t i = 0; i < c->n_fds; i++) {
		ImgFd *f = c->fds[i];
		int src = inv_fd_for_file(r, f->file_id);
		if (src < 0 || f->fd >= (uint32_t)r->inv_base) {
			log_err("restore: pid %u fd %u: file %u missing in image", p->tree->pid, f->fd, f->file_id);
			free(want);
			return -EINVAL;
		}
		if (dup3(src, (int)f->fd, f->cloexec ? O_CLOEXEC : 0) < 0) {
			log_err("restore: pid %u fd %u: %s", p->tree->pid, f->fd, strerror(errno));
			free(want);
			return -errno;
		}
		want[f->fd] = 1;
	}
	for (int fd = 0; fd < r->inv_base; fd++)
		if (!want[fd])
			close(fd);
	free(want);
	return 0;
}
