/*
 * internal.h — what the files of netstate/ share; not for other modules.
 */
#ifndef ZAPC_NETSTATE_INTERNAL_H
#define ZAPC_NETSTATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/io_uring.h>
#include "netstate/netstate.h"

/* Limits on what an image may ask for (sockets are buffers of at most a few MB). */
#define NS_MAX_QUEUE      (64u << 20)   /* bytes in one TCP queue */
#define NS_MAX_DGRAMS     65536u        /* datagrams in one UDP queue */
#define NS_MAX_DGRAM_LEN  65535u
#define NS_MAX_PENDING    4096u         /* not-yet-accepted connections of a listener */
#define NS_MAX_OPTS       64u

union ns_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;   /* the largest: TCP and UDP over IP only */
};

/* diag.c — what capture knows of one socket before asking it: its kind,
 * the addresses (getsockname/getpeername done once) and what sock_diag
 * answered for it (valid: tcp_info and the rest came back). */
struct ns_diag_sock {
	uint64_t ino;
	int family, type, protocol;
	union ns_sockaddr local, peer;
	bool named;                      /* getsockname/getpeername were called */
	bool has_local, has_peer;        /* ... and succeeded */
	bool ask, valid;                 /* ask sock_diag; it answered */
	uint32_t mark, ifindex;
	uint8_t tos, tclass;
	char cong[16];
	struct tcp_info ti;
	unsigned has_ti : 1, has_tos : 1, has_tclass : 1, has_cong : 1, has_mark : 1, has_sockopt : 1;
	unsigned recverr : 1, freebind : 1, transparent : 1;
	uint32_t rqueue, wqueue;         /* idiag_rqueue/wqueue: rcv_nxt - copied_seq, write_seq - snd_una */
	uint32_t notsent;                /* tcpi_notsent_bytes: write_seq - snd_nxt */
	bool has_notsent;
	int file_flags;                  /* O_NONBLOCK known to the caller (fdinfo), or -1 */
};
/* netns.c: count sockets made in netns_fd (-1: the caller's), the thread
 * back in its own netns after: 0, or -errno and every fds[k] -1. */
int ns_sockets_in(int netns_fd, int domain, int type, int protocol, int *fds, int count);

/* count sock_diag sockets in netns_fd (-1: the caller's): 0, or -errno
 * (logged) and every nl[k] -1. */
int ns_diag_open(int netns_fd, int *nl, int count);
/* Reply buffers (~74 KiB, touched when made: reuse them). */
struct ns_diag_bufs;
struct ns_diag_bufs *ns_diag_bufs_new(void);
/* Fill what sock_diag knows for each e[i] with ask (one round trip per 64). */
int ns_diag_ask(int nl, struct ns_diag_bufs *b, struct ns_diag_sock *e, size_t n);

/* addr.c */
Netstate__Addr *ns_addr_new(const union ns_sockaddr *sa);
int ns_addr_to_sockaddr(const Netstate__Addr *a, union ns_sockaddr *sa, socklen_t *len);
const char *ns_addr_str(const Netstate__Addr *a, char *buf, size_t len);
int ns_addr_validate(const Netstate__Addr *a, uint32_t family);

/* uring.c — a minimal io_uring for batches of socket operations.  Each
 * request's result (bytes, 0 or -errno) is stored in *res when the batch
 * runs (sticky: only a first error is stored, *res must start at 0). */
struct ns_ring {
	int fd;
	unsigned entries, cq_entries, queued, sq_mask, cq_mask;
	unsigned *sq_tail, *sq_array, *cq_head, *cq_tail;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *ring;
	size_t ring_len, sqes_len;
	bool broken;     /* an io_uring_enter failed: not to be used again */
	struct io_uring_sqe *last;
};
int ns_ring_open(struct ns_ring *r, unsigned entries);
void ns_ring_close(struct ns_ring *r);
void ns_ring_touch(struct ns_ring *r);
struct io_uring_sqe *ns_ring_sqe(struct ns_ring *r, int *res, bool sticky);
int ns_ring_run(struct ns_ring *r);
/* Room for n more requests in this submission (runs what is queued if not):
 * a linked chain must not be cut by a run in its middle. */
int ns_ring_reserve(struct ns_ring *r, unsigned n);
/* The request queued last runs only if it succeeds, the next one only after it. */
void ns_ring_link_last(struct ns_ring *r);   /* submit what is queued, wait for all of it */
int ns_ring_getsockopt(struct ns_ring *r, int fd, int name, void *val, int len, int *res);   /* SOL_SOCKET */
int ns_ring_setsockopt(struct ns_ring *r, int fd, int level, int name, const int *val, int *res, bool sticky);
int ns_ring_inq(struct ns_ring *r, int fd, bool outq, int *res);   /* SIOCINQ / SIOCOUTQ */
int ns_ring_recv(struct ns_ring *r, int fd, void *buf, size_t len, int flags, int *res);   /* + MSG_DONTWAIT */

/* sockopt.c — SOL_SOCKET options read ahead through io_uring (the only
 * level io_uring's getsockopt takes). */
#define NS_PRE_MAX 40         /* the SOL_SOCKET ones read ahead + up to 17 from the BPF reader */
#define NS_PRE_QUEUE_MAX 20   /* of them read ahead on the ring */
#define NS_OPT_TABLE_MAX 64   /* entries in sockopt.c's table, at most */
struct ns_opt_pre {
	uint8_t at[NS_OPT_TABLE_MAX];    /* table index -> o[] index + 1; 0: not known */
	int n;
	int lock, lock_res;              /* SO_BUF_LOCK: value, bytes or -errno */
	struct { int res; uint8_t idx; char val[16]; } o[NS_PRE_MAX];   /* val: an int, struct linger or timeval */
};
/* pre->n and pre->lock_res say what is known already (pre->n = 0 and
 * lock_res = -1 for nothing): that is not queued again. */
