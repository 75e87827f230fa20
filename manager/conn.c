/*
 * conn.c — connections to agents (see conn.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "lib/frame.h"
#include "lib/log.h"
#include "lib/tls.h"
#include "manager/conn.h"

#define PROTO_VERSION 1
#define CONNECT_MS 3000

static SSL_CTX *ctx;
static char nodes_path[4096];
static struct agent *agents;

int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int conn_init(const char *tls_dir, const char *nodes_file)
{
	ctx = tls_ctx_new(tls_dir, TLS_CLIENT);
	if (!ctx)
		return -EINVAL;
	snprintf(nodes_path, sizeof(nodes_path), "%s", nodes_file ? nodes_file : "");
	return 0;
}

struct agent *conn_list(void) { return agents; }

/* The node's address from the nodes file. */
static int node_addr(const char *name, char *addr, size_t len)
{
	FILE *f = fopen(nodes_path, "re");
	char line[512], n[128], a[128];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %127s", n, a) == 2 && !strcmp(n, name)) {
			snprintf(addr, len, "%s", a);
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

void conn_drop(struct agent *a, const char *why)
{
	if (a->fd < 0)
		return;
	log_warn("agent %s: %s", a->name, why);
	if (a->ssl)
		SSL_free(a->ssl);	/* no close_notify: the peer may be gone */
	a->ssl = NULL;
	close(a->fd);
	a->fd = -1;
	a->inlen = 0;
}

/* Read what the socket has into a->in.  0, or -errno on EOF/error. */
static int pump(struct agent *a)
{
	for (;;) {
		int n;

		if (a->incap - a->inlen < 16384) {
			size_t cap = a->incap ? a->incap * 2 : 65536;
			uint8_t *p = realloc(a->in, cap);

			if (!p)
				return -ENOMEM;
			a->in = p;
			a->incap = cap;
		}
		ERR_clear_error();
		n = SSL_read(a->ssl, a->in + a->inlen, (int)(a->incap - a->inlen));
		if (n > 0) {
			a->inlen += (size_t)n;
			if (a->inlen > FRAME_MAX + FRAME_HDR)
				return -EMSGSIZE;
			continue;
		}
		switch (SSL_get_error(a->ssl, n)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return 0;
		case SSL_ERROR_ZERO_RETURN:
			return -EPIPE;
		default:
			return -ECONNRESET;
		}
	}
}

/* One whole envelope off a->in: 1 (*e set), 0 (need more), -errno. */
static int next_env(struct agent *a, Zapc__Mgr__Envelope **e)
{
	size_t len;
	int rc = frame_peek(a->in, a->inlen, FRAME_MAX, &len);

	if (rc <= 0)
		return rc;
	*e = zapc__mgr__envelope__unpack(NULL, len, a->in + FRAME_HDR);
	memmove(a->in, a->in + FRAME_HDR + len, a->inlen - FRAME_HDR - len);
	a->inlen -= FRAME_HDR + len;
	return *e ? 1 : -EBADMSG;
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return -ETIMEDOUT;
	return poll(&p, 1, (int)left) == 1 ? 0 : -ETIMEDOUT;
}

int conn_send(struct agent *a, const Zapc__Mgr__Envelope *e)
{
	size_t len = zapc__mgr__envelope__get_packed_size(e), off = 0;
	uint8_t *buf = malloc(len + 4);
	int64_t deadline = now_ms() + 10000;
	int rc = 0;

	if (a->fd < 0)
		return -ENOTCONN;
	if (!buf)
		return -ENOMEM;
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	zapc__mgr__envelope__pack(e, buf + 4);
	while (off < len + 4) {
		int n;

		ERR_clear_error();
		n = SSL_write(a->ssl, buf + off, (int)(len + 4 - off));
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		int err = SSL_get_error(a->ssl, n);

		if ((err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) &&
		    wait_fd(a->fd, err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline) == 0)
			continue;
		rc = -EPIPE;
		conn_drop(a, "connection lost while sending");
		break;
	}
	free(buf);
	return rc;
}

static int connect_to(struct agent *a, char *why, size_t whylen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[64], *colon;
	Zapc__Mgr__Envelope *e = NULL;
	int64_t deadline;
	int fd, rc, one = 1, fl;

	snprintf(host, sizeof(host), "%s", a->addr);
	colon = strrchr(host, ':');
	if (!colon) {
		snprintf(why, whylen, "%s: bad address '%s' in the nodes file", a->name, a->addr);
		return -EINVAL;
	}
	*colon = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		snprintf(why, whylen, "%s: bad address '%s'", a->name, a->addr);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	deadline = now_ms() + CONNECT_MS;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		goto fail;
	}
	if (wait_fd(fd, POLLOUT, deadline) < 0) {
		rc = -ETIMEDOUT;
		goto fail;
	}
	socklen_t sl = sizeof(rc);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &sl);
	if (rc) {
		rc = -rc;
		goto fail;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	log_last_err_clear();
	rc = tls_connect_fd(ctx, fd, a->name, CONNECT_MS, &a->ssl);
	if (rc < 0) {
		snprintf(why, whylen, "%s: %s", a->name, log_last_err()[0] ? log_last_err() : strerror(-rc));
		close(fd);
		return rc;
	}
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	a->fd = fd;
	a->inlen = 0;
	/* The agent speaks first: Hello, or Refused / a TLS alert if it does not
	 * accept our certificate (TLS 1.3: we only learn it here). */
	for (;;) {
		log_last_err_clear();
		rc = pump(a);
		if (rc < 0 && next_env(a, &e) > 0)
			break;	/* Refused, then the agent hung up */
		if (rc < 0) {
			unsigned long ee = ERR_peek_last_error();
			char buf[256] = "";

			if (ee)
				ERR_error_string_n(ee, buf, sizeof(buf));
			snprintf(why, whylen, "%s: the agent closed the connection%s%s", a->name,
				 buf[0] ? ": " : " (refused our certificate?)", buf);
			conn_drop(a, why);
			return -ECONNREFUSED;
		}
		rc = next_env(a, &e);
		if (rc > 0)
			break;
		if (rc < 0 || wait_fd(a->fd, POLLIN, deadline + 2000) < 0) {
			snprintf(why, whylen, "%s: no Hello from the agent", a->name);
			conn_drop(a, why);
			return -ETIMEDOUT;
		}
	}
	rc = 0;
	if (e->m_case == ZAPC__MGR__ENVELOPE__M_REFUSED) {
		snprintf(why, whylen, "%s: refused: %s", a->name, e->refused->why);
		rc = -ECONNREFUSED;
	} else if (e->m_case != ZAPC__MGR__ENVELOPE__M_HELLO) {
		snprintf(why, whylen, "%s: expected Hello", a->name);
		rc = -EPROTO;
	} else if (e->hello->proto_version != PROTO_VERSION) {
		snprintf(why, whylen, "%s: protocol version %u, manager speaks %u", a->name,
			 e->hello->proto_version, PROTO_VERSION);
		rc = -EPROTO;
	} else {
		snprintf(a->kernel, sizeof(a->kernel), "%s", e->hello->kernel);
		log_info("agent %s at %s: connected (kernel %s)", a->name, a->addr, a->kernel);
	}
	zapc__mgr__envelope__free_unpacked(e, NULL);
	if (rc < 0)
		conn_drop(a, why);
	return rc;
fail:
	snprintf(why, whylen, "%s: connect %s: %s", a->name, a->addr, strerror(-rc));
	close(fd);
	return rc;
}

