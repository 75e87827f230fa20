/*
 * log.h — one-line diagnostics for every zapc program.
 *
 * A message says what failed and why, once, at the place that knows the
 * context ("restore pid 12 fd 7: unix peer 9 missing in image").  Lines go to
 * stderr prefixed with the program name; daemons can send them to syslog.
 */
#ifndef ZAPC_LOG_H
#define ZAPC_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *progname, int use_syslog);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap);

/*
 * The text of the last LOG_LVL_ERR message (without the program prefix),
 * "" after log_last_err_clear().  Lets a server send the precise one-line
 * reason of a failure back to its client.
 */
const char *log_last_err(void);
void log_last_err_clear(void);

/*
 * Step timelines: when $ENV is set, "TIMING WHO MS WHAT" on stderr, MS on
 * CLOCK_MONOTONIC (shared by every process of the machine, so the lines of
 * the manager and the agents merge into one timeline).  *on caches getenv.
 */
void log_vtiming(int *on, const char *env, const char *who, const char *fmt, va_list ap);

#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
