/*
 * inject.c — remote system calls by single-stepping a `syscall` in the vdso.
 *
 * Facts this relies on (research/cr-mechanics.md §1.9, §2.1; probe §6):
 *  - a single-step over `syscall` traps (SIGTRAP, signal-delivery stop) right
 *    after the syscall returned, with the result in rax;
 *  - orig_rax must be -1 in the injected registers, or the kernel applies its
 *    syscall-restart logic to them when the stop ends;
 *  - a forced SIGTRAP on a thread that blocks it resets its handler to SIG_DFL,
 *    so callers keep SIGTRAP unblocked while injecting (PTRACE_SETSIGMASK).
 * With PTRACE_O_TRACECLONE an injected clone reports PTRACE_EVENT_CLONE first;
 * the new tid is kept in t->new_tid.
 */
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "agent/engine/inject.h"
#include "lib/log.h"

int regs_get(pid_t tid, struct user_regs_struct *r)
{
	struct iovec iov = { r, sizeof(*r) };
	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov) < 0)
		return -errno;
	if (iov.iov_len != sizeof(*r))
		return -EOPNOTSUPP;   /* a 32-bit (compat) task */
	return 0;
}

int regs_set(pid_t tid, const struct user_regs_struct *r)
{
	struct iovec iov = { (void *)r, sizeof(*r) };
	return ptrace(PTRACE_SETREGSET, tid, (void *)NT_PRSTATUS, &iov) < 0 ? -errno : 0;
}

int wait_stop(pid_t tid, int *status)
{
	for (;;) {
		pid_t p = waitpid(tid, status, __WALL);
		if (p == tid)
			return 0;
		if (p < 0 && errno != EINTR)
			return -errno;
	}
}

int inj_syscall(struct inj *t, long *ret, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		uint64_t a4, uint64_t a5, uint64_t a6)
{
	struct user_regs_struct r = t->base;
	int st, err;

	r.rax = (uint64_t)nr;
	r.rdi = a1; r.rsi = a2; r.rdx = a3; r.r10 = a4; r.r8 = a5; r.r9 = a6;
	r.rip = t->syscall_ip;
	r.orig_rax = (uint64_t)-1;
	r.eflags &= ~(0x100ull | 0x400ull);   /* TF, DF */
	if ((err = regs_set(t->tid, &r)) < 0) {
		log_err("tid %d: set registers for syscall %ld: %s", t->tid, nr, strerror(-err));
		return err;
	}
	if (ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0) {
		err = -errno;
		log_err("tid %d: single-step syscall %ld: %s", t->tid, nr, strerror(errno));
		return err;
	}
	for (;;) {
		if ((err = wait_stop(t->tid, &st)) < 0) {
			log_err("tid %d: wait in syscall %ld: %s", t->tid, nr, strerror(-err));
			return err;
		}
		if (!WIFSTOPPED(st)) {
			log_err("tid %d: died during injected syscall %ld (status 0x%x)", t->tid, nr, st);
			return -ESRCH;
		}
		int sig = WSTOPSIG(st), ev = st >> 16;
		if (sig == SIGTRAP && (ev == PTRACE_EVENT_CLONE || ev == PTRACE_EVENT_FORK ||
				       ev == PTRACE_EVENT_VFORK)) {
			unsigned long msg = 0;
			ptrace(PTRACE_GETEVENTMSG, t->tid, 0, &msg);
			t->new_tid = (pid_t)msg;
		} else if (sig == SIGTRAP && ev == 0) {
			break;
		} else if (ev == PTRACE_EVENT_STOP) {
			/* a late INTERRUPT or group-stop notification: keep stepping */
		} else {
			log_err("tid %d: unexpected signal %d during injected syscall %ld", t->tid, sig, nr);
			return -EINTR;
		}
		if (ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0)
			return -errno;
	}
	if ((err = regs_get(t->tid, &r)) < 0) {
		log_err("tid %d: read registers after syscall %ld: %s", t->tid, nr, strerror(-err));
		return err;
	}
	if (r.rip != t->syscall_ip + 2) {
		log_err("tid %d: injected syscall %ld stopped at %#llx, not after the syscall",
			t->tid, nr, (unsigned long long)r.rip);
		return -EIO;
	}
	*ret = (long)r.rax;
	return 0;
}

long inj_call(struct inj *t, const char *what, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
	      uint64_t a4, uint64_t a5, uint64_t a6)
{
	long ret;
	int err = inj_syscall(t, &ret, nr, a1, a2, a3, a4, a5, a6);
	if (err < 0)
		return err;
	if (ret < 0 && ret > -4096) {
		log_err("tid %d: %s: %s", t->tid, what, strerror((int)-ret));
		return ret;
	}
	return ret;
}

long vdso_syscall_offset(void)
{
	static long off = -2;
	if (off != -2)
		return off;
	off = -1;
	const unsigned char *v = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
	if (!v)
		return off;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)v;
	size_t len = 0;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(v + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_offset + ph[i].p_filesz > len)
			len = ph[i].p_offset + ph[i].p_filesz;
	for (size_t i = 0; i + 1 < len; i++)
		if (v[i] == 0x0f && v[i + 1] == 0x05) {
			off = (long)i;
			break;
		}
	return off;
}

int mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
	while (len) {
		struct iovec l = { (void *)buf, len }, r = { (void *)addr, len };
		ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);
		if (n <= 0)
			return n < 0 ? -errno : -EFAULT;
		buf = (const char *)buf + n; addr += (uint64_t)n; len -= (size_t)n;
	}
	return 0;
}

int mem_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	while (len) {
		struct iovec l = { buf, len }, r = { (void *)addr, len };
		ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
		if (n <= 0)
			return n < 0 ? -errno : -EFAULT;
		buf = (char *)buf + n; addr += (uint64_t)n; len -= (size_t)n;
	}
	return 0;
}
