/*
 * tree.c — a process tree with every shape the engine must keep:
 * a zombie (A, exit 7, never reaped), a second session (B) with its own
 * group leader (C), an orphan re-parented to init (E), a process group (F)
 * joined by a sibling (G), a stopped process (H).  pid 1 prints a counter.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void idle(void) { for (;;) pause(); }

int main(void)
{
	pid_t f;
	if (fork() == 0)
		_exit(7);                                   /* A: zombie */
	if (fork() == 0) {                                  /* B: new session */
		setsid();
		if (fork() == 0) { setpgid(0, 0); idle(); } /* C */
		idle();
	}
	pid_t d = fork();
	if (d == 0) {                                       /* D: dies, E orphaned */
		if (fork() == 0) idle();                    /* E */
		_exit(0);
	}
	waitpid(d, NULL, 0);
	if ((f = fork()) == 0) { setpgid(0, 0); idle(); }   /* F */
	setpgid(f, f);
	if (fork() == 0) { setpgid(0, f); idle(); }         /* G */
	if (fork() == 0) { raise(SIGSTOP); idle(); }        /* H: stopped */
	struct timespec ts = { 0, 3000000 };
	for (unsigned long i = 0;; i++) {
		printf("%lu\n", i);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
