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
#include <pthread.h>
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
int sysv_restore_early(struct rst_ctx *r, struct rproc *p);
int sysv_shm_restore_late(struct rst_ctx *r, struct rproc *p);
int pty_ctty_dump(struct dump_ctx *d, struct dproc *p);
int pty_restore_early(struct rst_ctx *r, struct rproc *p);
int pty_restore_late(struct rst_ctx *r, struct rproc *p);
static int inject_prepare_all(struct dump_ctx *d);

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
	{ "sysv",    NULL,         sysv_restore_early,  sysv_shm_restore_late },   /* sysv*.c */
	{ "ctty",    pty_ctty_dump, pty_restore_early,  pty_restore_late },        /* pty.c */
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

/*
 * The two cores (docs: dump100 notes): while the main thread reads every
 * process's fds, a helper thread reads creds and the address spaces (smaps,
 * PAGEMAP_SCAN) — /proc and page-table walks that need no ptrace link (a
 * tracee answers ptrace requests only from the thread that seized it, so
 * everything ptrace stays in the main thread).  What mm_dump would add to
 * the dump-wide model is left for mm_dump_resolve (main thread, after the
 * join).  Only for a dump that ends the pod and reads pages late: no page
 * pool, no copy-on-write, no dirty tracking shared between the threads.
 */
static bool helper_object(const struct engine_object *o)
{
	return o->dump == creds_dump || o->dump == mm_dump;
}

struct helper_job {
	struct dump_ctx *d;
	int err;
	double spent[16];
};

static void *helper_run(void *arg)
{
	struct helper_job *j = arg;
	bool timing = getenv("ZAPC_ENGINE_TIMING") != NULL;
	phase_thread_off();
	mm_dump_deferring(true);
	for (int i = 0; i < j->d->nprocs && !j->err; i++) {
		struct dproc *p = &j->d->procs[i];
		if (p->tree->zombie)
			continue;
		for (const struct engine_object *o = engine_objects; o->name && !j->err; o++) {
			if (!helper_object(o))
				continue;
			double t0 = timing ? now_ms() : 0;
			j->err = o->dump(j->d, p);
			if (timing)
				j->spent[o - engine_objects] += now_ms() - t0;
		}
	}
	mm_dump_deferring(false);
	return NULL;
}

/* Pass 0 on two threads; 1 if not taken (the caller runs it alone). */
static int pass0_two_threads(struct dump_ctx *d, double *spent, bool timing)
{
	if (!d->late_pages || d->nprocs < 4 || getenv("ZAPC_ENGINE_ONE_THREAD"))
		return 1;
	struct helper_job j = { d, 0, { 0 } };
	pthread_t th;
	if (pthread_create(&th, NULL, helper_run, &j) != 0)
		return 1;
	int err = 0;
	for (int i = 0; i < d->nprocs && !err; i++) {
		struct dproc *p = &d->procs[i];
		if (p->tree->zombie)
			continue;
		for (const struct engine_object *o = engine_objects; o->name && !err; o++) {
			if (o->dump == inject_prepare)
				break;
			if (!o->dump || helper_object(o))
				continue;
			double t0 = timing ? now_ms() : 0;
			err = o->dump(d, p);
			if (timing)
				spent[o - engine_objects] += now_ms() - t0;
		}
	}
	phase_mark("pass0_main");
	pthread_join(th, NULL);
	phase_mark("pass0_join");
	for (int k = 0; k < 16; k++)
		spent[k] += j.spent[k];
	if (!err)
		err = j.err;
	for (int i = 0; i < d->nprocs && !err; i++)
		if (!d->procs[i].tree->zombie)
			err = mm_dump_resolve(d, &d->procs[i]);
	phase_mark("mm_resolve");
	return err;
}

/*
 * Per process, the objects before "inject" (they read /proc and memory,
 * before any scratch mapping exists), then the injection set-up of every
 * process at once (inject_prepare_all: the ptrace round trips of all the
 * processes overlap), then the objects after it.
 */
