/*
 * cowsnap.c — copy-on-write page capture for snapshots (--leave-running).
 *
 * Copying a big process's pages while the pod is frozen costs ~2× a memcpy
 * of them (process_vm_readv).  Instead, while frozen, a fork is injected
 * into the process: the kernel copies only page tables and write-protects
 * the pages, so the child's memory stays exactly the process's memory at the
 * freeze whatever the pod writes later.  The pod is resumed and the pages are
 * read from the child at leisure; then the child is killed and reaped.
 *
 * The child (docs/engine.md, "Copy-on-write capture"):
 *  - is born traced and stopped: PTRACE_O_TRACECLONE is set on the forking
 *    thread for the call, and an auto-attached child of a PTRACE_SEIZEd
 *    tracee starts in PTRACE_EVENT_STOP (kernel/ptrace.c ptrace_init_task,
 *    JOBCTL_TRAP_STOP).  It never returns to user space: it gets
 *    PTRACE_O_EXITKILL at once (the engine dying kills it) and registers
 *    that would only call exit_group;
 *  - has exit_signal 0 (clone flags 0): its parent gets no SIGCHLD, and
 *    wait()/waitpid() without __WALL/__WCLONE never see it (kernel/exit.c
 *    eligible_child).  CLONE_PARENT cannot help: the pod's init may not use
 *    it (EINVAL, SIGNAL_UNKILLABLE) and any other parent is in the pod too;
 *  - once killed and reaped by us (its tracer), the kernel hands the zombie
 *    back to its real parent (wait_task_zombie, EXIT_TRACE) and, with exit
 *    signal 0, nobody would reap it: the engine seizes the parent's thread
 *    again for one injected wait4(child, __WALL|WNOHANG) and puts it back;
 *  - takes one pid of the pod's pid namespace while it exists (visible in
 *    the pod's /proc, not to wait() without __WALL).
 * What a fork does not copy privately is read while frozen as before
 * (mm.c: shared mappings always; a process with MADV_DONTFORK/WIPEONFORK
 * VMAs or userfaultfd registrations entirely — a userfaultfd with
 * UFFD_FEATURE_EVENT_FORK would block the fork on its stopped monitor).
 * Only processes with at least 16 MiB of pages use it: for small ones the
 * fork and the second seize cost more than the copy.
 */
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

/* Kill a snapshot child and reap it as its tracer (SIGKILL ends a stopped
 * tracee without it returning to user space). */
static void child_end(pid_t child)
{
	kill(child, SIGKILL);
	for (;;) {
		int st;
		pid_t r = waitpid(child, &st, __WALL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || WIFEXITED(st) || WIFSIGNALED(st))
			return;
	}
}

/* wait4 the dead child (its pid in the pod) inside its parent, through the
 * stopped thread t. */
static void parent_reap(struct inj *t, pid_t child, uint32_t pid)
{
	long r;
	if (inj_syscall(t, &r, SYS_wait4, (uint64_t)child, 0, __WALL | WNOHANG, 0, 0, 0) == 0 &&
	    r != child && r != -ECHILD)
		log_warn("dump: pid %u: reap snapshot child %d: %ld", pid, child, r);
}

static int fork_one(struct dproc *p)
{
	long r = -1;
	pid_t child = 0;
	int err, st;

	/* The clone must be the last call run in the process before it is
	 * released: it then never returns to user mode while frozen (the step
	 * trap is reported on the way out of the syscall).  On this VM the first
	 * return to user mode after a fork costs 7-17 ms (the MMU catching up
	 * with the write-protected page tables); the process pays it when it
	 * runs again, not the frozen window.  So the scratch goes first. */
	if (p->scratch) {
		if ((err = inj_syscall(&p->inj, &r, SYS_munmap, p->scratch, 4 * PAGE, 0, 0, 0, 0)) < 0)
			return err;
		p->scratch = 0;
	}
	if (ptrace(PTRACE_SETOPTIONS, p->hpid, 0, PTRACE_O_TRACECLONE) < 0)
		return -errno;
	p->inj.new_tid = 0;
	/* clone(flags = 0: exit_signal 0, no CLONE_UNTRACED, same stack) */
	err = inj_syscall(&p->inj, &r, SYS_clone, 0, 0, 0, 0, 0, 0);
	ptrace(PTRACE_SETOPTIONS, p->hpid, 0, 0);
	child = p->inj.new_tid;
	/* r: the child's pid in the pod (what its parent waits for); child: ours */
	if (err < 0 || r <= 0 || child <= 0) {
		log_warn("dump: pid %u: snapshot fork failed (%ld): copying while frozen", p->tree->pid,
			 err < 0 ? (long)err : r);
		if (child > 0) {
			child_end(child);
			if (r > 0)
				parent_reap(&p->inj, (pid_t)r, p->tree->pid);
		}
		return -EAGAIN;
	}
	if ((err = wait_stop(child, &st)) < 0 || !WIFSTOPPED(st)) {
		log_warn("dump: pid %u: snapshot child %d did not stop (0x%x)", p->tree->pid, child, st);
		child_end(child);
		parent_reap(&p->inj, (pid_t)r, p->tree->pid);
		return -EAGAIN;
	}
	ptrace(PTRACE_SETOPTIONS, child, 0, PTRACE_O_EXITKILL);
	/* should it ever run, it only exits */
	struct user_regs_struct regs = p->inj.base;
	regs.rip = p->inj.syscall_ip;
	regs.rax = SYS_exit_group;
	regs.orig_rax = (uint64_t)-1;
	regs.rdi = 0;
	regs_set(child, &regs);
	p->cow_child = child;
	p->cow_child_ns = (pid_t)r;
	return 0;
}

