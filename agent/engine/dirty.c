/*
 * dirty.c — which pages a process wrote since the last checkpoint, on kernels
 * without soft-dirty (research/probe-netstate.md §6 G).
 *
 * Arm (frozen, after injection is ready): inject userfaultfd(O_CLOEXEC|
 * O_NONBLOCK) into the process, take a copy with pidfd_getfd, close the
 * target's fd (the application never sees it), UFFDIO_API with WP_ASYNC,
 * then UFFDIO_REGISTER(MODE_WP) + UFFDIO_WRITEPROTECT every writable private
 * anonymous VMA.  In async mode a write to a protected page never blocks: the
 * kernel just clears the pte's uffd-wp bit.
 *
 * Scan (next checkpoint, frozen): PAGEMAP_SCAN on /proc/PID/pagemap with
 * PAGE_IS_WRITTEN and PM_SCAN_WP_MATCHING returns the written pages and
 * write-protects them again in the same walk.  A VMA without the "uw"
 * VmFlag (new since the last checkpoint, or recreated) is not tracked: all
 * its pages count as dirty.
 *
 * The registration lives as long as the uffd, and the engine runs once per
 * checkpoint: after a successful snapshot the engine forks a small keeper
 * process that holds the uffd copies (and nothing else) and hands them to
 * the next dump over an abstract unix socket named after the pod's init
 * (host pid + start time), root peers only.  The keeper exits on handover,
 * when the pod's init exits, or after a day.  Tracking is used only if the
 * keeper armed it at the very image the new one names as its parent;
 * otherwise every page is read and dedupe by hash keeps the image small.
 *
 * Not used: WP_UNPOPULATED (it would build page tables for huge sparse
 * reservations); a never-populated page that gets written gets a fresh pte
 * without the uffd-wp bit, which PAGEMAP_SCAN reports as written anyway.
 * Soft-dirty (/proc/PID/clear_refs "4" + pagemap bit 55) is not on this
 * kernel (probe §6 H) and is not implemented.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "agent/engine/engine.h"
#include "agent/engine/uffd.h"
#include "lib/log.h"

/* Debian's linux-libc-dev is 6.1: the 6.7 PAGEMAP_SCAN ABI by hand. */
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
struct pm_scan_arg_ {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct page_region_ {
	uint64_t start, end, categories;
};
#define PAGEMAP_SCAN_ _IOWR('f', 16, struct pm_scan_arg_)
#define PM_SCAN_WP_MATCHING_   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC_ (1 << 1)
#define PAGE_IS_WRITTEN_ (1 << 1)
#define PAGE_IS_FILE_    (1 << 2)
#define PAGE_IS_PRESENT_ (1 << 3)
#define PAGE_IS_SWAPPED_ (1 << 4)

#define KEEP_MAX 250          /* fds in one SCM_RIGHTS message (kernel max 253) */
#define KEEP_IDLE_MS (24 * 3600 * 1000)

struct keep_hdr {
	uint64_t stream_id;
	uint32_t n;
	uint32_t pad;
};
struct keep_ent {
	int32_t hpid;
	uint32_t pad;
	uint64_t start;
};

static uint64_t start_time(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	char *s = read_file_str(path, NULL), *q = s ? strrchr(s, ')') : NULL;
	uint64_t v = 0;
	/* field 22 (starttime); fields after ')' start at 3 */
	for (int f = 3; q && f <= 22; f++)
		if ((q = strchr(q + 1, ' ')))
			v = strtoull(q + 1, NULL, 10);
	free(s);
	return v;
}

static void sock_name(struct sockaddr_un *a, socklen_t *len, pid_t init)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "zapc-uffd-%d-%llu", init,
			 (unsigned long long)start_time(init));
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* One PAGEMAP_SCAN walk of [a->start, a->end) to its end: a call stops
 * early when its vec is full and the next goes on at walk_end.  Each batch
 * of regions goes to each(ctx, regions, n); a failed call (-errno) or a
 * non-zero return of each() ends the walk with that value. */
