/* frame_test.c — frames survive split and coalesced reads; oversized and
 * truncated frames are rejected; fds ride along and never leak. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "lib/frame.h"
#include "proto/agent.pb-c.h"
#include "tests/unit/tap.h"

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static void test_peek(void)
{
	uint8_t b[8] = { 0, 0, 0, 4, 'a', 'b', 'c', 'd' };
	uint8_t big[4] = { 0xff, 0xff, 0xff, 0xff };
	size_t n = 0;

	is_int(frame_peek(b, 3, FRAME_MAX, &n), 0, "peek: 3 header bytes need more");
	is_int(frame_peek(b, 7, FRAME_MAX, &n), 0, "peek: partial payload needs more");
	is_int(frame_peek(b, 8, FRAME_MAX, &n), 1, "peek: whole frame found");
	is_int(n, 4, "peek: payload length read big-endian");
	is_int(frame_peek(big, 4, FRAME_MAX, &n), -EMSGSIZE, "peek: 4 GiB header rejected from the header alone");
}

static void test_evbuffer(void)
{
	struct evbuffer *eb = evbuffer_new();
	Zapc__PodDestroy d = ZAPC__POD_DESTROY__INIT;
	Zapc__Request req = ZAPC__REQUEST__INIT, *got;
	struct evbuffer *out = evbuffer_new();
	uint8_t *wire, *p = NULL;
	size_t wlen, len = 0;
	int rc, frames = 0;

	d.name = "web";
	req.cmd_case = ZAPC__REQUEST__CMD_POD_DESTROY;
	req.pod_destroy = &d;
	/* two frames back to back (coalesced), then fed one byte at a time (split) */
	frame_evbuffer_add_msg(out, &req.base);
	frame_evbuffer_add_msg(out, &req.base);
	wlen = evbuffer_get_length(out);
	wire = malloc(wlen);
	evbuffer_remove(out, wire, wlen);
	for (size_t i = 0; i < wlen; i++) {
		evbuffer_add(eb, wire + i, 1);
		while ((rc = frame_evbuffer_pull(eb, FRAME_MAX, &p, &len)) == 1) {
			got = zapc__request__unpack(NULL, len, p);
			if (got && got->cmd_case == ZAPC__REQUEST__CMD_POD_DESTROY &&
			    strcmp(got->pod_destroy->name, "web") == 0)
				frames++;
			zapc__request__free_unpacked(got, NULL);
			free(p);
		}
	}
	is_int(frames, 2, "evbuffer: two frames fed byte by byte both decoded");
	is_int(evbuffer_get_length(eb), 0, "evbuffer: nothing left over");

	/* coalesced in one add */
	evbuffer_add(eb, wire, wlen);
	frames = 0;
	while (frame_evbuffer_pull(eb, FRAME_MAX, &p, &len) == 1) {
		frames++;
		free(p);
	}
	is_int(frames, 2, "evbuffer: two frames in one read both decoded");

	/* oversized: refused from the header, buffer untouched */
	evbuffer_add(eb, "\x00\x50\x00\x00xx", 6);
	is_int(frame_evbuffer_pull(eb, FRAME_MAX, &p, &len), -EMSGSIZE, "evbuffer: 5 MiB frame rejected");
	is_int(evbuffer_get_length(eb), 6, "evbuffer: rejected frame not consumed");
	evbuffer_drain(eb, 6);
	/* empty frame */
	evbuffer_add(eb, "\0\0\0\0", 4);
	p = (uint8_t *)1;
	rc = frame_evbuffer_pull(eb, FRAME_MAX, &p, &len);
	ok(rc == 1 && len == 0 && p == NULL, "evbuffer: zero-length frame");
	free(wire);
	evbuffer_free(eb);
	evbuffer_free(out);
}

