/*
 * dump.c — `zapc-engine dump`: checkpoint every process of a pod.
 *
 * 1. freeze the pod's cgroup(s); walk the process tree from the pod's init
 *    (/proc/PID/task/TID/children), zombies included;
 * 2. seize + interrupt every thread, thaw, collect the traps (seize.c);
 * 3. every object of the table (objects.c) reads its state, pages are copied
 *    into engine memory — the frozen window holds no disk I/O;
 * 4. commit point: kill the pod (default) or put everything back and detach
 *    (--leave-running); then write the image stream.
 * Any failure before the commit point releases the pod untouched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/utsname.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent/engine/control.h"
#include "agent/engine/engine.h"
#include "agent/engine/fdkind.h"
#include "agent/engine/inet.h"
#include "agent/engine/objects.h"
#include "agent/engine/seize.h"
#include "lib/log.h"

int seize_wait_all(struct dump_ctx *d);
int dump_write(struct dump_ctx *d, int fd);

static struct dproc *proc_by_hpid(struct dump_ctx *d, pid_t hpid)
{
	for (int i = 0; i < d->nprocs; i++)
		if (d->procs[i].hpid == hpid)
			return &d->procs[i];
	return NULL;
}

static int add_threads(struct dproc *p)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", p->hpid);
	int *tids = NULL, n = proc_list_numbers(path, &tids);
	if (n < 0)
		return n;
	/* leader first */
	p->th = xcalloc((size_t)n + 1, sizeof(*p->th));
	p->th[0].htid = p->hpid;
	p->nth = 1;
	for (int k = 0; k < n; k++)
		if (tids[k] != p->hpid)
			p->th[p->nth++].htid = tids[k];
	free(tids);
	if (p->nth > MAX_THREADS)
		return -E2BIG;
	return 0;
}

/* Append the children of thread tid of process i not seen yet. */
static int add_children(struct dump_ctx *d, int i, pid_t tid, int *cap)
{
	char cp[128], small[4096];
	snprintf(cp, sizeof(cp), "/proc/%d/task/%d/children", d->procs[i].hpid, tid);
	ssize_t n = proc_read_small(cp, small, sizeof(small));
	char *c = n >= 0 ? small : n == -EFBIG ? read_file_str(cp, NULL) : NULL;
	int err = 0;
	for (char *q = c; q && *q;) {
		char *e;
		long v = strtol(q, &e, 10);
		if (e == q)
			break;
		q = e;
		if (proc_by_hpid(d, (pid_t)v))
			continue;
		if (d->nprocs == MAX_PROCS) {
			log_err("dump: more than %d processes", MAX_PROCS);
			err = -E2BIG;
			break;
		}
		if (d->nprocs == *cap) {
			*cap *= 2;
			d->procs = realloc(d->procs, (size_t)*cap * sizeof(*d->procs));
		}
		memset(&d->procs[d->nprocs], 0, sizeof(d->procs[0]));
		d->procs[d->nprocs++].hpid = (pid_t)v;
	}
	if (c != small)
		free(c);
	return err;
}

