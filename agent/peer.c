/*
 * peer.c — the agent's side of the manager protocol (see peer.h and
 * docs/manager-protocol.md).
 *
 * One TLS connection per manager (libevent bufferevent_openssl).  An
 * operation (Checkpoint or Restart) runs one zapc-engine per pod with --sync
 * (agent/ops.c): every engine stops at each sync point; when all pods of the
 * operation on this node reached a phase the agent sends Reached{phase}; the
 * manager's Go{phase} releases them, Abort (or the manager's connection
 * going away before the last Go) makes every pod resume as it was (checkpoint)
 * or drops the partial restore.  Migration streams go agent to agent in
 * small forked helpers with blocking TLS (a pipe to/from the engine's stdio):
 * the event loop never carries image bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>

#include "agent/cgroup.h"
#include "agent/ops.h"
#include "agent/peer.h"
#include "agent/pod.h"
#include "lib/frame.h"
#include "lib/log.h"
#include "lib/tls.h"
#include "proto/manager.pb-c.h"

#define PROTO_VERSION 1
#define STREAM_ACCEPT_MS 30000

struct pconn;

struct task {
	struct pop *op;
	char pod[POD_NAME_MAX + 1], ip[INET_ADDRSTRLEN];
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	char phase[16];
	int started, finished, status;
	char error[2 * PATH_MAX + 256];
	uint64_t bytes, frozen_us, total_us;
	uint8_t token[32];
	size_t token_len;
	uint64_t *sent;			/* migration source: bytes streamed (shared with the helper) */
};

struct pop {
	uint64_t id;
	struct pconn *c;		/* NULL once the manager is gone */
	int restore, leave_running;
	int ntasks;
	struct task *tasks;
	int aborted, last_go;		/* last_go: past the point of no abort */
	char why[2 * PATH_MAX + 256];
	struct event *grace;		/* abort: engines that never reach a sync point */
	struct event *prog;		/* migration: Progress to the manager, 4 per second */
	uint64_t prog_last;
	struct pop *next;
};

struct pconn {
	struct bufferevent *bev;
	char name[128], addr[64];
	int ok;				/* handshake done, name accepted */
	struct pconn *next;
};

struct pcall {				/* a Call relayed to our own API socket */
	struct bufferevent *bev;
	struct pconn *c;
	uint64_t id;
	struct pcall *next;
};

static struct {
	struct event_base *base;
	struct pod_node *node;
	SSL_CTX *srv, *cli, *rcv;	/* rcv: stream receivers (read-ahead) */
	struct evconnlistener *lis;
	char manager[128], api[108];	/* api: sun_path size */
	struct pconn *conns;
	struct pop *ops;
	struct pcall *calls;
} P;

/* --- sending --------------------------------------------------------------- */

static void send_env(struct pconn *c, Zapc__Mgr__Envelope *e)
{
	if (!c || !c->bev)
		return;
	if (frame_evbuffer_add_msg(bufferevent_get_output(c->bev), &e->base) < 0)
		log_err("manager %s: cannot queue a message", c->name);
}

static void send_status(struct pop *op)
{
	Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
	Zapc__Mgr__Status st = ZAPC__MGR__STATUS__INIT;
	Zapc__Mgr__PodResult *prs = calloc((size_t)op->ntasks, sizeof(*prs));
	Zapc__Mgr__PodResult **pp = calloc((size_t)op->ntasks, sizeof(*pp));

	if (!prs || !pp)
		goto out;
	for (int i = 0; i < op->ntasks; i++) {
		struct task *t = &op->tasks[i];

		zapc__mgr__pod_result__init(&prs[i]);
		prs[i].pod = t->pod;
		prs[i].status = t->status;
		prs[i].error = t->error;
		prs[i].image_bytes = t->bytes;
		prs[i].frozen_us = t->frozen_us;
		prs[i].total_us = t->total_us;
		pp[i] = &prs[i];
		if (t->status && !st.status) {
			st.status = t->status;
			st.error = t->error;
		}
	}
	if (op->aborted && !st.status) {
		st.status = -ECANCELED;
		st.error = op->why;
	}
	st.n_pods = (size_t)op->ntasks;
	st.pods = pp;
	e.op_id = op->id;
	e.m_case = ZAPC__MGR__ENVELOPE__M_STATUS;
	e.status = &st;
	send_env(op->c, &e);
out:
	free(prs);
	free(pp);
}

/* --- operations ------------------------------------------------------------ */

