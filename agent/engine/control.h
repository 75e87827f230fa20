/*
 * control.h — zapc-engine's side of the agent's control channel
 * (proto/engine.proto, docs/engine-control.md).  Without --control the
 * engine runs standalone (tests, debugging) and these calls do nothing.
 */
#ifndef ZAPC_ENGINE_CONTROL_H
#define ZAPC_ENGINE_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Use fd (from --control FD) as the channel.  0 or -errno. */
int control_open(const char *fd_arg);
int control_active(void);

/*
 * Restore: ask the agent for a pod for the image's name/ip/hostname and wait
 * for it.  On success *netns_fd is the pod's netns and cgroups[] (up to max)
 * the cgroup dirs the restored tasks join (strings live until exit).
 * -ECANCELED when the agent refused (its reason is logged), other -errno.
 */
/* The pod's network when the engine brings it up itself (inet.c). */
struct pod_net {
	bool want;              /* in: ask the agent to leave eth0 down (image has sockets) */
	bool deferred;          /* out: the agent did; configure ip/prefix/gateway */
	char ip[16], gateway[16];
	unsigned prefix;
};
int control_pod_needed(const char *name, const char *ip, const char *hostname,
		       int *netns_fd, char **cgroups, int max, int *ncg, struct pod_net *net);

void control_progress(const char *phase, uint64_t bytes);

struct control_done {
	int status;             /* 0 or -errno */
	pid_t init_pid;
	uint64_t frozen_us, image_bytes;
	uint32_t processes, threads;
	bool hold_kept;         /* the pod's netns has kept hold rules now */
};
/*
 * Coordinated operations (--sync): tell the agent this engine reached
 * `phase` and wait for its answer.  0 = go on; -ECANCELED = abort (reason
 * logged); other -errno if the channel broke (also: abort).  Without
 * --sync (control_sync_enable not called) it returns 0 at once.
 */
void control_sync_enable(void);
int control_sync(const char *phase, uint64_t frozen_us);

/* The final report; the error line is the engine's last logged error. */
void control_done(const struct control_done *d);

#endif
