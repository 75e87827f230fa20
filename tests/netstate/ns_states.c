/*
 * ns_states POD_NS PEER_NS POD_IP PEER_IP [POD_IP6 PEER_IP6]
 *
 * TAP test of every socket state netstate saves, each checked from the
 * application's side after restore.  One process plays both ends: sockets
 * are created in the pod's or the peer's netns (setns before socket()).
 * "Checkpoint" = hold the pod's traffic, capture, then either restore
 * (detach + close the original, re-create it in the pod netns, release) or
 * abort (release and keep using the original).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/socket.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/netstate.h"
#include "tests/netstate/ns_test.h"

static int ns_pod, ns_peer;
static const char *pod_ip, *peer_ip;
static unsigned queue_num;

static int mksock(int ns, int family, int type)
{
	in_ns(ns);
	int fd = socket(family, type | SOCK_CLOEXEC, 0);
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* An established pair: *pod connects from the pod netns to a listener in the peer netns. */
static int tcp_pair(int family, const char *pip, const char *qip, int port, int *pod, int *peer)
{
	struct sockaddr_storage ss;
	socklen_t l = mkaddr(family, qip, port, &ss);
	int one = 1, ls = mksock(ns_peer, family, SOCK_STREAM);

	(void)pip;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (void *)&ss, l) || listen(ls, 8))
		return -1;
	*pod = mksock(ns_pod, family, SOCK_STREAM);
	if (connect(*pod, (void *)&ss, l) < 0)
		return -1;
	*peer = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	close(ls);
	struct timeval tv = { 5, 0 };
	setsockopt(*peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return *peer < 0 ? -1 : 0;
}

