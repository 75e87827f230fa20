/*
 * restore_seed.c — the pod's tasks are forked from zapc-restore-seed, not
 * from the engine (seed.h says why and what the plan is).
 *
 * The engine builds the plan before the pod's init exists (seed_prepare):
 * per task, in the order run_task() did it in engine code: session and
 * group, the children (clone3 with set_tid; the parent then sets a child's
 * group, like a shell), root/cwd/umask/personality (creds.c early), the fd
 * table (files.c early), the controlling terminal (pty.c early), the
 * scratch pages, then "ready" and a blocking read.  Zombies name themselves
 * and exit as they did.  The init, still engine code, does what needs the
 * engine (mounts, hostname, its session, SysV IPC objects) and then
 * execs the seed with the plan (seed_exec).  Anything the plan cannot do
 * keeps the old way (every task a fork of the engine): no seed binary, a
 * plan too big, ZAPC_RESTORE_SEED=0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "agent/engine/seed.h"
#include "lib/log.h"

int pty_devpts_fd(void);   /* pty.c */
int inv_move(struct rst_ctx *r, int fd);

#define PLAN_GAP (64ull << 20)   /* address range reserved for the plan */

struct plan {
	uint8_t *data;           /* bytes after the header */
	size_t dlen, dcap;
	struct seed_op *ops;
	struct seed_what *what;
	size_t n, cap;
	uint64_t addr;
	/* tasks map the image's layout themselves (seed.h SEED_VDSO) unless an
	 * image VMA is within a page of the seed's range [SEED_BASE, win_end) */
	bool layout;
	uint64_t win_end;
	int *laid_park;          /* their SEED_PARK_LAID ops (a[1] = win_end) */
	int nlaid;
	uint32_t cur_pid;        /* (plan_emit) */
	const struct kid *kx;    /* every task by (parent, pid): a task's children */
	int nkx;
};

struct kid {
	uint32_t ppid, pid;
	int idx;
};

