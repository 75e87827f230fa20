/*
 * seed.c — zapc-restore-seed: runs a restore plan (agent/engine/seed.h).
 *
 * Freestanding and static (no libc): the pod's init execs it so that the
 * tasks it forks copy an address space of a few pages.  Usage (by the
 * engine only): zapc-restore-seed PLAN_FD ADDR LEN FIRST_OP, numbers in
 * decimal.  Signals stay blocked as the engine left them.
 */
#include <stddef.h>
#include <stdint.h>
#include <asm/unistd.h>
#include <linux/mman.h>

#include "agent/engine/seed.h"

static long sc6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static uint64_t num(const char *s)
{
	uint64_t v = 0;
	while (s && *s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	return v;
}

static void die(int fd, int32_t pid, long err, long op)
{
	struct seed_report m = { pid, (int32_t)err, (int32_t)op };
	if (fd >= 0)
		sc6(__NR_write, fd, (long)&m, sizeof(m), 0, 0, 0);
	for (;;)
		sc6(__NR_exit_group, 1, 0, 0, 0, 0, 0);
}

__attribute__((used)) static void seed_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	if (argc < 5)
		die(-1, 0, -22, -1);
	long fd = (long)num(argv[1]);
	uint64_t addr = num(argv[2]), len = num(argv[3]), first = num(argv[4]);
	long m = sc6(__NR_mmap, (long)addr, (long)len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
	if (m != (long)addr)
		die(-1, 0, m < 0 ? m : -17, -1);
	sc6(__NR_close, fd, 0, 0, 0, 0, 0);
	const struct seed_hdr *h = (const struct seed_hdr *)addr;
	if (h->magic != SEED_MAGIC || h->addr != addr || h->len != len || h->ops_off > len ||
	    h->nops > (len - h->ops_off) / sizeof(struct seed_op) || first >= h->nops)
		die(-1, 0, -22, -1);
	const struct seed_op *ops = (const struct seed_op *)(addr + h->ops_off);
	int32_t self = 0;
	long prev = 0;
	for (uint64_t i = first; i < h->nops;) {
		const struct seed_op *o = &ops[i];
		if (o->flags & SEED_SELF) {
			self = (int32_t)o->a[0];
			i++;
			continue;
		}
		long a0 = (o->flags & SEED_ARG0_PREV) ? prev : (long)o->a[0];
		long ret = sc6((long)o->nr, a0, (long)o->a[1], (long)o->a[2], (long)o->a[3], (long)o->a[4],
			       (long)o->a[5]);
		if ((o->flags & SEED_CHILD_JUMP) && ret == 0) {
			if (o->jump < 0 || (uint64_t)o->jump >= h->nops)
				die(h->ready_w, self, -22, (long)i);
			i = (uint64_t)o->jump;
			prev = 0;
			continue;
		}
		if (((o->flags & SEED_NONNEG) && ret < 0 && ret > -4096) || ((o->flags & SEED_EQ) && ret != o->want))
			die(h->ready_w, self, ret < 0 && ret > -4096 ? ret : -71 /* EPROTO */, (long)i);
		if (!(o->flags & SEED_KEEP_PREV))
			prev = ret;
		i++;
	}
	die(h->ready_w, self, -71, -1);   /* a plan ends in exit_group */
}

/* the kernel starts us with argc at (%rsp); keep the stack 16-byte aligned */
__asm__(".text\n.global _start\n_start:\n\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n"
	"\tcall seed_main\n\thlt\n");
