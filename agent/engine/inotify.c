/*
 * inotify.c — inotify instances with their watches.
 *
 * Dump: each "inotify wd:W ino:I sdev:D mask:M ... f_handle:H" line of the
 * fdinfo (all hex) names a watched inode by its file handle; the engine
 * opens it with open_by_handle_at() against a mount of that device found in
 * the holder's /proc/PID/mountinfo (reached through /proc/PID/root) and
 * saves the path readlink gives for it.  A handle that cannot be opened
 * (deleted inode, file system without handles) fails the dump.
 *
 * Restore: inotify_init1, then the watches in increasing wd order.  The
 * kernel hands out wds cyclically (last + 1), so a watch whose wd is not the
 * next one is added, removed and added again until it gets its number; the
 * IN_IGNORED events this queues are drained at the end.  Events queued at
 * the time of the checkpoint are not kept (docs/engine-objects.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

#define MAX_WATCHES 65536
#define MAX_WD_SKIP 100000

static int inotify_match(const struct fd_src *s)
{
	return !strcmp(s->link, "anon_inode:inotify");
}

/* An fd on the file system with kernel dev_t `sdev`, seen by pid. */
static int mount_fd(pid_t pid, unsigned sdev)
{
	char path[4200], line[4096];
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", pid);
	FILE *f = fopen(path, "re");
	int fd = -1;
	while (f && fd < 0 && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char mnt[4096];
		if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &maj, &min, mnt) != 3 || maj != sdev >> 20 ||
		    min != (sdev & 0xfffff))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/root%s", pid, mnt);
		/* not O_PATH: open_by_handle_at's mount_fd must be a real open file */
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (f)
		fclose(f);
	return fd;
}

static int inotify_dump(struct dump_ctx *d, const struct fd_src *s, ImgFile *f)
{
	(void)d;
	char *info = fd_src_fdinfo(s);
	int err = 0;
	if (!info)
		return -EIO;
	f->kind = FK_INOTIFY;
	for (char *l = strstr(info, "inotify wd:"); l && !err; l = strstr(l + 1, "inotify wd:")) {
		unsigned wd, sdev, mask, hbytes;
		int htype, pos = 0;
		unsigned long ino;
		if (sscanf(l, "inotify wd:%x ino:%lx sdev:%x mask:%x ignored_mask:%*x fhandle-bytes:%x "
			      "fhandle-type:%x f_handle:%n", &wd, &ino, &sdev, &mask, &hbytes, &htype, &pos) != 6 ||
		    !pos || hbytes > 128) {
			log_err("dump: pid %u fd %d: inotify fdinfo line not understood", s->p->tree->pid, s->fd);
			err = -ENOTSUP;
			break;
		}
		struct file_handle *fh = xcalloc(1, sizeof(*fh) + hbytes);
		fh->handle_bytes = hbytes;
		fh->handle_type = htype;
		for (unsigned k = 0; k < hbytes; k++) {
			unsigned b;
			if (sscanf(l + pos + 2 * k, "%2x", &b) != 1)
				break;
			fh->f_handle[k] = (unsigned char)b;
		}
		int mfd = mount_fd(s->p->hpid, sdev), wfd = -1;
		char path[64], target[4096];
		if (mfd >= 0)
			wfd = open_by_handle_at(mfd, fh, O_PATH | O_CLOEXEC);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", wfd);
		if (wfd < 0 || read_link(path, target, sizeof(target)) < 0 || target[0] != '/' ||
		    strstr(target, " (deleted)")) {
			log_err("dump: pid %u fd %d: inotify watch %u (inode %lu): cannot find its path: not supported",
				s->p->tree->pid, s->fd, wd, ino);
			err = -ENOTSUP;
		} else {
			ImgInotifyWatch *w = PB_PUSH(f, inotify, ImgInotifyWatch, img_inotify_watch__init);
			w->wd = (int32_t)wd;
			w->mask = mask;
			w->path = xstrdup(target);
		}
		if (wfd >= 0)
			close(wfd);
		if (mfd >= 0)
			close(mfd);
		free(fh);
	}
	free(info);
	return err;
}

static int cmp_wd(const void *a, const void *b)
{
	return (*(ImgInotifyWatch *const *)a)->wd - (*(ImgInotifyWatch *const *)b)->wd;
}

static int inotify_restore(struct rst_ctx *r, ImgFile *f)
{
	(void)r;
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK), err = 0;
	if (fd < 0) {
		log_err("restore: file %u: inotify_init1: %s", f->id, strerror(errno));
		return -errno;
	}
	if (f->n_inotify > MAX_WATCHES) {
		close(fd);
		return -E2BIG;
	}
	qsort(f->inotify, f->n_inotify, sizeof(f->inotify[0]), cmp_wd);
	for (size_t i = 0; i < f->n_inotify && !err; i++) {
		ImgInotifyWatch *w = f->inotify[i];
		uint32_t mask = w->mask & ~(uint32_t)(IN_MASK_ADD | IN_MASK_CREATE);
		for (int tries = 0;; tries++) {
			int got = inotify_add_watch(fd, w->path, mask);
			if (got == w->wd)
				break;
			if (got < 0 || got > w->wd || tries > MAX_WD_SKIP) {
				log_err("restore: file %u: inotify watch %d on %s: %s", f->id, w->wd, w->path,
					got < 0 ? strerror(errno) : "watch descriptor taken");
				err = got < 0 ? -errno : -EEXIST;
				break;
			}
			inotify_rm_watch(fd, got);
		}
	}
	/* drain the IN_IGNORED events of the skipped wds */
	char buf[4096];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (!err && fcntl(fd, F_SETFL, (int)(f->flags & (O_NONBLOCK | O_ASYNC))) < 0)
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

const struct fd_kind fdkind_inotify = {
	.name = "inotify",
	.match = inotify_match,
	.dump = inotify_dump,
	.kinds = { FK_INOTIFY },
	.restore = inotify_restore,
};
