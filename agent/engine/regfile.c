/*
 * regfile.c — regular files (path, offset, status flags), directories, the
 * harmless character devices (/dev/null, /dev/zero, /dev/full, /dev/random,
 * /dev/urandom), and files behind file mappings (FK_MAPPED, entered by the
 * memory code, not by an fd).
 *
 * Restore opens the path again with the saved flags and seeks to the saved
 * offset.  Files must be where they were (the pod's root is shared storage
 * or the node's file system); open-but-deleted files are memfd.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

static const char *const ok_chr[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
				      "/dev/urandom", NULL };

static int regfile_match(const struct fd_src *s)
{
	return s->link[0] == '/' && !strstr(s->link, " (deleted)") &&
	       (S_ISREG(s->st.st_mode) || S_ISDIR(s->st.st_mode) || S_ISCHR(s->st.st_mode));
}

static int regfile_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	(void)d;
	if (S_ISCHR(s->st.st_mode)) {
		bool ok = false;
		for (int k = 0; ok_chr[k]; k++)
			ok |= !strcmp(ok_chr[k], s->link);
		if (!ok) {
			log_err("dump: pid %u fd %d: character device %s is not supported", s->p->tree->pid,
				s->fd, s->link);
			return -ENOTSUP;
		}
		f->kind = FK_CHR;
		f->path = xstrdup(s->link);
		return 0;
	}
	f->kind = S_ISREG(s->st.st_mode) ? FK_REG : FK_DIR;
	f->path = xstrdup(s->link);
	SETOPT(f, pos, s->pos);
	SETOPT(f, size, (uint64_t)s->st.st_size);
	return 0;
}

static int regfile_restore(struct rst_ctx *r, ImgFile *f)
{
	uint32_t fl = f->flags & ~(uint32_t)(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY);
	int fd;

	if (!f->path || f->path[0] != '/') {
		log_err("restore: file %u has no absolute path", f->id);
		return -EINVAL;
	}
	if (f->kind != FK_MAPPED && inherited_fd(r, f->path) >= 0) {
		fd = fcntl(inherited_fd(r, f->path), F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
	fd = rst_open(r, f->path, (int)(fl | O_CLOEXEC), 0);
	if (fd < 0) {
		log_err("restore: open %s: %s", f->path, strerror(errno));
		return -errno;
	}
	if (f->kind == FK_MAPPED && f->has_size) {
		struct stat st;
		if (fstat(fd, &st) == 0 && (uint64_t)st.st_size != f->size)
			log_warn("restore: %s changed size since the checkpoint", f->path);
	}
	if ((f->kind == FK_REG || f->kind == FK_DIR) && f->has_pos &&
	    lseek(fd, (off_t)f->pos, SEEK_SET) < 0 && f->pos) {
		int e = errno;
		log_err("restore: %s: seek to %llu: %s", f->path, (unsigned long long)f->pos, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

const struct fd_kind fdkind_regfile = {
	.name = "regular file",
	.match = regfile_match,
	.dump = regfile_dump,
	.kinds = { FK_REG, FK_DIR, FK_CHR, FK_MAPPED },
	.restore = regfile_restore,
};
