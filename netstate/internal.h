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
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
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
};
/* Fill what sock_diag knows for each e[i] with ask (one round trip per 128). */
int ns_diag_ask(int netns_fd, struct ns_diag_sock *e, size_t n);

/* addr.c */
Netstate__Addr *ns_addr_new(const union ns_sockaddr *sa);
int ns_addr_to_sockaddr(const Netstate__Addr *a, union ns_sockaddr *sa, socklen_t *len);
const char *ns_addr_str(const Netstate__Addr *a, char *buf, size_t len);
int ns_addr_validate(const Netstate__Addr *a, uint32_t family);

/* sockopt.c — phases of ns_opts_apply */
enum ns_opt_phase { NS_OPT_BEFORE_BIND, NS_OPT_AFTER_REPAIR };
int ns_opts_capture(int fd, Netstate__Socket *s, const struct ns_diag_sock *dg);
int ns_buf_lock_restore(int fd, const Netstate__Socket *s);
int ns_opts_apply(int fd, const Netstate__Socket *s, enum ns_opt_phase phase);
int ns_opts_validate(const Netstate__Socket *s);
int ns_opt_get_int(const Netstate__Socket *s, int level, int name, int *val);

/* tcp.c */
int ns_tcp_capture(int fd, Netstate__Socket *s, const struct ns_diag_sock *dg);
int ns_tcp_validate(const Netstate__Socket *s);
int ns_tcp_restore(const Netstate__Socket *s, int *fd_out);
int ns_tcp_finish(const Netstate__Socket *s, int fd);
int ns_tcp_detach(int fd);

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
int ns_rules_remove(int netns_fd);
int ns_run_in_netns(int netns_fd, const char *const argv[], const char *stdin_text, int timeout_s);

#endif
