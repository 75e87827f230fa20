/*
 * fdobjs.c — holds one kind of kernel object in a known state, and when the
 * trigger file appears prints what the object gives back, so a test can see
 * whether a checkpoint/restore kept the state.
 * argv: MODE TRIGGER   (MODE: eventfd | timerfd | signalfd | epoll)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static void place(int fd, int want) { if (fd != want) { dup2(fd, want); close(fd); } }

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void wait_trigger(const char *t)
{
	printf("ready\n");
	fflush(stdout);
	while (access(t, F_OK) != 0)
		usleep(10000);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *mode = argv[1], *trig = argv[2];
	uint64_t v = 0, w = 0;
	if (!strcmp(mode, "eventfd")) {
		place(eventfd(0, EFD_NONBLOCK), 10);
		v = 5; write(10, &v, 8);
		v = 37; write(10, &v, 8);
		place(eventfd(0, EFD_SEMAPHORE), 11);
		v = 3; write(11, &v, 8);
		wait_trigger(trig);
		uint64_t a = 0, b = 0, c = 0;
		read(10, &a, 8);
		read(11, &b, 8);
		read(11, &c, 8);
		errno = 0;
		ssize_t n = read(10, &v, 8);
		printf("ev=%llu sem=%llu,%llu nb=%s\n", (unsigned long long)a, (unsigned long long)b,
		       (unsigned long long)c, n < 0 && errno == EAGAIN ? "EAGAIN" : "blocking?");
	} else if (!strcmp(mode, "timerfd")) {
		double t0 = mono();
		struct itimerspec armed = { .it_value = { 3, 0 } };
		place(timerfd_create(CLOCK_MONOTONIC, 0), 10);
		timerfd_settime(10, 0, &armed, NULL);
		struct itimerspec per = { .it_value = { 100, 0 }, .it_interval = { 0, 200000000 } };
		place(timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK), 11);
		timerfd_settime(11, 0, &per, NULL);
		struct itimerspec once = { .it_value = { 0, 10000000 } };
		place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 12);
		timerfd_settime(12, 0, &once, NULL);
		usleep(50000);
		wait_trigger(trig);
		struct itimerspec g10, g11;
		timerfd_gettime(10, &g10);
		timerfd_gettime(11, &g11);
		uint64_t ticks12 = 0, fired = 0;
		read(12, &ticks12, 8);
		read(10, &fired, 8);     /* blocks until the armed timer fires */
		double el = mono() - t0;
		printf("armed=%d fired_at=%s interval11=%ldms nb11=%d ticks12=%llu\n",
		       g10.it_value.tv_sec || g10.it_value.tv_nsec, el >= 2.95 && el < 4.5 ? "on-time" : "wrong",
		       g11.it_interval.tv_nsec / 1000000, !!(fcntl(11, F_GETFL) & O_NONBLOCK),
		       (unsigned long long)ticks12);
		fprintf(stderr, "timerfd fired after %.3f s\n", el);
	} else if (!strcmp(mode, "signalfd")) {
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, SIGUSR1);
		sigaddset(&m, SIGRTMIN + 2);
		sigprocmask(SIG_BLOCK, &m, NULL);
		place(signalfd(-1, &m, SFD_NONBLOCK), 10);
		wait_trigger(trig);
		raise(SIGRTMIN + 2);
		raise(SIGUSR1);
		struct signalfd_siginfo si[2];
		ssize_t n = read(10, si, sizeof(si));
		printf("got=%zd sigs=%u,%u\n", n / (ssize_t)sizeof(si[0]), si[0].ssi_signo,
		       n >= (ssize_t)(2 * sizeof(si[0])) ? si[1].ssi_signo - (unsigned)SIGRTMIN : 0);
	} else if (!strcmp(mode, "epoll")) {
		place(epoll_create1(0), 20);
		place(eventfd(7, 0), 21);
		int p[2];
		pipe(p);
		place(p[0], 22);
		place(p[1], 27);
		write(27, "x", 1);
		place(epoll_create1(0), 23);
		place(eventfd(1, 0), 24);
		struct epoll_event e;
		e = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0xabc };
		epoll_ctl(20, EPOLL_CTL_ADD, 21, &e);
		e = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = 0x22 };
		epoll_ctl(20, EPOLL_CTL_ADD, 22, &e);
		e = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0x23 };
		epoll_ctl(20, EPOLL_CTL_ADD, 23, &e);
		e = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0x24 };
		epoll_ctl(23, EPOLL_CTL_ADD, 24, &e);
		/* an item whose fd was renumbered: registered as 25, held at 26 */
		place(eventfd(0, 0), 25);
		e = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0x25 };
		epoll_ctl(20, EPOLL_CTL_ADD, 25, &e);
		dup2(25, 26);
		close(25);
		wait_trigger(trig);
		struct epoll_event got[8];
		int n = epoll_wait(20, got, 8, 1000);
		uint64_t d[8];
		for (int i = 0; i < n; i++)
			d[i] = got[i].data.u64;
		qsort(d, (size_t)(n > 0 ? n : 0), 8, cmp_u64);
		printf("ready=");
		for (int i = 0; i < n; i++)
			printf("%s%llx", i ? "," : "", (unsigned long long)d[i]);
		int nn = epoll_wait(23, got, 8, 1000);
		unsigned long long nd = nn > 0 ? (unsigned long long)got[0].data.u64 : 0ull;
		v = 1; write(26, &v, 8);    /* makes the renumbered item ready */
		int n3 = epoll_wait(20, got, 8, 1000);
		int seen25 = 0;
		for (int i = 0; i < n3; i++)
			seen25 |= got[i].data.u64 == 0x25;
		e = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0xabd };
		int mod = epoll_ctl(20, EPOLL_CTL_MOD, 21, &e);
		int del = epoll_ctl(20, EPOLL_CTL_DEL, 22, &e);
		int del25 = epoll_ctl(20, EPOLL_CTL_DEL, 26, &e) < 0 && errno == ENOENT;
		printf(" nested=%d:%llx renumbered=%d mod=%d del=%d del26=%s\n", nn, nd, seen25, mod, del,
		       del25 ? "ENOENT" : "found");
		(void)w;
	} else {
		return 2;
	}
	fflush(stdout);
	for (;;)
		pause();
}
