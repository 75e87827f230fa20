/*
 * objects.c — the one table of object kinds (see objects.h) and the loops
 * that run it.  Order matters and is the order of the table:
 *   dump:  creds/ids, memory (before any injected scratch mapping exists),
 *          files, the injection scratch, threads, signals, timers;
 *   early: files (fd numbers), process attributes (cwd, umask, ...);
 *   late:  threads, signals, timers, creds (last: they may drop privileges).
 * Memory restore reads page records and is driven by restore.c directly.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "agent/engine/fdkind.h"
#include "agent/engine/objects.h"
#include "lib/log.h"

int inject_prepare(struct dump_ctx *d, struct dproc *p);

const struct engine_object engine_objects[] = {
	{ "creds",   creds_dump,   creds_restore_early, NULL },
	{ "mm",      mm_dump,      NULL,                NULL },
	{ "files",   files_dump,   files_restore_early, NULL },
	{ "inject",  inject_prepare, NULL,              NULL },
	{ "dirty",   dirty_arm,    NULL,                NULL },   /* after mm (pages read) and inject */
	{ "threads", threads_dump, NULL,                threads_restore_late },
	{ "signals", signals_dump, NULL,                signals_restore_late },
	{ "timers",  timers_dump,  NULL,                timers_restore_late },
	{ "pidfd",   NULL,         NULL,                pidfd_restore_late },
	{ "creds-late", NULL,      NULL,                creds_restore_late },
	{ NULL, NULL, NULL, NULL },
};

#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int objects_dump(struct dump_ctx *d)
{
	double spent[16] = { 0 };
	int timing = getenv("ZAPC_ENGINE_TIMING") != NULL;
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (p->tree->zombie)
			continue;
		for (const struct engine_object *o = engine_objects; o->name; o++) {
			if (!o->dump)
				continue;
			double t0 = timing ? now_ms() : 0;
			int err = o->dump(d, p);
			if (timing)
				spent[o - engine_objects] += now_ms() - t0;
			if (err < 0)
				return err;
		}
	}
	for (const struct engine_object *o = engine_objects; timing && o->name; o++)
		if (o->dump)
			fprintf(stderr, "TIMING dump_%s_ms %.3f\n", o->name, spent[o - engine_objects]);
	int err = files_dump_finish(d);
	return err < 0 ? err : mm_dump_shm(d);
}

int objects_early(struct rst_ctx *r, struct rproc *p)
{
	for (const struct engine_object *o = engine_objects; o->name; o++) {
		if (!o->early)
			continue;
		int err = o->early(r, p);
		if (err < 0)
			return err;
	}
	return 0;
}

int objects_late(struct rst_ctx *r, struct rproc *p)
{
	for (const struct engine_object *o = engine_objects; o->name; o++) {
		if (!o->late)
			continue;
		int err = o->late(r, p);
		if (err < 0)
			return err;
	}
	return 0;
}

/* SigCgt | SigIgn of /proc/PID/status (hex masks), or ~0 if unreadable. */
static uint64_t signals_wanted(pid_t hpid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", hpid);
	char *st = read_file_str(path, NULL);
	if (!st)
		return ~0ull;
	uint64_t m = 0;
	const char *k;
	if ((k = strstr(st, "SigCgt:\t")))
		m |= strtoull(k + 8, NULL, 16);
	if ((k = strstr(st, "SigIgn:\t")))
		m |= strtoull(k + 8, NULL, 16);
	free(st);
	return m;
}

/* Injection needs a `syscall` (the vdso's) and a scratch page for in/out
 * structures.  Signals stay blocked except SIGTRAP (see inject.c).  Then
 * the leader's queries of the other objects (brk, itimers, sigaltstack,
 * tid address, sigactions) go as one batch (struct dump_prefetch). */
