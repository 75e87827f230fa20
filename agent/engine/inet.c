/*
 * inet.c — TCP and UDP sockets (AF_INET, AF_INET6) of a pod, through netstate/.
 *
 * The fd kind: dump captures the socket with netstate_sock_capture on our
 * copy of the fd (the same open file; capture is non-destructive) and stores
 * the packed netstate record in ImgFile.inet; restore validates each record
 * and re-creates the socket with netstate_sock_restore in the pod's netns
 * (restore.c has joined it), listeners first (their port is then shared by
 * the repaired connections).  Sockets stay in repair mode until
 * inet_restore_finish.
 *
 * The hold (NFQUEUE rules in the pod's own netns, a holder process; see
 * docs/netstate.md): on dump it starts with the first inet socket, i.e. after
 * the freeze and before any socket is captured, and only for pods that have
 * one.  On restore it starts before the sockets exist.  The rules are kept
 * in the pod's netns between holds (NETSTATE_KEEP_QUEUE with --queue-bypass:
 * nfnetlink_queue instances are per netns, so one fixed number serves all).
 *
 * State lives in file-level statics: one engine process = one operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/engine/control.h"
#include "agent/engine/fdkind.h"
#include "agent/engine/inet.h"
#include "lib/log.h"
#include "netstate/netstate.h"

#define FK_INET FILE_KIND__FK_INET
/* A record holds at most two 64 MiB TCP queues (netstate's limits) plus options. */
#define INET_REC_MAX ((size_t)160 << 20)

/* Bring every non-loopback link of the netns down.  Used before a hold is
 * dropped while the netns still has the pod's address: a peer's
 * retransmission must not meet a netns without the socket, which would
 * answer it with an RST (docs/netstate.md). */
static void links_down(int netns_fd)
{
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), s = -1, n = 0;
	if (self < 0 || setns(netns_fd, CLONE_NEWNET) < 0) {
		log_warn("inet: enter the pod netns to take its links down: %s", strerror(errno));
		goto out;
	}
	struct if_nameindex *ifs = if_nameindex();
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	for (struct if_nameindex *i = ifs; i && i->if_index && s >= 0; i++) {
		struct ifreq ifr = { 0 };
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", i->if_name);
		if (!strcmp(i->if_name, "lo") || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || !(ifr.ifr_flags & IFF_UP))
			continue;
		ifr.ifr_flags &= ~IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			log_warn("inet: link %s down: %s", i->if_name, strerror(errno));
		else
			n++;
	}
	if (ifs)
		if_freenameindex(ifs);
	if (setns(self, CLONE_NEWNET) < 0)
		log_err("inet: back to the engine's netns: %s", strerror(errno));
	log_debug("inet: %d pod links down before the hold is dropped", n);
out:
	if (s >= 0)
		close(s);
	if (self >= 0)
		close(self);
}

/* Kept hold rules (docs/netstate.md): a pod's first hold installs NFQUEUE
 * rules with --queue-bypass and leaves them; the agent remembers it and the
 * pod's next dumps hold by binding the queue only (no rule change). */
static bool rules_present, rules_kept;

void inet_set_hold_kept(bool present)
{
	rules_present = rules_kept = present;
}

bool inet_hold_kept(void)
{
	return rules_kept;
}

static int hold_begin(int netns_fd, struct netstate_hold **h)
{
	int err = netstate_hold_begin_keep(netns_fd, rules_present, h);
	if (err < 0)
		return err;   /* netstate logged it */
	rules_kept = rules_present || netstate_hold_kept(*h);
	if (netstate_hold_mode(*h) != NETSTATE_HOLD_NFQUEUE)
		log_warn("inet: pod traffic held with DROP rules (NFQUEUE unavailable): peers recover by retransmission");
	return 0;
}

/* ------------------------------------------------------------------ dump */

static struct {
	struct netstate_hold *hold;
	int netns_fd;          /* the pod's netns (init's /proc/PID/ns/net) */
	int *tcp;              /* our copies of the TCP sockets, for detach */
	int ntcp;
	struct pend_sock { ImgFile *f; int fd; uint64_t ino; int family, protocol, flags; uint32_t pid; int pod_fd; } *pend;
	int npend;                      /* sockets waiting for inet_dump_finish */
} D = { .netns_fd = -1 };

