/*
 * netstate_bench — figures for netstate (run by bench/netstate.sh, which
 * builds the two netns).
 *
 *   netstate_bench capture POD_NS PEER_NS POD_IP PEER_IP N
 *       N established connections (each with a little unread data both
 *       ways, every fifth with a dozen options set); prints the time to capture all N as the engine does it
 *       (agent/engine/inet.c: per socket the kind check and a copy of the
 *       fd, then netstate_sock_capture_many: one sock_diag round trip, 2
 *       threads; records packed), min/median of 20 rounds; then the same on
 *       one thread, and each socket on its own (netstate_sock_capture); the
 *       engine's way also with the BPF reader off (syscalls for the IP/TCP
 *       values), and first a byte-for-byte comparison of the records made
 *       the three ways.  Freezing
 *       and the hold are not included (the pod is ours, the peer idle).
 *   netstate_bench recovery POD_NS PEER_NS POD_IP PEER_IP HOLD_MS MODE
 *       the peer sends a small message every millisecond; the pod's traffic
 *       is held for HOLD_MS with MODE (nfqueue|drop), the socket captured,
 *       closed silently and restored; then the hold ends.  Prints the time
 *       from the end of the hold to the first new byte the restored socket
 *       reads, and that no byte was lost.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/netstate.h"
#include "tests/netstate/ns_record.h"

static int ns_pod, ns_peer;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int open_ns(const char *name)
{
	char p[256];
	snprintf(p, sizeof(p), "/run/netns/%s", name);
	return open(p, O_RDONLY | O_CLOEXEC);
}

static int sock_in(int ns)
{
	if (setns(ns, CLONE_NEWNET) < 0)
		return -1;
	return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* CPU seconds of this process (all threads): under the load of other
 * work on the machine, it says more than the wall clock. */
