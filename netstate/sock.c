/*
 * sock.c — the public socket entry points: pick the kind of socket,
 * validate image records, pack and unpack them.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "netstate/internal.h"

void netstate_sock_free(netstate_sock_t *s)
{
	if (s)
		netstate__socket__free_unpacked(s, NULL);
}

int netstate_sock_capture(int fd, netstate_sock_t **out)
{
	Netstate__Socket *s;
	int domain, type, proto, r;
	socklen_t len = sizeof(int);

	*out = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return -errno;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0)
		return -errno;
	if ((domain != AF_INET && domain != AF_INET6) ||
	    !((type == SOCK_STREAM && proto == IPPROTO_TCP) || (type == SOCK_DGRAM && proto == IPPROTO_UDP))) {
		log_err("netstate: fd %d: socket family %d type %d protocol %d is not TCP/UDP over IP",
			fd, domain, type, proto);
		return -EOPNOTSUPP;
	}
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	netstate__socket__init(s);
	s->family = (uint32_t)domain;
	s->type = (uint32_t)type;
	s->protocol = (uint32_t)proto;
	r = ns_opts_capture(fd, s);
	if (!r)
		r = type == SOCK_STREAM ? ns_tcp_capture(fd, s) : ns_udp_capture(fd, s);
	if (r) {
		netstate_sock_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int netstate_sock_detach(int fd)
{
	int type;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	return type == SOCK_STREAM ? ns_tcp_detach(fd) : 0;
}

int netstate_sock_validate(const netstate_sock_t *s)
{
	int r;

	if (!s || (s->family != AF_INET && s->family != AF_INET6))
		return -EINVAL;
	if (!((s->type == SOCK_STREAM && s->protocol == IPPROTO_TCP) ||
	      (s->type == SOCK_DGRAM && s->protocol == IPPROTO_UDP)))
		return -EINVAL;
	if ((s->local && ns_addr_validate(s->local, s->family)) ||
	    (s->peer && ns_addr_validate(s->peer, s->family)))
		return -EINVAL;
	if ((r = ns_opts_validate(s)))
		return r;
	r = s->type == SOCK_STREAM ? ns_tcp_validate(s) : ns_udp_validate(s);
	return r;
}

int netstate_sock_restore(const netstate_sock_t *s, int *fd_out)
{
	int r = netstate_sock_validate(s);

	*fd_out = -1;
	if (r) {
		log_err("netstate: socket record rejected: invalid fields");
		return r;
	}
	return s->type == SOCK_STREAM ? ns_tcp_restore(s, fd_out) : ns_udp_restore(s, fd_out);
}

int netstate_sock_finish(const netstate_sock_t *s, int fd)
{
	return s->type == SOCK_STREAM ? ns_tcp_finish(s, fd) : 0;
}

size_t netstate_sock_packed_size(const netstate_sock_t *s)
{
	return netstate__socket__get_packed_size(s);
}

size_t netstate_sock_pack(const netstate_sock_t *s, uint8_t *buf)
{
	return netstate__socket__pack(s, buf);
}

netstate_sock_t *netstate_sock_unpack(const uint8_t *buf, size_t len)
{
	return netstate__socket__unpack(NULL, len, buf);
}
