/*
 * mm.c — address spaces: VMAs, page contents, mm layout fields, vdso.
 *
 * Dump: /proc/PID/smaps gives every VMA with its VmFlags; /proc/PID/pagemap
 * tells which pages hold data worth saving (research/cr-mechanics.md §3.3):
 *   private anonymous        present or swapped pages;
 *   private file             only pages that were COWed (present, bit 61 clear);
 *   shared anonymous/memfd   the object's whole range, once per object (§3.5);
 *   shared file              nothing (the file holds the data);
 *   vdso / vvar              nothing: the restored task gets this kernel's vdso
 *                            moved to the old address (same kernel → same text).
 * Pages are copied into engine memory with process_vm_readv (unreadable VMAs
 * through /proc/PID/mem, which uses forced access) while the pod is stopped.
 *
 * Restore (late, by injection into the stopped task): unregister the rseq the
 * engine code left, unmap everything but the scratch page and the vdso, move
 * vdso/[vvar]/[vvar_vclock] (each its own VMA since 6.13, §3.6, §5.2) to
 * their old addresses, mmap every VMA at its address (PROT_WRITE added while
 * filling), write pages with process_vm_writev, put protections and madvise
 * bits back, and PR_SET_MM_MAP the layout (+auxv, exe) — the only PR_SET_MM
 * form that works without CAP_SYS_RESOURCE (§4.3, §7.5).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/prctl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "agent/engine/pagefill.h"
#include "agent/engine/uffd.h"
#include "lib/log.h"

uint32_t mapped_file_id(struct dump_ctx *d, const char *path, uint32_t flags);

#define MADV_BIT_DONTFORK  1u
#define MADV_BIT_WIPE      2u
#define MADV_BIT_DONTDUMP  4u
#define MADV_BIT_HUGE      8u
#define MADV_BIT_NOHUGE    16u


/* ------------------------------------------------------------------ dump */

static int parse_stat_mm(struct dproc *p)
{
	char path[64], small[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", p->hpid);
	char *s = proc_read_small(path, small, sizeof(small)) >= 0 ? small : read_file_str(path, NULL);
	if (!s)
		return -errno;
	char *q = strrchr(s, ')');
	uint64_t f[64] = { 0 };
	int n = 3;
	for (q = q ? q + 2 : NULL; q && *q && n < 64; n++) {
		if (n == 3) {          /* state char */
			q = strchr(q, ' ');
			if (q) q++;
			continue;
		}
		f[n] = strtoull(q, &q, 10);
		while (*q == ' ')
			q++;
	}
	if (s != small)
		free(s);
	ImgMm *mm = p->core->mm;
	mm->start_code = f[26]; mm->end_code = f[27]; mm->start_stack = f[28];
	mm->start_data = f[45]; mm->end_data = f[46]; mm->start_brk = f[47];
	mm->arg_start = f[48]; mm->arg_end = f[49]; mm->env_start = f[50]; mm->env_end = f[51];
	mm->brk = mm->start_brk;   /* the real brk comes from an injected brk(0) */
	return 0;
}

static void add_run(struct pagerun **runs, int *n, int *cap, uint64_t addr, uint32_t np, uint32_t owner,
		    uint64_t vma_start)
{
	/* extend the previous run when contiguous (never across VMAs) */
	if (*n && (*runs)[*n - 1].owner == owner && (*runs)[*n - 1].addr >= vma_start &&
	    (*runs)[*n - 1].addr + (*runs)[*n - 1].npages * PAGE == addr &&
	    (*runs)[*n - 1].npages + np <= PAGES_PER_RECORD) {
		(*runs)[*n - 1].npages += np;
		return;
	}
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*runs = realloc(*runs, (size_t)*cap * sizeof(**runs));
	}
	(*runs)[(*n)++] = (struct pagerun){ addr, np, owner, NULL };
}

/* Page buffers come from a pool populated before the pod is frozen: on this
 * VM first-touching fresh memory costs more than the copy itself, and it
 * must not happen inside the frozen window. */
static uint8_t *pool;
static size_t pool_len, pool_used;

void mm_prealloc(size_t bytes)
{
	bytes = (bytes + PAGE - 1) & ~(PAGE - 1);
	if (!bytes)
		return;
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return;
	pool = p;
	pool_len = bytes;
	pool_used = 0;
}

static void *buf_take(size_t len)
{
	if (pool && pool_len - pool_used >= len) {
		void *p = pool + pool_used;
		pool_used += len;
		return p;
	}
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

struct readv_job {
	pid_t pid;
	struct pagerun *runs;
	int n;
	int err;
	const ImgProcCore *core;
};

static int read_some(pid_t pid, struct pagerun *runs, int n, const ImgProcCore *core);

static void *readv_thread(void *arg)
{
	struct readv_job *j = arg;
	j->err = read_some(j->pid, j->runs, j->n, j->core);
	return NULL;
}

/* Read the runs' pages of pid into their data pointers (two threads for big ones). */
static int read_runs_into(pid_t pid, struct pagerun *runs, int n, size_t total, const ImgProcCore *core)
{
	if (total < (2u << 20) || n < 2)
		return read_some(pid, runs, n, core);
	/* split at half the bytes; the second half in a thread */
	int half = 0;
	for (size_t acc = 0; half < n - 1 && acc < total / 2; half++)
		acc += runs[half].npages * PAGE;
	struct readv_job j = { pid, runs + half, n - half, 0, core };
	pthread_t th;
	if (pthread_create(&th, NULL, readv_thread, &j) != 0)
		return read_some(pid, runs, n, core);
	int err = read_some(pid, runs, half, core);
	pthread_join(th, NULL);
	return err < 0 ? err : j.err;
}

/* Read the runs' pages of pid into one buffer from the pool. */
static int read_runs(pid_t pid, struct pagerun *runs, int n, uint8_t **bufp, size_t *lenp,
		     const ImgProcCore *core)
{
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += runs[i].npages * PAGE;
	*lenp = total;
	*bufp = NULL;
	if (!total)
		return 0;
	uint8_t *buf = buf_take(total);
	if (!buf)
		return -ENOMEM;
	*bufp = buf;
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		runs[i].data = buf + off;
		off += runs[i].npages * PAGE;
	}
	return read_runs_into(pid, runs, n, total, core);
}

/*
 * A checkpoint that ends the pod keeps it stopped until the image is
 * written (dump.c), so its private pages need no copy while "frozen": the
 * writer reads them run group by run group (at most 16 MiB) into one reused
 * buffer (mm_late_read).  On this VM that saves a copy into freshly
 * populated memory and the first user touch of every page of it (the CRC),
 * ~10 us a page, and the pool populated before the freeze.
 */
static uint8_t *late_buf;
static size_t late_len;

int mm_late_read(struct dproc *p, struct pagerun *runs, int n)
{
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += runs[i].npages * PAGE;
	if (total > late_len) {
		size_t len = total < (1u << 20) ? (1u << 20) : total;
		void *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b == MAP_FAILED)
			return -ENOMEM;
		if (late_buf)
			munmap(late_buf, late_len);
		late_buf = b;
		late_len = len;
	}
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		runs[i].data = late_buf + off;
		off += runs[i].npages * PAGE;
	}
	/* a snapshot's pages come from its copy-on-write child (cowsnap.c) */
	pid_t src = p->cow_child > 0 ? p->cow_child : p->hpid;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int err = read_runs_into(src, runs, n, total, p->core);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (p->cow_child > 0)
		p->cow_read_ms += (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (err < 0)
		log_err("dump: pid %u: reading memory: %s", p->tree->pid, strerror(-err));
	return err;
}

static int read_some(pid_t pid, struct pagerun *runs, int n, const ImgProcCore *core)
{
	int memfd = -1;
	/* batches of up to 1024 iovecs; on a short read fall back to /proc/PID/mem */
	for (int i = 0; i < n;) {
		struct iovec l[1024], r[1024];
		int k = 0;
		for (; k < 1024 && i + k < n; k++) {
			l[k].iov_base = runs[i + k].data;
			l[k].iov_len = r[k].iov_len = runs[i + k].npages * PAGE;
			r[k].iov_base = (void *)runs[i + k].addr;
		}
		ssize_t got = process_vm_readv(pid, l, (unsigned long)k, r, (unsigned long)k, 0);
		if (got < 0)
			got = 0;
		/* find how many whole iovecs were read */
		int done = 0;
		size_t acc = 0;
		while (done < k && acc + l[done].iov_len <= (size_t)got)
			acc += l[done++].iov_len;
		if (done == k) {
			i += k;
			continue;
		}
		/* run i+done failed (unreadable VMA): read it through /proc/PID/mem */
		struct pagerun *bad = &runs[i + done];
		if (proc_mem_fd(pid, &memfd, O_RDONLY) < 0)
			return -errno;
		size_t len = bad->npages * PAGE, o = 0;
		while (o < len) {
			ssize_t m = pread(memfd, bad->data + o, len - o, (off_t)(bad->addr + o));
			if (m <= 0) {
				int e = m < 0 ? errno : EIO;
				log_err("dump: pid %u: read memory at %#llx: %s", core->pid,
					(unsigned long long)(bad->addr + o), strerror(e));
				close(memfd);
				return -e;
			}
			o += (size_t)m;
		}
		i += done + 1;
	}
	if (memfd >= 0)
		close(memfd);
	return 0;
}