static void op_free(struct pop *op)
{
	for (struct pop **pp = &P.ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	if (op->grace)
		event_free(op->grace);
	if (op->prog)
		event_free(op->prog);
	for (int i = 0; i < op->ntasks; i++)
		if (op->tasks[i].sent)
			munmap(op->tasks[i].sent, sizeof(uint64_t));
	free(op->tasks);
	free(op);
}

static int op_all_finished(struct pop *op)
{
	for (int i = 0; i < op->ntasks; i++)
		if (op->tasks[i].started && !op->tasks[i].finished)
			return 0;
	return 1;
}

/*
 * An aborted checkpoint engine answers at its next sync point.  One that
 * does not get there in time (wedged) is killed: its tracees are detached by
 * the kernel when the tracer dies, and the pod's cgroup is thawed in case it
 * died during the freeze.
 */
#define ABORT_GRACE_S 15
static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct pop *op = arg;

	for (int i = 0; i < op->ntasks; i++) {
		struct task *t = &op->tasks[i];
		struct pod *pod = pod_find(P.node, t->pod);
		char path[PATH_MAX + 32];
		int f;

		if (!t->started || t->finished)
			continue;
		log_warn("pod %s: engine still busy %d s after the abort; killing it", t->pod, ABORT_GRACE_S);
		ops_kill_ctx(t);
		if (pod && pod->cg.path[CG_V2][0]) {
			snprintf(path, sizeof(path), "%s/cgroup.freeze", pod->cg.path[CG_V2]);
			if ((f = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
				if (write(f, "0", 1) != 1)
					log_warn("pod %s: thaw: %s", t->pod, strerror(errno));
				close(f);
			}
		}
	}
}

/* Abort everything still running in op (pods resume / restores dropped). */
static void op_abort(struct pop *op, const char *why)
{
	struct timeval grace = { ABORT_GRACE_S, 0 };

	if (op->aborted || op->last_go)
		return;
	op->aborted = 1;
	snprintf(op->why, sizeof(op->why), "%s", why);
	log_warn("operation %llu aborted: %s", (unsigned long long)op->id, why);
	for (int i = 0; i < op->ntasks; i++) {
		struct task *t = &op->tasks[i];

		if (!t->started || t->finished)
			continue;
		if (op->restore)
			ops_kill_ctx(t);	/* may be blocked reading a stream */
		else if (t->phase[0])
			ops_sync_answer(t, 0, why);
		/* else: answered at its next sync point (task_sync) */
	}
	if (!op->restore && (op->grace = evtimer_new(P.base, on_grace, op)))
		evtimer_add(op->grace, &grace);
}

static void op_check_end(struct pop *op)
{
	if (!op_all_finished(op))
		return;
	ops_timing("op %llu: status", (unsigned long long)op->id);
	send_status(op);
	op_free(op);
}

static void task_done(void *ctx, Zapc__Response *r, struct pod *pod)
{
	struct task *t = ctx;
	struct pop *op = t->op;

	t->finished = 1;
	t->status = r->status;
	if (r->status)
		snprintf(t->error, sizeof(t->error), "pod %s: %s", t->pod,
			 r->error && r->error[0] ? r->error : strerror(-r->status));
	if (!op->restore && r->result_case == ZAPC__RESPONSE__RESULT_CHECKPOINT) {
		t->bytes = r->checkpoint->image_bytes;
		t->total_us = r->checkpoint->total_us;
		if (!t->frozen_us)
			t->frozen_us = r->checkpoint->frozen_us;
	}
	if (op->restore && r->result_case == ZAPC__RESPONSE__RESULT_RESTORE)
		t->total_us = r->restore->total_us;
	if (t->tmp[0]) {
		if (r->status == 0 && rename(t->tmp, t->path) < 0) {
			t->status = -errno;
			snprintf(t->error, sizeof(t->error), "pod %s: rename %s: %s", t->pod, t->path,
				 strerror(errno));
		}
		if (t->status)
			unlink(t->tmp);
	}
	if (t->status && !op->aborted && !op->last_go)
		op_abort(op, t->error);
	op_check_end(op);
}

static void send_reached(struct pop *op, const char *phase, uint64_t frozen_us,
			 Zapc__Mgr__Listening **ls, size_t nls)
{
	Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
	Zapc__Mgr__Reached re = ZAPC__MGR__REACHED__INIT;

	re.phase = (char *)phase;
	re.frozen_us = frozen_us;
	re.listen = ls;
	re.n_listen = nls;
	e.op_id = op->id;
	e.m_case = ZAPC__MGR__ENVELOPE__M_REACHED;
	e.reached = &re;
	send_env(op->c, &e);
}

static void task_sync(void *ctx, const char *phase, uint64_t frozen_us)
{
	struct task *t = ctx;
	struct pop *op = t->op;
	uint64_t worst = 0;
	/* "resumed" (a snapshot's pod runs again) is a report passed on to the
	 * manager once every pod of the operation made it, not a sync point:
	 * the engine waits for no answer and there is nothing left to abort */
	bool report = !strcmp(phase, "resumed");

	snprintf(t->phase, sizeof(t->phase), "%s", phase);
	if (frozen_us)
		t->frozen_us = frozen_us;
	if (op->aborted) {
		if (!report)
			ops_sync_answer(t, 0, op->why);
		return;
	}
	if (!op->c) {	/* the manager is gone: nobody can say Go */
		if (!report)
			op_abort(op, "the manager's connection was lost");
		return;
	}
	for (int i = 0; i < op->ntasks; i++) {
		if (strcmp(op->tasks[i].phase, phase))
			return;
		if (op->tasks[i].frozen_us > worst)
			worst = op->tasks[i].frozen_us;
	}
	ops_timing("op %llu: reached %s", (unsigned long long)op->id, phase);
	send_reached(op, phase, worst, NULL, 0);
}

static void on_progress_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pop *op = arg;
	Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
	Zapc__Mgr__Progress pr = ZAPC__MGR__PROGRESS__INIT;
	uint64_t sum = 0;

	for (int i = 0; i < op->ntasks; i++)
		if (op->tasks[i].sent)
			sum += __atomic_load_n(op->tasks[i].sent, __ATOMIC_RELAXED);
	if (sum == op->prog_last)
		return;
	op->prog_last = sum;
	pr.pod = "";
	pr.bytes = sum;
	e.op_id = op->id;
	e.m_case = ZAPC__MGR__ENVELOPE__M_PROGRESS;
	e.progress = &pr;
	send_env(op->c, &e);
}