static int cmp_kid(const void *a, const void *b)
{
	const struct kid *x = a, *y = b;
	if (x->ppid != y->ppid)
		return x->ppid < y->ppid ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static uint64_t data_add(struct plan *pl, const void *p, size_t len)
{
	size_t off = (pl->dlen + 7) & ~(size_t)7;
	if (off + len > pl->dcap) {
		pl->dcap = (off + len) * 2 + 4096;
		pl->data = realloc(pl->data, pl->dcap);
		if (!pl->data)
			abort();
	}
	memcpy(pl->data + off, p, len);
	pl->dlen = off + len;
	return pl->addr + SEED_DATA_OFF + off;
}

static uint64_t data_str(struct plan *pl, const char *s)
{
	return data_add(pl, s, strlen(s) + 1);
}

static int op_add(struct plan *pl, const char *what, uint32_t pid, int64_t detail, uint32_t flags, int64_t want,
		  long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
	if (pl->n == pl->cap) {
		pl->cap = pl->cap * 2 + 64;
		pl->ops = realloc(pl->ops, pl->cap * sizeof(*pl->ops));
		pl->what = realloc(pl->what, pl->cap * sizeof(*pl->what));
		if (!pl->ops || !pl->what)
			abort();
	}
	pl->ops[pl->n] = (struct seed_op){ (uint64_t)nr, { a0, a1, a2, a3, 0, 0 }, want, flags, -1 };
	pl->what[pl->n] = (struct seed_what){ what, NULL, pid, detail, NULL };
	return (int)pl->n++;
}

static void emit_zombie(struct plan *pl, ImgProc *t)
{
	int st = t->has_exit_status ? t->exit_status : 0;
	op_add(pl, "zombie", t->pid, -1, SEED_SELF, 0, 0, t->pid, 0, 0, 0);
	if (t->comm) {
		char comm[16] = { 0 };
		snprintf(comm, sizeof(comm), "%s", t->comm);
		op_add(pl, "zombie name", t->pid, -1, 0, 0, SYS_prctl, PR_SET_NAME, data_add(pl, comm, 16), 0, 0);
	}
	if (WIFSIGNALED(st)) {
		int sig = WTERMSIG(st);
		struct rlimit rl = { 0, 0 };
		struct { uint64_t handler, flags, restorer, mask; } dfl = { 0 };   /* SIG_DFL */
		uint64_t set = 1ull << (sig - 1);
		op_add(pl, "zombie core limit", t->pid, -1, 0, 0, SYS_prlimit64, 0, RLIMIT_CORE, data_add(pl, &rl, sizeof(rl)), 0);
		op_add(pl, "zombie signal", t->pid, sig, 0, 0, SYS_rt_sigaction, (uint64_t)sig,
		       data_add(pl, &dfl, sizeof(dfl)), 0, 8);
		op_add(pl, "zombie signal", t->pid, sig, 0, 0, SYS_rt_sigprocmask, SIG_UNBLOCK,
		       data_add(pl, &set, 8), 0, 8);
		op_add(pl, "zombie signal", t->pid, sig, 0, 0, SYS_kill, t->pid, (uint64_t)sig, 0, 0);
	}
	op_add(pl, "zombie exit", t->pid, -1, 0, 0, SYS_exit_group, (uint64_t)WEXITSTATUS(st), 0, 0, 0);
}

/* A child's group and session as it has them from its parent at the fork:
 * nothing to do (no setpgid by either, no getsid check). */
static bool same_group(const ImgProc *t, const ImgProc *parent)
{
	return parent && t->sid != t->pid && t->sid == parent->sid && t->pgid && t->pgid == parent->pgid;
}

static void plan_emit(void *ctx, const char *what, uint64_t want, ImgVma *v, const struct inj_op *op)
{
	struct plan *pl = ctx;
	int at = op_add(pl, what, pl->cur_pid, -1, SEED_EQ, (int64_t)want, (long)op->nr, op->a[0], op->a[1],
			op->a[2], op->a[3]);
	pl->ops[at].a[4] = op->a[4];
	pl->ops[at].a[5] = op->a[5];
	pl->what[at].vma = v;
}

/*
 * Where a task's [vvar][vvar_vclock][vdso] can go through on their way to
 * the image's addresses (a free range the seed checks is clear of where its
 * vdso is), 0 if the task cannot lay its memory out itself: the layout is
 * off, the image has memory at the seed's range, or its vdso is not this
 * kernel's (mm.c then says so).
 */
static uint64_t layout_gap(struct rst_ctx *r, const struct plan *pl, struct rproc *p, uint64_t dst[3], uint64_t len[3])
{
	if (!pl->layout || mm_vdso_targets(r, p, dst, len) < 0)
		return 0;
	size_t nv = p->core->n_vmas;
	struct range *avoid = xcalloc(nv + 2, sizeof(*avoid));
	for (size_t i = 0; i < nv; i++)
		avoid[i] = (struct range){ p->core->vmas[i]->start, p->core->vmas[i]->end };
	avoid[nv] = (struct range){ SEED_BASE - PAGE, pl->win_end + PAGE };
	avoid[nv + 1] = (struct range){ r->scratch_addr, r->scratch_addr + 4 * PAGE };
	bool clear = true;
	for (size_t i = 0; i < nv; i++)
		if (avoid[i].s < avoid[nv].e && avoid[nv].s < avoid[i].e)
			clear = false;
	uint64_t tmp = clear ? find_gap(len[0] + len[1] + len[2] + 3 * PAGE, avoid, (int)nv + 2) : 0;
	free(avoid);
	return tmp;
}

/*
 * The calls of mm.c's layout batch as ops of the task (seed.h SEED_VDSO):
 * the vdso move, then every VMA (mm_layout_ops).  The SEED_VDSO op (its
 * jump: the usual park, set by the caller) goes to *vop, -1 when the engine
 * keeps doing it (layout_gap).  A task that forks children sharing its
 * pages afterwards (filler) notes in the seed that its layout is in place.
 * 0 or -errno (logged).
 */
static int emit_layout(struct rst_ctx *r, struct plan *pl, struct rproc *p, bool filler, int *vop)
{
	uint64_t dst[3], len[3];
	*vop = -1;
	uint64_t tmp = layout_gap(r, pl, p, dst, len);
	if (!tmp)
		return 0;
	int v = op_add(pl, "move vdso", p->tree->pid, -1, SEED_VDSO, filler, 0, dst[0], dst[1], dst[2], tmp);
	pl->ops[v].a[4] = len[0];
	pl->ops[v].a[5] = len[1];
	pl->cur_pid = p->tree->pid;
	int err = mm_layout_ops(r, p, NULL, plan_emit, pl);
	if (err < 0)
		return err;
	*vop = v;
	return 0;
}

/* the park of a task whose layout is in place: drops only the seed's range */
static void emit_park_laid(struct plan *pl, uint32_t pid)
{
	struct seed_report m = { (int32_t)pid, 0, SEED_READY_LAID, 0, 0 };
	int park = op_add(pl, "park", pid, -1, SEED_PARK | SEED_PARK_LAID, 0, 0, data_add(pl, &m, sizeof(m)),
			  pl->win_end, 0, 0);
	pl->laid_park = realloc(pl->laid_park, (size_t)(pl->nlaid + 1) * sizeof(int));
	if (!pl->laid_park)
		abort();
	pl->laid_park[pl->nlaid++] = park;
}

/*
 * Can child c be forked from its parent p after p's layout and pages are in
 * (cowshare.c), so that the pages the image says they share are shared
 * again?  Both must lay their memory out in the seed (p_vdso: where p's
 * layout puts its vdso block, NULL if it cannot; c maps its own VMAs too),
 * neither may have a root of its own (a late fork would inherit p's
 * chroot), and their vdso blocks must be at the same places.
 */
static bool late_ok(struct rst_ctx *r, const struct plan *pl, struct rproc *p, const uint64_t *p_vdso,
		    struct rproc *c)
{
	const char *e = getenv("ZAPC_RESTORE_COWSHARE");
	uint64_t dst[3], len[3];
	return !(e && !strcmp(e, "0")) && p_vdso && !c->tree->zombie && c->cow_parent == (int)(p - r->procs) &&
	       !strcmp(p->core->root, "/") && !strcmp(c->core->root, "/") && layout_gap(r, pl, c, dst, len) &&
	       !memcmp(dst, p_vdso, sizeof(dst));
}

/*
 * The layout of a task forked from its parent after the parent's layout:
 * it keeps the parent's VMAs its image has the same (cowshare_keeps), drops
 * the pages in them the image does not say are the parent's, unmaps the
 * parent's other VMAs and maps its own other ones.  The vdso block is
 * already where it must be (late_ok).
 */
static int emit_inherit(struct rst_ctx *r, struct plan *pl, struct rproc *c, const struct rproc *p)
{
	size_t nc = c->core->n_vmas, np = p->core->n_vmas;
	bool *kept = xcalloc(nc + 1, 1);
	size_t *in = xcalloc(nc + 1, sizeof(size_t));     /* kept: the parent's VMA it is (a piece of) */
	uint32_t pid = c->tree->pid;
	for (size_t i = 0; i < nc; i++)
		kept[i] = cowshare_keeps(p->core, c->core->vmas[i], &in[i]);
	/* the parent's VMAs but for the kept pieces go (c's VMAs are sorted) */
	size_t ci = 0;
	for (size_t i = 0; i < np; i++) {
		const ImgVma *w = p->core->vmas[i];
		if (w->kind == VK_VDSO || w->kind == VK_VVAR || w->kind == VK_VCLOCK || w->kind == VK_VSYSCALL)
			continue;
		uint64_t a = w->start;
		for (; ci < nc && c->core->vmas[ci]->start < w->end; ci++) {
			const ImgVma *v = c->core->vmas[ci];
			if (!kept[ci] || in[ci] != i)
				continue;
			if (v->start > a)
				op_add(pl, "unmap the parent's memory", pid, -1, SEED_EQ, 0, SYS_munmap, a, v->start - a, 0, 0);
			a = v->end;
		}
		if (a < w->end)
			op_add(pl, "unmap the parent's memory", pid, -1, SEED_EQ, 0, SYS_munmap, a, w->end - a, 0, 0);
	}
	const uint64_t *cp = c->core->cow_parent;
	size_t ncp = c->core->n_cow_parent, k = 0;
	for (size_t i = 0; i < nc; i++) {
		const ImgVma *v = c->core->vmas[i];
		if (!kept[i] || !(v->has_pages || p->core->vmas[in[i]]->has_pages))
			continue;     /* (a kept VMA without pages of its own still drops the parent's) */
		uint64_t a = v->start;
		while (k < ncp && cp[k] + cp[k + 1] * PAGE <= v->start)
			k += 2;
		for (; k < ncp && cp[k] < v->end; k += 2) {
			if (cp[k] > a)
				op_add(pl, "drop the parent's pages", pid, -1, SEED_EQ, 0, SYS_madvise, a, cp[k] - a,
				       MADV_DONTNEED, 0);
			a = cp[k] + cp[k + 1] * PAGE;
		}
		if (a < v->end)
			op_add(pl, "drop the parent's pages", pid, -1, SEED_EQ, 0, SYS_madvise, a, v->end - a,
			       MADV_DONTNEED, 0);
	}
	pl->cur_pid = pid;
	int err = mm_layout_ops(r, c, kept, plan_emit, pl);
	free(kept);
	free(in);
	return err;
}

/* the fork of child ki by task pid (and the child's group, set by the parent like a shell does) */
static int emit_fork(struct rst_ctx *r, struct plan *pl, uint32_t pid, int ki, const ImgProc *t)
{
	ImgProc *kt = r->procs[ki].tree;
	pid_t tid = (pid_t)kt->pid;
	struct clone_args ca = { 0 };
	ca.exit_signal = SIGCHLD;
	ca.set_tid = data_add(pl, &tid, sizeof(tid));
	ca.set_tid_size = 1;
	int at = op_add(pl, "fork", pid, kt->pid, SEED_CHILD_JUMP | SEED_EQ, kt->pid, SYS_clone3,
			data_add(pl, &ca, sizeof(ca)), sizeof(ca), 0, 0);
	if (!kt->zombie && kt->pgid && kt->sid != kt->pid && !same_group(kt, t))
		op_add(pl, "child's group", pid, kt->pid, 0, 0, SYS_setpgid, kt->pid, kt->pgid, 0, 0);
	return at;
}

/*
 * ops of task idx from its start; returns its first op index or -errno.
 * parent: the task that forks it (NULL for the init), whose cwd, umask and
 * personality are set before its forks (when it has no root of its own), so
 * that a child with the same ones inherits them instead of setting them
 * again: on this VM every system call of the seed costs a few µs, chdir a
 * path walk.  late: the parent forks it after its own layout and pages
 * (cowshare.c): it starts from the parent's memory (emit_inherit), or, if
 * the parent could not lay its memory out after all, from the seed's.
 *
 * A task with such children (a filler) reports SEED_FILL_ME once laid out
 * and waits for SEED_WAKE_SIG, then forks them, then parks.
 */
static int emit_task(struct rst_ctx *r, struct plan *pl, int idx, const struct rproc *parent, bool late)
{
	struct rproc *p = &r->procs[idx];
	ImgProc *t = p->tree;
	ImgProcCore *c = p->core;
	uint32_t pid = t->pid;
	int err = mm_check_vmas(p);
	if (err < 0)
		return err;
	int start = op_add(pl, "task", pid, -1, SEED_SELF, 0, 0, pid, 0, 0, 0);
	if (idx != 0 && !same_group(t, parent->tree)) {   /* the init does its session in engine code */
		if (t->sid == t->pid)
			op_add(pl, "setsid", pid, -1, SEED_EQ, t->pid, SYS_setsid, 0, 0, 0, 0);
		if (t->pgid && !(t->sid == t->pid && t->pgid == t->pid))
			op_add(pl, "process group", pid, t->pgid, SEED_NONNEG, 0, SYS_setpgid, 0, t->pgid, 0, 0);
		if (t->sid)
			op_add(pl, "session (cannot be recreated)", pid, t->sid, SEED_EQ, t->sid, SYS_getsid, 0, 0, 0, 0);
	}
	/* creds.c early, the part its children inherit (see above) */
	int at;     /* (op_add may move pl->what: index it after the call) */
	bool own_root = strcmp(c->root, "/") != 0;
	bool pr_root = parent && strcmp(parent->core->root, "/") != 0;
	if (!own_root && !(parent && !pr_root && !strcmp(c->cwd, parent->core->cwd))) {
		at = op_add(pl, "cwd", pid, -1, SEED_NONNEG, 0, SYS_chdir, data_str(pl, c->cwd), 0, 0, 0);
		pl->what[at].arg = c->cwd;
	}
	if (!(parent && !pr_root && (c->umask & 0777) == (parent->core->umask & 0777)))
		op_add(pl, "umask", pid, -1, 0, 0, SYS_umask, c->umask & 0777, 0, 0, 0);
	if (!(parent && !pr_root && c->personality == parent->core->personality))
		op_add(pl, "personality", pid, c->personality, SEED_NONNEG, 0, SYS_personality, c->personality, 0, 0, 0);
	/* children in pid order so group leaders exist before their members
	 * (pl->kx, sorted once: no scan of every task for each task) */
	int *kid_at = xcalloc((size_t)r->nprocs, sizeof(int));     /* index in r->procs */
	int nk = 0, lo = 0, hi = pl->nkx;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (pl->kx[mid].ppid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (int i = lo; i < pl->nkx && pl->kx[i].ppid == pid; i++)
		if (pl->kx[i].idx != idx)
			kid_at[nk++] = pl->kx[i].idx;
	/* children that share pages with it are forked after its layout and
	 * pages (late), the others now — unless one of these must join the
	 * group of a late one, which would not exist yet: then all now */
	bool *klate = xcalloc((size_t)nk + 1, 1), filler = false;
	uint64_t p_vdso[3], vlen[3];
	bool lays = nk && layout_gap(r, pl, p, p_vdso, vlen);
	for (int k = 0; k < nk; k++)
		filler |= klate[k] = late_ok(r, pl, p, lays ? p_vdso : NULL, &r->procs[kid_at[k]]);
	for (int k = 0; k < nk && filler; k++)
		for (int j = 0; j < nk && !klate[k]; j++)
			if (klate[j] && r->procs[kid_at[k]].tree->pgid == r->procs[kid_at[j]].tree->pid)
				filler = false;
	for (int k = 0; k < nk; k++) {
		klate[k] &= filler;
		r->procs[kid_at[k]].cow_late = klate[k];
	}
	int *fork_op = xcalloc(2 * (size_t)nk + 1, sizeof(int));   /* [2k]: early or laid, [2k+1]: unlaid */
	for (int k = 0; k < 2 * nk; k++)
		fork_op[k] = -1;
	for (int k = 0; k < nk; k++)
		if (!klate[k])
			fork_op[2 * k] = emit_fork(r, pl, pid, kid_at[k], t);
	/* creds.c early, the rest: a root of its own, then the cwd in it */
	if (own_root) {
		at = op_add(pl, "chroot", pid, -1, SEED_NONNEG, 0, SYS_chroot, data_str(pl, c->root), 0, 0, 0);
		pl->what[at].arg = c->root;
		at = op_add(pl, "cwd", pid, -1, SEED_NONNEG, 0, SYS_chdir, data_str(pl, c->cwd), 0, 0, 0);
		pl->what[at].arg = c->cwd;
	}
	/* files.c early: the fd table from the inventory, nothing else below it */
	uint8_t *want = xcalloc((size_t)r->inv_base + 1, 1);
	for (size_t i = 0; i < c->n_fds; i++) {
		ImgFd *f = c->fds[i];
		int src = inv_fd_for_file(r, f->file_id);
		if (src < 0 || f->fd >= (uint32_t)r->inv_base) {
			log_err("restore: pid %u fd %u: file %u missing in image", pid, f->fd, f->file_id);
			err = -EINVAL;
			goto out;
		}
		op_add(pl, "fd", pid, f->fd, SEED_NONNEG, 0, SYS_dup3, (uint64_t)src, f->fd, f->cloexec ? O_CLOEXEC : 0, 0);
		want[f->fd] = 1;
	}
	for (int fd = 0; fd < r->inv_base;) {
		if (want[fd]) {
			fd++;
			continue;
		}
		int e = fd;
		while (e + 1 < r->inv_base && !want[e + 1])
			e++;
		op_add(pl, "close", pid, fd, 0, 0, SYS_close_range, (uint64_t)fd, (uint64_t)e, 0, 0);
		fd = e + 1;
	}
	/* pty.c early: the controlling terminal of a session leader */
	if (c->has_ctty_index) {
		char name[16];
		snprintf(name, sizeof(name), "%u", c->ctty_index);
		if (pty_devpts_fd() < 0) {
			log_err("restore: pid %u: controlling terminal /dev/pts/%s: no devpts", pid, name);
			err = -ENOENT;
			goto out;
		}
		op_add(pl, "controlling terminal", pid, c->ctty_index, SEED_NONNEG, 0, SYS_openat,
		       (uint64_t)pty_devpts_fd(), data_str(pl, name), O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
		op_add(pl, "controlling terminal", pid, c->ctty_index, SEED_NONNEG | SEED_ARG0_PREV | SEED_KEEP_PREV, 0,
		       SYS_ioctl, 0, TIOCSCTTY, 0, 0);
		op_add(pl, "close", pid, -1, SEED_ARG0_PREV, 0, SYS_close, 0, 0, 0, 0);
	}
	/* scratch pages (executable: inject.c's batch loop; a late child has
	 * its parent's there), the image's layout, then ready */
	op_add(pl, "scratch page", pid, -1, SEED_EQ, (int64_t)r->scratch_addr, SYS_mmap, r->scratch_addr,
	       4 * PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS |
	       (r->scratch_addr == SEED_SCRATCH || late || (parent && parent->cow_late) ?
		MAP_FIXED /* over the seed's bss, or the scratch pages it was forked with */ : MAP_FIXED_NOREPLACE));
	pl->ops[pl->n - 1].a[4] = (uint64_t)-1;
	int unlaid_jump = -1, inherit_goto = -1;
	if (late) {     /* from the parent's memory, if it was laid out */
		unlaid_jump = op_add(pl, "laid out?", pid, -1, SEED_IF_UNLAID, 0, 0, 0, 0, 0, 0);
		if ((err = emit_inherit(r, pl, p, parent)) < 0)
			goto out;
		inherit_goto = op_add(pl, "laid out", pid, -1, SEED_GOTO, 0, 0, 0, 0, 0, 0);
		pl->ops[unlaid_jump].jump = (int)pl->n;
	}
	int vdso_op;
	if ((err = emit_layout(r, pl, p, filler, &vdso_op)) < 0)
		goto out;
	if (inherit_goto >= 0)
		pl->ops[inherit_goto].jump = (int)pl->n;
	if (vdso_op >= 0 || late) {
		if (filler) {    /* its pages in first (restore.c), then the children that share them */
			struct seed_report fm = { (int32_t)pid, 0, SEED_FILL_ME, 0, 0 };
			uint64_t set = 1ull << (SEED_WAKE_SIG - 1);
			op_add(pl, "report laid out", pid, -1, SEED_EQ, sizeof(fm), SYS_write, (uint64_t)r->ready_w,
			       data_add(pl, &fm, sizeof(fm)), sizeof(fm), 0);
			op_add(pl, "wait for its pages", pid, -1, SEED_EQ, SEED_WAKE_SIG, SYS_rt_sigtimedwait,
			       data_add(pl, &set, 8), 0, 0, 8);
			for (int k = 0; k < nk; k++)
				if (klate[k])
					fork_op[2 * k] = emit_fork(r, pl, pid, kid_at[k], t);
		}
		emit_park_laid(pl, pid);
	}
	/* the usual park (the seed could not lay the memory out): late
	 * children are forked from the seed's memory then */
	int park_at = (int)pl->n;
	for (int k = 0; k < nk; k++)
		if (klate[k])
			fork_op[2 * k + 1] = emit_fork(r, pl, pid, kid_at[k], t);
	struct seed_report m = { (int32_t)pid, 0, SEED_READY, 0, 0 };
	uint64_t ma = data_add(pl, &m, sizeof(m));
	op_add(pl, "park", pid, -1, SEED_PARK, 0, 0, ma, 0, 0, 0);
	if (vdso_op >= 0)
		pl->ops[vdso_op].jump = park_at;    /* the seed could not lay it out */
	else if (unlaid_jump >= 0)
		pl->ops[unlaid_jump].jump = park_at;
	/* if the seed cannot park: report and wait without dropping memory */
	op_add(pl, "report", pid, -1, SEED_EQ, sizeof(m), SYS_write, (uint64_t)r->ready_w, ma, sizeof(m), 0);
	uint8_t byte = 0;
	op_add(pl, "wait", pid, -1, 0, 0, SYS_read, (uint64_t)r->hold_r, data_add(pl, &byte, 1), 1, 0);
	op_add(pl, "exit", pid, -1, 0, 0, SYS_exit_group, 1, 0, 0, 0);
	for (int k = 0; k < nk; k++) {
		int ki = kid_at[k];
		int ks = (int)pl->n;
		if (r->procs[ki].tree->zombie)
			emit_zombie(pl, r->procs[ki].tree);
		else if ((ks = emit_task(r, pl, ki, p, klate[k])) < 0) {
			err = ks;
			goto out;
		}
		for (int j = 2 * k; j <= 2 * k + 1; j++)
			if (fork_op[j] >= 0)
				pl->ops[fork_op[j]].jump = ks;
	}
out:
	free(want);
	free(kid_at);
	free(klate);
	free(fork_op);
	return err < 0 ? err : start;
}

int seed_prepare(struct rst_ctx *r, const struct range *avoid, int navoid)
{
	struct plan pl = { 0 };
	struct kid *kx = NULL;
	int err = 0, fd = -1;
	r->seed_fd = r->plan_fd = -1;
	const char *env = getenv("ZAPC_RESTORE_SEED");
	if (env && !strcmp(env, "0"))
		return 0;
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 64);
	if (n <= 0)
		return 0;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	strcpy(slash ? slash + 1 : exe, "zapc-restore-seed");
	r->seed_fd = open(exe, O_RDONLY | O_CLOEXEC);
	if (r->seed_fd < 0) {
		log_debug("restore: no %s (%s): tasks are forks of the engine", exe, strerror(errno));
		return 0;
	}
	r->seed_fd = inv_move(r, r->seed_fd);
	/* The plan goes next to the seed's text (SEED_PLAN, seed.h): nothing
	 * of the image is mapped before a task has dropped it. */
	(void)avoid;
	(void)navoid;
	if (r->scratch_addr < SEED_PLAN + PLAN_GAP && SEED_PLAN < r->scratch_addr + 4 * PAGE)
		goto none;
	/* the seed parks itself if this kernel puts [vvar][vvar_vclock][vdso]
	 * next to each other (as ours are), keeping that block */
	uint64_t vdso_pre = 0, vdso_len = 0;
	if (rst_vdso_block(r)) {
		vdso_pre = r->eng_vdso - r->eng_vvar;
		vdso_len = r->eng_vdso_len;
	}
	kx = xcalloc((size_t)r->nprocs, sizeof(*kx));
	for (int i = 0; i < r->nprocs; i++)
		kx[i] = (struct kid){ r->procs[i].tree->ppid, r->procs[i].tree->pid, i };
	qsort(kx, (size_t)r->nprocs, sizeof(*kx), cmp_kid);
	env = getenv("ZAPC_RESTORE_SEED_LAYOUT");     /* 0: the engine maps every layout (A/B) */
	/* The plan ends in the seed's range when it is small (the usual case);
	 * a bigger one is that much more range the image must not use: built
	 * again with its end known (it only shrinks when fewer tasks lay their
	 * layout out) */
	uint64_t win_end = SEED_RESERVE_END;
	size_t clen, ops_off, len;
	uint64_t code_at;
	for (int pass = 0;; pass++) {
		free(pl.data);
		free(pl.ops);
		free(pl.what);
		free(pl.laid_park);
		pl = (struct plan){ .addr = SEED_PLAN, .win_end = win_end,
				    .layout = vdso_len && pass < 3 && !(env && !strcmp(env, "0")) };
		pl.kx = kx;
		pl.nkx = r->nprocs;
		const uint8_t *code = inj_batch_code(&clen);
		code_at = data_add(&pl, code, clen);
		for (int i = 0; i < r->nprocs; i++)
			r->procs[i].cow_late = false;
		if ((err = emit_task(r, &pl, 0, NULL, false)) < 0)
			goto out;
		ops_off = (SEED_DATA_OFF + pl.dlen + 63) & ~(size_t)63;
		len = (ops_off + pl.n * sizeof(struct seed_op) + PAGE - 1) & ~(size_t)(PAGE - 1);
		if (len > PLAN_GAP)
			goto none;
		if (!pl.nlaid || pl.addr + len <= win_end)
			break;
		win_end = pl.addr + len;
	}
	for (int i = 0; i < pl.nlaid; i++)
		pl.ops[pl.laid_park[i]].a[1] = win_end;
	log_debug("restore: %d of %d tasks map their own layout", pl.nlaid, r->nprocs);
	_Static_assert(sizeof(struct seed_hdr) <= SEED_DATA_OFF, "seed header too big");
	struct seed_hdr h = { SEED_MAGIC, pl.addr, len, ops_off, pl.n, r->ready_w, r->hold_r, r->scratch_addr,
			      vdso_pre, vdso_len, code_at - pl.addr, clen, SEED_STACK, SEED_STACK_LEN };
	fd = memfd_create("zapc-plan", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)len) < 0 || pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    (pl.dlen && pwrite(fd, pl.data, pl.dlen, SEED_DATA_OFF) != (ssize_t)pl.dlen) ||
	    pwrite(fd, pl.ops, pl.n * sizeof(struct seed_op), (off_t)ops_off) != (ssize_t)(pl.n * sizeof(struct seed_op))) {
		err = -errno;
		log_err("restore: seed plan: %s", strerror(errno));
		goto out;
	}
	r->plan_fd = inv_move(r, fd);
	fd = -1;
	r->plan_addr = pl.addr;
	r->plan_len = len;
	r->seed_what = pl.what;
	r->seed_nops = (int)pl.n;
	pl.what = NULL;
	goto out;
none:
	close(r->seed_fd);
	r->seed_fd = -1;
out:
	if (fd >= 0)
		close(fd);
	free(pl.data);
	free(pl.ops);
	free(pl.what);
	free(pl.laid_park);
	free(kx);
	return err;
}

