/*
 * shmfile.c — POSIX shared memory: files in the pod's /dev/shm, saved by
 * content.
 *
 * A pod's /dev/shm is its own tmpfs: when the pod is gone so are the files
 * there, whether a process holds them by fd (FK_REG) or only maps them
 * (FK_MAPPED, the usual shm_open + mmap + close).  At the end of the dump
 * every such file of the image is read whole (up to CONTENT_MAX) through
 * the init's /proc/PID/root, with its mode; before any description is
 * re-created (the `prepare` hook) the restore writes each back to its path,
 * so the ordinary path-based reopening (regfile.c) and the shared mappings
 * (mm.c: no pages are saved for shared file mappings) find it.
 *
 * The restore writes through the engine's /dev/shm, which is the pod's own
 * tmpfs: restore.c mounts it in the engine's private mount namespace before
 * any file is re-created, and the pod's init inherits that mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

#define CONTENT_MAX (256ull << 20)
#define SHM_DIR "/dev/shm/"

static bool in_shm(const ImgFile *f)
{
	return (f->kind == FK_REG || f->kind == FK_MAPPED) && f->path &&
	       !strncmp(f->path, SHM_DIR, strlen(SHM_DIR)) && !strstr(f->path + strlen(SHM_DIR), "..");
}

static int shm_dump_finish(struct dump_ctx *d)
{
	for (size_t i = 0; i < d->files->n_files; i++) {
		ImgFile *f = d->files->files[i];
		if (!in_shm(f) || f->has_content)
			continue;
		/* identical paths (several descriptions / mappings) carry it once */
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = d->files->files[k]->has_content && !strcmp(d->files->files[k]->path, f->path);
		if (seen)
			continue;
		char path[4200];
		snprintf(path, sizeof(path), "/proc/%d/root%s", d->procs[0].hpid, f->path);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > CONTENT_MAX) {
			log_err("dump: shared memory file %s: %s", f->path,
				fd < 0 ? strerror(errno) : "not a regular file of at most 256 MiB: not supported");
			if (fd >= 0)
				close(fd);
			return -ENOTSUP;
		}
		f->has_content = 1;
		f->content.data = xcalloc(1, (size_t)st.st_size + 1);
		while (f->content.len < (size_t)st.st_size) {
			ssize_t n = pread(fd, f->content.data + f->content.len, (size_t)st.st_size - f->content.len,
					  (off_t)f->content.len);
			if (n <= 0)
				break;
			f->content.len += (size_t)n;
		}
		SETOPT(f, mode, (uint32_t)(st.st_mode & 07777));
		close(fd);
	}
	return 0;
}

static int shm_prepare(struct rst_ctx *r)
{
	for (size_t i = 0; i < r->files->n_files; i++) {
		ImgFile *f = r->files->files[i];
		if (!in_shm(f) || !f->has_content)
			continue;
		if (f->content.len > CONTENT_MAX)
			return -EINVAL;
		int fd = rst_open(r, f->path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
			      (mode_t)(f->has_mode ? f->mode & 07777 : 0600));
		if (fd < 0) {
			log_err("restore: shared memory file %s: %s", f->path, strerror(errno));
			return -errno;
		}
		size_t off = 0;
		while (off < f->content.len) {
			ssize_t n = write(fd, f->content.data + off, f->content.len - off);
			if (n <= 0) {
				log_err("restore: shared memory file %s: write: %s", f->path, strerror(errno));
				close(fd);
				return -EIO;
			}
			off += (size_t)n;
		}
		if (f->has_mode)
			fchmod(fd, (mode_t)(f->mode & 07777));
		close(fd);
	}
	return 0;
}

const struct fd_kind fdkind_shmfile = {
	.name = "/dev/shm file",
	/* no .match: the files themselves are regfile.c's; this saves content */
	.kinds = { 0 },
	.prepare = shm_prepare,
	.dump_finish = shm_dump_finish,
};
