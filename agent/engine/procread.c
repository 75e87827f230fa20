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
