/*
 * eventfd.c — eventfd counters.
 *
 * Dump: /proc/PID/fdinfo has "eventfd-count" (hex) and, on recent kernels,
 * "eventfd-semaphore".  Restore: eventfd() with the flags, then the count
 * written in (the initial value of eventfd() is only 32 bits wide).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

int eventfd_dump(ImgFile *f, const char *fdinfo)
{
	const char *c = strstr(fdinfo, "eventfd-count:");
	if (!c)
		return -ENOTSUP;
	f->kind = FK_EVENTFD;
	SETOPT(f, efd_count, strtoull(c + 14, NULL, 16));
	const char *s = strstr(fdinfo, "eventfd-semaphore:");
	SETOPT(f, efd_semaphore, s && atoi(s + 18) == 1);
	return 0;
}

int eventfd_restore(ImgFile *f)
{
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
