/*
 * netstate.h — save and re-create a pod's sockets, and hold its traffic
 * while that happens.  The public interface of netstate/ (see docs/netstate.md).
 *
 * Sockets: the caller holds an fd for the pod's socket (pidfd_getfd gives the
 * same open file).  Capture is non-destructive: afterwards the socket is
 * exactly as before and the application reads the identical byte stream.
 * Restore creates a fresh socket in the caller's *current* network namespace
 * and returns its fd; the caller places it at the right fd number.
 *
 * Order on the checkpointing side:  freeze pod → netstate_hold_begin →
 *   netstate_sock_capture (each socket) → [migration: netstate_sock_detach on
 *   each, kill pod, netstate_hold_drop] | [snapshot/abort: netstate_hold_release].
 * Order on the restoring side: netstate_hold_begin in the new netns before its
 *   address comes up → netstate_sock_restore (each) → netstate_sock_finish (each)
 *   → netstate_hold_release.
 */
#ifndef ZAPC_NETSTATE_H
#define ZAPC_NETSTATE_H

#include <stdbool.h>
#include <stdint.h>
#include "proto/netstate.pb-c.h"

typedef Netstate__Socket netstate_sock_t;

/* Capture the socket behind fd.  *out is malloc'ed: free with netstate_sock_free. */
int netstate_sock_capture(int fd, netstate_sock_t **out);
void netstate_sock_free(netstate_sock_t *s);

/* Capture n sockets of one netns (a pod's) into out[i]: the TCP
 * connections' state, tcp_info, TOS/TCLASS, congestion control, mark and
 * some IP flags come from sock_diag in one netlink round trip for all
 * (netns_fd: where they live, -1 = the caller's netns; ino[i]: the socket's
 * inode from fstat, a reply about another socket is ignored), the rest on
 * up to `threads` threads (the pod is stopped: its CPUs are free; each
 * capture is syscall-bound).  family/protocol (may be NULL) are what the
 * caller already knows (SO_DOMAIN, SO_PROTOCOL), file_flags (may be NULL)
 * the open files' status flags (fdinfo "flags:"; only O_NONBLOCK is kept).
 * Established connections go in batches through io_uring (fast.c) where
 * the kernel has it.  Take it with the pod
 * frozen and its traffic held.  0, or the first error (-errno, logged;
 * *failed is its index), and then every out[i] is NULL. */
int netstate_sock_capture_many(int netns_fd, const int *fd, const uint64_t *ino, const int *family,
			       const int *protocol, const int *file_flags, size_t n, netstate_sock_t **out,
			       int threads, size_t *failed);

/* Optional, before the pod is frozen: make now what netstate_sock_capture_many
 * keeps between calls for up to `threads` threads (io_uring rings, sock_diag
 * buffers, a thread stack): ~0.1-0.5 ms of page touching otherwise spent
 * while the pod is stopped; and load the BPF reader of TCP state (~0.1 s,
 * see netstate_bpf_prog_fd): a capture uses it only if it was loaded
 * before (here, or by netstate_capture_bpf), never loads it itself. */
void netstate_capture_prepare(int threads);

/* Is the BPF reader of TCP state in use (loaded now if not yet; 1 or 0)?
 * *load_ms (may be NULL): what its load and attach took. */
int netstate_capture_bpf(double *load_ms);
/* Let captures use the BPF reader (on, the default) or not (A/B benches and
 * tests); returns the previous setting.  ZAPC_NETSTATE_NO_BPF=1 in the
 * environment keeps it off for the whole process. */
int netstate_capture_use_bpf(int on);
/* The BPF reader's program fd (loaded now if not yet), or -1.  A
 * long-lived process (the agent) can load it once and hand it to the
 * processes that capture: the fd inherited, its number in the environment
 * variable below; they then only attach (~0.1 ms) instead of loading
 * (~0.1-0.3 s here, mostly libbpf parsing the kernel's BTF). */
#define NETSTATE_BPF_PROG_FD_ENV "ZAPC_NETSTATE_BPF_PROG_FD"
int netstate_bpf_prog_fd(void);