/* Checkpoint of one pod socket: hold, capture, and restore (or abort). */
static int checkpoint(int *fd, int restore, netstate_sock_t **img_out)
{
	struct netstate_hold *h;
	netstate_sock_t *img = NULL, *back;
	uint8_t *buf;
	size_t len;
	int r, nfd;

	if ((r = netstate_hold_begin(ns_pod, queue_num, NETSTATE_HOLD_NFQUEUE, &h)))
		return r;
	/* As the engine captures a pod's sockets: sock_diag + the rest */
	struct stat st;
	uint64_t ino = fstat(*fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
	r = netstate_sock_capture_many(ns_pod, fd, &ino, NULL, NULL, NULL, 1, &img, 1, NULL);
	if (r || !restore) {
		if (!r && img_out)
			*img_out = img;
		else
			netstate_sock_free(img);
		netstate_hold_release(h);
		return r;
	}
	len = netstate_sock_packed_size(img);
	buf = malloc(len);
	netstate_sock_pack(img, buf);
	back = netstate_sock_unpack(buf, len);
	free(buf);
	netstate_sock_free(img);
	netstate_sock_detach(*fd);
	close(*fd);
	in_ns(ns_pod);
	r = netstate_sock_restore(back, &nfd);
	if (!r)
		r = netstate_sock_finish(back, nfd);
	if (!r)
		*fd = nfd;
	if (img_out)
		*img_out = back;
	else
		netstate_sock_free(back);
	netstate_hold_release(h);
	return r;
}

static ssize_t read_n(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
		if (r <= 0)
			return got ? (ssize_t)got : r;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static uint8_t pat(size_t i) { return (uint8_t)(i * 7 + i / 251); }

/* Established connection with both queues full, options set by the app. */
static void test_established(int family, const char *pip, const char *qip, int port, int restore)
{
	const char *fam = family == AF_INET ? "IPv4" : "IPv6";
	const char *what = restore ? "restored" : "aborted checkpoint";
	int pod, peer, one = 1, r;
	char peer_msg[] = "data the peer sent that the app has not read yet";
	char got[256], cc[16] = "";
	size_t total = 0, cap = 8 << 20;
	uint8_t *big = malloc(cap), *rd = malloc(cap);
	struct linger lg = { 1, 7 };
	socklen_t l;

	if (tcp_pair(family, pip, qip, port, &pod, &peer)) {
		ok(0, "%s: connection set up", fam);
		return;
	}
	/* Options a program can set. */
	int idle = 77, intvl = 9, cnt = 4, uto = 12345, mark = 42, prio = 3, lowat = 100000, sndbuf = 300000;
	setsockopt(pod, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(pod, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(pod, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(pod, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(pod, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(pod, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
	setsockopt(pod, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	setsockopt(pod, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(pod, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
	setsockopt(pod, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(pod, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5);
	setsockopt(pod, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET) {
		int tos = 0x28;
		setsockopt(pod, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	} else {
		int tc = 0x28;
		setsockopt(pod, IPPROTO_IPV6, IPV6_TCLASS, &tc, sizeof(tc));
	}
	setsockopt(pod, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
	setsockopt(pod, SOL_SOCKET, SO_BINDTODEVICE, "eth0", 5);
	/* Receive queue: the peer sends, the app does not read. */
	send(peer, peer_msg, sizeof(peer_msg), 0);
	usleep(50000);
	/* Send queue: the app writes until the peer's window and its buffer are
	 * full, so the queue holds sent-unacked and never-sent bytes. */
	fcntl(pod, F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t n = send(pod, big, 0, 0);
		(void)n;
		for (size_t i = 0; i < 65536; i++)
			big[total + i] = pat(total + i);
		n = send(pod, big + total, 65536, 0);
		if (n <= 0 || total + 131072 > cap)
			break;
		total += (size_t)n;
		usleep(1000);
	}
	int inq = 0, outq = 0, unsent = 0;
	ioctl(pod, SIOCINQ, &inq);
	ioctl(pod, SIOCOUTQ, &outq);
	ioctl(pod, SIOCOUTQNSD, &unsent);
	r = checkpoint(&pod, restore, NULL);
	{
		int a = 0, b = 0, c2 = 0;
		ioctl(pod, SIOCINQ, &a);
		ioctl(pod, SIOCOUTQ, &b);
		ioctl(pod, SIOCOUTQNSD, &c2);
		printf("# after checkpoint: inq %d outq %d unsent %d\n", a, b, c2);
	}
	ok(r == 0, "%s %s: checkpoint with recv queue %d, send queue %d (%d never sent)", fam, what, inq, outq, unsent);
	if (r)
		goto out;
	/* The application's view. */
	printf("# idle %d intvl %d cnt %d ka %d nodelay %d uto %d mark %d prio %d lowat %d reuse %d sndbuf %d nonblock %d\n",
	       getint(pod, IPPROTO_TCP, TCP_KEEPIDLE), getint(pod, IPPROTO_TCP, TCP_KEEPINTVL),
	       getint(pod, IPPROTO_TCP, TCP_KEEPCNT), getint(pod, SOL_SOCKET, SO_KEEPALIVE),
	       getint(pod, IPPROTO_TCP, TCP_NODELAY), getint(pod, IPPROTO_TCP, TCP_USER_TIMEOUT),
	       getint(pod, SOL_SOCKET, SO_MARK), getint(pod, SOL_SOCKET, SO_PRIORITY),
	       getint(pod, IPPROTO_TCP, TCP_NOTSENT_LOWAT), getint(pod, SOL_SOCKET, SO_REUSEADDR),
	       getint(pod, SOL_SOCKET, SO_SNDBUF), !!(fcntl(pod, F_GETFL) & O_NONBLOCK));
	ok(getint(pod, IPPROTO_TCP, TCP_KEEPIDLE) == idle && getint(pod, IPPROTO_TCP, TCP_KEEPINTVL) == intvl &&
	   getint(pod, IPPROTO_TCP, TCP_KEEPCNT) == cnt && getint(pod, SOL_SOCKET, SO_KEEPALIVE) == 1 &&
	   getint(pod, IPPROTO_TCP, TCP_NODELAY) == 1 && getint(pod, IPPROTO_TCP, TCP_USER_TIMEOUT) == uto &&
	   getint(pod, SOL_SOCKET, SO_MARK) == mark && getint(pod, SOL_SOCKET, SO_PRIORITY) == prio &&
	   getint(pod, IPPROTO_TCP, TCP_NOTSENT_LOWAT) == lowat && getint(pod, SOL_SOCKET, SO_REUSEADDR) == 1 &&
	   getint(pod, SOL_SOCKET, SO_SNDBUF) == 2 * sndbuf &&
	   (fcntl(pod, F_GETFL) & O_NONBLOCK) &&
	   (family == AF_INET ? getint(pod, IPPROTO_IP, IP_TOS) : getint(pod, IPPROTO_IPV6, IPV6_TCLASS)) == 0x28,
	   "%s %s: keepalive, nodelay, user timeout, mark, priority, lowat, reuseaddr, sndbuf, tos, O_NONBLOCK kept",
	   fam, what);
	l = sizeof(lg);
	memset(&lg, 0, sizeof(lg));
	getsockopt(pod, SOL_SOCKET, SO_LINGER, &lg, &l);
	l = sizeof(cc);
	getsockopt(pod, IPPROTO_TCP, TCP_CONGESTION, cc, &l);
	char dev[16] = "";
	socklen_t dl = sizeof(dev);
	getsockopt(pod, SOL_SOCKET, SO_BINDTODEVICE, dev, &dl);
	ok(lg.l_onoff == 1 && lg.l_linger == 7 && !strcmp(cc, "cubic") && !strcmp(dev, "eth0"),
	   "%s %s: SO_LINGER, TCP_CONGESTION (%s) and SO_BINDTODEVICE (%s) kept", fam, what, cc, dev);
	fcntl(pod, F_SETFL, 0);
	memset(got, 0, sizeof(got));
	ok(read_n(pod, got, sizeof(peer_msg)) == sizeof(peer_msg) && !memcmp(got, peer_msg, sizeof(peer_msg)),
	   "%s %s: the app reads the peer's unread data", fam, what);
	/* The rest of the app's stream, and more written after restore. */
	for (size_t i = 0; i < 4096; i++)
		big[total + i] = pat(total + i);
	/* Write the rest while the peer reads (a blocking write would wait for
	 * a peer that is not reading yet). */
	size_t done = 0, got_n = 0;
	total += 4096;
	for (int spin = 0; spin < 5000 && got_n < total; spin++) {
		if (done < 4096) {
			ssize_t w = send(pod, big + total - 4096 + done, 4096 - done, MSG_DONTWAIT);
			if (w > 0)
				done += (size_t)w;
		}
		ssize_t g = recv(peer, rd + got_n, total - got_n, MSG_DONTWAIT);
		if (g > 0)
			got_n += (size_t)g;
		else
			usleep(1000);
	}
	ssize_t n = (ssize_t)got_n;
	size_t bad = 0;
	for (size_t i = 0; n > 0 && i < (size_t)n; i++)
		bad += rd[i] != pat(i);
	if (n != (ssize_t)total) {
		struct tcp_info t2;
		socklen_t l2 = sizeof(t2);
		int oq = 0, un = 0;
		getsockopt(pod, IPPROTO_TCP, TCP_INFO, &t2, &l2);
		ioctl(pod, SIOCOUTQ, &oq);
		ioctl(pod, SIOCOUTQNSD, &un);
		printf("# stall: state %u ca %u retrans %u backoff %u probes %u unacked %u rto %u snd_wnd %u cwnd %u outq %d unsent %d total_retrans %u\n",
		       t2.tcpi_state, t2.tcpi_ca_state, t2.tcpi_retransmits, t2.tcpi_backoff, t2.tcpi_probes, t2.tcpi_unacked,
		       t2.tcpi_rto, 0u, t2.tcpi_snd_cwnd, oq, un, t2.tcpi_total_retrans);
	}
	ok(n == (ssize_t)total && bad == 0, "%s %s: the peer reads all %zu bytes in order (got %zd, %zu wrong)", fam,
	   what, total, n, bad);
	struct tcp_info ti;
	l = sizeof(ti);
	getsockopt(pod, IPPROTO_TCP, TCP_INFO, &ti, &l);
	ok(ti.tcpi_snd_mss > 1000, "%s %s: MSS kept (snd_mss %u)", fam, what, ti.tcpi_snd_mss);
out:
	close(pod);
	close(peer);
	free(big);
	free(rd);
}

/* Half-closed: the peer's FIN (and data before it) not yet read by the app. */
static void test_close_wait(int family, const char *pip, const char *qip, int port)
{
	const char *fam = family == AF_INET ? "" : " IPv6";
	int pod, peer, r;
	char buf[64] = "";
	const char msg[] = "last words before the peer's FIN";

	if (tcp_pair(family, pip, qip, port, &pod, &peer)) {
		ok(0, "CLOSE_WAIT%s: connection", fam);
		return;
	}
	send(peer, msg, sizeof(msg), 0);
	shutdown(peer, SHUT_WR);
	usleep(50000);
	r = checkpoint(&pod, 1, NULL);
	ok(r == 0, "CLOSE_WAIT%s: checkpoint and restore", fam);
	ok(read_n(pod, buf, sizeof(msg)) == sizeof(msg) && !memcmp(buf, msg, sizeof(msg)),
	   "CLOSE_WAIT%s: the app reads the data the peer sent before closing", fam);
	ok(recv(pod, buf, sizeof(buf), 0) == 0, "CLOSE_WAIT%s: then recv returns 0 (EOF)", fam);
	ok(send(pod, "reply", 5, MSG_NOSIGNAL) == 5 && read_n(peer, buf, 5) == 5 && !memcmp(buf, "reply", 5),
	   "CLOSE_WAIT%s: the app can still send; the peer gets it", fam);
	close(pod);
	ok(recv(peer, buf, sizeof(buf), 0) == 0, "CLOSE_WAIT%s: the app's close reaches the peer as EOF", fam);
	close(peer);
}

/* Our FIN sent: FIN_WAIT2 (acked) and FIN_WAIT1 (held, not acked). */
static void test_fin_wait(int port, int acked)
{
	const char *st = acked ? "FIN_WAIT2" : "FIN_WAIT1";
	int pod, peer, r;
	char buf[64] = "";
	struct netstate_hold *h = NULL;
	netstate_sock_t *img = NULL;

	if (tcp_pair(AF_INET, pod_ip, peer_ip, port, &pod, &peer)) {
		ok(0, "%s: connection", st);
		return;
	}
	send(pod, "bye", 3, 0);
	if (!acked)   /* hold first: the FIN stays unacknowledged */
		netstate_hold_begin(ns_pod, queue_num + 1, NETSTATE_HOLD_NFQUEUE, &h);
	shutdown(pod, SHUT_WR);
	usleep(50000);
	send(peer, "after", 5, 0);
	usleep(50000);
	r = checkpoint(&pod, 1, &img);
	if (h)
		netstate_hold_release(h);
	ok(r == 0 && img && img->tcp_state == (acked ? TCP_FIN_WAIT2 : TCP_FIN_WAIT1),
	   "%s: captured in that state (%u) and restored", st, img ? img->tcp_state : 0);
	netstate_sock_free(img);
	ok(read_n(peer, buf, 3) == 3 && !memcmp(buf, "bye", 3) && recv(peer, buf, sizeof(buf), 0) == 0,
	   "%s: the peer reads the app's data then EOF", st);
	ok(read_n(pod, buf, 5) == 5 && !memcmp(buf, "after", 5),
	   "%s: the app reads what the peer sent after our FIN", st);
	send(peer, "more", 4, 0);
	{
		struct tcp_info t2;
		socklen_t l2 = sizeof(t2);
		getsockopt(pod, IPPROTO_TCP, TCP_INFO, &t2, &l2);
		ok(t2.tcpi_state == TCP_FIN_WAIT2, "%s: in FIN_WAIT2 after restore and the peer's ACK (state %u)", st,
		   t2.tcpi_state);
	}
	ok(read_n(pod, buf, 4) == 4 && !memcmp(buf, "more", 4), "%s: the peer can still send to the app", st);
	close(peer);
	ok(recv(pod, buf, sizeof(buf), 0) == 0, "%s: the peer's close reaches the app as EOF", st);
	close(pod);
}

/* Both FINs: LAST_ACK (peer closed first) with data still unread. */
static void test_last_ack(int port)
{
	int pod, peer, r;
	char buf[64] = "";
	struct netstate_hold *h = NULL;
	netstate_sock_t *img = NULL;

	if (tcp_pair(AF_INET, pod_ip, peer_ip, port, &pod, &peer)) {
		ok(0, "LAST_ACK: connection");
		return;
	}
	send(peer, "unread", 6, 0);
	shutdown(peer, SHUT_WR);
	usleep(50000);
	netstate_hold_begin(ns_pod, queue_num + 1, NETSTATE_HOLD_NFQUEUE, &h);
	shutdown(pod, SHUT_WR);   /* our FIN is held: LAST_ACK */
	usleep(20000);
	r = checkpoint(&pod, 1, &img);
	netstate_hold_release(h);
	ok(r == 0 && img && img->tcp_state == TCP_LAST_ACK, "LAST_ACK: captured (%u) and restored", img ? img->tcp_state : 0);
	netstate_sock_free(img);
	ok(read_n(pod, buf, 6) == 6 && !memcmp(buf, "unread", 6) && recv(pod, buf, sizeof(buf), 0) == 0,
	   "LAST_ACK: the app reads the unread data, then EOF");
	ok(recv(peer, buf, sizeof(buf), 0) == 0, "LAST_ACK: the peer gets our FIN");
	close(pod);
	close(peer);
}

/* Urgent data: the OOB byte is still read with MSG_OOB after restore. */
static void test_oob(int family, const char *pip, const char *qip, int port)
{
	const char *fam = family == AF_INET ? "" : " IPv6";
	int pod, peer, r, mark = -1;
	char buf[64] = "", oob = 0;

	if (tcp_pair(family, pip, qip, port, &pod, &peer)) {
		ok(0, "OOB%s: connection", fam);
		return;
	}
	send(peer, "abc", 3, 0);
	send(peer, "!", 1, MSG_OOB);
	send(peer, "def", 3, 0);
	usleep(50000);
	netstate_sock_t *img = NULL;
	r = checkpoint(&pod, 1, &img);
	if (img && img->conn)
		printf("# oob image: has %d byte %u offset %u rcvq %zu\n", img->conn->has_oob, img->conn->oob_byte,
		       img->conn->oob_offset, img->conn->rcvq.len);
	netstate_sock_free(img);
	ok(r == 0, "OOB%s: checkpoint and restore with an unread urgent byte", fam);
	ssize_t on = recv(pod, &oob, 1, MSG_OOB);
	ok(on == 1 && oob == '!', "OOB%s: recv(MSG_OOB) returns the urgent byte ('%c')", fam, oob ? oob : '?');
	ok(read_n(pod, buf, 3) == 3 && !memcmp(buf, "abc", 3) && ioctl(pod, SIOCATMARK, &mark) == 0 && mark == 1,
	   "OOB%s: the stream before the mark, then SIOCATMARK is true", fam);
	ok(read_n(pod, buf, 3) == 3 && !memcmp(buf, "def", 3), "OOB%s: the stream after the mark, without the byte", fam);
	close(pod);
	close(peer);
}

/* A listener survives, and so do the connections it has not accepted yet. */
static void test_listener(int port)
{
	struct sockaddr_storage ss;
	socklen_t l = mkaddr(AF_INET, pod_ip, port, &ss);
	int ls = mksock(ns_pod, AF_INET, SOCK_STREAM), c, a, r, one = 1;
	char buf[16] = "";

	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	bind(ls, (void *)&ss, l);
	listen(ls, 16);
	r = checkpoint(&ls, 1, NULL);
	ok(r == 0 && getint(ls, SOL_SOCKET, SO_ACCEPTCONN) == 1, "LISTEN: restored and listening");
	c = mksock(ns_peer, AF_INET, SOCK_STREAM);
	ok(connect(c, (void *)&ss, l) == 0, "LISTEN: the peer connects to the restored listener");
	a = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	send(c, "hi", 2, 0);
	ok(a >= 0 && read_n(a, buf, 2) == 2 && !memcmp(buf, "hi", 2), "LISTEN: accept() returns it and data flows");
	close(a);
	close(c);

	/* Not-yet-accepted connections are not saved (docs/netstate.md): the
	 * documented outcome is a clean reset for that peer. */
	c = mksock(ns_peer, AF_INET, SOCK_STREAM);
	connect(c, (void *)&ss, l);
	send(c, "pending", 7, 0);
	usleep(50000);
	r = checkpoint(&ls, 1, NULL);
	ok(r == 0, "LISTEN with a pending connection: listener restored");
	usleep(100000);
	ssize_t rn = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
	int e = errno;
	if (rn < 0 && e == EAGAIN) {   /* nothing yet: the next segment meets the reset */
		send(c, "more", 4, MSG_NOSIGNAL);
		usleep(100000);
		rn = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
		e = errno;
	}
	ok(rn < 0 && e == ECONNRESET, "LISTEN: the pending connection's peer gets a clean reset (%s)",
	   rn < 0 ? strerror(e) : "no error");
	close(c);
	close(ls);
}

/* SYN_SENT: the handshake was under way; after restore it completes. */
static void test_syn_sent(int port, int listening)
{
	struct sockaddr_storage ss;
	socklen_t l = mkaddr(AF_INET, peer_ip, port, &ss);
	int ls = -1, c, r, one = 1, err = -1;
	struct netstate_hold *h;
	netstate_sock_t *img = NULL;
	char buf[8] = "";

	if (listening) {
		ls = mksock(ns_peer, AF_INET, SOCK_STREAM);
		setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		bind(ls, (void *)&ss, l);
		listen(ls, 4);
	}
	c = mksock(ns_pod, AF_INET, SOCK_STREAM);
	fcntl(c, F_SETFL, O_NONBLOCK);
	netstate_hold_begin(ns_pod, queue_num + 1, NETSTATE_HOLD_NFQUEUE, &h);
	connect(c, (void *)&ss, l);   /* SYN held */
	r = checkpoint(&c, 1, &img);
	ok(r == 0 && img && img->tcp_state == TCP_SYN_SENT, "SYN_SENT%s: captured and restored",
	   listening ? "" : " (nobody listening)");
	netstate_sock_free(img);
	netstate_hold_release(h);
	struct pollfd p = { .fd = c, .events = POLLOUT };
	poll(&p, 1, 5000);
	err = getint(c, SOL_SOCKET, SO_ERROR);
	if (listening) {
		int a = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		fcntl(c, F_SETFL, 0);
		send(c, "syn", 3, 0);
		ok(err == 0 && a >= 0 && read_n(a, buf, 3) == 3, "SYN_SENT: the connect completes (SO_ERROR %d), data flows",
		   err);
		close(a);
		close(ls);
	} else {
		ok(err == ECONNREFUSED, "SYN_SENT: nobody listening: connect fails cleanly with ECONNREFUSED (%s)",
		   strerror(err));
	}
	close(c);
}

/* UDP: queued datagrams come back in order with their source addresses. */
static void test_udp(int family, const char *pip, const char *qip, int port, int connected)
{
	const char *fam = family == AF_INET ? "IPv4" : "IPv6";
	struct sockaddr_storage me, to, from;
	socklen_t ml = mkaddr(family, pip, port, &me), tl, fl;
	int u = mksock(ns_pod, family, SOCK_DGRAM), s1 = mksock(ns_peer, family, SOCK_DGRAM), s2 = -1, r, ok_all = 1;
	int ports[3];
	char buf[64];

	bind(u, (void *)&me, ml);
	tl = mkaddr(family, qip, port + 1, &to);
	bind(s1, (void *)&to, tl);
	if (connected) {
		connect(u, (void *)&to, tl);
	} else {
		s2 = mksock(ns_peer, family, SOCK_DGRAM);
		tl = mkaddr(family, qip, port + 2, &to);
		bind(s2, (void *)&to, tl);
	}
	int senders[3] = { s1, connected ? s1 : s2, s1 };
	for (int i = 0; i < 3; i++) {
		snprintf(buf, sizeof(buf), "datagram %d", i);
		sendto(senders[i], buf, strlen(buf), 0, (void *)&me, ml);
		struct sockaddr_storage a;
		socklen_t al = sizeof(a);
		getsockname(senders[i], (void *)&a, &al);
		ports[i] = ntohs(family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
						   : ((struct sockaddr_in6 *)&a)->sin6_port);
	}
	usleep(50000);
	r = checkpoint(&u, 1, NULL);
	ok(r == 0, "UDP %s%s: checkpoint and restore with 3 queued datagrams", fam, connected ? " connected" : "");
	for (int i = 0; i < 3; i++) {
		char want[32], srcip[64] = "";
		fl = sizeof(from);
		memset(buf, 0, sizeof(buf));
		ssize_t n = recvfrom(u, buf, sizeof(buf) - 1, MSG_DONTWAIT, (void *)&from, &fl);
		int sport = ntohs(family == AF_INET ? ((struct sockaddr_in *)&from)->sin_port
						    : ((struct sockaddr_in6 *)&from)->sin6_port);
		inet_ntop(family, family == AF_INET ? (void *)&((struct sockaddr_in *)&from)->sin_addr
						    : (void *)&((struct sockaddr_in6 *)&from)->sin6_addr, srcip, sizeof(srcip));
		snprintf(want, sizeof(want), "datagram %d", i);
		if (n != (ssize_t)strlen(want) || strcmp(buf, want) || sport != ports[i] || strcmp(srcip, qip)) {
			ok_all = 0;
			printf("# datagram %d: got '%s' from %s:%d\n", i, buf, srcip, sport);
		}
	}
	ok(ok_all, "UDP %s%s: the app reads the 3 datagrams in order with their source addresses", fam,
	   connected ? " connected" : "");
	sendto(s1, "new", 3, 0, (void *)&me, ml);
	memset(buf, 0, sizeof(buf));
	ok(recv(u, buf, sizeof(buf), 0) == 3 && !memcmp(buf, "new", 3), "UDP %s%s: new datagrams arrive after them", fam,
	   connected ? " connected" : "");
	close(u);
	close(s1);
	if (s2 >= 0)
		close(s2);
}

/* A receive queue bigger than a fresh socket's buffer: the app read fast
 * (autotuning grew its buffer to megabytes) and then stopped reading.  The
 * restore must fit the whole queue and leave the buffer autotuned (no
 * SO_RCVBUF lock the app never asked for). */
static void test_big_rcvq(int port)
{
	int pod, peer, fl;
	size_t chunk = 1 << 16, sent = 0, got = 0;
	uint8_t *buf = malloc(chunk);
	struct timeval tv5 = { 5, 0 };

	if (tcp_pair(AF_INET, pod_ip, peer_ip, port, &pod, &peer)) {
		ok(0, "big receive queue: connection");
		free(buf);
		return;
	}
	setsockopt(pod, SOL_SOCKET, SO_RCVTIMEO, &tv5, sizeof(tv5));
	setsockopt(peer, SOL_SOCKET, SO_SNDTIMEO, &tv5, sizeof(tv5));
	/* stream 64 MiB through, read at once: autotuning grows the buffer */
	for (int i = 0; i < 1024; i++) {
		for (size_t k = 0; k < chunk; k++)
			buf[k] = pat(sent + k);
		if (send(peer, buf, chunk, 0) != (ssize_t)chunk)
			break;
		sent += chunk;
		if (read_n(pod, buf, chunk) != (ssize_t)chunk)
			break;
		got += chunk;
	}
	/* now the app stops reading; the peer fills the queue */
	fl = fcntl(peer, F_GETFL);
	fcntl(peer, F_SETFL, fl | O_NONBLOCK);
	for (;;) {
		for (size_t k = 0; k < chunk; k++)
			buf[k] = pat(sent + k);
		ssize_t n = send(peer, buf, chunk, 0);
		if (n <= 0) {
			struct pollfd pf = { peer, POLLOUT, 0 };
			if (poll(&pf, 1, 300) <= 0)
				break;
			continue;
		}
		sent += (size_t)n;
	}
	fcntl(peer, F_SETFL, fl);
	int q = 0;
	ioctl(pod, FIONREAD, &q);
	int rcvbuf = getint(pod, SOL_SOCKET, SO_RCVBUF);
	ok(q > 400000, "big receive queue: %d bytes unread (autotuned buffer %d)", q, rcvbuf);
	netstate_sock_t *img = NULL;
	int r = checkpoint(&pod, 1, &img);
	ok(r == 0, "big receive queue: checkpoint and restore");
	netstate_sock_free(img);
	int lock = -1;
	socklen_t ll = sizeof(lock);
	getsockopt(pod, SOL_SOCKET, SO_BUF_LOCK, &lock, &ll);
	ok(lock == 0, "big receive queue: the restored buffer is not locked (SO_BUF_LOCK %d)", lock);
	struct timeval tv = { 5, 0 };
	setsockopt(pod, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* the app reads everything, in order */
	int bad = 0;
	while (got < sent) {
		size_t want = sent - got < chunk ? sent - got : chunk;
		ssize_t n = read_n(pod, buf, want);
		if (n <= 0)
			break;
		for (ssize_t k = 0; k < n; k++)
			bad += buf[k] != pat(got + (size_t)k);
		got += (size_t)n;
	}
	ok(got == sent && !bad, "big receive queue: every byte read once, in order (%zu of %zu, %d wrong)",
	   got, sent, bad);
	close(pod);
	close(peer);
	free(buf);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: ns_states POD_NS PEER_NS POD_IP PEER_IP [POD_IP6 PEER_IP6]\n");
		return 2;
	}
	log_init("ns_states", 0);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	ns_pod = open_ns(argv[1]);
	ns_peer = open_ns(argv[2]);
	pod_ip = argv[3];
	peer_ip = argv[4];
	queue_num = 2000 + (unsigned)(getpid() % 20000);
	if (ns_pod < 0 || ns_peer < 0) {
		perror("netns");
		return 1;
	}
	/* as the engine does before the freeze: rings, buffers, the BPF reader
	 * (so the captures below take the engine's path) */
	netstate_capture_prepare(2);
	printf("# BPF reader %s\n", netstate_capture_bpf(NULL) ? "in use" : "not in use");
	test_established(AF_INET, pod_ip, peer_ip, 7201, 1);
	test_established(AF_INET, pod_ip, peer_ip, 7202, 0);
	if (argc >= 7)
		test_established(AF_INET6, argv[5], argv[6], 7203, 1);
	test_big_rcvq(7205);
	test_close_wait(AF_INET, pod_ip, peer_ip, 7210);
	if (argc >= 7)
		test_close_wait(AF_INET6, argv[5], argv[6], 7214);
	test_fin_wait(7211, 1);
	test_fin_wait(7212, 0);
	test_last_ack(7213);
	test_oob(AF_INET, pod_ip, peer_ip, 7220);
	if (argc >= 7)
		test_oob(AF_INET6, argv[5], argv[6], 7221);
	test_listener(7230);
	test_syn_sent(7240, 1);
	test_syn_sent(7241, 0);
	test_udp(AF_INET, pod_ip, peer_ip, 7250, 0);
	test_udp(AF_INET, pod_ip, peer_ip, 7260, 1);
	if (argc >= 7)
		test_udp(AF_INET6, argv[5], argv[6], 7270, 0);
	printf("1..%d\n", tap_n);
	return tap_fail ? 1 : 0;
}
