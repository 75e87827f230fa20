/*
 * sha256_test.c — lib/sha256.c against the FIPS 180-4 example digests and
 * against OpenSSL's SHA-256 for every length 0..300 and for one message
 * fed in irregular pieces (the block-boundary and padding cases).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "lib/sha256.h"
#include "tests/unit/tap.h"

static void hex(const uint8_t *d, char *out)
{
	for (int i = 0; i < SHA256_LEN; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void digest(const void *p, size_t n, char *out)
{
	struct sha256 s;
	uint8_t d[SHA256_LEN];
	sha256_init(&s);
	sha256_update(&s, p, n);
	sha256_final(&s, d);
	hex(d, out);
}

int main(void)
{
	char got[65];
	uint8_t msg[1000], ref[SHA256_LEN];
	int bad = -1;

	tap_plan(6);
	digest("abc", 3, got);
	is_str(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "FIPS 180-4: \"abc\"");
	digest("", 0, got);
	is_str(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty message");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	digest(two, strlen(two), got);
	is_str(got, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "FIPS 180-4: two-block message");

	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 131 + 7);
	for (size_t n = 0; n <= 300 && bad < 0; n++) {
		char want[65];
		SHA256(msg, n, ref);
		hex(ref, want);
		digest(msg, n, got);
		if (strcmp(got, want))
			bad = (int)n;
	}
	ok(bad < 0, "same digest as OpenSSL for every length 0..300 (first bad: %d)", bad);

	struct sha256 s;
	uint8_t d[SHA256_LEN];
	char want[65];
	size_t pieces[] = { 1, 63, 64, 65, 0, 7, 128, 200, 5, 300, 103, 64 }, off = 0;
	sha256_init(&s);
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		sha256_update(&s, msg + off, pieces[i]);
		off += pieces[i];
	}
	sha256_final(&s, d);
	hex(d, got);
	SHA256(msg, off, ref);
	hex(ref, want);
	is_str(got, want, "%zu bytes in 12 irregular pieces: same digest as in one call", off);

	/* a million 'a' (FIPS 180-4 example) */
	memset(msg, 'a', sizeof(msg));
	sha256_init(&s);
	for (int i = 0; i < 1000; i++)
		sha256_update(&s, msg, 1000);
	sha256_final(&s, d);
	hex(d, got);
	is_str(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "one million 'a'");
	return tap_failed ? 1 : 0;
}
