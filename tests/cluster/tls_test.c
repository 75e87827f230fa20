/*
 * tls_test.c — lib/tls with real servers and clients on loopback, using
 * certificates from cli/ca.c.  What a cluster operator relies on:
 *  - two nodes of the same cluster CA authenticate each other and a stream
 *    arrives intact (checksum), blocking and libevent variants;
 *  - a peer not signed by the cluster CA is refused, in both directions;
 *  - a client with no certificate, an expired certificate, a server with
 *    the wrong name, and a peer that is not speaking TLS are refused;
 *  - each refusal is one log line that names the peer and the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "cli/ca.h"
#include "lib/log.h"
#include "lib/tls.h"
#include "tests/unit/tap.h"

static char tmp[64];
static char logpath[128];
static long log_off;

/* --- helpers ------------------------------------------------------------ */

static char *path(const char *sub)
{
	static char buf[8][256];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmp, sub);
	return buf[i];
}

/* Show logged lines as TAP comments, so a reader sees the actual messages. */
static const char *show(const char *log)
{
	const char *p = log, *e;

	while (*p) {
		e = strchr(p, '\n');
		if (!e)
			e = p + strlen(p);
		printf("#   %.*s\n", (int)(e - p), p);
		p = *e ? e + 1 : e;
	}
	return log;
}

/* What was logged since the last call (stderr goes to a file). */
static const char *new_log(void)
{
	static char buf[16384];
	FILE *f = fopen(logpath, "r");
	size_t n = 0;

	buf[0] = 0;
	if (!f)
		return buf;
	fseek(f, log_off, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	log_off += (long)n;
	fclose(f);
	return buf;
}

static uint64_t fnv64(uint64_t h, const unsigned char *p, size_t n)
{
	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV0 0xcbf29ce484222325ULL

static void fill(unsigned char *p, size_t n, uint32_t seed)
{
	uint32_t x = seed | 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

static int listen_lo(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static int connect_lo(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle))
		return 1;
	tap_diag("log was: %s", hay);
	return 0;
}

/* --- a blocking server in a thread -------------------------------------- */

/* Protocol: client sends u64 length + bytes; server answers u64 fnv64. */
struct server {
	SSL_CTX *ctx;
	int lfd;
	int rc;			/* tls_accept_fd result */
	int data_rc;		/* 0 if the stream was read and answered */
	char peer_name[128];
};

static int read_full(SSL *ssl, void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t got = tls_read(ssl, p, n);

		if (got <= 0)
			return got == 0 ? -EPIPE : (int)got;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	unsigned char buf[65536];
	uint64_t len, h = FNV0;
	SSL *ssl = NULL;
	int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

	s->data_rc = -1;
	if (fd < 0) {
		s->rc = -errno;
		return NULL;
	}
	s->rc = tls_accept_fd(s->ctx, fd, 5000, &ssl);
	if (s->rc < 0)
		goto out;
	tls_peer_name(ssl, s->peer_name, sizeof(s->peer_name));
	if (read_full(ssl, &len, sizeof(len)) < 0 || len > (1ULL << 31))
		goto out;
	while (len > 0) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);

		if (read_full(ssl, buf, n) < 0)
			goto out;
		h = fnv64(h, buf, n);
		len -= n;
	}
	if (tls_write_all(ssl, &h, sizeof(h)) == 0)
		s->data_rc = 0;
out:
	tls_close(ssl);
	close(fd);
	return NULL;
}

struct client_result {
	int hs;		/* tls_connect_fd result */
	int xfer;	/* 0: checksum came back and matched; <0: error */
};

/* Connect with cctx (expecting `expect`), send `size` bytes, compare sums. */
static struct client_result run_pair(SSL_CTX *sctx, SSL_CTX *cctx, const char *expect,
				     size_t size, struct server *srv)
{
	struct client_result cr = { -1, -1 };
	unsigned char *data = malloc(size ? size : 1);
	uint64_t len = size, want, got = 0;
	pthread_t th;
	SSL *ssl = NULL;
	int port, fd;

	memset(srv, 0, sizeof(*srv));
	srv->ctx = sctx;
	srv->lfd = listen_lo(&port);
	if (srv->lfd < 0 || !data || pthread_create(&th, NULL, server_main, srv) != 0) {
		free(data);
		return cr;
	}
	fill(data, size, (uint32_t)size);
	want = fnv64(FNV0, data, size);
	fd = connect_lo(port);
	cr.hs = fd < 0 ? -errno : tls_connect_fd(cctx, fd, expect, 5000, &ssl);
	if (cr.hs == 0) {
		cr.xfer = tls_write_all(ssl, &len, sizeof(len));
		if (cr.xfer == 0)
			cr.xfer = tls_write_all(ssl, data, size);
		if (cr.xfer == 0)
			cr.xfer = read_full(ssl, &got, sizeof(got));
		if (cr.xfer == 0 && got != want)
			cr.xfer = -EBADMSG;
	}
	tls_close(ssl);
	if (fd >= 0)
		close(fd);
	pthread_join(th, NULL);
	close(srv->lfd);
	free(data);
	return cr;
}

