/*
 * server.c — the agent's local API: accept clients on a unix socket, read
 * frames (with fds passed by SCM_RIGHTS), dispatch requests, answer.
 *
 * One event per client fd, no bufferevents: bufferevents cannot return the
 * ancillary data that carries fds, so reads use recvmsg into an evbuffer
 * and the frame decoder (lib/frame.h) cuts frames out of it.  A client is
 * identified by SO_PEERCRED at accept.  A malformed request is answered
 * with an error and the connection keeps serving; an oversized frame is
 * answered and the connection closed (its remaining bytes cannot be
 * trusted to be a frame boundary).  A PodExec answers when the command
 * ends; until then the client's later requests wait (buffered), so answers
 * stay in request order; a client that hangs up meanwhile gets its command
 * a SIGHUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "agent/ops.h"
#include "agent/pod.h"
#include "agent/server.h"
#include "lib/frame.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "proto/agent.pb-c.h"

struct conn {
	int fd;
	struct event *rev, *wev;
	struct evbuffer *in, *out;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int fds[FRAME_MAX_FDS];
	int nfds;
	int busy;		/* a PodExec is running for it */
	int closing;		/* close once out is flushed */
	struct conn *next;
};

struct exec_wait {
	pid_t pid;
	struct conn *conn;	/* NULL once the client has gone */
	char pod[POD_NAME_MAX + 1];
	struct exec_wait *next;
};

static struct {
	struct event_base *base;
	struct pod_node *node;
	int fd;
	struct event *lev;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct conn *conns;
	struct exec_wait *execs;
} srv = { .fd = -1 };

static void conn_process(struct conn *c);

static void conn_drop_fds(struct conn *c)
{
	for (int i = 0; i < c->nfds; i++)
		if (c->fds[i] >= 0)
			close(c->fds[i]);
	c->nfds = 0;
}

static void conn_free(struct conn *c)
{
	struct conn **pp;

	for (pp = &srv.conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	for (struct exec_wait *w = srv.execs; w; w = w->next)
		if (w->conn == c) {
			/* the client went away: its command gets a hang-up */
			kill(w->pid, SIGHUP);
			w->conn = NULL;
		}
	/* a checkpoint or restore goes on; its answer has nobody to go to */
	ops_forget_ctx(c);
	conn_drop_fds(c);
	event_free(c->rev);
	event_free(c->wev);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	close(c->fd);
	free(c);
}

/* Write what we can; returns 1 if c was freed. */
static int conn_flush(struct conn *c)
{
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_free(c);
			return 1;
		}
	}
	if (evbuffer_get_length(c->out) > 0) {
		event_add(c->wev, NULL);
		return 0;
	}
	event_del(c->wev);
	if (c->closing) {
		conn_free(c);
		return 1;
	}
	return 0;
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (conn_flush(c) == 0 && !c->busy && !c->closing)
		conn_process(c);
}

static void respond(struct conn *c, Zapc__Response *r)
{
	if (frame_evbuffer_add_msg(c->out, &r->base) < 0) {
		Zapc__Response e = ZAPC__RESPONSE__INIT;

		e.status = -EMSGSIZE;
		e.error = "response too large";
		frame_evbuffer_add_msg(c->out, &e.base);
	}
}

