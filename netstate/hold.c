/*
 * hold.c — hold a pod's traffic without losing it.
 *
 * A holder process (forked, then setns() into the pod's netns) binds an
 * NFQUEUE queue with libmnl + libnetfilter_queue, installs the ZAPC_HOLD
 * rules (rules.c) and keeps every queued packet without a verdict.  Release
 * gives each of them an NF_ACCEPT verdict in arrival order (the kernel
 * re-injects them); drop gives NF_DROP (peers retransmit).  Then the holder
 * removes the rules and exits.
 *
 * Kept rules (netstate_hold_begin_keep): the NFQUEUE rule has --queue-bypass
 * and stays in the netns; binding the queue is what starts a hold, and the
 * end sets the queue fail-open (length 0) before unbinding, so a packet that
 * arrives in between passes instead of being dropped with the instance.
 *
 * Why a process: it owns the rules.  If the caller dies, the holder sees EOF
 * on its control socket, drops, removes the rules and exits; if the holder
 * dies, unverdicted packets are dropped by the kernel (no queue listener, no
 * --queue-bypass) and the caller removes the rules itself on release/drop.
 *
 * Control protocol (one byte each way): parent 'r' release, 'd' drop,
 * 'c' count; holder answers with a 4-byte int (count or -errno).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

#define HOLD_QMAXLEN 65536u

struct netstate_hold {
	pid_t pid;
	int ctl;          /* our end of the control socketpair */
	int netns_fd;     /* dup of the pod's netns, for cleanup if the holder died */
	enum netstate_hold_mode mode;
	int keep;         /* the rules stay in the netns (--queue-bypass) */
};

/* --- the holder process ------------------------------------------------- */

struct holder {
	struct mnl_socket *nl;
	unsigned queue;
	uint32_t last_id;   /* highest packet id seen */
	uint32_t held;      /* packets waiting for a verdict */
	uint32_t *ids;      /* their ids, in arrival order */
	int holding;
	int after;          /* verdict for packets once the hold has ended */
	int keep;           /* rules stay: end by failing the queue open, not removing them */
};

static int nfq_send(struct holder *h, struct nlmsghdr *nlh)
{
	return mnl_socket_sendto(h->nl, nlh, nlh->nlmsg_len) < 0 ? -errno : 0;
}

static int nfq_config(struct holder *h)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	int one = 1;

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, h->queue);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	if (nfq_send(h, nlh))
		return -errno;
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, h->queue);
	/* Metadata only: the holder never looks inside a packet. */
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_META, 0);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, HOLD_QMAXLEN);
	/* GSO packets queued whole, not segmented for us. */
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
	if (nfq_send(h, nlh))
		return -errno;
	mnl_socket_setsockopt(h->nl, NETLINK_NO_ENOBUFS, &one, sizeof(one));
	return 0;
}

/* The end of a kept hold: from now on the kernel lets every packet pass
 * the queue (length 0, fail-open) instead of queueing it; the socket can
 * then be closed without the kernel dropping a straggler. */
static int nfq_fail_open(struct holder *h)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, h->queue);

	nfq_nlmsg_cfg_put_qmaxlen(nlh, 0);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_FAIL_OPEN));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN));
	return nfq_send(h, nlh);
}

/* Verdict for one packet, or (batch) for every queued packet up to id. */
static int nfq_verdict(struct holder *h, uint32_t id, int verdict, int batch)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, h->queue);

	nfq_nlmsg_verdict_put(nlh, id, verdict);
	return nfq_send(h, nlh);
}

static int on_packet(const struct nlmsghdr *nlh, void *data)
{
	struct holder *h = data;
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct nfqnl_msg_packet_hdr *ph;
	uint32_t id;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return MNL_CB_OK;
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	id = ntohl(ph->packet_id);
	h->last_id = id;
	if (h->holding && h->held < HOLD_QMAXLEN)
		h->ids[h->held++] = id;
	else
		nfq_verdict(h, id, h->after, 0);
	return MNL_CB_OK;
}

/* Read whatever the queue has; wait_ms 0 = only what is already there. */
static void nfq_pump(struct holder *h, int wait_ms)
{
	static char buf[0x20000];
	struct pollfd p = { .fd = h->nl ? mnl_socket_get_fd(h->nl) : -1, .events = POLLIN };

	if (!h->nl)
		return;   /* DROP mode: no queue */
	while (poll(&p, 1, wait_ms) > 0) {
		ssize_t n = mnl_socket_recvfrom(h->nl, buf, sizeof(buf));
		if (n <= 0)
			break;
		mnl_cb_run(buf, (size_t)n, 0, 0, on_packet, h);
		wait_ms = 0;
	}
}

