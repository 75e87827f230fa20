/*
 * clock.c — prints CLOCK_MONOTONIC and CLOCK_BOOTTIME (ms) every 5 ms.
 */
#include <stdio.h>
#include <time.h>

static long long ms(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(void)
{
	struct timespec ts = { 0, 5000000 };
	for (;;) {
		printf("%lld %lld\n", ms(CLOCK_MONOTONIC), ms(CLOCK_BOOTTIME));
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
