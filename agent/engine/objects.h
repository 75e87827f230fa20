/*
 * objects.h — the table of kernel object kinds the engine handles.
 *
 * Adding a kind of object = one file with its dump and restore sides + one
 * line in objects.c.  Hooks run in table order:
 *   dump(d, p)           all threads ptrace-stopped; read state, may inject;
 *   early(r, p)          inside the new task, still running engine code;
 *   late(r, p)           from the engine, injecting into the stopped task
 *                        after its memory is in place.
 */
#ifndef ZAPC_ENGINE_OBJECTS_H
#define ZAPC_ENGINE_OBJECTS_H

#include "agent/engine/engine.h"

struct engine_object {
	const char *name;
	int (*dump)(struct dump_ctx *d, struct dproc *p);
	int (*early)(struct rst_ctx *r, struct rproc *p);
	int (*late)(struct rst_ctx *r, struct rproc *p);
};

extern const struct engine_object engine_objects[];

int objects_dump(struct dump_ctx *d);
int objects_early(struct rst_ctx *r, struct rproc *p);
int objects_late(struct rst_ctx *r, struct rproc *p);

#endif
