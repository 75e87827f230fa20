/*
 * cowshare.c — private memory a child still shares with its parent since a
 * fork (the same physical page, copy-on-write) is stored once, in the
 * parent, and shared again after restore (docs/engine.md "Memory shared
 * with the parent").
 *
 * Without it a pre-fork server (a parent that builds a big heap, then forks
 * its workers) made an image of (workers + 1) × its heap and a restored pod
 * of as much memory: every process's copy written into fresh pages.
 *
 * Dump: for a private VMA of a process whose parent (in the pod, alive) has
 * a VMA with the same range, protection, flags, offset and file, the two
 * /proc/PID/pagemap ranges are compared while the pod is frozen: a page the
 * child maps that is not exclusively its own (bit 56 clear) and has the
 * parent's page frame number at the same address is the parent's page.
 * Those pages go to ImgProcCore.cow_parent and out of the child's page runs.
 * Page frame numbers need CAP_SYS_ADMIN (zero otherwise: nothing is shared).
 * Not for indexed images (their pages are per process by design).
 *
 * Restore: the child gets them from its restored parent — forked from it
 * after the parent's pages are in (restore_seed.c), or, where the plan
 * cannot do that, copied from the parent's memory (cowshare_copy).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "agent/engine/pagefill.h"
#include "lib/log.h"

#define MAX_COW_RANGES (1 << 20)    /* restore: pairs per process */

/*
 * q's VMA that v is (a piece of): it holds v's range and maps the same
 * thing the same way — protection, flags, madvise state, file and offset.
 * A child that unmapped or protected part of a mapping it inherited has
 * the rest as pieces of the parent's VMA.  *at: its index in q.
 */
