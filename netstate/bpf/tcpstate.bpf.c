/*
 * tcpstate.bpf.c — BPF iterator over the reading process's open files
 * (SEC "iter/task_file", filtered to one process when attached): for each
 * TCP socket, one struct ns_bpf_rec (netstate/bpf_rec.h) with the values
 * the IP/TCP-level getsockopt calls and SIOCOUTQNSD of a capture would
 * return.  One read() of the iterator replaces ~20 syscalls per connection
 * (netstate/fast.c).  Loaded and read by netstate/bpf.c.
 *
 * Why task_file and not iter/tcp: the tcp iterator walks the whole
 * established and listening hash tables (shared by every netns unless
 * net.ipv4.tcp_child_ehash_entries was set before the netns was made:
 * 262144 buckets here, ~1.5 ms), and only in the netns of the process that
 * creates the iterator fd (docs/netstate.md, "BPF reader").  The capture
 * already holds an fd for every socket: walking our own fd table finds
 * exactly those, in any netns, by fd number.
 *
 * CO-RE: the kernel structures below are minimal declarations with
 * preserve_access_index; libbpf relocates every field access against the
 * running kernel's BTF (/sys/kernel/btf/vmlinux), so no vmlinux.h (nor
 * bpftool) is needed to build.  A field that does not exist fails the load
 * (and the capture falls back to syscalls).
 *
 * Kernel semantics mirrored (Linux 6.18): do_tcp_getsockopt in
 * net/ipv4/tcp.c, do_ip_getsockopt in net/ipv4/ip_sockglue.c,
 * do_ipv6_getsockopt in net/ipv6/ipv6_sockglue.c, tcp_ioctl SIOCOUTQNSD.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "netstate/bpf_rec.h"

#define PAI __attribute__((preserve_access_index))

struct seq_file;
struct bpf_iter_meta { struct seq_file *seq; } PAI;
struct inode { unsigned long i_ino; } PAI;
struct file { struct inode *f_inode; } PAI;
struct task_struct;
struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	__u32 fd;
	struct file *file;
} PAI;

struct netns_ipv4 {
	__u8 sysctl_ip_default_ttl;
	int sysctl_tcp_keepalive_time;
	int sysctl_tcp_keepalive_intvl;
	__u8 sysctl_tcp_keepalive_probes;
	__u8 sysctl_tcp_syn_retries;
	int sysctl_tcp_fin_timeout;
} PAI;
struct net { struct netns_ipv4 ipv4; } PAI;
typedef struct { struct net *net; } possible_net_t;
struct sock_common {
	__u32 skc_daddr, skc_rcv_saddr;
	__u16 skc_dport;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	unsigned char skc_reuse : 4;
	unsigned char skc_reuseport : 1;
	unsigned char skc_ipv6only : 1;
	possible_net_t skc_net;
	unsigned long skc_flags;
} PAI;
struct sock {
	struct sock_common __sk_common;
	__u8 sk_userlocks;
	int sk_rcvbuf, sk_sndbuf, sk_rcvlowat;
	long sk_rcvtimeo, sk_sndtimeo;
	__u32 sk_priority;
	unsigned long sk_lingertime;
} PAI;
enum sock_flags { SOCK_URGINLINE = 2, SOCK_KEEPOPEN = 3, SOCK_LINGER = 4, SOCK_RCVTSTAMP = 11,
		  SOCK_RCVTSTAMPNS = 12, SOCK_TSTAMP_NEW = 26 };
struct socket { struct sock *sk; } PAI;
struct ipv6_pinfo { __s16 hop_limit; __u8 pmtudisc; } PAI;
struct inet_sock {
	struct sock sk;
	struct ipv6_pinfo *pinet6;
	__u32 inet_saddr;
	__u16 inet_sport;
	__s16 uc_ttl;
	__u8 pmtudisc;
} PAI;
struct request_sock_queue { __u8 rskq_defer_accept; } PAI;
struct inet_connection_sock {
	struct inet_sock icsk_inet;
	struct request_sock_queue icsk_accept_queue;
	__u8 icsk_syn_retries;
	__u32 icsk_user_timeout;
} PAI;
struct tcp_options_received { __u16 user_mss; __u16 mss_clamp; } PAI;
struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u32 max_window, notsent_lowat, tsoffset, snd_wnd, mss_cache, snd_wl1, write_seq;
	__u32 rcv_nxt, copied_seq, snd_nxt, snd_una, rcv_wnd, rcv_wup;
	__u8 repair : 1, tcp_usec_ts : 1;
	__u8 nonagle : 4;
	__u8 thin_lto : 1;
	__u8 repair_queue, keepalive_probes;
	struct tcp_options_received rx_opt;
	unsigned int keepalive_time, keepalive_intvl;
	int linger2;
} PAI;

extern int CONFIG_HZ __kconfig;

#define SOCK_BUF_LOCK_MASK 3   /* SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK */
#define MAX_SCHEDULE_TIMEOUT 0x7fffffffffffffffL
#define AF_INET 2
#define AF_INET6 10
#define TCP_NAGLE_OFF 1    /* include/net/tcp.h */
#define TCP_NAGLE_CORK 2

