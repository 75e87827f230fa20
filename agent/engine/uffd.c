/*
 * uffd.c — a userfaultfd of a stopped task's address space, held by the
 * engine: injected userfaultfd(2) in the task, a copy taken with
 * pidfd_getfd, the task's own descriptor closed again (the application
 * never sees it), then UFFDIO_API with the features asked for.  Every
 * ioctl on the copy acts on the task's mm (the context is the mm that
 * created it), which is what lets the engine register ranges and copy
 * pages into them from outside (research/probe-netstate.md §6).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "agent/engine/uffd.h"

int uffd_take(struct inj *t, pid_t hpid, uint64_t features, int *out)
{
	long tfd = inj_call(t, "inject userfaultfd", SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0);
	if (tfd < 0)
		return (int)tfd;
	int pidfd = (int)syscall(SYS_pidfd_open, hpid, 0), fd = -1, err = 0;
	if (pidfd >= 0)
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)tfd, 0);
	if (fd < 0)
		err = -errno;
	if (pidfd >= 0)
		close(pidfd);
	long x = inj_call(t, "close the injected userfaultfd", SYS_close, (uint64_t)tfd, 0, 0, 0, 0, 0);
	if (err < 0 || x < 0) {
		if (fd >= 0)
			close(fd);
		return err < 0 ? err : (int)x;
	}
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}
