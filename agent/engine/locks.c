/*
 * locks.c — file locks held by the pod's processes: flock(2), POSIX
 * (fcntl F_SETLK) and open file description (fcntl F_OFD_SETLK) locks.
 * Without this a restored sqlite3 in a transaction, or any program with a
 * lock file, would run on without its lock while another one takes it.
 *
 * Dump: /proc/PID/fdinfo/FD lists, in the format of /proc/locks, the locks
 * taken through that open file description that belong to it (flock, OFD)
 * or to this process (POSIX) — fs/locks.c __show_fd_locks; on 6.18:
 *   lock:	1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 100 199
 *   lock:	2: OFDLCK ADVISORY  READ -1 fe:00:5678 200 EOF
 *   lock:	3: FLOCK  ADVISORY  WRITE 1234 fe:00:5679 0 EOF
 *   lock:	1: LEASE  ACTIVE    READ 1234 fe:00:5680 0 EOF
 * The pid is in the pid namespace of the /proc read (the engine's, the
 * host's): the owner of a POSIX lock, the process that took a flock, and
 * always -1 for an OFD lock.  files.c calls locks_dump_fd for each fd whose
 * fdinfo has "lock:" lines; a description held by several fds or processes
 * shows its flock/OFD locks on each, they are saved once.  Leases and
 * delegations fail the dump, and so do (dump_finish, against /proc/locks)
 * a POSIX lock or flock a pod process took that no fd of the pod shows (a
 * file it only maps, a description it passed out of the pod) and a flock
 * on a shared description taken by a live process outside the pod.
 *
 * Restore: each lock is taken again, non-blocking, by a call injected into
 * one process after its fd table is the image's and its inventory fds are
 * closed (restore.c restore_process): closing any fd of a file drops every
 * POSIX lock the closing process holds on that file, so earlier would lose
 * them.  POSIX locks by their owner; flock and OFD locks once per
 * description, by the process that took the flock if it still holds the
 * file (so /proc/locks names the same process), else by a holder.  The pod
 * does not run before every process is done, so no one in the pod sees the
 * file unlocked.  A lock that cannot be taken (a process outside the pod
 * holds a conflicting one) fails the restore; the pod is killed, which
 * releases what was taken.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

#define LK_POSIX LOCK_KIND__LOCK_POSIX
#define LK_OFD   LOCK_KIND__LOCK_OFD
#define LK_FLOCK LOCK_KIND__LOCK_FLOCK
#define LOCK_EOF ((uint64_t)INT64_MAX)     /* OFFSET_MAX: "EOF" in /proc/locks */

/* One parsed "lock:" line. */
struct lock_line {
	LockKind kind;
	bool write;
	long pid;                /* host pid as printed (-1 for OFD) */
	char dev[48];            /* "MAJ:MIN:INO" */
	uint64_t start, end;     /* end LOCK_EOF: to the end of the file */
};

/* Per saved lock (same index as d->files->locks): what /proc/locks shows. */
static struct lock_src {
	char dev[48];
	long pid;                /* the pid of its lock line */
	pid_t holder;            /* host pid of ImgFileLock.pid */
} *g_src;

static const char *kind_name(LockKind k)
{
	return k == LK_POSIX ? "POSIX" : k == LK_OFD ? "OFD" : "flock";
}

/* Parse the part of a lock line after "N: "; 0, or -ENOTSUP with *what
 * saying which kind of lock it is when it is not one we save. */
static int parse_line(const char *s, struct lock_line *l, const char **what)
{
	char kind[16], mode[16], type[16], end[24];
	unsigned long long start;
	*what = "a lock the engine cannot read";
	if (sscanf(s, "%*d: %15s %15s %15s %ld %47s %llu %23s", kind, mode, type, &l->pid, l->dev, &start,
		   end) != 7)
		return -EINVAL;
	if (!strcmp(kind, "POSIX"))
		l->kind = LK_POSIX;
	else if (!strcmp(kind, "OFDLCK"))
		l->kind = LK_OFD;
	else if (!strcmp(kind, "FLOCK"))
		l->kind = LK_FLOCK;
	else {
		*what = !strcmp(kind, "LEASE") ? "a lease (F_SETLEASE)" : !strcmp(kind, "DELEG") ? "a delegation" :
			"a lock of an unknown kind";
		return -ENOTSUP;
	}
	if (strcmp(mode, "ADVISORY")) {
		*what = "a lock that is not advisory";
		return -ENOTSUP;
	}
	if (strcmp(type, "WRITE") && strcmp(type, "READ"))
		return -EINVAL;
	l->write = !strcmp(type, "WRITE");
	l->start = start;
	l->end = !strcmp(end, "EOF") ? LOCK_EOF : strtoull(end, NULL, 10);
	if (l->start > l->end || l->end > LOCK_EOF)
		return -EINVAL;
	return 0;
}