/* Walk the tree from init; parents come before children. */
static int collect_tree(struct dump_ctx *d, pid_t init)
{
	int cap = 16, err;
	d->procs = xcalloc((size_t)cap, sizeof(*d->procs));
	d->procs[0].hpid = init;
	d->nprocs = 1;
	int init_levels = 0;
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		char path[128], *st;
		snprintf(path, sizeof(path), "/proc/%d/status", p->hpid);
		if (!(st = read_file_str(path, NULL))) {
			log_err("dump: pid %d: %s: %s", p->hpid, path, strerror(errno));
			return -errno;
		}
		uint32_t ids[16];
		int lv = status_field_ids(st, "NSpid", ids, 16);
		if (i == 0)
			init_levels = lv;
		if (lv != init_levels || lv < 2) {
			log_err("dump: pid %d is not in the pod's own pid namespace", p->hpid);
			free(st);
			return -EINVAL;
		}
		p->tree = xcalloc(1, sizeof(ImgProc));
		img_proc__init(p->tree);
		p->tree->pid = ids[lv - 1];
		p->core = xcalloc(1, sizeof(ImgProcCore));
		img_proc_core__init(p->core);
		p->core->pid = p->tree->pid;
		p->core->mm = xcalloc(1, sizeof(ImgMm));
		img_mm__init(p->core->mm);
		p->core->creds = xcalloc(1, sizeof(ImgCreds));
		img_creds__init(p->core->creds);
		if (i == 0 && p->tree->pid != 1) {
			log_err("dump: pid %d is pid %u in its namespace, not the pod's init", init, p->tree->pid);
			free(st);
			return -EINVAL;
		}
		int n = status_field_ids(st, "NSpgid", ids, 16);
		p->tree->pgid = n == lv ? ids[n - 1] : 0;
		n = status_field_ids(st, "NSsid", ids, 16);
		p->tree->sid = n == lv ? ids[n - 1] : 0;
		pid_t hppid = (pid_t)status_field_u32(st, "PPid", 0);
		struct dproc *pp = i ? proc_by_hpid(d, hppid) : NULL;
		p = &d->procs[i];
		p->tree->ppid = pp ? pp->tree->pid : 0;
		p->tree->zombie = strstr(st, "State:\tZ") != NULL;
		/* kept: creds and signal masks are read from it (nothing of the
		 * pod runs user code from here to the end of the dump) */
		p->status = st;
		if (p->tree->zombie) {
			snprintf(path, sizeof(path), "/proc/%d/stat", p->hpid);
			char *s = read_file_str(path, NULL);
			char *rp = s ? strrchr(s, ')') : NULL;
			int code = 0;
			if (rp) {
				/* field 52 exit_code; fields after ')' start at 3 */
				char *q = rp + 2;
				for (int f = 3; f < 52 && q; f++) {
					q = strchr(q, ' ');
					if (q)
						q++;
				}
				if (q)
					code = atoi(q);
			}
			free(s);
			SETOPT(p->tree, exit_status, code);
			snprintf(path, sizeof(path), "/proc/%d/comm", p->hpid);
			char *cm = read_file_str(path, NULL);
			if (cm)
				cm[strcspn(cm, "\n")] = 0;
			p->tree->comm = cm;
			p->tree->n_tids = 1;
			p->tree->tids = xcalloc(1, sizeof(uint32_t));
			p->tree->tids[0] = p->tree->pid;
			p->th = xcalloc(1, sizeof(*p->th));
			p->th[0].htid = p->hpid;
			p->nth = 0;   /* nothing to seize */
		} else if ((err = add_threads(p)) < 0) {
			log_err("dump: pid %d: threads: %s", p->hpid, strerror(-err));
			return err;
		}
		/* children of every thread (the task list of add_threads; a
		 * zombie's from its task directory) */
		if (!p->tree->zombie) {
			/* add_children may move d->procs: no p from here */
			for (int j = 0; j < d->procs[i].nth; j++)
				if ((err = add_children(d, i, d->procs[i].th[j].htid, &cap)) < 0)
					return err;
			continue;
		}
		DIR *dir;
		snprintf(path, sizeof(path), "/proc/%d/task", p->hpid);
		if ((dir = opendir(path))) {
			struct dirent *de;
			while ((de = readdir(dir))) {
				if (de->d_name[0] < '0' || de->d_name[0] > '9')
					continue;
				if ((err = add_children(d, i, atoi(de->d_name), &cap)) < 0) {
					closedir(dir);
					return err;
				}
			}
			closedir(dir);
		}
	}
	return 0;
}

/* Freeze every cgroup of the pod; *frozen counts those frozen (to thaw on failure). */
static int freeze_all(char **cgroups, int ncg, int *frozen)
{
	for (int i = 0; i < ncg; i++) {
		int err = cg_freeze(cgroups[i], 1);
		if (err < 0)
			return err;
		*frozen = i + 1;
	}
	return 0;
}

/* What collect_tree built, for a second try (dump_main's vfork retry). */
static void tree_drop(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (p->tree)
			protobuf_c_message_free_unpacked(&p->tree->base, NULL);
		if (p->core)
			protobuf_c_message_free_unpacked(&p->core->base, NULL);
		free(p->status);
		free(p->th);
	}
	free(d->procs);
	d->procs = NULL;
	d->nprocs = 0;
}

/* A process sleeping inside vfork() until its child execs or exits, NULL
 * if none; *child gets the child's host pid.  Only parents that are not
 * plainly sleeping (S) or stopped are asked: the vfork sleep shows as D, or
 * as R for a moment after a freeze or thaw woke it (seize.h vfork_pair). */
