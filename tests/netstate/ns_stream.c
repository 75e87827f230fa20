/*
 * ns_stream — the stream test's three roles in one program.
 *
 *   ns_stream peer PORT RESULTFILE
 *       TCP server (run in the peer's netns): accepts one connection, sends
 *       its byte stream at full speed and checks every byte it receives.
 *       On EOF it stops sending, shuts down and writes "sent rcvd errors".
 *   ns_stream app STATEFILE
 *       (internal) the pod's application: gets its socket by SCM_RIGHTS on
 *       fd 3, resumes from the counters in STATEFILE (its "memory").
 *   ns_stream driver POD_NS PEER_IP PORT SNAPSHOTS MIGRATIONS STATEFILE HELPER
 *       starts the app in POD_NS, then checkpoints it SNAPSHOTS times
 *       (hold, capture, release) and migrates it MIGRATIONS times to a new
 *       netns with the same address (hold in the new netns before its address
 *       is up, capture, kill, restore there, hand the fd to a fresh app,
 *       release).  HELPER is a script: "HELPER link NS" brings the pod link
 *       up in NS, "HELPER unlink NS" removes it.  At the end it stops the
 *       app and prints "app sent rcvd errors" and the final netns name.
 *
 * Byte i of a stream is byte (i % 8) of splitmix64(seed + i / 8): any loss,
 * duplicate or reordering shows as a mismatch at a known offset.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "lib/log.h"
#include "netstate/netstate.h"

#define SEED_APP  0x1111
#define SEED_PEER 0x2222

struct app_state {
	volatile int pause_req, paused, stop, fd, done;
	volatile uint64_t sent, rcvd, errors, first_bad;
};

static uint64_t splitmix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static void gen(uint64_t seed, uint64_t off, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t o = off + i;
		buf[i] = (uint8_t)(splitmix(seed + o / 8) >> (8 * (o % 8)));
	}
}

static uint64_t check(uint64_t seed, uint64_t off, const uint8_t *buf, size_t n, uint64_t *first_bad)
{
	uint64_t bad = 0, blk = UINT64_MAX, v = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t o = off + i;
		if (o / 8 != blk) {
			blk = o / 8;
			v = splitmix(seed + blk);
		}
		if (buf[i] != (uint8_t)(v >> (8 * (o % 8)))) {
			if (!bad && first_bad && *first_bad == UINT64_MAX)
				*first_bad = o;
			bad++;
		}
	}
	return bad;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* ---- peer -------------------------------------------------------------- */

static int peer_main(int port, const char *result)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, s;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	uint8_t out[65536], in[65536];
	uint64_t sent = 0, rcvd = 0, errors = 0, first_bad = UINT64_MAX;
	int eof = 0, err = 0;
	FILE *f;

	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (void *)&a, sizeof(a)) || listen(ls, 4)) {
		perror("peer bind/listen");
		return 1;
	}
	s = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0) {
		perror("peer accept");
		return 1;
	}
	while (!eof) {
		struct pollfd p = { .fd = s, .events = POLLIN | POLLOUT };
		if (poll(&p, 1, 1000) < 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(s, in, sizeof(in));
			if (n == 0) {
				eof = 1;
			} else if (n < 0 && errno != EAGAIN) {
				err = errno;
				break;
			} else if (n > 0) {
				errors += check(SEED_APP, rcvd, in, (size_t)n, &first_bad);
				rcvd += (uint64_t)n;
			}
		}
		if (!eof && (p.revents & POLLOUT)) {
			gen(SEED_PEER, sent, out, sizeof(out));
			ssize_t n = write(s, out, sizeof(out));
			if (n > 0)
				sent += (uint64_t)n;
			else if (n < 0 && errno != EAGAIN) {
				err = errno;
				break;
			}
		}
	}
	shutdown(s, SHUT_WR);
	f = fopen(result, "w");
	if (f) {
		fprintf(f, "%llu %llu %llu %s first_bad=%lld\n", (unsigned long long)sent,
			(unsigned long long)rcvd, (unsigned long long)errors, err ? strerror(err) : "ok",
			first_bad == UINT64_MAX ? -1LL : (long long)first_bad);
		fclose(f);
	}
	/* Linger until the app has read everything (it closes first). */
	for (int i = 0; i < 300; i++) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		if (poll(&p, 1, 100) > 0 && read(s, in, sizeof(in)) <= 0 && errno != EAGAIN)
			break;
	}
	close(s);
	return err ? 1 : 0;
}

