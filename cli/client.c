/*
 * client.c — the CLI's side of the agent API: one connection per call,
 * one request frame (with fds), one response frame.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/frame.h"

const char *cli_socket = "/run/zapc/agent.sock";

void cli_err(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line))
		n = sizeof(line) - 1;
	/* one line even if the message carried a newline */
	for (char *p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	fprintf(stderr, "zapc: %s\n", line);
}

int cli_fail(const Zapc__Response *resp)
{
	cli_err("%s", resp->error && resp->error[0] ? resp->error : strerror(-resp->status));
	return 1;
}

int cli_call(const Zapc__Request *req, const int *fds, int nfds, Zapc__Response **resp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t *buf = NULL;
	size_t len;
	int fd, rc, nrecv = 0, junk[1];

	if (strlen(cli_socket) >= sizeof(sa.sun_path)) {
		cli_err("socket path %s: too long", cli_socket);
		return -ENAMETOOLONG;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cli_socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		cli_err("cannot reach the agent at %s: %s", cli_socket, strerror(errno));
		goto out;
	}
	rc = frame_send_msg(fd, &req->base, fds, nfds);
	if (rc < 0) {
		cli_err("send to the agent: %s", strerror(-rc));
		goto out;
	}
	rc = frame_recv(fd, FRAME_MAX, &buf, &len, junk, 0, &nrecv);
	if (rc < 0) {
		cli_err("agent at %s: %s", cli_socket,
			rc == -ENODATA ? "closed the connection without answering" : strerror(-rc));
		goto out;
	}
	*resp = zapc__response__unpack(NULL, len, buf);
	if (!*resp) {
		cli_err("agent at %s: malformed response", cli_socket);
		rc = -EBADMSG;
	}
out:
	free(buf);
	close(fd);
	return rc;
}