static void on_go(struct pop *op, const char *phase, int last)
{
	ops_timing("op %llu: go %s", (unsigned long long)op->id, phase);
	if (op->aborted)
		return;
	if (last)
		op->last_go = 1;
	for (int i = 0; i < op->ntasks; i++) {
		struct task *t = &op->tasks[i];

		if (t->started && !t->finished && !strcmp(t->phase, phase)) {
			t->phase[0] = '\0';
			ops_sync_answer(t, 1, NULL);
		}
	}
}

/* --- migration streams (forked helpers, blocking TLS) ---------------------- */

/*
 * zapc-agent-plainbench (built from this file with -DZAPC_BENCH_PLAIN_STREAMS,
 * never installed; bench/cluster.sh runs it on both agents of a migration):
 * the image streams over plain TCP instead of TLS — no encryption, no
 * certificate check, only the manager's token.  It exists to measure what
 * TLS costs a real migration (the same dump, the same restore, only the
 * transport differs).  zapc-agent itself has no way to turn TLS off.
 */
static int plain_streams(void)
{
#ifdef ZAPC_BENCH_PLAIN_STREAMS
	return 1;
#else
	return 0;
#endif
}

/* Read exactly len bytes from the stream: TLS, or (ssl NULL) the plain fd. */
static int tls_read_full(SSL *ssl, int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = ssl ? tls_read(ssl, p, len) : read(fd, p, len);

		if (n < 0 && !ssl && errno == EINTR)
			continue;
		if (n < 0 && !ssl)
			n = -errno;

		if (n <= 0)
			return n == 0 ? -EPIPE : (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Child: read the image from `in` and send it to the receiving agent. */
static int stream_send(int in, const Zapc__Mgr__Target *tg, const char *pod, uint64_t *sent)
{
	Zapc__Mgr__StreamHello sh = ZAPC__MGR__STREAM_HELLO__INIT;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[64], *colon;
	uint8_t hdr[4 + 512];
	size_t n;
	SSL *ssl = NULL;
	int fd = -1, rc = -EINVAL;

	snprintf(host, sizeof(host), "%s", tg->stream_addr);
	colon = strrchr(host, ':');
	if (!colon)
		goto out;
	*colon = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		goto out;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		log_err("migrate pod %s: connect %s: %s", pod, tg->stream_addr, strerror(errno));
		goto out;
	}
	if (plain_streams())
		log_warn("migrate pod %s: streaming WITHOUT TLS (zapc-agent-plainbench)", pod);
	else if ((rc = tls_connect_fd(P.cli, fd, tg->stream_node, 5000, &ssl)) < 0)
		goto out;
	else
		log_debug("migrate pod %s: streaming with %s", pod, SSL_get_cipher_name(ssl));
	sh.token.data = tg->token.data;
	sh.token.len = tg->token.len;
	sh.pod = (char *)pod;
	n = zapc__mgr__stream_hello__get_packed_size(&sh);
	if (n > sizeof(hdr) - 4)
		goto out;
	hdr[0] = (uint8_t)(n >> 24);
	hdr[1] = (uint8_t)(n >> 16);
	hdr[2] = (uint8_t)(n >> 8);
	hdr[3] = (uint8_t)n;
	zapc__mgr__stream_hello__pack(&sh, hdr + 4);
	if ((rc = ssl ? tls_write_all(ssl, hdr, 4 + n) : fd_write_all(fd, hdr, 4 + n)) < 0)
		goto out;
	rc = tls_stream_send(in, ssl, fd, sent);
out:
	if (ssl)
		tls_close(ssl);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Child: accept the sending agent on lfd, check it, copy its image to out. */
static int stream_receive(int lfd, int out, const struct task *t, const char *from)
{
	Zapc__Mgr__StreamHello *sh = NULL;
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	char name[128];
	uint8_t hdr[4], msg[512];
	uint32_t n;
	SSL *ssl = NULL;
	int fd = -1, rc = -EPROTO;

	if (poll(&pfd, 1, STREAM_ACCEPT_MS) != 1) {
		log_err("migrate pod %s: no stream from %s", t->pod, from);
		rc = -ETIMEDOUT;
		goto out;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		goto out;
	if (plain_streams()) {
		log_warn("migrate pod %s: receiving WITHOUT TLS (zapc-agent-plainbench)", t->pod);
	} else {
		if ((rc = tls_accept_fd(P.rcv, fd, 5000, &ssl)) < 0)
			goto out;
		rc = -EACCES;
		if (tls_peer_name(ssl, name, sizeof(name)) < 0 || strcmp(name, from)) {
			log_err("migrate pod %s: stream from '%s' refused: expected %s", t->pod, name, from);
			goto out;
		}
	}
	rc = -EACCES;
	if (tls_read_full(ssl, fd, hdr, 4) < 0)
		goto out;
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (n > sizeof(msg) || tls_read_full(ssl, fd, msg, n) < 0)
		goto out;
	sh = zapc__mgr__stream_hello__unpack(NULL, n, msg);
	if (!sh || sh->token.len != t->token_len ||
	    CRYPTO_memcmp(sh->token.data, t->token, t->token_len) || strcmp(sh->pod, t->pod)) {
		log_err("migrate pod %s: stream from %s with a wrong token", t->pod, from);
		goto out;
	}
	rc = tls_stream_recv(ssl, fd, out, NULL);
out:
	if (sh)
		zapc__mgr__stream_hello__free_unpacked(sh, NULL);
	if (ssl)
		tls_close(ssl);
	if (fd >= 0)
		close(fd);
	return rc;
}

/*
 * Fork a stream helper; the agent reaps it as an unknown child.  The child
 * keeps only keep1/keep2 (and stdio): a copy of the agent's other fds would
 * keep pipes from reaching EOF and, worse, keep files registered in the
 * agent's epoll instance alive after the agent closed them (epoll entries
 * belong to the open file, not the fd), which then fire for whatever the
 * agent opens under the same number.
 */
static int spawn_helper(int keep1, int keep2, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int lo = keep1 < keep2 ? keep1 : keep2, hi = keep1 < keep2 ? keep2 : keep1;

		if (lo < 0)
			lo = hi;
		if (lo > 3)
			close_range(3, (unsigned)lo - 1, 0);
		if (hi > lo + 1)
			close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
		close_range((unsigned)hi + 1, ~0U, 0);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGPIPE, SIG_IGN);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(arg) < 0 ? 1 : 0);
	}
	return 0;
}

