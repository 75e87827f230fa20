/*
 * fast.c — capture a pod's established TCP connections in batches, with
 * the socket operations that io_uring can do queued on one ring (one
 * syscall per batch and phase), and the rest read by the BPF reader in one
 * read() (bpf.c) or, without it, as syscalls.
 *
 * Why: a syscall costs ~1.2-2.4 us on this VM and the capture of one
 * connection took ~48 of them (docs/netstate.md, "Figures").  io_uring
 * takes SOL_SOCKET getsockopt, setsockopt at any level (TCP_REPAIR,
 * TCP_REPAIR_QUEUE, SO_OOBINLINE ...), SIOCINQ/SIOCOUTQ and recv with
 * MSG_PEEK (uring.c); IP/TCP-level getsockopt it cannot do: TCP_QUEUE_SEQ,
 * TCP_MAXSEG, TCP_TIMESTAMP, TCP_REPAIR_WINDOW, SIOCOUTQNSD and the options
 * of the table that are not SOL_SOCKET.  The BPF reader computes those
 * values for every socket in repair mode the way the kernel's getsockopt
 * does (bpf/tcpstate.bpf.c); without it (not loaded, or its read failed)
 * they are ~20 syscalls per connection.
 *
 * Phases for a batch of connections (each "ring" is one io_uring_enter, or
 * a few when the ring fills; with the BPF reader the batch is all the
 * connections of the share, without it 16):
 *   BPF:    (sock.c, before pass 0: it also gives kinds and IPv4 addresses)
 *           one iterator read: write_seq, rcv_nxt, copied_seq, snd_una,
 *           snd_nxt, mss_clamp, the clock + tsoffset, the five window
 *           fields and the IP/TCP options of each TCP socket
 *   ring 1: SOL_SOCKET options, SO_PEEK_OFF, urgent-byte peek, SIOCINQ,
 *           SO_OOBINLINE=1, SIOCINQ again, TCP_REPAIR on, receive queue
 *           selected and peeked, send queue selected and peeked
 *   or calls (no BPF): TCP_QUEUE_SEQ (write_seq), TCP_MAXSEG, TCP_TIMESTAMP,
 *           TCP_REPAIR_WINDOW, [SIOCOUTQNSD], the other options;
 *           ring 2: receive queue selected;  calls: TCP_QUEUE_SEQ (rcv_nxt)
 *   ring 3: SIOCINQ, SIOCOUTQ (did anything move?), TCP_REPAIR off (no
 *           window probe), SO_REUSEADDR / SO_PEEK_OFF / SO_OOBINLINE back
 *
 * Exactness (the same record as ns_tcp_capture, which the bench checks):
 * * The peeks need no sizes: a send-queue peek copies the whole queue
 *   under the socket lock (tcp_peek_sndq), a receive-queue peek everything
 *   up to the buffer's end or an urgent mark.  The buffers are sized from
 *   sock_diag's rqueue/wqueue + 1.  The app is frozen: write_seq and
 *   copied_seq stand still, the send queue can only shrink (ACKs), the
 *   receive queue only grow (a pod's loopback connections are not held).
 *   So the send peek is the queue from snd_una to write_seq, and the
 *   receive peek matches rcv_nxt when SIOCINQ in ring 3 equals its length
 *   (rcv_nxt only grows) and it did not fill its buffer.  The BPF read comes
 *   before ring 1: its rcv_nxt - copied_seq (less a FIN) must equal the
 *   receive peek and its write_seq - snd_una (less an unacked FIN) the
 *   send peek; rcv_nxt only grows and snd_una only moves forward, so with
 *   ring 3 equal too nothing moved from the read to ring 3, and its
 *   sequence numbers are those of the peeks.  Window fields and the clock
 *   are read a little earlier than the calls did (both are advisory or
 *   move on; the restored clock continues from the value read).  TCP_MAXSEG
 *   is read as in repair mode (mss_clamp).  A record counts only for a
 *   socket not in repair mode, in the state sock_diag saw.
 * * Unsent bytes (write_seq - snd_nxt) only shrink: snd_nxt only moves
 *   forward (retransmissions do not rewind it).  sock_diag's
 *   tcpi_notsent_bytes == 0 therefore proves 0 now; otherwise SIOCOUTQNSD
 *   (or the BPF reader's write_seq - snd_nxt) is read after the peek
 *   (bytes sent in between count as sent: true).
 * * Urgent data: with SO_OOBINLINE off, SIOCINQ stops at an urgent mark
 *   inside the queue (tcp_inq) and reads the whole queue with it on; equal
 *   values and no pending urgent byte (MSG_OOB peek fails with EINVAL)
 *   prove there is no mark in the queue, so SIOCATMARK is false or
 *   irrelevant (empty queue).
 * Anything else — urgent data, an SO_PEEK_OFF in use, a queue that moved,
 * an error, no io_uring — leaves that connection to ns_tcp_capture (the
 * caller's slow path), after this file has put everything back.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "netstate/bpf_rec.h"
#include "netstate/internal.h"

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif

#define BATCH 16   /* connections per batch without the BPF reader: ~25 ring entries each (ring 1) */

