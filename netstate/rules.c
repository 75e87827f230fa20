/*
 * rules.c — the pod's hold rules, written straight to nf_tables over
 * netlink inside the pod's network namespace.
 *
 * The rules: a table "zapc_hold" of our own, in the ip and ip6 families,
 * with two base chains at the raw hook priority (-300, before conntrack):
 * "prerouting" holds what arrives on any interface but lo, "output" what
 * leaves on any but lo.  The hold is the xt NFQUEUE target through
 * nf_tables' xtables compatibility (native "queue" needs CONFIG_NFT_QUEUE,
 * unset on this kernel), or a plain drop verdict.  A table of our own
 * means installing is one netlink batch per family and removing is
 * deleting the table: nothing of anyone else's rules is touched, and
 * nothing is left half done (a batch is one transaction).
 *
 * Why not iptables-restore any more: each exec of it (fork, setns, exec,
 * load the ruleset) took 10–90 ms here, four per hold (install and
 * remove, IPv4 and IPv6); the batch takes well under a millisecond.
 *
 * PREROUTING, not INPUT: TCP early demux (ip_rcv_finish, after PREROUTING)
 * attaches the *current* socket to each packet.  Packets held at INPUT kept a
 * reference to the socket that was captured and closed, and were lost to it
 * on release (the restored socket saw only later segments, out of order, and
 * waited for the peer's retransmission: ~20 ms here, 0.16 s in the probe).
 * Held before the demux, they find the restored socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_tables_compat.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

#define HOLD_PRIO (-300)        /* NF_IP_PRI_RAW / NF_IP6_PRI_RAW */

/* --- nf_tables over netlink --------------------------------------------- */

/* A bound netfilter netlink socket made in netns_fd (-1: here). */
struct mnl_socket *ns_nfnl_socket(int netns_fd)
{
	int fd, r = ns_sockets_in(netns_fd, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER, &fd, 1);
	if (r < 0) {
		errno = -r;
		return NULL;
	}
	struct mnl_socket *nl = mnl_socket_fdopen(fd);
	if (!nl) {
		r = errno;
		close(fd);
		errno = r;
		return NULL;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = errno;
		mnl_socket_close(nl);
		errno = r;
		return NULL;
	}
	return nl;
}

struct batch {
	char buf[4096];
	struct mnl_nlmsg_batch *b;
	uint32_t seq0, seq;
	int family;
};

static struct nlmsghdr *msg_start(struct batch *b, int type, uint16_t flags, int family)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(b->b));
	nlh->nlmsg_type = (uint16_t)type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = b->seq++;
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = (uint8_t)family;
	g->version = NFNETLINK_V0;
	g->res_id = type == NFNL_MSG_BATCH_BEGIN || type == NFNL_MSG_BATCH_END ? htons(NFNL_SUBSYS_NFTABLES) : 0;
	return nlh;
}

static void msg_end(struct batch *b)
{
	mnl_nlmsg_batch_next(b->b);
}

static struct nlmsghdr *nft_msg(struct batch *b, int msg, uint16_t flags)
{
	return msg_start(b, (NFNL_SUBSYS_NFTABLES << 8) | msg, flags, b->family);
}

static void batch_init(struct batch *b, int family)
{
	b->b = mnl_nlmsg_batch_start(b->buf, sizeof(b->buf));
	b->seq0 = b->seq = (uint32_t)time(NULL) << 8;
	b->family = family;
	struct nlmsghdr *nlh = msg_start(b, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC);
	nlh->nlmsg_flags = NLM_F_REQUEST;       /* the batch markers get no ack */
	msg_end(b);
}

/* Send the batch; 0 once every message is acked, or the first error. */
static int batch_run(struct mnl_socket *nl, struct batch *b)
{
	struct nlmsghdr *nlh = msg_start(b, NFNL_MSG_BATCH_END, 0, AF_UNSPEC);
	nlh->nlmsg_flags = NLM_F_REQUEST;
	msg_end(b);
	/* every message between the BEGIN and END markers asked for an ack */
	uint32_t want = b->seq - b->seq0 - 2, acked = 0;
	int sent = mnl_socket_sendto(nl, mnl_nlmsg_batch_head(b->b), mnl_nlmsg_batch_size(b->b)) < 0 ? -errno : 0;
	mnl_nlmsg_batch_stop(b->b);
	if (sent < 0)
		return sent;
	char rb[MNL_SOCKET_BUFFER_SIZE];
	int err = 0;
	while (acked < want) {
		struct pollfd p = { mnl_socket_get_fd(nl), POLLIN, 0 };
		if (poll(&p, 1, 5000) <= 0)
			return err ? err : -ETIMEDOUT;
		ssize_t n = mnl_socket_recvfrom(nl, rb, sizeof(rb));
		if (n < 0)
			return -errno;
		int len = (int)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)rb; mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len)) {
			if (h->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
			acked++;
			if (e->error && !err)
				err = e->error;
		}
	}
	return err;
}

