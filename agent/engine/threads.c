/*
 * threads.c — per-thread state: registers, xstate (FPU/SSE/AVX/AVX-512),
 * fs/gs base (part of user_regs_struct), blocked mask, thread-directed pending
 * signals, sigaltstack, rseq, clear_child_tid, robust list, comm; and thread
 * creation on restore.
 *
 * Facts (research/cr-mechanics.md):
 *  - SETREGSET NT_X86_XSTATE needs exactly the kernel's size (§2.5), so the
 *    image records it and restore refuses another size;
 *  - restore sets orig_rax/rax itself: a syscall the thread was in when
 *    seized is re-executed (ERESTART* → rip -= 2, rax = nr); the kernel's
 *    restart_block cannot move, so a relative (clock_)nanosleep is re-issued
 *    with its remaining time, which the kernel wrote to *rem (§1.9);
 *  - threads are made by clone3 with set_tid injected into the leader; with
 *    PTRACE_O_TRACECLONE the new thread starts in a ptrace stop (§1.6, §4.5);
 *  - rseq registration is per thread and not inherited by threads (§4.11).
 */
#include <elf.h>
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

#define XSTATE_MAX (64 * 1024)
#define SIGINFO_SIZE 128

/* PTRACE_PEEKSIGINFO: read a queue without dequeuing it (§2.5). */
int peek_pending(pid_t tid, bool shared, size_t *n, ProtobufCBinaryData **out)
{
	uint8_t si[32 * SIGINFO_SIZE];
	for (uint64_t off = 0;; ) {
		struct __ptrace_peeksiginfo_args a = { off, shared ? PTRACE_PEEKSIGINFO_SHARED : 0, 32 };
		long k = ptrace(PTRACE_PEEKSIGINFO, tid, &a, si);
		if (k < 0)
			return -errno;
		if (k == 0)
			return 0;
		for (long i = 0; i < k; i++) {
			*out = realloc(*out, (*n + 1) * sizeof(**out));
			uint8_t *c = xcalloc(1, SIGINFO_SIZE);
			memcpy(c, si + i * SIGINFO_SIZE, SIGINFO_SIZE);
			(*out)[(*n)++] = (ProtobufCBinaryData){ SIGINFO_SIZE, c };
		}
		off += (uint64_t)k;
		if (off > 100000)
			return -E2BIG;
	}
}

