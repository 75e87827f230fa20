/*
 * tcp.c — capture and re-create one TCP socket with the TCP_REPAIR family.
 *
 * Capture (socket already held by netstate_hold, owner frozen) enters repair
 * mode, reads sequence numbers, both queues (MSG_PEEK), window, options and
 * timestamp, then leaves repair mode without a window probe and puts the
 * application's SO_REUSEADDR back: nothing observable changes.
 *
 * Restore follows the order the kernel needs (docs/netstate.md has why):
 *   bind → queue sequences → TCP_MAXSEG → connect → REPAIR_OPTIONS →
 *   TCP_TIMESTAMP → recv queue → sent-unacked → our FIN → REPAIR_WINDOW →
 *   forged peer FIN/ACK/urgent byte → (finish) repair off → unsent data.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <sys/stat.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif

static int set_int(int fd, int level, int name, int val, const char *what)
{
	if (setsockopt(fd, level, name, &val, sizeof(val)) < 0) {
		int e = errno;
		log_err("netstate tcp: %s: %s", what, strerror(e));
		return -e;
	}
	return 0;
}

static int get_int(int fd, int level, int name, int *val)
{
	socklen_t len = sizeof(*val);
	return getsockopt(fd, level, name, val, &len) < 0 ? -errno : 0;
}

/* Peek len bytes of the selected repair queue; fail unless exactly len.
 * The urgent byte (out-of-line OOB) is a hole the peek skips: for the
 * receive queue, peeks continue past the mark with SO_PEEK_OFF and
 * *mark_at says where the hole was (-1: none). */
static int peek_queue(int fd, int queue, uint8_t *buf, size_t len, size_t *got, long *mark_at, bool *peek_off_set)
{
	size_t total = 0;
	int peeks = 0, r;

	*got = 0;
	if (mark_at)
		*mark_at = -1;
	r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, "select repair queue");
	if (r)
		return r;
	while (total < len) {
		ssize_t n;

		/* SO_PEEK_OFF only when it matters (one syscall costs ~1.5 us here). */
		if (queue == TCP_RECV_QUEUE && (total || *peek_off_set)) {
			if ((r = set_int(fd, SOL_SOCKET, SO_PEEK_OFF, (int)total, "SO_PEEK_OFF")))
				return r;
			*peek_off_set = true;
		}
		n = recv(fd, buf + total, len - total, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN && total)
				break;
			return -errno;
		}
		if (n == 0)
			break;
		if (peeks++ == 1 && mark_at)
			*mark_at = (long)total;   /* second peek: the first stopped at the mark */
		total += (size_t)n;
		if (queue == TCP_SEND_QUEUE)
			break;   /* the send queue peek returns all or nothing */
	}
	*got = total;
	return 0;
}

/* getpeername() fails in SYN_SENT (ENOTCONN), so the destination comes
 * from sock_diag, matched by inode, asked in the socket's own netns. */
static int diag_peer(int fd, int family, union ns_sockaddr *peer)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} q = { 0 };
	struct stat st;
	char buf[16384];
	int nl = -1, skns = -1, r = -ENOENT;

	if (fstat(fd, &st) < 0)
		return -errno;
	skns = ioctl(fd, SIOCGSKNS);
	if (skns < 0) {
		r = -errno;
		goto out;
	}
	if ((r = ns_sockets_in(skns, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG, &nl, 1)) < 0)
		goto out;
	r = -ENOENT;
	q.nlh.nlmsg_len = sizeof(q);
	q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.req.sdiag_family = (uint8_t)family;
	q.req.sdiag_protocol = IPPROTO_TCP;
	q.req.idiag_states = 1u << TCP_SYN_SENT;
	if (send(nl, &q, sizeof(q), 0) < 0) {
		r = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = recv(nl, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (n <= 0)
			break;
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct inet_diag_msg *m = NLMSG_DATA(h);

			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
				goto out;
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) || m->idiag_inode != st.st_ino)
				continue;
			memset(peer, 0, sizeof(*peer));
			if (family == AF_INET) {
				peer->in4.sin_family = AF_INET;
				peer->in4.sin_port = m->id.idiag_dport;
				memcpy(&peer->in4.sin_addr, m->id.idiag_dst, 4);
			} else {
				peer->in6.sin6_family = AF_INET6;
				peer->in6.sin6_port = m->id.idiag_dport;
				memcpy(&peer->in6.sin6_addr, m->id.idiag_dst, 16);
			}
			r = 0;
		}
	}
