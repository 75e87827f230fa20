/*
 * mounts.c — mounts a pod made itself (its mount namespace), recreated.
 *
 * A pod's mount namespace starts as a copy of the node's with the pod's own
 * /proc, /sys, /dev/pts (+ /dev/ptmx), /dev/shm and /dev/mqueue
 * (agent/pod_mounts.c); a restore builds the same.  What the pod mounted
 * later is found at dump by comparing /proc/INIT/mountinfo with the
 * engine's own: an entry with the same mount point, device and root as one
 * of the node's, or one of the standard pod mounts, is not saved.  The rest:
 *   tmpfs        → kind 1, options (size, nr_inodes, mode, uid, gid) and the
 *                  whole content (files, dirs, symlinks, FIFOs: mode, owner,
 *                  mtime; at most 256 MiB in all), read through
 *                  /proc/INIT/root/MOUNTPOINT without crossing into submounts;
 *   bind mount   → kind 2 (a node path: the node mount of that device whose
 *                  root is the longest prefix of the bound root) or kind 3 (a
 *                  directory of a pod tmpfs saved before it);
 *   proc, sysfs, mqueue → kind 4, mounted fresh by the pod's init (they show
 *                  its pid / net / ipc namespace).
 * Anything else (block file systems, overlay, devpts instances, ...) fails
 * the dump naming the mount.  ro/nosuid/nodev/noexec are kept.
 *
 * Restore: before any file is reopened (the fd kind `prepare` hook) the
 * engine makes each tmpfs and bind mount as a detached mount (fsmount,
 * open_tree(OPEN_TREE_CLONE)) and fills the tmpfs through its fd; a file
 * the pod had open under one of them is reopened through it (rst_open);
 * the pod's init attaches them in order after its standard mounts
 * (mounts_attach, from restore.c), and mounts the kind 4 ones itself.
 *
 * Not kept: hard links inside a tmpfs (each name gets its own inode),
 * sockets and device nodes in a tmpfs, content hidden under a submount,
 * mounts the pod removed from its copy of the node's tree, propagation
 * settings, xattrs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/engine/fdkind.h"
#include "lib/log.h"

#define MK_TMPFS 1
#define MK_BIND_NODE 2
#define MK_BIND_POD 3
#define MK_FRESH 4
#define CONTENT_MAX (256ull << 20)
#define MOUNTS_MAX 256
#define FILES_MAX 100000

struct minfo {
	unsigned dmaj, dmin;
	char root[1024], mp[1024], opts[256], fstype[64], source[256], super[512];
};

/* one line of mountinfo; 0 if it is not one we can read (escaped names) */
static int parse_line(char *l, struct minfo *m)
{
	int id, parent;
	char *dash = strstr(l, " - ");
	if (!dash || sscanf(l, "%d %d %u:%u %1023s %1023s %255s", &id, &parent, &m->dmaj, &m->dmin, m->root, m->mp,
			    m->opts) != 7)
		return 0;
	m->source[0] = m->super[0] = 0;
	if (sscanf(dash + 3, "%63s %255s %511s", m->fstype, m->source, m->super) < 2)
		return 0;
	return 1;
}

static int read_mountinfo_fd(int fd, struct minfo **out)
{
	FILE *f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		return -errno;
	}
	char line[4096], vbuf[16384];
	setvbuf(f, vbuf, _IOFBF, sizeof(vbuf));    /* not 1 KiB reads (st_blksize) */
	int n = 0, cap = 0;
	struct minfo *v = NULL;
	while (fgets(line, sizeof(line), f)) {
		if (n == cap)
			v = realloc(v, (size_t)(cap = cap ? cap * 2 : 64) * sizeof(*v));
		if (parse_line(line, &v[n]))
			n++;
	}
	fclose(f);
	*out = v;
	return n;
}

static int read_mountinfo(const char *path, struct minfo **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : read_mountinfo_fd(fd, out);
}

/*
 * Both mount tables are read before the freeze (mounts_dump_early), ~0.5 ms
 * each here, and kept with an fd of the file each: mountinfo is pollable,
 * POLLPRI|POLLERR once a mount or unmount happened in that namespace since
 * the file was opened (proc(5); the namespace's event counter), so in the
 * frozen window a poll tells whether the early text is still the table.
 */
static struct early_table { int fd, n; struct minfo *v; pid_t pid; } early_pod = { -1, 0, NULL, 0 },
	early_node = { -1, 0, NULL, 0 };

