/*
 * timerfd.c — timerfds: clock, remaining time, interval, pending ticks.
 *
 * Dump: /proc/PID/fdinfo gives clockid, ticks, settime flags and it_value /
 * it_interval, where it_value is the *remaining* time.  Restore re-arms it
 * relative to now (absolute timers would need re-anchoring; the pod's clocks
 * continue through the time namespace, so relative is equivalent for
 * CLOCK_MONOTONIC/BOOTTIME) and puts the unread expirations back with
 * TFD_IOC_SET_TICKS (CONFIG_CHECKPOINT_RESTORE; research/cr-mechanics.md §4.10).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

static uint64_t pair_ns(const char *s, const char *key)
{
	const char *p = strstr(s, key);
	unsigned long long sec = 0, nsec = 0;
	if (p)
		sscanf(p + strlen(key), " (%llu, %llu)", &sec, &nsec);
	return sec * 1000000000ull + nsec;
}

static int timerfd_match(const struct fd_src *s)
{
	return !strcmp(s->link, "anon_inode:[timerfd]");
}

static int timerfd_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	(void)d;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", s->p->hpid, s->fd);
	char *fdinfo = read_file_str(path, NULL);
	const char *c = fdinfo ? strstr(fdinfo, "clockid:") : NULL, *t = fdinfo ? strstr(fdinfo, "ticks:") : NULL;
	if (!c || !t) {
		log_err("dump: pid %u fd %d: timerfd without clockid/ticks in fdinfo", s->p->tree->pid, s->fd);
		free(fdinfo);
		return -ENOTSUP;
	}
	f->kind = FK_TIMERFD;
	SETOPT(f, tfd_clock, atoi(c + 8));
	SETOPT(f, tfd_ticks, strtoull(t + 6, NULL, 10));
	SETOPT(f, tfd_value_ns, pair_ns(fdinfo, "it_value:"));
	SETOPT(f, tfd_interval_ns, pair_ns(fdinfo, "it_interval:"));
	free(fdinfo);
	return 0;
}

static int timerfd_restore(struct rst_ctx *r, ImgFile *f)
{
	(void)r;
	int fd = timerfd_create(f->tfd_clock, TFD_CLOEXEC | (f->flags & O_NONBLOCK ? TFD_NONBLOCK : 0));
	if (fd < 0) {
		log_err("restore: timerfd %u (clock %d): %s", f->id, f->tfd_clock, strerror(errno));
		return -errno;
	}
	uint64_t v = f->tfd_value_ns, iv = f->tfd_interval_ns;
	if (!v && iv)
		v = iv;
	struct itimerspec its = { { (time_t)(iv / 1000000000ull), (long)(iv % 1000000000ull) },
				  { (time_t)(v / 1000000000ull), (long)(v % 1000000000ull) } };
	if ((v && timerfd_settime(fd, 0, &its, NULL) < 0) ||
	    (f->tfd_ticks && ioctl(fd, TFD_IOC_SET_TICKS, &f->tfd_ticks) < 0)) {
		log_err("restore: timerfd %u: %s", f->id, strerror(errno));
		close(fd);
		return -EINVAL;
	}
	return fd;
}

const struct fd_kind fdkind_timerfd = {
	.name = "timerfd",
	.match = timerfd_match,
	.dump = timerfd_dump,
	.kinds = { FK_TIMERFD, 0 },
	.restore = timerfd_restore,
};
