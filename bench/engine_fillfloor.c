/*
 * engine_fillfloor.c — what filling N MiB (default 256) of fresh private
 * anonymous memory of another process costs on this machine, whatever the
 * image: the floor under the engine's restore of a big process (its page
 * fill also reads the image file and checksums it).  The target is a forked
 * child with an untouched N MiB mapping; the data comes from a touched
 * 512 KiB buffer.  Ways tried, best of 3 each, in ms:
 *   pvw   process_vm_writev (the kernel faults the target's pages in)
 *   uffd  UFFDIO_COPY through a userfaultfd of the child's mm
 *   uffd2 the same from two threads (halves), as the engine does on 2 cores
 * Prints "WAY MS" lines, then "floor MS WAY" (the cheapest).  A PVM guest
 * pays a shadow-page-table fill per fresh 4 KiB page, which a memcpy into
 * touched memory (the bench's other floor) does not.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (512u << 10)

static size_t len;
static uint8_t *bufs[2];

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

struct target {
	pid_t pid;
	uint8_t *addr;
	int uffd;       /* ours, of the child's mm; -1 if not asked for */
};

/* A stopped-in-pause child with an untouched len-byte mapping at t->addr,
 * registered (missing mode) with a userfaultfd we hold if want_uffd. */
static int target_start(struct target *t, int want_uffd)
{
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0)
		return -1;
	t->addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t->addr == MAP_FAILED)
		return -1;
	t->uffd = -1;
	t->pid = fork();
	if (t->pid == 0) {
		int fd = -1;
		if (want_uffd) {
			fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
			struct uffdio_api api = { .api = UFFD_API };
			struct uffdio_register rg = { .range = { (uintptr_t)t->addr, len },
						      .mode = UFFDIO_REGISTER_MODE_MISSING };
			if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &rg) < 0)
				fd = -1;
		}
		if (write(pp[1], &fd, sizeof(fd)) != sizeof(fd))
			_exit(1);
		for (;;)
			pause();
	}
	munmap(t->addr, len);
	close(pp[1]);
	int fd = -1;
	if (t->pid < 0 || read(pp[0], &fd, sizeof(fd)) != sizeof(fd)) {
		close(pp[0]);
		return -1;
	}
	close(pp[0]);
	if (want_uffd) {
		int pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
		t->uffd = fd >= 0 && pidfd >= 0 ? (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0) : -1;
		if (pidfd >= 0)
			close(pidfd);
		if (t->uffd < 0)
			return -1;
	}
	return 0;
}

static void target_end(struct target *t)
{
	if (t->uffd >= 0)
		close(t->uffd);
	kill(t->pid, SIGKILL);
	waitpid(t->pid, NULL, 0);
}

struct part {
	struct target *t;
	size_t from, to;
	uint8_t *buf;
	int err;
};

static void *fill_uffd(void *arg)
{
	struct part *p = arg;
	for (size_t o = p->from; o < p->to; o += CHUNK) {
		struct uffdio_copy c = { .dst = (uintptr_t)p->t->addr + o, .src = (uintptr_t)p->buf,
					 .len = CHUNK, .mode = UFFDIO_COPY_MODE_DONTWAKE };
		if (ioctl(p->t->uffd, UFFDIO_COPY, &c) < 0 || c.copy != CHUNK)
			p->err = 1;
	}
	return NULL;
}

static double way(const char *name)
{
	double best = 1e9;
	for (int rep = 0; rep < 3; rep++) {
		struct target t;
		int uffd = strcmp(name, "pvw") != 0, two = !strcmp(name, "uffd2"), err = 0;
		if (target_start(&t, uffd) < 0)
			return -1;
		double t0 = now_ms();
		if (!uffd) {
			for (size_t o = 0; o < len; o += CHUNK) {
				struct iovec l = { bufs[0], CHUNK }, r = { t.addr + o, CHUNK };
				if (process_vm_writev(t.pid, &l, 1, &r, 1, 0) != CHUNK)
					err = 1;
			}
		} else if (!two) {
			struct part p = { &t, 0, len, bufs[0], 0 };
			fill_uffd(&p);
			err = p.err;
		} else {
			size_t half = len / 2 / CHUNK * CHUNK;
			struct part a = { &t, 0, half, bufs[0], 0 }, b = { &t, half, len, bufs[1], 0 };
			pthread_t th;
			if (pthread_create(&th, NULL, fill_uffd, &b) != 0)
				err = 1;
			else {
				fill_uffd(&a);
				pthread_join(th, NULL);
				err = a.err || b.err;
			}
		}
		double ms = now_ms() - t0;
		target_end(&t);
		if (err)
			return -1;
		if (ms < best)
			best = ms;
	}
	return best;
}

int main(int argc, char **argv)
{
	len = (argc > 1 ? strtoul(argv[1], NULL, 10) : 256) << 20;
	len = len / CHUNK * CHUNK;
	for (int i = 0; i < 2; i++) {
		bufs[i] = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (bufs[i] == MAP_FAILED)
			return 1;
		memset(bufs[i], 0x5a + i, CHUNK);
	}
	static const char *ways[] = { "pvw", "uffd", "uffd2" };
	double floor = 1e9;
	const char *fw = "none";
	for (int i = 0; i < 3; i++) {
		double ms = way(ways[i]);
		printf("%s %.1f\n", ways[i], ms);
		if (ms > 0 && ms < floor) {
			floor = ms;
			fw = ways[i];
		}
	}
	printf("floor %.1f %s\n", floor, fw);
	return floor < 1e9 ? 0 : 1;
}