/* ---- app --------------------------------------------------------------- */

static struct app_state *map_state(const char *path, int create)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
	void *p;

	if (fd < 0 || (create && ftruncate(fd, sizeof(struct app_state)) < 0))
		return NULL;
	p = mmap(NULL, sizeof(struct app_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static int recv_fd(int us)
{
	char c, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(us, &mh, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	return fd;
}

static int send_fd(int us, int fd)
{
	char c = 'F', cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	return sendmsg(us, &mh, 0) == 1 ? 0 : -1;
}

static int app_main(const char *statefile)
{
	struct app_state *st = map_state(statefile, 0);
	uint8_t out[65536], in[65536];
	uint64_t first_bad = UINT64_MAX;
	int s, shut = 0;

	if (!st)
		return 1;
	s = recv_fd(3);
	if (s < 0)
		return 1;
	close(3);
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
	st->fd = s;
	for (;;) {
		if (st->pause_req) {
			st->paused = 1;
			while (st->pause_req)
				usleep(200);
			st->paused = 0;
		}
		if (st->stop && !shut) {
			shutdown(s, SHUT_WR);
			shut = 1;
		}
		struct pollfd p = { .fd = s, .events = POLLIN | (shut ? 0 : POLLOUT) };
		if (poll(&p, 1, 5) <= 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(s, in, sizeof(in));
			if (n == 0)
				break;
			if (n < 0 && errno != EAGAIN) {
				fprintf(stderr, "app: read: %s\n", strerror(errno));
				st->errors++;
				break;
			}
			if (n > 0) {
				uint64_t bad = check(SEED_PEER, st->rcvd, in, (size_t)n, &first_bad);
				st->rcvd += (uint64_t)n;
				if (bad) {
					if (!st->errors)
						st->first_bad = first_bad;
					st->errors += bad;
				}
			}
		}
		if (!shut && (p.revents & POLLOUT)) {
			size_t want = sizeof(out);
			gen(SEED_APP, st->sent, out, want);
			ssize_t n = write(s, out, want);
			if (n > 0)
				st->sent += (uint64_t)n;
			else if (n < 0 && errno != EAGAIN) {
				fprintf(stderr, "app: write: %s\n", strerror(errno));
				st->errors++;
				break;
			}
		}
	}
	st->done = 1;
	return 0;
}

/* ---- driver ------------------------------------------------------------ */

static const char *self_exe;

static int open_netns(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int r = system(cmd);
	if (r != 0)
		fprintf(stderr, "driver: '%s' failed (%d)\n", cmd, r);
	return r;
}

/* Start a fresh app in netns_fd, handing it sock by SCM_RIGHTS. */
static pid_t spawn_app(int netns_fd, int sock, const char *statefile)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		if (setns(netns_fd, CLONE_NEWNET) < 0)
			_exit(126);
		dup2(sv[1], 3);
		execl(self_exe, self_exe, "app", statefile, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	if (pid > 0 && send_fd(sv[0], sock) < 0)
		pid = -1;
	close(sv[0]);
	return pid;
}

static int pause_app(struct app_state *st, pid_t pid)
{
	double t0 = now();
	st->pause_req = 1;
	while (!st->paused) {
		if (now() - t0 > 10 || st->done)
			return -1;
		usleep(100);
	}
	return kill(pid, SIGSTOP);   /* the "freeze" */
}

static void resume_app(struct app_state *st, pid_t pid)
{
	kill(pid, SIGCONT);
	st->pause_req = 0;
}

static int grab_fd(pid_t pid, int fd)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), s;
	if (pfd < 0)
		return -1;
	s = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
	close(pfd);
	return s;
}

/* third field of /proc/sys/net/ipv4/NAME in the current netns, or 0 */
static int sysctl_third(const char *name)
{
	char path[64];
	long a, b, c = 0;
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/%s", name);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld %ld", &a, &b, &c) != 3)
		c = 0;
	fclose(f);
	return (int)c;
}

