/*
 * simroute.c — the simulated cluster's route hook in one process
 * (tests/cluster/simcluster route/unroute; docs/simcluster.md).
 *
 *   zapc-simroute [--lock] STATE_DIR PREFIX route IP NODE [IP NODE]...
 *   zapc-simroute [--lock] STATE_DIR PREFIX unroute IP [IP]...
 *
 * A pod that moved keeps its IP: the switch namespace gets IP/32 via NODE's
 * eth0 address, NODE gets IP/32 onto its pod bridge (when its agent made
 * one), every other node IP/32 via its subnet's gateway on eth0.  unroute
 * deletes those /32s again.  The manager runs this while the restored pods
 * wait frozen at the restart barrier, so it is on the critical path: the
 * shell version (bash, one `ip -batch` per namespace) cost 0.15-1.2 s of
 * the 2-CPU machine per restart; here it is one setns(2) and one netlink
 * batch per namespace, a few ms in all.
 *
 * STATE_DIR/nodes has "NETNS SHORT ADDR/LEN SUBNET BRIDGE" lines and
 * STATE_DIR/subnets "SUBNET BRIDGE GATEWAY" lines (written by simcluster up);
 * NODE may be the netns name, the short name or the eth0 address, as in the
 * shell version.  --lock takes STATE_DIR/lock first (simcluster's lock: an
 * `up` adding nodes meanwhile); simcluster itself calls this with the lock
 * already held.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXN 256
#define POD_BRIDGE "zapcbr0"

struct node {
	char ns[64], shortname[32], addr[32], subnet[32];
	struct in_addr ip, gw;
};

static struct node nodes[MAXN];
static int nnodes;

static int load(const char *st)
{
	char path[4096], line[512], gws[MAXN][2][32];
	int ngw = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/subnets", st);
	if (!(f = fopen(path, "re")))
		return fprintf(stderr, "simroute: %s: %s\n", path, strerror(errno)), -1;
	while (ngw < MAXN && fgets(line, sizeof(line), f))
		if (sscanf(line, "%31s %*s %31s", gws[ngw][0], gws[ngw][1]) == 2)
			ngw++;
	fclose(f);
	snprintf(path, sizeof(path), "%s/nodes", st);
	if (!(f = fopen(path, "re")))
		return fprintf(stderr, "simroute: %s: %s\n", path, strerror(errno)), -1;
	while (nnodes < MAXN && fgets(line, sizeof(line), f)) {
		struct node *n = &nodes[nnodes];
		char *slash;

		if (sscanf(line, "%63s %31s %31s %31s", n->ns, n->shortname, n->addr, n->subnet) != 4)
			continue;
		if ((slash = strchr(n->addr, '/')))
			*slash = '\0';
		if (inet_pton(AF_INET, n->addr, &n->ip) != 1)
			continue;
		for (int i = 0; i < ngw; i++)
			if (!strcmp(gws[i][0], n->subnet))
				inet_pton(AF_INET, gws[i][1], &n->gw);
		nnodes++;
	}
	fclose(f);
	return 0;
}

static struct node *find(const char *name)
{
	for (int i = 0; i < nnodes; i++)
		if (!strcmp(nodes[i].ns, name) || !strcmp(nodes[i].shortname, name) ||
		    !strcmp(nodes[i].addr, name))
			return &nodes[i];
	return NULL;
}

/* --- one netlink batch per namespace ---------------------------------------- */

struct batch {
	char buf[65536];
	size_t len;
	int n;
};

static void rta_add(struct nlmsghdr *h, int type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));

	a->rta_type = (unsigned short)type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* add (replace) or delete IP/32 [via gw] [dev ifindex] */
static int batch_route(struct batch *b, int add, struct in_addr dst, const struct in_addr *gw, int oif)
{
	struct nlmsghdr *h;
	struct rtmsg *r;

	if (b->len + 256 > sizeof(b->buf))
		return -1;
	h = (struct nlmsghdr *)(b->buf + b->len);
	memset(h, 0, 256);
	h->nlmsg_len = NLMSG_LENGTH(sizeof(*r));
	h->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	h->nlmsg_seq = (uint32_t)++b->n;
	r = NLMSG_DATA(h);
	r->rtm_family = AF_INET;
	r->rtm_dst_len = 32;
	r->rtm_table = RT_TABLE_MAIN;
	/* a delete matches any protocol, scope and type (like `ip route del`) */
	r->rtm_protocol = add ? RTPROT_BOOT : 0;
	r->rtm_scope = add ? (gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK) : RT_SCOPE_NOWHERE;
	r->rtm_type = add ? RTN_UNICAST : 0;
	rta_add(h, RTA_DST, &dst, 4);
	if (gw)
		rta_add(h, RTA_GATEWAY, gw, 4);
	if (oif > 0)
		rta_add(h, RTA_OIF, &oif, 4);
	b->len += NLMSG_ALIGN(h->nlmsg_len);
	return 0;
}