static int pm_scan_each(int fd, struct pm_scan_arg_ *a,
			int (*each)(void *ctx, const struct page_region_ *r, long n), void *ctx)
{
	static __thread struct page_region_ vec[1024];
	uint64_t end = a->end;
	a->size = sizeof(*a);
	a->vec = (uint64_t)(uintptr_t)vec;
	a->vec_len = 1024;
	for (;;) {
		long got = ioctl(fd, PAGEMAP_SCAN_, a);
		if (got < 0)
			return -errno;
		int err = each(ctx, vec, got);
		if (err)
			return err;
		if (a->walk_end >= end || a->walk_end <= a->start)
			return 0;
		a->start = a->walk_end;
	}
}

struct ranges_out {
	struct range **out;
	int *n, *cap;           /* cap NULL: grow one at a time, no merging */
};

/* each() of scan/dirty_private_pages: append the regions as ranges; with
 * a capacity, a region that continues the last one (present, then
 * swapped) extends it. */
static int add_ranges(void *ctx, const struct page_region_ *r, long got)
{
	struct ranges_out *o = ctx;
	struct range **out = o->out;
	int *n = o->n;
	for (long i = 0; i < got; i++) {
		if (!o->cap) {
			*out = realloc(*out, (size_t)(*n + 1) * sizeof(**out));
		} else if (*n && (*out)[*n - 1].e == r[i].start) {
			(*out)[*n - 1].e = r[i].end;
			continue;
		} else if (*n == *o->cap) {
			*o->cap = *o->cap ? *o->cap * 2 : 256;
			*out = realloc(*out, (size_t)*o->cap * sizeof(**out));
		}
		(*out)[(*n)++] = (struct range){ r[i].start, r[i].end };
	}
	return 0;
}

/* Scan [start,end) of the process's pagemap: written pages (re-protecting
 * them) or present/swapped pages.  Appends ranges; -errno on failure. */
static int scan(int pmfd, uint64_t start, uint64_t end, bool written, struct range **out, int *n)
{
	struct pm_scan_arg_ a = { .start = start, .end = end };
	struct ranges_out o = { out, n, NULL };
	if (written) {
		/* report only: PM_SCAN_WP_MATCHING measured ~60 ms per GiB here
		 * (it re-protects while walking); the caller re-protects just
		 * the written ranges with UFFDIO_WRITEPROTECT instead */
		a.category_mask = a.return_mask = PAGE_IS_WRITTEN_;
		if (getenv("ZAPC_DIRTY_WP_MATCHING"))     /* bench: the one-walk variant */
			a.flags = PM_SCAN_WP_MATCHING_ | PM_SCAN_CHECK_WPASYNC_;
	} else {
		a.category_anyof_mask = a.return_mask = PAGE_IS_PRESENT_ | PAGE_IS_SWAPPED_;
	}
	return start < end ? pm_scan_each(pmfd, &a, add_ranges, &o) : 0;
}

/* Written ranges of a tracked VMA, write-protected again (the pod is frozen:
 * protecting before the copy is the same as after it). */
