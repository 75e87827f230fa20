/*
 * ops.c — checkpoint and restore operations (see ops.h).
 *
 * One struct op per running zapc-engine.  The engine's messages arrive on
 * the control socket (a read event in the agent's loop); its exit arrives
 * through SIGCHLD (ops_child_exited).  An operation is answered only when
 * both have happened — the engine said Done (or closed the socket) and it
 * has exited — so a client never sees "done" while an engine still runs,
 * and a crashed engine is reported as such.  The engine's own error lines
 * go to the agent's stderr (its log); Done carries the one line for the
 * client.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "agent/netlink.h"
#include "agent/ops.h"
#include "agent/pod.h"
#include "lib/frame.h"
#include "lib/log.h"
#include "netstate/netstate.h"
#include "proto/engine.pb-c.h"

#define OP_TIMEOUT_S 600   /* an engine that takes longer is killed */

enum op_kind { OP_CHECKPOINT, OP_RESTORE };

struct op {
	enum op_kind kind;
	pid_t pid;			/* the engine */
	int ctl;			/* control socket, -1 once closed */
	struct event *ev, *timer;
	char pod_name[POD_NAME_MAX + 1];	/* checkpoint: the pod; restore: the new pod */
	pid_t pod_init;			/* checkpoint: init of the pod being saved */
	int leave_running;
	struct pod *prepared;		/* restore: pod prepared for the engine */
	int pod_handed;			/* restore: PodReady sent (the engine has the pod) */
	int net_pending;		/* restore: prepared ahead, eth0 not configured yet */
	struct event *prep_ev;		/* restore: prepare the pod while the engine starts */
	char want_name[POD_NAME_MAX + 1], want_ip[INET_ADDRSTRLEN];
	uid_t uid;
	gid_t gid;
	Zapc__Engine__Done *done;	/* the engine's report, NULL until it came */
	char fail[512];			/* an error the agent itself saw */
	int exited, status;
	struct timespec t0;
	op_done_fn cb;
	op_sync_fn sync_cb;		/* --sync: the manager's sync points (peer.c) */
	void *ctx;
	struct op *next;
};

static struct {
	struct event_base *base;
	struct pod_node *node;
	char engine[4096];
	struct op *ops;
	int bpf_fd;			/* netstate's BPF reader, loaded once; -1 until then */
} g = { .bpf_fd = -1 };

void ops_timing(const char *fmt, ...)
{
	static int on = -1;
	va_list ap;

	va_start(ap, fmt);
	log_vtiming(&on, "ZAPC_AGENT_TIMING", "agent", fmt, ap);
	va_end(ap);
}

/*
 * The BPF reader of TCP state (netstate/bpf.c) costs ~0.1-0.3 s to load
 * (libbpf parses the kernel's BTF).  Loaded once here, by a thread at idle
 * priority, its program fd goes to every dump engine (fd 4, named in
 * NETSTATE_BPF_PROG_FD_ENV), which then only attaches it (~0.1 ms) instead
 * of loading it before each freeze.  Restore engines never get it.
 */
static void *bpf_loader(void *arg)
{
	struct sched_param sp = { 0 };

	(void)arg;
	pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	__atomic_store_n(&g.bpf_fd, netstate_bpf_prog_fd(), __ATOMIC_RELEASE);
	return NULL;
}

void ops_init(struct event_base *base, struct pod_node *node, const char *engine_path)
{
	pthread_attr_t a;
	pthread_t th;

	g.base = base;
	g.node = node;
	snprintf(g.engine, sizeof(g.engine), "%s", engine_path);
	if (pthread_attr_init(&a) == 0) {
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &a, bpf_loader, NULL) != 0)
			log_warn("agent: no thread to load the BPF reader: dump engines load it themselves");
		pthread_attr_destroy(&a);
	}
}

static uint64_t since_us(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)(t.tv_sec - t0->tv_sec) * 1000000u +
	       (uint64_t)((t.tv_nsec - t0->tv_nsec) / 1000);
}

static void op_close_ctl(struct op *op)
{
	if (op->ev)
		event_free(op->ev);
	op->ev = NULL;
	if (op->ctl >= 0)
		close(op->ctl);
	op->ctl = -1;
}

