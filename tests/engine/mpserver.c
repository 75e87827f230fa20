/*
 * mpserver.c — a small multi-process server for the checkpoint tests:
 * the master (epoll over a unix listener, client connections, the worker's
 * socketpair end and an eventfd, edge-triggered) forwards each request to a
 * worker process; the worker adds 1 to the shared eventfd, then replies; the
 * master reads the eventfd only on every 5th reply, so the counter usually
 * holds a value at any moment.  A client process keeps one connection and
 * prints "k total" per answer: k counts answers, total = what the eventfd
 * delivered = 5*floor(k/5) exactly — unless the eventfd lost its count.
 * argv: SOCKET-PATH
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void client(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
		exit(3);
	for (;;) {
		char buf[128];
		if (write(c, "q", 1) != 1)
			exit(4);
		ssize_t n = read(c, buf, sizeof(buf) - 1);
		if (n <= 0)
			exit(5);
		buf[n] = 0;
		fputs(buf, stdout);
		fflush(stdout);
		usleep(10000);
	}
}

static void worker(int s, int efd)
{
	char b[64];
	for (;;) {
		ssize_t n = read(s, b, sizeof(b));
		if (n <= 0)
			exit(0);
		uint64_t one = 1;
		if (write(efd, &one, 8) != 8 || write(s, b, (size_t)n) != n)
			exit(6);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", argv[1]);
	unlink(a.sun_path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0), sv[2];
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 16) < 0)
		return 3;
	int efd = eventfd(0, EFD_NONBLOCK);
	socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
	if (fork() == 0) {
		close(sv[0]);
		worker(sv[1], efd);
	}
	close(sv[1]);
	if (fork() == 0)
		client(argv[1]);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = 1ull << 32 | (uint32_t)l };
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &e);
	e = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 2ull << 32 | (uint32_t)sv[0] };
	epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &e);
	e = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = 3ull << 32 | (uint32_t)efd };
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e);
	uint64_t replies = 0, total = 0;
	for (;;) {
		struct epoll_event ev[16];
		int n = epoll_wait(ep, ev, 16, -1);
		for (int i = 0; i < n; i++) {
			int kind = (int)(ev[i].data.u64 >> 32), fd = (int)(uint32_t)ev[i].data.u64;
			char b[64];
			if (kind == 1) {
				int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
				if (c >= 0) {
					e = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 4ull << 32 | (uint32_t)c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
				}
			} else if (kind == 4) {
				ssize_t k = read(fd, b, sizeof(b));
				if (k <= 0) {
					epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
					close(fd);
					continue;
				}
				/* forward: the client's fd travels with the request */
				int len = snprintf(b, sizeof(b), "%d", fd);
				write(sv[0], b, (size_t)len);
			} else if (kind == 2) {
				ssize_t k = read(sv[0], b, sizeof(b) - 1);
				if (k <= 0)
					return 7;
				b[k] = 0;
				replies++;
				if (replies % 5 == 0) {
					uint64_t v = 0;
					if (read(efd, &v, 8) == 8)
						total += v;
				}
				char out[64];
				int len = snprintf(out, sizeof(out), "%llu %llu\n", (unsigned long long)replies,
						   (unsigned long long)total);
				write(atoi(b), out, (size_t)len);
			}
		}
	}
}
