/*
 * procread.c — reading small /proc texts without a malloc and with one
 * read(2): status, stat, fdinfo, limits, ... are produced by one show()
 * call (single_open), and seq_file hands such a record out whole when the
 * buffer is big enough, so a read shorter than the buffer is all of it.
 * The dump reads a few of these per process and per fd; at ~100 processes
 * every system call counts (docs/perf-notes in dump100 notes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/engine/engine.h"

/* Returns the length (text NUL-terminated), or -errno; -EFBIG if the text
 * may not fit in size - 1 bytes (the caller falls back to read_file_str). */
ssize_t proc_read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	if ((size_t)n >= size - 1)
		return -EFBIG;
	buf[n] = 0;
	return n;
}

/* The numeric entries of a /proc directory (task ids, fd numbers), in
 * directory order, with getdents64 into a stack buffer: opendir() would
 * malloc 32 KiB for every directory.  *out is malloc'd (free it); returns
 * the count or -errno. */
int proc_list_numbers(const char *path, int **out)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char buf[4096] __attribute__((aligned(8)));
	int n = 0, cap = 0, *v = NULL;
	for (;;) {
		long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (got < 0) {
			int e = errno;
			close(fd);
			free(v);
			return -e;
		}
		if (got == 0)
			break;
		for (long o = 0; o < got;) {
			struct dirent64_ { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; }
				*de = (void *)(buf + o);
			o += de->reclen;
			if (de->name[0] < '0' || de->name[0] > '9')
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				v = realloc(v, (size_t)cap * sizeof(*v));
			}
			v[n++] = atoi(de->name);
		}
	}
	close(fd);
	*out = v;
	return n;
}
