/*
 * ns_test.h — what the netstate test programs share: TAP output (ok, with
 * tap_n/tap_fail), entering and opening network namespaces, socket
 * addresses and an int socket option read.  Static: each test program is
 * one .c file (netstate/module.mk builds each test .c on its own).
 */
#ifndef ZAPC_NS_TEST_H
#define ZAPC_NS_TEST_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int tap_n, tap_fail;

static void ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		tap_fail++;
}

static void in_ns(int ns)
{
	if (setns(ns, CLONE_NEWNET) < 0) {
		perror("setns");
		exit(1);
	}
}

static inline int open_ns(const char *name)
{
	char p[256];
	snprintf(p, sizeof(p), "/run/netns/%s", name);
	return open(p, O_RDONLY | O_CLOEXEC);
}

static inline socklen_t mkaddr(int family, const char *ip, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &a->sin_addr);
		return sizeof(*a);
	}
	struct sockaddr_in6 *a = (void *)ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons((uint16_t)port);
	inet_pton(AF_INET6, ip, &a->sin6_addr);
	return sizeof(*a);
}

static inline int getint(int fd, int level, int name)
{
	int v = -12345;
	socklen_t l = sizeof(v);
	getsockopt(fd, level, name, &v, &l);
	return v;
}

#endif
