/*
 * sock.c — the public socket entry points: pick the kind of socket,
 * validate image records, pack and unpack them; capture many sockets of
 * a pod at once (netstate_sock_capture_many: sock_diag + threads).
 */
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "netstate/internal.h"

void netstate_sock_free(netstate_sock_t *s)
{
	if (s)
		netstate__socket__free_unpacked(s, NULL);
}

static int capture_as(int fd, int domain, int type, int proto, const struct ns_diag_sock *dg,
		      netstate_sock_t **out)
{
	Netstate__Socket *s;
	int r;

	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	netstate__socket__init(s);
	s->family = (uint32_t)domain;
	s->type = (uint32_t)type;
	s->protocol = (uint32_t)proto;
	r = ns_opts_capture(fd, s, dg && dg->valid ? dg : NULL, NULL, dg ? dg->file_flags : -1);
	if (!r)
		r = type == SOCK_STREAM ? ns_tcp_capture(fd, s, dg) : ns_udp_capture(fd, s);
	if (r) {
		netstate_sock_free(s);
		return r;
	}
	*out = s;
	return 0;
}

/* TCP or UDP over IPv4/IPv6, or -EOPNOTSUPP (logged). */
static int check_kind(int fd, int domain, int type, int proto)
{
	if ((domain != AF_INET && domain != AF_INET6) ||
	    !((type == SOCK_STREAM && proto == IPPROTO_TCP) || (type == SOCK_DGRAM && proto == IPPROTO_UDP))) {
		log_err("netstate: fd %d: socket family %d type %d protocol %d is not TCP/UDP over IP",
			fd, domain, type, proto);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* What the caller did not know yet (-1): SO_DOMAIN, SO_TYPE, SO_PROTOCOL.
 * With skip_tcp_type, a known TCP socket's type is left to be checked
 * later (*type -1): a sock_diag answer proves it is a TCP stream. */
static int sock_kind(int fd, int *domain, int *type, int *proto, bool skip_tcp_type)
{
	socklen_t len = sizeof(int);

	if (*domain < 0 && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, domain, &len) < 0)
		return -errno;
	len = sizeof(int);
	if (*proto < 0 && getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, proto, &len) < 0)
		return -errno;
	if (skip_tcp_type && *proto == IPPROTO_TCP && (*domain == AF_INET || *domain == AF_INET6)) {
		*type = -1;
		return 0;
	}
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, type, &len) < 0)
		return -errno;
	return check_kind(fd, *domain, *type, *proto);
}

int netstate_sock_capture(int fd, netstate_sock_t **out)
{
	int domain = -1, type, proto = -1, r;

	*out = NULL;
	if ((r = sock_kind(fd, &domain, &type, &proto, false)) < 0)
		return r;
	return capture_as(fd, domain, type, proto, NULL, out);
}

struct many {
	const int *fd;
	netstate_sock_t **out;
	struct ns_diag_sock *e;
	size_t n, next, failed;
	int pass, err, threads;
};

static void fail_at(struct many *m, size_t i, int r)
{
	int zero = 0;

	if (__atomic_compare_exchange_n(&m->err, &zero, r, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		m->failed = i;
	log_err("netstate: capture of socket %zu of %zu (fd %d): %s", i + 1, m->n, m->fd[i], strerror(-r));
	__atomic_store_n(&m->next, m->n, __ATOMIC_RELAXED);   /* the others stop */
}

/* Pass 0: kind and addresses (what sock_diag needs to find a connection).
 * Pass 1 (a socket the batch could not take): the capture itself. */
static int one(struct many *m, size_t i)
{
	struct ns_diag_sock *e = &m->e[i];
	int fd = m->fd[i], r;
	socklen_t len;

	if (m->pass == 1) {
		if (e->type < 0) {   /* a raw socket has protocol 6 too; sock_diag did not vouch */
			len = sizeof(int);
			if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &e->type, &len) < 0)
				return -errno;
			if ((r = check_kind(fd, e->family, e->type, e->protocol)) < 0)
				return r;
		}
		return capture_as(fd, e->family, e->type, e->protocol, e, &m->out[i]);
	}
	if ((r = sock_kind(fd, &e->family, &e->type, &e->protocol, true)) < 0)
		return r;
	if (e->protocol != IPPROTO_TCP)
		return 0;
	e->named = true;
	len = sizeof(e->local);
	e->has_local = getsockname(fd, &e->local.sa, &len) == 0;
	len = sizeof(e->peer);
	e->has_peer = getpeername(fd, &e->peer.sa, &len) == 0;
	/* a connection, and an inode to check the reply against */
	e->ask = e->has_local && e->has_peer && e->ino;
	return 0;
}

static void *pass0_worker(void *arg)
{
	struct many *m = arg;
	size_t i;
	int r;

	while ((i = __atomic_fetch_add(&m->next, 1, __ATOMIC_RELAXED)) < m->n)
		if ((r = one(m, i)) < 0)
			fail_at(m, i, r);
	return NULL;
}

/* Pass 1 for one thread's share [lo, hi): the established connections
 * sock_diag answered for in batches through io_uring (fast.c), then every
 * socket the batches left, one by one. */
struct share {
	struct many *m;
	size_t lo, hi;
};

#define RING_ENTRIES 256

