/*
 * init.c — zapc-init, pid 1 of every pod.
 *
 *   zapc-init [-u UID] [-g GID] [-d DIR] [-r FD] -- CMD [ARGS...]
 *
 * Starts the workload (its first and only direct child, in its own process
 * group), reaps every process re-parented to it (it is the pid namespace's
 * init), forwards SIGTERM, SIGINT and SIGHUP to the workload, and exits with
 * the workload's status (128+signal if it was killed) when the workload
 * exits — which makes the kernel kill whatever else is left in the pod.
 * The workload runs as UID/GID (supplementary groups dropped) in DIR.
 * With -r FD, init reports on FD whether the workload started: it closes FD
 * with nothing written once CMD has been exec'd, or writes "ERRNO message"
 * if it could not be (bad command, directory, uid), so `pod create` fails
 * with the reason instead of starting a pod that dies at once.
 * Deliberately tiny: no allocation after start, no libraries but libc.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int report_fd = -1;	/* the workload child's end of the start report */

/* In the workload child: say why it cannot start (to the agent and the console), exit. */
static void die(const char *what)
{
	int e = errno;

	fprintf(stderr, "zapc-init: %s: %s\n", what, strerror(e));
	if (report_fd >= 0)
		dprintf(report_fd, "%d %s: %s", e, what, strerror(e));
	_exit(e == ENOENT ? 127 : 126);
}

int main(int argc, char **argv)
{
	uid_t uid = 0;
	gid_t gid = 0;
	const char *dir = "/";
	sigset_t set, old;
	pid_t child;
	int opt, ready_fd = -1, rep[2] = { -1, -1 };

	while ((opt = getopt(argc, argv, "+u:g:d:r:")) != -1) {
		switch (opt) {
		case 'u': uid = (uid_t)strtoul(optarg, NULL, 10); break;
		case 'g': gid = (gid_t)strtoul(optarg, NULL, 10); break;
		case 'd': dir = optarg; break;
		case 'r': ready_fd = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: zapc-init [-u UID] [-g GID] [-d DIR] [-r FD] -- CMD [ARGS]\n");
			return 127;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "zapc-init: no command\n");
		return 127;
	}
	if (setsid() < 0 && errno != EPERM) {
		perror("zapc-init: setsid");
		return 127;
	}
	/* The report pipe: its write end closes by itself when exec succeeds. */
	if (ready_fd >= 0 && (fcntl(ready_fd, F_SETFD, FD_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0))
		ready_fd = -1;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);

	child = fork();
	if (child < 0) {
		perror("zapc-init: fork");
		return 127;
	}
	if (child == 0) {
		report_fd = rep[1];
		sigprocmask(SIG_SETMASK, &old, NULL);
		setpgid(0, 0);
		if (uid != 0 || gid != 0) {
			if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
				die("drop privileges");
		}
		if (chdir(dir) < 0)
			die(dir);
		execvp(argv[optind], argv + optind);
		die(argv[optind]);
	}
	if (ready_fd >= 0) {
		char msg[256];
		ssize_t n;

		close(rep[1]);
		do
			n = read(rep[0], msg, sizeof(msg));
		while (n < 0 && errno == EINTR);
		if (n > 0 && write(ready_fd, msg, (size_t)n) < 0)
			n = 0;
		close(rep[0]);
		close(ready_fd);
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