int dirty_written(struct dproc *p, int pmfd, uint64_t start, uint64_t end, struct range **out, int *n)
{
	int first = *n;
	int err = scan(pmfd, start, end, true, out, n);
	phase_mark("mm_scan_written");
	for (int i = first; !err && !getenv("ZAPC_DIRTY_WP_MATCHING") && i < *n; i++) {
		struct uffdio_writeprotect wp = { .range = { (*out)[i].s, (*out)[i].e - (*out)[i].s },
						  .mode = UFFDIO_WRITEPROTECT_MODE_WP };
		if (ioctl(p->uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
			err = -errno;
	}
	phase_mark("mm_reprotect");
	if (err < 0)
		log_warn("dump: pid %u: dirty pages of %#llx: %s; reading the whole area", p->tree->pid,
			 (unsigned long long)start, strerror(-err));
	return err;
}

int dirty_present(struct dproc *p, int pmfd, uint64_t start, uint64_t end, struct range **out, int *n)
{
	(void)p;
	return scan(pmfd, start, end, false, out, n);
}

/*
 * The pages a full dump saves in [start,end), whatever the VMAs there, by
 * one walk: present or swapped and not page cache (PAGE_IS_FILE is "a page
 * that is not anonymous", as PM_FILE of pagemap): in anonymous VMAs every
 * page, in private file VMAs the COWed ones.  The caller clips the ranges
 * to the VMAs it saves.  -ENOTTY/-EINVAL: no PAGEMAP_SCAN (kernel < 6.7).
 */
int dirty_private_pages(int pmfd, uint64_t start, uint64_t end, struct range **out, int *n, int *cap)
{
	struct pm_scan_arg_ a = { .start = start, .end = end };
	struct ranges_out o = { out, n, cap };
	a.category_inverted = a.category_mask = PAGE_IS_FILE_;
	a.category_anyof_mask = a.return_mask = PAGE_IS_PRESENT_ | PAGE_IS_SWAPPED_;
	return start < end ? pm_scan_each(pmfd, &a, add_ranges, &o) : 0;
}

/* Before the freeze: take the uffds a keeper holds for this pod. */
int dirty_fetch(struct dump_ctx *d, pid_t init)
{
	struct sockaddr_un a;
	socklen_t alen;
	sock_name(&a, &alen, init);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&a, alen) < 0) {
		close(s);
		return 0;       /* nobody keeps tracking for this pod */
	}
	static struct {
		struct keep_hdr h;
		struct keep_ent e[KEEP_MAX];
	} msg;
	union {
		char buf[CMSG_SPACE(KEEP_MAX * sizeof(int))];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { &msg, sizeof(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof(cb.buf) };
	struct pollfd pf = { s, POLLIN, 0 };
	ssize_t got = poll(&pf, 1, 2000) == 1 ? recvmsg(s, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL) : -1;
	close(s);
	int nfds = 0, *fds = NULL;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			fds = (int *)CMSG_DATA(c);
			nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		}
	if (got < (ssize_t)sizeof(msg.h) || msg.h.n > KEEP_MAX || (int)msg.h.n != nfds ||
	    (size_t)got < sizeof(msg.h) + msg.h.n * sizeof(struct keep_ent)) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		log_warn("dump: dirty tracking keeper of pid %d sent a bad message; reading all pages", init);
		return 0;
	}
	d->kept = xcalloc(msg.h.n + 1, sizeof(*d->kept));
	for (uint32_t i = 0; i < msg.h.n; i++)
		d->kept[i] = (struct kept_uffd){ msg.e[i].hpid, msg.e[i].start, fds[i] };
	d->nkept = (int)msg.h.n;
	d->track_stream = msg.h.stream_id;
	return 0;
}

/* After collect_tree: give each process its kept uffd (same pid, same start time). */
void dirty_attach(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		p->uffd = -1;
		p->tracked = false;
		for (int k = 0; k < d->nkept; k++)
			if (d->kept[k].fd >= 0 && d->kept[k].hpid == p->hpid && d->kept[k].start == start_time(p->hpid)) {
				p->uffd = d->kept[k].fd;
				d->kept[k].fd = -1;
				p->tracked = d->parent && d->track_stream == d->parent->stream_id;
			}
	}
	for (int k = 0; k < d->nkept; k++)
		if (d->kept[k].fd >= 0)
			close(d->kept[k].fd);
	d->nkept = 0;
}

static int add_bytes(void *ctx, const struct page_region_ *r, long got)
{
	for (long k = 0; k < got; k++)
		*(uint64_t *)ctx += r[k].end - r[k].start;
	return 0;
}

/* Estimated bytes the dump will read: written pages (untracked VMAs report
 * every present page as written), so the buffer is populated before the freeze. */
uint64_t dirty_estimate(struct dump_ctx *d)
{
	uint64_t bytes = 0;
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (p->tree && p->tree->zombie)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/pagemap", p->hpid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return UINT64_MAX;
		struct pm_scan_arg_ a = { .start = 0, .end = MAX_ADDR - PAGE, .category_mask = PAGE_IS_WRITTEN_,
					  .return_mask = PAGE_IS_WRITTEN_ };
		int err = pm_scan_each(fd, &a, add_bytes, &bytes);
		close(fd);
		if (err < 0)
			return UINT64_MAX;
	}
	return bytes;
}

static int new_uffd(struct dproc *p)
{
	int fd, err = uffd_take(&p->inj, p->hpid, UFFD_FEATURE_WP_ASYNC, &fd);
	if (err < 0)
		return err;
	p->uffd = fd;
	return 0;
}

static bool trackable(const ImgVma *v)
{
	return v->kind == VK_ANON && (v->prot & PROT_WRITE) && !(v->flags & MAP_SHARED);
}

/* Frozen, after the pages were read: (re-)protect every writable private
 * anonymous VMA for the next increment. */
