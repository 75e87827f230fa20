/*
 * signalfd.c — signalfd: the signal mask.
 *
 * fdinfo prints "sigmask:" as a hex number, bit (sig-1) set for each signal
 * the fd accepts.  Restore: signalfd(-1, mask).  Pending signals themselves
 * belong to the process (signals.c), not to the fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

static int signalfd_match(const struct fd_src *s)
{
	return !strcmp(s->link, "anon_inode:[signalfd]");
}

static int signalfd_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	(void)d;
	char *info = fd_src_fdinfo(s);
	if (!info)
		return -EIO;
	if (!strstr(info, "sigmask")) {
		log_err("dump: pid %u fd %d: signalfd without sigmask in fdinfo", s->p->tree->pid, s->fd);
		free(info);
		return -ENOTSUP;
	}
	f->kind = FK_SIGNALFD;
	SETOPT(f, sigmask, fdinfo_u64(info, "sigmask", 16, 0));
	free(info);
	return 0;
}

static int signalfd_restore(struct rst_ctx *r, ImgFile *f)
{
	(void)r;
	uint64_t mask = f->sigmask;
	/* raw syscall: the kernel's sigset is 8 bytes */
	int fd = (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC);
	if (fd < 0) {
		log_err("restore: file %u: signalfd mask %#llx: %s", f->id, (unsigned long long)mask, strerror(errno));
		return -errno;
	}
	return rst_status_flags(fd, f->flags);
}

const struct fd_kind fdkind_signalfd = {
	.name = "signalfd",
	.match = signalfd_match,
	.dump = signalfd_dump,
	.kinds = { FK_SIGNALFD },
	.restore = signalfd_restore,
};
