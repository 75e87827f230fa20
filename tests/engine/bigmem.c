/*
 * bigmem.c — touches argv[1] MiB of anonymous memory with a pattern, then
 * forks argv[2]-1 idle children (default 1 process), and sleeps.  Used by
 * bench/engine_bench.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	int procs = argc > 2 ? atoi(argv[2]) : 1;
	if (mb) {
		unsigned char *p = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 1;
		for (size_t i = 0; i < (mb << 20); i += 64)
			p[i] = (unsigned char)(i >> 6);
	}
	for (int i = 1; i < procs; i++)
		if (fork() == 0)
			for (;;)
				pause();
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
