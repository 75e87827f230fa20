/*
 * seed.c — zapc-restore-seed: runs a restore plan (agent/engine/seed.h).
 *
 * Freestanding and static (no libc): the pod's init execs it so that the
 * tasks it forks copy an address space of a few pages.  Usage (by the
 * engine only): zapc-restore-seed PLAN_FD ADDR LEN FIRST_OP, numbers in
 * decimal.  Signals stay blocked as the engine left them.
 */
#include <stdbool.h>
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
	struct seed_report m = { pid, (int32_t)err, (int32_t)op, 0, 0 };
	if (fd >= 0)
		sc6(__NR_write, fd, (long)&m, sizeof(m), 0, 0, 0);
	for (;;)
		sc6(__NR_exit_group, 1, 0, 0, 0, 0, 0);
}

#define PAGE 4096ull
#define MAX_ADDR 0x800000000000ull
#define AT_SYSINFO_EHDR 33

struct bop {                 /* struct inj_op of inject.h */
	uint64_t nr, a[6];
	int64_t ret;
};

/*
 * Park: the batch loop (a copy in the plan) runs from the scratch pages
 * and unmaps everything but them and the vvar/vdso block, reports ready,
 * blocks in read(hold_r) and exits on EOF — the teardown of this address
 * space happens now, while other tasks are made, not later as a call the
 * engine injects and waits for.  laid_end != 0: the image's layout is in
 * place (SEED_VDSO): only the seed's own range [SEED_BASE, laid_end) goes,
 * but for the scratch pages.
 */
/*
 * The gaps of [from, last) around n ranges to keep ([ks[i], ke[i]), sorted
 * here in place) into gs/ge (n + 1 at most): what a task unmaps to keep
 * only those.
 */
static int keep_gaps(uint64_t *ks, uint64_t *ke, int n, uint64_t from, uint64_t last, uint64_t *gs, uint64_t *ge)
{
	for (int i = 0; i < n; i++)          /* sort by start */
		for (int j = i + 1; j < n; j++)
			if (ks[j] < ks[i]) {
				uint64_t t = ks[i]; ks[i] = ks[j]; ks[j] = t;
				t = ke[i]; ke[i] = ke[j]; ke[j] = t;
			}
	int ng = 0;
	for (int k = 0; k <= n; k++) {
		uint64_t to = k < n && ks[k] < last ? ks[k] : last;
		if (to > from) {
			gs[ng] = from;
			ge[ng++] = to;
		}
		if (k < n && ke[k] > from)
			from = ke[k];
	}
	return ng;
}

__attribute__((noinline, noreturn)) static void park(const struct seed_hdr *h, uint64_t vdso,
						   const struct seed_report *msg, uint64_t laid_end)
{
	/* the report next to the loop and its ops: one page of the four
	 * touched (each fresh page a fault here; the engine's batches write
	 * pages 0-3 later) */
	uint64_t s = h->scratch, code = s + 3 * PAGE, out = code + 2048;
	const uint8_t *src = (const uint8_t *)(h->addr + h->code_off);
	uint8_t *dst = (uint8_t *)code;
	for (uint64_t i = 0; i < h->code_len; i++)
		dst[i] = src[i];
	struct seed_report *rep = (struct seed_report *)out;
	*rep = *msg;
	rep->vdso = vdso;
	uint64_t ks[2] = { s, vdso - h->vdso_pre }, ke[2] = { s + 4 * PAGE, vdso + h->vdso_len }, gs[3], ge[3];
	int ng = laid_end ? keep_gaps(ks, ke, 1, SEED_BASE, laid_end, gs, ge)
			  : keep_gaps(ks, ke, 2, 16 * PAGE, MAX_ADDR - PAGE, gs, ge);
	struct bop *op = (struct bop *)(code + 64);
	int n = 0;
	for (int k = 0; k < ng; k++)
		op[n++] = (struct bop){ __NR_munmap, { gs[k], ge[k] - gs[k], 0, 0, 0, 0 }, 0 };
	op[n++] = (struct bop){ __NR_write, { (uint64_t)h->ready_w, out, sizeof(*msg), 0, 0, 0 }, 0 };
	op[n++] = (struct bop){ __NR_read, { (uint64_t)h->hold_r, out + 64, 1, 0, 0, 0 }, 0 };
	op[n++] = (struct bop){ __NR_exit_group, { 1, 0, 0, 0, 0, 0 }, 0 };
	op[n++] = (struct bop){ (uint64_t)-1, { 0, 0, 0, 0, 0, 0 }, 0 };
	__asm__ volatile("mov %0, %%rbx\n\tjmp *%1" : : "r"(code + 64), "r"(code) : "rbx", "memory");
	__builtin_unreachable();
}