static struct dproc *vfork_waiter(struct dump_ctx *d, pid_t *child)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *c = &d->procs[i];
		if (c->tree->zombie || !c->tree->ppid || !c->status)
			continue;
		struct dproc *p = proc_by_hpid(d, (pid_t)status_field_u32(c->status, "PPid", 0));
		const char *st = p && p->status ? strstr(p->status, "State:\t") : NULL;
		char s = st ? st[7] : '?';
		if (p && !p->tree->zombie && s != 'S' && s != 'T' && s != 't' && vfork_pair(p->hpid, c->hpid)) {
			*child = c->hpid;
			return p;
		}
	}
	return NULL;
}

static double ms_since(const struct timespec *t0);

/* The pod runs: wait (polling every ms) until the vfork of parent for
 * child has ended, or until budget_ms after since.  Freezing right then
 * finds the parent in the code after vfork (usually a wait for the child),
 * not inside the next one, which a blind sleep may well hit when the pod
 * vforks in a loop. */
static void vfork_wait_end(pid_t parent, pid_t child, const struct timespec *since, double budget_ms)
{
	while (vfork_pair(parent, child) && ms_since(since) < budget_ms)
		usleep(1000);
}

/* Thread ids inside the pod (NSpid of each task). */
static int collect_tids(struct dproc *p)
{
	if (p->tree->zombie)
		return 0;
	p->tree->n_tids = (size_t)p->nth;
	p->tree->tids = xcalloc((size_t)p->nth, sizeof(uint32_t));
	p->tree->tids[0] = p->tree->pid;     /* the leader's tid is the pid */
	for (int j = 1; j < p->nth; j++) {
		char path[128];
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", p->hpid, p->th[j].htid);
		char *st = read_file_str(path, NULL);
		if (!st) {
			log_err("dump: pid %u tid %d: %s", p->tree->pid, p->th[j].htid, strerror(errno));
			return -errno;
		}
		p->tree->tids[j] = status_field_u32(st, "NSpid", -1);
		free(st);
	}
	return 0;
}

/* Registers and blocked masks as seized: what --leave-running puts back. */
static int capture_regs(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++)
		for (int j = 0; j < d->procs[i].nth; j++) {
			struct dthread *t = &d->procs[i].th[j];
			int err = regs_get(t->htid, &t->regs);
			if (err < 0) {
				log_err("dump: pid %u tid %d: registers: %s", d->procs[i].tree->pid, t->htid,
					strerror(-err));
				return err;
			}
			if (ptrace(PTRACE_GETSIGMASK, t->htid, (void *)8, &t->sigmask) < 0) {
				log_err("dump: tid %d: sigmask: %s", t->htid, strerror(errno));
				return -errno;
			}
		}
	return 0;
}

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The pod's clocks: the host's plus the offsets of init's time namespace. */
static void pod_clocks(struct dump_ctx *d, pid_t init)
{
	char path[64];
	int64_t mono_off = 0, boot_off = 0;
	snprintf(path, sizeof(path), "/proc/%d/timens_offsets", init);
	char *s = read_file_str(path, NULL);
	for (char *l = s; l && *l;) {
		char name[32];
		long long sec, nsec;
		if (sscanf(l, "%31s %lld %lld", name, &sec, &nsec) == 3) {
			int64_t v = sec * 1000000000ll + nsec;
			if (!strcmp(name, "monotonic") || !strcmp(name, "1"))
				mono_off = v;
			else if (!strcmp(name, "boottime") || !strcmp(name, "7"))
				boot_off = v;
		}
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	free(s);
	d->info->mono_ns = clock_ns(CLOCK_MONOTONIC) + (uint64_t)mono_off;
	d->info->boot_ns = clock_ns(CLOCK_BOOTTIME) + (uint64_t)boot_off;
	SETOPT(d->info, real_ns, clock_ns(CLOCK_REALTIME));
}

static void pod_uts(struct dump_ctx *d, pid_t init)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/uts", init);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC), self = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
	struct utsname u;
	if (nsfd >= 0 && self >= 0 && setns(nsfd, CLONE_NEWUTS) == 0) {
		uname(&u);
		d->info->hostname = xstrdup(u.nodename);
		d->info->domainname = xstrdup(u.domainname);
		setns(self, CLONE_NEWUTS);
	}
	if (nsfd >= 0)
		close(nsfd);
	if (self >= 0)
		close(self);
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

void mm_prealloc(size_t bytes);

/* Before freezing: how much page memory the dump will need (anonymous +
 * swapped of every process), so the buffer is populated outside the window. */
/* skip_from: a process with at least this much (bytes) is captured
 * copy-on-write (cowsnap.c), not copied into the pool; 0: none is.
 * Returns the kB the pool is for. */
#define RT_MAX_COPY_KB (64u << 10)   /* copied frozen at most, for a real-time snapshot window */
static uint64_t prealloc_pages(char **cgroups, int ncg, uint64_t skip_from)
{
	pid_t *pids = NULL;
	int n = 0;
	uint64_t kb = 0;
	for (int i = 0; i < ncg; i++)
		cg_list(cgroups[i], "cgroup.procs", &pids, &n);
	for (int i = 0; i < n; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pids[i]);
		char *s = read_file_str(path, NULL);
		const char *a = s ? strstr(s, "\nAnonymous:") : NULL, *w = s ? strstr(s, "\nSwap:") : NULL;
		uint64_t pkb = (a ? strtoull(a + 12, NULL, 10) : 0) + (w ? strtoull(w + 6, NULL, 10) : 0);
		if (!skip_from || pkb * 1024 < skip_from)
			kb += pkb;
		free(s);
	}
	free(pids);
	mm_prealloc((size_t)(kb * 1024 + kb * 1024 / 16 + (8u << 20)));
	return kb;
}