int ns_opts_queue(struct ns_ring *r, int fd, const Netstate__Socket *s, const struct ns_diag_sock *dg,
		  struct ns_opt_pre *pre);
/* Nothing known yet. */
void ns_opt_pre_reset(struct ns_opt_pre *pre);
/* An int option read ahead: 0, or -ENOENT. */
int ns_opt_pre_int(const struct ns_opt_pre *pre, int level, int name, int *val);
/* Add an int option's value known otherwise (the BPF reader): 0, or
 * -ENOSPC / -ENOENT (not in the table: asked by getsockopt then). */
int ns_opt_pre_add_int(struct ns_opt_pre *pre, int level, int name, int val);
int ns_opt_pre_add(struct ns_opt_pre *pre, int level, int name, const void *val, int len);

/* sockopt.c — phases of ns_opts_apply */
enum ns_opt_phase { NS_OPT_BEFORE_BIND, NS_OPT_AFTER_REPAIR };
/* pre (may be NULL): options already read; file_flags: O_NONBLOCK known, or -1 to ask. */
int ns_opts_capture(int fd, Netstate__Socket *s, const struct ns_diag_sock *dg, const struct ns_opt_pre *pre,
		    int file_flags);
int ns_buf_lock_restore(int fd, const Netstate__Socket *s);
int ns_opts_apply(int fd, const Netstate__Socket *s, enum ns_opt_phase phase);
int ns_opts_validate(const Netstate__Socket *s);
int ns_opt_get_int(const Netstate__Socket *s, int level, int name, int *val);

/* tcp.c */
int ns_tcp_capture(int fd, Netstate__Socket *s, const struct ns_diag_sock *dg);
bool ns_tcp_repairable(unsigned state);
void ns_tcp_fin_flags(Netstate__TcpConn *c, unsigned state);
int ns_tcp_validate(const Netstate__Socket *s);
int ns_tcp_restore(const Netstate__Socket *s, int *fd_out);
int ns_tcp_finish(const Netstate__Socket *s, int fd);
int ns_tcp_detach(int fd);

/* bpf.c — the BPF reader (docs/netstate.md, "BPF reader").  A buffer of
 * records (struct ns_bpf_rec, bpf_rec.h) of every TCP socket this process
 * holds. */
struct ns_bpf_rec;
struct ns_bpf_buf {
	void *data;
	size_t len, cap;
};
/* Load and attach once (idempotent, thread-safe): 0, or -ENOTSUP (why was logged once). */
int ns_bpf_prepare(void);
/* Loaded already (a capture never loads it: ~0.1 s, it would be spent
 * with the pod frozen)?  0, or -ENOTSUP. */
int ns_bpf_ready(void);
/* Grow (and touch) b to cap bytes. */
int ns_bpf_buf_init(struct ns_bpf_buf *b, size_t cap);
/* Read every record now: their count, or -errno (logged; use syscalls). */
int ns_bpf_read(struct ns_bpf_buf *b);
/* The record of fd (and socket inode ino, when not 0), or NULL. */
const struct ns_bpf_rec *ns_bpf_find(const struct ns_bpf_buf *b, int fd, uint64_t ino);

/* fast.c — established connections of e[idx[0..n)] (sock_diag answered for
 * them) in batches through io_uring r, with the BPF reader's records in bb
 * when it is there (NULL: syscalls).  out[idx[k]] is set for each one the
 * batch could vouch for; the others stay NULL, untouched, for
 * ns_tcp_capture.  0, or -errno (logged) when a socket could not be put back. */
int ns_fast_capture(struct ns_ring *r, const struct ns_bpf_buf *bb, const int *fd, struct ns_diag_sock *e,
		    const size_t *idx, size_t n, Netstate__Socket **out);

/* udp.c */
int ns_udp_capture(int fd, Netstate__Socket *s);
int ns_udp_validate(const Netstate__Socket *s);
int ns_udp_restore(const Netstate__Socket *s, int *fd_out);

/* inject.c — forge a packet "from the peer" into the local stack (loopback
 * route, so the pod's hold does not see it).  TCP flags as in the header. */
struct ns_tcp_seg {
	const union ns_sockaddr *from, *to;
	uint32_t seq, ack;
	uint8_t flags;            /* TH_FIN | TH_ACK | TH_URG ... */
	uint16_t window;
	uint16_t urg_ptr;
	const void *data;
	size_t len;
};
int ns_inject_tcp(const struct ns_tcp_seg *seg);
int ns_inject_udp(const union ns_sockaddr *from, const union ns_sockaddr *to,
		  const void *data, size_t len);

/* rules.c */
int ns_rules_apply(int netns_fd, unsigned queue_num, enum netstate_hold_mode mode, int bypass);
/* flush: the rules go, their chains (hooks) stay; remove: the tables go.
 * Removing with packets still queued drops them (rules.c). */
int ns_rules_flush(int netns_fd);
int ns_rules_remove(int netns_fd);
/* a bound NETLINK_NETFILTER socket made in netns_fd (-1: here); NULL + errno */
struct mnl_socket;
struct mnl_socket *ns_nfnl_socket(int netns_fd);

#endif
