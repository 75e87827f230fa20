/*
 * ca-tool.c — test-only driver for cli/ca.c until `zapc ca` is wired into
 * the zapc command table: `ca-tool init DIR`, `ca-tool issue NAME ...` run
 * exactly what `zapc ca init ...` and `zapc ca issue ...` run.
 */
#include "cli/ca.h"
#include "lib/log.h"

int main(int argc, char **argv)
{
	log_init("zapc", 0);
	argv[0] = "ca";
	return cmd_ca(argc, argv);
}
