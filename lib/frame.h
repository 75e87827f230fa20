/*
 * frame.h — length-prefixed protobuf frames over a stream socket.
 *
 * Wire format: u32 big-endian payload length, then that many bytes (one
 * packed protobuf message).  Shared by zapc-agent, the zapc CLI and, later,
 * the manager and agent peers.  A length above the receiver's limit is an
 * error decided from the 4-byte header alone: nothing is allocated for it.
 *
 * Two flavours:
 *   - incremental decoding from bytes already read (a plain buffer or a
 *     libevent evbuffer), for event loops: split and coalesced reads are fine;
 *   - blocking send/recv on a unix socket, optionally carrying file
 *     descriptors by SCM_RIGHTS with the frame.  Received fds are O_CLOEXEC
 *     and are closed on every error path (a truncated control message,
 *     MSG_CTRUNC, is an error).
 */
#ifndef ZAPC_FRAME_H
#define ZAPC_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#define FRAME_HDR      4u
#define FRAME_MAX      (4u << 20)   /* default payload limit: 4 MiB */
#define FRAME_MAX_FDS  16           /* fds accepted with one frame */

struct evbuffer;

/*
 * Look at the bytes at the start of a stream buffer.  Returns 1 and sets
 * *payload_len when a whole frame (header + payload) is in buf, 0 when more
 * bytes are needed, -EMSGSIZE when the header announces more than max.
 */
int frame_peek(const void *buf, size_t len, size_t max, size_t *payload_len);

/*
 * Take one whole frame off the front of an evbuffer.  Returns 1 with a
 * malloc'd copy of the payload in *payload (free() it; NULL for length 0),
 * 0 if the frame is incomplete (nothing removed), -EMSGSIZE if oversized
 * (nothing removed: the caller should answer an error and close), -ENOMEM.
 */
int frame_evbuffer_pull(struct evbuffer *in, size_t max, uint8_t **payload, size_t *len);

/* Append a frame with msg packed into it.  0 or -errno (-EMSGSIZE above FRAME_MAX). */
int frame_evbuffer_add_msg(struct evbuffer *out, const ProtobufCMessage *msg);

/*
 * Blocking send of one frame with optional fds (nfds <= FRAME_MAX_FDS; the
 * fds ride on the first byte).  Retries on EINTR and short writes; uses
 * MSG_NOSIGNAL.  0 or -errno.
 */
int frame_send(int sock, const void *payload, size_t len, const int *fds, int nfds);
int frame_send_msg(int sock, const ProtobufCMessage *msg, const int *fds, int nfds);

/*
 * Blocking receive of one frame.  On success returns 0, *payload is a
 * malloc'd buffer (free() it; may be NULL when len is 0), and up to maxfds
 * received fds (O_CLOEXEC) are stored in fds[] with their count in *nfds
 * (fds may be NULL when maxfds is 0).  Errors (every received fd closed):
 *   -ENODATA    the peer closed before the first byte of a frame
 *   -EPROTO     the peer closed in the middle of a frame
 *   -EMSGSIZE   the header announces more than max bytes
 *   -ENOBUFS    more fds than maxfds, or the kernel truncated them (MSG_CTRUNC)
 *   other -errno from recvmsg
 */
int frame_recv(int sock, size_t max, uint8_t **payload, size_t *len,
	       int *fds, int maxfds, int *nfds);

#endif
