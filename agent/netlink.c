/*
 * netlink.c — links, addresses and routes for pods (see netlink.h).
 *
 * Facts relied on:
 *  - a veth peer can be created directly in another netns (IFLA_NET_NS_FD in
 *    the peer's attributes), so it can be named eth0 even when the node netns
 *    has an eth0 of its own;
 *  - a netlink socket acts on the netns it was created in, so a socket made
 *    while the agent is setns'd into the pod netns configures the pod, after
 *    the agent has switched back.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include "agent/netlink.h"
#include "lib/log.h"

static int nlerr(int e)
{
	switch (-e) {
	case NLE_EXIST: return -EEXIST;
	case NLE_OBJ_NOTFOUND: case NLE_NODEV: return -ENODEV;
	case NLE_PERM: return -EPERM;
	case NLE_NOMEM: return -ENOMEM;
	case NLE_INVAL: return -EINVAL;
	case NLE_BUSY: return -EBUSY;
	case NLE_NOADDR: return -EADDRNOTAVAIL;
	default: return -EIO;
	}
}

static struct nl_sock *sock_open(void)
{
	struct nl_sock *sk = nl_socket_alloc();

	if (!sk)
		return NULL;
	if (nl_connect(sk, NETLINK_ROUTE) < 0) {
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

/* A route netlink socket living in netns fd `ns` (the caller stays where it was). */
static struct nl_sock *sock_open_in(int ns)
{
	struct nl_sock *sk;
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

	if (self < 0)
		return NULL;
	if (setns(ns, CLONE_NEWNET) < 0) {
		close(self);
		return NULL;
	}
	sk = sock_open();
	if (setns(self, CLONE_NEWNET) < 0)
		log_err("netlink: cannot return to the agent's netns: %s", strerror(errno));
	close(self);
	return sk;
}

static int link_up(struct nl_sock *sk, const char *name, int *ifindex)
{
	struct rtnl_link *link = NULL, *chg = NULL;
	int rc;

	rc = rtnl_link_get_kernel(sk, 0, name, &link);
	if (rc < 0)
		return nlerr(rc);
	chg = rtnl_link_alloc();
	rtnl_link_set_flags(chg, IFF_UP);
	rc = rtnl_link_change(sk, link, chg, 0);
	if (ifindex)
		*ifindex = rtnl_link_get_ifindex(link);
	rtnl_link_put(chg);
	rtnl_link_put(link);
	return rc < 0 ? nlerr(rc) : 0;
}

static int addr_add(struct nl_sock *sk, int ifindex, struct in_addr ip, int prefix)
{
	struct rtnl_addr *a = rtnl_addr_alloc();
	struct nl_addr *local = nl_addr_build(AF_INET, &ip, sizeof(ip));
	int rc;

	nl_addr_set_prefixlen(local, prefix);
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_local(a, local);
	rc = rtnl_addr_add(sk, a, NLM_F_REPLACE);
	nl_addr_put(local);
	rtnl_addr_put(a);
	if (rc == -NLE_EXIST)
		rc = 0;
	return rc < 0 ? nlerr(rc) : 0;
}

int net_bridge_ensure(const char *name, struct in_addr gw, int prefix, int *created, int *ifindex)
{
	struct nl_sock *sk = sock_open();
	struct rtnl_link *link = NULL;
	int rc;

	*created = 0;
	if (!sk)
		return -ENOMEM;
	rc = rtnl_link_get_kernel(sk, 0, name, &link);
	if (rc < 0) {
		rc = rtnl_link_bridge_add(sk, name);
		if (rc < 0) {
			rc = nlerr(rc);
			log_err("bridge %s: create: %s", name, strerror(-rc));
			goto out;
		}
		*created = 1;
	} else {
		rtnl_link_put(link);
	}
	rc = link_up(sk, name, ifindex);
	if (rc == 0)
		rc = addr_add(sk, *ifindex, gw, prefix);
	if (rc < 0)
		log_err("bridge %s: configure: %s", name, strerror(-rc));
out:
	nl_socket_free(sk);
	return rc;
}

int net_link_delete(const char *name)
{
	struct nl_sock *sk = sock_open();
	struct rtnl_link *link = NULL;
	int rc;

	if (!sk)
		return -ENOMEM;
	rc = rtnl_link_get_kernel(sk, 0, name, &link);
	if (rc < 0) {
		rc = 0;	/* already gone */
		goto out;
	}
	rc = rtnl_link_delete(sk, link);
	rtnl_link_put(link);
	if (rc < 0) {
		rc = nlerr(rc);
		log_err("link %s: delete: %s", name, strerror(-rc));
	}
out:
	nl_socket_free(sk);
	return rc;
}

int net_veth_create(const char *host, int br_ifindex, int pod_netns, const uint8_t mac[6])
{
	struct nl_sock *sk = sock_open();
	struct rtnl_link *link, *peer;
	struct nl_addr *hw;
	int rc, ifindex = 0;

	if (!sk)
		return -ENOMEM;
	link = rtnl_link_veth_alloc();
	peer = rtnl_link_veth_get_peer(link);
	rtnl_link_set_name(link, host);
	rtnl_link_set_name(peer, "eth0");
	rtnl_link_set_ns_fd(peer, pod_netns);
	hw = nl_addr_build(AF_LLC, mac, 6);
	rtnl_link_set_addr(peer, hw);
	nl_addr_put(hw);
	rc = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_link_put(peer);
	rtnl_link_veth_release(link);
	if (rc < 0) {
		rc = nlerr(rc);
		log_err("veth %s: create: %s", host, strerror(-rc));
		goto out;
	}
	rc = link_up(sk, host, &ifindex);
	if (rc == 0) {
		rc = rtnl_link_enslave_ifindex(sk, br_ifindex, ifindex);
		rc = rc < 0 ? nlerr(rc) : 0;
	}
	if (rc < 0) {
		log_err("veth %s: attach to bridge: %s", host, strerror(-rc));
		net_link_delete(host);
	}
out:
	nl_socket_free(sk);
	return rc;
}