struct helper_arg {
	int fd1, fd2;
	const Zapc__Mgr__Target *tg;
	const struct task *t;
};

static int run_sender(void *a)
{
	struct helper_arg *h = a;

	return stream_send(h->fd1, h->tg, h->t->pod, h->t->sent);
}

static int run_receiver(void *a)
{
	struct helper_arg *h = a;

	return stream_receive(h->fd1, h->fd2, h->t, h->tg->stream_node);
}

/* --- starting operations --------------------------------------------------- */

static int mkdirs(const char *path)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	return 0;
}

static struct pop *op_new(struct pconn *c, uint64_t id, size_t n, int restore)
{
	struct pop *op = calloc(1, sizeof(*op));

	if (!op || !(op->tasks = calloc(n ? n : 1, sizeof(*op->tasks)))) {
		free(op);
		return NULL;
	}
	op->id = id;
	op->c = c;
	op->restore = restore;
	op->ntasks = (int)n;
	op->next = P.ops;
	P.ops = op;
	for (size_t i = 0; i < n; i++)
		op->tasks[i].op = op;
	return op;
}

static void task_fail(struct task *t, int rc, const char *fmt, const char *arg)
{
	t->finished = 1;
	t->status = rc < 0 ? rc : -EIO;
	snprintf(t->error, sizeof(t->error), fmt, t->pod, arg, strerror(-t->status));
}

