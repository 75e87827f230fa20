/*
 * pod_mounts.c — the mount set-up of a pod's fresh mount namespace.
 *
 * Kept apart from the rest of pod.c, with no agent state, so the restore
 * engine (zapc-engine) can link this one file and call pod_setup_mounts()
 * in the mount namespace it has just unshared.  The caller must already be
 * in the pod's new pid namespace as its pid 1 (a proc mount shows the pid
 * namespace of the process that mounts it) and its new mount namespace.
 *
 * What a pod sees: the node's file system (or `root`), made rprivate so
 * nothing propagates back to the node; its own /proc; its own read-only
 * /sys (so /sys/class/net lists the pod's devices: the caller must already
 * be in the pod's netns, MPI libraries read it); a new devpts instance
 * on /dev/pts with /dev/ptmx pointing into it; its own tmpfs /dev/shm;
 * mqueue on /dev/mqueue when that directory exists.  With a root directory,
 * /dev is a small tmpfs with the usual device nodes bind-mounted from the
 * node, then the pod pivots into root and detaches the old root.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/pod.h"
#include "lib/log.h"

static int mnt(const char *src, const char *dst, const char *type, unsigned long fl, const char *data)
{
	if (mount(src, dst, type, fl, data) < 0) {
		int e = errno;

		log_err("pod mounts: mount %s on %s: %s", type ? type : src ? src : "(none)", dst, strerror(e));
		return -e;
	}
	return 0;
}

static void mkdir_p(const char *base, const char *rel, mode_t mode)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s%s", base, rel);
	mkdir(p, mode);
}

/* A device node of the node, bind-mounted at base/dev/NAME. */
static int bind_dev(const char *base, const char *name)
{
	char src[64], dst[PATH_MAX];
	int fd;

	snprintf(src, sizeof(src), "/dev/%s", name);
	snprintf(dst, sizeof(dst), "%s/dev/%s", base, name);
	fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
	if (fd >= 0)
		close(fd);
	return mnt(src, dst, NULL, MS_BIND, NULL);
}

int pod_mount_shm(const char *dir)
{
	return mnt("shm", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k");
}

/* /proc, /dev/pts, /dev/ptmx, /dev/shm, /dev/mqueue under base ("" = /). */
static int pod_dev_proc(const char *base, int own_dev, unsigned flags)
{
	static const char *devs[] = { "null", "zero", "full", "random", "urandom", "tty" };
	char p[PATH_MAX], q[PATH_MAX];
	int rc;

	mkdir_p(base, "/proc", 0555);
	snprintf(p, sizeof(p), "%s/proc", base);
	rc = mnt("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (rc < 0)
		return rc;
	/* sysfs shows the network devices of the mounter's netns: the pod's. */
	mkdir_p(base, "/sys", 0555);
	snprintf(p, sizeof(p), "%s/sys", base);
	rc = mnt("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (rc < 0)
		return rc;
	if (own_dev) {
		mkdir_p(base, "/dev", 0755);
		snprintf(p, sizeof(p), "%s/dev", base);
		rc = mnt("tmpfs", p, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k");
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
			if ((rc = bind_dev(base, devs[i])) < 0)
				return rc;
		snprintf(p, sizeof(p), "%s/dev/fd", base);
		if (symlink("/proc/self/fd", p) < 0)
			return -errno;
	}
	mkdir_p(base, "/dev/pts", 0755);
	snprintf(p, sizeof(p), "%s/dev/pts", base);
	rc = flags & POD_MOUNTS_PTS_DONE ? 0 : mnt("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC,
						  "newinstance,ptmxmode=0666,mode=0620,gid=5");
	if (rc < 0)
		return rc;
	/* /dev/ptmx must open the new instance's ptmx, not the node's. */
	snprintf(q, sizeof(q), "%s/dev/ptmx", base);
	if (own_dev) {
		if (symlink("pts/ptmx", q) < 0)
			return -errno;
	} else {
		snprintf(p, sizeof(p), "%s/dev/pts/ptmx", base);
		rc = mnt(p, q, NULL, MS_BIND, NULL);
		if (rc < 0)
			return rc;
	}
	if (!(flags & POD_MOUNTS_SHM_DONE)) {
		mkdir_p(base, "/dev/shm", 01777);
		snprintf(p, sizeof(p), "%s/dev/shm", base);
		rc = pod_mount_shm(p);
		if (rc < 0)
			return rc;
	}
	if (own_dev)
		mkdir_p(base, "/dev/mqueue", 0755);
	snprintf(p, sizeof(p), "%s/dev/mqueue", base);
	if (access(p, F_OK) == 0)
		rc = mnt("mqueue", p, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	return rc;
}

int pod_setup_mounts(const char *root)
{
	return pod_setup_mounts_flags(root, 0);
}

int pod_setup_mounts_flags(const char *root, unsigned flags)
{
	int rc;

	/* Nothing mounted in the pod may propagate back to the node. */
	rc = mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (rc < 0)
		return rc;
	if (!root || !root[0])
		return pod_dev_proc("", 0, flags);

	/* pivot_root needs the new root to be a mount point. */
	rc = mnt(root, root, NULL, MS_BIND | MS_REC, NULL);
	if (rc < 0)
		return rc;
	rc = pod_dev_proc(root, 1, flags);
	if (rc < 0)
		return rc;
	if (chdir(root) < 0)
		return -errno;
	/* pivot_root(".", "."): the old root ends up stacked on top; detach it. */
	if (syscall(SYS_pivot_root, ".", ".") < 0) {
		rc = -errno;
		log_err("pod mounts: pivot_root %s: %s", root, strerror(-rc));
		return rc;
	}
	if (umount2(".", MNT_DETACH) < 0)
		return -errno;
	if (chdir("/") < 0)
		return -errno;
	return 0;
}
