/*
 * ops.c — the manager's operations on jobs: run, checkpoint, restart,
 * migrate, destroy (docs/manager-protocol.md).
 *
 * Each coordinated operation is a list of barriers.  The manager sends the
 * operation to every agent involved, then waits until every one of them has
 * Reached the phase (its pods' engines are stopped at that sync point) and
 * only then sends Go.  A Status < 0, a lost connection or the phase timeout
 * on any agent before the last Go aborts the whole operation: Abort goes to
 * every agent, pods resume as they were (checkpoint, migration sources) or
 * the partial restores are destroyed (restart, migration destinations), and
 * the routes the manager changed are put back.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "manager/conn.h"
#include "manager/jobs.h"
#include "proto/agent.pb-c.h"

#define MAXP 64		/* agents per operation */

static uint64_t next_op = 1;

static void outf(out_fn out, void *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void outf(out_fn out, void *ctx, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	out(ctx, line);
}

/* $ZAPC_MANAGER_TIMING: "TIMING manager MS WHAT" lines on stderr, MS on
 * CLOCK_MONOTONIC like the agents' (ZAPC_AGENT_TIMING): a step timeline. */
static void mtiming(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mtiming(const char *fmt, ...)
{
	static int on = -1;
	va_list ap;

	va_start(ap, fmt);
	log_vtiming(&on, "ZAPC_MANAGER_TIMING", "manager", fmt, ap);
	va_end(ap);
}

/* --- one agent taking part in an operation -------------------------------- */

struct part {
	struct agent *a;
	uint64_t opid;			/* o->id, +1 for the restore side: a node can be both */
	char node[64];
	int role;			/* 1: checkpoint side, 2: restore side */
	int npods;
	char reached[16];		/* the sync point it stands at ("" after a Go) */
	int done, status;
	char err[1024];
	uint64_t frozen_us, bytes, total_us, streamed;
	Zapc__Mgr__Reached *reach;	/* the last Reached (listening addresses) */
};

struct opstate {
	uint64_t id;
	struct part p[MAXP];
	int n;
	const char *phase;		/* waiting for Reached{phase}; NULL: for Status */
	int roles;			/* which parts this wait is about */
	char fail[1400];
	int64_t t0;
	out_fn out;			/* progress lines while images stream */
	void *ctx;
	int64_t prog_at;
	uint64_t prog_bytes;
};

static struct part *part_of(struct opstate *o, const char *node, int role)
{
	for (int i = 0; i < o->n; i++)
		if (!strcmp(o->p[i].node, node) && o->p[i].role == role)
			return &o->p[i];
	if (o->n == MAXP)
		return NULL;
	struct part *p = &o->p[o->n++];

	memset(p, 0, sizeof(*p));
	snprintf(p->node, sizeof(p->node), "%s", node);
	p->role = role;
	p->opid = o->id + (role == 2);
	return p;
}

static int all_in(struct opstate *o)
{
	for (int i = 0; i < o->n; i++) {
		struct part *p = &o->p[i];

		if (!(p->role & o->roles))
			continue;
		if (o->phase ? strcmp(p->reached, o->phase) : !p->done)
			return 0;
	}
	return 1;
}

static int on_env(void *arg, int i, Zapc__Mgr__Envelope *e)
{
	struct opstate *o = arg;
	struct agent *a = o->p[i].a;
	struct part *p = NULL;
	int lost = 0;

	if (!e) {
		/* Every part served by that agent has lost it. */
		for (int k = 0; k < o->n; k++) {
			p = &o->p[k];
			if (p->a != a || p->done)
				continue;
			p->done = 1;
			p->status = -ECONNRESET;
			snprintf(p->err, sizeof(p->err), "connection lost");
			if (!lost && o->phase)
				snprintf(o->fail, sizeof(o->fail), "%s: connection lost while waiting for '%s'",
					 p->node, o->phase);
			else if (!lost)
				snprintf(o->fail, sizeof(o->fail), "%s: connection lost before its status", p->node);
			lost = 1;
		}
		return lost ? -1 : 0;
	}
	for (int k = 0; k < o->n; k++)
		if (o->p[k].a == a && o->p[k].opid == e->op_id)
			p = &o->p[k];
	if (!p)
		return jobs_stray(NULL, i, e);
	switch (e->m_case) {
	case ZAPC__MGR__ENVELOPE__M_REACHED:
		mtiming("%s reached %s", p->node, e->reached->phase);
		/* Recorded whatever the manager waits for now: a migration's
		 * destination may reach 'restored' while the manager still waits
		 * for the sources' 'written' (and must not count its earlier
		 * 'listening' as 'restored'). */
		if (e->reached->phase && e->reached->phase[0]) {
			snprintf(p->reached, sizeof(p->reached), "%s", e->reached->phase);
			if (e->reached->frozen_us > p->frozen_us)
				p->frozen_us = e->reached->frozen_us;
			if (p->reach)
				zapc__mgr__reached__free_unpacked(p->reach, NULL);
			p->reach = NULL;
			if (e->reached->n_listen) {
				/* keep the listening addresses: repack into our own copy */
				size_t len = zapc__mgr__reached__get_packed_size(e->reached);
				uint8_t *buf = malloc(len);

				if (buf) {
					zapc__mgr__reached__pack(e->reached, buf);
					p->reach = zapc__mgr__reached__unpack(NULL, len, buf);
					free(buf);
				}
			}
		}
		break;
	case ZAPC__MGR__ENVELOPE__M_STATUS:
		mtiming("%s status %d", p->node, e->status->status);
		p->done = 1;
		p->status = e->status->status;
		snprintf(p->err, sizeof(p->err), "%s", e->status->error ? e->status->error : "");
		p->bytes = 0;
		for (size_t k = 0; k < e->status->n_pods; k++) {
			Zapc__Mgr__PodResult *r = e->status->pods[k];

			p->bytes += r->image_bytes;
			if (r->frozen_us > p->frozen_us)
				p->frozen_us = r->frozen_us;
			if (r->total_us > p->total_us)
				p->total_us = r->total_us;
		}
		if (p->status < 0 && o->phase) {
			snprintf(o->fail, sizeof(o->fail), "%s: %s", p->node,
				 p->err[0] ? p->err : strerror(-p->status));
			return -1;
		}
		break;
	case ZAPC__MGR__ENVELOPE__M_REPLY:
		return jobs_stray(NULL, i, e);
	case ZAPC__MGR__ENVELOPE__M_PROGRESS:
		p->streamed = e->progress->bytes;
		if (o->out && now_ms() - o->prog_at >= 250) {
			uint64_t sum = 0;
			int64_t t = now_ms();

			for (int k = 0; k < o->n; k++)
				sum += o->p[k].streamed;
			if (o->prog_at) {
				char line[256];

				snprintf(line, sizeof(line), "[%7.1f ms]   streaming: %8.1f MiB  %7.1f MiB/s",
					 (double)(t - o->t0), sum / 1048576.0,
					 (sum - o->prog_bytes) / 1048576.0 / ((t - o->prog_at) / 1000.0));
				o->out(o->ctx, line);
			}
			o->prog_at = t;
			o->prog_bytes = sum;
		}
		break;
	default:
		break;
	}
	return all_in(o) ? 1 : 0;
}

/* Wait for Reached{phase} (or, phase NULL, Status) from every part in roles. */
static int wait_all(struct opstate *o, const char *phase, int roles)
{
	struct agent *as[MAXP];
	int rc;

	o->phase = phase;
	o->roles = roles;
	o->fail[0] = '\0';
	for (int i = 0; i < o->n; i++) {
		struct part *p = &o->p[i];

		as[i] = p->a;
		/* A connection that died while we sent to it (conn_send dropped it). */
		if ((p->role & roles) && !p->done && (!p->a || p->a->fd < 0)) {
			p->done = 1;
			p->status = -ECONNRESET;
			snprintf(p->err, sizeof(p->err), "connection lost");
			snprintf(o->fail, sizeof(o->fail), "%s: connection lost%s%s%s", p->node,
				 phase ? " while waiting for '" : "", phase ? phase : "", phase ? "'" : "");
			return -1;
		}
	}
	if (all_in(o))
		return 0;
	rc = conn_wait(as, o->n, now_ms() + conf.timeout_ms, on_env, o);
	if (rc > 0)
		return 0;
	if (!o->fail[0]) {
		for (int i = 0; i < o->n; i++) {
			struct part *p = &o->p[i];

			if ((p->role & roles) && (phase ? strcmp(p->reached, phase) : !p->done)) {
				snprintf(o->fail, sizeof(o->fail), "%s: no answer %s within %d ms",
					 p->node, phase ? phase : "(status)", conf.timeout_ms);
				break;
			}
		}
	}
	return -1;
}

/*
 * Before a Go that cannot be taken back (pods end, restored pods run), make
 * sure no agent has gone away meanwhile: a peer whose connection already
 * reads EOF gets an Abort instead of a half commit.  (A peer dying after
 * this check is a failure after the commit point: its own pods resume, the
 * images are complete; docs/manager-protocol.md §7.)
 */
static int all_alive(struct opstate *o)
{
	for (int i = 0; i < o->n; i++)
		if (!o->p[i].a || !conn_alive(o->p[i].a)) {
			o->p[i].done = 1;
			o->p[i].status = -ECONNRESET;
			snprintf(o->p[i].err, sizeof(o->p[i].err), "connection lost");
			snprintf(o->fail, sizeof(o->fail), "%s: connection lost before the commit",
				 o->p[i].node);
			return 0;
		}
	return 1;
}

static void send_go(struct opstate *o, const char *phase, int roles)
{
	Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
	Zapc__Mgr__Go go = ZAPC__MGR__GO__INIT;

	mtiming("go %s", phase);
	go.phase = (char *)phase;
	e.op_id = o->id;
	e.m_case = ZAPC__MGR__ENVELOPE__M_GO;
	e.go = &go;
	for (int i = 0; i < o->n; i++)
		if ((o->p[i].role & roles) && o->p[i].a && o->p[i].a->fd >= 0) {
			o->p[i].reached[0] = '\0';
			e.op_id = o->p[i].opid;
			conn_send(o->p[i].a, &e);
		}
}

/* Send e to participant pi under its operation id; on a lost connection
 * o->fail names the node ("NODE: connection lost[ sending the WHAT]"). */
static int send_part(struct opstate *o, int pi, Zapc__Mgr__Envelope *e, const char *what)
{
	e->op_id = o->p[pi].opid;
	if (conn_send(o->p[pi].a, e) == 0)
		return 0;
	snprintf(o->fail, sizeof(o->fail), "%s: connection lost%s%s", o->p[pi].node,
		 what ? " sending the " : "", what ? what : "");
	return -1;
}

/* Abort on every agent still there and collect their statuses. */
static void abort_all(struct opstate *o, const char *why)
{
	Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
	Zapc__Mgr__Abort ab = ZAPC__MGR__ABORT__INIT;
	int save = conf.timeout_ms;
	char keep[sizeof(o->fail)];

	ab.why = (char *)why;
	e.op_id = o->id;
	e.m_case = ZAPC__MGR__ENVELOPE__M_ABORT;
	e.abort = &ab;
	for (int i = 0; i < o->n; i++)
		if (o->p[i].a && o->p[i].a->fd >= 0 && !o->p[i].done) {
			e.op_id = o->p[i].opid;
			conn_send(o->p[i].a, &e);
		}
	/* Wait for them to have put everything back (bounded). */
	snprintf(keep, sizeof(keep), "%s", o->fail);
	conf.timeout_ms = save > 15000 ? 15000 : save;
	for (int i = 0; i < o->n; i++)
		if (!o->p[i].a || o->p[i].a->fd < 0)
			o->p[i].done = 1;
	for (int tries = 0; tries <= o->n && wait_all(o, NULL, 3) < 0 && !strstr(o->fail, "no answer");
	     tries++)
		;
	conf.timeout_ms = save;
	snprintf(o->fail, sizeof(o->fail), "%s", keep);
}

static void op_free_parts(struct opstate *o)
{
	for (int i = 0; i < o->n; i++)
		if (o->p[i].reach)
			zapc__mgr__reached__free_unpacked(o->p[i].reach, NULL);
}

static int connect_parts(struct opstate *o, char *err, size_t errlen)
{
	for (int i = 0; i < o->n; i++) {
		char why[1024];

		o->p[i].a = conn_get(o->p[i].node, why, sizeof(why));
		if (!o->p[i].a) {
			snprintf(err, errlen, "%s", why);
			return -EHOSTUNREACH;
		}
	}
	return 0;
}

static double ms_since(int64_t t0) { return (double)(now_ms() - t0); }

/*
 * Fault injection for tests: $ZAPC_MANAGER_FAULT_FILE may hold lines
 * "OP PHASE SHELL-COMMAND"; the command runs (synchronously) when operation
 * OP (checkpoint, restart, migrate) reaches PHASE ("sent": the agents have
 * the operation; "captured", "written", "restored": every agent reached
 * that sync point, before Go).  tests/cluster/faults.t kills agents there.
 */
static void fault_point(const char *op, const char *phase)
{
	const char *path = getenv("ZAPC_MANAGER_FAULT_FILE");
	char line[1024], o[32], ph[32];
	int off = 0;
	FILE *f;

	if (!path || !(f = fopen(path, "re")))
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%31s %31s %n", o, ph, &off) == 2 && off > 0 &&
		    !strcmp(o, op) && !strcmp(ph, phase)) {
			log_warn("fault injection at %s/%s: %s", op, phase, line + off);
			if (system(line + off) != 0)
				log_warn("fault command failed");
		}
	fclose(f);
}

/* --- routes (the hook) ----------------------------------------------------- */

static int run_route(const char *verb, const char *ip, const char *node, char *err, size_t errlen)
{
	char cmd[4096];
	int st;

	if (!conf.route_cmd || !conf.route_cmd[0])
		return 0;
	snprintf(cmd, sizeof(cmd), "%s %s %s %s", conf.route_cmd, verb, ip, node ? node : "");
	st = system(cmd);
	if (st != 0) {
		snprintf(err, errlen, "route hook failed (exit %d): %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
			 cmd);
		return -EIO;
	}
	return 0;
}

/* All pods' routes in one hook call: `CMD route IP NODE IP NODE ...` (the
 * pods are frozen meanwhile; one call per pod cost ~0.3 s each in the
 * simulated cluster). */
static pid_t routes_pid;

/* Wait for a route hook started with run_routes(..., background=1). */
static int routes_wait(char *err, size_t errlen)
{
	int st = 0;

	if (routes_pid <= 0)
		return 0;
	if (waitpid(routes_pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		routes_pid = 0;
		snprintf(err, errlen, "route hook failed (%s route ...)", conf.route_cmd);
		return -EIO;
	}
	routes_pid = 0;
	return 0;
}

static int run_routes_bg(const struct jpod *pods, int n, int background, char *err, size_t errlen);

static int run_routes(const struct jpod *pods, int n, char *err, size_t errlen)
{
	return run_routes_bg(pods, n, 0, err, errlen);
}

static int run_routes_bg(const struct jpod *pods, int n, int background, char *err, size_t errlen)
{
	size_t len, o = 0;
	char *cmd;
	int st;

	if (!conf.route_cmd || !conf.route_cmd[0] || n <= 0)
		return 0;
	len = strlen(conf.route_cmd) + 16 + (size_t)n * 96;
	cmd = malloc(len);
	if (!cmd)
		return -ENOMEM;
	o += (size_t)snprintf(cmd + o, len - o, "%s route", conf.route_cmd);
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(cmd + o, len - o, " %s %s", pods[i].ip, pods[i].node);
	if (background) {
		/* vfork: a fork of the manager would cost it ms of page-table
		 * copies and COW faults here (PVM guest) while it sends the
		 * operation; signals stay blocked until the child execs. */
		sigset_t all, old;

		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, &old);
		routes_pid = vfork();
		if (routes_pid == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
			_exit(127);
		}
		sigprocmask(SIG_SETMASK, &old, NULL);
		free(cmd);
		if (routes_pid < 0) {
			snprintf(err, errlen, "route hook: fork: %s", strerror(errno));
			return -errno;
		}
		return 0;
	}
	st = system(cmd);
	free(cmd);
	if (st != 0) {
		snprintf(err, errlen, "route hook failed (%s route ...)", conf.route_cmd);
		return -EIO;
	}
	return 0;
}

/* --- local API calls through the agent (Call/Reply) ------------------------- */

struct callwait {
	uint64_t id;
	Zapc__Response *resp;
	int lost;
};

static int on_call_env(void *arg, int i, Zapc__Mgr__Envelope *e)
{
	struct callwait *w = arg;

	if (!e) {
		w->lost = 1;
		return -1;
	}
	if (e->op_id == w->id && e->m_case == ZAPC__MGR__ENVELOPE__M_REPLY) {
		w->resp = zapc__response__unpack(NULL, e->reply->response.len, e->reply->response.data);
		return 1;
	}
	return jobs_stray(NULL, i, e);
}

/* Send req to node's agent; wait for the response if wait (else return the call id). */
static int agent_call(const char *node, const Zapc__Request *req, int wait, Zapc__Response **resp,
		      uint64_t *call_id, char *err, size_t errlen)
{
	Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
	Zapc__Mgr__Call c = ZAPC__MGR__CALL__INIT;
	struct callwait w = { .id = next_op++ };
	struct agent *a = conn_get(node, err, errlen);
	size_t len = zapc__request__get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	int rc;

	if (!a || !buf) {
		free(buf);
		return -EHOSTUNREACH;
	}
	zapc__request__pack(req, buf);
	c.request.data = buf;
	c.request.len = len;
	e.op_id = w.id;
	e.m_case = ZAPC__MGR__ENVELOPE__M_CALL;
	e.call = &c;
	rc = conn_send(a, &e);
	free(buf);
	if (rc < 0) {
		snprintf(err, errlen, "%s: connection lost", node);
		return rc;
	}
	if (call_id)
		*call_id = w.id;
	if (!wait)
		return 0;
	rc = conn_wait(&a, 1, now_ms() + conf.timeout_ms, on_call_env, &w);
	if (rc <= 0 || !w.resp) {
		snprintf(err, errlen, "%s: %s", node, w.lost ? "connection lost" : "no answer");
		return -EIO;
	}
	*resp = w.resp;
	return 0;
}

static int pod_destroy(const char *node, const char *pod)
{
	Zapc__Request rq = ZAPC__REQUEST__INIT;
	Zapc__PodDestroy pd = ZAPC__POD_DESTROY__INIT;
	Zapc__Response *r = NULL;
	char err[512];
	int rc;

	pd.name = (char *)pod;
	rq.cmd_case = ZAPC__REQUEST__CMD_POD_DESTROY;
	rq.pod_destroy = &pd;
	rc = agent_call(node, &rq, 1, &r, NULL, err, sizeof(err));
	if (rc == 0) {
		rc = r->status;
		zapc__response__free_unpacked(r, NULL);
	}
	return rc;
}

/* --- job helpers ------------------------------------------------------------ */

static int name_ok(const char *s)
{
	if (!s || !s[0] || strlen(s) > 24 || s[0] == '.')
		return 0;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
		    *s != '-' && *s != '_' && *s != '.')
			return 0;
	return 1;
}

