/* log_test.c — log levels filter lines; each line carries the program name. */
#include <fcntl.h>
#include <unistd.h>

#include "lib/log.h"
#include "tests/unit/tap.h"

static char *capture(void (*fn)(void))
{
	static char buf[4096];
	int p[2], saved;
	ssize_t n;

	if (pipe(p) < 0)
		return NULL;
	saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static void say_info(void) { log_info("pod %s created", "web"); }
static void say_debug(void) { log_debug("hidden"); }

int main(void)
{
	log_init("/usr/sbin/zapc-agent", 0);
	is_str(capture(say_info), "zapc-agent: pod web created\n", "info line has program name");
	is_str(capture(say_debug), "", "debug filtered at default level");
	log_set_level(LOG_LVL_DEBUG);
	is_str(capture(say_debug), "zapc-agent: hidden\n", "debug shown when enabled");
	return tap_done();
}
