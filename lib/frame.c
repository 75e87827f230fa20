/*
 * frame.c — see frame.h.  The only place that knows the frame layout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "lib/frame.h"

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

int frame_peek(const void *buf, size_t len, size_t max, size_t *payload_len)
{
	uint32_t n;

	if (len < FRAME_HDR)
		return 0;
	n = get_be32(buf);
	if (n > max)
		return -EMSGSIZE;
	*payload_len = n;
	return len - FRAME_HDR >= n ? 1 : 0;
}

int frame_evbuffer_pull(struct evbuffer *in, size_t max, uint8_t **payload, size_t *len)
{
	uint8_t hdr[FRAME_HDR];
	uint32_t n;
	uint8_t *p = NULL;

	if (evbuffer_get_length(in) < FRAME_HDR)
		return 0;
	if (evbuffer_copyout(in, hdr, FRAME_HDR) != (ssize_t)FRAME_HDR)
		return 0;
	n = get_be32(hdr);
	if (n > max)
		return -EMSGSIZE;
	if (evbuffer_get_length(in) - FRAME_HDR < n)
		return 0;
	if (n) {
		p = malloc(n);
		if (!p)
			return -ENOMEM;
	}
	evbuffer_drain(in, FRAME_HDR);
	if (n && evbuffer_remove(in, p, n) != (int)n) {
		free(p);
		return -EIO;
	}
	*payload = p;
	*len = n;
	return 1;
}

/* Pack msg behind a 4-byte header into a malloc'd buffer. */
static int pack_frame(const ProtobufCMessage *msg, uint8_t **out, size_t *outlen)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;

	if (n > FRAME_MAX)
		return -EMSGSIZE;
	buf = malloc(FRAME_HDR + n);
	if (!buf)
		return -ENOMEM;
	put_be32(buf, (uint32_t)n);
	protobuf_c_message_pack(msg, buf + FRAME_HDR);
	*out = buf;
	*outlen = FRAME_HDR + n;
	return 0;
}

int frame_evbuffer_add_msg(struct evbuffer *out, const ProtobufCMessage *msg)
{
	uint8_t *buf;
	size_t len;
	int rc = pack_frame(msg, &buf, &len);

	if (rc < 0)
		return rc;
	rc = evbuffer_add(out, buf, len) < 0 ? -ENOMEM : 0;
	free(buf);
	return rc;
}

/* Write all of buf; the fds go with the first sendmsg. */
static int send_all(int sock, const uint8_t *buf, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	size_t off = 0;

	if (nfds < 0 || nfds > FRAME_MAX_FDS)
		return -EINVAL;
	while (off < len) {
		struct iovec iov = { (void *)(buf + off), len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (nfds > 0) {
			struct cmsghdr *c;

			memset(&ctl, 0, sizeof(ctl));
			mh.msg_control = ctl.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
		nfds = 0;	/* sent with the first chunk */
	}
	return 0;
}

int frame_send(int sock, const void *payload, size_t len, const int *fds, int nfds)
{
	uint8_t *buf;
	int rc;

	if (len > FRAME_MAX)
		return -EMSGSIZE;
	buf = malloc(FRAME_HDR + len);
	if (!buf)
		return -ENOMEM;
	put_be32(buf, (uint32_t)len);
	if (len)
		memcpy(buf + FRAME_HDR, payload, len);
	rc = send_all(sock, buf, FRAME_HDR + len, fds, nfds);
	free(buf);
	return rc;
}

int frame_send_msg(int sock, const ProtobufCMessage *msg, const int *fds, int nfds)
{
	uint8_t *buf;
	size_t len;
	int rc = pack_frame(msg, &buf, &len);

	if (rc < 0)
		return rc;
	rc = send_all(sock, buf, len, fds, nfds);
	free(buf);
	return rc;
}

static void close_fds(int *fds, int *nfds)
{
	for (int i = 0; i < *nfds; i++)
		close(fds[i]);
	*nfds = 0;
}

/*
 * Read exactly len bytes, collecting any fds that arrive.  Returns 0, or
 * -ENODATA (EOF at byte 0 of this read), -EPROTO (EOF later), -ENOBUFS, -errno.
 */
static int recv_exact(int sock, uint8_t *buf, size_t len, int *fds, int maxfds, int *nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	size_t off = 0;

	while (off < len) {
		struct iovec iov = { buf + off, len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		struct cmsghdr *c;
		int overflow = 0;
		ssize_t n;

		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			int cnt, *p;

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			cnt = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			p = (int *)CMSG_DATA(c);
			for (int i = 0; i < cnt; i++) {
				int fd;

				memcpy(&fd, p + i, sizeof(fd));
				if (*nfds < maxfds) {
					fds[(*nfds)++] = fd;
				} else {
					close(fd);
					overflow = 1;
				}
			}
		}
		if (overflow || (mh.msg_flags & MSG_CTRUNC))
			return -ENOBUFS;
		if (n == 0)
			return off == 0 ? -ENODATA : -EPROTO;
		off += (size_t)n;
	}
	return 0;
}

int frame_recv(int sock, size_t max, uint8_t **payload, size_t *len,
	       int *fds, int maxfds, int *nfds)
{
	uint8_t hdr[FRAME_HDR];
	uint8_t *buf = NULL;
	uint32_t n;
	int rc;

	*nfds = 0;
	*payload = NULL;
	*len = 0;
	if (maxfds > FRAME_MAX_FDS)
		maxfds = FRAME_MAX_FDS;
	rc = recv_exact(sock, hdr, FRAME_HDR, fds, maxfds, nfds);
	if (rc < 0)
		goto fail;
	n = get_be32(hdr);
	if (n > max) {
		rc = -EMSGSIZE;
		goto fail;
	}
	if (n) {
		buf = malloc(n);
		if (!buf) {
			rc = -ENOMEM;
			goto fail;
		}
		rc = recv_exact(sock, buf, n, fds, maxfds, nfds);
		if (rc < 0) {
			if (rc == -ENODATA)
				rc = -EPROTO;
			goto fail;
		}
	}
	*payload = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	close_fds(fds, nfds);
	return rc;
}
