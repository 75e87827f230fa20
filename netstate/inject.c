/*
 * inject.c — forge packets "from the peer" into the local stack.
 *
 * Restore needs a few things only the peer can send: its FIN, the ACK of
 * our FIN, the urgent byte (TCP), and the saved UDP datagrams with their
 * original source addresses.  Packets to a local address leave through the
 * loopback route, keep their output route on the way in (no martian or
 * rp_filter check on the spoofed source), and are not seen by the pod's hold
 * chain, which skips lo.  TCP: a raw IPPROTO_RAW socket (header included).
 * UDP: a transparent socket bound to the original source.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

static uint32_t sum16(const void *p, size_t len, uint32_t sum)
{
	const uint8_t *b = p;

	for (; len > 1; len -= 2, b += 2)
		sum += (uint32_t)(b[0] << 8 | b[1]);
	if (len)
		sum += (uint32_t)(b[0] << 8);
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

int ns_inject_tcp(const struct ns_tcp_seg *seg)
{
	bool v6 = seg->from->sa.sa_family == AF_INET6;
	size_t iph = v6 ? sizeof(struct ip6_hdr) : sizeof(struct iphdr);
	size_t total = iph + sizeof(struct tcphdr) + seg->len;
	uint8_t *pkt;
	struct tcphdr *th;
	uint32_t sum;
	int fd = -1, r = 0;
	ssize_t n;

	if (seg->len > 65000 || seg->to->sa.sa_family != seg->from->sa.sa_family)
		return -EINVAL;
	pkt = calloc(1, total);
	if (!pkt)
		return -ENOMEM;
	th = (struct tcphdr *)(pkt + iph);
	th->source = v6 ? seg->from->in6.sin6_port : seg->from->in4.sin_port;
	th->dest = v6 ? seg->to->in6.sin6_port : seg->to->in4.sin_port;
	th->seq = htonl(seg->seq);
	th->ack_seq = htonl(seg->ack);
	th->doff = sizeof(*th) / 4;
	th->th_flags = seg->flags;
	th->window = htons(seg->window);
	th->urg_ptr = htons(seg->urg_ptr);
	if (seg->len)
		memcpy(th + 1, seg->data, seg->len);

	/* TCP checksum over the pseudo header. */
	sum = 0;
	if (v6) {
		struct ip6_hdr *ip6 = (struct ip6_hdr *)pkt;
		ip6->ip6_flow = htonl(6u << 28);
		ip6->ip6_plen = htons((uint16_t)(sizeof(*th) + seg->len));
		ip6->ip6_nxt = IPPROTO_TCP;
		ip6->ip6_hlim = 64;
		ip6->ip6_src = seg->from->in6.sin6_addr;
		ip6->ip6_dst = seg->to->in6.sin6_addr;
		sum = sum16(&ip6->ip6_src, 32, sum);
	} else {
		struct iphdr *ip = (struct iphdr *)pkt;
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons((uint16_t)total);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->saddr = seg->from->in4.sin_addr.s_addr;
		ip->daddr = seg->to->in4.sin_addr.s_addr;
		sum = sum16(&ip->saddr, 8, sum);
		/* the kernel fills the IP checksum and id for IP_HDRINCL */
	}
	sum += IPPROTO_TCP + (uint32_t)(sizeof(*th) + seg->len);
	sum = sum16(th, sizeof(*th) + seg->len, sum);
	th->check = fold(sum);

	fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (fd < 0) {
		r = -errno;
		log_err("netstate inject: raw socket: %s", strerror(errno));
		goto out;
	}
	if (v6) {
		struct sockaddr_in6 dst = seg->to->in6;
		dst.sin6_port = 0;
		n = sendto(fd, pkt, total, 0, (struct sockaddr *)&dst, sizeof(dst));
	} else {
		struct sockaddr_in dst = seg->to->in4;
		dst.sin_port = 0;
		n = sendto(fd, pkt, total, 0, (struct sockaddr *)&dst, sizeof(dst));
	}
	if (n != (ssize_t)total) {
		r = n < 0 ? -errno : -EIO;
		log_err("netstate inject: forged TCP segment: %s", strerror(-r));
	}
out:
	if (fd >= 0)
		close(fd);
	free(pkt);
	return r;
}

int ns_inject_udp(const union ns_sockaddr *from, const union ns_sockaddr *to, const void *data, size_t len)
{
	bool v6 = from->sa.sa_family == AF_INET6;
	int fd, one = 1, r = 0;
	ssize_t n;

	fd = socket(from->sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Transparent: bind to an address that is not ours (the peer's). */
	if ((v6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))
		: setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one))) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, &from->sa, v6 ? sizeof(from->in6) : sizeof(from->in4)) < 0) {
		r = -errno;
		log_err("netstate inject: UDP sender for the saved source: %s", strerror(errno));
		goto out;
	}
	n = sendto(fd, data, len, 0, &to->sa, v6 ? sizeof(to->in6) : sizeof(to->in4));
	if (n != (ssize_t)len) {
		r = n < 0 ? -errno : -EIO;
		log_err("netstate inject: saved datagram: %s", strerror(-r));
	}
out:
	close(fd);
	return r;
}
