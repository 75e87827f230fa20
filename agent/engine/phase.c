/*
 * phase.c — where the frozen window's time goes (docs/incremental.md).
 * phase_mark("name") records the time since the previous mark; at the end
 * phase_report() prints one "TIMING phase NAME ms" line per mark on stderr
 * when ZAPC_ENGINE_TIMING is set, and one summary line at debug level.
 * Marks with the same name add up.  Cheap: one clock_gettime per mark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/engine/engine.h"
#include "lib/log.h"

#define PHASE_MAX 48

static struct { const char *name; double ms; } phases[PHASE_MAX];
static int nphases;
static struct timespec last;
static bool started;
static __thread bool off_thread;      /* a helper thread (objects.c): no marks */

void phase_thread_off(void)
{
	off_thread = true;
}

static double since_last(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	double ms = (t.tv_sec - last.tv_sec) * 1e3 + (t.tv_nsec - last.tv_nsec) / 1e6;
	last = t;
	return ms;
}

void phase_start(void)
{
	nphases = 0;
	started = true;
	clock_gettime(CLOCK_MONOTONIC, &last);
}

void phase_mark(const char *name)
{
	if (!started || off_thread)
		return;
	double ms = since_last();
	for (int i = 0; i < nphases; i++)
		if (!strcmp(phases[i].name, name)) {
			phases[i].ms += ms;
			return;
		}
	if (nphases < PHASE_MAX)
		phases[nphases++] = (typeof(phases[0])){ name, ms };
}

void phase_report(void)
{
	if (!started)
		return;
	started = false;
	char line[2048];
	size_t o = 0;
	bool timing = getenv("ZAPC_ENGINE_TIMING") != NULL;
	for (int i = 0; i < nphases; i++) {
		if (timing)
			fprintf(stderr, "TIMING phase %s %.3f\n", phases[i].name, phases[i].ms);
		if (o < sizeof(line))
			o += (size_t)snprintf(line + o, sizeof(line) - o, " %s=%.3f", phases[i].name, phases[i].ms);
	}
	log_debug("dump: frozen window (ms):%s", line);
}
