/*
 * seize.c — freeze, seize and release the processes of a pod.
 *
 * Sequence (research/cr-mechanics.md §1.7): freeze the v2 cgroup so nothing
 * runs or forks; while frozen, PTRACE_SEIZE and PTRACE_INTERRUPT every thread
 * listed in cgroup.threads; thaw — the queued interrupt traps every thread
 * before it runs user code, so the pod goes from frozen to ptrace-stopped
 * with no signal visible to it.  Group-stopped threads report their stop
 * signal in the EVENT_STOP and stay stopped after detach (§1.4).
 * No PTRACE_O_EXITKILL: if the engine dies during a dump, the pod lives on.
 */
#include <dirent.h>
#include <errno.h>
#include <linux/kcmp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/engine/seize.h"
#include "lib/log.h"

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * cgroup.events is opened before the write and polled: kernfs signals
 * POLLPRI|POLLERR on every change of it (cgroup v2 docs: "a value change
 * in this file generates a file modified event"), so the wait ends when
 * the state flips instead of at the next 200 us sleep.  The sleep stays as
 * a fallback tick (a missed notification costs at most 1 ms).
 */
int cg_freeze(const char *cg, int on)
{
	char path[4096], ev[512];
	snprintf(path, sizeof(path), "%s/cgroup.events", cg);
	int efd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/cgroup.freeze", cg);
	int err = write_str(path, on ? "1" : "0");
	if (err < 0) {
		log_err("%s: %s", path, strerror(-err));
		if (efd >= 0)
			close(efd);
		return err;
	}
	snprintf(path, sizeof(path), "%s/cgroup.events", cg);
	long deadline = now_ms() + 10000;
	for (;;) {
		ssize_t n = efd >= 0 ? pread(efd, ev, sizeof(ev) - 1, 0) : -1;
		if (n < 0) {
			char *s = read_file_str(path, NULL);
			if (!s) {
				log_err("%s: %s", path, strerror(errno));
				err = -errno;
				break;
			}
			snprintf(ev, sizeof(ev), "%s", s);
			free(s);
		} else {
			ev[n] = 0;
		}
		if ((strstr(ev, "frozen 1") != NULL) == !!on)
			break;
		if (now_ms() > deadline) {
			log_err("%s: cgroup did not %s within 10 s", cg, on ? "freeze" : "thaw");
			err = -ETIMEDOUT;
			break;
		}
		struct pollfd pf = { efd, POLLPRI, 0 };
		if (efd < 0 || poll(&pf, 1, 1) < 0)
			usleep(200);
	}
	if (efd >= 0)
		close(efd);
	return err;
}

int cg_kill(const char *cg)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cgroup.kill", cg);
	int err = write_str(path, "1");
	if (err < 0)
		log_err("%s: %s", path, strerror(-err));
	return err;
}

static int cg_list_rec(const char *cg, const char *file, pid_t **out, int *n, int depth)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", cg, file);
	char *s = read_file_str(path, NULL);
	if (!s) {
		log_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	for (char *p = s; *p;) {
		char *e;
		long v = strtol(p, &e, 10);
		if (e == p)
			break;
		*out = realloc(*out, (size_t)(*n + 1) * sizeof(pid_t));
		(*out)[(*n)++] = (pid_t)v;
		p = e;
		while (*p == '\n')
			p++;
	}
	free(s);
	if (depth > 32)
		return 0;
	DIR *dir = opendir(cg);
	if (!dir)
		return 0;
	struct dirent *de;
	int err = 0;
	while ((de = readdir(dir)) && !err) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", cg, de->d_name);
		err = cg_list_rec(path, file, out, n, depth + 1);
	}
	closedir(dir);
	return err;
}

int cg_list(const char *cg, const char *file, pid_t **out, int *n)
{
	return cg_list_rec(cg, file, out, n, 0);
}

static struct dthread *find_thread(struct dump_ctx *d, pid_t htid)
{
	for (int i = 0; i < d->nprocs; i++)
		for (int j = 0; j < d->procs[i].nth; j++)
			if (d->procs[i].th[j].htid == htid)
				return &d->procs[i].th[j];
	return NULL;
}

int seize_pod(struct dump_ctx *d, char **cgroups, int ncg)
{
	pid_t *tids = NULL;
	int ntids = 0, err = 0;

	for (int i = 0; i < ncg; i++)
		if ((err = cg_list(cgroups[i], "cgroup.threads", &tids, &ntids)) < 0)
			goto out;
	/* every cgroup thread must belong to a process of the tree */
	for (int i = 0; i < ntids; i++) {
		struct dthread *t = find_thread(d, tids[i]);
		if (!t) {
			log_err("dump: task %d is in the pod's cgroup but not under its init", tids[i]);
			err = -EINVAL;
			goto out;
		}
	}
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (p->tree->zombie)
			continue;
		for (int j = 0; j < p->nth; j++) {
			struct dthread *t = &p->th[j];
			if (ptrace(PTRACE_SEIZE, t->htid, 0, 0) < 0) {
				err = -errno;
				log_err("dump: seize pid %u tid %d: %s", p->tree->pid, t->htid, strerror(errno));
				goto out;
			}
			t->seized = true;
			if (ptrace(PTRACE_INTERRUPT, t->htid, 0, 0) < 0) {
				err = -errno;
				log_err("dump: interrupt tid %d: %s", t->htid, strerror(errno));
				goto out;
			}
		}
	}
