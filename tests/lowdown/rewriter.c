/*
 * rewriter.c — a pod program for bench/lowdown.sh: MB MiB of anonymous
 * memory, half random bytes and half zeros per page (about 2:1 under zstd),
 * then rewrites PAGES random pages per step with new content of the same
 * kind.  A step runs when DIR/go.N appears (INTERVAL_MS 0) or every
 * INTERVAL_MS unless DIR/hold exists (so the bench's reference covers
 * exactly the steps its chain covers).  After each step it appends "pages zstd_bytes" of what it just
 * wrote to DIR/ref (the reference for the storage figure: pages x the zstd-3
 * size of one such page, measured once at start so that the steps dirty no
 * memory but the rewritten pages), and creates DIR/done.N.
 *   zt-lowdown-rewriter DIR MB PAGES INTERVAL_MS
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
#include <zstd.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
	rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
	return rng;
}

static void fill(uint8_t *page)
{
	uint64_t *w = (uint64_t *)page;
	for (int i = 0; i < 256; i++)
		w[i] = next();
	memset(page + 2048, 0, 2048);
}

int main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	const char *dir = argv[1];
	size_t np = strtoul(argv[2], NULL, 10) << 8;
	long per = atol(argv[3]), ms = atol(argv[4]);
	uint8_t *m = mmap(NULL, np * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 1;
	madvise(m, np * 4096, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < np; i++)
		fill(m + i * 4096);
	static uint8_t sample[4096], z[8192];
	fill(sample);
	size_t zpage = ZSTD_compress(z, sizeof(z), sample, 4096, 3);
	if (ZSTD_isError(zpage))
		zpage = 4096;
	char path[4096];
	printf("ready\n");
	fflush(stdout);
	struct timespec poll = { 0, 1000000 }, iv = { ms / 1000, (ms % 1000) * 1000000 };
	for (unsigned long step = 1;; step++) {
		struct stat st;
		if (ms) {
			nanosleep(&iv, NULL);
			snprintf(path, sizeof(path), "%s/hold", dir);
			if (stat(path, &st) == 0)
				continue;       /* the bench holds the steps */
		} else {
			snprintf(path, sizeof(path), "%s/go.%lu", dir, step);
			while (stat(path, &st) < 0)
				nanosleep(&poll, NULL);
		}
		for (long k = 0; k < per; k++)
			fill(m + (next() % np) * 4096);
		snprintf(path, sizeof(path), "%s/ref", dir);
		int rf = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (rf >= 0) {
			char line[64];
			int n = snprintf(line, sizeof(line), "%ld %zu\n", per, (size_t)per * zpage);
			if (write(rf, line, (size_t)n) < 0)
				perror("ref");
			close(rf);
		}
		snprintf(path, sizeof(path), "%s/done.%lu", dir, step);
		int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
}
