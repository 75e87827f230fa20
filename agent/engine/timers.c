/*
 * timers.c — interval timers (setitimer) and POSIX timers.
 *
 * Dump: getitimer and timer_gettime have no outside getter: injected.  POSIX
 * timer ids, clocks and notification come from /proc/PID/timers.
 * Restore: POSIX timers are re-created with their old ids through
 * prctl(PR_TIMER_CREATE_RESTORE_IDS) (6.15+, research/cr-mechanics.md §4.10),
 * then every timer is armed — the last thing before registers, so nothing
 * fires while the task is half restored.  Remaining times are not shifted by
 * the downtime (as CRIU).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1
#endif

struct ksigevent {
	uint64_t value;
	int32_t signo, notify;
	int32_t tid;
	int32_t pad[11];
};

int timers_dump(struct dump_ctx *d, struct dproc *p)
{
	for (int which = 0; which < 3; which++) {
		struct itimerval v;
		if (p->pre) {      /* batched by inject_prepare (objects.c) */
			if (p->pre->itimer_ret[which] < 0) {
				log_err("dump: pid %u: getitimer: %s", p->tree->pid,
					strerror((int)-p->pre->itimer_ret[which]));
				return (int)p->pre->itimer_ret[which];
			}
			memcpy(&v, p->pre->out + PF_ITIMER(which), sizeof(v));
		} else {
			long x = inj_call(&p->inj, "dump: getitimer", SYS_getitimer, (uint64_t)which, p->scratch, 0, 0,
					  0, 0);
			if (x < 0)
				return (int)x;
			int err = mem_read(p->hpid, p->scratch, &v, sizeof(v));
			if (err < 0)
				return err;
		}
		/* An expired ITIMER_REAL whose SIGALRM is still pending reads as
		 * value 0: the kernel re-arms it only when SIGALRM is dequeued
		 * (dequeue_signal).  Keep it if it has an interval. */
		if (!v.it_value.tv_sec && !v.it_value.tv_usec && !v.it_interval.tv_sec && !v.it_interval.tv_usec)
			continue;
		ImgItimer *it = PB_PUSH(p->core, itimers, ImgItimer, img_itimer__init);
		it->which = (uint32_t)which;
		it->interval_us = (uint64_t)v.it_interval.tv_sec * 1000000 + (uint64_t)v.it_interval.tv_usec;
		it->value_us = (uint64_t)v.it_value.tv_sec * 1000000 + (uint64_t)v.it_value.tv_usec;
	}
	char path[64], small[2048];
	snprintf(path, sizeof(path), "/proc/%d/timers", p->hpid);
	/* one record per timer (~100 bytes): seq_file stops filling when it
	 * has what was asked, far below its page buffer, so a read shorter
	 * than 2047 bytes is the whole list (usually empty) */
	ssize_t sn = proc_read_small(path, small, sizeof(small));
	char *s = sn >= 0 ? small : read_file_str(path, NULL);
	ImgPosixTimer *t = NULL;
	for (char *l = s; l && *l;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = 0;
		int a, b;
		unsigned long long ptr;
		char kind[32];
		if (sscanf(l, "ID: %d", &a) == 1) {
			t = PB_PUSH(p->core, timers, ImgPosixTimer, img_posix_timer__init);
			t->id = a;
		} else if (t && sscanf(l, "signal: %d/%llx", &a, &ptr) == 2) {
			t->signo = a;
			t->sival = ptr;
		} else if (t && sscanf(l, "notify: %31[a-z]/%*[a-z].%d", kind, &b) == 2) {
			t->notify = !strcmp(kind, "signal") ? SIGEV_SIGNAL : !strcmp(kind, "thread") ?
				    SIGEV_THREAD_ID : SIGEV_NONE;
			t->notify_tid = (uint32_t)b;
		} else if (t && sscanf(l, "ClockID: %d", &a) == 1) {
			t->clock = a;
		}
		l = nl ? nl + 1 : NULL;
	}
	if (s != small)
		free(s);
	for (size_t i = 0; i < p->core->n_timers; i++) {
		t = p->core->timers[i];
		long x = inj_call(&p->inj, "dump: timer_gettime", SYS_timer_gettime, (uint64_t)t->id, p->scratch,
				  0, 0, 0, 0);
		if (x < 0)
			return (int)x;
		struct itimerspec v;
		int err = mem_read(p->hpid, p->scratch, &v, sizeof(v));
		if (err < 0)
			return err;
		t->interval_ns = (uint64_t)v.it_interval.tv_sec * 1000000000ull + (uint64_t)v.it_interval.tv_nsec;
		t->value_ns = (uint64_t)v.it_value.tv_sec * 1000000000ull + (uint64_t)v.it_value.tv_nsec;
		/* notify pid/tid in /proc is in the reader's namespace: map to the pod's */
		if (t->notify == SIGEV_THREAD_ID) {
			bool found = false;
			for (int j = 0; j < p->nth; j++)
				if ((uint32_t)p->th[j].htid == t->notify_tid) {
					t->notify_tid = p->tree->tids[j];
					found = true;
				}
			if (!found)
				t->notify = SIGEV_SIGNAL;
		}
	}
	(void)d;
	return 0;
}

