/*
 * fdkind.h — the kinds of open file the engine saves and re-creates.
 *
 * files.c walks each process's fd table, takes a copy of every fd with
 * pidfd_getfd, finds descriptions shared between fds and processes (kcmp),
 * and asks this table — in order, first match wins — which kind handles a
 * new description.  Adding a kind of file = one file with its dump and
 * restore sides + one line in fdkinds.c (and a FileKind value and, if it
 * needs them, fields in proto/image.proto).  A description no kind matches
 * fails the dump with pid, fd and type; the pod runs on unharmed.
 */
#ifndef ZAPC_ENGINE_FDKIND_H
#define ZAPC_ENGINE_FDKIND_H

#include <sys/stat.h>

#include "agent/engine/engine.h"

/* What the dump side knows of one fd. */
struct fd_src {
	struct dproc *p;        /* the process (p->hpid, p->tree->pid) */
	int fd;                 /* its number in the process */
	int lfd;                /* our copy (same open file description) */
	const char *link;       /* readlink of /proc/PID/fd/N: path, "socket:[N]", "anon_inode:[eventfd]" ... */
	struct stat st;         /* fstat(lfd) */
	uint64_t pos;           /* from fdinfo */
	uint32_t flags;         /* from fdinfo, O_CLOEXEC removed */
};

struct fd_kind {
	const char *name;
	/* Does this kind handle the description?  (Cheap: link and st only.)
	 * NULL: none — a kind of hooks only (mounts, SysV IPC, shm content, locks) */
	int (*match)(const struct fd_src *s);
	/* Fill f (kind and fields) for a new description.  0 or -errno (logged). */
	int (*dump)(struct dump_ctx *d, const struct fd_src *s, ImgFile *f);
	/* The FileKind values this kind restores (0-terminated). */
	int kinds[6];
	/* Optional: once, before any description is re-created (e.g. all pipes). */
	int (*prepare)(struct rst_ctx *r);
	/* Re-create the description in the engine; return an fd (any number:
	 * files.c moves it to the inventory range) or -errno (logged).  Runs in
	 * the pod's network namespace. */
	int (*restore)(struct rst_ctx *r, ImgFile *f);
	/* Optional: once, after every description of the image exists in the
	 * inventory (links between them: epoll interest lists, connections to
	 * listening sockets).  0 or -errno (logged). */
	int (*finish)(struct rst_ctx *r);
	/* Optional: once at the end of the dump, every process's files known
	 * (content of files the pod will not find again, e.g. its /dev/shm). */
	int (*dump_finish)(struct dump_ctx *d);
};

extern const struct fd_kind *const fd_kinds[];   /* NULL-terminated */

int files_dump_finish(struct dump_ctx *d);   /* runs every kind's dump_finish */
void mounts_dump_early(pid_t init);          /* before the freeze: the mount tables (mounts.c) */
/* The locks fdinfo lists for fd of p (description file_id), into the image (locks.c). */
int locks_dump_fd(struct dump_ctx *d, struct dproc *p, int fd, uint32_t file_id);

/* Helpers for kinds. */
int inv_move(struct rst_ctx *r, int fd);
int inherited_fd(struct rst_ctx *r, const char *key);
/* open(2) of a path as the restored pod will see it: /dev/shm/... goes to
 * the pod's own tmpfs (a detached mount the init attaches), the rest to
 * the node's file system.  fd or -1 with errno. */
int rst_open(struct rst_ctx *r, const char *path, int flags, mode_t mode);
/* End of a kind's restore: give fd the saved O_NONBLOCK/O_ASYNC status flags.
 * Returns fd, or closes it and returns -errno. */
int rst_status_flags(int fd, uint32_t flags);
/* The first (pod pid, fd) of a live process of the pod, walking the fd
 * tables in process order, for which match(host pid, fd, arg) is true
 * (e.g. a kcmp against a file we hold); 0, or -ENOENT. */
int pod_fd_find(struct dump_ctx *d, bool (*match)(pid_t hpid, int fd, void *arg), void *arg,
		uint32_t *pid, uint32_t *fd);
/* /proc/PID/fdinfo/FD of the dumped fd as a malloc'd string (NULL: logged). */
char *fd_src_fdinfo(const struct fd_src *s);
/* The value after "key" in an fdinfo text (strtoull in base), or dflt. */
uint64_t fdinfo_u64(const char *info, const char *key, int base, uint64_t dflt);

#endif
