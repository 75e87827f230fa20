/*
 * fdinfo.c — small readers of /proc/PID/fdinfo/FD for the file kinds
 * (eventfd-count, timerfd it_value, epoll tfd lines, ...).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

char *fd_src_fdinfo(const struct fd_src *s)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", s->p->hpid, s->fd);
	char *t = read_file_str(path, NULL);
	if (!t)
		log_err("dump: pid %u fd %d: read fdinfo: %s", s->p->tree->pid, s->fd, strerror(errno));
	return t;
}

uint64_t fdinfo_u64(const char *info, const char *key, int base, uint64_t dflt)
{
	const char *p = strstr(info, key);
	if (!p)
		return dflt;
	p += strlen(key);
	while (*p == ' ' || *p == '\t' || *p == ':')
		p++;
	return strtoull(p, NULL, base);
}