static const int v_one = 1, v_zero = 0, v_repair_on = TCP_REPAIR_ON, v_repair_off = TCP_REPAIR_OFF_NO_WP,
		 v_recvq = TCP_RECV_QUEUE, v_sendq = TCP_SEND_QUEUE;

struct fast {
	size_t i;                 /* index in the caller's arrays */
	int fd;
	const struct ns_diag_sock *dg;
	Netstate__Socket *s;
	struct ns_opt_pre pre;
	int peek_off, peek_off_res, oob_res, inq_plain, inq_inline;
	int inline_get_res, inline_res, on_res, selr_res, sels_res, rpeek, speek, selr2_res;
	int inq_after, outq_after, off_res, reuse_res, peek_back_res, inline_back_res;
	int inline_orig, reuse;
	uint8_t oob, *rbuf, *sbuf;
	size_t rcap, scap;
	uint32_t snd_seq, rcv_seq, ts;
	int mss, unsq;
	struct tcp_repair_window win;
	const struct ns_bpf_rec *rec;   /* the BPF reader's values, or NULL: syscalls */
	bool slow;
};

static int get_int(int fd, int level, int name, int *val)
{
	socklen_t len = sizeof(*val);
	return getsockopt(fd, level, name, val, &len) < 0 ? -errno : 0;
}

static void free_bufs(struct fast *f)
{
	free(f->rbuf);
	free(f->sbuf);
	f->rbuf = f->sbuf = NULL;
}

/* The BPF record of this connection, if it can be used: read before
 * ring 1 (sock.c), so not in repair mode, and in the state sock_diag saw. */
static const struct ns_bpf_rec *usable_rec(const struct fast *f, const struct ns_bpf_buf *bb)
{
	const struct ns_diag_sock *dg = f->dg;
	const struct ns_bpf_rec *b = bb ? ns_bpf_find(bb, f->fd, dg->ino) : NULL;

	if (!b || (b->flags & NS_BPF_REPAIR) || b->state != dg->ti.tcpi_state || (int)b->family != dg->family)
		return NULL;
	return b;
}

/* The SOL_SOCKET options of the table from the BPF record, as
 * sk_getsockopt gives them: not asked on the ring then. */
