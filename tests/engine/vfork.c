/*
 * vfork.c — prints 0, 1, 2, ... one line per child it starts with vfork(2).
 * The child busy-waits SPIN_MS (default 300) before it execs `sleep 0.3`,
 * so for that long the parent sleeps inside vfork() — the state in which a
 * shell (dash starts commands with vfork) is often caught by a checkpoint —
 * and then as long in waitpid().
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long ms_since(const struct timespec *a)
{
	struct timespec b;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

int main(int argc, char **argv)
{
	long spin = argc > 1 ? atol(argv[1]) : 300;
	for (volatile unsigned long i = 0;; i++) {
		printf("%lu\n", i);
		fflush(stdout);
		pid_t c = vfork();
		if (c == 0) {
			struct timespec t0;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			while (ms_since(&t0) < spin)
				;
			execlp("sleep", "sleep", "0.3", (char *)NULL);
			_exit(127);
		}
		if (c > 0)
			waitpid(c, NULL, 0);
	}
}