static bool can_park(const struct seed_hdr *h, uint64_t vdso)
{
	return h->vdso_len && vdso && h->code_len && h->code_len <= 64 && h->code_off + h->code_len <= h->len;
}

static bool overlap(uint64_t s1, uint64_t l1, uint64_t s2, uint64_t l2)
{
	return l1 && l2 && s1 < s2 + l2 && s2 < s1 + l1;
}

/*
 * SEED_VDSO (seed.h): [vvar][vvar_vclock][vdso] to the image's addresses,
 * as mm.c's layout batch moves them (each part is a VMA of its own: one
 * mremap each).  Returns 0, 1 if the layout must be left to the engine, or
 * the failing mremap's -errno.
 */
__attribute__((noinline)) static long move_vdso(const struct seed_hdr *h, const struct seed_op *o, uint64_t vdso,
						 bool own_stack)
{
	uint64_t vl = o->a[4], cl = o->a[5];
	if (!own_stack || !can_park(h, vdso) || vl + cl != h->vdso_pre || !vl)
		return 1;
	uint64_t base = vdso - h->vdso_pre;
	uint64_t cur[3] = { base, base + vl, vdso }, len[3] = { vl, cl, h->vdso_len };
	uint64_t to[3] = { o->a[0], o->a[1], o->a[2] };
	bool direct = true;
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++)
			if (overlap(to[i], len[i], cur[k], len[k]))
				direct = false;
	for (int step = direct; step < 2; step++) {
		uint64_t t[3] = { o->a[3], o->a[3] + vl + PAGE, o->a[3] + vl + PAGE + cl + PAGE };
		const uint64_t *dst = step ? to : t;
		if (!step && overlap(t[0], vl + cl + h->vdso_len + 3 * PAGE, base, vl + cl + h->vdso_len))
			return 1;
		for (int k = 0; k < 3; k++) {
			if (!len[k] || cur[k] == dst[k])
				continue;
			long r = sc6(__NR_mremap, (long)cur[k], (long)len[k], (long)len[k], MREMAP_MAYMOVE | MREMAP_FIXED,
				     (long)dst[k], 0);
			if (r != (long)dst[k])
				return r < 0 && r > -4096 ? r : -71;
			cur[k] = dst[k];
		}
	}
	return 0;
}

static void seed_run(const struct seed_hdr *h, uint64_t first, uint64_t vdso, uint64_t old_sp)
	__attribute__((used, noreturn));

/*
 * A task forked from one that held an image's layout (a child of a task
 * that was itself forked from its laid-out parent, cowshare.c) starts with
 * that layout: everything goes but the seed's range, the scratch pages and
 * the [vvar][vvar_vclock][vdso] block (at vdso, where the layout put it).
 */
