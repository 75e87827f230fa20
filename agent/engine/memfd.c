/*
 * memfd.c — memfds and open-but-deleted regular files, saved by content.
 *
 * A memfd ("/memfd:NAME (deleted)") is saved whole (up to CONTENT_MAX
 * bytes) with its seals (F_GET_SEALS), offset and flags, and re-created
 * with memfd_create(NAME, MFD_ALLOW_SEALING).  When the same memfd is also
 * mapped shared (mm.c saved it as a shared-memory object whose id is the
 * inode) the restored memfd takes the place of that object, so the fd and
 * the mapping stay one file; its write seals (F_SEAL_WRITE/FUTURE_WRITE)
 * are then not re-applied, since the mapped pages are written after this.
 *
 * A regular file unlinked while open ("/path (deleted)") is saved whole (up
 * to CONTENT_MAX) and re-created as an O_TMPFILE file in the same directory
 * — still nameless, still on the same file system — then reopened through
 * /proc/self/fd with the saved flags and offset.  Its mappings are not
 * handled (mm.c refuses a mapping of a deleted file).
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

#define CONTENT_MAX (256ull << 20)

static int memfd_match(const struct fd_src *s)
{
	return S_ISREG(s->st.st_mode) && s->link[0] == '/' && strstr(s->link, " (deleted)");
}

static int read_all(int fd, uint64_t size, ProtobufCBinaryData *out)
{
	out->data = xcalloc(1, size + 1);
	out->len = 0;
	while (out->len < size) {
		ssize_t n = pread(fd, out->data + out->len, size - out->len, (off_t)out->len);
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		out->len += (size_t)n;
	}
	return 0;
}

static int memfd_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	(void)d;
	bool memfd = !strncmp(s->link, "/memfd:", 7);
	uint64_t size = (uint64_t)s->st.st_size;
	if (size > CONTENT_MAX) {
		log_err("dump: pid %u fd %d: %s: %llu bytes, more than the %llu saved for %s: not supported",
			s->p->tree->pid, s->fd, s->link, (unsigned long long)size, CONTENT_MAX,
			memfd ? "a memfd" : "an open deleted file");
		return -ENOTSUP;
	}
	f->kind = memfd ? FK_MEMFD : FK_DELETED;
	size_t n = strlen(s->link) - strlen(" (deleted)");
	f->path = xcalloc(1, n + 1);
	memcpy(f->path, memfd ? s->link + 7 : s->link, memfd ? n - 7 : n);
	SETOPT(f, pos, s->pos);
	SETOPT(f, size, size);
	SETOPT(f, mode, (uint32_t)(s->st.st_mode & 07777));
	SETOPT(f, ino, (uint32_t)s->st.st_ino);
	if (memfd) {
		int seals = fcntl(s->lfd, F_GET_SEALS);
		SETOPT(f, seals, seals > 0 ? (uint32_t)seals : 0);
	}
	f->has_content = 1;
	int err = read_all(s->lfd, size, &f->content);
	if (err < 0)
		log_err("dump: pid %u fd %d: read %s: %s", s->p->tree->pid, s->fd, s->link, strerror(-err));
	return err;
}

static int write_all(int fd, const ProtobufCBinaryData *c)
{
	size_t off = 0;
	while (off < c->len) {
		ssize_t n = pwrite(fd, c->data + off, c->len - off, (off_t)off);
		if (n <= 0)
			return -(n < 0 ? errno : EIO);
		off += (size_t)n;
	}
	return 0;
}

static int memfd_restore(struct rst_ctx *r, ImgFile *f)
{
	int fd = -1, err = 0;
	if (!f->path || !f->has_size || f->size > CONTENT_MAX || f->content.len > f->size) {
		log_err("restore: file %u: bad memfd/deleted file in image", f->id);
		return -EINVAL;
	}
	if (f->kind == FK_MEMFD) {
		fd = memfd_create(f->path, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	} else {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s", f->path);
		char *slash = strrchr(dir, '/');
		if (slash)
			slash[slash == dir ? 1 : 0] = 0;
		fd = rst_open(r, dir, O_TMPFILE | O_RDWR | O_CLOEXEC, (mode_t)(f->mode & 07777));
	}
	if (fd < 0) {
		log_err("restore: file %u: re-create %s %s: %s", f->id, f->kind == FK_MEMFD ? "memfd" : "deleted file",
			f->path, strerror(errno));
		return -errno;
	}
	if (ftruncate(fd, (off_t)f->size) < 0 || (err = write_all(fd, &f->content)) < 0) {
		err = err ? err : -errno;
		log_err("restore: file %u: fill %s: %s", f->id, f->path, strerror(-err));
		goto fail;
	}
	fchmod(fd, (mode_t)(f->mode & 07777));
	bool mapped = false;
	for (size_t i = 0; f->kind == FK_MEMFD && f->has_ino && i < r->files->n_shms; i++)
		if (r->files->shms[i]->id == f->ino) {
			/* the same memfd is mapped: it becomes that shared-memory object */
			int dup = fcntl(fd, F_DUPFD_CLOEXEC, r->inv_base);
			if (dup < 0) {
				err = -errno;
				goto fail;
			}
			close(r->shm_fd[i]);
			r->shm_fd[i] = dup;
			mapped = true;
		}
	uint32_t seals = f->seals;
	if (mapped)
		seals &= ~(uint32_t)(F_SEAL_WRITE | F_SEAL_FUTURE_WRITE);
	if (seals && fcntl(fd, F_ADD_SEALS, (int)seals) < 0) {
		err = -errno;
		log_err("restore: file %u: memfd seals %#x: %s", f->id, seals, strerror(errno));
		goto fail;
	}
	/* a description with the saved access mode and flags */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int acc = (int)(f->flags & (O_ACCMODE | O_APPEND | O_NONBLOCK));
	int fd2 = open(path, acc | O_CLOEXEC);
	if (fd2 < 0) {
		err = -errno;
		log_err("restore: file %u: reopen %s: %s", f->id, f->path, strerror(errno));
		goto fail;
	}
	close(fd);
	if (lseek(fd2, (off_t)f->pos, SEEK_SET) < 0 && f->pos) {
		err = -errno;
		close(fd2);
		return err;
	}
	return fd2;
fail:
	close(fd);
	return err;
}

const struct fd_kind fdkind_memfd = {
	.name = "memfd/deleted file",
	.match = memfd_match,
	.dump = memfd_dump,
	.kinds = { FK_MEMFD, FK_DELETED },
	.restore = memfd_restore,
};