out:
	if (nl >= 0)
		close(nl);
	if (skns >= 0)
		close(skns);
	return r;
}

/* The states a connection can be captured in with TCP_REPAIR. */
bool ns_tcp_repairable(unsigned st)
{
	switch (st) {
	case TCP_ESTABLISHED: case TCP_FIN_WAIT1: case TCP_FIN_WAIT2:
	case TCP_CLOSE_WAIT: case TCP_LAST_ACK: case TCP_CLOSING:
		return true;
	}
	return false;
}

/* Which FINs a connection in this state has sent, had acknowledged, received. */
void ns_tcp_fin_flags(Netstate__TcpConn *c, unsigned state)
{
	c->state = state;
	c->our_fin = c->state == TCP_FIN_WAIT1 || c->state == TCP_FIN_WAIT2 ||
		     c->state == TCP_CLOSING || c->state == TCP_LAST_ACK;
	c->has_our_fin = c->our_fin;
	c->our_fin_acked = c->state == TCP_FIN_WAIT2;
	c->has_our_fin_acked = c->our_fin_acked;
	c->peer_fin = c->state == TCP_CLOSE_WAIT || c->state == TCP_LAST_ACK || c->state == TCP_CLOSING;
	c->has_peer_fin = c->peer_fin;
}

static int capture_conn(int fd, const struct tcp_info *ti, const struct ns_diag_sock *dg, Netstate__Socket *s,
			Netstate__TcpConn *c)
{
	bool peek_off_set;
	struct tcp_repair_window win;
	socklen_t len;
	int inq, outq, unsq, mss, reuse = 0, peek_off = -1, inline_oob = 0, atmark = 0, r, rr;
	uint32_t ts = 0, snd_seq, rcv_seq;
	uint8_t *sndq = NULL, *rcvq = NULL, oob;
	size_t got;
	long mark;
	bool has_oob;

	ns_tcp_fin_flags(c, ti->tcpi_state);

	/* Before repair mode: the urgent byte, and what repair mode will clobber. */
	has_oob = recv(fd, &oob, 1, MSG_OOB | MSG_PEEK | MSG_DONTWAIT) == 1;
	/* Already read by the option table (absent = 0). */
	ns_opt_get_int(s, SOL_SOCKET, SO_REUSEADDR, &reuse);
	ns_opt_get_int(s, SOL_SOCKET, SO_OOBINLINE, &inline_oob);
	get_int(fd, SOL_SOCKET, SO_PEEK_OFF, &peek_off);
	peek_off_set = peek_off >= 0;
	if (peek_off >= 0) {
		s->has_peek_off = 1;
		s->peek_off = peek_off;
	}
	if (ioctl(fd, SIOCATMARK, &atmark) < 0)
		atmark = 0;
	/* SIOCINQ stops at the urgent mark unless urgent data is inline
	 * (tcp_inq()): inline for the capture, so the whole queue is counted
	 * and peeked; the byte at the mark is taken out again below. */
	if (!inline_oob)
		set_int(fd, SOL_SOCKET, SO_OOBINLINE, 1, "capture: SO_OOBINLINE");

	r = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON, "capture: TCP_REPAIR on");
	if (r)
		return r;
	/* Queue sizes from the ioctls, right before the peeks, not from the
	 * sock_diag answer taken for all sockets earlier.  A pod's loopback
	 * connections are not held and kernel timers run while it is frozen:
	 * a delayed ACK can shrink a send queue between the sizes and the peeks
	 * ("got 0 of 65748 bytes").  So the sizes are read again after the
	 * peeks, and the whole measure is retried (a few times, 1 ms apart)
	 * until it was stable. */
	int raw_in, raw_out, attempt = 0;
	goto measure;
again:		/* something moved (see above): measure again */
	free(sndq);
	free(rcvq);
	sndq = rcvq = NULL;
	usleep(1000);
