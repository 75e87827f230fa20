/*
 * main.c — zapc-engine: checkpoint/restart of a pod, one operation per run.
 *
 * The agent fork+execs it per operation: crashes stay isolated, ptrace gets a
 * stable tracer, the agent's event loop stays free.
 *   zapc-engine dump --cgroup DIR... --init PID -o FILE|- [--leave-running]
 *   zapc-engine restore -i FILE|- [--netns PATH] [--cgroup DIR...] [--name NEW]
 *   zapc-engine show FILE [--json]
 *   zapc-engine squash -i IMAGE -o OUT [--compress[=LEVEL]]   (chain.c)
 * Exit 0 on success; otherwise one error line on stderr and exit 1.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

int main(int argc, char **argv)
{
	log_init("zapc-engine", 0);
	/* A reader that goes away (a pipe, a peer) is a write error to handle,
	 * not a signal that kills us while the pod's tasks are seized. */
	signal(SIGPIPE, SIG_IGN);
	if (getenv("ZAPC_ENGINE_DEBUG"))
		log_set_level(LOG_LVL_DEBUG);
	else
		log_set_level(LOG_LVL_WARN);
	if (argc < 2) {
		fprintf(stderr, "usage: zapc-engine dump|restore|show ...\n");
		return 2;
	}
	if (!strcmp(argv[1], "dump"))
		return dump_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "restore"))
		return restore_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "keep-uffd"))      /* dirty.c: the dirty tracking keeper */
		return keep_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "squash"))
		return squash_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "show"))
		return show_main(argc - 1, argv + 1);
	fprintf(stderr, "zapc-engine: unknown command '%s'\n", argv[1]);
	return 2;
}