out:
	free(tids);
	return err;
}

bool task_in_vfork(pid_t tid)
{
	char path[64], w[64] = "";
	snprintf(path, sizeof(path), "/proc/%d/wchan", tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, w, sizeof(w) - 1);
	close(fd);
	w[n > 0 ? n : 0] = 0;
	return !strcmp(w, "kernel_clone") || !strcmp(w, "wait_for_vfork_done");
}

bool vfork_pair(pid_t parent, pid_t child)
{
	long r = syscall(SYS_kcmp, parent, child, KCMP_VM, 0, 0);
	if (r < 0 && errno == ENOSYS)       /* a kernel without CONFIG_KCMP: the wchan, racy */
		return task_in_vfork(parent);
	return r == 0;
}

/*
 * The trap of one seized thread.  Threads trap right after the thaw, so
 * this is a WNOHANG poll with short naps rather than a blocking wait: a
 * thread that cannot trap must be noticed, not waited for forever — a
 * thread of a process whose main thread was not the one inside vfork()
 * (dump_main retries those), or one stuck in the kernel (a dead NFS
 * server): after 10 s the dump fails naming it, and the pod runs on.
 */
static int wait_trap(struct dproc *p, struct dthread *t, int *st)
{
	long t0 = now_ms();
	for (unsigned n = 0;; n++) {
		pid_t w = waitpid(t->htid, st, __WALL | WNOHANG);
		if (w == t->htid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (n % 64 == 63 && task_in_vfork(t->htid)) {
			log_err("dump: pid %u tid %d is inside vfork() (its child has not run exec): "
				"the pod runs on, try again", p->tree->pid, t->htid);
			return -EAGAIN;
		}
		if (now_ms() - t0 > 10000) {
			log_err("dump: pid %u tid %d did not stop within 10 s: the pod runs on", p->tree->pid,
				t->htid);
			return -ETIMEDOUT;
		}
		struct timespec nap = { 0, n < 64 ? 20000 : 1000000 };
		nanosleep(&nap, NULL);
	}
}

/* After the thaw: collect the trap of every seized thread. */
int seize_wait_all(struct dump_ctx *d)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		for (int j = 0; j < p->nth; j++) {
			struct dthread *t = &p->th[j];
			if (!t->seized)
				continue;
			for (;;) {
				int st, err = wait_trap(p, t, &st);
				if (err < 0) {
					if (err != -EAGAIN && err != -ETIMEDOUT)
						log_err("dump: wait for tid %d: %s", t->htid, strerror(-err));
					return err;
				}
				if (!WIFSTOPPED(st)) {
					log_err("dump: pid %u tid %d exited while being seized", p->tree->pid, t->htid);
					t->seized = false;
					return -ESRCH;
				}
				int sig = WSTOPSIG(st);
				if ((st >> 16) == PTRACE_EVENT_STOP) {
					if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
						t->stop_sig = sig;
					t->interrupted = true;
					break;
				}
				/* A signal was being delivered: let the application have it
				 * (as it would have without us) and wait for the trap.  That
				 * stop consumed our PTRACE_INTERRUPT ("any trap clears pending
				 * STOP trap", kernel/signal.c ptrace_stop), so ask again: else
				 * the thread runs on, free, while the pod is being dumped. */
				if (ptrace(PTRACE_CONT, t->htid, 0, sig) < 0 ||
				    ptrace(PTRACE_INTERRUPT, t->htid, 0, 0) < 0)
					return -errno;
			}
		}
	}
	return 0;
}

void release_pod(struct dump_ctx *d, bool killed)
{
	for (int i = 0; i < d->nprocs; i++) {
		struct dproc *p = &d->procs[i];
		if (killed)
			p->scratch = 0;
		if (p->scratch && p->th && p->th[0].interrupted) {
			long r;
			inj_syscall(&p->inj, &r, SYS_munmap, p->scratch, 4 * PAGE, 0, 0, 0, 0);
			p->scratch = 0;
			phase_mark("release_munmap");
		}
		for (int j = 0; j < p->nth; j++) {
			struct dthread *t = &p->th[j];
			if (!t->seized)
				continue;
			if (t->interrupted && !killed) {
				regs_set(t->htid, &t->regs);
				ptrace(PTRACE_SETSIGMASK, t->htid, (void *)8, &t->sigmask);
			}
			if (ptrace(PTRACE_DETACH, t->htid, 0, 0) < 0 && errno != ESRCH)
				log_warn("dump: detach tid %d: %s", t->htid, strerror(errno));
			t->seized = false;
		}
	}
}