static void early_read(struct early_table *t, const char *path, pid_t pid)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), keep = fd >= 0 ? dup(fd) : -1;
	if (keep < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	int n = read_mountinfo_fd(fd, &t->v);
	if (n < 0) {
		close(keep);
		return;
	}
	t->fd = keep;
	t->n = n;
	t->pid = pid;
}

void mounts_dump_early(pid_t init)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", init);
	early_read(&early_pod, path, init);
	early_read(&early_node, "/proc/self/mountinfo", 0);
}

/* The early table if no mount changed since (ownership passes), else a read now. */
static int mountinfo_now(struct early_table *t, const char *path, pid_t pid, struct minfo **out)
{
	if (t->fd >= 0) {
		struct pollfd pf = { t->fd, POLLPRI, 0 };
		int r = poll(&pf, 1, 0);
		int n = t->n;
		struct minfo *v = t->v;
		bool same = r == 0 && t->pid == pid;
		close(t->fd);
		*t = (struct early_table){ -1, 0, NULL, 0 };
		if (same) {
			*out = v;
			return n;
		}
		free(v);
	}
	return read_mountinfo(path, out);
}

static bool standard(const struct minfo *m)
{
	static const char *const std[][2] = {
		{ "/proc", "proc" }, { "/sys", "sysfs" }, { "/dev/pts", "devpts" }, { "/dev/ptmx", "devpts" },
		{ "/dev/shm", "tmpfs" }, { "/dev/mqueue", "mqueue" },
	};
	for (size_t i = 0; i < sizeof(std) / sizeof(std[0]); i++)
		if (!strcmp(m->mp, std[i][0]) && !strcmp(m->fstype, std[i][1]))
			return true;
	return false;
}

static uint32_t attrs_of(const char *opts)
{
	uint32_t a = 0;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", opts);
	for (char *sv, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
		if (!strcmp(t, "ro")) a |= MOUNT_ATTR_RDONLY;
		else if (!strcmp(t, "nosuid")) a |= MOUNT_ATTR_NOSUID;
		else if (!strcmp(t, "nodev")) a |= MOUNT_ATTR_NODEV;
		else if (!strcmp(t, "noexec")) a |= MOUNT_ATTR_NOEXEC;
	}
	return a;
}

static char *tmpfs_opts(const char *super)
{
	static const char *const keep[] = { "size=", "nr_inodes=", "mode=", "uid=", "gid=", NULL };
	char buf[512], out[512] = "";
	snprintf(buf, sizeof(buf), "%s", super);
	for (char *sv, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv))
		for (int k = 0; keep[k]; k++)
			if (!strncmp(t, keep[k], strlen(keep[k])) && strlen(out) + strlen(t) + 2 < sizeof(out)) {
				if (out[0])
					strcat(out, ",");
				strcat(out, t);
			}
	return xstrdup(out);
}

struct walk {
	ImgMount *m;
	dev_t dev;
	uint64_t *total;
};