static int checkpoint_task(struct task *t, const Zapc__Mgr__Target *tg, int leave)
{
	struct pod *pod = pod_find(P.node, t->pod);
	int fd = -1, pfd[2], rc;

	if (!pod) {
		task_fail(t, -ENOENT, "pod %s%s: %s", "");
		return -ENOENT;
	}
	if (tg && tg->stream_addr && tg->stream_addr[0]) {
		struct helper_arg h = { .tg = tg, .t = t };

		if (pipe2(pfd, O_CLOEXEC) < 0) {
			task_fail(t, -errno, "pod %s%s: pipe: %s", "");
			return -1;
		}
		tls_stream_pipe_size(pfd[1]);
		t->sent = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (t->sent == MAP_FAILED)
			t->sent = NULL;
		h.fd1 = pfd[0];
		rc = spawn_helper(pfd[0], -1, run_sender, &h);
		close(pfd[0]);
		if (rc < 0) {
			close(pfd[1]);
			task_fail(t, rc, "pod %s%s: fork: %s", "");
			return rc;
		}
		fd = pfd[1];
	} else if (tg && tg->path && tg->path[0]) {
		snprintf(t->path, sizeof(t->path), "%s", tg->path);
		snprintf(t->tmp, sizeof(t->tmp), "%s.%d.tmp", tg->path, (int)getpid());
		if ((rc = mkdirs(t->path)) < 0) {
			task_fail(t, rc, "pod %s: mkdir for %s: %s", t->path);
			return rc;
		}
		fd = open(t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			task_fail(t, -errno, "pod %s: %s: %s", t->tmp);
			t->tmp[0] = '\0';
			return -1;
		}
	} else {
		task_fail(t, -EINVAL, "pod %s%s: no image target: %s", "");
		return -EINVAL;
	}
	log_last_err_clear();
	rc = ops_checkpoint_sync(pod, fd, leave, 0, task_done, task_sync, t);
	if (rc < 0) {
		const char *e = log_last_err();

		t->finished = 1;
		t->status = rc;
		snprintf(t->error, sizeof(t->error), "pod %s: %s", t->pod, e[0] ? e : strerror(-rc));
		if (t->tmp[0])
			unlink(t->tmp);
		return rc;
	}
	t->started = 1;
	return 0;
}

static void on_checkpoint(struct pconn *c, uint64_t id, Zapc__Mgr__Checkpoint *ck)
{
	struct pop *op = op_new(c, id, ck->n_pods, 0);
	int failed = 0;

	ops_timing("op %llu: checkpoint received", (unsigned long long)id);
	if (!op)
		return;
	op->leave_running = ck->leave_running;
	for (size_t i = 0; i < ck->n_pods; i++) {
		struct task *t = &op->tasks[i];

		snprintf(t->pod, sizeof(t->pod), "%s", ck->pods[i]->pod);
		if (!failed && checkpoint_task(t, ck->pods[i]->target, ck->leave_running) < 0)
			failed = 1;
	}
	log_info("manager %s: checkpoint op %llu, %zu pods%s", c->name, (unsigned long long)id,
		 ck->n_pods, ck->leave_running ? " (snapshot)" : "");
	for (int i = 0; i < op->ntasks; i++)
		if (op->tasks[i].sent && !op->prog) {
			struct timeval tick = { 0, 250000 };

			op->prog = event_new(P.base, -1, EV_PERSIST, on_progress_tick, op);
			if (op->prog)
				evtimer_add(op->prog, &tick);
		}
	if (failed) {
		for (int i = 0; i < op->ntasks; i++)
			if (op->tasks[i].status) {
				op_abort(op, op->tasks[i].error);
				break;
			}
		op_check_end(op);
	}
}