/* In the pod's init (engine code) once its own part is done; returns only
 * if the exec failed. */
int seed_exec(struct rst_ctx *r)
{
	/* the inventory (every fd from inv_base up) must survive the exec: it
	 * is O_CLOEXEC for the engine's sake */
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		int fd = atoi(de->d_name);
		if (fd < r->inv_base || fd == r->seed_fd || fd == dirfd(d))
			continue;
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0 && (fl & FD_CLOEXEC))
			fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
	}
	if (d)
		closedir(d);
	else {
		log_err("restore: /proc/self/fd in the pod's init: %s", strerror(errno));
		return -errno;
	}
	char a1[24], a2[24], a3[24], a4[24];
	snprintf(a1, sizeof(a1), "%d", r->plan_fd);
	snprintf(a2, sizeof(a2), "%llu", (unsigned long long)r->plan_addr);
	snprintf(a3, sizeof(a3), "%llu", (unsigned long long)r->plan_len);
	snprintf(a4, sizeof(a4), "%d", 0);    /* the init's ops come first */
	char *argv[] = { "zapc-restore-seed", a1, a2, a3, a4, NULL }, *envp[] = { NULL };
	syscall(SYS_execveat, r->seed_fd, "", argv, envp, AT_EMPTY_PATH);
	int e = errno;
	log_err("restore: exec the restore seed: %s", strerror(e));
	return -e;
}