__attribute__((noinline)) static long drop_inherited(const struct seed_hdr *h, uint64_t vdso)
{
	uint64_t seed_end = h->addr + h->len > SEED_RESERVE_END ? h->addr + h->len : SEED_RESERVE_END;
	uint64_t ks[3] = { SEED_BASE, h->scratch, vdso - h->vdso_pre }, ke[3] = { seed_end, h->scratch + 4 * PAGE,
									       vdso + h->vdso_len }, gs[4], ge[4];
	int ng = keep_gaps(ks, ke, 3, 16 * PAGE, MAX_ADDR - PAGE, gs, ge);
	for (int k = 0; k < ng; k++) {
		long r = sc6(__NR_munmap, (long)gs[k], (long)(ge[k] - gs[k]), 0, 0, 0, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The rest of the seed's 2 MiB range (seed.h), as bss: the kernel maps it
 * at exec (no pages), so the vdso it places afterwards is never where the
 * plan, the stack and the scratch pages will be mapped (MAP_FIXED over it). */
static char reserve[SEED_RESERVE_END - SEED_BASE - SEED_TEXT_MAX] __attribute__((used, aligned(4096)));

static long fixed_in_reserve(uint64_t addr, uint64_t len)
{
	uint64_t s = (uint64_t)reserve, e = s + sizeof(reserve);
	return addr >= s && addr + len <= e && addr + len > addr ? MAP_FIXED : MAP_FIXED_NOREPLACE;
}

/*
 * The plan is mapped and checked: switch to the seed's own stack (SEED_STACK
 * in seed.h: next to the rest, one page-table leaf) and drop the kernel's,
 * whose page tables every fork would otherwise copy and every task free.
 */
__attribute__((used)) static void seed_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	if (argc < 5)
		die(-1, 0, -22, -1);
	uint64_t vdso = 0;
	long *ap = sp + 1 + argc + 1;
	while (*ap)
		ap++;                         /* environment */
	for (ap++; ap[0]; ap += 2)
		if (ap[0] == AT_SYSINFO_EHDR)
			vdso = (uint64_t)ap[1];
	long fd = (long)num(argv[1]);
	uint64_t addr = num(argv[2]), len = num(argv[3]), first = num(argv[4]);
	long m = sc6(__NR_mmap, (long)addr, (long)len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | fixed_in_reserve(addr, len), fd, 0);
	if (m != (long)addr)
		die(-1, 0, m < 0 ? m : -17, -1);
	sc6(__NR_close, fd, 0, 0, 0, 0, 0);
	const struct seed_hdr *h = (const struct seed_hdr *)addr;
	if (h->magic != SEED_MAGIC || h->addr != addr || h->len != len || h->ops_off > len ||
	    h->nops > (len - h->ops_off) / sizeof(struct seed_op) || first >= h->nops)
		die(-1, 0, -22, -1);
	uint64_t top = h->stack + h->stack_len;
	if (h->stack_len && !(top % 16) &&
	    sc6(__NR_mmap, (long)h->stack, (long)h->stack_len, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | fixed_in_reserve(h->stack, h->stack_len), -1, 0) == (long)h->stack)
		__asm__ volatile("mov %0, %%rsp\n\tcall seed_run\n\thlt"
				 : : "r"(top), "D"(h), "S"(first), "d"(vdso), "c"((uint64_t)sp) : "memory");
	seed_run(h, first, vdso, 0);
}

/*
 * The loop keeps what it changes per op in registers: after a fork, a write
 * of the parent to its stack is a copy-on-write fault (its child shares the
 * page), one per task forked when a spilled counter lived there (~10% more
 * CPU to create a pod).  So the seldom used values are globals (written
 * once, before any fork) and the seldom taken paths separate functions.
 */
static uint64_t g_vdso;            /* the vdso the auxv names */
static bool g_own_stack;           /* on SEED_STACK, the kernel's one gone */
static bool g_laid;                /* the image's layout is in place (SEED_IF_UNLAID) */

static void seed_run(const struct seed_hdr *h, uint64_t first, uint64_t vdso, uint64_t old_sp)
{
	/* The kernel's stack: a few pages at the top of the address space; the
	 * vdso block is at least 128 MiB below it (mmap_base leaves the stack
	 * rlimit, >= 128 MiB, free) — checked, and kept if not. */
	uint64_t lo = (old_sp & ~(PAGE - 1)) - (1ull << 20);
	g_vdso = vdso;
	if (old_sp && vdso && vdso + h->vdso_len <= lo && lo < old_sp)
		g_own_stack = sc6(__NR_munmap, (long)lo, (long)(MAX_ADDR - PAGE - lo), 0, 0, 0, 0) == 0;
	const struct seed_op *ops = (const struct seed_op *)(h->addr + h->ops_off);
	int32_t self = 0;
	long prev = 0;
	for (uint64_t i = first; i < h->nops;) {
		const struct seed_op *o = &ops[i];
		if (o->flags & SEED_PARK) {
			if (can_park(h, g_vdso))
				park(h, g_vdso, (const struct seed_report *)o->a[0],
				     o->flags & SEED_PARK_LAID ? o->a[1] : 0);
			if (o->flags & SEED_PARK_LAID)      /* (SEED_VDSO checked can_park) */
				die(h->ready_w, self, -22, (long)i);
			i++;
			continue;
		}
		if (o->flags & SEED_VDSO) {
			long r = g_laid && can_park(h, g_vdso) ? drop_inherited(h, g_vdso) : 0;
			if (!r)
				r = move_vdso(h, o, g_vdso, g_own_stack);
			if (r < 0)
				die(h->ready_w, self, r, (long)i);
			if (r > 0 && (o->jump < 0 || (uint64_t)o->jump >= h->nops))
				die(h->ready_w, self, -22, (long)i);
			if (!r && o->want) {  /* a filler: what its late children start from */
				g_laid = true;     /* (the VMAs follow; a failing one ends the task) */
				g_vdso = o->a[2];
			}
			i = r > 0 ? (uint64_t)o->jump : i + 1;
			continue;
		}
		if (o->flags & (SEED_GOTO | SEED_IF_UNLAID)) {
			bool go = (o->flags & SEED_GOTO) || !g_laid;
			if (go && (o->jump < 0 || (uint64_t)o->jump >= h->nops))
				die(h->ready_w, self, -22, (long)i);
			i = go ? (uint64_t)o->jump : i + 1;
			continue;
		}
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
	__builtin_unreachable();
}

/* the kernel starts us with argc at (%rsp); keep the stack 16-byte aligned */
__asm__(".text\n.global _start\n_start:\n\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n"
	"\tcall seed_main\n\thlt\n");