static void *pass1_worker(void *arg)
{
	struct share *sh = arg;
	struct many *m = sh->m;
	size_t *idx = NULL, nf = 0;
	int r;

	for (size_t i = sh->lo; i < sh->hi; i++) {
		const struct ns_diag_sock *e = &m->e[i];

		if (e->valid && e->type == SOCK_STREAM && e->has_local && e->has_peer &&
		    ns_tcp_repairable(e->ti.tcpi_state)) {
			if (!idx && !(idx = malloc((sh->hi - sh->lo) * sizeof(*idx))))
				break;   /* all of them one by one */
			idx[nf++] = i;
		}
	}
	if (nf) {
		struct ns_ring ring;

		if ((r = ns_ring_open(&ring, RING_ENTRIES)) < 0) {
			log_debug("netstate: io_uring: %s (sockets are captured one by one)", strerror(-r));
		} else {
			r = ns_fast_capture(&ring, m->fd, m->e, idx, nf, m->out);
			ns_ring_close(&ring);
			if (r < 0)
				fail_at(m, idx[0], r);
		}
	}
	free(idx);
	for (size_t i = sh->lo; i < sh->hi && __atomic_load_n(&m->next, __ATOMIC_RELAXED) < m->n; i++)
		if (!m->out[i] && (r = one(m, i)) < 0)
			fail_at(m, i, r);
	return NULL;
}

static void run_pass(struct many *m, int threads)
{
	pthread_t th[8];
	struct share sh[8];
	int nth = 0, want = 1;

	m->next = 0;
	/* A thread costs tens of us to start: only for more than a few sockets. */
	for (int k = 1; k < threads && k < 8 && m->n > (size_t)k * 8; k++)
		want++;
	if (m->pass == 0) {
		for (int k = 1; k < want; k++)
			if (pthread_create(&th[nth], NULL, pass0_worker, m) == 0)
				nth++;
		pass0_worker(m);
	} else {
		/* contiguous shares: each thread batches its own */
		for (int k = 0; k < want; k++)
			sh[k] = (struct share){ m, m->n * (size_t)k / (size_t)want, m->n * (size_t)(k + 1) / (size_t)want };
		for (int k = 1; k < want; k++)
			if (pthread_create(&th[nth], NULL, pass1_worker, &sh[k]) == 0)
				nth++;
			else
				pass1_worker(&sh[k]);
		pass1_worker(&sh[0]);
	}
	for (int k = 0; k < nth; k++)
		pthread_join(th[k], NULL);
}

int netstate_sock_capture_many(int netns_fd, const int *fd, const uint64_t *ino, const int *family,
			       const int *protocol, const int *file_flags, size_t n, netstate_sock_t **out,
			       int threads, size_t *failed)
{
	struct many m = { .fd = fd, .out = out, .n = n };

	memset(out, 0, n * sizeof(*out));
	if (!n)
		return 0;
	if (!(m.e = calloc(n, sizeof(*m.e))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		m.e[i].ino = ino ? ino[i] : 0;
		m.e[i].family = family ? family[i] : -1;
		m.e[i].protocol = protocol ? protocol[i] : -1;
		m.e[i].file_flags = file_flags ? file_flags[i] : -1;
	}
	run_pass(&m, threads);
	if (!m.err) {
		ns_diag_ask(netns_fd, m.e, n);   /* on failure every socket is asked itself */
		for (size_t i = 0; i < n; i++)
			if (m.e[i].valid)
				m.e[i].type = SOCK_STREAM;   /* found in the TCP table by its inode */
		m.pass = 1;
		run_pass(&m, threads);
	}
	if (m.err) {
		if (failed)
			*failed = m.failed;
		for (size_t i = 0; i < n; i++) {
			netstate_sock_free(out[i]);
			out[i] = NULL;
		}
	}
	free(m.e);
	return m.err;
}

int netstate_sock_detach(int fd)
{
	int type;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	return type == SOCK_STREAM ? ns_tcp_detach(fd) : 0;
}

int netstate_sock_validate(const netstate_sock_t *s)
{
	int r;

	if (!s || (s->family != AF_INET && s->family != AF_INET6))
		return -EINVAL;
	if (!((s->type == SOCK_STREAM && s->protocol == IPPROTO_TCP) ||
	      (s->type == SOCK_DGRAM && s->protocol == IPPROTO_UDP)))
		return -EINVAL;
	if ((s->local && ns_addr_validate(s->local, s->family)) ||
	    (s->peer && ns_addr_validate(s->peer, s->family)))
		return -EINVAL;
	if ((r = ns_opts_validate(s)))
		return r;
	r = s->type == SOCK_STREAM ? ns_tcp_validate(s) : ns_udp_validate(s);
	return r;
}

int netstate_sock_restore(const netstate_sock_t *s, int *fd_out)
{
	int r = netstate_sock_validate(s);

	*fd_out = -1;
	if (r) {
		log_err("netstate: socket record rejected: invalid fields");
		return r;
	}
	return s->type == SOCK_STREAM ? ns_tcp_restore(s, fd_out) : ns_udp_restore(s, fd_out);
}

int netstate_sock_finish(const netstate_sock_t *s, int fd)
{
	return s->type == SOCK_STREAM ? ns_tcp_finish(s, fd) : 0;
}

size_t netstate_sock_packed_size(const netstate_sock_t *s)
{
	return netstate__socket__get_packed_size(s);
}

size_t netstate_sock_pack(const netstate_sock_t *s, uint8_t *buf)
{
	return netstate__socket__pack(s, buf);
}

netstate_sock_t *netstate_sock_unpack(const uint8_t *buf, size_t len)
{
	return netstate__socket__unpack(NULL, len, buf);
}