static int restart_task(struct task *t, const Zapc__Mgr__Target *tg, Zapc__Mgr__Listening *ls,
			char *lsaddr, size_t lslen)
{
	int fd = -1, rc;

	if (tg && tg->stream_node && tg->stream_node[0]) {
		struct helper_arg h = { .tg = tg, .t = t };
		struct sockaddr_in sa;
		socklen_t sl = sizeof(sa);
		int lfd, pfd[2];

		/* Listen on the address the manager reached us at, any port. */
		if (getsockname(bufferevent_getfd(t->op->c->bev), (struct sockaddr *)&sa, &sl) < 0 ||
		    sa.sin_family != AF_INET) {
			task_fail(t, -EAFNOSUPPORT, "pod %s%s: stream listener: %s", "");
			return -1;
		}
		sa.sin_port = 0;
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
		    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
			task_fail(t, -errno, "pod %s%s: stream listener: %s", "");
			if (lfd >= 0)
				close(lfd);
			return -1;
		}
		tls_stream_pipe_size(pfd[1]);
		if (tg->token.len > sizeof(t->token)) {
			close(lfd);
			close(pfd[0]);
			close(pfd[1]);
			task_fail(t, -EINVAL, "pod %s%s: token too long: %s", "");
			return -1;
		}
		memcpy(t->token, tg->token.data, tg->token.len);
		t->token_len = tg->token.len;
		h.fd1 = lfd;
		h.fd2 = pfd[1];
		rc = spawn_helper(lfd, pfd[1], run_receiver, &h);
		close(lfd);
		close(pfd[1]);
		if (rc < 0) {
			close(pfd[0]);
			task_fail(t, rc, "pod %s%s: fork: %s", "");
			return rc;
		}
		fd = pfd[0];
		snprintf(lsaddr, lslen, "%s:%u", inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
		ls->pod = t->pod;
		ls->addr = lsaddr;
	} else if (tg && tg->path && tg->path[0]) {
		fd = open(tg->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			task_fail(t, -errno, "pod %s: %s: %s", tg->path);
			return -1;
		}
	} else {
		task_fail(t, -EINVAL, "pod %s%s: no image source: %s", "");
		return -EINVAL;
	}
	log_last_err_clear();
	rc = ops_restore_sync(fd, t->pod, t->ip, 0, 0, !(tg->stream_node && tg->stream_node[0]), task_done,
			      task_sync, t);
	if (rc < 0) {
		const char *e = log_last_err();

		t->finished = 1;
		t->status = rc;
		snprintf(t->error, sizeof(t->error), "pod %s: %s", t->pod, e[0] ? e : strerror(-rc));
		return rc;
	}
	t->started = 1;
	return 0;
}

static void on_restart(struct pconn *c, uint64_t id, Zapc__Mgr__Restart *rs)
{
	struct pop *op = op_new(c, id, rs->n_pods, 1);
	Zapc__Mgr__Listening *ls = calloc(rs->n_pods + 1, sizeof(*ls));
	Zapc__Mgr__Listening **lp = calloc(rs->n_pods + 1, sizeof(*lp));
	char (*addrs)[64] = calloc(rs->n_pods + 1, 64);
	size_t nls = 0;
	int failed = 0;

	ops_timing("op %llu: restart received", (unsigned long long)id);
	if (!op || !ls || !lp || !addrs)
		goto out;
	for (size_t i = 0; i < rs->n_pods; i++) {
		struct task *t = &op->tasks[i];

		snprintf(t->pod, sizeof(t->pod), "%s", rs->pods[i]->pod);
		snprintf(t->ip, sizeof(t->ip), "%s", rs->pods[i]->ip ? rs->pods[i]->ip : "");
		if (failed)
			continue;
		zapc__mgr__listening__init(&ls[nls]);
		if (restart_task(t, rs->pods[i]->target, &ls[nls], addrs[nls], 64) < 0)
			failed = 1;
		else if (ls[nls].addr && ls[nls].addr[0]) {
			lp[nls] = &ls[nls];
			nls++;
		}
	}
	log_info("manager %s: restart op %llu, %zu pods", c->name, (unsigned long long)id, rs->n_pods);
	if (failed) {
		for (int i = 0; i < op->ntasks; i++)
			if (op->tasks[i].status) {
				op_abort(op, op->tasks[i].error);
				break;
			}
		op_check_end(op);
	} else if (nls) {
		send_reached(op, "listening", 0, lp, nls);
	}
out:
	free(ls);
	free(lp);
	free(addrs);
}

/* --- Call: a local API request relayed to our own socket ------------------- */

static void call_free(struct pcall *pc)
{
	for (struct pcall **pp = &P.calls; *pp; pp = &(*pp)->next)
		if (*pp == pc) {
			*pp = pc->next;
			break;
		}
	if (pc->bev)
		bufferevent_free(pc->bev);
	free(pc);
}