/* ~2.5 MiB stay in use after a dump of 100 small processes (~60 KiB each);
 * a big process's page index needs more, and in the frozen window: a pad
 * sized by the process count alone (0.5 MiB for one) cost an incremental
 * checkpoint of 1 GiB ~0.6 ms of fresh heap pages while frozen. */
static size_t heap_need(char **cgroups, int ncg)
{
	pid_t *pids = NULL;
	int n = 0;
	for (int i = 0; i < ncg; i++)
		cg_list(cgroups[i], "cgroup.procs", &pids, &n);
	free(pids);
	size_t need = ((size_t)512 << 10) + (size_t)(n < 1000 ? n : 1000) * (60u << 10);
	return need > ((size_t)6 << 20) ? need : (size_t)6 << 20;
}

static void usage(void)
{
	fprintf(stderr, "usage: zapc-engine dump --cgroup DIR [--cgroup DIR...] --init PID -o FILE|- "
		"[--leave-running] [--pod-name POD] [--pod-ip ADDR] [--control FD [--sync]]\n"
		"       [--parent FILE [--full-every N]] [--track] [--compress[=LEVEL]]\n");
}

/*
 * Incremental / indexed images (chain.c, dirty.c, docs/incremental.md),
 * before the freeze: read the parent chain's page index, take the dirty
 * tracking a keeper holds, and populate the page buffer for what will be
 * read (only the written pages when tracking is there).
 */
static int lowdown_prepare(struct dump_ctx *d, const char *parent, unsigned full_every, pid_t init,
			   char **cgroups, int ncg, bool leave)
{
	if (parent || d->compress || d->track)
		d->indexed = true;
	/* the pod ends: it stays stopped until the image is written, so the
	 * writer reads its private pages (mm_late_read) and no pool is needed */
	d->late_pages = !leave && !d->indexed && !getenv("ZAPC_ENGINE_NO_LATE");
	if (parent) {
		int err = chain_index_load(parent, full_every, &d->parent, &d->pindex);
		if (err < 0)
			return err;
		d->track = true;
	}
	if (d->track)
		dirty_fetch(d, init);
	if (d->nkept && d->parent && d->track_stream == d->parent->stream_id) {
		struct dump_ctx k = { 0 };
		k.procs = xcalloc((size_t)d->nkept, sizeof(*k.procs));
		for (int i = 0; i < d->nkept; i++)
			k.procs[i].hpid = d->kept[i].hpid;
		k.nprocs = d->nkept;
		dirty_precopy(d);
		d->rt = true;              /* a short frozen window (rtprio.c) */
		uint64_t est = dirty_estimate(&k);
		free(k.procs);
		if (est != UINT64_MAX) {
			mm_prealloc((size_t)(est + est / 4 + (8u << 20)));
			return 0;
		}
	}
	/* a snapshot's big processes are read from a copy-on-write child while
	 * the image is written (cowsnap.c): no pool for them */
	bool cow = leave && !d->indexed && !d->write_frozen && !getenv("ZAPC_ENGINE_NO_COW");
	/* ... and then the window holds little copying: the engine runs it at
	 * real-time priority, as a tracked increment (rtprio.c) */
	if (!d->late_pages && prealloc_pages(cgroups, ncg, cow ? mm_cow_min_bytes() : 0) < RT_MAX_COPY_KB && cow)
		d->rt = true;
	return 0;
}

