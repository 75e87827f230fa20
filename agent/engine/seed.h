/*
 * seed.h — the plan zapc-restore-seed runs (agent/engine/seed/seed.c,
 * built by restore_seed.c; docs/engine.md "Creating the tasks").
 *
 * The pod's init execs the seed, a tiny static program, so that every task
 * of the pod is forked from a process of a few pages instead of from the
 * engine (on a PVM guest a fork of the engine and the later teardown of its
 * copy cost ~2 ms per task).  The plan is a list of system calls for every
 * task, built by the engine with absolute addresses: the seed maps it at
 * hdr.addr.  A clone3 op continues in the child at op `jump`; each task's
 * list ends by mapping the scratch pages, reporting ready and blocking in
 * read() until the engine seizes it.  A failing op writes
 * { pid, -errno, op index } to ready_w and exits.
 */
#ifndef ZAPC_ENGINE_SEED_H
#define ZAPC_ENGINE_SEED_H

#include <stdint.h>

#define SEED_MAGIC 0x3164656573637a7aull   /* "zzcseed1" */

struct seed_hdr {
	uint64_t magic;
	uint64_t addr;          /* where the plan must be mapped */
	uint64_t len;
	uint64_t ops_off;       /* struct seed_op[nops] at addr + ops_off */
	uint64_t nops;
	int32_t ready_w;        /* failure reports */
	int32_t hold_r;
	/* SEED_PARK: the task drops its own memory but for the scratch pages and
	 * the [vvar][vvar_vclock][vdso] block (vdso_pre bytes below the vdso
	 * the auxv names, vdso_len from it), from a batch loop (inject.c, a
	 * copy at code_off) it runs in the scratch pages; vdso_len 0: skip */
	uint64_t scratch;
	uint64_t vdso_pre, vdso_len;
	uint64_t code_off, code_len;
	/* stack_len != 0: the seed moves to its own stack at `stack` (anon,
	 * next to its text, plan and the scratch pages) and unmaps the one the
	 * kernel made for the exec, so that a forked task's memory sits in one
	 * page-table leaf (SEED_BASE below) */
	uint64_t stack, stack_len;
};

#define SEED_DATA_OFF 256     /* the plan's data (strings, structs) follow the header */

/*
 * Where things are in every task forked from the seed: its text (linked
 * there: agent/engine/module.mk), the scratch pages (if no image VMA is in
 * the way: restore.c), its stack, then the plan — one 2 MiB range, so one
 * leaf page table (and one of each level above) per task.  On this PVM
 * guest every page-table page made or freed costs ~50-100 µs (a fresh page
 * to clear, a trapped write to the level above); spread over four top-level
 * ranges (text at 4 MiB, plan, scratch, the kernel's stack at the top) a
 * task made and freed ~20 of them.  In the top-level slot of the stacks
 * (the last 512 GiB) the restored process keeps that one when the scratch
 * pages go (the most expensive to free: its entry has a PTI user copy).
 */
#define SEED_BASE       0x7f8000000000ull   /* the top 512 GiB, where every stack is */
#define SEED_RESERVE_END (SEED_BASE + 0x200000)   /* the seed's bss reaches here */
#define SEED_TEXT_MAX   0x4000ull     /* the seed's image must end below */
#define SEED_SCRATCH    (SEED_BASE + 0x4000)
#define SEED_STACK      (SEED_BASE + 0x8000)
#define SEED_STACK_LEN  0x4000ull
#define SEED_PLAN       (SEED_BASE + 0x10000)

/* flags */
#define SEED_NONNEG     1u   /* fail on -4095..-1 */
#define SEED_EQ         2u   /* fail unless ret == want */
#define SEED_ARG0_PREV  4u   /* a[0] = result of the previous op */
#define SEED_CHILD_JUMP 8u   /* ret 0 (the child of a clone3): go to op `jump` */
#define SEED_SELF      16u   /* no syscall: this task's pid is a[0] (for reports) */
#define SEED_KEEP_PREV 32u   /* the next op's "previous result" stays the one before */
#define SEED_PARK      64u   /* no syscall: park as the header says, reporting
			      * the seed_report at a[0] (else: next op) */
#define SEED_VDSO     128u   /* no syscall: first op of the task's own memory
			      * layout (below); go to op `jump` if it cannot */
#define SEED_PARK_LAID 256u  /* with SEED_PARK: the layout is in place, drop only
			      * the seed's range (a[1] = its end), never fall through */
#define SEED_GOTO     512u   /* no syscall: go to op `jump` */
#define SEED_IF_UNLAID 1024u /* no syscall: go to op `jump` unless this task's
			      * layout is in place (a SEED_VDSO op of its own, or of
			      * the parent it was forked from after its layout) */

/*
 * The image's memory layout set up by the task itself (restore_seed.c), the
 * calls the engine would otherwise inject as one batch per process (mm.c):
 * a SEED_VDSO op moves [vvar][vvar_vclock][vdso] (found from the auxv as for
 * park) to a[0], a[1] (0: none), a[2] — straight, or through a[3] when a
 * target overlaps where they are; a[4], a[5] the [vvar] and [vvar_vclock]
 * lengths — then plain ops map every VMA, and a SEED_PARK|SEED_PARK_LAID op
 * drops the seed's range but for the scratch pages.  The seed goes to op
 * `jump` instead (the usual park: the engine injects the layout) when it
 * could not drop the stack the kernel made for the exec or cannot park.
 */

struct seed_op {
	uint64_t nr, a[6];
	int64_t want;
	uint32_t flags;
	int32_t jump;
};

/* what a task writes to ready_w: ready (err 0) or the op that failed */
struct seed_report {
	int32_t pid;
	int32_t err;
	int32_t op;             /* -1: not a seed op; ready: SEED_READY_* */
	uint32_t pad;
	uint64_t vdso;          /* ready from park: the seed's [vdso] at its exec */
};
#define SEED_READY       (-1)   /* ready, the engine maps the image's layout */
#define SEED_READY_LAID  (-2)   /* ready with the image's layout in place */
#define SEED_FAIL_LOGGED (-3)   /* failed in engine code, which logged why */
#define SEED_FILL_ME     (-4)   /* laid out, waiting for its pages before it forks
				 * children that share them (cowshare.c): the
				 * engine writes them and sends SEED_WAKE_SIG */
#define SEED_WAKE_SIG    12     /* SIGUSR2, blocked in every task: taken with
				 * rt_sigtimedwait, never left pending */

#endif