/* Send the batch, read one ack per message; deletes may find nothing (ESRCH). */
static int batch_run(const char *ns, struct batch *b, int add)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char buf[16384];
	int fd, acks = 0, rc = 0;

	if (!b->n)
		return 0;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0 || sendto(fd, b->buf, b->len, 0, (struct sockaddr *)&sa, sizeof(sa)) != (ssize_t)b->len) {
		fprintf(stderr, "simroute: %s: netlink: %s\n", ns, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while (acks < b->n) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);

		if (len <= 0) {
			fprintf(stderr, "simroute: %s: netlink: %s\n", ns, len ? strerror(errno) : "EOF");
			rc = -1;
			break;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len);
		     h = NLMSG_NEXT(h, len)) {
			struct nlmsgerr *e = NLMSG_DATA(h);

			if (h->nlmsg_type != NLMSG_ERROR)
				continue;
			acks++;
			if (e->error && !(!add && (e->error == -ESRCH || e->error == -ENOENT))) {
				fprintf(stderr, "simroute: %s: route %s (#%u): %s\n", ns, add ? "replace" : "del",
					h->nlmsg_seq, strerror(-e->error));
				rc = -1;
			}
		}
	}
	close(fd);
	return rc;
}

static int enter(const char *ns)
{
	char path[256];
	int fd, rc;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "simroute: netns %s: %s\n", ns, strerror(errno));
		return -1;
	}
	rc = setns(fd, CLONE_NEWNET);
	if (rc < 0)
		fprintf(stderr, "simroute: setns %s: %s\n", ns, strerror(errno));
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	static struct batch b;
	struct in_addr ips[MAXN];
	struct node *to[MAXN];
	char sw[80];
	int add, n = 0, rc = 0;

	if (argc > 1 && !strcmp(argv[1], "--lock")) {
		char path[4096];
		int fd;

		if (argc < 3)
			return 2;
		snprintf(path, sizeof(path), "%s/lock", argv[2]);
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 || flock(fd, LOCK_EX) < 0) {
			fprintf(stderr, "simroute: lock %s: %s\n", path, strerror(errno));
			return 1;
		}
		argv++;
		argc--;
	}
	if (argc < 5 || (strcmp(argv[3], "route") && strcmp(argv[3], "unroute"))) {
		fprintf(stderr, "usage: zapc-simroute [--lock] STATE_DIR PREFIX route IP NODE [IP NODE]...\n"
				"       zapc-simroute [--lock] STATE_DIR PREFIX unroute IP [IP]...\n");
		return 2;
	}
	add = !strcmp(argv[3], "route");
	if (load(argv[1]) < 0)
		return 1;
	for (int i = 4; i < argc; i += add ? 2 : 1) {
		if (n == MAXN || inet_pton(AF_INET, argv[i], &ips[n]) != 1) {
			fprintf(stderr, "simroute: '%s' is not an IPv4 address\n", argv[i]);
			return 1;
		}
		if (add && (i + 1 >= argc || !(to[n] = find(argv[i + 1])))) {
			fprintf(stderr, "simroute: no node '%s' in the cluster\n", i + 1 < argc ? argv[i + 1] : "");
			return 1;
		}
		n++;
	}
	snprintf(sw, sizeof(sw), "%s-sw", argv[2]);
	/* the switch */
	if (enter(sw) < 0)
		return 1;
	b.len = 0;
	b.n = 0;
	for (int k = 0; k < n; k++)
		batch_route(&b, add, ips[k], add ? &to[k]->ip : NULL, 0);
	rc |= batch_run(sw, &b, add);
	/* every node */
	for (int i = 0; i < nnodes; i++) {
		struct node *nd = &nodes[i];
		int eth0, br;

		if (enter(nd->ns) < 0) {
			rc = -1;
			continue;
		}
		eth0 = (int)if_nametoindex("eth0");
		br = (int)if_nametoindex(POD_BRIDGE);
		b.len = 0;
		b.n = 0;
		for (int k = 0; k < n; k++) {
			if (!add)
				batch_route(&b, 0, ips[k], NULL, 0);
			else if (to[k] == nd && br > 0)
				batch_route(&b, 1, ips[k], NULL, br);
			else if (to[k] != nd)
				batch_route(&b, 1, ips[k], &nd->gw, eth0);
			/* a node without a pod bridge (no agent) gets no route onto it */
		}
		rc |= batch_run(nd->ns, &b, add);
	}
	return rc ? 1 : 0;
}
