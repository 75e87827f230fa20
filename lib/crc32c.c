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
 *
 * Faster still, where the CPU has AVX-512 and VPCLMULQDQ, is folding: the
 * data is carried in four 512-bit accumulators (sixteen 128-bit lanes) and
 * each lane is moved 256 bytes forward by two carry-less multiplications
 * by x^k mod P, then XORed with the data found there; at the end the lanes
 * are folded into one 128-bit value whose CRC is that of everything before
 * it (fold_vpclmul below has the algebra).  It reads 256 bytes per eight
 * multiplications, several times the crc32 instruction's 8 bytes a cycle,
 * and is what a restore pays per byte of page data it checks.
 * ZAPC_CRC32C=sw|sse42|vpclmul picks a path (tests, benchmarks); the
 * default is the fastest the CPU has.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "lib/image.h"

#define POLY 0x82f63b78u
#define LANE 4096u

static uint32_t sw_table[8][256];
static uint32_t shift1[4][256], shift2[4][256];  /* by LANE and 2*LANE zero bytes */
static int have_hw, have_fold;
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

#if defined(__x86_64__)
#include <immintrin.h>

/*
 * Folding, in the reflected bit order of this CRC.  A 128-bit lane holds
 * 16 message bytes; its bit j (byte j/8, bit j%8) is the coefficient of
 * x^(127-j), so its low 64 bits are the high half H and its high 64 bits
 * the low half L of S = H·x^64 + L.  PCLMULQDQ of two such 64-bit halves,
 * read the same way as a 128-bit lane, is their product times x.  Moving S
 * D bytes forward means multiplying it by x^(8D), modulo P as everything
 * is: S·x^(8D) = H·x^(8D+64) + L·x^(8D), so with the constants
 *     KH(D) = x^(8D+63) mod P,   KL(D) = x^(8D-1) mod P
 * (the -1 pays for the multiply's x) the folded lane is
 *     clmul(H, KH) ^ clmul(L, KL),
 * a polynomial of degree < 128 that is XORed into the lane D bytes on.
 * A constant Q of degree < 32 is stored as a 64-bit half the same way:
 * its x^d coefficient at bit 63-d.  Once one lane is left, congruent to the
 * whole message so far and sitting at its end, the CRC of those 16 bytes
 * from a zero state is the message's CRC.  The starting state is XORed into
 * the first four message bytes, as the CRC's own definition allows.
 * Constants are computed at start-up, not copied from a table.
 */
static uint64_t k_fold[4][2];   /* fold by 256, 192, 128, 64 bytes: {KH, KL} */
static uint64_t k_lane[3][2];   /* fold a 128-bit lane by 48, 32, 16 bytes */

/* x^e mod P as a 64-bit half: coefficient of x^d at bit 63-d. */
static uint64_t xpow_half(unsigned e)
{
	uint64_t v = 1;         /* normal order: bit d = coefficient of x^d */
	while (e--) {
		v <<= 1;
		if (v >> 32)
			v ^= 0x11edc6f41ull;    /* P = x^32 + 0x1EDC6F41 (Castagnoli) */
	}
	uint64_t r = 0;
	for (int d = 0; d < 32; d++)
		if (v >> d & 1)
			r |= 1ull << (63 - d);
	return r;
}

static void fold_init(void)
{
	static const unsigned dist[4] = { 256, 192, 128, 64 }, lane[3] = { 48, 32, 16 };
	for (int i = 0; i < 4; i++) {
		k_fold[i][0] = xpow_half(8 * dist[i] + 63);
		k_fold[i][1] = xpow_half(8 * dist[i] - 1);
	}
	for (int i = 0; i < 3; i++) {
		k_lane[i][0] = xpow_half(8 * lane[i] + 63);
		k_lane[i][1] = xpow_half(8 * lane[i] - 1);
	}
}

#define FOLD_TARGET __attribute__((target("avx512f,avx512vl,vpclmulqdq,pclmul,sse4.2")))

