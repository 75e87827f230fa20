/*
 * rules.c — the pod's hold rules, applied with iptables-restore inside the
 * pod's network namespace (one chain ZAPC_HOLD in the raw table, jumped to
 * from PREROUTING and OUTPUT for everything but loopback, IPv4 and IPv6),
 * and conntrack cleanup.
 *
 * PREROUTING, not INPUT: TCP early demux (ip_rcv_finish, after PREROUTING)
 * attaches the *current* socket to each packet.  Packets held at INPUT kept a
 * reference to the socket that was captured and closed, and were lost to it
 * on release (the restored socket saw only later segments, out of order, and
 * waited for the peer's retransmission: ~20 ms here, 0.16 s in the probe).
 * Held before the demux, they find the restored socket.
 *
 * The xt NFQUEUE target is used through iptables (iptables-nft by default on
 * Debian): native nft "queue" needs CONFIG_NFT_QUEUE, unset on this kernel.
 * Commands run in a child that setns()es into the pod's netns, with a timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "netstate/internal.h"

#define HOLD_CHAIN "ZAPC_HOLD"

static int wait_child(pid_t pid, int timeout_s)
{
	struct timespec t0, t;
	int st;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		if (w < 0 && errno != EINTR)
			return -errno;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec >= timeout_s) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -ETIMEDOUT;
		}
		poll(NULL, 0, 2);
	}
}

/* Run argv in netns_fd (-1: here) with stdin_text on stdin; its exit status,
 * or -errno.  Output goes to /dev/null: the caller logs the one line. */
int ns_run_in_netns(int netns_fd, const char *const argv[], const char *stdin_text, int timeout_s)
{
	int in[2] = { -1, -1 };
	pid_t pid;

	/* A socketpair, not a pipe: send(MSG_NOSIGNAL) needs no SIGPIPE handling. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(in[0]);
		close(in[1]);
		return -e;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0)
			_exit(126);
		dup2(in[0], 0);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	if (stdin_text) {
		size_t len = strlen(stdin_text);
		while (len) {
			ssize_t n = send(in[1], stdin_text, len, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			stdin_text += n;
			len -= (size_t)n;
		}
	}
	close(in[1]);
	return wait_child(pid, timeout_s);
}

int ns_rules_apply(int netns_fd, unsigned queue_num, enum netstate_hold_mode mode, int bypass)
{
	static const char *const tools[2] = { "iptables-restore", "ip6tables-restore" };
	char text[512], target[64];
	int r;

	if (mode == NETSTATE_HOLD_NFQUEUE)
		snprintf(target, sizeof(target), "NFQUEUE --queue-num %u%s", queue_num,
			 bypass ? " --queue-bypass" : "");
	else
		snprintf(target, sizeof(target), "DROP");
	snprintf(text, sizeof(text),
		 "*raw\n"
		 ":" HOLD_CHAIN " - [0:0]\n"
		 "-I PREROUTING 1 ! -i lo -j " HOLD_CHAIN "\n"
		 "-I OUTPUT 1 ! -o lo -j " HOLD_CHAIN "\n"
		 "-A " HOLD_CHAIN " -j %s\n"
		 "COMMIT\n", target);
	for (int i = 0; i < 2; i++) {
		const char *argv[] = { tools[i], "-w", "--noflush", NULL };
		r = ns_run_in_netns(netns_fd, argv, text, 10);
		if (r != 0) {
			if (i == 0) {
				log_err("netstate hold: %s with %s failed (status %d)", tools[i], target, r);
				ns_rules_remove(netns_fd);
				return r < 0 ? r : -EIO;
			}
			log_warn("netstate hold: %s failed (status %d): IPv6 traffic is not held", tools[i], r);
		}
	}
	return 0;
}

int ns_rules_remove(int netns_fd)
{
	static const char *const tools[2][2] = { { "iptables-restore", "iptables" },
						  { "ip6tables-restore", "ip6tables" } };
	static const char text[] =
		"*raw\n"
		"-D PREROUTING ! -i lo -j " HOLD_CHAIN "\n"
		"-D OUTPUT ! -o lo -j " HOLD_CHAIN "\n"
		"-F " HOLD_CHAIN "\n"
		"-X " HOLD_CHAIN "\n"
		"COMMIT\n";
	int ret = 0;

	for (int i = 0; i < 2; i++) {
		const char *argv[] = { tools[i][0], "-w", "--noflush", NULL };
		if (ns_run_in_netns(netns_fd, argv, text, 10) == 0)
			continue;
		/* Partly there (or absent): remove piece by piece, ignore "not found". */
		const char *d_in[] = { tools[i][1], "-w", "-t", "raw", "-D", "PREROUTING", "!", "-i", "lo", "-j", HOLD_CHAIN, NULL };
		const char *d_out[] = { tools[i][1], "-w", "-t", "raw", "-D", "OUTPUT", "!", "-o", "lo", "-j", HOLD_CHAIN, NULL };
		const char *flush[] = { tools[i][1], "-w", "-t", "raw", "-F", HOLD_CHAIN, NULL };
		const char *del[] = { tools[i][1], "-w", "-t", "raw", "-X", HOLD_CHAIN, NULL };
		for (int k = 0; k < 8 && ns_run_in_netns(netns_fd, d_in, NULL, 10) == 0; k++)
			;
		for (int k = 0; k < 8 && ns_run_in_netns(netns_fd, d_out, NULL, 10) == 0; k++)
			;
		ns_run_in_netns(netns_fd, flush, NULL, 10);
		ns_run_in_netns(netns_fd, del, NULL, 10);
		const char *check[] = { tools[i][1], "-w", "-t", "raw", "-n", "-L", HOLD_CHAIN, NULL };
		if (ns_run_in_netns(netns_fd, check, NULL, 10) == 0) {
			log_err("netstate hold: could not remove chain " HOLD_CHAIN " (%s)", tools[i][1]);
			ret = -EIO;
		}
	}
	return ret;
}

int netstate_conntrack_flush(int netns_fd, const char *addr)
{
	/* conntrack exits 1 when nothing matched ("0 flow entries"): not an error. */
	const char *src[] = { "conntrack", "-D", "-s", addr, NULL };
	const char *dst[] = { "conntrack", "-D", "-d", addr, NULL };
	int a = ns_run_in_netns(netns_fd, src, NULL, 10);
	int b = ns_run_in_netns(netns_fd, dst, NULL, 10);

	if (a < 0 || b < 0 || a > 1 || b > 1) {
		log_err("netstate: conntrack flush for %s failed (status %d/%d)", addr, a, b);
		return a < 0 ? a : b < 0 ? b : -EIO;
	}
	return 0;
}
