/*
 * main.c — zapc, the command line for the agent (and later the manager).
 *
 *   zapc [--socket PATH] COMMAND [ARGS...]      zapc --help | zapc COMMAND --help
 *
 * Commands are groups listed in one table; each lives in its own file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ca.h"
#include "cli/cli.h"

static const struct cli_command commands[] = {
	{ "pod", cmd_pod, "create, list, exec in and destroy pods" },
	{ "checkpoint", cmd_checkpoint, "save a pod to an image (snapshot with --leave-running)" },
	{ "restore", cmd_restore, "restore an image into a new pod" },
	{ "image", cmd_image, "inspect images: image show" },
	{ "ca", cmd_ca, "cluster CA: init, issue node certificates" },
	{ "job", cmd_job, "jobs across nodes via zapc-manager: run, checkpoint, restart, migrate" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: zapc [--socket PATH] COMMAND [ARGS...]\n"
		   "       zapc COMMAND --help\n\n"
		   "options:\n"
		   "  --socket PATH   the agent's socket (default $ZAPC_SOCKET or /run/zapc/agent.sock)\n\n"
		   "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
	int i = 1;

	if (getenv("ZAPC_SOCKET") && getenv("ZAPC_SOCKET")[0])
		cli_socket = getenv("ZAPC_SOCKET");
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			cli_socket = argv[++i];
		} else if (strncmp(argv[i], "--socket=", 9) == 0) {
			cli_socket = argv[i] + 9;
		} else {
			cli_err("unknown option %s (see zapc --help)", argv[i]);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
		if (strcmp(argv[i], commands[c].name) == 0)
			return commands[c].run(argc - i, argv + i);
	cli_err("unknown command '%s' (see zapc --help)", argv[i]);
	return 2;
}
