/*
 * files.c — fd tables and open file descriptions; the restore-side
 * "inventory".  What each kind of file saves is in its own file, found
 * through the table in fdkinds.c (fdkind.h).
 *
 * Dump: /proc/PID/fd + fdinfo (pos, flags incl. the fd's O_CLOEXEC); a
 * duplicate taken with pidfd_getfd gives fstat; descriptions shared between
 * fds or processes (dup, fork) are found with kcmp(KCMP_FILE) and stored once.
 * Anything no kind handles fails the dump with pid, fd and type, before the
 * commit point, so the pod runs on unharmed.
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
#include "agent/engine/fdkind.h"
#include "lib/log.h"


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

/* *locked: the fdinfo has "lock:" lines (locks.c reads them) */
static int fdinfo(pid_t pid, int fd, uint64_t *pos, uint32_t *flags, bool *locked)
{
	char path[64], small[2048];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	ssize_t n = proc_read_small(path, small, sizeof(small));
	char *s = n >= 0 ? small : n == -EFBIG ? read_file_str(path, NULL) : NULL;
	if (!s) {
		errno = n == -EFBIG ? errno : (int)-n;
		return -errno;
	}
	char *p = strstr(s, "pos:");
	*pos = p ? strtoull(p + 4, NULL, 10) : 0;
	p = strstr(s, "flags:");
	*flags = p ? (uint32_t)strtoul(p + 6, NULL, 8) : 0;
	*locked = strstr(s, "\nlock:\t") != NULL;
	if (s != small)
		free(s);
	return 0;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int pod_fd_find(struct dump_ctx *d, bool (*match)(pid_t hpid, int fd, void *arg), void *arg,
		uint32_t *pid, uint32_t *fd)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *q = &d->procs[i];
		if (q->tree->zombie)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/fd", q->hpid);
		DIR *dir = opendir(path);
		struct dirent *de;
		while (dir && (de = readdir(dir))) {
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			int n = atoi(de->d_name);
			if (match(q->hpid, n, arg)) {
				*pid = q->tree->pid;
				*fd = (uint32_t)n;
				closedir(dir);
				return 0;
			}
		}
		if (dir)
			closedir(dir);
	}
	return -ENOENT;
}

int files_dump(struct dump_ctx *d, struct dproc *p)
{
	char path[64], link[4096];
	snprintf(path, sizeof(path), "/proc/%d/fd", p->hpid);
	int *fds = NULL, nfds = proc_list_numbers(path, &fds), err = 0;
	if (nfds < 0)
		return nfds;
	qsort(fds, (size_t)nfds, sizeof(int), cmp_int);
	int pidfd = -1;
	for (int i = 0; i < nfds && !err; i++) {
		int fd = fds[i], lfd = -1;
		uint64_t pos = 0;
		uint32_t flags = 0;
		bool locked = false;
		/*
		 * Most fds of a pod are inherited: a stat through the magic link
		 * (the description's dev/ino, the key of d->fdescs) and kcmp find
		 * them without taking a copy; only the fd's own flag (cloexec,
		 * fdinfo) is read then.  No stat: kcmp against every description.
		 */
		struct stat key;
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->hpid, fd);
		bool keyed = stat(path, &key) == 0;
		/* an inherited fd keeps its number: same-number candidates first */
		uint32_t id = 0;
		for (int pass = 0; pass < 2 && !id; pass++)
			for (int k = 0; k < d->nfdescs && !id; k++) {
				struct fdesc *o = &d->fdescs[k];
				if ((o->fd == fd) == (pass == 0) &&
				    (!keyed || (o->dev == key.st_dev && o->ino == key.st_ino)) &&
				    syscall(SYS_kcmp, o->hpid, p->hpid, KCMP_FILE, o->fd, fd) == 0)
					id = o->id;
			}
		if (id) {
			if (fdinfo(p->hpid, fd, &pos, &flags, &locked) < 0) {
				err = -errno;
				log_err("dump: pid %u fd %d: %s", p->tree->pid, fd, strerror(errno));
				break;
			}
			ImgFd *e = PB_PUSH(p->core, fds, ImgFd, img_fd__init);
			e->fd = (uint32_t)fd;
			e->file_id = id;
			e->cloexec = !!(flags & O_CLOEXEC);
			if (locked)
				err = locks_dump_fd(d, p, fd, id);
			continue;
		}
		if (pidfd < 0 && (pidfd = (int)syscall(SYS_pidfd_open, p->hpid, 0)) < 0) {
			err = -errno;
			log_err("dump: pid %u: pidfd_open: %s", p->tree->pid, strerror(errno));
			break;
		}
		if (read_link(path, link, sizeof(link)) < 0 || fdinfo(p->hpid, fd, &pos, &flags, &locked) < 0) {
			err = -errno;
			log_err("dump: pid %u fd %d: %s", p->tree->pid, fd, strerror(errno));
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
		if (!keyed) {
			key.st_dev = st.st_dev;
			key.st_ino = st.st_ino;
		}
		{
			ImgFile *f = xcalloc(1, sizeof(*f));
			img_file__init(f);
			f->id = id = d->next_file_id++;
			f->flags = flags & ~(uint32_t)O_CLOEXEC;
			struct fd_src src = { .p = p, .fd = fd, .lfd = lfd, .link = link, .st = st,
					      .pos = pos, .flags = f->flags };
			const struct fd_kind *const *k = fd_kinds;
			while (*k && !((*k)->match && (*k)->match(&src)))
				k++;
			if (!*k) {
				log_err("dump: pid %u fd %d: %s (file type %o) is not supported", p->tree->pid, fd,
					link, st.st_mode & S_IFMT);
				err = -ENOTSUP;
			} else {
				err = (*k)->dump(d, &src, f);
			}
			d->files->files = realloc(d->files->files, (d->files->n_files + 1) * sizeof(ImgFile *));
			d->files->files[d->files->n_files++] = f;
			d->fdescs = realloc(d->fdescs, (size_t)(d->nfdescs + 1) * sizeof(*d->fdescs));
			d->fdescs[d->nfdescs++] = (struct fdesc){ p->hpid, fd, key.st_dev, key.st_ino, id };
		}
		close(lfd);
		ImgFd *e = PB_PUSH(p->core, fds, ImgFd, img_fd__init);
		e->fd = (uint32_t)fd;
		e->file_id = id;
		e->cloexec = !!(flags & O_CLOEXEC);
		if (locked && !err)
			err = locks_dump_fd(d, p, fd, id);
	}
	if (pidfd >= 0)
		close(pidfd);
	free(fds);
	return err;
}