static void put_chain_hook(struct nlmsghdr *nlh, const char *name, uint32_t hook)
{
	mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, NETSTATE_HOLD_TABLE);
	mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, name);
	struct nlattr *n = mnl_attr_nest_start(nlh, NFTA_CHAIN_HOOK);
	mnl_attr_put_u32(nlh, NFTA_HOOK_HOOKNUM, htonl(hook));
	mnl_attr_put_u32(nlh, NFTA_HOOK_PRIORITY, htonl((uint32_t)HOLD_PRIO));
	mnl_attr_nest_end(nlh, n);
	mnl_attr_put_strz(nlh, NFTA_CHAIN_TYPE, "filter");
	mnl_attr_put_u32(nlh, NFTA_CHAIN_POLICY, htonl(NF_ACCEPT));
}

static struct nlattr *expr_start(struct nlmsghdr *nlh, const char *name, struct nlattr **data)
{
	struct nlattr *e = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
	mnl_attr_put_strz(nlh, NFTA_EXPR_NAME, name);
	*data = mnl_attr_nest_start(nlh, NFTA_EXPR_DATA);
	return e;
}

static void expr_end(struct nlmsghdr *nlh, struct nlattr *e, struct nlattr *data)
{
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, e);
}

/* chain's one rule: [meta iifname|oifname != "lo"] then the hold */
static void put_hold_rule(struct nlmsghdr *nlh, const char *chain, uint32_t meta_key, unsigned queue,
			  enum netstate_hold_mode mode, int bypass)
{
	struct nlattr *e, *d;
	mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, NETSTATE_HOLD_TABLE);
	mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain);
	struct nlattr *list = mnl_attr_nest_start(nlh, NFTA_RULE_EXPRESSIONS);
	e = expr_start(nlh, "meta", &d);
	mnl_attr_put_u32(nlh, NFTA_META_KEY, htonl(meta_key));
	mnl_attr_put_u32(nlh, NFTA_META_DREG, htonl(NFT_REG_1));
	expr_end(nlh, e, d);
	/* the register holds the name NUL-padded to IFNAMSIZ: "lo\0" is exactly lo */
	e = expr_start(nlh, "cmp", &d);
	mnl_attr_put_u32(nlh, NFTA_CMP_SREG, htonl(NFT_REG_1));
	mnl_attr_put_u32(nlh, NFTA_CMP_OP, htonl(NFT_CMP_NEQ));
	struct nlattr *v = mnl_attr_nest_start(nlh, NFTA_CMP_DATA);
	mnl_attr_put(nlh, NFTA_DATA_VALUE, 3, "lo");
	mnl_attr_nest_end(nlh, v);
	expr_end(nlh, e, d);
	if (mode == NETSTATE_HOLD_NFQUEUE) {
		/* xt NFQUEUE revision 3 (net/netfilter/xt_NFQUEUE.c), via nft_compat */
		struct xt_NFQ_info_v3 info = { .queuenum = (uint16_t)queue, .queues_total = 1,
					       .flags = bypass ? NFQ_FLAG_BYPASS : 0 };
		e = expr_start(nlh, "target", &d);
		mnl_attr_put_strz(nlh, NFTA_TARGET_NAME, "NFQUEUE");
		mnl_attr_put_u32(nlh, NFTA_TARGET_REV, htonl(3));
		mnl_attr_put(nlh, NFTA_TARGET_INFO, sizeof(info), &info);
		expr_end(nlh, e, d);
	} else {
		e = expr_start(nlh, "immediate", &d);
		mnl_attr_put_u32(nlh, NFTA_IMMEDIATE_DREG, htonl(NFT_REG_VERDICT));
		struct nlattr *dd = mnl_attr_nest_start(nlh, NFTA_IMMEDIATE_DATA);
		struct nlattr *vv = mnl_attr_nest_start(nlh, NFTA_DATA_VERDICT);
		mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE, htonl(NF_DROP));
		mnl_attr_nest_end(nlh, vv);
		mnl_attr_nest_end(nlh, dd);
		expr_end(nlh, e, d);
	}
	mnl_attr_nest_end(nlh, list);
}