int dirty_arm(struct dump_ctx *d, struct dproc *p)
{
	if (!d->track || p->tree->zombie)
		return 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		int err = p->uffd < 0 ? new_uffd(p) : 0;
		if (err < 0) {
			log_warn("dump: pid %u: no dirty tracking (userfaultfd: %s)", p->tree->pid, strerror(-err));
			return 0;
		}
		bool stale = false;
		for (size_t i = 0; i < p->core->n_vmas; i++) {
			ImgVma *v = p->core->vmas[i];
			if (!trackable(v) || (p->vscan && p->vscan[i] == 1))
				continue;     /* the scan already re-protected it */
			if (!p->vscan || p->vscan[i] == 0) {
				struct uffdio_register reg = { .range = { v->start, v->end - v->start },
							       .mode = UFFDIO_REGISTER_MODE_WP };
				if (ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0) {
					if (errno == ESRCH) {      /* the uffd's mm is gone (exec) */
						stale = true;
						break;
					}
					continue;               /* e.g. someone else's uffd */
				}
			}
			struct uffdio_writeprotect wp = { .range = { v->start, v->end - v->start },
							  .mode = UFFDIO_WRITEPROTECT_MODE_WP };
			ioctl(p->uffd, UFFDIO_WRITEPROTECT, &wp);
		}
		if (!stale)
			return 0;
		close(p->uffd);
		p->uffd = -1;
	}
	return 0;
}

void dirty_drop(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++)
		if (d->procs[i].uffd > 0) {
			close(d->procs[i].uffd);
			d->procs[i].uffd = -1;
		}
}

static void keeper_run(int ls, pid_t init, uint64_t stream_id, struct keep_ent *e, int *fds, int n)
{
	int pidfd = (int)syscall(SYS_pidfd_open, init, 0);
	struct pollfd pf[2] = { { ls, POLLIN, 0 }, { pidfd, POLLIN, 0 } };
	for (;;) {
		int r = poll(pf, pidfd >= 0 ? 2 : 1, KEEP_IDLE_MS);
		if (r <= 0 || (pidfd >= 0 && pf[1].revents))
			return;                 /* idle for a day, or the pod is gone */
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.uid != 0) {
			close(c);               /* a uffd gives control over the pod's memory */
			continue;
		}
		static struct {
			struct keep_hdr h;
			struct keep_ent e[KEEP_MAX];
		} msg;
		msg.h.stream_id = stream_id;
		msg.h.n = (uint32_t)n;
		memcpy(msg.e, e, (size_t)n * sizeof(*e));
		union {
			char buf[CMSG_SPACE(KEEP_MAX * sizeof(int))];
			struct cmsghdr align;
		} cb;
		memset(&cb, 0, sizeof(cb));
		struct iovec iov = { &msg, sizeof(msg.h) + (size_t)n * sizeof(*e) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf,
				     .msg_controllen = CMSG_SPACE((size_t)n * sizeof(int)) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)n * sizeof(int));
		ssize_t w = sendmsg(c, &mh, MSG_NOSIGNAL);
		close(c);
		if (w > 0)
			return;                 /* handed over: the new dump owns tracking */
	}
}

/* zapc-engine keep-uffd LISTENFD INITPID STREAMID FD:HPID:START... (exec'd by
 * dirty_keep only). */