static void call_reply(struct pcall *pc, const uint8_t *p, size_t len)
{
	Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
	Zapc__Mgr__Reply rp = ZAPC__MGR__REPLY__INIT;

	rp.response.data = (uint8_t *)p;
	rp.response.len = len;
	e.op_id = pc->id;
	e.m_case = ZAPC__MGR__ENVELOPE__M_REPLY;
	e.reply = &rp;
	send_env(pc->c, &e);
}

static void call_read(struct bufferevent *bev, void *arg)
{
	struct pcall *pc = arg;
	uint8_t *p = NULL;
	size_t len = 0;
	int rc = frame_evbuffer_pull(bufferevent_get_input(bev), FRAME_MAX, &p, &len);

	if (rc == 0)
		return;
	if (rc > 0)
		call_reply(pc, p, len);
	free(p);
	call_free(pc);
}

static void call_event(struct bufferevent *bev, short what, void *arg)
{
	struct pcall *pc = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		Zapc__Response r = ZAPC__RESPONSE__INIT;
		uint8_t buf[256];

		r.status = -EIO;
		r.error = "the agent's API closed the call";
		call_reply(pc, buf, zapc__response__pack(&r, buf));
		call_free(pc);
	}
}

static void on_call(struct pconn *c, uint64_t id, Zapc__Mgr__Call *call)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pcall *pc = calloc(1, sizeof(*pc));
	uint8_t hdr[4];

	if (!pc)
		return;
	pc->c = c;
	pc->id = id;
	pc->next = P.calls;
	P.calls = pc;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", P.api);
	pc->bev = bufferevent_socket_new(P.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!pc->bev || bufferevent_socket_connect(pc->bev, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		call_event(pc->bev, BEV_EVENT_ERROR, pc);
		return;
	}
	hdr[0] = (uint8_t)(call->request.len >> 24);
	hdr[1] = (uint8_t)(call->request.len >> 16);
	hdr[2] = (uint8_t)(call->request.len >> 8);
	hdr[3] = (uint8_t)call->request.len;
	bufferevent_write(pc->bev, hdr, 4);
	bufferevent_write(pc->bev, call->request.data, call->request.len);
	bufferevent_setcb(pc->bev, call_read, NULL, call_event, pc);
	bufferevent_enable(pc->bev, EV_READ);
}

/* --- connections ----------------------------------------------------------- */