static void bpf_sock_opts(struct fast *f)
{
	const struct ns_bpf_rec *b = f->rec;
	struct ns_opt_pre *p = &f->pre;
	struct linger lg = { .l_onoff = b->linger_onoff, .l_linger = b->linger };
	struct timeval rt = { .tv_sec = b->rcvtimeo_sec, .tv_usec = b->rcvtimeo_usec };
	struct timeval st = { .tv_sec = b->sndtimeo_sec, .tv_usec = b->sndtimeo_usec };

	p->lock = b->buf_lock;
	p->lock_res = sizeof(int);
	ns_opt_pre_add_int(p, SOL_SOCKET, SO_REUSEADDR, b->reuse);
	ns_opt_pre_add_int(p, SOL_SOCKET, SO_REUSEPORT, b->reuseport);
	ns_opt_pre_add_int(p, SOL_SOCKET, SO_KEEPALIVE, !!(b->sflags & NS_BPF_S_KEEPOPEN));
	ns_opt_pre_add_int(p, SOL_SOCKET, SO_OOBINLINE, !!(b->sflags & NS_BPF_S_URGINLINE));
	ns_opt_pre_add_int(p, SOL_SOCKET, SO_SNDBUF, b->sndbuf);
	ns_opt_pre_add_int(p, SOL_SOCKET, SO_RCVBUF, b->rcvbuf);
	ns_opt_pre_add_int(p, SOL_SOCKET, SO_RCVLOWAT, b->rcvlowat);
	ns_opt_pre_add_int(p, SOL_SOCKET, SO_PRIORITY, b->priority);
	ns_opt_pre_add_int(p, SOL_SOCKET, SO_TIMESTAMP, !!(b->sflags & NS_BPF_S_TIMESTAMP));
	ns_opt_pre_add(p, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	ns_opt_pre_add(p, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt));
	ns_opt_pre_add(p, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof(st));
}

static int ring1(struct ns_ring *r, struct fast *f, const struct ns_bpf_buf *bb)
{
	const struct ns_diag_sock *dg = f->dg;
	int fd = f->fd, e;

	f->rcap = (size_t)dg->rqueue + 1;
	f->scap = (size_t)dg->wqueue + 1;
	if (!(f->rbuf = malloc(f->rcap)) || !(f->sbuf = malloc(f->scap)))
		return -ENOMEM;
	f->peek_off = -1;
	f->inline_orig = 0;
	f->rpeek = 0;
	if ((e = ns_ring_reserve(r, NS_PRE_QUEUE_MAX + 12)))   /* all of this socket's requests in one run */
		return e;
	ns_opt_pre_reset(&f->pre);
	if ((f->rec = usable_rec(f, bb)))
		bpf_sock_opts(f);
	if ((e = ns_opts_queue(r, fd, f->s, dg, &f->pre)) ||
	    (e = ns_ring_getsockopt(r, fd, SO_PEEK_OFF, &f->peek_off, sizeof(int), &f->peek_off_res)) ||
	    (e = ns_ring_recv(r, fd, &f->oob, 1, MSG_OOB | MSG_PEEK, &f->oob_res)) ||
	    (e = ns_ring_inq(r, fd, false, &f->inq_plain)))
		return e;
	/* SO_OOBINLINE on for the capture, only once its value is known (linked) */
	if ((e = ns_ring_getsockopt(r, fd, SO_OOBINLINE, &f->inline_orig, sizeof(int), &f->inline_get_res)))
		return e;
	ns_ring_link_last(r);
	if ((e = ns_ring_setsockopt(r, fd, SOL_SOCKET, SO_OOBINLINE, &v_one, &f->inline_res, false)) ||
	    (e = ns_ring_inq(r, fd, false, &f->inq_inline)))
		return e;
	/* Linked: a peek runs only in repair mode with its queue selected.  A
	 * peek of the receive queue outside repair mode, or of an empty one,
	 * would return (and clear) a pending sk_err when it has nothing to
	 * copy (tcp_recvmsg); so the receive queue is peeked only when
	 * sock_diag saw bytes in it (they cannot go: the app is frozen).  A
	 * queue that was empty then and is not now fails the check of ring 3. */
	if ((e = ns_ring_setsockopt(r, fd, IPPROTO_TCP, TCP_REPAIR, &v_repair_on, &f->on_res, false)))
		return e;
	ns_ring_link_last(r);
	if ((e = ns_ring_setsockopt(r, fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &v_recvq, &f->selr_res, false)))
		return e;
	ns_ring_link_last(r);
	if (dg->rqueue) {
		if ((e = ns_ring_recv(r, fd, f->rbuf, f->rcap, MSG_PEEK, &f->rpeek)))
			return e;
		ns_ring_link_last(r);
	}
	if ((e = ns_ring_setsockopt(r, fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &v_sendq, &f->sels_res, false)))
		return e;
	ns_ring_link_last(r);
	if ((e = ns_ring_recv(r, fd, f->sbuf, f->scap, MSG_PEEK, &f->speek)))
		return e;
	return 0;
}

