/*
 * zi_stream — TCP/UDP programs for the inet tests (pods checkpointed by zapc).
 *
 *   zi_stream peer PORT RESULT STOPFILE
 *       outside the pod: accepts one connection on PORT, sends its stream at
 *       full speed and checks every byte it receives.  Writes "sent rcvd
 *       errors" to RESULT.progress every 50 ms.  When STOPFILE exists it stops
 *       sending and shuts down; on the app's EOF it writes "sent rcvd errors"
 *       to RESULT and exits 0 (1 on a connection error: "error ERRNO ...").
 *   zi_stream app IP PORT
 *       the pod's application: connects, streams both ways, checks every byte;
 *       on the peer's EOF stops, shuts down, prints "app sent rcvd errors".
 *   zi_stream server PORT TRIGGER
 *       the pod's server: TCP listener on PORT answers each connection's line
 *       with "echo LINE"; a UDP socket on PORT is read only when TRIGGER
 *       exists (then removed): prints "udp ADDR:PORT PAYLOAD" per datagram.
 *   zi_stream echo PORT                 (bench) echoes every connection
 *   zi_stream ask IP PORT TEXT          connect, send TEXT\n, print the reply
 *   zi_stream udpsend IP PORT SRCPORT TEXT
 *   zi_stream conns IP PORT N RESULT    (bench) N connections to a listener;
 *       sends one byte on each when RESULT.go exists, then writes to RESULT
 *       the ms from that moment until a byte came back on every one.
 *
 * Byte i of a stream is byte (i % 8) of splitmix64(seed + i / 8): any loss,
 * duplicate or reordering shows as a mismatch.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEED_APP  0x1111
#define SEED_PEER 0x2222
#define CHUNK 65536

static uint64_t splitmix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static void gen(uint64_t seed, uint64_t off, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint64_t w = splitmix(seed + (off + i) / 8);
		for (unsigned b = (unsigned)((off + i) % 8); b < 8 && i < n; b++, i++)
			buf[i] = (uint8_t)(w >> (8 * b));
	}
}

struct side {
	uint64_t sent, rcvd, errors;
	uint64_t my_seed, their_seed;
};

static uint64_t check(struct side *s, const uint8_t *buf, size_t n)
{
	static uint8_t want[CHUNK];
	gen(s->their_seed, s->rcvd, want, n);
	uint64_t bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += buf[i] != want[i];
	s->rcvd += n;
	return bad;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* The stream loop of both sides.  stop(): stop sending and shut down.
 * Returns 0 at the other side's EOF, -errno on error. */
static int stream(int fd, struct side *s, int (*stop)(void *), void *arg, void (*tick)(struct side *, void *))
{
	static uint8_t out[CHUNK], in[CHUNK];
	size_t out_len = 0, out_off = 0;
	int sending = 1;
	double last = now_ms(), last_in = last;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd p = { fd, POLLIN | (sending ? POLLOUT : 0), 0 };
		int r = poll(&p, 1, 50);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (now_ms() - last >= 50) {
			last = now_ms();
			if (tick)
				tick(s, arg);
			if (sending && stop && stop(arg)) {
				sending = 0;
				shutdown(fd, SHUT_WR);
			}
			if (!sending && now_ms() - last_in > 10000)
				return -ETIMEDOUT;   /* stopped, and the other side went silent */
		}
		if (r <= 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, in, sizeof(in), 0);
			if (n == 0)
				return 0;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -errno;
			if (n > 0) {
				s->errors += check(s, in, (size_t)n);
				last_in = now_ms();
			}
		}
		if (sending && (p.revents & POLLOUT)) {
			if (out_off == out_len) {
				gen(s->my_seed, s->sent, out, CHUNK);
				out_len = CHUNK;
				out_off = 0;
			}
			ssize_t n = send(fd, out + out_off, out_len - out_off, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -errno;
			if (n > 0) {
				out_off += (size_t)n;
				s->sent += (uint64_t)n;
			}
		}
	}
}

static int listen_on(int type, int port)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 128) < 0)) {
		perror("zi_stream: bind/listen");
		exit(2);
	}
	return fd;
}

static int connect_to(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || inet_pton(AF_INET, ip, &a.sin_addr) != 1 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "zi_stream: connect %s:%d: %s\n", ip, port, strerror(errno));
		exit(2);
	}
	return fd;
}

/* --- peer ------------------------------------------------------------ */

struct peer_arg { const char *result, *stopfile; };

static int peer_stop(void *a) { return access(((struct peer_arg *)a)->stopfile, F_OK) == 0; }

static void write_file(const char *path, const struct side *s, const char *extra)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%llu %llu %llu%s\n", (unsigned long long)s->sent, (unsigned long long)s->rcvd,
		(unsigned long long)s->errors, extra);
	fclose(f);
	rename(tmp, path);
}

static void peer_tick(struct side *s, void *a)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s.progress", ((struct peer_arg *)a)->result);
	write_file(path, s, "");
}

static int peer(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	struct peer_arg a = { argv[3], argv[4] };
	int l = listen_on(SOCK_STREAM, atoi(argv[2]));
	int fd = accept(l, NULL, NULL);
	close(l);
	struct side s = { .my_seed = SEED_PEER, .their_seed = SEED_APP };
	int err = stream(fd, &s, peer_stop, &a, peer_tick);
	if (err < 0) {
		char e[64];
		snprintf(e, sizeof(e), " error %s", strerror(-err));
		write_file(a.result, &s, e);
		return 1;
	}
	write_file(a.result, &s, "");
	return 0;
}

/* --- app --------------------------------------------------------------- */

