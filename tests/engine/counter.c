/*
 * counter.c — prints 0, 1, 2, ... one line every INTERVAL_MS (default 5) to
 * stdout; the user-visible check of checkpoint/restore: the sequence in the
 * output continues after a restore with no gap and no repeat.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long ms = argc > 1 ? atol(argv[1]) : 5;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	for (unsigned long i = 0;; i++) {
		printf("%lu\n", i);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