static void conn_free(struct pconn *c)
{
	for (struct pconn **pp = &P.conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	for (struct pop *op = P.ops; op; op = op->next)
		if (op->c == c) {
			op->c = NULL;
			/* Before the last Go nobody can finish the operation. */
			op_abort(op, "the manager's connection was lost");
		}
	for (struct pcall *pc = P.calls; pc; pc = pc->next)
		if (pc->c == c)
			pc->c = NULL;
	if (c->bev)
		bufferevent_free(c->bev);
	free(c);
}

static struct pop *op_find(uint64_t id)
{
	for (struct pop *op = P.ops; op; op = op->next)
		if (op->id == id)
			return op;
	return NULL;
}

static void on_envelope(struct pconn *c, Zapc__Mgr__Envelope *e)
{
	struct pop *op = op_find(e->op_id);

	switch (e->m_case) {
	case ZAPC__MGR__ENVELOPE__M_CALL:
		on_call(c, e->op_id, e->call);
		break;
	case ZAPC__MGR__ENVELOPE__M_CHECKPOINT:
		if (op)
			log_warn("manager %s: operation %llu already runs", c->name,
				 (unsigned long long)e->op_id);
		else
			on_checkpoint(c, e->op_id, e->checkpoint);
		break;
	case ZAPC__MGR__ENVELOPE__M_RESTART:
		if (!op)
			on_restart(c, e->op_id, e->restart);
		break;
	case ZAPC__MGR__ENVELOPE__M_GO:
		/* "captured" of a snapshot, "written", "restored": the last Go. */
		if (op)
			on_go(op, e->go->phase ? e->go->phase : "",
			      op->restore || !strcmp(e->go->phase, "written") ||
			      (op->leave_running && !strcmp(e->go->phase, "captured")));
		break;
	case ZAPC__MGR__ENVELOPE__M_ABORT:
		if (op)
			op_abort(op, e->abort->why && e->abort->why[0] ? e->abort->why : "aborted");
		break;
	default:
		break;	/* unknown or unexpected: ignored (old op ids, newer managers) */
	}
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;

	for (;;) {
		uint8_t *p = NULL;
		size_t len = 0;
		int rc = frame_evbuffer_pull(bufferevent_get_input(bev), FRAME_MAX, &p, &len);
		Zapc__Mgr__Envelope *e;

		if (rc == 0)
			return;
		if (rc < 0) {
			log_err("manager %s: bad frame: %s", c->name, strerror(-rc));
			conn_free(c);
			return;
		}
		e = zapc__mgr__envelope__unpack(NULL, len, p);
		free(p);
		if (!e) {
			log_err("manager %s: malformed message", c->name);
			continue;
		}
		on_envelope(c, e);
		zapc__mgr__envelope__free_unpacked(e, NULL);
	}
}

static void conn_close_after_write(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(arg);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct pconn *c = arg;
	Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;

	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		char name[128] = "";

		if (!ssl || tls_peer_name(ssl, name, sizeof(name)) < 0 || strcmp(name, P.manager)) {
			Zapc__Mgr__Refused rf = ZAPC__MGR__REFUSED__INIT;
			char why[256];

			snprintf(why, sizeof(why), "'%s' is not this agent's manager", name);
			log_warn("peer %s: refused: %s", c->addr, why);
			rf.why = why;
			e.m_case = ZAPC__MGR__ENVELOPE__M_REFUSED;
			e.refused = &rf;
			send_env(c, &e);
			bufferevent_setcb(bev, NULL, conn_close_after_write, conn_event, c);
			return;
		}
		Zapc__Mgr__Hello h = ZAPC__MGR__HELLO__INIT;
		struct utsname u;

		uname(&u);
		snprintf(c->name, sizeof(c->name), "%s", name);
		c->ok = 1;
		h.node = P.node->name;
		h.proto_version = PROTO_VERSION;
		h.kernel = u.release;
		e.m_case = ZAPC__MGR__ENVELOPE__M_HELLO;
		e.hello = &h;
		send_env(c, &e);
		log_info("manager %s connected from %s", name, c->addr);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		char why[256];

		if (!c->ok)
			log_warn("tls: %s", tls_bev_strerror(bev, why, sizeof(why)));
		else
			log_info("manager %s (%s) disconnected", c->name, c->addr);
		conn_free(c);
	}
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct pconn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		close(fd);
		return;
	}
	tls_peer_addr(fd, c->addr, sizeof(c->addr));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->bev = tls_bev_server(P.base, P.srv, fd);
	if (!c->bev) {
		free(c);
		return;
	}
	c->next = P.conns;
	P.conns = c;
	bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

int peer_open(struct event_base *base, struct pod_node *node, const char *tls_dir,
	      const char *listen, const char *manager_name, const char *api_socket)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[64], *colon;

	P.base = base;
	P.node = node;
	snprintf(P.manager, sizeof(P.manager), "%s", manager_name ? manager_name : "manager");
	snprintf(P.api, sizeof(P.api), "%s", api_socket);
	snprintf(host, sizeof(host), "%s", listen);
	colon = strrchr(host, ':');
	if (!colon) {
		log_err("--listen %s: want ADDR:PORT", listen);
		return -EINVAL;
	}
	*colon = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa.sin_addr) != 1) {
		log_err("--listen %s: not an IPv4 address", listen);
		return -EINVAL;
	}
	P.srv = tls_ctx_new(tls_dir, TLS_SERVER);
	P.cli = tls_ctx_new(tls_dir, TLS_CLIENT);
	P.rcv = tls_ctx_new(tls_dir, TLS_SERVER);
	if (!P.srv || !P.cli || !P.rcv)
		return -EINVAL;
	tls_ctx_set_read_ahead(P.rcv, 256 << 10);	/* blocking stream receivers only */
	P.lis = evconnlistener_new_bind(base, on_accept, NULL,
					LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
					16, (struct sockaddr *)&sa, sizeof(sa));
	if (!P.lis) {
		log_err("--listen %s: %s", listen, strerror(errno));
		return -errno;
	}
	log_info("manager protocol on %s (TLS %s, manager '%s')", listen, tls_dir, P.manager);
	return 0;
}

void peer_close(void)
{
	while (P.conns)
		conn_free(P.conns);
	while (P.calls)
		call_free(P.calls);
	if (P.lis)
		evconnlistener_free(P.lis);
	P.lis = NULL;
	if (P.srv)
		SSL_CTX_free(P.srv);
	if (P.cli)
		SSL_CTX_free(P.cli);
	if (P.rcv)
		SSL_CTX_free(P.rcv);
	P.srv = P.cli = P.rcv = NULL;
}