int threads_dump(struct dump_ctx *d, struct dproc *p)
{
	int err;
	for (int j = 0; j < p->nth; j++) {
		struct dthread *th = &p->th[j];
		ImgThread *t = xcalloc(1, sizeof(*t));
		img_thread__init(t);
		th->img = t;
		t->tid = p->tree->tids[j];
		t->regs.len = sizeof(th->regs);
		t->regs.data = xcalloc(1, sizeof(th->regs));
		memcpy(t->regs.data, &th->regs, sizeof(th->regs));
		/* read into one reused buffer, keep only what the CPU has (a few
		 * KiB): a fresh 64 KiB calloc per thread costs page faults, and
		 * its free a munmap with TLB flushes (100 processes: ~10 % of a dump) */
		static uint8_t *xbuf;
		if (!xbuf)
			xbuf = xcalloc(1, XSTATE_MAX);
		struct iovec iov = { xbuf, XSTATE_MAX };
		if (ptrace(PTRACE_GETREGSET, th->htid, (void *)NT_X86_XSTATE, &iov) < 0) {
			log_err("dump: pid %u tid %u: xstate: %s", p->tree->pid, t->tid, strerror(errno));
			return -errno;
		}
		uint8_t *xs = xcalloc(1, iov.iov_len ? iov.iov_len : 1);
		memcpy(xs, xbuf, iov.iov_len);
		t->xstate.len = iov.iov_len;
		t->xstate.data = xs;
		d->info->xstate_size = (uint32_t)iov.iov_len;
		t->sigmask = th->sigmask;
		if ((err = peek_pending(th->htid, false, &t->n_pending, &t->pending)) < 0) {
			log_err("dump: pid %u tid %u: pending signals: %s", p->tree->pid, t->tid, strerror(-err));
			return err;
		}
		struct __ptrace_rseq_configuration rc = { 0 };
		if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, th->htid, sizeof(rc), &rc) > 0 && rc.rseq_abi_pointer) {
			if (rc.flags) {
				log_err("dump: pid %u tid %u: rseq flags %#x not supported", p->tree->pid, t->tid, rc.flags);
				return -ENOTSUP;
			}
			SETOPT(t, rseq_ptr, rc.rseq_abi_pointer);
			SETOPT(t, rseq_size, rc.rseq_abi_size);
			SETOPT(t, rseq_sig, rc.signature);
		}
		uint64_t head = 0;
		size_t hlen = 0;
		if (syscall(SYS_get_robust_list, th->htid, &head, &hlen) == 0 && head) {
			SETOPT(t, robust_list, head);
			SETOPT(t, robust_len, hlen);
		}
		char path[96];
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", p->hpid, th->htid);
		char *c = read_file_str(path, NULL);
		if (c)
			c[strcspn(c, "\n")] = 0;
		t->comm = c ? c : xstrdup("");

		/* injected in this thread: sigaltstack and clear_child_tid */
		struct inj ti = p->inj;
		ti.tid = th->htid;
		ti.base = th->regs;
		uint64_t mask = ~(1ull << (SIGTRAP - 1));
		if (!j && p->pre && p->pre->altstack_ret == 0 && p->pre->tidaddr_ret == 0) {
			/* the leader's: batched by inject_prepare (objects.c) */
			stack_t ss;
			uint64_t tidaddr;
			memcpy(&ss, p->pre->out + PF_ALTSTACK, sizeof(ss));
			memcpy(&tidaddr, p->pre->out + PF_TIDADDR, 8);
			t->ss_sp = (uint64_t)ss.ss_sp;
			t->ss_flags = (uint32_t)ss.ss_flags;
			t->ss_size = ss.ss_size;
			if (tidaddr)
				SETOPT(t, tid_address, tidaddr);
			continue;
		}
		if (j && ptrace(PTRACE_SETSIGMASK, th->htid, (void *)8, &mask) < 0)
			return -errno;
		long r = inj_call(&ti, "dump: sigaltstack", SYS_sigaltstack, 0, p->scratch, 0, 0, 0, 0);
		if (r < 0)
			return (int)r;
		stack_t ss;
		if ((err = mem_read(p->hpid, p->scratch, &ss, sizeof(ss))) < 0)
			return err;
		t->ss_sp = (uint64_t)ss.ss_sp;
		t->ss_flags = (uint32_t)ss.ss_flags;
		t->ss_size = ss.ss_size;
		r = inj_call(&ti, "dump: PR_GET_TID_ADDRESS", SYS_prctl, PR_GET_TID_ADDRESS, p->scratch, 0, 0, 0, 0);
		if (r < 0)
			return (int)r;
		uint64_t tidaddr = 0;
		if ((err = mem_read(p->hpid, p->scratch, &tidaddr, 8)) < 0)
			return err;
		if (tidaddr)
			SETOPT(t, tid_address, tidaddr);
	}
	return 0;
}

/* ------------------------------------------------------------------ restore */

/* Make the registers of a thread seized inside a syscall restart it by
 * themselves (nothing is left for the kernel's restart logic to do). */
static void pre_restart(struct user_regs_struct *r)
{
	long rax = (long)r->rax, nr = (long)r->orig_rax;
	if (nr < 0)
		return;
	if (rax == -512 || rax == -513 || rax == -514 || rax == -516) {
		if (rax == -516) {
			if (nr == SYS_nanosleep && r->rsi)
				r->rdi = r->rsi;                 /* remaining time was written to *rem */
			else if (nr == SYS_clock_nanosleep && !(r->rsi & TIMER_ABSTIME) && r->r10)
				r->rdx = r->r10;
		}
		r->rax = (uint64_t)nr;
		r->rip -= 2;
	}
	r->orig_rax = (uint64_t)-1;
}