int timers_restore_late(struct rst_ctx *r, struct rproc *p)
{
	struct inj *t = &p->tinj[0];
	uint64_t sc = r->scratch_addr;
	long x;
	int err;
	if (p->core->n_timers) {
		if ((err = rq_flush(r, p)) < 0)     /* injected one by one below */
			return err;
		if ((x = inj_call(t, "restore: PR_TIMER_CREATE_RESTORE_IDS", SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS,
				  PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0, 0)) < 0)
			return (int)x;
		for (size_t i = 0; i < p->core->n_timers; i++) {
			ImgPosixTimer *pt = p->core->timers[i];
			struct ksigevent ev = { pt->sival, pt->signo, pt->notify, (int32_t)pt->notify_tid, { 0 } };
			int32_t id = pt->id;
			if ((err = mem_write(p->hpid, sc, &ev, sizeof(ev))) < 0 ||
			    (err = mem_write(p->hpid, sc + 128, &id, 4)) < 0)
				return err;
			if ((x = inj_call(t, "restore: timer_create", SYS_timer_create, (uint64_t)pt->clock, sc,
					  sc + 128, 0, 0, 0)) < 0) {
				log_err("restore: pid %u: POSIX timer %d failed", p->tree->pid, pt->id);
				return (int)x;
			}
			if ((err = mem_read(p->hpid, sc + 128, &id, 4)) < 0)
				return err;
			if (id != pt->id) {
				log_err("restore: pid %u: POSIX timer got id %d, wanted %d", p->tree->pid, id, pt->id);
				return -EEXIST;
			}
		}
		inj_call(t, "restore: PR_TIMER_CREATE_RESTORE_IDS off", SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS,
			 PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0, 0);
		for (size_t i = 0; i < p->core->n_timers; i++) {
			ImgPosixTimer *pt = p->core->timers[i];
			uint64_t value = pt->value_ns ? pt->value_ns : pt->interval_ns;   /* see itimers below */
			if (!value)
				continue;
			struct itimerspec v = {
				{ (time_t)(pt->interval_ns / 1000000000ull), (long)(pt->interval_ns % 1000000000ull) },
				{ (time_t)(value / 1000000000ull), (long)(value % 1000000000ull) } };
			if ((err = mem_write(p->hpid, sc, &v, sizeof(v))) < 0)
				return err;
			if ((x = inj_call(t, "restore: timer_settime", SYS_timer_settime, (uint64_t)pt->id, 0, sc, 0,
					  0, 0)) < 0)
				return (int)x;
		}
	}
	for (size_t i = 0; i < p->core->n_itimers; i++) {
		ImgItimer *it = p->core->itimers[i];
		if (it->which > 2)
			return -EINVAL;
		uint64_t value = it->value_us ? it->value_us : it->interval_us;
		struct itimerval v = {
			{ (time_t)(it->interval_us / 1000000), (suseconds_t)(it->interval_us % 1000000) },
			{ (time_t)(value / 1000000), (suseconds_t)(value % 1000000) } };
		rq_add(p, "restore: setitimer", 0, SYS_setitimer, it->which, rq_data(r, p, &v, sizeof(v)), 0, 0, 0, 0);
	}
	return 0;
}