int inject_prepare(struct dump_ctx *d, struct dproc *p)
{
	long off = vdso_syscall_offset();
	if (!p->vdso_start || off < 0) {
		log_err("dump: pid %u has no vdso to run system calls in", p->tree->pid);
		return -ENOTSUP;
	}
	p->inj.tid = p->hpid;
	p->inj.base = p->th[0].regs;
	p->inj.syscall_ip = p->vdso_start + (uint64_t)off;
	uint64_t mask = ~(1ull << (SIGTRAP - 1));
	if (ptrace(PTRACE_SETSIGMASK, p->hpid, (void *)8, &mask) < 0)
		return -errno;
	/* executable for the batch loop (inject.c); a process under
	 * PR_SET_MDWE (or an LSM) refuses W+X: then one injection per query */
	long r;
	int err = inj_syscall(&p->inj, &r, SYS_mmap, 0, 4 * PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
			      MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0);
	if (err < 0)
		return err;
	bool batch = r > 0 || r < -4095;
	if (!batch) {
		log_debug("dump: pid %u: no W+X scratch (%s): one injection per query", p->tree->pid,
			  strerror((int)-r));
		r = inj_call(&p->inj, "dump: map scratch", SYS_mmap, 0, 4 * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0);
	}
	if (r < 0 && r > -4096)
		return (int)r;
	p->scratch = (uint64_t)r;
	if (!batch) {
		/* /proc/PID/stat has start_brk but not brk (research/cr-mechanics.md §2.4) */
		r = inj_call(&p->inj, "dump: brk", SYS_brk, 0, 0, 0, 0, 0, 0);
		if (r < 0)
			return (int)r;
		p->core->mm->brk = (uint64_t)r;
		return 0;
	}

	struct dump_prefetch *pf = xcalloc(1, sizeof(*pf));
	struct inj_op ops[INJ_BATCH_MAX];
	int n = 0, sig_at[65] = { 0 };
	uint64_t sc = p->scratch;
	pf->sigwant = signals_wanted(p->hpid);
	/* /proc/PID/stat has start_brk but not brk (research/cr-mechanics.md §2.4) */
	ops[n++] = (struct inj_op){ SYS_brk, { 0 }, 0 };
	for (int w = 0; w < 3; w++)
		ops[n++] = (struct inj_op){ SYS_getitimer, { (uint64_t)w, sc + PF_ITIMER(w) }, 0 };
	ops[n++] = (struct inj_op){ SYS_sigaltstack, { 0, sc + PF_ALTSTACK }, 0 };
	ops[n++] = (struct inj_op){ SYS_prctl, { PR_GET_TID_ADDRESS, sc + PF_TIDADDR }, 0 };
	for (int sig = 1; sig <= 64 && n < INJ_BATCH_MAX; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || !(pf->sigwant & (1ull << (sig - 1))))
			continue;
		sig_at[sig] = n;
		ops[n++] = (struct inj_op){ SYS_rt_sigaction, { (uint64_t)sig, 0, sc + PF_SIGACT(sig), 8 }, 0 };
	}
	err = inj_batch(&p->inj, sc + 3 * PAGE, ops, n);
	if (err == 0)
		err = mem_read(p->hpid, sc, pf->out, sizeof(pf->out));
	if (err < 0) {
		log_err("dump: pid %u: batch of queries: %s", p->tree->pid, strerror(-err));
		free(pf);
		return err;
	}
	if (ops[0].ret < 0) {
		log_err("dump: pid %u: brk: %s", p->tree->pid, strerror((int)-ops[0].ret));
		free(pf);
		return (int)ops[0].ret;
	}
	p->core->mm->brk = (uint64_t)ops[0].ret;
	pf->brk = ops[0].ret;
	for (int w = 0; w < 3; w++)
		pf->itimer_ret[w] = ops[1 + w].ret;
	pf->altstack_ret = ops[4].ret;
	pf->tidaddr_ret = ops[5].ret;
	for (int sig = 1; sig <= 64; sig++)
		pf->sigaction_ret[sig] = sig_at[sig] ? ops[sig_at[sig]].ret : -ENOENT;
	p->pre = pf;
	(void)d;
	return 0;
}