measure:
	if (ioctl(fd, SIOCINQ, &inq) < 0 || ioctl(fd, SIOCOUTQ, &outq) < 0 ||
	    ioctl(fd, SIOCOUTQNSD, &unsq) < 0 || get_int(fd, IPPROTO_TCP, TCP_MAXSEG, &mss)) {
		r = -errno;
		log_err("netstate tcp capture: queue sizes: %s", strerror(errno));
		goto out;
	}
	raw_in = inq;
	raw_out = outq;
	len = sizeof(ts);
	/* kept only with the timestamps option (below): else not asked */
	if (!(ti->tcpi_options & TCPI_OPT_TIMESTAMPS) || getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &ts, &len) < 0)
		ts = 0;
	len = sizeof(win);
	if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &win, &len) < 0) {
		r = -errno;
		log_err("netstate tcp capture: TCP_REPAIR_WINDOW: %s", strerror(errno));
		goto out;
	}
	/* Our FIN occupies one sequence number counted by SIOCOUTQ (and by
	 * SIOCOUTQNSD while unsent) but is no byte of the queue. */
	if (c->our_fin && !c->our_fin_acked) {
		if (unsq > 0)
			unsq--;   /* the FIN is still unsent: it is the last "byte" */
		outq--;
	}
	if (inq < 0 || outq < 0 || unsq < 0 || unsq > outq ||
	    (uint32_t)inq > NS_MAX_QUEUE || (uint32_t)outq > NS_MAX_QUEUE) {
		if (attempt++ < 4)
			goto again;
		r = -EIO;
		log_err("netstate tcp capture: odd queue sizes in %d out %d unsent %d", inq, outq, unsq);
		goto out;
	}
	sndq = malloc((size_t)outq + 1);
	rcvq = malloc((size_t)inq + 1);
	if (!sndq || !rcvq) {
		r = -ENOMEM;
		goto out;
	}
	r = peek_queue(fd, TCP_SEND_QUEUE, sndq, (size_t)outq, &got, NULL, &peek_off_set);
	if (!r && got != (size_t)outq) {
		if (attempt++ < 4)
			goto again;
		r = -EIO;
	}
	if (r) {
		log_err("netstate tcp capture: send queue: got %zu of %d bytes (%s)", got, outq, strerror(-r));
		goto out;
	}
	if ((r = get_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int *)&snd_seq)))
		goto out;
	r = peek_queue(fd, TCP_RECV_QUEUE, rcvq, (size_t)inq, &got, &mark, &peek_off_set);
	if (r) {
		log_err("netstate tcp capture: recv queue: %s", strerror(-r));
		goto out;
	}
	if ((r = get_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int *)&rcv_seq)))
		goto out;
	int in2, out2;
	if (got != (size_t)inq || ioctl(fd, SIOCINQ, &in2) < 0 || ioctl(fd, SIOCOUTQ, &out2) < 0 ||
	    in2 != raw_in || out2 != raw_out) {
		if (attempt++ < 4)
			goto again;
		r = -EIO;
		log_err("netstate tcp capture: recv queue: got %zu of %d bytes, queues still moving", got, inq);
		goto out;
	}
	if (atmark)
		mark = 0;
	/* The peek stops at the urgent mark: the byte there is urgent data the
	 * application reads with MSG_OOB (kept apart), or already read that way
	 * (dropped: the stream skips it).  Inline urgent data stays in the stream. */
	if (!inline_oob && mark >= 0 && (size_t)mark < got) {
		if (has_oob) {
			c->has_has_oob = c->has_oob = 1;
			c->has_oob_byte = 1;
			c->oob_byte = rcvq[mark];
			c->has_oob_offset = 1;
			c->oob_offset = (uint32_t)mark;
		}
		memmove(rcvq + mark, rcvq + mark + 1, got - (size_t)mark - 1);
		got--;
	}
	c->snd_seq = snd_seq - (c->our_fin ? 1 : 0);
	c->rcv_seq = rcv_seq - (c->peer_fin ? 1 : 0);
	c->sndq.data = sndq;
	c->sndq.len = (size_t)outq;
	c->unsent_len = (uint32_t)unsq;
	c->rcvq.data = rcvq;
	c->rcvq.len = got;
	sndq = rcvq = NULL;
	c->mss = (uint32_t)mss;
	if (ti->tcpi_options & TCPI_OPT_TIMESTAMPS) {
		c->has_timestamp = 1;
		c->timestamp = ts;
	}
	c->opt_mask = ti->tcpi_options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
	c->has_snd_wscale = c->has_rcv_wscale = 1;
	c->snd_wscale = ti->tcpi_snd_wscale;
	c->rcv_wscale = ti->tcpi_rcv_wscale;
	c->snd_wl1 = win.snd_wl1;
	c->snd_wnd = win.snd_wnd;
	c->max_window = win.max_window;
	c->rcv_wnd = win.rcv_wnd;
	c->rcv_wup = win.rcv_wup;
	r = 0;
