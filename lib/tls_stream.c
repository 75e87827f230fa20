/*
 * tls_stream.c — bulk byte streams over an established TLS session (or the
 * same path over plain TCP): migration images agent to agent, from the
 * engine's stdout pipe to the peer, and from the peer to the restoring
 * engine's stdin.  bench/tls_throughput --path agent measures exactly these
 * two functions, with and without TLS.
 *
 * Why it is shaped like this (docs/tls.md, "Throughput"):
 *  - OpenSSL 3.0 writes each TLS record (16 KiB at most) with its own
 *    write(2), and a syscall costs ~1-3 us in this VM.  The sender hands
 *    SSL_write 256 KiB at a time through a buffering BIO, so the records of
 *    one call leave in one write(2) (TLS_STREAM_WBUF).
 *  - The receiver reads with read-ahead (tls_ctx_set_read_ahead): one
 *    read(2) takes many records.  SSL_read still returns one record per
 *    call, so it gathers every record already buffered (SSL_has_pending)
 *    and writes the pipe once per 256 KiB, not once per 16 KiB.
 *  - Pipes are raised to 1 MiB (F_SETPIPE_SZ, fs.pipe-max-size) so the
 *    engine and the helper switch less often.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include "lib/log.h"
#include "lib/tls.h"

#define STREAM_BUF   (256u << 10)   /* one read from the pipe, one SSL_write */
#define STREAM_WBUF  (512u << 10)   /* buffering BIO under SSL: records of one SSL_write */
#define STREAM_PIPE  (1u << 20)
#define STREAM_RECORD (16u << 10)  /* TLS record payload, at most */

void tls_stream_pipe_size(int fd)
{
	/* Best effort: beyond fs.pipe-max-size it needs CAP_SYS_RESOURCE. */
	if (fcntl(fd, F_SETPIPE_SZ, (int)STREAM_PIPE) < 0)
		fcntl(fd, F_SETPIPE_SZ, 256 << 10);
}

int fd_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Put a write buffer between the SSL and its socket: records are gathered
 * and leave in one write(2) when the buffer fills or at BIO_flush. */
static int buffer_writes(SSL *ssl)
{
	BIO *sock = SSL_get_wbio(ssl), *buf;

	if (!sock)
		return -EINVAL;
	buf = BIO_new(BIO_f_buffer());
	if (!buf || BIO_set_write_buffer_size(buf, STREAM_WBUF) <= 0) {
		BIO_free(buf);
		return -ENOMEM;
	}
	/* The read side keeps the bare socket BIO (the SSL holds a reference). */
	BIO_up_ref(sock);
	BIO_push(buf, sock);
	SSL_set0_wbio(ssl, buf);
	return 0;
}

static int flush_writes(SSL *ssl)
{
	BIO *b = SSL_get_wbio(ssl);

	if (b && BIO_flush(b) <= 0) {
		log_err("tls stream: flush to the peer: %s", strerror(errno ? errno : EIO));
		return -EIO;
	}
	return 0;
}

int tls_stream_send(int in, SSL *ssl, int fd, uint64_t *sent)
{
	char *buf = malloc(STREAM_BUF);
	int rc = -ENOMEM;

	if (!buf)
		return rc;
	if (ssl && !getenv("ZAPC_TLS_STREAM_UNBUFFERED") && (rc = buffer_writes(ssl)) < 0)
		goto out;
	for (;;) {
		ssize_t r = read(in, buf, STREAM_BUF);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		if (ssl)
			rc = tls_write_all(ssl, buf, (size_t)r);
		else
			rc = fd_write_all(fd, buf, (size_t)r);
		if (rc < 0)
			goto out;
		/* Flush only when the pipe is drained: a full pipe means more
		 * comes at once and the buffer gathers it. */
		if (ssl && (rc = flush_writes(ssl)) < 0)
			goto out;
		if (sent)
			__atomic_add_fetch(sent, (uint64_t)r, __ATOMIC_RELAXED);
	}
	rc = ssl ? flush_writes(ssl) : 0;
out:
	free(buf);
	return rc;
}

int tls_stream_recv(SSL *ssl, int fd, int out, uint64_t *got)
{
	char *buf = malloc(STREAM_BUF);
	int rc = -ENOMEM;

	if (!buf)
		return rc;
	for (;;) {
		ssize_t r = ssl ? tls_read(ssl, buf, STREAM_BUF) : read(fd, buf, STREAM_BUF);

		if (r < 0 && !ssl && errno == EINTR)
			continue;
		/* SSL_read returns one record (16 KiB) per call: gather what
		 * read-ahead already holds, so the pipe gets large writes. */
		while (ssl && r > 0 && (size_t)r <= STREAM_BUF - STREAM_RECORD && SSL_has_pending(ssl)) {
			ssize_t m = tls_read(ssl, buf + r, STREAM_BUF - (size_t)r);

			if (m <= 0) {
				if (m < 0)
					r = m;
				break;   /* clean close: this data first, then 0 again */
			}
			r += m;
		}
		if (r == 0)
			break;
		if (r < 0) {
			rc = ssl ? (int)r : -errno;
			goto out;
		}
		if ((rc = fd_write_all(out, buf, (size_t)r)) < 0)
			goto out;
		if (got)
			*got += (uint64_t)r;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}
