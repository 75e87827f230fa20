/*
 * crc32c_test.c — every CRC32C path of lib/crc32c.c (portable tables, the
 * SSE4.2 crc32 instruction in three lanes, AVX-512 VPCLMULQDQ folding)
 * against a bitwise reference: the standard check value, every length up
 * to 2 KiB and lengths around each path's block sizes, at every alignment
 * of a cache line, from arbitrary starting values, and continued across
 * calls.  Each path runs in its own child, which picks it with
 * ZAPC_CRC32C before its first call (the choice is made once per process).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/image.h"
#include "tests/unit/tap.h"

static uint32_t ref_raw(uint32_t c, const uint8_t *p, size_t n)
{
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return c;
}

static uint32_t ref_crc(uint32_t crc, const uint8_t *p, size_t n)
{
	return ~ref_raw(~crc, p, n);
}

#define BUF (3u << 20)

/* The checks of one path; returns the number that failed (exit status). */
static int check_path(uint8_t *buf)
{
	int bad = 0;
	uint32_t seed = 12345;

	if (crc32c(0, "123456789", 9) != 0xe3069283u)
		bad++;
	/* all short lengths, all alignments in a cache line, random start values */
	for (size_t len = 0; len <= 2048; len++) {
		size_t off = len % 64;
		uint32_t start = seed = seed * 1103515245u + 12345u;
		bad += crc32c(start, buf + off, len) != ref_crc(start, buf + off, len);
	}
	/* around the block sizes: 256-byte folds, 64-byte folds, 3 × 4 KiB lanes */
	static const size_t around[] = { 256, 512, 768, 1024, 4096, 3 * 4096, 6 * 4096, 65536, 262144 };
	for (size_t i = 0; i < sizeof(around) / sizeof(around[0]); i++)
		for (long d = -65; d <= 65; d += 13)
			for (size_t off = 0; off < 64; off += 21) {
				size_t len = (size_t)((long)around[i] + d);
				uint32_t start = seed = seed * 1103515245u + 12345u;
				bad += crc32c(start, buf + off, len) != ref_crc(start, buf + off, len);
			}
	/* one big run, and the same run in uneven pieces */
	uint32_t whole = ref_crc(0, buf, BUF - 64), c = 0;
	bad += crc32c(0, buf, BUF - 64) != whole;
	for (size_t at = 0, step = 1; at < BUF - 64; at += step, step = step * 7 + 3) {
		size_t n = step < BUF - 64 - at ? step : BUF - 64 - at;
		c = crc32c(c, buf + at, n);
	}
	bad += c != whole;
	/* a single flipped bit anywhere in a page changes it */
	uint32_t page = crc32c(0, buf, 4096);
	for (size_t bit = 0; bit < 4096 * 8; bit += 97) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		bad += crc32c(0, buf, 4096) == page;
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	return bad > 250 ? 250 : bad;
}

int main(void)
{
	static const char *paths[] = { "sw", "sse42", "vpclmul" };
	uint8_t *buf = malloc(BUF);
	uint32_t s = 1;

	tap_plan(3);
	for (size_t i = 0; i < BUF; i++) {
		s = s * 1664525u + 1013904223u;
		buf[i] = (uint8_t)(s >> 24);
	}
	for (int i = 0; i < 3; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			/* a path the CPU lacks falls back to the next one down */
			setenv("ZAPC_CRC32C", paths[i], 1);
			if (strcmp(crc32c_impl(), paths[i]))
				printf("# path '%s' not on this CPU: checking '%s'\n", paths[i], crc32c_impl());
			fflush(stdout);
			_exit(check_path(buf));
		}
		int st = 0;
		waitpid(pid, &st, 0);
		tap_ok(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "crc32c path '%s' matches the bitwise reference "
		       "(%d checks failed)", paths[i], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
	free(buf);
	return tap_failed != 0;
}