out:
	free(sndq);
	free(rcvq);
	/* Leave repair mode silently, then undo what it changed: sk_reuse
	 * (repair on/off force it, net/ipv4/tcp.c) and the peek offset. */
	rr = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP, "capture: TCP_REPAIR off");
	if (reuse)
		set_int(fd, SOL_SOCKET, SO_REUSEADDR, reuse, "capture: SO_REUSEADDR back");
	if (peek_off_set)
		set_int(fd, SOL_SOCKET, SO_PEEK_OFF, peek_off, "capture: SO_PEEK_OFF back");
	if (!inline_oob)
		set_int(fd, SOL_SOCKET, SO_OOBINLINE, 0, "capture: SO_OOBINLINE back");
	return r ? r : rr;
}

int ns_tcp_capture(int fd, Netstate__Socket *s, const struct ns_diag_sock *dg)
{
	struct tcp_info ti;
	union ns_sockaddr sa;
	socklen_t len = sizeof(ti);
	bool has_local, has_peer;
	int r;

	/* dg: sock_diag's tcp_info, and the addresses asked once already */
	if (dg && dg->valid)
		ti = dg->ti;
	else if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -errno;
	s->has_tcp_state = 1;
	s->tcp_state = ti.tcpi_state;
	if (dg && dg->named) {
		sa = dg->local;
		has_local = dg->has_local;
	} else {
		len = sizeof(sa);
		has_local = getsockname(fd, &sa.sa, &len) == 0;
	}
	if (has_local && (sa.sa.sa_family == AF_INET ? sa.in4.sin_port : sa.in6.sin6_port) != 0 &&
	    !(s->local = ns_addr_new(&sa)))
		return -ENOMEM;
	if (ti.tcpi_state == TCP_LISTEN) {
		has_peer = false;
	} else if (dg && dg->named) {
		sa = dg->peer;
		has_peer = dg->has_peer;
	} else {
		len = sizeof(sa);
		has_peer = getpeername(fd, &sa.sa, &len) == 0;
	}
	if (has_peer && !(s->peer = ns_addr_new(&sa)))
		return -ENOMEM;

	switch (ti.tcpi_state) {
	case TCP_CLOSE:
		return 0;   /* never connected (or reset): only options and address */
	case TCP_LISTEN:
		s->has_backlog = 1;
		s->backlog = ti.tcpi_sacked;   /* tcp_get_info: sk_max_ack_backlog for listeners */
		if (ti.tcpi_unacked)
			log_warn("netstate tcp: listener %u has %u connections not yet accepted: "
				 "they are not saved (docs/netstate.md)", s->local ? s->local->port : 0,
				 ti.tcpi_unacked);
		return 0;
	case TCP_SYN_SENT: {
		int seq;
		if (!s->peer) {
			if ((r = diag_peer(fd, (int)s->family, &sa))) {
				log_err("netstate tcp: SYN_SENT socket: destination not found (%s)", strerror(-r));
				return r;
			}
			if (!(s->peer = ns_addr_new(&sa)))
				return -ENOMEM;
		}
		s->conn = malloc(sizeof(*s->conn));
		if (!s->conn)
			return -ENOMEM;
		netstate__tcp_conn__init(s->conn);
		s->conn->state = TCP_SYN_SENT;
		s->conn->sndq.data = malloc(1);
		s->conn->rcvq.data = malloc(1);
		if (!s->conn->sndq.data || !s->conn->rcvq.data)
			return -ENOMEM;
		if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON, "SYN_SENT repair")))
			return r;
		set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "select send queue");
		r = get_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq);
		set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP, "SYN_SENT repair off");
		if (r)
			return r;
		s->conn->has_syn_seq = 1;
		s->conn->syn_seq = (uint32_t)seq - 1;   /* write_seq is ISN + 1 after the SYN */
		s->conn->mss = 0;
		return 0;
	}
	default:
		if (!ns_tcp_repairable(ti.tcpi_state)) {
			log_err("netstate tcp: cannot save a socket in TCP state %u", ti.tcpi_state);
			return -EOPNOTSUPP;
		}
		if (!s->peer)
			return -ENOTCONN;
		s->conn = malloc(sizeof(*s->conn));
		if (!s->conn)
			return -ENOMEM;
		netstate__tcp_conn__init(s->conn);
		return capture_conn(fd, &ti, dg, s, s->conn);
	}
}

