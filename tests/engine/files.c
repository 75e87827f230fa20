/*
 * files.c — an fd table with every kind of file the engine handles: regular
 * files (offset, O_APPEND, a dup sharing the offset), a directory, /dev/null,
 * /dev/zero, /dev/urandom (close-on-exec), a pipe and a FIFO with data in
 * them (one end O_NONBLOCK), an unlinked file and a sealed memfd (content
 * and offset), an eventfd (count 5) and a periodic timerfd, at scattered
 * fd numbers.  When argv[3] appears
 * it reads from each and prints what it got.
 * argv: DIR (scratch directory) FIFO-PATH TRIGGER
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <sys/stat.h>
#include <unistd.h>

static void place(int fd, int want) { if (fd != want) { dup2(fd, want); close(fd); } }

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	char path[4096];
	snprintf(path, sizeof(path), "%s/ro.txt", argv[1]);
	FILE *f = fopen(path, "w");
	fputs("0123456789abcdefghij", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/log.txt", argv[1]);
	place(open(path, O_RDWR | O_CREAT | O_APPEND, 0600), 3);
	if (write(3, "abc", 3) != 3)
		return 3;
	snprintf(path, sizeof(path), "%s/ro.txt", argv[1]);
	place(open(path, O_RDONLY), 5);
	lseek(5, 7, SEEK_SET);
	place(open(argv[1], O_RDONLY | O_DIRECTORY), 6);
	place(open("/dev/null", O_WRONLY), 7);
	place(open("/dev/zero", O_RDONLY), 8);
	place(open("/dev/urandom", O_RDONLY), 9);
	fcntl(9, F_SETFD, FD_CLOEXEC);
	int p[2];
	if (pipe(p) < 0 || write(p[1], "pipedata", 8) != 8)
		return 4;
	place(p[0], 12);
	place(p[1], 13);
	fcntl(12, F_SETFL, O_NONBLOCK);
	mkfifo(argv[2], 0600);
	place(open(argv[2], O_RDWR), 17);
	if (write(17, "fifodata", 8) != 8)
		return 5;
	dup2(3, 21);
	snprintf(path, sizeof(path), "%s/gone.txt", argv[1]);
	place(open(path, O_RDWR | O_CREAT, 0600), 25);
	if (write(25, "deleted-data", 12) != 12)
		return 6;
	unlink(path);
	lseek(25, 8, SEEK_SET);
	place(memfd_create("zt-memfd", MFD_ALLOW_SEALING), 26);
	if (write(26, "memfd-data", 10) != 10)
		return 7;
	fcntl(26, F_ADD_SEALS, F_SEAL_SHRINK);
	lseek(26, 6, SEEK_SET);
	place(eventfd(5, EFD_NONBLOCK), 30);
	place(timerfd_create(CLOCK_MONOTONIC, 0), 31);
	struct itimerspec its = { { 0, 10000000 }, { 0, 10000000 } };
	timerfd_settime(31, 0, &its, NULL);
	for (;;) {
		if (access(argv[3], F_OK) == 0) {
			char a[16] = { 0 }, b[16] = { 0 }, c[16] = { 0 }, z[4] = { 1, 1, 1, 1 };
			ssize_t n1 = read(5, a, 5), n2 = read(12, b, 15), n3 = read(17, c, 8);
			ssize_t n4 = read(8, z, 4), n5 = write(7, "x", 1);
			ssize_t n6 = write(21, "def", 3);
			off_t pos3 = lseek(3, 0, SEEK_CUR);
			char e[16] = { 0 }, m[16] = { 0 };
			ssize_t n7 = read(25, e, 15), n8 = read(26, m, 15);
			int seals = fcntl(26, F_GET_SEALS);
			uint64_t ev = 0, ticks = 0;
			if (read(30, &ev, 8) != 8 || read(31, &ticks, 8) != 8)
				ev = 0;
			printf("ro=%.*s pipe=%.*s fifo=%.*s zero=%d%d null=%zd pos3=%ld flags12=%s cloexec9=%d "
			       "deleted=%.*s memfd=%.*s seals=%d eventfd=%llu timerfd=%s\n",
			       (int)n1, a, (int)n2, b, (int)n3, c, z[0], (int)n4, n5, (long)pos3,
			       fcntl(12, F_GETFL) & O_NONBLOCK ? "nonblock" : "block", fcntl(9, F_GETFD) & FD_CLOEXEC,
			       (int)n7, e, (int)n8, m, seals, (unsigned long long)ev, ticks > 0 ? "ticking" : "stopped");
			(void)n6;
			fflush(stdout);
			return 0;
		}
		usleep(5000);
	}
}