/* The IP/TCP options of the table from the BPF record, as getsockopt
 * would give them (tcpstate.bpf.c); ns_opts_capture asks no syscall for
 * them then.  One it cannot know exactly is left to getsockopt. */
static void bpf_opts(struct fast *f)
{
	const struct ns_bpf_rec *b = f->rec;
	struct ns_opt_pre *p = &f->pre;

	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_NODELAY, !!(b->flags & NS_BPF_NODELAY));
	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_CORK, !!(b->flags & NS_BPF_CORK));
	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, !!(b->flags & NS_BPF_THIN_LTO));
	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_KEEPIDLE, b->keepidle);
	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_KEEPINTVL, b->keepintvl);
	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_KEEPCNT, b->keepcnt);
	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_USER_TIMEOUT, b->user_timeout);
	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_NOTSENT_LOWAT, b->notsent_lowat);
	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_LINGER2, b->linger2);
	ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_SYNCNT, b->syncnt);
	if (!b->defer_accept_raw)   /* else retrans_to_secs(): left to getsockopt */
		ns_opt_pre_add_int(p, IPPROTO_TCP, TCP_DEFER_ACCEPT, 0);
	if (b->family == AF_INET) {
		ns_opt_pre_add_int(p, IPPROTO_IP, IP_TTL, b->ttl);
		ns_opt_pre_add_int(p, IPPROTO_IP, IP_MTU_DISCOVER, b->pmtudisc);
	} else {
		ns_opt_pre_add_int(p, IPPROTO_IPV6, IPV6_V6ONLY, !!(b->flags & NS_BPF_V6ONLY));
		ns_opt_pre_add_int(p, IPPROTO_IPV6, IPV6_MTU_DISCOVER, b->pmtudisc6);
		/* < 0: the cached route's hop limit (ip6_dst_hoplimit): getsockopt */
		if (b->hop_limit6 >= 0)
			ns_opt_pre_add_int(p, IPPROTO_IPV6, IPV6_UNICAST_HOPS, b->hop_limit6);
	}
}

/* The values the syscalls below would read, from the BPF record (read
 * after ring 1, like them): true, or false when there is no usable record. */
static bool from_bpf(struct fast *f)
{
	const struct ns_diag_sock *dg = f->dg;
	const struct ns_bpf_rec *b = f->rec;   /* usable_rec() in ring 1 */

	if (!b)
		return false;
	f->snd_seq = b->write_seq;        /* TCP_QUEUE_SEQ, send queue */
	f->rcv_seq = b->rcv_nxt;          /* TCP_QUEUE_SEQ, receive queue: no ring 2 */
	f->mss = (int)b->mss_clamp;       /* TCP_MAXSEG in repair mode */
	f->ts = (dg->ti.tcpi_options & TCPI_OPT_TIMESTAMPS) ? b->timestamp : 0;
	f->win.snd_wl1 = b->snd_wl1;
	f->win.snd_wnd = b->snd_wnd;
	f->win.max_window = b->max_window;
	f->win.rcv_wnd = b->rcv_wnd;
	f->win.rcv_wup = b->rcv_wup;
	f->unsq = (int)(b->write_seq - b->snd_nxt);   /* SIOCOUTQNSD */
	bpf_opts(f);
	return true;
}