int ns_tcp_detach(int fd)
{
	int st = 0;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
		st = ti.tcpi_state;
	if (st == TCP_LISTEN || st == TCP_CLOSE)
		return 0;   /* a listener's close sends nothing to established peers */
	/* Closed in repair mode, tcp_close() → tcp_disconnect() sends no FIN/RST. */
	return set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON, "detach: TCP_REPAIR on");
}

/* One line naming the failed check: the engine reports it with the fd. */
#define BAD() do { log_err("netstate tcp: invalid record (check at %s:%d)", __FILE__, __LINE__); return -EINVAL; } while (0)

int ns_tcp_validate(const Netstate__Socket *s)
{
	const Netstate__TcpConn *c = s->conn;

	if (s->type != SOCK_STREAM || !s->has_tcp_state)
		BAD();
	if (s->rcvq && s->n_rcvq)
		BAD();
	switch (s->tcp_state) {
	case TCP_CLOSE:
		if (c || s->n_pending)
			BAD();
		return 0;
	case TCP_LISTEN:
		if (!s->local || c || !s->has_backlog || s->backlog > 65535 || s->n_pending > NS_MAX_PENDING)
			BAD();
		return 0;
	case TCP_SYN_SENT:
		if (!c || !s->peer || c->state != TCP_SYN_SENT || !c->has_syn_seq)
			BAD();
		return 0;
	default:
		if (!ns_tcp_repairable(s->tcp_state) || !c || c->state != s->tcp_state || !s->local || !s->peer)
			BAD();
	}
	if (c->sndq.len > NS_MAX_QUEUE || c->rcvq.len > NS_MAX_QUEUE || c->unsent_len > c->sndq.len)
		BAD();
	if (c->mss == 0 || c->mss > 65535 || c->snd_wscale > 14 || c->rcv_wscale > 14)
		BAD();
	if (c->opt_mask & ~(uint32_t)(TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE))
		BAD();
	if (c->has_oob && (c->oob_byte > 255 || c->oob_offset > c->rcvq.len))
		BAD();
	if (c->our_fin_acked && !c->our_fin)
		BAD();
	if (c->max_window < c->snd_wnd)
		BAD();
	/* The FIN flags must match the state (they drive how it is rebuilt). */
	switch (s->tcp_state) {
	case TCP_ESTABLISHED: if (c->our_fin || c->peer_fin) BAD(); break;
	case TCP_FIN_WAIT1: if (!c->our_fin || c->our_fin_acked || c->peer_fin) BAD(); break;
	case TCP_FIN_WAIT2: if (!c->our_fin_acked || c->peer_fin) BAD(); break;
	case TCP_CLOSE_WAIT: if (c->our_fin || !c->peer_fin) BAD(); break;
	case TCP_LAST_ACK:
	case TCP_CLOSING: if (!c->our_fin || c->our_fin_acked || !c->peer_fin) BAD(); break;
	}
	return 0;
}

#undef BAD

/* Make room for len queued bytes: a fresh socket's buffer (tcp_rmem[1])
 * is often smaller than an autotuned one held at dump time, and the kernel
 * refuses repair writes beyond it (ENOBUFS/ENOMEM).  Forcing a size locks
 * the buffer; ns_buf_lock_restore() gives autotuning back at the end. */
static void ensure_room(int fd, int queue, size_t len)
{
	int opt = queue == TCP_RECV_QUEUE ? SO_RCVBUF : SO_SNDBUF, cur = 0;
	/* skbs cost about twice their payload (truesize); the kernel doubles
	 * what is set, so len + slack asks for ~2 * len */
	size_t want = len + (256u << 10);

	if (want > (size_t)INT32_MAX / 4)
		want = (size_t)INT32_MAX / 4;
	if (get_int(fd, SOL_SOCKET, opt, &cur) == 0 && (size_t)cur >= 2 * want)
		return;
	int w = (int)want;
	setsockopt(fd, SOL_SOCKET, queue == TCP_RECV_QUEUE ? SO_RCVBUFFORCE : SO_SNDBUFFORCE, &w, sizeof(w));
}

