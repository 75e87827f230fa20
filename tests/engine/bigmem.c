/*
 * bigmem.c — touches argv[1] MiB of anonymous memory with a pattern, then
 * forks argv[2]-1 idle children (default 1 process), and sleeps.  Used by
 * bench/engine_bench.sh.  With argv[3] "time" it prints how long making its
 * processes took (from main to every child running), kills them and exits:
 * what this machine needs to create that pod without any restore.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000ll + t.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	long long t0 = now_us();
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	int procs = argc > 2 ? atoi(argv[2]) : 1;
	int timed = argc > 3 && !strcmp(argv[3], "time"), up[2];
	if (timed && pipe(up) < 0)
		return 1;
	if (mb) {
		unsigned char *p = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 1;
		for (size_t i = 0; i < (mb << 20); i += 64)
			p[i] = (unsigned char)(i >> 6);
	}
	pid_t *kids = calloc((size_t)(procs > 1 ? procs : 1), sizeof(pid_t));
	for (int i = 1; i < procs; i++)
		if ((kids[i] = fork()) == 0) {
			if (timed && write(up[1], "r", 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
	if (timed) {       /* every child has run: the pod exists */
		char c;
		for (int i = 1; i < procs; i++)
			if (read(up[0], &c, 1) != 1)
				return 1;
		printf("created_us %lld\n", now_us() - t0);
		for (int i = 1; i < procs; i++)
			kill(kids[i], SIGKILL);
		while (wait(NULL) > 0)
			;
		return 0;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