int net_pod_configure(int pod_netns, struct in_addr ip, int prefix, struct in_addr gw)
{
	struct nl_sock *sk = sock_open_in(pod_netns);
	struct rtnl_route *route = NULL;
	struct rtnl_nexthop *nh;
	struct nl_addr *dst = NULL, *via = NULL;
	int rc, ifindex;
	const char *what = "lo up";

	if (!sk)
		return -errno ? -errno : -ENOMEM;
	rc = link_up(sk, "lo", NULL);
	if (rc < 0)
		goto out;
	what = "eth0 up";
	rc = link_up(sk, "eth0", &ifindex);
	if (rc < 0)
		goto out;
	what = "eth0 address";
	rc = addr_add(sk, ifindex, ip, prefix);
	if (rc < 0)
		goto out;
	what = "default route";
	route = rtnl_route_alloc();
	rtnl_route_set_family(route, AF_INET);
	nl_addr_parse("0.0.0.0/0", AF_INET, &dst);
	rtnl_route_set_dst(route, dst);
	nh = rtnl_route_nh_alloc();
	rtnl_route_nh_set_ifindex(nh, ifindex);
	via = nl_addr_build(AF_INET, &gw, sizeof(gw));
	rtnl_route_nh_set_gateway(nh, via);
	rtnl_route_add_nexthop(route, nh);
	rc = rtnl_route_add(sk, route, NLM_F_CREATE | NLM_F_REPLACE);
	rc = rc < 0 ? nlerr(rc) : 0;
out:
	if (rc < 0)
		log_err("pod netns: %s: %s", what, strerror(-rc));
	if (dst)
		nl_addr_put(dst);
	if (via)
		nl_addr_put(via);
	if (route)
		rtnl_route_put(route);
	nl_socket_free(sk);
	return rc;
}

int net_bridge_flush(const char *bridge, const char *prefix)
{
	struct nl_sock *sk = sock_open();
	struct nl_cache *cache = NULL;
	struct nl_object *obj;
	int br, n = 0;

	if (!sk)
		return 0;
	if (rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache) < 0)
		goto out;
	br = rtnl_link_name2i(cache, bridge);
	if (br <= 0)
		goto out;
	for (obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
		struct rtnl_link *l = (struct rtnl_link *)obj;
		const char *name = rtnl_link_get_name(l);

		if (rtnl_link_get_master(l) != br || !name ||
		    strncmp(name, prefix, strlen(prefix)) != 0)
			continue;
		if (rtnl_link_delete(sk, l) == 0)
			n++;
	}
out:
	if (cache)
		nl_cache_free(cache);
	nl_socket_free(sk);
	return n;
}

int net_host_route(int add, struct in_addr ip, int ifindex)
{
	struct nl_sock *sk = sock_open();
	struct rtnl_route *route;
	struct rtnl_nexthop *nh;
	struct nl_addr *dst;
	int rc;

	if (!sk)
		return -ENOMEM;
	route = rtnl_route_alloc();
	rtnl_route_set_family(route, AF_INET);
	dst = nl_addr_build(AF_INET, &ip, sizeof(ip));
	nl_addr_set_prefixlen(dst, 32);
	rtnl_route_set_dst(route, dst);
	rtnl_route_set_scope(route, RT_SCOPE_LINK);
	rtnl_route_set_protocol(route, ZAPC_RTPROT);
	nh = rtnl_route_nh_alloc();
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_add_nexthop(route, nh);
	rc = add ? rtnl_route_add(sk, route, NLM_F_CREATE | NLM_F_REPLACE)
		 : rtnl_route_delete(sk, route, 0);
	if (!add && rc == -NLE_OBJ_NOTFOUND)
		rc = 0;
	rc = rc < 0 ? nlerr(rc) : 0;
	if (rc < 0)
		log_err("host route %s/32: %s: %s", inet_ntoa(ip), add ? "add" : "delete",
			strerror(-rc));
	nl_addr_put(dst);
	rtnl_route_put(route);
	nl_socket_free(sk);
	return rc;
}

int net_host_route_flush(int ifindex)
{
	struct nl_sock *sk = sock_open();
	struct nl_cache *cache = NULL;
	struct nl_object *obj;
	int n = 0;

	if (!sk)
		return 0;
	if (rtnl_route_alloc_cache(sk, AF_INET, 0, &cache) < 0)
		goto out;
	for (obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
		struct rtnl_route *r = (struct rtnl_route *)obj;
		struct rtnl_nexthop *nh;

		if (rtnl_route_get_protocol(r) != ZAPC_RTPROT || rtnl_route_get_nnexthops(r) < 1)
			continue;
		nh = rtnl_route_nexthop_n(r, 0);
		if (rtnl_route_nh_get_ifindex(nh) != ifindex)
			continue;
		if (rtnl_route_delete(sk, r, 0) == 0)
			n++;
	}
out:
	if (cache)
		nl_cache_free(cache);
	nl_socket_free(sk);
	return n;
}
