/*
 * netns.c — sockets made in another network namespace.
 *
 * A socket belongs to the netns it was created in and keeps it, so the
 * calling thread enters netns_fd only for the socket() calls and returns
 * to its own at once (setns acts on the calling thread alone).  sock_diag
 * asks the pod's netns (diag.c), a SYN_SENT socket's peer is asked in the
 * socket's own netns (tcp.c), the hold's rules go to nf_tables in the pod's
 * netns (rules.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

int ns_sockets_in(int netns_fd, int domain, int type, int protocol, int *fds, int count)
{
	int self = -1, r = 0, k;

	for (k = 0; k < count; k++)
		fds[k] = -1;
	if (netns_fd >= 0) {
		self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (self < 0 || setns(netns_fd, CLONE_NEWNET) < 0) {
			r = -errno;
			goto out;
		}
	}
	for (k = 0; k < count && !r; k++)
		if ((fds[k] = socket(domain, type, protocol)) < 0)
			r = -errno;
	if (self >= 0 && setns(self, CLONE_NEWNET) < 0) {
		r = -errno;
		log_err("netstate: cannot return to own netns: %s", strerror(errno));
	}
out:
	if (r)
		for (k = 0; k < count; k++) {
			if (fds[k] >= 0)
				close(fds[k]);
			fds[k] = -1;
		}
	if (self >= 0)
		close(self);
	return r;
}