static int repair_send(int fd, int queue, const uint8_t *p, size_t len)
{
	size_t chunk = 1 << 20;
	int r;

	if (!len)
		return 0;
	if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, "select repair queue")))
		return r;
	ensure_room(fd, queue, len);
	while (len) {
		ssize_t n = send(fd, p, len < chunk ? len : chunk, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == ENOMEM || errno == ENOBUFS || errno == EAGAIN) && chunk > 4096) {
			/* Queue memory: a large linear skb may not be allocatable, and the
			 * fresh socket's buffer may be smaller than the saved queue. */
			int cur = 0, want;
			int opt = queue == TCP_RECV_QUEUE ? SO_RCVBUF : SO_SNDBUF;
			get_int(fd, SOL_SOCKET, opt, &cur);
			want = (int)(len > (size_t)INT32_MAX / 4 ? INT32_MAX / 4 : len) * 2 + cur;
			if (errno == EAGAIN || queue == TCP_RECV_QUEUE)
				setsockopt(fd, SOL_SOCKET, queue == TCP_RECV_QUEUE ? SO_RCVBUFFORCE : SO_SNDBUFFORCE,
					   &want, sizeof(want));
			chunk /= 2;
			continue;
		}
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			log_err("netstate tcp restore: write %s queue (%zu bytes left): %s",
				queue == TCP_RECV_QUEUE ? "recv" : "send", len, strerror(e));
			return -e;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int forge_from_peer(const Netstate__Socket *s, uint32_t seq, uint32_t ack, uint8_t flags,
			   const void *data, size_t len, uint16_t urg)
{
	union ns_sockaddr from, to;
	socklen_t l;
	const Netstate__TcpConn *c = s->conn;
	struct ns_tcp_seg seg = {
		.from = &from, .to = &to, .seq = seq, .ack = ack, .flags = flags,
		.window = (uint16_t)((c->snd_wnd >> (c->opt_mask & TCPI_OPT_WSCALE ? c->snd_wscale : 0)) > 65535
				     ? 65535 : c->snd_wnd >> (c->opt_mask & TCPI_OPT_WSCALE ? c->snd_wscale : 0)),
		.urg_ptr = urg, .data = data, .len = len,
	};

	if (ns_addr_to_sockaddr(s->peer, &from, &l) || ns_addr_to_sockaddr(s->local, &to, &l))
		return -EINVAL;
	return ns_inject_tcp(&seg);
}

static int restore_syn_sent(const Netstate__Socket *s, int fd)
{
	union ns_sockaddr peer;
	socklen_t len;
	int r, fl;

	/* Re-send the SYN with the same ISN: a SYN-ACK the peer already sent
	 * for it still matches.  TCP_QUEUE_SEQ needs repair mode, the SYN must
	 * leave with repair off (as CRIU does it). */
	if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON, "SYN_SENT repair")) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "select send queue")) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)s->conn->syn_seq, "SYN_SENT seq")) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP, "SYN_SENT repair off")))
		return r;
	if ((r = ns_opts_apply(fd, s, NS_OPT_AFTER_REPAIR)))
		return r;
	if (ns_addr_to_sockaddr(s->peer, &peer, &len))
		return -EINVAL;
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, &peer.sa, len) < 0 && errno != EINPROGRESS) {
		r = -errno;
		log_err("netstate tcp restore: SYN_SENT connect: %s", strerror(errno));
		return r;
	}
	fcntl(fd, F_SETFL, fl);
	return 0;
}