static int app(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	int fd = connect_to(argv[2], atoi(argv[3]));
	printf("app connected\n");
	fflush(stdout);
	struct side s = { .my_seed = SEED_APP, .their_seed = SEED_PEER };
	int err = stream(fd, &s, NULL, NULL, NULL);
	shutdown(fd, SHUT_WR);
	/* Exit only when the peer has acknowledged our FIN (state CLOSE: all our
	 * data is acked too): the pod's netns goes when it exits, and with it
	 * anything still in flight. */
	for (int i = 0; i < 1000; i++) {
		struct tcp_info ti;
		socklen_t tl = sizeof(ti);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0 || ti.tcpi_state == TCP_CLOSE)
			break;
		usleep(10000);
	}
	printf("app %llu %llu %llu%s%s\n", (unsigned long long)s.sent, (unsigned long long)s.rcvd,
	       (unsigned long long)s.errors, err ? " error " : "", err ? strerror(-err) : "");
	fflush(stdout);
	return err ? 1 : 0;
}

/* --- server ------------------------------------------------------------ */

static int server(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	int port = atoi(argv[2]);
	int l = listen_on(SOCK_STREAM, port), u = listen_on(SOCK_DGRAM, port);
	printf("server listening on %d\n", port);
	fflush(stdout);
	for (;;) {
		struct pollfd p = { l, POLLIN, 0 };
		poll(&p, 1, 50);
		if (p.revents & POLLIN) {
			int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
			char line[256];
			struct pollfd q = { c, POLLIN, 0 };
			ssize_t n = c >= 0 && poll(&q, 1, 2000) == 1 ? recv(c, line, sizeof(line) - 1, 0) : -1;
			if (n > 0) {
				line[n] = 0;
				line[strcspn(line, "\n")] = 0;
				char reply[300];
				int k = snprintf(reply, sizeof(reply), "echo %s\n", line);
				send(c, reply, (size_t)k, MSG_NOSIGNAL);
				printf("accepted %s\n", line);
				fflush(stdout);
			}
			if (c >= 0)
				close(c);
		}
		if (access(argv[3], F_OK) == 0) {
			char buf[2048];
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n;
			while ((n = recvfrom(u, buf, sizeof(buf) - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) >= 0) {
				char ip[INET_ADDRSTRLEN];
				buf[n] = 0;
				inet_ntop(AF_INET, &from.sin_addr, ip, sizeof(ip));
				printf("udp %s:%u %s\n", ip, ntohs(from.sin_port), buf);
				fl = sizeof(from);
			}
			fflush(stdout);
			unlink(argv[3]);
		}
	}
}

/* Echo every byte of every connection (the bench's pod). */
static int echo(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	struct pollfd p[1025];
	int n = 1;
	p[0] = (struct pollfd){ listen_on(SOCK_STREAM, atoi(argv[2])), POLLIN, 0 };
	printf("echo listening on %s\n", argv[2]);
	for (;;) {
		if (poll(p, (nfds_t)n, -1) < 0)
			continue;
		if ((p[0].revents & POLLIN) && n < 1025) {
			int c = accept4(p[0].fd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0)
				p[n++] = (struct pollfd){ c, POLLIN, 0 };
		}
		for (int i = 1; i < n; i++) {
			if (!p[i].revents)
				continue;
			char buf[4096];
			ssize_t k = recv(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (k > 0)
				send(p[i].fd, buf, (size_t)k, MSG_NOSIGNAL);
			else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(p[i].fd);
				p[i--] = p[--n];
			}
		}
	}
}

/* --- clients ----------------------------------------------------------- */

static int ask(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	int fd = connect_to(argv[2], atoi(argv[3]));
	char buf[512];
	int k = snprintf(buf, sizeof(buf), "%s\n", argv[4]);
	if (send(fd, buf, (size_t)k, MSG_NOSIGNAL) != k)
		return 1;
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	fputs(buf, stdout);
	return got ? 0 : 1;
}

static int udpsend(int argc, char **argv)
{
	if (argc != 6)
		return 2;
	int fd = listen_on(SOCK_DGRAM, atoi(argv[4]));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3])) };
	if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1 ||
	    sendto(fd, argv[5], strlen(argv[5]), 0, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("zi_stream: udpsend");
		return 1;
	}
	return 0;
}

static int conns(int argc, char **argv)
{
	if (argc != 6)
		return 2;
	int n = atoi(argv[4]);
	int *fd = calloc((size_t)n, sizeof(int));
	char go[4096];
	snprintf(go, sizeof(go), "%s.go", argv[5]);
	for (int i = 0; i < n; i++)
		fd[i] = connect_to(argv[2], atoi(argv[3]));
	printf("connected %d\n", n);
	fflush(stdout);
	while (access(go, F_OK) != 0)
		usleep(1000);
	double t0 = now_ms();
	for (int i = 0; i < n; i++)
		send(fd[i], "x", 1, MSG_NOSIGNAL);
	for (int i = 0; i < n; i++) {
		char c;
		struct pollfd p = { fd[i], POLLIN, 0 };
		if (poll(&p, 1, 20000) != 1 || recv(fd[i], &c, 1, 0) != 1)
			return 1;
	}
	FILE *f = fopen(argv[5], "w");
	if (!f)
		return 1;
	fprintf(f, "%.3f\n", now_ms() - t0);
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "peer"))
		return peer(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "app"))
		return app(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "server"))
		return server(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "echo"))
		return echo(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "ask"))
		return ask(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "udpsend"))
		return udpsend(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "conns"))
		return conns(argc, argv);
	fprintf(stderr, "usage: see the header of tests/inet/zi_stream.c\n");
	return 2;
}
