/*
 * bpf_rec.h — the record the BPF reader (bpf/tcpstate.bpf.c) writes for
 * each TCP socket of the reading process, and bpf.c parses.  Shared by the
 * BPF program (clang -target bpf) and user space: plain C types only, the
 * same sizes on both (checked by a static assert in bpf.c).
 *
 * Every value is what the getsockopt/ioctl named in its comment returns,
 * computed the way the kernel computes it (citations in tcpstate.bpf.c),
 * or the raw field where user space finishes the job.
 */
#ifndef ZAPC_NETSTATE_BPF_REC_H
#define ZAPC_NETSTATE_BPF_REC_H

#define NS_BPF_REC_MAGIC 0x7a6e7303u   /* "zns" v3: changes with the layout */

/* flags */
#define NS_BPF_REPAIR      0x1u    /* tp->repair */
#define NS_BPF_NODELAY     0x2u    /* TCP_NODELAY */
#define NS_BPF_CORK        0x4u    /* TCP_CORK */
#define NS_BPF_THIN_LTO    0x8u    /* TCP_THIN_LINEAR_TIMEOUTS */
#define NS_BPF_V6ONLY      0x10u   /* IPV6_V6ONLY */
#define NS_BPF_USEC_TS     0x40u   /* tp->tcp_usec_ts */

struct ns_bpf_rec {
	unsigned int magic;
	int fd;                       /* in the reading process */
	unsigned long long ino;       /* the socket inode (fstat st_ino) */
	unsigned int family, state, flags, repair_queue;
	unsigned int write_seq;       /* TCP_QUEUE_SEQ, send queue */
	unsigned int rcv_nxt;         /* TCP_QUEUE_SEQ, receive queue */
	unsigned int snd_nxt;         /* SIOCOUTQNSD = write_seq - snd_nxt */
	unsigned int snd_una;
	unsigned int snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup;   /* TCP_REPAIR_WINDOW */
	unsigned int mss_clamp;       /* TCP_MAXSEG in repair mode */
	unsigned int copied_seq;      /* rcv_nxt - copied_seq = SIOCINQ (+ a FIN) */
	unsigned int rcv_saddr, saddr, daddr;   /* IPv4 getsockname/getpeername (network order) */
	unsigned short sport, dport;  /* network order */
	unsigned int timestamp;       /* TCP_TIMESTAMP */
	int keepidle, keepintvl, keepcnt;   /* TCP_KEEPIDLE/KEEPINTVL (s), TCP_KEEPCNT */
	int syncnt, linger2, user_timeout, notsent_lowat;
	int defer_accept_raw;         /* rskq_defer_accept (retransmits; 0 is 0 s) */
	int ttl, pmtudisc;            /* IP_TTL, IP_MTU_DISCOVER (IPv4) */
	int hop_limit6, pmtudisc6;    /* np->hop_limit (raw: < 0 is "the route's"), IPV6_MTU_DISCOVER */
	/* SOL_SOCKET, as sk_getsockopt gives them */
	int reuse, reuseport, sndbuf, rcvbuf, rcvlowat, priority, buf_lock;
	int linger_onoff, linger;     /* SO_LINGER */
	unsigned int sflags;          /* NS_BPF_S_* */
	long long rcvtimeo_sec, rcvtimeo_usec, sndtimeo_sec, sndtimeo_usec;   /* SO_RCVTIMEO/SNDTIMEO (old timeval) */
};
#define NS_BPF_S_KEEPOPEN  0x1u   /* SO_KEEPALIVE */
#define NS_BPF_S_URGINLINE 0x2u   /* SO_OOBINLINE */
#define NS_BPF_S_TIMESTAMP 0x4u   /* SO_TIMESTAMP (old) */

#endif
