/*
 * sweeper.c — rewrites argv[1] MiB of memory page by page, forever: sweep g
 * checks that every page still holds g-1 and writes g into it.  An image
 * that mixes memory from after the freeze with the registers/counters of the
 * freeze makes a restored sweeper find a page "from the future": it prints
 * BAD and exits 3.  It has no children: a SIGCHLD, or a waitpid(-1) that does
 * not fail with ECHILD, means a capture helper was visible (BAD too).
 * Prints "sweep N" every 8 sweeps (line-buffered stdout).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_chld;

static void on_chld(int sig)
{
	(void)sig;
	got_chld = 1;
}

int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, pg = 4096;
	size_t n = (mb << 20) / pg;
	uint64_t *mem = mmap(NULL, n * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	signal(SIGCHLD, on_chld);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (uint64_t g = 1;; g++) {
		for (size_t i = 0; i < n; i++) {
			uint64_t *p = mem + i * (pg / 8);
			if (p[0] != g - 1 || p[pg / 8 - 1] != g - 1) {
				printf("BAD sweep %llu page %zu holds %llu/%llu\n", (unsigned long long)g, i,
				       (unsigned long long)p[0], (unsigned long long)p[pg / 8 - 1]);
				return 3;
			}
			p[0] = g;
			p[pg / 8 - 1] = g;
		}
		errno = 0;
		if (got_chld || waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD) {
			printf("BAD a child was visible (SIGCHLD %d, %s)\n", (int)got_chld, strerror(errno));
			return 3;
		}
		if (g % 8 == 0)
			printf("sweep %llu\n", (unsigned long long)g);
	}
}
