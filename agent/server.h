/*
 * server.h — zapc-agent's API server on a unix socket (docs/api.md).
 */
#ifndef ZAPC_AGENT_SERVER_H
#define ZAPC_AGENT_SERVER_H

#include <sys/types.h>

struct event_base;
struct pod_node;

/* Listen on path (replacing a stale socket, refusing a live one).  0/-errno. */
int server_open(struct event_base *base, struct pod_node *node, const char *path);
/* Stop listening, drop every client, unlink the socket. */
void server_close(void);
/* A child of the agent ended: an exec helper or a pod init.  Reaps it. */
void server_child_exited(pid_t pid, int status);

#endif
