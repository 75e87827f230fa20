/*
 * image_bench.c — how close the image container gets to memory speed.
 * Prints the memcpy floor for 256 MiB, CRC32C of the same, and writing a
 * 256 MiB page record through image_writev into memory (what a checkpoint
 * to memory pays per byte), then reading it back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "lib/image.h"

#define SZ (256ul << 20)

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct sink { uint8_t *p; size_t len, pos; };

static ssize_t sink_write(void *ctx, const void *buf, size_t len)
{
	struct sink *s = ctx;

	memcpy(s->p + s->len, buf, len);
	s->len += len;
	return (ssize_t)len;
}

static ssize_t sink_read(void *ctx, void *buf, size_t len)
{
	struct sink *s = ctx;
	size_t n = s->len - s->pos < len ? s->len - s->pos : len;

	memcpy(buf, s->p + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

static double best(double a, double b) { return a < b ? a : b; }

int main(void)
{
	uint8_t *src = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	uint8_t *dst = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	struct sink s = { mmap(NULL, SZ + (1 << 20), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0), 0, 0 };
	double t, tmem = 1e9, tcrc = 1e9, tw = 1e9, tr = 1e9;
	volatile uint32_t sinkc = 0;
	char err[256];

	for (size_t i = 0; i < SZ; i += 8)
		*(uint64_t *)(src + i) = i * 0x9e3779b97f4a7c15ull;
	for (int rep = 0; rep < 3; rep++) {
		struct image_writer *w;
		struct image_reader *r;
		uint32_t type, len;

		t = now(); memcpy(dst, src, SZ); tmem = best(tmem, now() - t);
		t = now(); sinkc += crc32c(0, src, SZ); tcrc = best(tcrc, now() - t);
		s.len = 0;
		t = now();
		w = image_writer_cb(sink_write, &s, 0, err, sizeof(err));
		image_write(w, 7, src, SZ);
		image_writer_finish(w);
		tw = best(tw, now() - t);
		image_writer_free(w);
		s.pos = 0;
		t = now();
		r = image_reader_cb(sink_read, &s, err, sizeof(err));
		image_next(r, &type, &len);
		image_read(r, dst, len);
		if (image_next(r, &type, &len) != 0)
			fprintf(stderr, "bench-image: read back failed: %s\n", image_reader_error(r));
		tr = best(tr, now() - t);
		image_reader_free(r);
	}
	printf("BENCH memcpy_256MiB_ms %.1f ms floor\n", tmem * 1e3);
	printf("BENCH crc32c_256MiB_ms %.1f ms %.1f GB/s\n", tcrc * 1e3, SZ / tcrc / 1e9);
	printf("BENCH image_write_256MiB_to_memory_ms %.1f ms %.2fx memcpy\n", tw * 1e3, tw / tmem);
	printf("BENCH image_read_256MiB_from_memory_ms %.1f ms %.2fx memcpy\n", tr * 1e3, tr / tmem);
	return 0;
}
