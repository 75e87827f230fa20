/*
 * pod.h — pods: a group of processes in their own namespaces, a cgroup and a
 * veth with the pod's virtual IP.  docs/pods.md explains the design.
 *
 * Life of a pod, split so that a restore can build one without a process:
 *
 *   pod_prepare(node, spec)  cgroups (empty), a new netns held by an fd, the
 *                            veth pair (host end on the node bridge, eth0 in
 *                            the pod with the IP-derived MAC), IP and default
 *                            route.  No process yet.
 *   pod_start(node, pod,...) spawns zapc-init as pid 1 of new pid, mount,
 *                            ipc, uts and time namespaces, inside the pod's
 *                            netns and cgroups; it runs the workload.
 *   pod_adopt(node, pod, pid) registers an init that other code created in
 *                            the prepared pod (the restore engine); from then
 *                            on the pod is managed like a started one (its
 *                            exit is watched through a pidfd, node->watch).
 *   pod_destroy(node, pod)   kills everything in it and tears it down.
 *   pod_exited(node, pod)    the init has died: tear down what is left.
 *
 * A node (struct pod_node) is one agent's view: its pod network, bridge,
 * cgroup parent and state directory.
 */
#ifndef ZAPC_AGENT_POD_H
#define ZAPC_AGENT_POD_H

#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "agent/cgroup.h"

#define POD_NAME_MAX 32

enum pod_state { POD_PREPARED, POD_RUNNING, POD_STOPPING };

struct pod {
	char name[POD_NAME_MAX + 1];
	struct in_addr ip;
	uint8_t mac[6];
	char veth[16];			/* host end of the veth */
	int host_route;			/* ip/32 dev bridge added on the node */
	char root[PATH_MAX];		/* "" = the node's file system */
	char console[PATH_MAX];		/* workload stdout/stderr log */
	int hold_kept;			/* its netns has kept hold rules (the engine's
					 * Done said so): dumps hold without iptables */
	int console_owned;		/* destroy unlinks it (not after a checkpoint:
					 * the image's processes still write to it) */
	uid_t uid;			/* owner: the caller that created it */
	gid_t gid;
	int netns_fd;			/* holds the pod's netns while it lives */
	struct pod_cgroups cg;
	pid_t init_pid;			/* host pid of the pod's pid 1; 0 if none */
	int pidfd;			/* of init_pid, -1 if none */
	enum pod_state state;
	time_t created;
	char **argv;			/* the workload (NULL-terminated copy) */
	void *watch;			/* the event loop's handle for pidfd */
	struct pod *next;
};

struct pod_node {
	char name[65];			/* node name */
	char state_dir[PATH_MAX];
	char bridge[16];
	char cgroup_parent[128];
	struct in_addr net;		/* pod network, host order in net_host */
	uint32_t net_host;
	uint32_t pool_lo, pool_hi;	/* addresses handed out, host order, inclusive */
	int prefix;
	struct in_addr gateway;		/* first address: on the bridge */
	int bridge_ifindex;
	int bridge_created;
	int init_exe_fd;		/* O_PATH fd of zapc-init */
	struct pod *pods;
	/* Event-loop hooks (set by the server): watch a pod's init once it has
	 * one (pod_start, pod_adopt call it; -errno fails them), forget it
	 * before the pod is freed. */
	int (*watch)(struct pod_node *node, struct pod *pod);
	void (*forget)(struct pod *pod);
};

struct pod_spec {
	const char *name;
	const char *ip;			/* NULL/"" = allocate */
	char **avoid;			/* addresses not to allocate (n_avoid) */
	size_t n_avoid;
	const char *root;		/* NULL/"" = node file system */
	uid_t uid;
	gid_t gid;
	int defer_net;			/* leave lo/eth0 down, no address (restore of
					 * a pod with sockets: zapc-engine holds its
					 * traffic first, then configures it) */
};

/*
 * Set up the node: cgroup hierarchies, the bridge, the state dir, and remove
 * leftovers of a previous agent with the same cgroup parent/bridge (kill
 * their processes, remove cgroups and stale veths).  init_exe: zapc-init.
 */
int pod_node_init(struct pod_node *node, const char *name, const char *state_dir,
		  const char *pod_net, const char *bridge, const char *cgroup_parent,
		  const char *init_exe);
/*
 * Hand out addresses only from `pool` (a CIDR inside the pod network; its
 * first and last address are skipped).  Nodes of one cluster share the pod
 * network but get disjoint pools, so a pod keeps a cluster-unique IP when it
 * moves.  --ip may still name any address of the pod network.
 */
int pod_node_set_pool(struct pod_node *node, const char *pool);
/* Destroy every pod (unless keep_pods), remove what the node created. */
void pod_node_fini(struct pod_node *node, int keep_pods);

int pod_name_valid(const char *name);
struct pod *pod_find(struct pod_node *node, const char *name);
struct pod *pod_find_pid(struct pod_node *node, pid_t init_pid);

/* The steps; each returns 0/-errno and logs one line on error. */
int pod_prepare(struct pod_node *node, const struct pod_spec *spec, struct pod **out);
int pod_start(struct pod_node *node, struct pod *pod, char *const argv[], char *const envp[],
	      const char *cwd);
int pod_adopt(struct pod_node *node, struct pod *pod, pid_t init_pid);
int pod_destroy(struct pod_node *node, struct pod *pod);
void pod_exited(struct pod_node *node, struct pod *pod, int status);

/*
 * Run argv in the pod (all its namespaces and cgroups) with stdio fds[0..2]
 * (-1 = /dev/null), as uid/gid, env envp, in cwd ("" = /).  Returns the pid
 * of a helper child of the caller that exits with the command's shell-style
 * exit code (status, or 128+signal); 0/-errno.  With detach the command
 * becomes a child of the pod's init in its own session (a process of the pod
 * that a checkpoint saves) and the helper exits 0 as soon as it is exec'd.
 */
int pod_exec(struct pod_node *node, struct pod *pod, char *const argv[], char *const envp[],
	     const char *cwd, uid_t uid, gid_t gid, const int fds[3], int detach, pid_t *helper);

/* MAC of a pod IP: 02:5a:a.b.c.d — locally administered, same on every node. */
void pod_mac_of_ip(struct in_addr ip, uint8_t mac[6]);

/*
 * pod_mounts.c (linkable alone, e.g. by zapc-engine): in a fresh mount ns,
 * as pid 1 of a fresh pid ns, already in the pod's netns, make / rprivate
 * and mount /proc, /sys (read-only), /dev/pts
 * (+ /dev/ptmx), /dev/shm, /dev/mqueue; with root (not NULL/""), give it a
 * minimal /dev and pivot into it.  0/-errno.
 */
int pod_setup_mounts(const char *root);
/* The same; POD_MOUNTS_SHM_DONE: /dev/shm already holds the pod's tmpfs (a
 * restore fills it before the pod's init exists and the init inherits it). */
#define POD_MOUNTS_SHM_DONE 1u
/* POD_MOUNTS_PTS_DONE: /dev/pts already holds the pod's devpts (a restore
 * re-creates the pod's ptys in it first); /dev/ptmx is still bound to it. */
#define POD_MOUNTS_PTS_DONE 2u
int pod_setup_mounts_flags(const char *root, unsigned flags);
/* Mount a pod's /dev/shm tmpfs (mode 1777, 64 MiB) on dir.  0/-errno. */
int pod_mount_shm(const char *dir);

#endif
