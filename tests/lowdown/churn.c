/*
 * churn.c — a program that never stops writing, for the pre-copy race
 * (docs/incremental.md: pages are copied and re-protected before the freeze,
 * and a page written after that must be read again while frozen).
 *
 *   zt-lowdown-churn DIR NPAGES
 * Round g writes every page i (in order) with the pattern of (i, g), a
 * short pause every 16 pages, then sets the header to g.  Before a round it
 * checks that every page holds exactly the pattern of (i, header): a page
 * that a checkpoint caught stale (older than pages written after it in the
 * same round) fails this check in the restored copy.  Each checked round
 * appends "ok G" to DIR/log; a failure appends "BAD ..." to DIR/bad.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void fill(uint64_t *page, uint64_t idx, uint64_t gen)
{
	for (int i = 0; i < 512; i++)
		page[i] = (idx * 0x9e3779b97f4a7c15ull) ^ (gen << 40) ^ (uint64_t)i * 0x100000001b3ull;
}

static long check(const uint64_t *page, uint64_t idx, uint64_t gen)
{
	for (int i = 0; i < 512; i++)
		if (page[i] != ((idx * 0x9e3779b97f4a7c15ull) ^ (gen << 40) ^ (uint64_t)i * 0x100000001b3ull))
			return (long)(page[i] ^ (idx * 0x9e3779b97f4a7c15ull) ^ (uint64_t)i * 0x100000001b3ull) >> 40;
	return -1;
}

static void append(const char *dir, const char *name, const char *line)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, strlen(line)) < 0)
		perror(path);
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *dir = argv[1];
	long np = atol(argv[2]);
	uint8_t *r = mmap(NULL, (size_t)(np + 1) * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return 1;
	volatile uint64_t *header = (uint64_t *)(r + np * 4096);
	for (long i = 0; i < np; i++)
		fill((uint64_t *)(r + i * 4096), (uint64_t)i, 0);
	*header = 0;
	append(dir, "log", "ready\n");
	struct timespec pause = { 0, 50000 };
	char line[128];
	for (;;) {
		uint64_t g = *header;
		for (long i = 0; i < np; i++) {
			long got = check((uint64_t *)(r + i * 4096), (uint64_t)i, g);
			if (got >= 0) {
				snprintf(line, sizeof(line), "BAD round %llu: page %ld holds generation %ld\n",
					 (unsigned long long)g + 1, i, got);
				append(dir, "bad", line);
				break;
			}
		}
		snprintf(line, sizeof(line), "ok %llu\n", (unsigned long long)g);
		append(dir, "log", line);
		for (long i = 0; i < np; i++) {
			fill((uint64_t *)(r + i * 4096), (uint64_t)i, g + 1);
			if (i % 16 == 15)
				nanosleep(&pause, NULL);
		}
		*header = g + 1;
	}
}
