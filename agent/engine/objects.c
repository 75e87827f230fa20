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
			phase_mark(o->name);
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

/* Injection needs a `syscall` (the vdso's) and a scratch page for in/out
 * structures.  Signals stay blocked except SIGTRAP (see inject.c). */
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
	long r = inj_call(&p->inj, "dump: map scratch", SYS_mmap, 0, 4 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0);
	if (r < 0)
		return (int)r;
	p->scratch = (uint64_t)r;
	phase_mark("inject_mmap");
	/* /proc/PID/stat has start_brk but not brk (research/cr-mechanics.md §2.4) */
	r = inj_call(&p->inj, "dump: brk", SYS_brk, 0, 0, 0, 0, 0, 0);
	if (r < 0)
		return (int)r;
	p->core->mm->brk = (uint64_t)r;
	(void)d;
	return 0;
}
