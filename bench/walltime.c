/*
 * walltime.c — bench-walltime FILE CMD [ARG...]: run CMD (stdin, stdout and
 * stderr inherited), wait for it, write the wall time from just before the
 * spawn to just after its exit to FILE as "<ms>\n", and exit with CMD's
 * status (128+signal if it was killed).
 *
 * Why: timing a command between two `date +%s%N` in a shell also counts
 * the second date's own fork, exec and start-up (~5-10 ms on this VM),
 * which is not the command's time.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench-walltime FILE CMD [ARG...]\n");
		return 2;
	}
	struct timespec t0, t1;
	pid_t pid;
	int st, err;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((err = posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ))) {
		fprintf(stderr, "bench-walltime: %s: %s\n", argv[2], strerror(err));
		return 127;
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "bench-walltime: waitpid: %s\n", strerror(errno));
			return 127;
		}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	FILE *f = fopen(argv[1], "w");
	if (!f || fprintf(f, "%.1f\n", (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6) < 0 ||
	    fclose(f)) {
		fprintf(stderr, "bench-walltime: %s: %s\n", argv[1], strerror(errno));
		return 127;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
