/*
 * netlink.h — the network plumbing of pods, through libnl-route-3.
 *
 * The node side: a bridge (gateway address = first address of the pod net)
 * and, per pod, the host end of a veth enslaved to it.  The pod side: the
 * veth's other end, named eth0, created directly inside the pod's netns with
 * the pod's MAC, then addressed and given a default route via the gateway.
 * All calls act on the caller's current netns unless they take a netns fd.
 */
#ifndef ZAPC_AGENT_NETLINK_H
#define ZAPC_AGENT_NETLINK_H

#include <netinet/in.h>
#include <stdint.h>

/* Create the bridge if missing (*created = 1), give it gw/prefix, set it up. */
int net_bridge_ensure(const char *name, struct in_addr gw, int prefix, int *created, int *ifindex);

/* Delete a link by name in the current netns (0 when it does not exist). */
int net_link_delete(const char *name);

/*
 * veth pair: host end `host` (up, enslaved to bridge br_ifindex) in the
 * current netns, peer "eth0" with `mac` inside the netns `pod_netns`.
 */
int net_veth_create(const char *host, int br_ifindex, int pod_netns, const uint8_t mac[6]);

/* Inside pod_netns: lo up, eth0 up with ip/prefix, default route via gw. */
int net_pod_configure(int pod_netns, struct in_addr ip, int prefix, struct in_addr gw);

/* Routes the agent adds carry this protocol number, so it can find its own. */
#define ZAPC_RTPROT 0x7a

/*
 * Host route ip/32 dev ifindex (protocol ZAPC_RTPROT) in the current netns:
 * a pod is reached on this node's bridge even when its address belongs to
 * another node's pool (a pod that moved here).  add: 1 add, 0 delete.
 */
int net_host_route(int add, struct in_addr ip, int ifindex);

/* Delete every ZAPC_RTPROT route through ifindex; returns how many. */
int net_host_route_flush(int ifindex);

/* Delete every link named prefix* enslaved to the bridge; returns how many. */
int net_bridge_flush(const char *bridge, const char *prefix);

#endif
