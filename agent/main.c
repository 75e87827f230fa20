/*
 * main.c — zapc-agent: options, daemon mode, signals, the event loop.
 *
 *   zapc-agent [--foreground] [--socket PATH] [--name NODE] [--state-dir DIR]
 *              [--pod-net CIDR] [--pod-pool CIDR] [--bridge NAME] [--cgroup-parent NAME]
 *              [--pidfile FILE] [--log FILE] [--init PATH] [--keep-pods] [--debug]
 *
 * Several agents can run on one machine, each in its own network namespace
 * with its own socket, state dir and cgroup parent: that is a simulated
 * cluster.  The agent is a child subreaper (restored pod inits may be
 * re-parented to it) and reaps every child on SIGCHLD.  SIGTERM/SIGINT stop
 * it cleanly: pods are destroyed unless --keep-pods, the socket removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "agent/ops.h"
#include "agent/peer.h"
#include "agent/pod.h"
#include "agent/server.h"
#include "lib/log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zapc-agent [options]\n"
		"  --foreground          stay in the foreground, log to stderr (default: daemon, syslog)\n"
		"  --socket PATH         API socket (default /run/zapc/agent.sock)\n"
		"  --name NODE           node name (default: hostname)\n"
		"  --state-dir DIR       pod console logs etc. (default /run/zapc/NODE)\n"
		"  --pod-net CIDR        pod network (default 10.200.0.0/16)\n"
		"  --pod-pool CIDR       allocate pod IPs only from this part of the pod network\n"
		"  --bridge NAME         node bridge for pod veths (default zapcbr0)\n"
		"  --cgroup-parent NAME  cgroup directory of the pods (default zapc-NODE)\n"
		"  --pidfile FILE        write the agent's pid there\n"
		"  --log FILE            daemon: log to FILE instead of syslog\n"
		"  --init PATH           zapc-init (default: next to zapc-agent or ../lib/zapc)\n"
		"  --engine PATH         zapc-engine (default: next to zapc-agent or ../lib/zapc)\n"
		"  --keep-pods           on exit leave pods running (default: destroy them)\n"
		"  --debug               log debug lines\n"
		"  --tls-dir DIR --listen ADDR:PORT   serve zapc-manager over mutual TLS\n"
		"  --manager-name NAME   the manager's certificate name (default manager)\n");
}

/* A helper program: next to zapc-agent (the build tree), else ../lib/zapc. */
static char *find_helper(const char *name)
{
	char p[PATH_MAX + 64], exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *dir;

	if (n <= 0) {
		snprintf(p, sizeof(p), "/usr/local/lib/zapc/%s", name);
		return strdup(p);
	}
	exe[n] = 0;
	dir = dirname(exe);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (access(p, X_OK) == 0)
		return strdup(p);
	snprintf(p, sizeof(p), "%s/../lib/zapc/%s", dir, name);
	return strdup(p);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	log_info("signal %d: stopping", (int)sig);
	event_base_loopbreak(arg);
}