FOLD_TARGET static inline __m512i fold512(__m512i s, __m512i k)
{
	return _mm512_xor_si512(_mm512_clmulepi64_epi128(s, k, 0x00), _mm512_clmulepi64_epi128(s, k, 0x11));
}

FOLD_TARGET static inline __m512i fold512_into(__m512i s, __m512i k, __m512i data)
{
	/* 0x96: a ^ b ^ c */
	return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(s, k, 0x00), _mm512_clmulepi64_epi128(s, k, 0x11),
					 data, 0x96);
}

FOLD_TARGET static inline __m128i fold128(__m128i s, const uint64_t k[2])
{
	__m128i kk = _mm_set_epi64x((long long)k[1], (long long)k[0]);
	return _mm_xor_si128(_mm_clmulepi64_si128(s, kk, 0x00), _mm_clmulepi64_si128(s, kk, 0x11));
}

static uint32_t raw_hw(uint32_t c, const uint8_t *p, size_t n);

/* Raw CRC (state c, no inversions) of n >= 256 bytes. */
FOLD_TARGET static uint32_t raw_fold(uint32_t c, const uint8_t *p, size_t n)
{
	__m512i k256 = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k_fold[0][1], (long long)k_fold[0][0]));
	__m512i x0 = _mm512_loadu_si512(p), x1 = _mm512_loadu_si512(p + 64);
	__m512i x2 = _mm512_loadu_si512(p + 128), x3 = _mm512_loadu_si512(p + 192);
	x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)c)));
	p += 256;
	n -= 256;
	while (n >= 256) {
		x0 = fold512_into(x0, k256, _mm512_loadu_si512(p));
		x1 = fold512_into(x1, k256, _mm512_loadu_si512(p + 64));
		x2 = fold512_into(x2, k256, _mm512_loadu_si512(p + 128));
		x3 = fold512_into(x3, k256, _mm512_loadu_si512(p + 192));
		p += 256;
		n -= 256;
	}
	/* four accumulators into the last one's place, 192/128/64 bytes on */
	__m512i k192 = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k_fold[1][1], (long long)k_fold[1][0]));
	__m512i k128 = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k_fold[2][1], (long long)k_fold[2][0]));
	__m512i k64 = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k_fold[3][1], (long long)k_fold[3][0]));
	__m512i x = _mm512_ternarylogic_epi64(fold512(x0, k192), fold512(x1, k128), fold512_into(x2, k64, x3), 0x96);
	while (n >= 64) {
		x = fold512_into(x, k64, _mm512_loadu_si512(p));
		p += 64;
		n -= 64;
	}
	/* its four lanes into the last one's place, 48/32/16 bytes on */
	__m128i s = _mm512_extracti32x4_epi32(x, 3);
	s = _mm_xor_si128(s, fold128(_mm512_extracti32x4_epi32(x, 0), k_lane[0]));
	s = _mm_xor_si128(s, fold128(_mm512_extracti32x4_epi32(x, 1), k_lane[1]));
	s = _mm_xor_si128(s, fold128(_mm512_extracti32x4_epi32(x, 2), k_lane[2]));
	uint64_t a = __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(s));
	a = __builtin_ia32_crc32di(a, (uint64_t)_mm_extract_epi64(s, 1));
	return raw_hw((uint32_t)a, p, n);       /* the last n < 64 bytes */
}
#endif

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
	have_fold = have_hw && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq");
	const char *want = getenv("ZAPC_CRC32C");
	if (want && !strcmp(want, "sw"))
		have_hw = have_fold = 0;
	else if (want && !strcmp(want, "sse42"))
		have_fold = 0;
	if (have_fold)
		fold_init();
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
	if (have_fold && len >= 512)
		return ~raw_fold(c, buf, len);
	if (have_hw)
		return ~raw_hw(c, buf, len);
#endif
	return ~raw_sw(c, buf, len);
}

const char *crc32c_impl(void)
{
	pthread_once(&init_once, crc32c_init);
	return have_fold ? "vpclmul" : have_hw ? "sse42" : "sw";
}
