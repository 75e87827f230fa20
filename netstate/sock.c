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
#include <unistd.h>

#include "lib/log.h"
#include "netstate/bpf_rec.h"
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

/* What the caller did not know yet (-1): SO_DOMAIN, SO_PROTOCOL; and SO_TYPE. */
static int sock_kind(int fd, int *domain, int *type, int *proto)
{
	socklen_t len = sizeof(int);

	if (*domain < 0 && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, domain, &len) < 0)
		return -errno;
	len = sizeof(int);
	if (*proto < 0 && getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, proto, &len) < 0)
		return -errno;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, type, &len) < 0)
		return -errno;
	return check_kind(fd, *domain, *type, *proto);
}

int netstate_sock_capture(int fd, netstate_sock_t **out)
{
	int domain = -1, type, proto = -1, r;

	*out = NULL;
	if ((r = sock_kind(fd, &domain, &type, &proto)) < 0)
		return r;
	return capture_as(fd, domain, type, proto, NULL, out);
}

/*
 * Capturing many sockets: the pod is stopped, so its CPUs are free and each
 * capture is syscall-bound.  The sockets are split into contiguous shares,
 * one per thread (the caller's and up to 7 more); each share does on its
 * own: kind and addresses (pass 0), one sock_diag round trip for its
 * connections (its own netlink socket), the established connections in
 * io_uring batches (fast.c), and every other socket one by one.  Rings and
 * reply buffers are kept for the next call (setting them up costs ~100 us
 * of page touching here): netstate_capture_prepare makes them before the
 * pod is frozen.
 */
struct many {
	const struct ns_bpf_buf *bb;   /* the BPF reader's records (read once for all shares), or NULL */
	const int *fd;
	netstate_sock_t **out;
	struct ns_diag_sock *e;
	size_t n, failed;
	int err, stop;
};

#define MAX_SHARES 8
#define RING_ENTRIES 512

/* What a share keeps between calls. */
static struct slot {
	pthread_mutex_t lock;
	bool ring_ok;
	struct ns_ring ring;
	struct ns_diag_bufs *bufs;
} slots[MAX_SHARES] = {
	[0 ... MAX_SHARES - 1] = { .lock = PTHREAD_MUTEX_INITIALIZER },
};

/* The BPF reader's records, one read per call for all its shares. */
static struct {
	pthread_mutex_t lock;
	struct ns_bpf_buf b;
} shared_bpf = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void slot_fill(struct slot *sl)
{
	if (sl->ring_ok && sl->ring.broken) {
		ns_ring_close(&sl->ring);
		sl->ring_ok = false;
	}
	if (!sl->ring_ok && ns_ring_open(&sl->ring, RING_ENTRIES) == 0) {
		sl->ring_ok = true;
		ns_ring_touch(&sl->ring);
	}
	if (!sl->bufs)
		sl->bufs = ns_diag_bufs_new();
}

static void *noop_thread(void *arg)
{
	return arg;
}

void netstate_capture_prepare(int threads)
{
	pthread_t th;

	if (ns_bpf_prepare() == 0) {
		pthread_mutex_lock(&shared_bpf.lock);
		ns_bpf_buf_init(&shared_bpf.b, 96 << 10);   /* ~680 records; grows if more */
		pthread_mutex_unlock(&shared_bpf.lock);
	}
	for (int k = 0; k < threads && k < MAX_SHARES; k++) {
		pthread_mutex_lock(&slots[k].lock);
		slot_fill(&slots[k]);
		pthread_mutex_unlock(&slots[k].lock);
	}
	/* A process's first thread costs a fresh stack; glibc keeps it. */
	if (threads > 1 && pthread_create(&th, NULL, noop_thread, NULL) == 0)
		pthread_join(th, NULL);
}