static int restore_conn(const Netstate__Socket *s, int fd)
{
	const Netstate__TcpConn *c = s->conn;
	union ns_sockaddr peer;
	socklen_t len;
	struct tcp_repair_opt opts[4];
	struct tcp_repair_window win;
	size_t nopt = 0, sent_len = c->sndq.len - c->unsent_len;
	size_t rq_now = c->has_oob ? c->oob_offset : c->rcvq.len;
	uint32_t rcv_start = c->rcv_seq - (uint32_t)c->rcvq.len - (c->has_oob ? 1 : 0);
	uint32_t rcv_nxt_now = rcv_start + (uint32_t)rq_now;
	uint32_t snd_una = c->snd_seq - (uint32_t)c->sndq.len;
	int r;

	if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "select recv queue")) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)rcv_start, "recv queue seq")) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "select send queue")) ||
	    (r = set_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)snd_una, "send queue seq")))
		return r;
	/* Before connect, or mss_cache stays at the 536 default clamp for the
	 * life of the connection (probe-netstate §3 pitfall 1).  TCP_MAXSEG
	 * refuses values above MAX_TCP_WINDOW (32767), which a loopback
	 * connection's MSS (65483 with lo's 64 KiB MTU) exceeds: such a
	 * connection goes on with 32 KiB segments (REPAIR_OPTIONS below still
	 * gives the peer's real MSS clamp). */
	if ((r = set_int(fd, IPPROTO_TCP, TCP_MAXSEG, c->mss > 32767 ? 32767 : (int)c->mss, "TCP_MAXSEG")))
		return r;
	if (ns_addr_to_sockaddr(s->peer, &peer, &len))
		return -EINVAL;
	if (connect(fd, &peer.sa, len) < 0) {   /* repair mode: straight to ESTABLISHED, nothing sent */
		r = -errno;
		log_err("netstate tcp restore: repair connect: %s", strerror(errno));
		return r;
	}
	if (c->opt_mask & TCPI_OPT_WSCALE) {
		opts[nopt].opt_code = TCPOPT_WINDOW;
		opts[nopt++].opt_val = c->snd_wscale | (c->rcv_wscale << 16);
	}
	if (c->opt_mask & TCPI_OPT_TIMESTAMPS) {
		opts[nopt].opt_code = TCPOPT_TIMESTAMP;
		opts[nopt++].opt_val = 0;
	}
	if (c->opt_mask & TCPI_OPT_SACK) {
		opts[nopt].opt_code = TCPOPT_SACK_PERMITTED;
		opts[nopt++].opt_val = 0;
	}
	opts[nopt].opt_code = TCPOPT_MAXSEG;
	opts[nopt++].opt_val = c->mss;
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, (socklen_t)(nopt * sizeof(opts[0]))) < 0) {
		r = -errno;
		log_err("netstate tcp restore: TCP_REPAIR_OPTIONS: %s", strerror(errno));
		return r;
	}
	/* The low bit carries the usec-timestamp flag since 6.7: pass it through. */
	if (c->has_timestamp &&
	    (r = set_int(fd, IPPROTO_TCP, TCP_TIMESTAMP, (int)c->timestamp, "TCP_TIMESTAMP")))
		return r;
	if ((r = repair_send(fd, TCP_RECV_QUEUE, c->rcvq.data, rq_now)) ||
	    (r = repair_send(fd, TCP_SEND_QUEUE, c->sndq.data, sent_len)))
		return r;
	/* Our FIN, when it had been sent: shutdown in repair mode with the send
	 * queue selected queues it as already transmitted.  A FIN after unsent
	 * data is sent by netstate_sock_finish after that data. */
	if (c->our_fin && c->unsent_len == 0) {
		/* The send queue must be the selected one (the receive queue may be,
		 * after its data was written): only then does tcp_write_xmit() mark
		 * the FIN as sent instead of leaving it queued. */
		if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "select send queue")))
			return r;
		if (shutdown(fd, SHUT_WR) < 0) {
			r = -errno;
			log_err("netstate tcp restore: repair shutdown: %s", strerror(errno));
			return r;
		}
	}
	/* REPAIR_WINDOW after the queues: the kernel rejects rcv_wup beyond
	 * rcv_nxt (EINVAL).  Bytes still to come (peer FIN, urgent byte and
	 * what follows it) are not in rcv_nxt yet: move rcv_wup back, keeping
	 * the right edge rcv_wup + rcv_wnd where the peer saw it. */
	win.snd_wl1 = c->snd_wl1;
	win.snd_wnd = c->snd_wnd;
	win.max_window = c->max_window;
	win.rcv_wnd = c->rcv_wnd;
	win.rcv_wup = c->rcv_wup;
	if ((int32_t)(win.rcv_wup - rcv_nxt_now) > 0) {
		win.rcv_wnd += win.rcv_wup - rcv_nxt_now;
		win.rcv_wup = rcv_nxt_now;
	}
	if ((int32_t)(win.snd_wl1 - rcv_nxt_now) > 0)
		win.snd_wl1 = rcv_nxt_now;
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &win, sizeof(win)) < 0) {
		r = -errno;
		log_err("netstate tcp restore: TCP_REPAIR_WINDOW: %s", strerror(errno));
		return r;
	}
	return 0;
}

