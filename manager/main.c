/*
 * main.c — zapc-manager: options, the CLI's unix socket, the job registry
 * (memory + state file), the idle loop.
 *
 *   zapc-manager --tls-dir DIR --nodes-file FILE [--socket PATH] [--state-dir DIR]
 *                [--route-cmd CMD] [--timeout MS]
 *
 * The nodes file has one "NODE ADDR:PORT" line per agent (NODE = the name in
 * its certificate).  The route hook CMD is run as `CMD route IP NODE` when a
 * pod's virtual IP moves to NODE and `CMD unroute IP` to take it back
 * (simulated cluster: "tests/cluster/simcluster --prefix P").
 * One CLI request is served at a time; an operation's progress lines are
 * sent to the CLI as they happen.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/frame.h"
#include "lib/log.h"
#include "manager/conn.h"
#include "manager/jobs.h"
#include "proto/agent.pb-c.h"

struct mgr_conf conf = { .timeout_ms = 30000 };
struct job *jobs_head;
static volatile sig_atomic_t stop;
static char state_file[4200];

struct job *jobs_all(void) { return jobs_head; }

struct job *job_find(const char *name)
{
	for (struct job *j = jobs_head; j; j = j->next)
		if (name && !strcmp(j->name, name))
			return j;
	return NULL;
}

/* State file: "job NAME STATE MPI" then "pod NAME IP NODE" lines. */
void jobs_save(void)
{
	char tmp[4300];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", state_file);
	f = fopen(tmp, "we");
	if (!f) {
		log_err("state %s: %s", tmp, strerror(errno));
		return;
	}
	for (struct job *j = jobs_head; j; j = j->next) {
		fprintf(f, "job %s %s %d\n", j->name, j->state, j->mpi);
		for (int i = 0; i < j->npods; i++)
			fprintf(f, "pod %s %s %s\n", j->pods[i].name, j->pods[i].ip, j->pods[i].node);
	}
	if (fclose(f) != 0 || rename(tmp, state_file) < 0)
		log_err("state %s: %s", state_file, strerror(errno));
}

void jobs_load(void)
{
	FILE *f = fopen(state_file, "re");
	char line[512];
	struct job *j = NULL;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char a[64], b[64], c[64];
		int mpi;

		if (sscanf(line, "job %63s %63s %d", a, b, &mpi) == 3) {
			j = calloc(1, sizeof(*j));
			if (!j)
				break;
			snprintf(j->name, sizeof(j->name), "%s", a);
			snprintf(j->state, sizeof(j->state), "%s", b);
			j->mpi = mpi;
			j->next = jobs_head;
			jobs_head = j;
		} else if (j && sscanf(line, "pod %63s %63s %63s", a, b, c) == 3) {
			struct jpod *p = realloc(j->pods, (size_t)(j->npods + 1) * sizeof(*p));

			if (!p)
				break;
			j->pods = p;
			snprintf(p[j->npods].name, sizeof(p->name), "%s", a);
			snprintf(p[j->npods].ip, sizeof(p->ip), "%s", b);
			snprintf(p[j->npods].node, sizeof(p->node), "%s", c);
			j->npods++;
		}
	}
	fclose(f);
}

/* Frames outside an operation: the end of an MPI launcher (its PodExec). */
int jobs_stray(void *arg, int index, Zapc__Mgr__Envelope *e)
{
	if (!e || e->m_case != ZAPC__MGR__ENVELOPE__M_REPLY)
		return 0;
	for (struct job *j = jobs_head; j; j = j->next) {
		Zapc__Response *r;

		if (!j->exec_call || j->exec_call != e->op_id)
			continue;
		r = zapc__response__unpack(NULL, e->reply->response.len, e->reply->response.data);
		j->exec_call = 0;
		if (r && r->status == 0 && r->result_case == ZAPC__RESPONSE__RESULT_EXEC) {
			snprintf(j->state, sizeof(j->state), "finished");
			snprintf(j->note, sizeof(j->note), "launcher exit code %d, output %s/%s.out",
				 r->exec->exit_code, conf.state_dir, j->name);
		} else {
			snprintf(j->state, sizeof(j->state), "failed");
			snprintf(j->note, sizeof(j->note), "launcher: %s",
				 r && r->error ? r->error : "no result");
		}
		if (r)
			zapc__response__free_unpacked(r, NULL);
		jobs_save();
	}
	return 0;
}



/* --- the CLI connection ------------------------------------------------------ */

static void cli_line(void *ctx, const char *line)
{
	Zapc__Mgr__JobReply r = ZAPC__MGR__JOB_REPLY__INIT;

	r.line = (char *)line;
	frame_send_msg(*(int *)ctx, &r.base, NULL, 0);
}

static int list_jobs(int fd)
{
	char line[512];

	snprintf(line, sizeof(line), "%-16s %-13s %5s  %s", "JOB", "STATE", "PODS", "NODES");
	cli_line(&fd, line);
	for (struct job *j = jobs_head; j; j = j->next) {
		char nodes[256] = "";
		size_t o = 0;

		for (int i = 0; i < j->npods && o < sizeof(nodes) - 70; i++)
			if (!strstr(nodes, j->pods[i].node))
				o += (size_t)snprintf(nodes + o, sizeof(nodes) - o, "%s%s", o ? "," : "",
						      j->pods[i].node);
		snprintf(line, sizeof(line), "%-16s %-13s %5d  %s", j->name, j->state, j->npods, nodes);
		cli_line(&fd, line);
	}
	return 0;
}

