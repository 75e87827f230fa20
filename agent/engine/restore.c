/*
 * restore.c — `zapc-engine restore`: rebuild a pod from an image, all or nothing.
 *
 * 1. read INFO, TREE, FILES and every PROC record; check them;
 * 2. time namespace for the children with offsets that continue the pod's
 *    CLOCK_MONOTONIC/BOOTTIME; the inventory of open files (files.c, pipe.c),
 *    shared memory filled from SHM_PAGES;
 * 3. fork the pod's init with clone3(CLONE_NEWPID|NEWNS|NEWUTS|NEWIPC (netns: joined or unshared before 2),
 *    set_tid={1}); each task (still engine code) forks its children with
 *    their pids, sets session/group, fds, cwd, ...; zombies exit at once;
 *    every task maps a scratch page, reports ready and blocks;
 * 4. per process: seize it, inject the memory layout and pages (mm.c),
 *    threads, signals, timers, creds, then set the final registers;
 * 5. only when the image trailer has been verified is everything detached.
 * On any error the pod's init is killed — with it the whole pid namespace —
 * and one line says what failed.  Tasks are seized with PTRACE_O_EXITKILL so
 * a crashing engine takes its half-built pod with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/engine/control.h"
#include "agent/pod.h"
#include "agent/engine/engine.h"
#include "agent/engine/pagefill.h"
#include "agent/engine/inet.h"
#include "agent/engine/objects.h"
#include "agent/engine/seed.h"
#include "lib/log.h"

int inv_move(struct rst_ctx *r, int fd);
int pty_devpts_fd(void);   /* pty.c */
int mounts_attach(void);   /* mounts.c */
int sysv_restore_early(struct rst_ctx *r, struct rproc *p);   /* sysv.c */


static struct image_reader *g_in;
static int la_valid;
static uint32_t la_type, la_len;

/* next record, with one record of lookahead */
static int rec_next(struct rst_ctx *r, uint32_t *type, uint32_t *len)
{
	(void)r;
	if (la_valid) {
		la_valid = 0;
		*type = la_type;
		*len = la_len;
		return 1;
	}
	int n = image_next(g_in, type, len);
	if (n < 0)
		log_err("%s", image_reader_error(g_in));
	return n;
}

static void rec_unread(uint32_t type, uint32_t len)
{
	la_valid = 1;
	la_type = type;
	la_len = len;
}

/*
 * An indexed or incremental image (docs/incremental.md) is restored through
 * its squash: chain.c reads and verifies every link here, then a child
 * streams the whole memory as a plain image into a pipe that replaces *in.
 */
static int open_chain(struct image_reader **in, int infd, const char *name)
{
	if (!(image_reader_header(*in)->flags & (IMAGE_FLAG_INDEXED | IMAGE_FLAG_INCREMENTAL)))
		return 0;
	pid_t child;
	int fd = chain_restore_pipe(infd, strcmp(name, "-") ? name : "the image", &child);
	if (fd < 0)
		return fd;
	char ebuf[256];
	image_reader_free(*in);
	*in = image_reader_fd(fd, ebuf, sizeof(ebuf));
	if (!*in) {
		log_err("restore: squashed chain: %s", ebuf);
		return -EIO;
	}
	image_reader_set_namer(*in, rec_name);
	return 0;
}

int mm_next(struct rst_ctx *r, uint32_t *type, uint32_t *len)
{
	int n = rec_next(r, type, len);
	if (n > 0 && *type != REC_PAGES)
		rec_unread(*type, *len);
	return n;
}

static void *read_msg(uint32_t want, const ProtobufCMessageDescriptor *desc)
{
	uint32_t type, len;
	int n = rec_next(NULL, &type, &len);
	if (n <= 0) {
		if (n == 0)
			log_err("restore: image ends before a '%s' record", rec_name(want));
		return NULL;
	}
	if (type != want) {
		log_err("restore: record %llu: '%s' where '%s' was expected",
			(unsigned long long)image_reader_record_index(g_in), rec_name(type), rec_name(want));
		return NULL;
	}
	void *buf;
	if (image_read_all(g_in, &buf, &len) < 0) {
		log_err("%s", image_reader_error(g_in));
		return NULL;
	}
	void *m = protobuf_c_message_unpack(desc, NULL, len, buf);
	free(buf);
	if (!m)
		log_err("restore: record %llu '%s': malformed payload",
			(unsigned long long)image_reader_record_index(g_in), rec_name(want));
	return m;
}

/* ------------------------------------------------------------------ checks */

static int check_tree(struct rst_ctx *r)
{
	ImgTree *t = r->tree;
	int pid_max = 32768;
	char *s = read_file_str("/proc/sys/kernel/pid_max", NULL);
	if (s) {
		pid_max = atoi(s);
		free(s);
	}
	if (!t->n_procs || t->n_procs > MAX_PROCS)
		goto bad;
	if (t->procs[0]->pid != 1 || t->procs[0]->ppid != 0 || t->procs[0]->zombie)
		goto bad;
	size_t nth = 0;
	for (size_t i = 0; i < t->n_procs; i++) {
		ImgProc *p = t->procs[i];
		if (!p->pid || p->pid >= (uint32_t)pid_max)
			goto bad;
		bool parent_ok = i == 0;
		for (size_t k = 0; k < i; k++) {
			if (t->procs[k]->pid == p->pid)
				goto bad;
			if (t->procs[k]->pid == p->ppid && !t->procs[k]->zombie)
				parent_ok = true;
		}
		if (!parent_ok || !p->n_tids || p->n_tids > MAX_THREADS || p->tids[0] != p->pid)
			goto bad;
		nth += p->n_tids;
		for (size_t k = 1; k < p->n_tids; k++)
			if (!p->tids[k] || p->tids[k] >= (uint32_t)pid_max)
				goto bad;
	}
	if (nth > 65536)
		goto bad;
	return 0;
bad:
	log_err("restore: record 'tree': inconsistent process tree in image");
	return -EINVAL;
}

/* ------------------------------------------------------------------ in the new tasks */

static struct rst_ctx *g_r;

static void report(int32_t pid, int32_t err)
{
	struct seed_report m = { pid, err, err < 0 ? SEED_FAIL_LOGGED : SEED_READY, 0, 0 };
	ssize_t n = write(g_r->ready_w, &m, sizeof(m));
	(void)n;
}