static void op_free(struct op *op)
{
	struct op **pp;

	for (pp = &g.ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	op_close_ctl(op);
	if (op->timer)
		event_free(op->timer);
	if (op->prep_ev)
		event_free(op->prep_ev);
	if (op->done)
		zapc__engine__done__free_unpacked(op->done, NULL);
	free(op);
}

/* The reason an operation failed, in one line. */
static void op_reason(const struct op *op, char *buf, size_t len)
{
	if (op->fail[0])
		snprintf(buf, len, "%s", op->fail);
	else if (op->done && op->done->status != 0)
		snprintf(buf, len, "%s", op->done->error && op->done->error[0] ?
			 op->done->error : strerror(-op->done->status));
	else if (WIFSIGNALED(op->status))
		snprintf(buf, len, "zapc-engine died of signal %d (%s)", WTERMSIG(op->status),
			 strsignal(WTERMSIG(op->status)));
	else if (!op->done)
		snprintf(buf, len, "zapc-engine exited with status %d without a report",
			 WEXITSTATUS(op->status));
	else
		snprintf(buf, len, "zapc-engine exited with status %d", WEXITSTATUS(op->status));
}

static int op_ok(const struct op *op)
{
	return !op->fail[0] && op->done && op->done->status == 0 &&
	       WIFEXITED(op->status) && WEXITSTATUS(op->status) == 0;
}

static void finish_checkpoint(struct op *op, Zapc__Response *r, char *why, size_t whylen)
{
	static Zapc__CheckpointResult cr;
	struct pod *pod = pod_find(g.node, op->pod_name);

	if (pod && pod->init_pid == op->pod_init && op->done && op->done->hold_kept)
		pod->hold_kept = 1;
	if (!op_ok(op)) {
		op_reason(op, why, whylen);
		log_err("pod %s: checkpoint failed: %s", op->pod_name, why);
		r->status = op->done && op->done->status ? op->done->status : -EIO;
		r->error = why;
		return;
	}
	zapc__checkpoint_result__init(&cr);
	cr.image_bytes = op->done->image_bytes;
	cr.frozen_us = op->done->frozen_us;
	cr.total_us = since_us(&op->t0);
	cr.processes = op->done->processes;
	cr.threads = op->done->threads;
	r->result_case = ZAPC__RESPONSE__RESULT_CHECKPOINT;
	r->checkpoint = &cr;
	log_info("pod %s: checkpoint done: %u processes, %llu bytes, frozen %llu us, %llu us in all%s",
		 op->pod_name, cr.processes, (unsigned long long)cr.image_bytes,
		 (unsigned long long)cr.frozen_us, (unsigned long long)cr.total_us,
		 op->leave_running ? " (left running)" : "");
	/* The engine killed the pod's processes; take down what is left of it
	 * (netns, veth, cgroups) now rather than when the init's exit arrives. */
	if (!op->leave_running && pod && pod->init_pid == op->pod_init) {
		pod->console_owned = 0;	/* the image's processes write to it */
		pod_destroy(g.node, pod);
	}
}

static struct pod *finish_restore(struct op *op, Zapc__Response *r, char *why, size_t whylen)
{
	static Zapc__RestoreResult rr;
	struct pod *pod = op->prepared;
	int rc;

	if (op_ok(op) && (!pod || !op->pod_handed))
		snprintf(op->fail, sizeof(op->fail), "zapc-engine reported a restore but never asked for a pod");
	if (op_ok(op) && op->done->init_pid <= 0)
		snprintf(op->fail, sizeof(op->fail), "zapc-engine reported no init pid");
	if (op_ok(op) && (rc = pod_adopt(g.node, pod, op->done->init_pid)) < 0)
		snprintf(op->fail, sizeof(op->fail), "pod %s: adopting restored init %d: %s",
			 pod->name, op->done->init_pid, strerror(-rc));
	if (!op_ok(op)) {
		op_reason(op, why, whylen);
		log_err("restore%s%s failed: %s", pod ? " of pod " : "", pod ? pod->name : "", why);
		/* All or nothing: the engine killed what it restored; drop the pod. */
		if (pod)
			pod_destroy(g.node, pod);
		op->prepared = NULL;
		r->status = op->done && op->done->status ? op->done->status : -EIO;
		r->error = why;
		return NULL;
	}
	pod->hold_kept = op->done->hold_kept;
	zapc__restore_result__init(&rr);
	rr.total_us = since_us(&op->t0);
	rr.processes = op->done->processes;
	rr.threads = op->done->threads;
	r->result_case = ZAPC__RESPONSE__RESULT_RESTORE;
	r->restore = &rr;
	/* The restored processes write to the console file of the pod they were
	 * saved from; when it is this pod's (same name), this pod owns it again. */
	pod->console_owned = access(pod->console, F_OK) == 0;
	log_info("pod %s restored: init %d, %u processes, %llu us", pod->name, pod->init_pid,
		 rr.processes, (unsigned long long)rr.total_us);
	return pod;
}

/* Both the report and the exit are in (or the engine is gone): answer. */
static void op_finish(struct op *op)
{
	Zapc__Response r = ZAPC__RESPONSE__INIT;
	struct pod *pod = NULL;
	char why[512];

	if (!op->exited)
		return;
	if (op->ctl >= 0 && !op->done) {
		/* Exited, but its last words may still sit in the socket. */
		return;
	}
	if (op->kind == OP_CHECKPOINT)
		finish_checkpoint(op, &r, why, sizeof(why));
	else
		pod = finish_restore(op, &r, why, sizeof(why));
	if (op->cb)
		op->cb(op->ctx, &r, pod);
	op_free(op);
}

static void send_abort(struct op *op, const char *reason)
{
	Zapc__Engine__ToEngine m = ZAPC__ENGINE__TO_ENGINE__INIT;
	Zapc__Engine__Abort a = ZAPC__ENGINE__ABORT__INIT;

	a.reason = (char *)reason;
	m.msg_case = ZAPC__ENGINE__TO_ENGINE__MSG_ABORT;
	m.abort = &a;
	frame_send_msg(op->ctl, &m.base, NULL, 0);
}

/* Restore: the engine read the image's pod identity; prepare a pod for it. */
static void on_pod_needed(struct op *op, Zapc__Engine__PodNeeded *pn)
{
	Zapc__Engine__ToEngine m = ZAPC__ENGINE__TO_ENGINE__INIT;
	Zapc__Engine__PodReady pr = ZAPC__ENGINE__POD_READY__INIT;
	const char *name = op->want_name[0] ? op->want_name : pn->name;
	const char *ip = op->want_ip[0] ? op->want_ip : pn->ip;
	struct pod_spec spec = { .name = name, .ip = ip, .uid = op->uid, .gid = op->gid,
				 .defer_net = pn->net_by_engine };
	char pod_ip[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];
	char *cgs[CG_NR];
	int rc;

	if (op->pod_handed) {
		snprintf(op->fail, sizeof(op->fail), "zapc-engine asked for a second pod");
		send_abort(op, op->fail);
		return;
	}
	if (op->prepared) {
		/* Prepared while the engine started (prepare_ahead): the name and
		 * the IP were ours, not the image's; only eth0 may be left to do. */
		ops_timing("pod %s: needed (prepared ahead)", name);
		rc = 0;
		if (op->net_pending && !spec.defer_net) {
			log_last_err_clear();
			rc = net_pod_configure(op->prepared->netns_fd, op->prepared->ip, g.node->prefix,
					       g.node->gateway);
		}
		op->net_pending = 0;
		if (rc < 0) {
			const char *e = log_last_err();

			snprintf(op->fail, sizeof(op->fail), "restore: preparing pod %s: %s", name,
				 e[0] ? e : strerror(-rc));
			send_abort(op, op->fail);
			return;
		}
		goto ready;
	}
	if (!name || !pod_name_valid(name)) {
		snprintf(op->fail, sizeof(op->fail), "restore: the image's pod name '%.40s' is not valid "
			 "(give one with --pod)", name ? name : "");
		send_abort(op, op->fail);
		return;
	}
	if (pod_find(g.node, name)) {
		snprintf(op->fail, sizeof(op->fail), "restore: pod %s already exists on this node "
			 "(give another name with --pod)", name);
		send_abort(op, op->fail);
		return;
	}
	log_last_err_clear();
	ops_timing("pod %s: needed", name);
	rc = pod_prepare(g.node, &spec, &op->prepared);
	ops_timing("pod %s: prepared (%d)", name, rc);
	if (rc < 0) {
		const char *e = log_last_err();

		snprintf(op->fail, sizeof(op->fail), "restore: preparing pod %s: %s", name,
			 e[0] ? e : strerror(-rc));
		op->prepared = NULL;
		send_abort(op, op->fail);
		return;
	}
	snprintf(op->pod_name, sizeof(op->pod_name), "%s", name);
ready:
	pr.n_cgroups = 0;
	for (int i = 0; i < CG_NR; i++)
		if (op->prepared->cg.path[i][0])
			cgs[pr.n_cgroups++] = op->prepared->cg.path[i];
	pr.cgroups = cgs;
	pr.name = op->prepared->name;
	if (spec.defer_net) {
		/* the engine holds the pod's traffic, then brings eth0 up (inet.c) */
		pr.net_deferred = 1;
		pr.ip = (char *)inet_ntop(AF_INET, &op->prepared->ip, pod_ip, sizeof(pod_ip));
		pr.gateway = (char *)inet_ntop(AF_INET, &g.node->gateway, gw, sizeof(gw));
		pr.prefix = (uint32_t)g.node->prefix;
	}
	m.msg_case = ZAPC__ENGINE__TO_ENGINE__MSG_POD_READY;
	m.pod_ready = &pr;
	rc = frame_send_msg(op->ctl, &m.base, &op->prepared->netns_fd, 1);
	op->pod_handed = 1;
	if (rc < 0)
		snprintf(op->fail, sizeof(op->fail), "restore: handing pod %s to zapc-engine: %s",
			 name, strerror(-rc));
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct op *op = arg;
	Zapc__Engine__ToAgent *m;
	uint8_t *p = NULL;
	size_t len = 0;
	int nfds = 0, rc;

	rc = frame_recv(op->ctl, 64 << 10, &p, &len, NULL, 0, &nfds);
	if (rc < 0) {
		if (rc != -ENODATA && !op->done && !op->fail[0])
			snprintf(op->fail, sizeof(op->fail), "zapc-engine control channel: %s",
				 strerror(-rc));
		op_close_ctl(op);
		op_finish(op);
		return;
	}
	m = zapc__engine__to_agent__unpack(NULL, len, p);
	free(p);
	if (!m) {
		snprintf(op->fail, sizeof(op->fail), "zapc-engine sent a malformed message");
		kill(op->pid, SIGKILL);
		op_close_ctl(op);
		op_finish(op);
		return;
	}
	switch (m->msg_case) {
	case ZAPC__ENGINE__TO_AGENT__MSG_POD_NEEDED:
		if (op->kind == OP_RESTORE)
			on_pod_needed(op, m->pod_needed);
		break;
	case ZAPC__ENGINE__TO_AGENT__MSG_PROGRESS:
		log_debug("pod %s: %s (%llu bytes)", op->pod_name, m->progress->phase,
			  (unsigned long long)m->progress->bytes);
		/* a snapshot's engine says the pod runs again: the manager
		 * waits for that report, not for its own Go (peer.c task_sync) */
		if (op->sync_cb && m->progress->phase && !strcmp(m->progress->phase, "resumed"))
			op->sync_cb(op->ctx, "resumed", 0);
		break;
	case ZAPC__ENGINE__TO_AGENT__MSG_SYNC:
		ops_timing("pod %s: sync %s", op->pod_name, m->sync->phase ? m->sync->phase : "");
		if (op->sync_cb)
			op->sync_cb(op->ctx, m->sync->phase ? m->sync->phase : "", m->sync->frozen_us);
		else
			send_abort(op, "sync point without a coordinator");
		break;
	case ZAPC__ENGINE__TO_AGENT__MSG_DONE:
		ops_timing("pod %s: done", op->pod_name);
		if (!op->done) {
			op->done = m->done;
			m->done = NULL;	/* keep it: detach from m before freeing m */
			m->msg_case = ZAPC__ENGINE__TO_AGENT__MSG__NOT_SET;
		}
		break;
	default:
		break;
	}
	zapc__engine__to_agent__free_unpacked(m, NULL);
	op_finish(op);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct op *op = arg;

	snprintf(op->fail, sizeof(op->fail), "zapc-engine took more than %d s; killed", OP_TIMEOUT_S);
	log_err("pod %s: %s", op->pod_name, op->fail);
	kill(op->pid, SIGKILL);
}

/* fork+exec the engine with the control socket on fd 3 and io_fd on io_target. */
static int op_spawn(struct op *op, char *const argv[], int io_fd, int io_target)
{
	struct timeval tmo = { OP_TIMEOUT_S, 0 };
	struct timeval rcvtmo = { 10, 0 };
	int sv[2];
	/* volatile: live across vfork() */
	volatile int bpf_fd = op->kind == OP_CHECKPOINT ? __atomic_load_n(&g.bpf_fd, __ATOMIC_ACQUIRE) : -1;
	char **volatile envp = environ;
	pid_t pid;

	if (bpf_fd >= 0) {	/* the environment plus the reader's fd number (bpf_loader) */
		size_t n = 0;

		while (environ[n])
			n++;
		if ((envp = malloc((n + 2) * sizeof(*envp)))) {
			memcpy(envp, environ, n * sizeof(*envp));
			envp[n] = NETSTATE_BPF_PROG_FD_ENV "=4";
			envp[n + 1] = NULL;
		} else {
			envp = environ;
			bpf_fd = -1;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		if (envp != environ)
			free(envp);
		return -errno;
	}
	ops_timing("engine spawn %s", argv[1]);
	/*
	 * vfork: the child only sets up fds and execs.  A fork of the agent
	 * (~8 MiB) costs it 5-10 ms here (page tables copied, then a COW fault
	 * for every page the event loop writes, each a shadow-page-table fill
	 * in this PVM guest), on the critical path of every checkpoint and
	 * restore; vfork+exec costs ~0.2 ms.  Signals stay blocked until the
	 * child execs, so no handler of ours runs on the shared memory.
	 */
	sigset_t all, old;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = vfork();
	if (pid < 0) {
		int e = errno;

		sigprocmask(SIG_SETMASK, &old, NULL);
		close(sv[0]);
		close(sv[1]);
		if (envp != environ)
			free(envp);
		return -e;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		/* A restore engine must not outlive its agent (nobody would take
		 * the pod; its restored init dies with it until the restore
		 * completes).  A dump engine must: killed while it holds a frozen,
		 * seized pod it would leave the pod frozen — it sees the control
		 * channel close instead, releases the pod and exits. */
		if (op->kind == OP_RESTORE)
			prctl(PR_SET_PDEATHSIG, SIGKILL);

		/* SIGPIPE stays ignored (inherited): a reader that goes away must
		 * become a write error, never kill an engine holding a seized pod. */
		/* The engine's stdio: the image on one end, /dev/null on the other. */
		if (dup2(io_fd, io_target) < 0 || dup2(null, io_target == 0 ? 1 : 0) < 0 ||
		    dup2(sv[1], 3) < 0)
			_exit(127);
		/* dup2 onto itself would keep close-on-exec */
		if (bpf_fd >= 0 && (bpf_fd == 4 ? fcntl(4, F_SETFD, 0) : dup2(bpf_fd, 4)) < 0)
			_exit(127);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execve(g.engine, argv, envp);
		dprintf(2, "zapc-agent: exec %s: %s\n", g.engine, strerror(errno));
		_exit(127);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (envp != environ)
		free(envp);
	op->pid = pid;
	op->ctl = sv[0];
	/* A frame from our own engine arrives whole; the timeout only guards a wedged one. */
	setsockopt(op->ctl, SOL_SOCKET, SO_RCVTIMEO, &rcvtmo, sizeof(rcvtmo));
	op->ev = event_new(g.base, op->ctl, EV_READ | EV_PERSIST, on_ctl, op);
	op->timer = evtimer_new(g.base, on_timeout, op);
	event_add(op->ev, NULL);
	evtimer_add(op->timer, &tmo);
	op->next = g.ops;
	g.ops = op;
	return 0;
}

static struct op *op_new(enum op_kind kind, uid_t uid, op_done_fn done, void *ctx)
{
	struct op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->kind = kind;
	op->ctl = -1;
	op->uid = uid;
	op->cb = done;
	op->ctx = ctx;
	clock_gettime(CLOCK_MONOTONIC, &op->t0);
	return op;
}

static int checkpoint_run(struct pod *pod, int out_fd, int leave_running, const struct ckpt_opts *o,
			  uid_t uid, op_done_fn done, op_sync_fn sync, void *ctx);

int ops_checkpoint(struct pod *pod, int out_fd, int leave_running, uid_t uid,
		   op_done_fn done, void *ctx)
{
	return checkpoint_run(pod, out_fd, leave_running, NULL, uid, done, NULL, ctx);
}

int ops_checkpoint_sync(struct pod *pod, int out_fd, int leave_running, uid_t uid,
			op_done_fn done, op_sync_fn sync, void *ctx)
{
	return checkpoint_run(pod, out_fd, leave_running, NULL, uid, done, sync, ctx);
}

int ops_checkpoint_opts(struct pod *pod, int out_fd, int leave_running, const struct ckpt_opts *o, uid_t uid,
			op_done_fn done, void *ctx)
{
	return checkpoint_run(pod, out_fd, leave_running, o, uid, done, NULL, ctx);
}

/* One zapc-engine dump: options of incremental images (o, may be NULL) and
 * the manager's sync points (sync, may be NULL). */
static int checkpoint_run(struct pod *pod, int out_fd, int leave_running, const struct ckpt_opts *o,
			  uid_t uid, op_done_fn done, op_sync_fn sync, void *ctx)
{
	char init[16], ip[INET_ADDRSTRLEN], level[24], every[24];
	char *argv[32];
	struct op *op;
	int n = 0, rc;

	if (ops_pod_busy(pod)) {
		close(out_fd);
		log_err("pod %s: a checkpoint is already in progress", pod->name);
		return -EBUSY;
	}
	if (pod->state != POD_RUNNING || pod->init_pid <= 0 || !pod->cg.path[CG_V2][0]) {
		close(out_fd);
		log_err("pod %s: cannot be checkpointed (%s)", pod->name,
			!pod->cg.path[CG_V2][0] ? "no v2 cgroup to freeze it with" : "not running");
		return -EINVAL;
	}
	op = op_new(OP_CHECKPOINT, uid, done, ctx);
	if (!op) {
		close(out_fd);
		return -ENOMEM;
	}
	snprintf(op->pod_name, sizeof(op->pod_name), "%s", pod->name);
	op->pod_init = pod->init_pid;
	op->leave_running = leave_running;
	snprintf(init, sizeof(init), "%d", (int)pod->init_pid);
	inet_ntop(AF_INET, &pod->ip, ip, sizeof(ip));
	argv[n++] = "zapc-engine";
	argv[n++] = "dump";
	argv[n++] = "--control";
	argv[n++] = "3";
	argv[n++] = "--cgroup";
	argv[n++] = pod->cg.path[CG_V2];
	argv[n++] = "--init";
	argv[n++] = init;
	argv[n++] = "--pod-name";
	argv[n++] = pod->name;
	argv[n++] = "--pod-ip";
	argv[n++] = ip;
	argv[n++] = "-o";
	argv[n++] = "-";
	if (leave_running)
		argv[n++] = "--leave-running";
	if (sync)
		argv[n++] = "--sync";
	if (o && o->parent && o->parent[0]) {
		argv[n++] = "--parent";
		argv[n++] = (char *)o->parent;
	}
	if (o && o->compress > 0) {
		snprintf(level, sizeof(level), "--compress=%d", o->compress);
		argv[n++] = level;
	}
	if (o && o->full_every) {
		snprintf(every, sizeof(every), "--full-every=%u", o->full_every);
		argv[n++] = every;
	}
	if (o && o->track)
		argv[n++] = "--track";
	if (pod->hold_kept)
		argv[n++] = "--hold-kept";
	argv[n] = NULL;
	op->sync_cb = sync;
	rc = op_spawn(op, argv, out_fd, 1);
	close(out_fd);
	if (rc < 0) {
		log_err("pod %s: starting zapc-engine: %s", pod->name, strerror(-rc));
		free(op);
		return rc;
	}
	log_info("pod %s: checkpoint by uid %u (engine %d)%s", pod->name, (unsigned)uid,
		 (int)op->pid, leave_running ? ", leave running" : "");
	return 0;
}

static int restore_start(int in_fd, const char *name, const char *ip, uid_t uid, gid_t gid,
			 op_done_fn done, op_sync_fn sync, bool shift_clocks, bool ahead, void *ctx);

int ops_restore(int in_fd, const char *name, const char *ip, uid_t uid, gid_t gid,
		bool shift_clocks, op_done_fn done, void *ctx)
{
	return restore_start(in_fd, name, ip, uid, gid, done, NULL, shift_clocks, true, ctx);
}

int ops_restore_sync(int in_fd, const char *name, const char *ip, uid_t uid, gid_t gid,
		     bool ahead, op_done_fn done, op_sync_fn sync, void *ctx)
{
	return restore_start(in_fd, name, ip, uid, gid, done, sync, false, ahead, ctx);
}

/*
 * A restore whose pod name and IP are given (the manager's restarts always
 * give both) does not need the image to know its pod: prepare it (netns,
 * veth, cgroups, host route; eth0 left down) while the engine execs and
 * reads the image's first records, instead of after its PodNeeded — the
 * 5-25 ms of pod_prepare leave the restore's critical path.  Run from the
 * event loop just after the spawn, so that the engines of several pods all
 * start first.  If anything is in the way (the name exists, the engine is
 * already done or asked), nothing is done here and on_pod_needed prepares
 * and reports as before.
 */
static void prepare_ahead(evutil_socket_t fd, short what, void *arg)
{
	struct op *op = arg;
	struct pod_spec spec = { .name = op->want_name, .ip = op->want_ip, .uid = op->uid,
				 .gid = op->gid, .defer_net = 1 };

	if (op->prepared || op->pod_handed || op->exited || op->done || op->fail[0] ||
	    pod_find(g.node, op->want_name))
		return;
	if (pod_prepare(g.node, &spec, &op->prepared) < 0) {
		op->prepared = NULL;	/* on_pod_needed tries again and says why */
		return;
	}
	op->net_pending = 1;
	ops_timing("pod %s: prepared ahead", op->want_name);
}

static int restore_start(int in_fd, const char *name, const char *ip, uid_t uid, gid_t gid,
			 op_done_fn done, op_sync_fn sync, bool shift_clocks, bool ahead, void *ctx)
{
	char *argv[] = { "zapc-engine", "restore", "--control", "3", "-i", "-",
			 sync ? "--sync" : shift_clocks ? "--shift-clocks" : NULL,
			 sync && shift_clocks ? "--shift-clocks" : NULL, NULL };
	struct op *op;
	int rc;

	if (name && name[0] && !pod_name_valid(name)) {
		close(in_fd);
		log_err("restore: pod name '%.40s' is not valid", name);
		return -EINVAL;
	}
	op = op_new(OP_RESTORE, uid, done, ctx);
	if (!op) {
		close(in_fd);
		return -ENOMEM;
	}
	op->gid = gid;
	op->sync_cb = sync;
	snprintf(op->want_name, sizeof(op->want_name), "%s", name ? name : "");
	snprintf(op->want_ip, sizeof(op->want_ip), "%s", ip ? ip : "");
	snprintf(op->pod_name, sizeof(op->pod_name), "%s", op->want_name[0] ? op->want_name : "(image)");
	rc = op_spawn(op, argv, in_fd, 0);
	close(in_fd);
	if (rc < 0) {
		log_err("restore: starting zapc-engine: %s", strerror(-rc));
		free(op);
		return rc;
	}
	log_info("restore by uid %u (engine %d)", (unsigned)uid, (int)op->pid);
	if (ahead && op->want_name[0] && op->want_ip[0] && (op->prep_ev = evtimer_new(g.base, prepare_ahead, op))) {
		struct timeval now = { 0, 0 };

		evtimer_add(op->prep_ev, &now);
	}
	return 0;
}

int ops_child_exited(pid_t pid, int status)
{
	for (struct op *op = g.ops; op; op = op->next) {
		if (op->pid != pid)
			continue;
		op->exited = 1;
		op->status = status;
		op_finish(op);
		return 1;
	}
	return 0;
}

void ops_forget_ctx(void *ctx)
{
	for (struct op *op = g.ops; op; op = op->next)
		if (op->ctx == ctx) {
			op->ctx = NULL;
			op->cb = NULL;
		}
}

int ops_sync_answer(void *ctx, int go, const char *why)
{
	Zapc__Engine__ToEngine m = ZAPC__ENGINE__TO_ENGINE__INIT;
	Zapc__Engine__Continue c = ZAPC__ENGINE__CONTINUE__INIT;

	for (struct op *op = g.ops; op; op = op->next) {
		if (op->ctx != ctx || !op->sync_cb || op->ctl < 0)
			continue;
		if (!go) {
			send_abort(op, why);
			return 0;
		}
		m.msg_case = ZAPC__ENGINE__TO_ENGINE__MSG_CONT;
		m.cont = &c;
		return frame_send_msg(op->ctl, &m.base, NULL, 0);
	}
	return -ENOENT;
}

/* The top frames of a kernel stack file (/proc/.../stack) in one line. */
static void read_stack(const char *path, char *out, size_t len)
{
	char buf[512];
	size_t used = 0;
	FILE *f = fopen(path, "re");

	out[0] = 0;
	for (int k = 0; f && k < 6 && fgets(buf, sizeof(buf), f); k++) {
		buf[strcspn(buf, "\n")] = 0;
		char *fn = strchr(buf, ' ');
		used += (size_t)snprintf(out + used, used < len ? len - used : 0, "%s%s", k ? " < " : "",
					 fn ? fn + 1 : buf);
		if (used >= len)
			break;
	}
	if (f)
		fclose(f);
}

/* The state, wait channel and kernel stack of one task, in one line. */
static void log_wedged_task(pid_t tid)
{
	char path[64], st[1200] = "", stack[600] = "", buf[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	if ((f = fopen(path, "re"))) {
		while (fgets(buf, sizeof(buf), f))
			if (!strncmp(buf, "State:", 6) || !strncmp(buf, "TracerPid:", 10) ||
			    !strncmp(buf, "Name:", 5) || !strncmp(buf, "SigPnd:", 7) || !strncmp(buf, "ShdPnd:", 7)) {
				buf[strcspn(buf, "\n")] = 0;
				for (char *c = buf; *c; c++)
					if (*c == '\t')
						*c = ' ';
				size_t l = strlen(st);
				snprintf(st + l, sizeof(st) - l, "%s%s", l ? ", " : "", buf);
			}
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/stack", tid);
	read_stack(path, stack, sizeof(stack));
	log_warn("  awaited task %d: %s; kernel stack: %s", tid, st[0] ? st : "gone", stack);
}

/* One log line per thread of a wedged engine: where it waits (the kernel
 * stack's top frames), so a hang can be diagnosed from the agent's log. */
static void log_wedged(pid_t pid)
{
	char path[320], buf[2048];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char line[600];
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stack", pid, e->d_name);
		read_stack(path, line, sizeof(line));
		FILE *f;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", pid, e->d_name);
		f = fopen(path, "re");
		if (!f || !fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		if (f)
			fclose(f);
		buf[strcspn(buf, "\n")] = 0;
		log_warn("zapc-engine %d thread %s: syscall %s, kernel stack: %s", pid, e->d_name, buf, line);
		/* waiting for one task (wait4 on a tracee): say what that task does */
		long nr = 0, arg = 0;
		if (sscanf(buf, "%ld %lx", &nr, &arg) == 2 && nr == 61 && (pid_t)arg > 0)
			log_wedged_task((pid_t)arg);
	}
	closedir(d);
}

void ops_kill_ctx(void *ctx)
{
	for (struct op *op = g.ops; op; op = op->next)
		if (op->ctx == ctx && !op->exited) {
			log_wedged(op->pid);
			kill(op->pid, SIGKILL);
		}
}

int ops_pod_busy(const struct pod *pod)
{
	for (struct op *op = g.ops; op; op = op->next)
		if ((op->kind == OP_CHECKPOINT && strcmp(op->pod_name, pod->name) == 0) ||
		    op->prepared == pod)
			return 1;
	return 0;
}

void ops_fini(void)
{
	while (g.ops) {
		struct op *op = g.ops;
		int st;

		kill(op->pid, SIGKILL);
		if (waitpid(op->pid, &st, 0) == op->pid) {
			op->exited = 1;
			op->status = st;
		}
		snprintf(op->fail, sizeof(op->fail), "the agent is shutting down");
		op_close_ctl(op);
		if (op->exited)
			op_finish(op);
		else
			op_free(op);
	}
}