static char *subst(const char *arg, const struct job *j, int rank, const char *hosts)
{
	char out[4096], num[16];
	size_t o = 0;

	for (const char *s = arg; *s && o < sizeof(out) - 64;) {
		const char *rep = NULL;
		size_t skip = 0;

		if (!strncmp(s, "{rank}", 6)) {
			snprintf(num, sizeof(num), "%d", rank);
			rep = num, skip = 6;
		} else if (!strncmp(s, "{n}", 3)) {
			snprintf(num, sizeof(num), "%d", j->npods);
			rep = num, skip = 3;
		} else if (!strncmp(s, "{pod}", 5)) {
			rep = j->pods[rank].name, skip = 5;
		} else if (!strncmp(s, "{ip0}", 5)) {
			rep = j->pods[0].ip, skip = 5;
		} else if (!strncmp(s, "{hosts}", 7) && hosts) {
			rep = hosts, skip = 7;
		}
		if (rep) {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", rep);
			s += skip;
		} else {
			out[o++] = *s++;
		}
	}
	out[o < sizeof(out) ? o : sizeof(out) - 1] = '\0';
	return strdup(out);
}

static struct job *job_new(const char *name)
{
	struct job *j = calloc(1, sizeof(*j));
	extern struct job *jobs_head;

	if (!j)
		return NULL;
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->next = jobs_head;
	jobs_head = j;
	return j;
}

