/*
 * inet.h — the engine's TCP/UDP sockets (inet.c): the fd kind plus the
 * traffic hold around a dump and a restore (docs/engine.md, "Sockets").
 *
 * Dump:    the first inet socket captured starts the hold on the pod's netns;
 *          dump.c ends it: inet_dump_release() once the pod runs again
 *          (snapshot, any failure); inet_dump_detach() before the pod is
 *          killed, inet_dump_drop() once its processes are dead.
 * Restore: inet_restore_begin() before the pod's sockets exist (holds the new
 *          netns if the image has inet sockets), the fd kind re-creates them,
 *          inet_restore_finish() when the image is verified and before the
 *          pod runs (repair mode off, listeners first; hold released);
 *          inet_restore_abort() on failure (no FIN/RST, packets dropped).
 * Every function is a no-op when the pod has no inet socket.
 */
#ifndef ZAPC_ENGINE_INET_H
#define ZAPC_ENGINE_INET_H

#include "agent/engine/engine.h"

void inet_dump_early(pid_t init);
/* The pod's netns has kept hold rules (--hold-kept on the dump side: set
 * before inet_dump_early).  inet_hold_kept() after a hold: they are there. */
void inet_set_hold_kept(bool present);
bool inet_hold_kept(void);
void inet_dump_release(void);
void inet_dump_detach(void);
void inet_dump_drop(struct dump_ctx *d);

struct pod_net;
bool inet_image_has_sockets(struct rst_ctx *r);
int inet_restore_begin(struct rst_ctx *r, int pod_netns_fd, const struct pod_net *net);
int inet_restore_finish(struct rst_ctx *r);
void inet_restore_abort(struct rst_ctx *r);

#endif
