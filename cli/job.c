/*
 * job.c — `zapc job ...`: jobs across nodes, through zapc-manager's unix
 * socket (--manager PATH, $ZAPC_MANAGER, default /run/zapc/manager.sock).
 * The manager streams the lines to print (progress, tables) and ends with
 * a status; this file only parses options and prints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/frame.h"
#include "proto/manager.pb-c.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zapc job [--manager PATH] COMMAND ...\n"
		"  run NAME --nodes N1,N2,... [--pods-per-node K] [--mpi] -- CMD ARGS...\n"
		"        a pod per slot; CMD runs in every pod ({rank} {pod} {n} substituted),\n"
		"        or with --mpi once in pod 0 ({hosts}: file of pod IPs, {ip0})\n"
		"  list | status NAME | destroy NAME\n"
		"  checkpoint NAME -o DIR [--leave-running]\n"
		"  restart NAME --from DIR --nodes M1,M2,...\n"
		"  migrate NAME --to M1,M2,...\n");
}

static size_t split(char *s, char **out, size_t max)
{
	size_t n = 0;

	for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ","))
		out[n++] = t;
	return n;
}

int cmd_job(int argc, char **argv)
{
	Zapc__Mgr__JobRequest rq = ZAPC__MGR__JOB_REQUEST__INIT;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *sock = getenv("ZAPC_MANAGER") ? getenv("ZAPC_MANAGER") : "/run/zapc/manager.sock";
	char *nodes[256];
	int i = 1, fd, rc = 1;

	if (i < argc && !strcmp(argv[i], "--manager") && i + 1 < argc) {
		sock = argv[i + 1];
		i += 2;
	}
	if (i >= argc || !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
		usage(i >= argc ? stderr : stdout);
		return i >= argc ? 2 : 0;
	}
	rq.cmd = argv[i++];
	if (strcmp(rq.cmd, "list")) {
		if (i >= argc || argv[i][0] == '-') {
			usage(stderr);
			return 2;
		}
		rq.job = argv[i++];
	}
	for (; i < argc; i++) {
		const char *o = argv[i];
		int more = i + 1 < argc;

		if (!strcmp(o, "--")) {
			rq.argv = argv + i + 1;
			rq.n_argv = (size_t)(argc - i - 1);
			break;
		} else if ((!strcmp(o, "--nodes") || !strcmp(o, "--to")) && more) {
			rq.n_nodes = split(argv[++i], nodes, 256);
			rq.nodes = nodes;
		} else if (!strcmp(o, "--pods-per-node") && more) {
			rq.pods_per_node = (uint32_t)atoi(argv[++i]);
		} else if ((!strcmp(o, "-o") || !strcmp(o, "--from")) && more) {
			rq.dir = realpath(argv[++i], NULL);
			if (!rq.dir) {
				/* -o may name a directory that does not exist yet */
				char cwd[4096];

				if (argv[i][0] == '/' || !getcwd(cwd, sizeof(cwd)))
					rq.dir = strdup(argv[i]);
				else if (asprintf(&rq.dir, "%s/%s", cwd, argv[i]) < 0)
					rq.dir = NULL;
			}
		} else if (!strcmp(o, "--leave-running")) {
			rq.leave_running = 1;
		} else if (!strcmp(o, "--mpi")) {
			rq.mpi = 1;
		} else {
			cli_err("job %s: unknown option %s (see zapc job --help)", rq.cmd, o);
			return 2;
		}
	}
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		cli_err("manager socket %s: too long", sock);
		return 2;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		cli_err("cannot reach zapc-manager at %s: %s", sock, strerror(errno));
		goto out;
	}
	if (frame_send_msg(fd, &rq.base, NULL, 0) < 0) {
		cli_err("send to zapc-manager: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		Zapc__Mgr__JobReply *r;
		uint8_t *p = NULL;
		size_t len = 0;
		int nfds = 0, e = frame_recv(fd, FRAME_MAX, &p, &len, NULL, 0, &nfds);

		if (e < 0) {
			cli_err("zapc-manager at %s: %s", sock,
				e == -ENODATA ? "closed the connection without a result" : strerror(-e));
			break;
		}
		r = zapc__mgr__job_reply__unpack(NULL, len, p);
		free(p);
		if (!r) {
			cli_err("zapc-manager: malformed reply");
			break;
		}
		if (r->line && r->line[0]) {
			printf("%s\n", r->line);
			fflush(stdout);
		}
		if (r->done) {
			rc = r->status ? 1 : 0;
			if (r->status)
				cli_err("%s", r->error && r->error[0] ? r->error : strerror(-r->status));
			zapc__mgr__job_reply__free_unpacked(r, NULL);
			break;
		}
		zapc__mgr__job_reply__free_unpacked(r, NULL);
	}
out:
	if (fd >= 0)
		close(fd);
	if (rq.dir != protobuf_c_empty_string)
		free(rq.dir);
	return rc;
}