int keep_main(int argc, char **argv)
{
	struct keep_ent e[KEEP_MAX];
	int fds[KEEP_MAX], n = 0;
	if (argc < 4)
		return 2;
	int ls = atoi(argv[1]);
	pid_t init = atoi(argv[2]);
	uint64_t stream = strtoull(argv[3], NULL, 10);
	for (int i = 4; i < argc && n < KEEP_MAX; i++) {
		int fd, hpid;
		unsigned long long st;
		if (sscanf(argv[i], "%d:%d:%llu", &fd, &hpid, &st) != 3)
			return 2;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		fds[n] = fd;
		e[n++] = (struct keep_ent){ hpid, 0, st };
	}
	fcntl(ls, F_SETFD, FD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	keeper_run(ls, init, stream, e, fds, n);
	return 0;
}

/* After a successful snapshot: leave the uffds with a keeper process. */
void dirty_keep(struct dump_ctx *d, pid_t init)
{
	struct keep_ent e[KEEP_MAX];
	int fds[KEEP_MAX], n = 0;
	for (int i = 0; i < d->nprocs && n < KEEP_MAX; i++)
		if (d->procs[i].uffd > 0) {
			e[n] = (struct keep_ent){ d->procs[i].hpid, 0, start_time(d->procs[i].hpid) };
			fds[n++] = d->procs[i].uffd;
		}
	if (!n)
		return;
	struct sockaddr_un a;
	socklen_t alen;
	sock_name(&a, &alen, init);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, alen) < 0 || listen(ls, 4) < 0) {
		log_warn("dump: cannot keep dirty tracking for pid %d: %s", init, strerror(errno));
		if (ls >= 0)
			close(ls);
		return;
	}
	fflush(NULL);
	pid_t c = fork();
	if (c == 0) {
		setsid();
		if (fork() != 0)
			_exit(0);
		/* the keeper: only the listening socket and the uffds stay open */
		signal(SIGPIPE, SIG_IGN);
		DIR *dir = opendir("/proc/self/fd");
		int dfd = dir ? dirfd(dir) : -1;
		struct dirent *de;
		while (dir && (de = readdir(dir))) {
			int fd = atoi(de->d_name);
			bool keep = fd == ls || fd == dfd || de->d_name[0] == '.';
			for (int i = 0; i < n && !keep; i++)
				keep = fds[i] == fd;
			if (!keep)
				close(fd);
		}
		if (dir)
			closedir(dir);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
			if (nul > 2)
				close(nul);
		}
		/* exec a fresh engine as the keeper: a fork would keep the dump's
		 * page buffers (the whole pod's memory) alive as long as it lives */
		static char args[KEEP_MAX + 8][48];
		char *argv[KEEP_MAX + 10];
		int a = 0;
		argv[a++] = "zapc-engine";
		argv[a++] = "keep-uffd";
		snprintf(args[0], sizeof(args[0]), "%d", ls);
		snprintf(args[1], sizeof(args[1]), "%d", init);
		snprintf(args[2], sizeof(args[2]), "%llu", (unsigned long long)d->stream_id);
		argv[a++] = args[0];
		argv[a++] = args[1];
		argv[a++] = args[2];
		fcntl(ls, F_SETFD, 0);
		for (int i = 0; i < n; i++) {
			fcntl(fds[i], F_SETFD, 0);
			snprintf(args[3 + i], sizeof(args[3 + i]), "%d:%d:%llu", fds[i], e[i].hpid,
				 (unsigned long long)e[i].start);
			argv[a++] = args[3 + i];
		}
		argv[a] = NULL;
		execv("/proc/self/exe", argv);
		_exit(1);
	}
	close(ls);
	if (c > 0)
		waitpid(c, NULL, 0);
}

/*
 * Pre-copy, before the freeze (the pod runs): for every process whose uffd
 * a keeper handed over, one PAGEMAP_SCAN with PM_SCAN_WP_MATCHING over the
 * whole address space returns the pages written since the parent in the
 * tracked VMAs (VMAs that are not WP-async are skipped silently) and
 * write-protects them again in the same walk; then they are copied.  Order
 * matters: protect, then copy — a write after the protect clears the bit
 * again, so the frozen scan reports that page and it is read there; a page
 * not written again still holds the copied content.  On this VM every
 * re-protected page costs ~35 µs (pte write + TLB flush go through the
 * hypervisor), which is why this happens outside the frozen window.
 * smaps is read here too (~6 ms per GiB of 4 KiB pages: it walks every pte
 * for Rss); mm_dump uses it if /proc/PID/maps did not change meanwhile.
 */
struct precopy_runs {
	struct precopy *pc;
	int cap;
	size_t pages;
};

/* each() of precopy_one: the written regions as page runs of at most
 * PAGES_PER_RECORD pages. */
static int add_runs(void *ctx, const struct page_region_ *r, long got)
{
	struct precopy_runs *w = ctx;
	struct precopy *pc = w->pc;
	for (long k = 0; k < got; k++)
		for (uint64_t s = r[k].start; s < r[k].end; s += PAGES_PER_RECORD * PAGE) {
			uint64_t np = (r[k].end - s) / PAGE;
			if (np > PAGES_PER_RECORD)
				np = PAGES_PER_RECORD;
			if (pc->nruns == w->cap) {
				w->cap = w->cap ? w->cap * 2 : 256;
				pc->runs = realloc(pc->runs, (size_t)w->cap * sizeof(*pc->runs));
			}
			pc->runs[pc->nruns++] = (struct pagerun){ s, (uint32_t)np, 0, NULL };
			w->pages += np;
		}
	return 0;
}