static void reply(int ctl, int32_t v)
{
	if (send(ctl, &v, sizeof(v), MSG_NOSIGNAL) < 0)
		return;
}

/* End of a hold: one verdict for everything held, rules out, stragglers
 * (queued between the verdict and the rule removal) get the same verdict. */
static int holder_finish(struct holder *h, int verdict)
{
	int r;

	if (h->nl) {
		nfq_pump(h, 0);
		/* One verdict per packet, in arrival order.  A single
		 * NFQNL_MSG_VERDICT_BATCH up to the last id looked simpler, but
		 * in our measurements the held packets then only moved once the
		 * rules were gone (first byte 20 ms after release instead of 1 ms). */
		for (uint32_t i = 0; i < h->held; i++)
			if (nfq_verdict(h, h->ids[i], verdict, 0) && i == 0)
				log_err("netstate hold: verdict failed: %s", strerror(errno));
		h->held = 0;
	}
	h->holding = 0;
	h->after = verdict;
	if (h->keep && h->nl) {
		r = nfq_fail_open(h) ? -errno : 0;
		if (r)
			log_err("netstate hold: fail-open queue %u: %s", h->queue, strerror(-r));
	} else {
		/* rules out first, the chains stay until the stragglers are let
		 * go: removing a hook drops what is still queued (rules.c) */
		r = ns_rules_flush(-1);
	}
	if (h->nl) {
		nfq_pump(h, 0);   /* on_packet now gives each the same verdict */
	}
	if (!h->keep || !h->nl) {
		int e = ns_rules_remove(-1);
		r = r ? r : e;
	}
	return r;
}

/* keep: 0 classic (rules installed and removed), 1 kept rules to install,
 * 2 kept rules already present. */
static void holder_main(int ctl, int netns_fd, unsigned queue, enum netstate_hold_mode mode, int keep)
{
	struct holder h = { .queue = queue, .holding = 1 };
	h.ids = malloc(HOLD_QMAXLEN * sizeof(*h.ids));
	if (!h.ids) {
		reply(ctl, -ENOMEM);
		_exit(1);
	}
	int32_t status = 0;
	int r;

	prctl(PR_SET_NAME, "zapc-nethold");
	if (setns(netns_fd, CLONE_NEWNET) < 0) {
		reply(ctl, -errno);
		_exit(1);
	}
	if (mode == NETSTATE_HOLD_NFQUEUE) {
		h.nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
		if (!h.nl || mnl_socket_bind(h.nl, 0, MNL_SOCKET_AUTOPID) < 0 || nfq_config(&h)) {
			log_warn("netstate hold: NFQUEUE %u unavailable (%s): falling back to DROP rules",
				 queue, strerror(errno));
			if (h.nl)
				mnl_socket_close(h.nl);
			h.nl = NULL;
			mode = NETSTATE_HOLD_DROP;
		}
	}
	if (mode != NETSTATE_HOLD_NFQUEUE)
		keep = 0;   /* DROP rules cannot be left in place */
	r = keep == 2 ? 0 : ns_rules_apply(-1, queue, mode, keep != 0);
	if (r && mode == NETSTATE_HOLD_NFQUEUE) {
		log_warn("netstate hold: NFQUEUE rule refused: falling back to DROP rules");
		mnl_socket_close(h.nl);
		h.nl = NULL;
		mode = NETSTATE_HOLD_DROP;
		keep = 0;
		r = ns_rules_apply(-1, queue, mode, 0);
	}
	if (r) {
		reply(ctl, r);
		_exit(1);
	}
	h.keep = keep != 0;
	reply(ctl, (int32_t)mode | (h.keep ? 0x100 : 0));

	for (;;) {
		struct pollfd p[2] = { { .fd = ctl, .events = POLLIN },
				       { .fd = h.nl ? mnl_socket_get_fd(h.nl) : -1, .events = POLLIN } };
		char cmd;
		ssize_t n;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents & POLLIN)
			nfq_pump(&h, 0);
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = recv(ctl, &cmd, 1, 0);
		if (n == 1 && cmd == 'c') {
			nfq_pump(&h, 0);
			reply(ctl, (int32_t)h.held);
			continue;
		}
		/* 'r' release; 'd' drop; EOF (caller gone) is treated as drop. */
		status = holder_finish(&h, n == 1 && cmd == 'r' ? NF_ACCEPT : NF_DROP);
		reply(ctl, status);
		if (h.nl)
			mnl_socket_close(h.nl);
		_exit(status ? 1 : 0);
	}
}

/* --- the caller's side -------------------------------------------------- */

/* The holder must not keep the caller's fds: a copy of a pod socket would
 * keep it alive after the engine closes it (its port stays taken). */
static void close_other_fds(int keep1, int keep2)
{
	int lo = keep1 < keep2 ? keep1 : keep2, hi = keep1 < keep2 ? keep2 : keep1;

	if (lo > 3)
		close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1, ~0u, 0);
}

