/*
 * mem.c — memory of every kind, checked continuously:
 *   heap (malloc), private anonymous (rw and read-only), a growing stack
 *   buffer, private file mapping with COWed pages, shared file mapping,
 *   shared anonymous memory between parent and a forked child (the child
 *   mirrors the parent's counter, so sharing is visible), MADV_DONTFORK.
 * Every iteration checks the patterns and prints "i OK" (or "i BAD what").
 * argv[1] is a scratch file for the file mappings.  With ZT_MEM_AT=ADDR
 * (hex) the parent also keeps a page of its own at ADDR (the child drops
 * its copy): seedrange.t puts it where the restore seed lives.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MB (1024 * 1024)

static uint64_t sum(const void *p, size_t n)
{
	const uint64_t *q = p;
	uint64_t s = 0;
	for (size_t i = 0; i < n / 8; i++)
		s = s * 31 + q[i];
	return s;
}

static void fill(void *p, size_t n, uint64_t seed)
{
	uint64_t *q = p;
	for (size_t i = 0; i < n / 8; i++)
		q[i] = seed * 0x9e3779b97f4a7c15ull + i;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	size_t heap_n = 3 * MB, anon_n = 8 * MB, ro_n = 1 * MB, file_n = 256 * 1024;
	char *heap = malloc(heap_n);
	char *anon = mmap(NULL, anon_n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *ro = mmap(NULL, ro_n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile uint64_t *shm = mmap(NULL, 4096 * 4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *dontfork = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (!heap || anon == MAP_FAILED || ro == MAP_FAILED || fd < 0 || ftruncate(fd, (off_t)file_n * 2) < 0)
		return 3;
	char *fpriv = mmap(NULL, file_n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	char *fshared = mmap(NULL, file_n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)file_n);
	fill(heap, heap_n, 1);
	fill(anon, anon_n, 2);
	fill(ro, ro_n, 3);
	mprotect(ro, ro_n, PROT_READ);
	fill(fpriv, file_n / 2, 4);                 /* half the pages COWed */
	fill(fshared, file_n, 5);
	fill(dontfork, 65536, 6);
	madvise(dontfork, 65536, MADV_DONTFORK);
	const char *at_env = getenv("ZT_MEM_AT");
	char *at = NULL;
	if (at_env) {
		at = mmap((void *)strtoull(at_env, NULL, 16), 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (at == MAP_FAILED)
			return 4;
		fill(at, 4096, 8);
	}
	uint64_t s_at = at ? sum(at, 4096) : 0;
	char stackbuf[200000];
	fill(stackbuf, sizeof(stackbuf), 7);
	uint64_t s_heap = sum(heap, heap_n), s_anon = sum(anon, anon_n), s_ro = sum(ro, ro_n),
		 s_fp = sum(fpriv, file_n), s_fs = sum(fshared, file_n), s_st = sum(stackbuf, sizeof(stackbuf)),
		 s_df = sum(dontfork, 65536);
	if (fork() == 0) {                          /* mirror shm[0] into shm[1] */
		if (at)
			munmap(at, 4096);
		for (;;) {
			shm[1] = shm[0];
			usleep(1000);
		}
	}
	struct timespec ts = { 0, 5000000 };
	for (uint64_t i = 0;; i++) {
		const char *bad = NULL;
		if (sum(heap, heap_n) != s_heap) bad = "heap";
		else if (sum(anon, anon_n) != s_anon) bad = "anon";
		else if (sum(ro, ro_n) != s_ro) bad = "readonly";
		else if (sum(fpriv, file_n) != s_fp) bad = "file-private";
		else if (sum(fshared, file_n) != s_fs) bad = "file-shared";
		else if (sum(stackbuf, sizeof(stackbuf)) != s_st) bad = "stack";
		else if (sum(dontfork, 65536) != s_df) bad = "dontfork";
		else if (at && sum(at, 4096) != s_at) bad = "ZT_MEM_AT";
		shm[0] = i;
		/* the child must catch up within ~200 ms */
		int lag = 0;
		while (shm[1] != i && lag < 200) {
			usleep(1000);
			lag++;
		}
		if (!bad && shm[1] != i) bad = "shared-anon";
		if (bad)
			printf("%lu BAD %s\n", (unsigned long)i, bad);
		else
			printf("%lu OK\n", (unsigned long)i);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
