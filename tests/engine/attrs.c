/*
 * attrs.c — per-process attributes that must survive: cwd, umask, comm,
 * personality, lowered rlimits, supplementary groups and a non-root
 * uid/gid (set last).  Prints a counter like counter.c.
 * argv[1]: directory to chdir to.
 */
#include <grp.h>
#include <stdio.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2 || chdir(argv[1]) < 0)
		return 2;
	umask(027);
	personality(PER_LINUX | ADDR_NO_RANDOMIZE);
	prctl(PR_SET_NAME, "attrs-main");
	struct rlimit rl = { 200, 400 };
	setrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max = 1 << 20;
	setrlimit(RLIMIT_FSIZE, &rl);
	gid_t g[2] = { 1001, 1002 };
	if (setgroups(2, g) < 0 || setresgid(1000, 1000, 1000) < 0 || setresuid(1000, 1000, 1000) < 0)
		return 3;
	struct timespec ts = { 0, 3000000 };
	for (unsigned long i = 0;; i++) {
		printf("%lu\n", i);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
