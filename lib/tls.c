/*
 * tls.c — mutual TLS contexts and handshakes for zapc nodes (see tls.h).
 *
 * Policy in one place: TLS 1.3 only, the cluster CA in DIR/ca.crt as the
 * only trust anchor, a peer certificate required on both sides, chain depth
 * at most 2 (node → CA, one optional intermediate), an optional expected
 * name checked against the peer's SAN.  Every SSL carries a small note
 * (peer address, expected name, why verification failed) so that the one
 * error line a caller logs says which peer and what was wrong, instead of
 * OpenSSL's error-queue codes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lib/log.h"
#include "lib/tls.h"

/* Cipher suites in preference order: AES-GCM first (AES-NI/VAES make it the
 * fastest here, see bench/tls_throughput), ChaCha20 for peers without AES. */
#define TLS_DEFAULT_SUITES \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_VERIFY_DEPTH 2

/* Per-SSL context for error messages. */
struct tls_note {
	char peer[INET6_ADDRSTRLEN + 8];
	char expect[256];
	char bad_cn[128];	/* CN of the peer's certificate when verification failed */
	char bad_issuer[128];	/* and the CN of its issuer */
};

static int note_idx = -1;
static pthread_once_t note_once = PTHREAD_ONCE_INIT;

static void note_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
		      long argl, void *argp)
{
	free(ptr);
}

static void note_init(void)
{
	note_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, note_free);
}

static struct tls_note *note_of(const SSL *ssl)
{
	pthread_once(&note_once, note_init);
	return note_idx < 0 ? NULL : SSL_get_ex_data(ssl, note_idx);
}

const char *tls_peer_addr(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];

	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, len, "fd %d", fd);
		return buf;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else {
		snprintf(buf, len, "fd %d", fd);
	}
	return buf;
}

static void cert_cn(X509 *cert, char *buf, size_t len)
{
	buf[0] = 0;
	if (cert && X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
					      NID_commonName, buf, (int)len) < 0)
		buf[0] = 0;
}

/* Remember which certificate failed; the decision stays OpenSSL's. */
static int verify_cb(int preverify_ok, X509_STORE_CTX *sctx)
{
	SSL *ssl;
	struct tls_note *n;

	if (preverify_ok)
		return 1;
	ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	n = ssl ? note_of(ssl) : NULL;
	if (n && !n->bad_cn[0]) {
		/* Name the peer's own certificate (depth 0), not the chain element
		 * that failed: peers often send their CA along with it. */
		X509 *leaf = X509_STORE_CTX_get0_cert(sctx);

		cert_cn(leaf, n->bad_cn, sizeof(n->bad_cn));
		if (leaf && X509_NAME_get_text_by_NID(X509_get_issuer_name(leaf), NID_commonName,
						      n->bad_issuer, sizeof(n->bad_issuer)) < 0)
			n->bad_issuer[0] = 0;
	}
	return 0;
}

/* What a certificate verification result means for a cluster node. */
static void verify_reason(long vr, const struct tls_note *n, char *buf, size_t len)
{
	const char *cn = n && n->bad_cn[0] ? n->bad_cn : "?";

	switch (vr) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		snprintf(buf, len, "certificate of '%s' not signed by cluster CA (issuer '%s')",
			 cn, n && n->bad_issuer[0] ? n->bad_issuer : "?");
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		snprintf(buf, len, "certificate of '%s' expired", cn);
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		snprintf(buf, len, "certificate of '%s' not yet valid (clock skew?)", cn);
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(buf, len, "certificate is for '%s', expected '%s'", cn,
			 n ? n->expect : "?");
		break;
	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
		snprintf(buf, len, "certificate chain of '%s' longer than %d", cn,
			 TLS_VERIFY_DEPTH);
		break;
	case X509_V_ERR_INVALID_PURPOSE:
		snprintf(buf, len, "certificate of '%s' not usable for TLS client/server auth", cn);
		break;
	default:
		snprintf(buf, len, "certificate of '%s' rejected: %s", cn,
			 X509_verify_cert_error_string(vr));
	}
}

