/*
 * dirtypat.c — a program whose memory changes only where a test says so.
 *
 *   zt-lowdown-dirtypat DIR NPAGES
 * maps NPAGES private anonymous pages, fills every page with a pattern of
 * (page, generation 0), prints "region ADDR NPAGES", then for step 1, 2, ...
 * waits for DIR/go.STEP, rewrites 4 pages with generation STEP (which pages
 * follows from STEP), rewrites page 0 with its *unchanged* content (a write
 * that dedupe must drop), and creates DIR/done.STEP.  The test checksums the
 * region through /proc/PID/mem at each checkpoint and after each restore.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void fill(uint64_t *page, uint64_t idx, uint64_t gen)
{
	for (int i = 0; i < 512; i++)
		page[i] = (idx * 0x9e3779b97f4a7c15ull) ^ (gen << 40) ^ (uint64_t)i * 0x100000001b3ull;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *dir = argv[1];
	long np = atol(argv[2]);
	uint8_t *r = mmap(NULL, (size_t)np * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return 1;
	for (long i = 0; i < np; i++)
		fill((uint64_t *)(r + i * 4096), (uint64_t)i, 0);
	printf("region %llu %ld\n", (unsigned long long)(uintptr_t)r, np);
	fflush(stdout);
	char path[4096];
	struct timespec ts = { 0, 2000000 };
	for (uint64_t step = 1;; step++) {
		struct stat st;
		snprintf(path, sizeof(path), "%s/go.%llu", dir, (unsigned long long)step);
		while (stat(path, &st) < 0)
			nanosleep(&ts, NULL);
		for (uint64_t k = 0; k < 4; k++) {
			uint64_t idx = 1 + (step * 37 + k * 101) % (uint64_t)(np - 1);
			fill((uint64_t *)(r + idx * 4096), idx, step);
		}
		uint64_t keep[512];
		memcpy(keep, r, 4096);
		memcpy(r, keep, 4096);          /* written, unchanged */
		snprintf(path, sizeof(path), "%s/done.%llu", dir, (unsigned long long)step);
		int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
}
