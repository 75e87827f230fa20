/*
 * eventfd.c — eventfd: the counter and the flags (EFD_SEMAPHORE, O_NONBLOCK).
 *
 * Dump: fdinfo "eventfd-count" (hex) and "eventfd-semaphore".  Restore:
 * eventfd(0) then one write of the counter (eventfd()'s initval is only an
 * unsigned int; a write takes any value up to 2^64-2).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

static int eventfd_match(const struct fd_src *s)
{
	return !strcmp(s->link, "anon_inode:[eventfd]");
}

static int eventfd_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	(void)d;
	char *info = fd_src_fdinfo(s);
	if (!info)
		return -EIO;
	if (!strstr(info, "eventfd-count")) {
		log_err("dump: pid %u fd %d: eventfd without eventfd-count in fdinfo", s->p->tree->pid, s->fd);
		free(info);
		return -ENOTSUP;
	}
	f->kind = FK_EVENTFD;
	SETOPT(f, evcount, fdinfo_u64(info, "eventfd-count", 16, 0));
	SETOPT(f, semaphore, fdinfo_u64(info, "eventfd-semaphore", 10, 0) != 0);
	free(info);
	return 0;
}

static int eventfd_restore(struct rst_ctx *r, ImgFile *f)
{
	(void)r;
	int fl = EFD_CLOEXEC | (f->semaphore ? EFD_SEMAPHORE : 0);
	int fd = eventfd(0, fl | EFD_NONBLOCK);
	if (fd < 0) {
		log_err("restore: file %u: eventfd: %s", f->id, strerror(errno));
		return -errno;
	}
	if (f->evcount && (f->evcount > 0xfffffffffffffffeull ||
			   write(fd, &f->evcount, sizeof(f->evcount)) != sizeof(f->evcount))) {
		log_err("restore: file %u: eventfd counter %llu: %s", f->id, (unsigned long long)f->evcount,
			strerror(errno));
		close(fd);
		return -EINVAL;
	}
	return rst_status_flags(fd, f->flags);
}

const struct fd_kind fdkind_eventfd = {
	.name = "eventfd",
	.match = eventfd_match,
	.dump = eventfd_dump,
	.kinds = { FK_EVENTFD },
	.restore = eventfd_restore,
};