static void on_child(evutil_socket_t sig, short what, void *arg)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		server_child_exited(pid, st);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "socket", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "pod-net", required_argument, NULL, 'N' },
		{ "pod-pool", required_argument, NULL, 'P' },
		{ "bridge", required_argument, NULL, 'b' },
		{ "cgroup-parent", required_argument, NULL, 'c' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "log", required_argument, NULL, 'l' },
		{ "init", required_argument, NULL, 'i' },
		{ "engine", required_argument, NULL, 'E' },
		{ "keep-pods", no_argument, NULL, 'k' },
		{ "debug", no_argument, NULL, 'd' },
		{ "tls-dir", required_argument, NULL, 'T' },
		{ "listen", required_argument, NULL, 'L' },
		{ "manager-name", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = "/run/zapc/agent.sock", *state_dir = NULL, *pod_net = "10.200.0.0/16";
	const char *pod_pool = NULL, *logfile = NULL;
	const char *bridge = "zapcbr0", *cg_parent = NULL, *pidfile = NULL, *init = NULL,
		   *engine = NULL, *tls_dir = NULL, *listen_addr = NULL, *mgr_name = NULL;
	char name[65] = "", sdir[PATH_MAX], cgp[128];
	int foreground = 0, keep = 0, opt, rc = 1;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_chld = NULL;
	struct event_base *base = NULL;
	struct pod_node node;

	log_init(argv[0], 0);
	while ((opt = getopt_long(argc, argv, "fs:n:S:N:P:b:c:p:l:i:E:kdhT:L:M:", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': foreground = 1; break;
		case 's': sock = optarg; break;
		case 'n': snprintf(name, sizeof(name), "%s", optarg); break;
		case 'S': state_dir = optarg; break;
		case 'N': pod_net = optarg; break;
		case 'P': pod_pool = optarg; break;
		case 'b': bridge = optarg; break;
		case 'c': cg_parent = optarg; break;
		case 'p': pidfile = optarg; break;
		case 'l': logfile = optarg; break;
		case 'i': init = optarg; break;
		case 'E': engine = optarg; break;
		case 'k': keep = 1; break;
		case 'd': log_set_level(LOG_LVL_DEBUG); break;
		case 'T': tls_dir = optarg; break;
		case 'L': listen_addr = optarg; break;
		case 'M': mgr_name = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (geteuid() != 0) {
		log_err("must run as root");
		return 1;
	}
	if (!name[0] && gethostname(name, sizeof(name) - 1) < 0)
		snprintf(name, sizeof(name), "node");
	if (!pod_name_valid(name)) {
		log_err("node name '%s': want [A-Za-z0-9_.-]", name);
		return 2;
	}
	if (!state_dir) {
		snprintf(sdir, sizeof(sdir), "/run/zapc/%s", name);
		state_dir = sdir;
	}
	if (!cg_parent) {
		snprintf(cgp, sizeof(cgp), "zapc-%s", name);
		cg_parent = cgp;
	}
	if (!init)
		init = find_helper("zapc-init");
	if (!engine)
		engine = find_helper("zapc-engine");

	if (!foreground) {
		int lfd = -1;

		if (logfile) {
			lfd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
			if (lfd < 0) {
				log_err("log %s: %s", logfile, strerror(errno));
				return 1;
			}
		}
		if (daemon(0, 0) < 0) {
			log_err("daemon: %s", strerror(errno));
			return 1;
		}
		if (lfd >= 0)
			dup2(lfd, STDERR_FILENO);	/* clears close-on-exec: fine for fd 2 */
		else
			log_init(argv[0], 1);
	}
	signal(SIGPIPE, SIG_IGN);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	umask(022);

	if (pod_node_init(&node, name, state_dir, pod_net, bridge, cg_parent, init) < 0 ||
	    (pod_pool && pod_node_set_pool(&node, pod_pool) < 0))
		goto out_node;
	base = event_base_new();
	if (!base)
		goto out_node;
	ev_term = evsignal_new(base, SIGTERM, on_stop, base);
	ev_int = evsignal_new(base, SIGINT, on_stop, base);
	ev_chld = evsignal_new(base, SIGCHLD, on_child, NULL);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_chld, NULL);
	ops_init(base, &node, engine);
	if (server_open(base, &node, sock) < 0)
		goto out;
	/* The manager protocol (agent/peer.c): only with both --tls-dir and --listen. */
	if ((tls_dir || listen_addr) &&
	    (!tls_dir || !listen_addr || peer_open(base, &node, tls_dir, listen_addr, mgr_name, sock) < 0)) {
		if (!tls_dir || !listen_addr)
			log_err("--tls-dir and --listen go together");
		server_close();
		goto out;
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "we");

		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		} else {
			log_warn("pidfile %s: %s", pidfile, strerror(errno));
		}
	}
	log_info("node %s serving %s (pods %s on %s, cgroups %s, state %s)", name, sock, pod_net,
		 bridge, cg_parent, state_dir);
	/* children that ended before the SIGCHLD event existed */
	on_child(SIGCHLD, 0, NULL);
	event_base_dispatch(base);
	rc = 0;
	peer_close();
	ops_fini();
	server_close();
	if (pidfile)
		unlink(pidfile);
out:
	ops_fini();
	pod_node_fini(&node, keep);
	log_info("node %s stopped", name);
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	if (ev_chld)
		event_free(ev_chld);
	if (base)
		event_base_free(base);
	return rc;
out_node:
	pod_node_fini(&node, 1);
	return 1;
}
