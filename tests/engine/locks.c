/*
 * zt-locks — file locks for tests/engine/locks.t.
 *
 *   zt-locks hold DIR        the pod's program: an flock LOCK_EX on DIR/flock,
 *                            POSIX locks WRITE 100-199 and READ 200-EOF on
 *                            DIR/posix, an OFD WRITE lock on DIR/ofd (all of
 *                            it), and a forked child with its own POSIX WRITE
 *                            lock on bytes 0-9 of DIR/child; it holds byte 0
 *                            of DIR/wait, which a second child waits for in
 *                            F_SETLKW; then writes DIR/ready.  On SIGUSR1 it
 *                            drops the WRITE lock 100-199 and the one on
 *                            DIR/wait and writes DIR/released; the waiter,
 *                            once it has the lock, writes DIR/waited.
 *   zt-locks try FILE posix|ofd|flock r|w START LEN
 *                            takes a lock without waiting from outside the pod
 *                            (its own open file description) and prints "ok",
 *                            or "busy" when a conflicting lock is held.
 *   zt-locks owner FILE START LEN
 *                            F_GETLK for a WRITE lock: the pid of the POSIX lock
 *                            in the way (in the caller's pid namespace; -1 for
 *                            an OFD lock), or "none".
 *   zt-locks holdout FILE START LEN
 *                            takes a POSIX WRITE lock, prints "held PID", sleeps.
 *   zt-locks lease FILE      takes a read lease, prints "held", sleeps.
 *   zt-locks mapped FILE     flock LOCK_EX, maps the file, closes the fd (the
 *                            lock stays with the mapping), prints "held", sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t g_release;

static void on_usr1(int sig)
{
	(void)sig;
	g_release = 1;
}

static int open_in(const char *dir, const char *name, int flags)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, flags | O_CREAT, 0644);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	return fd;
}

static void must(int ret, const char *what)
{
	if (ret < 0) {
		perror(what);
		exit(1);
	}
}

/* the locks are taken: say so (line, if any) and keep them until killed */
static _Noreturn void keep(const char *line)
{
	if (line) {
		puts(line);
		fflush(stdout);
	}
	for (;;)
		pause();
}

static int posix_lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	return fcntl(fd, cmd, &fl);
}

static void mark(const char *dir, const char *name)
{
	close(open_in(dir, name, O_WRONLY));
}

static __attribute__((noreturn)) void hold(const char *dir)
{
	int fl = open_in(dir, "flock", O_RDWR), px = open_in(dir, "posix", O_RDWR), ofd = open_in(dir, "ofd", O_RDWR);
	int ch = open_in(dir, "child", O_RDWR);
	must(flock(fl, LOCK_EX | LOCK_NB), "flock");
	must(posix_lock(px, F_SETLK, F_WRLCK, 100, 100), "posix write lock");
	must(posix_lock(px, F_SETLK, F_RDLCK, 200, 0), "posix read lock");
	must(posix_lock(ofd, F_OFD_SETLK, F_WRLCK, 0, 0), "ofd lock");
	int go[2];
	must(pipe(go), "pipe");
	pid_t c = fork();
	must(c, "fork");
	if (c == 0) {
		must(posix_lock(ch, F_SETLK, F_WRLCK, 0, 10), "child posix lock");
		must((int)write(go[1], "x", 1), "write");
		keep(NULL);
	}
	char b;
	must((int)read(go[0], &b, 1), "read");
	int wt = open_in(dir, "wait", O_RDWR);
	must(posix_lock(wt, F_SETLK, F_WRLCK, 0, 1), "wait lock");
	c = fork();
	must(c, "fork");
	if (c == 0) {
		/* blocks until the parent lets go (after the restore, in the test) */
		must(posix_lock(wt, F_SETLKW, F_WRLCK, 0, 1), "F_SETLKW");
		mark(dir, "waited");
		keep(NULL);
	}
	/* the waiter is blocked when its request on DIR/wait shows in /proc/locks ("->") */
	struct stat st;
	must(fstat(wt, &st), "fstat");
	char ino[32];
	snprintf(ino, sizeof(ino), ":%lu ", (unsigned long)st.st_ino);
	for (int i = 0; i < 500; i++) {
		char line[256];
		FILE *f = fopen("/proc/locks", "re");
		bool blocked = false;
		while (f && fgets(line, sizeof(line), f))
			blocked |= strstr(line, "->") && strstr(line, ino);
		if (f)
			fclose(f);
		if (blocked)
			break;
		usleep(10000);
	}
	signal(SIGUSR1, on_usr1);
	mark(dir, "ready");
	for (;;) {
		pause();
		if (g_release) {
			g_release = 0;
			must(posix_lock(px, F_SETLK, F_UNLCK, 100, 100), "unlock");
			must(posix_lock(wt, F_SETLK, F_UNLCK, 0, 1), "unlock wait");
			mark(dir, "released");
		}
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "hold"))
		hold(argv[2]);
	if (argc == 7 && !strcmp(argv[1], "try")) {
		int fd = open(argv[2], O_RDWR);
		must(fd, argv[2]);
		short type = argv[4][0] == 'w' ? F_WRLCK : F_RDLCK;
		off_t start = atoll(argv[5]), len = atoll(argv[6]);
		int r;
		if (!strcmp(argv[3], "flock"))
			r = flock(fd, (type == F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB);
		else
			r = posix_lock(fd, !strcmp(argv[3], "ofd") ? F_OFD_SETLK : F_SETLK, type, start, len);
		if (r == 0)
			puts("ok");
		else if (errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK)
			puts("busy");
		else
			printf("error: %s\n", strerror(errno));
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "owner")) {
		int fd = open(argv[2], O_RDWR);
		must(fd, argv[2]);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = atoll(argv[3]), .l_len = atoll(argv[4]) };
		must(fcntl(fd, F_GETLK, &fl), "F_GETLK");
		if (fl.l_type == F_UNLCK)
			puts("none");
		else
			printf("%d\n", (int)fl.l_pid);
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "holdout")) {
		int fd = open(argv[2], O_RDWR);
		must(fd, argv[2]);
		must(posix_lock(fd, F_SETLK, F_WRLCK, atoll(argv[3]), atoll(argv[4])), "lock");
		char line[32];
		snprintf(line, sizeof(line), "held %d", (int)getpid());
		keep(line);
	}
	if (argc == 3 && !strcmp(argv[1], "lease")) {
		int fd = open(argv[2], O_RDONLY);
		must(fd, argv[2]);
		must(fcntl(fd, F_SETLEASE, F_RDLCK), "F_SETLEASE");
		keep("held");
	}
	if (argc == 3 && !strcmp(argv[1], "mapped")) {
		int fd = open(argv[2], O_RDWR);
		must(fd, argv[2]);
		must(flock(fd, LOCK_EX | LOCK_NB), "flock");
		if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
			must(-1, "mmap");
		close(fd);
		keep("held");
	}
	fprintf(stderr, "usage: see tests/engine/locks.c\n");
	return 2;
}