static bool same_lock(const ImgFileLock *k, const struct lock_src *src, const struct lock_line *l)
{
	uint64_t end = k->has_end ? k->end : LOCK_EOF;
	return k->kind == l->kind && k->write == l->write && k->start == l->start && end == l->end &&
	       !strcmp(src->dev, l->dev) && (l->kind != LK_POSIX || src->pid == l->pid);
}

static struct dproc *pod_proc(struct dump_ctx *d, long hpid)
{
	for (int i = 0; i < d->nprocs && hpid > 0; i++)
		if (d->procs[i].hpid == hpid)
			return &d->procs[i];
	return NULL;
}

int locks_dump_fd(struct dump_ctx *d, struct dproc *p, int fd, uint32_t file_id)
{
	char path[64], link[512] = "?";
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", p->hpid, fd);
	char *info = read_file_str(path, NULL);
	if (!info) {
		int e = errno;
		log_err("dump: pid %u fd %d: %s: %s", p->tree->pid, fd, path, strerror(e));
		return -e;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->hpid, fd);
	if (read_link(path, link, sizeof(link)) < 0)
		snprintf(link, sizeof(link), "?");
	int err = 0;
	for (char *s = strstr(info, "lock:\t"); s && !err; s = strstr(s + 1, "\nlock:\t")) {
		s += s[0] == '\n';
		char line[256];
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(s + 6, "\n"), s + 6);
		struct lock_line l;
		const char *what;
		if ((err = parse_line(line, &l, &what)) < 0) {
			log_err("dump: pid %u fd %d (%s): '%s' is %s: not supported", p->tree->pid, fd, link, line,
				what);
			break;
		}
		if (l.kind == LK_POSIX && l.pid != p->hpid) {
			/* only with a fd table shared between processes (CLONE_FILES) */
			log_err("dump: pid %u fd %d (%s): POSIX lock owned by host pid %ld, not by this process: not supported",
				p->tree->pid, fd, link, l.pid);
			err = -ENOTSUP;
			break;
		}
		/* a flock names the process that took it: one that has exited
		 * (its pid free, or reused by then — a false refusal) passes */
		struct dproc *taker = l.kind == LK_FLOCK ? pod_proc(d, l.pid) : NULL;
		if (l.kind == LK_FLOCK && !taker && l.pid > 0 && kill((pid_t)l.pid, 0) == 0) {
			log_err("dump: pid %u fd %d (%s): flock %s taken by pid %ld outside the pod: not supported",
				p->tree->pid, fd, link, l.write ? "WRITE" : "READ", l.pid);
			err = -ENOTSUP;
			break;
		}
		ImgFiles *fs = d->files;
		size_t k = 0;
		while (k < fs->n_locks && !(fs->locks[k]->file_id == file_id && same_lock(fs->locks[k], &g_src[k], &l)))
			k++;
		if (k < fs->n_locks) {
			/* seen through another fd: re-taken by the process that took it, if it holds the file */
			if (taker == p && g_src[k].holder != p->hpid) {
				fs->locks[k]->pid = p->tree->pid;
				fs->locks[k]->fd = (uint32_t)fd;
				g_src[k].holder = p->hpid;
			}
			continue;
		}
		if (fs->n_locks >= MAX_FILES) {
			log_err("dump: more than %d file locks: not supported", MAX_FILES);
			err = -E2BIG;
			break;
		}
		g_src = realloc(g_src, (fs->n_locks + 1) * sizeof(*g_src));
		if (!g_src)
			abort();
		snprintf(g_src[fs->n_locks].dev, sizeof(g_src->dev), "%s", l.dev);
		g_src[fs->n_locks].pid = l.pid;
		g_src[fs->n_locks].holder = p->hpid;
		ImgFileLock *m = PB_PUSH(fs, locks, ImgFileLock, img_file_lock__init);
		m->kind = l.kind;
		m->write = l.write;
		m->start = l.start;
		if (l.end != LOCK_EOF)
			SETOPT(m, end, l.end);
		m->file_id = file_id;
		m->pid = p->tree->pid;
		m->fd = (uint32_t)fd;
	}
	free(info);
	return err;
}

/* Every POSIX lock and flock a process of the pod holds or took must have
 * been found through the fds of the pod (OFD locks name no process). */
