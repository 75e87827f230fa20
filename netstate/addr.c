/*
 * addr.c — socket addresses to and from image records, and freeing records.
 *
 * Records are built field by field with malloc, so the protobuf-c free
 * function (which frees every field with the default allocator) releases
 * both records we built and records we unpacked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netstate/internal.h"

Netstate__Addr *ns_addr_new(const union ns_sockaddr *sa)
{
	Netstate__Addr *a = malloc(sizeof(*a));
	const void *ip;
	size_t iplen;

	if (!a)
		return NULL;
	netstate__addr__init(a);
	if (sa->sa.sa_family == AF_INET) {
		ip = &sa->in4.sin_addr;
		iplen = 4;
		a->port = ntohs(sa->in4.sin_port);
	} else {
		ip = &sa->in6.sin6_addr;
		iplen = 16;
		a->port = ntohs(sa->in6.sin6_port);
		if (sa->in6.sin6_scope_id) {
			a->has_scope_id = 1;
			a->scope_id = sa->in6.sin6_scope_id;
		}
	}
	a->family = sa->sa.sa_family;
	a->ip.data = malloc(iplen);
	if (!a->ip.data) {
		free(a);
		return NULL;
	}
	memcpy(a->ip.data, ip, iplen);
	a->ip.len = iplen;
	return a;
}

int ns_addr_validate(const Netstate__Addr *a, uint32_t family)
{
	if (!a || a->family != family || a->port > 65535)
		return -EINVAL;
	if ((family == AF_INET && a->ip.len != 4) || (family == AF_INET6 && a->ip.len != 16))
		return -EINVAL;
	if (family != AF_INET && family != AF_INET6)
		return -EINVAL;
	return 0;
}

int ns_addr_to_sockaddr(const Netstate__Addr *a, union ns_sockaddr *sa, socklen_t *len)
{
	memset(sa, 0, sizeof(*sa));
	if (ns_addr_validate(a, a ? a->family : 0))
		return -EINVAL;
	if (a->family == AF_INET) {
		sa->in4.sin_family = AF_INET;
		sa->in4.sin_port = htons(a->port);
		memcpy(&sa->in4.sin_addr, a->ip.data, 4);
		*len = sizeof(sa->in4);
	} else {
		sa->in6.sin6_family = AF_INET6;
		sa->in6.sin6_port = htons(a->port);
		memcpy(&sa->in6.sin6_addr, a->ip.data, 16);
		sa->in6.sin6_scope_id = a->has_scope_id ? a->scope_id : 0;
		*len = sizeof(sa->in6);
	}
	return 0;
}

const char *ns_addr_str(const Netstate__Addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a && !ns_addr_validate(a, a->family))
		inet_ntop(a->family, a->ip.data, ip, sizeof(ip));
	snprintf(buf, len, a && a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, a ? a->port : 0);
	return buf;
}
