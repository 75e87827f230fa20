/*
 * ptydrv.c — drives an interactive shell over a pty inside a pod, for
 * tests/engine/pty.t.
 *
 *   zt-ptydrv DIR [node]
 * Mounts the pod's own devpts first (as the agent does for a pod: a new
 * devpts instance on /dev/pts, /dev/ptmx bound to its ptmx; we are pid 1 of
 * new pid and mount namespaces).  Opens two ptys of the pod's /dev/ptmx and closes the first, so the shell's
 * is /dev/pts/1 (an index a restore must choose); sets a 40x132 window;
 * forks /bin/sh -i as a session leader whose controlling tty is the slave.
 * Then forever: every byte the shell writes is copied to stdout; when
 * DIR/cmdN appears (N = 1, 2, ...) its content is typed into the master —
 * except "#pause" / "#resume", which stop / restart reading the master (the
 * shell's output then waits in the pty).
 * "node": no devpts of its own, the ptys are the node's (a dump must refuse).
 * Prints "ready" once the shell printed its first prompt.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (argc == 2 && (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0 ||
	    mount("/dev/pts/ptmx", "/dev/ptmx", NULL, MS_BIND, NULL) < 0)) {
		perror("devpts");
		return 1;
	}
	int first = posix_openpt(O_RDWR | O_NOCTTY);
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (first < 0 || m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		return 1;
	close(first);
	struct winsize ws = { .ws_row = 40, .ws_col = 132 };
	ioctl(m, TIOCSWINSZ, &ws);
	char *slave = ptsname(m);
	pid_t sh = fork();
	if (sh == 0) {
		setsid();
		int s = open(slave, O_RDWR);     /* a session leader: becomes its controlling tty */
		if (s < 0)
			_exit(1);
		dup2(s, 0), dup2(s, 1), dup2(s, 2);
		close(s);
		close(m);
		execl("/bin/sh", "sh", "-i", (char *)NULL);
		_exit(127);
	}
	/* the shell's first prompt: it is reading its terminal (input typed
	 * before its start-up could be flushed) */
	char prompt[256];
	struct pollfd pf0 = { m, POLLIN, 0 };
	if (poll(&pf0, 1, 10000) <= 0 || read(m, prompt, sizeof(prompt)) <= 0)
		return 1;
	printf("ready %s\n", slave);
	fflush(stdout);
	int paused = 0;
	for (int n = 1;;) {
		struct pollfd pf = { m, POLLIN, 0 };
		if (paused)
			usleep(20000);
		else if (poll(&pf, 1, 20) > 0) {
			char buf[4096];
			ssize_t r = read(m, buf, sizeof(buf));
			if (r <= 0)
				return 0;        /* the shell is gone */
			fwrite(buf, 1, (size_t)r, stdout);
			fflush(stdout);
		}
		char path[4096];
		snprintf(path, sizeof(path), "%s/cmd%d", argv[1], n);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		char cmd[4096];
		size_t len = fread(cmd, 1, sizeof(cmd), f);
		fclose(f);
		n++;
		if (len >= 6 && !memcmp(cmd, "#pause", 6))
			paused = 1;
		else if (len >= 7 && !memcmp(cmd, "#resume", 7))
			paused = 0;
		else if (write(m, cmd, len) != (ssize_t)len)
			return 1;
	}
}
