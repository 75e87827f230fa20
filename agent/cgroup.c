/*
 * cgroup.c — create, populate, kill and remove a pod's cgroups (see cgroup.h).
 *
 * Kernel facts relied on:
 *  - writing "0" to cgroup.procs moves the writer itself, in v1 and v2;
 *  - v2 cgroup.kill SIGKILLs every member at once, even frozen ones; v1 has
 *    no such file, so members are killed one by one (a frozen v1 member only
 *    dies after thawing, hence the THAWED write);
 *  - rmdir of a cgroup fails with EBUSY while a dying member is still listed,
 *    so removal polls cgroup.procs until it is empty.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/cgroup.h"
#include "lib/fsutil.h"
#include "lib/log.h"

static char cg_roots[CG_NR][64];

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

int cgroup_detect(void)
{
	static const char *v1[CG_NR] = { NULL, "freezer", "memory", "pids" };

	if (exists("/sys/fs/cgroup/unified/cgroup.procs"))
		snprintf(cg_roots[CG_V2], sizeof(cg_roots[0]), "/sys/fs/cgroup/unified");
	else if (exists("/sys/fs/cgroup/cgroup.controllers"))
		snprintf(cg_roots[CG_V2], sizeof(cg_roots[0]), "/sys/fs/cgroup");
	for (int i = CG_V1_FREEZER; i < CG_NR; i++) {
		char p[128];

		snprintf(p, sizeof(p), "/sys/fs/cgroup/%s/tasks", v1[i]);
		if (exists(p))
			snprintf(cg_roots[i], sizeof(cg_roots[0]), "/sys/fs/cgroup/%s", v1[i]);
	}
	if (!cg_roots[CG_V2][0] && !cg_roots[CG_V1_FREEZER][0]) {
		log_err("cgroups: neither a v2 hierarchy nor the v1 freezer is mounted");
		return -ENOENT;
	}
	return 0;
}

const char *cgroup_root(int which)
{
	return cg_roots[which];
}

/* Write val to DIR/FILE (a cgroup control file). */
static int write_str(const char *dir, const char *file, const char *val)
{
	char p[PATH_MAX + 32];

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return write_file(p, val);
}

int cgroup_create(const char *parent, const char *name, struct pod_cgroups *cg)
{
	int rc;

	memset(cg, 0, sizeof(*cg));
	for (int i = 0; i < CG_NR; i++) {
		char p[1024];

		if (!cg_roots[i][0])
			continue;
		snprintf(p, sizeof(p), "%s/%s", cg_roots[i], parent);
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			rc = -errno;
			log_err("cgroup %s: mkdir: %s", p, strerror(-rc));
			goto fail;
		}
		snprintf(cg->path[i], sizeof(cg->path[i]), "%s/%s", p, name);
		if (mkdir(cg->path[i], 0755) < 0) {
			rc = -errno;
			log_err("cgroup %s: mkdir: %s", cg->path[i], strerror(-rc));
			cg->path[i][0] = 0;
			goto fail;
		}
	}
	return 0;
fail:
	cgroup_remove(cg, 0);
	return rc;
}

int cgroup_attach(const struct pod_cgroups *cg, pid_t pid)
{
	char val[32];
	int rc;

	snprintf(val, sizeof(val), "%d", (int)pid);
	for (int i = 0; i < CG_NR; i++) {
		if (!cg->path[i][0])
			continue;
		rc = write_str(cg->path[i], "cgroup.procs", val);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Call fn(pid) for each pid listed in dir/cgroup.procs; returns the count. */
static int for_each_pid(const char *dir, void (*fn)(pid_t))
{
	char p[PATH_MAX + 32];
	FILE *f;
	int pid, n = 0;

	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	f = fopen(p, "re");
	if (!f)
		return 0;
	while (fscanf(f, "%d", &pid) == 1) {
		if (fn)
			fn(pid);
		n++;
	}
	fclose(f);
	return n;
}

static void kill_pid(pid_t pid)
{
	kill(pid, SIGKILL);
}

int cgroup_kill(const struct pod_cgroups *cg)
{
	if (cg->path[CG_V2][0] && write_str(cg->path[CG_V2], "cgroup.kill", "1") == 0)
		return 0;
	for (int i = 0; i < CG_NR; i++)
		if (cg->path[i][0])
			for_each_pid(cg->path[i], kill_pid);
	if (cg->path[CG_V1_FREEZER][0])
		write_str(cg->path[CG_V1_FREEZER], "freezer.state", "THAWED");
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

int cgroup_remove(const struct pod_cgroups *cg, int timeout_ms)
{
	long end = now_ms() + timeout_ms;
	int rc = 0;

	for (int i = 0; i < CG_NR; i++) {
		if (!cg->path[i][0])
			continue;
		for (;;) {
			if (rmdir(cg->path[i]) == 0 || errno == ENOENT)
				break;
			if (errno != EBUSY || now_ms() >= end) {
				rc = -errno;
				log_err("cgroup %s: rmdir: %s (%d processes left)", cg->path[i],
					strerror(errno), for_each_pid(cg->path[i], NULL));
				break;
			}
			usleep(5000);
		}
	}
	return rc;
}

int cgroup_clean_parent(const char *parent)
{
	int most = 0;

	for (int i = 0; i < CG_NR; i++) {
		char p[1024];
		struct dirent *de;
		int removed = 0;
		DIR *d;

		if (!cg_roots[i][0])
			continue;
		snprintf(p, sizeof(p), "%s/%s", cg_roots[i], parent);
		d = opendir(p);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			struct pod_cgroups one;

			if (de->d_type != DT_DIR || de->d_name[0] == '.')
				continue;
			memset(&one, 0, sizeof(one));
			snprintf(one.path[i], sizeof(one.path[i]), "%s/%s", p, de->d_name);
			cgroup_kill(&one);
			if (cgroup_remove(&one, 2000) == 0)
				removed++;
		}
		closedir(d);
		if (removed > most)
			most = removed;
	}
	return most;	/* pods, not directories: each pod has one per hierarchy */
}

void cgroup_remove_parent(const char *parent)
{
	for (int i = 0; i < CG_NR; i++) {
		char p[1024];

		if (!cg_roots[i][0])
			continue;
		snprintf(p, sizeof(p), "%s/%s", cg_roots[i], parent);
		rmdir(p);
	}
}