static int driver_main(int argc, char **argv)
{
	int bufs_over = 0;
	const char *pod = argv[2], *peer_ip = argv[3], *statefile = argv[7], *helper = argv[8];
	int port = atoi(argv[4]), snaps = atoi(argv[5]), migs = atoi(argv[6]);
	int cycles = snaps + migs, netns, s, r, failures = 0;
	char cur[64], next[64];
	struct app_state *st = map_state(statefile, 1);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	pid_t app;
	double t_cap = 0, t_cap_max = 0;
	unsigned queue = 1000 + (unsigned)(getpid() % 30000);

	if (!st)
		return 1;
	snprintf(cur, sizeof(cur), "%s", pod);
	inet_pton(AF_INET, peer_ip, &a.sin_addr);
	netns = open_netns(cur);
	if (netns < 0 || setns(netns, CLONE_NEWNET) < 0) {
		perror("driver: pod netns");
		return 1;
	}
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int i = 0; i < 50 && connect(s, (void *)&a, sizeof(a)) < 0; i++)
		usleep(100000);
	st->fd = -1;
	app = spawn_app(netns, s, statefile);
	close(s);
	for (int i = 0; i < 1000 && st->fd < 0; i++)
		usleep(1000);
	if (app < 0)
		return 1;

	for (int c = 0; c < cycles; c++) {
		/* Migrations spread out among the snapshots. */
		int migrate = migs && (c % (cycles / migs) == cycles / migs - 1) && c / (cycles / migs) < migs;
		struct netstate_hold *hold = NULL, *hold2 = NULL;
		netstate_sock_t *img = NULL, *back = NULL;
		uint8_t *buf = NULL;
		size_t len;
		int fd, nfd = -1, netns2 = -1;

		usleep(40000 + (unsigned)(c % 7) * 10000);   /* let the stream run at full speed */
		if (pause_app(st, app)) {
			fprintf(stderr, "driver: app does not pause\n");
			return 1;
		}
		if ((r = netstate_hold_begin(netns, queue, NETSTATE_HOLD_NFQUEUE, &hold))) {
			fprintf(stderr, "driver: hold: %s\n", strerror(-r));
			return 1;
		}
		fd = grab_fd(app, st->fd);
		double t0 = now();
		r = fd < 0 ? -errno : netstate_sock_capture(fd, &img);
		double dt = now() - t0;
		t_cap += dt;
		if (dt > t_cap_max)
			t_cap_max = dt;
		if (r) {
			fprintf(stderr, "driver: capture: %s\n", strerror(-r));
			return 1;
		}
		/* Through the record format and its validator, as the engine would. */
		len = netstate_sock_packed_size(img);
		buf = malloc(len);
		netstate_sock_pack(img, buf);
		back = netstate_sock_unpack(buf, len);
		free(buf);
		if (!back || netstate_sock_validate(back)) {
			fprintf(stderr, "driver: record does not round-trip\n");
			return 1;
		}
		netstate_sock_free(img);
		if (!migrate) {
			close(fd);
			netstate_sock_free(back);
			if ((r = netstate_hold_release(hold)))
				failures++;
			resume_app(st, app);
			continue;
		}

		/* Migration: the old pod goes away silently... */
		netstate_sock_detach(fd);
		close(fd);
		kill(app, SIGKILL);
		kill(app, SIGCONT);
		waitpid(app, NULL, 0);
		st->pause_req = 0;
		st->paused = 0;
		if (run("%s unlink %s", helper, cur))
			return 1;
		netstate_hold_drop(hold);
		/* ...and comes back in a new netns with the same address. */
		snprintf(next, sizeof(next), "%s-m%d", pod, c);
		if (run("ip netns add %s", next))
			return 1;
		netns2 = open_netns(next);
		if (netns2 < 0 || (r = netstate_hold_begin(netns2, queue, NETSTATE_HOLD_NFQUEUE, &hold2))) {
			fprintf(stderr, "driver: hold in new netns: %s\n", strerror(-r));
			return 1;
		}
		if (run("%s link %s", helper, next))
			return 1;
		if (setns(netns2, CLONE_NEWNET) < 0)
			return 1;
		t0 = now();
		r = netstate_sock_restore(back, &nfd);
		if (!r)
			r = netstate_sock_finish(back, nfd);
		netstate_sock_free(back);
		if (r) {
			fprintf(stderr, "driver: restore: %s\n", strerror(-r));
			return 1;
		}
		fprintf(stderr, "driver: migration %s -> %s: restore %.3f ms\n", cur, next, (now() - t0) * 1e3);
		/* a restored buffer no bigger than autotuning would make it
		 * (a forced size once doubled the queues at every migration) */
		for (int k = 0; k < 2; k++) {
			int cur_sz = 0, max = sysctl_third(k ? "tcp_rmem" : "tcp_wmem");
			socklen_t l = sizeof(cur_sz);
			getsockopt(nfd, SOL_SOCKET, k ? SO_RCVBUF : SO_SNDBUF, &cur_sz, &l);
			if (max > 0 && cur_sz > max) {
				fprintf(stderr, "driver: restored %s %d > %d\n", k ? "SO_RCVBUF" : "SO_SNDBUF", cur_sz, max);
				bufs_over++;
			}
		}
		st->fd = -1;
		app = spawn_app(netns2, nfd, statefile);
		close(nfd);
		netstate_hold_release(hold2);
		run("ip netns del %s", cur);
		close(netns);
		netns = netns2;
		snprintf(cur, sizeof(cur), "%s", next);
		/* wait for the new app to pick up the socket */
		for (int i = 0; i < 1000 && st->fd < 0; i++)
			usleep(1000);
	}
	/* Stop: the app shuts down its side, reads until the peer's EOF. */
	usleep(200000);
	st->stop = 1;
	for (int i = 0; i < 600 && !st->done; i++)
		usleep(50000);
	kill(app, SIGKILL);
	waitpid(app, NULL, 0);
	printf("app %llu %llu %llu first_bad=%lld\n", (unsigned long long)st->sent, (unsigned long long)st->rcvd,
	       (unsigned long long)st->errors, st->errors ? (long long)st->first_bad : -1LL);
	printf("netns %s\n", cur);
	printf("capture avg %.3f ms max %.3f ms hold-failures %d\n", t_cap / cycles * 1e3, t_cap_max * 1e3, failures);
	printf("buffers over the autotuning ceiling %d\n", bufs_over);
	return st->done && !failures ? 0 : 1;
}

int main(int argc, char **argv)
{
	self_exe = "/proc/self/exe";
	log_init("ns_stream", 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "peer"))
		return peer_main(atoi(argv[2]), argv[3]);
	if (argc >= 3 && !strcmp(argv[1], "app"))
		return app_main(argv[2]);
	if (argc >= 9 && !strcmp(argv[1], "driver")) {
		static char exe[4096];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n > 0)
			exe[n] = 0, self_exe = exe;
		return driver_main(argc, argv);
	}
	fprintf(stderr, "usage: ns_stream peer PORT RESULT | driver POD PEER_IP PORT SNAPS MIGS STATE HELPER\n");
	return 2;
}