/*
 * One transaction on the family's table.  Install and delete first add it
 * (so that deleting it cannot fail) and delete it, install then builds it
 * afresh.  Flush only empties its two chains: the chains, and so their
 * hooks, stay.  That matters because unregistering a netfilter hook drops
 * every packet still queued in the netns (nf_queue_nf_hook_drop): a packet
 * the holder has just let go may be queued again on its way (the answer to
 * a released request, in OUTPUT), so the holder flushes, lets the last ones
 * go, and only then deletes the tables.
 */
enum table_op { T_INSTALL, T_FLUSH, T_DELETE };

static int hold_table(struct mnl_socket *nl, int family, enum table_op op, unsigned queue,
		      enum netstate_hold_mode mode, int bypass)
{
	struct batch b;
	struct nlmsghdr *nlh;
	batch_init(&b, family);
	if (op == T_FLUSH) {
		for (int i = 0; i < 2; i++) {
			nlh = nft_msg(&b, NFT_MSG_DELRULE, 0);
			mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, NETSTATE_HOLD_TABLE);
			mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, i ? "output" : "prerouting");
			msg_end(&b);
		}
		int r = batch_run(nl, &b);
		return r == -ENOENT ? 0 : r;    /* no table: nothing to flush */
	}
	nlh = nft_msg(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, NETSTATE_HOLD_TABLE);
	msg_end(&b);
	nlh = nft_msg(&b, NFT_MSG_DELTABLE, 0);
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, NETSTATE_HOLD_TABLE);
	msg_end(&b);
	if (op == T_INSTALL) {
		nlh = nft_msg(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
		mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, NETSTATE_HOLD_TABLE);
		msg_end(&b);
		nlh = nft_msg(&b, NFT_MSG_NEWCHAIN, NLM_F_CREATE);
		put_chain_hook(nlh, "prerouting", NF_INET_PRE_ROUTING);
		msg_end(&b);
		nlh = nft_msg(&b, NFT_MSG_NEWCHAIN, NLM_F_CREATE);
		put_chain_hook(nlh, "output", NF_INET_LOCAL_OUT);
		msg_end(&b);
		nlh = nft_msg(&b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
		put_hold_rule(nlh, "prerouting", NFT_META_IIFNAME, queue, mode, bypass);
		msg_end(&b);
		nlh = nft_msg(&b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
		put_hold_rule(nlh, "output", NFT_META_OIFNAME, queue, mode, bypass);
		msg_end(&b);
	}
	return batch_run(nl, &b);
}

int ns_rules_apply(int netns_fd, unsigned queue_num, enum netstate_hold_mode mode, int bypass)
{
	struct mnl_socket *nl = ns_nfnl_socket(netns_fd);
	const char *what = mode == NETSTATE_HOLD_NFQUEUE ? "NFQUEUE" : "drop";
	if (!nl) {
		int e = errno;
		log_err("netstate hold: nf_tables netlink socket: %s", strerror(e));
		return -e;
	}
	int r = hold_table(nl, NFPROTO_IPV4, T_INSTALL, queue_num, mode, bypass);
	if (r < 0) {
		log_err("netstate hold: table ip " NETSTATE_HOLD_TABLE " with %s %u: %s", what, queue_num, strerror(-r));
		mnl_socket_close(nl);
		return r;
	}
	r = hold_table(nl, NFPROTO_IPV6, T_INSTALL, queue_num, mode, bypass);
	if (r < 0)
		log_warn("netstate hold: table ip6 " NETSTATE_HOLD_TABLE " with %s %u: %s: IPv6 traffic is not held",
			 what, queue_num, strerror(-r));
	mnl_socket_close(nl);
	return 0;
}

static int rules_op(int netns_fd, enum table_op op)
{
	struct mnl_socket *nl = ns_nfnl_socket(netns_fd);
	int ret = 0;
	if (!nl) {
		ret = -errno;
		log_err("netstate hold: nf_tables netlink socket: %s", strerror(-ret));
		return ret;
	}
	for (int i = 0; i < 2; i++) {
		int family = i ? NFPROTO_IPV6 : NFPROTO_IPV4;
		int r = hold_table(nl, family, op, 0, NETSTATE_HOLD_DROP, 0);
		/* no IPv6 at all (EAFNOSUPPORT): it had no table either */
		if (r < 0 && !(i && r == -EAFNOSUPPORT)) {
			log_err("netstate hold: %s table %s " NETSTATE_HOLD_TABLE ": %s",
				op == T_FLUSH ? "flush" : "remove", i ? "ip6" : "ip", strerror(-r));
			ret = r;
		}
	}
	mnl_socket_close(nl);
	return ret;
}

int ns_rules_flush(int netns_fd)
{
	return rules_op(netns_fd, T_FLUSH);
}

int ns_rules_remove(int netns_fd)
{
	return rules_op(netns_fd, T_DELETE);
}
