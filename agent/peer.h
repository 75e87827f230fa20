/*
 * peer.h — the agent's TLS listener for zapc-manager (docs/manager-protocol.md).
 *
 * Off unless the agent is given --tls-dir and --listen.  Only a client whose
 * certificate is signed by the cluster CA and whose name is the manager's
 * (--manager-name, default "manager") gets past Hello; everything else is
 * refused.  The manager drives coordinated checkpoints, restarts and
 * migrations of its jobs' pods and carries local API calls (pod create,
 * list, destroy) over the same connection.
 */
#ifndef ZAPC_AGENT_PEER_H
#define ZAPC_AGENT_PEER_H

#include <sys/types.h>

struct event_base;
struct pod_node;

/* listen: "ADDR:PORT"; api_socket: the agent's own unix socket (for Call). */
int peer_open(struct event_base *base, struct pod_node *node, const char *tls_dir,
	      const char *listen, const char *manager_name, const char *api_socket);
void peer_close(void);

#endif
