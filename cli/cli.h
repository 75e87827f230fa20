/*
 * cli.h — what the zapc command groups share.
 *
 * Adding a command group: write cli/NAME.c with `int cmd_NAME(int argc,
 * char **argv)` (argv[0] is the group's name, options follow), declare it
 * here and add one line to the table in cli/main.c.  A command prints its
 * errors as one line through cli_err() and returns the process exit code.
 */
#ifndef ZAPC_CLI_H
#define ZAPC_CLI_H

#include "proto/agent.pb-c.h"

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;	/* one line for `zapc --help` */
};

/* The agent's socket: --socket, else $ZAPC_SOCKET, else /run/zapc/agent.sock. */
extern const char *cli_socket;

/* "zapc: <message>" on stderr, one line. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Connect to the agent, send req with fds, wait for the response.  Returns
 * 0 with *resp (free with zapc__response__free_unpacked) — whose status may
 * still be an error — or -errno after printing why.
 */
int cli_call(const Zapc__Request *req, const int *fds, int nfds, Zapc__Response **resp);

/* A status != 0 response: print its error; returns 1 (the exit code). */
int cli_fail(const Zapc__Response *resp);

int cmd_pod(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_job(int argc, char **argv);

#endif