int objects_dump(struct dump_ctx *d)
{
	double spent[16] = { 0 };
	int timing = getenv("ZAPC_ENGINE_TIMING") != NULL;
	int two = pass0_two_threads(d, spent, timing);
	if (two < 0)
		return two;
	/*
	 * The ptrace part (injection set-up, then threads, signals, timers)
	 * runs SCHED_FIFO (rtprio.c) unless the whole window already does:
	 * every PTRACE_CONT/SINGLESTEP wakes a tracee that has slept for long
	 * and so preempts the engine on its own CPU; at real-time priority the
	 * tracee runs on the other CPU while the engine starts the next one
	 * (measured: injection waves of 100 processes 28 -> 11 ms).  No bulk
	 * copy happens in this part: pages, shared memory and file contents
	 * are read before it or after it.
	 */
	bool rt = false;
	for (int pass = two ? 0 : 1; pass < 2; pass++) {
		if (pass == 1) {
			if (!d->rt) {
				rt_enter();
				rt = true;
			}
			double t0 = timing ? now_ms() : 0;
			int err = inject_prepare_all(d);
			for (const struct engine_object *o = engine_objects; timing && o->name; o++)
				if (o->dump == inject_prepare)
					spent[o - engine_objects] += now_ms() - t0;
			phase_mark("inject");
			if (err < 0) {
				if (rt)
					rt_leave();
				return err;
			}
		}
		for (int i = 0; i < d->nprocs; i++) {
			struct dproc *p = &d->procs[i];
			if (p->tree->zombie)
				continue;
			bool after = false;
			for (const struct engine_object *o = engine_objects; o->name; o++) {
				if (o->dump == inject_prepare) {
					after = true;
					continue;
				}
				if (!o->dump || after != (pass == 1))
					continue;
				double t0 = timing ? now_ms() : 0;
				int err = o->dump(d, p);
				if (timing)
					spent[o - engine_objects] += now_ms() - t0;
				phase_mark(o->name);
				if (err < 0) {
					if (rt)
						rt_leave();
					return err;
				}
			}
		}
	}
	if (rt)
		rt_leave();
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
static uint64_t signals_wanted(const struct dproc *p)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", p->hpid);
	char *st = p->status ? p->status : read_file_str(path, NULL);
	if (!st)
		return ~0ull;
	uint64_t m = 0;
	const char *k;
	if ((k = strstr(st, "SigCgt:\t")))
		m |= strtoull(k + 8, NULL, 16);
	if ((k = strstr(st, "SigIgn:\t")))
		m |= strtoull(k + 8, NULL, 16);
	if (st != p->status)
		free(st);
	return m;
}

/* Injection needs a `syscall` (the vdso's) and a scratch page for in/out
 * structures.  Signals stay blocked except SIGTRAP (see inject.c).  Then
 * the leader's queries of the other objects (brk, itimers, sigaltstack,
 * tid address, sigactions) go as one batch (struct dump_prefetch).
 * inject_prepare_all does it for every process at once, in two waves (map
 * the scratch everywhere, then run every batch): each wave starts the call
 * in every process before waiting for any.  The table entry itself is only
 * a marker for where this happens among the objects. */
int inject_prepare(struct dump_ctx *d, struct dproc *p)
{
	(void)d;
	(void)p;
	return 0;
}

struct prep {
	bool started;
	int n, sig_at[65];
	struct inj_op ops[INJ_BATCH_MAX];
};

static int prep_map_start(struct dproc *p)
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
	/* executable for the batch loop (inject.c) */
	return inj_syscall_start(&p->inj, SYS_mmap, 0, 4 * PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
				 MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0);
}

/* The scratch mapping is there (r): start the batch of queries, or — a
 * process under PR_SET_MDWE (or an LSM) refuses W+X — map it without exec
 * and ask for brk alone (the objects then inject one call per query). */