static int locks_dump_finish(struct dump_ctx *d)
{
	char *all = read_file_str("/proc/locks", NULL);
	if (!all) {
		int e = errno;
		log_err("dump: /proc/locks: %s", strerror(e));
		return -e;
	}
	int err = 0;
	for (char *line = all, *next; line && *line && !err; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		struct lock_line l;
		const char *what;
		struct dproc *q;
		if (strstr(line, "->") || parse_line(line, &l, &what) < 0 || l.kind == LK_OFD ||
		    !(q = pod_proc(d, l.pid)))
			continue;
		bool found = false;
		for (size_t k = 0; k < d->files->n_locks && !found; k++)
			found = same_lock(d->files->locks[k], &g_src[k], &l);
		if (!found) {
			log_err("dump: pid %u: %s %s lock on inode %s is not held through a file the pod has open "
				"(a file only mapped, or passed out of the pod): not supported",
				q->tree->pid, kind_name(l.kind), l.write ? "WRITE" : "READ", l.dev);
			err = -ENOTSUP;
		}
	}
	free(all);
	return err;
}

/* ------------------------------------------------------------------ restore */

static ImgFile *file_of(struct rst_ctx *r, uint32_t id)
{
	for (size_t i = 0; i < r->files->n_files; i++)
		if (r->files->files[i]->id == id)
			return r->files->files[i];
	return NULL;
}

/* Before anything is re-created: every lock names a live process of the
 * image, an fd of it on the lock's file, a range that fits in off_t. */
static int locks_check(struct rst_ctx *r)
{
	ImgFiles *fs = r->files;
	if (fs->n_locks > MAX_FILES) {
		log_err("restore: %zu file locks in image: too many", fs->n_locks);
		return -E2BIG;
	}
	for (size_t i = 0; i < fs->n_locks; i++) {
		ImgFileLock *l = fs->locks[i];
		int pi = proc_index(r, l->pid);
		bool fd_ok = false;
		for (size_t k = 0; pi >= 0 && !r->procs[pi].tree->zombie && k < r->procs[pi].core->n_fds; k++)
			fd_ok |= r->procs[pi].core->fds[k]->fd == l->fd && r->procs[pi].core->fds[k]->file_id == l->file_id;
		bool range_ok = l->start < LOCK_EOF && (!l->has_end || (l->end >= l->start && l->end < LOCK_EOF)) &&
				(l->kind != LK_FLOCK || (l->start == 0 && !l->has_end));
		if (!fd_ok || !range_ok || !file_of(r, l->file_id) ||
		    (l->kind != LK_POSIX && l->kind != LK_OFD && l->kind != LK_FLOCK)) {
			log_err("restore: file lock %zu (pid %u fd %u, file %u): not a lock of a process and fd of the image",
				i, l->pid, l->fd, l->file_id);
			return -EINVAL;
		}
	}
	return 0;
}

int locks_restore_late(struct rst_ctx *r, struct rproc *p)
{
	bool flushed = false;
	for (size_t i = 0; i < r->files->n_locks; i++) {
		ImgFileLock *l = r->files->locks[i];
		if (l->pid != p->tree->pid)
			continue;
		int err;
		if (!flushed && (err = rq_flush(r, p)) < 0)   /* the inventory's close first */
			return err;
		flushed = true;
		struct inj *t = p->tinj ? &p->tinj[0] : &p->inj;
		long ret;
		if (l->kind == LK_FLOCK) {
			err = inj_syscall(t, &ret, SYS_flock, l->fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB, 0, 0, 0, 0);
		} else {
			struct flock fl = {
				.l_type = l->write ? F_WRLCK : F_RDLCK,
				.l_whence = SEEK_SET,
				.l_start = (off_t)l->start,
				.l_len = l->has_end ? (off_t)(l->end - l->start + 1) : 0,   /* 0: to EOF */
			};
			if ((err = mem_write(p->hpid, r->scratch_addr, &fl, sizeof(fl))) == 0)
				err = inj_syscall(t, &ret, SYS_fcntl, l->fd, l->kind == LK_POSIX ? F_SETLK : F_OFD_SETLK,
						  r->scratch_addr, 0, 0, 0);
		}
		if (err < 0)
			return err;
		if (ret < 0) {
			char range[64] = "";
			if (l->kind != LK_FLOCK && l->has_end)
				snprintf(range, sizeof(range), " on bytes %llu-%llu", (unsigned long long)l->start,
					 (unsigned long long)l->end);
			else if (l->kind != LK_FLOCK)
				snprintf(range, sizeof(range), " on bytes %llu-EOF", (unsigned long long)l->start);
			ImgFile *f = file_of(r, l->file_id);
			log_err("restore: pid %u fd %u (%s): %s %s lock%s: %s%s", p->tree->pid, l->fd,
				f && f->path ? f->path : "?", kind_name(l->kind), l->write ? "WRITE" : "READ", range,
				strerror((int)-ret),
				ret == -EAGAIN || ret == -EACCES ? " (a process outside the pod holds a conflicting lock)" : "");
			return (int)ret;
		}
	}
	return 0;
}

const struct fd_kind fdkind_locks = {
	.name = "file locks",
	/* no .match: the files are the other kinds'; this saves their locks */
	.kinds = { 0 },
	.prepare = locks_check,
	.dump_finish = locks_dump_finish,
};