/* Turn an OpenSSL error code into a reason a person can act on. */
static int ssl_err_reason(unsigned long e, char *buf, size_t len)
{
	const char *rs = ERR_reason_error_string(e);

	switch (ERR_GET_REASON(e)) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		snprintf(buf, len, "peer presented no certificate");
		return -ECONNREFUSED;
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
		snprintf(buf, len, "peer refused our certificate: %s", rs ? rs : "?");
		return -ECONNREFUSED;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		snprintf(buf, len, "peer does not speak TLS 1.3");
		return -EPROTO;
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_HTTP_REQUEST:
		snprintf(buf, len, "peer does not speak TLS");
		return -EPROTO;
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		snprintf(buf, len, "peer closed the connection without close_notify");
		return -EPIPE;
	}
	snprintf(buf, len, "%s", rs ? rs : "unknown TLS error");
	return -EIO;
}

/*
 * Explain why an SSL call failed (ret is its return value) and map it to
 * -errno.  Clears the error queue.
 */
static int tls_explain(SSL *ssl, int ret, int saved_errno, char *buf, size_t len)
{
	struct tls_note *n = note_of(ssl);
	long vr = SSL_get_verify_result(ssl);
	int se = SSL_get_error(ssl, ret);	/* looks at the queue: before draining it */
	unsigned long e, last = 0;
	int r = -EIO;

	while ((e = ERR_get_error()))
		last = e;
	if (vr != X509_V_OK) {
		verify_reason(vr, n, buf, len);
		return -ECONNREFUSED;
	}
	switch (se) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		snprintf(buf, len, "timed out");
		return -ETIMEDOUT;
	case SSL_ERROR_ZERO_RETURN:
		snprintf(buf, len, "peer closed the connection");
		return -EPIPE;
	case SSL_ERROR_SYSCALL:
		if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK) {
			snprintf(buf, len, "timed out");
			return -ETIMEDOUT;
		}
		if (saved_errno) {
			snprintf(buf, len, "%s", strerror(saved_errno));
			return -saved_errno;
		}
		if (!last) {
			snprintf(buf, len, "peer closed the connection during handshake");
			return -EPIPE;
		}
		break;
	}
	if (last)
		r = ssl_err_reason(last, buf, len);
	else
		snprintf(buf, len, "unknown TLS error");
	return r;
}

static char *dir_file(const char *dir, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dir, name);
	return buf;
}

static const char *last_ssl_error(void)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()))
		last = e;
	return last ? ERR_reason_error_string(last) : "unknown error";
}

/* Our own certificate must chain to the CA we trust, else every peer would
 * refuse us and the reason would only show up on the other node. */
static int check_own_cert(SSL_CTX *ctx, const char *path)
{
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	int r = -EINVAL, vr;

	if (!sctx || !cert) {
		log_err("tls: %s: no certificate loaded", path);
		goto out;
	}
	if (!X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), cert, NULL)) {
		log_err("tls: %s: cannot set up verification: %s", path, last_ssl_error());
		goto out;
	}
	if (X509_verify_cert(sctx) == 1) {
		r = 0;
		goto out;
	}
	vr = X509_STORE_CTX_get_error(sctx);
	if (vr == X509_V_ERR_CERT_HAS_EXPIRED || vr == X509_V_ERR_CERT_NOT_YET_VALID) {
		/* Still usable to start; peers will refuse it with a clear alert. */
		log_warn("tls: %s: own certificate %s", path,
			 vr == X509_V_ERR_CERT_HAS_EXPIRED ? "expired" : "not yet valid");
		r = 0;
		goto out;
	}
	log_err("tls: %s: own certificate does not verify against the CA: %s", path,
		X509_verify_cert_error_string(vr));
out:
	X509_STORE_CTX_free(sctx);
	ERR_clear_error();
	return r;
}

