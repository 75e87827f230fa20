/*
 * signals.c — signal state that must survive: handlers with flags, the
 * blocked mask, pending signals (a thread-directed SIGUSR2 and a queued
 * SIGRTMIN+1 with a value, both blocked), a sigaltstack used by the SIGUSR1
 * handler, an interval timer (SIGALRM) and a POSIX timer (SIGRTMIN+2).
 * Prints "i alarms ptimer" every 5 ms; when the file argv[1] appears it
 * unblocks the pending signals, raises SIGUSR1 and reports what it saw.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int got_usr2, rt_value = -1, usr1_onstack = -1;
static volatile unsigned long alarms, ptimer;
static char altstack[65536];

static void on_usr1(int s) { char x; usr1_onstack = (&x >= altstack && &x < altstack + sizeof(altstack)); (void)s; }
static void on_usr2(int s) { got_usr2 = 1; (void)s; }
static void on_rt(int s, siginfo_t *si, void *u) { rt_value = si->si_value.sival_int; (void)s; (void)u; }
static void on_alarm(int s) { alarms++; (void)s; }
static void on_ptimer(int s) { ptimer++; (void)s; }

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	stack_t ss = { altstack, 0, sizeof(altstack) };
	sigaltstack(&ss, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1; sa.sa_flags = SA_ONSTACK | SA_RESTART; sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2; sa.sa_flags = SA_RESTART | SA_NODEFER; sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_alarm; sa.sa_flags = SA_RESTART; sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_ptimer; sa.sa_flags = SA_RESTART; sigaction(SIGRTMIN + 2, &sa, NULL);
	sa.sa_handler = NULL; sa.sa_sigaction = on_rt; sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN + 1, &sa, NULL);
	sigset_t blk;
	sigemptyset(&blk);
	sigaddset(&blk, SIGUSR2);
	sigaddset(&blk, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &blk, NULL);
	raise(SIGUSR2);
	union sigval v = { .sival_int = 42 };
	sigqueue(getpid(), SIGRTMIN + 1, v);
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	timer_t tid;
	struct sigevent ev = { 0 };
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN + 2;
	timer_create(CLOCK_MONOTONIC, &ev, &tid);
	struct itimerspec its = { { 0, 30000000 }, { 0, 30000000 } };
	timer_settime(tid, 0, &its, NULL);
	int fired = 0;
	for (unsigned long i = 0;; i++) {
		printf("%lu %lu %lu\n", i, alarms, ptimer);
		fflush(stdout);
		if (!fired && access(argv[1], F_OK) == 0) {
			fired = 1;
			struct sigaction cur;
			sigaction(SIGUSR2, NULL, &cur);
			int flags_ok = (cur.sa_flags & (SA_RESTART | SA_NODEFER)) == (SA_RESTART | SA_NODEFER) &&
				       cur.sa_handler == on_usr2;
			sigprocmask(SIG_UNBLOCK, &blk, NULL);
			raise(SIGUSR1);
			printf("USR2 %d RT %d USR1-onstack %d flags %d\n", got_usr2, rt_value, usr1_onstack, flags_ok);
			fflush(stdout);
		}
		usleep(5000);
	}
}
