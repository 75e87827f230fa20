/*
 * init.c — zapc-init, pid 1 of every pod.
 *
 *   zapc-init [-u UID] [-g GID] [-d DIR] -- CMD [ARGS...]
 *
 * Starts the workload (its first and only direct child, in its own process
 * group), reaps every process re-parented to it (it is the pid namespace's
 * init), forwards SIGTERM, SIGINT and SIGHUP to the workload, and exits with
 * the workload's status (128+signal if it was killed) when the workload
 * exits — which makes the kernel kill whatever else is left in the pod.
 * The workload runs as UID/GID (supplementary groups dropped) in DIR.
 * Deliberately tiny: no allocation after start, no libraries but libc.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "zapc-init: %s: %s\n", what, strerror(errno));
	exit(127);
}

int main(int argc, char **argv)
{
	uid_t uid = 0;
	gid_t gid = 0;
	const char *dir = "/";
	sigset_t set, old;
	pid_t child;
	int opt;

	while ((opt = getopt(argc, argv, "+u:g:d:")) != -1) {
		switch (opt) {
		case 'u': uid = (uid_t)strtoul(optarg, NULL, 10); break;
		case 'g': gid = (gid_t)strtoul(optarg, NULL, 10); break;
		case 'd': dir = optarg; break;
		default:
			fprintf(stderr, "usage: zapc-init [-u UID] [-g GID] [-d DIR] -- CMD [ARGS]\n");
			return 127;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "zapc-init: no command\n");
		return 127;
	}
	if (setsid() < 0 && errno != EPERM)
		die("setsid");

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);

	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		setpgid(0, 0);
		if (uid != 0 || gid != 0) {
			if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
				die("drop privileges");
		}
		if (chdir(dir) < 0)
			die(dir);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "zapc-init: %s: %s\n", argv[optind], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si), st;
		pid_t pid;

		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(child, sig);
			continue;
		}
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			if (pid != child)
				continue;
			if (WIFSIGNALED(st))
				return 128 + WTERMSIG(st);
			return WEXITSTATUS(st);
		}
	}
}