static int make_shm_mount(struct rst_ctx *r)
{
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC), m = -1;

	if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "mode", "1777", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "size", "65536k", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
	    (m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0) {
		int e = errno;
		log_err("restore: the pod's /dev/shm tmpfs: %s", strerror(e));
		if (fs >= 0)
			close(fs);
		return -e;
	}
	close(fs);
	/* above the image's fd numbers, so the init still has it when it mounts */
	r->shm_mnt = inv_move(r, m);
	return r->shm_mnt < 0 ? -errno : 0;
}

static pid_t clone_with_pid(uint64_t flags, pid_t pid)
{
	pid_t tid = pid;
	struct clone_args ca = { 0 };
	ca.flags = flags;
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uint64_t)&tid;
	ca.set_tid_size = 1;
	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

static void become_zombie(ImgProc *p)
{
	int st = p->has_exit_status ? p->exit_status : 0;
	if (p->comm)
		prctl(PR_SET_NAME, p->comm);
	if (WIFSIGNALED(st)) {
		struct rlimit rl = { 0, 0 };
		setrlimit(RLIMIT_CORE, &rl);
		signal(WTERMSIG(st), SIG_DFL);
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, WTERMSIG(st));
		sigprocmask(SIG_UNBLOCK, &s, NULL);
		kill(getpid(), WTERMSIG(st));
	}
	_exit(WEXITSTATUS(st));
}

int proc_index(const struct rst_ctx *r, uint32_t pid)
{
	for (int i = 0; i < r->nprocs; i++)
		if (r->procs[i].tree->pid == pid)
			return i;
	return -1;
}

static int cmp_pid(const void *a, const void *b)
{
	const struct rproc *x = *(struct rproc *const *)a, *y = *(struct rproc *const *)b;
	return (int)x->tree->pid - (int)y->tree->pid;
}

/*
 * A ready task drops the engine's memory (its fork copy) itself, reports and
 * waits for the engine from code in its scratch page (inj_batch_jump): the
 * munmap's page-table teardown then runs while other tasks are still being
 * made, on both cores, instead of later as a call the engine injects and
 * waits for.  Kept: the scratch pages, [vvar], [vvar_vclock] and [vdso]
 * (mm.c moves them to the image's addresses).  The engine's glibc registered
 * rseq in this thread's TLS, unmapped here, and the kernel writes to a
 * registered rseq area on the task's next preemption: it is unregistered
 * first, and if that fails the task keeps the memory (mm.c unmaps it).
 * The parked task sits in read(hold_r), as before; EOF means the engine
 * is gone: exit.
 */
static void park(struct rst_ctx *r, ImgProc *t)
{
	if (__rseq_size) {
		void *rs = (char *)__builtin_thread_pointer() + __rseq_offset;
		if (syscall(SYS_rseq, rs, __rseq_size, 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG) < 0 &&
		    (__rseq_size == 32 || syscall(SYS_rseq, rs, 32, 1, RSEQ_SIG) < 0))
			return;
	}
	struct range gaps[5];
	struct inj_op ops[8];
	int n = 0, ngaps = engine_memory_gaps(r, gaps);
	for (int i = 0; i < ngaps; i++)
		ops[n++] = (struct inj_op){ SYS_munmap, { gaps[i].s, gaps[i].e - gaps[i].s }, 0 };
	uint64_t msg = r->scratch_addr + 2 * PAGE;
	struct seed_report m = { (int32_t)t->pid, 0, SEED_READY, 0, 0 };
	memcpy((void *)msg, &m, sizeof(m));
	ops[n++] = (struct inj_op){ SYS_write, { (uint64_t)r->ready_w, msg, sizeof(m) }, 0 };
	ops[n++] = (struct inj_op){ SYS_read, { (uint64_t)r->hold_r, msg + 64, 1 }, 0 };
	ops[n++] = (struct inj_op){ SYS_exit_group, { 1 }, 0 };
	inj_batch_jump(r->scratch_addr + 3 * PAGE, ops, n);
}

/* Put pid (0: the caller) into each of the pod's cgroups; logs a failure. */
static int join_cgroups(char *const *cgroups, int ncg, pid_t pid)
{
	char path[4096], num[16];
	snprintf(num, sizeof(num), "%d", (int)pid);
	for (int i = 0; i < ncg; i++) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", cgroups[i]);
		int err = write_str(path, num);
		if (err < 0) {
			log_err("restore: join cgroup %s: %s", cgroups[i], strerror(-err));
			return err;
		}
	}
	return 0;
}

