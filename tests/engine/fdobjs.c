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
#include <sys/socket.h>
#include <sys/un.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/pidfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <poll.h>
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

static void sun_at(struct sockaddr_un *a, socklen_t *l, const char *dir, const char *name, int abstract)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = abstract ? snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "%s-%d", name, (int)getppid())
			 : snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(a->sun_path) - 1)
		exit(9);
	*l = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (abstract ? 1 + strlen(a->sun_path + 1) : strlen(a->sun_path) + 1));
}

static const char *rd(int fd, int flags)
{
	static char b[8][64];
	static int k;
	char *o = b[k++ % 8];
	ssize_t n = recv(fd, o, 63, flags);
	if (n < 0)
		snprintf(o, 64, "E%d", errno);
	else
		o[n] = 0;
	return n == 0 ? "EOF" : o;
}

/* unix sockets: pairs of every type with data queued both ways, a path
 * listener with two clients waiting in accept(), an accepted connection, an
 * abstract listener, a bound datagram socket with queued datagrams and a
 * socket connected to it one way, a half-closed stream. */
static void unix_mode(const char *trig)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", trig);
	*strrchr(dir, '/') = 0;
	int sv[2];
	struct sockaddr_un a;
	socklen_t al;
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv); place(sv[0], 10); place(sv[1], 11);
	send(11, "hello", 5, 0); send(10, "world!", 6, 0);
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv); place(sv[0], 12); place(sv[1], 13);
	send(13, "a", 1, 0); send(13, "bb", 2, 0); send(13, "ccc", 3, 0);
	socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv); place(sv[0], 14); place(sv[1], 15);
	send(14, "m1", 2, 0); send(14, "msg2", 4, 0);
	place(socket(AF_UNIX, SOCK_STREAM, 0), 16);
	sun_at(&a, &al, dir, "listen.sock", 0);
	bind(16, (struct sockaddr *)&a, al); listen(16, 8);
	place(socket(AF_UNIX, SOCK_STREAM, 0), 19);
	connect(19, (struct sockaddr *)&a, al);
	place(accept(16, NULL, NULL), 20);
	send(19, "req", 3, 0); send(20, "resp", 4, 0);
	place(socket(AF_UNIX, SOCK_STREAM, 0), 17); connect(17, (struct sockaddr *)&a, al);
	place(socket(AF_UNIX, SOCK_STREAM, 0), 18); connect(18, (struct sockaddr *)&a, al);
	place(socket(AF_UNIX, SOCK_STREAM, 0), 21);
	sun_at(&a, &al, dir, "zt-abstract", 1);
	bind(21, (struct sockaddr *)&a, al); listen(21, 4);
	place(socket(AF_UNIX, SOCK_DGRAM, 0), 22);
	sun_at(&a, &al, dir, "dgram.sock", 0);
	bind(22, (struct sockaddr *)&a, al);
	int tmp = socket(AF_UNIX, SOCK_DGRAM, 0);
	sendto(tmp, "d1", 2, 0, (struct sockaddr *)&a, al);
	sendto(tmp, "d22", 3, 0, (struct sockaddr *)&a, al);
	close(tmp);
	place(socket(AF_UNIX, SOCK_DGRAM, 0), 23);
	connect(23, (struct sockaddr *)&a, al);
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv); place(sv[0], 24); place(sv[1], 25);
	send(25, "bye", 3, 0); shutdown(25, SHUT_WR);
	struct sockaddr_un b;
	socklen_t bl;
	place(socket(AF_UNIX, SOCK_DGRAM, 0), 26);
	place(socket(AF_UNIX, SOCK_DGRAM, 0), 27);
	sun_at(&a, &al, dir, "dg-a.sock", 0);
	sun_at(&b, &bl, dir, "dg-b.sock", 0);
	bind(26, (struct sockaddr *)&a, al);
	bind(27, (struct sockaddr *)&b, bl);
	connect(26, (struct sockaddr *)&b, bl);
	connect(27, (struct sockaddr *)&a, al);
	send(26, "p1", 2, 0);
	send(27, "p2", 2, 0);
	/* an fd in flight: a pipe's write end sent over a stream pair, still held at 31 */
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv); place(sv[0], 28); place(sv[1], 29);
	int pp[2];
	pipe(pp); place(pp[0], 30); place(pp[1], 31);
	{
		union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } cb;
		struct iovec iov = { "fdmsg", 5 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cb, .msg_controllen = sizeof(cb) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
		*(int *)CMSG_DATA(c) = 31;
		sendmsg(29, &mh, 0);
		send(29, "after", 5, 0);
	}
	wait_trigger(trig);
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("pair=%s,%s", rd(10, MSG_DONTWAIT), rd(11, MSG_DONTWAIT));
	const char *d1 = rd(12, MSG_DONTWAIT), *d2 = rd(12, MSG_DONTWAIT), *d3 = rd(12, MSG_DONTWAIT);
	printf(" dgram=%s,%s,%s", d1, d2, d3);
	const char *s1 = rd(15, MSG_DONTWAIT), *s2 = rd(15, MSG_DONTWAIT);
	printf(" seq=%s,%s", s1, s2);
	const char *c1 = rd(20, MSG_DONTWAIT), *c2 = rd(19, MSG_DONTWAIT);
	printf(" conn=%s,%s", c1, c2);
	send(17, "first", 5, 0); send(18, "second", 6, 0);
	int x1 = accept(16, NULL, NULL), x2 = accept(16, NULL, NULL);
	const char *p1 = rd(x1, 0), *p2 = rd(x2, 0);
	printf(" pending=%s,%s", p1, p2);
	send(x1, "back", 4, 0);
	printf(" reply=%s", rd(17, 0));
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	sun_at(&a, &al, dir, "zt-abstract", 1);
	int cr = connect(c, (struct sockaddr *)&a, al), x3 = accept(21, NULL, NULL);
	printf(" abstract=%d,%d", cr, x3 >= 0);
	send(23, "x1", 2, 0);
	const char *g1 = rd(22, MSG_DONTWAIT), *g2 = rd(22, MSG_DONTWAIT), *g3 = rd(22, MSG_DONTWAIT);
	printf(" bound=%s,%s,%s", g1, g2, g3);
	const char *h1 = rd(24, MSG_DONTWAIT), *h2 = rd(24, MSG_DONTWAIT);
	printf(" half=%s,%s", h1, h2);
	const char *n1 = rd(26, MSG_DONTWAIT), *n2 = rd(27, MSG_DONTWAIT);
	send(26, "p3", 2, 0);
	printf(" named=%s,%s,%s", n1, n2, rd(27, MSG_DONTWAIT));
	{
		char data[16] = { 0 }, got[16] = { 0 };
		union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } cb;
		struct iovec iov = { data, sizeof(data) - 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cb, .msg_controllen = sizeof(cb) };
		ssize_t n = recvmsg(28, &mh, MSG_DONTWAIT);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int rfd = c && c->cmsg_type == SCM_RIGHTS ? *(int *)CMSG_DATA(c) : -1;
		write(rfd, "via", 3);
		read(30, got, 3);
		printf(" inflight=%.*s,%s,%s\n", (int)(n > 0 ? n : 0), data, rfd >= 0 ? got : "nofd", rd(28, MSG_DONTWAIT));
	}
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
		struct itimerspec armed = { .it_value = { 5, 0 } };
		place(timerfd_create(CLOCK_MONOTONIC, 0), 10);
		timerfd_settime(10, 0, &armed, NULL);
		struct itimerspec per = { .it_value = { 100, 0 }, .it_interval = { 0, 200000000 } };
		place(timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK), 11);
		timerfd_settime(11, 0, &per, NULL);
		struct itimerspec once = { .it_value = { 0, 10000000 } };
		place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 12);
		timerfd_settime(12, 0, &once, NULL);
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		struct itimerspec date = { .it_value = { now.tv_sec + 3, now.tv_nsec } };
		place(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK), 13);
		timerfd_settime(13, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &date, NULL);
		usleep(50000);
		wait_trigger(trig);
		uint64_t ticks13 = 0;
		read(13, &ticks13, 8);
		struct itimerspec g10, g11;
		timerfd_gettime(10, &g10);
		timerfd_gettime(11, &g11);
		uint64_t ticks12 = 0, fired = 0;
		read(12, &ticks12, 8);
		read(10, &fired, 8);     /* blocks until the armed timer fires */
		double el = mono() - t0;
		printf("date13=%llu ", (unsigned long long)ticks13);
		printf("armed=%d fired_at=%s interval11=%ldms nb11=%d ticks12=%llu\n",
		       g10.it_value.tv_sec || g10.it_value.tv_nsec, el >= 4.95 && el < 7.5 ? "on-time" : "wrong",
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
	} else if (!strcmp(mode, "pidfd")) {
		pid_t c = fork();
		if (c == 0)
			for (;;)
				pause();
		place((int)syscall(SYS_pidfd_open, c, PIDFD_NONBLOCK), 10);
		wait_trigger(trig);
		int sent = (int)syscall(SYS_pidfd_send_signal, 10, SIGTERM, NULL, 0);
		siginfo_t si = { 0 };
		/* the pidfd is PIDFD_NONBLOCK: waitid would say EAGAIN before the exit */
		struct pollfd pfd = { .fd = 10, .events = POLLIN };
		poll(&pfd, 1, 5000);
		int w = waitid(P_PIDFD, 10, &si, WEXITED);
		if (w < 0)
			fprintf(stderr, "waitid: %s\n", strerror(errno));
		printf("sent=%d waited=%d pid=%d sig=%d nb=%d\n", sent, w, (int)si.si_pid, si.si_status,
		       !!(fcntl(10, F_GETFL) & O_NONBLOCK));
	} else if (!strcmp(mode, "inotify")) {
		char dir[4096], w1[4200], w2[4200], f1[4200];
		snprintf(dir, sizeof(dir), "%s", trig);
		*strrchr(dir, '/') = 0;
		snprintf(w1, sizeof(w1), "%s/w1", dir);
		snprintf(w2, sizeof(w2), "%s/w2", dir);
		snprintf(f1, sizeof(f1), "%s/f1", dir);
		mkdir(w1, 0700);
		mkdir(w2, 0700);
		close(open(f1, O_CREAT | O_WRONLY, 0600));
		place(inotify_init1(IN_NONBLOCK), 10);
		int a = inotify_add_watch(10, w1, IN_CREATE);
		int b = inotify_add_watch(10, w2, IN_CREATE);
		inotify_rm_watch(10, b);
		int c = inotify_add_watch(10, f1, IN_MODIFY | IN_CLOSE_WRITE);
		char ev[4096];
		while (read(10, ev, sizeof(ev)) > 0)
			;
		wait_trigger(trig);
		char nf[4300];
		snprintf(nf, sizeof(nf), "%s/new", w1);
		close(open(nf, O_CREAT | O_WRONLY, 0600));
		int fd = open(f1, O_WRONLY);
		write(fd, "x", 1);
		close(fd);
		usleep(100000);
		ssize_t n = read(10, ev, sizeof(ev));
		printf("wds=%d,%d ev=", a, c);
		for (char *p = ev; n > 0 && p < ev + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			printf("%s%d:%x:%s", p == ev ? "" : ",", e->wd, e->mask, e->len ? e->name : "");
			p += sizeof(*e) + e->len;
		}
		printf(" nb=%d\n", !!(fcntl(10, F_GETFL) & O_NONBLOCK));
	} else if (!strcmp(mode, "memfd")) {
		char dir[4096], del[4200];
		snprintf(dir, sizeof(dir), "%s", trig);
		*strrchr(dir, '/') = 0;
		place(memfd_create("zt-data", MFD_ALLOW_SEALING), 10);
		write(10, "hello memfd", 11);
		lseek(10, 6, SEEK_SET);
		fcntl(10, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
		place(memfd_create("zt-mapped", 0), 11);
		ftruncate(11, 8192);
		char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, 11, 0);
		memcpy(m + 4096, "mapped", 6);
		snprintf(del, sizeof(del), "%s/gone.txt", dir);
		int t = open(del, O_CREAT | O_RDWR, 0640);
		write(t, "deleted-content", 15);
		close(t);
		place(open(del, O_RDONLY), 12);
		lseek(12, 8, SEEK_SET);
		unlink(del);
		wait_trigger(trig);
		char a[32] = { 0 }, b[32] = { 0 }, c[32] = { 0 }, l[256] = { 0 };
		read(10, a, sizeof(a) - 1);
		readlink("/proc/self/fd/10", l, sizeof(l) - 1);
		int grow = ftruncate(10, 100);
		pwrite(11, "X", 1, 0);
		pread(11, b, 6, 4096);
		read(12, c, sizeof(c) - 1);
		struct stat st;
		fstat(12, &st);
		printf("memfd=%s link=%s seals=%d grow=%d mapped=%c,%s deleted=%s links=%d mode=%o\n", a, l,
		       fcntl(10, F_GET_SEALS), grow, m[0], b, c, (int)st.st_nlink, st.st_mode & 0777);
	} else if (!strcmp(mode, "shm")) {
		char dir[4096], n1[300], n2[300];
		snprintf(dir, sizeof(dir), "%s", trig);
		*strrchr(dir, '/') = 0;
		snprintf(n1, sizeof(n1), "/zt-%.200s-map", strrchr(dir, '/') + 1);
		snprintf(n2, sizeof(n2), "/zt-%.200s-fd", strrchr(dir, '/') + 1);
		int fd = shm_open(n1, O_CREAT | O_RDWR, 0640);
		ftruncate(fd, 8192);
		char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		memcpy(m, "mapped-only", 11);
		memcpy(m + 4096, "page2", 5);
		place(shm_open(n2, O_CREAT | O_RDWR, 0600), 10);
		write(10, "by-fd", 5);
		lseek(10, 3, SEEK_SET);
		wait_trigger(trig);
		char a[16] = { 0 }, b[16] = { 0 };
		read(10, a, sizeof(a) - 1);
		memcpy(m, "MAPPED", 6);
		int again = shm_open(n1, O_RDONLY, 0);
		pread(again, b, 11, 0);
		struct stat st;
		fstat(again, &st);
		printf("map=%.11s,%.5s fd=%s file=%s mode=%o\n", m, m + 4096, a, b, st.st_mode & 0777);
		shm_unlink(n1);
		shm_unlink(n2);
	} else if (!strcmp(mode, "unix")) {
		unix_mode(trig);
	} else {
		return 2;
	}
	fflush(stdout);
	for (;;)
		pause();
}
