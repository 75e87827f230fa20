/*
 * jobs.h — zapc-manager's job registry and the operations on jobs.
 *
 * A job is a set of pods spread over nodes, each with its virtual IP; the
 * registry lives in memory and in a state file (rewritten on each change).
 * Operations run one at a time (the manager is single-threaded) and talk to
 * the CLI through an output callback (lines to print).
 */
#ifndef ZAPC_MANAGER_JOBS_H
#define ZAPC_MANAGER_JOBS_H

#include <stdint.h>

#include "proto/manager.pb-c.h"

#define JOB_NAME_MAX 32

struct jpod {
	char name[64], ip[16], node[64];
};

struct job {
	char name[JOB_NAME_MAX + 1];
	char state[32];			/* running, checkpointed, finished, failed */
	char note[512];			/* last operation, exit status */
	int mpi;
	int npods;
	struct jpod *pods;
	uint64_t exec_call;		/* mpi: the PodExec call running the launcher */
	struct job *next;
};

struct mgr_conf {
	const char *state_file;
	const char *state_dir;		/* job outputs, hosts files */
	const char *route_cmd;		/* "CMD route IP NODE" / "CMD unroute IP" */
	int timeout_ms;			/* per phase */
};

extern struct mgr_conf conf;

/* Output to the CLI: printf-like, one or more lines. */
typedef void (*out_fn)(void *ctx, const char *line);

void jobs_load(void);
void jobs_save(void);
struct job *job_find(const char *name);
struct job *jobs_all(void);

/* The operations; 0 or -errno with *err set to one line. */
int job_run(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen);
int job_checkpoint(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen);
int job_restart(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen);
int job_migrate(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen);
int job_destroy(const Zapc__Mgr__JobRequest *rq, out_fn out, void *ctx, char *err, size_t errlen);

/* An envelope that arrived outside an operation (e.g. a finished exec). */
int jobs_stray(void *arg, int index, Zapc__Mgr__Envelope *e);

#endif
