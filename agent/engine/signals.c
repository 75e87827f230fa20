/*
 * signals.c — signal handlers, process-wide pending signals, and the
 * blocked/pending bookkeeping of restore.
 *
 * Dump: handlers have no outside getter, so rt_sigaction(sig, NULL, &old) is
 * injected for every signal /proc/PID/status lists as caught or ignored;
 * the shared queue is read with PTRACE_PEEKSIGINFO_SHARED (not dequeued).
 * Restore: handlers by injected rt_sigaction (addresses are valid once memory
 * is back); then every queue is drained (the restore itself may have queued
 * SIGCHLDs while all signals were blocked) and the image's signals are
 * re-queued from inside the task with rt_sigqueueinfo / rt_tgsigqueueinfo:
 * the kernel accepts a forged si_code only when a task signals itself
 * (research/cr-mechanics.md §2.5).  SIGTRAP stays unblocked while injecting.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

struct ksigaction {
	uint64_t handler, flags, restorer, mask;
};

static uint64_t status_hex(const char *st, const char *key)
{
	const char *p = strstr(st, key);
	if (!p)
		return 0;
	return strtoull(p + strlen(key), NULL, 16);
}

int signals_dump(struct dump_ctx *d, struct dproc *p)
{
	uint64_t want;
	if (p->pre) {
		want = p->pre->sigwant;
	} else {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/status", p->hpid);
		char *st = read_file_str(path, NULL);
		if (!st)
			return -errno;
		want = status_hex(st, "SigCgt:\t") | status_hex(st, "SigIgn:\t");
		free(st);
	}
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || !(want & (1ull << (sig - 1))))
			continue;
		struct ksigaction ka;
		if (p->pre) {      /* batched by inject_prepare (objects.c) */
			if (p->pre->sigaction_ret[sig] < 0) {
				log_err("dump: pid %u: rt_sigaction %d: %s", p->tree->pid, sig,
					strerror((int)-p->pre->sigaction_ret[sig]));
				return (int)p->pre->sigaction_ret[sig];
			}
			memcpy(&ka, p->pre->out + PF_SIGACT(sig), sizeof(ka));
		} else {
			long r = inj_call(&p->inj, "dump: rt_sigaction", SYS_rt_sigaction, (uint64_t)sig, 0, p->scratch,
					  8, 0, 0);
			if (r < 0)
				return (int)r;
			int err = mem_read(p->hpid, p->scratch, &ka, sizeof(ka));
			if (err < 0)
				return err;
		}
		ImgSigaction *a = PB_PUSH(p->core, sigactions, ImgSigaction, img_sigaction__init);
		a->sig = (uint32_t)sig;
		a->handler = ka.handler;
		a->flags = ka.flags;
		a->restorer = ka.restorer;
		a->mask = ka.mask;
	}
	int err = peek_pending(p->hpid, true, &p->core->n_shared_pending, &p->core->shared_pending);
	if (err < 0)
		log_err("dump: pid %u: shared pending signals: %s", p->tree->pid, strerror(-err));
	(void)d;
	return err;
}

int signals_drain(struct rst_ctx *r, struct rproc *p, struct inj *t)
{
	uint64_t sc = r->scratch_addr;
	uint64_t set = ~0ull, ts[2] = { 0, 0 };
	int err;
	if ((err = mem_write(p->hpid, sc, &set, 8)) < 0 || (err = mem_write(p->hpid, sc + 64, ts, 16)) < 0)
		return err;
	for (int i = 0; i < 4096; i++) {
		long x;
		if ((err = inj_syscall(t, &x, SYS_rt_sigtimedwait, sc, 0, sc + 64, 8, 0, 0)) < 0)
			return err;
		if (x == -EAGAIN)
			return 0;
		if (x < 0) {
			log_err("restore: pid %u: drain signals: %s", p->tree->pid, strerror((int)-x));
			return (int)x;
		}
	}
	return -EAGAIN;
}

static int queue(struct rst_ctx *r, struct rproc *p, struct inj *t, const ProtobufCBinaryData *si, uint32_t tid)
{
	if (si->len != 128) {
		log_err("restore: pid %u: bad siginfo in image", p->tree->pid);
		return -EINVAL;
	}
	int sig;
	memcpy(&sig, si->data, sizeof(int));
	if (sig < 1 || sig > 64 || sig == SIGKILL || sig == SIGSTOP) {
		log_err("restore: pid %u: bad pending signal %d in image", p->tree->pid, sig);
		return -EINVAL;
	}
	int err = mem_write(p->hpid, r->scratch_addr, si->data, 128);
	if (err < 0)
		return err;
	long x = tid ? inj_call(t, "restore: requeue thread signal", SYS_rt_tgsigqueueinfo, p->tree->pid, tid,
				(uint64_t)sig, r->scratch_addr, 0, 0)
		     : inj_call(t, "restore: requeue signal", SYS_rt_sigqueueinfo, p->tree->pid, (uint64_t)sig,
				r->scratch_addr, 0, 0, 0);
	return x < 0 ? (int)x : 0;
}

int signals_restore_late(struct rst_ctx *r, struct rproc *p)
{
	int err;
	for (size_t i = 0; i < p->core->n_sigactions; i++) {
		ImgSigaction *a = p->core->sigactions[i];
		if (a->sig < 1 || a->sig > 64 || a->sig == SIGKILL || a->sig == SIGSTOP) {
			log_err("restore: pid %u: bad signal %u in image", p->tree->pid, a->sig);
			return -EINVAL;
		}
		struct ksigaction ka = { a->handler, a->flags, a->restorer, a->mask };
		rq_add(p, "restore: rt_sigaction", 0, SYS_rt_sigaction, a->sig, rq_data(r, p, &ka, sizeof(ka)), 0, 8, 0, 0);
	}
	/* Drain what the new task has pending (the SIGCHLD of a zombie child,
	 * say): a single-threaded process, with nothing to requeue, queues a few
	 * non-blocking waits with its other late calls (restore.c drains on
	 * after the batch if they all found a signal); else as before. */
	size_t requeue = p->core->n_shared_pending;
	for (int i = 0; i < p->nth; i++)
		requeue += p->th[i]->n_pending;
	uint64_t set = ~0ull, ts[2] = { 0, 0 };
	uint64_t sa = rq_data(r, p, &set, 8), ta = rq_data(r, p, ts, 16);
	for (int k = 0; k < 3; k++)
		rq_add(p, "restore: drain signals", RQ_DRAIN, SYS_rt_sigtimedwait, sa, 0, ta, 8, 0, 0);
	if (p->nth == 1 && !requeue)
		return 0;
	if ((err = rq_flush(r, p)) < 0)
		return err;
	for (int i = p->nth - 1; i >= 0; i--)
		if ((i || p->rq_undrained) && (err = signals_drain(r, p, &p->tinj[i])) < 0)
			return err;
	p->rq_undrained = false;
	for (size_t i = 0; i < p->core->n_shared_pending; i++)
		if ((err = queue(r, p, &p->tinj[0], &p->core->shared_pending[i], 0)) < 0)
			return err;
	for (int i = 0; i < p->nth; i++)
		for (size_t k = 0; k < p->th[i]->n_pending; k++)
			if ((err = queue(r, p, &p->tinj[i], &p->th[i]->pending[k], p->th[i]->tid)) < 0)
				return err;
	return 0;
}
