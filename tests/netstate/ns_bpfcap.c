/*
 * ns_bpfcap POD_NS PEER_NS POD_IP PEER_IP POD_IP6 PEER_IP6
 *
 * TAP test of the BPF reader of TCP state (netstate/bpf.c, fast.c): a
 * "pod" with connections in different states and with options set is
 * checkpointed the way the engine does it (hold, netstate_sock_capture_many
 * of all its sockets on 2 threads) and restored; then the application's
 * side is checked: byte streams (checksums, both ways), options read back,
 * urgent byte, EOF after the peer's FIN, our FIN reaching the peer.
 * Before the restore the records are compared with those of the syscall
 * path (BPF reader off), and a capture with the reader failing in the
 * middle (ZAPC_NETSTATE_BPF_BREAK) must still work and give the same
 * records.  With ZAPC_NETSTATE_NO_BPF=1 the same test runs on the syscall
 * path only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/netstate.h"
#include "tests/netstate/ns_record.h"
#include "tests/netstate/ns_test.h"

static int ns_pod, ns_peer;

/* A connection from the pod netns to a fresh listener in the peer netns;
 * opt (may be NULL) sets options on the pod's socket before connect. */
static int tcp_pair(int family, const char *qip, int port, int *pod, int *peer, void (*opt)(int fd))
{
	struct sockaddr_storage ss;
	socklen_t l = mkaddr(family, qip, port, &ss);
	int one = 1, ls;
	struct timeval tv = { 5, 0 };

	in_ns(ns_peer);
	ls = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (void *)&ss, l) || listen(ls, 4))
		return -1;
	in_ns(ns_pod);
	*pod = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (opt)
		opt(*pod);
	if (connect(*pod, (void *)&ss, l) < 0)
		return -1;
	*peer = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	close(ls);
	setsockopt(*peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(*pod, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return *peer < 0 ? -1 : 0;
}

static uint8_t pat(size_t i, unsigned seed) { return (uint8_t)(i * 13 + i / 253 + seed); }

/* FNV-1a */
static uint64_t sum(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* Read n bytes (or up to EOF/timeout): the count. */
static size_t read_n(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* Write as much as the socket takes without blocking (pattern seeded). */
static size_t fill(int fd, uint8_t *buf, size_t cap, unsigned seed)
{
	size_t total = 0;
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	for (size_t i = 0; i < cap; i++)
		buf[i] = pat(i, seed);
	while (total < cap) {
		ssize_t w = send(fd, buf + total, cap - total < 65536 ? cap - total : 65536, 0);
		if (w <= 0)
			break;
		total += (size_t)w;
		usleep(500);
	}
	fcntl(fd, F_SETFL, fl);
	return total;
}

/* Why a stream stalled (state, probes, queues) */
static void diag_stall(int fd)
{
	struct tcp_info t;
	socklen_t l = sizeof(t);
	int oq = 0, un = 0;

	memset(&t, 0, sizeof(t));
	getsockopt(fd, IPPROTO_TCP, TCP_INFO, &t, &l);
	ioctl(fd, SIOCOUTQ, &oq);
	ioctl(fd, SIOCOUTQNSD, &un);
	printf("# stall: state %u ca %u retrans %u backoff %u probes %u unacked %u rto %u cwnd %u outq %d unsent %d total_retrans %u\n",
	       t.tcpi_state, t.tcpi_ca_state, t.tcpi_retransmits, t.tcpi_backoff, t.tcpi_probes, t.tcpi_unacked,
	       t.tcpi_rto, t.tcpi_snd_cwnd, oq, un, t.tcpi_total_retrans);
}

static int capture(int *fd, size_t n, netstate_sock_t **out)
{
	uint64_t ino[n];

	for (size_t i = 0; i < n; i++) {
		struct stat st;
		ino[i] = fstat(fd[i], &st) == 0 ? (uint64_t)st.st_ino : 0;
	}
	return netstate_sock_capture_many(ns_pod, fd, ino, NULL, NULL, NULL, n, out, 2, NULL);
}

static void opts_c0(int fd)
{
	int one = 1, idle = 61, intvl = 7, cnt = 5, uto = 4321, ttl = 33, lin2 = 17, lowat = 5555, syn = 3;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
	setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4);
	setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
	setsockopt(fd, IPPROTO_TCP, TCP_LINGER2, &lin2, sizeof(lin2));
	setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
	setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &syn, sizeof(syn));
	setsockopt(fd, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &one, sizeof(one));
}

/* SOL_SOCKET options the BPF reader computes (sk_getsockopt) */
static void opts_c1(int fd)
{
	int one = 1, prio = 5;
	struct linger lg = { 1, 9 };
	struct timeval tv = { 2, 500000 };
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

static void opts_c4(int fd)
{
	int one = 1, hops = 7, tc = 0x20;
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof(hops));
	setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tc, sizeof(tc));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

enum { C_QUEUES, C_CORK, C_OOB, C_CLOSE_WAIT, C_V6, C_FIN_WAIT, NC };
static const char *const cname[NC] = { "queues+options", "cork", "urgent", "close-wait", "IPv6", "fin-wait" };

int main(int argc, char **argv)
{
	int pod[NC], peer[NC], one = 1, zero = 0;
	uint8_t *sndbuf = NULL, *rd = NULL, in0[1000], got[4096];
	size_t sent0 = 0, sent4 = 0;
	netstate_sock_t *a[NC], *b[NC], *c[NC];
	struct netstate_hold *h;
	double load_ms = 0;
	bool no_bpf = getenv("ZAPC_NETSTATE_NO_BPF") && strcmp(getenv("ZAPC_NETSTATE_NO_BPF"), "0");

	if (argc == 2 && !strcmp(argv[1], "child")) {   /* given the program by its parent */
		log_init("ns_bpfcap child", 0);
		int on = netstate_capture_bpf(&load_ms);
		printf("# child: BPF reader %s, attached in %.2f ms\n", on ? "in use" : "NOT in use", load_ms);
		return on ? 0 : 1;
	}
	if (argc < 7) {
		fprintf(stderr, "usage: ns_bpfcap POD_NS PEER_NS POD_IP PEER_IP POD_IP6 PEER_IP6\n");
		return 2;
	}
	log_init("ns_bpfcap", 0);
	sndbuf = malloc(8 << 20);
	rd = malloc(8 << 20);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	ns_pod = open_ns(argv[1]);
	ns_peer = open_ns(argv[2]);
	if (ns_pod < 0 || ns_peer < 0 || !sndbuf || !rd)
		return 1;
	const char *peer_ip = argv[4], *peer_ip6 = argv[6];
	int port = 7600 + getpid() % 300;

	/* as the engine does it, before the freeze */
	netstate_capture_prepare(2);
	int bpf = netstate_capture_bpf(&load_ms);
	if (no_bpf)
		ok(!bpf, "ZAPC_NETSTATE_NO_BPF=1: the BPF reader is off");
	else
		ok(bpf, "the BPF reader is loaded (%.1f ms, before the freeze)", load_ms);

	if (bpf) {
		/* A long-lived parent (the agent) loads once; a child only attaches. */
		int pfd = netstate_bpf_prog_fd(), d = pfd >= 0 ? dup(pfd) : -1, st = -1;
		char num[16];
		snprintf(num, sizeof(num), "%d", d);
		pid_t pid = fork();
		if (pid == 0) {
			setenv(NETSTATE_BPF_PROG_FD_ENV, num, 1);
			execl("/proc/self/exe", "ns_bpfcap", "child", (char *)NULL);
			_exit(127);
		}
		if (pid > 0)
			waitpid(pid, &st, 0);
		close(d);
		ok(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		   "a child given the loaded program (%s=%d) uses the reader without loading it", NETSTATE_BPF_PROG_FD_ENV, d);
	}

	/* The pod's connections. */
	int e = 0;
	e |= tcp_pair(AF_INET, peer_ip, port + C_QUEUES, &pod[C_QUEUES], &peer[C_QUEUES], opts_c0);
	for (size_t i = 0; i < sizeof(in0); i++)
		in0[i] = pat(i, 99);
	send(peer[C_QUEUES], in0, sizeof(in0), 0);   /* receive queue */
	e |= tcp_pair(AF_INET, peer_ip, port + C_CORK, &pod[C_CORK], &peer[C_CORK], opts_c1);
	setsockopt(pod[C_CORK], IPPROTO_TCP, TCP_CORK, &one, sizeof(one));
	send(pod[C_CORK], "corked", 6, 0);   /* stays unsent while corked */
	send(peer[C_CORK], "to the corked one", 17, 0);
	e |= tcp_pair(AF_INET, peer_ip, port + C_OOB, &pod[C_OOB], &peer[C_OOB], NULL);
	send(peer[C_OOB], "abc", 3, 0);
	send(peer[C_OOB], "!", 1, MSG_OOB);
	send(peer[C_OOB], "def", 3, 0);
	e |= tcp_pair(AF_INET, peer_ip, port + C_CLOSE_WAIT, &pod[C_CLOSE_WAIT], &peer[C_CLOSE_WAIT], NULL);
	send(peer[C_CLOSE_WAIT], "last words", 10, 0);
	shutdown(peer[C_CLOSE_WAIT], SHUT_WR);
	e |= tcp_pair(AF_INET6, peer_ip6, port + C_V6, &pod[C_V6], &peer[C_V6], opts_c4);
	send(peer[C_V6], "v6 data", 7, 0);
	e |= tcp_pair(AF_INET, peer_ip, port + C_FIN_WAIT, &pod[C_FIN_WAIT], &peer[C_FIN_WAIT], NULL);
	send(pod[C_FIN_WAIT], "bye", 3, 0);
	shutdown(pod[C_FIN_WAIT], SHUT_WR);
	usleep(100000);
	ok(!e, "%d connections set up (receive and send queues, cork, urgent byte, CLOSE_WAIT, IPv6, FIN_WAIT)", NC);
	if (e)
		goto out;

	/* The checkpoint: hold, capture (three ways), restore. */
	in_ns(ns_pod);
	int r = netstate_hold_begin(ns_pod, 2000 + (unsigned)getpid() % 20000, NETSTATE_HOLD_NFQUEUE, &h);
	ok(!r, "the pod's traffic is held");
	if (r)
		goto out;
	/* The app was writing when the checkpoint began: what it wrote since
	 * the hold is sent but unacknowledged, or not sent yet (cwnd). */
	sent0 = fill(pod[C_QUEUES], sndbuf, 256 << 10, 1);
	sent4 = fill(pod[C_V6], sndbuf + (4 << 20), 128 << 10, 2);
	usleep(20000);
	/* Three captures: as the engine does it (a), with the BPF reader off
	 * (b), with the reader failing (c).  A socket may move between two of
	 * them on its own (TCP_CORK's 200 ms timer sends corked data): a
	 * difference counts only if it is there again in a second try. */
	int diff_ab = 0, diff_cb = 0, rb = 0, rc = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		if (attempt) {
			printf("# records differed: capture again (%d)\n", attempt);
			for (int i = 0; i < NC; i++)
				netstate_sock_free(a[i]);
		}
		r = capture(pod, NC, a);
		int was = netstate_capture_use_bpf(0);
		rb = capture(pod, NC, b);
		netstate_capture_use_bpf(was);
		setenv("ZAPC_NETSTATE_BPF_BREAK", "1", 1);
		rc = capture(pod, NC, c);
		unsetenv("ZAPC_NETSTATE_BPF_BREAK");
		if (r || rb || rc)
			break;
		diff_ab = diff_cb = 0;
		for (int i = 0; i < NC; i++) {
			if (!same_record(a[i], b[i])) {
				diff_ab++;
				printf("# %s: records differ with and without the BPF reader\n", cname[i]);
			}
			diff_cb += !same_record(c[i], b[i]);
			netstate_sock_free(b[i]);
			netstate_sock_free(c[i]);
		}
		if (!diff_ab && !diff_cb)
			break;
	}
	ok(!r, "capture of the %d connections, as the engine does it (BPF reader %s)", NC, bpf ? "on" : "off");
	if (r || rb || rc) {
		ok(0, "captures with the BPF reader off (%d) and failing (%d)", rb, rc);
		goto out;
	}
	ok(diff_ab == 0, "records with and without the BPF reader identical (%d of %d differ)", diff_ab, NC);
	ok(diff_cb == 0, "a BPF reader failing in the middle of a capture: the capture still works, same records (%d differ)",
	   diff_cb);
	ok(a[C_QUEUES]->conn && a[C_QUEUES]->conn->rcvq.len == sizeof(in0) && a[C_QUEUES]->conn->sndq.len > 0 &&
	   a[C_QUEUES]->conn->unsent_len > 0,
	   "queues captured: receive %zu bytes, send %zu (%u of them never sent)",
	   a[C_QUEUES]->conn ? a[C_QUEUES]->conn->rcvq.len : 0, a[C_QUEUES]->conn ? a[C_QUEUES]->conn->sndq.len : 0,
	   a[C_QUEUES]->conn ? a[C_QUEUES]->conn->unsent_len : 0);
	/* migration-like: the originals go silently, fresh sockets take their place */
	in_ns(ns_pod);
	r = 0;
	for (int i = 0; i < NC; i++) {
		netstate_sock_detach(pod[i]);
		close(pod[i]);
		pod[i] = -1;
		if (!r)
			r = netstate_sock_restore(a[i], &pod[i]);
	}
	for (int i = 0; i < NC && !r; i++)
		r = netstate_sock_finish(a[i], pod[i]);
	netstate_hold_release(h);
	ok(!r, "the %d connections restored from the BPF capture", NC);
	if (r)
		goto out;
	for (int i = 0; i < NC; i++) {
		struct timeval tv = { 5, 0 };
		setsockopt(pod[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}

	/* The application's view. */
	int p0 = pod[C_QUEUES];
	char cc[16] = "";
	socklen_t l = sizeof(cc);
	getsockopt(p0, IPPROTO_TCP, TCP_CONGESTION, cc, &l);
	printf("# nodelay %d keepalive %d idle %d intvl %d cnt %d uto %d ttl %d linger2 %d lowat %d syncnt %d thin %d cc %s\n",
	       getint(p0, IPPROTO_TCP, TCP_NODELAY), getint(p0, SOL_SOCKET, SO_KEEPALIVE),
	       getint(p0, IPPROTO_TCP, TCP_KEEPIDLE), getint(p0, IPPROTO_TCP, TCP_KEEPINTVL),
	       getint(p0, IPPROTO_TCP, TCP_KEEPCNT), getint(p0, IPPROTO_TCP, TCP_USER_TIMEOUT),
	       getint(p0, IPPROTO_IP, IP_TTL), getint(p0, IPPROTO_TCP, TCP_LINGER2),
	       getint(p0, IPPROTO_TCP, TCP_NOTSENT_LOWAT), getint(p0, IPPROTO_TCP, TCP_SYNCNT),
	       getint(p0, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS), cc);
	ok(getint(p0, IPPROTO_TCP, TCP_NODELAY) == 1 && getint(p0, SOL_SOCKET, SO_KEEPALIVE) == 1 &&
	   getint(p0, IPPROTO_TCP, TCP_KEEPIDLE) == 61 && getint(p0, IPPROTO_TCP, TCP_KEEPINTVL) == 7 &&
	   getint(p0, IPPROTO_TCP, TCP_KEEPCNT) == 5 && getint(p0, IPPROTO_TCP, TCP_USER_TIMEOUT) == 4321 &&
	   getint(p0, IPPROTO_IP, IP_TTL) == 33 && getint(p0, IPPROTO_TCP, TCP_LINGER2) == 17 &&
	   getint(p0, IPPROTO_TCP, TCP_NOTSENT_LOWAT) == 5555 && getint(p0, IPPROTO_TCP, TCP_SYNCNT) == 3 &&
	   getint(p0, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS) == 1 && !strcmp(cc, "reno"),
	   "options read back: nodelay, keepalive idle/intvl/cnt, user timeout, TTL, linger2, notsent lowat, syncnt, "
	   "thin timeouts, congestion %s", cc);
	ok(read_n(p0, got, sizeof(in0)) == sizeof(in0) && sum(got, sizeof(in0)) == sum(in0, sizeof(in0)),
	   "the app reads the peer's unread %zu bytes (checksum)", sizeof(in0));
	size_t n0 = read_n(peer[C_QUEUES], rd, sent0);
	if (n0 != sent0)
		diag_stall(p0);
	ok(n0 == sent0 && sum(rd, n0) == sum(sndbuf, sent0), "the peer reads all %zu bytes the app wrote (got %zu, checksum %s)",
	   sent0, n0, n0 == sent0 && sum(rd, n0) == sum(sndbuf, sent0) ? "equal" : "DIFFERS");
	send(peer[C_QUEUES], "after", 5, 0);
	send(p0, "after", 5, 0);
	ok(read_n(p0, got, 5) == 5 && !memcmp(got, "after", 5) && read_n(peer[C_QUEUES], rd, 5) == 5 &&
	   !memcmp(rd, "after", 5), "new data flows both ways after the restore");

	int pc = pod[C_CORK];
	ok(getint(pc, IPPROTO_TCP, TCP_CORK) == 1 && read_n(pc, got, 17) == 17 && !memcmp(got, "to the corked one", 17),
	   "cork: TCP_CORK still on, the app reads its pending data");
	{
		struct linger lg = { 0, 0 };
		struct timeval tv = { 0, 0 };
		socklen_t ll = sizeof(lg), tl = sizeof(tv);
		getsockopt(pc, SOL_SOCKET, SO_LINGER, &lg, &ll);
		getsockopt(pc, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl);
		ok(getint(pc, SOL_SOCKET, SO_TIMESTAMP) == 1 && lg.l_onoff == 1 && lg.l_linger == 9 && tv.tv_sec == 2 &&
		   tv.tv_usec == 500000 && getint(pc, SOL_SOCKET, SO_REUSEPORT) == 1 &&
		   getint(pc, SOL_SOCKET, SO_OOBINLINE) == 1 && getint(pc, SOL_SOCKET, SO_PRIORITY) == 5 &&
		   getint(pc, SOL_SOCKET, SO_KEEPALIVE) == 1,
		   "socket options read back: SO_TIMESTAMP, SO_LINGER, SO_SNDTIMEO (%ld.%06ld), SO_REUSEPORT, SO_OOBINLINE, "
		   "SO_PRIORITY, SO_KEEPALIVE", (long)tv.tv_sec, (long)tv.tv_usec);
	}
	setsockopt(pc, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
	ok(read_n(peer[C_CORK], rd, 6) == 6 && !memcmp(rd, "corked", 6), "cork: uncorked, the peer gets the corked bytes");

	char oob = 0;
	int mark = -1;
	ssize_t on = recv(pod[C_OOB], &oob, 1, MSG_OOB);
	ok(on == 1 && oob == '!', "urgent: recv(MSG_OOB) returns the byte ('%c')", oob ? oob : '?');
	ok(read_n(pod[C_OOB], got, 3) == 3 && !memcmp(got, "abc", 3) && ioctl(pod[C_OOB], SIOCATMARK, &mark) == 0 &&
	   mark == 1 && read_n(pod[C_OOB], got + 3, 3) == 3 && !memcmp(got + 3, "def", 3),
	   "urgent: the stream before the mark, SIOCATMARK, the stream after it");

	memset(got, 0, sizeof(got));
	ok(read_n(pod[C_CLOSE_WAIT], got, 10) == 10 && !memcmp(got, "last words", 10) &&
	   recv(pod[C_CLOSE_WAIT], got, 1, 0) == 0, "close-wait: the app reads the data, then EOF");

	int p4 = pod[C_V6];
	ok(getint(p4, IPPROTO_IPV6, IPV6_V6ONLY) == 1 && getint(p4, IPPROTO_IPV6, IPV6_UNICAST_HOPS) == 7 &&
	   getint(p4, IPPROTO_IPV6, IPV6_TCLASS) == 0x20 && getint(p4, IPPROTO_TCP, TCP_NODELAY) == 1,
	   "IPv6: V6ONLY, UNICAST_HOPS, TCLASS, NODELAY read back");
	size_t n4 = read_n(peer[C_V6], rd, sent4);
	if (n4 != sent4) {
		Netstate__TcpConn *k = a[C_V6]->conn;
		printf("# IPv6 stream: peer got %zu of %zu\n", n4, sent4);
		diag_stall(p4);
		diag_stall(peer[C_V6]);
		if (k)
			printf("# image: snd_seq %u rcv_seq %u sndq %zu unsent %u mss %u ts %u wl1 %u wnd %u maxw %u rwnd %u rwup %u wscale %u/%u opt %u\n",
			       k->snd_seq, k->rcv_seq, k->sndq.len, k->unsent_len, k->mss, k->timestamp, k->snd_wl1, k->snd_wnd,
			       k->max_window, k->rcv_wnd, k->rcv_wup, k->snd_wscale, k->rcv_wscale, k->opt_mask);
	}
	ok(read_n(p4, got, 7) == 7 && !memcmp(got, "v6 data", 7) && n4 == sent4 &&
	   sum(rd, n4) == sum(sndbuf + (4 << 20), sent4), "IPv6: both streams intact (%zu bytes to the peer)", sent4);

	memset(rd, 0, 8);
	ok(read_n(peer[C_FIN_WAIT], rd, 3) == 3 && !memcmp(rd, "bye", 3) && recv(peer[C_FIN_WAIT], rd, 1, 0) == 0,
	   "fin-wait: the peer reads the data, then our FIN (EOF)");
	send(peer[C_FIN_WAIT], "reply", 5, 0);
	ok(read_n(pod[C_FIN_WAIT], got, 5) == 5 && !memcmp(got, "reply", 5), "fin-wait: the app still reads from the peer");
	for (int i = 0; i < NC; i++)
		netstate_sock_free(a[i]);
out:
	for (int i = 0; i < NC; i++) {
		close(pod[i]);
		close(peer[i]);
	}
	free(sndbuf);
	free(rd);
	printf("1..%d\n", tap_n);
	return tap_fail ? 1 : 0;
}