/* --- libevent pair -------------------------------------------------------- */

struct bev_pair {
	struct event_base *base;
	size_t size, sent;
	uint64_t srv_h, srv_len;
	uint64_t want;
	struct bufferevent *sb;		/* server side, until its event callback frees it */
	int client_ok, server_connected, server_error, client_error;
	char server_why[512], client_why[512];
	unsigned char *data;
};

static void srv_read(struct bufferevent *bev, void *arg)
{
	struct bev_pair *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char buf[16384];
	size_t n;

	while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0 && n != (size_t)-1) {
		p->srv_h = fnv64(p->srv_h, buf, n);
		p->srv_len += n;
	}
	if (p->srv_len == p->size)
		bufferevent_write(bev, &p->srv_h, sizeof(p->srv_h));
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
	struct bev_pair *p = arg;

	if (what & BEV_EVENT_CONNECTED) {
		p->server_connected = 1;
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		p->server_error = 1;
		tls_bev_strerror(bev, p->server_why, sizeof(p->server_why));
	}
	bufferevent_free(bev);
	p->sb = NULL;
}

static void cli_write_more(struct bufferevent *bev, void *arg)
{
	struct bev_pair *p = arg;
	size_t n = p->size - p->sent;

	if (n > 256 * 1024)
		n = 256 * 1024;
	if (n > 0) {
		bufferevent_write(bev, p->data + p->sent, n);
		p->sent += n;
	}
}

static void cli_read(struct bufferevent *bev, void *arg)
{
	struct bev_pair *p = arg;
	uint64_t h;

	if (evbuffer_get_length(bufferevent_get_input(bev)) < sizeof(h))
		return;
	bufferevent_read(bev, &h, sizeof(h));
	p->client_ok = h == p->want;
	event_base_loopexit(p->base, NULL);
}

static void cli_event(struct bufferevent *bev, short what, void *arg)
{
	struct bev_pair *p = arg;

	if (what & BEV_EVENT_CONNECTED) {
		cli_write_more(bev, arg);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
		p->client_error = 1;
		tls_bev_strerror(bev, p->client_why, sizeof(p->client_why));
		event_base_loopexit(p->base, NULL);
	}
}

static void bev_run(SSL_CTX *sctx, SSL_CTX *cctx, const char *expect, size_t size,
		    struct bev_pair *p)
{
	struct timeval limit = { 10, 0 };
	struct bufferevent *sb, *cb;
	int port, lfd, cfd, sfd;

	memset(p, 0, sizeof(*p));
	p->size = size;
	p->srv_h = FNV0;
	p->data = malloc(size);
	fill(p->data, size, 7);
	p->want = fnv64(FNV0, p->data, size);
	p->base = event_base_new();
	lfd = listen_lo(&port);
	cfd = connect_lo(port);
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	evutil_make_socket_nonblocking(cfd);
	evutil_make_socket_nonblocking(sfd);
	sb = tls_bev_server(p->base, sctx, sfd);
	cb = tls_bev_client(p->base, cctx, cfd, expect);
	if (!sb || !cb)
		goto out;
	p->sb = sb;
	sb = NULL;
	bufferevent_setcb(p->sb, srv_read, NULL, srv_event, p);
	bufferevent_setcb(cb, cli_read, cli_write_more, cli_event, p);
	bufferevent_enable(p->sb, EV_READ | EV_WRITE);
	bufferevent_enable(cb, EV_READ | EV_WRITE);
	event_base_loopexit(p->base, &limit);
	event_base_dispatch(p->base);
	/* Let the server side see the alert / EOF, then tidy up. */
	bufferevent_free(cb);
	cb = NULL;
	limit.tv_sec = 1;
	event_base_loopexit(p->base, &limit);
	if (!p->server_error && p->server_connected)
		goto out;
	event_base_dispatch(p->base);
out:
	if (cb)
		bufferevent_free(cb);
	if (sb)
		bufferevent_free(sb);
	if (p->sb)
		bufferevent_free(p->sb);
	event_base_free(p->base);
	free(p->data);
}

/* --- fixtures --------------------------------------------------------------- */

static void copy_file(const char *from, const char *to, int append)
{
	char buf[8192];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
	ssize_t n;

	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
}

static int issue(const char *ca, const char *name, const char *out, const char *ip, int days)
{
	const char *ips[1] = { ip };
	struct ca_issue_req q = { .ca_dir = ca, .name = name, .out_dir = out,
				  .ips = ips, .n_ips = ip ? 1 : 0, .days = days };

	return ca_issue(&q);
}