static void run_task(struct rst_ctx *r, int idx) __attribute__((noreturn));
static void run_task(struct rst_ctx *r, int idx)
{
	struct rproc *p = &r->procs[idx];
	ImgProc *t = p->tree;
	int err = 0;
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	/* Every disposition back to default: the image lists only the signals
	 * the program handled or ignored, and a task would otherwise keep the
	 * engine's (SIGPIPE ignored survives even the seed's exec). */
	for (int sig = 1; sig <= 64; sig++) {
		struct { uint64_t handler, flags, restorer, mask; } dfl = { 0 };
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
	}
	close(r->hold_w);
	close(r->ready_r);
	if (idx == 0) {
		char c;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* spawned (spawn_init): it joins the pod's cgroups itself, before
		 * its mounts hide the node's /sys */
		if (r->init_spawned && (err = join_cgroups(r->cgroups, r->ncg, 0)) < 0)
			goto fail;
		/* The same mounts as a pod the agent starts: own /proc, /sys, devpts,
		 * /dev/shm, mqueue (we are pid 1 of the new pid and mount ns, in the
		 * pod's netns). */
		unsigned mflags = POD_MOUNTS_SHM_DONE;
		/* the pod's devpts with its ptys re-created (pty.c): mounted
		 * first, so /dev/ptmx gets bound to its ptmx */
		if (pty_devpts_fd() >= 0) {
			if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
			    move_mount(pty_devpts_fd(), "", AT_FDCWD, "/dev/pts", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
				err = -errno;
				log_err("restore: attach the pod's devpts: %s", strerror(errno));
				goto fail;
			}
			mflags |= POD_MOUNTS_PTS_DONE;
		}
		if ((err = pod_setup_mounts_flags(NULL, mflags)) < 0)
			goto fail;
		if (move_mount(r->shm_mnt, "", AT_FDCWD, "/dev/shm", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
			err = -errno;
			log_err("restore: attach the pod's /dev/shm: %s", strerror(errno));
			goto fail;
		}
		if ((err = mounts_attach()) < 0)     /* the pod's own mounts */
			goto fail;
		if (r->info->hostname && sethostname(r->info->hostname, strlen(r->info->hostname)) < 0)
			err = -errno;
		if (r->info->domainname && setdomainname(r->info->domainname, strlen(r->info->domainname)) < 0)
			err = -errno;
		if (err < 0) {
			log_err("restore: hostname: %s", strerror(-err));
			goto fail;
		}
		if (!r->init_spawned && read(r->go_r, &c, 1) != 1)
			_exit(1);
	}
	close(r->go_r);
	if (t->sid == t->pid && setsid() < 0) {
		err = -errno;
		log_err("restore: pid %u: setsid: %s", t->pid, strerror(errno));
		goto fail;
	}
	if (t->pgid && (pid_t)t->pgid != getpgid(0) && setpgid(0, (pid_t)t->pgid) < 0) {
		err = -errno;
		log_err("restore: pid %u: process group %u: %s", t->pid, t->pgid, strerror(errno));
		goto fail;
	}
	if (t->sid && (pid_t)t->sid != getsid(0)) {
		log_err("restore: pid %u: session %u cannot be recreated", t->pid, t->sid);
		err = -ENOTSUP;
		goto fail;
	}
	/* the rest of the tree: forks of the restore seed (restore_seed.c) */
	if (idx == 0 && r->seed_fd >= 0) {
		if ((err = sysv_restore_early(r, p)) < 0 || (err = seed_exec(r)) < 0)
			goto fail;
	}
	/* children, in pid order so group leaders exist before their members */
	struct rproc **kids = xcalloc((size_t)r->nprocs, sizeof(*kids));
	int nk = 0;
	for (int i = 0; i < r->nprocs; i++)
		if (r->procs[i].tree->ppid == t->pid && i != idx)
			kids[nk++] = &r->procs[i];
	qsort(kids, (size_t)nk, sizeof(*kids), cmp_pid);
	for (int k = 0; k < nk; k++) {
		pid_t c = clone_with_pid(0, (pid_t)kids[k]->tree->pid);
		if (c < 0) {
			err = -errno;
			log_err("restore: pid %u: fork pid %u: %s", t->pid, kids[k]->tree->pid, strerror(errno));
			goto fail;
		}
		if (c == 0) {
			if (kids[k]->tree->zombie)
				become_zombie(kids[k]->tree);
			run_task(r, (int)(kids[k] - r->procs));
		}
		/* like a shell: the parent sets the child's group too, so it exists
		 * before the next sibling may want to join it */
		ImgProc *kt = kids[k]->tree;
		if (!kt->zombie && kt->pgid && kt->sid != kt->pid)
			setpgid(c, (pid_t)kt->pgid);
	}
	free(kids);
	if ((err = objects_early(r, p)) < 0)
		goto fail;
	/* executable too: page 3 holds the batch loop of inject.c */
	void *sc = mmap((void *)r->scratch_addr, 4 * PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (sc != (void *)r->scratch_addr) {
		err = -EEXIST;
		log_err("restore: pid %u: scratch page at %#llx is taken", t->pid,
			(unsigned long long)r->scratch_addr);
		goto fail;
	}
	park(r, t);     /* returns only if the task cannot drop the engine's memory */
	report((int32_t)t->pid, 0);
	for (;;) {
		char c;
		ssize_t n = read(r->hold_r, &c, 1);
		if (n == 0)
			_exit(1);       /* the engine is gone */
	}
fail:
	report((int32_t)t->pid, err ? err : -EIO);
	_exit(1);
}

/*
 * The pod's init when it becomes the seed: a vfork-like child (CLONE_VM |
 * CLONE_VFORK, on a stack of its own) runs its part of run_task in the
 * engine's memory while the engine waits, then execs the seed.  A fork
 * would copy the engine's page tables, leave every page of the engine
 * copy-on-write (the engine then faults on its first write to each) and
 * the exec would tear the copy down again.  What the child changes in
 * that memory stays: run_task's part for the init only reads the engine's
 * state, and frees what it allocates.  Not for SysV shared memory: its
 * content is written through an attach in the init, and with the engine's
 * memory the pages would be charged to the engine's memory cgroup (its
 * mm's owner), not the pod's.
 */
static int init_main(void *arg)
{
	run_task(arg, 0);
}

static pid_t spawn_init(struct rst_ctx *r, uint64_t ns_flags)
{
	size_t len = 512u << 10;
	void *stk = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stk == MAP_FAILED)
		return -1;
	r->init_spawned = true;
	/* (the first task of a new pid namespace is its pid 1) */
	pid_t pid = clone(init_main, (char *)stk + len, CLONE_VM | CLONE_VFORK | (int)ns_flags | SIGCHLD, r);
	int e = errno;
	munmap(stk, len);
	errno = e;
	return pid;
}

/* ------------------------------------------------------------------ engine side */

/* The pod's CLOCK_MONOTONIC/BOOTTIME continue from their values at the dump
 * (default) or, with --shift-clocks, also count the time the pod was down
 * (CLOCK_REALTIME now minus at the dump, as ZapC's time virtualization). */
static bool shift_clocks;

static int set_time_offsets(struct rst_ctx *r)
{
	if (unshare(CLONE_NEWTIME) < 0) {
		log_err("restore: time namespace: %s", strerror(errno));
		return -errno;
	}
	struct timespec m, b;
	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_BOOTTIME, &b);
	int64_t mo = (int64_t)r->info->mono_ns - ((int64_t)m.tv_sec * 1000000000ll + m.tv_nsec);
	int64_t bo = (int64_t)r->info->boot_ns - ((int64_t)b.tv_sec * 1000000000ll + b.tv_nsec);
	if (shift_clocks) {
		struct timespec w;
		clock_gettime(CLOCK_REALTIME, &w);
		int64_t then = r->info->has_real_ns ? (int64_t)r->info->real_ns : (int64_t)r->info->ctime * 1000000000ll;
		int64_t down = ((int64_t)w.tv_sec * 1000000000ll + w.tv_nsec) - then;
		if (down > 0 && down < (int64_t)100 * 365 * 86400 * 1000000000ll) {
			mo += down;
			bo += down;
		}
	}
	/* boottime must stay >= monotonic inside the namespace */
	char buf[160];
	int64_t ms = mo >= 0 ? mo / 1000000000ll : -((-mo + 999999999ll) / 1000000000ll);
	int64_t bs = bo >= 0 ? bo / 1000000000ll : -((-bo + 999999999ll) / 1000000000ll);
	snprintf(buf, sizeof(buf), "monotonic %lld %lld\nboottime %lld %lld\n", (long long)ms,
		 (long long)(mo - ms * 1000000000ll), (long long)bs, (long long)(bo - bs * 1000000000ll));
	int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, strlen(buf)) < 0) {
		log_err("restore: time offsets: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	close(fd);
	return 0;
}

static int fill_shm(struct rst_ctx *r)
{
	uint32_t type, len;
	int n;
	static uint8_t *buf;
	while ((n = rec_next(r, &type, &len)) > 0) {
		if (type != REC_SHM_PAGES) {
			rec_unread(type, len);
			return 0;
		}
		struct page_prefix pp;
		if (len < sizeof(pp) || image_read(g_in, &pp, sizeof(pp)) < 0)
			return -EPROTO;
		int fd = inv_fd_for_shm(r, pp.owner), k = -1;
		for (size_t i = 0; i < r->files->n_shms; i++)
			if (r->files->shms[i]->id == pp.owner)
				k = (int)i;
		uint64_t dlen = (uint64_t)pp.npages * PAGE;
		if (fd < 0 || pp.npages > PAGES_PER_RECORD || dlen + sizeof(pp) != len ||
		    pp.addr % PAGE || pp.addr + dlen > r->files->shms[k]->size) {
			if (image_skip(g_in) < 0) {
				log_err("%s", image_reader_error(g_in));
				return -EBADMSG;
			}
			log_err("restore: record %llu 'shm-pages': does not fit shared memory %u",
				(unsigned long long)image_reader_record_index(g_in), pp.owner);
			return -EPROTO;
		}
		if (!buf && !(buf = malloc(PAGES_PER_RECORD * PAGE)))
			return -ENOMEM;
		if (image_read(g_in, buf, dlen) < 0) {
			log_err("%s", image_reader_error(g_in));
			return -EBADMSG;
		}
		if (pwrite(fd, buf, dlen, (off_t)pp.addr) != (ssize_t)dlen)
			return -errno;
	}
	return n;
}

/* ns pid -> host pid, by walking the new tree from its init */
static int map_host_pids(struct rst_ctx *r, pid_t root)
{
	pid_t queue[MAX_PROCS];
	int qn = 0;
	queue[qn++] = root;
	for (int q = 0; q < qn; q++) {
		char path[96];
		snprintf(path, sizeof(path), "/proc/%d/status", queue[q]);
		char *st = read_file_str(path, NULL);
		if (!st)
			continue;
		uint32_t ns = status_field_u32(st, "NSpid", -1);
		free(st);
		int i = proc_index(r, ns);
		if (i >= 0)
			r->procs[i].hpid = queue[q];
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", queue[q], queue[q]);
		char *c = read_file_str(path, NULL);
		for (char *s = c; s && *s && qn < MAX_PROCS;) {
			char *e;
			long v = strtol(s, &e, 10);
			if (e == s)
				break;
			queue[qn++] = (pid_t)v;
			s = e;
		}
		free(c);
	}
	for (int i = 0; i < r->nprocs; i++)
		if (!r->procs[i].tree->zombie && !r->procs[i].hpid) {
			log_err("restore: pid %u not found after fork", r->procs[i].tree->pid);
			return -ESRCH;
		}
	return 0;
}

static int seize_task(struct rst_ctx *r, struct rproc *p)
{
	int st, err;
	if (!p->seized && (ptrace(PTRACE_SEIZE, p->hpid, 0, PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL) < 0 ||
			   ptrace(PTRACE_INTERRUPT, p->hpid, 0, 0) < 0)) {
		log_err("restore: pid %u: seize: %s", p->tree->pid, strerror(errno));
		return -errno;
	}
	p->seized = true;
	if ((err = wait_stop(p->hpid, &st)) < 0 || !WIFSTOPPED(st))
		return err < 0 ? err : -ESRCH;
	p->inj.tid = p->hpid;
	if ((err = regs_get(p->hpid, &p->inj.base)) < 0)
		return err;
	/* the task's vdso: inherited from the engine, where ours is */
	p->vdso_now = r->eng_vdso;
	long off = vdso_syscall_offset();
	if (!p->vdso_now || off < 0)
		return -ENOTSUP;
	p->inj.syscall_ip = p->vdso_now + (uint64_t)off;
	uint64_t mask = ~(1ull << (SIGTRAP - 1));
	if (ptrace(PTRACE_SETSIGMASK, p->hpid, (void *)8, &mask) < 0)
		return -errno;
	return 0;
}

/* the thread records that follow a process's pages */
static int read_threads(struct rproc *p)
{
	p->th = xcalloc(p->tree->n_tids, sizeof(ImgThread *));
	p->nth = (int)p->tree->n_tids;
	for (int i = 0; i < p->nth; i++) {
		p->th[i] = read_msg(REC_THREAD, &img_thread__descriptor);
		if (!p->th[i])
			return -EBADMSG;
		if (p->th[i]->n_pending > 65536) {
			log_err("restore: record 'thread' of tid %u: too many pending signals", p->th[i]->tid);
			return -EINVAL;
		}
		if (p->th[i]->tid != p->tree->tids[i]) {
			log_err("restore: record 'thread': tid %u where %u was expected", p->th[i]->tid,
				p->tree->tids[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/* p is seized and its layout batch started (mm_restore_map_start) */
static int restore_process(struct rst_ctx *r, struct rproc *p)
{
	int err;
	if ((err = mm_restore_late(r, p, g_in, mm_next)) < 0 || (!p->th && (err = read_threads(p)) < 0))
		return err;
	if ((err = objects_late(r, p)) < 0)
		return err;
	/* finish: drop what the restore itself used (queued with the other
	 * late calls: one batch, rqueue.c); the batch runs in the task while
	 * the engine goes on with the next process (late_finish waits) */
	if (p == &r->procs[0])
		rq_add(p, "restore: pdeathsig", 0, SYS_prctl, PR_SET_PDEATHSIG, 0, 0, 0, 0, 0);
	rq_add(p, "restore: close inventory", 0, SYS_close_range, (uint64_t)r->inv_base, ~0u, 0, 0, 0, 0);
	/* file locks after that close: it drops the POSIX locks of the task (locks.c) */
	if ((err = locks_restore_late(r, p)) < 0)
		return err;
	return rq_flush_start(r, p);
}


/* p's late batch is done: check it, drain on if it has to; then start the
 * scratch munmap (not in the batch: it runs from these pages).  The task
 * tears its scratch mapping down (page tables too) on the other core while
 * the engine goes on; finish_process waits for it and sets the final
 * registers. */
static int late_finish(struct rst_ctx *r, struct rproc *p)
{
	struct inj *t = &p->tinj[0];
	int err = rq_flush_finish(r, p);
	rq_free(p);
	if (err < 0)
		return err;
	if (p->rq_undrained && (err = signals_drain(r, p, t)) < 0)
		return err;
	return inj_syscall_start(t, SYS_munmap, r->scratch_addr, 4 * PAGE, 0, 0, 0, 0);
}

static int finish_process(struct rst_ctx *r, struct rproc *p)
{
	long x;
	int err = inj_syscall_finish(&p->tinj[0], &x);
	if (err < 0)
		return err;
	if (x < 0 && x > -4096) {
		log_err("tid %d: restore: unmap scratch: %s", p->tinj[0].tid, strerror((int)-x));
		return (int)x;
	}
	for (int i = 0; i < p->nth; i++)
		if ((err = thread_set_final(r, p, i)) < 0)
			return err;
	return 0;
}

/*
 * Several processes at once (restore_main): the late batches (`batching`)
 * and then the scratch munmaps (`unmapping`) of the ones before run in their
 * tasks while the next one's pages go in; each is waited for only
 * BATCH_DEPTH / UNMAP_DEPTH processes later (a munmap frees the scratch
 * pages' page tables, ~0.1-0.2 ms on this PVM guest: waiting for it one
 * process later kept the engine waiting for the tasks).
 */
#define BATCH_DEPTH 3
#define UNMAP_DEPTH 3
struct inflight {
	struct rproc *batching[BATCH_DEPTH], *unmapping[UNMAP_DEPTH];
	int nbatch, nunmap;
};

/* p's late batch has started (NULL: no more will): wait for what is due —
 * the oldest batch, once BATCH_DEPTH are in flight (or at the end), whose
 * munmap then starts, after the oldest munmap if UNMAP_DEPTH are */
static int inflight_add(struct rst_ctx *r, struct inflight *f, struct rproc *p)
{
	int err;
	if (f->nbatch == BATCH_DEPTH || (!p && f->nbatch)) {
		if (f->nunmap == UNMAP_DEPTH) {
			if ((err = finish_process(r, f->unmapping[0])) < 0)
				return err;
			memmove(f->unmapping, f->unmapping + 1, (size_t)--f->nunmap * sizeof(*f->unmapping));
		}
		if ((err = late_finish(r, f->batching[0])) < 0)
			return err;
		f->unmapping[f->nunmap++] = f->batching[0];
		memmove(f->batching, f->batching + 1, (size_t)--f->nbatch * sizeof(*f->batching));
	}
	if (p)
		f->batching[f->nbatch++] = p;
	return 0;
}

/* every process in flight finished */
static int inflight_end(struct rst_ctx *r, struct inflight *f)
{
	int err;
	while (f->nbatch)
		if ((err = inflight_add(r, f, NULL)) < 0)
			return err;
	for (int k = 0; k < f->nunmap; k++)
		if ((err = finish_process(r, f->unmapping[k])) < 0)
			return err;
	f->nunmap = 0;
	return 0;
}

bool rst_vdso_block(const struct rst_ctx *r)
{
	return r->eng_vvar + r->eng_vvar_len == (r->eng_vclock_len ? r->eng_vclock : r->eng_vdso) &&
	       (!r->eng_vclock_len || r->eng_vclock + r->eng_vclock_len == r->eng_vdso);
}

bool rst_maps_line(struct rst_ctx *r, char *line, unsigned long long *s, unsigned long long *e)
{
	int pos = 0;
	if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", s, e, &pos) < 2)
		return false;
	char *name = line + pos;
	name[strcspn(name, "\n")] = 0;
	if (!strcmp(name, "[vdso]"))
		r->eng_vdso = *s, r->eng_vdso_len = *e - *s;
	else if (!strcmp(name, "[vvar]"))
		r->eng_vvar = *s, r->eng_vvar_len = *e - *s;
	else if (!strcmp(name, "[vvar_vclock]"))
		r->eng_vclock = *s, r->eng_vclock_len = *e - *s;
	return true;
}

static void timing(const char *what)
{
	static struct timespec t0;
	struct timespec t;
	if (!getenv("ZAPC_ENGINE_TIMING"))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (!t0.tv_sec)
		t0 = t;
	fprintf(stderr, "TIMING restore_%s_ms %.3f\n", what, (t.tv_sec - t0.tv_sec) * 1e3 + (t.tv_nsec - t0.tv_nsec) / 1e6);
}

/*
 * Pages before every task exists (cowshare.c): a task whose children share
 * pages with it (a filler) reports SEED_FILL_ME once laid out and waits;
 * its pages go in, then SEED_WAKE_SIG lets it fork them.  Pages come in
 * stream order (tree order), so the tasks before the last filler get theirs
 * here too, each as soon as it is laid out and waiting or parked — through
 * process_vm_writev and /proc/PID/mem, no ptrace.  A task before it that
 * parked without its layout (the seed could not map it) would need the
 * engine's layout batch first: then this stops, every filler is woken
 * without its pages, and their children copy the pages later instead of
 * sharing them (cow_forked stays false).
 */
struct early {
	int next, end;           /* next task whose pages are due; the tasks before end */
	bool off;
};

static int wake_filler(struct rst_ctx *r, struct rproc *x, bool filled)
{
	x->fill_wait = false;
	for (int i = 0; filled && i < r->nprocs; i++)
		if (r->procs[i].cow_late && r->procs[i].cow_parent == (int)(x - r->procs))
			r->procs[i].cow_forked = true;
	if (kill(x->hpid, SEED_WAKE_SIG) < 0) {
		log_err("restore: pid %u: wake it up after its pages: %s", x->tree->pid, strerror(errno));
		return -errno;
	}
	return 0;
}

static int early_pages(struct rst_ctx *r, struct early *e)
{
	int err;
	while (!e->off && e->next < e->end) {
		struct rproc *x = &r->procs[e->next];
		if (x->tree->zombie) {
			e->next++;
			continue;
		}
		if (!x->fill_wait && !x->ready)
			return 0;
		if (!x->fill_wait && !x->seed_laid) {
			log_debug("restore: pid %u has no layout yet: its pages and the next ones later", x->tree->pid);
			e->off = true;
			break;
		}
		if ((err = mm_restore_pages(r, x, g_in, mm_next)) < 0 || (err = read_threads(x)) < 0)
			return err;
		if (x->fill_wait && (err = wake_filler(r, x, true)) < 0)
			return err;
		e->next++;
	}
	for (int i = 0; e->off && i < r->nprocs; i++)
		if (r->procs[i].fill_wait && (err = wake_filler(r, &r->procs[i], false)) < 0)
			return err;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: zapc-engine restore -i FILE|- [--netns PATH] [--cgroup DIR...] [--name NEWNAME] "
		"[--inherit-fd N:pipe:[INODE]|N:PATH ...] [--control FD] [--shift-clocks]\n");
}

int restore_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", required_argument, 0, 'i' }, { "netns", required_argument, 0, 'N' },
		{ "cgroup", required_argument, 0, 'c' }, { "name", required_argument, 0, 'n' },
		{ "inherit-fd", required_argument, 0, 'I' }, { "control", required_argument, 0, 'C' },
		{ "sync", no_argument, 0, 'S' }, { "shift-clocks", no_argument, 0, 'T' }, { 0, 0, 0, 0 } };
	struct control_done done = { 0 };
	char *in = NULL, *netns = NULL, *cgroups[16];
	int ncg = 0, c, err = -EINVAL, infd = -1, netfd = -1;
	pid_t root = -1;
	struct rst_ctx R = { .shm_mnt = -1, .seed_fd = -1, .plan_fd = -1 }, *r = &R;
	struct pod_net net = { 0 };
	g_r = r;
	while ((c = getopt_long(argc, argv, "i:N:c:n:I:C:ST", opts, NULL)) != -1) {
		switch (c) {
		case 'i': in = optarg; break;
		case 'N': netns = optarg; break;
		case 'c': if (ncg < 16) cgroups[ncg++] = optarg; break;
		case 'n': break;
		case 'C': if (control_open(optarg) < 0) return 2; break;
		case 'S': control_sync_enable(); break;	/* manager: sync point */
		case 'T': shift_clocks = true; break;
		case 'I': {
			char *colon = strchr(optarg, ':');
			if (!colon || r->ninherit == 16 || fcntl(atoi(optarg), F_GETFD) < 0) {
				log_err("restore: --inherit-fd %s: want N:KEY with an open fd N", optarg);
				return 2;
			}
			r->inherit[r->ninherit].fd = atoi(optarg);
			r->inherit[r->ninherit++].key = colon + 1;
			break;
		}
		default: usage(); return 2;
		}
	}
	if (!in) {
		usage();
		return 2;
	}
	struct rlimit nl;
	if (getrlimit(RLIMIT_NOFILE, &nl) == 0) {
		nl.rlim_cur = nl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nl);
	}
	infd = strcmp(in, "-") ? open(in, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (infd < 0) {
		log_err("restore: %s: %s", in, strerror(errno));
		return 1;
	}
	if (netns && (netfd = open(netns, O_RDONLY | O_CLOEXEC)) < 0) {
		log_err("restore: netns %s: %s", netns, strerror(errno));
		return 1;
	}
	char ebuf[256];
	timing("start");
	heap_prepare(2u << 20);
	g_in = image_reader_fd(infd, ebuf, sizeof(ebuf));
	if (!g_in) {
		log_err("%s", ebuf);
		return 1;
	}
	image_reader_set_namer(g_in, rec_name);
	if ((err = open_chain(&g_in, infd, in)) < 0)
		goto fail;
	struct utsname u;
	uname(&u);
	if (!(r->info = read_msg(REC_INFO, &img_info__descriptor)))
		goto fail;
	if (strcmp(r->info->arch, u.machine) || r->info->page_size != PAGE) {
		log_err("restore: record 'info': image is for %s with %u-byte pages, this is %s", r->info->arch,
			r->info->page_size, u.machine);
		goto fail;
	}
	if (!(r->tree = read_msg(REC_TREE, &img_tree__descriptor)) || check_tree(r) < 0)
		goto fail;
	/* FILES before the pod is asked for: whether it has sockets decides the hold */
	if (!(r->files = read_msg(REC_FILES, &img_files__descriptor)))
		goto fail;
	/* Under an agent, the agent owns pods: it prepares one for the image's
	 * identity (netns with the pod's IP, cgroups) and hands it over. */
	if (control_active()) {
		if (netfd >= 0 || ncg) {
			log_err("restore: --control excludes --netns and --cgroup");
			goto fail;
		}
		net.want = inet_image_has_sockets(r);
		if ((err = control_pod_needed(r->info->pod_name, r->info->pod_ip, r->info->hostname,
					      &netfd, cgroups, 16, &ncg, &net)) < 0)
			goto fail;
		netns = "(the agent's pod)";
	}
	/* Hold the pod's traffic (if it has TCP/UDP sockets) before they exist,
	 * as soon as its netns is there; the agent left its eth0 down (net) and
	 * the hold brings it up once in force. */
	if ((err = inet_restore_begin(r, netfd, &net)) < 0)
		goto fail;
	r->nprocs = (int)r->tree->n_procs;
	r->procs = xcalloc((size_t)r->nprocs, sizeof(struct rproc));
	int maxfd = 2;
	for (int i = 0; i < r->nprocs; i++) {
		struct rproc *p = &r->procs[i];
		p->tree = r->tree->procs[i];
		if (p->tree->zombie)
			continue;
		if (!(p->core = read_msg(REC_PROC, &img_proc_core__descriptor)))
			goto fail;
		if (p->core->pid != p->tree->pid || !p->core->mm || !p->core->creds || p->core->n_fds > MAX_FDS ||
		    p->core->n_vmas > MAX_VMAS || p->core->n_sigactions > 64 || p->core->n_itimers > 3 ||
		    p->core->n_timers > 65536 || p->core->n_shared_pending > 65536 || p->core->n_rlimits > 64) {
			log_err("restore: record 'proc' of pid %u: does not match the tree", p->core->pid);
			goto fail;
		}
		for (size_t k = 0; k < p->core->n_fds; k++) {
			if (p->core->fds[k]->fd >= MAX_FDS) {
				log_err("restore: pid %u: fd %u out of range", p->tree->pid, p->core->fds[k]->fd);
				goto fail;
			}
			if ((int)p->core->fds[k]->fd > maxfd)
				maxfd = (int)p->core->fds[k]->fd;
		}
	}
	if (cowshare_check(r) < 0)
		goto fail;
	r->inv_base = maxfd + 16;
	if ((rlim_t)r->inv_base + 4 * (r->files->n_files + r->files->n_pipes + r->files->n_shms) + 64 > nl.rlim_cur) {
		log_err("restore: image needs more file descriptors than RLIMIT_NOFILE allows");
		goto fail;
	}
	/* scratch page: free in every image address space and in ours */
	struct range *avoid = NULL;
	int navoid = 0;
	{
		struct range *rg = NULL;
		int n = 0;
		for (int i = 0; i < r->nprocs; i++)
			for (size_t k = 0; r->procs[i].core && k < r->procs[i].core->n_vmas; k++) {
				rg = realloc(rg, (size_t)(n + 1) * sizeof(*rg));
				rg[n].s = r->procs[i].core->vmas[k]->start;
				rg[n++].e = r->procs[i].core->vmas[k]->end;
			}
		FILE *f = fopen("/proc/self/maps", "re");
		char line[4096];
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long long s, e;
			if (rst_maps_line(r, line, &s, &e)) {
				rg = realloc(rg, (size_t)(n + 1) * sizeof(*rg));
				rg[n].s = s;
				rg[n++].e = e + (1ull << 30);   /* room for our heap to grow */
			}
		}
		if (f)
			fclose(f);
		/* next to the seed's memory (seed.h) unless the image has
		 * something there */
		r->scratch_addr = SEED_SCRATCH;
		for (int i = 0; i < n; i++)
			if (rg[i].s < SEED_SCRATCH + 4 * PAGE && SEED_SCRATCH < rg[i].e)
				r->scratch_addr = find_gap(4 * PAGE, rg, n);
		avoid = rg;
		navoid = n;
		if (!r->eng_vdso || !r->eng_vvar) {
			log_err("restore: no [vdso] or [vvar] in this process's maps");
			goto fail;
		}
	}
	/* "ready" reports: a seqpacket pair (one record per report, EOF once
	 * every task is gone) whose receiving end gets each sender's host pid
	 * (SO_PASSCRED: the kernel attaches it, translated to our pid ns) */
	int p2[2], one = 1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p2) < 0 ||
	    setsockopt(p2[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		log_err("restore: report socket: %s", strerror(errno));
		goto fail;
	}
	r->ready_r = inv_move(r, p2[0]);
	r->ready_w = inv_move(r, p2[1]);
	if (pipe2(p2, O_CLOEXEC) < 0)
		goto fail;
	r->hold_r = inv_move(r, p2[0]);
	r->hold_w = inv_move(r, p2[1]);
	if (pipe2(p2, O_CLOEXEC) < 0)
		goto fail;
	r->go_r = inv_move(r, p2[0]);
	r->go_w = inv_move(r, p2[1]);
	timing("records_read");
	/* Into the pod's netns first: sockets of the inventory are created there
	 * (without --netns a new one, made before the inventory so that bound
	 * abstract unix sockets and connections live in the pod's netns). */
	if (netfd >= 0 && setns(netfd, CLONE_NEWNET) < 0) {
		log_err("restore: join netns %s: %s", netns, strerror(errno));
		goto fail;
	}
	if (netfd < 0 && unshare(CLONE_NEWNET) < 0) {
		log_err("restore: new netns: %s", strerror(errno));
		goto fail;
	}
	/* The pod's own /dev/shm: a tmpfs made here as a detached mount, filled
	 * and opened through its fd (rst_open), then attached at /dev/shm by the
	 * pod's init in its new mount namespace, so every file opened on it
	 * belongs to the pod's namespace and outlives this process. */
	if ((err = make_shm_mount(r)) < 0)
		goto fail;
	if ((err = files_restore_inventory(r)) < 0 || (err = fill_shm(r)) < 0)
		goto fail;
	timing("inventory");
	if ((err = set_time_offsets(r)) < 0)
		goto fail;
	err = seed_prepare(r, avoid, navoid);
	free(avoid);
	avoid = NULL;
	if (err < 0)
		goto fail;
	timing("seed_plan");
	fflush(NULL);
	r->cgroups = cgroups;
	r->ncg = ncg;
	uint64_t nsf = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
	const char *ev = getenv("ZAPC_RESTORE_INIT_FORK");     /* 1: always fork it (A/B) */
	if (r->seed_fd >= 0 && !r->files->n_sysv_shm && !(ev && !strcmp(ev, "1")))
		root = spawn_init(r, nsf);
	else if ((root = clone_with_pid(nsf, 1)) == 0)
		run_task(r, 0);
	if (root < 0) {
		log_err("restore: create the pod's init: %s", strerror(errno));
		goto fail;
	}
	close(r->go_r);
	if (!r->init_spawned && (err = join_cgroups(cgroups, ncg, root)) < 0)
		goto fail;
	if (!r->init_spawned && write(r->go_w, "g", 1) != 1)
		goto fail;
	pagefill_prepare();     /* page buffers made on the other core while the tasks start */
	close(r->hold_r);
	close(r->ready_w);
	/* wait for every live task to report */
	int want = 0;
	uint64_t seed_vdso = 0;
	bool seed_vdso_ready = false;   /* seed_vdso from a task the engine lays out */
	struct early early = { 0, 0, false };
	for (int i = 0; i < r->nprocs; i++) {
		want += !r->procs[i].tree->zombie;
		if (r->procs[i].cow_late && r->procs[i].cow_parent >= early.end)
			early.end = r->procs[i].cow_parent + 1;
	}
	for (int got = 0; got < want;) {
		struct pollfd pf = { r->ready_r, POLLIN, 0 };
		int pr = poll(&pf, 1, 10000);
		struct seed_report m;
		struct iovec iov = { &m, sizeof(m) };
		union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(struct ucred))]; } cb;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cb, .msg_controllen = sizeof(cb) };
		if (pr <= 0 || recvmsg(r->ready_r, &mh, MSG_CMSG_CLOEXEC) != sizeof(m)) {
			log_err("restore: the new processes did not start (%d of %d ready)", got, want);
			err = -ETIMEDOUT;
			goto fail;
		}
		if (m.err < 0) {
			err = m.err;    /* the task logged why, or the seed says which op */
			if (m.op != SEED_FAIL_LOGGED && (m.op >= 0 || r->seed_fd >= 0))
				seed_log_failure(r, &m);
			goto fail;
		}
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int i = proc_index(r, (uint32_t)m.pid);
		if (i >= 0 && r->seed_fd >= 0)
			r->procs[i].seed_laid = m.op == SEED_READY_LAID || m.op == SEED_FILL_ME;
		/* a task the engine lays out says where its vdso block is: where
		 * the seed's exec put it, for every such task — unless it was
		 * forked from a laid-out one (cowshare.c) and could not lay its
		 * own memory out: not supported */
		if (m.vdso && m.op != SEED_READY && !seed_vdso_ready)
			seed_vdso = m.vdso;      /* (matters only for a task the engine lays out) */
		if (m.vdso && m.op == SEED_READY) {
			if (seed_vdso_ready && seed_vdso != m.vdso) {
				log_err("restore: pid %d: its vdso is at %#llx, another task's at %#llx: the engine cannot "
					"lay both out", m.pid, (unsigned long long)m.vdso, (unsigned long long)seed_vdso);
				err = -ENOTSUP;
				goto fail;
			}
			seed_vdso = m.vdso;
			seed_vdso_ready = true;
		}
		if (m.pid == 1 && m.op != SEED_FILL_ME)
			timing("init_ready");   /* (it forks all its children first) */
		if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && i >= 0) {
			struct ucred uc;
			memcpy(&uc, CMSG_DATA(c), sizeof(uc));
			r->procs[i].hpid = uc.pid;
		}
		if (i >= 0 && r->procs[i].hpid > 0 && m.op == SEED_FILL_ME && r->seed_fd >= 0)
			r->procs[i].fill_wait = true;     /* (not ready: it forks, then parks) */
		else {
			if (i >= 0)
				r->procs[i].ready = true;
			got++;
		}
		if (early.next < early.end && (err = early_pages(r, &early)) < 0)
			goto fail;
	}
	timing("all_ready");
	/* where the tasks that did not map their own layout have the vdso
	 * block: where the seed's exec put it (a parked task says) */
	if (r->seed_fd >= 0 && seed_vdso && rst_vdso_block(r)) {
		r->eng_vvar = seed_vdso - (r->eng_vdso - r->eng_vvar);
		r->eng_vclock = r->eng_vclock_len ? r->eng_vvar + r->eng_vvar_len : 0;
		r->eng_vdso = seed_vdso;
	} else if (r->seed_fd >= 0 && (err = seed_tasks_vdso(r, root)) < 0)
		goto fail;
	bool all_known = true;
	for (int i = 0; i < r->nprocs; i++)
		if (!r->procs[i].tree->zombie && r->procs[i].hpid <= 0)
			all_known = false;
	if (!all_known && (err = map_host_pids(r, root)) < 0)
		goto fail;
	timing("pids_mapped");
	struct timespec tr0, tr1;
	clock_gettime(CLOCK_MONOTONIC, &tr0);
	/* Seize every task first (their stops overlap), then per process: the
	 * layout batch of the next one runs in its task while this one's pages,
	 * late calls and registers are done (mm_restore_map_start). */
	for (int i = 0; i < r->nprocs; i++) {
		struct rproc *p = &r->procs[i];
		if (p->tree->zombie)
			continue;
		if (ptrace(PTRACE_SEIZE, p->hpid, 0, PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL) < 0 ||
		    ptrace(PTRACE_INTERRUPT, p->hpid, 0, 0) < 0) {
			err = -errno;
			log_err("restore: pid %u: seize: %s", p->tree->pid, strerror(errno));
			goto fail;
		}
		p->seized = true;
	}
	/* several processes at once (struct inflight) */
	struct inflight inflight = { { NULL }, { NULL }, 0, 0 };
	for (int i = 0, started = 0; i < r->nprocs; i++) {
		struct rproc *p = &r->procs[i];
		if (p->tree->zombie)
			continue;
		if (!started && ((err = seize_task(r, p)) < 0 || (err = mm_restore_map_start(r, p)) < 0))
			goto fail;
		if ((err = mm_restore_map_finish(r, p)) < 0)
			goto fail;
		started = 0;
		for (int j = i + 1; j < r->nprocs; j++) {
			struct rproc *q = &r->procs[j];
			if (q->tree->zombie)
				continue;
			if ((err = seize_task(r, q)) < 0 || (err = mm_restore_map_start(r, q)) < 0)
				goto fail;
			started = 1;
			break;
		}
		if ((err = restore_process(r, p)) < 0 || (err = inflight_add(r, &inflight, p)) < 0)
			goto fail;      /* logged where it failed */
	}
	if ((err = inflight_end(r, &inflight)) < 0)
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &tr1);
	if (getenv("ZAPC_ENGINE_TIMING"))
		fprintf(stderr, "TIMING restore_processes_ms %.3f\n",
			(tr1.tv_sec - tr0.tv_sec) * 1e3 + (tr1.tv_nsec - tr0.tv_nsec) / 1e6);
	mm_restore_pages_timing();
	uint32_t type, len;
	int n = rec_next(r, &type, &len);
	if (n != 0) {
		if (n > 0)
			log_err("restore: record %llu '%s': unexpected after the last process",
				(unsigned long long)image_reader_record_index(g_in), rec_name(type));
		goto fail;
	}
	timing("trailer");
	/* --sync: no pod of the job runs before every pod is restored. */
	if ((err = control_sync("restored", 0)) < 0)
		goto fail;
	/* sockets leave repair mode, held packets are delivered, then the pod runs */
	if ((err = inet_restore_finish(r)) < 0)
		goto fail;
	timing("sockets");
	/* verified to the trailer: let the pod run */
	for (int i = 0; i < r->nprocs; i++) {
		struct rproc *p = &r->procs[i];
		if (p->tree->zombie)
			continue;
		if (p->tree->has_stop_signo && p->tree->stop_signo)
			kill(p->hpid, (int)p->tree->stop_signo);
		for (int k = 0; k < p->nth; k++)
			ptrace(PTRACE_DETACH, p->htids[k], 0, 0);
	}
	timing("detached");
	if (getenv("ZAPC_ENGINE_TIMING")) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		fprintf(stderr, "TIMING restore_engine_cpu_ms %.1f\n",
			(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3);
	}
	printf("%d\n", root);
	fflush(stdout);
	image_reader_free(g_in);
	done.init_pid = root;
	done.hold_kept = inet_hold_kept();
	for (int i = 0; i < r->nprocs; i++) {
		done.processes += !r->procs[i].tree->zombie;
		done.threads += (uint32_t)(r->procs[i].tree->zombie ? 0 : r->procs[i].nth);
	}
	control_done(&done);
	free(r->seed_what);
	return 0;
fail:
	inet_restore_abort(r);
	if (root > 0) {
		/* Killing init kills the pid namespace, but init only finishes
		 * once every task of it is reaped — and the ones we trace are
		 * reported to us first: reap everything until init is gone. */
		kill(root, SIGKILL);
		for (;;) {
			pid_t w = waitpid(-1, NULL, __WALL);
			if (w == root || (w < 0 && errno != EINTR))
				break;
		}
	}
	if (g_in)
		image_reader_free(g_in);
	done.status = err < 0 ? err : -EIO;
	control_done(&done);
	free(r->seed_what);
	return 1;
}
