/*
 * sha256.h — SHA-256 (FIPS 180-4) for the image trailer.
 *
 * Our own small implementation so that zapc-engine does not load libcrypto:
 * its 21,000 relocations and the copy-on-write faults of its data pages
 * cost a few ms at every engine start on this VM (docs/image-format.md).
 * The image digests only record headers, a few KiB per image, so plain C
 * is fast enough.
 */
#ifndef ZAPC_SHA256_H
#define ZAPC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
	uint32_t h[8];
	uint64_t bytes;         /* message length so far */
	uint8_t block[64];      /* partial block */
	size_t fill;            /* bytes in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);

#endif
