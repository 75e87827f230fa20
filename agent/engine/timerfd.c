/*
 * timerfd.c — timerfd: clock, flags, remaining time, interval and the
 * expirations not read yet.
 *
 * Dump: fdinfo "clockid", "ticks", "settime flags", "it_value: (s, ns)",
 * "it_interval: (s, ns)"; it_value is the time left (as timerfd_gettime),
 * also for a TFD_TIMER_ABSTIME timer.  Restore: timerfd_create, a relative
 * timerfd_settime with the time left, except for a TFD_TIMER_ABSTIME timer
 * on a REALTIME clock, which is set again to the same date (with its
 * TFD_TIMER_CANCEL_ON_SET); an absolute MONOTONIC/BOOTTIME timer becomes
 * relative with the same time left, like the pod's clocks (the engine is
 * not in the pod's time namespace) — docs/engine-objects.md; the unread
 * ticks through
 * TFD_IOC_SET_TICKS (CONFIG_CHECKPOINT_RESTORE).  The downtime is not added:
 * the timer goes on from where it stopped, like the pod's monotonic clock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

static int timerfd_match(const struct fd_src *s)
{
	return !strcmp(s->link, "anon_inode:[timerfd]");
}

static int pair_ns(const char *info, const char *key, uint64_t *ns)
{
	const char *p = strstr(info, key);
	unsigned long long sec, nsec;
	if (!p || sscanf(p + strlen(key), ": (%llu, %llu)", &sec, &nsec) != 2)
		return -1;
	*ns = sec * 1000000000ull + nsec;
	return 0;
}

static int timerfd_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	(void)d;
	char *info = fd_src_fdinfo(s);
	uint64_t v, i;
	if (!info)
		return -EIO;
	if (pair_ns(info, "it_value", &v) < 0 || pair_ns(info, "it_interval", &i) < 0) {
		log_err("dump: pid %u fd %d: timerfd fdinfo not understood", s->p->tree->pid, s->fd);
		free(info);
		return -ENOTSUP;
	}
	f->kind = FK_TIMERFD;
	SETOPT(f, clockid, (int32_t)fdinfo_u64(info, "clockid", 10, 1));
	SETOPT(f, ticks, fdinfo_u64(info, "ticks", 10, 0));
	SETOPT(f, tfd_settime_flags, (uint32_t)fdinfo_u64(info, "settime flags", 8, 0));
	SETOPT(f, it_value_ns, v);
	SETOPT(f, it_interval_ns, i);
	if ((f->tfd_settime_flags & TFD_TIMER_ABSTIME) && v &&
	    (f->clockid == CLOCK_REALTIME || f->clockid == CLOCK_REALTIME_ALARM)) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		SETOPT(f, abs_expiry_ns, (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec + v);
	}
	free(info);
	return 0;
}

static int timerfd_restore(struct rst_ctx *r, ImgFile *f)
{
	(void)r;
	int fd = timerfd_create(f->clockid, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0) {
		log_err("restore: file %u: timerfd clock %d: %s", f->id, f->clockid, strerror(errno));
		return -errno;
	}
	struct itimerspec its = {
		.it_value = { (time_t)(f->it_value_ns / 1000000000ull), (long)(f->it_value_ns % 1000000000ull) },
		.it_interval = { (time_t)(f->it_interval_ns / 1000000000ull), (long)(f->it_interval_ns % 1000000000ull) },
	};
	int how = 0;
	if (f->has_abs_expiry_ns) {
		/* a wall-clock date: it fires at that date, and CANCEL_ON_SET is kept */
		its.it_value.tv_sec = (time_t)(f->abs_expiry_ns / 1000000000ull);
		its.it_value.tv_nsec = (long)(f->abs_expiry_ns % 1000000000ull);
		how = TFD_TIMER_ABSTIME | (int)(f->tfd_settime_flags & TFD_TIMER_CANCEL_ON_SET);
	}
	if (f->it_value_ns && timerfd_settime(fd, how, &its, NULL) < 0) {
		log_err("restore: file %u: timerfd_settime: %s", f->id, strerror(errno));
		close(fd);
		return -EINVAL;
	}
	if (f->ticks && ioctl(fd, TFD_IOC_SET_TICKS, &f->ticks) < 0) {
		log_err("restore: file %u: timerfd: set %llu ticks: %s", f->id, (unsigned long long)f->ticks,
			strerror(errno));
		close(fd);
		return -EINVAL;
	}
	return rst_status_flags(fd, f->flags);
}

const struct fd_kind fdkind_timerfd = {
	.name = "timerfd",
	.match = timerfd_match,
	.dump = timerfd_dump,
	.kinds = { FK_TIMERFD },
	.restore = timerfd_restore,
};