static void test_socket(void)
{
	int sv[2], fds[FRAME_MAX_FDS], nfds = -1, rc, p[2], before;
	uint8_t *buf = NULL;
	size_t len = 0;
	struct stat a, b;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	pipe2(p, O_CLOEXEC);
	before = count_fds();

	/* a frame with three fds */
	int send_fds[3] = { p[0], p[1], p[0] };
	rc = frame_send(sv[0], "hello", 5, send_fds, 3);
	is_int(rc, 0, "socket: send with 3 fds");
	rc = frame_recv(sv[1], FRAME_MAX, &buf, &len, fds, FRAME_MAX_FDS, &nfds);
	ok(rc == 0 && len == 5 && memcmp(buf, "hello", 5) == 0, "socket: payload received");
	is_int(nfds, 3, "socket: 3 fds received");
	fstat(p[0], &a);
	fstat(fds[0], &b);
	ok(a.st_ino == b.st_ino, "socket: received fd is the same pipe");
	ok((fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0, "socket: received fd is close-on-exec");
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	free(buf);

	/* more fds than the receiver accepts: error, none leaked */
	frame_send(sv[0], "x", 1, send_fds, 3);
	rc = frame_recv(sv[1], FRAME_MAX, &buf, &len, fds, 1, &nfds);
	is_int(rc, -ENOBUFS, "socket: too many fds rejected");
	is_int(count_fds(), before, "socket: no fd leaked after too many fds");

	/* oversized header */
	send(sv[0], "\x7f\xff\xff\xff", 4, 0);
	rc = frame_recv(sv[1], FRAME_MAX, &buf, &len, fds, FRAME_MAX_FDS, &nfds);
	is_int(rc, -EMSGSIZE, "socket: oversized frame rejected");

	/* truncated frame: header says 10, 3 bytes then close */
	int sv2[2];
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2);
	send(sv2[0], "\0\0\0\x0a" "abc", 7, 0);
	close(sv2[0]);
	rc = frame_recv(sv2[1], FRAME_MAX, &buf, &len, fds, FRAME_MAX_FDS, &nfds);
	is_int(rc, -EPROTO, "socket: truncated frame rejected");
	rc = frame_recv(sv2[1], FRAME_MAX, &buf, &len, fds, FRAME_MAX_FDS, &nfds);
	is_int(rc, -ENODATA, "socket: clean EOF reported as such");
	close(sv2[1]);

	/* truncated with an fd attached: the fd is closed */
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2);
	before = count_fds();
	int one = p[0];
	{
		/* send only the header plus one byte, with the fd, then close */
		uint8_t hdr[5] = { 0, 0, 0, 9, 'z' };
		struct iovec iov = { hdr, 5 };
		union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr al; } ctl;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &one, sizeof(int));
		sendmsg(sv2[0], &mh, 0);
	}
	close(sv2[0]);
	rc = frame_recv(sv2[1], FRAME_MAX, &buf, &len, fds, FRAME_MAX_FDS, &nfds);
	ok(rc == -EPROTO && nfds == 0, "socket: truncated frame with fd rejected");
	is_int(count_fds(), before - 1, "socket: its fd was closed (no leak)");
	close(sv2[1]);

	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

/* MSG_CTRUNC: receive with RLIMIT_NOFILE so low that the kernel cannot
 * install the fds; it sets MSG_CTRUNC and we must report an error. */
#include <sys/resource.h>
static void test_ctrunc(void)
{
	int sv[2], fds[FRAME_MAX_FDS], nfds = 0, rc, hi;
	uint8_t *buf = NULL;
	size_t len;
	struct rlimit old, lim;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	int s[4] = { 0, 1, 2, 0 };
	frame_send(sv[0], "ab", 2, s, 4);
	/* the lowest free fd after the socket ends the usable range */
	hi = dup(0);
	close(hi);
	getrlimit(RLIMIT_NOFILE, &old);
	lim = old;
	lim.rlim_cur = (rlim_t)hi + 1;	/* room for one fd only */
	setrlimit(RLIMIT_NOFILE, &lim);
	rc = frame_recv(sv[1], FRAME_MAX, &buf, &len, fds, FRAME_MAX_FDS, &nfds);
	setrlimit(RLIMIT_NOFILE, &old);
	is_int(rc, -ENOBUFS, "socket: control message truncated by the kernel (MSG_CTRUNC) rejected");
	ok(fcntl(hi, F_GETFD) < 0, "socket: the fd the kernel did install was closed");
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	test_peek();
	test_evbuffer();
	test_socket();
	test_ctrunc();
	return tap_done();
}