int dump_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, 0, 'c' }, { "init", required_argument, 0, 'i' },
		{ "output", required_argument, 0, 'o' }, { "leave-running", no_argument, 0, 'l' },
		{ "name", required_argument, 0, 'n' }, { "pod-name", required_argument, 0, 'n' },
		{ "pod-ip", required_argument, 0, 'P' }, { "control", required_argument, 0, 'C' },
		{ "sync", no_argument, 0, 'S' },
		{ "parent", required_argument, 0, 'p' }, { "full-every", required_argument, 0, 'F' },
		{ "track", no_argument, 0, 't' }, { "compress", optional_argument, 0, 'z' },
		{ "write-frozen", no_argument, 0, 'W' }, { "hold-kept", no_argument, 0, 'H' },
		{ 0, 0, 0, 0 } };
	const char *parent = NULL;
	unsigned full_every = 10;
	int wrote = 0;
	char *cgroups[16], *out = NULL, *name = NULL, *pod_ip = NULL;
	struct control_done done = { 0 };
	int ncg = 0, leave = 0, c, err = 0, frozen = 0, outfd = -1;
	pid_t init = 0;
	struct dump_ctx D = { 0 }, *d = &D;
	struct timespec t0, t1, t2, tstart;

	clock_gettime(CLOCK_MONOTONIC, &tstart);
	while ((c = getopt_long(argc, argv, "c:i:o:ln:P:C:Sp:F:tz::WH", opts, NULL)) != -1) {
		switch (c) {
		case 'c': if (ncg < 16) cgroups[ncg++] = optarg; break;
		case 'i': init = atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'l': leave = 1; break;
		case 'n': name = optarg; break;
		case 'P': pod_ip = optarg; break;
		case 'C': if (control_open(optarg) < 0) return 2; break;
		case 'S': control_sync_enable(); break;	/* manager: sync points */
		case 'p': parent = optarg; break;
		case 'F': full_every = (unsigned)atoi(optarg); break;
		case 't': d->track = true; break;
		case 'z': d->compress = optarg ? atoi(optarg) : 3; if (d->compress < 1) d->compress = 1; break;
		case 'W': d->write_frozen = true; break;
		case 'H': inet_set_hold_kept(true); break;	/* the agent: kept rules there */
		default: usage(); return 2;
		}
	}
	if (!ncg || init <= 0 || !out) {
		usage();
		return 2;
	}
	heap_prepare(heap_need(cgroups, ncg));   /* before the freeze */
	if (!strcmp(out, "-"))
		outfd = STDOUT_FILENO;
	else if ((outfd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		log_err("dump: %s: %s", out, strerror(errno));
		return 1;
	}

	d->info = xcalloc(1, sizeof(ImgInfo));
	img_info__init(d->info);
	d->tree = xcalloc(1, sizeof(ImgTree));
	img_tree__init(d->tree);
	d->files = xcalloc(1, sizeof(ImgFiles));
	img_files__init(d->files);
	d->next_file_id = 1;
	struct utsname u;
	uname(&u);
	d->info->kernel_release = xstrdup(u.release);
	d->info->arch = xstrdup(u.machine);
	d->info->page_size = (uint32_t)sysconf(_SC_PAGESIZE);
	d->info->pod_name = name ? xstrdup(name) : NULL;
	d->info->pod_ip = pod_ip ? xstrdup(pod_ip) : NULL;
	d->info->ctime = (uint64_t)time(NULL);
	d->info->tool_version = xstrdup(ENGINE_VERSION);

	if ((err = lowdown_prepare(d, parent, full_every, init, cgroups, ncg, leave)) < 0) {
		if (outfd != STDOUT_FILENO) {
			close(outfd);
			unlink(out);
		}
		done.status = err;
		control_done(&done);
		return 1;
	}
	inet_dump_early(init);       /* the traffic hold, out of the frozen window */
	mounts_dump_early(init);
	if (d->rt)
		rt_enter();
	if (getenv("ZAPC_ENGINE_TIMING"))      /* from main() to the freeze (heap, early reads, hold) */
		fprintf(stderr, "TIMING prepare_ms %.3f\n", ms_since(&tstart));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	phase_start();
	if ((err = freeze_all(cgroups, ncg, &frozen)) < 0)
		goto fail;
	if (getenv("ZAPC_ENGINE_TIMING"))
		fprintf(stderr, "TIMING freeze_ms %.3f\n", ms_since(&t0));
	phase_mark("freeze");
	if ((err = collect_tree(d, init)) < 0)
		goto fail;
	/* A task inside vfork() sleeps, killable only, until its child execs;
	 * seized, the child never would, and the task would never stop for us.
	 * Let the pod run until that vfork ends and freeze it again (for up
	 * to 5 s in all). */
	struct timespec vf_t0 = { 0, 0 };
	for (;;) {
		pid_t vf_child = 0;
		struct dproc *vf = vfork_waiter(d, &vf_child);
		if (!vf)
			break;
		if (!vf_t0.tv_sec)
			clock_gettime(CLOCK_MONOTONIC, &vf_t0);
		if (ms_since(&vf_t0) >= 5000) {
			log_err("dump: pid %u stays inside vfork() (its child has not run exec for 5 s): "
				"the pod runs on, try again", vf->tree->pid);
			err = -EAGAIN;
			goto fail;
		}
		pid_t vf_hpid = vf->hpid;
		for (int i = 0; i < ncg; i++)
			cg_freeze(cgroups[i], 0);
		frozen = 0;
		tree_drop(d);
		vfork_wait_end(vf_hpid, vf_child, &vf_t0, 5000);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		phase_start();
		if ((err = freeze_all(cgroups, ncg, &frozen)) < 0)
			goto fail;
		if ((err = collect_tree(d, init)) < 0)
			goto fail;
	}
	dirty_attach(d);
	phase_mark("tree");
	/* seizing wakes every frozen task (PTRACE_INTERRUPT), the thaw all of
	 * them: at real-time priority they cannot preempt the engine (see
	 * objects_dump); no bulk work happens until rt_leave below */
	bool seize_rt = !d->rt;
	if (seize_rt)
		rt_enter();
	if ((err = seize_pod(d, cgroups, ncg)) < 0)
		goto fail;
	phase_mark("seize");
	for (int i = 0; i < ncg; i++)
		cg_freeze(cgroups[i], 0);
	frozen = 0;
	phase_mark("thaw");
	if ((err = seize_wait_all(d)) < 0)
		goto fail;
	phase_mark("traps");
	if (getenv("ZAPC_ENGINE_TIMING"))
		fprintf(stderr, "TIMING seized_ms %.3f\n", ms_since(&t0));
	for (int i = 0; i < d->nprocs && !err; i++)
		err = collect_tids(&d->procs[i]);
	if (err < 0 || (err = capture_regs(d)) < 0)
		goto fail;
	if (seize_rt)
		rt_leave();
	pod_clocks(d, init);
	pod_uts(d, init);
	phase_mark("tids_regs");
	/* a snapshot reads big processes' pages after the resume (cowsnap.c) */
	d->cow = leave && !d->indexed && !d->write_frozen && !getenv("ZAPC_ENGINE_NO_COW");
	if ((err = objects_dump(d)) < 0)
		goto fail;
	if (getenv("ZAPC_ENGINE_TIMING"))
		fprintf(stderr, "TIMING objects_ms %.3f\n", ms_since(&t0));
	if ((err = cow_fork_all(d)) < 0)
		goto fail;
	if (getenv("ZAPC_ENGINE_TIMING") && d->cow)
		fprintf(stderr, "TIMING cow_forked_ms %.3f\n", ms_since(&t0));
	if (leave && d->write_frozen) {      /* bench: the direct-write baseline */
		if ((err = dump_write(d, outfd)) < 0)
			goto fail;
		wrote = 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Coordinated checkpoint (--sync): every pod of the job must be captured
	 * before any resumes (docs/manager-protocol.md). */
	if ((err = control_sync("captured", (uint64_t)(((t1.tv_sec - t0.tv_sec) * 1000000000ll +
			(t1.tv_nsec - t0.tv_nsec)) / 1000))) < 0)
		goto fail;

	/*
	 * Commit point.  A snapshot resumes the pod now and writes the image
	 * afterwards (the frozen window holds no I/O).  A checkpoint that ends
	 * the pod keeps it stopped until the whole image is written and only
	 * then kills it: if the write fails (full disk, reader gone) the pod
	 * resumes untouched instead of being lost with a half image.
	 */
	phase_mark("objects");
	if (leave) {
		release_pod(d, false);
		inet_dump_release();     /* held packets go to the running pod */
		/* said at once, still at real-time priority: the manager counts
		 * the job's pods resumed when every engine has said it */
		control_progress("resumed", 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t2);
	phase_mark("release");
	rt_leave();
	phase_report();
	done.frozen_us = (uint64_t)(((t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec)) / 1000);
	log_info("dump: frozen %.3f ms", done.frozen_us / 1000.0);
	if (getenv("ZAPC_ENGINE_TIMING"))
		fprintf(stderr, "TIMING frozen_ms %.3f\n",
			((t2.tv_sec - t0.tv_sec) * 1e9 + (t2.tv_nsec - t0.tv_nsec)) / 1e6);
	if (!leave)
		control_progress("captured", 0);
	if (leave)
		err = cow_read_all(d);
	if (!wrote && err >= 0)
		err = dump_write(d, outfd);
	cow_end_all(d);      /* the snapshot children, read by dump_write */
	if (getenv("ZAPC_ENGINE_TIMING"))
		fprintf(stderr, "TIMING written_ms %.3f\n", ms_since(&t0));
	if (d->indexed && err >= 0)
		log_info("dump: %llu KiB read, %llu pages stored, %llu unchanged pages not stored (dedupe)",
			 (unsigned long long)d->raw_bytes >> 10, (unsigned long long)d->stored_pages,
			 (unsigned long long)d->deduped_pages);
	if (leave && d->track && err >= 0)
		dirty_keep(d, init);
	dirty_drop(d);
	if (err < 0) {
		if (!leave)
			goto fail;
		goto out;
	}
	/* --sync: the job's pods die only when every image is written. */
	if (!leave && (err = control_sync("written", 0)) < 0)
		goto fail;
	if (!leave) {
		inet_dump_detach();      /* TCP sockets close silently: no FIN/RST */
		for (int i = 0; i < ncg; i++)
			cg_kill(cgroups[i]);
		/* the tracees die with SIGKILL; our ptrace links go with them */
		release_pod(d, true);
		inet_dump_drop(d);       /* once they are dead: held packets dropped */
		if (getenv("ZAPC_ENGINE_TIMING"))
			fprintf(stderr, "TIMING ended_ms %.3f\n", ms_since(&t0));
	}
out:
	if (outfd != STDOUT_FILENO)
		close(outfd);
	if (err < 0 && strcmp(out, "-"))
		unlink(out);
	done.status = err < 0 ? err : 0;
	done.hold_kept = inet_hold_kept();
	done.image_bytes = d->image_bytes;
	done.processes = (uint32_t)d->nprocs;
	for (int i = 0; i < d->nprocs; i++)
		done.threads += (uint32_t)d->procs[i].nth;
	control_done(&done);
	return err < 0 ? 1 : 0;

fail:
	rt_leave();
	dirty_drop(d);
	cow_abort_all(d);
	release_pod(d, false);
	for (int i = 0; i < frozen; i++)
		cg_freeze(cgroups[i], 0);
	for (int i = 0; i < ncg; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/cgroup.freeze", cgroups[i]);
		write_str(path, "0");
	}
	inet_dump_release();
	if (outfd != STDOUT_FILENO) {
		close(outfd);
		unlink(out);
	}
	done.status = err < 0 ? err : -EIO;
	done.hold_kept = inet_hold_kept();
	control_done(&done);
	return 1;
}