int ns_tcp_restore(const Netstate__Socket *s, int *fd_out)
{
	union ns_sockaddr local;
	socklen_t len;
	int fd, r;

	fd = socket(s->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	if ((r = ns_opts_apply(fd, s, NS_OPT_BEFORE_BIND)))
		goto fail;
	if (s->tcp_state != TCP_LISTEN && s->tcp_state != TCP_CLOSE &&
	    (r = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON, "TCP_REPAIR on")))
		goto fail;
	if (s->local) {
		if (ns_addr_to_sockaddr(s->local, &local, &len)) {
			r = -EINVAL;
			goto fail;
		}
		if (bind(fd, &local.sa, len) < 0) {
			char b[64];
			r = -errno;
			log_err("netstate tcp restore: bind %s: %s", ns_addr_str(s->local, b, sizeof(b)),
				strerror(errno));
			goto fail;
		}
	}
	switch (s->tcp_state) {
	case TCP_CLOSE:
		break;
	case TCP_LISTEN:
		if (listen(fd, (int)s->backlog) < 0) {
			r = -errno;
			log_err("netstate tcp restore: listen: %s", strerror(errno));
			goto fail;
		}
		break;
	case TCP_SYN_SENT:
		if ((r = restore_syn_sent(s, fd)))
			goto fail;
		break;
	default:
		if ((r = restore_conn(s, fd)))
			goto fail;
	}
	*fd_out = fd;
	return 0;
fail:
	close(fd);
	return r;
}

/* Leave repair mode and re-create what only a live socket can get: the
 * never-sent tail, a FIN after it, and segments "from the peer" (its FIN,
 * the ACK of our FIN, the urgent byte) forged over the loopback route. */
int ns_tcp_finish(const Netstate__Socket *s, int fd)
{
	const Netstate__TcpConn *c = s->conn;
	uint32_t snd_una, rcv_start;
	int r;

	if (!c || s->tcp_state == TCP_SYN_SENT)
		return 0;
	snd_una = c->snd_seq - (uint32_t)c->sndq.len;
	rcv_start = c->rcv_seq - (uint32_t)c->rcvq.len - (c->has_oob ? 1 : 0);
	/* TCP_REPAIR_OFF sends a window probe; the peer answers with an ACK,
	 * which tells the restored side the peer's current state early. */
	if ((r = set_int(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF, "TCP_REPAIR off")))
		return r;
	if ((r = ns_opts_apply(fd, s, NS_OPT_AFTER_REPAIR)))
		return r;
	if (s->has_peek_off && (r = set_int(fd, SOL_SOCKET, SO_PEEK_OFF, s->peek_off, "SO_PEEK_OFF")))
		return r;
	if (c->has_oob) {
		/* The urgent byte and what followed it, as one URG segment: the
		 * kernel only takes an urgent pointer at or after rcv_nxt. */
		size_t off = c->oob_offset, rest = c->rcvq.len - off;
		uint8_t *seg = malloc(rest + 1);

		if (!seg)
			return -ENOMEM;
		seg[0] = (uint8_t)c->oob_byte;
		memcpy(seg + 1, c->rcvq.data + off, rest);
		r = forge_from_peer(s, rcv_start + (uint32_t)off, snd_una, TH_ACK | TH_URG | TH_PUSH,
				    seg, rest + 1, 1);
		free(seg);
		if (r)
			return r;
	}
	if (c->unsent_len) {
		const uint8_t *p = c->sndq.data + c->sndq.len - c->unsent_len;
		size_t left = c->unsent_len;
		int fl = fcntl(fd, F_GETFL);

		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		while (left) {
			ssize_t n = send(fd, p, left, MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN) {
				int want = (int)left * 2, cur = 0;
				get_int(fd, SOL_SOCKET, SO_SNDBUF, &cur);
				want += cur;
				setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want));
				n = send(fd, p, left, MSG_NOSIGNAL);
			}
			if (n <= 0) {
				r = n < 0 ? -errno : -EIO;
				log_err("netstate tcp restore: unsent data (%zu left): %s", left, strerror(-r));
				fcntl(fd, F_SETFL, fl);
				return r;
			}
			p += n;
			left -= (size_t)n;
		}
		fcntl(fd, F_SETFL, fl);
		if (c->our_fin && shutdown(fd, SHUT_WR) < 0)
			return -errno;
	}
	if (c->peer_fin &&
	    (r = forge_from_peer(s, c->rcv_seq, snd_una, TH_FIN | TH_ACK, NULL, 0, 0)))
		return r;
	/* FIN_WAIT2: the peer had acknowledged our FIN. */
	if (c->our_fin_acked &&
	    (r = forge_from_peer(s, c->rcv_seq + (c->peer_fin ? 1 : 0), c->snd_seq + 1, TH_ACK, NULL, 0, 0)))
		return r;
	return ns_buf_lock_restore(fd, s);
}
