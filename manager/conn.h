/*
 * conn.h — zapc-manager's connections to agents: mutual TLS (lib/tls),
 * frames of zapc.mgr.Envelope, one persistent connection per node.
 *
 * The manager is a single thread: an operation sends to its agents and
 * then waits on all of them with poll() (conn_wait), so a phase's state is
 * plain local variables instead of callbacks.  Sockets are non-blocking;
 * incoming bytes are kept per agent until a whole frame is there.
 */
#ifndef ZAPC_MANAGER_CONN_H
#define ZAPC_MANAGER_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "proto/manager.pb-c.h"

struct agent {
	char name[64], addr[64];
	int fd;				/* -1: not connected */
	SSL *ssl;
	uint8_t *in;
	size_t inlen, incap;
	char kernel[128];
	struct agent *next;
};

/* Load the manager's TLS directory and the nodes file ("NAME ADDR:PORT"
 * lines, re-read whenever an unknown node is named). */
int conn_init(const char *tls_dir, const char *nodes_file);

/* The connected agent of node `name`, connecting (TLS, Hello) if needed.
 * NULL with why filled in. */
struct agent *conn_get(const char *name, char *why, size_t whylen);

/* Send one envelope.  0 or -errno (the connection is closed on error). */
int conn_send(struct agent *a, const Zapc__Mgr__Envelope *e);

/* Drop the connection (after an error or EOF). */
void conn_drop(struct agent *a, const char *why);

/*
 * Wait until deadline_ms (CLOCK_MONOTONIC ms) for frames from the agents
 * in as[0..n).  For every envelope, fn(arg, index, env) is called (env is
 * freed after it returns); a lost connection calls fn(arg, index, NULL).
 * Returns when fn returns non-zero (that value), or 0 at the deadline.
 */
typedef int (*conn_fn)(void *arg, int index, Zapc__Mgr__Envelope *env);
int conn_wait(struct agent **as, int n, int64_t deadline_ms, conn_fn fn, void *arg);

/* Is the connection still up (EOF already there = no)?  Frames read
 * meanwhile stay buffered for the next conn_wait. */
int conn_alive(struct agent *a);

/* Every connected agent, for the idle loop (stray frames, disconnects). */
struct agent *conn_list(void);
/* Read what is pending on a (non-blocking); fn as for conn_wait. */
void conn_poll_one(struct agent *a, conn_fn fn, void *arg);

int64_t now_ms(void);

#endif
