/*
 * inject.h — run system calls inside a ptrace-stopped thread.
 *
 * The thread must be stopped (EVENT_STOP or a signal-delivery stop) under
 * PTRACE_SEIZE.  A call sets rip to a `syscall` instruction already in the
 * target (its vdso), the number and arguments in registers, orig_rax = -1
 * (so the kernel never "restarts" our registers), and single-steps once; the
 * step trap comes right after the syscall returns.  Nothing in the target's
 * code is patched.  The caller owns the final registers: inj_syscall only
 * changes them for the duration of the call and leaves `base` untouched.
 */
#ifndef ZAPC_ENGINE_INJECT_H
#define ZAPC_ENGINE_INJECT_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct inj {
	pid_t tid;                       /* host tid */
	struct user_regs_struct base;    /* template for every injected call */
	uint64_t syscall_ip;             /* address of a 0f 05 in the target */
	pid_t new_tid;                   /* host tid of a thread/child a clone created */
	long nr;                         /* syscall in flight (inj_syscall_start) */
};

/* Runs the syscall; *ret gets the raw return (negative = -errno in the target).
 * Returns 0, or -errno if the tracee could not be driven (logged). */
int inj_syscall(struct inj *t, long *ret, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
		uint64_t a4, uint64_t a5, uint64_t a6);
/* The two halves of inj_syscall, so that calls in many tracees run at the
 * same time: start sets registers and steps; finish waits and reads rax. */
int inj_syscall_start(struct inj *t, long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		      uint64_t a5, uint64_t a6);
int inj_syscall_finish(struct inj *t, long *ret);
/* Same, but a negative result of the call itself is an error too (logged with what). */
long inj_call(struct inj *t, const char *what, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
	      uint64_t a4, uint64_t a5, uint64_t a6);

/*
 * Many syscalls in one ptrace round trip: a 46-byte loop (copied to `area`,
 * an executable scratch page of the target) runs ops[i] one after the other
 * and traps with int3 at the end; each op's result lands in ret.  At most
 * INJ_BATCH_MAX ops per round (the loop is run as often as needed).
 */
struct inj_op {
	uint64_t nr, a[6];
	int64_t ret;
};
#define INJ_BATCH_MAX 62
int inj_batch(struct inj *t, uint64_t area, struct inj_op *ops, int n);
/* Same, one write per round; data_len bytes of data go to data_at first.
 * _start: one round (k <= INJ_BATCH_MAX) started, finished by inj_batch_finish. */
int inj_batch_with_start(struct inj *t, uint64_t area, const struct inj_op *ops, int k, uint64_t data_at,
			 const void *data, size_t data_len);
int inj_batch_with(struct inj *t, uint64_t area, struct inj_op *ops, int n, uint64_t data_at, const void *data,
		   size_t data_len);
/* Halves of one round (k <= INJ_BATCH_MAX) of inj_batch, as for inj_syscall_start. */
int inj_batch_start(struct inj *t, uint64_t area, const struct inj_op *ops, int k);
int inj_batch_finish(struct inj *t, uint64_t area, struct inj_op *ops, int k);

/* Run ops (k < INJ_BATCH_MAX, the last one exit_group) in the calling
 * process itself from area, an executable page of its own; never returns. */
void inj_batch_jump(uint64_t area, const struct inj_op *ops, int k) __attribute__((noreturn));

const uint8_t *inj_batch_code(size_t *len);

int regs_get(pid_t tid, struct user_regs_struct *r);
int regs_set(pid_t tid, const struct user_regs_struct *r);

/* Offset of a `syscall` instruction inside the vdso of this kernel (same kernel
 * → same vdso image in every process), or -1. */
long vdso_syscall_offset(void);

/* Copy to / from the target's memory (process_vm_*; whole length or -errno). */
int mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len);
int mem_read(pid_t pid, uint64_t addr, void *buf, size_t len);
/* *fd: /proc/PID/mem of pid (reads and writes whatever the protection),
 * opened with flags at the first call; the fd or -1 (errno set) */
int proc_mem_fd(pid_t pid, int *fd, int flags);

/* Wait for a stop of tid (any, __WALL); returns the status or -errno. */
int wait_stop(pid_t tid, int *status);

#endif
