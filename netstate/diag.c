/*
 * diag.c — ask sock_diag about many TCP sockets of one netns in one
 * netlink round trip, so that a pod checkpoint does not ask each socket
 * with a syscall for what sock_diag says anyway.
 *
 * A syscall costs ~1-3 us in this VM (PTI), nearly all of a socket's
 * capture time (docs/netstate.md, "Figures").  One exact-match request per
 * connection (its 4-tuple, from getsockname/getpeername, which the capture
 * needs anyway), all sent with one sendmsg, answer with: tcp_info
 * (INET_DIAG_INFO), the bound device index, IP_TOS or IPV6_TCLASS, the
 * congestion control name, SO_MARK (CAP_NET_ADMIN) and the
 * recverr/freebind/transparent bits (INET_DIAG_SOCKOPT, 5.10+).
 *
 * Not a dump: a TCP dump walks the whole host's established hash (262144
 * buckets here, shared by every netns unless tcp_child_ehash_entries was
 * set), ~1.5 ms per family — more than it saves.  An exact lookup is one
 * hash probe.  A reply counts only if its inode is the socket's (fstat).
 * The pod is frozen and its traffic held, so the answers stay true until
 * every socket is captured.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

#define CHUNK 64           /* requests per sendmsg: replies (~0.4 KiB each) fit the rcvbuf */
#define REPLY_MAX 1024     /* one reply: inet_diag_msg + tcp_info + a few attributes (432 bytes on 6.18) */
/* uapi linux/tcp.h: ... tcpi_total_retrans (where glibc's struct ends, 104),
 * then pacing_rate, max_pacing_rate, bytes_acked, bytes_received (u64),
 * segs_out, segs_in, notsent_bytes (u32) */
#define TCPI_NOTSENT_OFF 144
_Static_assert(sizeof(struct tcp_info) == 104, "glibc tcp_info ends at tcpi_total_retrans");

struct diag_req {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 req;
};

static void parse_reply(struct ns_diag_sock *e, const struct nlmsghdr *h)
{
	const struct inet_diag_msg *m = NLMSG_DATA(h);
	const struct rtattr *a;
	int len;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) || m->idiag_inode != e->ino)
		return;
	e->ifindex = m->id.idiag_if;
	e->rqueue = m->idiag_rqueue;
	e->wqueue = m->idiag_wqueue;
	len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
	for (a = (const struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		size_t al = RTA_PAYLOAD(a);
		const void *p = RTA_DATA(a);

		switch (a->rta_type) {
		case INET_DIAG_INFO:
			memcpy(&e->ti, p, al < sizeof(e->ti) ? al : sizeof(e->ti));
			e->has_ti = al >= offsetof(struct tcp_info, tcpi_rtt);
			/* tcpi_notsent_bytes (4.6+): past the end of glibc's tcp_info */
			if (al >= TCPI_NOTSENT_OFF + 4) {
				memcpy(&e->notsent, (const char *)p + TCPI_NOTSENT_OFF, 4);
				e->has_notsent = 1;
			}
			break;
		case INET_DIAG_TOS:
			if (al >= 1) {
				e->tos = *(const uint8_t *)p;
				e->has_tos = 1;
			}
			break;
		case INET_DIAG_TCLASS:
			if (al >= 1) {
				e->tclass = *(const uint8_t *)p;
				e->has_tclass = 1;
			}
			break;
		case INET_DIAG_CONG:
			if (al > 0 && al <= sizeof(e->cong)) {
				memcpy(e->cong, p, al);
				e->cong[sizeof(e->cong) - 1] = 0;
				e->has_cong = 1;
			}
			break;
		case INET_DIAG_MARK:
			if (al >= 4) {
				memcpy(&e->mark, p, 4);
				e->has_mark = 1;
			}
			break;
		case INET_DIAG_SOCKOPT:
			if (al >= sizeof(struct inet_diag_sockopt)) {
				const struct inet_diag_sockopt *o = p;

				e->recverr = o->recverr;
				e->freebind = o->freebind;
				e->transparent = o->transparent;
				e->has_sockopt = 1;
			}
			break;
		}
	}
	/* Only a socket whose tcp_info came back is answered for. */
	e->valid = e->has_ti;
}