/* The leader's: queued (rqueue.c), run with the process's other late calls. */
static int leader_restore_queued(struct rst_ctx *r, struct rproc *p)
{
	ImgThread *th = p->th[0];
	stack_t ss = { (void *)th->ss_sp, (int)(th->ss_flags & ~SS_ONSTACK), th->ss_size };
	if (!(th->ss_flags & SS_DISABLE))
		rq_add(p, "restore: sigaltstack", 0, SYS_sigaltstack, rq_data(r, p, &ss, sizeof(ss)), 0, 0, 0, 0, 0);
	if (th->has_rseq_ptr && th->rseq_ptr)
		rq_add(p, "restore: rseq", 0, SYS_rseq, th->rseq_ptr, th->rseq_size, 0, th->rseq_sig, 0, 0);
	rq_add(p, "restore: set_tid_address", 0, SYS_set_tid_address, th->has_tid_address ? th->tid_address : 0,
	       0, 0, 0, 0, 0);
	if (th->has_robust_list && th->robust_list)
		rq_add(p, "restore: set_robust_list", 0, SYS_set_robust_list, th->robust_list, th->robust_len,
		       0, 0, 0, 0);
	char comm[16] = { 0 };
	snprintf(comm, sizeof(comm), "%s", th->comm);
	rq_add(p, "restore: PR_SET_NAME", 0, SYS_prctl, PR_SET_NAME, rq_data(r, p, comm, sizeof(comm)), 0, 0, 0, 0);
	return 0;
}

int thread_restore_one(struct rst_ctx *r, struct rproc *p, int i, struct inj *t)
{
	ImgThread *th = p->th[i];
	uint64_t sc = r->scratch_addr;
	long x;
	int err;
	stack_t ss = { (void *)th->ss_sp, (int)(th->ss_flags & ~SS_ONSTACK), th->ss_size };
	if (!(th->ss_flags & SS_DISABLE)) {
		if ((err = mem_write(p->hpid, sc, &ss, sizeof(ss))) < 0)
			return err;
		if ((x = inj_call(t, "restore: sigaltstack", SYS_sigaltstack, sc, 0, 0, 0, 0, 0)) < 0)
			return (int)x;
	}
	if (th->has_rseq_ptr && th->rseq_ptr &&
	    (x = inj_call(t, "restore: rseq", SYS_rseq, th->rseq_ptr, th->rseq_size, 0, th->rseq_sig, 0, 0)) < 0)
		return (int)x;
	if ((x = inj_call(t, "restore: set_tid_address", SYS_set_tid_address,
			  th->has_tid_address ? th->tid_address : 0, 0, 0, 0, 0, 0)) < 0)
		return (int)x;
	if (th->has_robust_list && th->robust_list &&
	    (x = inj_call(t, "restore: set_robust_list", SYS_set_robust_list, th->robust_list,
			  th->robust_len, 0, 0, 0, 0)) < 0)
		return (int)x;
	char comm[16] = { 0 };
	snprintf(comm, sizeof(comm), "%s", th->comm);
	if ((err = mem_write(p->hpid, sc, comm, sizeof(comm))) < 0)
		return err;
	if ((x = inj_call(t, "restore: PR_SET_NAME", SYS_prctl, PR_SET_NAME, sc, 0, 0, 0, 0)) < 0)
		return (int)x;
	return 0;
}