int files_dump_finish(struct dump_ctx *d)
{
	int err;
	for (const struct fd_kind *const *k = fd_kinds; *k; k++)
		if ((*k)->dump_finish) {
			phase_mark("files_more");
			if ((err = (*k)->dump_finish(d)) < 0)
				return err;
			phase_mark((*k)->name);     /* where the window's time goes (phase.c) */
		}
	return 0;
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

int mounts_lookup(const char *path, const char **rel);   /* mounts.c */

int rst_open(struct rst_ctx *r, const char *path, int flags, mode_t mode)
{
	static const char shm[] = "/dev/shm";
	const char *mrel;
	int mfd = mounts_lookup(path, &mrel);

	if (mfd >= 0)           /* under a mount the pod made (mounts.c) */
		return openat(mfd, mrel, flags, mode);

	if (r->shm_mnt >= 0 && !strncmp(path, shm, sizeof(shm) - 1) &&
	    (path[sizeof(shm) - 1] == '/' || !path[sizeof(shm) - 1])) {
		const char *rel = path + sizeof(shm) - 1;

		while (*rel == '/')
			rel++;
		if (strstr(path, "/..")) {
			errno = EINVAL;
			return -1;
		}
		return openat(r->shm_mnt, *rel ? rel : ".", flags, mode);
	}
	return open(path, flags, mode);
}

int rst_status_flags(int fd, uint32_t flags)
{
	if (fcntl(fd, F_SETFL, (int)(flags & (O_NONBLOCK | O_ASYNC))) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
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
	for (const struct fd_kind *const *k = fd_kinds; *k; k++)
		if ((*k)->prepare && (err = (*k)->prepare(r)) < 0)
			return err;
	for (size_t i = 0; i < fs->n_files; i++) {
		ImgFile *f = fs->files[i];
		for (size_t k = 0; k < i; k++)
			if (fs->files[k]->id == f->id) {
				log_err("restore: file id %u twice in image", f->id);
				return -EINVAL;
			}
		const struct fd_kind *kind = NULL;
		for (const struct fd_kind *const *k = fd_kinds; *k && !kind; k++)
			for (int j = 0; (*k)->kinds[j] && !kind; j++)
				if ((*k)->kinds[j] == (int)f->kind)
					kind = *k;
		if (!kind) {
			log_err("restore: file %u: unknown kind %d", f->id, f->kind);
			return -EINVAL;
		}
		int fd = kind->restore(r, f);
		if (fd < 0)
			return fd;
		fd = inv_move(r, fd);
		if (fd < 0) {
			log_err("restore: file %u (%s): %s", f->id, kind->name, strerror(errno));
			return -errno;
		}
		r->file_fd[i] = fd;
	}
	for (const struct fd_kind *const *k = fd_kinds; *k; k++)
		if ((*k)->finish && (err = (*k)->finish(r)) < 0)
			return err;
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
