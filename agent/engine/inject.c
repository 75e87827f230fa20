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
#include <fcntl.h>
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

int inj_syscall_start(struct inj *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		      uint64_t a5, uint64_t a6)
{
	struct user_regs_struct r = t->base;
	int err;

	r.rax = (uint64_t)nr;
	r.rdi = a1; r.rsi = a2; r.rdx = a3; r.r10 = a4; r.r8 = a5; r.r9 = a6;
	r.rip = t->syscall_ip;
	r.orig_rax = (uint64_t)-1;
	r.eflags &= ~(0x100ull | 0x400ull);   /* TF, DF */
	t->nr = nr;
	if ((err = regs_set(t->tid, &r)) < 0) {
		log_err("tid %d: set registers for syscall %ld: %s", t->tid, nr, strerror(-err));
		return err;
	}
	if (ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0) {
		err = -errno;
		log_err("tid %d: single-step syscall %ld: %s", t->tid, nr, strerror(errno));
		return err;
	}
	return 0;
}

int inj_syscall_finish(struct inj *t, long *ret)
{
	struct user_regs_struct r;
	long nr = t->nr;
	int st, err;

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

int inj_syscall(struct inj *t, long *ret, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		uint64_t a4, uint64_t a5, uint64_t a6)
{
	int err = inj_syscall_start(t, nr, a1, a2, a3, a4, a5, a6);
	return err < 0 ? err : inj_syscall_finish(t, ret);
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

int proc_mem_fd(pid_t pid, int *fd, int flags)
{
	char path[64];
	if (*fd >= 0)
		return *fd;
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	return *fd = open(path, flags | O_CLOEXEC);
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

/* mov (%rbx),%rax; cmp $-1,%rax; je done; mov 8..48(%rbx) -> rdi rsi rdx r10 r8 r9;
 * syscall; mov %rax,56(%rbx); add $64,%rbx; jmp loop; done: int3 */
static const uint8_t batch_code[] = {
	0x48, 0x8b, 0x03, 0x48, 0x83, 0xf8, 0xff, 0x74, 0x24, 0x48, 0x8b, 0x7b, 0x08, 0x48, 0x8b, 0x73,
	0x10, 0x48, 0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20, 0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b,
	0x30, 0x0f, 0x05, 0x48, 0x89, 0x43, 0x38, 0x48, 0x83, 0xc3, 0x40, 0xeb, 0xd3, 0xcc,
};

/* One write: the loop, the ops and the end marker (inj_batch_with_start). */
int inj_batch_start(struct inj *t, uint64_t area, const struct inj_op *ops, int k)
{
	return inj_batch_with_start(t, area, ops, k, 0, NULL, 0);
}

int inj_batch_finish(struct inj *t, uint64_t area, struct inj_op *ops, int k)
{
	struct user_regs_struct r;
	int err;
	for (;;) {
		int st;
		if ((err = wait_stop(t->tid, &st)) < 0)
			return err;
		if (!WIFSTOPPED(st)) {
			log_err("tid %d: died in a batch of syscalls (status 0x%x)", t->tid, st);
			return -ESRCH;
		}
		if (WSTOPSIG(st) == SIGTRAP && (st >> 16) == 0)
			break;
		if ((st >> 16) != PTRACE_EVENT_STOP) {
			log_err("tid %d: unexpected signal %d in a batch of syscalls", t->tid, WSTOPSIG(st));
			return -EINTR;
		}
		if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
			return -errno;
	}
	if ((err = regs_get(t->tid, &r)) < 0)
		return err;
	if (r.rip != area + sizeof(batch_code)) {
		log_err("tid %d: batch of syscalls stopped at %#llx", t->tid, (unsigned long long)r.rip);
		return -EIO;
	}
	return mem_read(t->tid, area + 64, ops, (size_t)k * sizeof(*ops));
}

int inj_batch(struct inj *t, uint64_t area, struct inj_op *ops, int n)
{
	return inj_batch_with(t, area, ops, n, 0, NULL, 0);
}

/* The calling process runs ops itself from area (the loop above, copied
 * there) and never comes back: a task that parks itself after dropping its
 * own memory (restore.c).  The last op must not return (exit_group). */
void inj_batch_jump(uint64_t area, const struct inj_op *ops, int k)
{
	struct inj_op end = { (uint64_t)-1, { 0 }, 0 };
	memcpy((void *)area, batch_code, sizeof(batch_code));
	memcpy((void *)(area + 64), ops, (size_t)k * sizeof(*ops));
	memcpy((void *)(area + 64 + (uint64_t)k * sizeof(*ops)), &end, sizeof(end));
	__asm__ volatile("mov %0, %%rbx\n\tjmp *%1" : : "r"(area + 64), "r"(area) : "rbx", "memory");
	__builtin_unreachable();
}

/* The batch loop's bytes (for code that sets a batch up by itself: the
 * restore seed's plan carries a copy). */
const uint8_t *inj_batch_code(size_t *len)
{
	*len = sizeof(batch_code);
	return batch_code;
}

/*
 * inj_batch with data: the loop, the ops and the end marker go in one
 * process_vm_writev per round, together with data_len bytes at data_at on
 * the first round (the arguments the ops point to; data_len 0: none).
 */
/* One round (k <= INJ_BATCH_MAX ops) of inj_batch_with, started: finish it
 * with inj_batch_finish. */
int inj_batch_with_start(struct inj *t, uint64_t area, const struct inj_op *ops, int k, uint64_t data_at,
			 const void *data, size_t data_len)
{
	static uint8_t page[64 + (INJ_BATCH_MAX + 1) * sizeof(struct inj_op)];
	struct inj_op end = { (uint64_t)-1, { 0 }, 0 };
	int err;
	if (k > INJ_BATCH_MAX)
		return -E2BIG;
	memset(page, 0, 64);
	memcpy(page, batch_code, sizeof(batch_code));
	memcpy(page + 64, ops, (size_t)k * sizeof(*ops));
	memcpy(page + 64 + (size_t)k * sizeof(*ops), &end, sizeof(end));
	size_t len = 64 + (size_t)(k + 1) * sizeof(*ops);
	struct iovec l[2] = { { (void *)data, data_len }, { page, len } };
	struct iovec rv[2] = { { (void *)data_at, data_len }, { (void *)area, len } };
	int first = data_len ? 0 : 1;
	ssize_t w = process_vm_writev(t->tid, l + first, (unsigned long)(2 - first), rv + first,
				      (unsigned long)(2 - first), 0);
	if (w != (ssize_t)(data_len + len) &&      /* a short write: again piecewise */
	    ((data_len && (err = mem_write(t->tid, data_at, data, data_len)) < 0) ||
	     (err = mem_write(t->tid, area, page, len)) < 0)) {
		log_err("tid %d: write batch: %s", t->tid, strerror(-err));
		return err;
	}
	struct user_regs_struct r = t->base;
	r.rip = area;
	r.rbx = area + 64;
	r.orig_rax = (uint64_t)-1;
	r.eflags &= ~(0x100ull | 0x400ull);
	if ((err = regs_set(t->tid, &r)) < 0 || ptrace(PTRACE_CONT, t->tid, 0, 0) < 0) {
		err = err < 0 ? err : -errno;
		log_err("tid %d: run batch: %s", t->tid, strerror(-err));
		return err;
	}
	return 0;
}

int inj_batch_with(struct inj *t, uint64_t area, struct inj_op *ops, int n, uint64_t data_at, const void *data,
		   size_t data_len)
{
	if (n == 0)
		return data_len ? mem_write(t->tid, data_at, data, data_len) : 0;
	for (int done = 0; done < n;) {
		int k = n - done < INJ_BATCH_MAX ? n - done : INJ_BATCH_MAX, err;
		if ((err = inj_batch_with_start(t, area, ops + done, k, data_at, data, data_len)) < 0 ||
		    (err = inj_batch_finish(t, area, ops + done, k)) < 0)
			return err;
		data_len = 0;
		done += k;
	}
	return 0;
}