static int prep_batch_start(struct dproc *p, long r, struct prep *w)
{
	if (r < 0 && r > -4096) {
		log_debug("dump: pid %u: no W+X scratch (%s): one injection per query", p->tree->pid,
			  strerror((int)-r));
		r = inj_call(&p->inj, "dump: map scratch", SYS_mmap, 0, 4 * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0);
		if (r < 0)
			return (int)r;
		p->scratch = (uint64_t)r;
		/* /proc/PID/stat has start_brk but not brk (research/cr-mechanics.md §2.4) */
		r = inj_call(&p->inj, "dump: brk", SYS_brk, 0, 0, 0, 0, 0, 0);
		if (r < 0)
			return (int)r;
		p->core->mm->brk = (uint64_t)r;
		return 0;
	}
	p->scratch = (uint64_t)r;
	p->pre = xcalloc(1, sizeof(*p->pre));
	uint64_t sc = p->scratch, want = p->pre->sigwant = signals_wanted(p);
	int n = 0;
	w->ops[n++] = (struct inj_op){ SYS_brk, { 0 }, 0 };
	for (int t = 0; t < 3; t++)
		w->ops[n++] = (struct inj_op){ SYS_getitimer, { (uint64_t)t, sc + PF_ITIMER(t) }, 0 };
	w->ops[n++] = (struct inj_op){ SYS_sigaltstack, { 0, sc + PF_ALTSTACK }, 0 };
	w->ops[n++] = (struct inj_op){ SYS_prctl, { PR_GET_TID_ADDRESS, sc + PF_TIDADDR }, 0 };
	for (int sig = 1; sig <= 64 && n < INJ_BATCH_MAX; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || !(want & (1ull << (sig - 1))))
			continue;
		w->sig_at[sig] = n;
		w->ops[n++] = (struct inj_op){ SYS_rt_sigaction, { (uint64_t)sig, 0, sc + PF_SIGACT(sig), 8 }, 0 };
	}
	w->n = n;
	int err = inj_batch_start(&p->inj, sc + 3 * PAGE, w->ops, n);
	w->started = err == 0;
	return err;
}

static int prep_batch_finish(struct dproc *p, struct prep *w)
{
	struct dump_prefetch *pf = p->pre;
	int err = inj_batch_finish(&p->inj, p->scratch + 3 * PAGE, w->ops, w->n);
	if (err == 0)
		err = mem_read(p->hpid, p->scratch, pf->out, sizeof(pf->out));
	if (err == 0 && w->ops[0].ret < 0) {
		err = (int)w->ops[0].ret;
		log_err("dump: pid %u: brk: %s", p->tree->pid, strerror(-err));
	} else if (err < 0) {
		log_err("dump: pid %u: batch of queries: %s", p->tree->pid, strerror(-err));
	}
	if (err < 0) {
		free(pf);
		p->pre = NULL;
		return err;
	}
	p->core->mm->brk = (uint64_t)w->ops[0].ret;
	pf->brk = w->ops[0].ret;
	for (int t = 0; t < 3; t++)
		pf->itimer_ret[t] = w->ops[1 + t].ret;
	pf->altstack_ret = w->ops[4].ret;
	pf->tidaddr_ret = w->ops[5].ret;
	for (int sig = 1; sig <= 64; sig++)
		pf->sigaction_ret[sig] = w->sig_at[sig] ? w->ops[w->sig_at[sig]].ret : -ENOENT;
	return 0;
}

/* Every wave finishes every call it started, error or not: no tracee is
 * left running injected code when this returns. */
static int inject_prepare_all(struct dump_ctx *d)
{
	int n = d->nprocs, err = 0;
	struct prep *w = xcalloc((size_t)n, sizeof(*w));
	long *ret = xcalloc((size_t)n, sizeof(*ret));
	for (int i = 0; i < n && !err; i++)
		if (!d->procs[i].tree->zombie) {
			err = prep_map_start(&d->procs[i]);
			w[i].started = err == 0;
		}
	phase_mark("inj_map_start");
	for (int i = 0; i < n; i++) {
		if (!w[i].started)
			continue;
		w[i].started = false;
		int e = inj_syscall_finish(&d->procs[i].inj, &ret[i]);
		if (e < 0 && !err)
			err = e;
		if (e == 0 && ret[i] < 0 && ret[i] > -4096 && ret[i] != -EACCES && ret[i] != -EPERM && !err) {
			log_err("dump: pid %u: map scratch: %s", d->procs[i].tree->pid, strerror((int)-ret[i]));
			err = (int)ret[i];
		}
		if (e == 0 && (ret[i] > 0 || ret[i] < -4095))
			d->procs[i].scratch = (uint64_t)ret[i];   /* removed on release even if we fail */
	}
	phase_mark("inj_map_finish");
	for (int i = 0; i < n && !err; i++)
		if (!d->procs[i].tree->zombie)
			err = prep_batch_start(&d->procs[i], ret[i], &w[i]);
	phase_mark("inj_batch_start");
	for (int i = 0; i < n; i++) {
		if (!w[i].started)
			continue;
		int e = prep_batch_finish(&d->procs[i], &w[i]);
		if (e < 0 && !err)
			err = e;
	}
	free(w);
	free(ret);
	return err;
}