static void precopy_one(struct dump_ctx *d, struct precopy *pc)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pc->hpid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct pm_scan_arg_ a = { .flags = PM_SCAN_WP_MATCHING_, .start = 0, .end = MAX_ADDR - PAGE,
				  .category_mask = PAGE_IS_WRITTEN_, .return_mask = PAGE_IS_WRITTEN_ };
	struct precopy_runs w = { pc, 0, 0 };
	/* pages may have been protected before an error: all lost */
	if (pm_scan_each(fd, &a, add_runs, &w) < 0)
		pc->lost = true;
	size_t pages = w.pages;
	close(fd);
	if (!pc->lost && pages) {
		pc->len = pages * PAGE;
		void *b = mmap(NULL, pc->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (b == MAP_FAILED) {
			pc->len = 0;
			pc->lost = true;
		} else {
			pc->buf = b;
			size_t off = 0;
			for (int i = 0; i < pc->nruns; i++) {
				pc->runs[i].data = pc->buf + off;
				off += pc->runs[i].npages * PAGE;
			}
			const char *t = getenv("ZAPC_TEST_PRECOPY_LOST");     /* tests: the failure path */
			if (mm_read_runs(pc->hpid, pc->runs, pc->nruns) < 0 || (t && *t))
				pc->lost = true;     /* read them all while frozen */
		}
	}
	log_debug("dump: pid %d: pre-copied %zu written pages in %d runs%s", pc->hpid, pages, pc->nruns,
		  pc->lost ? " (lost: read while frozen)" : "");
	snprintf(path, sizeof(path), "/proc/%d/smaps", pc->hpid);
	pc->smaps = read_file_str(path, &pc->smaps_len);
	(void)d;
}

/*
 * On this VM the first time a process runs after the engine changed many of
 * its ptes costs it ~20 µs of CPU per changed pte (measured with schedstat:
 * ~20 ms after 1024 re-protected pages, almost nothing when none changed;
 * probably the hypervisor's shadow page tables).  A pod that sleeps between
 * the pre-copy and the freeze would pay it at its first injected syscall,
 * inside the frozen window (measured 4–21 ms there).  So the leader is made
 * to run once now: PTRACE_SEIZE + PTRACE_INTERRUPT, wait for the trap,
 * detach — the same transparent stop as the dump's own seize (an interrupted
 * sleep restarts by itself).
 */
static void precopy_settle(pid_t hpid)
{
	if (ptrace(PTRACE_SEIZE, hpid, 0, 0) < 0)
		return;
	if (ptrace(PTRACE_INTERRUPT, hpid, 0, 0) == 0)
		for (;;) {
			int st;
			if (wait_stop(hpid, &st) < 0 || !WIFSTOPPED(st))
				return;          /* gone: nothing to detach */
			if ((st >> 16) == PTRACE_EVENT_STOP)
				break;
			/* a signal on its way: the application gets it, as without us */
			if (ptrace(PTRACE_CONT, hpid, 0, WSTOPSIG(st)) < 0)
				return;
		}
	ptrace(PTRACE_DETACH, hpid, 0, 0);
}

void dirty_precopy(struct dump_ctx *d)
{
	if (getenv("ZAPC_NO_PRECOPY"))           /* bench: the frozen-only baseline */
		return;
	d->pre = xcalloc((size_t)d->nkept + 1, sizeof(*d->pre));
	for (int k = 0; k < d->nkept; k++) {
		if (d->kept[k].fd < 0 || start_time(d->kept[k].hpid) != d->kept[k].start)
			continue;
		struct precopy *pc = &d->pre[d->npre++];
		pc->hpid = d->kept[k].hpid;
		precopy_one(d, pc);
		if (pc->nruns && !getenv("ZAPC_NO_SETTLE"))
			precopy_settle(pc->hpid);
	}
}

const struct precopy *dirty_precopy_of(const struct dump_ctx *d, pid_t hpid)
{
	for (int i = 0; i < d->npre; i++)
		if (d->pre[i].hpid == hpid)
			return &d->pre[i];
	return NULL;
}
