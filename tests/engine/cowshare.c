/*
 * cowshare.c — a pre-fork server for cowshare.t: a parent fills MB MiB of
 * private anonymous memory, then forks NCHILD children (child 0 forks one
 * grandchild); most of that memory stays shared copy-on-write between them,
 * which is what the engine's cowshare stores once and shares again at restore.
 *
 *   zt-cowshare MB NCHILD RESULTS_FILE
 *
 * Every process knows what its memory must hold from its role alone (no
 * stored copy), so a restored image that gave a child its parent's pages, or
 * the other way round, is caught:
 *   - shared region: page p holds pattern(SEED, p), except
 *       child k (and the grandchild, as child 0's copy): pages 1+3k..3+3k hold
 *         pattern(CHILD + k, p);
 *       grandchild: pages 40, 41 hold pattern(GRAND, p);
 *       parent: pages 50..59 rewritten AFTER the forks, pattern(LATE, p) — the
 *         children keep the old SEED content there;
 *       child k: pages 200+8k..+3 MADV_DONTNEED'd (read back as zeros),
 *         pages 400+16k..+15 (64 KiB) munmapped.
 *   - a 1 MiB heap buffer, filled by the parent before the forks (HEAP);
 *   - a 64 KiB mapping of its own filled by the parent (PAD), all of it
 *     MADV_DONTNEED'd by child 1: a mapping the child shares with its parent
 *     but has no page of, zeros after restore;
 *   - child k: a fresh 256 KiB region of its own (NEWREG + k); the grandchild
 *     inherits child 0's.
 * Each process blocks SIGUSR1 and waits for it; on each one it checks all of
 * the above and appends "ROLE OK" or "ROLE BAD what page N ..." to
 * RESULTS_FILE (one write(2), O_APPEND, so lines of 8 processes do not mix).
 * The parent prints "ready ADDR" (the shared region's address, hex) once
 * every process finished its setup.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096ul
#define WORDS (PAGE / 8)
#define HEAP_SIZE (1ul << 20)
#define NEWREG_SIZE (256ul << 10)
#define MAX_CHILDREN 10  /* keeps the page ranges below from overlapping */

/* pattern tags: who wrote a page */
enum { SEED = 1, LATE = 2, HEAP = 3, PAD = 4, CHILD = 100, GRAND = 200, NEWREG = 300 };
#define PAD_SIZE (64ul << 10)   /* a mapping of its own, emptied by child 1 */

static char *shared;        /* the MB MiB region */
static size_t npages;
static char *heap;
static char *pad;           /* child 1 drops all of it: a mapping without pages of its own */
static char *newreg;        /* child k's own region (the grandchild's is child 0's) */
static int child = -1;      /* k, or -1 for the parent */
static int grandchild;
static const char *results;

/* splitmix64: words that do not compress, so the image size shows what is stored */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* word i of page p by TAG; the top bit makes every word non-zero */
static uint64_t word(unsigned tag, size_t p, size_t i)
{
	return mix((uint64_t)tag << 48 ^ (uint64_t)p << 12 ^ i) | 1ull << 63;
}

static void fill_page(char *page, unsigned tag, size_t p)
{
	uint64_t *w = (uint64_t *)page;
	for (size_t i = 0; i < WORDS; i++)
		w[i] = word(tag, p, i);
}

static void fill(char *mem, size_t size, unsigned tag)
{
	for (size_t p = 0; p < size / PAGE; p++)
		fill_page(mem + p * PAGE, tag, p);
}

/* Page ranges of child k in the shared region. */
static size_t own_first(int k) { return 1 + 3 * (size_t)k; }     /* 3 pages */
static size_t dontneed_first(int k) { return 200 + 8 * (size_t)k; } /* 4 pages */
static size_t unmap_first(int k) { return 400 + 16 * (size_t)k; }   /* 16 pages */
#define GRAND_FIRST 40  /* 2 pages */
#define LATE_FIRST 50   /* 10 pages */

static int in(size_t p, size_t first, size_t n) { return p >= first && p < first + n; }

enum expect { UNMAPPED, ZERO, FILLED };

/* What page p of the shared region must hold in this process (tag in *tag). */
static enum expect expected(size_t p, unsigned *tag)
{
	*tag = SEED;
	if (child < 0) {
		if (in(p, LATE_FIRST, 10))
			*tag = LATE;
		return FILLED;
	}
	if (in(p, unmap_first(child), 16))
		return UNMAPPED;
	if (in(p, dontneed_first(child), 4))
		return ZERO;
	if (grandchild && in(p, GRAND_FIRST, 2))
		*tag = GRAND;
	else if (in(p, own_first(child), 3))
		*tag = CHILD + child;
	return FILLED;
}

/* Compare one page; on a mismatch describe it in BAD and return -1. */
static int check_page(const char *page, enum expect e, unsigned tag, size_t p, char *bad, size_t badlen,
		      const char *what)
{
	const uint64_t *w = (const uint64_t *)page;
	for (size_t i = 0; i < WORDS; i++) {
		uint64_t want = e == ZERO ? 0 : word(tag, p, i);
		if (w[i] != want) {
			snprintf(bad, badlen, "%s page %zu word %zu got %#llx want %#llx (tag %u)", what, p, i,
				 (unsigned long long)w[i], (unsigned long long)want, e == ZERO ? 0 : tag);
			return -1;
		}
	}
	return 0;
}

/* mincore fails with ENOMEM on a range that is not mapped (mincore(2)). */
static int mapped(const void *page)
{
	unsigned char vec;
	return mincore((void *)page, PAGE, &vec) == 0 || errno != ENOMEM;
}

