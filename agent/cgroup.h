/*
 * cgroup.h — the cgroups of a pod.
 *
 * A pod gets one directory per hierarchy: <root>/<parent>/<pod>, where the
 * roots are the v2 hierarchy (/sys/fs/cgroup/unified on hybrid machines, or
 * /sys/fs/cgroup when it is pure v2) — used for cgroup.freeze and
 * cgroup.kill — plus the v1 freezer, memory and pids hierarchies when they
 * are mounted (resource limits live there on hybrid machines).
 * docs/pods.md describes the layout.
 */
#ifndef ZAPC_AGENT_CGROUP_H
#define ZAPC_AGENT_CGROUP_H

#include <limits.h>
#include <sys/types.h>

enum { CG_V2, CG_V1_FREEZER, CG_V1_MEMORY, CG_V1_PIDS, CG_NR };

struct pod_cgroups {
	char path[CG_NR][PATH_MAX];	/* "" where the hierarchy is absent */
};

/* Which hierarchies exist on this machine; call once.  0 or -errno. */
int cgroup_detect(void);

/* The root of a hierarchy ("" when absent). */
const char *cgroup_root(int which);

/* Create <root>/<parent>/<name> in every hierarchy.  0 or -errno (nothing left on error). */
int cgroup_create(const char *parent, const char *name, struct pod_cgroups *cg);

/* Move pid (0 = the caller) into every cgroup of the pod.  0 or -errno. */
int cgroup_attach(const struct pod_cgroups *cg, pid_t pid);

/* SIGKILL every process of the pod (v2 cgroup.kill, else each pid of the v1 cgroups). */
int cgroup_kill(const struct pod_cgroups *cg);

/* Wait up to timeout_ms for the cgroups to empty, then remove them.  0 or -errno. */
int cgroup_remove(const struct pod_cgroups *cg, int timeout_ms);

/*
 * Stale state of a previous agent: kill every process in every cgroup under
 * <root>/<parent>/ and remove those cgroups.  Returns how many pods had some.
 */
int cgroup_clean_parent(const char *parent);

/* Remove the (empty) <root>/<parent> directories. */
void cgroup_remove_parent(const char *parent);

#endif
