/*
 * eventfd.c — eventfd counters.
 *
 * Dump: /proc/PID/fdinfo has "eventfd-count" (hex) and, on recent kernels,
 * "eventfd-semaphore".  Restore: eventfd() with the flags, then the count
 * written in (the initial value of eventfd() is only 32 bits wide).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

static char *fdinfo_of(const struct fd_src *s)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", s->p->hpid, s->fd);
	return read_file_str(path, NULL);
}

static int eventfd_match(const struct fd_src *s)
{
	return !strcmp(s->link, "anon_inode:[eventfd]");
}

static int eventfd_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	(void)d;
	char *fdinfo = fdinfo_of(s);
	const char *c = fdinfo ? strstr(fdinfo, "eventfd-count:") : NULL;
	if (!c) {
		log_err("dump: pid %u fd %d: eventfd without a count in fdinfo", s->p->tree->pid, s->fd);
		free(fdinfo);
		return -ENOTSUP;
	}
	f->kind = FK_EVENTFD;
	SETOPT(f, efd_count, strtoull(c + 14, NULL, 16));
	const char *sem = strstr(fdinfo, "eventfd-semaphore:");
	SETOPT(f, efd_semaphore, sem && atoi(sem + 18) == 1);
	free(fdinfo);
	return 0;
}

static int eventfd_restore(struct rst_ctx *r, ImgFile *f)
{
	(void)r;
	int fl = EFD_CLOEXEC | (f->flags & O_NONBLOCK ? EFD_NONBLOCK : 0) |
		 (f->has_efd_semaphore && f->efd_semaphore ? EFD_SEMAPHORE : 0);
	int fd = eventfd(0, fl);
	if (fd < 0) {
		log_err("restore: eventfd %u: %s", f->id, strerror(errno));
		return -errno;
	}
	uint64_t v = f->has_efd_count ? f->efd_count : 0;
	if (v && (v == UINT64_MAX || write(fd, &v, 8) != 8)) {
		log_err("restore: eventfd %u: count %llu: %s", f->id, (unsigned long long)v, strerror(errno));
		close(fd);
		return -EINVAL;
	}
	return fd;
}

const struct fd_kind fdkind_eventfd = {
	.name = "eventfd",
	.match = eventfd_match,
	.dump = eventfd_dump,
	.kinds = { FK_EVENTFD, 0 },
	.restore = eventfd_restore,
};