int cow_fork_all(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (!p->cow_defer)
			continue;
		if (fork_one(p) == 0)
			continue;
		/* no snapshot: copy now, the pod is still frozen (a big copy:
		 * not at real-time priority, dump.c) */
		rt_leave();
		p->cow_defer = false;
		int err = mm_cow_runs(p, p->hpid);
		if (err == 0)
			err = mm_read_pages(p, p->hpid);
		if (err < 0)
			return err;
	}
	return 0;
}

void cow_abort_all(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (!p->cow_child)
			continue;
		child_end(p->cow_child);
		if (p->th && p->th[0].seized && p->th[0].interrupted)
			parent_reap(&p->inj, p->cow_child_ns, p->tree->pid);
		p->cow_child = 0;
		p->cow_defer = false;
	}
}

/* AT_SYSINFO_EHDR of a process (its vdso now), 0 if unknown. */
static uint64_t vdso_now(pid_t pid)
{
	char path[64];
	size_t len = 0;
	snprintf(path, sizeof(path), "/proc/%d/auxv", pid);
	uint64_t *av = (uint64_t *)read_file_str(path, &len), at = 0;
	for (size_t i = 0; av && i + 1 < len / 8; i += 2)
		if (av[i] == AT_SYSINFO_EHDR) {
			at = av[i + 1];
			break;
		}
	free(av);
	return at;
}

/* The pod runs again: stop the parent's leader thread briefly (seize +
 * interrupt, as for a dump) to wait4 the child, then put it back. */
static void reap_running(struct dproc *p, pid_t child)
{
	pid_t tid = p->hpid;
	int st;
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0 || ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
		log_warn("dump: pid %u: seize to reap snapshot child %d: %s", p->tree->pid, child,
			 strerror(errno));
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return;
	}
	for (;;) {
		if (wait_stop(tid, &st) < 0 || !WIFSTOPPED(st))
			return;         /* gone: its children went to the reaper */
		if ((st >> 16) == PTRACE_EVENT_STOP)
			break;
		/* a signal on its way: deliver it, as without us */
		if (ptrace(PTRACE_CONT, tid, 0, WSTOPSIG(st)) < 0)
			return;
	}
	/* it ran meanwhile and may have exec'd: find its vdso again */
	uint64_t vdso = vdso_now(tid);
	struct user_regs_struct saved;
	uint64_t mask, inj_mask = ~(1ull << (SIGTRAP - 1));
	if (!vdso)
		log_warn("dump: pid %u: no vdso to reap snapshot child %d with", p->tree->pid, child);
	else if (regs_get(tid, &saved) == 0 && ptrace(PTRACE_GETSIGMASK, tid, (void *)8, &mask) == 0) {
		struct inj t = { .tid = tid, .base = saved,
				 .syscall_ip = vdso + (uint64_t)vdso_syscall_offset() };
		if (ptrace(PTRACE_SETSIGMASK, tid, (void *)8, &inj_mask) == 0)
			parent_reap(&t, child, p->tree->pid);
		regs_set(tid, &saved);
		ptrace(PTRACE_SETSIGMASK, tid, (void *)8, &mask);
	}
	if (ptrace(PTRACE_DETACH, tid, 0, 0) < 0 && errno != ESRCH)
		log_warn("dump: pid %u: detach after reaping: %s", p->tree->pid, strerror(errno));
}

/* The pod runs again: find each snapshot's pages in the child's page
 * tables; the image writer reads them from the child run group by run
 * group into one reused buffer (mm_late_read), as for a dump that ends the
 * pod — no copy of the whole memory into fresh engine memory, whose first
 * touches cost more here than the copy.  The children end after the write
 * (cow_end_all). */
int cow_read_all(struct dump_ctx *d)
{
	int err = 0;
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (!p->cow_child || !p->cow_defer)
			continue;
		p->cow_defer = false;
		if (!err && (err = mm_cow_runs(p, p->cow_child)) == 0)
			p->late = true;
	}
	return err;
}

void cow_end_all(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (!p->cow_child)
			continue;
		if (getenv("ZAPC_ENGINE_TIMING"))
			fprintf(stderr, "TIMING dump_mm_read_ms %.3f (pid %u, %d runs, from the snapshot child, "
				"while writing)\n", p->cow_read_ms, p->tree->pid, p->nruns);
		child_end(p->cow_child);
		reap_running(p, p->cow_child_ns);
		p->cow_child = 0;
	}
}
