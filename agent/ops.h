/*
 * ops.h — checkpoint and restore of pods, carried out by zapc-engine.
 *
 * The agent fork+execs zapc-engine per operation (crash isolation, a stable
 * ptrace tracer, an event loop that stays free) and talks to it over a
 * control socketpair (proto/engine.proto, docs/engine-control.md).  The
 * agent owns pods: on restore the engine asks for one (PodNeeded), the agent
 * prepares it (netns, veth, IP, cgroups) and hands it over (PodReady + the
 * netns fd), and adopts the restored init when the engine reports Done.
 * Whatever fails, a prepared pod is destroyed and the client gets one line.
 */
#ifndef ZAPC_AGENT_OPS_H
#define ZAPC_AGENT_OPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/agent.pb-c.h"

struct event_base;
struct pod_node;
struct pod;

/* Called once per operation with the response to send (valid during the
 * call); pod is the restored pod (NULL otherwise), for the response's info. */
typedef void (*op_done_fn)(void *ctx, Zapc__Response *r, struct pod *pod);

void ops_init(struct event_base *base, struct pod_node *node, const char *engine_path);

/* Checkpoint pod into out_fd (taken: closed by ops).  0, or -errno (done not called). */
/* incremental checkpoints (docs/incremental.md); all zero = a plain full image */
struct ckpt_opts {
	const char *parent;      /* absolute path of the parent image file, or NULL */
	int compress;            /* zstd level, 0 off */
	unsigned full_every;     /* 0 = the engine's default */
	int track;
};
int ops_checkpoint_opts(struct pod *pod, int out_fd, int leave_running, const struct ckpt_opts *o, uid_t uid,
			op_done_fn done, void *ctx);
int ops_checkpoint(struct pod *pod, int out_fd, int leave_running, uid_t uid,
		   op_done_fn done, void *ctx);

/* Restore the image read from in_fd (taken) into a new pod owned by uid/gid;
 * name and ip ("" = the image's) override the image's; shift_clocks: the
 * pod's monotonic clocks count the downtime (engine --shift-clocks).
 * 0 or -errno. */
int ops_restore(int in_fd, const char *name, const char *ip, uid_t uid, gid_t gid,
		bool shift_clocks, op_done_fn done, void *ctx);

/*
 * Coordinated variants (the manager, agent/peer.c): the engine runs with
 * --sync and stops at each sync point ("captured", "written", "restored"),
 * calling sync(ctx, phase, frozen_us); answer with ops_sync_answer(ctx, go,
 * why): go = 1 sends Continue, 0 Abort (the pod resumes / the restore is
 * dropped).  done() is called at the end as for the plain calls.
 */
typedef void (*op_sync_fn)(void *ctx, const char *phase, uint64_t frozen_us);
int ops_checkpoint_sync(struct pod *pod, int out_fd, int leave_running, uid_t uid,
			op_done_fn done, op_sync_fn sync, void *ctx);
/* ahead: prepare the pod (name and ip given) while the engine starts, not
 * at its PodNeeded — not for a migration's destination, whose pod IP must
 * not be routed here while its source still runs (ops.c, prepare_ahead). */
int ops_restore_sync(int in_fd, const char *name, const char *ip, uid_t uid, gid_t gid,
		     bool ahead, op_done_fn done, op_sync_fn sync, void *ctx);
int ops_sync_answer(void *ctx, int go, const char *why);
/* Kill the engine working for ctx (a restore fed by a stream that broke). */
void ops_kill_ctx(void *ctx);

/* A child ended: 1 if it was an engine (reaped and handled), else 0. */
int ops_child_exited(pid_t pid, int status);

/* The client behind ctx went away: the operation finishes without answering. */
void ops_forget_ctx(void *ctx);

/* Is an operation working on this pod (checkpoint in progress)? */
int ops_pod_busy(const struct pod *pod);

/* $ZAPC_AGENT_TIMING set: one "TIMING agent MS WHAT" line on stderr, MS on
 * CLOCK_MONOTONIC (comparable across the agents and the manager of one
 * machine: bench/cluster.sh's step timeline).  Otherwise nothing. */
void ops_timing(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Kill every running engine and wait for it (agent shutdown). */
void ops_fini(void);

#endif