/* After ring 1: can the batch vouch for this connection?  Then the values
 * from the BPF record (bb), or the syscall part (send queue selected,
 * repair on). */
static void direct1(struct fast *f)
{
	const struct ns_diag_sock *dg = f->dg;
	socklen_t len;
	int fd = f->fd;

	f->reuse = 0;
	ns_opt_pre_int(&f->pre, SOL_SOCKET, SO_REUSEADDR, &f->reuse);
	if (f->on_res || f->selr_res || f->sels_res || f->inline_res || f->rpeek < 0 || f->speek < 0 ||
	    (size_t)f->rpeek >= f->rcap || (size_t)f->speek >= f->scap ||
	    f->oob_res != -EINVAL ||                               /* urgent data pending (or not yet in) */
	    (f->peek_off_res >= (int)sizeof(int) && f->peek_off >= 0) ||   /* reads start at an offset */
	    f->inq_plain < 0 || f->inq_inline < 0 || (!f->inline_orig && f->inq_plain != f->inq_inline)) {
		f->slow = true;
		return;
	}
	if (from_bpf(f))
		return;
	if (get_int(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int *)&f->snd_seq) ||
	    get_int(fd, IPPROTO_TCP, TCP_MAXSEG, &f->mss)) {
		f->slow = true;
		return;
	}
	len = sizeof(f->ts);
	/* kept only with the timestamps option: else not asked */
	if (!(dg->ti.tcpi_options & TCPI_OPT_TIMESTAMPS) ||
	    getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &f->ts, &len) < 0)
		f->ts = 0;
	len = sizeof(f->win);
	if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &f->win, &len) < 0) {
		f->slow = true;
		return;
	}
	f->unsq = 0;
	if ((!dg->has_notsent || dg->notsent) && ioctl(fd, SIOCOUTQNSD, &f->unsq) < 0)
		f->slow = true;
}

/* Ring 3, or the same as syscalls when the ring failed (r NULL): measure
 * again, then undo what ring 1 changed (only what it did change). */
static void put_back(struct ns_ring *r, struct fast *f)
{
	int fd = f->fd;

	if (r && !f->slow) {
		ns_ring_inq(r, fd, false, &f->inq_after);
		ns_ring_inq(r, fd, true, &f->outq_after);
	}
	if (f->on_res == 0) {
		if (r)
			ns_ring_setsockopt(r, fd, IPPROTO_TCP, TCP_REPAIR, &v_repair_off, &f->off_res, false);
		else
			f->off_res = setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &v_repair_off, sizeof(int)) ? -errno : 0;
		/* repair on/off force sk_reuse (net/ipv4/tcp.c) */
		if (f->reuse) {
			if (r)
				ns_ring_setsockopt(r, fd, SOL_SOCKET, SO_REUSEADDR, &f->reuse, &f->reuse_res, false);
			else
				f->reuse_res = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &f->reuse, sizeof(int)) ? -errno : 0;
		}
	}
	/* a receive peek moved a peek offset in use */
	if (f->peek_off_res >= (int)sizeof(int) && f->peek_off >= 0 && f->rpeek != -ECANCELED) {
		if (r)
			ns_ring_setsockopt(r, fd, SOL_SOCKET, SO_PEEK_OFF, &f->peek_off, &f->peek_back_res, false);
		else
			f->peek_back_res = setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &f->peek_off, sizeof(int)) ? -errno : 0;
	}
	if (f->inline_res == 0 && !f->inline_orig) {
		if (r)
			ns_ring_setsockopt(r, fd, SOL_SOCKET, SO_OOBINLINE, &v_zero, &f->inline_back_res, false);
		else
			f->inline_back_res = setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &v_zero, sizeof(int)) ? -errno : 0;
	}
}

static int set_addrs(Netstate__Socket *s, const struct ns_diag_sock *dg)
{
	const union ns_sockaddr *l = &dg->local;

	if ((l->sa.sa_family == AF_INET ? l->in4.sin_port : l->in6.sin6_port) != 0 &&
	    !(s->local = ns_addr_new(l)))
		return -ENOMEM;
	if (!(s->peer = ns_addr_new(&dg->peer)))
		return -ENOMEM;
	return 0;
}