/* Make the captured original disappear silently when its last fd closes
 * (TCP: leave it in repair mode, so no FIN/RST reaches the peer).  For
 * migration, after capture and before the pod is killed. */
int netstate_sock_detach(int fd);

/* Validate an image record (bounds, lengths, combinations).  0 or -EINVAL. */
int netstate_sock_validate(const netstate_sock_t *s);

/* Create the socket in the current netns (setns the calling thread into the
 * pod's netns first), fully set up; *fd_out is O_CLOEXEC
 * (the caller clears it when installing in the target).  TCP connections are
 * left in repair mode when the image says so: call netstate_sock_finish once
 * every socket of the pod exists (ports shared by a listener and its
 * connections) and while the traffic is still held. */
int netstate_sock_restore(const netstate_sock_t *s, int *fd_out);
int netstate_sock_finish(const netstate_sock_t *s, int fd);

/* Serialize helpers for callers that store a record on its own. */
size_t netstate_sock_packed_size(const netstate_sock_t *s);
size_t netstate_sock_pack(const netstate_sock_t *s, uint8_t *buf);
netstate_sock_t *netstate_sock_unpack(const uint8_t *buf, size_t len);

/* --- traffic hold (NFQUEUE, DROP fallback) ----------------------------- */

struct netstate_hold;

enum netstate_hold_mode {
	NETSTATE_HOLD_NFQUEUE = 0,   /* default: queue and keep every packet */
	NETSTATE_HOLD_DROP    = 1,   /* DROP rules (also the automatic fallback) */
};

/* Hold all non-loopback IPv4+IPv6 traffic of the netns behind netns_fd
 * (nf_tables table NETSTATE_HOLD_TABLE in the ip and ip6 families, base
 * chains at prerouting and output, raw priority).  queue_num must be unique
 * per pod.  A holder process (fork()ed without exec: call it from a thread
 * that holds no locks other threads need, e.g. not inside a malloc-heavy
 * critical section) owns the rules; it removes them when released, dropped,
 * or when the caller dies.  *out to be ended with release or drop.  The
 * rules are one netlink batch per family (well under 1 ms). */
#define NETSTATE_HOLD_TABLE "zapc_hold"
int netstate_hold_begin(int netns_fd, unsigned queue_num, enum netstate_hold_mode mode,
			struct netstate_hold **out);
/*
 * The same hold with rules that stay in the netns between holds: the
 * NFQUEUE rule (queue NETSTATE_KEEP_QUEUE) carries --queue-bypass, so while
 * no holder is bound the pod's packets pass untouched, and a hold is just a
 * holder binding the queue (no rule change).  rules_present: a previous
 * hold left them (the caller remembers it per pod, e.g. the agent); else
 * they are installed and left.  End with release or drop: the
 * rules stay, the queue is unbound without losing a packet (fail-open).  A
 * DROP fallback is a classic hold (rules removed at the end): check
 * netstate_hold_mode() before remembering the rules as present.
 */
#define NETSTATE_KEEP_QUEUE 7001u
int netstate_hold_begin_keep(int netns_fd, int rules_present, struct netstate_hold **out);
/* Are h's rules kept (left in the netns when h ends)? */
int netstate_hold_kept(const struct netstate_hold *h);
/* Re-inject every held packet in arrival order, remove the rules, free h. */
int netstate_hold_release(struct netstate_hold *h);
/* Discard every held packet (peers retransmit), remove the rules, free h. */
int netstate_hold_drop(struct netstate_hold *h);
/* Packets held so far (for logs and tests); -errno on error. */
int netstate_hold_count(struct netstate_hold *h);
/* The holder process (for diagnostics; it is the caller's child). */
int netstate_hold_pid(const struct netstate_hold *h);
/* Which mode is really in force (NFQUEUE may have fallen back to DROP). */
enum netstate_hold_mode netstate_hold_mode(const struct netstate_hold *h);

/* Delete conntrack entries to or from addr (text IPv4/IPv6) in netns_fd
 * (-1: the current netns).  0 also when there was nothing to delete. */
int netstate_conntrack_flush(int netns_fd, const char *addr);

#endif