struct agent *conn_get(const char *name, char *why, size_t whylen)
{
	struct agent *a;

	for (a = agents; a; a = a->next)
		if (!strcmp(a->name, name))
			break;
	if (!a) {
		a = calloc(1, sizeof(*a));
		if (!a) {
			snprintf(why, whylen, "out of memory");
			return NULL;
		}
		snprintf(a->name, sizeof(a->name), "%s", name);
		a->fd = -1;
		a->next = agents;
		agents = a;
	}
	if (a->fd >= 0)
		return a;
	if (node_addr(name, a->addr, sizeof(a->addr)) < 0) {
		snprintf(why, whylen, "%s: unknown node (not in %s)", name, nodes_path);
		return NULL;
	}
	return connect_to(a, why, whylen) < 0 ? NULL : a;
}

/* Deliver whole frames buffered for a; returns fn's non-zero value or 0. */
static int deliver(struct agent *a, int i, conn_fn fn, void *arg)
{
	Zapc__Mgr__Envelope *e;
	int rc;

	while ((rc = next_env(a, &e)) != 0) {
		if (rc < 0) {
			conn_drop(a, "malformed frame");
			return fn(arg, i, NULL);
		}
		rc = fn(arg, i, e);
		zapc__mgr__envelope__free_unpacked(e, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

void conn_poll_one(struct agent *a, conn_fn fn, void *arg)
{
	if (a->fd < 0)
		return;
	if (pump(a) < 0) {
		deliver(a, 0, fn, arg);
		conn_drop(a, "connection lost");
		fn(arg, 0, NULL);
		return;
	}
	deliver(a, 0, fn, arg);
}

int conn_alive(struct agent *a)
{
	struct pollfd p = { .fd = a->fd, .events = POLLIN };

	if (a->fd < 0)
		return 0;
	if (poll(&p, 1, 0) == 1 && pump(a) < 0) {
		conn_drop(a, "connection lost");
		return 0;
	}
	return 1;
}

int conn_wait(struct agent **as, int n, int64_t deadline, conn_fn fn, void *arg)
{
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	int rc = 0;

	if (!p)
		return -ENOMEM;
	for (;;) {
		int64_t left;

		for (int i = 0; i < n; i++)
			if (as[i] && as[i]->fd >= 0 && (rc = deliver(as[i], i, fn, arg)))
				goto out;
		left = deadline - now_ms();
		if (left <= 0)
			break;
		for (int i = 0; i < n; i++) {
			p[i].fd = as[i] ? as[i]->fd : -1;
			p[i].events = POLLIN;
			p[i].revents = 0;
		}
		if (poll(p, (nfds_t)n, (int)(left > 200 ? 200 : left)) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (pump(as[i]) < 0) {
				if ((rc = deliver(as[i], i, fn, arg)))
					goto out;
				conn_drop(as[i], "connection lost");
				if ((rc = fn(arg, i, NULL)))
					goto out;
			}
		}
	}
out:
	free(p);
	return rc;
}