SSL_CTX *tls_ctx_new(const char *dir, enum tls_role role)
{
	char ca[4096], crt[4096], key[4096];
	SSL_CTX *ctx;

	dir_file(dir, TLS_CA_CERT, ca, sizeof(ca));
	dir_file(dir, TLS_NODE_CERT, crt, sizeof(crt));
	dir_file(dir, TLS_NODE_KEY, key, sizeof(key));

	ctx = SSL_CTX_new(role == TLS_SERVER ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		log_err("tls: cannot create context: %s", last_ssl_error());
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS_DEFAULT_SUITES) ||
	    !SSL_CTX_set1_groups_list(ctx, "X25519:P-256")) {
		log_err("tls: cannot set protocol policy: %s", last_ssl_error());
		goto fail;
	}
	/* Only the cluster CA: no system store, so a public CA signs nothing here. */
	if (!SSL_CTX_load_verify_file(ctx, ca)) {
		log_err("tls: %s: cannot load cluster CA: %s", ca, last_ssl_error());
		goto fail;
	}
	if (!SSL_CTX_use_certificate_chain_file(ctx, crt)) {
		log_err("tls: %s: cannot load node certificate: %s", crt, last_ssl_error());
		goto fail;
	}
	{
		struct stat st;

		if (stat(key, &st) == 0 && (st.st_mode & 077))
			log_warn("tls: %s is readable by group or others (mode %03o); chmod 600",
				 key, (unsigned)(st.st_mode & 0777));
	}
	if (!SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM)) {
		log_err("tls: %s: cannot load node key: %s", key, last_ssl_error());
		goto fail;
	}
	if (!SSL_CTX_check_private_key(ctx)) {
		log_err("tls: %s does not match %s", key, crt);
		goto fail;
	}
	if (check_own_cert(ctx, crt) < 0)
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
	/* Connections are long-lived and never resumed: no tickets to manage. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (role == TLS_SERVER)
		SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_ctx_set_ciphersuites(SSL_CTX *ctx, const char *suites)
{
	if (!SSL_CTX_set_ciphersuites(ctx, suites)) {
		log_err("tls: cipher suites '%s' rejected: %s", suites, last_ssl_error());
		return -EINVAL;
	}
	return 0;
}

int tls_ctx_set_read_ahead(SSL_CTX *ctx, size_t bytes)
{
	SSL_CTX_set_read_ahead(ctx, bytes > 0);
	if (bytes > 0)
		SSL_CTX_set_default_read_buffer_len(ctx, bytes);
	return 0;
}

/* A fresh SSL for fd with its note; the expected name goes to the verifier. */
static SSL *tls_ssl_new(SSL_CTX *ctx, int fd, const char *expect)
{
	struct tls_note *n = calloc(1, sizeof(*n));
	SSL *ssl = SSL_new(ctx);

	pthread_once(&note_once, note_init);
	if (!ssl || !n || note_idx < 0 || !SSL_set_ex_data(ssl, note_idx, n)) {
		log_err("tls: out of memory");
		free(n);
		SSL_free(ssl);
		return NULL;
	}
	tls_peer_addr(fd, n->peer, sizeof(n->peer));
	if (expect && *expect) {
		struct in6_addr a6;
		struct in_addr a4;
		int is_ip, ok;

		snprintf(n->expect, sizeof(n->expect), "%s", expect);
		/* An IP must match an IP SAN, anything else a DNS SAN. */
		is_ip = inet_pton(AF_INET, expect, &a4) == 1 ||
			inet_pton(AF_INET6, expect, &a6) == 1;
		if (is_ip)
			ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), expect);
		else
			ok = SSL_set1_host(ssl, expect) && SSL_set_tlsext_host_name(ssl, expect);
		if (!ok) {
			log_err("tls: cannot expect peer name '%s'", expect);
			SSL_free(ssl);
			return NULL;
		}
	}
	if (fd >= 0 && !SSL_set_fd(ssl, fd)) {
		log_err("tls: cannot attach fd %d: %s", fd, last_ssl_error());
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

static void set_timeout(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int tls_handshake_fd(SSL_CTX *ctx, int fd, const char *expect, int timeout_ms,
			    int server, SSL **out)
{
	char why[512];
	SSL *ssl;
	int ret, r, err;

	*out = NULL;
	ssl = tls_ssl_new(ctx, fd, server ? NULL : expect);
	if (!ssl)
		return -ENOMEM;
	if (timeout_ms > 0)
		set_timeout(fd, timeout_ms);
	ERR_clear_error();
	errno = 0;
	ret = server ? SSL_accept(ssl) : SSL_connect(ssl);
	err = errno;
	if (timeout_ms > 0)
		set_timeout(fd, 0);
	if (ret == 1) {
		*out = ssl;
		return 0;
	}
	r = tls_explain(ssl, ret, err, why, sizeof(why));
	log_err("tls: peer %s: %s", note_of(ssl)->peer, why);
	SSL_free(ssl);
	return r;
}

int tls_accept_fd(SSL_CTX *ctx, int fd, int timeout_ms, SSL **out)
{
	return tls_handshake_fd(ctx, fd, NULL, timeout_ms, 1, out);
}

int tls_connect_fd(SSL_CTX *ctx, int fd, const char *expect, int timeout_ms, SSL **out)
{
	return tls_handshake_fd(ctx, fd, expect, timeout_ms, 0, out);
}

int tls_write_all(SSL *ssl, const void *buf, size_t len)
{
	const char *p = buf;
	char why[512];
	size_t done;
	int ret, err;

	while (len > 0) {
		ERR_clear_error();
		errno = 0;
		ret = SSL_write_ex(ssl, p, len, &done);
		err = errno;
		if (ret <= 0) {
			int r, wret = ret;

			if (SSL_get_error(ssl, ret) == SSL_ERROR_SYSCALL &&
			    (err == ECONNRESET || err == EPIPE)) {
				/* TLS 1.3: a server that refused our certificate sent an
				 * alert and closed; we only see the reset when writing.
				 * The alert may still be readable and says why. */
				char b;

				int rret;

				ERR_clear_error();
				errno = 0;
				rret = SSL_read(ssl, &b, 1);
				if (rret <= 0 && ERR_peek_last_error()) {
					r = tls_explain(ssl, rret, errno, why, sizeof(why));
					log_err("tls: peer %s: %s", note_of(ssl)->peer, why);
					return r;
				}
				ERR_clear_error();
			}
			r = tls_explain(ssl, wret, err, why, sizeof(why));
			log_err("tls: peer %s: write: %s", note_of(ssl)->peer, why);
			return r;
		}
		p += done;
		len -= done;
	}
	return 0;
}

ssize_t tls_read(SSL *ssl, void *buf, size_t len)
{
	char why[512];
	size_t got;
	int ret, err, r;

	ERR_clear_error();
	errno = 0;
	ret = SSL_read_ex(ssl, buf, len, &got);
	err = errno;
	if (ret > 0)
		return (ssize_t)got;
	if (SSL_get_error(ssl, ret) == SSL_ERROR_ZERO_RETURN)
		return 0;
	r = tls_explain(ssl, ret, err, why, sizeof(why));
	log_err("tls: peer %s: read: %s", note_of(ssl)->peer, why);
	return r;
}

void tls_close(SSL *ssl)
{
	if (!ssl)
		return;
	/* Best effort: the peer may already be gone. */
	if (SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
		SSL_shutdown(ssl);
	ERR_clear_error();
	SSL_free(ssl);
}

static struct bufferevent *tls_bev_new(struct event_base *base, SSL_CTX *ctx, int fd,
				       const char *expect, int server)
{
	struct bufferevent *bev;
	SSL *ssl = tls_ssl_new(ctx, -1, server ? NULL : expect);
	char peer[sizeof(((struct tls_note *)0)->peer)];

	if (!ssl) {
		close(fd);
		return NULL;
	}
	tls_peer_addr(fd, peer, sizeof(peer));
	snprintf(note_of(ssl)->peer, sizeof(peer), "%s", peer);
	/* libevent frees ssl itself when this fails (BEV_OPT_CLOSE_ON_FREE),
	 * so only our copy of the peer address is used afterwards. */
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
					     server ? BUFFEREVENT_SSL_ACCEPTING
						    : BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		log_err("tls: peer %s: cannot create TLS bufferevent", peer);
		close(fd);
	}
	return bev;
}

struct bufferevent *tls_bev_server(struct event_base *base, SSL_CTX *ctx, int fd)
{
	return tls_bev_new(base, ctx, fd, NULL, 1);
}

struct bufferevent *tls_bev_client(struct event_base *base, SSL_CTX *ctx, int fd,
				   const char *expect)
{
	return tls_bev_new(base, ctx, fd, expect, 0);
}

const char *tls_bev_strerror(struct bufferevent *bev, char *buf, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	struct tls_note *n = ssl ? note_of(ssl) : NULL;
	const char *peer = n ? n->peer : "?";
	unsigned long e, last = 0;
	char why[512];
	long vr;
	int err = EVUTIL_SOCKET_ERROR();

	while ((e = bufferevent_get_openssl_error(bev)))
		last = e;
	vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (vr != X509_V_OK)
		verify_reason(vr, n, why, sizeof(why));
	else if (last)
		ssl_err_reason(last, why, sizeof(why));
	else if (err)
		snprintf(why, sizeof(why), "%s", strerror(err));
	else
		snprintf(why, sizeof(why), "connection closed");
	snprintf(buf, len, "peer %s: %s", peer, why);
	return buf;
}

int tls_peer_name(SSL *ssl, char *buf, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);

	if (!cert || SSL_get_verify_result(ssl) != X509_V_OK)
		return -ENOENT;
	cert_cn(cert, buf, len);
	return buf[0] ? 0 : -ENOENT;
}