static const ImgVma *twin(const ImgProcCore *q, const ImgVma *v, bool by_name, size_t *at)
{
	size_t lo = 0, hi = q->n_vmas;
	while (lo < hi) {      /* past the last VMA starting at or below v */
		size_t mid = (lo + hi) / 2;
		if (q->vmas[mid]->start <= v->start)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const ImgVma *w = q->vmas[lo - 1];
	if (v->end > w->end || w->prot != v->prot || w->flags != v->flags || w->kind != v->kind || !vma_private(w) ||
	    (w->has_madv ? w->madv : 0) != (v->has_madv ? v->madv : 0))
		return NULL;
	/* the same file at the same offset: by its path (at dump the file ids
	 * may not be given yet, and one file opened two ways has two) */
	if (v->kind == VK_FILE && !(w->name && v->name && !strcmp(w->name, v->name) &&
				    v->pgoff == w->pgoff + (v->start - w->start) / PAGE &&
				    (by_name || (w->has_file_id && v->has_file_id))))
		return NULL;
	if (at)
		*at = lo - 1;
	return w;
}

/*
 * A task forked from its parent after the parent's layout keeps VMA v as
 * (a piece of) the parent's (*pi: its index there)?  Also the layout must
 * have mapped both the same way: writable for their pages or not.
 */
bool cowshare_keeps(const ImgProcCore *parent, const ImgVma *v, size_t *pi)
{
	const ImgVma *w = twin(parent, v, false, pi);
	return w && ((w->prot & PROT_WRITE) || w->has_pages == v->has_pages);
}

/* ------------------------------------------------------------------ dump */

static bool disabled(void)
{
	const char *e = getenv("ZAPC_ENGINE_NO_COWSHARE");
	return e && strcmp(e, "0");
}

static struct dproc *parent_of(struct dump_ctx *d, struct dproc *p)
{
	for (struct dproc *q = p - 1; q >= d->procs; q--)   /* parents come first */
		if (q->tree->pid == p->tree->ppid)
			return q->tree->zombie ? NULL : q;
	return NULL;
}

/* (a range never crosses a VMA boundary: the restore checks each is in one) */
static void add_range(struct dproc *p, uint64_t s, uint64_t e, uint64_t vma_start)
{
	if (p->nshared && p->shared[p->nshared - 1].e == s && s != vma_start) {
		p->shared[p->nshared - 1].e = e;
		return;
	}
	if (p->nshared == p->shared_cap) {
		p->shared_cap = p->shared_cap ? 2 * p->shared_cap : 16;
		p->shared = realloc(p->shared, (size_t)p->shared_cap * sizeof(*p->shared));
		if (!p->shared)
			abort();
	}
	p->shared[p->nshared++] = (struct range){ s, e };
}

/* a pagemap entry of the child's: an anonymous page it may share (mapped
 * by more than itself) */
static bool maybe_shared(uint64_t e)
{
	return (e & (PM_PRESENT | PM_EXCLUSIVE | PM_FILE)) == PM_PRESENT && PM_PFN(e);
}

/* [s, e) of VMA v: the pages that are the parent's go to p->shared */
static int compare(struct dproc *p, int pmfd, const ImgVma *v, uint64_t s, uint64_t e)
{
	enum { N = 512 };
	uint64_t mine[N], theirs[N];
	for (uint64_t a = s; a < e;) {
		size_t k = (e - a) / PAGE < N ? (size_t)((e - a) / PAGE) : N;
		off_t off = (off_t)(a / PAGE * 8);
		if (pread(pmfd, mine, k * 8, off) != (ssize_t)(k * 8)) {
			log_err("dump: pid %u: pagemap at %#llx: %s", p->tree->pid, (unsigned long long)a,
				strerror(errno));
			return -EIO;
		}
		bool any = false;
		for (size_t j = 0; j < k && !any; j++)
			any = maybe_shared(mine[j]);
		if (any && pread(p->cow_from_pm, theirs, k * 8, off) != (ssize_t)(k * 8)) {
			log_err("dump: pid %u: pagemap of its parent at %#llx: %s", p->tree->pid,
				(unsigned long long)a, strerror(errno));
			return -EIO;
		}
		for (size_t j = 0; any && j < k; j++)
			if (maybe_shared(mine[j]) && (theirs[j] & PM_PRESENT) && PM_PFN(theirs[j]) == PM_PFN(mine[j]))
				add_range(p, a + j * PAGE, a + (j + 1) * PAGE, v->start);
		a += k * PAGE;
	}
	return 0;
}

int cowshare_vma(struct dump_ctx *d, struct dproc *p, int pmfd, const ImgVma *v)
{
	if (d->indexed || !vma_private(v) || p == d->procs || disabled())
		return 0;
	if (!p->cow_looked) {
		p->cow_looked = true;
		p->cow_from = parent_of(d, p);
		p->cow_from_pm = -1;
		if (p->cow_from) {
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/pagemap", p->cow_from->hpid);
			p->cow_from_pm = open(path, O_RDONLY | O_CLOEXEC);
		}
	}
	if (!p->cow_from || p->cow_from_pm < 0 || !twin(p->cow_from->core, v, true, NULL))
		return 0;
	/* a big VMA only where the child has pages (one PAGEMAP_SCAN walk): it
	 * can be huge and nearly empty — ASan's shadow is terabytes; a small
	 * one is read whole (the walk would cost more than it saves) */
	if (v->end - v->start <= (2u << 20))
		return compare(p, pmfd, v, v->start, v->end);
	struct range *pr = NULL;
	int npr = 0, err = dirty_present(p, pmfd, v->start, v->end, &pr, &npr);
	if (err == -ENOTTY || err == -EINVAL) {       /* no PAGEMAP_SCAN (< 6.7): read whole, if not too big */
		free(pr);
		return v->end - v->start <= (64ull << 20) ? compare(p, pmfd, v, v->start, v->end) : 0;
	}
	if (err < 0) {
		free(pr);
		log_err("dump: pid %u vma %#llx: PAGEMAP_SCAN: %s", p->tree->pid, (unsigned long long)v->start,
			strerror(-err));
		return err;
	}
	for (int i = 0; i < npr && !err; i++)
		err = compare(p, pmfd, v, pr[i].s > v->start ? pr[i].s : v->start, pr[i].e < v->end ? pr[i].e : v->end);
	free(pr);
	return err;
}

/* bytes of the pages p shares with its parent (found so far) */
uint64_t cowshare_bytes(const struct dproc *p)
{
	uint64_t n = 0;
	for (int i = 0; i < p->nshared; i++)
		n += p->shared[i].e - p->shared[i].s;
	return n;
}

/* p's VMAs are all looked at (mm_dump): the parent's pagemap is no longer needed */
void cowshare_scan_end(struct dproc *p)
{
	if (p->cow_looked && p->cow_from_pm >= 0)
		close(p->cow_from_pm);
	p->cow_from_pm = -1;
}

/*
 * The shared pages out of the runs (sorted, within VMAs, no data read yet)
 * and into the image as cow_parent.  Runs only shrink or split.
 */
void cowshare_cut(struct dproc *p, struct pagerun **runsp, int *np)
{
	if (!p->nshared || p->core->n_cow_parent)
		return;
	struct pagerun *in = *runsp, *out = NULL;
	int n = *np, nout = 0, cap = 0, k = 0;
	for (int i = 0; i < n; i++) {
		uint64_t s = in[i].addr, e = s + (uint64_t)in[i].npages * PAGE;
		while (k < p->nshared && p->shared[k].e <= s)
			k++;
		for (int j = k; s < e; j++) {
			uint64_t cs = j < p->nshared && p->shared[j].s < e ? p->shared[j].s : e;
			if (cs > s) {
				if (nout == cap) {
					cap = cap ? 2 * cap : 64;
					out = realloc(out, (size_t)cap * sizeof(*out));
					if (!out)
						abort();
				}
				out[nout++] = (struct pagerun){ s, (uint32_t)((cs - s) / PAGE), in[i].owner, NULL };
			}
			if (cs >= e)
				break;
			s = p->shared[j].e > s ? p->shared[j].e : s;
		}
	}
	free(in);
	*runsp = out;
	*np = nout;
	p->core->n_cow_parent = (size_t)p->nshared * 2;
	p->core->cow_parent = xcalloc(p->core->n_cow_parent, sizeof(uint64_t));
	for (int i = 0; i < p->nshared; i++) {
		p->core->cow_parent[2 * i] = p->shared[i].s;
		p->core->cow_parent[2 * i + 1] = (p->shared[i].e - p->shared[i].s) / PAGE;
	}
}

/* ------------------------------------------------------------------ restore */

/* p's VMA holding [s, e), if its parent has it too (the pages can be the
 * parent's); *vi: where to look from, the ranges come sorted */
static const ImgVma *shared_vma(const struct rproc *p, const struct rproc *q, uint64_t s, uint64_t e, size_t *vi)
{
	while (*vi < p->core->n_vmas && p->core->vmas[*vi]->end <= s)
		(*vi)++;
	const ImgVma *v = *vi < p->core->n_vmas ? p->core->vmas[*vi] : NULL;
	size_t pi;
	return v && s >= v->start && e <= v->end && v->has_pages && cowshare_keeps(q->core, v, &pi) ? v : NULL;
}

int cowshare_check(struct rst_ctx *r)
{
	for (int i = 0; i < r->nprocs; i++) {
		struct rproc *p = &r->procs[i];
		p->cow_parent = -1;
		if (!p->core || !p->core->n_cow_parent)
			continue;
		size_t n = p->core->n_cow_parent;
		int q = proc_index(r, p->tree->ppid);
		if (i == 0 || q < 0 || !r->procs[q].core || n % 2 || n > 2 * MAX_COW_RANGES) {
			log_err("restore: record 'proc' of pid %u: pages shared with a parent it does not have",
				p->tree->pid);
			return -EINVAL;
		}
		const uint64_t *c = p->core->cow_parent;
		uint64_t prev = 0;
		size_t vi = 0;
		for (size_t k = 0; k < n; k += 2) {
			uint64_t s = c[k], len = c[k + 1] * PAGE;
			if (s % PAGE || s < prev || !c[k + 1] || c[k + 1] > (1ull << 36) ||
			    !shared_vma(p, &r->procs[q], s, s + len, &vi)) {
				log_err("restore: record 'proc' of pid %u: pages shared with the parent at %#llx+%llu: "
					"not in a mapping both have", p->tree->pid, (unsigned long long)s,
					(unsigned long long)c[k + 1]);
				return -EINVAL;
			}
			prev = s + len;
		}
		p->cow_parent = q;
	}
	return 0;
}

/*
 * The pages p shares with its parent, copied from the parent's memory (its
 * pages are in: the parent comes first), in pieces of the page buffer with
 * process_vm_readv/writev; a piece either cannot move that way (a
 * protection without read or write access: RELRO is read-only in the child
 * by now) goes through /proc/PID/mem, which reads and writes whatever the
 * protection.
 */
int cowshare_copy(struct rst_ctx *r, struct rproc *p)
{
	if (p->cow_parent < 0 || p->cow_forked)
		return 0;
	const struct rproc *q = &r->procs[p->cow_parent];
	int from = -1, to = -1, err = 0;
	size_t cap;
	uint8_t *buf = pagefill_buf(&cap);
	const uint64_t *c = p->core->cow_parent;
	for (size_t k = 0; k < p->core->n_cow_parent && !err; k += 2)
		for (uint64_t a = c[k], e = c[k] + c[k + 1] * PAGE; a < e && !err;) {
			size_t n = e - a < cap ? (size_t)(e - a) : cap;
			errno = EFAULT;     /* (a short transfer sets none) */
			if (mem_read(q->hpid, a, buf, n) < 0 &&
			    (proc_mem_fd(q->hpid, &from, O_RDONLY) < 0 || pread(from, buf, n, (off_t)a) != (ssize_t)n))
				err = -errno;
			else if (mem_write(p->hpid, a, buf, n) < 0 &&
				 (proc_mem_fd(p->hpid, &to, O_RDWR) < 0 || pwrite(to, buf, n, (off_t)a) != (ssize_t)n))
				err = -errno;
			if (err)
				log_err("restore: pid %u: copy the pages it shares with its parent at %#llx: %s",
					p->tree->pid, (unsigned long long)a, strerror(-err));
			a += n;
		}
	if (from >= 0)
		close(from);
	if (to >= 0)
		close(to);
	return err;
}