static void fail_at(struct many *m, size_t i, int r)
{
	int zero = 0;

	if (__atomic_compare_exchange_n(&m->err, &zero, r, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		m->failed = i;
	log_err("netstate: capture of socket %zu of %zu (fd %d): %s", i + 1, m->n, m->fd[i], strerror(-r));
	__atomic_store_n(&m->stop, 1, __ATOMIC_RELAXED);   /* the others stop */
}

static bool stopped(struct many *m)
{
	return __atomic_load_n(&m->stop, __ATOMIC_RELAXED);
}

struct share {
	struct many *m;
	size_t lo, hi;
	int nl;
	int k;            /* slot */
};

/* getsockname/getpeername of an IPv4 TCP socket from its BPF record, as
 * inet_getname computes them: the peer only with a port and not in CLOSE
 * or SYN_SENT (ENOTCONN); our address is rcv_saddr, saddr when 0.  IPv6
 * is left to the syscalls (flow info and scope ids live in bits CO-RE
 * cannot reach). */
static bool names_from_bpf(struct ns_diag_sock *e, const struct ns_bpf_rec *b)
{
	if (!b || b->family != AF_INET || e->family != AF_INET)
		return false;
	memset(&e->local, 0, sizeof(e->local));
	e->local.in4.sin_family = AF_INET;
	e->local.in4.sin_port = b->sport;
	e->local.in4.sin_addr.s_addr = b->rcv_saddr ? b->rcv_saddr : b->saddr;
	e->has_local = true;
	memset(&e->peer, 0, sizeof(e->peer));
	e->has_peer = b->dport && b->state != TCP_CLOSE && b->state != TCP_SYN_SENT;
	if (e->has_peer) {
		e->peer.in4.sin_family = AF_INET;
		e->peer.in4.sin_port = b->dport;
		e->peer.in4.sin_addr.s_addr = b->daddr;
	}
	return true;
}

/* Pass 0: kind (SO_DOMAIN/SO_PROTOCOL/SO_TYPE where not known, batched
 * when a ring is there; from the BPF record for the TCP sockets it saw) and
 * addresses (what sock_diag needs to find a connection). */
static int pass0(struct many *m, size_t lo, size_t hi, struct ns_ring *r, const struct ns_bpf_buf *bb)
{
	int res[3 * 64];

	for (size_t b = lo; r && b < hi; b += 64) {
		size_t end = hi - b < 64 ? hi : b + 64;

		for (size_t i = b; i < end; i++) {
			struct ns_diag_sock *e = &m->e[i];
			int *rs = &res[3 * (i - b)];

			rs[0] = rs[1] = rs[2] = 0;
			/* a TCP socket the BPF reader saw: SOCK_STREAM, IPPROTO_TCP */
			const struct ns_bpf_rec *b = bb ? ns_bpf_find(bb, m->fd[i], e->ino) : NULL;
			if (b && (e->family < 0 || e->family == (int)b->family) && (e->protocol < 0 || e->protocol == IPPROTO_TCP)) {
				e->family = (int)b->family;
				e->protocol = IPPROTO_TCP;
				e->type = SOCK_STREAM;
				continue;
			}
			if (e->family < 0)
				ns_ring_getsockopt(r, m->fd[i], SO_DOMAIN, &e->family, sizeof(int), &rs[0]);
			if (e->protocol < 0)
				ns_ring_getsockopt(r, m->fd[i], SO_PROTOCOL, &e->protocol, sizeof(int), &rs[1]);
			ns_ring_getsockopt(r, m->fd[i], SO_TYPE, &e->type, sizeof(int), &rs[2]);
		}
		if (ns_ring_run(r) < 0) {
			r = NULL;   /* asked one by one below */
			break;
		}
		for (size_t i = b; i < end; i++) {
			int *rs = &res[3 * (i - b)];

			if (rs[0] < 0 || rs[1] < 0 || rs[2] < 0)
				m->e[i].type = -1;   /* asked again below, as a syscall */
		}
	}
	for (size_t i = lo; i < hi && !stopped(m); i++) {
		struct ns_diag_sock *e = &m->e[i];
		int fd = m->fd[i], rr;
		socklen_t len;

		/* no ring, or it could not tell (sockets' io_uring commands: 6.7+) */
		if ((!r || e->type < 0) && (rr = sock_kind(fd, &e->family, &e->type, &e->protocol)) < 0) {
			fail_at(m, i, rr);
			return rr;
		}
		if ((rr = check_kind(fd, e->family, e->type, e->protocol)) < 0) {
			fail_at(m, i, rr);
			return rr;
		}
		if (e->protocol != IPPROTO_TCP)
			continue;
		e->named = true;
		if (bb && names_from_bpf(e, ns_bpf_find(bb, fd, e->ino))) {
			e->ask = e->has_local && e->has_peer && e->ino;
			continue;
		}
		len = sizeof(e->local);
		e->has_local = getsockname(fd, &e->local.sa, &len) == 0;
		len = sizeof(e->peer);
		e->has_peer = getpeername(fd, &e->peer.sa, &len) == 0;
		/* a connection, and an inode to check the reply against */
		e->ask = e->has_local && e->has_peer && e->ino;
	}
	return 0;
}

static void *share_worker(void *arg)
{
	struct share *sh = arg;
	struct many *m = sh->m;
	struct slot *sl = &slots[sh->k], own = { .ring_ok = false };
	size_t *idx = NULL, nf = 0;
	int r;

	/* the slot of a concurrent call is busy: a ring of our own */
	if (pthread_mutex_trylock(&sl->lock) != 0)
		sl = &own;
	slot_fill(sl);
	const struct ns_bpf_buf *bb = m->bb;
	if (pass0(m, sh->lo, sh->hi, sl->ring_ok ? &sl->ring : NULL, bb) < 0)
		goto out;
	if (sl->bufs)
		ns_diag_ask(sh->nl, sl->bufs, m->e + sh->lo, sh->hi - sh->lo);   /* failed: asked one by one */
	for (size_t i = sh->lo; i < sh->hi; i++) {
		const struct ns_diag_sock *e = &m->e[i];

		if (e->valid && e->type == SOCK_STREAM && e->has_local && e->has_peer &&
		    ns_tcp_repairable(e->ti.tcpi_state)) {
			if (!idx && !(idx = malloc((sh->hi - sh->lo) * sizeof(*idx))))
				break;   /* all of them one by one */
			idx[nf++] = i;
		}
	}
	if (nf && sl->ring_ok && !sl->ring.broken &&
	    (r = ns_fast_capture(&sl->ring, bb, m->fd, m->e, idx, nf, m->out)) < 0)
		fail_at(m, idx[0], r);
	for (size_t i = sh->lo; i < sh->hi && !stopped(m); i++) {
		struct ns_diag_sock *e = &m->e[i];

		if (!m->out[i] && (r = capture_as(m->fd[i], e->family, e->type, e->protocol, e, &m->out[i])) < 0)
			fail_at(m, i, r);
	}
out:
	free(idx);
	if (sl == &own) {
		if (own.ring_ok)
			ns_ring_close(&own.ring);
		free(own.bufs);
	} else {
		pthread_mutex_unlock(&sl->lock);
	}
	return NULL;
}

int netstate_sock_capture_many(int netns_fd, const int *fd, const uint64_t *ino, const int *family,
			       const int *protocol, const int *file_flags, size_t n, netstate_sock_t **out,
			       int threads, size_t *failed)
{
	struct many m = { .fd = fd, .out = out, .n = n };
	struct share sh[MAX_SHARES];
	pthread_t th[MAX_SHARES];
	int nl[MAX_SHARES], nsh = 1, nth = 0;

	memset(out, 0, n * sizeof(*out));
	if (!n)
		return 0;
	if (!(m.e = calloc(n, sizeof(*m.e))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		m.e[i].ino = ino ? ino[i] : 0;
		m.e[i].family = family ? family[i] : -1;
		m.e[i].protocol = protocol ? protocol[i] : -1;
		m.e[i].type = -1;
		m.e[i].file_flags = file_flags ? file_flags[i] : -1;
	}
	/* A thread costs tens of us to start: only for more than a few sockets.
	 * With the BPF reader a connection costs ~10 us of CPU here, and a
	 * second share ~0.4 ms more CPU than it saves (its own ring runs,
	 * netlink socket and thread; 100 connections: 1 thread 0.86-1.3 ms,
	 * 2 threads 1.0-2.7 ms, both under the other helpers' load): only
	 * for many. */
	size_t per_share = ns_bpf_ready() == 0 ? 128 : 8;
	while (nsh < threads && nsh < MAX_SHARES && n > (size_t)nsh * per_share)
		nsh++;
	ns_diag_open(netns_fd, nl, nsh);   /* failed: every socket is asked itself */
	/* The BPF reader, once for all shares: kinds and IPv4 addresses for
	 * pass 0, the TCP values for fast.c (which checks that nothing moved
	 * since); unavailable or failed: syscalls. */
	struct ns_bpf_buf own_bpf = { 0 }, *bb = NULL;
	bool shared = false;
	if (ns_bpf_ready() == 0) {   /* loaded by netstate_capture_prepare, never here */
		shared = pthread_mutex_trylock(&shared_bpf.lock) == 0;   /* else a concurrent call has it */
		bb = shared ? &shared_bpf.b : &own_bpf;
		if (ns_bpf_read(bb) < 0)
			bb = NULL;
	}
	m.bb = bb;
	for (int k = 0; k < nsh; k++)
		sh[k] = (struct share){ &m, n * (size_t)k / (size_t)nsh, n * (size_t)(k + 1) / (size_t)nsh, nl[k], k };
	for (int k = 1; k < nsh; k++)
		if (pthread_create(&th[nth], NULL, share_worker, &sh[k]) == 0)
			nth++;
		else
			share_worker(&sh[k]);
	share_worker(&sh[0]);
	for (int k = 0; k < nth; k++)
		pthread_join(th[k], NULL);
	for (int k = 0; k < nsh; k++)
		if (nl[k] >= 0)
			close(nl[k]);
	if (shared)
		pthread_mutex_unlock(&shared_bpf.lock);
	free(own_bpf.data);
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