static void fill_req(struct diag_req *q, const struct ns_diag_sock *e, uint32_t seq)
{
	memset(q, 0, sizeof(*q));
	q->nlh.nlmsg_len = sizeof(*q);
	q->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q->nlh.nlmsg_flags = NLM_F_REQUEST;
	q->nlh.nlmsg_seq = seq;
	q->req.sdiag_family = e->family;
	q->req.sdiag_protocol = IPPROTO_TCP;
	q->req.idiag_states = ~0u;
	q->req.idiag_ext = 1u << (INET_DIAG_INFO - 1) | 1u << (INET_DIAG_TOS - 1) |
			   1u << (INET_DIAG_TCLASS - 1) | 1u << (INET_DIAG_CONG - 1);
	q->req.id.idiag_cookie[0] = q->req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (e->family == AF_INET) {
		q->req.id.idiag_sport = e->local.in4.sin_port;
		q->req.id.idiag_dport = e->peer.in4.sin_port;
		memcpy(q->req.id.idiag_src, &e->local.in4.sin_addr, 4);
		memcpy(q->req.id.idiag_dst, &e->peer.in4.sin_addr, 4);
	} else {
		q->req.id.idiag_sport = e->local.in6.sin6_port;
		q->req.id.idiag_dport = e->peer.in6.sin6_port;
		memcpy(q->req.id.idiag_src, &e->local.in6.sin6_addr, 16);
		memcpy(q->req.id.idiag_dst, &e->peer.in6.sin6_addr, 16);
		q->req.id.idiag_if = e->local.in6.sin6_scope_id;
	}
}

/* Requests for e[idx[0..n)] (one sendmsg), then their n replies.  The
 * buffers are reused (a fresh page costs ~10 us to touch here). */
struct ns_diag_bufs {
	struct diag_req q[CHUNK];
	struct mmsghdr mm[CHUNK];
	struct iovec iov[CHUNK];
	char buf[CHUNK * REPLY_MAX];
};

struct ns_diag_bufs *ns_diag_bufs_new(void)
{
	struct ns_diag_bufs *b = malloc(sizeof(*b));

	if (b)
		memset(b, 0, sizeof(*b));   /* touched now, not while the pod is frozen */
	return b;
}

static int ask_chunk(int nl, struct ns_diag_bufs *b, struct ns_diag_sock *e, const size_t *idx, size_t n)
{
	struct diag_req *q = b->q;
	char *buf = b->buf;
	size_t answered = 0;

	for (size_t k = 0; k < n; k++)
		fill_req(&q[k], &e[idx[k]], (uint32_t)k + 1);
	if (send(nl, q, n * sizeof(q[0]), 0) < 0)
		return -errno;
	/* The kernel answers inside sendmsg: every reply is queued now.  One
	 * datagram per reply, so recvmmsg takes them all in one call. */
	while (answered < n) {
		struct mmsghdr *mm = b->mm;
		struct iovec *iov = b->iov;
		int got;

		for (size_t k = 0; k < n - answered; k++) {
			iov[k] = (struct iovec){ buf + k * REPLY_MAX, REPLY_MAX };
			mm[k] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[k], .msg_iovlen = 1 } };
		}
		got = recvmmsg(nl, mm, (unsigned)(n - answered), MSG_WAITFORONE, NULL);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		for (int k = 0; k < got; k++) {
			struct nlmsghdr *h = (struct nlmsghdr *)(buf + (size_t)k * REPLY_MAX);
			size_t len = mm[k].msg_len;

			if (mm[k].msg_hdr.msg_flags & MSG_TRUNC)
				len = 0;   /* counts as answered below only if it parses */
			for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
				if (h->nlmsg_seq < 1 || h->nlmsg_seq > n)
					continue;
				answered++;   /* a reply or an error (ENOENT: not found): one per request */
				if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
					parse_reply(&e[idx[h->nlmsg_seq - 1]], h);
			}
			if (len == 0 && (mm[k].msg_hdr.msg_flags & MSG_TRUNC))
				answered++;   /* a reply too large for us: that socket is asked itself */
		}
	}
	return 0;
}

int ns_diag_open(int netns_fd, int *nl, int count)
{
	int r = ns_sockets_in(netns_fd, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG, nl, count);

	if (r)
		log_warn("netstate: sock_diag: %s (sockets are asked one by one)", strerror(-r));
	return r;
}

int ns_diag_ask(int nl, struct ns_diag_bufs *b, struct ns_diag_sock *e, size_t n)
{
	size_t idx[CHUNK], k = 0;
	int r = 0;

	for (size_t i = 0; i < n; i++)
		k += e[i].ask;
	if (!k || nl < 0)
		return 0;
	k = 0;
	for (size_t i = 0; i < n && !r; i++) {
		if (!e[i].ask)
			continue;
		idx[k++] = i;
		if (k == CHUNK) {
			r = ask_chunk(nl, b, e, idx, k);
			k = 0;
		}
	}
	if (!r && k)
		r = ask_chunk(nl, b, e, idx, k);
	if (r)
		log_warn("netstate: sock_diag: %s (sockets are asked one by one)", strerror(-r));
	return r;
}