/* The record, as ns_tcp_capture would have made it; or slow. */
static int finish(struct fast *f)
{
	Netstate__Socket *s = f->s;
	Netstate__TcpConn *c;
	const struct tcp_info *ti = &f->dg->ti;
	int r;

	if (f->off_res) {
		log_err("netstate tcp capture: TCP_REPAIR off: %s", strerror(-f->off_res));
		return f->off_res;
	}
	if (f->reuse_res || f->peek_back_res || f->inline_back_res)
		log_err("netstate tcp capture: SO_REUSEADDR/SO_PEEK_OFF/SO_OOBINLINE back: %s",
			strerror(-(f->reuse_res ? f->reuse_res : f->peek_back_res ? f->peek_back_res : f->inline_back_res)));
	if (f->slow)
		return 0;
	if (!(c = malloc(sizeof(*c))))
		return -ENOMEM;
	netstate__tcp_conn__init(c);
	ns_tcp_fin_flags(c, ti->tcpi_state);
	int fin_unacked = c->our_fin && !c->our_fin_acked;
	/* Our FIN occupies a sequence number counted by SIOCOUTQ (and by the
	 * unsent count while unsent) but is no byte of the queue. */
	if (fin_unacked && f->unsq > 0)
		f->unsq--;
	/* With the BPF record (read before ring 1): its queue ends must be the
	 * peeked ones, so nothing moved between it and the peeks either. */
	const struct ns_bpf_rec *b = f->rec;
	bool bpf_moved = b && (b->rcv_nxt - b->copied_seq - (c->peer_fin ? 1u : 0u) != (uint32_t)f->rpeek ||
			       b->write_seq - b->snd_una != (uint32_t)(f->speek + fin_unacked));
	if (f->inq_after != f->rpeek || f->outq_after != f->speek + fin_unacked || f->unsq > f->speek || bpf_moved) {
		free(c);   /* something moved after sock_diag looked: measure on its own */
		f->slow = true;
		return 0;
	}
	s->has_tcp_state = 1;
	s->tcp_state = ti->tcpi_state;
	if ((r = set_addrs(s, f->dg))) {
		free(c);
		return r;
	}
	s->conn = c;
	c->snd_seq = f->snd_seq - (c->our_fin ? 1 : 0);
	c->rcv_seq = f->rcv_seq - (c->peer_fin ? 1 : 0);
	c->sndq.data = f->sbuf;
	c->sndq.len = (size_t)f->speek;
	c->unsent_len = (uint32_t)f->unsq;
	c->rcvq.data = f->rbuf;
	c->rcvq.len = (size_t)f->rpeek;
	f->sbuf = f->rbuf = NULL;
	c->mss = (uint32_t)f->mss;
	if (ti->tcpi_options & TCPI_OPT_TIMESTAMPS) {
		c->has_timestamp = 1;
		c->timestamp = f->ts;
	}
	c->opt_mask = ti->tcpi_options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
	c->has_snd_wscale = c->has_rcv_wscale = 1;
	c->snd_wscale = ti->tcpi_snd_wscale;
	c->rcv_wscale = ti->tcpi_rcv_wscale;
	c->snd_wl1 = f->win.snd_wl1;
	c->snd_wnd = f->win.snd_wnd;
	c->max_window = f->win.max_window;
	c->rcv_wnd = f->win.rcv_wnd;
	c->rcv_wup = f->win.rcv_wup;
	return 0;
}

static Netstate__Socket *new_sock(const struct ns_diag_sock *dg)
{
	Netstate__Socket *s = malloc(sizeof(*s));

	if (!s)
		return NULL;
	netstate__socket__init(s);
	s->family = (uint32_t)dg->family;
	s->type = SOCK_STREAM;
	s->protocol = IPPROTO_TCP;
	return s;
}

