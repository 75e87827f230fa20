/*
 * util.c — small helpers of the engine: /proc text files, links, protobuf
 * repeated fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/engine/engine.h"

void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p) {
		fprintf(stderr, "zapc-engine: out of memory\n");
		abort();
	}
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		abort();
	return p;
}

char *read_file_str(const char *path, size_t *lenp)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, len = 0;
	char *b = malloc(cap + 1);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			b = realloc(b, cap + 1);
		}
		ssize_t n = read(fd, b + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(b);
			close(fd);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	b[len] = 0;
	if (lenp)
		*lenp = len;
	return b;
}

int read_link(const char *path, char *buf, size_t len)
{
	ssize_t n = readlink(path, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return (int)n;
}

int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, s, strlen(s));
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

void *pb_push(size_t *n, void ***arr, size_t elem_size, void (*init)(void *))
{
	void **a = realloc(*arr, (*n + 1) * sizeof(void *));
	if (!a)
		abort();
	*arr = a;
	void *e = xcalloc(1, elem_size);
	init(e);
	a[(*n)++] = e;
	return e;
}

/* "Key:\tv1\tv2 ..." in /proc/PID/status; which = index or -1 for the last. */
uint32_t status_field_u32(const char *status, const char *key, int which)
{
	uint32_t v[16];
	int n = status_field_ids(status, key, v, 16);
	if (n <= 0)
		return 0;
	if (which < 0 || which >= n)
		return v[n - 1];
	return v[which];
}

int status_field_ids(const char *status, const char *key, uint32_t *out, int max)
{
	size_t kl = strlen(key);
	const char *p = status;
	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == ':') {
			p += kl + 1;
			int n = 0;
			while (*p && *p != '\n' && n < max) {
				while (*p == ' ' || *p == '\t')
					p++;
				if (*p == '\n' || !*p)
					break;
				char *e;
				unsigned long v = strtoul(p, &e, 10);
				if (e == p)
					break;
				out[n++] = (uint32_t)v;
				p = e;
			}
			return n;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -ENOENT;
}

/*
 * The engine's own heap, pad bytes of it populated in one go: on this VM a
 * first touch of a fresh page costs ~10 us as a page fault but ~1 us after
 * MADV_POPULATE_WRITE, and a dump or restore allocates a few KiB per
 * process (the model, /proc texts, records).  Freed memory stays (no trim)
 * for reuse.
 */
void heap_prepare(size_t pad)
{
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_ARENA_MAX, 1);       /* helper threads too: not a fresh arena */
	mallopt(M_TOP_PAD, (int)pad);
	char *x = malloc(64);
	char *top = sbrk(0);
	uintptr_t from = ((uintptr_t)x + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
	if (x && top != (char *)-1 && (uintptr_t)top > from)
		madvise((void *)from, (uintptr_t)top - from, 23 /* MADV_POPULATE_WRITE, 5.14 */);
	free(x);
}