/* For the pre-copy (dirty.c): read runs whose data pointers are set. */
int mm_read_runs(pid_t pid, struct pagerun *runs, int n)
{
	ImgProcCore c = IMG_PROC_CORE__INIT;
	c.pid = (uint32_t)pid;
	return read_some(pid, runs, n, &c);
}

static int pagemap_runs(struct dproc *p, int pmfd, ImgVma *v, struct pagerun **runs, int *n, int *cap)
{
	uint64_t npages = (v->end - v->start) / PAGE;
	uint64_t buf[512];
	for (uint64_t i = 0; i < npages;) {
		uint64_t k = npages - i < 512 ? npages - i : 512;
		ssize_t got = pread(pmfd, buf, k * 8, (off_t)((v->start / PAGE + i) * 8));
		if (got != (ssize_t)(k * 8)) {
			log_err("dump: pid %u: pagemap at %#llx: %s", p->tree->pid,
				(unsigned long long)v->start, got < 0 ? strerror(errno) : "short read");
			return -EIO;
		}
		for (uint64_t j = 0; j < k; j++) {
			uint64_t e = buf[j];
			bool save;
			if (v->kind == VK_FILE)
				save = (e & PM_SWAPPED) || ((e & PM_PRESENT) && !(e & PM_FILE));
			else
				save = e & (PM_PRESENT | PM_SWAPPED);
			if (save)
				add_run(runs, n, cap, v->start + (i + j) * PAGE, 1, p->tree->pid, v->start);
		}
		i += k;
	}
	return 0;
}

static int cmp_range(const void *a, const void *b);

/* Present or swapped pages of an anonymous VMA as ranges, by one
 * PAGEMAP_SCAN walk (dirty.c) instead of 8 bytes of pagemap per page.
 * -ENOTTY: no PAGEMAP_SCAN (kernel < 6.7), the caller reads pagemap. */
static int scan_runs(struct dproc *p, int pmfd, ImgVma *v, struct pagerun **runs, int *n, int *cap)
{
	struct range *pr = NULL;
	int npr = 0, err = dirty_present(p, pmfd, v->start, v->end, &pr, &npr);
	if (err < 0) {
		free(pr);
		if (err != -ENOTTY && err != -EINVAL)
			log_err("dump: pid %u vma %#llx: PAGEMAP_SCAN: %s", p->tree->pid,
				(unsigned long long)v->start, strerror(-err));
		return err == -EINVAL ? -ENOTTY : err;
	}
	for (int i = 0; i < npr; i++)
		for (uint64_t a = pr[i].s; a < pr[i].e; a += PAGES_PER_RECORD * PAGE) {
			uint64_t np = (pr[i].e - a) / PAGE;
			add_run(runs, n, cap, a, (uint32_t)(np < PAGES_PER_RECORD ? np : PAGES_PER_RECORD),
				p->tree->pid, v->start);
		}
	free(pr);
	return 0;
}