static void respond_err(struct conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void respond_err(struct conn *c, int status, const char *fmt, ...)
{
	Zapc__Response r = ZAPC__RESPONSE__INIT;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.status = status;
	r.error = msg;
	respond(c, &r);
}

/* The one-line reason of a failure: the agent's own log line when there is one. */
static void respond_fail(struct conn *c, int rc, const char *what)
{
	const char *why = log_last_err();

	if (why[0])
		respond_err(c, rc, "%s", why);
	else
		respond_err(c, rc, "%s: %s", what, strerror(-rc));
}

static int may_act(const struct conn *c, const struct pod *p)
{
	return c->uid == 0 || c->uid == p->uid;
}

/* Pod info for a response; strings point into pod, buffers into bufs. */
struct info_bufs {
	char ip[INET_ADDRSTRLEN];
	char mac[18];
};

static void fill_info(Zapc__PodInfo *pi, struct pod *p, struct info_bufs *b)
{
	zapc__pod_info__init(pi);
	inet_ntop(AF_INET, &p->ip, b->ip, sizeof(b->ip));
	snprintf(b->mac, sizeof(b->mac), "%02x:%02x:%02x:%02x:%02x:%02x",
		 p->mac[0], p->mac[1], p->mac[2], p->mac[3], p->mac[4], p->mac[5]);
	pi->name = p->name;
	pi->ip = b->ip;
	pi->mac = b->mac;
	pi->init_pid = p->init_pid;
	pi->owner_uid = p->uid;
	pi->owner_gid = p->gid;
	pi->state = p->state == POD_RUNNING ? "running" :
		    p->state == POD_PREPARED ? "prepared" : "stopping";
	pi->root = p->root;
	pi->created = p->created;
	pi->veth = p->veth;
	pi->console = p->console;
	if (p->argv) {
		size_t n = 0;

		while (p->argv[n])
			n++;
		pi->n_argv = n;
		pi->argv = p->argv;
	}
}

/* NULL-terminated copy of a protobuf string array (the strings are shared). */
static char **strv(char **v, size_t n)
{
	char **a = calloc(n + 1, sizeof(*a));

	for (size_t i = 0; a && i < n; i++)
		a[i] = v[i];
	return a;
}

static void cmd_pod_create(struct conn *c, Zapc__PodCreate *pc)
{
	struct pod_spec spec = { .name = pc->name, .ip = pc->ip, .root = pc->root,
				 .uid = c->uid, .gid = c->gid, .avoid = pc->avoid, .n_avoid = pc->n_avoid };
	Zapc__Response r = ZAPC__RESPONSE__INIT;
	Zapc__PodInfo pi;
	struct info_bufs b;
	char **argv = NULL, **envp = NULL;
	struct pod *pod = NULL;
	int rc;

	if (pc->n_argv == 0) {
		respond_err(c, -EINVAL, "pod %s: no command given", pc->name);
		return;
	}
	if (pc->root[0] && c->uid != 0) {
		struct stat st;

		if (stat(pc->root, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != c->uid) {
			respond_err(c, -EPERM, "pod %s: root %s: not a directory owned by uid %u",
				    pc->name, pc->root, (unsigned)c->uid);
			return;
		}
	}
	argv = strv(pc->argv, pc->n_argv);
	envp = strv(pc->env, pc->n_env);
	if (!argv || !envp) {
		respond_err(c, -ENOMEM, "out of memory");
		goto out;
	}
	rc = pod_prepare(srv.node, &spec, &pod);
	if (rc < 0) {
		respond_fail(c, rc, "pod create");
		goto out;
	}
	rc = pod_start(srv.node, pod, argv, envp, pc->cwd);
	if (rc < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", log_last_err());
		pod_destroy(srv.node, pod);
		if (why[0])
			respond_err(c, rc, "%s", why);
		else
			respond_err(c, rc, "pod %s: start: %s", pc->name, strerror(-rc));
		goto out;
	}
	fill_info(&pi, pod, &b);
	log_info("pod %s created by uid %u: ip %s init %d cmd %s", pod->name, (unsigned)c->uid,
		 b.ip, pod->init_pid, argv[0]);
	r.result_case = ZAPC__RESPONSE__RESULT_POD;
	r.pod = &pi;
	respond(c, &r);
out:
	free(argv);
	free(envp);
}

static void cmd_pod_exec(struct conn *c, Zapc__PodExec *pe)
{
	struct pod *pod = pod_find(srv.node, pe->name);
	int fds[3] = { -1, -1, -1 }, rc;
	char **argv = NULL, **envp = NULL;
	struct exec_wait *w;
	pid_t helper;

	if (!pod || !may_act(c, pod)) {
		if (pod)
			log_warn("pod %s: exec refused to uid %u (owner %u)", pe->name,
				 (unsigned)c->uid, (unsigned)pod->uid);
		else
			log_info("pod %.40s: exec by uid %u: no such pod", pe->name, (unsigned)c->uid);
		respond_err(c, pod ? -EPERM : -ENOENT, "pod %s: %s", pe->name,
			    pod ? "permission denied (not the pod's owner)" : "no such pod");
		return;
	}
	if (pe->n_argv == 0) {
		respond_err(c, -EINVAL, "pod %s: exec: no command given", pe->name);
		return;
	}
	for (int i = 0; i < 3 && i < c->nfds; i++)
		fds[i] = c->fds[i];
	argv = strv(pe->argv, pe->n_argv);
	envp = strv(pe->env, pe->n_env);
	w = calloc(1, sizeof(*w));
	if (!argv || !envp || !w) {
		respond_err(c, -ENOMEM, "out of memory");
		free(w);
		goto out;
	}
	rc = pod_exec(srv.node, pod, argv, envp, pe->cwd, c->uid, c->gid, fds, pe->detach, &helper);
	if (rc < 0) {
		respond_fail(c, rc, "pod exec");
		free(w);
		goto out;
	}
	log_info("pod %s: exec %s by uid %u (helper %d)%s", pod->name, argv[0], (unsigned)c->uid, helper,
		 pe->detach ? ", detached" : "");
	w->pid = helper;
	w->conn = c;
	snprintf(w->pod, sizeof(w->pod), "%s", pod->name);
	w->next = srv.execs;
	srv.execs = w;
	/* Keep reading: EOF from the client must reach us (it hangs up the command). */
	c->busy = 1;
out:
	free(argv);
	free(envp);
}

static void cmd_pod_list(struct conn *c)
{
	log_debug("pod list by uid %u", (unsigned)c->uid);
	Zapc__Response r = ZAPC__RESPONSE__INIT;
	Zapc__PodListResult lr = ZAPC__POD_LIST_RESULT__INIT;
	Zapc__PodInfo *infos = NULL, **ptrs = NULL;
	struct info_bufs *bufs = NULL;
	size_t n = 0, i = 0;

	for (struct pod *p = srv.node->pods; p; p = p->next)
		n++;
	if (n) {
		infos = calloc(n, sizeof(*infos));
		ptrs = calloc(n, sizeof(*ptrs));
		bufs = calloc(n, sizeof(*bufs));
		if (!infos || !ptrs || !bufs) {
			respond_err(c, -ENOMEM, "out of memory");
			goto out;
		}
	}
	for (struct pod *p = srv.node->pods; p; p = p->next) {
		if (!may_act(c, p))
			continue;
		fill_info(&infos[i], p, &bufs[i]);
		ptrs[i] = &infos[i];
		i++;
	}
	lr.n_pods = i;
	lr.pods = ptrs;
	r.result_case = ZAPC__RESPONSE__RESULT_PODS;
	r.pods = &lr;
	respond(c, &r);
out:
	free(infos);
	free(ptrs);
	free(bufs);
}

static void cmd_pod_destroy(struct conn *c, Zapc__PodDestroy *pd)
{
	Zapc__Response r = ZAPC__RESPONSE__INIT;
	struct pod *pod = pod_find(srv.node, pd->name);

	if (!pod || !may_act(c, pod)) {
		if (pod)
			log_warn("pod %s: destroy refused to uid %u (owner %u)", pd->name,
				 (unsigned)c->uid, (unsigned)pod->uid);
		else
			log_info("pod %.40s: destroy by uid %u: no such pod", pd->name, (unsigned)c->uid);
		respond_err(c, pod ? -EPERM : -ENOENT, "pod %s: %s", pd->name,
			    pod ? "permission denied (not the pod's owner)" : "no such pod");
		return;
	}
	if (ops_pod_busy(pod)) {
		log_info("pod %s: destroy by uid %u refused: checkpoint in progress", pod->name,
			 (unsigned)c->uid);
		respond_err(c, -EBUSY, "pod %s: a checkpoint or restore is in progress", pod->name);
		return;
	}
	log_info("pod %s: destroy by uid %u", pod->name, (unsigned)c->uid);
	pod_destroy(srv.node, pod);
	respond(c, &r);
}

/* A checkpoint or restore ended: answer the client that asked, if still there. */
static void op_answer(void *ctx, Zapc__Response *r, struct pod *pod)
{
	struct conn *c = ctx;
	Zapc__PodInfo pi;
	struct info_bufs b;

	if (pod && r->result_case == ZAPC__RESPONSE__RESULT_RESTORE) {
		fill_info(&pi, pod, &b);
		r->restore->pod = &pi;
	}
	respond(c, r);
	c->busy = 0;
	if (conn_flush(c) == 0)
		conn_process(c);
}

/* Take the request's first fd for a command that keeps it. */
static int take_fd(struct conn *c)
{
	int fd;

	if (c->nfds < 1 || c->fds[0] < 0)
		return -1;
	fd = c->fds[0];
	c->fds[0] = -1;
	return fd;
}

static void cmd_checkpoint(struct conn *c, Zapc__Checkpoint *ck)
{
	struct pod *pod = pod_find(srv.node, ck->name);
	int fd, rc;

	if (!pod || !may_act(c, pod)) {
		log_info("pod %.40s: checkpoint by uid %u refused: %s", ck->name, (unsigned)c->uid,
			 pod ? "not the owner" : "no such pod");
		respond_err(c, pod ? -EPERM : -ENOENT, "pod %s: %s", ck->name,
			    pod ? "permission denied (not the pod's owner)" : "no such pod");
		return;
	}
	fd = take_fd(c);
	if (fd < 0) {
		respond_err(c, -EINVAL, "pod %s: checkpoint: no image fd passed with the request", pod->name);
		return;
	}
	log_last_err_clear();
	struct ckpt_opts o = { ck->parent, ck->compress, ck->full_every, ck->track };
	if (o.parent && o.parent[0] != '\0' && o.parent[0] != '/') {
		close(fd);
		respond_err(c, -EINVAL, "pod %s: checkpoint: parent must be an absolute path", pod->name);
		return;
	}
	rc = ops_checkpoint_opts(pod, fd, ck->leave_running, &o, c->uid, op_answer, c);
	if (rc < 0) {
		respond_fail(c, rc, "checkpoint");
		return;
	}
	c->busy = 1;
}

static void cmd_restore(struct conn *c, Zapc__Restore *rs)
{
	int fd, rc;

	/* The engine restores the credentials recorded in the image; until it
	 * confines them to the caller's, only root may restore. */
	if (c->uid != 0) {
		log_info("restore by uid %u refused: not root", (unsigned)c->uid);
		respond_err(c, -EPERM, "restore: only root may restore images (restored credentials "
			    "are not yet confined to the caller's)");
		return;
	}
	fd = take_fd(c);
	if (fd < 0) {
		respond_err(c, -EINVAL, "restore: no image fd passed with the request");
		return;
	}
	log_last_err_clear();
	rc = ops_restore(fd, rs->name, rs->ip, c->uid, c->gid, rs->shift_clocks, op_answer, c);
	if (rc < 0) {
		respond_fail(c, rc, "restore");
		return;
	}
	c->busy = 1;
}

static void handle_request(struct conn *c, const uint8_t *p, size_t len)
{
	Zapc__Request *req = zapc__request__unpack(NULL, len, p);

	log_last_err_clear();
	if (!req) {
		log_warn("client uid %u pid %d: malformed request (%zu bytes)", (unsigned)c->uid,
			 (int)c->pid, len);
		respond_err(c, -EBADMSG, "malformed request (%zu bytes)", len);
		return;
	}
	switch (req->cmd_case) {
	case ZAPC__REQUEST__CMD_POD_CREATE:
		cmd_pod_create(c, req->pod_create);
		break;
	case ZAPC__REQUEST__CMD_POD_EXEC:
		cmd_pod_exec(c, req->pod_exec);
		break;
	case ZAPC__REQUEST__CMD_POD_LIST:
		cmd_pod_list(c);
		break;
	case ZAPC__REQUEST__CMD_POD_DESTROY:
		cmd_pod_destroy(c, req->pod_destroy);
		break;
	case ZAPC__REQUEST__CMD_CHECKPOINT:
		cmd_checkpoint(c, req->checkpoint);
		break;
	case ZAPC__REQUEST__CMD_RESTORE:
		cmd_restore(c, req->restore);
		break;
	default:
		log_warn("client uid %u pid %d: unknown command", (unsigned)c->uid, (int)c->pid);
		respond_err(c, -EOPNOTSUPP, "unknown command");
		break;
	}
	zapc__request__free_unpacked(req, NULL);
	/* fds not taken by the command do not outlive it */
	conn_drop_fds(c);
}

/* Cut whole frames out of c->in and serve them, until one is pending. */
static void conn_process(struct conn *c)
{
	while (!c->busy && !c->closing) {
		uint8_t *p = NULL;
		size_t len = 0;
		int rc = frame_evbuffer_pull(c->in, FRAME_MAX, &p, &len);

		if (rc == 0)
			break;
		if (rc < 0) {
			log_warn("client uid %u pid %d: %s; closing", (unsigned)c->uid, (int)c->pid,
				 rc == -EMSGSIZE ? "request larger than 4 MiB" : strerror(-rc));
			respond_err(c, rc, "%s", rc == -EMSGSIZE ? "request too large" : strerror(-rc));
			c->closing = 1;
			break;
		}
		handle_request(c, p, len);
		free(p);
	}
	conn_flush(c);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	static uint8_t buf[65536];
	struct conn *c = arg;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	int bad = 0;
	ssize_t n;

	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_free(c);
		return;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		int cnt;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < cnt; i++) {
			int fdi;

			memcpy(&fdi, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (c->nfds < FRAME_MAX_FDS) {
				c->fds[c->nfds++] = fdi;
			} else {
				close(fdi);
				bad = 1;
			}
		}
	}
	if (bad || (mh.msg_flags & MSG_CTRUNC)) {
		log_warn("client uid %u pid %d: too many fds; closing", (unsigned)c->uid, (int)c->pid);
		conn_drop_fds(c);
		respond_err(c, -ENOBUFS, "too many file descriptors");
		c->closing = 1;
		event_del(c->rev);
		conn_flush(c);
		return;
	}
	if (n == 0) {
		if (evbuffer_get_length(c->in) > 0)
			log_warn("client uid %u pid %d: closed in the middle of a request (%zu bytes)",
				 (unsigned)c->uid, (int)c->pid, evbuffer_get_length(c->in));
		conn_free(c);
		return;
	}
	evbuffer_add(c->in, buf, (size_t)n);
	conn_process(c);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	struct conn *c;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		log_warn("accept: SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->rev = event_new(srv.base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(srv.base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	c->next = srv.conns;
	srv.conns = c;
	event_add(c->rev, NULL);
}

void server_child_exited(pid_t pid, int status)
{
	Zapc__Response r = ZAPC__RESPONSE__INIT;
	Zapc__ExecResult er = ZAPC__EXEC_RESULT__INIT;
	struct exec_wait **pp, *w;
	struct pod *pod;

	if (ops_child_exited(pid, status))
		return;
	for (pp = &srv.execs; (w = *pp); pp = &w->next) {
		if (w->pid != pid)
			continue;
		*pp = w->next;
		if (WIFSIGNALED(status)) {
			er.signal = WTERMSIG(status);
			er.exit_code = 128 + er.signal;
		} else {
			er.exit_code = WEXITSTATUS(status);
			if (er.exit_code > 128 && er.exit_code < 128 + 65)
				er.signal = er.exit_code - 128;
		}
		log_info("pod %s: exec helper %d ended: exit code %d", w->pod, pid, er.exit_code);
		if (w->conn) {
			struct conn *c = w->conn;

			r.result_case = ZAPC__RESPONSE__RESULT_EXEC;
			r.exec = &er;
			respond(c, &r);
			c->busy = 0;
			if (conn_flush(c) == 0)
				conn_process(c);
		}
		free(w);
		return;
	}
	pod = pod_find_pid(srv.node, pid);
	if (pod)
		pod_exited(srv.node, pod, status);
}

static void pod_init_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pod *pod = arg;
	int st;
	pid_t r = waitpid(pod->init_pid, &st, WNOHANG);

	pod_exited(srv.node, pod, r == pod->init_pid ? st : -1);
}

static void forget_pod(struct pod *pod)
{
	event_free(pod->watch);
	pod->watch = NULL;
}

static int watch_pod(struct pod_node *node, struct pod *pod)
{
	struct event *ev = event_new(srv.base, pod->pidfd, EV_READ, pod_init_cb, pod);

	if (!ev || event_add(ev, NULL) < 0) {
		if (ev)
			event_free(ev);
		log_err("pod %s: cannot watch init %d", pod->name, pod->init_pid);
		return -ENOMEM;
	}
	pod->watch = ev;
	return 0;
}

int server_open(struct event_base *base, struct pod_node *node, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	srv.base = base;
	srv.node = node;
	node->watch = watch_pod;
	node->forget = forget_pod;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("socket %s: path too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	mkdir_parents(path, 0755);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (access(path, F_OK) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			close(fd);
			log_err("socket %s: another agent is serving it", path);
			return -EADDRINUSE;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		rc = -errno;
		log_err("socket %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	/* Anyone may connect; SO_PEERCRED decides what they may do. */
	chmod(path, 0666);
	srv.fd = fd;
	snprintf(srv.path, sizeof(srv.path), "%s", path);
	srv.lev = event_new(base, fd, EV_READ | EV_PERSIST, accept_cb, NULL);
	event_add(srv.lev, NULL);
	return 0;
}

void server_close(void)
{
	while (srv.conns)
		conn_free(srv.conns);
	if (srv.lev)
		event_free(srv.lev);
	srv.lev = NULL;
	if (srv.fd >= 0) {
		close(srv.fd);
		unlink(srv.path);
	}
	srv.fd = -1;
	while (srv.execs) {
		struct exec_wait *w = srv.execs;

		srv.execs = w->next;
		free(w);
	}
}