static int walk_dir(struct walk *w, int dfd, const char *rel)
{
	DIR *dir = fdopendir(dfd);
	if (!dir) {
		close(dfd);
		return -errno;
	}
	int err = 0;
	struct dirent *e;
	while (!err && (e = readdir(dir))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (w->m->n_files >= FILES_MAX) {
			err = -E2BIG;
			break;
		}
		char path[4096];
		snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
		if (S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
			continue;       /* not kept (see the header) */
		ImgMountFile *f = PB_PUSH(w->m, files, ImgMountFile, img_mount_file__init);
		f->path = xstrdup(path);
		f->mode = st.st_mode;
		f->uid = st.st_uid;
		f->gid = st.st_gid;
		SETOPT(f, mtime_ns, (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec);
		if (st.st_dev != w->dev) {
			/* a submount's root: keep the directory it is mounted on */
			f->mode = S_IFDIR | 0755;
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			char t[4096];
			ssize_t n = readlinkat(dirfd(dir), e->d_name, t, sizeof(t) - 1);
			t[n > 0 ? n : 0] = 0;
			f->target = xstrdup(t);
		} else if (S_ISREG(st.st_mode)) {
			if ((*w->total += (uint64_t)st.st_size) > CONTENT_MAX) {
				err = -E2BIG;
				break;
			}
			int fd = openat(dirfd(dir), e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
			if (fd < 0) {
				err = -errno;
				break;
			}
			SETOPT(f, data, ((ProtobufCBinaryData){ 0, xcalloc(1, (size_t)st.st_size + 1) }));
			while (f->data.len < (size_t)st.st_size) {
				ssize_t n = pread(fd, f->data.data + f->data.len, (size_t)st.st_size - f->data.len,
						  (off_t)f->data.len);
				if (n <= 0)
					break;
				f->data.len += (size_t)n;
			}
			close(fd);
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				err = walk_dir(w, sub, path);
		}
	}
	closedir(dir);
	return err;
}

static int save_tmpfs(struct dump_ctx *d, ImgMount *m, const struct minfo *mi, uint64_t *total)
{
	char path[1200];
	snprintf(path, sizeof(path), "/proc/%d/root%s", d->procs[0].hpid, mi->mp);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != makedev(mi->dmaj, mi->dmin)) {
		log_err("dump: tmpfs mounted at %s: %s", mi->mp, fd < 0 ? strerror(errno) : "covered by another mount: not supported");
		if (fd >= 0)
			close(fd);
		return -ENOTSUP;
	}
	ImgMountFile *root = PB_PUSH(m, files, ImgMountFile, img_mount_file__init);
	root->path = xstrdup("");
	root->mode = st.st_mode;
	root->uid = st.st_uid;
	root->gid = st.st_gid;
	struct walk w = { m, st.st_dev, total };
	int err = walk_dir(&w, fd, "");
	if (err < 0)
		log_err("dump: tmpfs mounted at %s: %s", mi->mp,
			err == -E2BIG ? "more than 256 MiB or 100000 files: not supported" : strerror(-err));
	return err;
}

static int mounts_dump_finish(struct dump_ctx *d)
{
	char path[64];
	struct minfo *pod = NULL, *node = NULL;
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", d->procs[0].hpid);
	int np = mountinfo_now(&early_pod, path, d->procs[0].hpid, &pod);
	int nn = mountinfo_now(&early_node, "/proc/self/mountinfo", 0, &node), err = 0;
	uint64_t total = 0;
	if (np < 0 || nn < 0) {
		log_err("dump: mountinfo: %s", strerror(-(np < 0 ? np : nn)));
		err = np < 0 ? np : nn;
		goto out;
	}
	for (int i = 0; i < np && !err; i++) {
		struct minfo *mi = &pod[i];
		if (!strcmp(mi->mp, "/") || standard(mi))
			continue;
		bool inherited = false;
		for (int k = 0; k < nn && !inherited; k++)
			inherited = !strcmp(node[k].mp, mi->mp) && !strcmp(node[k].root, mi->root) &&
				    node[k].dmaj == mi->dmaj && node[k].dmin == mi->dmin;
		if (inherited)
			continue;
		if (strchr(mi->mp, '\\') || strchr(mi->root, '\\')) {
			log_err("dump: mount at %s: escaped characters in its path: not supported", mi->mp);
			err = -ENOTSUP;
			break;
		}
		if (d->files->n_mounts >= MOUNTS_MAX) {
			log_err("dump: more than %d mounts made by the pod: not supported", MOUNTS_MAX);
			err = -ENOTSUP;
			break;
		}
		ImgMount *m = PB_PUSH(d->files, mounts, ImgMount, img_mount__init);
		m->mountpoint = xstrdup(mi->mp);
		m->fstype = xstrdup(mi->fstype);
		SETOPT(m, attrs, attrs_of(mi->opts));
		/* a bind of a pod tmpfs saved before? */
		int src = -1;
		for (size_t k = 0; k + 1 < d->files->n_mounts && src < 0; k++) {
			ImgMount *o = d->files->mounts[k];
			for (int j = 0; j < i && o->kind == MK_TMPFS; j++)
				if (!strcmp(pod[j].mp, o->mountpoint) && pod[j].dmaj == mi->dmaj && pod[j].dmin == mi->dmin)
					src = (int)k;
		}
		if (src >= 0) {
			m->kind = MK_BIND_POD;
			SETOPT(m, src_mount, (uint32_t)src);
			m->src_root = xstrdup(mi->root);
			continue;
		}
		if (!strcmp(mi->fstype, "proc") || !strcmp(mi->fstype, "sysfs") || !strcmp(mi->fstype, "mqueue")) {
			m->kind = MK_FRESH;
			continue;
		}
		/* a bind of a node path: the node mount of the same device whose
		 * root is the longest prefix of this root */
		int best = -1;
		size_t blen = 0;
		for (int k = 0; k < nn; k++) {
			size_t l = strlen(node[k].root);
			if (node[k].dmaj != mi->dmaj || node[k].dmin != mi->dmin || strncmp(node[k].root, mi->root, l))
				continue;
			if (l > 1 && mi->root[l] && mi->root[l] != '/')
				continue;
			if (best < 0 || l > blen)
				best = k, blen = l;
		}
		if (best >= 0) {
			char s[2200];
			/* rest: "" or "/..." (the part of the root below the node mount's root) */
			const char *rest = mi->root + (blen > 1 ? blen : 0), *mp = node[best].mp;
			if (!strcmp(mp, "/"))
				snprintf(s, sizeof(s), "%s", rest[0] ? rest : "/");
			else
				snprintf(s, sizeof(s), "%s%s", mp, !strcmp(rest, "/") ? "" : rest);
			m->kind = MK_BIND_NODE;
			m->source = xstrdup(s);
			continue;
		}
		if (!strcmp(mi->fstype, "tmpfs") && !strcmp(mi->root, "/")) {
			m->kind = MK_TMPFS;
			m->tmpfs_opts = tmpfs_opts(mi->super);
			err = save_tmpfs(d, m, mi, &total);
			continue;
		}
		log_err("dump: mount at %s (%s from %s, root %s) made in the pod: not supported", mi->mp, mi->fstype,
			mi->source, mi->root);
		err = -ENOTSUP;
	}
out:
	free(pod);
	free(node);
	return err;
}

/* ------------------------------------------------------------------ restore */

static int *mnt_fd;          /* per ImgFiles.mounts: detached mount (-1: none / kind 4) */
static ImgFiles *g_files;

static bool safe_rel(const char *p)
{
	if (p[0] == '/')
		return false;
	for (const char *c = p; *c; c++)
		if ((c == p || c[-1] == '/') && c[0] == '.' && c[1] == '.' && (!c[2] || c[2] == '/'))
			return false;
	return true;
}

static bool safe_abs(const char *p)
{
	return p && p[0] == '/' && !strstr(p, "/..") && strlen(p) < 1024;
}

static int fill_tmpfs(int root, ImgMount *m)
{
	for (size_t i = 0; i < m->n_files; i++) {
		ImgMountFile *f = m->files[i];
		const char *p = f->path[0] ? f->path : ".";
		if (!safe_rel(f->path) || strlen(f->path) > 4000)
			return -EINVAL;
		int r = 0;
		mode_t perm = f->mode & 07777;
		if (!f->path[0]) {
			r = fchmodat(root, ".", perm, 0);   /* an fsmount fd is O_PATH: no fchmod */
		} else if (S_ISDIR(f->mode)) {
			r = mkdirat(root, p, perm);
		} else if (S_ISLNK(f->mode)) {
			r = symlinkat(f->target ? f->target : "", root, p);
		} else if (S_ISFIFO(f->mode)) {
			r = mknodat(root, p, S_IFIFO | perm, 0);
		} else if (S_ISREG(f->mode)) {
			int fd = openat(root, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm);
			if (fd < 0)
				return -errno;
			size_t off = 0;
			while (f->has_data && off < f->data.len) {
				ssize_t n = write(fd, f->data.data + off, f->data.len - off);
				if (n <= 0)
					break;
				off += (size_t)n;
			}
			if (f->has_mtime_ns) {
				struct timespec ts[2] = { { 0, UTIME_OMIT },
							  { (time_t)(f->mtime_ns / 1000000000ull), (long)(f->mtime_ns % 1000000000ull) } };
				futimens(fd, ts);
			}
			close(fd);
		} else {
			continue;
		}
		if (r < 0)
			return -errno;
		if (fchownat(root, p, f->uid, f->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (S_ISDIR(f->mode) && f->path[0])
			fchmodat(root, p, perm, 0);   /* mkdirat applied the umask */
	}
	return 0;
}

static int make_one(ImgMount *m, int idx)
{
	int fd = -1;
	struct mount_attr a = { .attr_set = m->attrs & (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) };
	if (m->kind == MK_TMPFS) {
		int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
		if (fs < 0)
			return -errno;
		char opts[512];
		snprintf(opts, sizeof(opts), "%s", m->tmpfs_opts ? m->tmpfs_opts : "");
		for (char *sv, *t = strtok_r(opts, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
			char *eq = strchr(t, '=');
			if (!eq)
				continue;
			*eq = 0;
			if (strcmp(t, "size") && strcmp(t, "nr_inodes") && strcmp(t, "mode") && strcmp(t, "uid") && strcmp(t, "gid"))
				continue;
			if (fsconfig(fs, FSCONFIG_SET_STRING, t, eq + 1, 0) < 0) {
				close(fs);
				return -errno;
			}
		}
		if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
		    (fd = fsmount(fs, FSMOUNT_CLOEXEC, 0)) < 0) {
			int e = errno;
			close(fs);
			return -e;
		}
		close(fs);
		int err = fill_tmpfs(fd, m);
		if (err < 0) {
			close(fd);
			return err;
		}
	} else if (m->kind == MK_BIND_NODE) {
		if (!safe_abs(m->source))
			return -EINVAL;
		fd = open_tree(AT_FDCWD, m->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	} else if (m->kind == MK_BIND_POD) {
		if (!m->has_src_mount || (int)m->src_mount >= idx || mnt_fd[m->src_mount] < 0 || !m->src_root ||
		    !safe_rel(m->src_root + (m->src_root[0] == '/')))
			return -EINVAL;
		const char *rel = m->src_root + (m->src_root[0] == '/');
		fd = open_tree(mnt_fd[m->src_mount], rel[0] ? rel : ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	} else {
		return -1;    /* kind 4: the init mounts it */
	}
	if (fd < 0)
		return -errno;
	if (a.attr_set && mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int mounts_prepare(struct rst_ctx *r)
{
	ImgFiles *fs = r->files;
	g_files = fs;
	if (!fs->n_mounts)
		return 0;
	if (fs->n_mounts > MOUNTS_MAX)
		return -EINVAL;
	mnt_fd = xcalloc(fs->n_mounts, sizeof(*mnt_fd));
	for (size_t i = 0; i < fs->n_mounts; i++) {
		ImgMount *m = fs->mounts[i];
		mnt_fd[i] = -1;
		if (!safe_abs(m->mountpoint) || !strcmp(m->mountpoint, "/") || m->kind < MK_TMPFS || m->kind > MK_FRESH) {
			log_err("restore: mount %zu: bad record", i);
			return -EINVAL;
		}
		int fd = make_one(m, (int)i);
		if (fd == -1 && m->kind == MK_FRESH)
			continue;
		if (fd < 0) {
			log_err("restore: mount at %s (%s%s%s): %s", m->mountpoint, m->fstype, m->source ? " from " : "",
				m->source ? m->source : "", strerror(-fd));
			return fd;
		}
		if ((mnt_fd[i] = inv_move(r, fd)) < 0)
			return -errno;
	}
	return 0;
}

/* rst_open: a path under one of the pod's own mounts is opened through it */
int mounts_lookup(const char *path, const char **rel)
{
	int best = -1;
	size_t blen = 0;
	for (size_t i = 0; g_files && mnt_fd && i < g_files->n_mounts; i++) {
		const char *mp = g_files->mounts[i]->mountpoint;
		size_t l = strlen(mp);
		if (mnt_fd[i] < 0 || strncmp(path, mp, l) || (path[l] && path[l] != '/') || l < blen)
			continue;
		best = (int)i;
		blen = l;
	}
	if (best < 0 || strstr(path, "/.."))
		return -1;
	const char *r = path + blen;
	while (*r == '/')
		r++;
	*rel = *r ? r : ".";
	return mnt_fd[best];
}

/* in the pod's init, after its standard mounts: attach every mount in order */
int mounts_attach(void)
{
	for (size_t i = 0; g_files && i < g_files->n_mounts; i++) {
		ImgMount *m = g_files->mounts[i];
		int rc;
		if (m->kind == MK_FRESH) {
			unsigned long fl = (m->attrs & MOUNT_ATTR_RDONLY ? MS_RDONLY : 0) |
					   (m->attrs & MOUNT_ATTR_NOSUID ? MS_NOSUID : 0) |
					   (m->attrs & MOUNT_ATTR_NODEV ? MS_NODEV : 0) |
					   (m->attrs & MOUNT_ATTR_NOEXEC ? MS_NOEXEC : 0);
			const char *t = !strcmp(m->fstype, "sysfs") ? "sysfs" : !strcmp(m->fstype, "mqueue") ? "mqueue" : "proc";
			rc = mount(t, m->mountpoint, t, fl, NULL);
		} else {
			rc = move_mount(mnt_fd[i], "", AT_FDCWD, m->mountpoint, MOVE_MOUNT_F_EMPTY_PATH);
		}
		if (rc < 0) {
			int e = errno;
			log_err("restore: mount %s at %s: %s", m->fstype, m->mountpoint, strerror(e));
			return -e;
		}
	}
	return 0;
}

const struct fd_kind fdkind_mounts = {
	.name = "mounts",
	/* no .match: not a file: the pod's mount namespace */
	.kinds = { 0 },
	.prepare = mounts_prepare,
	.dump_finish = mounts_dump_finish,
};