/* A failure report of the seed: which op of which task. */
void seed_log_failure(struct rst_ctx *r, const struct seed_report *m)
{
	if (m->op < 0 || m->op >= r->seed_nops) {
		log_err("restore: pid %d: the restore seed failed: %s", m->pid, strerror(-m->err));
		return;
	}
	const struct seed_what *w = &r->seed_what[m->op];
	if (w->vma)     /* as mm.c's layout batch says it */
		log_err("restore: pid %u: map vma %#llx-%#llx (%s): %s", w->pid, (unsigned long long)w->vma->start,
			(unsigned long long)w->vma->end, w->vma->name ? w->vma->name : "",
			m->err == -EPROTO ? "wrong address" : strerror(-m->err));
	else if (w->arg)
		log_err("restore: pid %u: %s %s: %s", w->pid, w->what, w->arg, strerror(-m->err));
	else if (w->detail >= 0)
		log_err("restore: pid %u: %s %lld: %s", w->pid, w->what, (long long)w->detail, strerror(-m->err));
	else
		log_err("restore: pid %u: %s: %s", w->pid, w->what, strerror(-m->err));
}

/* Every task is a fork of the seed: their vdso/vvar are where the init's are. */
int seed_tasks_vdso(struct rst_ctx *r, pid_t root)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/maps", root);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	r->eng_vdso = r->eng_vvar = r->eng_vclock = 0;
	r->eng_vdso_len = r->eng_vvar_len = r->eng_vclock_len = 0;
	int nmaps = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		nmaps += rst_maps_line(r, line, &s, &e);
	}
	fclose(f);
	log_debug("restore: the init has %d mappings when ready", nmaps);
	if (!r->eng_vdso || !r->eng_vvar) {
		log_err("restore: no [vdso] in the restored init's maps");
		return -ENOTSUP;
	}
	return 0;
}