char LICENSE[] SEC("license") = "GPL";

/* sock_flag(sk, flag); the bit numbers relocated (enum sock_flags is named) */
#define SK_FLAG(fl, name) (!!((fl) & (1UL << bpf_core_enum_value(enum sock_flags, name))))

/* sock_get_timeout(), old timeval: 0 for "none", else jiffies in s + us */
static __always_inline void timeo(long t, int hz, long long *sec, long long *usec)
{
	if (t == MAX_SCHEDULE_TIMEOUT || t < 0) {
		*sec = *usec = 0;
		return;
	}
	*sec = (long long)((unsigned long)t / (unsigned)hz);
	*usec = (long long)(((unsigned long)t % (unsigned)hz) * 1000000UL / (unsigned)hz);
}

/* C's int division (toward zero): the BPF ISA clang 14 targets has only an
 * unsigned one. */
static __always_inline int div_int(int a, int b)
{
	return a < 0 ? -(int)((unsigned)-a / (unsigned)b) : (int)((unsigned)a / (unsigned)b);
}

SEC("iter/task_file")
int ns_tcpstate(struct bpf_iter__task_file *ctx)
{
	struct file *file = ctx->file;
	struct ns_bpf_rec r = {};
	struct tcp_sock *tp;
	struct socket *sock;
	struct sock *sk;
	struct net *net;
	__u64 now;
	int hz = CONFIG_HZ, v;

	if (!file)
		return 0;
	sock = bpf_sock_from_file(file);   /* NULL unless a socket */
	if (!sock || !(sk = sock->sk))
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);    /* NULL unless a full TCP socket */
	if (!tp)
		return 0;
	r.family = sk->__sk_common.skc_family;
	if ((r.family != AF_INET && r.family != AF_INET6) || hz <= 0)
		return 0;
	r.magic = NS_BPF_REC_MAGIC;
	r.fd = (int)ctx->fd;
	r.ino = file->f_inode->i_ino;
	r.state = sk->__sk_common.skc_state;
	net = sk->__sk_common.skc_net.net;

	if (BPF_CORE_READ_BITFIELD_PROBED(tp, repair))
		r.flags |= NS_BPF_REPAIR;
	r.repair_queue = tp->repair_queue;
	/* TCP_QUEUE_SEQ: write_seq (send queue) or rcv_nxt (receive queue) */
	r.write_seq = tp->write_seq;
	r.rcv_nxt = tp->rcv_nxt;
	/* tcp_ioctl SIOCOUTQNSD: write_seq - snd_nxt (user space subtracts) */
	r.snd_nxt = tp->snd_nxt;
	r.snd_una = tp->snd_una;
	/* TCP_REPAIR_WINDOW: the five fields as they are */
	r.snd_wl1 = tp->snd_wl1;
	r.snd_wnd = tp->snd_wnd;
	r.max_window = tp->max_window;
	r.rcv_wnd = tp->rcv_wnd;
	r.rcv_wup = tp->rcv_wup;
	/* TCP_MAXSEG in repair mode (the capture reads it there): mss_clamp */
	r.mss_clamp = tp->rx_opt.mss_clamp;
	r.copied_seq = tp->copied_seq;
	/* inet_getname: the peer is daddr:dport; we are rcv_saddr (saddr when
	 * 0):sport (user space applies its ENOTCONN rule) */
	r.rcv_saddr = sk->__sk_common.skc_rcv_saddr;
	r.daddr = sk->__sk_common.skc_daddr;
	r.dport = sk->__sk_common.skc_dport;
	r.saddr = tp->inet_conn.icsk_inet.inet_saddr;
	r.sport = tp->inet_conn.icsk_inet.inet_sport;
	/* TCP_TIMESTAMP: tcp_clock_ts(tcp_usec_ts) + tsoffset, low bit = the usec
	 * flag.  tcp_clock_ns() is ktime_get_ns(); bpf_ktime_get_ns() reads the
	 * same CLOCK_MONOTONIC (its NMI-safe variant). */
	now = bpf_ktime_get_ns();
	if (BPF_CORE_READ_BITFIELD_PROBED(tp, tcp_usec_ts)) {
		r.flags |= NS_BPF_USEC_TS;
		r.timestamp = ((__u32)(now / 1000) + tp->tsoffset) | 1;
	} else {
		r.timestamp = ((__u32)(now / 1000000) + tp->tsoffset) & ~1u;
	}
	/* TCP_NODELAY / TCP_CORK: bits of nonagle */
	v = (int)BPF_CORE_READ_BITFIELD_PROBED(tp, nonagle);
	if (v & TCP_NAGLE_OFF)
		r.flags |= NS_BPF_NODELAY;
	if (v & TCP_NAGLE_CORK)
		r.flags |= NS_BPF_CORK;
	if (BPF_CORE_READ_BITFIELD_PROBED(tp, thin_lto))
		r.flags |= NS_BPF_THIN_LTO;
	/* TCP_KEEPIDLE/KEEPINTVL: keepalive_{time,intvl}_when() / HZ, the netns
	 * sysctl when the socket's is 0; TCP_KEEPCNT: keepalive_probes() alike */
	v = (int)tp->keepalive_time;
	r.keepidle = div_int(v ? v : net->ipv4.sysctl_tcp_keepalive_time, hz);
	v = (int)tp->keepalive_intvl;
	r.keepintvl = div_int(v ? v : net->ipv4.sysctl_tcp_keepalive_intvl, hz);
	v = tp->keepalive_probes;
	r.keepcnt = v ? v : net->ipv4.sysctl_tcp_keepalive_probes;
	/* TCP_SYNCNT: icsk_syn_retries ?: sysctl_tcp_syn_retries */
	v = tp->inet_conn.icsk_syn_retries;
	r.syncnt = v ? v : net->ipv4.sysctl_tcp_syn_retries;
	/* TCP_LINGER2: linger2 < 0 as is, else (linger2 ?: sysctl_tcp_fin_timeout) / HZ */
	v = tp->linger2;
	r.linger2 = v < 0 ? v : div_int(v ? v : net->ipv4.sysctl_tcp_fin_timeout, hz);
	r.user_timeout = (int)tp->inet_conn.icsk_user_timeout;
	r.notsent_lowat = (int)tp->notsent_lowat;
	r.defer_accept_raw = tp->inet_conn.icsk_accept_queue.rskq_defer_accept;
	/* IP_TTL: uc_ttl, sysctl_ip_default_ttl when < 0; IP_MTU_DISCOVER: pmtudisc */
	v = tp->inet_conn.icsk_inet.uc_ttl;
	r.ttl = v < 0 ? net->ipv4.sysctl_ip_default_ttl : v;
	r.pmtudisc = tp->inet_conn.icsk_inet.pmtudisc;
	if (r.family == AF_INET6) {
		struct ipv6_pinfo *np = tp->inet_conn.icsk_inet.pinet6;

		/* IPV6_V6ONLY: sk_ipv6only.  (IPV6_RECVERR is a bit of inet_flags
		 * numbered by an anonymous enum, which CO-RE cannot relocate:
		 * user space asks getsockopt for it.) */
		if (BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_ipv6only))
			r.flags |= NS_BPF_V6ONLY;
		r.hop_limit6 = -1;
		if (np) {
			r.hop_limit6 = np->hop_limit;
			r.pmtudisc6 = np->pmtudisc;
		}
	}
	/* sk_getsockopt: SO_REUSEADDR sk_reuse, SO_REUSEPORT sk_reuseport,
	 * SO_KEEPALIVE / SO_OOBINLINE flags, SO_SNDBUF / SO_RCVBUF / SO_RCVLOWAT /
	 * SO_PRIORITY as they are, SO_BUF_LOCK sk_userlocks & SOCK_BUF_LOCK_MASK,
	 * SO_LINGER {flag, sk_lingertime / HZ}, SO_TIMESTAMP_OLD RCVTSTAMP and
	 * neither TSTAMP_NEW nor RCVTSTAMPNS, SO_RCV/SNDTIMEO_OLD sock_get_timeout */
	unsigned long fl = sk->__sk_common.skc_flags;
	r.reuse = (int)BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_reuse);
	r.reuseport = (int)BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_reuseport);
	r.sndbuf = sk->sk_sndbuf;
	r.rcvbuf = sk->sk_rcvbuf;
	r.rcvlowat = sk->sk_rcvlowat;
	r.priority = (int)sk->sk_priority;
	r.buf_lock = sk->sk_userlocks & SOCK_BUF_LOCK_MASK;
	r.linger_onoff = SK_FLAG(fl, SOCK_LINGER);
	r.linger = (int)(sk->sk_lingertime / (unsigned)hz);
	if (SK_FLAG(fl, SOCK_KEEPOPEN))
		r.sflags |= NS_BPF_S_KEEPOPEN;
	if (SK_FLAG(fl, SOCK_URGINLINE))
		r.sflags |= NS_BPF_S_URGINLINE;
	if (SK_FLAG(fl, SOCK_RCVTSTAMP) && !SK_FLAG(fl, SOCK_TSTAMP_NEW) && !SK_FLAG(fl, SOCK_RCVTSTAMPNS))
		r.sflags |= NS_BPF_S_TIMESTAMP;
	timeo(sk->sk_rcvtimeo, hz, &r.rcvtimeo_sec, &r.rcvtimeo_usec);
	timeo(sk->sk_sndtimeo, hz, &r.sndtimeo_sec, &r.sndtimeo_usec);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}