static int job_status(int fd, const char *name, char *err, size_t errlen)
{
	struct job *j = job_find(name);
	char line[1024];

	if (!j) {
		snprintf(err, errlen, "no job %s", name ? name : "");
		return -ENOENT;
	}
	snprintf(line, sizeof(line), "job %s: %s, %d pods%s%s%s", j->name, j->state, j->npods,
		 j->mpi ? ", mpi" : "", j->note[0] ? "; " : "", j->note);
	cli_line(&fd, line);
	snprintf(line, sizeof(line), "%-24s %-15s %s", "POD", "IP", "NODE");
	cli_line(&fd, line);
	for (int i = 0; i < j->npods; i++) {
		snprintf(line, sizeof(line), "%-24s %-15s %s", j->pods[i].name, j->pods[i].ip, j->pods[i].node);
		cli_line(&fd, line);
	}
	return 0;
}

static void serve(int fd)
{
	Zapc__Mgr__JobReply done = ZAPC__MGR__JOB_REPLY__INIT;
	Zapc__Mgr__JobRequest *rq = NULL;
	uint8_t *p = NULL;
	size_t len = 0;
	char err[2048] = "";
	int nfds = 0, rc;
	struct timeval tv = { 10, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (frame_recv(fd, 1 << 20, &p, &len, NULL, 0, &nfds) < 0)
		return;
	rq = zapc__mgr__job_request__unpack(NULL, len, p);
	free(p);
	if (!rq || !rq->cmd) {
		rc = -EBADMSG;
		snprintf(err, sizeof(err), "malformed request");
	} else if (!strcmp(rq->cmd, "list")) {
		rc = list_jobs(fd);
	} else if (!strcmp(rq->cmd, "status")) {
		rc = job_status(fd, rq->job, err, sizeof(err));
	} else if (!strcmp(rq->cmd, "run")) {
		rc = job_run(rq, cli_line, &fd, err, sizeof(err));
	} else if (!strcmp(rq->cmd, "checkpoint")) {
		rc = job_checkpoint(rq, cli_line, &fd, err, sizeof(err));
	} else if (!strcmp(rq->cmd, "restart")) {
		rc = job_restart(rq, cli_line, &fd, err, sizeof(err));
	} else if (!strcmp(rq->cmd, "migrate")) {
		rc = job_migrate(rq, cli_line, &fd, err, sizeof(err));
	} else if (!strcmp(rq->cmd, "destroy")) {
		rc = job_destroy(rq, cli_line, &fd, err, sizeof(err));
	} else {
		rc = -EOPNOTSUPP;
		snprintf(err, sizeof(err), "unknown command '%s'", rq->cmd);
	}
	if (rc < 0)
		log_err("%s %s: %s", rq && rq->cmd ? rq->cmd : "?", rq && rq->job ? rq->job : "", err);
	done.done = 1;
	done.status = rc < 0 ? rc : 0;
	done.error = rc < 0 ? (err[0] ? err : strerror(-rc)) : "";
	frame_send_msg(fd, &done.base, NULL, 0);
	if (rq)
		zapc__mgr__job_request__free_unpacked(rq, NULL);
}

static void on_signal(int sig) { stop = 1; }

static void usage(FILE *f)
{
	fprintf(f, "usage: zapc-manager --tls-dir DIR --nodes-file FILE [--socket PATH] [--state-dir DIR]\n"
		   "                    [--route-cmd CMD] [--timeout MS] [--debug]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tls-dir", required_argument, NULL, 'T' },
		{ "nodes-file", required_argument, NULL, 'N' },
		{ "socket", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "route-cmd", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tls = NULL, *nodes = NULL, *sock = "/run/zapc/manager.sock";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int opt, lfd;

	log_init(argv[0], 0);
	conf.state_dir = "/var/lib/zapc-manager";
	while ((opt = getopt_long(argc, argv, "T:N:s:S:r:t:dh", opts, NULL)) != -1) {
		switch (opt) {
		case 'T': tls = optarg; break;
		case 'N': nodes = optarg; break;
		case 's': sock = optarg; break;
		case 'S': conf.state_dir = optarg; break;
		case 'r': conf.route_cmd = optarg; break;
		case 't': conf.timeout_ms = atoi(optarg) > 0 ? atoi(optarg) : 30000; break;
		case 'd': log_set_level(LOG_LVL_DEBUG); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!tls || !nodes || optind < argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	mkdir(conf.state_dir, 0700);
	snprintf(state_file, sizeof(state_file), "%s/jobs", conf.state_dir);
	if (conn_init(tls, nodes) < 0)
		return 1;
	jobs_load();
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		log_err("--socket %s: too long", sock);
		return 2;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	unlink(sock);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0) {
		log_err("socket %s: %s", sock, strerror(errno));
		return 1;
	}
	chmod(sock, 0600);	/* root only: the manager acts on every node */
	log_info("manager serving %s (nodes %s, state %s)", sock, nodes, conf.state_dir);
	while (!stop) {
		struct pollfd pf[65];
		struct agent *as[64];
		int n = 0;

		pf[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (struct agent *a = conn_list(); a && n < 65; a = a->next)
			if (a->fd >= 0) {
				as[n - 1] = a;
				pf[n++] = (struct pollfd){ .fd = a->fd, .events = POLLIN };
			}
		if (poll(pf, (nfds_t)n, 1000) < 0)
			continue;
		for (int i = 1; i < n; i++)
			if (pf[i].revents)
				conn_poll_one(as[i - 1], jobs_stray, NULL);
		if (pf[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				serve(fd);
				close(fd);
			}
		}
	}

	close(lfd);
	unlink(sock);
	log_info("manager stopped");
	return 0;
}
