/*
 * memfile.c — open files whose content the image must carry: memfds (with
 * their seals) and regular files unlinked while open ("(deleted)").  Their
 * bytes are read through the engine's copy of the fd with pread (the shared
 * offset does not move) and stored in the image, up to MAX_SAVED_FILE.
 *
 * A deleted file keeps kind FK_REG with `deleted` set (regfile.c hands its
 * restore here); a memfd is FK_MEMFD.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

/* Content of an unlinked file or memfd (read through our duplicate, with pread
 * so the shared offset does not move). */
static int save_content(ImgFile *f, int lfd, const struct stat *st, uint32_t pid, int fd)
{
	if ((uint64_t)st->st_size > MAX_SAVED_FILE) {
		log_err("dump: pid %u fd %d: deleted file/memfd of %lld bytes is too big to save", pid, fd,
			(long long)st->st_size);
		return -EFBIG;
	}
	uint8_t *buf = xcalloc(1, (size_t)st->st_size);
	size_t off = 0;
	while (off < (size_t)st->st_size) {
		ssize_t n = pread(lfd, buf + off, (size_t)st->st_size - off, (off_t)off);
		if (n < 0) {
			int e = errno;
			free(buf);
			log_err("dump: pid %u fd %d: read content: %s", pid, fd, strerror(e));
			return -e;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	SETOPT(f, content, ((ProtobufCBinaryData){ off, buf }));
	return 0;
}

/* A memfd or an unlinked file: a new anonymous inode with the saved bytes
 * (O_TMPFILE in the old directory, else a memfd), reopened through
 * /proc/self/fd with the original access mode and flags. */
int saved_file_restore(struct rst_ctx *r, ImgFile *f)
{
	int tmp = -1, fd = -1;
	if (f->kind == FK_MEMFD) {
		tmp = memfd_create(f->path ? f->path : "", MFD_CLOEXEC | (f->has_seals ? MFD_ALLOW_SEALING : 0));
	} else {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s", f->path ? f->path : "/");
		char *slash = strrchr(dir, '/');
		if (slash)
			slash[slash == dir ? 1 : 0] = 0;
		tmp = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (tmp < 0)
			tmp = memfd_create("zapc-deleted", MFD_CLOEXEC);
	}
	if (tmp < 0) {
		log_err("restore: file %u (%s): %s", f->id, f->path ? f->path : "", strerror(errno));
		return -errno;
	}
	size_t off = 0;
	while (f->has_content && off < f->content.len) {
		ssize_t n = write(tmp, f->content.data + off, f->content.len - off);
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(tmp);
			log_err("restore: file %u: write content: %s", f->id, strerror(e));
			return -e;
		}
		off += (size_t)n;
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tmp);
	uint32_t fl = f->flags & ~(uint32_t)(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY);
	fd = open(proc, (int)(fl | O_CLOEXEC));
	if (fd < 0) {
		int e = errno;
		close(tmp);
		log_err("restore: file %u: reopen: %s", f->id, strerror(e));
		return -e;
	}
	if (f->has_seals && f->seals)
		fcntl(tmp, F_ADD_SEALS, (int)f->seals);
	close(tmp);
	if (f->has_pos && lseek(fd, (off_t)f->pos, SEEK_SET) < 0 && f->pos) {
		close(fd);
		return -errno;
	}
	return inv_move(r, fd);
}

static int memfile_match(const struct fd_src *s)
{
	return S_ISREG(s->st.st_mode) &&
	       (!strncmp(s->link, "/memfd:", 7) || (s->link[0] == '/' && strstr(s->link, " (deleted)")));
}

static int memfile_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	char link[4096], *del;

	(void)d;
	snprintf(link, sizeof(link), "%s", s->link);
	del = strstr(link, " (deleted)");
	if (del)
		*del = 0;
	SETOPT(f, pos, s->pos);
	if (!strncmp(link, "/memfd:", 7)) {
		int seals = fcntl(s->lfd, F_GET_SEALS);

		f->kind = FK_MEMFD;
		f->path = xstrdup(link + 7);
		if (seals > 0)
			SETOPT(f, seals, (uint32_t)seals);
	} else {
		f->kind = FK_REG;
		f->path = xstrdup(link);
		SETOPT(f, deleted, 1);
	}
	return save_content(f, s->lfd, &s->st, s->p->tree->pid, s->fd);
}

const struct fd_kind fdkind_memfile = {
	.name = "memfd or deleted file",
	.match = memfile_match,
	.dump = memfile_dump,
	.kinds = { FK_MEMFD },
	.restore = saved_file_restore,
};
