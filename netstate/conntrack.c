/*
 * conntrack.c — delete the conntrack entries of one address (the pod's) in
 * a netns, over ctnetlink: one dump of the table, then one delete per
 * entry whose original direction comes from or goes to it (what
 * `conntrack -D -s ADDR` and `-D -d ADDR` did, without two execs of
 * several ms each on every restore of a pod with sockets).
 *
 * Why at all: after a restore (or a migration) the node still tracks the
 * pod's old flows; a stale entry (e.g. one that saw a RST, or NAT state of
 * the old place) would make the first packets of the restored connection
 * look invalid.  An entry is deleted by the exact tuple the dump gave
 * (copied back as it came), with its id, so a new flow that took the same
 * tuple in between is not touched (ENOENT then: it is gone or another).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "netstate/internal.h"
#include "netstate/netstate.h"

struct ct_match {
	const uint8_t *addr;            /* 4 or 16 bytes */
	size_t alen;
	struct ct_entry {
		uint8_t tuple[256];     /* CTA_TUPLE_ORIG's payload */
		uint16_t tlen;
		uint32_t id;            /* CTA_ID, network order; 0: none */
		uint16_t zone;          /* CTA_ZONE, network order */
		int has_zone;
	} *e;
	size_t n, cap;
	int err;
};

/* Does the CTA_TUPLE_ORIG payload name addr as source or destination? */
static int tuple_has(const struct nlattr *orig, const struct ct_match *m)
{
	const struct nlattr *ip, *a;
	int src = m->alen == 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, dst = m->alen == 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST;
	mnl_attr_for_each_nested(ip, orig) {
		if (mnl_attr_get_type(ip) != CTA_TUPLE_IP)
			continue;
		mnl_attr_for_each_nested(a, ip) {
			int t = mnl_attr_get_type(a);
			if ((t == src || t == dst) && mnl_attr_get_payload_len(a) == m->alen &&
			    !memcmp(mnl_attr_get_payload(a), m->addr, m->alen))
				return 1;
		}
	}
	return 0;
}

static int on_entry(const struct nlmsghdr *nlh, void *data)
{
	struct ct_match *m = data;
	const struct nlattr *a, *orig = NULL, *id = NULL, *zone = NULL;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		switch (mnl_attr_get_type(a)) {
		case CTA_TUPLE_ORIG: orig = a; break;
		case CTA_ID: id = a; break;
		case CTA_ZONE: zone = a; break;
		}
	}
	if (!orig || !tuple_has(orig, m) || mnl_attr_get_payload_len(orig) > sizeof(m->e->tuple))
		return MNL_CB_OK;
	if (m->n == m->cap) {
		size_t cap = m->cap * 2 + 16;
		struct ct_entry *e = realloc(m->e, cap * sizeof(*e));
		if (!e) {
			m->err = -ENOMEM;
			return MNL_CB_ERROR;
		}
		m->e = e;
		m->cap = cap;
	}
	struct ct_entry *e = &m->e[m->n++];
	e->tlen = mnl_attr_get_payload_len(orig);
	memcpy(e->tuple, mnl_attr_get_payload(orig), e->tlen);
	e->id = id && mnl_attr_get_payload_len(id) == 4 ? mnl_attr_get_u32(id) : 0;
	e->has_zone = zone && mnl_attr_get_payload_len(zone) == 2;
	e->zone = e->has_zone ? mnl_attr_get_u16(zone) : 0;
	return MNL_CB_OK;
}

static struct nlmsghdr *ct_msg(char *buf, int type, uint16_t flags, int family, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = (uint8_t)family;
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	return nlh;
}

/* Read replies to seq until the dump is done / the ack came: 0 or -errno. */
static int ct_wait(struct mnl_socket *nl, uint32_t seq, mnl_cb_t cb, void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t port = mnl_socket_get_portid(nl);
	for (;;) {
		struct pollfd p = { mnl_socket_get_fd(nl), POLLIN, 0 };
		if (poll(&p, 1, 5000) <= 0)
			return -ETIMEDOUT;
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		int r = mnl_cb_run(buf, (size_t)n, seq, port, cb, data);
		if (r == MNL_CB_STOP)
			return 0;
		if (r < 0)
			return -errno;
	}
}

int netstate_conntrack_flush(int netns_fd, const char *addr)
{
	uint8_t a[16];
	struct ct_match m = { .addr = a };
	int family = AF_INET;
	if (inet_pton(AF_INET, addr, a) == 1) {
		m.alen = 4;
	} else if (inet_pton(AF_INET6, addr, a) == 1) {
		m.alen = 16;
		family = AF_INET6;
	} else {
		log_err("netstate: conntrack flush: '%s' is not an address", addr);
		return -EINVAL;
	}
	struct mnl_socket *nl = ns_nfnl_socket(netns_fd);
	if (!nl) {
		int e = errno;
		log_err("netstate: conntrack flush for %s: netlink socket: %s", addr, strerror(e));
		return -e;
	}
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = (uint32_t)time(NULL);
	struct nlmsghdr *nlh = ct_msg(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, family, seq);
	int r = mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ? -errno : ct_wait(nl, seq, on_entry, &m);
	if (!r && m.err)
		r = m.err;
	if (r == -ENOENT)       /* no conntrack in this netns: nothing tracked */
		r = 0;
	size_t gone = 0;
	for (size_t i = 0; !r && i < m.n; i++) {
		struct ct_entry *e = &m.e[i];
		nlh = ct_msg(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family, ++seq);
		mnl_attr_put(nlh, CTA_TUPLE_ORIG | NLA_F_NESTED, e->tlen, e->tuple);
		if (e->id)
			mnl_attr_put_u32(nlh, CTA_ID, e->id);
		if (e->has_zone)
			mnl_attr_put_u16(nlh, CTA_ZONE, e->zone);
		int d = mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ? -errno : ct_wait(nl, seq, NULL, NULL);
		if (d == -ENOENT)       /* gone meanwhile, or the tuple is a new flow's */
			continue;
		if (d < 0)
			r = d;
		else
			gone++;
	}
	mnl_socket_close(nl);
	free(m.e);
	if (r < 0)
		log_err("netstate: conntrack flush for %s failed: %s (%zu of %zu deleted)", addr, strerror(-r), gone, m.n);
	return r;
}