static double cpu_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int bench_capture(const char *pod_ip, const char *peer_ip, int n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7400) };
	int ls = sock_in(ns_peer), one = 1, *pod = calloc((size_t)n, sizeof(int)), *peer = calloc((size_t)n, sizeof(int));
	double t[20], cpu[20];

	(void)pod_ip;
	inet_pton(AF_INET, peer_ip, &a.sin_addr);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (void *)&a, sizeof(a)) || listen(ls, n)) {
		perror("listen");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		pod[i] = sock_in(ns_pod);
		setsockopt(pod[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(pod[i], (void *)&a, sizeof(a)) < 0) {
			perror("connect");
			return 1;
		}
		peer[i] = accept(ls, NULL, NULL);
		if (i % 5 == 0) {   /* a few with options set, so that the comparison below covers them */
			int idle = 77, uto = 12345, lowat = 100000, sndbuf = 600000, mark = 42, prio = 3, tos = 0x10;
			struct linger lg = { 1, 5 };
			struct timeval tv = { 5, 0 };
			setsockopt(pod[i], SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
			setsockopt(pod[i], IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
			setsockopt(pod[i], IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
			setsockopt(pod[i], IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
			setsockopt(pod[i], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
			setsockopt(pod[i], SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
			setsockopt(pod[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			setsockopt(pod[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(pod[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			setsockopt(pod[i], IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
			setsockopt(pod[i], SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
			fcntl(pod[i], F_SETFL, O_NONBLOCK);
		}
		send(peer[i], "unread by the pod", 17, 0);
		send(pod[i], "unread by the peer", 18, 0);
	}
	usleep(100000);
	ino_t *ino = calloc((size_t)n, sizeof(ino_t));
	int *fflags = calloc((size_t)n, sizeof(int));
	for (int i = 0; i < n; i++) {
		struct stat st;
		fstat(pod[i], &st);
		ino[i] = st.st_ino;
		/* the engine has them from the fdinfo it reads for every fd */
		fflags[i] = fcntl(pod[i], F_GETFL);
	}
	/* sock_diag must not change a record: compare both ways once.
	 * (NS_BENCH_ONLY=engine|diag|single runs one way only, for syscall counts.) */
	const char *only = getenv("NS_BENCH_ONLY");
	if (!only) {
		netstate_sock_t *x[n], *b[n], *y;
		uint64_t inos[n];
		int diff = 0, diff_bpf = 0, bpf;
		double load_ms = 0;

		for (int i = 0; i < n; i++)
			inos[i] = ino[i];
		/* x: sock_diag + io_uring, IP/TCP values by syscalls; b: the same
		 * with the BPF reader (as the engine does it); y: one by one (tcp.c) */
		int was = netstate_capture_use_bpf(0);
		if (netstate_sock_capture_many(ns_pod, pod, inos, NULL, NULL, NULL, (size_t)n, x, 1, NULL))
			return 1;
		netstate_capture_use_bpf(was);
		bpf = netstate_capture_bpf(&load_ms);
		if (netstate_sock_capture_many(ns_pod, pod, inos, NULL, NULL, NULL, (size_t)n, b, 1, NULL))
			return 1;
		for (int i = 0; i < n; i++) {
			if (netstate_sock_capture(pod[i], &y))
				return 1;
			diff += !same_record(x[i], y);
			diff_bpf += !same_record(b[i], x[i]);
			netstate_sock_free(x[i]);
			netstate_sock_free(b[i]);
			netstate_sock_free(y);
		}
		printf("capture: records with and without sock_diag %s (%d of %d differ)\n", diff ? "DIFFER" : "identical",
		       diff, n);
		if (bpf)
			printf("capture: records with and without the BPF reader %s (%d of %d differ); BPF load %.2f ms\n",
			       diff_bpf ? "DIFFER" : "identical", diff_bpf, n, load_ms);
		else
			printf("capture: BPF reader not in use (see the log line above)\n");
		if (diff || diff_bpf)
			return 1;
	}
	/* the engine makes these before it freezes the pod (inet_dump_early) */
	netstate_capture_prepare(2);
	/* Three ways: as the engine does it (sock_diag, 2 threads), sock_diag on
	 * one thread, and each socket on its own (the old way). */
	static const struct { const char *name, *what; int diag, threads, bpf; } modes[] = {
		{ "engine", "", 1, 2, 1 },
		{ "nobpf", " (BPF reader off)", 1, 2, 0 },
		{ "diag", " (sock_diag, 1 thread)", 1, 1, 1 },
		{ "single", " (each socket on its own, 1 thread)", 0, 1, 1 },
	};
	for (size_t mi = 0; mi < sizeof(modes) / sizeof(modes[0]); mi++) {
		if (only && strcmp(only, modes[mi].name))
			continue;
		int bpf_was = netstate_capture_use_bpf(modes[mi].bpf);
		for (int round = 0; round < 20; round++) {
			size_t bytes = 0;
			int copies[n], fam[n], proto[n];
			uint64_t inos[n];
			netstate_sock_t *recs[n];
			double t0 = now(), c0 = cpu_now();

			for (int i = 0; i < n; i++) {
				socklen_t l = sizeof(int);

				/* inet_match: two getsockopts; inet_dump: a copy of the fd */
				if (getsockopt(pod[i], SOL_SOCKET, SO_DOMAIN, &fam[i], &l) < 0 ||
				    getsockopt(pod[i], SOL_SOCKET, SO_PROTOCOL, &proto[i], &l) < 0)
					return 1;
				copies[i] = fcntl(pod[i], F_DUPFD_CLOEXEC, 3);
				inos[i] = ino[i];
			}
			if (modes[mi].diag) {
				if (netstate_sock_capture_many(ns_pod, copies, inos, fam, proto, fflags, (size_t)n, recs,
							       modes[mi].threads, NULL)) {
					fprintf(stderr, "capture failed\n");
					return 1;
				}
			} else {
				for (int i = 0; i < n; i++)
					if (netstate_sock_capture(copies[i], &recs[i]))
						return 1;
			}
			for (int i = 0; i < n; i++) {   /* inet_dump_finish */
				size_t len = netstate_sock_packed_size(recs[i]);
				uint8_t *rec = malloc(len ? len : 1);
				netstate_sock_pack(recs[i], rec);
				bytes += len;
				free(rec);
				netstate_sock_free(recs[i]);
			}
			t[round] = now() - t0;
			cpu[round] = cpu_now() - c0;
			for (int i = 0; i < n; i++)
				close(copies[i]);
			if (round == 0 && mi == 0)
				printf("capture: %d connections, image %zu bytes\n", n, bytes);
		}
		netstate_capture_use_bpf(bpf_was);
		qsort(t, 20, sizeof(t[0]), cmp_double);
		qsort(cpu, 20, sizeof(cpu[0]), cmp_double);
		printf("capture%s: %d established connections: min %.3f ms, median %.3f ms (%.1f us per connection); "
		       "CPU median %.3f ms; target < 1 ms\n",
		       modes[mi].what, n, t[0] * 1e3, t[10] * 1e3, t[10] * 1e6 / n, cpu[10] * 1e3);
	}
	free(ino);
	free(fflags);
	free(pod);
	free(peer);
	return 0;
}

struct rel_arg {
	struct netstate_hold *h;
	double done;
};
static void *release_thread(void *arg)
{
	struct rel_arg *ra = arg;
	netstate_hold_release(ra->h);
	ra->done = now();
	return NULL;
}

/* The peer: one small numbered message per millisecond. */
static volatile int peer_stop;
static void *peer_sender(void *arg)
{
	int s = *(int *)arg;
	unsigned k = 0;
	char msg[16];
	while (!peer_stop) {
		memset(msg, 0, sizeof(msg));
		snprintf(msg, sizeof(msg), "%015u", k++);
		if (send(s, msg, 16, MSG_NOSIGNAL) != 16)
			break;
		usleep(1000);
	}
	return NULL;
}

static int bench_recovery(const char *pod_ip, const char *peer_ip, int hold_ms, const char *mode)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7500) };
	int ls = sock_in(ns_peer), one = 1, pod, peer, nfd = -1, r;
	enum netstate_hold_mode m = strcmp(mode, "drop") ? NETSTATE_HOLD_NFQUEUE : NETSTATE_HOLD_DROP;
	struct netstate_hold *h;
	netstate_sock_t *img;
	pthread_t th;
	char buf[4096];
	unsigned expect = 0, got;
	size_t have = 0;
	char msg[17] = "";

	(void)pod_ip;
	inet_pton(AF_INET, peer_ip, &a.sin_addr);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (void *)&a, sizeof(a)) || listen(ls, 1))
		return 1;
	pod = sock_in(ns_pod);
	if (connect(pod, (void *)&a, sizeof(a)) < 0)
		return 1;
	peer = accept(ls, NULL, NULL);
	setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_create(&th, NULL, peer_sender, &peer);

	/* Read for a while, checking the numbering. */
	double until = now() + 0.3;
	while (now() < until) {
		ssize_t n = recv(pod, buf, 16, MSG_DONTWAIT);
		if (n == 16) {
			memcpy(msg, buf, 16);
			got = (unsigned)strtoul(msg, NULL, 10);
			if (got != expect++)
				return 1;
		} else
			usleep(200);
	}
	/* The checkpoint: hold, capture, silent close, restore, hold for the rest of HOLD_MS. */
	double t_hold = now();
	if ((r = netstate_hold_begin(ns_pod, 3000 + (unsigned)getpid() % 20000, m, &h))) {
		fprintf(stderr, "hold: %s\n", strerror(-r));
		return 1;
	}
	if (netstate_sock_capture(pod, &img))
		return 1;
	netstate_sock_detach(pod);
	close(pod);
	if (setns(ns_pod, CLONE_NEWNET) < 0 || netstate_sock_restore(img, &nfd) || netstate_sock_finish(img, nfd))
		return 1;
	netstate_sock_free(img);
	/* What the restored receive queue already holds is no news from the
	 * peer: read it now, so the figure below is about new bytes only. */
	for (;;) {
		ssize_t n = recv(nfd, buf + have, 16 - have, MSG_DONTWAIT);
		if (n <= 0)
			break;
		have += (size_t)n;
		if (have < 16)
			continue;
		have = 0;
		memcpy(msg, buf, 16);
		if ((unsigned)strtoul(msg, NULL, 10) != expect++)
			return 1;
	}
	while (now() - t_hold < hold_ms / 1e3)
		usleep(1000);
	int held = netstate_hold_count(h);
	/* Release from another thread: the figure is when the byte arrives,
	 * not when the release call returns (rule removal comes after the
	 * held packets are already on their way). */
	struct rel_arg ra = { .h = h };
	pthread_t rt;
	double t_rel = now();
	pthread_create(&rt, NULL, release_thread, &ra);
	double t_first = 0;
	int lost = 0;
	until = now() + 15;
	while (now() < until && expect < 100000) {
		struct pollfd p = { .fd = nfd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = recv(nfd, buf + have, 16 - have, 0);
		if (n <= 0)
			return 1;
		have += (size_t)n;
		if (!t_first)
			t_first = now();
		if (have < 16)
			continue;
		have = 0;
		memcpy(msg, buf, 16);
		got = (unsigned)strtoul(msg, NULL, 10);
		if (got != expect++)
			lost = 1;
		if (now() - t_first > 0.3)
			break;
	}
	pthread_join(rt, NULL);
	double t_rel_done = ra.done;
	peer_stop = 1;
	pthread_join(th, NULL);
	printf("recovery %s: held %d ms (%d packets kept); release took %.1f ms; first byte %.1f ms after release; stream %s\n", mode,
	       hold_ms, held, (t_rel_done - t_rel) * 1e3, t_first ? (t_first - t_rel) * 1e3 : -1.0,
	       lost ? "BROKEN" : "intact");
	printf("RESULT %s %.6f\n", mode, t_first ? t_first - t_rel : -1.0);
	return lost || !t_first;
}

int main(int argc, char **argv)
{
	log_init("netstate_bench", 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 7) {
		fprintf(stderr, "usage: netstate_bench capture|recovery POD_NS PEER_NS POD_IP PEER_IP N|HOLD_MS [MODE]\n");
		return 2;
	}
	ns_pod = open_ns(argv[2]);
	ns_peer = open_ns(argv[3]);
	if (ns_pod < 0 || ns_peer < 0)
		return 1;
	if (!strcmp(argv[1], "capture"))
		return bench_capture(argv[4], argv[5], atoi(argv[6]));
	if (!strcmp(argv[1], "recovery") && argc >= 8)
		return bench_recovery(argv[4], argv[5], atoi(argv[6]), argv[7]);
	return 2;
}
