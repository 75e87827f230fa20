/*
 * udp.c — capture and re-create a UDP socket (bound or connected, IPv4/IPv6)
 * with its receive queue.
 *
 * The queue is read without consuming it: SO_PEEK_OFF set to 0 makes
 * successive MSG_PEEK reads walk the datagrams one by one (the application's
 * peek offset is put back afterwards).  On restore each datagram is sent
 * again from its original source address (inject.c), oldest first, before
 * the hold is released, so the application reads them before anything new.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif

static int add_dgram(Netstate__Socket *s, const union ns_sockaddr *from, const void *data, size_t len)
{
	Netstate__Datagram *d, **v;

	v = realloc(s->rcvq, (s->n_rcvq + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->rcvq = v;
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	netstate__datagram__init(d);
	d->from = ns_addr_new(from);
	d->data.data = malloc(len ? len : 1);
	if (!d->from || !d->data.data) {
		netstate__datagram__free_unpacked(d, NULL);
		return -ENOMEM;
	}
	memcpy(d->data.data, data, len);
	d->data.len = len;
	s->rcvq[s->n_rcvq++] = d;
	return 0;
}

int ns_udp_capture(int fd, Netstate__Socket *s)
{
	union ns_sockaddr sa;
	socklen_t len = sizeof(sa);
	int peek_off = -1, zero = 0, r = 0;
	uint8_t *buf;

	if (getsockname(fd, &sa.sa, &len) == 0 &&
	    (sa.sa.sa_family == AF_INET ? sa.in4.sin_port : sa.in6.sin6_port) != 0 &&
	    !(s->local = ns_addr_new(&sa)))
		return -ENOMEM;
	len = sizeof(sa);
	if (getpeername(fd, &sa.sa, &len) == 0 && !(s->peer = ns_addr_new(&sa)))
		return -ENOMEM;

	len = sizeof(peek_off);
	getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &peek_off, &len);
	if (peek_off >= 0) {
		s->has_peek_off = 1;
		s->peek_off = peek_off;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0)
		return -errno;
	buf = malloc(NS_MAX_DGRAM_LEN + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		struct iovec iov = { buf, NS_MAX_DGRAM_LEN + 1 };
		struct msghdr mh = { .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(fd, &mh, MSG_PEEK | MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN)
				r = -errno;
			break;
		}
		if (s->n_rcvq >= NS_MAX_DGRAMS || (size_t)n > NS_MAX_DGRAM_LEN) {
			r = -E2BIG;
			break;
		}
		if ((r = add_dgram(s, &sa, buf, (size_t)n)))
			break;
	}
	free(buf);
out:
	/* Put the application's peek offset back (-1 turns peeking-by-offset off). */
	setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &peek_off, sizeof(peek_off));
	if (r)
		log_err("netstate udp capture: receive queue: %s", strerror(-r));
	return r;
}

int ns_udp_validate(const Netstate__Socket *s)
{
	if (s->type != SOCK_DGRAM || s->has_tcp_state || s->conn || s->n_pending || s->has_backlog)
		return -EINVAL;
	if (s->n_rcvq > NS_MAX_DGRAMS)
		return -EINVAL;
	if (s->n_rcvq && !s->local)
		return -EINVAL;   /* nothing can have arrived on an unbound socket */
	for (size_t i = 0; i < s->n_rcvq; i++) {
		const Netstate__Datagram *d = s->rcvq[i];
		if (!d || ns_addr_validate(d->from, s->family) || d->data.len > NS_MAX_DGRAM_LEN)
			return -EINVAL;
	}
	return 0;
}

/* Wait until n datagrams sit in the queue (loopback delivery runs in softirq). */
static int wait_queued(int fd, size_t n)
{
	struct timespec t0, t;
	int zero = 0, off = -1;
	uint8_t b;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		size_t have = 0;
		setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero));
		while (have < n && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC) >= 0)
			have++;
		setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
		if (have >= n)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 2)
			return -ETIMEDOUT;
		poll(NULL, 0, 1);
	}
}

int ns_udp_restore(const Netstate__Socket *s, int *fd_out)
{
	union ns_sockaddr local, peer, from, to;
	socklen_t len, llen;
	int fd, r;

	fd = socket(s->family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return -errno;
	if ((r = ns_opts_apply(fd, s, NS_OPT_BEFORE_BIND)))
		goto fail;
	if (s->local) {
		if (ns_addr_to_sockaddr(s->local, &local, &llen)) {
			r = -EINVAL;
			goto fail;
		}
		if (bind(fd, &local.sa, llen) < 0) {
			char b[64];
			r = -errno;
			log_err("netstate udp restore: bind %s: %s", ns_addr_str(s->local, b, sizeof(b)),
				strerror(errno));
			goto fail;
		}
	}
	if (s->peer) {
		if (ns_addr_to_sockaddr(s->peer, &peer, &len)) {
			r = -EINVAL;
			goto fail;
		}
		if (connect(fd, &peer.sa, len) < 0) {
			r = -errno;
			log_err("netstate udp restore: connect: %s", strerror(errno));
			goto fail;
		}
	}
	if (s->n_rcvq) {
		/* The destination: our own address, or loopback when bound to any. */
		len = sizeof(to);
		if (getsockname(fd, &to.sa, &len) < 0) {
			r = -errno;
			goto fail;
		}
		if (to.sa.sa_family == AF_INET && to.in4.sin_addr.s_addr == htonl(INADDR_ANY))
			to.in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (to.sa.sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&to.in6.sin6_addr))
			to.in6.sin6_addr = in6addr_loopback;
		for (size_t i = 0; i < s->n_rcvq; i++) {
			if (ns_addr_to_sockaddr(s->rcvq[i]->from, &from, &len)) {
				r = -EINVAL;
				goto fail;
			}
			r = ns_inject_udp(&from, &to, s->rcvq[i]->data.data, s->rcvq[i]->data.len);
			if (r)
				goto fail;
		}
		if ((r = wait_queued(fd, s->n_rcvq))) {
			log_err("netstate udp restore: %zu saved datagrams did not arrive", s->n_rcvq);
			goto fail;
		}
	}
	if (s->has_peek_off &&
	    setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &s->peek_off, sizeof(s->peek_off)) < 0) {
		r = -errno;
		goto fail;
	}
	*fd_out = fd;
	return 0;
fail:
	close(fd);
	return r;
}
