/*
 * log.c — see log.h.  Deliberately tiny: a level, a program name, and either
 * stderr or syslog.  Each call writes exactly one line with one write(2) so
 * lines from concurrent processes do not interleave.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

static const char *log_prog = "zapc";
static int log_syslog;
static enum log_level log_level = LOG_LVL_INFO;
static char log_last[512];

const char *log_last_err(void) { return log_last; }
void log_last_err_clear(void) { log_last[0] = 0; }

void log_init(const char *progname, int use_syslog)
{
	const char *slash = strrchr(progname, '/');

	log_prog = slash ? slash + 1 : progname;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(log_prog, LOG_PID, LOG_DAEMON);
}

void log_set_level(enum log_level lvl) { log_level = lvl; }
enum log_level log_get_level(void) { return log_level; }

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[2048];
	int n;

	if (lvl == LOG_LVL_ERR) {
		va_list cp;

		va_copy(cp, ap);
		vsnprintf(log_last, sizeof(log_last), fmt, cp);
		va_end(cp);
	}
	if (lvl > log_level)
		return;
	if (log_syslog) {
		vsyslog(prio[lvl], fmt, ap);
		return;
	}
	n = snprintf(line, sizeof(line), "%s: ", log_prog);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void log_vtiming(int *on, const char *env, const char *who, const char *fmt, va_list ap)
{
	struct timespec t;
	char what[512];

	if (*on < 0)
		*on = getenv(env) != NULL;
	if (!*on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	vsnprintf(what, sizeof(what), fmt, ap);
	fprintf(stderr, "TIMING %s %.1f %s\n", who, t.tv_sec * 1e3 + t.tv_nsec / 1e6, what);
}
