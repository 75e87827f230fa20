/*
 * crc32c.c — CRC32C (Castagnoli, reflected 0x82F63B78), as used per record
 * by the image container.
 *
 * Page data dominates an image, so this must run near memory speed.  On
 * x86_64 with SSE4.2 the crc32 instruction has a latency of 3 cycles but a
 * throughput of 1 per cycle, so one dependent chain reaches only a third of
 * what the unit can do.  We run three independent chains over three
 * adjacent lanes of LANE bytes and merge them: CRC without pre/post
 * inversion is linear, so
 *     raw(x, A||B) = shift(raw(x, A), |B|) ^ raw(0, B)
 * where shift(v, n) is v followed by n zero bytes.  shift() for the two
 * fixed distances we need (LANE and 2*LANE) is a linear map on 32 bits,
 * applied with four 256-entry tables built once.  Elsewhere a portable
 * slicing-by-8 table loop is used.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/image.h"

#define POLY 0x82f63b78u
#define LANE 4096u

static uint32_t sw_table[8][256];
static uint32_t shift1[4][256], shift2[4][256];  /* by LANE and 2*LANE zero bytes */
static int have_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Multiply a 32x32 GF(2) matrix (columns) by a vector. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;

	for (int i = 0; vec; i++, vec >>= 1)
		if (vec & 1)
			sum ^= mat[i];
	return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
	for (int i = 0; i < 32; i++)
		sq[i] = gf2_times(mat, mat[i]);
}

/* Build tables applying "append nbytes zero bytes" to a raw CRC state. */
static void build_shift(uint32_t tab[4][256], size_t nbytes)
{
	uint32_t op[32], sq[32], res[32];
	size_t nbits = nbytes * 8;
	int have = 0;

	/* op = one zero bit appended. */
	op[0] = POLY;
	for (int i = 1; i < 32; i++)
		op[i] = 1u << (i - 1);
	/* res = op^nbits, by repeated squaring. */
	while (nbits) {
		if (nbits & 1) {
			if (!have) {
				memcpy(res, op, sizeof(res));
				have = 1;
			} else {
				uint32_t tmp[32];

				for (int i = 0; i < 32; i++)
					tmp[i] = gf2_times(op, res[i]);
				memcpy(res, tmp, sizeof(res));
			}
		}
		nbits >>= 1;
		if (nbits) {
			gf2_square(sq, op);
			memcpy(op, sq, sizeof(op));
		}
	}
	for (int k = 0; k < 4; k++)
		for (uint32_t b = 0; b < 256; b++)
			tab[k][b] = gf2_times(res, b << (8 * k));
}

static inline uint32_t apply_shift(uint32_t tab[4][256], uint32_t v)
{
	return tab[0][v & 0xff] ^ tab[1][(v >> 8) & 0xff] ^
	       tab[2][(v >> 16) & 0xff] ^ tab[3][v >> 24];
}

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		sw_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			sw_table[t][i] = (sw_table[t - 1][i] >> 8) ^
					 sw_table[0][sw_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_hw = __builtin_cpu_supports("sse4.2");
#endif
	build_shift(shift1, LANE);
	build_shift(shift2, 2 * LANE);
}

static uint32_t raw_sw(uint32_t c, const uint8_t *p, size_t n)
{
	while (n && ((uintptr_t)p & 7)) {
		c = sw_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
		n--;
	}
	while (n >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= c;
		c = sw_table[7][w & 0xff] ^ sw_table[6][(w >> 8) & 0xff] ^
		    sw_table[5][(w >> 16) & 0xff] ^ sw_table[4][(w >> 24) & 0xff] ^
		    sw_table[3][(w >> 32) & 0xff] ^ sw_table[2][(w >> 40) & 0xff] ^
		    sw_table[1][(w >> 48) & 0xff] ^ sw_table[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = sw_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t raw_hw(uint32_t c, const uint8_t *p, size_t n)
{
	uint64_t a = c;

	while (n && ((uintptr_t)p & 7)) {
		a = __builtin_ia32_crc32qi((uint32_t)a, *p++);
		n--;
	}
	/* Three lanes in flight hide the instruction's latency. */
	while (n >= 3 * LANE) {
		uint64_t b = 0, d = 0;
		const uint8_t *p1 = p + LANE, *p2 = p + 2 * LANE;

		for (size_t i = 0; i < LANE; i += 8) {
			uint64_t w0, w1, w2;

			memcpy(&w0, p + i, 8);
			memcpy(&w1, p1 + i, 8);
			memcpy(&w2, p2 + i, 8);
			a = __builtin_ia32_crc32di(a, w0);
			b = __builtin_ia32_crc32di(b, w1);
			d = __builtin_ia32_crc32di(d, w2);
		}
		a = apply_shift(shift2, (uint32_t)a) ^ apply_shift(shift1, (uint32_t)b) ^ (uint32_t)d;
		p += 3 * LANE;
		n -= 3 * LANE;
	}
	while (n >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		a = __builtin_ia32_crc32di(a, w);
		p += 8;
		n -= 8;
	}
	while (n--)
		a = __builtin_ia32_crc32qi((uint32_t)a, *p++);
	return (uint32_t)a;
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	uint32_t c = ~crc;

	pthread_once(&init_once, crc32c_init);
#if defined(__x86_64__)
	if (have_hw)
		return ~raw_hw(c, buf, len);
#endif
	return ~raw_sw(c, buf, len);
}
