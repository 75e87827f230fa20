/*
 * tls.h — mutual TLS between zapc nodes (agents, manager) with a cluster CA.
 *
 * Every zapc process that talks to another node loads one TLS directory:
 *
 *     DIR/ca.crt     the cluster CA certificate (the only trust anchor)
 *     DIR/node.crt   this node's certificate, signed by the cluster CA
 *     DIR/node.key   its private key (EC P-256), mode 0600
 *
 * (`zapc ca init` and `zapc ca issue` write exactly this layout.)  Both sides
 * of a connection present a certificate and both require the peer's to chain
 * to the cluster CA: TLS 1.3 only, no system trust store, depth ≤ 2.  A
 * client may also name the node it expects ("n2" or an IP); the peer's
 * certificate must then carry that name in its SAN.  A server cannot know
 * who is calling before the handshake, so it learns the client's name with
 * tls_peer_name() and decides itself (the manager accepts any node; see
 * docs/tls.md).
 *
 * Errors are one line naming the peer and the reason, e.g.
 *     tls: peer 10.0.0.2:7000: certificate not signed by cluster CA
 */
#ifndef ZAPC_TLS_H
#define ZAPC_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct bufferevent;
struct event_base;

enum tls_role { TLS_SERVER, TLS_CLIENT };

/* File names inside a TLS directory. */
#define TLS_CA_CERT   "ca.crt"
#define TLS_NODE_CERT "node.crt"
#define TLS_NODE_KEY  "node.key"

/*
 * A context for one role, loaded from DIR.  Checks that node.key matches
 * node.crt and that node.crt itself chains to ca.crt, so a misconfigured
 * node fails at start-up rather than at its first connection.  NULL on
 * error (logged).  Free with SSL_CTX_free().
 */
SSL_CTX *tls_ctx_new(const char *dir, enum tls_role role);

/* Restrict the TLS 1.3 cipher suites (OpenSSL syntax, e.g.
 * "TLS_AES_128_GCM_SHA256").  0 or -EINVAL (logged). */
int tls_ctx_set_ciphersuites(SSL_CTX *ctx, const char *suites);

/*
 * Bulk receivers (blocking streams): let OpenSSL read up to `bytes` from the
 * socket at once instead of one record header and one body per TLS record
 * (two read(2)s per 16 KiB).  bench/tls_throughput measures it.  Not tried
 * with bufferevents; 0 turns it off (the default).
 */
int tls_ctx_set_read_ahead(SSL_CTX *ctx, size_t bytes);

/*
 * Blocking handshake on a connected socket.  `expect` (client side only, may
 * be NULL) is the node name or IP address the server's certificate must
 * carry.  `timeout_ms` > 0 bounds the handshake (SO_RCVTIMEO/SO_SNDTIMEO are
 * set for its duration and cleared after).  On success *out is an SSL that
 * owns nothing but the session: the caller still owns fd and closes it after
 * SSL_free().  0 or -errno (-ECONNREFUSED for an authentication failure,
 * -ETIMEDOUT, -EIO), with one line logged.
 *
 * TLS 1.3 note: the client finishes its handshake before the server has
 * checked the client's certificate, so a client that the server refuses
 * learns it at its first tls_read() (which then fails with the server's
 * alert, e.g. "peer refused our certificate: unknown ca").
 */
int tls_accept_fd(SSL_CTX *ctx, int fd, int timeout_ms, SSL **out);
int tls_connect_fd(SSL_CTX *ctx, int fd, const char *expect, int timeout_ms, SSL **out);

/* Blocking I/O on an established session.  tls_write_all: 0 or -errno.
 * tls_read: bytes read (> 0), 0 on a clean close by the peer, -errno. */
int tls_write_all(SSL *ssl, const void *buf, size_t len);
ssize_t tls_read(SSL *ssl, void *buf, size_t len);

/*
 * Bulk streams (lib/tls_stream.c): migration images agent to agent.
 * tls_stream_send copies everything from `in` (a pipe) until EOF to the
 * session, or to the plain socket fd when ssl is NULL (the same path without
 * TLS, for bench/tls_throughput).  It installs a write buffer under the SSL
 * (records of one call leave in one write(2)); the SSL stays usable.
 * tls_stream_recv copies the session (or fd) to `out` until a clean close.
 * *sent / *got (may be NULL) count payload bytes; *sent is updated
 * atomically (another process may read it from shared memory).  0 or -errno.
 * tls_stream_pipe_size raises a pipe to 1 MiB (best effort).
 */
int tls_stream_send(int in, SSL *ssl, int fd, uint64_t *sent);
/* write all of buf to a plain fd (EINTR retried): 0 or -errno */
int fd_write_all(int fd, const void *buf, size_t len);
int tls_stream_recv(SSL *ssl, int fd, int out, uint64_t *got);
void tls_stream_pipe_size(int fd);

/* Orderly close (sends close_notify) and free; does not close the fd. */
void tls_close(SSL *ssl);

/*
 * libevent: wrap a connected socket in a bufferevent_openssl that performs
 * the handshake (BEV_OPT_CLOSE_ON_FREE: the bufferevent owns fd from here
 * on, also on failure).  The handshake result arrives as BEV_EVENT_CONNECTED
 * or BEV_EVENT_ERROR in the event callback; on error, tls_bev_strerror()
 * says why.  NULL on error (fd closed).
 */
struct bufferevent *tls_bev_server(struct event_base *base, SSL_CTX *ctx, int fd);
struct bufferevent *tls_bev_client(struct event_base *base, SSL_CTX *ctx, int fd,
				   const char *expect);

/* Why a TLS bufferevent failed: "peer 10.0.0.2:7000: certificate expired". */
const char *tls_bev_strerror(struct bufferevent *bev, char *buf, size_t len);

/* The verified peer's node name (the CN of its certificate) into buf.
 * 0 or -ENOENT if no verified peer certificate. */
int tls_peer_name(SSL *ssl, char *buf, size_t len);

/* "ADDR:PORT" of the socket's peer (or "fd N" if unknown), for messages. */
const char *tls_peer_addr(int fd, char *buf, size_t len);

#endif