/* Create threads 1..n-1 and restore each thread's own state (not registers). */
int threads_restore_late(struct rst_ctx *r, struct rproc *p)
{
	p->tinj = xcalloc((size_t)p->nth, sizeof(struct inj));
	p->htids = xcalloc((size_t)p->nth, sizeof(pid_t));
	p->tinj[0] = p->inj;
	p->htids[0] = p->hpid;
	if (p->nth == 1)
		return leader_restore_queued(r, p);
	int ferr = rq_flush(r, p);     /* the calls below are injected one by one */
	if (ferr < 0)
		return ferr;
	uint64_t sc = r->scratch_addr;
	for (int i = 1; i < p->nth; i++) {
		struct clone_args ca = { 0 };
		uint64_t tid = p->th[i]->tid;
		ca.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
		ca.set_tid = sc + 256;
		ca.set_tid_size = 1;
		int err;
		if ((err = mem_write(p->hpid, sc, &ca, sizeof(ca))) < 0 ||
		    (err = mem_write(p->hpid, sc + 256, &tid, sizeof(pid_t))) < 0)
			return err;
		p->inj.new_tid = 0;
		long x = inj_call(&p->inj, "restore: clone3 thread", SYS_clone3, sc, sizeof(ca), 0, 0, 0, 0);
		if (x < 0) {
			log_err("restore: pid %u: create thread %u failed", p->tree->pid, p->th[i]->tid);
			return (int)x;
		}
		if ((uint64_t)x != tid || !p->inj.new_tid) {
			log_err("restore: pid %u: thread got tid %ld, wanted %u", p->tree->pid, x, p->th[i]->tid);
			return -EEXIST;
		}
		pid_t h = p->inj.new_tid;
		int st;
		if ((err = wait_stop(h, &st)) < 0)
			return err;
		p->htids[i] = h;
		p->tinj[i].tid = h;
		p->tinj[i].syscall_ip = p->inj.syscall_ip;
		if ((err = regs_get(h, &p->tinj[i].base)) < 0)
			return err;
		uint64_t mask = ~(1ull << (SIGTRAP - 1));
		if (ptrace(PTRACE_SETSIGMASK, h, (void *)8, &mask) < 0)
			return -errno;
	}
	p->tinj[0] = p->inj;
	for (int i = 0; i < p->nth; i++) {
		int err = thread_restore_one(r, p, i, &p->tinj[i]);
		if (err < 0)
			return err;
	}
	return 0;
}

/* Last step for a thread: its own registers, xstate and blocked mask. */
int thread_set_final(struct rst_ctx *r, struct rproc *p, int i)
{
	ImgThread *th = p->th[i];
	pid_t h = p->htids[i];
	struct user_regs_struct regs;
	int err;
	if (th->regs.len != sizeof(regs)) {
		log_err("restore: pid %u tid %u: registers of %zu bytes, want %zu", p->tree->pid, th->tid,
			th->regs.len, sizeof(regs));
		return -EINVAL;
	}
	memcpy(&regs, th->regs.data, sizeof(regs));
	pre_restart(&regs);
	/* xstate: exactly this kernel's size */
	static uint8_t *cur;      /* reused: a fresh 64 KiB per thread costs page faults */
	static size_t cur_len;    /* the size this kernel/CPU uses: the same for every thread */
	if (!cur)
		cur = xcalloc(1, XSTATE_MAX);
	struct iovec iov = { cur, XSTATE_MAX };
	if (cur_len)
		iov.iov_len = cur_len;
	else if (ptrace(PTRACE_GETREGSET, h, (void *)NT_X86_XSTATE, &iov) < 0)
		return -errno;
	else
		cur_len = iov.iov_len;
	if (iov.iov_len != th->xstate.len) {
		log_err("restore: pid %u tid %u: xstate of %zu bytes, this CPU/kernel uses %zu", p->tree->pid,
			th->tid, th->xstate.len, iov.iov_len);
		return -ENOTSUP;
	}
	iov.iov_base = th->xstate.data;
	iov.iov_len = th->xstate.len;
	if (ptrace(PTRACE_SETREGSET, h, (void *)NT_X86_XSTATE, &iov) < 0) {
		log_err("restore: pid %u tid %u: set xstate: %s", p->tree->pid, th->tid, strerror(errno));
		return -errno;
	}
	if ((err = regs_set(h, &regs)) < 0) {
		log_err("restore: pid %u tid %u: set registers: %s", p->tree->pid, th->tid, strerror(-err));
		return err;
	}
	uint64_t mask = th->sigmask;
	if (ptrace(PTRACE_SETSIGMASK, h, (void *)8, &mask) < 0)
		return -errno;
	(void)r;
	return 0;
}