static int ctl_read(int ctl, int32_t *v, int timeout_ms)
{
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	n = recv(ctl, v, sizeof(*v), MSG_WAITALL);
	return n == sizeof(*v) ? 0 : -EPIPE;
}

static void hold_free(struct netstate_hold *h)
{
	int st;

	close(h->ctl);
	if (h->pid > 0 && waitpid(h->pid, &st, WNOHANG) == 0) {
		/* It exits right after its last reply: wait for that (a pidfd
		 * is readable once it has exited; polling in 5 ms steps cost
		 * every release 5 ms), up to 1 s, then make sure. */
		int pfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
		if (pfd >= 0) {
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			poll(&p, 1, 1000);
			close(pfd);
		} else {
			for (int i = 0; i < 1000 && waitpid(h->pid, &st, WNOHANG) == 0; i++)
				poll(NULL, 0, 1);
		}
		if (waitpid(h->pid, &st, WNOHANG) == 0) {
			kill(h->pid, SIGKILL);
			waitpid(h->pid, &st, 0);
		}
	}
	close(h->netns_fd);
	free(h);
}

static int hold_start(int netns_fd, unsigned queue_num, enum netstate_hold_mode mode, int keep,
		      struct netstate_hold **out)
{
	struct netstate_hold *h;
	int sv[2], r;
	int32_t v;

	*out = NULL;
	if (queue_num > 65535)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->netns_fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 0);
	if (h->netns_fd < 0) {
		r = -errno;
		free(h);
		return r;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		close(h->netns_fd);
		free(h);
		return r;
	}
	h->pid = fork();
	if (h->pid < 0) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		close(h->netns_fd);
		free(h);
		return r;
	}
	if (h->pid == 0) {
		close(sv[0]);
		close_other_fds(sv[1], h->netns_fd);
		holder_main(sv[1], h->netns_fd, queue_num, mode, keep);
		_exit(1);
	}
	close(sv[1]);
	h->ctl = sv[0];
	r = ctl_read(h->ctl, &v, 15000);
	if (r || v < 0) {
		r = r ? r : v;
		log_err("netstate hold: holder for queue %u did not start: %s", queue_num, strerror(-r));
		if (keep != 2)
			ns_rules_remove(h->netns_fd);
		hold_free(h);
		return r;
	}
	h->mode = (enum netstate_hold_mode)(v & 0xff);
	h->keep = (v & 0x100) != 0;
	*out = h;
	return 0;
}

int netstate_hold_begin(int netns_fd, unsigned queue_num, enum netstate_hold_mode mode,
			struct netstate_hold **out)
{
	return hold_start(netns_fd, queue_num, mode, 0, out);
}

int netstate_hold_begin_keep(int netns_fd, int rules_present, struct netstate_hold **out)
{
	return hold_start(netns_fd, NETSTATE_KEEP_QUEUE, NETSTATE_HOLD_NFQUEUE, rules_present ? 2 : 1, out);
}

static int hold_end(struct netstate_hold *h, char cmd)
{
	int32_t v = 0;
	int r;

	if (!h)
		return -EINVAL;
	r = send(h->ctl, &cmd, 1, MSG_NOSIGNAL) == 1 ? 0 : -EPIPE;
	if (!r)
		r = ctl_read(h->ctl, &v, 30000);
	if (r) {
		/* The holder is gone: its queued packets were dropped by the kernel;
		 * the rules are still ours to remove. */
		log_err("netstate hold: holder pid %d lost (%s)%s", h->pid, strerror(-r),
			h->keep ? "" : "; removing the rules here");
		kill(h->pid, SIGKILL);
		if (!h->keep)   /* kept rules bypass the queue once nobody listens */
			ns_rules_remove(h->netns_fd);
	} else {
		r = v;
	}
	hold_free(h);
	return r;
}

int netstate_hold_release(struct netstate_hold *h)
{
	return hold_end(h, 'r');
}

int netstate_hold_drop(struct netstate_hold *h)
{
	return hold_end(h, 'd');
}

int netstate_hold_count(struct netstate_hold *h)
{
	char cmd = 'c';
	int32_t v;
	int r;

	if (send(h->ctl, &cmd, 1, MSG_NOSIGNAL) != 1)
		return -EPIPE;
	r = ctl_read(h->ctl, &v, 5000);
	return r ? r : v;
}

enum netstate_hold_mode netstate_hold_mode(const struct netstate_hold *h)
{
	return h->mode;
}

int netstate_hold_kept(const struct netstate_hold *h)
{
	return h->keep;
}

int netstate_hold_pid(const struct netstate_hold *h)
{
	return h->pid;
}