static void job_remove(struct job *j)
{
	extern struct job *jobs_head;

	for (struct job **pp = &jobs_head; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	free(j->pods);
	free(j);
}

/* Pods per node, in job order: the table printed at the end of operations. */
static void print_table(out_fn out, void *ctx, struct opstate *o, int role, const char *what)
{
	outf(out, ctx, "%-16s %4s %12s %10s %10s  %s", "NODE", "PODS", what, "FROZEN", "TOTAL", "STATUS");
	for (int i = 0; i < o->n; i++) {
		struct part *p = &o->p[i];

		if (!(p->role & role))
			continue;
		if (role == 2)	/* restores: no image size, no freeze */
			outf(out, ctx, "%-16s %4d %12s %10s %7.1f ms  %s", p->node, p->npods, "-", "-",
			     p->total_us / 1000.0, p->status ? p->err : "ok");
		else
			outf(out, ctx, "%-16s %4d %9.1f MiB %7.1f ms %7.1f ms  %s", p->node, p->npods,
			     p->bytes / 1048576.0, p->frozen_us / 1000.0, p->total_us / 1000.0,
			     p->status ? p->err : "ok");
	}
}

/* --- run ---------------------------------------------------------------------- */

int job_run(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen)
{
	int k = rq->pods_per_node ? (int)rq->pods_per_node : 1, n = (int)rq->n_nodes * k, rc = 0;
	char hosts[4096] = "", launch[4096];
	struct job *j;

	if (!name_ok(rq->job)) {
		snprintf(err, errlen, "job name '%s': want 1-24 of [A-Za-z0-9_.-]", rq->job);
		return -EINVAL;
	}
	if (job_find(rq->job)) {
		snprintf(err, errlen, "job %s exists (zapc job destroy %s)", rq->job, rq->job);
		return -EEXIST;
	}
	if (!rq->n_nodes || !rq->n_argv || n > 256) {
		snprintf(err, errlen, "run: want --nodes, a command, at most 256 pods");
		return -EINVAL;
	}
	j = job_new(rq->job);
	if (!j || !(j->pods = calloc((size_t)n, sizeof(*j->pods)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	j->mpi = rq->mpi;
	snprintf(j->state, sizeof(j->state), "starting");
	snprintf(launch, sizeof(launch), "%s/%s.launch", conf.state_dir, j->name);
	unlink(launch);
	for (int i = 0; i < n; i++) {
		snprintf(j->pods[i].name, sizeof(j->pods[i].name), "%s-%d", rq->job, i);
		snprintf(j->pods[i].node, sizeof(j->pods[i].node), "%s", rq->nodes[i / k]);
	}
	char **avoid = NULL;
	size_t navoid = 0;
	for (struct job *o = jobs_all(); o; o = o->next)
		for (int i = 0; o != j && i < o->npods; i++)
			if (o->pods[i].ip[0] && (avoid = realloc(avoid, (navoid + 1) * sizeof(*avoid))))
				avoid[navoid++] = o->pods[i].ip;
	for (int i = 0; i < n && rc == 0; i++) {
		Zapc__Request req = ZAPC__REQUEST__INIT;
		Zapc__PodCreate pc = ZAPC__POD_CREATE__INIT;
		Zapc__Response *r = NULL;
		char *argv[64], *idle[] = { "sleep", "2147483647" }, wait0[4400];
		char *waiter[] = { "/bin/sh", "-c", wait0 };
		size_t na = 0;

		pc.name = j->pods[i].name;
		/* Pods that moved keep their addresses, which may come from this
		 * node's pool: the agent must not hand them out again. */
		pc.avoid = avoid;
		pc.n_avoid = navoid;
		if (rq->mpi && i > 0) {
			pc.argv = idle;
			pc.n_argv = 2;
		} else if (rq->mpi) {
			snprintf(wait0, sizeof(wait0), "while [ ! -e '%s' ]; do sleep 0.05; done; . '%s'",
				 launch, launch);
			pc.argv = waiter;
			pc.n_argv = 3;
		} else {
			for (size_t a = 0; a < rq->n_argv && a < 64; a++)
				argv[na++] = subst(rq->argv[a], j, i, NULL);
			pc.argv = argv;
			pc.n_argv = na;
		}
		req.cmd_case = ZAPC__REQUEST__CMD_POD_CREATE;
		req.pod_create = &pc;
		rc = agent_call(j->pods[i].node, &req, 1, &r, NULL, err, errlen);
		for (size_t a = 0; a < na; a++)
			free(argv[a]);
		if (rc == 0 && r->status) {
			snprintf(err, errlen, "%s: pod %s: %s", j->pods[i].node, j->pods[i].name,
				 r->error ? r->error : strerror(-r->status));
			rc = r->status;
		} else if (rc == 0 && r->result_case == ZAPC__RESPONSE__RESULT_POD) {
			snprintf(j->pods[i].ip, sizeof(j->pods[i].ip), "%s", r->pod->ip);
			j->npods = i + 1;
			outf(out, ctx, "pod %-20s %-15s on %s", j->pods[i].name, j->pods[i].ip, j->pods[i].node);
		}
		if (r)
			zapc__response__free_unpacked(r, NULL);
	}
	if (rc == 0 && rq->mpi) {
		/* Pod 0 waits for this script; it needs every pod's IP, known only now. */
		char tmp[4200];
		FILE *f;

		snprintf(hosts, sizeof(hosts), "%s/%s.hosts", conf.state_dir, j->name);
		f = fopen(hosts, "we");
		for (int i = 0; f && i < n; i++)
			fprintf(f, "%s\n", j->pods[i].ip);
		if (!f || fclose(f) != 0)
			rc = -EIO;
		snprintf(tmp, sizeof(tmp), "%s.tmp", launch);
		f = rc == 0 ? fopen(tmp, "we") : NULL;
		if (f) {
			fprintf(f, "exec");
			for (size_t a = 0; a < rq->n_argv; a++) {
				char *arg = subst(rq->argv[a], j, 0, hosts);

				fputs(" '", f);
				for (char *c = arg; c && *c; c++)
					fputs(*c == '\'' ? "'\\''" : (char[]){ *c, 0 }, f);
				fputc('\'', f);
				free(arg);
			}
			fputc('\n', f);
		}
		if (!f || fclose(f) != 0 || rename(tmp, launch) < 0) {
			snprintf(err, errlen, "%s: cannot write the launch script", launch);
			rc = -EIO;
		} else {
			snprintf(j->note, sizeof(j->note), "launcher in pod %s (its console)", j->pods[0].name);
			outf(out, ctx, "launcher started in pod %s (hosts %s)", j->pods[0].name, hosts);
		}
	}
	free(avoid);
	if (rc < 0) {
		for (int i = 0; i < j->npods; i++)
			pod_destroy(j->pods[i].node, j->pods[i].name);
		job_remove(j);
		return rc;
	}
	snprintf(j->state, sizeof(j->state), "running");
	jobs_save();
	outf(out, ctx, "job %s: %d pods on %zu nodes, running", j->name, n, rq->n_nodes);
	return 0;
}

int job_destroy(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen)
{
	struct job *j = job_find(rq->job);

	if (!j) {
		snprintf(err, errlen, "no job %s", rq->job);
		return -ENOENT;
	}
	if (!strcmp(j->state, "running") || !strcmp(j->state, "finished"))
		for (int i = 0; i < j->npods; i++) {
			int rc = pod_destroy(j->pods[i].node, j->pods[i].name);

			if (rc < 0 && rc != -ENOENT)
				outf(out, ctx, "warning: %s: pod %s: %s", j->pods[i].node, j->pods[i].name,
				     strerror(-rc));
		}
	job_remove(j);
	jobs_save();
	outf(out, ctx, "job %s destroyed", rq->job);
	return 0;
}

/* --- checkpoint ----------------------------------------------------------- */

static int write_meta(const char *dir, const struct job *j, char *err, size_t errlen)
{
	char path[4096], tmp[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/job.meta", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -errno;
	}
	fprintf(f, "job %s %d\n", j->name, j->mpi);
	for (int i = 0; i < j->npods; i++)
		fprintf(f, "pod %s %s %s %s/%s/%s/image.zapc\n", j->pods[i].name, j->pods[i].ip,
			j->pods[i].node, dir, j->pods[i].node, j->pods[i].name);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

static int mkdir_p(const char *dir)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s/", dir);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	return 0;
}

int job_checkpoint(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen)
{
	struct job *j = job_find(rq->job);
	struct opstate *o = calloc(1, sizeof(*o));
	Zapc__Mgr__PodTask *tasks = NULL, **tp = NULL;
	Zapc__Mgr__Target *tg = NULL;
	char (*paths)[4096] = NULL;
	int rc = -EIO;

	if (!o)
		return -ENOMEM;
	if (!j || strcmp(j->state, "running")) {
		snprintf(err, errlen, j ? "job %s is %s, not running" : "no job %s", rq->job,
			 j ? j->state : "");
		rc = j ? -EINVAL : -ENOENT;
		goto out;
	}
	if (!rq->dir || rq->dir[0] != '/' || mkdir_p(rq->dir) < 0) {
		snprintf(err, errlen, "checkpoint: -o wants an absolute directory the manager can create");
		rc = -EINVAL;
		goto out;
	}
	mtiming("checkpoint %s", j->name);
	o->id = next_op;
	next_op += 2;
	o->t0 = now_ms();
	for (int i = 0; i < j->npods; i++)
		part_of(o, j->pods[i].node, 1)->npods++;
	if ((rc = connect_parts(o, err, errlen)) < 0)
		goto out;
	tasks = calloc((size_t)j->npods, sizeof(*tasks));
	tp = calloc((size_t)j->npods, sizeof(*tp));
	tg = calloc((size_t)j->npods, sizeof(*tg));
	paths = calloc((size_t)j->npods, sizeof(*paths));
	if (!tasks || !tp || !tg || !paths) {
		rc = -ENOMEM;
		goto out;
	}
	for (int pi = 0; pi < o->n; pi++) {
		Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
		Zapc__Mgr__Checkpoint ck = ZAPC__MGR__CHECKPOINT__INIT;
		size_t nt = 0;

		for (int i = 0; i < j->npods; i++) {
			if (strcmp(j->pods[i].node, o->p[pi].node))
				continue;
			zapc__mgr__pod_task__init(&tasks[i]);
			zapc__mgr__target__init(&tg[i]);
			snprintf(paths[i], sizeof(paths[i]), "%s/%s/%s/image.zapc", rq->dir, j->pods[i].node,
				 j->pods[i].name);
			tg[i].path = paths[i];
			tasks[i].pod = j->pods[i].name;
			tasks[i].target = &tg[i];
			tp[nt++] = &tasks[i];
		}
		ck.pods = tp;
		ck.n_pods = nt;
		ck.leave_running = rq->leave_running;
		/* tp is reused per agent: pack now */
		e.m_case = ZAPC__MGR__ENVELOPE__M_CHECKPOINT;
		e.checkpoint = &ck;
		if (send_part(o, pi, &e, "checkpoint") < 0)
			goto abort;
		mtiming("checkpoint sent to %s", o->p[pi].node);
	}
	outf(out, ctx, "[%7.1f ms] checkpoint %s: %d pods on %d nodes, freezing", ms_since(o->t0),
	     j->name, j->npods, o->n);
	fault_point("checkpoint", "sent");
	if (wait_all(o, "captured", 1) < 0)
		goto abort;
	fault_point("checkpoint", "captured");
	if (rq->leave_running && !all_alive(o))
		goto abort;
	outf(out, ctx, "[%7.1f ms] all %d nodes captured (the sync point); continue", ms_since(o->t0), o->n);
	send_go(o, "captured", 1);
	if (!rq->leave_running) {
		if (wait_all(o, "written", 1) < 0)
			goto abort;
		fault_point("checkpoint", "written");
		if (!all_alive(o))
			goto abort;
		outf(out, ctx, "[%7.1f ms] all images written; the pods end", ms_since(o->t0));
		send_go(o, "written", 1);
	} else if (wait_all(o, "resumed", 1) == 0) {
		/* every agent reported its pods running again (their engines'
		 * own word after the thaw, not our Go); a failure here is after
		 * the commit point and is reported by the wait for the results */
		outf(out, ctx, "[%7.1f ms] pods resumed; images being written", ms_since(o->t0));
	}
	if (wait_all(o, NULL, 1) < 0 || o->fail[0]) {
		snprintf(err, errlen, "checkpoint %s: %s", j->name, o->fail);
		rc = -EIO;
		goto table;
	}
	for (int i = 0; i < o->n; i++)
		if (o->p[i].status) {
			snprintf(err, errlen, "checkpoint %s: %s: %s", j->name, o->p[i].node, o->p[i].err);
			rc = o->p[i].status;
			goto table;
		}
	if ((rc = write_meta(rq->dir, j, err, errlen)) < 0)
		goto table;
	uint64_t bytes = 0;

	for (int i = 0; i < o->n; i++)
		bytes += o->p[i].bytes;
	outf(out, ctx, "[%7.1f ms] done: %.1f MiB of images in %s", ms_since(o->t0), bytes / 1048576.0,
	     rq->dir);
	if (!rq->leave_running)
		snprintf(j->state, sizeof(j->state), "checkpointed");
	snprintf(j->note, sizeof(j->note), "checkpoint in %s", rq->dir);
	jobs_save();
	rc = 0;
table:
	print_table(out, ctx, o, 1, "IMAGE");
	goto out;
abort:
	outf(out, ctx, "[%7.1f ms] failure: %s; aborting on every node", ms_since(o->t0), o->fail);
	abort_all(o, o->fail);
	outf(out, ctx, "[%7.1f ms] aborted: every pod resumed as it was", ms_since(o->t0));
	snprintf(err, errlen, "checkpoint %s: %s", j->name, o->fail);
	rc = -ECANCELED;
out:
	free(tasks);
	free(tp);
	free(tg);
	free(paths);
	op_free_parts(o);
	free(o);
	return rc;
}

/* --- restart -------------------------------------------------------------- */

struct metapod {
	char name[64], ip[16], node[64], image[4096];
};

static int read_meta(const char *dir, char *job, size_t joblen, int *mpi, struct metapod **pods,
		     int *n, char *err, size_t errlen)
{
	char path[4200], line[8192];
	FILE *f;
	int cap = 0;

	snprintf(path, sizeof(path), "%s/job.meta", dir);
	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	*n = 0;
	*pods = NULL;
	while (fgets(line, sizeof(line), f)) {
		char name[64];
		struct metapod mp;

		if (sscanf(line, "job %63s %d", name, mpi) == 2) {
			snprintf(job, joblen, "%s", name);
			continue;
		}
		if (sscanf(line, "pod %63s %15s %63s %4095s", mp.name, mp.ip, mp.node, mp.image) != 4)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*pods = realloc(*pods, (size_t)cap * sizeof(**pods));
		}
		(*pods)[(*n)++] = mp;
	}
	fclose(f);
	if (!*n) {
		snprintf(err, errlen, "%s: no pods", path);
		return -EINVAL;
	}
	return 0;
}

/* Common to restart and migrate: placement of pods over nodes, round robin. */
static void place(struct job *j, char **nodes, size_t nn)
{
	for (int i = 0; i < j->npods; i++)
		snprintf(j->pods[i].node, sizeof(j->pods[i].node), "%s", nodes[(size_t)i % nn]);
}

int job_restart(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen)
{
	struct opstate *o = calloc(1, sizeof(*o));
	struct metapod *mp = NULL;
	struct job *j = job_find(rq->job), *nj = NULL;
	char jname[64] = "";
	int n = 0, mpi = 0, rc, routed = 0;

	if (!o)
		return -ENOMEM;
	if (!rq->dir || !rq->n_nodes) {
		snprintf(err, errlen, "restart: want --from DIR and --nodes");
		rc = -EINVAL;
		goto out;
	}
	if (j && strcmp(j->state, "checkpointed") && strcmp(j->state, "failed")) {
		snprintf(err, errlen, "job %s is %s (destroy it first, or checkpoint it without --leave-running)",
			 j->name, j->state);
		rc = -EBUSY;
		goto out;
	}
	if ((rc = read_meta(rq->dir, jname, sizeof(jname), &mpi, &mp, &n, err, errlen)) < 0)
		goto out;
	/* R1: every image is there before anything is created. */
	for (int i = 0; i < n; i++)
		if (access(mp[i].image, R_OK) < 0) {
			snprintf(err, errlen, "restart %s: image of pod %s: %s: %s", rq->job, mp[i].name,
				 mp[i].image, strerror(errno));
			rc = -ENOENT;
			goto out;
		}
	nj = calloc(1, sizeof(*nj));
	if (!nj || !(nj->pods = calloc((size_t)n, sizeof(*nj->pods)))) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(nj->name, sizeof(nj->name), "%s", rq->job);
	nj->npods = n;
	nj->mpi = mpi;
	for (int i = 0; i < n; i++) {
		snprintf(nj->pods[i].name, sizeof(nj->pods[i].name), "%s", mp[i].name);
		snprintf(nj->pods[i].ip, sizeof(nj->pods[i].ip), "%s", mp[i].ip);
	}
	place(nj, rq->nodes, rq->n_nodes);
	mtiming("restart %s", rq->job);
	o->id = next_op;
	next_op += 2;
	o->t0 = now_ms();
	for (int i = 0; i < n; i++)
		part_of(o, nj->pods[i].node, 2)->npods++;
	if ((rc = connect_parts(o, err, errlen)) < 0)
		goto out;
	/* R2: each pod's virtual IP now lives on its new node.  The hook runs
	 * while the agents restore; it must be done before the pods resume. */
	routed = n;
	if ((rc = run_routes_bg(nj->pods, n, 1, o->fail, sizeof(o->fail))) < 0)
		goto abort;
	outf(out, ctx, "[%7.1f ms] restart %s: %d pods on %d nodes", ms_since(o->t0), rq->job, n, o->n);
	for (int pi = 0; pi < o->n; pi++) {
		Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
		Zapc__Mgr__Restart rs = ZAPC__MGR__RESTART__INIT;
		Zapc__Mgr__PodTask tasks[256], *tp[256];
		Zapc__Mgr__Target tg[256];
		size_t nt = 0;

		for (int i = 0; i < n && nt < 256; i++) {
			if (strcmp(nj->pods[i].node, o->p[pi].node))
				continue;
			zapc__mgr__pod_task__init(&tasks[nt]);
			zapc__mgr__target__init(&tg[nt]);
			tg[nt].path = mp[i].image;
			tasks[nt].pod = nj->pods[i].name;
			tasks[nt].ip = nj->pods[i].ip;
			tasks[nt].target = &tg[nt];
			tp[nt] = &tasks[nt];
			nt++;
		}
		rs.pods = tp;
		rs.n_pods = nt;
		e.m_case = ZAPC__MGR__ENVELOPE__M_RESTART;
		e.restart = &rs;
		if (send_part(o, pi, &e, "restart") < 0)
			goto abort;
		mtiming("restart sent to %s", o->p[pi].node);
	}
	fault_point("restart", "sent");
	if (wait_all(o, "restored", 2) < 0)
		goto abort;
	if (routes_wait(o->fail, sizeof(o->fail)) < 0)
		goto abort;
	mtiming("routes set");
	outf(out, ctx, "[%7.1f ms] routes set", ms_since(o->t0));
	fault_point("restart", "restored");
	if (!all_alive(o))
		goto abort;
	outf(out, ctx, "[%7.1f ms] all pods restored (frozen); resume", ms_since(o->t0));
	send_go(o, "restored", 2);
	if (wait_all(o, NULL, 2) < 0) {
		snprintf(err, errlen, "restart %s: %s", rq->job, o->fail);
		rc = -EIO;
	}
	for (int i = 0; i < o->n && rc == 0; i++)
		if (o->p[i].status) {
			snprintf(err, errlen, "restart %s: %s: %s", rq->job, o->p[i].node, o->p[i].err);
			rc = o->p[i].status;
		}
	if (j)
		job_remove(j);
	{
		extern struct job *jobs_head;

		nj->next = jobs_head;
		jobs_head = nj;
	}
	snprintf(nj->state, sizeof(nj->state), rc ? "failed" : "running");
	snprintf(nj->note, sizeof(nj->note), "restarted from %s", rq->dir);
	nj = NULL;
	jobs_save();
	outf(out, ctx, "[%7.1f ms] job %s running again", ms_since(o->t0), rq->job);
	print_table(out, ctx, o, 2, "IMAGE");
	goto out;
abort:
	outf(out, ctx, "[%7.1f ms] failure: %s; aborting", ms_since(o->t0), o->fail);
	abort_all(o, o->fail);
	{
		char e3[256];

		routes_wait(e3, sizeof(e3));
	}
	for (int i = 0; i < routed && conf.route_cmd; i++) {
		char e2[256];

		run_route("unroute", nj->pods[i].ip, NULL, e2, sizeof(e2));
	}
	outf(out, ctx, "[%7.1f ms] aborted: partial restores removed, routes put back", ms_since(o->t0));
	snprintf(err, errlen, "restart %s: %s", rq->job, o->fail);
	rc = -ECANCELED;
out:
	if (nj) {
		free(nj->pods);
		free(nj);
	}
	free(mp);
	op_free_parts(o);
	free(o);
	return rc;
}

/* --- migrate ---------------------------------------------------------------- */

int job_migrate(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen)
{
	struct job *j = job_find(rq->job);
	struct opstate *o = calloc(1, sizeof(*o));
	struct jpod *to = NULL;
	uint8_t (*tokens)[32] = NULL;
	char (*addrs)[64] = NULL;
	int rc = -EIO, routed = 0;
	int64_t t_stream = 0;

	if (!o)
		return -ENOMEM;
	if (!j || strcmp(j->state, "running") || !rq->n_nodes) {
		snprintf(err, errlen, !j ? "no job %s" : !rq->n_nodes ? "migrate %s: want --to" :
			 "job %s is not running", rq->job);
		rc = -EINVAL;
		goto out;
	}
	to = calloc((size_t)j->npods, sizeof(*to));
	tokens = calloc((size_t)j->npods, 32);
	addrs = calloc((size_t)j->npods, 64);
	if (!to || !tokens || !addrs) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < j->npods; i++) {
		to[i] = j->pods[i];
		snprintf(to[i].node, sizeof(to[i].node), "%s", rq->nodes[(size_t)i % rq->n_nodes]);
		if (!strcmp(to[i].node, j->pods[i].node)) {
			snprintf(err, errlen, "migrate %s: pod %s is already on %s", j->name, j->pods[i].name,
				 to[i].node);
			rc = -EINVAL;
			goto out;
		}
		if (getrandom(tokens[i], 32, 0) != 32) {
			rc = -EIO;
			goto out;
		}
	}
	o->id = next_op;
	next_op += 2;
	o->t0 = now_ms();
	for (int i = 0; i < j->npods; i++) {
		part_of(o, j->pods[i].node, 1)->npods++;
		part_of(o, to[i].node, 2)->npods++;
	}
	if ((rc = connect_parts(o, err, errlen)) < 0)
		goto out;
	/* 1. destinations listen, one port per pod */
	for (int pi = 0; pi < o->n; pi++) {
		Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
		Zapc__Mgr__Restart rs = ZAPC__MGR__RESTART__INIT;
		Zapc__Mgr__PodTask tasks[256], *tp[256];
		Zapc__Mgr__Target tg[256];
		size_t nt = 0;

		if (o->p[pi].role != 2)
			continue;
		for (int i = 0; i < j->npods && nt < 256; i++) {
			if (strcmp(to[i].node, o->p[pi].node))
				continue;
			zapc__mgr__pod_task__init(&tasks[nt]);
			zapc__mgr__target__init(&tg[nt]);
			tg[nt].stream_node = j->pods[i].node;
			tg[nt].token.data = tokens[i];
			tg[nt].token.len = 32;
			tasks[nt].pod = to[i].name;
			tasks[nt].ip = to[i].ip;
			tasks[nt].target = &tg[nt];
			tp[nt] = &tasks[nt];
			nt++;
		}
		rs.pods = tp;
		rs.n_pods = nt;
		e.m_case = ZAPC__MGR__ENVELOPE__M_RESTART;
		e.restart = &rs;
		if (send_part(o, pi, &e, NULL) < 0)
			goto abort;
	}
	if (wait_all(o, "listening", 2) < 0)
		goto abort;
	for (int pi = 0; pi < o->n; pi++) {
		Zapc__Mgr__Reached *re = o->p[pi].reach;

		for (size_t k = 0; re && k < re->n_listen; k++)
			for (int i = 0; i < j->npods; i++)
				if (!strcmp(to[i].name, re->listen[k]->pod) && !strcmp(to[i].node, o->p[pi].node))
					snprintf(addrs[i], 64, "%s", re->listen[k]->addr);
	}
	/* 2. sources checkpoint into the streams */
	for (int pi = 0; pi < o->n; pi++) {
		Zapc__Mgr__Envelope e = ZAPC__MGR__ENVELOPE__INIT;
		Zapc__Mgr__Checkpoint ck = ZAPC__MGR__CHECKPOINT__INIT;
		Zapc__Mgr__PodTask tasks[256], *tp[256];
		Zapc__Mgr__Target tg[256];
		size_t nt = 0;

		if (o->p[pi].role != 1)
			continue;
		for (int i = 0; i < j->npods && nt < 256; i++) {
			if (strcmp(j->pods[i].node, o->p[pi].node))
				continue;
			zapc__mgr__pod_task__init(&tasks[nt]);
			zapc__mgr__target__init(&tg[nt]);
			tg[nt].stream_node = to[i].node;
			tg[nt].stream_addr = addrs[i];
			tg[nt].token.data = tokens[i];
			tg[nt].token.len = 32;
			tasks[nt].pod = j->pods[i].name;
			tasks[nt].target = &tg[nt];
			tp[nt] = &tasks[nt];
			nt++;
		}
		ck.pods = tp;
		ck.n_pods = nt;
		e.m_case = ZAPC__MGR__ENVELOPE__M_CHECKPOINT;
		e.checkpoint = &ck;
		if (send_part(o, pi, &e, NULL) < 0)
			goto abort;
	}
	outf(out, ctx, "[%7.1f ms] migrate %s: %d pods, destinations listening; freezing sources",
	     ms_since(o->t0), j->name, j->npods);
	fault_point("migrate", "sent");
	if (wait_all(o, "captured", 1) < 0)
		goto abort;
	fault_point("migrate", "captured");
	outf(out, ctx, "[%7.1f ms] all sources captured (the sync point); streaming", ms_since(o->t0));
	t_stream = now_ms();
	o->out = out;
	o->ctx = ctx;
	o->prog_at = t_stream;
	send_go(o, "captured", 1);
	if (wait_all(o, "written", 1) < 0 || wait_all(o, "restored", 2) < 0)
		goto abort;
	o->out = NULL;	/* streaming is over: no more progress lines */
	fault_point("migrate", "restored");
	int64_t stream_ms = now_ms() - t_stream;

	outf(out, ctx, "[%7.1f ms] all images streamed and restored (%lld ms); switching routes",
	     ms_since(o->t0), (long long)stream_ms);
	routed = j->npods;
	if ((rc = run_routes(to, j->npods, o->fail, sizeof(o->fail))) < 0 || !all_alive(o))
		goto abort;
	send_go(o, "written", 1);
	send_go(o, "restored", 2);
	if (wait_all(o, NULL, 3) < 0)
		snprintf(err, errlen, "migrate %s: %s", j->name, o->fail);
	rc = 0;
	for (int i = 0; i < o->n && rc == 0; i++)
		if (o->p[i].status) {
			snprintf(err, errlen, "migrate %s: %s: %s", j->name, o->p[i].node, o->p[i].err);
			rc = o->p[i].status;
		}
	if (!rc && err[0])
		rc = -EIO;
	for (int i = 0; i < j->npods; i++)
		j->pods[i] = to[i];
	snprintf(j->state, sizeof(j->state), rc ? "failed" : "running");
	snprintf(j->note, sizeof(j->note), "migrated");
	jobs_save();
	uint64_t bytes = 0;

	for (int i = 0; i < o->n; i++)
		if (o->p[i].role == 1)
			bytes += o->p[i].bytes;
	outf(out, ctx, "[%7.1f ms] job %s runs on the new nodes: %.1f MiB streamed at %.1f MiB/s",
	     ms_since(o->t0), j->name, bytes / 1048576.0,
	     stream_ms > 0 ? bytes / 1048576.0 / (stream_ms / 1000.0) : 0.0);
	print_table(out, ctx, o, 1, "STREAMED");
	goto out;
abort:
	outf(out, ctx, "[%7.1f ms] failure: %s; aborting", ms_since(o->t0), o->fail);
	abort_all(o, o->fail);
	if (routed) {
		char e2[256];

		run_routes(j->pods, j->npods, e2, sizeof(e2));
	}
	outf(out, ctx, "[%7.1f ms] aborted: sources resumed, destinations removed", ms_since(o->t0));
	snprintf(err, errlen, "migrate %s: %s", j->name, o->fail);
	rc = -ECANCELED;
out:
	free(to);
	free(tokens);
	free(addrs);
	op_free_parts(o);
	free(o);
	return rc;
}
