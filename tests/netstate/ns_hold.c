/*
 * ns_hold — drive the traffic hold from a shell test.
 *
 *   ns_hold NETNS QUEUE nfqueue|drop|keep|kept   begin a hold (keep: kept
 *       rules, installed now; kept: kept rules already there), print "mode M" and
 *       "holder PID", then obey stdin lines: "release", "drop", "count",
 *       "die" (exit at once without ending the hold: the holder must clean up).
 *   ns_hold ctflush NETNS ADDR         netstate_conntrack_flush
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/netstate.h"

int main(int argc, char **argv)
{
	char path[256], line[64];
	struct netstate_hold *h;
	int ns, r;

	log_init("ns_hold", 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4)
		return 2;
	snprintf(path, sizeof(path), "/run/netns/%s", !strcmp(argv[1], "ctflush") ? argv[2] : argv[1]);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return 1;
	if (!strcmp(argv[1], "ctflush"))
		return netstate_conntrack_flush(ns, argv[3]) ? 1 : 0;
	if (!strcmp(argv[3], "keep") || !strcmp(argv[3], "kept"))
		r = netstate_hold_begin_keep(ns, !strcmp(argv[3], "kept"), &h);
	else
		r = netstate_hold_begin(ns, (unsigned)atoi(argv[2]),
					strcmp(argv[3], "drop") ? NETSTATE_HOLD_NFQUEUE : NETSTATE_HOLD_DROP, &h);
	if (r)
		return 1;
	printf("mode %s\n", netstate_hold_mode(h) == NETSTATE_HOLD_DROP ? "drop" : "nfqueue");
	fprintf(stderr, "holder %d\n", netstate_hold_pid(h));
	while (fgets(line, sizeof(line), stdin)) {
		if (!strncmp(line, "count", 5))
			printf("count %d\n", netstate_hold_count(h));
		else if (!strncmp(line, "release", 7))
			return printf("release %d\n", netstate_hold_release(h)), 0;
		else if (!strncmp(line, "drop", 4))
			return printf("drop %d\n", netstate_hold_drop(h)), 0;
		else if (!strncmp(line, "die", 3))
			_exit(9);
	}
	_exit(9);
}