/* One batch: out[f->i] set for the connections it could vouch for. */
static int batch(struct ns_ring **rp, const struct ns_bpf_buf *bb, struct fast *fs, size_t n, Netstate__Socket **out)
{
	struct ns_ring *r = *rp;
	int err = 0;
	size_t k;

	for (k = 0; k < n && !err; k++)
		if (!(fs[k].s = new_sock(fs[k].dg)))
			err = -ENOMEM;
	/* ring 1 */
	for (k = 0; k < n && !err; k++) {
		struct fast *f = &fs[k];

		f->slow = false;
		f->off_res = f->reuse_res = f->peek_back_res = f->inline_back_res = 0;
		err = ring1(r, f, bb);
	}
	if (!err)
		err = ns_ring_run(r);
	else
		ns_ring_run(r);   /* what is queued runs, so it can be undone */
	if (err) {
		*rp = NULL;   /* the caller closes it; nothing more goes through it */
		r = NULL;
	}
	for (k = 0; k < n; k++) {
		struct fast *f = &fs[k];

		if (err) {
			f->slow = true;
			continue;
		}
		direct1(f);
		if (!f->slow) {
			int e = ns_opts_capture(f->fd, f->s, f->dg, &f->pre, f->dg->file_flags);
			if (e)
				f->slow = true;   /* the slow path meets it again and reports it */
		}
		if (!f->slow && !f->rec)
			ns_ring_setsockopt(r, f->fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &v_recvq, &f->selr2_res, false);
	}
	/* ring 2 */
	if (r && ns_ring_run(r) < 0) {
		*rp = NULL;
		r = NULL;
		for (k = 0; k < n; k++)
			fs[k].slow = true;
	}
	for (k = 0; k < n; k++) {
		struct fast *f = &fs[k];

		if (!f->slow && !f->rec && (f->selr2_res || get_int(f->fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int *)&f->rcv_seq)))
			f->slow = true;
		put_back(r, f);
	}
	/* ring 3 */
	if (r && ns_ring_run(r) < 0) {
		*rp = NULL;
		r = NULL;
		for (k = 0; k < n; k++) {
			struct fast *f = &fs[k];

			/* undo by syscalls what the failed ring may not have undone */
			f->slow = true;
			put_back(NULL, f);
		}
	}
	for (k = 0; k < n; k++) {
		struct fast *f = &fs[k];
		int e = fs[k].s ? finish(f) : 0;

		if (e && !err)
			err = e;
		if (!e && !f->slow) {
			out[f->i] = f->s;
			f->s = NULL;
		}
		netstate_sock_free(f->s);
		f->s = NULL;
		free_bufs(f);
	}
	return err;
}

int ns_fast_capture(struct ns_ring *r, const struct ns_bpf_buf *bb, const int *fd, struct ns_diag_sock *e,
		    const size_t *idx, size_t n, Netstate__Socket **out)
{
	/* With the BPF reader, one batch: one iterator read for all (ring 1
	 * still runs in pieces of what the ring holds). */
	size_t bs = bb ? n : BATCH;
	struct fast *fs = calloc(bs, sizeof(*fs));
	int err = 0;

	if (!fs)
		return 0;   /* all of them one by one */
	for (size_t done = 0; done < n && r && !err; done += bs) {
		size_t m = n - done < bs ? n - done : bs;

		for (size_t k = 0; k < m; k++) {
			memset(&fs[k], 0, sizeof(fs[k]));
			fs[k].i = idx[done + k];
			fs[k].fd = fd[fs[k].i];
			fs[k].dg = &e[fs[k].i];
			/* "did not run": nothing to undo for a socket a failed batch never reached */
			fs[k].on_res = fs[k].inline_res = fs[k].peek_off_res = fs[k].rpeek = fs[k].speek = -ECANCELED;
		}
		err = batch(&r, bb, fs, m, out);
	}
	free(fs);
	return err;
}