/* A client context that trusts the CA but has no certificate of its own. */
static SSL_CTX *anon_client_ctx(void)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
	SSL_CTX_load_verify_file(c, path("n1/ca.crt"));
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	return c;
}

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (tmp[0] && system(cmd) != 0)
		fprintf(stdout, "# could not remove %s\n", tmp);
}

int main(void)
{
	SSL_CTX *s1, *c2, *rogue_c, *rogue_s, *exp_c, *anon, *c2b;
	struct client_result cr;
	struct server srv;
	struct bev_pair bp;
	struct stat st;
	const char *l;
	int fd;

	log_init("tls_test", 0);
	snprintf(tmp, sizeof(tmp), "/tmp/zapc-tls-XXXXXX");
	if (!mkdtemp(tmp))
		return 1;
	atexit(cleanup);
	snprintf(logpath, sizeof(logpath), "%s/stderr.log", tmp);
	fflush(stderr);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	dup2(fd, STDERR_FILENO);
	close(fd);

	/* Cluster CA, two nodes; a rogue CA with a node that trusts both CAs,
	 * so the refusal tested is the real node's, not the rogue's. */
	ok(ca_init(path("ca"), NULL, 0, 0) == 0, "ca init");
	ok(stat(path("ca/ca.key"), &st) == 0 && (st.st_mode & 0777) == 0600, "CA key is 0600");
	is_int(ca_init(path("ca"), NULL, 0, 0), -EEXIST, "ca init refuses to replace a CA key");
	ok(issue(path("ca"), "n1", path("n1"), "127.0.0.1", 0) == 0, "issue n1 (IP 127.0.0.1)");
	ok(issue(path("ca"), "n2", path("n2"), NULL, 0) == 0, "issue n2");
	ok(stat(path("n2/node.key"), &st) == 0 && (st.st_mode & 0777) == 0600, "node key is 0600");
	ok(issue(path("ca"), "n3", path("n3"), NULL, -1) == 0, "issue n3 already expired");
	ok(ca_init(path("rogueca"), "rogue CA", 0, 0) == 0 &&
	   issue(path("rogueca"), "n1", path("rogue"), "127.0.0.1", 0) == 0,
	   "rogue CA and a rogue 'n1'");
	copy_file(path("ca/ca.crt"), path("rogue/ca.crt"), 1);
	new_log();

	s1 = tls_ctx_new(path("n1"), TLS_SERVER);
	c2 = tls_ctx_new(path("n2"), TLS_CLIENT);
	rogue_c = tls_ctx_new(path("rogue"), TLS_CLIENT);
	rogue_s = tls_ctx_new(path("rogue"), TLS_SERVER);
	exp_c = tls_ctx_new(path("n3"), TLS_CLIENT);
	anon = anon_client_ctx();
	ok(s1 && c2 && rogue_c && rogue_s && exp_c && anon, "contexts load");
	l = new_log();
	ok(contains(l, "n3/node.crt: own certificate expired"), "loading an expired own cert warns");

	/* Success: mutual auth, data intact, names seen on both sides. */
	cr = run_pair(s1, c2, "n1", 8 << 20, &srv);
	ok(cr.hs == 0 && srv.rc == 0, "same CA: mutual authentication succeeds");
	ok(cr.xfer == 0 && srv.data_rc == 0, "8 MiB round trip: checksum matches");
	is_str(srv.peer_name, "n2", "server learns the client's node name");
	cr = run_pair(s1, c2, "127.0.0.1", 4096, &srv);
	ok(cr.hs == 0 && cr.xfer == 0, "client expecting the server's IP SAN succeeds");
	ok(new_log()[0] == 0, "no errors logged on success");

	/* Unsigned client → server refuses. */
	cr = run_pair(s1, rogue_c, "n1", 4096, &srv);
	l = show(new_log());
	is_int(srv.rc, -ECONNREFUSED, "server refuses a client not signed by the cluster CA");
	ok(cr.xfer < 0, "refused client cannot exchange data");
	ok(contains(l, "tls: peer 127.0.0.1:") &&
	   contains(l, "certificate of 'n1' not signed by cluster CA"),
	   "server says which peer and why");
	ok(contains(l, "peer refused our certificate"), "refused client is told so");

	/* Unsigned server → client refuses. */
	cr = run_pair(rogue_s, c2, "n1", 4096, &srv);
	l = show(new_log());
	is_int(cr.hs, -ECONNREFUSED, "client refuses a server not signed by the cluster CA");
	ok(srv.rc < 0 && srv.data_rc < 0, "rogue server gets no data");
	ok(contains(l, "not signed by cluster CA"), "client error names the reason");

	/* No certificate at all. */
	{
		struct sockaddr_in a;
		pthread_t th;
		SSL *ssl;
		int port, cfd;

		memset(&srv, 0, sizeof(srv));
		srv.ctx = s1;
		srv.lfd = listen_lo(&port);
		pthread_create(&th, NULL, server_main, &srv);
		cfd = connect_lo(port);
		ssl = SSL_new(anon);
		SSL_set_fd(ssl, cfd);
		SSL_connect(ssl);
		{
			char b[16];
			SSL_read(ssl, b, sizeof(b));	/* TLS 1.3: the alert comes here */
		}
		SSL_free(ssl);
		close(cfd);
		pthread_join(th, NULL);
		close(srv.lfd);
		(void)a;
		ERR_clear_error();
		l = show(new_log());
		is_int(srv.rc, -ECONNREFUSED, "server refuses a client with no certificate");
		ok(contains(l, "peer presented no certificate"), "and says so");
	}

	/* Expired certificate. */
	cr = run_pair(s1, exp_c, "n1", 4096, &srv);
	l = show(new_log());
	is_int(srv.rc, -ECONNREFUSED, "server refuses an expired client certificate");
	ok(contains(l, "certificate of 'n3' expired"), "and says it expired");

	/* Wrong name: the client wanted n9 (or another IP) and got n1. */
	cr = run_pair(s1, c2, "n9", 4096, &srv);
	l = show(new_log());
	is_int(cr.hs, -ECONNREFUSED, "client refuses a server whose name is not the expected one");
	ok(contains(l, "certificate is for 'n1', expected 'n9'"), "and names both");
	cr = run_pair(s1, c2, "127.0.0.2", 4096, &srv);
	new_log();
	is_int(cr.hs, -ECONNREFUSED, "client refuses a server without the expected IP");

	/* Not TLS at all. */
	{
		pthread_t th;
		int port, cfd;
		const char req[] = "GET / HTTP/1.0\r\n\r\n";

		memset(&srv, 0, sizeof(srv));
		srv.ctx = s1;
		srv.lfd = listen_lo(&port);
		pthread_create(&th, NULL, server_main, &srv);
		cfd = connect_lo(port);
		if (write(cfd, req, sizeof(req) - 1) < 0)
			tap_diag("write: %s", strerror(errno));
		pthread_join(th, NULL);
		close(cfd);
		close(srv.lfd);
		l = show(new_log());
		ok(srv.rc < 0 && contains(l, "peer does not speak TLS"),
		   "a plain-text peer is refused: not TLS");
	}

	/* libevent variant. */
	bev_run(s1, c2, "n1", 4 << 20, &bp);
	ok(bp.client_ok && bp.server_connected && !bp.server_error,
	   "bufferevent_openssl: 4 MiB round trip, checksum matches");
	if (bp.client_error)
		tap_diag("client: %s", bp.client_why);
	ok(new_log()[0] == 0, "no errors logged on bufferevent success");
	bev_run(s1, rogue_c, "n1", 4096, &bp);
	ok(bp.server_error && contains(bp.server_why, "not signed by cluster CA") &&
	   contains(bp.server_why, "peer 127.0.0.1:"),
	   "bufferevent server refuses an unsigned client, tls_bev_strerror says why");
	ok(!bp.client_ok, "unsigned bufferevent client gets no answer");
	bev_run(rogue_s, c2, "n1", 4096, &bp);
	ok(bp.client_error && contains(bp.client_why, "not signed by cluster CA"),
	   "bufferevent client refuses an unsigned server");
	new_log();

	/* A key others can read still loads, with a warning naming it. */
	chmod(path("n2/node.key"), 0644);
	c2b = tls_ctx_new(path("n2"), TLS_CLIENT);
	ok(c2b && contains(new_log(), "n2/node.key is readable by group or others (mode 644)"),
	   "a key readable by others is reported");
	SSL_CTX_free(c2b);

	/* Broken TLS directories fail at load, with the file named. */
	copy_file(path("n1/node.key"), path("n2/node.key"), 0);
	c2b = tls_ctx_new(path("n2"), TLS_CLIENT);
	l = show(new_log());
	ok(!c2b && contains(l, "n2/node.key") && contains(l, "mismatch"),
	   "mismatched key refused at load, file named");
	ok(!tls_ctx_new(path("nope"), TLS_SERVER) && contains(new_log(), "nope/ca.crt"),
	   "missing directory refused at load");
	copy_file(path("rogueca/ca.crt"), path("n1/ca.crt"), 0);
	ok(!tls_ctx_new(path("n1"), TLS_SERVER) &&
	   contains(new_log(), "own certificate does not verify against the CA"),
	   "own certificate from another CA refused at load");

	SSL_CTX_free(s1);
	SSL_CTX_free(c2);
	SSL_CTX_free(rogue_c);
	SSL_CTX_free(rogue_s);
	SSL_CTX_free(exp_c);
	SSL_CTX_free(anon);
	return tap_done();
}