static int dump_hold_begin(pid_t init)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", init);
	if ((D.netns_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		log_err("dump: pod netns %s: %s", path, strerror(errno));
		return -errno;
	}
	return hold_begin(D.netns_fd, &D.hold);
}

static void dump_close_copies(void)
{
	for (int i = 0; i < D.ntcp; i++)
		close(D.tcp[i]);
	free(D.tcp);
	D.tcp = NULL;
	D.ntcp = 0;
	for (int i = 0; i < D.npend; i++)
		if (D.pend[i].fd >= 0)
			close(D.pend[i].fd);
	free(D.pend);
	D.pend = NULL;
	D.npend = 0;
	if (D.netns_fd >= 0)
		close(D.netns_fd);
	D.netns_fd = -1;
}

/* Before the freeze: when the pod's netns has TCP/UDP sockets, start the hold
 * now, so the holder's start is not spent frozen.  Holding a
 * little earlier is only a little more delay for the pod's packets.  A
 * socket created after this look is still caught by inet_dump (lazy start). */
/*
 * Has the pod's netns any TCP or UDP socket (v4 or v6) that /proc/net/tcp,
 * tcp6, udp or udp6 would list?  Those files walk the host-wide socket
 * hashes (~0.4 ms each here); sockstat and sockstat6 print the netns's own
 * counters (net/ipv4/proc.c, net/ipv6/proc.c: sock_prot_inuse_get(net, ..),
 * which counts exactly the hashed sockets, i.e. the listed ones; TIME_WAIT
 * ones are "tw", also per netns).  Unreadable: assume there are.
 */
static bool netns_has_sockets(pid_t init)
{
	static const char *const keys[] = { "TCP: inuse ", " tw ", "UDP: inuse ", "TCP6: inuse ",
					    "UDP6: inuse " };
	char path[64], *txt[2];
	bool any = false;
	for (int f = 0; f < 2; f++) {
		snprintf(path, sizeof(path), "/proc/%d/net/sockstat%s", init, f ? "6" : "");
		txt[f] = read_file_str(path, NULL);
	}
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && !any; k++) {
		const char *t = txt[k >= 3], *at = t ? strstr(t, keys[k]) : NULL;
		any = !at || strtol(at + strlen(keys[k]), NULL, 10) != 0;
	}
	free(txt[0]);
	free(txt[1]);
	return any;
}

void inet_dump_early(pid_t init)
{
	bool any = netns_has_sockets(init);
	if (any && dump_hold_begin(init) < 0) {
		if (D.netns_fd >= 0)
			close(D.netns_fd);
		D.netns_fd = -1;
		D.hold = NULL;
	}
	/* and what the capture reuses (rings, buffers, a thread stack): made
	 * while the pod still runs, after the holder was forked */
	if (any)
		netstate_capture_prepare(2);
}

void inet_dump_release(void)
{
	if (D.hold && netstate_hold_release(D.hold) < 0)
		log_warn("dump: releasing the pod's held traffic failed (peers will retransmit)");
	D.hold = NULL;
	dump_close_copies();
}

void inet_dump_detach(void)
{
	for (int i = 0; i < D.ntcp; i++) {
		int err = netstate_sock_detach(D.tcp[i]);
		if (err < 0)
			log_warn("dump: detach a TCP socket before the pod ends: %s (its peer may see a reset)",
				 strerror(-err));
	}
}

/* Is the task gone as far as its files go?  We still trace it after the
 * kill (PTRACE_DETACH fails on a dying task), so we reap it ourselves: a
 * traced zombie is not released to its parent until its tracer waits for
 * it, and the pod's init cannot finish exiting (zap_pid_ns_processes waits
 * for every child of the namespace) until then. */
static bool task_gone(pid_t tid)
{
	int st;
	pid_t r = waitpid(tid, &st, __WALL | WNOHANG);
	if (r == tid)
		return true;
	if (r == 0)
		return false;
	char path[64], *s;
	snprintf(path, sizeof(path), "/proc/%d/stat", tid);
	if (!(s = read_file_str(path, NULL)))
		return true;
	char *rp = strrchr(s, ')');
	bool z = rp && (rp[2] == 'Z' || rp[2] == 'X');
	free(s);
	return z;
}