static int verify(char *bad, size_t badlen)
{
	for (size_t p = 0; p < npages; p++) {
		unsigned tag;
		enum expect e = expected(p, &tag);
		const char *page = shared + p * PAGE;
		if (e == UNMAPPED) {
			if (mapped(page)) {
				snprintf(bad, badlen, "munmapped page %zu is mapped", p);
				return -1;
			}
			continue;
		}
		if (!mapped(page)) {
			snprintf(bad, badlen, "shared page %zu is not mapped", p);
			return -1;
		}
		if (check_page(page, e, tag, p, bad, badlen, e == ZERO ? "dontneed" : "shared") < 0)
			return -1;
	}
	for (size_t p = 0; p < HEAP_SIZE / PAGE; p++)
		if (check_page(heap + p * PAGE, FILLED, HEAP, p, bad, badlen, "heap") < 0)
			return -1;
	for (size_t p = 0; p < PAD_SIZE / PAGE; p++)
		if (check_page(pad + p * PAGE, child == 1 && !grandchild ? ZERO : FILLED, PAD, p, bad, badlen, "pad") < 0)
			return -1;
	for (size_t p = 0; newreg && p < NEWREG_SIZE / PAGE; p++)
		if (check_page(newreg + p * PAGE, FILLED, NEWREG + child, p, bad, badlen, "newregion") < 0)
			return -1;
	return 0;
}

static void report(void)
{
	char role[32], bad[200], line[256];
	if (grandchild)
		snprintf(role, sizeof(role), "grandchild");
	else if (child >= 0)
		snprintf(role, sizeof(role), "child%d", child);
	else
		snprintf(role, sizeof(role), "parent");
	int n;
	if (verify(bad, sizeof(bad)) == 0)
		n = snprintf(line, sizeof(line), "%s OK\n", role);
	else
		n = snprintf(line, sizeof(line), "%s BAD %s\n", role, bad);
	/* opened per report: the test truncates the file between rounds */
	int fd = open(results, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		_exit(4);
	close(fd);
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* Verify on every SIGUSR1, forever. */
static _Noreturn void serve(void)
{
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	for (;;) {
		siginfo_t si;
		if (sigwaitinfo(&usr1, &si) == SIGUSR1)
			report();
		/* EINTR (e.g. across a checkpoint): wait again */
	}
}

/* Child k's own changes to what it inherited. */
static int child_setup(int k)
{
	for (size_t p = own_first(k); p < own_first(k) + 3; p++)
		fill_page(shared + p * PAGE, CHILD + k, p);
	if ((k == 1 && madvise(pad, PAD_SIZE, MADV_DONTNEED) < 0) ||
	    madvise(shared + dontneed_first(k) * PAGE, 4 * PAGE, MADV_DONTNEED) < 0 ||
	    munmap(shared + unmap_first(k) * PAGE, 16 * PAGE) < 0)
		return -1;
	newreg = mmap(NULL, NEWREG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (newreg == MAP_FAILED)
		return -1;
	fill(newreg, NEWREG_SIZE, NEWREG + k);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: zt-cowshare MB NCHILD RESULTS_FILE\n");
		return 2;
	}
	size_t mb = strtoul(argv[1], NULL, 10);
	int nchild = atoi(argv[2]);
	results = argv[3];
	npages = (mb << 20) / PAGE;
	if (npages < unmap_first(MAX_CHILDREN) + 16 || nchild < 1 || nchild > MAX_CHILDREN) {
		fprintf(stderr, "zt-cowshare: MB >= 3 and 1 <= NCHILD <= %d\n", MAX_CHILDREN);
		return 2;
	}

	/* a handler (not SIG_DFL) as well as the mask: the pod's init ignores
	 * signals it has no handler for (SIGNAL_UNKILLABLE) */
	signal(SIGUSR1, on_usr1);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);

	shared = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	heap = malloc(HEAP_SIZE);
	/* (MAP_NORESERVE: never merged with the shared region next to it) */
	pad = mmap(NULL, PAD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int ready[2];
	if (shared == MAP_FAILED || pad == MAP_FAILED || !heap || pipe2(ready, O_CLOEXEC) < 0)
		return 3;
	fill(shared, npages * PAGE, SEED);
	fill(heap, HEAP_SIZE, HEAP);
	fill(pad, PAD_SIZE, PAD);

	for (int k = 0; k < nchild; k++) {
		pid_t pid = fork();
		if (pid < 0)
			return 3;
		if (pid > 0)
			continue;
		child = k;
		close(ready[0]);
		if (child_setup(k) < 0)
			_exit(3);
		/* the grandchild starts from child 0's memory as set up above */
		if (k == 0) {
			pid = fork();
			if (pid < 0)
				_exit(3);
			if (pid == 0) {
				grandchild = 1;
				for (size_t p = GRAND_FIRST; p < GRAND_FIRST + 2; p++)
					fill_page(shared + p * PAGE, GRAND, p);
			}
		}
		if (write(ready[1], "x", 1) != 1)
			_exit(3);
		close(ready[1]);
		serve();
	}
	close(ready[1]);
	char c;
	for (int n = 0; n < nchild + 1; n++)
		if (read(ready[0], &c, 1) != 1)
			return 3;
	close(ready[0]);
	/* after every fork: the children must keep the old content of these */
	for (size_t p = LATE_FIRST; p < LATE_FIRST + 10; p++)
		fill_page(shared + p * PAGE, LATE, p);
	printf("ready %lx\n", (unsigned long)shared);
	fflush(stdout);
	serve();
}