static bool in_ranges(const struct range *r, int n, uint64_t a)
{
	int lo = 0, hi = n;                 /* sorted, disjoint */
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (a < r[mid].s)
			hi = mid;
		else if (a >= r[mid].e)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* [s,e) minus the pages pre-copied before the freeze (dirty.c): those were
 * write-protected then, so unless the frozen scan says written they still
 * hold the copied content. */
static void add_not_precopied(struct range **rd, int *nrd, uint64_t s, uint64_t e, const struct precopy *pc)
{
	for (int j = 0; pc && !pc->lost && j < pc->nruns && s < e; j++) {
		uint64_t cs = pc->runs[j].addr, ce = cs + pc->runs[j].npages * PAGE;
		if (ce <= s || cs >= e)
			continue;
		if (cs > s) {
			*rd = realloc(*rd, (size_t)(*nrd + 1) * sizeof(**rd));
			(*rd)[(*nrd)++] = (struct range){ s, cs };
		}
		s = ce;
	}
	if (s < e) {
		*rd = realloc(*rd, (size_t)(*nrd + 1) * sizeof(**rd));
		(*rd)[(*nrd)++] = (struct range){ s, e };
	}
}

/* Pre-copied pages of VMA v that are present and not read while frozen
 * (md: the merged ranges read now) go to p->preruns, data in the copy. */
static void use_precopied(struct dproc *p, const ImgVma *v, const struct precopy *pc, const struct range *pr,
			  int npr, const struct range *md, int nmd)
{
	for (int j = 0; j < pc->nruns; j++) {
		const struct pagerun *c = &pc->runs[j];
		for (uint32_t k = 0; k < c->npages; k++) {
			uint64_t a = c->addr + (uint64_t)k * PAGE;
			if (a < v->start || a >= v->end || !in_ranges(pr, npr, a) || in_ranges(md, nmd, a))
				continue;
			uint8_t *data = c->data + (size_t)k * PAGE;
			struct pagerun *l = p->npreruns ? &p->preruns[p->npreruns - 1] : NULL;
			if (l && l->addr + l->npages * PAGE == a && l->data + (size_t)l->npages * PAGE == data &&
			    l->npages < PAGES_PER_RECORD) {
				l->npages++;
				continue;
			}
			if (p->npreruns == p->npreruns_cap) {
				p->npreruns_cap = p->npreruns_cap ? p->npreruns_cap * 2 : 64;
				p->preruns = realloc(p->preruns, (size_t)p->npreruns_cap * sizeof(*p->preruns));
			}
			p->preruns[p->npreruns++] = (struct pagerun){ a, 1, p->tree->pid, data };
		}
	}
}

/* runs (read while frozen) and preruns, both sorted, into one sorted list */
static void merge_preruns(struct dproc *p)
{
	if (!p->npreruns)
		return;
	int n = p->nruns + p->npreruns, i = 0, j = 0, k = 0;
	struct pagerun *m = xcalloc((size_t)n, sizeof(*m));
	while (i < p->nruns || j < p->npreruns)
		m[k++] = j >= p->npreruns || (i < p->nruns && p->runs[i].addr < p->preruns[j].addr) ? p->runs[i++]
												  : p->preruns[j++];
	free(p->runs);
	p->runs = m;
	p->nruns = n;
	free(p->preruns);
	p->preruns = NULL;
	p->npreruns = p->npreruns_cap = 0;
}

/* Indexed images: the VMA's present pages go to the index; the pages to read
 * are the written ones when the VMA is tracked since the parent, else all. */
static int indexed_vma_runs(struct dump_ctx *d, struct dproc *p, int pmfd, ImgVma *v, size_t vi, bool resident,
			    struct pagerun **runs, int *n, int *cap)
{
	struct range *pr = NULL, *wr = NULL;
	int npr = 0, nwr = 0, err;
	(void)d;
	struct timespec q0, q1, q2;
	phase_mark("mm_smaps");
	clock_gettime(CLOCK_MONOTONIC, &q0);
	/* two walks: present (no write-protect), then the written ones with the
	 * kernel's fast path (category and return mask exactly PAGE_IS_WRITTEN);
	 * one combined walk measured no faster */
	/* every page resident (smaps' Rss, read frozen, counts each present
	 * page once): the present set is the whole VMA, no walk (1.5 ms for
	 * 1 GiB, the biggest piece of an increment's frozen window) */
	if (resident) {
		pr = xcalloc(1, sizeof(*pr));
		pr[0] = (struct range){ v->start, v->end };
		npr = 1;
	} else if ((err = dirty_present(p, pmfd, v->start, v->end, &pr, &npr)) < 0) {
		log_err("dump: pid %u vma %#llx: PAGEMAP_SCAN: %s", p->tree->pid, (unsigned long long)v->start,
			strerror(-err));
		return err;
	}
	phase_mark("mm_scan_present");
	bool scanned = p->tracked && p->uffd >= 0 && p->vscan[vi] == 2 &&
		       dirty_written(p, pmfd, v->start, v->end, &wr, &nwr) == 0;
	if (scanned)
		p->vscan[vi] = 1;
	phase_mark("mm_scan_written");
	clock_gettime(CLOCK_MONOTONIC, &q2);
	if (getenv("ZAPC_ENGINE_TIMING") && v->end - v->start > (64u << 20)) {
		q1 = q2;
		fprintf(stderr, "TIMING dump_scan_ms %.3f (vma %#llx, %d present ranges, %d written)\n",
			((q1.tv_sec - q0.tv_sec) * 1e9 + (q1.tv_nsec - q0.tv_nsec)) / 1e6,
			(unsigned long long)v->start, npr, nwr);
	}
	size_t npp = 0;
	const uint64_t *pp = scanned ? chain_parent_present(d->pindex, p->tree->pid, &npp) : NULL;
	const struct precopy *pc = scanned ? dirty_precopy_of(d, p->hpid) : NULL;
	struct range *rd = NULL;
	int nrd = 0;
	if (pc && pc->lost)                   /* protected, not copied: read the present ones now */
		for (int j = 0; j < pc->nruns; j++)
			for (int i = 0; i < npr; i++) {
				uint64_t s = pc->runs[j].addr, e = s + pc->runs[j].npages * PAGE;
				s = s > pr[i].s ? s : pr[i].s;
				e = e < pr[i].e ? e : pr[i].e;
				if (s < e) {
					rd = realloc(rd, (size_t)(nrd + 1) * sizeof(*rd));
					rd[nrd++] = (struct range){ s, e };
				}
			}
	for (int i = 0; i < npr; i++) {
		for (uint64_t a = pr[i].s; a < pr[i].e; a += PAGES_PER_RECORD * PAGE) {
			uint64_t np = (pr[i].e - a) / PAGE < PAGES_PER_RECORD ? (pr[i].e - a) / PAGE : PAGES_PER_RECORD;
			add_run(&p->present, &p->npresent, &p->npresent_cap, a, (uint32_t)np, p->tree->pid, v->start);
		}
		if (!scanned) {
			rd = realloc(rd, (size_t)(nrd + 1) * sizeof(*rd));
			rd[nrd++] = pr[i];
			continue;
		}
		/* read: (present ∩ written) ∪ (present − parent's present): a page
		 * the chain never had (e.g. read-faulted to the zero page, never
		 * written) must be saved even though it was not written */
		for (int j = 0; j < nwr; j++) {
			uint64_t s = wr[j].s > pr[i].s ? wr[j].s : pr[i].s, e = wr[j].e < pr[i].e ? wr[j].e : pr[i].e;
			if (s < e) {
				rd = realloc(rd, (size_t)(nrd + 1) * sizeof(*rd));
				rd[nrd++] = (struct range){ s, e };
			}
		}
		uint64_t at = pr[i].s;
		for (size_t j = 0; j < npp && at < pr[i].e; j++) {
			uint64_t s = pp[2 * j], e = s + pp[2 * j + 1] * PAGE;
			if (e <= at || s >= pr[i].e)
				continue;
			if (s > at)
				add_not_precopied(&rd, &nrd, at, s, pc);
			at = e;
		}
		if (at < pr[i].e) {
			log_debug("dump: pid %u: %#llx-%#llx present, not in the parent (vma %s)", p->tree->pid,
				  (unsigned long long)at, (unsigned long long)pr[i].e, v->name ? v->name : "");
			add_not_precopied(&rd, &nrd, at, pr[i].e, pc);
		}
	}
	if (nrd > 1)
		qsort(rd, (size_t)nrd, sizeof(*rd), cmp_range);
	int nmd = 0;
	for (int i = 0; i < nrd; i++) {
		uint64_t s = rd[i].s, e = rd[i].e;
		while (i + 1 < nrd && rd[i + 1].s <= e) {     /* merge overlaps */
			e = rd[i + 1].e > e ? rd[i + 1].e : e;
			i++;
		}
		rd[nmd++] = (struct range){ s, e };      /* in place: nmd <= i */
		for (uint64_t a = s; a < e; a += PAGES_PER_RECORD * PAGE) {
			uint64_t np = (e - a) / PAGE < PAGES_PER_RECORD ? (e - a) / PAGE : PAGES_PER_RECORD;
			add_run(runs, n, cap, a, (uint32_t)np, p->tree->pid, v->start);
		}
	}
	if (pc && !pc->lost)
		use_precopied(p, v, pc, pr, npr, rd, nmd);
	free(rd);
	if (npr)
		SETOPT(v, has_pages, 1);
	free(pr);
	free(wr);
	return 0;
}

/*
 * The pages to save of the VMAs pend[] (anonymous and private file ones,
 * in address order) by one PAGEMAP_SCAN walk over their span instead of a
 * walk or pagemap read per VMA (~16 system calls per small process).
 * No PAGEMAP_SCAN: the per-VMA way, and *whole_scan cleared for the next.
 */
static __thread struct range *pr;      /* pending_runs' scratch, per thread */
static __thread int prcap;

static int pending_runs(struct dproc *p, int pmfd, const int *pend, int npend, struct pagerun **runs, int *n,
			int *cap, bool *whole_scan)
{
	int npr = 0, err;
	ImgVma **vmas = p->core->vmas;
	err = dirty_private_pages(pmfd, vmas[pend[0]]->start, vmas[pend[npend - 1]]->end, &pr, &npr, &prcap);
	if (err == -ENOTTY || err == -EINVAL) {
		*whole_scan = false;
		for (int k = 0; k < npend; k++) {
			ImgVma *v = vmas[pend[k]];
			int before = *n;
			err = v->kind == VK_ANON ? scan_runs(p, pmfd, v, runs, n, cap) : -ENOTTY;
			if (err == -ENOTTY)
				err = pagemap_runs(p, pmfd, v, runs, n, cap);
			if (err < 0)
				return err;
			if (*n > before)
				SETOPT(v, has_pages, 1);
		}
		return 0;
	}
	if (err < 0) {
		log_err("dump: pid %u: PAGEMAP_SCAN: %s", p->tree->pid, strerror(-err));
		return err;
	}
	int j = 0;
	for (int k = 0; k < npend; k++) {
		ImgVma *v = vmas[pend[k]];
		int before = *n;
		while (j < npr && pr[j].e <= v->start)
			j++;
		for (int i = j; i < npr && pr[i].s < v->end; i++) {
			uint64_t s = pr[i].s > v->start ? pr[i].s : v->start, e = pr[i].e < v->end ? pr[i].e : v->end;
			for (uint64_t a = s; a < e; a += PAGES_PER_RECORD * PAGE) {
				uint64_t np = (e - a) / PAGE;
				add_run(runs, n, cap, a, (uint32_t)(np < PAGES_PER_RECORD ? np : PAGES_PER_RECORD),
					p->tree->pid, v->start);
			}
		}
		if (*n > before)
			SETOPT(v, has_pages, 1);
	}
	return 0;
}

static bool shm_range_seen(struct dump_ctx *d, uint32_t id, uint64_t off, uint64_t len)
{
	for (int i = 0; i < d->nshm_runs; i++)
		if (d->shm_runs[i].owner == id && d->shm_runs[i].addr <= off &&
		    off + len <= d->shm_runs[i].addr + d->shm_runs[i].npages * PAGE)
			return true;
	return false;
}

static ImgShm *shm_get(struct dump_ctx *d, uint32_t id)
{
	for (size_t i = 0; i < d->files->n_shms; i++)
		if (d->files->shms[i]->id == id)
			return d->files->shms[i];
	ImgShm *s = PB_PUSH(d->files, shms, ImgShm, img_shm__init);
	s->id = id;
	return s;
}

/* shm pages are read right away, per VMA, into their own buffers */
static int dump_shm_vma(struct dump_ctx *d, struct dproc *p, ImgVma *v)
{
	uint64_t off = v->pgoff * PAGE, len = v->end - v->start;
	ImgShm *s = shm_get(d, v->shm_id);
	if (off + len > s->size)
		s->size = off + len;
	if (shm_range_seen(d, v->shm_id, off, len))
		return 0;
	/* one run per 16 MiB piece, addr = offset in the object */
	for (uint64_t o = 0; o < len; o += PAGES_PER_RECORD * PAGE) {
		uint64_t l = len - o < PAGES_PER_RECORD * PAGE ? len - o : PAGES_PER_RECORD * PAGE;
		struct pagerun run = { v->start + o, (uint32_t)(l / PAGE), v->shm_id, NULL };
		uint8_t *buf;
		size_t blen;
		int err = read_runs(p->hpid, &run, 1, &buf, &blen, p->core);
		if (err < 0)
			return err;
		d->shm_runs = realloc(d->shm_runs, (size_t)(d->nshm_runs + 1) * sizeof(*d->shm_runs));
		d->shm_runs[d->nshm_runs++] = (struct pagerun){ off + o, run.npages, v->shm_id, buf };
	}
	return 0;
}

int mm_dump_shm(struct dump_ctx *d)
{
	(void)d;
	return 0;
}

static bool is_vma_line(const char *l, const char *end)
{
	const char *dash = memchr(l, '-', (size_t)(end - l)), *sp = memchr(l, ' ', (size_t)(end - l));
	return dash && sp && dash < sp && ((*l >= '0' && *l <= '9') || (*l >= 'a' && *l <= 'f'));
}

/* Do the VMA lines of an smaps text equal a maps text (same format)? */
static bool same_vmas(const char *smaps, const char *maps)
{
	const char *m = maps;
	for (const char *l = smaps; *l;) {
		const char *nl = strchr(l, '\n');
		const char *end = nl ? nl + 1 : l + strlen(l);
		if (is_vma_line(l, end)) {
			size_t n = (size_t)(end - l);
			if (strncmp(m, l, n))
				return false;
			m += n;
		}
		l = end;
	}
	return *m == 0;
}

/*
 * smaps as read before the freeze (dirty.c pre-copy) when /proc/PID/maps
 * still shows exactly the same VMAs: smaps walks every pte for its Rss
 * (~6 ms per GiB of 4 KiB pages here, several times that under load), maps
 * does not.  *stale: its Rss/Swap are old, so every VMA is looked up.  Not
 * seen this way: a madvise flag (VmFlags) set on a whole VMA in the few ms
 * between that read and the freeze.
 */
static FILE *smaps_open(struct dump_ctx *d, struct dproc *p, bool *stale)
{
	char path[64];
	const struct precopy *pc = dirty_precopy_of(d, p->hpid);
	if (pc && pc->smaps && p->tracked && !getenv("ZAPC_NO_SMAPS_REUSE")) {
		snprintf(path, sizeof(path), "/proc/%d/maps", p->hpid);
		char *maps = read_file_str(path, NULL);
		bool same = maps && same_vmas(pc->smaps, maps);
		free(maps);
		if (same) {
			FILE *f = fmemopen(pc->smaps, pc->smaps_len, "r");
			if (f) {
				*stale = true;
				return f;
			}
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/smaps", p->hpid);
	FILE *f = fopen(path, "re");
	/* stdio would read 1 KiB at a time (st_blksize of /proc); seq_file
	 * hands out up to a page per read */
	static __thread char vbuf[1 << 16];
	if (f)
		setvbuf(f, vbuf, _IOFBF, sizeof(vbuf));
	return f;
}

static __thread bool deferring;

static char *xmemdup_(const char *s, size_t n, size_t *lenp)
{
	char *c = malloc(n + 1);
	if (!c)
		return NULL;
	memcpy(c, s, n);
	c[n] = 0;
	*lenp = n;
	return c;
}

void mm_dump_deferring(bool on)
{
	deferring = on;
	if (!on) {                 /* the helper thread ends: its scratch too */
		free(pr);
		pr = NULL;
		prcap = 0;
	}
}

/* The dump-wide parts of a VMA: info sizes, the file id of a mapped file,
 * and (shm, after the smaps pass only) the pages of shared memory. */
static int vma_model(struct dump_ctx *d, struct dproc *p, ImgVma *v, bool shm)
{
	if (v->kind == VK_VDSO)
		d->info->vdso_size = v->end - v->start;
	else if (v->kind == VK_VVAR)
		d->info->vvar_size = v->end - v->start;
	else if (v->kind == VK_VCLOCK)
		d->info->vclock_size = v->end - v->start;
	else if (v->kind == VK_FILE) {
		uint32_t fl = (v->flags & MAP_SHARED) && (v->prot & PROT_WRITE) ? O_RDWR : O_RDONLY;
		SETOPT(v, file_id, mapped_file_id(d, v->name, fl));
	} else if (v->kind == VK_SHM && shm)
		return dump_shm_vma(d, p, v);
	return 0;
}

int mm_dump_resolve(struct dump_ctx *d, struct dproc *p)
{
	if (p->exe_path) {
		SETOPT(p->core->mm, exe_file_id, mapped_file_id(d, p->exe_path, O_RDONLY));
		free(p->exe_path);
		p->exe_path = NULL;
	}
	for (size_t i = 0; i < p->core->n_vmas; i++) {
		int err = vma_model(d, p, p->core->vmas[i], true);
		if (err < 0)
			return err;
	}
	return 0;
}

int mm_dump(struct dump_ctx *d, struct dproc *p)
{
	char path[64], line[4096];
	int err = parse_stat_mm(p), pmfd = -1;
	if (err < 0)
		return err;
	snprintf(path, sizeof(path), "/proc/%d/auxv", p->hpid);
	size_t alen;
	char small[2048];
	ssize_t an = proc_read_small(path, small, sizeof(small));   /* ~370 bytes, all in one read */
	char *auxv = an >= 0 ? xmemdup_(small, (size_t)an, &alen) : read_file_str(path, &alen);
	if (auxv) {
		SETOPT(p->core->mm, auxv, ((ProtobufCBinaryData){ alen, (uint8_t *)auxv }));
	}
	snprintf(path, sizeof(path), "/proc/%d/exe", p->hpid);
	char exe[4096];
	if (read_link(path, exe, sizeof(exe)) > 0 && !strstr(exe, " (deleted)")) {
		if (deferring)
			p->exe_path = xstrdup(exe);
		else
			SETOPT(p->core->mm, exe_file_id, mapped_file_id(d, exe, O_RDONLY));
	}

	phase_mark("mm_stat");
	bool stale = false;
	FILE *f = smaps_open(d, p, &stale);
	snprintf(path, sizeof(path), "/proc/%d/smaps", p->hpid);
	if (!f) {
		log_err("dump: pid %u: %s: %s", p->tree->pid, path, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", p->hpid);
	pmfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pmfd < 0) {
		err = -errno;
		fclose(f);
		return err;
	}
	ImgVma *v = NULL;
	uint64_t rss = 0, swap = 0, anon = 0, pend_kb = 0;
	p->cow_ok = d->cow && p->uffd < 0;
	struct pagerun *runs = NULL;
	int nruns = 0, cap = 0, *pend = NULL, npend = 0;
	static bool whole_scan = true;     /* until PAGEMAP_SCAN is found missing */
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e, off, ino;
		char perms[8], dev[16];
		int pos = 0;
		/* a VMA line starts with a (lower-case hex) address, the ~20 field
		 * lines of each VMA with an upper-case key: no sscanf for those */
		bool addr = (line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f');
		if (addr && sscanf(line, "%llx-%llx %7s %llx %15s %llu %n", &s, &e, perms, &off, dev, &ino, &pos) >= 6 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (p->core->n_vmas >= MAX_VMAS) {
				err = -E2BIG;
				break;
			}
			v = PB_PUSH(p->core, vmas, ImgVma, img_vma__init);
			p->vscan = realloc(p->vscan, p->core->n_vmas);
			p->vscan[p->core->n_vmas - 1] = 0;
			rss = swap = anon = 0;
			char *name = line + pos;
			name[strcspn(name, "\n")] = 0;
			v->start = s; v->end = e; v->pgoff = off / PAGE;
			v->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
				  (perms[2] == 'x' ? PROT_EXEC : 0);
			v->flags = perms[3] == 's' ? MAP_SHARED : MAP_PRIVATE;
			v->name = xstrdup(name);
			if (!strcmp(name, "[vdso]")) {
				v->kind = VK_VDSO;
				p->vdso_start = s;
			} else if (!strcmp(name, "[vvar]")) {
				v->kind = VK_VVAR;
			} else if (!strcmp(name, "[vvar_vclock]")) {
				v->kind = VK_VCLOCK;
			} else if (!strcmp(name, "[vsyscall]")) {
				v->kind = VK_VSYSCALL;
			} else if (perms[3] == 's' && (!strncmp(name, "/dev/zero (deleted)", 19) ||
						       !strncmp(name, "/memfd:", 7) || !strncmp(name, "/SYSV", 5))) {
				/* SysV shm: the inode is the segment id; its content is
				 * sysv_shm.c's, restore re-attaches it with shmat */
				v->kind = !strncmp(name, "/SYSV", 5) ? VK_SYSV : VK_SHM;
				SETOPT(v, shm_id, (uint32_t)ino);
			} else if (ino == 0) {
				v->kind = VK_ANON;
			} else {
				if (strstr(name, " (deleted)") || name[0] != '/') {
					log_err("dump: pid %u vma %#llx-%#llx: mapping of '%s' is not supported",
						p->tree->pid, s, e, name);
					err = -ENOTSUP;
					break;
				}
				v->kind = VK_FILE;
			}
			if (!deferring && (err = vma_model(d, p, v, false)) < 0)
				break;
			continue;
		}
		if (v && !strncmp(line, "Rss:", 4))
			rss = strtoull(line + 4, NULL, 10);
		else if (v && !strncmp(line, "Swap:", 5))
			swap = strtoull(line + 5, NULL, 10);
		else if (v && !strncmp(line, "Anonymous:", 10))
			anon = strtoull(line + 10, NULL, 10);
		if (v && !strncmp(line, "VmFlags:", 8)) {
			char *q = line + 8;
			uint32_t madv = 0;
			for (char *t = strtok(q, " \n"); t; t = strtok(NULL, " \n")) {
				/* a fork does not copy these privately, or blocks on a
				 * userfaultfd monitor (UFFD_FEATURE_EVENT_FORK): such a
				 * process is read while frozen (cowsnap.c) */
				if (!strcmp(t, "um") || !strcmp(t, "uw") || !strcmp(t, "ui") ||
				    (v->kind != VK_SHM && (!strcmp(t, "dc") || !strcmp(t, "wf"))))
					p->cow_ok = false;
				if (!strcmp(t, "uw")) p->vscan[p->core->n_vmas - 1] = 2;
				else if (!strcmp(t, "gd")) v->flags |= MAP_GROWSDOWN;
				else if (!strcmp(t, "nr")) v->flags |= MAP_NORESERVE;
				else if (!strcmp(t, "dc")) madv |= MADV_BIT_DONTFORK;
				else if (!strcmp(t, "wf")) madv |= MADV_BIT_WIPE;
				else if (!strcmp(t, "hg")) madv |= MADV_BIT_HUGE;
				else if (!strcmp(t, "nh")) madv |= MADV_BIT_NOHUGE;
				else if (!strcmp(t, "dd") && v->kind != VK_VVAR && v->kind != VK_VCLOCK)
					madv |= MADV_BIT_DONTDUMP;
				else if (!strcmp(t, "ss") || !strcmp(t, "ht") ||
					 ((!strcmp(t, "io") || !strcmp(t, "pf")) && v->kind != VK_VVAR &&
					  v->kind != VK_VCLOCK)) {
					log_err("dump: pid %u vma %#llx (%s): VmFlag '%s' is not supported",
						p->tree->pid, (unsigned long long)v->start, v->name, t);
					err = -ENOTSUP;
				}
			}
			if (madv)
				SETOPT(v, madv, madv);
			if (err < 0)
				break;
			/* the VMA is complete: decide what to save */
			/* no resident or swapped page: nothing to look up (big sparse
			 * reservations would cost a pagemap walk of their whole range) */
			if (stale)
				rss = 1;      /* smaps read before the freeze: look every VMA up */
			/* (only pages of its own can be the parent's: Anonymous, as of
			 * the freeze or, stale, of the look before it — a page missed is
			 * saved for the process, never lost) */
			if (anon && (err = cowshare_vma(d, p, pmfd, v)) < 0)
				break;
			if (d->indexed && v->kind == VK_ANON && (rss || swap)) {
				bool resident = !stale && !swap && rss * 1024 == v->end - v->start;
				err = indexed_vma_runs(d, p, pmfd, v, p->core->n_vmas - 1, resident, &runs, &nruns, &cap);
			} else if (vma_private(v) && (rss || swap) &&
				   !d->indexed && whole_scan) {
				pend = realloc(pend, (size_t)(npend + 1) * sizeof(*pend));
				pend[npend++] = (int)p->core->n_vmas - 1;   /* one walk after the loop */
				pend_kb += anon + swap;
			} else if (vma_private(v) && (rss || swap)) {
				int before = nruns;
				err = v->kind == VK_ANON ? scan_runs(p, pmfd, v, &runs, &nruns, &cap) : -ENOTTY;
				if (err == -ENOTTY)
					err = pagemap_runs(p, pmfd, v, &runs, &nruns, &cap);
				if (nruns > before)
					SETOPT(v, has_pages, 1);
				for (int k = before; d->indexed && k < nruns; k++)   /* all present pages read */
					add_run(&p->present, &p->npresent, &p->npresent_cap, runs[k].addr, runs[k].npages,
						p->tree->pid, v->start);
			}
			else if (v->kind == VK_SHM && !deferring)
				err = dump_shm_vma(d, p, v);
			if (err < 0)
				break;
		}
	}
	fclose(f);
	cowshare_scan_end(p);
	phase_mark("mm_smaps_parse");
	/*
	 * Copy-on-write capture: the page walk (PAGEMAP_SCAN, ~2.5 ms per
	 * 256 MiB of 4 KiB pages here) is left out of the frozen window and done
	 * on the snapshot child, whose page tables are a copy of these at the
	 * fork (mm_cow_runs).  Whether the fork is worth it is judged from
	 * smaps (anonymous + swapped kB of those VMAs), as read frozen.
	 */
	/* (pages shared with the parent are not saved here: cowshare.c) */
	uint64_t shared = cowshare_bytes(p), pend_bytes = pend_kb * 1024 > shared ? pend_kb * 1024 - shared : 0;
	if (err == 0 && npend && !nruns && p->cow_ok && !deferring && pend_bytes >= mm_cow_min_bytes()) {
		close(pmfd);
		p->cow_pend = pend;
		p->ncow_pend = npend;
		p->cow_defer = true;
		return 0;
	}
	if (err == 0 && npend)
		err = pending_runs(p, pmfd, pend, npend, &runs, &nruns, &cap, &whole_scan);
	free(pend);
	close(pmfd);
	if (err < 0) {
		free(runs);
		return err;
	}
	cowshare_cut(p, &runs, &nruns);
	p->runs = runs;
	p->nruns = nruns;
	/* copy-on-write capture pays a fork (page tables) while frozen: worth it
	 * only for big processes; small ones are copied right away */
	size_t bytes = 0;
	for (int i = 0; i < nruns; i++)
		bytes += (size_t)runs[i].npages * PAGE;
	if (p->cow_ok && bytes >= mm_cow_min_bytes()) {
		p->cow_defer = true;
		return 0;
	}
	if (d->late_pages) {
		p->late = true;        /* read by the writer (mm_late_read) */
		return 0;
	}
	return mm_read_pages(p, p->hpid);
}

/* Smallest page volume captured copy-on-write (ZAPC_ENGINE_COW_MIN_KB, tests). */
size_t mm_cow_min_bytes(void)
{
	const char *e = getenv("ZAPC_ENGINE_COW_MIN_KB");
	return e ? (size_t)strtoull(e, NULL, 10) << 10 : 16u << 20;
}

int mm_cow_runs(struct dproc *p, pid_t pid)
{
	char path[64];
	int err = 0, cap = 0;
	bool whole_scan = true;
	if (!p->ncow_pend)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	int pmfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pmfd < 0)
		err = -errno;
	else
		err = pending_runs(p, pmfd, p->cow_pend, p->ncow_pend, &p->runs, &p->nruns, &cap, &whole_scan);
	if (pmfd >= 0)
		close(pmfd);
	if (err == 0)
		cowshare_cut(p, &p->runs, &p->nruns);
	if (err < 0)
		log_err("dump: pid %u: pages of the snapshot (pid %d): %s", p->tree->pid, pid, strerror(-err));
	free(p->cow_pend);
	p->cow_pend = NULL;
	p->ncow_pend = 0;
	return err;
}

int mm_read_pages(struct dproc *p, pid_t pid)
{
	struct pagerun *runs = p->runs;
	int nruns = p->nruns, err;
	struct timespec t0, t1;
	phase_mark("mm_smaps");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = read_runs(pid, runs, nruns, &p->pagebuf, &p->pagebuf_len, p->core);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	phase_mark("mm_read");
	double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (getenv("ZAPC_ENGINE_TIMING") && ms > 5)
		fprintf(stderr, "TIMING dump_mm_read_ms %.3f (pid %u, %d runs%s)\n", ms, p->tree->pid, nruns,
			pid != p->hpid ? ", from the snapshot child" : "");
	merge_preruns(p);
	if (err < 0)
		log_err("dump: pid %u: reading memory: %s", p->tree->pid, strerror(-err));
	return err;
}

/* ------------------------------------------------------------------ restore */

static bool overlaps(uint64_t s, uint64_t e, const struct range *r, int n)
{
	for (int i = 0; i < n; i++)
		if (s < r[i].e && r[i].s < e)
			return true;
	return false;
}

/* A free range of len bytes that touches none of the given ranges. */
uint64_t find_gap(uint64_t len, const struct range *r, int n)
{
	for (uint64_t a = 0x3f0000000000ull; a > 0x100000000ull; a -= 0x10000000000ull)
		if (!overlaps(a, a + len, r, n))
			return a;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->s < y->s ? -1 : x->s > y->s;
}

/*
 * The memory layout is replaced by one batch of injected calls (inject.c:
 * one ptrace round trip for all of them), in this order:
 *   unregister the engine's rseq (if the task still has it);
 *   unmap everything but the scratch pages and the vdso/vvar — the task
 *   normally did it itself before it reported ready (restore.c park), then
 *   these find nothing;
 *   move [vvar], [vvar_vclock], [vdso] to the image's addresses;
 *   map every VMA of the image.
 * The batch loop runs in the scratch page, so no call needs the vdso where
 * it is (or was).  Each op records what it is and the result it must give.
 */
struct pre_ops {
	struct inj_op *ops;
	const char **what;
	uint64_t *want;          /* expected return value */
	ImgVma **vma;            /* for mmap/shmat ops */
	int n;
	int started;             /* ops in the round running in the background */
};

static void pre_add(struct pre_ops *o, const char *what, uint64_t want, ImgVma *v, struct inj_op op)
{
	o->ops[o->n] = op;
	o->what[o->n] = what;
	o->want[o->n] = want;
	o->vma[o->n++] = v;
}

static bool overlap2(uint64_t s1, uint64_t l1, uint64_t s2, uint64_t l2)
{
	return l1 && l2 && s1 < s2 + l2 && s2 < s1 + l1;
}

/*
 * The engine's memory in a task forked from it, as ranges to munmap: every
 * gap between the areas a task keeps, its scratch pages, [vvar],
 * [vvar_vclock] and [vdso] (moved to the image's addresses later); munmap
 * of a range with holes is fine.  Used by the parked task itself
 * (restore.c park) and, if it could not, by the layout batch here.
 * Returns the number of ranges written to gaps (at most 5).
 */
int engine_memory_gaps(const struct rst_ctx *r, struct range gaps[5])
{
	struct range keep[4] = {
		{ r->scratch_addr, r->scratch_addr + 4 * PAGE },
		{ r->eng_vvar, r->eng_vvar + r->eng_vvar_len },
		{ r->eng_vclock, r->eng_vclock + r->eng_vclock_len },
		{ r->eng_vdso, r->eng_vdso + r->eng_vdso_len },
	};
	qsort(keep, 4, sizeof(keep[0]), cmp_range);
	int n = 0;
	uint64_t from = PAGE * 16;       /* below mmap_min_addr nothing is mapped */
	for (int i = 0; i <= 4; i++) {
		uint64_t to = i < 4 ? keep[i].s : MAX_ADDR - PAGE;
		if (i < 4 && keep[i].s == keep[i].e)
			continue;        /* no [vvar_vclock] on this kernel */
		if (to > from)
			gaps[n++] = (struct range){ from, to };
		if (i < 4)
			from = keep[i].e;
	}
	return n;
}

static void unmap_ops(struct rst_ctx *r, struct pre_ops *o)
{
	struct range gaps[5];
	int n = engine_memory_gaps(r, gaps);
	for (int i = 0; i < n; i++)
		pre_add(o, "unmap engine memory", 0, NULL,
			(struct inj_op){ SYS_munmap, { gaps[i].s, gaps[i].e - gaps[i].s }, 0 });
}

static void mremap_op(struct pre_ops *o, uint64_t from, uint64_t len, uint64_t to)
{
	if (from == to || !len)
		return;
	pre_add(o, "move vdso", to, NULL,
		(struct inj_op){ SYS_mremap, { from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to, 0 }, 0 });
}

/*
 * Where the image has [vvar], [vvar_vclock] (0 if none) and [vdso], and
 * their lengths; -ENOTSUP (not logged) if they are not this kernel's.
 */
int mm_vdso_targets(struct rst_ctx *r, struct rproc *p, uint64_t dst[3], uint64_t len[3])
{
	ImgVma *vd = NULL, *vv = NULL, *vc = NULL;
	for (size_t i = 0; i < p->core->n_vmas; i++) {
		ImgVma *v = p->core->vmas[i];
		if (v->kind == VK_VDSO) vd = v;
		else if (v->kind == VK_VVAR) vv = v;
		else if (v->kind == VK_VCLOCK) vc = v;
	}
	uint64_t vdso_len = r->info->vdso_size, vvar_len = r->info->vvar_size, vc_len = r->info->vclock_size;
	/* same kernel, same vdso: check the sizes this kernel gives the task
	 * (ours: the task is a fork of this process) */
	if (!vd || !vv || r->eng_vdso_len != vdso_len || r->eng_vvar_len != vvar_len || r->eng_vclock_len != vc_len ||
	    vd->end - vd->start != vdso_len || vv->end - vv->start != vvar_len ||
	    (vc && vc->end - vc->start != vc_len) || (!vc) != (vc_len == 0))
		return -ENOTSUP;
	dst[0] = vv->start, dst[1] = vc ? vc->start : 0, dst[2] = vd->start;
	len[0] = vvar_len, len[1] = vc_len, len[2] = vdso_len;
	return 0;
}

static int move_vdso_ops(struct rst_ctx *r, struct rproc *p, struct pre_ops *o)
{
	uint64_t dst[3], len[3];
	if (mm_vdso_targets(r, p, dst, len) < 0) {
		log_err("restore: pid %u: vdso layout of the image (%s) differs from this kernel's",
			p->tree->pid, r->info->kernel_release);
		return -ENOTSUP;
	}
	uint64_t vdso_len = len[2], vvar_len = len[0], vc_len = len[1];
	uint64_t cur[3] = { r->eng_vvar, vc_len ? r->eng_vclock : 0, r->eng_vdso };
	/* straight to the image's addresses when no target overlaps a part
	 * where it is now (the usual case: both are random) */
	bool direct = true;
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++)
			if (overlap2(dst[i], len[i], cur[k], len[k]))
				direct = false;
	if (!direct) {
		/* two steps through a free range so no move lands on a part not moved yet */
		struct range *avoid = xcalloc(p->core->n_vmas + 8, sizeof(*avoid));
		int n = 0;
		for (size_t i = 0; i < p->core->n_vmas; i++)
			avoid[n++] = (struct range){ p->core->vmas[i]->start, p->core->vmas[i]->end };
		avoid[n++] = (struct range){ r->scratch_addr, r->scratch_addr + 4 * PAGE };
		for (int k = 0; k < 3; k++)
			if (len[k])
				avoid[n++] = (struct range){ cur[k], cur[k] + len[k] };
		uint64_t tmp = find_gap(vdso_len + vvar_len + vc_len + 3 * PAGE, avoid, n);
		free(avoid);
		if (!tmp)
			return -ENOMEM;
		uint64_t t[3] = { tmp, tmp + vvar_len + PAGE, tmp + vvar_len + PAGE + vc_len + PAGE };
		for (int k = 0; k < 3; k++)
			mremap_op(o, cur[k], len[k], t[k]);
		for (int k = 0; k < 3; k++)
			cur[k] = t[k];
	}
	for (int k = 0; k < 3; k++)
		mremap_op(o, cur[k], len[k], dst[k]);
	return 0;
}

/* index of the VMA holding [addr, addr+len), or -1 */
static long vma_of(struct rproc *p, uint64_t addr, uint64_t len)
{
	for (size_t i = 0; i < p->core->n_vmas; i++) {
		ImgVma *v = p->core->vmas[i];
		if (addr >= v->start && addr + len <= v->end && addr + len >= addr)
			return (long)i;
	}
	return -1;
}

/*
 * Private anonymous VMAs that get big page records are filled with
 * UFFDIO_COPY (pagefill.c): a userfaultfd of the task, taken at the first
 * such record (a process with little memory pays nothing for it), each
 * such VMA registered in missing mode while it is filled and unregistered
 * right after, so the VMAs keep their flags and nothing of it outlives the
 * restore.  Nothing may write into a registered range but the uffd (a
 * fault there would wait for us): the queue is drained before a VMA is
 * registered, later writes into it go through the uffd, and the only
 * other writes of this phase go to the scratch page.  Without userfaultfd,
 * or for a VMA the kernel will not register, pages go in with
 * process_vm_writev.
 */
#define UFFD_MIN_PAGES 256u
#define JOB_MIN (GATHER_MAX + PAGE)   /* page records read by both cores (pagefill_queue_job) */

struct fill_uffd {
	int fd;
	bool tried;
	bool *reg;      /* per VMA */
};

/*
 * A private VMA that ends readable but not writable and has pages in the
 * image (RELRO, say): mapped writable as it once was (so the kernel accounts
 * it, VM_ACCOUNT, as in the original) and given its final protection in the
 * layout batch, before it has pages; its pages then go in through
 * /proc/PID/mem, whose writes may COW into read-only private mappings
 * (FOLL_FORCE; we are the tracer).  The mprotect after the pages cost a walk
 * and a TLB flush of the process per such VMA (~3 a process).
 */
static bool ro_early(const ImgVma *v)
{
	return vma_private(v) && v->has_pages &&
	       (v->prot & PROT_READ) && !(v->prot & PROT_WRITE);
}

static bool fill_uffd_use(struct rproc *p, struct fill_uffd *u, long vi, uint32_t npages)
{
	ImgVma *v = p->core->vmas[vi];
	if (u->reg[vi])
		return true;
	if (v->kind != VK_ANON || npages < UFFD_MIN_PAGES || ro_early(v) || !p->seized)
		return false;     /* (a task not seized cannot be given a userfaultfd) */
	if (u->fd < 0) {
		if (u->tried)
			return false;
		u->tried = true;
		if (uffd_take(&p->inj, p->hpid, 0, &u->fd) < 0) {
			u->fd = -1;
			return false;
		}
	}
	if (pagefill_end(NULL) < 0)     /* a write error: reported at the end */
		return false;
	struct uffdio_register rg = { .range = { v->start, v->end - v->start }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	u->reg[vi] = ioctl(u->fd, UFFDIO_REGISTER, &rg) == 0;
	return u->reg[vi];
}

static int fill_uffd_close(struct rproc *p, struct fill_uffd *u)
{
	int err = 0;
	for (size_t i = 0; u->fd >= 0 && i < p->core->n_vmas; i++) {
		ImgVma *v = p->core->vmas[i];
		struct uffdio_range rg = { v->start, v->end - v->start };
		if (u->reg[i] && ioctl(u->fd, UFFDIO_UNREGISTER, &rg) < 0 && !err) {
			err = -errno;
			log_err("restore: pid %u: unregister vma %#llx from the userfaultfd: %s", p->tree->pid,
				(unsigned long long)v->start, strerror(errno));
		}
	}
	if (u->fd >= 0)
		close(u->fd);
	free(u->reg);
	return err;
}

int mm_check_vmas(struct rproc *p)
{
	uint64_t prev_end = 0;
	for (size_t i = 0; i < p->core->n_vmas; i++) {
		ImgVma *v = p->core->vmas[i];
		if (v->start >= v->end || (v->start | v->end) % PAGE || v->start < prev_end ||
		    (v->end > MAX_ADDR && v->kind != VK_VSYSCALL) || v->pgoff > (1ull << 40)) {
			log_err("restore: pid %u: bad vma %#llx-%#llx in image", p->tree->pid,
				(unsigned long long)v->start, (unsigned long long)v->end);
			return -EINVAL;
		}
		prev_end = v->end;
	}
	return 0;
}

static void pre_free(struct rproc *p)
{
	struct pre_ops *o = p->mm_pre;
	if (!o)
		return;
	free(o->ops);
	free(o->what);
	free(o->want);
	free(o->vma);
	free(o);
	p->mm_pre = NULL;
}

/*
 * The calls that map every VMA of p's image at its address, in order (the
 * vdso already moved): emit(ctx, what, the result it must give, the VMA,
 * the call) for each.  Used by the layout batch below and by the restore
 * seed's plan (restore_seed.c), which runs them in the task itself.
 */
int mm_layout_ops(struct rst_ctx *r, struct rproc *p, const bool *skip, mm_emit_fn *emit, void *ctx)
{
	for (size_t i = 0; i < p->core->n_vmas; i++) {
		ImgVma *v = p->core->vmas[i];
		if (skip && skip[i])
			continue;
		uint64_t len = v->end - v->start, prot = v->prot, fl = MAP_FIXED;
		long fd = -1;
		switch (v->kind) {
		case VK_ANON:
			fl |= MAP_PRIVATE | MAP_ANONYMOUS;
			/* write access only where pages will be written: a private
			 * mapping made writable is accounted (VM_ACCOUNT) for good, and
			 * that decides which neighbours the kernel merges — keep the
			 * layout the process had */
			if (v->has_pages)
				prot |= PROT_WRITE;
			break;
		case VK_FILE:
			fd = v->has_file_id ? inv_fd_for_file(r, v->file_id) : -1;
			if (fd < 0) {
				log_err("restore: pid %u vma %#llx: file %u missing in image", p->tree->pid,
					(unsigned long long)v->start, v->file_id);
				return -EINVAL;
			}
			fl |= v->flags & MAP_SHARED ? MAP_SHARED : MAP_PRIVATE;
			if (!(v->flags & MAP_SHARED) && v->has_pages)
				prot |= PROT_WRITE;
			break;
		case VK_SHM:
			fd = v->has_shm_id ? inv_fd_for_shm(r, v->shm_id) : -1;
			if (fd < 0) {
				log_err("restore: pid %u vma %#llx: shared memory %u missing in image",
					p->tree->pid, (unsigned long long)v->start, v->shm_id);
				return -EINVAL;
			}
			fl |= MAP_SHARED;
			break;
		case VK_SYSV:   /* shmat(id, start, flags) returns start, like mmap */
			emit(ctx, "shmat", v->start, v, &(struct inj_op){ SYS_shmat, { v->shm_id, v->start,
				(v->prot & PROT_WRITE ? 0 : SHM_RDONLY) | (v->prot & PROT_EXEC ? SHM_EXEC : 0), 0, 0, 0 }, 0 });
			continue;
		default:
			continue;
		}
		fl |= v->flags & (MAP_GROWSDOWN | MAP_NORESERVE);
		emit(ctx, "mmap", v->start, v,
		     &(struct inj_op){ SYS_mmap, { v->start, len, prot, fl, (uint64_t)fd, v->pgoff * PAGE }, 0 });
		if (ro_early(v))
			emit(ctx, "mprotect", 0, v, &(struct inj_op){ SYS_mprotect, { v->start, len, v->prot }, 0 });
	}
	return 0;
}

static void pre_emit(void *ctx, const char *what, uint64_t want, ImgVma *v, const struct inj_op *op)
{
	pre_add(ctx, what, want, v, *op);
}

/* the image's layout is in place: injected calls use its vdso */
static int map_done(struct rproc *p)
{
	p->vdso_now = 0;
	for (size_t i = 0; i < p->core->n_vmas; i++)
		if (p->core->vmas[i]->kind == VK_VDSO)
			p->vdso_now = p->core->vmas[i]->start;
	p->inj.syscall_ip = p->vdso_now + (uint64_t)vdso_syscall_offset();
	p->mm_mapped = true;
	return 0;
}

/*
 * The batch that replaces the memory layout, in two halves so that restore.c
 * can start it in the next process while it writes this one's pages: the
 * task runs its munmaps/mremaps/mmaps on the other core meanwhile.  The
 * first round (INJ_BATCH_MAX calls) runs in the background; the rest, if
 * any, in mm_restore_map_finish.
 */
int mm_restore_map_start(struct rst_ctx *r, struct rproc *p)
{
	int err;
	if ((err = mm_check_vmas(p)) < 0)
		return err;
	if (p->seed_laid)       /* the seed ran these calls in the task itself */
		return map_done(p);
	struct pre_ops *o = p->mm_pre = xcalloc(1, sizeof(*o));
	size_t cap = 2 * p->core->n_vmas + 16;     /* mmap (+ mprotect: ro_early) each */
	o->ops = xcalloc(cap, sizeof(*o->ops));
	o->what = xcalloc(cap, sizeof(*o->what));
	o->want = xcalloc(cap, sizeof(*o->want));
	o->vma = xcalloc(cap, sizeof(*o->vma));
	/* the engine code's glibc registered rseq in this task (if the task
	 * could not drop it itself): first.  A fork of the seed (no libc)
	 * never has one. */
	struct __ptrace_rseq_configuration rc = { 0 };
	if (r->seed_fd < 0 && ptrace(PTRACE_GET_RSEQ_CONFIGURATION, p->hpid, sizeof(rc), &rc) > 0 &&
	    rc.rseq_abi_pointer)
		pre_add(o, "unregister engine rseq", 0, NULL, (struct inj_op){ SYS_rseq,
			{ rc.rseq_abi_pointer, rc.rseq_abi_size, 1 /* RSEQ_FLAG_UNREGISTER */, rc.signature }, 0 });
	unmap_ops(r, o);
	if ((err = move_vdso_ops(r, p, o)) < 0)
		goto out_pre;
	if ((err = mm_layout_ops(r, p, NULL, pre_emit, o)) < 0)
		goto out_pre;
	o->started = o->n < INJ_BATCH_MAX ? o->n : INJ_BATCH_MAX;
	err = inj_batch_with_start(&p->inj, r->scratch_addr + 3 * PAGE, o->ops, o->started, 0, NULL, 0);
	if (err == 0)
		return 0;
	o->started = 0;
out_pre:
	pre_free(p);
	return err;
}

int mm_restore_map_finish(struct rst_ctx *r, struct rproc *p)
{
	struct pre_ops *o = p->mm_pre;
	uint64_t area = r->scratch_addr + 3 * PAGE;
	int err;
	if (!o)
		return p->mm_mapped ? 0 : -EINVAL;
	err = inj_batch_finish(&p->inj, area, o->ops, o->started);
	if (!err && o->n > o->started)
		err = inj_batch_with(&p->inj, area, o->ops + o->started, o->n - o->started, 0, NULL, 0);
	for (int i = 0; i < o->n && !err; i++) {
		ImgVma *v = o->vma[i];
		long ret = (long)o->ops[i].ret;
		if (ret == (long)o->want[i])
			continue;
		if (v)
			log_err("restore: pid %u: map vma %#llx-%#llx (%s): %s", p->tree->pid,
				(unsigned long long)v->start, (unsigned long long)v->end, v->name ? v->name : "",
				ret < 0 ? strerror((int)-ret) : "wrong address");
		else
			log_err("restore: pid %u: %s: %s", p->tree->pid, o->what[i],
				ret < 0 ? strerror((int)-ret) : "wrong address");
		err = ret < 0 ? (int)ret : -EFAULT;
	}
	if (!err)
		map_done(p);
	pre_free(p);
	return err;
}

/*
 * Small page records (a process of a few dozen pages has a handful: stack,
 * data, heap...) are gathered in one slot and written with a single
 * process_vm_writev (one iovec per record), by the main thread: handing
 * each to the writer thread cost a wakeup per record, more than the copy.
 */
#define GATHER_MAX (64u << 10)     /* bigger records: file jobs, or the ring (pipes) */
#define GATHER_IOV 256

struct gather {
	uint8_t *buf;
	size_t cap, used;
	struct iovec rv[GATHER_IOV];
	int n;
};

static int gather_flush(struct rproc *p, struct gather *g)
{
	int err = 0;
	if (!g->n)
		return 0;
	struct iovec lv = { g->buf, g->used };
	if (process_vm_writev(p->hpid, &lv, 1, g->rv, (unsigned long)g->n, 0) != (ssize_t)g->used) {
		size_t off = 0;          /* a short write: again one by one */
		for (int i = 0; i < g->n && !err; i++) {
			err = mem_write(p->hpid, (uint64_t)g->rv[i].iov_base, g->buf + off, g->rv[i].iov_len);
			if (err < 0)
				log_err("restore: pid %u: write pages at %#llx: %s", p->tree->pid,
					(unsigned long long)(uintptr_t)g->rv[i].iov_base, strerror(-err));
			off += g->rv[i].iov_len;
		}
	}
	g->n = 0;
	g->used = 0;
	return err;
}

/* Page-writing time of the processes restored so far (ZAPC_ENGINE_TIMING):
 * one summary line for the whole pod (mm_restore_pages_timing), not a line
 * per process. */
static struct { double total, max; uint32_t max_pid, n; } PT;

static void pages_timing_add(double ms, uint32_t pid)
{
	PT.total += ms;
	PT.n++;
	if (ms > PT.max) {
		PT.max = ms;
		PT.max_pid = pid;
	}
}

void mm_restore_pages_timing(void)
{
	if (getenv("ZAPC_ENGINE_TIMING") && PT.n)
		fprintf(stderr, "TIMING restore_pages_ms %.3f (%u processes; longest %.3f, pid %u)\n", PT.total, PT.n,
			PT.max, PT.max_pid);
}

/* A record of a ro_early VMA: read in pieces into the main thread's job
 * buffer (free between pagefill calls; not the gather slot, which keeps
 * what it holds for the process's one process_vm_writev) and written
 * through /proc/PID/mem. */
static int write_ro(struct rproc *p, struct image_reader *in, int *memfd, uint64_t addr, uint64_t dlen)
{
	int err;
	if (proc_mem_fd(p->hpid, memfd, O_RDWR) < 0) {
		err = -errno;
		log_err("restore: pid %u: /proc/%d/mem: %s", p->tree->pid, p->hpid, strerror(errno));
		return err;
	}
	size_t cap;
	uint8_t *buf = pagefill_buf(&cap);
	for (uint64_t off = 0; off < dlen;) {
		size_t n = dlen - off < cap ? (size_t)(dlen - off) : cap;
		if ((err = image_read(in, buf, n)) < 0) {
			log_err("%s", image_reader_error(in));
			return err;
		}
		for (size_t w = 0; w < n;) {
			ssize_t k = pwrite(*memfd, buf + w, n - w, (off_t)(addr + off + w));
			if (k <= 0) {
				err = k < 0 ? -errno : -EFAULT;
				log_err("restore: pid %u: write pages at %#llx: %s", p->tree->pid,
					(unsigned long long)(addr + off + w), strerror(-err));
				return err;
			}
			w += (size_t)k;
		}
		off += n;
	}
	return 0;
}

int mm_restore_pages(struct rst_ctx *r, struct rproc *p, struct image_reader *in, mm_next_fn *next)
{
	int err;
	/* the layout: restore.c has usually started (and finished) it already */
	if (!p->mm_mapped && ((!p->mm_pre && (err = mm_restore_map_start(r, p)) < 0) ||
			      (err = mm_restore_map_finish(r, p)) < 0))
		return err;
	/* pages: read in slot-sized pieces, written by both cores (pagefill.c) */
	uint32_t type, len;
	struct timespec tp0, tp1;
	clock_gettime(CLOCK_MONOTONIC, &tp0);
	if ((err = pagefill_begin()) < 0) {
		log_err("restore: pid %u: page buffers: %s", p->tree->pid, strerror(-err));
		return err;
	}
	/* the pages it shares with its parent first: nothing is registered
	 * with a userfaultfd yet */
	if ((err = cowshare_copy(r, p)) < 0)
		return err;
	struct fill_uffd uf = { .fd = -1, .reg = xcalloc(p->core->n_vmas + 1, sizeof(bool)) };
	int memfd = -1;     /* /proc/PID/mem: ro_early VMAs */
	static struct gather g;     /* (static: 4 KiB of iovecs) */
	g.buf = NULL;
	g.n = 0;
	g.used = 0;
	while ((err = next(r, &type, &len)) > 0 && type == REC_PAGES) {
		struct page_prefix pp;
		if (len < sizeof(pp) || (err = image_read(in, &pp, sizeof(pp))) < 0) {
			log_err("restore: pid %u: bad page record", p->tree->pid);
			err = err < 0 ? err : -EPROTO;
			break;
		}
		uint64_t dlen = (uint64_t)pp.npages * PAGE;
		long vi = vma_of(p, pp.addr, dlen);
		ImgVma *v = vi >= 0 ? p->core->vmas[vi] : NULL;
		if (pp.owner != p->tree->pid || dlen + sizeof(pp) != len || !pp.npages || !v || !v->has_pages ||
		    pp.npages > PAGES_PER_RECORD || (v->kind != VK_ANON && v->kind != VK_FILE)) {
			if ((err = image_skip(in)) < 0) {
				log_err("%s", image_reader_error(in));
				break;
			}
			log_err("restore: pid %u: page record %#llx+%u pages does not fit the process's memory",
				p->tree->pid, (unsigned long long)pp.addr, pp.npages);
			err = -EPROTO;
			break;
		}
		if (ro_early(v)) {
			if ((err = write_ro(p, in, &memfd, pp.addr, dlen)) < 0)
				break;
			continue;
		}
		/* what is gathered goes in before a VMA may be registered with
		 * the userfaultfd: a write into a registered range would wait for
		 * us (a small record of a VMA whose later big one registers it) */
		if ((dlen > GATHER_MAX || (v->kind == VK_ANON && pp.npages >= UFFD_MIN_PAGES) || uf.fd >= 0) &&
		    (err = gather_flush(p, &g)) < 0)
			break;
		int uffd = fill_uffd_use(p, &uf, vi, pp.npages) ? uf.fd : -1;
		if (uffd < 0 && dlen <= GATHER_MAX) {
			if (!g.buf)
				g.buf = pagefill_gather_buf(&g.cap);
			if ((g.used + dlen > g.cap || g.n == GATHER_IOV) && (err = gather_flush(p, &g)) < 0)
				break;
			if ((err = image_read(in, g.buf + g.used, dlen)) < 0) {
				log_err("%s", image_reader_error(in));
				break;
			}
			g.rv[g.n++] = (struct iovec){ (void *)(uintptr_t)pp.addr, dlen };
			g.used += dlen;
			continue;
		}
		/* a big record of an image file: read by both cores (pagefill.c) */
		struct pagefill_job job = { .uffd = uffd, .pid = p->hpid, .addr = pp.addr };
		if (dlen >= JOB_MIN && (err = image_read_deferred(in, &job.data)) != -ESPIPE) {
			if (err < 0) {
				log_err("%s", image_reader_error(in));
				break;
			}
			pagefill_queue_job(&job);
			continue;
		}
		err = 0;
		if (dlen < JOB_MIN) {           /* small: read and write it now */
			size_t cap;
			uint8_t *buf = pagefill_buf(&cap);
			for (uint64_t off = 0; off < dlen && err >= 0; off += cap) {
				size_t n = dlen - off < cap ? (size_t)(dlen - off) : cap;
				if ((err = image_read(in, buf, n)) < 0) {
					log_err("%s", image_reader_error(in));
					break;
				}
				if ((err = pagefill_write(uffd, p->hpid, pp.addr + off, buf, n)) < 0)
					log_err("restore: pid %u: write pages at %#llx: %s", p->tree->pid,
						(unsigned long long)(pp.addr + off), strerror(-err));
			}
			if (err < 0)
				break;
			continue;
		}
		for (uint64_t off = 0; off < dlen && err >= 0;) {
			size_t cap;
			uint8_t *slot = pagefill_slot(&cap);
			if (!slot) {
				err = -ENOMEM;
				log_err("restore: pid %u: page buffers: %s", p->tree->pid, strerror(-err));
				break;
			}
			size_t n = dlen - off < cap ? (size_t)(dlen - off) : cap;
			if ((err = image_read(in, slot, n)) < 0) {
				pagefill_unfill(slot);
				log_err("%s", image_reader_error(in));
				break;
			}
			err = pagefill_queue(slot, uffd, p->hpid, pp.addr + off, n);
			off += n;
		}
		if (err < 0)
			break;
	}
	if (memfd >= 0)
		close(memfd);
	if (g.buf) {
		int gerr = err < 0 ? 0 : gather_flush(p, &g);
		if (gerr < 0)
			err = gerr;
	}
	uint64_t werr_addr = 0;
	int werr = pagefill_end(&werr_addr), uerr = fill_uffd_close(p, &uf);
	clock_gettime(CLOCK_MONOTONIC, &tp1);
	pages_timing_add((tp1.tv_sec - tp0.tv_sec) * 1e3 + (tp1.tv_nsec - tp0.tv_nsec) / 1e6, p->tree->pid);
	if (werr < 0 && err >= 0) {     /* (an error of the loop is logged already) */
		if (*pagefill_error())
			log_err("%s", pagefill_error());
		else
			log_err("restore: pid %u: write pages at %#llx: %s", p->tree->pid,
				(unsigned long long)werr_addr, strerror(-werr));
		return werr;
	}
	if (err < 0 || (err = uerr) < 0)
		return err;
	p->pages_done = true;
	return 0;
}

int mm_restore_late(struct rst_ctx *r, struct rproc *p, struct image_reader *in, mm_next_fn *next)
{
	int err;
	if (!p->pages_done && (err = mm_restore_pages(r, p, in, next)) < 0)
		return err;
	/* final protections and madvise state, then the mm layout: queued with
	 * the process's other late calls, one batch (rqueue.c) */
	for (size_t i = 0; i < p->core->n_vmas; i++) {
		ImgVma *v = p->core->vmas[i];
		if (vma_private(v) &&
		    v->has_pages && !(v->prot & PROT_WRITE) && !ro_early(v))
			rq_add(p, "restore: mprotect", 0, SYS_mprotect, v->start, v->end - v->start, v->prot, 0, 0, 0);
		if (v->kind == VK_SYSV && !(v->prot & PROT_READ))   /* shmat always gives read */
			rq_add(p, "restore: mprotect", 0, SYS_mprotect, v->start, v->end - v->start, v->prot, 0, 0, 0);
		if (v->has_madv) {
			static const int adv[5] = { MADV_DONTFORK, MADV_WIPEONFORK, MADV_DONTDUMP, MADV_HUGEPAGE,
						    MADV_NOHUGEPAGE };
			for (int b = 0; b < 5; b++)
				if (v->madv & (1u << b))
					rq_add(p, "restore: madvise", 0, SYS_madvise, v->start, v->end - v->start,
					       (uint64_t)adv[b], 0, 0, 0);
		}
	}
	/* mm layout, auxv, exe */
	ImgMm *mm = p->core->mm;
	struct prctl_mm_map map = {
		.start_code = mm->start_code, .end_code = mm->end_code, .start_data = mm->start_data,
		.end_data = mm->end_data, .start_brk = mm->start_brk, .brk = mm->brk,
		.start_stack = mm->start_stack, .arg_start = mm->arg_start, .arg_end = mm->arg_end,
		.env_start = mm->env_start, .env_end = mm->env_end, .exe_fd = (uint32_t)-1,
	};
	if (mm->has_auxv && mm->auxv.len && mm->auxv.len <= 2 * PAGE && !(mm->auxv.len % 8)) {
		uint64_t at = rq_data(r, p, mm->auxv.data, mm->auxv.len);
		if (!at)
			return -E2BIG;
		map.auxv = (__u64 *)at;
		map.auxv_size = (uint32_t)mm->auxv.len;
	}
	if (mm->has_exe_file_id) {
		int fd = inv_fd_for_file(r, mm->exe_file_id);
		if (fd >= 0)
			map.exe_fd = (uint32_t)fd;
	}
	uint64_t at = rq_data(r, p, &map, sizeof(map));
	if (!at)
		return -E2BIG;
	rq_add(p, "restore: PR_SET_MM_MAP", 0, SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, at, sizeof(map), 0, 0);
	return 0;
}