/* After the kill: wait until every task of the pod is gone (files are
 * closed before a task becomes a zombie), then close our copies, take the
 * pod's links down and drop what was held. */
void inet_dump_drop(struct dump_ctx *d)
{
	if (!D.hold) {
		dump_close_copies();
		return;
	}
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = d->nprocs - 1; i >= 0; i--)
		for (int j = d->procs[i].nth - 1; j >= 0; j--)
			while (!task_gone(d->procs[i].th[j].htid)) {
				clock_gettime(CLOCK_MONOTONIC, &t);
				if (t.tv_sec - t0.tv_sec > 5) {
					log_warn("dump: tid %d still alive 5 s after the kill", d->procs[i].th[j].htid);
					break;
				}
				usleep(500);
			}
	for (int i = 0; i < D.ntcp; i++)
		close(D.tcp[i]);
	D.ntcp = 0;
	links_down(D.netns_fd);
	if (netstate_hold_drop(D.hold) < 0)
		log_warn("dump: dropping the pod's held traffic failed");
	D.hold = NULL;
	dump_close_copies();
}

static struct matched { int lfd; ino_t ino; int family, protocol; } M = { .lfd = -1 };

static int inet_match(const struct fd_src *s)
{
	int dom, proto;
	socklen_t l = sizeof(int);
	if (!S_ISSOCK(s->st.st_mode) || getsockopt(s->lfd, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0 ||
	    (dom != AF_INET && dom != AF_INET6))
		return 0;
	l = sizeof(int);
	if (getsockopt(s->lfd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) < 0)
		return 0;
	/* inet_dump comes next for this same fd: netstate need not ask again */
	M = (struct matched){ s->lfd, s->st.st_ino, dom, proto };
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

/* Sockets are captured together at the end of the file walk
 * (inet_dump_finish): one sock_diag round trip, both CPUs
 * (netstate_sock_capture_many; docs/netstate.md "Figures").  Until then each is
 * a copy of its fd and the record it goes to. */
static int inet_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	int err, c;
	if (!D.hold && (err = dump_hold_begin(d->procs[0].hpid)) < 0) {
		log_err("dump: pid %u fd %d: cannot hold the pod's traffic: %s", s->p->tree->pid, s->fd,
			strerror(-err));
		return err;
	}
	if ((c = fcntl(s->lfd, F_DUPFD_CLOEXEC, 3)) < 0) {
		log_err("dump: pid %u fd %d: keep a copy of the socket: %s", s->p->tree->pid, s->fd, strerror(errno));
		return -errno;
	}
	D.pend = realloc(D.pend, (size_t)(D.npend + 1) * sizeof(*D.pend));
	bool known = M.lfd == s->lfd && M.ino == s->st.st_ino;
	D.pend[D.npend++] = (struct pend_sock){ f, c, s->st.st_ino, known ? M.family : -1, known ? M.protocol : -1,
						(int)s->flags, s->p->tree->pid, s->fd };
	f->kind = FK_INET;
	f->has_inet = 1;
	return 0;
}

static int inet_dump_finish(struct dump_ctx *d)
{
	(void)d;
	if (!D.npend)
		return 0;
	int n = D.npend, *fds = xcalloc((size_t)n, sizeof(int)), err;
	int *fam = xcalloc((size_t)n, sizeof(int)), *proto = xcalloc((size_t)n, sizeof(int));
	int *flags = xcalloc((size_t)n, sizeof(int));
	uint64_t *inos = xcalloc((size_t)n, sizeof(uint64_t));
	netstate_sock_t **recs = xcalloc((size_t)n, sizeof(*recs));
	size_t failed = 0;
	for (int i = 0; i < n; i++) {
		fds[i] = D.pend[i].fd;
		inos[i] = D.pend[i].ino;
		fam[i] = D.pend[i].family;
		proto[i] = D.pend[i].protocol;
		flags[i] = D.pend[i].flags;   /* fdinfo's, as F_GETFL would say */
	}
	/* the pod is stopped: both CPUs are ours */
	err = netstate_sock_capture_many(D.netns_fd, fds, inos, fam, proto, flags, (size_t)n, recs, 2, &failed);
	if (err < 0 && failed < (size_t)n)
		log_err("dump: pid %u fd %d: socket capture: %s", D.pend[failed].pid, D.pend[failed].fd,
			strerror(-err));
	for (int i = 0; i < n && !err; i++) {
		ImgFile *f = D.pend[i].f;
		size_t len = netstate_sock_packed_size(recs[i]);
		f->inet.data = xcalloc(1, len ? len : 1);
		f->inet.len = netstate_sock_pack(recs[i], f->inet.data);
		if (recs[i]->type == SOCK_STREAM) {   /* kept for detach */
			D.tcp = realloc(D.tcp, (size_t)(D.ntcp + 1) * sizeof(int));
			D.tcp[D.ntcp++] = D.pend[i].fd;
		} else {
			close(D.pend[i].fd);
		}
		D.pend[i].fd = -1;
		netstate_sock_free(recs[i]);
	}
	free(fds);
	free(fam);
	free(proto);
	free(flags);
	free(inos);
	free(recs);
	return err;
}

/* ------------------------------------------------------------------ restore */

static struct {
	struct netstate_hold *hold;
	int pod_netns, node_netns;
	struct rsock { uint32_t id; netstate_sock_t *rec; int fd; } *s;
	int n;
} R = { .pod_netns = -1, .node_netns = -1 };

static bool is_listener(const netstate_sock_t *s)
{
	return s->type == SOCK_STREAM && s->has_tcp_state && s->tcp_state == TCP_LISTEN;
}

bool inet_image_has_sockets(struct rst_ctx *r)
{
	for (size_t i = 0; i < r->files->n_files; i++)
		if (r->files->files[i]->kind == FK_INET)
			return true;
	return false;
}

/* eth0 of the pod, as the agent would have set it (agent/netlink.c
 * net_pod_configure): lo and eth0 up, the address, the default route. */
static int pod_net_up(int netns_fd, const struct pod_net *net)
{
	struct in_addr ip, gw;
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), s = -1, err = 0;
	const char *what = "netns";
	if (inet_pton(AF_INET, net->ip, &ip) != 1 || inet_pton(AF_INET, net->gateway, &gw) != 1 ||
	    net->prefix < 1 || net->prefix > 32) {
		log_err("restore: pod network from the agent: bad address %s/%u via %s", net->ip, net->prefix,
			net->gateway);
		if (self >= 0)
			close(self);
		return -EINVAL;
	}
	if (self < 0 || setns(netns_fd, CLONE_NEWNET) < 0 ||
	    (what = "socket", s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		err = -errno;
		goto out;
	}
	struct ifreq ifr;
	const char *links[] = { "lo", "eth0" };
	for (int i = 0; i < 2; i++) {
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", links[i]);
		what = links[i];
		if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
			goto fail;
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			goto fail;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	sin->sin_family = AF_INET;
	sin->sin_addr = ip;
	what = "eth0 address";
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
		goto fail;
	sin->sin_addr.s_addr = htonl(net->prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> net->prefix));
	what = "eth0 netmask";
	if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		goto fail;
	struct rtentry rt;
	memset(&rt, 0, sizeof(rt));
	((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_gateway)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_gateway)->sin_addr = gw;
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = (char *)"eth0";
	what = "default route";
	if (ioctl(s, SIOCADDRT, &rt) < 0)
		goto fail;
	goto out;
fail:
	err = -errno;
out:
	if (err < 0)
		log_err("restore: bring the pod's network up (%s): %s", what, strerror(-err));
	if (s >= 0)
		close(s);
	if (self >= 0) {
		if (setns(self, CLONE_NEWNET) < 0 && !err) {
			log_err("restore: back to the engine's netns: %s", strerror(errno));
			err = -errno;
		}
		close(self);
	}
	return err;
}

int inet_restore_begin(struct rst_ctx *r, int pod_netns_fd, const struct pod_net *net)
{
	size_t n = 0;
	for (size_t i = 0; i < r->files->n_files; i++)
		n += r->files->files[i]->kind == FK_INET;
	if (!n)
		return 0;
	if (pod_netns_fd < 0) {
		log_err("restore: the image has %zu TCP/UDP sockets: it needs the pod's netns (--netns, or through the agent)", n);
		return -EINVAL;
	}
	if ((R.node_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0 ||
	    (R.pod_netns = fcntl(pod_netns_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		log_err("restore: netns: %s", strerror(errno));
		return -errno;
	}
	int err = hold_begin(R.pod_netns, &R.hold);
	if (err < 0) {
		log_err("restore: cannot hold the new pod's traffic: %s", strerror(-err));
		return err;
	}
	/* the agent left the pod's link down for us: up now that the hold is on */
	return net && net->deferred ? pod_net_up(R.pod_netns, net) : 0;
}

/* Every socket of the image, listeners first (runs in the pod's netns). */
static int inet_prepare(struct rst_ctx *r)
{
	ImgFiles *fs = r->files;
	for (size_t i = 0; i < fs->n_files; i++) {
		ImgFile *f = fs->files[i];
		if (f->kind != FK_INET)
			continue;
		netstate_sock_t *rec = NULL;
		if (!f->has_inet || f->inet.len > INET_REC_MAX ||
		    !(rec = netstate_sock_unpack(f->inet.data, f->inet.len)) || netstate_sock_validate(rec) < 0) {
			log_err("restore: file %u: malformed or invalid socket record", f->id);
			if (rec)
				netstate_sock_free(rec);
			return -EINVAL;
		}
		R.s = realloc(R.s, (size_t)(R.n + 1) * sizeof(*R.s));
		R.s[R.n++] = (struct rsock){ f->id, rec, -1 };
	}
	if (R.n && !R.hold) {
		log_err("restore: TCP/UDP sockets in the image but no traffic hold");
		return -EINVAL;
	}
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < R.n; i++) {
			struct rsock *s = &R.s[i];
			if (is_listener(s->rec) != !pass)
				continue;
			int fd, err = netstate_sock_restore(s->rec, &fd);
			if (err < 0) {
				log_err("restore: file %u: re-create the socket: %s", s->id, strerror(-err));
				return err;
			}
			if ((s->fd = inv_move(r, fd)) < 0) {
				log_err("restore: file %u: %s", s->id, strerror(errno));
				return -errno;
			}
		}
	return 0;
}

static int inet_restore(struct rst_ctx *r, ImgFile *f)
{
	for (int i = 0; i < R.n; i++)
		if (R.s[i].id == f->id && R.s[i].fd >= 0)
			return fcntl(R.s[i].fd, F_DUPFD_CLOEXEC, r->inv_base);
	log_err("restore: file %u: socket was not prepared", f->id);
	return -EINVAL;
}

/* Repair mode off on every socket (listeners first), while still held; then
 * the stale conntrack entries of the pod's address go, and the held packets
 * are delivered to the restored sockets. */
int inet_restore_finish(struct rst_ctx *r)
{
	if (!R.hold)
		return 0;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < R.n; i++) {
			struct rsock *s = &R.s[i];
			if (is_listener(s->rec) != !pass)
				continue;
			int err = netstate_sock_finish(s->rec, s->fd);
			if (err < 0) {
				log_err("restore: file %u: finish the socket: %s", s->id, strerror(-err));
				return err;
			}
		}
	if (r->info->pod_ip && netstate_conntrack_flush(R.node_netns, r->info->pod_ip) < 0)
		log_warn("restore: stale conntrack entries of %s not removed", r->info->pod_ip);
	int err = netstate_hold_release(R.hold);
	R.hold = NULL;
	if (err < 0)
		log_warn("restore: releasing the held traffic failed (peers will retransmit)");
	return 0;
}

/* Failure: no socket may send anything (repair mode: its close is silent);
 * links down, then what was held is dropped.  The pod is killed next. */
void inet_restore_abort(struct rst_ctx *r)
{
	(void)r;
	for (int i = 0; i < R.n; i++)
		if (R.s[i].fd >= 0)
			netstate_sock_detach(R.s[i].fd);
	if (R.hold) {
		links_down(R.pod_netns);
		netstate_hold_drop(R.hold);
		R.hold = NULL;
	}
}

const struct fd_kind fdkind_inet = {
	.name = "inet",
	.match = inet_match,
	.dump = inet_dump,
	.dump_finish = inet_dump_finish,
	.kinds = { FK_INET },
	.prepare = inet_prepare,
	.restore = inet_restore,
};
